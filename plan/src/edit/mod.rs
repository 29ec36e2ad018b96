//! Edits of a file on a host that the controller computes: `lineinfile`, `blockinfile` and
//! `replace`, with Ansible's meaning. The controller reads the file (`file.stat` with `read`),
//! computes the new content here, and writes it with `file.write` only if the file is still
//! the one it read (`if_stamp`): a change made on the host in between is never overwritten.

use crate::data::{Data, DataMap};

pub mod account;
mod block;
pub mod cron;
mod lines;
pub use block::{BlockArgs, blockinfile};
pub use lines::{LineArgs, lineinfile};

/// The edit ops.
pub const EDIT_OPS: &[&str] = &["lineinfile", "blockinfile", "replace"];

/// The largest file an edit reads.
pub const MAX_EDIT: u64 = 16 << 20;

/// One edit, its args read.
#[derive(Debug)]
pub struct Edit {
    /// The file.
    pub path: String,
    /// Make the file when it is not there (`lineinfile`, `blockinfile`).
    pub create: bool,
    /// The args that go to `file.write` as they are: `mode`, `owner`, `group`, `backup`.
    pub write_args: DataMap,
    what: What,
}

#[derive(Debug)]
enum What {
    Line(LineArgs),
    Block(BlockArgs),
    Replace {
        regexp: String,
        replace: String,
        after: Option<String>,
        before: Option<String>,
    },
}

/// The args each edit takes (besides `path`, `mode`, `owner`, `group`, `backup`).
fn own_args(op: &str) -> &'static [&'static str] {
    match op {
        "lineinfile" => &[
            "line",
            "regexp",
            "search_string",
            "insertafter",
            "insertbefore",
            "backrefs",
            "firstmatch",
            "state",
            "create",
        ],
        "blockinfile" => &[
            "block",
            "marker",
            "marker_begin",
            "marker_end",
            "insertafter",
            "insertbefore",
            "state",
            "create",
            "append_newline",
            "prepend_newline",
        ],
        _ => &["regexp", "replace", "after", "before"],
    }
}

impl Edit {
    /// Reads `op`'s rendered args; an unknown arg, or one of the wrong kind, is an error.
    pub fn parse(op: &str, args: &DataMap) -> Result<Edit, String> {
        let common = ["path", "mode", "owner", "group", "backup"];
        if let Some(k) = args
            .keys()
            .find(|k| !common.contains(&k.as_str()) && !own_args(op).contains(&k.as_str()))
        {
            return Err(format!("{op}: no arg {k:?}"));
        }
        let text = |k: &str| -> Result<Option<String>, String> {
            match args.get(k) {
                None | Some(Data::Null) => Ok(None),
                Some(Data::Str(s)) => Ok(Some(s.clone())),
                Some(Data::Int(i)) => Ok(Some(i.to_string())),
                Some(other) => Err(format!("{op}: {k} must be text, not {other:?}")),
            }
        };
        let flag = |k: &str| match args.get(k) {
            Some(Data::Bool(b)) => Ok(*b),
            None | Some(Data::Null) => Ok(false),
            Some(other) => Err(format!("{op}: {k} must be true or false, not {other:?}")),
        };
        let path = text("path")?.ok_or_else(|| format!("{op} needs path"))?;
        let present = match text("state")?.as_deref() {
            None | Some("present") => true,
            Some("absent") => false,
            Some(s) => return Err(format!("{op}: state {s:?} (present or absent)")),
        };
        let what = match op {
            "lineinfile" => {
                let a = LineArgs {
                    line: text("line")?,
                    regexp: text("regexp")?,
                    search_string: text("search_string")?,
                    insertafter: text("insertafter")?,
                    insertbefore: text("insertbefore")?,
                    backrefs: flag("backrefs")?,
                    firstmatch: flag("firstmatch")?,
                    present,
                };
                if present && a.line.is_none() {
                    return Err("lineinfile: state present needs line".into());
                }
                if !present && a.line.is_none() && a.regexp.is_none() && a.search_string.is_none() {
                    return Err(
                        "lineinfile: state absent needs line, regexp or search_string".into(),
                    );
                }
                What::Line(a)
            }
            "blockinfile" => What::Block(BlockArgs {
                block: text("block")?.unwrap_or_default(),
                marker: text("marker")?.unwrap_or_else(|| "# {mark} ANSIBLE MANAGED BLOCK".into()),
                marker_begin: text("marker_begin")?.unwrap_or_else(|| "BEGIN".into()),
                marker_end: text("marker_end")?.unwrap_or_else(|| "END".into()),
                insertafter: text("insertafter")?,
                insertbefore: text("insertbefore")?,
                present,
                append_newline: flag("append_newline")?,
                prepend_newline: flag("prepend_newline")?,
            }),
            "replace" => What::Replace {
                regexp: text("regexp")?.ok_or("replace needs regexp")?,
                replace: text("replace")?.unwrap_or_default(),
                after: text("after")?,
                before: text("before")?,
            },
            other => return Err(format!("{other} is not an edit")),
        };
        let write_args = ["mode", "owner", "group", "backup"]
            .iter()
            .filter_map(|k| Some(((*k).to_owned(), args.get(*k)?.clone())))
            .collect();
        Ok(Edit {
            path,
            create: flag("create")?,
            write_args,
            what,
        })
    }

