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
    PathFd, Ruleset, RulesetAttr, RulesetCreated, RulesetCreatedAttr,
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
    "/dev/tty",
];

/// A built ruleset, not yet enforced, and what it will enforce.
#[derive(Debug)]
pub(crate) struct Built {
    pub(crate) ruleset: RulesetCreated,
    pub(crate) report: LandlockReport,
}

/// Builds the ruleset for `fs` and `net`. Returns it (absent when nothing at all can be
/// enforced) and each gap between what was asked and what it enforces.
pub(crate) fn build(
    kernel_abi: Option<u32>,
    fs: Option<&FsRules>,
    net: Option<&NetRules>,
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
        gaps.push("landlock: not available on this kernel (see READY caps.landlock)".into());
        return (None, gaps);
    }
    let fs_rights = if fs.is_some() {
        AccessFs::from_all(abi)
    } else {
        BitFlags::EMPTY
    };
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
        let mut created = ruleset.create().map_err(|e| e.to_string())?;
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
            grants.extend(fs.rw.iter().map(|p| (p.as_str(), fs_rights, "rw", false)));
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
