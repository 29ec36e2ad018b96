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
    /// Where the executable image ends and the bundle begins.
    image_len: u64,
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
    let size = base.len() as u64;
    if let Some(index) = read_index(&mut std::io::Cursor::new(&base), size) {
        base.truncate(usize::try_from(index.image_len).unwrap_or(base.len()));
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
        image_len: offset,
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

/// `len` bytes at `offset`, when the file of `size` bytes has them.
fn read_at<R: Read + Seek>(r: &mut R, size: u64, offset: u64, len: u64) -> Option<Vec<u8>> {
    if offset.checked_add(len)? > size {
        return None;
    }
    let mut buf = vec![0u8; usize::try_from(len).ok()?];
    r.seek(SeekFrom::Start(offset)).ok()?;
    r.read_exact(&mut buf).ok()?;
    Some(buf)
}

/// The bundle's index, when the file ends with one. Only the tail is read otherwise.
fn read_index<R: Read + Seek>(r: &mut R, size: u64) -> Option<Index> {
    let tail = read_at(r, size, size.checked_sub(16)?, 16)?;
    if &tail[8..] != MAGIC {
        return None;
    }
    let len = u64::from_le_bytes(tail[..8].try_into().ok()?);
    serde_json::from_slice(&read_at(r, size, size.checked_sub(16 + len)?, len)?).ok()
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
    let index = read_index(&mut file, size)?;
    index
        .runners
        .iter()
        .map(|e| {
            Some(Bundled {
                arch: e.arch.clone(),
                bytes: read_at(&mut file, size, e.offset, e.len)?,
                signature: String::from_utf8(read_at(&mut file, size, e.sig_offset, e.sig_len)?)
                    .ok()?,
            })
        })
        .collect()
}
