//! Templates and conditions: `{{ name }}` rendered against a host's vars, facts and secrets,
//! and `when` expressions.

use std::collections::BTreeMap;

use wisp_protocol::ops::Facts;

/// What templates resolve against on one host.
#[derive(Debug, Clone, Default)]
pub struct Context {
    vars: BTreeMap<String, String>,
    host: BTreeMap<String, String>,
    facts: BTreeMap<String, String>,
    secrets: wisp_secrets::SecretValues,
    /// Checking a plan: host and facts names resolve to a placeholder.
    placeholder: bool,
}

impl Context {
    /// For one host: plan vars overridden by the host's inventory vars; `host.name`; facts.
    pub fn for_host(
        plan_vars: &BTreeMap<String, String>,
        host_name: &str,
        host_vars: &BTreeMap<String, String>,
        facts: Option<&Facts>,
    ) -> Context {
        let mut vars = plan_vars.clone();
        vars.extend(host_vars.iter().map(|(k, v)| (k.clone(), v.clone())));
        let mut host = host_vars.clone();
        host.insert("name".into(), host_name.to_owned());
        let facts = facts
            .map(|f| {
                f.values()
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect()
            })
            .unwrap_or_default();
        Context {
            vars,
            host,
            facts,
            secrets: Default::default(),
            placeholder: false,
        }
    }

    /// The same, with the plan's secrets.
    pub fn with_secrets(mut self, secrets: &wisp_secrets::SecretValues) -> Context {
        self.secrets = secrets.clone();
        self
    }

    pub(super) fn placeholder(vars: &BTreeMap<String, String>) -> Context {
        Context {
            vars: vars.clone(),
            placeholder: true,
            ..Default::default()
        }
    }

    fn lookup(&self, name: &str) -> Result<String, String> {
        if let Some(n) = name.strip_prefix("secret.") {
            if !wisp_secrets::valid_name(n) {
                return Err(format!("{{{{ {name} }}}}: {n:?} is not a secret name"));
            }
            if self.placeholder {
                return Ok("0".into());
            }
            return self
                .secrets
                .get(n)
                .map(str::to_owned)
                .ok_or_else(|| format!("{{{{ {name} }}}}: no such secret"));
        }
        if let Some(f) = name.strip_prefix("facts.") {
            if !Facts::NAMES.contains(&f) {
                return Err(format!(
                    "{{{{ {name} }}}}: facts have no {f:?} (they have: {})",
                    Facts::NAMES.join(", ")
                ));
            }
            if self.placeholder {
                return Ok("0".into());
            }
            return self
                .facts
                .get(f)
                .cloned()
                .ok_or_else(|| format!("{{{{ {name} }}}}: this host did not report it"));
        }
        if let Some(h) = name.strip_prefix("host.") {
            if self.placeholder {
                return Ok("0".into());
            }
            return self
                .host
                .get(h)
                .cloned()
                .ok_or_else(|| format!("{{{{ {name} }}}}: this host has no var {h:?}"));
        }
        match self.vars.get(name) {
            Some(v) => Ok(v.clone()),
            // A host's inventory may still define it.
            None if self.placeholder
                && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') =>
            {
                Err(format!(
                    "{{{{ {name} }}}}: no such var (define it under [vars], or use host.{name} for an inventory var)"
                ))
            }
            None => Err(format!("{{{{ {name} }}}}: no such var")),
        }
    }
}

/// The largest text one template may render to: a var repeated in a template must not cost
/// gigabytes per host. Bigger files go in `content_file`, which is sent as it is.
pub(super) const MAX_RENDERED: usize = 8 << 20;

/// Renders `{{ name }}` references in `text`; records the names it met.
pub fn render(text: &str, ctx: &Context, refs: &mut Vec<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len().min(MAX_RENDERED));
    let too_large = || {
        format!(
            "renders to more than {} MiB: refused (put a large file in content_file)",
            MAX_RENDERED >> 20
        )
    };
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| format!("unclosed {{{{ in {text:?}"))?;
        let (name, quote) = reference(&after[..end])?;
        refs.push(if quote {
            format!("{name}{QUOTED}")
        } else {
            name.to_owned()
        });
        let value = ctx.lookup(name)?;
        let value = if quote { shell_quote(&value) } else { value };
        if out.len() + value.len() > MAX_RENDERED {
            return Err(too_large());
        }
        out.push_str(&value);
        rest = &after[end + 2..];
    }
    if out.len() + rest.len() > MAX_RENDERED {
        return Err(too_large());
    }
    out.push_str(rest);
    Ok(out)
}

/// How a reference that went through the `quote` filter is recorded in `refs`.
pub(super) const QUOTED: &str = "|quote";

