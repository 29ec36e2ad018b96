//! Landlock rules for one command, built in the runner (opening each path, adding each rule)
//! so that the child only has to call `landlock_restrict_self` between fork and exec.
//!
//! Rights are chosen from the kernel's own ABI, capped at the newest ABI this code was tested
//! against, and requested at `HardRequirement`: the ruleset either holds exactly what the
//! report says or is not built. Whether that is *enough* is judged here: filesystem rules want
//! ABI 3 (below it, truncation is uncontrolled), TCP rules ABI 4.

use std::path::Path;

use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath,
    PathFd, Ruleset, RulesetAttr, RulesetCreated, RulesetCreatedAttr, Scope,
};
use wisp_protocol::sandbox::{FsRules, LandlockReport, NetRules};

/// The newest ABI whose rights this code handles (tested on Linux 6.18).
const TESTED_ABI: i32 = 7;

/// Read and execute beneath these, when `system` is on.
const SYSTEM_EXEC: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
];
/// Read beneath these.
const SYSTEM_READ: &[&str] = &["/etc", "/proc"];
/// Read and write (no create, no remove) these device files.
const SYSTEM_DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
];

/// What keeps a sandboxed command away from the runner and from its own limits, on top of the
/// rules it asked for. Any Landlock domain already keeps the command from tracing processes
/// outside it (so from /proc/RUNNER/fd, /proc/RUNNER/mem, `pidfd_getfd` and
/// `process_vm_writev` on the runner) and from changing mounts; the domain built here also
/// refuses device nodes, and on request signals and cgroup files.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Isolation {
    /// Signals only to processes in the command's own domain (ABI 6).
    pub(crate) signals: bool,
    /// No writes beneath a cgroup filesystem, so the command cannot leave its group or raise
    /// its limits. Only where no filesystem rules were asked (they grant no cgroup file
    /// unless the operator named one).
    pub(crate) cgroup_files: bool,
    /// The command may not gain privileges by exec (needed for Landlock without
    /// CAP_SYS_ADMIN).
    pub(crate) no_new_privs: bool,
}

/// Device nodes are never made, whatever a rule grants.
fn device_rights() -> BitFlags<AccessFs> {
    AccessFs::MakeChar | AccessFs::MakeBlock
}

/// A built ruleset, not yet enforced, and what it will enforce.
#[derive(Debug)]
pub(crate) struct Built {
    pub(crate) ruleset: RulesetCreated,
    pub(crate) report: LandlockReport,
}

