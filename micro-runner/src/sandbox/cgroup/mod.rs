//! One cgroup per command, written by hand rather than through a cgroup library: every limit
//! is read back after it is written (a write the kernel ignored is a missing protection, not a
//! success), controllers are found where this host actually mounts them, and hybrid hosts use
//! their v1 controllers for limits and their empty cgroup2 for `cgroup.kill`.
//!
//! Layout: a group named `wisp-<runner pid>-<serial>` below the runner's own group in each
//! hierarchy it needs (on v2 as root: in a `wisp` subtree below the root, where controllers
//! can always be enabled; removed at the end when no other runner uses it). The child joins by writing `0` to each `cgroup.procs` opened beforehand, so the
//! join is one `write(2)` between fork and exec. The groups are removed after the command.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::Path;

mod cleanup;
mod group;
mod mount;
mod settings;

pub(crate) use cleanup::remove_stale;
pub(crate) use group::Group;
pub(crate) use mount::{Layout, Mount};
pub(crate) use settings::{Setting, controllers_for, read_back_matches, settings};

/// CFS period the CPU quota is expressed in, microseconds.
const CPU_PERIOD_US: u64 = 100_000;

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
    use std::collections::BTreeMap;
    use std::fs;
    use std::path::PathBuf;

    use wisp_protocol::message::Limits;
    use wisp_protocol::sandbox::CgroupReport;

    use super::group::v2_parent;

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
