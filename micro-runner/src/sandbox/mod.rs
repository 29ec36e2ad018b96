//! Per-command enforcement: turns a CMD's `limits` into prepared protections, decides what is
//! missing, and builds the enforcement report DONE carries.
//!
//! Fail closed: under `require` (the default) any protection that cannot be applied exactly
//! stops the command before it is started, and the ERROR names every gap at once. Gaps found
//! only in the child (an `unshare` the kernel refuses) stop its exec the same way. Under
//! `best-effort` the command runs and the report lists each gap. Nothing is dropped silently.
//!
//! What this module does not know: how processes are spawned and watched (`exec`), or frames.

mod cgroup;
mod child;
mod landlock;
mod seccomp;

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::fd::{FromRawFd, OwnedFd};

use wisp_protocol::message::{Capabilities, Limits};
use wisp_protocol::sandbox::{Enforcement, Namespace, SandboxMode, Seccomp, SeccompReport};

pub(crate) use cgroup::{Group, Layout, remove_stale};
pub(crate) use child::ChildSteps;

/// A request the runner will not try: the limits themselves are wrong.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// A value no host could apply (a custom filter that does not compile).
    Invalid(String),
    /// `require` mode and these protections cannot be applied here.
    Unavailable(Vec<String>),
}

/// Protections prepared for one command.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) steps: ChildSteps,
    pub(crate) group: Option<Group>,
    pub(crate) report: Enforcement,
    /// Read end of the child's failure pipe.
    failures: Option<OwnedFd>,
    /// rlimit names in the order the child sets them.
    rlimit_names: Vec<String>,
    landlock_gaps: bool,
}

/// Prepares everything `limits` asks for, before the fork.
pub(crate) fn prepare(
    limits: &Limits,
    caps: &Capabilities,
    name: &str,
) -> Result<Prepared, Refusal> {
    let mode = limits.mode();
    let mut gaps: Vec<String> = Vec::new();
    let mut steps = ChildSteps {
        best_effort: mode == SandboxMode::BestEffort,
        ..Default::default()
    };
    let mut report = Enforcement {
        mode,
        kill: "process-group".into(),
        ..Default::default()
    };

    // seccomp first: a bad custom filter is the request's fault, whatever the host.
    let profile = limits.seccomp.clone().unwrap_or(Seccomp::None);
    if profile != Seccomp::None {
        let filters = seccomp::compile(&profile).map_err(Refusal::Invalid)?;
        if caps.seccomp.filter {
            steps.seccomp = filters.programs;
            report.seccomp = Some(SeccompReport {
                profile: profile.name().to_owned(),
                arch: std::env::consts::ARCH.into(),
            });
        } else {
            gaps.push("seccomp: filter mode is not available on this kernel".into());
        }
    }

    // Any sandbox keeps the command away from the runner (the runner's output is the report)
    // and from lifting its own limits. A non-root runner's children cannot reach it anyway
    // (the runner is not dumpable), so they get this only where a cgroup needs guarding.
    let root = nix::unistd::geteuid().is_root();
    let profile_set = limits.seccomp.as_ref().is_some_and(|s| *s != Seccomp::None);
    let asked_nnp = profile_set || limits.fs.is_some() || limits.net.is_some();
    let isolation =
        (sandboxed(limits) && (root || limits.wants_cgroup() || asked_nnp)).then(|| {
            landlock::Isolation {
                signals: profile_set || limits.fs.is_some(),
                cgroup_files: limits.wants_cgroup() && limits.fs.is_none(),
                no_new_privs: !root,
            }
        });
    let mut landlock_gaps = false;
    let mut landlock_nnp = false;
    if limits.fs.is_some() || limits.net.is_some() || isolation.is_some() {
        let (built, ll_gaps) = landlock::build(
            caps.landlock.abi,
            limits.fs.as_ref(),
            limits.net.as_ref(),
            isolation,
        );
        landlock_gaps = !ll_gaps.is_empty();
        gaps.extend(ll_gaps);
        if let Some(built) = built {
            landlock_nnp = !root || asked_nnp;
            steps.landlock = Some(built.ruleset);
            report.landlock = Some(built.report);
        } else {
            report.landlock = Some(wisp_protocol::sandbox::LandlockReport {
                abi: caps.landlock.abi.unwrap_or(0),
                status: "none".into(),
                ..Default::default()
            });
        }
    }
    // A root command could raise its rlimits past their hard values (CAP_SYS_RESOURCE).
    steps.drop_sys_resource = root && sandboxed(limits);

    let mut namespaces = limits.namespaces.clone();
    namespaces.sort();
    namespaces.dedup();
    for ns in &namespaces {
        steps.unshare_flags |= match ns {
            Namespace::Net => libc::CLONE_NEWNET,
            Namespace::Mount => libc::CLONE_NEWNS,
            // Its own /proc needs its own mount namespace.
            Namespace::Pid => libc::CLONE_NEWPID | libc::CLONE_NEWNS,
        };
    }
    steps.private_tmp = namespaces.contains(&Namespace::Mount);
    steps.pid_namespace = namespaces.contains(&Namespace::Pid);
    if steps.unshare_flags != 0 && !nix::unistd::geteuid().is_root() {
        // Without CAP_SYS_ADMIN, namespaces come inside a user namespace of our own, where
        // this uid and gid map to themselves (files keep their owners).
        steps.unshare_flags |= libc::CLONE_NEWUSER;
        let (uid, gid) = (nix::unistd::getuid(), nix::unistd::getgid());
        steps.user_maps = Some(child::UserMaps {
            uid_map: CString::new(format!("{uid} {uid} 1")).unwrap_or_default(),
            gid_map: CString::new(format!("{gid} {gid} 1")).unwrap_or_default(),
        });
    }
    report.namespaces = namespaces;

    let mut rlimits = BTreeMap::new();
    // In the order the child sets them: a failure names its index.
    rlimits.insert(
        "core",
        (libc::RLIMIT_CORE, limits.rlimits.core.unwrap_or(0)),
    );
    if let Some(n) = limits.rlimits.nofile {
        rlimits.insert("nofile", (libc::RLIMIT_NOFILE, n));
    }
    if let Some(n) = limits.rlimits.fsize {
        rlimits.insert("fsize", (libc::RLIMIT_FSIZE, n));
    }
    let mut rlimit_names = Vec::new();
    #[allow(clippy::useless_conversion)]
    for (name, (resource, value)) in rlimits {
        steps
            .rlimits
            .push((libc::c_int::try_from(resource).unwrap_or(-1), value));
        report.rlimits.insert(name.to_owned(), value);
        rlimit_names.push(name.to_owned());
    }

    steps.no_new_privs = !steps.seccomp.is_empty() || landlock_nnp || steps.unshare_flags != 0;
    report.no_new_privs = steps.no_new_privs;

    let mut group = None;
    if limits.wants_cgroup() {
        match Group::create(Layout::host(), limits, name) {
            Ok((g, cg_gaps)) => {
                gaps.extend(cg_gaps.into_iter().map(|g| g.what));
                steps.cgroup_procs = g.join_fds();
                report.kill = g.kill_method().into();
                group = Some(g);
            }
            Err(gap) => gaps.push(gap.what),
        }
    }

    if mode == SandboxMode::Require && !gaps.is_empty() {
        if let Some(g) = group {
            g.remove();
        }
        return Err(Refusal::Unavailable(gaps));
    }

    let mut fds = [0; 2];
    // SAFETY: `fds` is a live two-element array, as pipe2 requires.
    #[allow(unsafe_code)]
    let failures = if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == 0 {
        // SAFETY: pipe2 just returned these two descriptors; nothing else owns them.
        #[allow(unsafe_code)]
        unsafe {
            steps.report = Some(OwnedFd::from_raw_fd(fds[1]));
            Some(OwnedFd::from_raw_fd(fds[0]))
        }
    } else {
        None
    };
    report.missing = gaps;
    Ok(Prepared {
        steps,
        group,
        report,
        failures,
        rlimit_names,
        landlock_gaps,
    })
}

