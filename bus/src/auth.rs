//! Who may speak on the bus: each worker signs what it writes (its events, its claims, the
//! work consumer it makes) with a key of its own, and what it writes counts only when that
//! key is one its reader trusts.
//!
//! Keys are minisign key pairs made by `wisp keygen`, the same files that sign jobs; a
//! worker's secret key is `--sign-events`, and the public keys of the workers a controller
//! (or another worker) trusts are `--trust-workers` (a file may hold several, as `cat`
//! makes them). Messages are signed with plain Ed25519 over a domain tag and the bytes (the
//! key inside a minisign file is an Ed25519 key): a minisign signature costs about 400 µs to
//! make, which one event per output line cannot afford; this costs about 20.
//!
//! The domain tag keeps one kind of signed message from passing for another: an event's
//! signature is not a claim's, and neither is a job's (those are minisign signatures).

use std::path::{Path, PathBuf};

use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

use super::BusError;

/// What a signature is over, besides the bytes: one tag per kind of message.
#[derive(Debug, Clone, Copy)]
pub enum Domain {
    /// A worker's event about an item (`wisp.events.<run>.<item>`).
    Event,
    /// A worker's claim on an item (`wisp.claims.<item>`).
    Claim,
    /// The configuration of a work consumer a worker made.
    Consumer,
}

impl Domain {
    fn tag(self) -> &'static [u8] {
        match self {
            Domain::Event => b"wisp event v1\0",
            Domain::Claim => b"wisp claim v1\0",
            Domain::Consumer => b"wisp consumer v1\0",
        }
    }
}

/// The header a worker's signature travels in.
pub const WORKER_SIGNATURE_HEADER: &str = "Wisp-Worker-Signature";

/// minisign's key ID of a key: bytes 2 to 10 of its base64 form, little-endian, in hex.
fn key_id(bytes: &[u8]) -> String {
    bytes
        .get(2..10)
        .map(|id| id.iter().rev().map(|b| format!("{b:02X}")).collect())
        .unwrap_or_default()
}

/// A worker's own signing key (`--sign-events`).
pub struct WorkerKey {
    pair: Ed25519KeyPair,
    id: String,
}

impl std::fmt::Debug for WorkerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WorkerKey({})", self.id)
    }
}

/// Where the Ed25519 secret key sits in minisign's secret key bytes: after the signature,
/// KDF and checksum algorithms (2 bytes each), the KDF salt (32), its two limits (8 each)
/// and the key ID (8): the 32-byte seed, then the 32-byte public key.
const SECRET_KEY_AT: usize = 2 + 2 + 2 + 32 + 8 + 8 + 8;

impl WorkerKey {
    /// Reads a minisign secret key file (made by `wisp keygen`; its password, when it has
    /// one, from `$WISP_WORKER_KEY_PASSWORD`).
    pub fn load(path: &Path) -> Result<WorkerKey, BusError> {
        let bad = |why: String| BusError::Key {
            path: path.to_owned(),
            why,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let sk_box = minisign::SecretKeyBox::from_string(&text)
            .map_err(|e| bad(format!("not a minisign secret key: {e}")))?;
        let sk = match std::env::var("WISP_WORKER_KEY_PASSWORD") {
            Ok(password) => sk_box.into_secret_key(Some(password)),
            Err(_) => sk_box.into_unencrypted_secret_key(),
        }
        .map_err(|e| {
            bad(format!(
                "cannot open the key: {e} (an encrypted key needs $WISP_WORKER_KEY_PASSWORD)"
            ))
        })?;
        let bytes = sk.to_bytes();
        let (Some(seed), Some(public)) = (
            bytes.get(SECRET_KEY_AT..SECRET_KEY_AT + 32),
            bytes.get(SECRET_KEY_AT + 32..SECRET_KEY_AT + 64),
        ) else {
            return Err(bad("a minisign secret key of an unknown layout".into()));
        };
        let pair = Ed25519KeyPair::from_seed_and_public_key(seed, public)
            .map_err(|e| bad(format!("not an Ed25519 key pair: {e}")))?;
        let pk = minisign::PublicKey::from_secret_key(&sk).map_err(|e| bad(e.to_string()))?;
        Ok(WorkerKey {
            pair,
            id: key_id(&pk.to_bytes()),
        })
    }

    /// Its key ID, as minisign and `wisp keygen` print it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The signature of `body` as `domain`, as one header value (base64).
    pub fn sign(&self, domain: Domain, body: &[u8]) -> String {
        let mut message = Vec::with_capacity(domain.tag().len() + body.len());
        message.extend_from_slice(domain.tag());
        message.extend_from_slice(body);
        data_encoding::BASE64.encode(self.pair.sign(&message).as_ref())
    }

    /// This key's public half, as a trusted key (a worker trusts its own claims).
    pub fn public(&self) -> TrustedWorker {
        TrustedWorker {
            key: self.pair.public_key().as_ref().to_vec(),
            id: self.id.clone(),
            source: "this worker's own key".into(),
        }
    }
}

/// One worker key a reader trusts.
#[derive(Debug, Clone)]
pub struct TrustedWorker {
    key: Vec<u8>,
    id: String,
    source: String,
}

/// The worker keys a reader trusts (`--trust-workers`).
#[derive(Debug, Clone, Default)]
pub struct WorkerKeys {
    keys: Vec<TrustedWorker>,
}

impl WorkerKeys {
    /// Reads minisign public key files; each may hold several keys (the base64 lines of
    /// several `.pub` files one after another), and holds at least one.
    pub fn load(paths: &[PathBuf]) -> Result<WorkerKeys, BusError> {
        let mut keys = Vec::new();
        for path in paths {
            let bad = |why: String| BusError::Key {
                path: path.clone(),
                why,
            };
            let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
            let before = keys.len();
            for (n, line) in text.lines().map(str::trim).enumerate() {
                if line.is_empty() || line.starts_with('#') || line.contains(':') {
                    continue;
                }
                let bytes = data_encoding::BASE64
                    .decode(line.as_bytes())
                    .ok()
                    .filter(|b| b.len() == 42 && b.starts_with(b"Ed"))
                    .ok_or_else(|| {
                        bad(format!(
                            "line {}: not a minisign public key (a `wisp keygen` FILE.pub)",
                            n + 1
                        ))
                    })?;
                keys.push(TrustedWorker {
                    key: bytes[10..].to_vec(),
                    id: key_id(&bytes),
                    source: format!("{}:{}", path.display(), n + 1),
                });
            }
            if keys.len() == before {
                return Err(bad("holds no minisign public key".into()));
            }
        }
        Ok(WorkerKeys { keys })
    }

