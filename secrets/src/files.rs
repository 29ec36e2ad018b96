//! Files wisp writes on the operator's machine, safe in a directory another user can write:
//! nothing follows a link planted there, nothing lands in a file someone else owns or has
//! linked elsewhere, and a replacement appears whole or not at all.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Replaces `path` with `bytes` (mode `mode`): written to a fresh file beside it (created
/// exclusively under an unpredictable name, never through a link), synced, then renamed over
/// `path`. On failure `path` is unchanged and the fresh file is gone.
pub fn replace(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let (tmp, mut file) = create_beside(path, mode)?;
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// A new file beside `path`, created with O_EXCL and O_NOFOLLOW under a random name; a name
/// someone already took is skipped, not waited on or removed.
fn create_beside(path: &Path, mode: u32) -> io::Result<(PathBuf, File)> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let name = path
        .file_name()
        .map_or_else(|| "wisp".into(), |n| n.to_string_lossy().into_owned());
    let mut last = io::Error::other("no attempt made");
    for _ in 0..8 {
        let tmp_name = format!(".{name}.{}.tmp", wisp_transports::stage::random_token());
        let tmp = dir.map_or_else(|| PathBuf::from(&tmp_name), |d| d.join(&tmp_name));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// A new directory (mode 0700) in `base` under a random name starting with `prefix`; a name
/// someone already took (a directory or a planted link) is skipped, never entered or removed.
pub fn private_dir(base: &Path, prefix: &str) -> io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let mut last = io::Error::other("no attempt made");
    for _ in 0..8 {
        let dir = base.join(format!(
            "{prefix}{}",
            wisp_transports::stage::random_token()
        ));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// Opens `path` to be written from its start, creating it (mode 0600) if needed. Refused:
/// a symbolic link, anything but a regular file, a file with other hard links, a file owned
/// by someone else. The checks are made on the opened file, so nothing can be swapped in
/// between them and the writes.
pub fn open_for_output(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| {
            // The kernel may refuse it as ELOOP, or earlier as EACCES (protected_regular in a
            // sticky directory); either way, say what is there.
            let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
            if is_link {
                io::Error::other(
                    "it is a symbolic link: refused (remove it, or pick another directory)",
                )
            } else {
                e
            }
        })?;
    let meta = file.metadata()?;
    // SAFETY: geteuid has no preconditions.
    #[allow(unsafe_code)]
    let euid = unsafe { libc::geteuid() };
    let refuse = |why: &str| Err(io::Error::other(format!("{why}: refused")));
    if !meta.file_type().is_file() {
        return refuse("it is not a regular file");
    }
    if meta.nlink() > 1 {
        return refuse("it has other hard links");
    }
    if meta.uid() != euid {
        return refuse(&format!(
            "it belongs to uid {}, not to this user",
            meta.uid()
        ));
    }
    file.set_len(0)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(label: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("wisp-files-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        dir
    }

    #[test]
    fn replace_leaves_only_the_new_file_and_never_follows_a_link() {
        let dir = scratch("replace");
        let target = dir.join("s.age");
        let victim = dir.join("victim");
        std::fs::write(&victim, "keep").unwrap_or_default();
        std::os::unix::fs::symlink(&victim, &target).unwrap_or_default();
        replace(&target, b"new", 0o600).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(std::fs::read(&victim).unwrap_or_default(), b"keep");
        assert_eq!(std::fs::read(&target).unwrap_or_default(), b"new");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert_eq!(names.len(), 2, "{names:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn output_files_refuse_links_and_shared_files() {
        let dir = scratch("output");
        let victim = dir.join("victim");
        std::fs::write(&victim, "keep").unwrap_or_default();
        let link = dir.join("h.stdout");
        std::os::unix::fs::symlink(&victim, &link).unwrap_or_default();
        let e = open_for_output(&link)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("symbolic link"), "{e}");
        let hard = dir.join("h.stderr");
        std::fs::hard_link(&victim, &hard).unwrap_or_default();
        let e = open_for_output(&hard)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("hard links"), "{e}");
        assert_eq!(std::fs::read(&victim).unwrap_or_default(), b"keep");
        let fresh = dir.join("fresh.stdout");
        assert!(open_for_output(&fresh).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