/// Builds the ruleset for `fs`, `net` and `isolation`. Returns it (absent when nothing at all
/// can be enforced) and each gap between what was asked and what it enforces.
pub(crate) fn build(
    kernel_abi: Option<u32>,
    fs: Option<&FsRules>,
    net: Option<&NetRules>,
    isolation: Option<Isolation>,
) -> (Option<Built>, Vec<String>) {
    let mut gaps = Vec::new();
    let kernel = kernel_abi.map_or(0, |a| i32::try_from(a).unwrap_or(i32::MAX));
    let abi = ABI::from(kernel.min(TESTED_ABI));
    let mut report = LandlockReport {
        abi: u32::try_from(kernel).unwrap_or(0),
        status: "none".into(),
        ..Default::default()
    };
    if kernel <= 0 {
        if fs.is_some() || net.is_some() {
            gaps.push("landlock: not available on this kernel (see READY caps.landlock)".into());
        }
        if isolation.is_some() {
            gaps.push(
                "isolation: without Landlock (Linux 5.13) the command could reach the runner \
                 through /proc and lift its own limits"
                    .into(),
            );
        }
        return (None, gaps);
    }
    let iso = isolation.unwrap_or_default();
    let fs_rights = if fs.is_some() {
        AccessFs::from_all(abi)
    } else if isolation.is_some() {
        let mut r = device_rights();
        if iso.cgroup_files {
            r |= AccessFs::WriteFile;
        }
        r
    } else {
        BitFlags::EMPTY
    };
    let scopes = if iso.signals && kernel >= 6 {
        BitFlags::from(Scope::Signal)
    } else {
        BitFlags::EMPTY
    };
    if iso.signals && kernel < 6 {
        gaps.push(format!(
            "landlock: ABI {kernel} cannot keep the command from signalling processes outside \
             it (needs ABI 6, Linux 6.12)"
        ));
    }
    if fs.is_some() && kernel < 3 {
        gaps.push(format!(
            "landlock: ABI {kernel} cannot restrict truncation (needs ABI 3, Linux 6.2)"
        ));
    }
    let want_net = net.is_some();
    let net_rights = if want_net && kernel >= 4 {
        AccessNet::from_all(abi)
    } else {
        BitFlags::EMPTY
    };
    if want_net && kernel < 4 {
        gaps.push(format!(
            "landlock: ABI {kernel} cannot restrict TCP ports (needs ABI 4, Linux 6.7)"
        ));
    }
    if fs_rights.is_empty() && net_rights.is_empty() {
        return (None, gaps);
    }
    let built = (|| -> Result<RulesetCreated, String> {
        let mut ruleset = Ruleset::default().set_compatibility(CompatLevel::HardRequirement);
        if !fs_rights.is_empty() {
            ruleset = ruleset
                .handle_access(fs_rights)
                .map_err(|e| e.to_string())?;
        }
        if !net_rights.is_empty() {
            ruleset = ruleset
                .handle_access(net_rights)
                .map_err(|e| e.to_string())?;
        }
        if !scopes.is_empty() {
            ruleset = ruleset.scope(scopes).map_err(|e| e.to_string())?;
        }
        let mut created = ruleset
            .create()
            .map_err(|e| e.to_string())?
            .no_new_privs(iso.no_new_privs || fs.is_some() || net.is_some());
        if fs.is_none() && iso.cgroup_files {
            for path in writable_outside_cgroups() {
                let Ok(fd) = PathFd::new(&path) else { continue };
                created = created
                    .add_rule(PathBeneath::new(fd, AccessFs::WriteFile))
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
            report.rules.push("isolation:cgroup-files".into());
        }
        if let Some(fs) = fs {
            let read = AccessFs::ReadFile | AccessFs::ReadDir;
            let mut grants: Vec<(&str, BitFlags<AccessFs>, &str, bool)> = Vec::new();
            if fs.system {
                grants.extend(
                    SYSTEM_EXEC
                        .iter()
                        .map(|p| (*p, read | AccessFs::Execute, "exec", true)),
                );
                grants.extend(SYSTEM_READ.iter().map(|p| (*p, read, "ro", true)));
                grants.extend(SYSTEM_DEVICES.iter().map(|p| {
                    (
                        *p,
                        AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::IoctlDev,
                        "rw",
                        true,
                    )
                }));
            }
            grants.extend(fs.ro.iter().map(|p| (p.as_str(), read, "ro", false)));
            grants.extend(
                fs.exec
                    .iter()
                    .map(|p| (p.as_str(), read | AccessFs::Execute, "exec", false)),
            );
            let rw = fs_rights & !device_rights();
            grants.extend(fs.rw.iter().map(|p| (p.as_str(), rw, "rw", false)));
            for (path, access, kind, optional) in grants {
                let fd = match PathFd::new(path) {
                    Ok(fd) => fd,
                    Err(_) if optional => continue,
                    Err(e) => {
                        gaps.push(format!(
                            "landlock: cannot grant {kind} on {path}: {}",
                            source_of(&e)
                        ));
                        continue;
                    }
                };
                // A file takes only the rights that apply to files.
                let on_file = !Path::new(path).is_dir();
                let mut access = access & fs_rights;
                if on_file {
                    access &= AccessFs::from_file(abi);
                }
                created = created
                    .add_rule(PathBeneath::new(fd, access))
                    .map_err(|e| format!("{path}: {e}"))?;
                report.rules.push(format!("{kind}:{path}"));
            }
        }
        if let Some(net) = net
            && !net_rights.is_empty()
        {
            for port in &net.connect {
                created = created
                    .add_rule(NetPort::new(*port, AccessNet::ConnectTcp))
                    .map_err(|e| e.to_string())?;
                report.rules.push(format!("connect:{port}"));
            }
            for port in &net.bind {
                created = created
                    .add_rule(NetPort::new(*port, AccessNet::BindTcp))
                    .map_err(|e| e.to_string())?;
                report.rules.push(format!("bind:{port}"));
            }
        }
        Ok(created)
    })();
    match built {
        Ok(ruleset) => {
            report.fs_rights = fs_rights
                .iter()
                .map(right_name)
                .map(str::to_owned)
                .collect();
            report.net = !net_rights.is_empty();
            // Set after the child confirms `restrict_self`; until then nothing is enforced.
            report.status = "none".into();
            (Some(Built { ruleset, report }), gaps)
        }
        Err(e) => {
            gaps.push(format!("landlock: cannot build the ruleset: {e}"));
            (None, gaps)
        }
    }
}

/// Every path beneath which files may be written while cgroup files may not: the entries of
/// each directory on the way from `/` to a cgroup mount, except the ones leading to it.
fn writable_outside_cgroups() -> Vec<std::path::PathBuf> {
    let layout = super::Layout::host();
    let cgroups: Vec<&Path> = layout
        .v1
        .values()
        .chain(layout.v2.iter())
        .map(|m| m.root.as_path())
        .collect();
    let leads_to_cgroup = |p: &Path| cgroups.iter().any(|c| c.starts_with(p));
    let mut out = Vec::new();
    let mut stack = vec![std::path::PathBuf::from("/")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if !leads_to_cgroup(&path) {
                out.push(path);
            } else if !cgroups.contains(&path.as_path()) && out.len() + stack.len() < 4096 {
                stack.push(path);
            }
        }
    }
    out
}