    /// These keys and `also`.
    pub fn with(mut self, also: TrustedWorker) -> WorkerKeys {
        if !self.keys.iter().any(|k| k.key == also.key) {
            self.keys.push(also);
        }
        self
    }

    /// Whether no key is trusted.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The ID of the trusted key whose signature `header` is over `body` as `domain`; the
    /// reason when there is none.
    pub fn check(&self, domain: Domain, body: &[u8], header: Option<&str>) -> Result<&str, String> {
        let header = header.ok_or("no worker signature")?;
        let signature = data_encoding::BASE64
            .decode(header.as_bytes())
            .map_err(|_| "a worker signature that is not base64")?;
        let mut message = Vec::with_capacity(domain.tag().len() + body.len());
        message.extend_from_slice(domain.tag());
        message.extend_from_slice(body);
        self.keys
            .iter()
            .find(|k| {
                UnparsedPublicKey::new(&ED25519, &k.key)
                    .verify(&message, &signature)
                    .is_ok()
            })
            .map(|k| k.id.as_str())
            .ok_or_else(|| "signed by no trusted worker key (forged or altered)".into())
    }

    /// Where the key with this ID was read from.
    pub fn source_of(&self, id: &str) -> Option<&str> {
        self.keys
            .iter()
            .find(|k| k.id == id)
            .map(|k| k.source.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keypair(dir: &Path, name: &str) -> (WorkerKey, PathBuf) {
        let key = dir.join(name);
        let public = super::super::item::Signer::generate(&key).unwrap();
        (WorkerKey::load(&key).unwrap(), public)
    }

    #[test]
    fn a_worker_signature_holds_for_its_key_its_domain_and_its_bytes_only() {
        let dir =
            std::env::temp_dir().join(format!("wisp-auth-{}", super::super::item::random_id()));
        std::fs::create_dir(&dir).unwrap();
        let (w1, p1) = keypair(&dir, "w1.key");
        let (w2, p2) = keypair(&dir, "w2.key");
        // Two keys in one file, as `cat w1.key.pub w2.key.pub > workers.pub` makes it.
        let both = dir.join("workers.pub");
        let text = std::fs::read_to_string(&p1).unwrap() + &std::fs::read_to_string(&p2).unwrap();
        std::fs::write(&both, text).unwrap();
        let trusted = WorkerKeys::load(std::slice::from_ref(&both)).unwrap();
        let only_w1 = WorkerKeys::load(&[p1]).unwrap();
        let sig = w2.sign(Domain::Event, b"body");
        assert_eq!(
            trusted.check(Domain::Event, b"body", Some(&sig)),
            Ok(w2.id())
        );
        assert!(only_w1.check(Domain::Event, b"body", Some(&sig)).is_err());
        assert!(trusted.check(Domain::Claim, b"body", Some(&sig)).is_err());
        assert!(trusted.check(Domain::Event, b"bodY", Some(&sig)).is_err());
        assert!(trusted.check(Domain::Event, b"body", None).is_err());
        assert!(
            trusted
                .check(Domain::Event, b"body", Some("bm9wZQ=="))
                .is_err()
        );
        // A worker trusts itself.
        let sig = w1.sign(Domain::Claim, b"c");
        let own = WorkerKeys::default().with(w1.public());
        assert_eq!(own.check(Domain::Claim, b"c", Some(&sig)), Ok(w1.id()));
        // The ID is minisign's.
        let line = std::fs::read_to_string(dir.join("w1.key.pub")).unwrap();
        assert!(line.contains(w1.id()), "{line} / {}", w1.id());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
