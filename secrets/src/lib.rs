//! Secrets: an age-encrypted TOML table of `NAME = "value"`, its recipients in a plain
//! `FILE.recipients` beside it (age files do not say whom they are for), opened with an x25519
//! identity from `--identity FILE`, `$WISP_AGE_IDENTITY` (a file) or `$WISP_AGE_KEY` (the key).
//!
//! Values leave this module only as [`SecretValues`], whose `Debug` shows names, and through
//! [`Redactor`], which every line the controller prints or journals passes through.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use age::secrecy::ExposeSecret;

pub mod files;
mod redact;
pub use redact::{Redactor, StreamRedactor};

/// Secret values by name. `Debug` shows the names only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretValues(BTreeMap<String, String>);

impl std::fmt::Debug for SecretValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl From<BTreeMap<String, String>> for SecretValues {
    fn from(values: BTreeMap<String, String>) -> Self {
        SecretValues(values)
    }
}

impl SecretValues {
    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A secret name: letters, digits and `_`, not starting with a digit.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Why secrets could not be opened or saved.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// Neither `--identity`, `$WISP_AGE_IDENTITY` nor `$WISP_AGE_KEY`.
    #[error(
        "no age identity to open the secrets with: pass --identity FILE, or set \
         WISP_AGE_IDENTITY (a file) or WISP_AGE_KEY (the key)"
    )]
    NoIdentity,
    /// The identity source holds no key.
    #[error("{0} holds no age identity (AGE-SECRET-KEY-1...)")]
    EmptyIdentity(String),
    /// A file (secrets, identity, recipients) could not be read.
    #[error("{}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A recipients line that is not an age recipient.
    #[error("{}:{line}: not an age recipient: {reason}", path.display())]
    BadRecipient {
        /// The recipients file.
        path: PathBuf,
        /// Its line.
        line: usize,
        /// What age said.
        reason: String,
    },
    /// The recipients file lists nobody.
    #[error("{} lists no recipients", path.display())]
    NoRecipients {
        /// The recipients file.
        path: PathBuf,
    },
    /// Not an age file at all.
    #[error("{}: not an age file", path.display())]
    NotAge {
        /// The secrets file.
        path: PathBuf,
        /// What age said.
        source: age::DecryptError,
    },
    /// An age file none of the identities opens.
    #[error("{}: cannot decrypt with the given identity", path.display())]
    Decrypt {
        /// The secrets file.
        path: PathBuf,
        /// What age said.
        source: age::DecryptError,
    },
    /// Decrypted, but not a table of named strings.
    #[error("{}: {reason}", path.display())]
    Malformed {
        /// The secrets file.
        path: PathBuf,
        /// What is wrong, for the operator.
        reason: String,
    },
    /// Encryption failed.
    #[error("cannot encrypt")]
    Encrypt(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The new file could not be written in place.
    #[error("{}", path.display())]
    Write {
        /// The secrets file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The identities to open secrets with: `path`, else `$WISP_AGE_IDENTITY`, else `$WISP_AGE_KEY`.
pub fn identities(path: Option<&Path>) -> Result<Vec<age::x25519::Identity>, SecretsError> {
    let (text, source) = match (path, std::env::var_os("WISP_AGE_IDENTITY")) {
        (Some(p), _) => (read(p)?, p.display().to_string()),
        (None, Some(p)) => (
            read(Path::new(&p))?,
            format!("$WISP_AGE_IDENTITY ({})", p.to_string_lossy()),
        ),
        (None, None) => match std::env::var("WISP_AGE_KEY") {
            Ok(k) => (k, "$WISP_AGE_KEY".to_owned()),
            Err(_) => return Err(SecretsError::NoIdentity),
        },
    };
    let ids: Vec<age::x25519::Identity> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("AGE-SECRET-KEY-1"))
        .filter_map(|l| age::x25519::Identity::from_str(l).ok())
        .collect();
    if ids.is_empty() {
        return Err(SecretsError::EmptyIdentity(source));
    }
    Ok(ids)
}

fn read(path: &Path) -> Result<String, SecretsError> {
    std::fs::read_to_string(path).map_err(|source| SecretsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// `FILE.recipients`.
pub fn recipients_path(file: &Path) -> PathBuf {
    let mut p = file.as_os_str().to_owned();
    p.push(".recipients");
    PathBuf::from(p)
}

/// The recipients listed beside `file`.
pub fn recipients(file: &Path) -> Result<Vec<age::x25519::Recipient>, SecretsError> {
    recipients_in(&recipients_path(file))
}

/// The recipients listed in `path`, one `age1...` per line (`#` comments).
pub fn recipients_in(path: &Path) -> Result<Vec<age::x25519::Recipient>, SecretsError> {
    let path = path.to_owned();
    let text = read(&path)?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        out.push(age::x25519::Recipient::from_str(line).map_err(|e| {
            SecretsError::BadRecipient {
                path: path.clone(),
                line: i + 1,
                reason: e.to_string(),
            }
        })?);
    }
    if out.is_empty() {
        return Err(SecretsError::NoRecipients { path });
    }
    Ok(out)
}

/// Decrypts and parses `file`.
pub fn open(file: &Path, ids: &[age::x25519::Identity]) -> Result<SecretValues, SecretsError> {
    let path = || file.to_owned();
    let bytes = std::fs::read(file).map_err(|source| SecretsError::Read {
        path: path(),
        source,
    })?;
    let decryptor = age::Decryptor::new(&bytes[..]).map_err(|source| SecretsError::NotAge {
        path: path(),
        source,
    })?;
    let mut reader = decryptor
        .decrypt(ids.iter().map(|i| i as &dyn age::Identity))
        .map_err(|source| SecretsError::Decrypt {
            path: path(),
            source,
        })?;
    let mut text = String::new();
    reader
        .read_to_string(&mut text)
        .map_err(|source| SecretsError::Read {
            path: path(),
            source,
        })?;
    parse(&text).map_err(|reason| SecretsError::Malformed {
        path: path(),
        reason,
    })
}

/// The decrypted form: a TOML table of strings.
fn parse(text: &str) -> Result<SecretValues, String> {
    let table: BTreeMap<String, toml::Value> =
        toml::from_str(text).map_err(|e| format!("not a table of secrets: {}", e.message()))?;
    let mut out = BTreeMap::new();
    for (k, v) in table {
        let toml::Value::String(s) = v else {
            return Err(format!("secret {k:?} is not a string"));
        };
        if !valid_name(&k) {
            return Err(format!("{k:?} is not a secret name (letters, digits, _)"));
        }
        out.insert(k, s);
    }
    Ok(SecretValues(out))
}

fn render(values: &BTreeMap<String, String>) -> String {
    let mut text = String::new();
    for (k, v) in values {
        text.push_str(&format!("{k} = {}\n", toml::Value::String(v.clone())));
    }
    text
}

/// Encrypts `values` to the recipients beside `file` and replaces `file` atomically.
pub fn save(file: &Path, values: &BTreeMap<String, String>) -> Result<(), SecretsError> {
    let out = seal(&render(values), &recipients(file)?)?;
    files::replace(file, &out, 0o600).map_err(|source| SecretsError::Write {
        path: file.to_owned(),
        source,
    })
}

/// `values` encrypted to `rs`, for workers on the bus: only their identities open it.
pub fn seal_values(
    values: &SecretValues,
    rs: &[age::x25519::Recipient],
) -> Result<Vec<u8>, SecretsError> {
    seal(&render(&values.0), rs)
}

/// What [`seal_values`] sealed, opened with `ids`.
pub fn unseal_values(bytes: &[u8], ids: &[age::x25519::Identity]) -> Result<SecretValues, String> {
    let decryptor = age::Decryptor::new(bytes).map_err(|e| e.to_string())?;
    let mut reader = decryptor
        .decrypt(ids.iter().map(|i| i as &dyn age::Identity))
        .map_err(|e| e.to_string())?;
    let mut text = String::new();
    reader
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    parse(&text)
}

/// `text` encrypted to `rs`.
fn seal(text: &str, rs: &[age::x25519::Recipient]) -> Result<Vec<u8>, SecretsError> {
    let encrypt = |e: Box<dyn std::error::Error + Send + Sync>| SecretsError::Encrypt(e);
    let encryptor = age::Encryptor::with_recipients(rs.iter().map(|r| r as &dyn age::Recipient))
        .map_err(|e| encrypt(e.into()))?;
    let mut out = Vec::new();
    let mut w = encryptor
        .wrap_output(&mut out)
        .map_err(|e| encrypt(e.into()))?;
    w.write_all(text.as_bytes())
        .and_then(|()| w.finish().map(drop))
        .map_err(|e| encrypt(e.into()))?;
    Ok(out)
}

/// A new identity: (the identity file's text, its public recipient).
pub fn keygen() -> (String, String) {
    let id = age::x25519::Identity::generate();
    let public = id.to_public().to_string();
    let text = format!(
        "# wisp secrets identity\n# public key: {public}\n{}\n",
        id.to_string().expose_secret()
    );
    (text, public)
}

/// The plain values, for `wisp secrets` to change and save again.
pub fn into_map(values: SecretValues) -> BTreeMap<String, String> {
    values.0
}

/// Values from a map (what `wisp secrets edit` read back).
pub fn parse_text(text: &str) -> Result<BTreeMap<String, String>, String> {
    parse(text).map(into_map)
}

/// The text `wisp secrets edit` shows.
pub fn text_of(values: &BTreeMap<String, String>) -> String {
    render(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_through_the_text_form() {
        let mut m = BTreeMap::new();
        m.insert("a".to_owned(), "x = \"y\"\nz".to_owned());
        assert_eq!(parse_text(&text_of(&m)).unwrap(), m);
        assert!(parse_text("1bad = \"x\"").is_err());
        let shown = format!("{:?}", SecretValues(m));
        assert!(shown.contains("\"a\"") && !shown.contains('y'), "{shown}");
    }
}
