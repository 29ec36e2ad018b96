//! Where a file op acts, found without being led astray by links another user planted.
//!
//! The directory holding the path's last component is opened once and held; everything the
//! op does after that happens beneath that descriptor, through `/proc/self/fd/N/NAME` (which
//! reaches the held directory itself, whatever is renamed or linked in the meantime), and never
//! follows a link in the last component.
//!
//! The rule for links on the way to that directory, as sudo and systemd judge them: a link
//! owned by root or by this runner's user is followed (`/var/run -> /run`, `/lib -> usr/lib`);
//! a link owned by anyone else is refused, since its owner decides where it points. With
//! `openat2` (Linux 5.6) a path with no links at all is opened in one call
//! (`RESOLVE_NO_SYMLINKS`); any other is walked from `/` one component at a time, each opened
//! with `O_NOFOLLOW` relative to the one before.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

/// Most links followed on the way, as the kernel's own limit.
const MAX_LINKS: usize = 40;

/// A path's directory, held open, and its last component.
#[derive(Debug)]
pub(crate) struct Resolved {
    dir: OwnedFd,
    name: OsString,
}

impl Resolved {
    /// The path of the last component beneath the held directory; functions given it do
    /// not follow a link there unless they always follow one (open without O_NOFOLLOW).
    pub(crate) fn at(&self) -> PathBuf {
        self.dir_at().join(&self.name)
    }

    /// A sibling of the last component, in the same held directory.
    pub(crate) fn sibling(&self, name: &OsStr) -> PathBuf {
        self.dir_at().join(name)
    }

    /// The held directory itself.
    pub(crate) fn dir_at(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.dir.as_raw_fd()))
    }

    /// The last component's name.
    pub(crate) fn name(&self) -> &OsStr {
        &self.name
    }
}

/// Resolves `path` (absolute, no `..`) to its held directory and last component.
/// `make_parents` creates missing directories on the way (mode 0755). `Ok(None)`: a directory
/// on the way does not exist (and was not to be made).
pub(crate) fn resolve(path: &Path, make_parents: bool) -> Result<Option<Resolved>, String> {
    let shown = path.display();
    if !path.is_absolute() {
        return Err(format!("{shown}: the path must be absolute"));
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(format!("{shown}: the path must not contain \"..\""));
    }
    let Some(name) = path.file_name() else {
        return Err(format!("{shown}: names no file"));
    };
    let parent = path.parent().unwrap_or(Path::new("/"));
    match open_dir(parent, make_parents) {
        Ok(dir) => Ok(Some(Resolved {
            dir,
            name: name.to_owned(),
        })),
        Err(Walk::Missing) => Ok(None),
        Err(Walk::Refused(why)) => Err(format!("{shown}: {why}")),
        Err(Walk::Io(what, e)) => Err(format!("{shown}: {what}: {e}")),
    }
}

enum Walk {
    Missing,
    Refused(String),
    Io(String, io::Error),
}

fn open_dir(dir: &Path, make: bool) -> Result<OwnedFd, Walk> {
    if let Some(fd) = open_without_links(dir) {
        return Ok(fd);
    }
    // SAFETY: geteuid has no preconditions.
    #[allow(unsafe_code)]
    let euid = unsafe { libc::geteuid() };
    let mut stack = vec![open_at(None, OsStr::new("/")).map_err(|e| Walk::Io("/".into(), e))?];
    // Components still to walk, the next one last.
    let mut queue: Vec<OsString> = components(dir);
    let mut walked = PathBuf::from("/");
    let mut links = 0;
    while let Some(c) = queue.pop() {
        if c == "." || c.is_empty() {
            continue;
        }
        if c == ".." {
            if stack.len() > 1 {
                stack.pop();
            }
            walked.pop();
            continue;
        }
        let here = stack.last().map(AsRawFd::as_raw_fd);
        let fd = match open_at(here, &c) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound && make => {
                mkdir_at(here, &c).map_err(|e| {
                    Walk::Io(format!("cannot create {}", walked.join(&c).display()), e)
                })?;
                open_at(here, &c).map_err(|e| Walk::Io(walked.join(&c).display().to_string(), e))?
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Walk::Missing),
            Err(e) => return Err(Walk::Io(walked.join(&c).display().to_string(), e)),
        };
        let st = fstat(&fd).map_err(|e| Walk::Io(walked.join(&c).display().to_string(), e))?;
        match st.st_mode & libc::S_IFMT {
            libc::S_IFDIR => {
                walked.push(&c);
                stack.push(fd);
            }
            libc::S_IFLNK => {
                let link = walked.join(&c);
                if st.st_uid != 0 && st.st_uid != euid {
                    return Err(Walk::Refused(format!(
                        "{} is a symbolic link owned by uid {}, neither root nor this user: refused (its owner decides where it points)",
                        link.display(),
                        st.st_uid
                    )));
                }
                links += 1;
                if links > MAX_LINKS {
                    return Err(Walk::Refused(format!(
                        "more than {MAX_LINKS} links on the way"
                    )));
                }
                let target = read_link(&fd).map_err(|e| Walk::Io(link.display().to_string(), e))?;
                if target.is_absolute() {
                    stack.truncate(1);
                    walked = PathBuf::from("/");
                }
                queue.extend(components(&target));
            }
            _ => {
                return Err(Walk::Refused(format!(
                    "{} is not a directory",
                    walked.join(&c).display()
                )));
            }
        }
    }
    stack
        .pop()
        .ok_or_else(|| Walk::Refused("no directory".into()))
}

