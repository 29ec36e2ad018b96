//! Reading config files into blocks: `Host` and `Match` conditions, `Include` followed
//! (globs; relative names under `~/.ssh`), every directive checked against what wisp
//! honours ([`super::directives`]), with its file and line.

use std::path::{Path, PathBuf};

use super::directives::{Kind, kind};
use super::{Block, Cond, ConfigError, Criterion, Opt};
use crate::ssh::known_hosts::glob;

/// Includes nest at most this deep (OpenSSH's limit is 16).
const MAX_DEPTH: usize = 16;

/// Appends `path`'s blocks to `blocks`; `within` is the condition the file is included
/// under (a file read first: applies to every host).
pub(super) fn file(
    path: &Path,
    within: &Cond,
    depth: usize,
    blocks: &mut Vec<Block>,
) -> Result<(), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_owned(),
        line: 0,
        message: format!("cannot be read: {e}"),
    })?;
    text_into(&text, path, within, depth, blocks)
}

pub(super) fn text_into(
    text: &str,
    path: &Path,
    within: &Cond,
    depth: usize,
    blocks: &mut Vec<Block>,
) -> Result<(), ConfigError> {
    blocks.push(Block {
        cond: within.clone(),
        options: Vec::new(),
    });
    for (i, raw) in text.lines().enumerate() {
        let at = |message: String| ConfigError {
            file: path.to_owned(),
            line: i + 1,
            message,
        };
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = split(line);
        match key.as_str() {
            "host" => blocks.push(Block {
                cond: Cond::Host(words(&value)),
                options: Vec::new(),
            }),
            "match" => blocks.push(Block {
                cond: Cond::Match(criteria(&value).map_err(at)?),
                options: Vec::new(),
            }),
            "include" => {
                if depth >= MAX_DEPTH {
                    return Err(at(format!("Include nests deeper than {MAX_DEPTH} files")));
                }
                let cond = blocks.last().map_or(Cond::All, |b| b.cond.clone());
                for name in words(&value) {
                    for found in included(&name, path) {
                        file(&found, &cond, depth + 1, blocks)?;
                    }
                }
                // What follows the Include is still the enclosing block's.
                blocks.push(Block {
                    cond,
                    options: Vec::new(),
                });
            }
            _ => match kind(&key, &value) {
                Kind::Honoured => {
                    if let Some(b) = blocks.last_mut() {
                        b.options.push(Opt {
                            key,
                            value: unquote(&value),
                            file: path.to_owned(),
                            line: i + 1,
                        });
                    }
                }
                Kind::NoEffect => {}
                Kind::Refused(why) => {
                    return Err(at(format!("{key} {value}: {why}")));
                }
                Kind::Unknown => {
                    return Err(at(format!(
                        "{key}: not a directive wisp knows; wisp refuses what it cannot honour \
                         rather than skip it (remove it, or move it under a Host wisp does \
                         not reach)"
                    )));
                }
            },
        }
    }
    Ok(())
}

/// `Keyword value`, `Keyword=value` or `Keyword = value`; the keyword in lower case.
fn split(line: &str) -> (String, String) {
    match line.split_once(|c: char| c.is_whitespace() || c == '=') {
        Some((k, v)) => (
            k.to_ascii_lowercase(),
            v.trim_start_matches(|c: char| c.is_whitespace() || c == '=')
                .trim()
                .to_owned(),
        ),
        None => (line.to_ascii_lowercase(), String::new()),
    }
}

fn unquote(v: &str) -> String {
    v.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(v)
        .to_owned()
}

/// Whitespace-separated words, a double-quoted one kept whole.
fn words(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in value.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// `Match` criteria: `all`, `canonical`, `final`, `host`, `originalhost`, `user`,
/// `localuser`, `exec`, each may be negated with `!`.
fn criteria(value: &str) -> Result<Vec<Criterion>, String> {
    let w = words(value);
    let mut out = Vec::new();
    let mut i = 0;
    while i < w.len() {
        let (negated, name) = match w[i].strip_prefix('!') {
            Some(n) => (true, n.to_ascii_lowercase()),
            None => (false, w[i].to_ascii_lowercase()),
        };
        i += 1;
        let mut arg = || {
            let a = w
                .get(i)
                .cloned()
                .ok_or(format!("Match {name}: needs an argument"));
            i += 1;
            a
        };
        let c = match name.as_str() {
            "all" | "canonical" | "final" => Criterion::Always,
            "host" => Criterion::Host(list(&arg()?)),
            "originalhost" => Criterion::OriginalHost(list(&arg()?)),
            "user" => Criterion::User(list(&arg()?)),
            "localuser" => Criterion::LocalUser(list(&arg()?)),
            "exec" => Criterion::Exec(arg()?),
            other => {
                return Err(format!(
                    "Match {other}: a criterion wisp does not evaluate (all, host, originalhost, \
                     user, localuser, exec)"
                ));
            }
        };
        out.push(if negated {
            Criterion::Not(Box::new(c))
        } else {
            c
        });
    }
    Ok(out)
}

fn list(arg: &str) -> Vec<String> {
    arg.split(',').map(str::to_owned).collect()
}

/// The files an `Include` names: `~` is the home, a relative name is under `~/.ssh` (or
/// beside the including file when it is not under the home), and `*`/`?` in the file name
/// match any files there, in name order.
fn included(name: &str, from: &Path) -> Vec<PathBuf> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let path = if let Some(rest) = name.strip_prefix("~/") {
        home.clone().unwrap_or_default().join(rest)
    } else if Path::new(name).is_absolute() {
        PathBuf::from(name)
    } else {
        let ssh_dir = home.map(|h| h.join(".ssh"));
        match ssh_dir.filter(|d| from.starts_with(d)) {
            Some(d) => d.join(name),
            None => from.parent().unwrap_or(Path::new(".")).join(name),
        }
    };
    let file_name = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !file_name.contains(['*', '?']) {
        return if path.is_file() {
            vec![path]
        } else {
            Vec::new()
        };
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.is_file()
                        && p.file_name()
                            .is_some_and(|n| glob(&file_name, &n.to_string_lossy()))
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}
