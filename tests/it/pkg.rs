//! `pkg.ensure` against this Debian machine's real apt and dpkg, with small packages the test
//! builds itself (`dpkg-deb --build`), no network: installed, unchanged, upgraded, removed,
//! check mode, and a held dpkg lock reported as `locked` (class `conflict`) naming its holder.
//! One test, because dpkg allows one user at a time.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed unwrap is a failed test

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use wisp_protocol::error::{ErrorClass, ErrorCode};
use wisp_protocol::ops::PkgResult;
use wisp_tests::root_or_explain;
use wisp_tests::session::{Answer, Session};

pub(crate) const PKG: &str = "wisp-test-pkg";

/// dpkg takes one user at a time: every test that installs a package holds this.
pub(crate) static DPKG: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Builds `wisp-test-pkg` at `version` into `dir`.
pub(crate) fn build_deb(dir: &Path, version: &str) -> PathBuf {
    let root = dir.join(format!("root-{version}"));
    std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(root.join("usr/share/wisp-test-pkg")).unwrap();
    std::fs::write(
        root.join("DEBIAN/control"),
        format!(
            "Package: {PKG}\nVersion: {version}\nArchitecture: all\nMaintainer: wisp tests <tests@example.invalid>\nDescription: a package the wisp tests build\n"
        ),
    )
    .unwrap();
    std::fs::write(root.join("usr/share/wisp-test-pkg/version"), version).unwrap();
    let deb = dir.join(format!("{PKG}_{version}_all.deb"));
    let ok = Command::new("dpkg-deb")
        .args(["--root-owner-group", "--build"])
        .arg(&root)
        .arg(&deb)
        .output()
        .unwrap()
        .status
        .success();
    assert!(ok, "dpkg-deb --build failed");
    deb
}

/// Removes the test package whatever happens.
pub(crate) struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["--purge", PKG]).output();
    }
}

fn ensure(s: &mut Session, args: Value) -> Answer {
    s.cmd("pkg.ensure", args, json!({}), &[])
}

fn result(a: Answer) -> (bool, PkgResult) {
    a.changed_and()
}

pub(crate) fn installed_version() -> Option<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${db:Status-Abbrev} ${Version}", PKG])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.strip_prefix("ii ").map(|v| v.trim().to_owned())
}

#[test]
fn pkg_ensure_installs_upgrades_removes_and_reports_a_held_lock() {
    if !root_or_explain("installing packages") {
        return;
    }
    let _dpkg = DPKG
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let _purge = Purge;
    let mut s = Session::start("pkg", false);
    let v1 = build_deb(&s.tmp.0, "1.0");
    let v2 = build_deb(&s.tmp.0, "2.0");
    let present = |deb: &Path| json!({"name": PKG, "file": deb});

    // Check mode: would install, installs nothing.
    let mut check = present(&v1);
    check["check"] = json!(true);
    let (changed, r) = result(ensure(&mut s, check));
    assert!(changed);
    assert_eq!(r.changes, ["installed"]);
    assert_eq!(
        installed_version(),
        None,
        "check mode installed the package"
    );

    let (changed, r) = result(ensure(&mut s, present(&v1)));
    assert!(changed, "{r:?}");
    assert_eq!((r.before, r.after.as_deref()), (None, Some("1.0")));
    assert_eq!(installed_version().as_deref(), Some("1.0"));

    // Again: the database already says so; nothing runs.
    let (changed, r) = result(ensure(&mut s, present(&v1)));
    assert!(!changed, "{r:?}");
    assert!(r.changes.is_empty());

    let (changed, r) = result(ensure(&mut s, present(&v2)));
    assert!(changed);
    assert_eq!(r.changes, ["upgraded"]);
    assert_eq!(installed_version().as_deref(), Some("2.0"));

    // `latest`: the newest version any source offers is the one installed (no repository
    // offers this package; dpkg's own database is the only source), so nothing runs.
    let (changed, r) = result(ensure(&mut s, json!({"name": PKG, "state": "latest"})));
    assert!(!changed, "{r:?}");
    assert_eq!(r.after.as_deref(), Some("2.0"));
    let e = ensure(
        &mut s,
        json!({"name": PKG, "state": "latest", "version": "1.0"}),
    )
    .refused();
    assert_eq!(e.code, ErrorCode::BadArgs);

    // A held dpkg lock: refused as `locked`, retryable, naming the holder; nothing changes.
    {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/var/lib/dpkg/lock-frontend")
            .unwrap();
        // SAFETY: flock is plain old data.
        #[allow(unsafe_code)]
        let mut lock: libc::flock = unsafe { std::mem::zeroed() };
        lock.l_type = libc::c_short::try_from(libc::F_WRLCK).unwrap();
        lock.l_whence = libc::c_short::try_from(libc::SEEK_SET).unwrap();
        // SAFETY: `lock` is live and the descriptor open.
        #[allow(unsafe_code)]
        let r = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETLK, &lock) };
        assert_eq!(r, 0, "cannot take the dpkg lock for the test");
        let e = ensure(&mut s, json!({"name": PKG, "state": "absent"})).refused();
        assert_eq!((e.code, e.class), (ErrorCode::Locked, ErrorClass::Conflict));
        assert!(
            e.message.contains(&format!("(pid {})", std::process::id())),
            "{}",
            e.message
        );
        assert_eq!(installed_version().as_deref(), Some("2.0"));
    }

    let (changed, r) = result(ensure(&mut s, json!({"name": PKG, "state": "absent"})));
    assert!(changed);
    assert_eq!(r.changes, ["removed"]);
    assert_eq!(installed_version(), None);
    let (changed, _) = result(ensure(&mut s, json!({"name": PKG, "state": "absent"})));
    assert!(!changed);

    // A package file that holds another package is refused before anything runs.
    let e = ensure(&mut s, json!({"name": "not-it", "file": v1})).refused();
    assert_eq!(e.code, ErrorCode::OpFailed);
    assert!(e.message.contains("holds package"), "{}", e.message);
}
