//! Command-line conventions shared by the binaries.

/// Parses the command line; `--help` and `--version` exit 0, any usage error exits 64 with clap's
/// message (clap's own default would be 2, which zkfleet reserves for invalid input). First it
/// checks that this CPU has the instruction sets the build was compiled for ([`missing_cpu_features`]),
/// and exits 64 with one line naming those it lacks, before any of them can crash the process.
pub fn parse_or_exit<T: clap::Parser>() -> T {
    let missing = missing_cpu_features(cpu_has);
    if !missing.is_empty() {
        eprintln!(
            "error: this build needs an x86-64-v3 CPU and this one lacks {}; run it on a newer node or build \
             without the target-cpu in .cargo/config.toml",
            missing.join(", ")
        );
        std::process::exit(64);
    }
    match T::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 64 } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    }
}

/// The instruction sets this build was compiled to use (`-C target-cpu=x86-64-v3` in
/// `.cargo/config.toml`: plonky2's field arithmetic is vectorised at compile time) that
/// `has(feature)` says the CPU lacks.
pub fn missing_cpu_features(has: impl Fn(&str) -> bool) -> Vec<&'static str> {
    let compiled: &[(&str, bool)] = &[
        ("avx", cfg!(target_feature = "avx")),
        ("avx2", cfg!(target_feature = "avx2")),
        ("bmi1", cfg!(target_feature = "bmi1")),
        ("bmi2", cfg!(target_feature = "bmi2")),
        ("fma", cfg!(target_feature = "fma")),
        ("lzcnt", cfg!(target_feature = "lzcnt")),
        ("movbe", cfg!(target_feature = "movbe")),
        ("f16c", cfg!(target_feature = "f16c")),
    ];
    compiled.iter().filter(|(feature, used)| *used && !has(feature)).map(|(feature, _)| *feature).collect()
}

/// Whether this CPU has `feature` (one of [`missing_cpu_features`]' names).
fn cpu_has(feature: &str) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        match feature {
            "avx" => std::arch::is_x86_feature_detected!("avx"),
            "avx2" => std::arch::is_x86_feature_detected!("avx2"),
            "bmi1" => std::arch::is_x86_feature_detected!("bmi1"),
            "bmi2" => std::arch::is_x86_feature_detected!("bmi2"),
            "fma" => std::arch::is_x86_feature_detected!("fma"),
            "lzcnt" => std::arch::is_x86_feature_detected!("lzcnt"),
            "movbe" => std::arch::is_x86_feature_detected!("movbe"),
            "f16c" => std::arch::is_x86_feature_detected!("f16c"),
            _ => false,
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = feature;
        true
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
    use super::{cpu_has, missing_cpu_features, one_line};

    /// The build targets x86-64-v3 (`.cargo/config.toml`), and a CPU without AVX2 is told so.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn a_cpu_without_avx2_is_named() {
        let without_avx2 = missing_cpu_features(|feature| feature != "avx2");
        assert_eq!(without_avx2, ["avx2"], "the build does not target x86-64-v3: is .cargo/config.toml read?");
        assert_eq!(missing_cpu_features(|_| false).len(), 8);
        assert_eq!(missing_cpu_features(cpu_has), Vec::<&str>::new(), "the CPU running the tests runs the build");
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(one_line("unknown field `a\nb`, expected `nonce`"), "unknown field `a\\nb`, expected `nonce`");
        assert_eq!(one_line("tab\there\r\u{1b}"), "tab\\there\\r\\u{1b}");
        assert!(matches!(one_line("plain line, ünïcode kept"), std::borrow::Cow::Borrowed(_)));
    }
}
