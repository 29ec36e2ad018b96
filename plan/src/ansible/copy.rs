//! `copy`: `content`; a file of the role's (or playbook's) `files/`; a folder of it, file by
//! file; or a file picked when the task runs, when `src` is a template
//! (`src: "{{ item }}"`).

use std::path::Path;

use super::args::{Args, Step};
use super::{Cx, refuse};
use crate::Located;
use crate::data::Data;
use crate::source::{Src, SrcValue};

pub(crate) fn copy(a: &mut Args<'_>, line: usize, cx: &Cx<'_>) -> Result<Vec<Step>, Located> {
    a.ignore(&["follow", "local_follow", "unsafe_writes"]);
    if let Some(Ok(true)) | Some(Err(_)) = a.flag(&["remote_src"]) {
        cx.unsupported(
            line,
            "copy with remote_src (a copy on the host); use command cp",
        )?;
    }
    match a.flag(&["force"]) {
        None | Some(Ok(true)) => {}
        _ => cx.unsupported(line, "copy with force: no; use stat and when")?,
    }
    let (dest, dest_line) = a
        .text(&["dest"])?
        .ok_or_else(|| refuse(line, "copy needs dest"))?;
    let step = Step::op("file.write", line);
    if let Some(content) = a.take(&["content"]) {
        if content.as_str().is_none() {
            return Err(refuse(content.line, "copy: content must be text"));
        }
        let step = step
            .put("path", Src::text(dest_line, dest))
            .key("content", content);
        return Ok(vec![a.attrs(step, true)?]);
    }
    let (src, at) = a
        .text(&["src"])?
        .ok_or_else(|| refuse(line, "copy needs src or content"))?;
    if crate::data::is_template(&src) {
        return picked(a, (&src, at), (&dest, dest_line), cx);
    }
    let Some(found) = cx.find_file("files", &src) else {
        return Err(refuse(
            at,
            format!(
                "copy: no file {src:?} in files/ or beside {}",
                cx.file.display()
            ),
        ));
    };
    if cx.base.join(&found).is_dir() {
        return tree(a, (&src, &found), (&dest, dest_line), line, cx);
    }
    let dest = if dest.ends_with('/') {
        let base = src.rsplit('/').next().unwrap_or(&src);
        format!("{dest}{base}")
    } else {
        dest
    };
    let step = step
        .put("path", Src::text(dest_line, dest))
        .key("content_file", Src::text(at, found));
    Ok(vec![a.attrs(step, true)?])
}

/// A file picked when the task runs by the template `src`: every text file of the role's
/// and the playbook's `files/` is read with the plan, and the one `src` names is written as
/// it is.
fn picked(
    a: &mut Args<'_>,
    (src, at): (&str, usize),
    (dest, dest_line): (&str, usize),
    cx: &Cx<'_>,
) -> Result<Vec<Step>, Located> {
    let mut dirs = Vec::new();
    for d in [cx.base, cx.gathered.root.as_path()] {
        let d = d.canonicalize().unwrap_or_else(|_| d.to_owned());
        if !dirs.contains(&d) {
            cx.gathered
                .files_under(&d.join("files"))
                .map_err(|e| refuse(at, e))?;
            dirs.push(d);
        }
    }
    let dirs: Vec<String> = dirs
        .iter()
        .map(|d| format!("{:?}", d.display().to_string()))
        .collect();
    let pick = format!("{{% set __wisp_src %}}{src}{{% endset %}}");
    let content = format!(
        "{pick}{{{{ __wisp_file(__wisp_src, [{}]) }}}}",
        dirs.join(", ")
    );
    let dest = if dest.ends_with('/') {
        format!("{dest}{pick}{{{{ __wisp_src | basename }}}}")
    } else {
        dest.to_owned()
    };
    let step = Step::op("file.write", at)
        .put("path", Src::text(dest_line, dest))
        .key("content", Src::text(at, content));
    Ok(vec![a.attrs(step, true)?])
}

