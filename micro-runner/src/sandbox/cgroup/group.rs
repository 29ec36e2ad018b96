//! One command's cgroups: created below the runner's own group (or the `wisp` subtree),
//! configured and read back, joined by the child, killed as a whole and removed.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use wisp_protocol::message::Limits;
use wisp_protocol::sandbox::CgroupReport;

use super::cleanup::{STALE, SUBTREES, remove_dir};
use super::*;

/// A command's cgroups, created and configured, not yet joined.
#[derive(Debug)]
pub(crate) struct Group {
    /// `v1` or `v2`.
    pub(super) version: &'static str,
    pub(super) name: String,
    /// Every directory created (limits, accounting, freezer, kill), removed at the end.
    pub(super) dirs: Vec<PathBuf>,
    /// `cgroup.procs` of each, opened for the child to write `0` into.
    pub(super) procs: Vec<File>,
    /// Where the limits live, per controller.
    pub(super) by_controller: BTreeMap<String, PathBuf>,
    /// A v2 group whose `cgroup.kill` ends the whole tree.
    pub(super) kill_dir: Option<PathBuf>,
    /// A v1 freezer group.
    pub(super) freezer_dir: Option<PathBuf>,
    pub(crate) report: CgroupReport,
}

/// Why a group could not be set up; `what` names the protection.
#[derive(Debug)]
pub(crate) struct Gap {
    pub(crate) what: String,
}

impl Group {
    /// Creates the command's groups and applies `limits`, reading each back. Returns the gaps:
    /// limits that could not be applied exactly (the group is still usable for the rest).
    pub(crate) fn create(
        layout: &Layout,
        limits: &Limits,
        name: &str,
    ) -> Result<(Group, Vec<Gap>), Gap> {
        let wanted = controllers_for(limits);
        let root = nix::unistd::geteuid().is_root();
        let use_v2 = layout.v2.is_some()
            && wanted
                .iter()
                .all(|c| layout.v2_controllers.iter().any(|a| a == c));
        let mut g = Group {
            version: if use_v2 { "v2" } else { "v1" },
            name: name.to_owned(),
            dirs: Vec::new(),
            procs: Vec::new(),
            by_controller: BTreeMap::new(),
            kill_dir: None,
            freezer_dir: None,
            report: CgroupReport::default(),
        };
        if let (true, Some(v2)) = (use_v2, &layout.v2) {
            let parent = v2_parent(v2, root, &wanted)?;
            let dir = g.make(&parent, true)?;
            for c in &wanted {
                g.by_controller.insert((*c).to_owned(), dir.clone());
            }
            g.kill_dir = Some(dir.clone());
            g.report.path = relative(&v2.root, &dir);
        } else {
            let missing: Vec<&str> = wanted
                .iter()
                .copied()
                .filter(|c| !layout.v1.contains_key(*c))
                .collect();
            if !missing.is_empty() {
                return Err(Gap {
                    what: format!(
                        "cgroup: no hierarchy offers the {} controller{} (v2 offers: {}; v1 mounts: {})",
                        missing.join(", "),
                        if missing.len() > 1 { "s" } else { "" },
                        list_or_none(&layout.v2_controllers),
                        list_or_none(&layout.v1.keys().cloned().collect::<Vec<_>>()),
                    ),
                });
            }
            // Accounting and freezing come along when the host offers them; they are not
            // limits, so their absence is not a gap.
            let mut controllers: Vec<&str> = wanted.clone();
            for extra in ["cpuacct", "freezer"] {
                if layout.v1.contains_key(extra) && !controllers.contains(&extra) {
                    controllers.push(extra);
                }
            }
            for c in controllers {
                let Some(m) = layout.v1.get(c) else { continue };
                // cpu and cpuacct are often one hierarchy: one directory serves both.
                let dir = match g.by_controller.values().find(|d| d.starts_with(&m.root)) {
                    Some(d) => d.clone(),
                    None => g.make(&m.own_dir(), true)?,
                };
                if c == "freezer" {
                    g.freezer_dir = Some(dir.clone());
                }
                if g.report.path.is_empty() {
                    g.report.path = relative(&m.root, &dir);
                }
                g.by_controller.insert(c.to_owned(), dir);
            }
            // On hybrid hosts the empty cgroup2 still kills a whole tree in one write.
            if let Some(v2) = &layout.v2
                && let Ok(dir) = g.make(&v2.own_dir(), false)
            {
                g.kill_dir = Some(dir);
            }
        }
        g.report.version = g.version.into();
        let gaps = g.apply(limits);
        Ok((g, gaps))
    }

