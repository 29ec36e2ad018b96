//! `pkg.ensure`: a package installed (at a version, or the newest the repositories offer) or
//! not, through the host's package manager: apt/dpkg, dnf or yum (rpm), apk, zypper (rpm) or
//! pacman. The package database is queried first, so nothing runs when nothing would change; a
//! manager lock held by another process is reported as such (with its holder), not as a failure.
//!
//! What this module does not know: frames, sessions. It runs on a thread of its own (a package
//! manager can take minutes) and hands its outcome back.

use std::os::fd::AsRawFd;
use std::process::Command;

use wisp_protocol::ops::{PkgEnsureArgs, PkgResult, PkgState};

use crate::system::{Failure, output, run, tail};

/// Makes `args` true through `manager` (as `facts` names it); returns what was there and what
/// changed.
pub(crate) fn ensure(args: &PkgEnsureArgs, manager: &str) -> Result<PkgResult, Failure> {
    let m = Manager::named(manager)?;
    let name = args.name.as_str();
    if args.file.is_some() && m != Manager::Apt {
        return Err(Failure::Failed(format!(
            "pkg.ensure: `file` installs a .deb through apt; this host's package manager is {manager}"
        )));
    }
    let before = m.installed(name)?;
    let wanted = match (&args.file, &args.version) {
        (Some(file), _) => {
            let package = deb_field(file, "Package")?;
            if package != name {
                return Err(Failure::Failed(format!(
                    "{file} holds package {package:?}, not {name:?}"
                )));
            }
            Some(deb_field(file, "Version")?)
        }
        (None, v) => v.clone(),
    };
    let action = match (args.state, &before) {
        (PkgState::Absent, Some(_)) => Some(Action::Remove),
        (PkgState::Absent, None) => None,
        (PkgState::Present | PkgState::Latest, None) => Some(Action::Install),
        (PkgState::Present, Some(have)) => match &wanted {
            Some(v) if !same_version(have, v) => Some(Action::Install),
            _ => None,
        },
        (PkgState::Latest, Some(have)) => m.upgradable(name, have)?.then_some(Action::Upgrade),
    };
    let mut result = PkgResult {
        name: name.into(),
        manager: manager.into(),
        before: before.clone(),
        after: before.clone(),
        changes: Vec::new(),
    };
    let Some(action) = action else {
        return Ok(result);
    };
    result.changes.push(
        match (action, &before) {
            (Action::Remove, _) => "removed",
            (_, Some(_)) => "upgraded",
            (_, None) => "installed",
        }
        .into(),
    );
    if args.check {
        return Ok(result);
    }
    m.check_locks()?;
    let mut cmd = m.command(action, name, wanted.as_deref(), args.file.as_deref())?;
    let out = output(&mut cmd)?;
    if !out.status.success() {
        let text = tail(&out);
        if m.lock_message(&text) {
            return Err(Failure::Locked(format!(
                "{manager}'s lock is held by another process; retry when it is done ({text})"
            )));
        }
        return Err(Failure::Failed(crate::system::failed(&cmd, &out)));
    }
    result.after = m.installed(name)?;
    Ok(result)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Install,
    Upgrade,
    Remove,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Manager {
    Apt,
    /// dnf or yum: the same command line.
    Dnf(&'static str),
    Apk,
    Zypper,
    Pacman,
}

/// A version asked for matches the installed one when they are equal, or when the installed
/// one is that version with a release or revision after it (`1.2` matches `1.2-3`).
fn same_version(have: &str, wanted: &str) -> bool {
    have == wanted
        || have
            .strip_prefix(wanted)
            .is_some_and(|rest| rest.starts_with('-'))
}

impl Manager {
    fn named(manager: &str) -> Result<Manager, Failure> {
        Ok(match manager {
            "apt" => Manager::Apt,
            "dnf" => Manager::Dnf("dnf"),
            "yum" => Manager::Dnf("yum"),
            "apk" => Manager::Apk,
            "zypper" => Manager::Zypper,
            "pacman" => Manager::Pacman,
            other => {
                return Err(Failure::Failed(format!(
                    "no supported package manager on this host (found {other}; wisp drives apt, \
                     dnf, yum, apk, zypper and pacman)"
                )));
            }
        })
    }

    /// The installed version, or `None` when the package is not installed.
    fn installed(self, name: &str) -> Result<Option<String>, Failure> {
        let mut cmd = match self {
            Manager::Apt => {
                let mut c = Command::new("dpkg-query");
                c.args(["-W", "-f", "${db:Status-Abbrev} ${Version}", "--", name]);
                c
            }
            Manager::Dnf(_) | Manager::Zypper => {
                let mut c = Command::new("rpm");
                c.args(["-q", "--qf", "%{VERSION}-%{RELEASE}", "--", name]);
                c
            }
            Manager::Apk => {
                let mut c = Command::new("apk");
                c.args(["list", "--installed", "--", name]);
                c
            }
            Manager::Pacman => {
                let mut c = Command::new("pacman");
                c.args(["-Q", "--", name]);
                c
            }
        };
        let out = output(&mut cmd)?;
        if !out.status.success() {
            // Unknown to the database: not installed.
            return Ok(None);
        }
        Ok(parse_installed(
            self,
            name,
            &String::from_utf8_lossy(&out.stdout),
        ))
    }

    /// Whether the repositories offer a newer version than `have`.
    fn upgradable(self, name: &str, have: &str) -> Result<bool, Failure> {
        let mut cmd = match self {
            Manager::Apt => {
                let out = run(Command::new("apt-cache").args(["policy", "--", name]))?;
                let text = String::from_utf8_lossy(&out.stdout);
                return Ok(apt_candidate(&text).is_some_and(|c| c != have));
            }
            Manager::Dnf(tool) => {
                // check-update: 100 when an update is available, 0 when none.
                let mut c = Command::new(tool);
                c.args(["-q", "check-update", "--", name]);
                let out = output(&mut c)?;
                return match out.status.code() {
                    Some(100) => Ok(true),
                    Some(0) => Ok(false),
                    _ => Err(Failure::Failed(crate::system::failed(&c, &out))),
                };
            }
            Manager::Apk => {
                let mut c = Command::new("apk");
                c.args(["list", "--upgradable", "--", name]);
                c
            }
            Manager::Zypper => {
                let mut c = Command::new("zypper");
                c.args(["-n", "-q", "list-updates"]);
                c
            }
            Manager::Pacman => {
                // -Qu exits 1 when nothing is out of date.
                let mut c = Command::new("pacman");
                c.args(["-Qu", "--", name]);
                let out = output(&mut c)?;
                return Ok(out.status.success() && !out.stdout.is_empty());
            }
        };
        let out = run(&mut cmd)?;
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(match self {
            Manager::Zypper => text
                .lines()
                .any(|l| l.split('|').nth(2).map(str::trim) == Some(name)),
            _ => !text.trim().is_empty(),
        })
    }

    /// The non-interactive command that carries out `action`.
    fn command(
        self,
        action: Action,
        name: &str,
        version: Option<&str>,
        file: Option<&str>,
    ) -> Result<Command, Failure> {
        let spec = |sep: &str| match version {
            Some(v) => format!("{name}{sep}{v}"),
            None => name.to_owned(),
        };
        let (program, args): (&str, Vec<String>) = match (self, action) {
            (Manager::Apt, Action::Remove) => ("apt-get", vec!["remove".into(), name.into()]),
            (Manager::Apt, _) => {
                let what = match file {
                    Some(f) => f.to_owned(),
                    None => spec("="),
                };
                (
                    "apt-get",
                    vec!["install".into(), "--no-install-recommends".into(), what],
                )
            }
            (Manager::Dnf(tool), Action::Remove) => (tool, vec!["remove".into(), name.into()]),
            (Manager::Dnf(tool), Action::Upgrade) => (tool, vec!["upgrade".into(), name.into()]),
            (Manager::Dnf(tool), Action::Install) => (tool, vec!["install".into(), spec("-")]),
            (Manager::Apk, Action::Remove) => ("apk", vec!["del".into(), name.into()]),
            (Manager::Apk, Action::Upgrade) => {
                ("apk", vec!["add".into(), "-u".into(), name.into()])
            }
            (Manager::Apk, Action::Install) => ("apk", vec!["add".into(), spec("=")]),
            (Manager::Zypper, Action::Remove) => ("zypper", vec!["remove".into(), name.into()]),
            (Manager::Zypper, Action::Upgrade) => ("zypper", vec!["update".into(), name.into()]),
            (Manager::Zypper, Action::Install) => ("zypper", vec!["install".into(), spec("=")]),
            (Manager::Pacman, _) if version.is_some() => {
                return Err(Failure::Failed(
                    "pacman cannot install a chosen version from its repositories; drop \
                     `version` or use state = \"latest\""
                        .into(),
                ));
            }
            (Manager::Pacman, Action::Remove) => ("pacman", vec!["-R".into(), name.into()]),
            (Manager::Pacman, _) => ("pacman", vec!["-S".into(), name.into()]),
        };
        let mut cmd = Command::new(program);
        match self {
            Manager::Apt => {
                cmd.args(["-y", "-q", "-o", "Dpkg::Options::=--force-confdef"])
                    .args(["-o", "Dpkg::Options::=--force-confold"])
                    .env("DEBIAN_FRONTEND", "noninteractive");
            }
            Manager::Dnf(_) => {
                cmd.args(["-y", "-q"]);
            }
            Manager::Apk => {
                cmd.arg("--no-progress");
            }
            Manager::Zypper => {
                cmd.args(["--non-interactive", "--quiet"]);
            }
            Manager::Pacman => {
                cmd.args(["--noconfirm", "--noprogressbar"]);
            }
        }
        cmd.args(args);
        Ok(cmd)
    }

    /// Refuses early, naming the holder, when another process holds the manager's lock.
    fn check_locks(self) -> Result<(), Failure> {
        match self {
            Manager::Apt => {
                for path in ["/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock"] {
                    if let Some(pid) = fcntl_holder(path) {
                        return Err(locked(path, pid));
                    }
                }
            }
            Manager::Zypper => {
                let pid = std::fs::read_to_string("/run/zypp.pid").unwrap_or_default();
                if let Ok(pid) = pid.trim().parse::<i32>()
                    && std::path::Path::new(&format!("/proc/{pid}")).exists()
                {
                    return Err(locked("/run/zypp.pid", pid));
                }
            }
            Manager::Pacman if std::path::Path::new("/var/lib/pacman/db.lck").exists() => {
                return Err(Failure::Locked(
                    "/var/lib/pacman/db.lck exists: pacman is running (or crashed and left it \
                     behind); retry when it is done"
                        .into(),
                ));
            }
            // dnf, yum and apk wait for or report their own locks; their messages are read
            // by `lock_message`.
            _ => {}
        }
        Ok(())
    }

    /// Whether a failed run's output says the lock was taken after the check.
    fn lock_message(self, text: &str) -> bool {
        let t = text.to_ascii_lowercase();
        match self {
            Manager::Apt => t.contains("could not get lock"),
            Manager::Dnf(_) => t.contains("waiting for process") || t.contains("lock"),
            Manager::Apk => t.contains("unable to lock database"),
            Manager::Zypper => t.contains("system management is locked"),
            Manager::Pacman => t.contains("unable to lock database"),
        }
    }
}

fn locked(path: &str, pid: i32) -> Failure {
    let holder = std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim().to_owned())
        .unwrap_or_else(|_| "another process".into());
    Failure::Locked(format!(
        "{path} is held by {holder} (pid {pid}); retry when it is done"
    ))
}

/// The pid holding a write lock on `path` (fcntl record locks, as dpkg and apt take them).
fn fcntl_holder(path: &str) -> Option<i32> {
    // The lock constants are small (0 to 2) and l_type/l_whence are shorts on every libc.
    let short = |v: libc::c_int| libc::c_short::try_from(v).unwrap_or_default();
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .ok()?;
    // SAFETY: flock is plain old data; zeroed is a valid value to fill in.
    #[allow(unsafe_code)]
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = short(libc::F_WRLCK);
    lock.l_whence = short(libc::SEEK_SET);
    // SAFETY: `lock` is a live flock and the descriptor is open.
    #[allow(unsafe_code)]
    let r = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETLK, &mut lock) };
    (r == 0 && lock.l_type != short(libc::F_UNLCK)).then_some(lock.l_pid)
}

