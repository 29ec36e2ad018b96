//! The golden case format (golden/README.md): one JSON object per line, each a step.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// A condition an `await` step waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cond {
    /// The READY frame.
    Ready,
    /// The runner's EXIT frame.
    Exit,
    /// A session-level ERROR (one without an id).
    Error,
    /// The runner closed its stdout.
    Eof,
    /// DONE, or ERROR, for this command id.
    Done(String),
    /// At least one output EVENT for this command id.
    Output(String),
}

impl Cond {
    fn parse(text: &str) -> Result<Self, String> {
        Ok(match text.split_once(':') {
            None if text == "ready" => Cond::Ready,
            None if text == "exit" => Cond::Exit,
            None if text == "error" => Cond::Error,
            None if text == "eof" => Cond::Eof,
            Some(("done", id)) => Cond::Done(id.into()),
            Some(("output", id)) => Cond::Output(id.into()),
            _ => {
                return Err(format!(
                    "unknown await condition {text:?} (ready, exit, error, eof, done:ID, output:ID)"
                ));
            }
        })
    }
}

/// One line of a case.
#[derive(Debug, Clone)]
pub enum Step {
    /// What the case is about (first line).
    About(String),
    /// Bytes to write to the runner's stdin; `line` is the source line, kept for rewriting.
    Send {
        /// The bytes.
        bytes: Vec<u8>,
        /// The line as written.
        line: Value,
    },
    /// Close the runner's stdin.
    CloseStdin,
    /// Read frames until every condition holds; the `Recv` lines after it are the expected frames.
    Await(Vec<Cond>),
    /// An expected frame, normalised, as a canonical line.
    Recv(String),
    /// The runner's expected exit status.
    ExitStatus(i32),
}

/// A parsed case file.
#[derive(Debug, Clone)]
pub struct Case {
    /// File name without `.jsonl`.
    pub name: String,
    /// Where it was read from.
    pub path: PathBuf,
    /// Its steps, in order.
    pub steps: Vec<Step>,
}

/// A case file that does not follow the format.
#[derive(Debug, thiserror::Error)]
#[error("{}:{line}: {message}", path.display())]
pub struct CaseError {
    path: PathBuf,
    line: usize,
    message: String,
}

/// Reads every `*.jsonl` case in `dir`, sorted by name.
pub fn load_dir(dir: &Path) -> Result<Vec<Case>, CaseError> {
    let err = |message: String| CaseError {
        path: dir.to_owned(),
        line: 0,
        message,
    };
    let entries = std::fs::read_dir(dir)
        .map_err(|e| err(format!("cannot read the golden directory: {e}")))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(err("no *.jsonl cases".into()));
    }
    paths.iter().map(|p| load(p)).collect()
}

/// Reads one case file.
pub fn load(path: &Path) -> Result<Case, CaseError> {
    let text = std::fs::read_to_string(path).map_err(|e| CaseError {
        path: path.into(),
        line: 0,
        message: e.to_string(),
    })?;
    let mut steps = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let step = parse_line(line).map_err(|message| CaseError {
            path: path.into(),
            line: i + 1,
            message,
        })?;
        steps.push(step);
    }
    if !matches!(steps.first(), Some(Step::About(_))) {
        return Err(CaseError {
            path: path.into(),
            line: 1,
            message: "a case starts with an {\"about\": ...} line".into(),
        });
    }
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(Case {
        name,
        path: path.into(),
        steps,
    })
}

fn parse_line(line: &str) -> Result<Step, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let obj = value.as_object().ok_or("a step is a JSON object")?;
    let data = || -> Result<Vec<u8>, String> {
        match (obj.get("data"), obj.get("data_hex")) {
            (Some(Value::String(s)), None) => Ok(s.as_bytes().to_vec()),
            (None, Some(Value::String(h))) => from_hex(h),
            (None, None) => Ok(Vec::new()),
            _ => Err("give data as a string in \"data\" or \"data_hex\", not both".into()),
        }
    };
    let frame = |json: &[u8], data: &[u8]| -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        wisp_protocol::frame::encode(json, data, &mut out).map_err(|e| e.to_string())?;
        Ok(out)
    };
    if let Some(about) = obj.get("about") {
        return Ok(Step::About(
            about.as_str().ok_or("about: a string")?.to_owned(),
        ));
    }
    if let Some(msg) = obj.get("send") {
        let json = serde_json::to_vec(msg).map_err(|e| e.to_string())?;
        return Ok(Step::Send {
            bytes: frame(&json, &data()?)?,
            line: value.clone(),
        });
    }
    if let Some(text) = obj.get("send_json") {
        let json = text
            .as_str()
            .ok_or("send_json: the JSON section, as a string")?;
        return Ok(Step::Send {
            bytes: frame(json.as_bytes(), &data()?)?,
            line: value.clone(),
        });
    }
    if let Some(raw) = obj.get("send_raw") {
        let raw = raw.as_str().ok_or("send_raw: a string")?;
        return Ok(Step::Send {
            bytes: raw.as_bytes().to_vec(),
            line: value.clone(),
        });
    }
    if let Some(hex) = obj.get("send_hex") {
        let bytes = from_hex(hex.as_str().ok_or("send_hex: a hex string")?)?;
        return Ok(Step::Send {
            bytes,
            line: value.clone(),
        });
    }
    if let Some(spec) = obj.get("send_oversize") {
        let len = |k: &str| spec.get(k).and_then(Value::as_u64).unwrap_or(0);
        let (json_len, data_len) = (len("json_len"), len("data_len"));
        let (Ok(j), Ok(d)) = (u32::try_from(json_len), u32::try_from(data_len)) else {
            return Err("send_oversize: lengths must fit in 32 bits".into());
        };
        let mut bytes = wisp_protocol::frame::MAGIC.to_vec();
        bytes.extend_from_slice(&j.to_be_bytes());
        bytes.extend_from_slice(&d.to_be_bytes());
        bytes.resize(bytes.len() + j as usize + d as usize, b'x');
        return Ok(Step::Send {
            bytes,
            line: value.clone(),
        });
    }
    if obj.contains_key("close_stdin") {
        return Ok(Step::CloseStdin);
    }
    if let Some(conds) = obj.get("await") {
        let list: Vec<Cond> = match conds {
            Value::String(s) => vec![Cond::parse(s)?],
            Value::Array(items) => items
                .iter()
                .map(|c| {
                    c.as_str()
                        .ok_or_else(|| "await: strings".to_owned())
                        .and_then(Cond::parse)
                })
                .collect::<Result<_, _>>()?,
            _ => return Err("await: a condition or a list of them".into()),
        };
        return Ok(Step::Await(list));
    }
    if obj.contains_key("recv") {
        return Ok(Step::Recv(canonical(&value)));
    }
    if let Some(code) = obj.get("exit_status") {
        let code = code
            .as_i64()
            .and_then(|c| i32::try_from(c).ok())
            .ok_or("exit_status: an integer")?;
        return Ok(Step::ExitStatus(code));
    }
    Err(format!("unknown step {line}"))
}

