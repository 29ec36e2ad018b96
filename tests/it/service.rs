//! `service.*` through this machine's SysV init scripts (it has no systemd as PID 1), with a
//! test script that records every action it is asked for: start and stop only when needed,
//! reload always, reload falling back to restart only when asked, enable and disable through
//! update-rc.d, check mode changing nothing, and an unknown service named in the error.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use wisp_protocol::error::ErrorCode;
use wisp_protocol::ops::ServiceResult;
use wisp_tests::root_or_explain;
use wisp_tests::session::{Answer, Session};

/// An init script named `name` that appends each action to `log` and keeps its running state
/// in a file next to it. Without `reload`, it answers reload as LSB says: usage, status 3.
pub(crate) fn install_script(name: &str, log: &Path, reload: bool) -> PathBuf {
    let state = log.with_extension("running");
    let reload_case = if reload {
        format!("  reload) echo reload >> {log} ;;\n", log = log.display())
    } else {
        String::new()
    };
    let script = format!(
        r#"#!/bin/sh
### BEGIN INIT INFO
# Provides:          {name}
# Required-Start:
# Required-Stop:
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: wisp test service
### END INIT INFO
case "$1" in
  start) echo start >> {log}; touch {state} ;;
  stop) echo stop >> {log}; rm -f {state} ;;
  restart) echo restart >> {log}; touch {state} ;;
{reload_case}  status) [ -e {state} ] || exit 3 ;;
  *) echo "Usage: $0 {{start|stop|restart|status}}" >&2; exit 3 ;;
esac
"#,
        log = log.display(),
        state = state.display(),
    );
    write_init_script(name, &script)
}

/// `script` as the executable init script `/etc/init.d/NAME`.
fn write_init_script(name: &str, script: &str) -> PathBuf {
    let path = Path::new("/etc/init.d").join(name);
    std::fs::write(&path, script).unwrap();
    Command::new("chmod")
        .arg("0755")
        .arg(&path)
        .status()
        .unwrap();
    path
}

/// Removes the test scripts and their boot links whatever happens.
pub(crate) struct Cleanup(pub(crate) Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = Command::new("update-rc.d").args([name, "remove"]).output();
            let _ = std::fs::remove_file(Path::new("/etc/init.d").join(name));
        }
    }
}

fn act(s: &mut Session, action: &str, args: Value) -> Answer {
    s.cmd(&format!("service.{action}"), args, json!({}), &[])
}

fn result(a: Answer) -> (bool, ServiceResult) {
    a.changed_and()
}

pub(crate) fn log(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn start_links(name: &str) -> usize {
    ["rc2.d", "rc3.d", "rc4.d", "rc5.d"]
        .iter()
        .filter_map(|d| std::fs::read_dir(Path::new("/etc").join(d)).ok())
        .flat_map(|entries| entries.flatten())
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with('S') && n.ends_with(name)
        })
        .count()
}

#[test]
fn sysv_services_start_stop_reload_enable_and_report_only_real_changes() {
    if !root_or_explain("installing an init script") {
        return;
    }
    let mut s = Session::start("service", false);
    let name = format!("wisp-test-svc-{}", std::process::id());
    let plain = format!("wisp-test-noreload-{}", std::process::id());
    let _cleanup = Cleanup(vec![name.clone(), plain.clone()]);
    let calls = s.tmp.0.join("calls.log");
    install_script(&name, &calls, true);
    let svc = json!({"name": name});

    let (changed, r) = result(act(&mut s, "status", svc.clone()));
    assert!(!changed);
    assert_eq!((r.manager.as_str(), r.running), ("sysv", false));
    assert_eq!(r.enabled, Some(false));

    // Check mode says what would happen and asks the script nothing but its status.
    let (changed, r) = result(act(&mut s, "start", json!({"name": name, "check": true})));
    assert!(changed);
    assert_eq!(r.changes, ["started"]);
    assert_eq!(log(&calls), Vec::<String>::new());

    let (changed, r) = result(act(&mut s, "start", svc.clone()));
    assert!(changed);
    assert_eq!(r.changes, ["started"]);
    // Already running: nothing is asked of the script.
    let (changed, r) = result(act(&mut s, "start", svc.clone()));
    assert!(!changed, "{r:?}");
    assert!(r.running);
    assert_eq!(log(&calls), ["start"]);

    let (changed, r) = result(act(&mut s, "reload", svc.clone()));
    assert!(changed);
    assert_eq!(r.changes, ["reloaded"]);
    let (changed, _) = result(act(&mut s, "restart", svc.clone()));
    assert!(changed);
    assert_eq!(log(&calls), ["start", "reload", "restart"]);

    let (changed, r) = result(act(&mut s, "stop", svc.clone()));
    assert!(changed);
    assert_eq!(r.changes, ["stopped"]);
    let (changed, _) = result(act(&mut s, "stop", svc.clone()));
    assert!(!changed);
    assert_eq!(log(&calls), ["start", "reload", "restart", "stop"]);

    // Boot: update-rc.d makes the start links from the script's header.
    let (changed, r) = result(act(&mut s, "enable", svc.clone()));
    assert!(changed);
    assert_eq!(r.changes, ["enabled"]);
    assert_eq!(start_links(&name), 4, "no start links in rc2.d to rc5.d");
    let (changed, r) = result(act(&mut s, "enable", svc.clone()));
    assert!(!changed);
    assert_eq!(r.enabled, Some(true));
    let (changed, _) = result(act(&mut s, "disable", json!({"name": name, "check": true})));
    assert!(changed);
    assert_eq!(start_links(&name), 4, "check mode disabled the service");
    let (changed, r) = result(act(&mut s, "disable", svc.clone()));
    assert!(changed);
    assert_eq!(r.changes, ["disabled"]);
    assert_eq!(start_links(&name), 0);
    let (changed, _) = result(act(&mut s, "disable", svc.clone()));
    assert!(!changed);

    // A service without reload: an error that names the way out, and nothing restarted...
    let plain_calls = s.tmp.0.join("plain.log");
    install_script(&plain, &plain_calls, false);
    let e = act(&mut s, "reload", json!({"name": plain})).refused();
    assert_eq!(e.code, ErrorCode::OpFailed);
    assert!(e.message.contains("restart_fallback"), "{}", e.message);
    assert_eq!(log(&plain_calls), Vec::<String>::new());
    // ...unless a restart was asked for as the fallback.
    let (changed, r) = result(act(
        &mut s,
        "reload",
        json!({"name": plain, "restart_fallback": true}),
    ));
    assert!(changed);
    assert_eq!(r.changes, ["restarted"]);
    assert_eq!(log(&plain_calls), ["restart"]);

    let e = act(&mut s, "start", json!({"name": "wisp-no-such-service"})).refused();
    assert_eq!(e.code, ErrorCode::OpFailed);
    assert!(
        e.message.contains("/etc/init.d/wisp-no-such-service"),
        "{}",
        e.message
    );
    let e = act(&mut s, "start", json!({"name": "../etc/passwd"})).refused();
    assert_eq!(e.code, ErrorCode::BadArgs);
}

