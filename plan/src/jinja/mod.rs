//! The template engine: Jinja2 through minijinja, set up as Ansible sets Jinja2 up
//! (`trim_blocks`, trailing newlines as Ansible keeps them, strict undefined, Python's way of printing
//! `True`, `None` and lists), with Ansible's filters and tests, a fuel limit, a cap on what
//! one template may render, and no file read while rendering (the files `{% include %}` may
//! name were read with the plan).
//!
//! Every template and expression of a plan is compiled once, when the plan is read; hosts
//! only render them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use minijinja::value::{Value, ValueKind};
use minijinja::{Environment, ErrorKind, UndefinedBehavior};

use crate::data::{Data, is_template};

mod budget;
mod emit;
mod filters;
mod lists;
mod python;
mod text;

pub use budget::{MAX_RENDER_MEMORY, Metered, at};
pub use python::repr as python_repr;

/// The instructions one render may run: enough for a config file looping over thousands of
/// items, far short of a loop that does not end.
pub const FUEL: u64 = 2_000_000;

/// The largest text one template may render to: a var repeated in a template must not cost
/// gigabytes per host. Bigger files go in `content_file`, which is sent as it is.
pub const MAX_RENDERED: usize = 8 << 20;

/// The value Ansible's `omit` stands for: an arg that renders to it is left out.
pub const OMIT: &str = "__omit_place_holder__wisp";

/// Where a native expression's value is left by its template.
const RESULT: &str = "__wisp_value";

/// The compiled templates and expressions of one plan.
pub struct Engine {
    env: Environment<'static>,
    /// Template text (or an expression, marked) to the name it was compiled under.
    names: HashMap<String, String>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("templates", &self.names.len())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine whose `{% include %}` and `{% import %}` find their files in `templates`
    /// (read with the plan, by name): rendering reads no file.
    pub fn new(templates: Arc<BTreeMap<String, String>>) -> Engine {
        let mut env = Environment::new();
        // Strict, as Ansible's undefined: printing it, iterating it or testing it in an `if`
        // is an error; `x | default(y)`, `x is defined` and `a.b | default(y)` (with `a`
        // defined) work. An inline `if` without `else` yields nothing, as in Jinja2.
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_trim_blocks(true);
        // As Ansible: Jinja2 drops the template's last newline, then Ansible gives the
        // result back as many trailing newlines as the template had (see `render`).
        env.set_keep_trailing_newline(false);
        env.set_fuel(Some(FUEL));
        env.set_recursion_limit(100);
        env.set_debug(false);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.set_formatter(python::formatter);
        let files = Arc::clone(&templates);
        let sources = Arc::clone(&templates);
        // The newline `{% include %}` drops from the end of a template, given back (what
        // rendering a template by itself gives back too): for a `template` whose `src` is a
        // template.
        env.add_function("__wisp_newline", move |name: &str, out: &str| -> String {
            let ends = |s: &str| s.len() - s.trim_end_matches('\n').len();
            let source = sources.get(name).map_or(0, |t| ends(t));
            "\n".repeat(source.saturating_sub(ends(out)))
        });
        env.set_loader(move |name| Ok(templates.get(name).cloned()));
        // A file of a `files/` folder, by absolute path, as it is: what `copy` picks when its
        // `src` is a template.
        env.add_function(
            "__wisp_file",
            move |name: &str, dirs: Vec<String>| -> Result<String, minijinja::Error> {
                let candidates = dirs
                    .iter()
                    .flat_map(|d| [format!("{d}/files/{name}"), format!("{d}/{name}")])
                    .chain(name.starts_with('/').then(|| name.to_owned()));
                for c in candidates {
                    if let Some(text) = files.get(&crate::gathered::file_key(&c)) {
                        return Ok(text.clone());
                    }
                }
                Err(minijinja::Error::new(
                    ErrorKind::InvalidOperation,
                    format!(
                        "copy: no text file {name:?} in files/ of {} (a file picked by a \
                         template must be UTF-8 text of at most 1 MiB)",
                        dirs.join(", ")
                    ),
                ))
            },
        );
        filters::register(&mut env);
        env.add_global("omit", OMIT);
        Engine {
            env,
            names: HashMap::new(),
        }
    }

    /// Compiles template text (once); an error is the template's syntax error.
    pub fn add(&mut self, source: &str) -> Result<(), String> {
        self.compile(source.to_owned(), source.to_owned())
    }

    /// Compiles an expression (once), to be evaluated to a value by [`Engine::eval`].
    pub fn add_expr(&mut self, expr: &str) -> Result<(), String> {
        let expr = expr.trim();
        if expr.is_empty() {
            return Err("an empty expression".into());
        }
        // A statement that keeps the expression's value, not its text.
        let source = format!("{{% set {RESULT} = ({expr}\n) %}}");
        self.compile(expr_key(expr), source)
    }