/// The installed version from the query tool's output.
fn parse_installed(m: Manager, name: &str, text: &str) -> Option<String> {
    let version = match m {
        // "ii  1.0-1": desired install, status installed. Anything else is not (fully) there.
        Manager::Apt => text.strip_prefix("ii ")?.trim(),
        Manager::Dnf(_) | Manager::Zypper => text.trim(),
        // "curl-8.5.0-r0 x86_64 {curl} (curl) [installed]"
        Manager::Apk => text.lines().find_map(|l| {
            l.split_whitespace()
                .next()?
                .strip_prefix(name)?
                .strip_prefix('-')
        })?,
        // "curl 8.5.0-1"
        Manager::Pacman => text.split_whitespace().nth(1)?,
    };
    (!version.is_empty()).then(|| version.to_owned())
}

/// `Candidate:` from `apt-cache policy`; `None` when no source offers the package.
fn apt_candidate(policy: &str) -> Option<&str> {
    policy
        .lines()
        .find_map(|l| l.trim().strip_prefix("Candidate:"))
        .map(str::trim)
        .filter(|c| *c != "(none)")
}

fn deb_field(file: &str, field: &str) -> Result<String, Failure> {
    let mut cmd = Command::new("dpkg-deb");
    cmd.args(["-f", file, field]);
    let out = output(&mut cmd)?;
    if !out.status.success() {
        return Err(Failure::Failed(format!(
            "{file}: not a readable package: {}",
            tail(&out)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installed_versions_are_read_from_each_managers_query() {
        let apt = parse_installed(Manager::Apt, "curl", "ii  8.5.0-2");
        assert_eq!(apt.as_deref(), Some("8.5.0-2"));
        // Removed with its configuration left behind: not installed.
        assert_eq!(parse_installed(Manager::Apt, "curl", "rc  8.5.0-2"), None);
        let rpm = parse_installed(Manager::Dnf("dnf"), "curl", "8.5.0-1.fc40");
        assert_eq!(rpm.as_deref(), Some("8.5.0-1.fc40"));
        let apk_line = "curl-8.5.0-r0 x86_64 {curl} (curl) [installed]\n";
        let apk = parse_installed(Manager::Apk, "curl", apk_line);
        assert_eq!(apk.as_deref(), Some("8.5.0-r0"));
        // Another package whose name starts the same is not this one.
        let apk = parse_installed(Manager::Apk, "curl", "curlie-1.0-r0 x86_64 {curlie}\n");
        assert_eq!(apk, None);
        let pac = parse_installed(Manager::Pacman, "curl", "curl 8.5.0-1\n");
        assert_eq!(pac.as_deref(), Some("8.5.0-1"));
    }

    #[test]
    fn apt_candidate_reads_the_policy() {
        let policy = "wisp:\n  Installed: 1.0\n  Candidate: 1.1\n  Version table:\n";
        assert_eq!(apt_candidate(policy), Some("1.1"));
        assert_eq!(
            apt_candidate("x:\n  Installed: (none)\n  Candidate: (none)\n"),
            None
        );
        assert_eq!(apt_candidate(""), None);
    }

    #[test]
    fn versions_match_with_or_without_a_release() {
        assert!(same_version("1.2-3", "1.2"));
        assert!(same_version("1.2-3", "1.2-3"));
        assert!(!same_version("1.20-1", "1.2"));
        assert!(!same_version("1.2", "1.2-3"));
    }

    #[test]
    fn commands_are_non_interactive_and_pin_versions_each_managers_way() {
        let line = |m: Manager, a: Action, v: Option<&str>| {
            let c = m.command(a, "curl", v, None).unwrap();
            std::iter::once(c.get_program())
                .chain(c.get_args())
                .map(|s| s.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        };
        let apt = line(Manager::Apt, Action::Install, Some("8.5"));
        assert!(apt.starts_with("apt-get -y -q"), "{apt}");
        assert!(
            apt.ends_with("install --no-install-recommends curl=8.5"),
            "{apt}"
        );
        assert_eq!(
            line(Manager::Dnf("yum"), Action::Install, Some("8.5")),
            "yum -y -q install curl-8.5"
        );
        assert_eq!(
            line(Manager::Apk, Action::Upgrade, None),
            "apk --no-progress add -u curl"
        );
        assert_eq!(
            line(Manager::Zypper, Action::Remove, None),
            "zypper --non-interactive --quiet remove curl"
        );
        assert_eq!(
            line(Manager::Pacman, Action::Install, None),
            "pacman --noconfirm --noprogressbar -S curl"
        );
        assert!(
            Manager::Pacman
                .command(Action::Install, "curl", Some("1"), None)
                .is_err()
        );
    }
}
