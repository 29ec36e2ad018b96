//! Host ranges as Ansible writes them: `web[01:20]` (zero padding kept), `db[a:f]`,
//! `node[0:10:2]` (a step), `mail[:5]` (from 0), several in one name
//! (`r[1:2]-n[a:b]`).

/// The widest one range may be (`[0:10000]`: 10,001 names), and the most names one pattern
/// may expand to beyond that one range.
pub const MAX_PER_NAME: usize = 10_000;

/// Every name `pattern` stands for, in order.
pub fn expand(pattern: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    expand_into(pattern, &mut out)?;
    Ok(out)
}

fn expand_into(pattern: &str, out: &mut Vec<String>) -> Result<(), String> {
    let (Some(open), Some(close)) = (pattern.find('['), pattern.find(']')) else {
        out.push(pattern.to_owned());
        return Ok(());
    };
    if close < open {
        out.push(pattern.to_owned());
        return Ok(());
    }
    let (head, range, tail) = (
        &pattern[..open],
        &pattern[open + 1..close],
        &pattern[close + 1..],
    );
    let bad = |why: &str| format!("host range [{range}] in {pattern:?}: {why}");
    let bounds: Vec<&str> = range.split(':').collect();
    let (beg, end, step) = match bounds[..] {
        [b, e] => (b, e, "1"),
        [b, e, s] => (b, e, s),
        _ => return Err(bad("expected begin:end or begin:end:step")),
    };
    let beg = if beg.is_empty() { "0" } else { beg };
    if end.is_empty() {
        return Err(bad("no end"));
    }
    let step: usize = step
        .parse()
        .ok()
        .filter(|s| *s > 0)
        .ok_or_else(|| bad("the step must be a positive number"))?;
    let letters = |s: &str| s.len() == 1 && s.as_bytes()[0].is_ascii_alphabetic();
    let items: Vec<String> = if letters(beg) && letters(end) {
        // Ansible's order: a-z then A-Z.
        const ABC: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
        let (b, e) = (ABC.find(beg).unwrap_or(0), ABC.find(end).unwrap_or(0));
        if b > e {
            return Err(bad("begin must come before end"));
        }
        ABC[b..=e].chars().step_by(step).map(String::from).collect()
    } else {
        let width = if beg.len() > 1 && beg.starts_with('0') {
            if beg.len() != end.len() {
                return Err(bad("a zero-padded begin needs an end of the same width"));
            }
            beg.len()
        } else {
            0
        };
        let num = |s: &str| {
            (s.len() <= 18)
                .then(|| s.parse::<u64>().ok())
                .flatten()
                .ok_or_else(|| bad(&format!("{s:?} is not a number or a letter")))
        };
        let (b, e) = (num(beg)?, num(end)?);
        if e < b {
            return Err(bad("end must be at or after begin"));
        }
        if (e - b) / step as u64 > MAX_PER_NAME as u64 {
            return Err(bad(&format!("more than {MAX_PER_NAME} apart")));
        }
        (b..=e)
            .step_by(step)
            .map(|n| format!("{n:0width$}"))
            .collect()
    };
    for item in items {
        expand_into(&format!("{head}{item}{tail}"), out)?;
        if out.len() > MAX_PER_NAME + 1 {
            return Err(bad(&format!("more than {} names", MAX_PER_NAME + 1)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_as_ansible_expands_them() {
        assert_eq!(
            expand("web[01:03].x").unwrap(),
            ["web01.x", "web02.x", "web03.x"]
        );
        assert_eq!(expand("mail[:2]").unwrap(), ["mail0", "mail1", "mail2"]);
        assert_eq!(expand("n[0:6:3]").unwrap(), ["n0", "n3", "n6"]);
        assert_eq!(expand("db[a:c]").unwrap(), ["dba", "dbb", "dbc"]);
        assert_eq!(
            expand("r[1:2]-[a:b]").unwrap(),
            ["r1-a", "r1-b", "r2-a", "r2-b"]
        );
        assert_eq!(expand("plain").unwrap(), ["plain"]);
        assert!(expand("w[01:3]").is_err());
        assert!(expand("w[5:1]").is_err());
        assert!(expand("w[1:]").is_err());
        assert!(expand("w[0:99999]").is_err());
        assert!(expand("w[0:99][0:999]").is_err());
    }
}