    /// Compiles every template text inside `data`: a text that is one `{{ expression }}`
    /// as an expression (its value keeps its type), any other as a template.
    pub fn add_data(&mut self, data: &Data) -> Result<(), String> {
        match data {
            Data::Str(s) if is_template(s) => match single_expression(s) {
                Some(expr) => self.add_expr(expr),
                None => self.add(s),
            },
            Data::List(items) => items.iter().try_for_each(|i| self.add_data(i)),
            Data::Map(map) => map.values().try_for_each(|v| self.add_data(v)),
            _ => Ok(()),
        }
    }

    fn compile(&mut self, key: String, source: String) -> Result<(), String> {
        if self.names.contains_key(&key) {
            return Ok(());
        }
        too_deep(&source)?;
        let name = format!("template #{}", self.names.len() + 1);
        self.env
            .add_template_owned(name.clone(), source)
            .map_err(|e| describe(&e))?;
        self.names.insert(key, name);
        Ok(())
    }

    /// Renders template text against `ctx`.
    pub fn render(&self, source: &str, ctx: &Value) -> Result<String, String> {
        if !is_template(source) {
            return Ok(source.to_owned());
        }
        let tmpl = match self.names.get(source) {
            Some(name) => self.env.get_template(name),
            None => {
                too_deep(source)?;
                self.env.template_from_str(source)
            }
        }
        .map_err(|e| describe(&e))?;
        let mut out = Capped::default();
        match budget::measured(source, || tmpl.render_captured_to(ctx, &mut out)) {
            Ok(_) => {
                let mut text = String::from_utf8(out.bytes).map_err(|e| e.to_string())?;
                let ends = |s: &str| s.len() - s.trim_end_matches('\n').len();
                let missing = ends(source).saturating_sub(ends(&text));
                text.push_str(&"\n".repeat(missing));
                Ok(text)
            }
            Err(_) if out.over => Err(format!(
                "renders to more than {} MiB: refused (put a large file in content_file)",
                MAX_RENDERED >> 20
            )),
            Err(e) => Err(explain(&e, source, ctx)),
        }
    }

    /// Evaluates an expression against `ctx` to its value.
    pub fn eval(&self, expr: &str, ctx: &Value) -> Result<Value, String> {
        let expr = expr.trim();
        let key = expr_key(expr);
        let tmpl = match self.names.get(&key) {
            Some(name) => self.env.get_template(name),
            None => {
                too_deep(expr)?;
                return budget::measured(expr, || {
                    self.env.compile_expression(expr).and_then(|e| e.eval(ctx))
                })
                .map_err(|e| explain(&e, expr, ctx));
            }
        }
        .map_err(|e| describe(&e))?;
        let captured = budget::measured(expr, || tmpl.render_captured(ctx))
            .map_err(|e| explain(&e, expr, ctx))?;
        let value = captured.state().lookup(RESULT).unwrap_or_default();
        if value.is_undefined() {
            let e = minijinja::Error::new(ErrorKind::UndefinedError, "undefined value");
            return Err(explain(&e, expr, ctx));
        }
        Ok(value)
    }

    /// Evaluates a condition: it must yield a boolean (as ansible-core 2.19 requires).
    pub fn condition(&self, expr: &str, ctx: &Value) -> Result<bool, String> {
        let expr = bare_condition(expr);
        let v = self.eval(expr, ctx)?;
        match v.kind() {
            ValueKind::Bool => Ok(v.is_true()),
            _ => Err(not_boolean(expr, &v)),
        }
    }

    /// Renders every template text inside `data`; a text that is one `{{ expression }}`
    /// keeps its value's type (a list stays a list). Map entries that render to `omit` are
    /// left out.
    pub fn data(&self, data: &Data, ctx: &Value) -> Result<Data, String> {
        Ok(match data {
            Data::Str(s) if is_template(s) => match single_expression(s) {
                Some(expr) => Data::from_value(&self.eval(expr, ctx)?),
                None => Data::Str(self.render(s, ctx)?),
            },
            Data::List(items) => Data::List(
                items
                    .iter()
                    .map(|i| self.data(i, ctx))
                    .collect::<Result<_, _>>()?,
            ),
            Data::Map(map) => {
                let mut out = crate::DataMap::new();
                for (k, v) in map {
                    let v = self.data(v, ctx)?;
                    if v.as_str() != Some(OMIT) {
                        out.insert(k.clone(), v);
                    }
                }
                Data::Map(out)
            }
            other => other.clone(),
        })
    }

