//! `file.write`, streamed: the content is compared with the file there and written to a
//! temporary file beside it as it arrives, part by part, so the runner never holds more than
//! one part of it. A file whose content turns out unchanged is never rewritten: the temporary
//! file is started only at the first byte that differs (with the unchanged start copied from
//! the old file).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use wisp_protocol::ops::{FileResult, FileWriteArgs};

use super::{MAX_DIFF_BYTES, Outcome, Wanted, kind_of, lstat, open_same, resolve, sync_dir};
use crate::safepath::{self, Resolved};

/// A `file.write` under way. Dropped unfinished, it removes its temporary file.
pub(crate) struct Writing {
    args: FileWriteArgs,
    path: PathBuf,
    resolved: Option<Resolved>,
    existing: Option<fs::Metadata>,
    wanted: Wanted,
    result: FileResult,
    /// The old content, when small enough for a diff (or to compare in memory).
    old_bytes: Option<Vec<u8>>,
    /// The old file, open to compare against part by part (same size as the new content).
    old_file: Option<File>,
    /// The new content differs from the old (or there is no old file).
    differs: bool,
    /// Bytes of new content seen so far.
    offset: u64,
    /// The new file being written beside the target.
    temp: Option<(PathBuf, File)>,
}

impl std::fmt::Debug for Writing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Writing({})", self.path.display())
    }
}

impl Writing {
    /// Looks at the target and gets ready for `size` bytes of content.
    pub(crate) fn begin(args: &FileWriteArgs, size: u64) -> Result<Writing, String> {
        let path = PathBuf::from(&args.path);
        let resolved = resolve(&path, args.make_parents, args.check)?;
        let existing = lstat(resolved.as_ref(), &path)?;
        if let Some(want) = &args.if_stamp
            && *want != super::stamp(existing.as_ref())
        {
            return Err(format!(
                "{}: changed since it was read; nothing was written",
                path.display()
            ));
        }
        let before = kind_of(existing.as_ref());
        if !matches!(before, "none" | "file") {
            return Err(format!(
                "{}: is a {before}, not a regular file; remove it first (file.absent)",
                path.display()
            ));
        }
        let wanted = Wanted::new(
            args.mode_bits(),
            (args.owner.as_deref(), args.group.as_deref()),
            existing.as_ref(),
            0o644,
            args.check && existing.is_none(),
        )?;
        let result = FileResult {
            path: args.path.clone(),
            before: before.into(),
            ..Default::default()
        };
        let (mut old_bytes, mut old_file) = (None, None);
        if let (Some(m), Some(r)) = (&existing, &resolved) {
            if args.diff && m.len() <= MAX_DIFF_BYTES {
                let mut old = Vec::new();
                open_same(r, m, &path, false)?
                    .read_to_end(&mut old)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                old_bytes = Some(old);
            } else if m.len() == size {
                old_file = Some(open_same(r, m, &path, false)?);
            }
        }
        let differs = existing.as_ref().is_none_or(|m| m.len() != size);
        let mut w = Writing {
            args: args.clone(),
            path,
            resolved,
            existing,
            wanted,
            result,
            old_bytes,
            old_file,
            differs,
            offset: 0,
            temp: None,
        };
        if w.differs {
            w.start_temp()?;
        }
        Ok(w)
    }