/// `name` or `name | quote`: the name, and whether it is quoted.
fn reference(inside: &str) -> Result<(&str, bool), String> {
    let bad = || format!("bad template reference {{{{{inside}}}}}");
    let (name, filter) = match inside.split_once('|') {
        Some((name, filter)) => (name.trim(), Some(filter.trim())),
        None => (inside.trim(), None),
    };
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(bad());
    }
    match filter {
        None => Ok((name, false)),
        Some("quote") => Ok((name, true)),
        Some(other) => Err(format!(
            "{}: unknown filter {other:?} (the one filter is `quote`)",
            bad()
        )),
    }
}

/// `value` as one word of a POSIX shell command line: as it is when it holds only characters
/// no shell treats specially, else in single quotes (each `'` written as `'"'"'`).
pub(super) fn shell_quote(value: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "@%+=:,./_-".contains(c);
    if !value.is_empty() && value.chars().all(plain) {
        return value.to_owned();
    }
    format!("'{}'", value.replace('\'', "'\"'\"'"))
}

/// Refuses an exec task whose command line (`shell` or `argv`) holds a value the host itself
/// reported (a fact) without the `quote` filter. Such a value is data from the host: in a
/// command line it could run code on the host, or on every host of a plan that shares it.
pub(super) fn unquoted_host_value(args: &toml::Table, ctx: &Context) -> Result<(), String> {
    let mut refs = Vec::new();
    for key in ["shell", "argv"] {
        if let Some(v) = args.get(key) {
            let _ = render_value(v, ctx, &mut refs);
        }
    }
    match refs
        .iter()
        .find(|r| r.starts_with("facts.") && !r.ends_with(QUOTED))
    {
        Some(r) => Err(format!(
            "{{{{ {r} }}}} in a command: a fact is what the host says, and it could hold shell \
             code; write {{{{ {r} | quote }}}}"
        )),
        None => Ok(()),
    }
}

/// Renders every text inside a task's args (a TOML table, as the plan gives it).
pub fn render_args(
    args: &toml::Table,
    ctx: &Context,
    refs: &mut Vec<String>,
) -> Result<toml::Table, String> {
    args.iter()
        .map(|(k, v)| Ok((k.clone(), render_value(v, ctx, refs)?)))
        .collect()
}

/// Renders every text inside one arg's value.
pub fn render_value(
    v: &toml::Value,
    ctx: &Context,
    refs: &mut Vec<String>,
) -> Result<toml::Value, String> {
    Ok(match v {
        toml::Value::String(s) => toml::Value::String(render(s, ctx, refs)?),
        toml::Value::Array(a) => toml::Value::Array(
            a.iter()
                .map(|x| render_value(x, ctx, refs))
                .collect::<Result<_, _>>()?,
        ),
        toml::Value::Table(t) => toml::Value::Table(render_args(t, ctx, refs)?),
        other => other.clone(),
    })
}

/// The typed op a task's rendered args make, checked as the runner checks them.
pub fn op_from_args(op: &str, args: toml::Table) -> Result<wisp_protocol::ops::Op, String> {
    wisp_protocol::ops::Op::from_args(op, args).map_err(|e| e.to_string())
}

/// Evaluates a `when` condition.
pub fn condition(expr: &str, ctx: &Context, refs: &mut Vec<String>) -> Result<bool, String> {
    // `not` is peeled off in a loop, not by recursion: a condition of 300,000 `not`s costs
    // one pass, not the stack.
    let mut e = expr.trim();
    let mut negated = false;
    while let Some(inner) = e.strip_prefix("not ") {
        e = inner.trim_start();
        negated = !negated;
    }
    condition_of(e, expr, ctx, refs).map(|b| b != negated)
}

/// One condition with no leading `not`.
fn condition_of(
    e: &str,
    expr: &str,
    ctx: &Context,
    refs: &mut Vec<String>,
) -> Result<bool, String> {
    for (op, equal) in [("==", true), ("!=", false)] {
        if let Some((left, right)) = e.split_once(op) {
            let right = right.trim();
            let lit = right
                .strip_prefix('"')
                .and_then(|r| r.strip_suffix('"'))
                .ok_or_else(|| format!("{expr:?}: the right side must be a \"quoted\" text"))?;
            let name = left.trim();
            refs.push(name.to_owned());
            let value = ctx.lookup(name)?;
            return Ok((value == lit) == equal);
        }
    }
    if e.is_empty() || e.contains(char::is_whitespace) {
        return Err(format!(
            "{expr:?}: expected NAME, not NAME, NAME == \"text\" or NAME != \"text\""
        ));
    }
    refs.push(e.to_owned());
    let v = ctx.lookup(e)?;
    Ok(!(v.is_empty() || v == "false" || v == "0"))
}
