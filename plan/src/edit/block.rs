//! `blockinfile` as a pure edit of a file's bytes, as Ansible's module makes it: a block
//! between two marker lines, replaced where the markers are, else inserted after or before a
//! pattern's last match (or at the end, or the start).

use super::lines::{body, compile};

/// What `blockinfile` is asked.
#[derive(Debug)]
pub struct BlockArgs {
    pub block: String,
    /// With `{mark}` where `marker_begin`/`marker_end` go.
    pub marker: String,
    pub marker_begin: String,
    pub marker_end: String,
    pub insertafter: Option<String>,
    pub insertbefore: Option<String>,
    pub present: bool,
    pub append_newline: bool,
    pub prepend_newline: bool,
}

/// Python's `bytes.splitlines(True)`: lines ending at `\n`, `\r\n` or `\r`.
fn splitlines(content: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < content.len() {
        match content[i] {
            b'\n' => {
                out.push(content[start..=i].to_vec());
                start = i + 1;
            }
            b'\r' => {
                let end = if content.get(i + 1) == Some(&b'\n') {
                    i + 1
                } else {
                    i
                };
                out.push(content[start..=end].to_vec());
                i = end;
                start = end + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if start < content.len() {
        out.push(content[start..].to_vec());
    }
    out
}

/// `blockinfile` on `content` (`None`: no file). Returns the new content and Ansible's `msg`.
pub fn blockinfile(content: Option<&[u8]>, a: &BlockArgs) -> Result<(Vec<u8>, String), String> {
    let original = content;
    let mut lines = splitlines(content.unwrap_or_default());
    let (mut after, before) = (a.insertafter.as_deref(), a.insertbefore.as_deref());
    if after.is_none() && before.is_none() {
        after = Some("EOF");
    }
    let insertre = match (after, before) {
        (Some(p), _) if p != "EOF" => Some((p, compile("insertafter", p)?)),
        (None, Some(p)) if p != "BOF" => Some((p, compile("insertbefore", p)?)),
        _ => None,
    };
    let mark = |m: &str| format!("{}\n", a.marker.replace("{mark}", m)).into_bytes();
    let (marker0, marker1) = (mark(&a.marker_begin), mark(&a.marker_end));
    let mut blocklines = Vec::new();
    if a.present && !a.block.is_empty() {
        let mut block = a.block.clone().into_bytes();
        if !block.ends_with(b"\n") {
            block.push(b'\n');
        }
        blocklines.push(marker0.clone());
        blocklines.extend(splitlines(&block));
        blocklines.push(marker1.clone());
    }
    let (mut n0, mut n1) = (None, None);
    for (i, l) in lines.iter().enumerate() {
        if *l == marker0 {
            n0 = Some(i);
        }
        if *l == marker1 {
            n1 = Some(i);
        }
    }
    let mut at = match (n0, n1) {
        (Some(b), Some(e)) if b < e => {
            lines.drain(b..=e);
            b
        }
        (Some(b), Some(e)) => {
            lines.drain(e..=b);
            e
        }
        _ => match &insertre {
            Some((pattern, re)) => {
                let mut found = None;
                if pattern.starts_with("(?m)") {
                    let whole = original.unwrap_or_default();
                    if let Some(m) = re.find(whole) {
                        let upto = if after.is_some() { m.end() } else { m.start() };
                        found = Some(whole[..upto].iter().filter(|b| **b == b'\n').count());
                    }
                } else {
                    for (i, l) in lines.iter().enumerate() {
                        if re.is_match(body(l)) {
                            found = Some(i);
                        }
                    }
                }
                match found {
                    None => lines.len(),
                    Some(i) if after.is_some() => i + 1,
                    Some(i) => i,
                }
            }
            None if before.is_some() => 0,
            None => lines.len(),
        },
    };
    if at > 0 && !lines[at - 1].ends_with(b"\n") {
        lines[at - 1].push(b'\n');
    }
    if a.prepend_newline && a.present && at != 0 && lines[at - 1] != b"\n" {
        lines.insert(at, b"\n".to_vec());
        at += 1;
    }
    let count = blocklines.len();
    lines.splice(at..at, blocklines);
    if a.append_newline && a.present {
        let next = at + count;
        if next < lines.len() && lines[next] != b"\n" {
            lines.insert(next, b"\n".to_vec());
        }
    }
    let result = lines.concat();
    let msg = if original == Some(result.as_slice())
        || (original.is_none() && result.is_empty() && count == 0)
    {
        ""
    } else if original.is_none() {
        "File created"
    } else if count == 0 {
        "Block removed"
    } else {
        "Block inserted"
    };
    Ok((result, msg.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_is_inserted_replaced_and_removed_between_its_markers() {
        let a = BlockArgs {
            block: "a\nb".into(),
            marker: "# {mark} ANSIBLE MANAGED BLOCK".into(),
            marker_begin: "BEGIN".into(),
            marker_end: "END".into(),
            insertafter: None,
            insertbefore: None,
            present: true,
            append_newline: false,
            prepend_newline: false,
        };
        let (once, msg) = blockinfile(Some(b"x"), &a).unwrap();
        let text = String::from_utf8(once.clone()).unwrap();
        assert_eq!(
            text,
            "x\n# BEGIN ANSIBLE MANAGED BLOCK\na\nb\n# END ANSIBLE MANAGED BLOCK\n"
        );
        assert_eq!(msg, "Block inserted");
        assert_eq!(blockinfile(Some(&once), &a).unwrap().1, "");
        let gone = BlockArgs {
            present: false,
            ..a
        };
        assert_eq!(blockinfile(Some(&once), &gone).unwrap().0, b"x\n");
    }
}
