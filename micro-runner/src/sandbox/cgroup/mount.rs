//! Where this host mounts its cgroup hierarchies (v1 controllers, the cgroup2 mount) and
//! where this process sits in each, read from /proc/self/mountinfo and /proc/self/cgroup.

use std::collections::BTreeMap;
use std::fs::{self};
use std::path::PathBuf;
use std::sync::OnceLock;

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
    pub(super) fn own_dir(&self) -> PathBuf {
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
