//! What travels on the bus: a work item (one host's part of a run), signed by the controller,
//! and what workers send back about it.
//!
//! An item's body is its JSON; its signature (minisign, over exactly those bytes) travels in
//! the `Wisp-Signature` header. A worker runs an item only when the signature verifies
//! against a key it trusts, the item has not expired, and no other copy of it (same id,
//! another stream message) was ever claimed: a forged, altered or replayed item does not run.

use std::path::Path;

use super::BusError;
pub use super::wire::{Back, Work};
use serde::{Deserialize, Serialize};

/// The item format; a worker refuses any other.
pub const FORMAT: u32 = 3;

/// The header the signature travels in.
pub const SIGNATURE_HEADER: &str = "Wisp-Signature";

/// One host's part of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Item {
    /// [`FORMAT`].
    pub format: u32,
    /// Unique per item (128 random bits, hex): the claim key that stops replays.
    pub id: String,
    /// The run it belongs to (128 random bits, hex): its subjects and its cancel.
    pub run: String,
    /// Milliseconds since the epoch: when it was made, and after when no worker takes it.
    pub issued_ms: u64,
    pub expires_ms: u64,
    /// The workers' region it is for (`any` without one).
    pub region: String,
    /// The host, as the controller's inventory describes it.
    pub host: HostSpec,
    /// What to do there ([`super::wire`]).
    pub work: Work,
    /// How the runner is started there.
    pub start: Start,
    /// Whether an exec item whose worker was lost may run again (`--redeliver-exec`).
    pub redeliver_exec: bool,
    /// The plan's secrets, age-encrypted to the workers' recipients (base64), when it uses
    /// any: only a worker holding one of those identities can run it.
    #[serde(default)]
    pub secrets: Option<String>,
}

/// How to reach a host: no credential, only names. Each worker brings its own keys,
/// known_hosts and client config.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostSpec {
    /// The name shown in output.
    pub name: String,
    /// What the worker connects to (`ansible_host`, else the name).
    pub address: String,
    pub port: Option<u16>,
    /// The login user, when the inventory or `--user` gives one.
    pub user: Option<String>,
    /// Inventory vars (templates' `host.VAR`).
    pub vars: wisp_inventory::Vars,
}

/// The runner's start options that belong to the run, not to the worker.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Start {
    pub connect_timeout_ms: u64,
    pub ttl_ms: u64,
    pub become_root: bool,
}

impl Item {
    /// The plan's secrets, opened with `ids` (none when the item carries none).
    pub fn open_secrets(
        &self,
        ids: &[age::x25519::Identity],
    ) -> Result<wisp_secrets::SecretValues, String> {
        let Some(sealed) = &self.secrets else {
            return Ok(wisp_secrets::SecretValues::default());
        };
        let bytes = data_encoding::BASE64
            .decode(sealed.as_bytes())
            .map_err(|e| e.to_string())?;
        wisp_secrets::unseal_values(&bytes, ids)
    }
}

/// A run's cancel, signed like an item, on `wisp.cancel.<run>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cancel {
    pub run: String,
    /// `cancel` (stop in order) or `disconnect` (cut connections now).
    pub level: String,
    pub expires_ms: u64,
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// 128 random bits in hex.
pub fn random_id() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .is_err()
    {
        // Unique enough without /dev/urandom: time and pid; ids only need to differ.
        let seed = u128::from(now_ms()) << 32 | u128::from(std::process::id());
        bytes = seed.to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The controller's job-signing key.
pub struct Signer {
    sk: minisign::SecretKey,
    pk: minisign::PublicKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer")
    }
}

