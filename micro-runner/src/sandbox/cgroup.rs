//! One cgroup per command, written by hand rather than through a cgroup library: every limit
//! is read back after it is written (a write the kernel ignored is a missing protection, not a
//! success), controllers are found where this host actually mounts them, and hybrid hosts use
//! their v1 controllers for limits and their empty cgroup2 for `cgroup.kill`.
//!
//! Layout: a group named `wisp-<runner pid>-<serial>` below the runner's own group in each
//! hierarchy it needs (on v2 as root: in a `wisp` subtree below the root, where controllers
//! can always be enabled; removed at the end when no other runner uses it). The child joins by writing `0` to each `cgroup.procs` opened beforehand, so the
//! join is one `write(2)` between fork and exec. The groups are removed after the command.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use wisp_protocol::message::Limits;
use wisp_protocol::sandbox::CgroupReport;

/// CFS period the CPU quota is expressed in, microseconds.
const CPU_PERIOD_US: u64 = 100_000;

/// Where this host mounts its cgroup hierarchies and where this process sits in each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Layout {
    /// The cgroup2 mount, with this process's group in it.
    pub(crate) v2: Option<Mount>,
    /// Controllers the v2 mount's root offers (`cgroup.controllers`).
    pub(crate) v2_controllers: Vec<String>,
    /// Each v1 controller's mount, with this process's group in it.
    pub(crate) v1: BTreeMap<String, Mount>,
}

/// A mounted hierarchy and this process's group in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount {
    pub(crate) root: PathBuf,
    pub(crate) own: String,
}

impl Mount {
    fn own_dir(&self) -> PathBuf {
        self.root.join(self.own.trim_start_matches('/'))
    }
}

impl Layout {
    /// The layout of this host, read once: the runner moves itself on delegated v2 hosts, so
    /// "its own group" means the group it started in.
    pub(crate) fn host() -> &'static Layout {
        static LAYOUT: OnceLock<Layout> = OnceLock::new();
        LAYOUT.get_or_init(|| {
            let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
            let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
            let mut layout = Layout::parse(&mountinfo, &own);
            if let Some(v2) = &layout.v2 {
                layout.v2_controllers = fs::read_to_string(v2.root.join("cgroup.controllers"))
                    .unwrap_or_default()
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect();
            }
            layout
        })
    }

    /// Parses `/proc/self/mountinfo` and `/proc/self/cgroup`.
    pub(crate) fn parse(mountinfo: &str, own_cgroups: &str) -> Layout {
        let mut v2_own = None;
        let mut v1_own: BTreeMap<String, String> = BTreeMap::new();
        for line in own_cgroups.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(_), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if ctrls.is_empty() {
                v2_own = Some(path.to_owned());
            } else {
                for c in ctrls.split(',') {
                    v1_own.insert(c.to_owned(), path.to_owned());
                }
            }
        }
        let mut layout = Layout::default();
        for line in mountinfo.lines() {
            // Fields: id parent dev root mountpoint options [optional...] - fstype source super
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let left: Vec<&str> = left.split(' ').collect();
            let right: Vec<&str> = right.split(' ').collect();
            let (Some(root_in_fs), Some(point), Some(fstype), Some(opts)) =
                (left.get(3), left.get(4), right.first(), right.get(2))
            else {
                continue;
            };
            // A bind mount of a subgroup (containers) would need path translation; only whole
            // hierarchies are used.
            if *root_in_fs != "/" {
                continue;
            }
            match *fstype {
                "cgroup2" if layout.v2.is_none() => {
                    if let Some(own) = &v2_own {
                        layout.v2 = Some(Mount {
                            root: PathBuf::from(unescape(point)),
                            own: own.clone(),
                        });
                    }
                }
                "cgroup" => {
                    for c in opts.split(',') {
                        if let Some(own) = v1_own.get(c) {
                            layout.v1.entry(c.to_owned()).or_insert(Mount {
                                root: PathBuf::from(unescape(point)),
                                own: own.clone(),
                            });
                        }
                    }
                }
                _ => {}
            }
        }
        layout
    }
}

/// mountinfo escapes spaces and a few other bytes as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && let Some(Ok(v)) = s.get(i + 1..i + 4).map(|o| u8::from_str_radix(o, 8))
        {
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The controllers a set of limits needs.
pub(crate) fn controllers_for(limits: &Limits) -> Vec<&'static str> {
    let mut c = Vec::new();
    if limits.cpu_millis.is_some() {
        c.push("cpu");
    }
    if limits.memory_max.is_some() {
        c.push("memory");
    }
    if limits.pids_max.is_some() {
        c.push("pids");
    }
    c
}

