//! The limit flags of `wisp run` (and later of plan tasks), turned into the protocol's
//! `limits`, and the one-line summary of an enforcement report the recap shows.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use wisp_protocol::message::Limits;
use wisp_protocol::sandbox::{
    Enforcement, FsRules, Namespace, NetRules, Rlimits, SandboxMode, Seccomp,
};

use crate::quantity::{parse_count, parse_cpus, parse_duration, parse_mode, parse_size};

/// Protections enforced by the runner on the host, per command.
#[derive(Debug, Clone, Default, Args, serde::Serialize, serde::Deserialize)]
#[command(next_help_heading = "Limits (enforced on the host, per command)")]
pub struct LimitArgs {
    /// Kill the command's whole process tree if it runs longer than this.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Memory limit of the command's cgroup (`512M`, `2G`); OOM kills are reported as such.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub memory: Option<u64>,
    /// CPU quota in CPUs (`0.5` = half of one CPU, `2` = two CPUs).
    #[arg(long, value_name = "N", value_parser = parse_cpus)]
    pub cpus: Option<u64>,
    /// Most processes and threads alive at once (fork bombs stop here).
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub pids: Option<u64>,
    /// Landlock: allow reading beneath PATH (repeatable). Any of --ro/--rw/--exec turns on
    /// filesystem rules: everything not granted is denied.
    #[arg(long, value_name = "PATH")]
    pub ro: Vec<String>,
    /// Landlock: allow everything beneath PATH (repeatable).
    #[arg(long, value_name = "PATH")]
    pub rw: Vec<String>,
    /// Landlock: allow reading and executing beneath PATH (repeatable).
    #[arg(long, value_name = "PATH")]
    pub exec: Vec<String>,
    /// With filesystem rules, do not grant the system directories (/usr, /bin, /lib*, /etc,
    /// /proc, /dev/null...) that programs need to start.
    #[arg(long)]
    pub no_system_paths: bool,
    /// Landlock: allow TCP connections to PORT only (repeatable; kernel 6.7+).
    #[arg(long, value_name = "PORT")]
    pub allow_connect: Vec<u16>,
    /// Landlock: allow binding TCP PORT only (repeatable; kernel 6.7+).
    #[arg(long, value_name = "PORT")]
    pub allow_bind: Vec<u16>,
    /// No network at all: a new network namespace with only a loopback interface, down.
    #[arg(long)]
    pub no_net: bool,
    /// A private, empty /tmp (a new mount namespace).
    #[arg(long)]
    pub private_tmp: bool,
    /// Run as PID 1 of a new PID namespace with its own /proc: the command sees only its own
    /// processes, and all of them die with it.
    #[arg(long)]
    pub pid_ns: bool,
    /// seccomp profile: `default` (deny the dangerous families with EPERM), `strict` (allow a
    /// list that runs shells, coreutils and package managers; ENOSYS for the rest), `none`, or
    /// a seccompiler JSON FILE with one filter, compiled for each host's architecture
    /// (`{arch}` in the name picks a file per architecture: `filter-{arch}.json`).
    #[arg(long, value_name = "PROFILE|FILE")]
    pub seccomp: Option<String>,
    /// Open file descriptors at most (RLIMIT_NOFILE).
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub nofile: Option<u64>,
    /// Largest file the command may write (RLIMIT_FSIZE).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub fsize: Option<u64>,
    /// Core dump size (RLIMIT_CORE) [default: 0].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub core: Option<u64>,
    /// `require` (the default): if any requested protection cannot be applied exactly, the
    /// command does not run and the error names each gap. `best-effort`: run anyway and
    /// report the gaps.
    #[arg(long, value_name = "MODE", value_parser = parse_mode)]
    pub sandbox: Option<SandboxMode>,
}

