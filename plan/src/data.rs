//! Plan data: the value of a var, an arg, a registered result or a loop item. A value is what
//! TOML, YAML and JSON can all say (null, booleans, numbers, text, lists and maps), with maps
//! kept in the order they were written, as Jinja2 in Ansible sees them.

use indexmap::IndexMap;
use minijinja::value::{Value, ValueKind};

/// A map of names to data, in the order written.
pub type DataMap = IndexMap<String, Data>;

/// One value.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum Data {
    /// Nothing (YAML `~`, JSON `null`); TOML has no way to say it.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A whole number.
    Int(i64),
    /// A number with a fraction.
    Float(f64),
    /// Text (which may be a template).
    Str(String),
    /// A list.
    List(Vec<Data>),
    /// A map, in the order written.
    Map(DataMap),
}

impl Data {
    /// The text, when this is text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Data::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Whether any text inside is a template (holds `{{` or `{%`).
    pub fn has_template(&self) -> bool {
        match self {
            Data::Str(s) => is_template(s),
            Data::List(items) => items.iter().any(Data::has_template),
            Data::Map(map) => map.values().any(Data::has_template),
            _ => false,
        }
    }

    /// A TOML value as data (dates become their text).
    pub fn from_toml(v: &toml::Value) -> Data {
        match v {
            toml::Value::String(s) => Data::Str(s.clone()),
            toml::Value::Integer(i) => Data::Int(*i),
            toml::Value::Float(f) => Data::Float(*f),
            toml::Value::Boolean(b) => Data::Bool(*b),
            toml::Value::Datetime(d) => Data::Str(d.to_string()),
            toml::Value::Array(a) => Data::List(a.iter().map(Data::from_toml).collect()),
            toml::Value::Table(t) => Data::Map(
                t.iter()
                    .map(|(k, v)| (k.clone(), Data::from_toml(v)))
                    .collect(),
            ),
        }
    }