/// One limit file: what to write and how to judge what the kernel reads back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Setting {
    pub(crate) controller: &'static str,
    pub(crate) file: &'static str,
    pub(crate) value: String,
    /// The file is optional (v1 swap accounting may be off): skip it when absent.
    pub(crate) optional: bool,
}

/// The files each limit is written to, per version.
pub(crate) fn settings(limits: &Limits, v2: bool) -> Vec<Setting> {
    let mut s = Vec::new();
    let set = |controller, file, value: String, optional| Setting {
        controller,
        file,
        value,
        optional,
    };
    if let Some(m) = limits.cpu_millis {
        let quota = (m * CPU_PERIOD_US / 1000).max(1000);
        if v2 {
            s.push(set(
                "cpu",
                "cpu.max",
                format!("{quota} {CPU_PERIOD_US}"),
                false,
            ));
        } else {
            s.push(set(
                "cpu",
                "cpu.cfs_period_us",
                CPU_PERIOD_US.to_string(),
                false,
            ));
            s.push(set("cpu", "cpu.cfs_quota_us", quota.to_string(), false));
        }
    }
    if let Some(m) = limits.memory_max {
        if v2 {
            s.push(set("memory", "memory.max", m.to_string(), false));
            // Without this the limit only moves the excess to swap.
            s.push(set("memory", "memory.swap.max", "0".into(), true));
        } else {
            s.push(set("memory", "memory.limit_in_bytes", m.to_string(), false));
            s.push(set(
                "memory",
                "memory.memsw.limit_in_bytes",
                m.to_string(),
                true,
            ));
        }
    }
    if let Some(p) = limits.pids_max {
        s.push(set("pids", "pids.max", p.to_string(), false));
    }
    s
}

/// Whether what the kernel reads back is the value written. Memory limits are rounded down to
/// whole pages; anything else must match exactly.
pub(crate) fn read_back_matches(setting: &Setting, read: &str) -> bool {
    let read = read.trim();
    if setting.file.starts_with("memory.") && setting.file != "memory.swap.max" {
        let (Ok(want), Ok(got)) = (setting.value.parse::<u64>(), read.parse::<u64>()) else {
            return false;
        };
        return got <= want && want - got < 64 * 1024;
    }
    read == setting.value
}