impl Signer {
    /// Reads a minisign secret key file (its password, when it has one, from
    /// `$WISP_JOB_KEY_PASSWORD`).
    pub fn load(path: &Path) -> Result<Signer, BusError> {
        let bad = |why: String| BusError::Key {
            path: path.to_owned(),
            why,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let sk_box = minisign::SecretKeyBox::from_string(&text)
            .map_err(|e| bad(format!("not a minisign secret key: {e}")))?;
        let sk = match std::env::var("WISP_JOB_KEY_PASSWORD") {
            Ok(password) => sk_box.into_secret_key(Some(password)),
            Err(_) => sk_box.into_unencrypted_secret_key(),
        }
        .map_err(|e| {
            bad(format!(
                "cannot open the key: {e} (an encrypted key needs $WISP_JOB_KEY_PASSWORD)"
            ))
        })?;
        let pk = minisign::PublicKey::from_secret_key(&sk).map_err(|e| bad(e.to_string()))?;
        Ok(Signer { sk, pk })
    }

    /// A new unencrypted key pair: the secret key at `path` (0600, never over an existing
    /// file) and the public key at `path.pub`.
    pub fn generate(path: &Path) -> Result<std::path::PathBuf, BusError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let bad = |p: &Path, why: String| BusError::Key {
            path: p.to_owned(),
            why,
        };
        let pair = minisign::KeyPair::generate_unencrypted_keypair()
            .map_err(|e| bad(path, e.to_string()))?;
        let public = std::path::PathBuf::from(format!("{}.pub", path.display()));
        let sk_text = pair
            .sk
            .to_box(None)
            .map_err(|e| bad(path, e.to_string()))?
            .to_string();
        let pk_text = pair
            .pk
            .to_box()
            .map_err(|e| bad(&public, e.to_string()))?
            .to_string();
        let write = |p: &Path, mode: u32, text: &str| {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .custom_flags(libc_nofollow())
                .open(p)
                .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_all()))
                .map_err(|e| bad(p, e.to_string()))
        };
        write(path, 0o600, &sk_text)?;
        write(&public, 0o644, &pk_text)?;
        Ok(public)
    }

    /// The signature of `payload`, as one header value (the signature file's text, base64).
    pub fn sign(&self, payload: &[u8]) -> Result<String, BusError> {
        let signature = minisign::sign(
            Some(&self.pk),
            &self.sk,
            std::io::Cursor::new(payload),
            Some("wisp job"),
            None,
        )
        .map_err(|e| BusError::Sign(e.to_string()))?;
        Ok(data_encoding::BASE64.encode(signature.to_string().as_bytes()))
    }
}

/// `O_NOFOLLOW`: a key file is never written through a planted link.
fn libc_nofollow() -> i32 {
    nix::fcntl::OFlag::O_NOFOLLOW.bits()
}

/// The job keys a worker trusts.
#[derive(Debug)]
pub struct Verifier {
    keys: Vec<minisign_verify::PublicKey>,
}

impl Verifier {
    /// Reads each minisign public key file.
    pub fn load(paths: &[std::path::PathBuf]) -> Result<Verifier, BusError> {
        let mut keys = Vec::new();
        for path in paths {
            let bad = |why: String| BusError::Key {
                path: path.clone(),
                why,
            };
            let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
            let text = text.trim();
            let key = if text.contains('\n') {
                minisign_verify::PublicKey::decode(text)
            } else {
                minisign_verify::PublicKey::from_base64(text)
            }
            .map_err(|_| bad("not a minisign public key".into()))?;
            keys.push(key);
        }
        Ok(Verifier { keys })
    }

    /// Whether `header` is a good signature of `payload` by a trusted key; the reason when
    /// not.
    pub fn check(&self, payload: &[u8], header: Option<&str>) -> Result<(), String> {
        let header = header.ok_or("no signature")?;
        let text = data_encoding::BASE64
            .decode(header.as_bytes())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or("a signature that is not a minisign signature")?;
        let signature = minisign_verify::Signature::decode(&text)
            .map_err(|_| "a signature that is not a minisign signature")?;
        if self
            .keys
            .iter()
            .any(|k| k.verify(payload, &signature, false).is_ok())
        {
            Ok(())
        } else {
            Err("a signature by no trusted job key (forged or altered)".into())
        }
    }
}

/// Checks what a signature cannot: the format and the expiry.
pub fn check_fresh(item: &Item, now_ms: u64) -> Result<(), String> {
    if item.format != FORMAT {
        return Err(format!(
            "item format {} (this worker reads {FORMAT})",
            item.format
        ));
    }
    if now_ms > item.expires_ms {
        return Err(format!(
            "expired {} s ago (an old item replayed, or one that waited too long)",
            (now_ms - item.expires_ms) / 1000
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_holds_for_the_signed_bytes_only() {
        let dir = std::env::temp_dir().join(format!("wisp-item-{}", random_id()));
        std::fs::create_dir(&dir).unwrap();
        let key = dir.join("jobs.key");
        let public = Signer::generate(&key).unwrap();
        let signer = Signer::load(&key).unwrap();
        let verifier = Verifier::load(&[public]).unwrap();
        let sig = signer.sign(b"{\"a\":1}").unwrap();
        assert_eq!(verifier.check(b"{\"a\":1}", Some(&sig)), Ok(()));
        assert!(verifier.check(b"{\"a\":2}", Some(&sig)).is_err());
        assert!(verifier.check(b"{\"a\":1}", None).is_err());
        assert!(verifier.check(b"{\"a\":1}", Some("bm9wZQ==")).is_err());
        // Never over an existing key.
        assert!(Signer::generate(&key).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
