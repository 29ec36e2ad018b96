//! Signing runners with minisign.
//!
//! The key is the one `WISP_SIGNING_KEY` names (a minisign secret key file; its password in
//! `WISP_SIGNING_PASSWORD`, else asked for), or this build tree's dev key,
//! `target/wisp-dev-signing/wisp-dev.key`, made unencrypted on first use. Controllers built in
//! the same tree trust that dev key, so the default development path verifies like a release.
//! Each runner gets `wisp-runner.minisig` beside it.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use minisign::{KeyPair, PublicKey, SecretKey, SecretKeyBox};

/// A key to sign with.
pub(crate) struct Key {
    sk: SecretKey,
    pk: PublicKey,
    source: String,
}

impl Key {
    /// Where the key came from, for the build log.
    pub(crate) fn describe(&self) -> &str {
        &self.source
    }

    /// The key ID, as minisign prints it.
    pub(crate) fn id(&self) -> String {
        key_id(self.pk.keynum())
    }

    /// The public key in minisign's one-line base64 form, to build into a release controller.
    pub(crate) fn public_base64(&self) -> String {
        self.pk.to_base64()
    }
}

/// `cargo xtask sign FILE...`: signs each file with the signing key (as `build-runner` does).
pub(crate) fn sign_files(files: Vec<PathBuf>) -> Result<()> {
    if files.is_empty() {
        bail!("usage: cargo xtask sign FILE... (the key: WISP_SIGNING_KEY, else the dev key)");
    }
    let key = key()?;
    for f in files {
        let id = sign(&key, &f)?;
        eprintln!("signed {} with key {id} ({})", f.display(), key.describe());
    }
    Ok(())
}

/// minisign's key ID: the key number as a little-endian integer, in hex.
pub(crate) fn key_id(keynum: &[u8]) -> String {
    keynum.iter().rev().map(|b| format!("{b:02X}")).collect()
}

fn minisign_err(what: &str) -> impl Fn(minisign::PError) -> anyhow::Error + '_ {
    move |e| anyhow!("{what}: {e}")
}

/// The dev key's directory in the build tree.
pub(crate) fn dev_dir() -> PathBuf {
    crate::target_dir().join("wisp-dev-signing")
}

/// The signing key: `WISP_SIGNING_KEY`, else the build tree's dev key (made when missing).
pub(crate) fn key() -> Result<Key> {
    if let Some(path) = std::env::var_os("WISP_SIGNING_KEY") {
        let path = PathBuf::from(path);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("WISP_SIGNING_KEY {}", path.display()))?;
        let sk_box =
            SecretKeyBox::from_string(&text).map_err(minisign_err("not a minisign secret key"))?;
        let password = std::env::var("WISP_SIGNING_PASSWORD").ok();
        let sk = sk_box
            .into_secret_key(password)
            .map_err(minisign_err("cannot open the signing key"))?;
        let pk = PublicKey::from_secret_key(&sk).map_err(minisign_err("signing key"))?;
        return Ok(Key {
            sk,
            pk,
            source: format!("WISP_SIGNING_KEY {}", path.display()),
        });
    }
    let dir = dev_dir();
    let sk_path = dir.join("wisp-dev.key");
    let pk_path = dir.join("wisp-dev.pub");
    if !sk_path.exists() {
        std::fs::create_dir_all(&dir)?;
        let KeyPair { pk, sk } =
            KeyPair::generate_unencrypted_keypair().map_err(minisign_err("key generation"))?;
        let sk_text = sk
            .to_box(Some(
                "wisp dev key: for this build tree only, never for releases",
            ))
            .map_err(minisign_err("dev key"))?
            .into_string();
        let pk_text = pk.to_box().map_err(minisign_err("dev key"))?.into_string();
        write_private(&sk_path, &sk_text)?;
        std::fs::write(&pk_path, pk_text)?;
        eprintln!(
            "made a dev signing key, ID {}: {}",
            key_id(pk.keynum()),
            sk_path.display()
        );
    }
    let text = std::fs::read_to_string(&sk_path)?;
    let sk = SecretKeyBox::from_string(&text)
        .and_then(SecretKeyBox::into_unencrypted_secret_key)
        .map_err(minisign_err("dev key"))?;
    let pk = PublicKey::from_secret_key(&sk).map_err(minisign_err("dev key"))?;
    Ok(Key {
        sk,
        pk,
        source: format!("dev key {}", pk_path.display()),
    })
}

/// Signs `file` into `file.minisig`; returns the key ID.
pub(crate) fn sign(key: &Key, file: &Path) -> Result<String> {
    let bytes = std::fs::read(file)?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let comment = format!("file:{name} size:{}", bytes.len());
    let sig = minisign::sign(
        Some(&key.pk),
        &key.sk,
        std::io::Cursor::new(bytes),
        Some(&comment),
        None,
    )
    .map_err(minisign_err("signing"))?;
    let mut sig_path = file.as_os_str().to_owned();
    sig_path.push(".minisig");
    std::fs::write(&sig_path, sig.into_string())?;
    Ok(key_id(key.pk.keynum()))
}

/// `cargo xtask keygen DIR`: a password-protected key pair for releases.
pub(crate) fn keygen(dir: Option<String>) -> Result<()> {
    let Some(dir) = dir else {
        bail!(
            "usage: cargo xtask keygen DIR (the password comes from WISP_SIGNING_PASSWORD, else it is asked for)"
        );
    };
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir)?;
    let (sk_path, pk_path) = (dir.join("wisp-signing.key"), dir.join("wisp-signing.pub"));
    if sk_path.exists() {
        bail!(
            "{} exists; not overwriting a signing key",
            sk_path.display()
        );
    }
    let password = std::env::var("WISP_SIGNING_PASSWORD").ok();
    let KeyPair { pk, sk } =
        KeyPair::generate_encrypted_keypair(password).map_err(minisign_err("key generation"))?;
    let sk_text = sk
        .to_box(Some("wisp runner signing key"))
        .map_err(minisign_err("key"))?
        .into_string();
    write_private(&sk_path, &sk_text)?;
    std::fs::write(
        &pk_path,
        pk.to_box().map_err(minisign_err("key"))?.into_string(),
    )?;
    eprintln!(
        "key ID {}\n  secret: {} (keep it offline)\n  public: {} (give it to every controller: \
         ~/.config/wisp/trusted-keys/ or --trusted-key)\nsign with: WISP_SIGNING_KEY={} cargo xtask build-runner",
        key_id(pk.keynum()),
        sk_path.display(),
        pk_path.display(),
        sk_path.display()
    );
    Ok(())
}

fn write_private(path: &Path, text: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}
