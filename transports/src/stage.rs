//! Staging: a private copy of the runner in a fresh 0700 directory, exactly as a remote push
//! lays it out, so the runner's self-deletion removes the copy and never the original.

use std::fs::{self, DirBuilder, File};
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::TransportError;

/// Name of the runner executable inside its private directory.
pub const RUNNER_FILE: &str = "wisp-runner";

/// A runner copied into its private directory.
#[derive(Debug)]
pub struct StagedRunner {
    /// The private directory (mode 0700, fresh).
    pub dir: PathBuf,
    /// The executable inside it.
    pub exe: PathBuf,
}

impl StagedRunner {
    /// Removes the directory if the runner did not (it failed to start, for instance).
    pub fn remove_leftovers(&self) {
        if self.dir.exists() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// The directory staging happens under: `$TMPDIR`, else `/tmp`.
pub fn staging_base() -> PathBuf {
    std::env::var_os("TMPDIR")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from("/tmp"), PathBuf::from)
}

/// Copies the runner file `runner` into a fresh private directory under `base`.
pub fn stage(runner: &Path, base: &Path) -> Result<StagedRunner, TransportError> {
    let bytes = fs::read(runner).map_err(|source| TransportError::Stage {
        path: runner.to_owned(),
        source,
    })?;
    stage_bytes(&bytes, base)
}

/// Writes a runner's bytes into a fresh private directory under `base`.
pub fn stage_bytes(runner: &[u8], base: &Path) -> Result<StagedRunner, TransportError> {
    let dir = base.join(format!("wisp-{}", random_token()));
    // `create` (not `create_dir_all`) fails if the name exists: a directory planted by
    // someone else is never reused.
    DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|source| TransportError::Stage {
            path: dir.clone(),
            source,
        })?;
    let exe = dir.join(RUNNER_FILE);
    let staged = StagedRunner { dir, exe };
    let copy = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o700)
        .open(&staged.exe)
        .and_then(|mut f| std::io::Write::write_all(&mut f, runner));
    if let Err(source) = copy {
        let path = staged.exe.clone();
        staged.remove_leftovers();
        return Err(TransportError::Stage { path, source });
    }
    Ok(staged)
}

/// How often a spawn of a freshly staged executable is retried when it is still "busy".
pub const BUSY_RETRIES: u32 = 5;

/// True for the error exec gives when a file is still open for writing somewhere (ETXTBSY).
///
/// A freshly staged copy can be: if another thread of this process forks while the copy is
/// open, that child holds the descriptor until its own exec, a few milliseconds at most.
pub fn is_text_busy(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::ETXTBSY)
}

/// Calls `spawn` again, with a short growing pause, while it fails with ETXTBSY.
pub fn retry_text_busy<T>(mut spawn: impl FnMut() -> std::io::Result<T>) -> std::io::Result<T> {
    let mut attempt = 0;
    loop {
        match spawn() {
            Err(e) if is_text_busy(&e) && attempt < BUSY_RETRIES => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(10 * u64::from(attempt)));
            }
            other => return other,
        }
    }
}

/// 24 random characters from `[0-9a-f]`, from the kernel's random source.
pub fn random_token() -> String {
    let mut bytes = [0u8; 12];
    let filled = File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if filled.is_err() {
        // Without /dev/urandom, fall back to values that still differ per call and process.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let mix = t.as_nanos() ^ (u128::from(std::process::id()) << 64);
        bytes.copy_from_slice(&mix.to_le_bytes()[..12]);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn stages_a_private_copy() {
        let base = std::env::temp_dir().join(format!("wisp-stage-test-{}", random_token()));
        fs::create_dir(&base).unwrap();
        let src = base.join("orig");
        fs::write(&src, b"#!/bin/sh\n").unwrap();
        let s = stage(&src, &base).unwrap();
        assert_eq!(fs::metadata(&s.dir).unwrap().mode() & 0o777, 0o700);
        assert_eq!(fs::metadata(&s.exe).unwrap().mode() & 0o777, 0o700);
        assert_eq!(fs::read(&s.exe).unwrap(), b"#!/bin/sh\n");
        s.remove_leftovers();
        assert!(!s.dir.exists());
        assert!(src.exists(), "the original is never touched");
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn tokens_differ() {
        assert_ne!(random_token(), random_token());
        assert_eq!(random_token().len(), 24);
    }
}