    /// Whether the edit only removes (then a missing file is left missing).
    pub fn removes(&self) -> bool {
        match &self.what {
            What::Line(a) => !a.present,
            What::Block(b) => !b.present,
            What::Replace { .. } => false,
        }
    }

    /// The new content from the file's (`None`: there is no file), and Ansible's `msg`; an
    /// error when the file must exist and does not, as Ansible's are worded.
    pub fn apply(&self, content: Option<&[u8]>) -> Result<(Vec<u8>, String), String> {
        if content.is_none() && !self.create && !self.removes() {
            let what = if matches!(self.what, What::Line(_)) {
                "Destination"
            } else {
                "Path"
            };
            return Err(format!("{what} {} does not exist !", self.path));
        }
        match &self.what {
            What::Line(a) => lineinfile(content, a),
            What::Block(b) => blockinfile(content, b),
            What::Replace {
                regexp,
                replace,
                after,
                before,
            } => replace_in(
                content.unwrap_or_default(),
                regexp,
                replace,
                after.as_deref(),
                before.as_deref(),
            ),
        }
    }
}

/// `replace`: every match of `regexp` (multi-line) in the file, or in the part after `after`
/// and before `before`, replaced by `replace` (Python's `\1`, `\g<name>`).
fn replace_in(
    content: &[u8],
    regexp: &str,
    replace: &str,
    after: Option<&str>,
    before: Option<&str>,
) -> Result<(Vec<u8>, String), String> {
    let section = match (after, before) {
        (Some(a), Some(b)) => Some(format!("(?s){a}(?P<subsection>.*?){b}")),
        (Some(a), None) => Some(format!("(?s){a}(?P<subsection>.*)")),
        (None, Some(b)) => Some(format!("(?s)(?P<subsection>.*){b}")),
        (None, None) => None,
    };
    let (start, end) = match &section {
        None => (0, content.len()),
        Some(p) => {
            let re = lines::compile("after/before", p)?;
            match re.captures(content).and_then(|c| c.name("subsection")) {
                Some(m) => (m.start(), m.end()),
                None => return Ok((content.to_vec(), String::new())),
            }
        }
    };
    let re = lines::compile("regexp", &format!("(?m){regexp}"))?;
    let part = &content[start..end];
    let mut out = Vec::new();
    let (mut last, mut count) = (0, 0);
    for caps in re.captures_iter(part) {
        let Some(m) = caps.get(0) else { continue };
        out.extend_from_slice(&part[last..m.start()]);
        out.extend(lines::expand(&caps, replace.as_bytes()));
        last = m.end();
        count += 1;
    }
    out.extend_from_slice(&part[last..]);
    if count == 0 || out == part {
        return Ok((content.to_vec(), String::new()));
    }
    let mut whole = content[..start].to_vec();
    whole.extend(out);
    whole.extend_from_slice(&content[end..]);
    Ok((whole, format!("{count} replacements made")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_works_on_the_section_between_after_and_before() {
        let text = b"a=1\n[s]\na=1\n[t]\na=1\n";
        let (out, msg) = replace_in(
            text,
            r"^a=(\d)$",
            r"a=\g<1>0",
            Some(r"\[s\]"),
            Some(r"\[t\]"),
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "a=1\n[s]\na=10\n[t]\na=1\n"
        );
        assert_eq!(msg, "1 replacements made");
        assert_eq!(replace_in(text, "^z", "y", None, None).unwrap().1, "");
    }

    #[test]
    fn edits_refuse_unknown_args_and_missing_files_as_ansible_words_them() {
        let mut args = DataMap::new();
        args.insert("path".into(), Data::Str("/etc/x".into()));
        args.insert("line".into(), Data::Str("a".into()));
        let e = Edit::parse("lineinfile", &args).unwrap();
        assert_eq!(
            e.apply(None).unwrap_err(),
            "Destination /etc/x does not exist !"
        );
        args.insert("validate".into(), Data::Str("x".into()));
        assert!(
            Edit::parse("lineinfile", &args)
                .unwrap_err()
                .contains("validate")
        );
    }
}
