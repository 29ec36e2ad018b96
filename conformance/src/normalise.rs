//! Received frames in the normalised form golden files hold, and the line diff shown when a
//! runner's answers differ from them.

use serde_json::{Value, json};

use super::case::{canonical, to_hex};

/// A frame as received: its JSON and its data section.
pub(crate) type Received = (Value, Vec<u8>);

/// Puts received frames in the normalised form golden files hold (golden/README.md):
/// host-specific values become placeholders, frames are grouped by id (id-less frames last),
/// and each command's output chunks are joined per stream.
pub(crate) fn normalise(frames: &[Received]) -> Vec<String> {
    let mut groups: Vec<(Option<String>, Vec<Received>)> = Vec::new();
    for (v, data) in frames {
        let id = v.get("id").and_then(Value::as_str).map(str::to_owned);
        match groups.iter_mut().find(|(gid, _)| *gid == id) {
            Some((_, g)) => g.push((placeholders(v), data.clone())),
            None => groups.push((id, vec![(placeholders(v), data.clone())])),
        }
    }
    groups.sort_by(|(a, _), (b, _)| (a.is_none(), a).cmp(&(b.is_none(), b)));
    let mut lines = Vec::new();
    for (_, group) in groups {
        let mut outputs: Vec<Received> = Vec::new();
        let mut others = Vec::new();
        for (v, data) in group {
            let kind = v.get("kind").and_then(Value::as_str).map(str::to_owned);
            match kind.as_deref() {
                Some("stdout" | "stderr") if v.get("t") == Some(&json!("event")) => {
                    match outputs
                        .iter_mut()
                        .find(|(o, _)| o.get("kind") == v.get("kind"))
                    {
                        Some((_, joined)) => joined.extend_from_slice(&data),
                        None => outputs.push((v, data)),
                    }
                }
                _ => others.push((v, data)),
            }
        }
        outputs.sort_by_key(|(v, _)| v.get("kind").and_then(Value::as_str).map(str::to_owned));
        lines.extend(
            outputs
                .into_iter()
                .chain(others)
                .map(|(v, data)| recv_line(v, &data)),
        );
    }
    lines
}

fn recv_line(frame: Value, data: &[u8]) -> String {
    let mut line = serde_json::Map::new();
    line.insert("recv".into(), frame);
    if !data.is_empty() {
        match std::str::from_utf8(data) {
            Ok(text) => line.insert("data".into(), json!(text)),
            Err(_) => line.insert("data_hex".into(), json!(to_hex(data))),
        };
    }
    canonical(&Value::Object(line))
}

fn placeholders(frame: &Value) -> Value {
    let mut v = frame.clone();
    let t = v.get("t").and_then(Value::as_str).unwrap_or("").to_owned();
    let Some(map) = v.as_object_mut() else {
        return v;
    };
    let mut set = |key: &str, placeholder: &str| {
        if let Some(x) = map.get_mut(key) {
            *x = json!(placeholder);
        }
    };
    match t.as_str() {
        "ready" => {
            for key in ["runner_version", "arch", "kernel"] {
                set(key, "<string>");
            }
            for key in ["uid", "euid", "pid"] {
                set(key, "<int>");
            }
            // The host's own, and absent on a host without one: not part of the contract.
            map.remove("machine_id");
        }
        "done" => set("duration_ms", "<int>"),
        "error" => set("message", "<text>"),
        _ => {}
    }
    for key in ["caps", "usage", "result", "missing"] {
        if let Some(x) = map.get_mut(key) {
            leaves_to_placeholders(x);
        }
    }
    // The enforcement report's mode and completeness are the contract; what each mechanism
    // read back (paths, ABI, cgroup version) depends on the host.
    if let Some(Value::Object(e)) = map.get_mut("enforcement") {
        let kept: Vec<(String, Value)> = ["mode", "complete"]
            .iter()
            .filter_map(|k| e.get(*k).map(|v| ((*k).to_owned(), v.clone())))
            .collect();
        e.values_mut().for_each(leaves_to_placeholders);
        e.extend(kept);
    }
    v
}

/// Keeps an object's shape (its keys) and replaces every value in it.
fn leaves_to_placeholders(v: &mut Value) {
    match v {
        Value::Object(map) => map.values_mut().for_each(leaves_to_placeholders),
        other => *other = json!("<value>"),
    }
}

/// A line diff of two short lists (longest common subsequence).
pub(crate) fn diff(expected: &[String], actual: &[String]) -> String {
    let (n, m) = (expected.len(), actual.len());
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if expected[i] == actual[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < n || j < m {
        if i < n && j < m && expected[i] == actual[j] {
            out.push_str(&format!("    {}\n", expected[i]));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push_str(&format!("  - {}\n", expected[i]));
            i += 1;
        } else {
            out.push_str(&format!("  + {}\n", actual[j]));
            j += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_joined_per_stream_and_grouped_per_id() {
        let ev = |id: &str, kind: &str| json!({"t": "event", "id": id, "kind": kind});
        let frames = vec![
            (ev("b", "stdout"), b"B".to_vec()),
            (ev("a", "stderr"), b"e".to_vec()),
            (ev("a", "stdout"), b"1".to_vec()),
            (
                json!({"t": "done", "id": "a", "status": "ok", "duration_ms": 5}),
                vec![],
            ),
            (ev("a", "stdout"), b"2".to_vec()),
            (json!({"t": "exit", "reason": "requested"}), vec![]),
        ];
        let lines = normalise(&frames);
        assert_eq!(
            lines,
            [
                r#"{"recv":{"t":"event","id":"a","kind":"stderr"},"data":"e"}"#,
                r#"{"recv":{"t":"event","id":"a","kind":"stdout"},"data":"12"}"#,
                r#"{"recv":{"t":"done","id":"a","status":"ok","duration_ms":"<int>"}}"#,
                r#"{"recv":{"t":"event","id":"b","kind":"stdout"},"data":"B"}"#,
                r#"{"recv":{"t":"exit","reason":"requested"}}"#,
            ]
        );
    }

    #[test]
    fn diff_marks_changed_lines() {
        let e = vec!["a".to_owned(), "b".to_owned(), "c".to_owned()];
        let a = vec!["a".to_owned(), "x".to_owned(), "c".to_owned()];
        assert_eq!(diff(&e, &a), "    a\n  - b\n  + x\n    c\n");
    }
}
