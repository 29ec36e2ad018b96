//! Many hosts at once on real sshd hosts: wisp raises its own file-descriptor soft limit to
//! the hard one, and a run whose concurrency cannot fit in the hard limit is refused before
//! any host is contacted, with the figures and the fix, instead of failing hosts with EMFILE.

use std::process::Command;

use wisp_tests::ScratchDir;
use wisp_tests::sshd::Fleet;

const HOSTS: usize = 30;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The test's isolated `wisp` command, started through `prlimit` with these descriptor
/// limits.
fn limited(dir: &std::path::Path, soft: u32, hard: u32) -> Command {
    let wisp = wisp_tests::wisp_command!(dir);
    let mut c = Command::new("prlimit");
    c.arg(format!("--nofile={soft}:{hard}"))
        .arg("--")
        .arg(wisp.get_program());
    c.env_clear();
    for (k, v) in wisp.get_envs() {
        if let Some(v) = v {
            c.env(k, v);
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        c.env("PATH", path);
    }
    c
}

#[test]
fn forks_must_fit_the_descriptor_limit() {
    let tmp = ScratchDir::new("scale-fds");
    let fleet = Fleet::start(HOSTS);
    fleet.write_inventory(&tmp.0.join("hosts"));

    // 30 hosts at once need about 30 x 4 + 64 = 184 descriptors; the hard limit is 80.
    let refused = fleet.wisp(
        limited(&tmp.0, 80, 80),
        &tmp.0,
        &["run", "all", "--", "true"],
    );
    let err = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(5), "{err}");
    assert!(
        err.contains("30 hosts at once need about 184 file descriptors, and this process may open 80 (hard limit 80): lower --forks to 4 or less"),
        "{err}"
    );
    // Refused before anything started: not even the run was recorded.
    let mut history = wisp_tests::wisp_command!(&tmp.0);
    history.arg("history");
    let history = wisp_tests::wisp::run(&mut history, &tmp.0);
    assert!(
        text(&history.stderr).contains("no state store"),
        "{}",
        text(&history.stderr)
    );
    // The advice holds: four at a time fit, and every host runs.
    let fits = fleet.wisp(
        limited(&tmp.0, 80, 80),
        &tmp.0,
        &["run", "all", "--forks", "4", "--", "true"],
    );
    assert_eq!(fits.status.code(), Some(0), "{}", text(&fits.stderr));
    assert!(text(&fits.stderr).contains("30 hosts: 30 ok"));

    // A low soft limit under a high enough hard one is raised, not refused.
    let raised = fleet.wisp(
        limited(&tmp.0, 40, 400),
        &tmp.0,
        &["run", "all", "--", "true"],
    );
    assert_eq!(raised.status.code(), Some(0), "{}", text(&raised.stderr));
    assert!(text(&raised.stderr).contains("30 hosts: 30 ok"));
    fleet.assert_clean();
}