    /// The TOML value an op's args are read from; `None` for a null (an arg left out).
    pub fn to_toml(&self) -> Option<toml::Value> {
        Some(match self {
            Data::Null => return None,
            Data::Bool(b) => toml::Value::Boolean(*b),
            Data::Int(i) => toml::Value::Integer(*i),
            Data::Float(f) => toml::Value::Float(*f),
            Data::Str(s) => toml::Value::String(s.clone()),
            Data::List(items) => {
                toml::Value::Array(items.iter().filter_map(Data::to_toml).collect())
            }
            Data::Map(map) => toml::Value::Table(
                map.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.to_toml()?)))
                    .collect(),
            ),
        })
    }

    /// A JSON value as data.
    pub fn from_json(v: &serde_json::Value) -> Data {
        match v {
            serde_json::Value::Null => Data::Null,
            serde_json::Value::Bool(b) => Data::Bool(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Data::Int(i),
                None => Data::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            serde_json::Value::String(s) => Data::Str(s.clone()),
            serde_json::Value::Array(a) => Data::List(a.iter().map(Data::from_json).collect()),
            serde_json::Value::Object(o) => Data::Map(
                o.iter()
                    .map(|(k, v)| (k.clone(), Data::from_json(v)))
                    .collect(),
            ),
        }
    }

    /// The template engine's value for this data.
    pub fn to_value(&self) -> Value {
        match self {
            Data::Null => Value::from(()),
            Data::Bool(b) => Value::from(*b),
            Data::Int(i) => Value::from(*i),
            Data::Float(f) => Value::from(*f),
            Data::Str(s) => Value::from(s.as_str()),
            Data::List(items) => Value::from(items.iter().map(Data::to_value).collect::<Vec<_>>()),
            Data::Map(map) => Value::from_iter(map.iter().map(|(k, v)| (k.clone(), v.to_value()))),
        }
    }

    /// A value the template engine made, as data. Undefined and none are null; anything
    /// that is neither a plain value, a list nor a map (a macro, a callable) is its text.
    pub fn from_value(v: &Value) -> Data {
        match v.kind() {
            ValueKind::Undefined | ValueKind::None => Data::Null,
            ValueKind::Bool => Data::Bool(v.is_true()),
            ValueKind::Number => match i64::try_from(v.clone()) {
                Ok(i) if v.is_integer() => Data::Int(i),
                _ => Data::Float(f64::try_from(v.clone()).unwrap_or(f64::NAN)),
            },
            ValueKind::String | ValueKind::Bytes => Data::Str(v.to_string()),
            ValueKind::Seq | ValueKind::Iterable => Data::List(
                v.try_iter()
                    .map(|items| items.map(|i| Data::from_value(&i)).collect())
                    .unwrap_or_default(),
            ),
            ValueKind::Map => Data::Map(
                v.try_iter()
                    .map(|keys| {
                        keys.map(|k| {
                            let value = v.get_item(&k).unwrap_or_default();
                            (k.to_string(), Data::from_value(&value))
                        })
                        .collect()
                    })
                    .unwrap_or_default(),
            ),
            _ => Data::Str(v.to_string()),
        }
    }

    /// A YAML document's value as data (`None` when it is not plain data: an alias left
    /// unresolved, a bad value).
    pub fn from_yaml(y: &yaml_rust2::Yaml) -> Option<Data> {
        use yaml_rust2::Yaml;
        Some(match y {
            Yaml::Null => Data::Null,
            Yaml::Boolean(b) => Data::Bool(*b),
            Yaml::Integer(i) => Data::Int(*i),
            Yaml::Real(r) => Data::Float(r.parse().ok()?),
            Yaml::String(s) => Data::Str(s.clone()),
            Yaml::Array(a) => Data::List(a.iter().map(Data::from_yaml).collect::<Option<_>>()?),
            Yaml::Hash(h) => Data::Map(
                h.iter()
                    .map(|(k, v)| Some((yaml_key(k)?, Data::from_yaml(v)?)))
                    .collect::<Option<_>>()?,
            ),
            Yaml::Alias(_) | Yaml::BadValue => return None,
        })
    }

    /// Reads YAML text (the first document; empty text is null).
    pub fn parse_yaml(text: &str) -> Result<Data, String> {
        let docs = yaml_rust2::YamlLoader::load_from_str(text).map_err(|e| e.to_string())?;
        match docs.first() {
            None => Ok(Data::Null),
            Some(doc) => Data::from_yaml(doc).ok_or_else(|| "not plain data".to_owned()),
        }
    }
}

/// A YAML map key as text (numbers and booleans as they are written).
fn yaml_key(k: &yaml_rust2::Yaml) -> Option<String> {
    use yaml_rust2::Yaml;
    Some(match k {
        Yaml::String(s) | Yaml::Real(s) => s.clone(),
        Yaml::Integer(i) => i.to_string(),
        Yaml::Boolean(b) => if *b { "True" } else { "False" }.to_owned(),
        Yaml::Null => "None".to_owned(),
        _ => return None,
    })
}

/// Whether text is a template (holds a Jinja expression, statement or comment).
pub fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_keep_their_order_through_the_engine() {
        let data = Data::parse_yaml("b: 1\na: [x, 2, ~]\nc: {z: 1, y: true}\n").unwrap();
        let back = Data::from_value(&data.to_value());
        assert_eq!(back, data);
        let Data::Map(m) = &back else {
            panic!("{back:?}")
        };
        assert_eq!(m.keys().collect::<Vec<_>>(), ["b", "a", "c"]);
    }

    #[test]
    fn toml_and_json_meet_in_one_shape() {
        let t: toml::Table = toml::from_str("a = 1\nb = [\"x\"]\n[c]\nd = 1.5\n").unwrap();
        let from_toml = Data::from_toml(&toml::Value::Table(t));
        let from_json = Data::from_json(&serde_json::json!({"a": 1, "b": ["x"], "c": {"d": 1.5}}));
        assert_eq!(from_toml, from_json);
        assert_eq!(
            from_toml.to_toml().map(|v| Data::from_toml(&v)),
            Some(from_toml)
        );
    }
}
