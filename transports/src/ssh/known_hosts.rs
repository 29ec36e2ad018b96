//! OpenSSH `known_hosts`: strict host-key checking and safe trust-on-first-use appends.
//!
//! Understood: plain and `[host]:port` names, comma-separated patterns with `*`, `?` and `!`
//! negation, hashed names (`|1|salt|hmac`), `@revoked` lines, `@cert-authority` lines (host
//! certificates: [`check_certificate`]), comments. A line that cannot be parsed is skipped,
//! never fatal: one bad line must not lock an operator out of every host.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use data_encoding::BASE64;
use hmac::{Hmac, KeyInit, Mac};
use russh::keys::{HashAlg, PublicKey};
use sha1::Sha1;

/// What `known_hosts` says about a host's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A line for this host holds this key.
    Known,
    /// No line for this host holds a key of this type. `other_types` lists key types that
    /// are recorded for the host, if any.
    Unknown {
        /// Key types known for this host under other algorithms.
        other_types: Vec<String>,
    },
    /// A line for this host holds a different key of the same type: possibly an attack.
    Changed {
        /// 1-based line number of the recorded key.
        line: usize,
    },
    /// The key is marked `@revoked`.
    Revoked {
        /// 1-based line number of the revocation.
        line: usize,
    },
}

/// The name a host is recorded under: `host` on port 22, `[host]:port` otherwise.
pub fn host_entry_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_owned()
    } else {
        format!("[{host}]:{port}")
    }
}

/// `SHA256:...`, as OpenSSH prints fingerprints.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// Checks `key` for `host:port` against the text of a known_hosts file.
pub fn check(text: &str, host: &str, port: u16, key: &PublicKey) -> Verdict {
    let name = host_entry_name(host, port);
    let offered_type = key.algorithm().to_string();
    let mut other_types = Vec::new();
    let mut changed = None;
    let mut known = false;
    for (i, line) in text.lines().enumerate() {
        let Some(entry) = Entry::parse(line) else {
            continue;
        };
        if !entry.matches(&name) {
            continue;
        }
        let same_key = entry.key == *key;
        match entry.marker {
            Marker::Revoked if same_key => return Verdict::Revoked { line: i + 1 },
            Marker::Revoked | Marker::CertAuthority => continue,
            Marker::None => {}
        }
        if same_key {
            known = true;
        } else if entry.key.algorithm().to_string() == offered_type {
            changed.get_or_insert(i + 1);
        } else {
            other_types.push(entry.key.algorithm().to_string());
        }
    }
    match (known, changed) {
        // A matching line wins over a stale one for the same host (OpenSSH does the same).
        (true, _) => Verdict::Known,
        (false, Some(line)) => Verdict::Changed { line },
        (false, None) => Verdict::Unknown { other_types },
    }
}

/// The CA keys that `@cert-authority` lines trust to sign `host:port`'s certificate.
pub fn authorities(text: &str, host: &str, port: u16) -> Vec<PublicKey> {
    let name = host_entry_name(host, port);
    text.lines()
        .filter_map(Entry::parse)
        .filter(|e| e.marker == Marker::CertAuthority && e.matches(&name))
        .map(|e| e.key)
        .collect()
}

/// Checks the host certificate `host:port` offered, as OpenSSH does: signed by a CA an
/// `@cert-authority` line trusts for this name, a host certificate (not a user's), valid at
/// `now` (Unix seconds), naming the host among its principals (or naming none), with no
/// critical options, and neither it nor its CA `@revoked`. `Err` says which failed.
pub fn check_certificate(
    text: &str,
    host: &str,
    port: u16,
    cert: &russh::keys::Certificate,
    now: u64,
) -> Result<(), String> {
    let name = host_entry_name(host, port);
    for (i, entry) in text
        .lines()
        .enumerate()
        .filter_map(|(i, l)| Some((i, Entry::parse(l)?)))
    {
        let key = entry.key.key_data();
        if entry.marker == Marker::Revoked
            && (key == cert.public_key() || key == cert.signature_key())
        {
            return Err(format!(
                "its certificate or CA is @revoked on line {}",
                i + 1
            ));
        }
    }
    let trusted: Vec<_> = authorities(text, host, port)
        .iter()
        .map(|k| k.fingerprint(HashAlg::Sha256))
        .collect();
    let ca = PublicKey::from(cert.signature_key().clone());
    if !trusted.contains(&ca.fingerprint(HashAlg::Sha256)) {
        return Err(format!(
            "its certificate is signed by {}, which no @cert-authority line trusts for {name}",
            fingerprint(&ca)
        ));
    }
    if cert.cert_type() != russh::keys::ssh_key::certificate::CertType::Host {
        return Err("it offered a user certificate as its host key".into());
    }
    cert.validate_at(now, trusted.iter()).map_err(|_| {
        format!(
            "its certificate (id {:?}) is not valid now: its signature does not verify, or \
             now is outside its validity ({} to {})",
            cert.key_id(),
            cert.valid_after(),
            cert.valid_before()
        )
    })?;
    let principals = cert.valid_principals();
    if !principals.is_empty() && !principals.iter().any(|p| p.eq_ignore_ascii_case(host)) {
        return Err(format!("its certificate names {principals:?}, not {host}"));
    }
    if !cert.critical_options().is_empty() {
        return Err("its certificate has critical options wisp does not know".into());
    }
    Ok(())
}

