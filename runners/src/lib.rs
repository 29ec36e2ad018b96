//! Finding runner executables and checking their signatures before anything is pushed.
//!
//! Where runners are looked for: `--runner`, then `$WISP_RUNNER`, then `wisp-runner-<arch>`
//! beside the `wisp` executable, then the build tree
//! (`target/<arch>-unknown-linux-musl/runner/wisp-runner`, where `cargo xtask build-runner`
//! puts them), then a plain `wisp-runner` beside `wisp`.
//!
//! Each runner needs `<file>.minisig` beside it, a minisign signature by a trusted key; the
//! file is read once, verified, and those very bytes are what every host receives. Trusted
//! keys: `--trusted-key FILE`, every `*.pub` in `$XDG_CONFIG_HOME/wisp/trusted-keys/` (else
//! `~/.config/wisp/trusted-keys/`), the release key built into this controller (when it was
//! built with `WISP_RELEASE_PUBKEY`), and, for a controller run from a cargo build tree, that
//! tree's dev key (`target/wisp-dev-signing/wisp-dev.pub`, which `cargo xtask build-runner`
//! signs with). `--insecure-unsigned-runner` skips the check, loudly.

pub mod bundle;

use std::path::{Path, PathBuf};

use minisign_verify::{PublicKey, Signature};
use wisp_transports::RunnerBinaries;

/// Architectures runners are built for.
pub const ARCHES: &[&str] = &["x86_64", "aarch64"];

/// Why no runner can be used.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// No runner for this machine's architecture.
    #[error(
        "no wisp-runner found for {arch}; looked in: {}\nbuild one with `cargo xtask build-runner`, or point WISP_RUNNER (or --runner) at one",
        looked.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    NotFound {
        /// The architecture.
        arch: String,
        /// Where it looked.
        looked: Vec<PathBuf>,
    },
    /// A runner whose signature is missing, untrusted or wrong.
    #[error("{0}")]
    Signature(String),
    /// A runner or key file that cannot be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// A key runners may be signed with.
#[derive(Debug)]
struct TrustedKey {
    id: String,
    key: PublicKey,
    source: String,
}

/// The keys this controller trusts, or the explicit choice to trust nothing and check nothing.
#[derive(Debug)]
pub struct Trust {
    keys: Vec<TrustedKey>,
    insecure: bool,
}

/// minisign's key ID from a key or signature file's text: bytes 2 to 10 of the base64 line,
/// read as a little-endian number, in hex.
fn key_id(box_text: &str) -> Option<String> {
    let line = box_text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.contains(':'))?;
    let bytes = data_encoding::BASE64.decode(line.as_bytes()).ok()?;
    let id = bytes.get(2..10)?;
    Some(id.iter().rev().map(|b| format!("{b:02X}")).collect())
}

