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

/// (name, compiled in, present on this CPU) for each instruction set of x86-64-v3.
#[cfg(target_arch = "x86_64")]
macro_rules! x86_64_v3 {
    ($($name:tt),*) => {
        vec![$(($name, cfg!(target_feature = $name), std::arch::is_x86_feature_detected!($name))),*]
    };
}

fn cpu_features() -> Vec<(&'static str, bool, bool)> {
    #[cfg(target_arch = "x86_64")]
    return x86_64_v3!("avx", "avx2", "bmi1", "bmi2", "fma", "lzcnt", "movbe", "f16c");
    #[cfg(not(target_arch = "x86_64"))]
    Vec::new()
}

/// The instruction sets this build was compiled to use (`-C target-cpu=x86-64-v3` in
/// `.cargo/config.toml`: plonky2's field arithmetic is vectorised at compile time) that
/// `has(feature)` says the CPU lacks.
pub fn missing_cpu_features(has: impl Fn(&str) -> bool) -> Vec<&'static str> {
    cpu_features().into_iter().filter(|&(name, compiled, _)| compiled && !has(name)).map(|(name, ..)| name).collect()
}

/// Whether this CPU has `feature` (one of [`missing_cpu_features`]' names).
fn cpu_has(feature: &str) -> bool {
    cpu_features().iter().any(|&(name, _, present)| name == feature && present)
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