/// The key algorithms recorded for `host:port` (revoked keys and CA lines aside), so the
/// client can ask the host for one of those first, as OpenSSH does.
pub fn recorded_algorithms(text: &str, host: &str, port: u16) -> Vec<russh::keys::Algorithm> {
    let name = host_entry_name(host, port);
    let mut out: Vec<russh::keys::Algorithm> = Vec::new();
    for entry in text.lines().filter_map(Entry::parse) {
        if entry.marker == Marker::None && entry.matches(&name) {
            let alg = entry.key.algorithm();
            if !out.contains(&alg) {
                out.push(alg);
            }
        }
    }
    out
}

/// Puts the algorithms of the `recorded` keys first in `preferred`, keeping the order
/// otherwise (an RSA key matches every RSA signature algorithm).
pub fn prefer_recorded(
    preferred: &[russh::keys::Algorithm],
    recorded: &[russh::keys::Algorithm],
) -> Vec<russh::keys::Algorithm> {
    let family = |a: &russh::keys::Algorithm| match a {
        russh::keys::Algorithm::Rsa { .. } => "rsa".to_owned(),
        other => other.to_string(),
    };
    let known: Vec<String> = recorded.iter().map(family).collect();
    let (mut first, rest): (Vec<_>, Vec<_>) = preferred
        .iter()
        .cloned()
        .partition(|a| known.contains(&family(a)));
    first.extend(rest);
    first
}

/// Appends `host:port key` to the file unless an equal entry is already there. Safe under
/// parallel fan-out: the file is locked while it is re-read and the line is written with a
/// single `write`, so concurrent appends neither duplicate nor tear lines.
pub fn learn(path: &Path, host: &str, port: u16, key: &PublicKey) -> std::io::Result<()> {
    if let Some(dir) = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.exists())
    {
        // Like ~/.ssh itself: private to the user.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)?;
    file.lock()?;
    let mut text = String::new();
    file.seek(SeekFrom::Start(0))?;
    file.read_to_string(&mut text)?;
    if check(&text, host, port, key) == Verdict::Known {
        return Ok(());
    }
    let encoded = key
        .to_openssh()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut line = String::new();
    if !text.is_empty() && !text.ends_with('\n') {
        line.push('\n');
    }
    line.push_str(&format!(
        "{} {}\n",
        host_entry_name(host, port),
        encoded.trim()
    ));
    file.write_all(line.as_bytes())?;
    file.sync_data()?;
    // The lock is released when the file closes.
    Ok(())
}

#[derive(Debug, PartialEq, Eq)]
enum Marker {
    None,
    Revoked,
    CertAuthority,
}

struct Entry<'a> {
    marker: Marker,
    patterns: &'a str,
    key: PublicKey,
}

impl<'a> Entry<'a> {
    fn parse(line: &'a str) -> Option<Self> {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        let mut fields = line.split_whitespace();
        let mut first = fields.next()?;
        let marker = match first {
            "@revoked" => Marker::Revoked,
            "@cert-authority" => Marker::CertAuthority,
            _ => Marker::None,
        };
        if marker != Marker::None {
            first = fields.next()?;
        }
        let (_key_type, key_b64) = (fields.next()?, fields.next()?);
        let key = russh::keys::parse_public_key_base64(key_b64).ok()?;
        Some(Self {
            marker,
            patterns: first,
            key,
        })
    }

    /// OpenSSH semantics: any negated pattern that matches excludes the host outright;
    /// otherwise one positive match is enough.
    fn matches(&self, name: &str) -> bool {
        let mut positive = false;
        for pattern in self.patterns.split(',') {
            if let Some(negated) = pattern.strip_prefix('!') {
                if glob(negated, name) {
                    return false;
                }
            } else if pattern.starts_with("|1|") {
                positive |= hashed_match(pattern, name);
            } else {
                positive |= glob(pattern, name);
            }
        }
        positive
    }
}