/// A folder of `files/`, file by file: `src/` puts what is in it into `dest`, `src` puts the
/// folder itself there. Folders are made with `directory_mode` (or the host's default).
fn tree(
    a: &mut Args<'_>,
    (src, found): (&str, &str),
    (dest, dest_line): (&str, usize),
    line: usize,
    cx: &Cx<'_>,
) -> Result<Vec<Step>, Located> {
    let root = cx.base.join(found);
    let mut into = dest.trim_end_matches('/').to_owned();
    if !src.ends_with('/') {
        let name = src.trim_end_matches('/').rsplit('/').next().unwrap_or(src);
        into = format!("{into}/{name}");
    }
    let dir_mode = a.take(&["directory_mode"]);
    let owner: Vec<(String, Src)> = ["owner", "group"]
        .iter()
        .filter_map(|k| a.take(&[k]).map(|v| (k.to_string(), v)))
        .collect();
    let file_attrs = a.attrs(Step::op("", line), true)?.args;
    let mut entries = Vec::new();
    walk(&root, &root, &mut entries).map_err(|e| refuse(line, format!("copy: {e}")))?;
    entries.sort();
    let yes = Src {
        line,
        value: SrcValue::Scalar(Data::Bool(true)),
    };
    let mut steps = vec![dir_step(&into, dest_line, &yes, &dir_mode, &owner)];
    for (rel, is_dir) in entries {
        let path = format!("{into}/{rel}");
        if is_dir {
            steps.push(dir_step(&path, dest_line, &yes, &dir_mode, &owner));
            continue;
        }
        let file = Path::new(found).join(&rel).display().to_string();
        let mut s = Step::op("file.write", line)
            .put("path", Src::text(dest_line, path))
            .key("content_file", Src::text(line, file));
        s.args.extend(file_attrs.iter().cloned());
        s.args.extend(owner.iter().cloned());
        s.name = Some(format!("copy {rel} (line {line})"));
        steps.push(s);
    }
    Ok(steps)
}

fn dir_step(
    path: &str,
    line: usize,
    yes: &Src,
    mode: &Option<Src>,
    owner: &[(String, Src)],
) -> Step {
    let mut s = Step::op("dir.ensure", line)
        .put("path", Src::text(line, path))
        .put("make_parents", yes.clone());
    if let Some(m) = mode {
        s = s.put(
            "mode",
            super::args::mode(m, "copy").unwrap_or_else(|_| m.clone()),
        );
    }
    s.args.extend(owner.iter().cloned());
    s.name = Some(format!("copy: folder {path} (line {line})"));
    s
}

/// Every file and folder under `dir`, relative to `root`, folders before what is in them.
fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, bool)>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let path = e.path();
        let rel = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .display()
            .to_string();
        if e.file_type()?.is_dir() {
            out.push((rel, true));
            walk(root, &path, out)?;
        } else {
            out.push((rel, false));
        }
    }
    Ok(())
}

/// `with_fileglob`: the files (not folders) the patterns match, found now in the role's (or
/// playbook's) `files/` or beside it, as absolute paths in name order; `*` and `?` match in
/// the last part of a pattern.
pub(crate) fn fileglob(v: &Src, cx: &Cx<'_>) -> Result<Src, Located> {
    let patterns: Vec<&Src> = match (v.as_str(), v.as_list()) {
        (Some(_), _) => vec![v],
        (_, Some(l)) => l.iter().collect(),
        _ => {
            return Err(refuse(
                v.line,
                "with_fileglob: give a pattern or a list of them",
            ));
        }
    };
    let mut found = Vec::new();
    for p in patterns {
        let Some(pattern) = p.as_str() else {
            return Err(refuse(p.line, "with_fileglob: a pattern must be text"));
        };
        if crate::data::is_template(pattern) {
            cx.unsupported(p.line, "with_fileglob with a template in its pattern")?;
            continue;
        }
        let (dir, name) = pattern.rsplit_once('/').unwrap_or(("", pattern));
        let dirs = if Path::new(dir).is_absolute() {
            vec![Path::new(dir).to_owned()]
        } else {
            vec![cx.base.join("files").join(dir), cx.base.join(dir)]
        };
        let Some(dir) = dirs.into_iter().find(|d| d.is_dir()) else {
            continue;
        };
        let dir = dir.canonicalize().unwrap_or(dir);
        let mut here: Vec<String> = std::fs::read_dir(&dir)
            .map_err(|e| refuse(p.line, format!("with_fileglob: {}: {e}", dir.display())))?
            .flatten()
            .filter(|e| e.path().is_file())
            .filter(|e| glob_match(name.as_bytes(), e.file_name().as_encoded_bytes()))
            .map(|e| e.path().display().to_string())
            .collect();
        here.sort();
        found.extend(here);
    }
    cx.gathered
        .files_under(&cx.base.join("files"))
        .map_err(|e| refuse(v.line, e))?;
    Ok(Src::list(
        v.line,
        found.into_iter().map(|f| Src::text(v.line, f)).collect(),
    ))
}

/// Whether `name` matches `pattern` (`*` any run, `?` one byte; a leading `.` only by a `.`).
fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    if name.first() == Some(&b'.') && pattern.first() != Some(&b'.') {
        return false;
    }
    fn go(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    go(pattern, name)
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn a_glob_matches_as_a_shell_does() {
        assert!(glob_match(b"*.conf", b"a.conf"));
        assert!(glob_match(b"a?c*", b"abcdef"));
        assert!(!glob_match(b"*.conf", b"a.conf.bak"));
        assert!(!glob_match(b"*", b".hidden"));
        assert!(glob_match(b".*", b".hidden"));
    }
}