/// Whether process `pid` runs (exists and is not a zombie).
fn running(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()))
        .ok()
        .and_then(|s| {
            let state = s.rsplit_once(')')?.1.split_whitespace().next()?.to_owned();
            Some(state != "Z")
        })
        .unwrap_or(false)
}

/// Case: a daemon that `service.start` starts through a SysV init script (daemonised by
/// start-stop-daemon, as Debian's scripts do) is the host's: it runs after the plan's runner
/// has gone, where a stray that an ordinary command leaves behind is still killed. A second
/// plan stops the daemon through the script.
#[test]
fn a_daemon_a_service_op_starts_outlives_the_run_and_strays_do_not() {
    if !root_or_explain("installing an init script") {
        return;
    }
    let tmp = wisp_tests::ScratchDir::new("service-daemon");
    let name = format!("wisp-test-daemon-{}", std::process::id());
    let _cleanup = Cleanup(vec![name.clone()]);
    let pidfile = tmp.0.join("daemon.pid");
    let script = format!(
        "#!/bin/sh\nP={pid}\ncase \"$1\" in\n  \
         start) start-stop-daemon --start --background --make-pidfile --pidfile $P --exec /bin/sleep -- 600 ;;\n  \
         stop) start-stop-daemon --stop --pidfile $P --remove-pidfile ;;\n  \
         status) start-stop-daemon --status --pidfile $P ;;\n  \
         *) exit 3 ;;\nesac\n",
        pid = pidfile.display()
    );
    write_init_script(&name, &script);
    let stray = tmp.0.join("stray.pid");
    let plan = tmp.0.join("up.toml");
    std::fs::write(
        &plan,
        format!(
            "[[task]]\nname = \"a stray\"\nop = \"exec\"\n\
             shell = \"setsid sleep 600 </dev/null >/dev/null 2>&1 & echo $! > {stray}\"\n\n\
             [[task]]\nname = \"start the daemon\"\nop = \"service.start\"\nargs = {{ name = \"{name}\" }}\n",
            stray = stray.display()
        ),
    )
    .unwrap();
    let out = super::apply::apply(&tmp, &plan, &[]);
    let said = super::apply::text(&out.stdout) + &super::apply::text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(
        said.contains("changed  start the daemon (started)"),
        "{said}"
    );
    let daemon = std::fs::read_to_string(&pidfile).unwrap();
    let stray = std::fs::read_to_string(&stray).unwrap();
    // The runner has exited (wisp waited for it); give the kernel a moment to reap the stray.
    for _ in 0..50 {
        if !running(&stray) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        !running(&stray),
        "the ordinary command's stray {stray} is still running"
    );
    assert!(
        running(&daemon),
        "the daemon {daemon} did not outlive the run"
    );

    let down = tmp.0.join("down.toml");
    std::fs::write(
        &down,
        format!(
            "[[task]]\nname = \"stop\"\nop = \"service.stop\"\nargs = {{ name = \"{name}\" }}\n"
        ),
    )
    .unwrap();
    let out = super::apply::apply(&tmp, &down, &[]);
    let said = super::apply::text(&out.stdout);
    assert!(said.contains("changed  stop (stopped)"), "{said}");
    for _ in 0..50 {
        if !running(&daemon) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(!running(&daemon), "the daemon {daemon} outlived its stop");
}