impl LimitArgs {
    /// The protocol's limits for a host of `arch` (which picks a per-arch seccomp file).
    pub fn to_limits(&self, arch: &str) -> Result<Limits, String> {
        let fs = (!self.ro.is_empty() || !self.rw.is_empty() || !self.exec.is_empty()).then(|| {
            FsRules {
                ro: self.ro.clone(),
                rw: self.rw.clone(),
                exec: self.exec.clone(),
                system: !self.no_system_paths,
            }
        });
        let net =
            (!self.allow_connect.is_empty() || !self.allow_bind.is_empty()).then(|| NetRules {
                connect: self.allow_connect.clone(),
                bind: self.allow_bind.clone(),
            });
        let mut namespaces = Vec::new();
        if self.no_net {
            namespaces.push(Namespace::Net);
        }
        if self.private_tmp {
            namespaces.push(Namespace::Mount);
        }
        if self.pid_ns {
            namespaces.push(Namespace::Pid);
        }
        let seccomp = match self.seccomp.as_deref() {
            None => None,
            Some("default") => Some(Seccomp::Default),
            Some("strict") => Some(Seccomp::Strict),
            Some("none") => Some(Seccomp::None),
            Some(file) => Some(compile_seccomp_file(&file.replace("{arch}", arch), arch)?),
        };
        let limits = Limits {
            timeout_ms: self
                .timeout
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            memory_max: self.memory,
            cpu_millis: self.cpus,
            pids_max: self.pids,
            rlimits: Rlimits {
                nofile: self.nofile,
                fsize: self.fsize,
                core: self.core,
            },
            fs,
            net,
            seccomp,
            namespaces,
            sandbox: self.sandbox,
        };
        limits.validate()?;
        Ok(limits)
    }

    /// A seccomp file is compiled for each host's architecture.
    pub fn per_arch(&self) -> bool {
        self.seccomp
            .as_deref()
            .is_some_and(|s| !matches!(s, "default" | "strict" | "none"))
    }
}

/// Compiles a seccompiler JSON file (exactly one filter) for `arch`, into the hex form the
/// runner installs.
fn compile_seccomp_file(file: &str, arch: &str) -> Result<Seccomp, String> {
    let path = PathBuf::from(file);
    let json = std::fs::read(&path).map_err(|e| format!("--seccomp {}: {e}", path.display()))?;
    let target = seccompiler::TargetArch::try_from(arch).map_err(|_| {
        format!(
            "--seccomp {}: no seccomp support for {arch}",
            path.display()
        )
    })?;
    let map = seccompiler::compile_from_json(json.as_slice(), target)
        .map_err(|e| format!("--seccomp {} (for {arch}): {e}", path.display()))?;
    let mut filters: Vec<_> = map.into_iter().collect();
    if filters.len() != 1 {
        let names: Vec<String> = filters.iter().map(|(n, _)| n.clone()).collect();
        return Err(format!(
            "--seccomp {}: expected exactly one filter, found {}: {}",
            path.display(),
            names.len(),
            names.join(", ")
        ));
    }
    let (_, program) = filters.remove(0);
    let mut hex = String::with_capacity(program.len() * 16);
    for i in &program {
        let mut bytes = [0u8; 8];
        bytes[..2].copy_from_slice(&i.code.to_le_bytes());
        bytes[2] = i.jt;
        bytes[3] = i.jf;
        bytes[4..].copy_from_slice(&i.k.to_le_bytes());
        for b in bytes {
            hex.push_str(&format!("{b:02x}"));
        }
    }
    Ok(Seccomp::Bpf {
        name: path
            .file_name()
            .map_or_else(|| file.to_owned(), |n| n.to_string_lossy().into_owned()),
        arch: arch.to_owned(),
        program: hex,
    })
}

/// Whether the report has anything beyond the defaults every exec gets (core = 0).
pub fn is_sandboxed(e: &Enforcement) -> bool {
    e.landlock.is_some()
        || e.seccomp.is_some()
        || e.cgroup.is_some()
        || !e.namespaces.is_empty()
        || !e.missing.is_empty()
        || e.rlimits.len() > 1
}