impl Trust {
    /// The trusted keys from every source; `insecure` turns checking off.
    pub fn load(extra: &[PathBuf], insecure: bool) -> Result<Trust, RunnerError> {
        let mut trust = Trust {
            keys: Vec::new(),
            insecure,
        };
        if let Some(text) = option_env!("WISP_RELEASE_PUBKEY") {
            trust.add(text, "the release key built into wisp")?;
        }
        let config = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|d| Path::new(d).is_absolute())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".config")));
        if let Some(dir) = config.map(|c| c.join("wisp/trusted-keys"))
            && let Ok(entries) = std::fs::read_dir(&dir)
        {
            let mut files: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "pub"))
                .collect();
            files.sort();
            for f in files {
                trust.add_file(&f)?;
            }
        }
        for f in extra {
            trust.add_file(f)?;
        }
        if let Some(dev) = build_tree_dev_key() {
            trust.add_file(&dev)?;
        }
        Ok(trust)
    }

    fn add_file(&mut self, path: &Path) -> Result<(), RunnerError> {
        let text = std::fs::read_to_string(path).map_err(|source| RunnerError::Read {
            path: path.to_owned(),
            source,
        })?;
        self.add(&text, &path.display().to_string())
    }

    fn add(&mut self, text: &str, source: &str) -> Result<(), RunnerError> {
        let text = text.trim();
        let key = if text.contains('\n') {
            PublicKey::decode(text)
        } else {
            PublicKey::from_base64(text)
        };
        let bad = || RunnerError::Signature(format!("{source}: not a minisign public key"));
        let key = key.map_err(|_| bad())?;
        let id = if text.contains('\n') {
            key_id(text)
        } else {
            key_id(&format!("untrusted comment: x\n{text}"))
        }
        .ok_or_else(bad)?;
        self.keys.push(TrustedKey {
            id,
            key,
            source: source.to_owned(),
        });
        Ok(())
    }

    /// Checks `bytes` (read from `path`) against `path.minisig`; says which key signed it.
    fn check(&self, path: &Path, bytes: &[u8]) -> Result<String, RunnerError> {
        let mut sig_path = path.as_os_str().to_owned();
        sig_path.push(".minisig");
        let sig_path = PathBuf::from(sig_path);
        let Ok(text) = std::fs::read_to_string(&sig_path) else {
            return Err(RunnerError::Signature(format!(
                "runner {} is not signed: {} is missing. Sign runners with `cargo xtask \
                 build-runner` (WISP_SIGNING_KEY for a release key), or pass \
                 --insecure-unsigned-runner to push it unchecked (development only)",
                path.display(),
                sig_path.display()
            )));
        };
        self.check_text(path, bytes, &text, &sig_path.display().to_string())
    }

    /// Checks `bytes` against a signature's `text` (from `sig_name`).
    fn check_text(
        &self,
        path: &Path,
        bytes: &[u8],
        text: &str,
        sig_name: &str,
    ) -> Result<String, RunnerError> {
        let sig = Signature::decode(text).map_err(|e| {
            RunnerError::Signature(format!("{sig_name}: not a minisign signature ({e})"))
        })?;
        let id = key_id(text).unwrap_or_else(|| "?".into());
        let Some(key) = self.keys.iter().find(|k| k.id == id) else {
            let known = if self.keys.is_empty() {
                "none".to_owned()
            } else {
                self.keys
                    .iter()
                    .map(|k| format!("{} ({})", k.id, k.source))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(RunnerError::Signature(format!(
                "runner {} is signed by key {id}, which this controller does not trust \
                 (trusted: {known}); add the signer's public key with --trusted-key or to \
                 ~/.config/wisp/trusted-keys/",
                path.display()
            )));
        };
        key.key.verify(bytes, &sig, false).map_err(|_| {
            RunnerError::Signature(format!(
                "runner {} does not match its signature by key {id}: the file changed after \
                 it was signed. Rebuild and sign it (`cargo xtask build-runner`)",
                path.display()
            ))
        })?;
        Ok(format!("signature ok, key {id} ({})", key.source))
    }
}

/// The dev key of the build tree this controller runs from (`target/debug/wisp` →
/// `target/wisp-dev-signing/wisp-dev.pub`), if it is one.
fn build_tree_dev_key() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let profile_dir = exe.parent()?;
    // target/debug, target/release, or target/debug/deps for test binaries.
    let target = if profile_dir.ends_with("deps") {
        profile_dir.parent()?.parent()?
    } else {
        profile_dir.parent()?
    };
    let key = target.join("wisp-dev-signing/wisp-dev.pub");
    (target.join("CACHEDIR.TAG").exists() && key.is_file()).then_some(key)
}

/// The runner files for each architecture, as found on disk (explicit choice first).
pub fn find(explicit: Option<&Path>) -> Result<Vec<(String, PathBuf)>, RunnerError> {
    let native = std::env::consts::ARCH;
    if let Some(path) = explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("WISP_RUNNER").map(PathBuf::from))
    {
        if !path.is_file() {
            return Err(RunnerError::NotFound {
                arch: native.into(),
                looked: vec![path],
            });
        }
        return Ok(vec![(native.to_owned(), path)]);
    }
    let mut paths = Vec::new();
    let mut looked = Vec::new();
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf));
    for arch in ARCHES {
        let mut candidates = Vec::new();
        if let Some(dir) = &exe_dir {
            candidates.push(dir.join(format!("wisp-runner-{arch}")));
            // target/debug/wisp → target/<triple>/runner/wisp-runner. Before a plain
            // `wisp-runner` beside it: in a build tree that one is the host (glibc) build
            // that `cargo test` leaves, possibly stale.
            if let Some(target) = dir.parent() {
                candidates
                    .push(target.join(format!("{arch}-unknown-linux-musl/runner/wisp-runner")));
            }
            if *arch == native {
                candidates.push(dir.join("wisp-runner"));
            }
        }
        match candidates.iter().find(|p| p.is_file()) {
            Some(p) => paths.push(((*arch).to_owned(), p.clone())),
            None if *arch == native => looked.extend(candidates),
            None => {}
        }
    }
    if !paths.iter().any(|(a, _)| a == native) {
        return Err(RunnerError::NotFound {
            arch: native.into(),
            looked,
        });
    }
    Ok(paths)
}