fn source_of(e: &landlock::PathFdError) -> String {
    match std::error::Error::source(e) {
        Some(s) => s.to_string(),
        None => e.to_string(),
    }
}

fn right_name(r: AccessFs) -> &'static str {
    match r {
        AccessFs::Execute => "execute",
        AccessFs::WriteFile => "write_file",
        AccessFs::ReadFile => "read_file",
        AccessFs::ReadDir => "read_dir",
        AccessFs::RemoveDir => "remove_dir",
        AccessFs::RemoveFile => "remove_file",
        AccessFs::MakeChar => "make_char",
        AccessFs::MakeDir => "make_dir",
        AccessFs::MakeReg => "make_reg",
        AccessFs::MakeSock => "make_sock",
        AccessFs::MakeFifo => "make_fifo",
        AccessFs::MakeBlock => "make_block",
        AccessFs::MakeSym => "make_sym",
        AccessFs::Refer => "refer",
        AccessFs::Truncate => "truncate",
        AccessFs::IoctlDev => "ioctl_dev",
        _ => "other",
    }
}

/// Older kernels are judged by the same code with a lower ABI: the rights requested stay
/// within what that ABI knows (so the ruleset still builds on this newer kernel), and the
/// gaps name what the older kernel could not have enforced.
#[cfg(test)]
mod tests {
    use super::*;

    fn fs(rw: &str) -> FsRules {
        FsRules {
            rw: vec![rw.into()],
            ..Default::default()
        }
    }

    fn net() -> NetRules {
        NetRules {
            connect: vec![443],
            bind: Vec::new(),
        }
    }

    #[test]
    fn no_landlock_is_a_gap_for_any_rule() {
        let (built, gaps) = build(None, Some(&fs("/tmp")), None, None);
        assert!(built.is_none());
        assert_eq!(gaps.len(), 1);
        assert!(gaps[0].starts_with("landlock: not available"), "{gaps:?}");
    }

    #[test]
    fn old_abis_name_what_they_cannot_restrict() {
        // Landlock itself must exist here for the ruleset to be built at all.
        if !kernel_has_abi_4() {
            return;
        }
        let (built, gaps) = build(Some(2), Some(&fs("/tmp")), Some(&net()), None);
        let built = built.expect("an ABI 2 ruleset still restricts the filesystem");
        assert!(!built.report.net);
        assert!(!built.report.fs_rights.contains(&"truncate".to_owned()));
        assert!(built.report.fs_rights.contains(&"refer".to_owned()));
        assert_eq!(gaps.len(), 2, "{gaps:?}");
        assert!(gaps[0].contains("truncation (needs ABI 3"), "{gaps:?}");
        assert!(gaps[1].contains("TCP ports (needs ABI 4"), "{gaps:?}");
        // With TCP rules alone on ABI 3 nothing can be enforced.
        let (built, gaps) = build(Some(3), None, Some(&net()), None);
        assert!(built.is_none());
        assert_eq!(gaps.len(), 1, "{gaps:?}");
    }

    #[test]
    fn a_current_abi_enforces_everything_and_lists_the_rules() {
        if !kernel_has_abi_4() {
            return;
        }
        let (built, gaps) = build(Some(7), Some(&fs("/tmp")), Some(&net()), None);
        assert!(gaps.is_empty(), "{gaps:?}");
        let r = built.unwrap().report;
        assert!(r.net);
        assert!(r.fs_rights.contains(&"truncate".to_owned()));
        assert!(r.rules.contains(&"rw:/tmp".to_owned()));
        assert!(r.rules.contains(&"exec:/usr".to_owned()));
        assert!(r.rules.contains(&"connect:443".to_owned()));
        let (_, gaps) = build(Some(7), Some(&fs("/nonexistent/wisp")), None, None);
        assert!(
            gaps[0].starts_with("landlock: cannot grant rw on /nonexistent/wisp"),
            "{gaps:?}"
        );
    }

    /// Landlock ABI 4 or later on this kernel; CI must have it, elsewhere the test says why
    /// it does not run.
    fn kernel_has_abi_4() -> bool {
        // SAFETY: the version query passes no memory.
        #[allow(unsafe_code)]
        let r = unsafe { libc::syscall(444, std::ptr::null::<libc::c_void>(), 0usize, 1u32) };
        if r >= 4 {
            return true;
        }
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run on a kernel with Landlock ABI 4 or later"
        );
        crate::diag::say("not run: this kernel lacks Landlock ABI 4");
        false
    }
}
