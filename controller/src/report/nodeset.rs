//! Host lists folded into ranges, as ClusterShell's node sets write them: `web01`, `web02`,
//! `web03`, `web07` become `web[01-03,07]`. Names are folded on their last run of digits,
//! keeping its width; names without digits stay as they are.

use std::collections::BTreeMap;

/// `hosts` folded; the order of the output is sorted by pattern.
pub fn fold_hosts<S: AsRef<str>>(hosts: &[S]) -> String {
    // (prefix, width, suffix) -> numbers; names without digits kept aside.
    let mut patterns: BTreeMap<(String, usize, String), Vec<u64>> = BTreeMap::new();
    let mut plain: Vec<String> = Vec::new();
    for h in hosts {
        let h = h.as_ref();
        match last_number(h) {
            Some((start, end)) => match h[start..end].parse::<u64>() {
                Ok(n) => patterns
                    .entry((h[..start].to_owned(), end - start, h[end..].to_owned()))
                    .or_default()
                    .push(n),
                Err(_) => plain.push(h.to_owned()),
            },
            None => plain.push(h.to_owned()),
        }
    }
    let mut out: Vec<String> = Vec::new();
    for ((prefix, width, suffix), mut numbers) in patterns {
        numbers.sort_unstable();
        numbers.dedup();
        if numbers.len() == 1 {
            out.push(format!("{prefix}{:0width$}{suffix}", numbers[0]));
            continue;
        }
        let mut ranges = Vec::new();
        let mut i = 0;
        while i < numbers.len() {
            let mut j = i;
            while j + 1 < numbers.len() && numbers[j + 1] == numbers[j] + 1 {
                j += 1;
            }
            ranges.push(if i == j {
                format!("{:0width$}", numbers[i])
            } else {
                format!("{:0width$}-{:0width$}", numbers[i], numbers[j])
            });
            i = j + 1;
        }
        out.push(format!("{prefix}[{}]{suffix}", ranges.join(",")));
    }
    plain.sort();
    plain.dedup();
    out.extend(plain);
    out.join(",")
}

/// The byte range of the last run of ASCII digits in `name`.
fn last_number(name: &str) -> Option<(usize, usize)> {
    let bytes = name.as_bytes();
    let end = bytes.iter().rposition(u8::is_ascii_digit)? + 1;
    let start = bytes[..end]
        .iter()
        .rposition(|b| !b.is_ascii_digit())
        .map_or(0, |p| p + 1);
    Some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_like_node_sets() {
        let check = |hosts: &[&str], folded: &str| assert_eq!(fold_hosts(hosts), folded);
        check(&["web01", "web02", "web03", "web07"], "web[01-03,07]");
        check(&["web3", "web1", "web2"], "web[1-3]");
        check(&["db1"], "db1");
        check(&["localhost", "web01", "web02"], "web[01-02],localhost");
        check(&["rack1-node09", "rack1-node10"], "rack1-node[09-10]");
        check(&["a1.example", "a2.example"], "a[1-2].example");
        check(&["web01", "web1"], "web1,web01");
        check(
            &["127.0.0.5:2201", "127.0.0.5:2202"],
            "127.0.0.5:[2201-2202]",
        );
        check(&[], "");
    }
}