    /// Creates `parent/<name>` and opens its `cgroup.procs`. `required`: a failure is a gap.
    fn make(&mut self, parent: &Path, required: bool) -> Result<PathBuf, Gap> {
        let dir = parent.join(&self.name);
        let made = fs::create_dir(&dir).and_then(|()| {
            self.dirs.push(dir.clone());
            OpenOptions::new()
                .write(true)
                .open(dir.join("cgroup.procs"))
        });
        match made {
            Ok(f) => {
                self.procs.push(f);
                Ok(dir)
            }
            Err(e) => Err(Gap {
                what: if required {
                    format!(
                        "cgroup: cannot create {}: {e}{}",
                        dir.display(),
                        delegation_hint(&e)
                    )
                } else {
                    String::new()
                },
            }),
        }
    }

    /// Writes every limit and reads it back; returns the ones that did not stick.
    pub(crate) fn apply(&mut self, limits: &Limits) -> Vec<Gap> {
        let mut gaps = Vec::new();
        for s in settings(limits, self.version == "v2") {
            let Some(dir) = self.by_controller.get(s.controller) else {
                continue;
            };
            let path = dir.join(s.file);
            if s.optional && !path.exists() {
                continue;
            }
            let read = write_file(&path, &s.value).and_then(|()| fs::read_to_string(&path));
            match read {
                Ok(r) if read_back_matches(&s, &r) => self.record(&s, r.trim()),
                Ok(r) => gaps.push(Gap {
                    what: format!(
                        "cgroup: wrote {:?} to {} but the kernel reads back {:?}",
                        s.value,
                        path.display(),
                        r.trim()
                    ),
                }),
                Err(e) => gaps.push(Gap {
                    what: format!("cgroup: cannot set {}: {e}", path.display()),
                }),
            }
        }
        gaps
    }

    fn record(&mut self, s: &Setting, read: &str) {
        match s.file {
            "memory.max" | "memory.limit_in_bytes" => self.report.memory_max = read.parse().ok(),
            "pids.max" => self.report.pids_max = read.parse().ok(),
            "cpu.max" => self.report.cpu_max = Some(read.to_owned()),
            "cpu.cfs_quota_us" => {
                self.report.cpu_max = Some(format!("{read} {CPU_PERIOD_US}"));
            }
            _ => {}
        }
    }

    /// Raw descriptors of the `cgroup.procs` files, for the child to write `0` into.
    pub(crate) fn join_fds(&self) -> Vec<RawFd> {
        self.procs.iter().map(AsRawFd::as_raw_fd).collect()
    }