/// A command's cgroups, created and configured, not yet joined.
#[derive(Debug)]
pub(crate) struct Group {
    /// `v1` or `v2`.
    version: &'static str,
    name: String,
    /// Every directory created (limits, accounting, freezer, kill), removed at the end.
    dirs: Vec<PathBuf>,
    /// `cgroup.procs` of each, opened for the child to write `0` into.
    procs: Vec<File>,
    /// Where the limits live, per controller.
    by_controller: BTreeMap<String, PathBuf>,
    /// A v2 group whose `cgroup.kill` ends the whole tree.
    kill_dir: Option<PathBuf>,
    /// A v1 freezer group.
    freezer_dir: Option<PathBuf>,
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

/// Groups that could not be removed after their command; retried when the session ends.
static STALE: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
/// The `wisp` subtrees this runner created; removed at the end unless another runner uses them.
static SUBTREES: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Removes the groups left over by `Group::remove`, after the shutdown sweep has killed
/// everything the runner started. Says so on stderr for any that still cannot go.
pub(crate) fn remove_stale() {
    let Ok(mut stale) = STALE.lock() else {
        return;
    };
    for dir in stale.drain(..) {
        if !remove_dir(&dir, 100) {
            crate::diag(&format!("cannot remove cgroup {}", dir.display()));
        }
    }
    if let Ok(mut made) = SUBTREES.lock() {
        for dir in made.drain(..) {
            // Busy means another runner's commands are in it: theirs to remove.
            let _ = fs::remove_dir(dir);
        }
    }
}

/// Removes an empty cgroup, retrying while the kernel still accounts an exiting task.
fn remove_dir(dir: &Path, attempts: u32) -> bool {
    for _ in 0..attempts {
        match fs::remove_dir(dir) {
            Ok(()) => return true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return true,
            Err(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
    false
}

/// Where a v2 command group goes. As root, in a `wisp` subtree below the root group
/// (controllers can always be enabled there). Otherwise below this process's own group, which must be delegated: the
/// runner moves itself into a leaf of its own first, because v2 enables controllers only for
/// groups without processes of their own.
fn v2_parent(v2: &Mount, root: bool, wanted: &[&str]) -> Result<PathBuf, Gap> {
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

fn relative(root: &Path, dir: &Path) -> String {
    format!("/{}", dir.strip_prefix(root).unwrap_or(dir).display())
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(" ")
    }
}

/// A `key value` line's value (`memory.events`, `memory.oom_control`, `cpu.stat`).
pub(crate) fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

fn write_file(path: &Path, value: &str) -> io::Result<()> {
    // Truncating is what `echo VALUE > file` does; cgroupfs accepts it, and it keeps a file
    // laid out like one (the tests' fake v2 leaf) behaving the same.
    let mut f = OpenOptions::new().write(true).truncate(true).open(path)?;
    f.write_all(value.as_bytes())
}

/// The v2 limit files are tested here against a temporary directory laid out like a cgroup2
/// leaf, because on hosts whose controllers are bound to v1 (hybrid, like the CI machines) no
/// real v2 group can carry `memory.max`. What the kernel itself does with a v2 group there
/// (join, `cgroup.kill`, removal) is tested for real in `tests/sandbox.rs`; the v1 limits are
/// tested for real there too.
#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(label: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("wisp-cgroup-test-{label}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn limits(memory: Option<u64>, cpu: Option<u64>, pids: Option<u64>) -> Limits {
        Limits {
            memory_max: memory,
            cpu_millis: cpu,
            pids_max: pids,
            ..Default::default()
        }
    }

    /// A group over an existing directory, as `create` leaves it before `apply`.
    fn group_at(dir: &Path, version: &'static str) -> Group {
        let mut g = Group {
            version,
            name: "test".into(),
            dirs: Vec::new(),
            procs: Vec::new(),
            by_controller: BTreeMap::new(),
            kill_dir: None,
            freezer_dir: None,
            report: CgroupReport::default(),
        };
        for c in ["cpu", "cpuacct", "memory", "pids"] {
            g.by_controller.insert(c.into(), dir.to_owned());
        }
        g
    }

    const HYBRID_MOUNTS: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn parses_a_hybrid_host() {
        let own = "8:pids:/\n4:memory:/jobs/a\n2:cpuacct:/\n1:cpu:/\n0::/\n";
        let l = Layout::parse(HYBRID_MOUNTS, own);
        let v2 = l.v2.unwrap();
        assert_eq!(v2.root, Path::new("/sys/fs/cgroup/unified"));
        assert_eq!(v2.own, "/");
        assert_eq!(
            l.v1.keys().collect::<Vec<_>>(),
            ["cpu", "cpuacct", "memory", "pids"]
        );
        assert_eq!(
            l.v1["memory"].own_dir(),
            Path::new("/sys/fs/cgroup/memory/jobs/a")
        );
    }

    #[test]
    fn parses_a_v2_host_with_a_delegated_group_and_a_space_in_the_mount() {
        let mounts = "30 23 0:26 / /sys/fs/my\\040cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n\
                      99 30 0:26 /sub /mnt/bound rw - cgroup2 cgroup2 rw\n";
        let own = "0::/user.slice/user-1000.slice/user@1000.service/app.slice/wisp.scope\n";
        let l = Layout::parse(mounts, own);
        let v2 = l.v2.unwrap();
        assert_eq!(v2.root, Path::new("/sys/fs/my cgroup"));
        assert!(v2.own_dir().ends_with("app.slice/wisp.scope"));
        assert!(l.v1.is_empty());
    }

    #[test]
    fn each_limit_goes_to_its_file() {
        let l = limits(Some(64 << 20), Some(200), Some(32));
        let v2: Vec<(&str, String)> = settings(&l, true)
            .into_iter()
            .map(|s| (s.file, s.value))
            .collect();
        assert_eq!(
            v2,
            [
                ("cpu.max", "20000 100000".into()),
                ("memory.max", "67108864".into()),
                ("memory.swap.max", "0".into()),
                ("pids.max", "32".into()),
            ]
        );
        let v1: Vec<&str> = settings(&l, false).into_iter().map(|s| s.file).collect();
        assert_eq!(
            v1,
            [
                "cpu.cfs_period_us",
                "cpu.cfs_quota_us",
                "memory.limit_in_bytes",
                "memory.memsw.limit_in_bytes",
                "pids.max"
            ]
        );
        // The kernel's smallest quota is 1 ms per period.
        assert_eq!(
            settings(&limits(None, Some(1), None), true)[0].value,
            "1000 100000"
        );
    }

    #[test]
    fn read_back_allows_page_rounding_and_nothing_else() {
        let mem = &settings(&limits(Some(1_000_000), None, None), true)[0];
        assert!(read_back_matches(mem, "999424\n"));
        assert!(!read_back_matches(mem, "max\n"));
        assert!(!read_back_matches(mem, "2000000"));
        let pids = &settings(&limits(None, None, Some(7)), true)[0];
        assert!(read_back_matches(pids, "7\n"));
        assert!(!read_back_matches(pids, "max\n"));
    }

    #[test]
    fn a_v2_leaf_is_configured_read_back_and_counted() {
        let dir = scratch("v2-leaf");
        for f in ["cpu.max", "memory.max", "memory.swap.max", "pids.max"] {
            fs::write(dir.join(f), "max\n").unwrap();
        }
        fs::write(
            dir.join("memory.events"),
            "low 0\nhigh 0\nmax 4\noom 2\noom_kill 1\n",
        )
        .unwrap();
        fs::write(dir.join("pids.events"), "max 3\n").unwrap();
        fs::write(
            dir.join("cpu.stat"),
            "usage_usec 2500000\nuser_usec 2000000\n",
        )
        .unwrap();
        let mut g = group_at(&dir, "v2");
        let gaps = g.apply(&limits(Some(64 << 20), Some(500), Some(32)));
        assert!(gaps.is_empty(), "{gaps:?}");
        assert_eq!(
            fs::read_to_string(dir.join("memory.max")).unwrap(),
            "67108864"
        );
        assert_eq!(
            fs::read_to_string(dir.join("memory.swap.max")).unwrap(),
            "0"
        );
        assert_eq!(g.report.memory_max, Some(64 << 20));
        assert_eq!(g.report.cpu_max.as_deref(), Some("50000 100000"));
        assert_eq!(g.report.pids_max, Some(32));
        g.collect();
        assert_eq!(
            (g.report.oom_kills, g.report.pids_refused, g.report.cpu_ms),
            (1, 3, 2500)
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_limit_that_cannot_be_written_is_a_gap_not_a_success() {
        let dir = scratch("v2-gap");
        // No pids.max: the controller is not enabled for this group.
        fs::write(dir.join("memory.max"), "max\n").unwrap();
        let mut g = group_at(&dir, "v2");
        let gaps = g.apply(&limits(Some(1 << 30), None, Some(10)));
        assert_eq!(gaps.len(), 1, "{gaps:?}");
        assert!(gaps[0].what.contains("pids.max"), "{}", gaps[0].what);
        assert_eq!(g.report.pids_max, None);
        assert_eq!(g.report.memory_max, Some(1 << 30));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn as_root_the_v2_parent_is_a_wisp_subtree_with_the_controllers_enabled() {
        let dir = scratch("v2-root");
        fs::write(dir.join("cgroup.subtree_control"), "cpu\n").unwrap();
        // The kernel creates this file with the directory; here the test must.
        fs::create_dir(dir.join("wisp")).unwrap();
        fs::write(dir.join("wisp/cgroup.subtree_control"), "").unwrap();
        let m = Mount {
            root: dir.clone(),
            own: "/session.scope".into(),
        };
        let parent = v2_parent(&m, true, &["cpu", "memory", "pids"]).unwrap();
        assert_eq!(parent, dir.join("wisp"));
        // Only the missing controllers are asked for, at each level.
        assert_eq!(
            fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap(),
            "+memory +pids"
        );
        assert_eq!(
            fs::read_to_string(dir.join("wisp/cgroup.subtree_control")).unwrap(),
            "+cpu +memory +pids"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn counters_are_read_by_key() {
        assert_eq!(keyed("oom 3\noom_kill 2\n", "oom_kill"), Some(2));
        assert_eq!(
            keyed("oom_kill_disable 0\nunder_oom 0\noom_kill 5\n", "oom_kill"),
            Some(5)
        );
        assert_eq!(keyed("max 0\n", "oom_kill"), None);
    }
}