fn from_hex(h: &str) -> Result<Vec<u8>, String> {
    let h: String = h.chars().filter(|c| !c.is_whitespace()).collect();
    if !h.len().is_multiple_of(2) {
        return Err("hex: odd number of digits".into());
    }
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).map_err(|e| format!("hex: {e}")))
        .collect()
}

/// Hex for bytes that are not UTF-8.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Keys that read best first; the rest follow alphabetically.
const KEY_ORDER: &[&str] = &[
    "about",
    "send",
    "send_json",
    "send_raw",
    "send_hex",
    "send_oversize",
    "close_stdin",
    "await",
    "recv",
    "exit_status",
    "t",
    "id",
    "op",
    "kind",
    "status",
    "code",
    "class",
];

/// One JSON line with a stable key order, so cases diff well.
pub(crate) fn canonical(value: &Value) -> String {
    let mut out = String::new();
    write_value(value, &mut out);
    out
}

fn write_value(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            let rank = |k: &str| {
                KEY_ORDER
                    .iter()
                    .position(|x| *x == k)
                    .unwrap_or(KEY_ORDER.len())
            };
            keys.sort_by(|a, b| rank(a).cmp(&rank(b)).then(a.cmp(b)));
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_value(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Renders a case with new expectations: `recv` lines after each await and exit statuses
/// come from `actual` (one entry per await / exit step, in order).
pub(crate) fn render(case: &Case, blocks: &[Vec<String>], exit_statuses: &[i32]) -> String {
    let mut out = String::new();
    let (mut b, mut e) = (blocks.iter(), exit_statuses.iter());
    for step in &case.steps {
        match step {
            Step::About(text) => out.push_str(&canonical(&serde_json::json!({ "about": text }))),
            Step::Send { line, .. } => out.push_str(&canonical(line)),
            Step::CloseStdin => out.push_str(r#"{"close_stdin":true}"#),
            Step::Await(conds) => {
                let names: Vec<Value> = conds.iter().map(|c| Value::String(cond_name(c))).collect();
                out.push_str(&canonical(&serde_json::json!({ "await": names })));
                for line in b.next().into_iter().flatten() {
                    out.push('\n');
                    out.push_str(line);
                }
            }
            Step::Recv(_) => continue,
            Step::ExitStatus(old) => {
                out.push_str(&format!("{{\"exit_status\":{}}}", e.next().unwrap_or(old)));
            }
        }
        out.push('\n');
    }
    out
}

pub(crate) fn cond_name(c: &Cond) -> String {
    match c {
        Cond::Ready => "ready".into(),
        Cond::Exit => "exit".into(),
        Cond::Error => "error".into(),
        Cond::Eof => "eof".into(),
        Cond::Done(id) => format!("done:{id}"),
        Cond::Output(id) => format!("output:{id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_puts_the_step_and_type_first() {
        let v: Value =
            serde_json::from_str(r#"{"data":"x","recv":{"kind":"stdout","t":"event","id":"a"}}"#)
                .unwrap();
        assert_eq!(
            canonical(&v),
            r#"{"recv":{"t":"event","id":"a","kind":"stdout"},"data":"x"}"#
        );
    }

    #[test]
    fn parses_each_step_kind() {
        assert!(
            matches!(parse_line(r#"{"await":["done:a","eof"]}"#).unwrap(), Step::Await(c) if c == [Cond::Done("a".into()), Cond::Eof])
        );
        assert!(
            matches!(parse_line(r#"{"send_hex":"5746"}"#).unwrap(), Step::Send { bytes, .. } if bytes == b"WF")
        );
        assert!(matches!(
            parse_line(r#"{"exit_status":2}"#).unwrap(),
            Step::ExitStatus(2)
        ));
        assert!(parse_line(r#"{"await":"sometime"}"#).is_err());
        assert!(parse_line(r#"{"bogus":1}"#).is_err());
    }
}