fn hashed_match(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('|').skip(2);
    let (Some(salt), Some(hash)) = (parts.next(), parts.next()) else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (
        BASE64.decode(salt.as_bytes()),
        BASE64.decode(hash.as_bytes()),
    ) else {
        return false;
    };
    let Ok(mac) = <Hmac<Sha1> as KeyInit>::new_from_slice(&salt) else {
        return false;
    };
    mac.chain_update(name.as_bytes())
        .verify_slice(&hash)
        .is_ok()
}

/// `*` and `?` wildcards, case-insensitive as host names are (also used for ssh_config).
pub(crate) fn glob(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match (p.split_first(), n.split_first()) {
            (None, None) => true,
            (Some((b'*', rest)), _) => go(rest, n) || (!n.is_empty() && go(p, &n[1..])),
            (Some((b'?', rest)), Some((_, n_rest))) => go(rest, n_rest),
            (Some((pc, rest)), Some((nc, n_rest))) => {
                pc.eq_ignore_ascii_case(nc) && go(rest, n_rest)
            }
            _ => false,
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A syntactically valid ed25519 public key made of one repeated byte.
    fn key(n: u8) -> PublicKey {
        use russh::keys::ssh_key::public::{Ed25519PublicKey, KeyData};
        PublicKey::from(KeyData::Ed25519(Ed25519PublicKey([n; 32])))
    }

    /// `ssh-ed25519 AAAA...` for a key.
    fn line(n: u8) -> String {
        key(n).to_openssh().unwrap()
    }

    #[test]
    fn plain_and_bracketed_names() {
        let text = format!("web1 {}\n[web2]:2222 {}\n", line(1), line(1));
        assert_eq!(check(&text, "web1", 22, &key(1)), Verdict::Known);
        assert_eq!(check(&text, "web2", 2222, &key(1)), Verdict::Known);
        assert!(matches!(
            check(&text, "web2", 22, &key(1)),
            Verdict::Unknown { .. }
        ));
        assert!(matches!(
            check(&text, "web1", 2222, &key(1)),
            Verdict::Unknown { .. }
        ));
    }

    #[test]
    fn changed_key_is_reported_with_its_line() {
        let text = format!("# comment\nweb1 {}\n", line(1));
        assert_eq!(
            check(&text, "web1", 22, &key(2)),
            Verdict::Changed { line: 2 }
        );
    }

    #[test]
    fn hashed_entries_match() {
        // `ssh-keygen -H` output for "web1": salt and HMAC-SHA1 of the name.
        let salt = [7u8; 20];
        let mac = <Hmac<Sha1> as KeyInit>::new_from_slice(&salt)
            .unwrap()
            .chain_update(b"web1")
            .finalize()
            .into_bytes();
        let text = format!(
            "|1|{}|{} {}\n",
            BASE64.encode(&salt),
            BASE64.encode(&mac),
            line(1)
        );
        assert_eq!(check(&text, "web1", 22, &key(1)), Verdict::Known);
        assert!(matches!(
            check(&text, "web2", 22, &key(1)),
            Verdict::Unknown { .. }
        ));
    }

    #[test]
    fn patterns_negation_and_revocation() {
        let text = format!(
            "*.example.org,!evil.example.org {}\n@revoked * {}\n",
            line(1),
            line(2)
        );
        assert_eq!(check(&text, "a.example.org", 22, &key(1)), Verdict::Known);
        assert!(matches!(
            check(&text, "evil.example.org", 22, &key(1)),
            Verdict::Unknown { .. }
        ));
        assert_eq!(
            check(&text, "a.example.org", 22, &key(2)),
            Verdict::Revoked { line: 2 }
        );
    }

    #[test]
    fn bad_lines_are_skipped() {
        let text = format!("garbage\nweb1 ssh-ed25519 !!!notbase64\nweb1 {}\n", line(1));
        assert_eq!(check(&text, "web1", 22, &key(1)), Verdict::Known);
    }

    #[test]
    fn learn_appends_once_even_in_parallel() {
        let dir = std::env::temp_dir().join(format!("wisp-kh-{}", crate::stage::random_token()));
        let path = dir.join("known_hosts");
        std::thread::scope(|s| {
            for i in 0..20 {
                let path = &path;
                s.spawn(move || {
                    // Hosts 0-9, each learned twice at once, with alternating key values.
                    learn(
                        path,
                        &format!("host{}", i % 10),
                        2222,
                        &key(1 + u8::from(i % 2 == 1)),
                    )
                    .unwrap();
                });
            }
        });
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 10, "one line per host: {text}");
        for i in 0..10 {
            let k = key(1 + u8::from(i % 2 == 1));
            assert_eq!(check(&text, &format!("host{i}"), 2222, &k), Verdict::Known);
        }
        // Learning the same key again adds nothing.
        learn(&path, "host0", 2222, &key(1)).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 10);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
