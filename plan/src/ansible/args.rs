//! A module's args as a task gives them, taken one by one (what is left is refused), and
//! the steps (ops) a module becomes.

use super::{Cx, refuse};

/// The name a step registers its result under for its own `changed_when` (the task's
/// `register` name replaces it when there is one).
pub(crate) const PRIVATE_RESULT: &str = "__wisp_fetch";
use crate::Located;
use crate::data::Data;
use crate::source::{Src, SrcValue};

/// One op a module became: the op, its args, the task keys it sets (`creates`, `content`...),
/// a name of its own when it is one of several, and the task keywords it owns (the task's
/// own are then not added).
pub(crate) struct Step {
    pub(crate) op: String,
    pub(crate) args: Vec<(String, Src)>,
    pub(crate) keys: Vec<(String, Src)>,
    pub(crate) name: Option<String>,
    pub(crate) own: Vec<&'static str>,
    pub(crate) line: usize,
}

impl Step {
    pub(crate) fn op(op: &str, line: usize) -> Step {
        Step {
            op: op.to_owned(),
            args: Vec::new(),
            keys: Vec::new(),
            name: None,
            own: Vec::new(),
            line,
        }
    }

    /// An arg of the op.
    pub(crate) fn put(mut self, k: &str, v: Src) -> Step {
        self.args.push((k.to_owned(), v));
        self
    }

    /// A key of the task.
    pub(crate) fn key(mut self, k: &str, v: Src) -> Step {
        self.keys.push((k.to_owned(), v));
        self
    }

    /// The task's entries in the plan model.
    pub(crate) fn into_entries(self) -> Vec<(String, Src)> {
        let mut out = Vec::new();
        if !self.op.is_empty() {
            out.push(("op".to_owned(), Src::text(self.line, self.op)));
        }
        out.extend(self.keys);
        if !self.args.is_empty() {
            out.push(("args".to_owned(), Src::map(self.line, self.args)));
        }
        out
    }
}

/// A module's args, taken one by one; what is left at the end is refused.
pub(crate) struct Args<'a> {
    pub(crate) module: &'a str,
    pub(crate) line: usize,
    pub(crate) free: Option<String>,
    pub(crate) map: Vec<(String, Src)>,
}

impl Args<'_> {
    pub(crate) fn take(&mut self, names: &[&str]) -> Option<Src> {
        let i = self
            .map
            .iter()
            .position(|(k, _)| names.contains(&k.as_str()))?;
        Some(self.map.remove(i).1)
    }

    pub(crate) fn text(&mut self, names: &[&str]) -> Result<Option<(String, usize)>, Located> {
        match self.take(names) {
            None => Ok(None),
            Some(v) => match &v.value {
                SrcValue::Scalar(Data::Str(s)) => Ok(Some((s.clone(), v.line))),
                SrcValue::Decimal(n) => Ok(Some((n.to_string(), v.line))),
                _ => Err(refuse(
                    v.line,
                    format!("{}: {} must be text", self.module, names[0]),
                )),
            },
        }
    }

    /// A yes/no arg, as Ansible reads one (`yes`, `true`, `1`...), or a template.
    pub(crate) fn flag(&mut self, names: &[&str]) -> Option<Result<bool, Src>> {
        let v = self.take(names)?;
        Some(match &v.value {
            SrcValue::Scalar(Data::Bool(b)) => Ok(*b),
            SrcValue::Decimal(n) => Ok(*n != 0),
            SrcValue::Scalar(Data::Str(s)) => match s.to_ascii_lowercase().as_str() {
                "yes" | "true" | "on" | "1" | "y" => Ok(true),
                "no" | "false" | "off" | "0" | "n" => Ok(false),
                _ => Err(v.clone()),
            },
            _ => Err(v.clone()),
        })
    }

    /// Drops args that change nothing wisp does (or only what Ansible reports).
    pub(crate) fn ignore(&mut self, names: &[&str]) {
        self.map.retain(|(k, _)| !names.contains(&k.as_str()));
    }

    /// Passes `mode`, `owner`, `group` (and `backup`) on to a file op.
    pub(crate) fn attrs(&mut self, mut step: Step, backup: bool) -> Result<Step, Located> {
        if let Some(m) = self.take(&["mode"]) {
            step = step.put("mode", mode(&m, self.module)?);
        }
        for k in ["owner", "group"] {
            if let Some(v) = self.take(&[k]) {
                step = step.put(k, v);
            }
        }
        if backup && let Some(v) = self.take(&["backup"]) {
            step = step.put("backup", v);
        }
        Ok(step)
    }

    /// Refuses whatever is left.
    pub(crate) fn done(self, cx: &Cx<'_>) -> Result<bool, Located> {
        if let Some(f) = &self.free {
            cx.unsupported(self.line, &format!("{}: free-form text {f:?}", self.module))?;
            return Ok(false);
        }
        let mut all_known = true;
        for (k, v) in &self.map {
            cx.unsupported(v.line, &format!("{}: the arg {k}", self.module))?;
            all_known = false;
        }
        Ok(all_known)
    }
}

/// `mode` as octal text: an integer (YAML reads `0644` as 420) is written in octal, as Ansible
/// takes it; text is kept (`"0644"`, `u=rw,g=r` is refused by the op).
pub(crate) fn mode(v: &Src, module: &str) -> Result<Src, Located> {
    match &v.value {
        SrcValue::Decimal(n) if *n >= 0 => Ok(Src::text(v.line, format!("{n:04o}"))),
        SrcValue::Scalar(Data::Str(_)) => Ok(v.clone()),
        _ => Err(refuse(v.line, format!("{module}: mode must be octal"))),
    }
}

/// A yes/no arg that is a template: the template that makes it a boolean (`then` appended
/// to the expression, as `| string | lower` for a script).
pub(crate) fn bool_template(v: &Src, then: &str) -> Src {
    let text = v.as_str().unwrap_or("false");
    let expr = match super::kv::one_expression(text) {
        Some(e) => format!("({e})"),
        None => format!("{text:?}"),
    };
    Src::text(v.line, format!("{{{{ {expr} | bool{then} }}}}"))
}

pub(crate) fn need(a: &mut Args<'_>, names: &[&str], line: usize) -> Result<Src, Located> {
    a.take(names)
        .ok_or_else(|| refuse(line, format!("{} needs {}", a.module, names[0])))
}
