//! Runners carried inside the `wisp` executable, so one file is all a user needs.
//!
//! `wisp bundle --out FILE` writes a copy of the running `wisp` with the runners it would push
//! (located and signature-checked as for any run) appended after the ELF image, which the
//! loader ignores:
//!
//! ```text
//! [wisp as built][runner][signature]...[index JSON][index length: u64 LE]["WISPBNDL"]
//! ```
//!
//! A bundled runner is checked against the trusted keys on every run like any other: the
//! bundle carries signatures, never trust.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

const MAGIC: &[u8; 8] = b"WISPBNDL";

/// One runner in a bundle.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    arch: String,
    offset: u64,
    len: u64,
    sig_offset: u64,
    sig_len: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Index {
    runners: Vec<Entry>,
}

/// A runner read from a bundle: its bytes and its signature's text.
#[derive(Debug)]
pub struct Bundled {
    /// `x86_64`, `aarch64`.
    pub arch: String,
    /// The executable.
    pub bytes: Vec<u8>,
    /// The minisign signature.
    pub signature: String,
}

/// Writes `out`: this executable with `runners` (arch, file) and their `.minisig` appended.
pub fn write(out: &Path, runners: &[(String, PathBuf)]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let exe = std::env::current_exe()?;
    let mut base = std::fs::read(&exe)?;
    // Bundling a bundle: start again from the executable alone.
    if let Some(end) = image_len(&base) {
        base.truncate(end);
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o755)
        .open(out)?;
    file.write_all(&base)?;
    let mut offset = base.len() as u64;
    let mut index = Index {
        runners: Vec::new(),
    };
    for (arch, path) in runners {
        let bytes = std::fs::read(path)?;
        let mut sig_path = path.as_os_str().to_owned();
        sig_path.push(".minisig");
        let sig = std::fs::read(&sig_path)?;
        file.write_all(&bytes)?;
        file.write_all(&sig)?;
        index.runners.push(Entry {
            arch: arch.clone(),
            offset,
            len: bytes.len() as u64,
            sig_offset: offset + bytes.len() as u64,
            sig_len: sig.len() as u64,
        });
        offset += (bytes.len() + sig.len()) as u64;
    }
    let json = serde_json::to_vec(&index).map_err(std::io::Error::other)?;
    file.write_all(&json)?;
    file.write_all(&(json.len() as u64).to_le_bytes())?;
    file.write_all(MAGIC)?;
    file.sync_all()
}

/// Where the executable image ends, when `bytes` carries a bundle.
fn image_len(bytes: &[u8]) -> Option<usize> {
    let (index, index_start) = parse_index(bytes)?;
    let first = index.runners.iter().map(|e| e.offset).min();
    Some(first.map_or(index_start, |o| usize::try_from(o).unwrap_or(index_start)))
}

fn parse_index(bytes: &[u8]) -> Option<(Index, usize)> {
    let tail = bytes.len().checked_sub(16)?;
    if &bytes[tail + 8..] != MAGIC {
        return None;
    }
    let len = usize::try_from(u64::from_le_bytes(bytes[tail..tail + 8].try_into().ok()?)).ok()?;
    let start = tail.checked_sub(len)?;
    let index = serde_json::from_slice(&bytes[start..tail]).ok()?;
    Some((index, start))
}

/// The runners this executable carries, if any.
pub fn carried() -> Vec<Bundled> {
    let Ok(exe) = std::env::current_exe() else {
        return Vec::new();
    };
    read_from(&exe).unwrap_or_default()
}

fn read_from(path: &Path) -> Option<Vec<Bundled>> {
    let mut file = std::fs::File::open(path).ok()?;
    let size = file.metadata().ok()?.len();
    // The tail first: a plain `wisp` costs one small read.
    let mut read_at = |offset: u64, len: u64| -> Option<Vec<u8>> {
        if offset.checked_add(len)? > size {
            return None;
        }
        let mut buf = vec![0u8; usize::try_from(len).ok()?];
        file.seek(SeekFrom::Start(offset)).ok()?;
        file.read_exact(&mut buf).ok()?;
        Some(buf)
    };
    let tail = read_at(size.checked_sub(16)?, 16)?;
    if &tail[8..] != MAGIC {
        return None;
    }
    let len = u64::from_le_bytes(tail[..8].try_into().ok()?);
    let index: Index = serde_json::from_slice(&read_at(size.checked_sub(16 + len)?, len)?).ok()?;
    index
        .runners
        .iter()
        .map(|e| {
            Some(Bundled {
                arch: e.arch.clone(),
                bytes: read_at(e.offset, e.len)?,
                signature: String::from_utf8(read_at(e.sig_offset, e.sig_len)?).ok()?,
            })
        })
        .collect()
}
