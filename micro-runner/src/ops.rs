//! The file ops: `file.write`, `file.absent`, `file.stat`, `dir.ensure`. Each compares what
//! is there with what is wanted first, changes only what differs (reporting exactly that), and
//! in check mode changes nothing.
//!
//! `file.write` is atomic: the content goes to a temporary file in the same directory, which
//! is given its mode and owner, synced, and renamed over the target; then the directory is
//! synced. A failure at any point removes the temporary file and leaves the old file as it was.
//!
//! What this module does not know: frames, sessions, processes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use wisp_protocol::ops::{DirEnsureArgs, FileAbsentArgs, FileResult, FileStat, FileWriteArgs};

/// Previous content is sent back for a diff only when it is text of at most this size.
const MAX_DIFF_BYTES: u64 = 1 << 20;

/// What an op did.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) result: FileResult,
    /// Bytes for DONE's data section (the previous content, for a diff).
    pub(crate) data: Vec<u8>,
}

impl Outcome {
    pub(crate) fn changed(&self) -> bool {
        !self.result.changes.is_empty()
    }
}

fn kind_of(meta: Option<&fs::Metadata>) -> &'static str {
    match meta.map(fs::Metadata::file_type) {
        None => "none",
        Some(t) if t.is_symlink() => "symlink",
        Some(t) if t.is_file() => "file",
        Some(t) if t.is_dir() => "dir",
        Some(_) => "other",
    }
}

fn lstat(path: &Path) -> Result<Option<fs::Metadata>, String> {
    match fs::symlink_metadata(path) {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// A user name or numeric uid.
fn resolve_uid(owner: &str) -> Result<u32, String> {
    if let Ok(uid) = owner.parse() {
        return Ok(uid);
    }
    match nix::unistd::User::from_name(owner) {
        Ok(Some(u)) => Ok(u.uid.as_raw()),
        _ => Err(format!("no user {owner:?} on this host")),
    }
}

/// A group name or numeric gid.
fn resolve_gid(group: &str) -> Result<u32, String> {
    if let Ok(gid) = group.parse() {
        return Ok(gid);
    }
    match nix::unistd::Group::from_name(group) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        _ => Err(format!("no group {group:?} on this host")),
    }
}

/// Mode, uid and gid wanted, given what exists (kept when not asked for).
struct Wanted {
    mode: u32,
    uid: u32,
    gid: u32,
}

impl Wanted {
    fn new(
        mode: Option<u32>,
        owner: Option<&str>,
        group: Option<&str>,
        existing: Option<&fs::Metadata>,
        default_mode: u32,
    ) -> Result<Wanted, String> {
        Ok(Wanted {
            mode: mode.unwrap_or_else(|| existing.map_or(default_mode, |m| m.mode() & 0o7777)),
            uid: match owner {
                Some(o) => resolve_uid(o)?,
                None => existing.map_or_else(|| nix::unistd::geteuid().as_raw(), |m| m.uid()),
            },
            gid: match group {
                Some(g) => resolve_gid(g)?,
                None => existing.map_or_else(|| nix::unistd::getegid().as_raw(), |m| m.gid()),
            },
        })
    }

    /// The metadata changes an existing path needs.
    fn changes(&self, m: &fs::Metadata) -> Vec<String> {
        let mut c = Vec::new();
        if m.mode() & 0o7777 != self.mode {
            c.push("mode".into());
        }
        if m.uid() != self.uid {
            c.push("owner".into());
        }
        if m.gid() != self.gid {
            c.push("group".into());
        }
        c
    }

    /// Applies owner, group and mode to an open file or directory. Ownership first: chown
    /// clears set-id bits, which the mode then sets again.
    fn apply(&self, f: &File, path: &Path) -> Result<(), String> {
        let m = f
            .metadata()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if m.uid() != self.uid || m.gid() != self.gid {
            std::os::unix::fs::fchown(f, Some(self.uid), Some(self.gid))
                .map_err(|e| format!("cannot set the owner of {}: {e}", path.display()))?;
        }
        f.set_permissions(fs::Permissions::from_mode(self.mode))
            .map_err(|e| format!("cannot set the mode of {}: {e}", path.display()))
    }
}

fn parent_of(path: &Path, make_parents: bool, check: bool) -> Result<(), String> {
    let Some(parent) = path.parent() else {
        return Ok(());
    };
    if parent.is_dir() || check {
        return Ok(());
    }
    if !make_parents {
        return Err(format!(
            "{}: the parent directory {} does not exist (make_parents creates it)",
            path.display(),
            parent.display()
        ));
    }
    fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))
}

