//! Unified diffs of a file's old and new text, for `wisp apply --diff`.

/// A unified diff of two texts, three lines of context, `--- a` / `+++ b` headers.
pub fn unified(old: &str, new: &str, old_name: &str, new_name: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    // Longest common subsequence by dynamic programming; large files fall back to "all
    // removed, all added", which is still a correct diff.
    let ops: Vec<(char, &str)> = if a.len().saturating_mul(b.len()) > 4_000_000 {
        a.iter()
            .map(|l| ('-', *l))
            .chain(b.iter().map(|l| ('+', *l)))
            .collect()
    } else {
        let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
        for i in (0..a.len()).rev() {
            for j in (0..b.len()).rev() {
                lcs[i][j] = if a[i] == b[j] {
                    lcs[i + 1][j + 1] + 1
                } else {
                    lcs[i + 1][j].max(lcs[i][j + 1])
                };
            }
        }
        let (mut i, mut j, mut ops) = (0, 0, Vec::new());
        while i < a.len() || j < b.len() {
            if i < a.len() && j < b.len() && a[i] == b[j] {
                ops.push((' ', a[i]));
                i += 1;
                j += 1;
            } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
                // Removals before additions, as diff(1) prints them.
                ops.push(('-', a[i]));
                i += 1;
            } else {
                ops.push(('+', b[j]));
                j += 1;
            }
        }
        ops
    };
    if ops.iter().all(|(k, _)| *k == ' ') {
        return String::new();
    }
    let mut out = format!("--- {old_name}\n+++ {new_name}\n");
    const CONTEXT: usize = 3;
    let changed: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, (k, _))| *k != ' ')
        .map(|(i, _)| i)
        .collect();
    let mut start = 0;
    while start < changed.len() {
        // A hunk: changes closer than twice the context join.
        let mut end = start;
        while end + 1 < changed.len() && changed[end + 1] - changed[end] <= 2 * CONTEXT {
            end += 1;
        }
        let from = changed[start].saturating_sub(CONTEXT);
        let to = (changed[end] + CONTEXT + 1).min(ops.len());
        let line_a = ops[..from].iter().filter(|(k, _)| *k != '+').count();
        let line_b = ops[..from].iter().filter(|(k, _)| *k != '-').count();
        let len_a = ops[from..to].iter().filter(|(k, _)| *k != '+').count();
        let len_b = ops[from..to].iter().filter(|(k, _)| *k != '-').count();
        let pos = |line: usize, len: usize| if len == 0 { line } else { line + 1 };
        out.push_str(&format!(
            "@@ -{},{len_a} +{},{len_b} @@\n",
            pos(line_a, len_a),
            pos(line_b, len_b)
        ));
        for (k, l) in &ops[from..to] {
            out.push(*k);
            out.push_str(l);
            out.push('\n');
        }
        start = end + 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unified_diff_has_hunks_with_context() {
        let old = "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n";
        let new = "a\nb\nc\nD\ne\nf\ng\nh\ni\nj\nk\n";
        assert_eq!(
            unified(old, new, "x", "x"),
            "--- x\n+++ x\n@@ -1,7 +1,7 @@\n a\n b\n c\n-d\n+D\n e\n f\n g\n@@ -8,3 +8,4 @@\n h\n i\n j\n+k\n"
        );
        assert_eq!(unified("same\n", "same\n", "x", "x"), "");
        assert_eq!(
            unified("", "new\n", "/dev/null", "f"),
            "--- /dev/null\n+++ f\n@@ -0,0 +1,1 @@\n+new\n"
        );
    }
}
