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
