//! The limit files a command's limits become, for v1 and v2, and how a value read back is
//! compared with the one written.

use wisp_protocol::message::Limits;

use super::CPU_PERIOD_US;

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
