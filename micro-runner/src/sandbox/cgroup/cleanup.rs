//! Process-wide cleanup: groups that could not be removed after their command and `wisp`
//! subtrees this runner created, retried and removed when the session ends.

use std::fs::{self};
use std::io::{self};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Groups that could not be removed after their command; retried when the session ends.
pub(super) static STALE: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
/// The `wisp` subtrees this runner created; removed at the end unless another runner uses them.
pub(super) static SUBTREES: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Removes the groups left over by `Group::remove`, after the shutdown sweep has killed
/// everything the runner started. Says so on stderr for any that still cannot go.
pub(crate) fn remove_stale() {
    let Ok(mut stale) = STALE.lock() else {
        return;
    };
    for dir in stale.drain(..) {
        if !remove_dir(&dir, 100) {
            crate::diag::say(&format!("cannot remove cgroup {}", dir.display()));
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
pub(super) fn remove_dir(dir: &Path, attempts: u32) -> bool {
    for _ in 0..attempts {
        match fs::remove_dir(dir) {
            Ok(()) => return true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return true,
            Err(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
    false
}
