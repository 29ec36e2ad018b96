//! A plan file's values with the line each one is on, whatever the file's format: the plan
//! reader works on this tree, so a TOML plan and (later) a YAML role read into one model and
//! every error names its line.

use crate::data::{Data, DataMap};

/// A value and its line.
#[derive(Debug, Clone)]
pub struct Src {
    /// The line the value starts on (1-based).
    pub line: usize,
    /// The value.
    pub value: SrcValue,
}

/// What a value is.
#[derive(Debug, Clone)]
pub enum SrcValue {
    /// A plain value (null, boolean, number, text).
    Scalar(Data),
    /// An integer written in decimal, kept with its text: `mode = 644` is refused by what was
    /// written, not by the number it reads as.
    Decimal(i64),
    /// A list.
    List(Vec<Src>),
    /// A map, in the order written.
    Map(Vec<(String, Src)>),
}

impl Src {
    /// The value without its lines.
    pub fn to_data(&self) -> Data {
        match &self.value {
            SrcValue::Scalar(d) => d.clone(),
            SrcValue::Decimal(i) => Data::Int(*i),
            SrcValue::List(items) => Data::List(items.iter().map(Src::to_data).collect()),
            SrcValue::Map(entries) => Data::Map(
                entries
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_data()))
                    .collect::<DataMap>(),
            ),
        }
    }

    /// The entries, when a map.
    pub fn as_map(&self) -> Option<&[(String, Src)]> {
        match &self.value {
            SrcValue::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The items, when a list.
    pub fn as_list(&self) -> Option<&[Src]> {
        match &self.value {
            SrcValue::List(l) => Some(l),
            _ => None,
        }
    }

    /// The text, when text.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            SrcValue::Scalar(Data::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// A map entry.
    pub fn get(&self, key: &str) -> Option<&Src> {
        self.as_map()?
            .iter()
            .find_map(|(k, v)| (k == key).then_some(v))
    }
}

/// Reads TOML text into a tree with lines; an error is the line and what is wrong.
pub fn read_toml(text: &str) -> Result<Src, (usize, String)> {
    let root = toml::de::DeTable::parse(text).map_err(|e| {
        let line = e.span().map_or(1, |s| crate::line_of(text, s.start));
        (line, e.message().trim().to_owned())
    })?;
    let line = crate::line_of(text, root.span().start);
    Ok(Src {
        line,
        value: SrcValue::Map(table(text, root.get_ref())),
    })
}

fn table(text: &str, t: &toml::de::DeTable<'_>) -> Vec<(String, Src)> {
    t.iter()
        .map(|(k, v)| (k.get_ref().to_string(), value(text, v)))
        .collect()
}

fn value(text: &str, v: &toml::Spanned<toml::de::DeValue<'_>>) -> Src {
    use toml::de::DeValue;
    let line = crate::line_of(text, v.span().start);
    let value = match v.get_ref() {
        DeValue::String(s) => SrcValue::Scalar(Data::Str(s.to_string())),
        DeValue::Integer(i) => {
            let n = i64::from_str_radix(&i.as_str().replace('_', ""), i.radix()).unwrap_or(0);
            if i.radix() == 10 {
                SrcValue::Decimal(n)
            } else {
                SrcValue::Scalar(Data::Int(n))
            }
        }
        DeValue::Float(f) => SrcValue::Scalar(Data::Float(
            f.as_str().replace('_', "").parse().unwrap_or(f64::NAN),
        )),
        DeValue::Boolean(b) => SrcValue::Scalar(Data::Bool(*b)),
        DeValue::Datetime(d) => SrcValue::Scalar(Data::Str(d.to_string())),
        DeValue::Array(a) => SrcValue::List(a.iter().map(|x| value(text, x)).collect()),
        DeValue::Table(t) => SrcValue::Map(table(text, t)),
    };
    Src { line, value }
}

/// Reads YAML text (one document, as Ansible reads it) into a tree with lines; an error is the
/// line and what is wrong. An integer is kept as [`SrcValue::Decimal`], as TOML's are.
pub fn read_yaml(text: &str) -> Result<Src, (usize, String)> {
    let docs = wisp_yaml::load_nodes(text).map_err(|e| {
        // yaml-rust2 says "... at byte N line L column C".
        let line = e
            .split(" line ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next()?.parse().ok())
            .unwrap_or(1);
        (line, e)
    })?;
    Ok(docs.first().map_or(
        Src {
            line: 1,
            value: SrcValue::Scalar(Data::Null),
        },
        from_yaml,
    ))
}

fn from_yaml(n: &wisp_yaml::Node) -> Src {
    use wisp_yaml::Kind;
    let value = match &n.kind {
        Kind::Scalar(serde_json::Value::Number(x)) if x.is_i64() => {
            SrcValue::Decimal(x.as_i64().unwrap_or_default())
        }
        Kind::Scalar(v) => SrcValue::Scalar(Data::from_json(v)),
        Kind::Seq(items) => SrcValue::List(items.iter().map(from_yaml).collect()),
        Kind::Map(entries) => SrcValue::Map(
            entries
                .iter()
                .map(|(k, v)| (k.clone(), from_yaml(v)))
                .collect(),
        ),
    };
    Src {
        line: n.line,
        value,
    }
}

impl Src {
    /// A text value on `line`.
    pub fn text(line: usize, s: impl Into<String>) -> Src {
        Src {
            line,
            value: SrcValue::Scalar(Data::Str(s.into())),
        }
    }

    /// A yes/no value on `line`.
    pub fn bool(line: usize, b: bool) -> Src {
        Src {
            line,
            value: SrcValue::Scalar(Data::Bool(b)),
        }
    }

    /// A list of `items` at `line`.
    pub fn list(line: usize, items: Vec<Src>) -> Src {
        Src {
            line,
            value: SrcValue::List(items),
        }
    }

    /// A map on `line`.
    pub fn map(line: usize, entries: Vec<(String, Src)>) -> Src {
        Src {
            line,
            value: SrcValue::Map(entries),
        }
    }
}
