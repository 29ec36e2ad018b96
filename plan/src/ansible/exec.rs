//! `command`, `shell` and `raw`: a command line (split into words for `command`, run by
//! `/bin/sh -c` for the others), its directory, `creates`, `removes` and `stdin`.

use super::args::{Args, Step};
use super::refuse;
use crate::Located;
use crate::source::Src;

pub(crate) fn command(a: &mut Args<'_>, line: usize) -> Result<Vec<Step>, Located> {
    a.ignore(&["warn", "strip_empty_ends", "expand_argument_vars"]);
    let module = a.module;
    let text = match a.free.take() {
        Some(t) => Some((t, line)),
        None => a.text(&["cmd", "_raw_params"])?,
    };
    let mut step = Step::op("exec", line);
    match (text, a.take(&["argv"])) {
        (Some(_), Some(v)) => {
            return Err(refuse(
                v.line,
                format!("{module}: give the command or argv, not both"),
            ));
        }
        (None, Some(argv)) if module == "command" => step = step.put("argv", argv),
        (Some((t, at)), None) => {
            if module == "command" {
                step = step.put("argv", words(at, super::kv::shell_words(&t)));
            } else if let Some((exe, _)) = a.text(&["executable"])? {
                step = step.put("argv", words(at, [exe, "-c".into(), t]));
            } else {
                step = step.put("shell", Src::text(at, t));
            }
        }
        _ => return Err(refuse(line, format!("{module} needs a command"))),
    }
    if let Some(dir) = a.take(&["chdir"]) {
        step = step.put("cwd", dir);
    }
    for k in ["creates", "removes"] {
        if let Some(v) = a.take(&[k]) {
            step = step.key(k, v);
        }
    }
    if let Some(input) = a.take(&["stdin"]) {
        let newline = !matches!(a.flag(&["stdin_add_newline"]), Some(Ok(false)));
        let text = input
            .as_str()
            .ok_or_else(|| refuse(input.line, "stdin must be text"))?;
        let text = if newline {
            format!("{text}\n")
        } else {
            text.to_owned()
        };
        step = step.key("stdin", Src::text(input.line, text));
    } else {
        a.ignore(&["stdin_add_newline"]);
    }
    step.own = vec!["creates", "removes", "stdin"];
    Ok(vec![step])
}

/// Words as a list of texts on `line`.
fn words(line: usize, words: impl IntoIterator<Item = String>) -> Src {
    Src::list(
        line,
        words.into_iter().map(|w| Src::text(line, w)).collect(),
    )
}