/// `file.write`: makes `args.path` hold exactly `content`, with the mode and owner asked for.
pub(crate) fn write(args: &FileWriteArgs, content: &[u8], unique: &str) -> Result<Outcome, String> {
    let path = Path::new(&args.path);
    let existing = lstat(path)?;
    let before = kind_of(existing.as_ref());
    if !matches!(before, "none" | "file") {
        return Err(format!(
            "{}: is a {before}, not a regular file; remove it first (file.absent)",
            path.display()
        ));
    }
    let wanted = Wanted::new(
        args.mode_bits(),
        args.owner.as_deref(),
        args.group.as_deref(),
        existing.as_ref(),
        0o644,
    )?;
    let mut result = FileResult {
        path: args.path.clone(),
        before: before.into(),
        ..Default::default()
    };
    let mut previous = Vec::new();
    match &existing {
        None => result.changes.push("created".into()),
        Some(m) => {
            let old = if m.len() == content.len() as u64 || (args.diff && m.len() <= MAX_DIFF_BYTES)
            {
                Some(fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?)
            } else {
                None
            };
            if old.as_deref() != Some(content) {
                result.changes.push("content".into());
                if args.diff
                    && let Some(old) = old
                    && old.len() as u64 <= MAX_DIFF_BYTES
                    && std::str::from_utf8(&old).is_ok()
                {
                    previous = old;
                    result.previous_content = true;
                }
            }
            result.changes.extend(wanted.changes(m));
        }
    }
    if args.check || result.changes.is_empty() {
        return Ok(Outcome {
            result,
            data: previous,
        });
    }
    let content_changes = result
        .changes
        .iter()
        .any(|c| c == "created" || c == "content");
    if !content_changes {
        // Only mode or ownership differ: set them in place, no rewrite.
        let f = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        wanted.apply(&f, path)?;
        return Ok(Outcome {
            result,
            data: previous,
        });
    }
    parent_of(path, args.make_parents, false)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = path.with_file_name(format!(".{name}.wisp-{unique}.tmp"));
    let written = write_temp(&temp, content, &wanted);
    if let Err(e) = written {
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    if args.backup && existing.is_some() {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let backup = PathBuf::from(format!("{}.{secs}.bak", args.path));
        // A hard link: the old version stays whole under its new name, whatever happens next.
        if let Err(e) = fs::hard_link(path, &backup) {
            let _ = fs::remove_file(&temp);
            return Err(format!(
                "cannot back up {} as {}: {e}",
                path.display(),
                backup.display()
            ));
        }
        result.backup = Some(backup.to_string_lossy().into_owned());
    }
    if let Err(e) = fs::rename(&temp, path) {
        let _ = fs::remove_file(&temp);
        return Err(format!("cannot replace {}: {e}", path.display()));
    }
    sync_dir(path);
    Ok(Outcome {
        result,
        data: previous,
    })
}

fn write_temp(temp: &Path, content: &[u8], wanted: &Wanted) -> Result<(), String> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(temp)
        .map_err(|e| format!("cannot create {}: {e}", temp.display()))?;
    f.write_all(content)
        .map_err(|e| format!("cannot write {}: {e}", temp.display()))?;
    wanted.apply(&f, temp)?;
    f.sync_all()
        .map_err(|e| format!("cannot sync {}: {e}", temp.display()))
}

/// Makes a rename or removal in `path`'s directory durable. Best effort: some file systems
/// refuse fsync on directories, and the change itself has already happened.
fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent()
        && let Ok(d) = File::open(dir)
    {
        let _ = d.sync_all();
    }
}

/// `dir.ensure`: a directory at `args.path`, with the mode and owner asked for.
pub(crate) fn dir_ensure(args: &DirEnsureArgs) -> Result<Outcome, String> {
    let path = Path::new(&args.path);
    let existing = lstat(path)?;
    let before = kind_of(existing.as_ref());
    if !matches!(before, "none" | "dir") {
        return Err(format!(
            "{}: is a {before}, not a directory; remove it first (file.absent)",
            path.display()
        ));
    }
    let wanted = Wanted::new(
        args.mode_bits(),
        args.owner.as_deref(),
        args.group.as_deref(),
        existing.as_ref(),
        0o755,
    )?;
    let mut result = FileResult {
        path: args.path.clone(),
        before: before.into(),
        ..Default::default()
    };
    match &existing {
        None => result.changes.push("created".into()),
        Some(m) => result.changes = wanted.changes(m),
    }
    if args.check || result.changes.is_empty() {
        return Ok(Outcome {
            result,
            data: Vec::new(),
        });
    }
    if existing.is_none() {
        parent_of(path, args.make_parents, false)?;
        fs::create_dir(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        sync_dir(path);
    }
    let d = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    wanted.apply(&d, path)?;
    Ok(Outcome {
        result,
        data: Vec::new(),
    })
}

/// `file.absent`: nothing at `args.path`.
pub(crate) fn absent(args: &FileAbsentArgs) -> Result<Outcome, String> {
    let path = Path::new(&args.path);
    let existing = lstat(path)?;
    let before = kind_of(existing.as_ref());
    let mut result = FileResult {
        path: args.path.clone(),
        before: before.into(),
        ..Default::default()
    };
    if before == "dir" && !args.recursive {
        return Err(format!(
            "{}: is a directory; recursive removes it and everything in it",
            path.display()
        ));
    }
    if before != "none" {
        result.changes.push("removed".into());
    }
    if args.check || before == "none" {
        return Ok(Outcome {
            result,
            data: Vec::new(),
        });
    }
    let removed = if before == "dir" {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    removed.map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
    sync_dir(path);
    Ok(Outcome {
        result,
        data: Vec::new(),
    })
}

/// `file.stat`.
pub(crate) fn stat(path: &str) -> Result<FileStat, String> {
    let p = Path::new(path);
    let existing = lstat(p)?;
    let mut s = FileStat {
        path: path.to_owned(),
        kind: kind_of(existing.as_ref()).into(),
        ..Default::default()
    };
    if let Some(m) = existing {
        s.mode = Some(format!("{:04o}", m.mode() & 0o7777));
        s.uid = Some(m.uid());
        s.gid = Some(m.gid());
        s.size = Some(m.len());
        s.mtime = Some(m.mtime());
        if m.file_type().is_symlink() {
            s.target = fs::read_link(p)
                .ok()
                .map(|t| t.to_string_lossy().into_owned());
        }
    }
    Ok(s)
}