/// True when the command asked for any protection (a timeout alone is not one).
fn sandboxed(limits: &Limits) -> bool {
    limits.wants_cgroup()
        || !limits.rlimits.is_empty()
        || limits.fs.is_some()
        || limits.net.is_some()
        || limits.seccomp.as_ref().is_some_and(|s| *s != Seccomp::None)
        || !limits.namespaces.is_empty()
}

impl Prepared {
    /// After the spawn returned (the child has exec'd or failed): closes the runner's copy of
    /// the pipe's write end and folds the child's failures into the report. Returns them as
    /// gap descriptions.
    pub(crate) fn after_spawn(&mut self) -> Vec<String> {
        self.steps.report = None;
        // The ruleset and filters belong to the child now; the runner's copies can go.
        self.steps.landlock = None;
        let failed: Vec<String> = self
            .failures
            .take()
            .map(|fd| child::read_failures(&fd))
            .unwrap_or_default()
            .into_iter()
            .map(|(step, index, errno)| {
                let mut what = step.describe().to_owned();
                match step {
                    child::Step::Landlock => {
                        if let Some(l) = &mut self.report.landlock {
                            l.status = "failed".into();
                        }
                    }
                    child::Step::Seccomp => self.report.seccomp = None,
                    child::Step::Namespaces | child::Step::UserMap => {
                        self.report.namespaces.clear();
                    }
                    child::Step::PrivateTmp => {
                        self.report.namespaces.retain(|n| *n != Namespace::Mount);
                    }
                    child::Step::PidNamespace => {
                        self.report.namespaces.retain(|n| *n != Namespace::Pid);
                    }
                    child::Step::NoNewPrivs => self.report.no_new_privs = false,
                    child::Step::Rlimit => {
                        if let Some(name) = self.rlimit_names.get(index) {
                            let value = self.report.rlimits.remove(name).unwrap_or(0);
                            what = format!("rlimits: setrlimit {name} {value} failed");
                        }
                    }
                    child::Step::CgroupJoin | child::Step::Capabilities => {}
                }
                format!("{what}: {}", std::io::Error::from_raw_os_error(errno))
            })
            .collect();
        if let Some(l) = &mut self.report.landlock
            && l.status == "none"
            && !failed.iter().any(|f| f.starts_with("landlock"))
            && (!l.fs_rights.is_empty() || l.net)
        {
            l.status = if self.landlock_gaps {
                "partial"
            } else {
                "full"
            }
            .into();
        }
        self.report.missing.extend(failed.iter().cloned());
        self.report.complete = self.report.missing.is_empty();
        failed
    }

    /// Kills the command's whole tree through its cgroup, if it has one.
    pub(crate) fn kill_tree(&self) {
        if let Some(g) = &self.group {
            g.kill();
        }
    }

    /// After the command ended: reads the cgroup's counters, removes it, returns the report.
    pub(crate) fn finish(mut self) -> Enforcement {
        if let Some(mut g) = self.group.take() {
            g.collect();
            self.report.cgroup = Some(g.report.clone());
            g.remove();
        }
        self.report
    }
}
