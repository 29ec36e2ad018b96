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
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use wisp_protocol::ops::{DirEnsureArgs, FileAbsentArgs, FileResult, FileStat};

use crate::safepath::{self, Resolved};

mod write;
pub(crate) use write::Writing;

/// Previous content is sent back for a diff only when it is text of at most this size.
const MAX_DIFF_BYTES: u64 = 1 << 20;

/// What an op did.
#[derive(Debug)]
pub(crate) struct Outcome<R = FileResult> {
    pub(crate) result: R,
    /// Bytes for DONE's data section (the previous content, for a diff; the content read).
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

/// What is at `r` (`None` when its directory or the entry itself is missing), never
/// following a link there; errors name `shown`.
fn lstat(r: Option<&Resolved>, shown: &Path) -> Result<Option<fs::Metadata>, String> {
    let Some(r) = r else { return Ok(None) };
    match fs::symlink_metadata(r.at()) {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", shown.display())),
    }
}

/// Opens the entry at `r` without following a link, and checks it is still the one `seen`
/// described (same device and inode): nothing swapped in between the look and the change.
fn open_same(r: &Resolved, seen: &fs::Metadata, shown: &Path, write: bool) -> Result<File, String> {
    let f = OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(r.at())
        .map_err(|e| format!("cannot open {}: {e}", shown.display()))?;
    let now = f
        .metadata()
        .map_err(|e| format!("{}: {e}", shown.display()))?;
    if now.dev() != seen.dev() || now.ino() != seen.ino() {
        return Err(format!(
            "{}: was replaced while it was being checked; nothing changed",
            shown.display()
        ));
    }
    Ok(f)
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
    /// In check mode, a path that would be created may name an owner or group an earlier op
    /// would have made (`check_new`): it would be created, whoever owns it.
    fn new(
        mode: Option<u32>,
        (owner, group): (Option<&str>, Option<&str>),
        existing: Option<&fs::Metadata>,
        default_mode: u32,
        check_new: bool,
    ) -> Result<Wanted, String> {
        let (me, my_group) = (
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        );
        let lenient = |r: Result<u32, String>, fallback| {
            r.or_else(|e| if check_new { Ok(fallback) } else { Err(e) })
        };
        Ok(Wanted {
            mode: mode.unwrap_or_else(|| existing.map_or(default_mode, |m| m.mode() & 0o7777)),
            uid: match owner {
                Some(o) => lenient(resolve_uid(o), me)?,
                None => existing.map_or(me, |m| m.uid()),
            },
            gid: match group {
                Some(g) => lenient(resolve_gid(g), my_group)?,
                None => existing.map_or(my_group, |m| m.gid()),
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

/// Resolves `path` for an op; a missing directory on the way is an error unless `check`
/// (then nothing exists there) or `make_parents` (then it is made).
fn resolve(path: &Path, make_parents: bool, check: bool) -> Result<Option<Resolved>, String> {
    match safepath::resolve(path, make_parents && !check)? {
        Some(r) => Ok(Some(r)),
        None if check => Ok(None),
        None => Err(format!(
            "{}: the parent directory {} does not exist (make_parents creates it)",
            path.display(),
            path.parent().unwrap_or(Path::new("/")).display()
        )),
    }
}

/// Makes a rename or removal in `path`'s directory durable. Best effort: some file systems
/// refuse fsync on directories, and the change itself has already happened.
fn sync_dir(r: &Resolved) {
    if let Ok(d) = File::open(r.dir_at()) {
        let _ = d.sync_all();
    }
}

/// `dir.ensure`: a directory at `args.path`, with the mode and owner asked for.
pub(crate) fn dir_ensure(args: &DirEnsureArgs) -> Result<Outcome, String> {
    let path = Path::new(&args.path);
    let resolved = resolve(path, args.make_parents, args.check)?;
    let existing = lstat(resolved.as_ref(), path)?;
    let before = kind_of(existing.as_ref());
    if !matches!(before, "none" | "dir") {
        return Err(format!(
            "{}: is a {before}, not a directory; remove it first (file.absent)",
            path.display()
        ));
    }
    let wanted = Wanted::new(
        args.mode_bits(),
        (args.owner.as_deref(), args.group.as_deref()),
        existing.as_ref(),
        0o755,
        args.check && existing.is_none(),
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
    let Some(r) = resolved.as_ref() else {
        return Err(format!("{}: no directory to create it in", path.display()));
    };
    if existing.is_none() {
        fs::create_dir(r.at()).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        sync_dir(r);
    }
    let d = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(r.at())
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    if let Some(m) = &existing {
        let now = d
            .metadata()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if now.ino() != m.ino() || now.dev() != m.dev() {
            return Err(format!(
                "{}: was replaced while it was being checked; nothing changed",
                path.display()
            ));
        }
    }
    wanted.apply(&d, path)?;
    Ok(Outcome {
        result,
        data: Vec::new(),
    })
}

/// `file.absent`: nothing at `args.path`.
pub(crate) fn absent(args: &FileAbsentArgs) -> Result<Outcome, String> {
    let path = Path::new(&args.path);
    let resolved = resolve(path, false, true)?;
    let existing = lstat(resolved.as_ref(), path)?;
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
    let Some(r) = resolved.as_ref() else {
        return Err(format!("{}: no directory", path.display()));
    };
    // Neither follows a link at the last component; remove_dir_all never follows one inside.
    let removed = if before == "dir" {
        fs::remove_dir_all(r.at())
    } else {
        fs::remove_file(r.at())
    };
    removed.map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
    sync_dir(r);
    Ok(Outcome {
        result,
        data: Vec::new(),
    })
}

/// `file.stat`.
pub(crate) fn stat(path: &str, read: Option<u64>) -> Result<Outcome<FileStat>, String> {
    let p = Path::new(path);
    let resolved = resolve(p, false, true)?;
    let existing = lstat(resolved.as_ref(), p)?;
    let mut s = FileStat {
        path: path.to_owned(),
        kind: kind_of(existing.as_ref()).into(),
        stamp: stamp(existing.as_ref()),
        ..Default::default()
    };
    let mut data = Vec::new();
    if let (Some(max), Some(m), Some(r)) = (read, &existing, &resolved)
        && m.is_file()
    {
        if m.len() > max {
            return Err(format!(
                "{path}: {} bytes, more than {max} to read",
                m.len()
            ));
        }
        open_same(r, m, p, false)?
            .read_to_end(&mut data)
            .map_err(|e| format!("cannot read {path}: {e}"))?;
    }
    if let Some(m) = existing {
        s.mode = Some(format!("{:04o}", m.mode() & 0o7777));
        s.uid = Some(m.uid());
        s.gid = Some(m.gid());
        s.size = Some(m.len());
        s.mtime = Some(m.mtime());
        if m.file_type().is_symlink() {
            s.target = resolved
                .as_ref()
                .and_then(|r| fs::read_link(r.at()).ok())
                .map(|t| t.to_string_lossy().into_owned());
        }
    }
    Ok(Outcome { result: s, data })
}

/// `INODE:SIZE:CTIME` of what is there (`none`): any change to it since changes this.
pub(crate) fn stamp(m: Option<&fs::Metadata>) -> String {
    m.map_or_else(
        || "none".into(),
        |m| format!("{}:{}:{}.{}", m.ino(), m.len(), m.ctime(), m.ctime_nsec()),
    )
}
