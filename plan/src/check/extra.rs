//! Extra vars from the command line (`-e`): `NAME=VALUE`, `@FILE` (YAML or JSON), or a
//! JSON object.

use crate::data::{Data, DataMap};

/// The extra vars of `-e K=V` and `-e @file.yml`, in the order given (later wins).
pub fn extra_vars(args: &[String]) -> Result<DataMap, String> {
    let mut out = DataMap::new();
    for a in args {
        if let Some(file) = a.strip_prefix('@') {
            let text = std::fs::read_to_string(file).map_err(|e| format!("-e @{file}: {e}"))?;
            let data = if file.ends_with(".json") {
                serde_json::from_str::<serde_json::Value>(&text)
                    .map(|v| Data::from_json(&v))
                    .map_err(|e| e.to_string())
            } else {
                Data::parse_yaml(&text)
            }
            .map_err(|e| format!("-e @{file}: {e}"))?;
            match data {
                Data::Map(m) => out.extend(m),
                _ => return Err(format!("-e @{file}: expected a map of names to values")),
            }
        } else if a.trim_start().starts_with('{') {
            let v: serde_json::Value =
                serde_json::from_str(a).map_err(|e| format!("-e {a}: {e}"))?;
            match Data::from_json(&v) {
                Data::Map(m) => out.extend(m),
                _ => return Err(format!("-e {a}: expected a JSON object")),
            }
        } else {
            for pair in a.split_whitespace() {
                let (k, v) = pair
                    .split_once('=')
                    .ok_or_else(|| format!("-e {pair}: expected NAME=VALUE, @FILE or JSON"))?;
                out.insert(k.to_owned(), Data::Str(v.to_owned()));
            }
        }
    }
    Ok(out)
}