/// One line for the recap: `fully enforced: ...` or `PARTIAL: ...; missing: ...`.
pub fn summary(e: &Enforcement) -> String {
    let mut parts = Vec::new();
    if let Some(l) = &e.landlock {
        parts.push(format!(
            "landlock abi {} {} ({} rule{})",
            l.abi,
            l.status,
            l.rules.len(),
            if l.rules.len() == 1 { "" } else { "s" }
        ));
    }
    if let Some(s) = &e.seccomp {
        parts.push(format!("seccomp {}", s.profile));
    }
    if let Some(c) = &e.cgroup {
        let mut limits = Vec::new();
        if let Some(m) = c.memory_max {
            limits.push(format!("memory {}", human_bytes(m)));
        }
        if let Some(cpu) = &c.cpu_max {
            limits.push(format!("cpu {cpu}"));
        }
        if let Some(p) = c.pids_max {
            limits.push(format!("pids {p}"));
        }
        parts.push(format!("cgroup {} [{}]", c.version, limits.join(", ")));
        if c.oom_kills > 0 {
            parts.push(format!("{} OOM kill(s)", c.oom_kills));
        }
        if c.pids_refused > 0 {
            parts.push(format!("{} fork(s) refused at pids max", c.pids_refused));
        }
    }
    if !e.namespaces.is_empty() {
        let ns: Vec<&str> = e.namespaces.iter().map(|n| n.as_str()).collect();
        parts.push(format!("namespaces {}", ns.join("+")));
    }
    let rl: Vec<String> = e.rlimits.iter().map(|(k, v)| format!("{k}={v}")).collect();
    parts.push(format!("rlimits {}", rl.join(" ")));
    if e.no_new_privs {
        parts.push("no_new_privs".into());
    }
    let head = if e.complete {
        "sandbox fully enforced".to_owned()
    } else {
        format!("sandbox PARTIAL ({})", e.mode.as_str())
    };
    let mut line = format!("{head}: {}", parts.join(", "));
    if !e.missing.is_empty() {
        line.push_str(&format!("; missing: {}", e.missing.join("; ")));
    }
    line
}

fn human_bytes(n: u64) -> String {
    for (shift, unit) in [(30, "G"), (20, "M"), (10, "K")] {
        if n >= 1 << shift && n.is_multiple_of(1 << shift) {
            return format!("{}{unit}", n >> shift);
        }
    }
    n.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_become_limits() {
        let a = LimitArgs {
            rw: vec!["/tmp/job".into()],
            memory: Some(128 << 20),
            pids: Some(64),
            seccomp: Some("default".into()),
            allow_connect: vec![443],
            no_net: true,
            ..Default::default()
        };
        let l = a.to_limits("x86_64").unwrap();
        assert_eq!(l.fs.as_ref().unwrap().rw, vec!["/tmp/job".to_owned()]);
        assert!(l.fs.as_ref().unwrap().system);
        assert_eq!(l.net.as_ref().unwrap().connect, vec![443]);
        assert_eq!(l.seccomp, Some(Seccomp::Default));
        assert_eq!(l.namespaces, vec![Namespace::Net]);
        assert_eq!(l.mode(), SandboxMode::Require);
        let relative = LimitArgs {
            ro: vec!["data".into()],
            ..Default::default()
        };
        assert!(
            relative
                .to_limits("x86_64")
                .unwrap_err()
                .contains("not absolute")
        );
    }

    #[test]
    fn summary_says_fully_or_partial() {
        let mut e = Enforcement {
            complete: true,
            no_new_privs: true,
            ..Default::default()
        };
        e.rlimits.insert("core".into(), 0);
        assert!(summary(&e).starts_with("sandbox fully enforced: rlimits core=0"));
        e.complete = false;
        e.mode = SandboxMode::BestEffort;
        e.missing.push("landlock: gone".into());
        let s = summary(&e);
        assert!(s.starts_with("sandbox PARTIAL (best-effort)"), "{s}");
        assert!(s.ends_with("missing: landlock: gone"), "{s}");
    }
}