    /// The names a template or expression reads that it does not set itself (top level).
    pub fn reads(&self, source: &str, expression: bool) -> Vec<String> {
        let found = if expression {
            self.env
                .compile_expression(source.trim())
                .map(|e| e.undeclared_variables(false))
        } else {
            self.env
                .template_from_str(source)
                .map(|t| t.undeclared_variables(false))
        };
        let mut names: Vec<String> = found.unwrap_or_default().into_iter().collect();
        names.sort();
        names
    }

    /// Like [`Engine::reads`], with attributes (`facts.os_id`, `secret.db`).
    pub fn reads_nested(&self, source: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .env
            .template_from_str(source)
            .map(|t| t.undeclared_variables(true))
            .unwrap_or_default()
            .into_iter()
            .collect();
        names.sort();
        names
    }
}

/// The deepest nesting a template may have: brackets, and `not`s or signs in a row. The
/// parser recurses once per level; a text built to nest 300,000 levels must not take the
/// controller's stack with it.
const MAX_NESTING: usize = 100;

fn too_deep(source: &str) -> Result<(), String> {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut prefixes, mut most) = (0usize, 0usize);
    for word in source.split(|c: char| c.is_whitespace()) {
        match word {
            "not" | "-" | "+" => prefixes += 1,
            "" => {}
            _ => prefixes = 0,
        }
        most = most.max(prefixes);
    }
    for c in source.chars() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        deepest = deepest.max(depth);
    }
    if deepest > MAX_NESTING * 2 || most > MAX_NESTING {
        return Err(format!("nests deeper than {MAX_NESTING} levels: refused"));
    }
    Ok(())
}

/// The key an expression is compiled under (apart from template text).
fn expr_key(expr: &str) -> String {
    format!("\u{0}expr {expr}")
}

/// A condition written as `{{ expr }}` (which Ansible also accepts) is `expr`.
pub fn bare_condition(expr: &str) -> &str {
    single_expression(expr).unwrap_or(expr).trim()
}

/// The expression of a text that is one `{{ expression }}` and nothing else.
pub fn single_expression(s: &str) -> Option<&str> {
    let inner = s.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    let inner = inner.strip_prefix('-').unwrap_or(inner);
    let inner = inner.strip_suffix('-').unwrap_or(inner);
    (!inner.contains("{{") && !inner.contains("}}") && !inner.contains("{%"))
        .then_some(inner.trim())
}

pub(crate) fn not_boolean(expr: &str, v: &Value) -> String {
    let shown = match v.as_str() {
        Some(s) if !s.starts_with('\'') => format!("'{s}'"),
        _ => python::repr(v),
    };
    format!(
        "{expr:?} is {shown}, not a boolean: write a comparison (`x == \"y\"`), `x | bool`, \
         or `x is defined`"
    )
}

/// A template error in one line: what went wrong, and where in the template when it has
/// more than one line.
pub fn describe(e: &minijinja::Error) -> String {
    let what = match e.kind() {
        ErrorKind::OutOfFuel => format!(
            "rendering ran past {FUEL} steps: refused (a loop that does not end, or one too big \
             for a template)"
        ),
        ErrorKind::UndefinedError => "undefined value".to_owned(),
        _ => e
            .detail()
            .map_or_else(|| e.kind().to_string(), str::to_owned),
    };
    let what = match e.kind() {
        ErrorKind::SyntaxError => format!("syntax error: {what}"),
        _ => what,
    };
    match e.line() {
        Some(line) if line > 1 => format!("{what} (template line {line})"),
        _ => what,
    }
}

/// [`describe`], naming the missing var when the error is one.
fn explain(e: &minijinja::Error, source: &str, ctx: &Value) -> String {
    if e.kind() != ErrorKind::UndefinedError {
        return describe(e);
    }
    let env = Environment::new();
    let read = env
        .template_from_str(source)
        .map(|t| t.undeclared_variables(true))
        .or_else(|_| {
            env.compile_expression(source)
                .map(|x| x.undeclared_variables(true))
        })
        .unwrap_or_default();
    let mut missing: Vec<String> = read
        .into_iter()
        .filter(|name| !defined(ctx, name))
        .collect();
    missing.sort();
    match missing.first() {
        Some(name) => format!("{name} is undefined: {}", describe(e)),
        None => describe(e),
    }
}

/// Whether a dotted name resolves in `ctx`.
fn defined(ctx: &Value, dotted: &str) -> bool {
    let mut v = ctx.clone();
    for part in dotted.split('.') {
        match v.get_attr(part) {
            Ok(next) if !next.is_undefined() => v = next,
            _ => return false,
        }
    }
    true
}

/// A writer that stops at [`MAX_RENDERED`] bytes.
#[derive(Default)]
struct Capped {
    bytes: Vec<u8>,
    over: bool,
}

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > MAX_RENDERED {
            self.over = true;
            return Err(std::io::Error::other("too large"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