    /// The next part of the content.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Result<(), String> {
        if !self.differs && !self.same_as_old(bytes)? {
            self.differs = true;
            self.start_temp()?;
        }
        let shown = self.path.display();
        if let Some((_, f)) = &mut self.temp {
            f.write_all(bytes)
                .map_err(|e| format!("cannot write beside {shown}: {e}"))?;
        }
        self.offset += bytes.len() as u64;
        Ok(())
    }

    /// Whether `bytes` at the current offset are what the old file holds there.
    fn same_as_old(&mut self, bytes: &[u8]) -> Result<bool, String> {
        let at = usize::try_from(self.offset).unwrap_or(usize::MAX);
        if let Some(old) = &self.old_bytes {
            return Ok(old.get(at..at.saturating_add(bytes.len())) == Some(bytes));
        }
        let Some(f) = &mut self.old_file else {
            return Ok(false);
        };
        let mut old = vec![0; bytes.len()];
        f.read_exact(&mut old)
            .map_err(|e| format!("cannot read {}: {e}", self.path.display()))?;
        Ok(old == bytes)
    }

    /// Starts the new file (not in check mode), with the start of the content so far, which
    /// equals the old file's start.
    fn start_temp(&mut self) -> Result<(), String> {
        let (Some(r), false) = (&self.resolved, self.args.check) else {
            return Ok(());
        };
        let (temp, mut f) = create_temp(r, &self.path)?;
        let shown = self.path.display();
        let mut copy = || -> io::Result<()> {
            if self.offset == 0 {
                return Ok(());
            }
            if let Some(old) = &self.old_bytes {
                let end = usize::try_from(self.offset)
                    .unwrap_or(usize::MAX)
                    .min(old.len());
                return f.write_all(&old[..end]);
            }
            if let Some(old) = &mut self.old_file {
                old.seek(SeekFrom::Start(0))?;
                // A plain loop: std's io::copy brings in kernel-copy paths the runner's size
                // budget cannot afford.
                let mut left = self.offset;
                let mut buf = vec![0; 64 << 10];
                while left > 0 {
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                    old.read_exact(&mut buf[..n])?;
                    f.write_all(&buf[..n])?;
                    left -= n as u64;
                }
            }
            Ok(())
        };
        if let Err(e) = copy() {
            let _ = fs::remove_file(&temp);
            return Err(format!("cannot write beside {shown}: {e}"));
        }
        self.temp = Some((temp, f));
        Ok(())
    }

    /// All content has come: replaces the file (or only sets its mode and owner, or does
    /// nothing) and says what changed.
    pub(crate) fn finish(mut self) -> Result<Outcome, String> {
        let path = self.path.clone();
        let mut previous = Vec::new();
        match &self.existing {
            None => self.result.changes.push("created".into()),
            Some(m) => {
                if self.differs {
                    self.result.changes.push("content".into());
                    if self.args.diff
                        && let Some(old) = self.old_bytes.take()
                        && std::str::from_utf8(&old).is_ok()
                    {
                        previous = old;
                        self.result.previous_content = true;
                    }
                }
                let meta = self.wanted.changes(m);
                self.result.changes.extend(meta);
            }
        }
        let done = |w: &mut Writing, previous| {
            Ok(Outcome {
                result: std::mem::take(&mut w.result),
                data: previous,
            })
        };
        if self.args.check || self.result.changes.is_empty() {
            return done(&mut self, previous);
        }
        let Some(r) = self.resolved.take() else {
            return Err(format!("{}: no directory to write in", path.display()));
        };
        if !self.differs {
            // Only mode or ownership differ: set them in place, no rewrite, on the very file
            // that was checked (a link or another file swapped in is refused).
            if let Some(m) = &self.existing {
                let f = open_same(&r, m, &path, false)?;
                self.wanted.apply(&f, &path)?;
            }
            return done(&mut self, previous);
        }
        let Some((temp, f)) = self.temp.take() else {
            return Err(format!("{}: nothing was written", path.display()));
        };
        let remove = |e: String| {
            let _ = fs::remove_file(&temp);
            Err(e)
        };
        if let Err(e) = self.wanted.apply(&f, &path).and_then(|()| {
            f.sync_all()
                .map_err(|e| format!("cannot sync beside {}: {e}", path.display()))
        }) {
            return remove(e);
        }
        if self.args.backup && self.existing.is_some() {
            match backup(&r, &path) {
                Ok(b) => self.result.backup = Some(b),
                Err(e) => return remove(e),
            }
        }
        if let Err(e) = fs::rename(&temp, r.at()) {
            return remove(format!("cannot replace {}: {e}", path.display()));
        }
        sync_dir(&r);
        done(&mut self, previous)
    }
}

impl Drop for Writing {
    fn drop(&mut self) {
        if let Some((temp, _)) = self.temp.take() {
            let _ = fs::remove_file(temp);
        }
    }
}

/// A hard link to the old version beside it, `NAME.SECONDS.bak`, or with a random part when
/// that name is taken: the old version stays whole under its new name, whatever happens next.
fn backup(r: &Resolved, path: &Path) -> Result<String, String> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let name = r.name().to_string_lossy();
    let mut last = String::new();
    for attempt in 0..8 {
        let bak = if attempt == 0 {
            format!("{name}.{secs}.bak")
        } else {
            format!("{name}.{secs}.{}.bak", safepath::random_hex())
        };
        // link() does not follow a link at the source, and fails on any existing name.
        match fs::hard_link(r.at(), r.sibling(bak.as_ref())) {
            Ok(()) => return Ok(path.with_file_name(&bak).to_string_lossy().into_owned()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = e.to_string(),
            Err(e) => {
                return Err(format!("cannot back up {} as {bak}: {e}", path.display()));
            }
        }
    }
    Err(format!("cannot back up {}: {last}", path.display()))
}

/// A new file beside the target, under a random name created with O_EXCL and O_NOFOLLOW (a
/// name someone else took is skipped, and never removed), mode 0600 until it is finished.
fn create_temp(r: &Resolved, path: &Path) -> Result<(PathBuf, File), String> {
    let name = r.name().to_string_lossy();
    for _ in 0..8 {
        let temp = r.sibling(format!(".{name}.wisp-{}.tmp", safepath::random_hex()).as_ref());
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&temp)
        {
            Ok(f) => return Ok((temp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(format!(
                    "cannot create a temporary file beside {}: {e}",
                    path.display()
                ));
            }
        }
    }
    Err(format!(
        "cannot create a temporary file beside {}: every name tried was taken",
        path.display()
    ))
}
