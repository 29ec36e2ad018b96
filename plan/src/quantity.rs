//! Quantities an operator writes on the command line and in plan files: durations, sizes,
//! CPU counts and the sandbox mode. One parser each, used by clap and by plan TOML alike, so
//! `--timeout 30s` and `timeout = "30s"` can never disagree.
//!
//! What this module does not know: flags, plans, or where the text came from. Its errors are
//! the user-facing message by design (`Result<_, String>`: clap and the plan reader put them
//! after the flag or the file and line).

use std::time::Duration;

use wisp_protocol::sandbox::SandboxMode;

/// Parses `500ms`, `30s`, `10m`, `1h`, or a plain number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 500ms, 30s, 10m or 1h"))?;
    let scale: u64 = match unit {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (use ms, s, m or h)"
            ));
        }
    };
    let millis = n
        .checked_mul(scale)
        .ok_or_else(|| format!("{text:?}: too long"))?;
    if millis == 0 {
        return Err(format!("{text:?}: must be more than zero"));
    }
    Ok(Duration::from_millis(millis))
}

/// Parses `64M`, `2G`, `512k`, `1048576` (bytes; binary units).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size like 512M, 2G or 1048576"))?;
    let shift = match unit
        .to_ascii_lowercase()
        .trim_end_matches("ib")
        .trim_end_matches('b')
    {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (use K, M, G or T)"
            ));
        }
    };
    n.checked_mul(1 << shift)
        .filter(|v| *v > 0)
        .ok_or_else(|| format!("{text:?}: must be more than zero and fit in 64 bits"))
}

/// Parses a CPU count (`0.2`, `1`, `1.5`) into thousandths of a CPU.
pub fn parse_cpus(text: &str) -> Result<u64, String> {
    let v: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of CPUs like 0.5 or 2"))?;
    if !(0.001..=4096.0).contains(&v) {
        return Err(format!("{text:?}: expected between 0.001 and 4096 CPUs"));
    }
    // In range, so the rounding cannot truncate or lose the sign.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok((v * 1000.0).round() as u64)
}

/// Parses `require` or `best-effort`.
pub fn parse_mode(text: &str) -> Result<SandboxMode, String> {
    match text {
        "require" => Ok(SandboxMode::Require),
        "best-effort" => Ok(SandboxMode::BestEffort),
        _ => Err(format!("{text:?}: expected `require` or `best-effort`")),
    }
}

/// Parses a count of at least one (`pids`, `nofile`).
pub fn parse_count(text: &str) -> Result<u64, String> {
    text.trim()
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{text:?} is not a count like 64"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        for bad in [
            "0s",
            "1d",
            "soon",
            "",
            "99999999999999999999h",
            "18446744073709551615h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn sizes_cpus_modes_counts() {
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("0").is_err());
        assert!(parse_size("5X").is_err());
        assert!(parse_size("99999999999T").is_err());
        assert_eq!(parse_cpus("0.2"), Ok(200));
        assert_eq!(parse_cpus("2"), Ok(2000));
        assert!(parse_cpus("0").is_err());
        assert!(parse_cpus("-1").is_err());
        assert_eq!(parse_mode("best-effort"), Ok(SandboxMode::BestEffort));
        assert!(parse_mode("lax").is_err());
        assert_eq!(parse_count("64"), Ok(64));
        assert!(parse_count("0").is_err());
    }

    proptest::proptest! {
        /// No text makes a parser panic; whatever parses is in range.
        #[test]
        fn no_text_panics(text in "\\PC{0,24}") {
            let _ = parse_duration(&text);
            if let Ok(n) = parse_size(&text) {
                proptest::prop_assert!(n > 0);
            }
            if let Ok(c) = parse_cpus(&text) {
                proptest::prop_assert!((1..=4_096_000).contains(&c));
            }
            let _ = parse_count(&text);
        }

        /// A number with a unit is exactly that many units, or refused when it does not fit:
        /// never a wrapped value.
        #[test]
        fn durations_and_sizes_never_wrap(n in proptest::num::u64::ANY, unit in 0usize..4) {
            let (suffix, scale) = [("ms", 1u64), ("s", 1_000), ("m", 60_000), ("h", 3_600_000)][unit];
            match (parse_duration(&format!("{n}{suffix}")), n.checked_mul(scale)) {
                (Ok(d), Some(ms)) => proptest::prop_assert_eq!(d, Duration::from_millis(ms)),
                (Err(_), None) => {}
                (Err(_), Some(0)) => {}
                (got, want) => proptest::prop_assert!(false, "{n}{suffix}: {got:?} vs {want:?}"),
            }
            let (suffix, shift) = [("", 0u32), ("K", 10), ("M", 20), ("G", 30)][unit];
            match (parse_size(&format!("{n}{suffix}")), n.checked_mul(1 << shift)) {
                (Ok(v), Some(want)) => proptest::prop_assert_eq!(v, want),
                (Err(_), None | Some(0)) => {}
                (got, want) => proptest::prop_assert!(false, "{n}{suffix}: {got:?} vs {want:?}"),
            }
        }
    }
}