/// `p`'s components, last first (so the next one to walk is popped off the end).
fn components(p: &Path) -> Vec<OsString> {
    p.components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_owned()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect()
}

/// `openat2(dir, O_PATH|O_DIRECTORY, RESOLVE_NO_SYMLINKS)`: `None` when the kernel lacks it,
/// refuses it (a seccomp filter) or the path holds a link or is missing (the walk decides).
fn open_without_links(dir: &Path) -> Option<OwnedFd> {
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
    const RESOLVE_NO_SYMLINKS: u64 = 0x04;
    let path = CString::new(dir.as_os_str().as_bytes()).ok()?;
    let how = OpenHow {
        flags: u64::try_from(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC).ok()?,
        mode: 0,
        resolve: RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: a live C string and a live open_how of the size passed.
    #[allow(unsafe_code)]
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            libc::AT_FDCWD,
            path.as_ptr(),
            &how,
            size_of::<OpenHow>(),
        )
    };
    let fd = i32::try_from(fd).ok().filter(|fd| *fd >= 0)?;
    // SAFETY: openat2 just returned this descriptor; nothing else owns it.
    #[allow(unsafe_code)]
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `openat(dir, name, O_PATH|O_NOFOLLOW)`: the entry itself, link or not.
fn open_at(dir: Option<i32>, name: &OsStr) -> io::Result<OwnedFd> {
    let c =
        CString::new(name.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: a live C string; the directory descriptor is held by the caller.
    #[allow(unsafe_code)]
    let fd = unsafe {
        libc::openat(
            dir.unwrap_or(libc::AT_FDCWD),
            c.as_ptr(),
            libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openat just returned this descriptor; nothing else owns it.
    #[allow(unsafe_code)]
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn mkdir_at(dir: Option<i32>, name: &OsStr) -> io::Result<()> {
    let c =
        CString::new(name.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: a live C string; the directory descriptor is held by the caller.
    #[allow(unsafe_code)]
    let r = unsafe { libc::mkdirat(dir.unwrap_or(libc::AT_FDCWD), c.as_ptr(), 0o755) };
    if r != 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::AlreadyExists {
            return Err(e);
        }
    }
    Ok(())
}

fn fstat(fd: &OwnedFd) -> io::Result<libc::stat> {
    // SAFETY: an all-zero stat is a valid value to be overwritten.
    #[allow(unsafe_code)]
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a held descriptor and a live stat.
    #[allow(unsafe_code)]
    let r = unsafe { libc::fstat(fd.as_raw_fd(), &mut st) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st)
}

/// The target of the link `fd` (opened with O_PATH|O_NOFOLLOW) refers to.
fn read_link(fd: &OwnedFd) -> io::Result<PathBuf> {
    let mut buf = vec![0u8; 4096];
    // SAFETY: a held descriptor, an empty C string, and a live buffer of the length passed.
    #[allow(unsafe_code)]
    let n = unsafe {
        libc::readlinkat(
            fd.as_raw_fd(),
            c"".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
    buf.truncate(n);
    Ok(PathBuf::from(OsString::from_vec(buf)))
}

/// 16 random hex digits, for names another user must not guess.
pub(crate) fn random_hex() -> String {
    let mut bytes = [0u8; 8];
    // SAFETY: a live buffer of the length passed.
    #[allow(unsafe_code)]
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if usize::try_from(n).ok() != Some(bytes.len()) {
        // Never reached on Linux 3.17+; still unique per process and moment.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        bytes = (u64::from(std::process::id()) << 32 | u64::from(t)).to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_on_the_way_are_followed_only_when_root_or_this_user_owns_them() {
        let base = std::env::temp_dir().join(format!("wisp-safepath-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("real/sub")).unwrap_or_default();
        std::os::unix::fs::symlink("real", base.join("mine")).unwrap_or_default();
        let r = resolve(&base.join("mine/sub/f"), false).ok().flatten();
        let r = r.unwrap_or_else(|| panic!("an own link is followed"));
        assert_eq!(r.name(), "f");
        std::fs::write(r.at(), "x").unwrap_or_default();
        assert_eq!(
            std::fs::read(base.join("real/sub/f")).unwrap_or_default(),
            b"x"
        );
        assert!(resolve(&base.join("none/f"), false).is_ok_and(|r| r.is_none()));
        let made = resolve(&base.join("new/deeper/f"), true).ok().flatten();
        assert!(made.is_some() && base.join("new/deeper").is_dir());
        assert!(resolve(&base.join("real/../f"), false).is_err());
        assert!(resolve(Path::new("relative/f"), false).is_err());
        let _ = std::fs::remove_dir_all(&base);
    }
}
