//! A `[limits]` table (the plan's, or a task's own), with the same names and value forms as
//! `wisp run`'s flags.

use crate::limits::LimitArgs;
use crate::scalar;

/// A `[limits]` table, with the same names and value forms as `wisp run`'s flags.
pub(crate) fn limit_args(v: &toml::Value) -> Result<LimitArgs, String> {
    let table = v.as_table().ok_or("expected a table")?;
    let mut a = LimitArgs::default();
    for (k, v) in table {
        let text = || scalar(v).ok_or(format!("{k} must be a string or number"));
        let list = || -> Result<Vec<String>, String> {
            match v {
                toml::Value::Array(items) => items
                    .iter()
                    .map(|i| i.as_str().map(str::to_owned))
                    .collect::<Option<_>>()
                    .ok_or(format!("{k} must list paths")),
                toml::Value::String(s) => Ok(vec![s.clone()]),
                _ => Err(format!("{k} must list paths")),
            }
        };
        let ports = || -> Result<Vec<u16>, String> {
            let items = match v {
                toml::Value::Array(items) => items.clone(),
                other => vec![other.clone()],
            };
            items
                .iter()
                .map(|i| i.as_integer().and_then(|p| u16::try_from(p).ok()))
                .collect::<Option<_>>()
                .ok_or(format!("{k} must list TCP ports"))
        };
        let flag = || v.as_bool().ok_or(format!("{k} must be true or false"));
        let named = |e: String| format!("{k}: {e}");
        match k.as_str() {
            "timeout" => {
                a.timeout = Some(crate::quantity::parse_duration(&text()?).map_err(named)?)
            }
            "memory" => a.memory = Some(crate::quantity::parse_size(&text()?).map_err(named)?),
            "cpus" => a.cpus = Some(crate::quantity::parse_cpus(&text()?).map_err(named)?),
            "pids" => a.pids = Some(crate::quantity::parse_count(&text()?).map_err(named)?),
            "ro" => a.ro = list()?,
            "rw" => a.rw = list()?,
            "exec" => a.exec = list()?,
            "no_system_paths" => a.no_system_paths = flag()?,
            "allow_connect" => a.allow_connect = ports()?,
            "allow_bind" => a.allow_bind = ports()?,
            "no_net" => a.no_net = flag()?,
            "private_tmp" => a.private_tmp = flag()?,
            "pid_ns" => a.pid_ns = flag()?,
            "seccomp" => a.seccomp = Some(text()?),
            "nofile" => a.nofile = Some(crate::quantity::parse_count(&text()?).map_err(named)?),
            "fsize" => a.fsize = Some(crate::quantity::parse_size(&text()?).map_err(named)?),
            "core" => a.core = Some(crate::quantity::parse_size(&text()?).map_err(named)?),
            "sandbox" => a.sandbox = Some(crate::quantity::parse_mode(&text()?).map_err(named)?),
            other => return Err(format!("unknown limit {other:?}")),
        }
    }
    Ok(a)
}

/// The task's own limits over the plan's defaults.
pub(crate) fn merge(base: LimitArgs, own: LimitArgs) -> LimitArgs {
    let pick_vec = |a: Vec<String>, b: Vec<String>| if b.is_empty() { a } else { b };
    LimitArgs {
        timeout: own.timeout.or(base.timeout),
        memory: own.memory.or(base.memory),
        cpus: own.cpus.or(base.cpus),
        pids: own.pids.or(base.pids),
        ro: pick_vec(base.ro, own.ro),
        rw: pick_vec(base.rw, own.rw),
        exec: pick_vec(base.exec, own.exec),
        no_system_paths: own.no_system_paths || base.no_system_paths,
        allow_connect: if own.allow_connect.is_empty() {
            base.allow_connect
        } else {
            own.allow_connect
        },
        allow_bind: if own.allow_bind.is_empty() {
            base.allow_bind
        } else {
            own.allow_bind
        },
        no_net: own.no_net || base.no_net,
        private_tmp: own.private_tmp || base.private_tmp,
        pid_ns: own.pid_ns || base.pid_ns,
        seccomp: own.seccomp.or(base.seccomp),
        nofile: own.nofile.or(base.nofile),
        fsize: own.fsize.or(base.fsize),
        core: own.core.or(base.core),
        sandbox: own.sandbox.or(base.sandbox),
    }
}