    /// How this group kills a tree.
    pub(crate) fn kill_method(&self) -> &'static str {
        match &self.kill_dir {
            Some(d) if d.join("cgroup.kill").exists() => "cgroup.kill",
            _ => "cgroup-sweep",
        }
    }

    /// Kills every process in the group, however it was forked or reparented.
    pub(crate) fn kill(&self) {
        if let Some(dir) = &self.kill_dir
            && write_file(&dir.join("cgroup.kill"), "1").is_ok()
        {
            return;
        }
        // Freezing first keeps a fork bomb from outrunning the sweep: v2's `cgroup.freeze`
        // (kernels before 5.14 have no `cgroup.kill`), else the v1 freezer.
        let freezer = match (&self.kill_dir, &self.freezer_dir) {
            (Some(d), _) => Some((d.join("cgroup.freeze"), "1", "0")),
            (None, Some(d)) => Some((d.join("freezer.state"), "FROZEN", "THAWED")),
            (None, None) => None,
        };
        let frozen = freezer
            .as_ref()
            .is_some_and(|(file, on, _)| write_file(file, on).is_ok());
        for _ in 0..50 {
            let pids = self.pids();
            if pids.is_empty() {
                break;
            }
            for pid in pids {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            if frozen && let Some((file, _, off)) = &freezer {
                // SIGKILL is delivered once the tasks thaw.
                let _ = write_file(file, off);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn pids(&self) -> Vec<i32> {
        let Some(dir) = self
            .by_controller
            .values()
            .next()
            .or(self.kill_dir.as_ref())
        else {
            return Vec::new();
        };
        fs::read_to_string(dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Reads the counters into the report: OOM kills, refused forks, CPU time.
    pub(crate) fn collect(&mut self) {
        let read = |c: &str, file: &str| {
            self.by_controller
                .get(c)
                .and_then(|d| fs::read_to_string(d.join(file)).ok())
        };
        let oom = if self.version == "v2" {
            read("memory", "memory.events").and_then(|t| keyed(&t, "oom_kill"))
        } else {
            read("memory", "memory.oom_control").and_then(|t| keyed(&t, "oom_kill"))
        };
        self.report.oom_kills = oom.unwrap_or(0);
        self.report.pids_refused = read("pids", "pids.events")
            .and_then(|t| keyed(&t, "max"))
            .unwrap_or(0);
        let cpu_us = if self.version == "v2" {
            read("cpu", "cpu.stat").and_then(|t| keyed(&t, "usage_usec"))
        } else {
            read("cpuacct", "cpuacct.usage")
                .and_then(|t| t.trim().parse::<u64>().ok().map(|ns| ns / 1000))
        };
        self.report.cpu_ms = cpu_us.unwrap_or(0) / 1000;
    }

    /// Kills what is left and removes every directory (deepest first). Bounded.
    pub(crate) fn remove(mut self) {
        if !self.pids().is_empty() {
            self.kill();
        }
        self.procs.clear();
        for dir in self.dirs.iter().rev() {
            if !remove_dir(dir, 50) {
                // Still busy (a process in uninterruptible sleep): tried again at shutdown.
                if let Ok(mut stale) = STALE.lock() {
                    stale.push(dir.clone());
                }
            }
        }
    }
}

/// Where a v2 command group goes. As root, in a `wisp` subtree below the root group
/// (controllers can always be enabled there). Otherwise below this process's own group, which must be delegated: the
/// runner moves itself into a leaf of its own first, because v2 enables controllers only for
/// groups without processes of their own.
pub(super) fn v2_parent(v2: &Mount, root: bool, wanted: &[&str]) -> Result<PathBuf, Gap> {
    let parent = if root {
        // A subtree of our own below the root, where controllers can always be enabled.
        enable(&v2.root, wanted)?;
        let wisp = v2.root.join("wisp");
        match fs::create_dir(&wisp) {
            Ok(()) => {
                if let Ok(mut made) = SUBTREES.lock() {
                    made.push(wisp.clone());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(Gap {
                    what: format!("cgroup: cannot create {}: {e}", wisp.display()),
                });
            }
        }
        wisp
    } else {
        let own = v2.own_dir();
        static MOVED: OnceLock<Result<(), String>> = OnceLock::new();
        MOVED
            .get_or_init(|| {
                let leaf = own.join(format!("wisp-runner-{}", std::process::id()));
                fs::create_dir(&leaf)
                    .or_else(|e| {
                        if e.kind() == io::ErrorKind::AlreadyExists {
                            Ok(())
                        } else {
                            Err(e)
                        }
                    })
                    .and_then(|()| write_file(&leaf.join("cgroup.procs"), "0"))
                    .map_err(|e| {
                        format!(
                            "cgroup: cannot move the runner into {}: {e}{}",
                            leaf.display(),
                            delegation_hint(&e)
                        )
                    })
            })
            .clone()
            .map_err(|what| Gap { what })?;
        own
    };
    enable(&parent, wanted)?;
    Ok(parent)
}

/// Enables `wanted` controllers for the children of `dir` (those not enabled yet).
fn enable(dir: &Path, wanted: &[&str]) -> Result<(), Gap> {
    let control = dir.join("cgroup.subtree_control");
    let enabled = fs::read_to_string(&control).unwrap_or_default();
    let missing: Vec<String> = wanted
        .iter()
        .filter(|c| !enabled.split_whitespace().any(|e| e == **c))
        .map(|c| format!("+{c}"))
        .collect();
    if !missing.is_empty() {
        write_file(&control, &missing.join(" ")).map_err(|e| Gap {
            what: format!(
                "cgroup: cannot enable {} in {}: {e}{}",
                missing.join(" "),
                control.display(),
                if e.raw_os_error() == Some(libc::EBUSY) {
                    " (the group has processes of its own besides the runner)"
                } else {
                    ""
                }
            ),
        })?;
    }
    Ok(())
}

fn delegation_hint(e: &io::Error) -> &'static str {
    if matches!(
        e.raw_os_error(),
        Some(libc::EACCES | libc::EPERM | libc::EROFS)
    ) {
        " (not root and no delegated cgroup: run as root, or start the session in a delegated \
         group, e.g. `systemd-run --user --scope -p Delegate=yes`)"
    } else {
        ""
    }
}