/// Collects the runners this controller will push, each read once and checked against
/// `trust`: `--runner` or `$WISP_RUNNER` when given, else the ones this executable carries
/// (`wisp bundle`), else the files [`find`] finds. With `verbose`, says on stderr what was
/// checked.
pub fn locate(
    explicit: Option<&Path>,
    trust: &Trust,
    verbose: bool,
) -> Result<Located, RunnerError> {
    if trust.insecure {
        eprintln!(
            "wisp: WARNING: --insecure-unsigned-runner: runner signatures are not checked; \
             whoever can change the runner files controls every host this run reaches"
        );
    }
    let mut found = RunnerBinaries::default();
    let mut checks = Vec::new();
    let mut report = |arch: &str, what: &Path, len: usize, checked: &str| {
        let line = format!("runner {arch}: {} ({len} bytes): {checked}", what.display());
        if verbose {
            eprintln!("wisp: {line}");
        }
        checks.push(line);
    };
    let explicit_given = explicit.is_some() || std::env::var_os("WISP_RUNNER").is_some();
    let carried = if explicit_given {
        Vec::new()
    } else {
        bundle::carried()
    };
    if carried.iter().any(|b| b.arch == std::env::consts::ARCH) {
        let exe = std::env::current_exe().unwrap_or_default();
        for b in carried {
            let what = PathBuf::from(format!("{} (bundled)", exe.display()));
            let checked = if trust.insecure {
                "signature NOT checked".to_owned()
            } else {
                trust.check_text(&what, &b.bytes, &b.signature, "its bundled signature")?
            };
            report(&b.arch, &what, b.bytes.len(), &checked);
            found.insert(b.arch, what, b.bytes);
        }
        return Ok(Located {
            binaries: found,
            checks,
        });
    }
    for (arch, path) in find(explicit)? {
        let bytes = std::fs::read(&path).map_err(|source| RunnerError::Read {
            path: path.clone(),
            source,
        })?;
        let checked = if trust.insecure {
            "signature NOT checked".to_owned()
        } else {
            trust.check(&path, &bytes)?
        };
        report(&arch, &path, bytes.len(), &checked);
        found.insert(arch, path, bytes);
    }
    Ok(Located {
        binaries: found,
        checks,
    })
}

/// The runners a run will push, and how each was checked (for the audit trail).
#[derive(Debug)]
pub struct Located {
    /// The checked bytes, by arch.
    pub binaries: RunnerBinaries,
    /// One line per runner: arch, file, size, and the key that signed it (or that it was not
    /// checked).
    pub checks: Vec<String>,
}

impl Located {
    /// No runners: the run pushes none itself (workers on the bus push their own).
    pub fn none() -> Located {
        Located {
            binaries: RunnerBinaries::default(),
            checks: Vec::new(),
        }
    }
}

/// Checks the runner files [`find`] finds, for `wisp bundle`; returns them.
pub fn checked_files(
    explicit: Option<&Path>,
    trust: &Trust,
) -> Result<Vec<(String, PathBuf)>, RunnerError> {
    let files = find(explicit)?;
    for (_, path) in &files {
        let bytes = std::fs::read(path).map_err(|source| RunnerError::Read {
            path: path.clone(),
            source,
        })?;
        trust.check(path, &bytes)?;
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_read_as_minisign_prints_them() {
        // A key number of 01 02 .. 08 (little-endian) is ID 0807060504030201.
        let mut raw = vec![b'E', b'd'];
        raw.extend(1u8..=8);
        raw.extend([0u8; 32]);
        let text = format!(
            "untrusted comment: minisign public key\n{}\n",
            data_encoding::BASE64.encode(&raw)
        );
        assert_eq!(key_id(&text).as_deref(), Some("0807060504030201"));
        assert_eq!(key_id("untrusted comment: x\n!!!\n"), None);
    }
}
