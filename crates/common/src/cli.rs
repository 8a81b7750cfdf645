//! Command-line conventions shared by the binaries.

/// Parses the command line; `--help` and `--version` exit 0, any usage error exits 64 with clap's
/// message (clap's own default would be 2, which zkfleet reserves for invalid input).
pub fn parse_or_exit<T: clap::Parser>() -> T {
    match T::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 64 } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    }
}

/// `text` as one line: control characters (a newline in a JSON key a user wrote, say) are written
/// as their escapes, so an error that quotes its input is still the one line zkfleet promises.
pub fn one_line(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return text.into();
    }
    text.chars()
        .map(|c| if c.is_control() { c.escape_debug().to_string() } else { c.to_string() })
        .collect::<String>()
        .into()
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(one_line("unknown field `a\nb`, expected `nonce`"), "unknown field `a\\nb`, expected `nonce`");
        assert_eq!(one_line("tab\there\r\u{1b}"), "tab\\there\\r\\u{1b}");
        assert!(matches!(one_line("plain line, ünïcode kept"), std::borrow::Cow::Borrowed(_)));
    }
}
