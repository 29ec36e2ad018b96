//! The file ops against the real runner and real files: idempotence (a second identical
//! request changes nothing and says so), check mode (nothing on disk moves), diffs, ownership,
//! and atomicity on a file system that runs out of space mid-write.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed unwrap is a failed test

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use wisp_protocol::error::ErrorCode;
use wisp_protocol::ops::{FileResult, FileStat};
use wisp_tests::session::{Answer, NOBODY, Session};
use wisp_tests::{root_or_explain, snapshot};

fn result(answer: Answer) -> (bool, FileResult, Vec<u8>) {
    match answer {
        Answer::Done { done, data, .. } => (
            done.changed,
            serde_json::from_value(done.result.clone().unwrap()).unwrap(),
            data,
        ),
        Answer::Refused(e) => panic!("refused: {e:?}"),
    }
}

fn write(s: &mut Session, args: Value, content: &[u8]) -> (bool, FileResult, Vec<u8>) {
    result(s.cmd("file.write", args, json!({}), content))
}

/// The names of the entries directly in `dir`.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn file_write_is_idempotent_and_reports_exactly_what_changed() {
    let mut s = Session::start("file-write", false);
    let path = s.tmp.0.join("app.conf");
    let p = path.to_str().unwrap();
    let (changed, r, _) = write(&mut s, json!({"path": p, "mode": "0640"}), b"port = 80\n");
    assert!(changed);
    assert_eq!(
        (r.before.as_str(), r.changes.clone()),
        ("none", vec!["created".to_owned()])
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"port = 80\n");
    assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o7777, 0o640);

    // The same again: nothing to do, and the file is not rewritten (same inode).
    let inode = std::fs::metadata(&path).unwrap().ino();
    let (changed, r, _) = write(&mut s, json!({"path": p, "mode": "0640"}), b"port = 80\n");
    assert!(!changed, "{r:?}");
    assert!(r.changes.is_empty());
    assert_eq!(std::fs::metadata(&path).unwrap().ino(), inode);

    // Only the mode differs: changed in place.
    let (changed, r, _) = write(&mut s, json!({"path": p, "mode": "0600"}), b"port = 80\n");
    assert!(changed);
    assert_eq!(r.changes, ["mode"]);
    assert_eq!(std::fs::metadata(&path).unwrap().ino(), inode);

    // New content, with a diff and a backup: the old version comes back and stays on disk.
    let (changed, r, previous) = write(
        &mut s,
        json!({"path": p, "diff": true, "backup": true}),
        b"port = 8080\n",
    );
    assert!(changed);
    assert_eq!(r.changes, ["content"]);
    assert!(r.previous_content);
    assert_eq!(previous, b"port = 80\n");
    assert_eq!(std::fs::read(&path).unwrap(), b"port = 8080\n");
    let backup = r.backup.expect("no backup");
    assert_eq!(std::fs::read(&backup).unwrap(), b"port = 80\n");
    // The mode was kept (not asked for), and no temporary file is left.
    assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o7777, 0o600);
    let left = names(&s.tmp.0);
    assert_eq!(left.len(), 2, "{left:?}");
}

#[test]
fn check_mode_changes_nothing_and_says_what_would_change() {
    let mut s = Session::start("file-check", false);
    let dir = s.tmp.0.clone();
    std::fs::write(dir.join("a"), "one\n").unwrap();
    let before = snapshot(&dir);
    let a = dir.join("a");
    let (changed, r, previous) = write(
        &mut s,
        json!({"path": a, "mode": "0600", "check": true, "diff": true}),
        b"two\n",
    );
    assert!(changed);
    assert_eq!(r.changes, ["content", "mode"]);
    assert_eq!(previous, b"one\n");
    let (changed, r, _) = write(
        &mut s,
        json!({"path": dir.join("sub/b"), "check": true, "make_parents": true}),
        b"x",
    );
    assert!(changed);
    assert_eq!(r.changes, ["created"]);
    let (changed, _, _) = result(s.cmd(
        "dir.ensure",
        json!({"path": dir.join("d"), "check": true}),
        json!({}),
        &[],
    ));
    assert!(changed);
    let (changed, r, _) = result(s.cmd(
        "file.absent",
        json!({"path": a, "check": true}),
        json!({}),
        &[],
    ));
    assert!(changed);
    assert_eq!(r.changes, ["removed"]);
    assert_eq!(snapshot(&dir), before, "check mode touched the disk");
}

#[test]
fn dir_ensure_file_absent_and_file_stat() {
    let mut s = Session::start("dir-ops", false);
    let d = s.tmp.0.join("x/y");
    let op = |s: &mut Session, op: &str, args: Value| result(s.cmd(op, args, json!({}), &[]));
    // Without make_parents the missing parent is an error naming it.
    let e = s
        .cmd("dir.ensure", json!({"path": d}), json!({}), &[])
        .refused();
    assert_eq!(e.code, ErrorCode::OpFailed);
    assert!(e.message.contains("make_parents"), "{}", e.message);
    let (changed, _, _) = op(
        &mut s,
        "dir.ensure",
        json!({"path": d, "mode": "0750", "make_parents": true}),
    );
    assert!(changed);
    assert_eq!(std::fs::metadata(&d).unwrap().mode() & 0o7777, 0o750);
    let (changed, _, _) = op(&mut s, "dir.ensure", json!({"path": d, "mode": "0750"}));
    assert!(!changed);

    let stat: FileStat = match s.cmd("file.stat", json!({"path": d}), json!({}), &[]) {
        Answer::Done { done, .. } => serde_json::from_value(done.result.unwrap()).unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        (stat.kind.as_str(), stat.mode.as_deref()),
        ("dir", Some("0750"))
    );

    // A directory needs `recursive`; then it goes, and a second time nothing changes.
    let x = s.tmp.0.join("x");
    let e = s
        .cmd("file.absent", json!({"path": x}), json!({}), &[])
        .refused();
    assert!(e.message.contains("recursive"), "{}", e.message);
    let (changed, _, _) = op(&mut s, "file.absent", json!({"path": x, "recursive": true}));
    assert!(changed);
    assert!(!x.exists());
    let (changed, r, _) = op(&mut s, "file.absent", json!({"path": x, "recursive": true}));
    assert!(!changed);
    assert_eq!(r.before, "none");
}

#[test]
fn bad_requests_are_refused_before_anything_happens() {
    let mut s = Session::start("file-bad", false);
    let p = s.tmp.0.join("f");
    for (args, code) in [
        (json!({"path": "relative"}), ErrorCode::BadArgs),
        (json!({"path": "/tmp/../etc/x"}), ErrorCode::BadArgs),
        (json!({"path": p, "mode": "rw-r--r--"}), ErrorCode::BadArgs),
        (json!({"path": p, "chekc": true}), ErrorCode::BadArgs),
        (
            json!({"path": p, "owner": "no-such-user-wisp"}),
            ErrorCode::OpFailed,
        ),
    ] {
        let e = s.cmd("file.write", args.clone(), json!({}), b"x").refused();
        assert_eq!(e.code, code, "{args}: {}", e.message);
    }
    // Limits belong to exec.
    let e = s
        .cmd(
            "file.write",
            json!({"path": p}),
            json!({"memory_max": 1024}),
            b"x",
        )
        .refused();
    assert_eq!(e.code, ErrorCode::UnsupportedLimit);
    // A symlink is not silently replaced by a file.
    std::os::unix::fs::symlink("/etc/hostname", s.tmp.0.join("link")).unwrap();
    let e = s
        .cmd(
            "file.write",
            json!({"path": s.tmp.0.join("link")}),
            json!({}),
            b"x",
        )
        .refused();
    assert!(e.message.contains("is a symlink"), "{}", e.message);
    assert!(!p.exists());
}

#[test]
fn ownership_is_set_and_then_left_alone() {
    if !root_or_explain("chown") {
        return;
    }
    let mut s = Session::start("file-owner", false);
    let p = s.tmp.0.join("owned");
    let args = json!({"path": p, "owner": "nobody", "group": NOBODY.to_string()});
    let (changed, _, _) = write(&mut s, args.clone(), b"x");
    assert!(changed);
    let m = std::fs::metadata(&p).unwrap();
    assert_eq!((m.uid(), m.gid()), (NOBODY, NOBODY));
    let (changed, _, _) = write(&mut s, args, b"x");
    assert!(!changed);
    let (changed, r, _) = write(&mut s, json!({"path": p, "owner": "0"}), b"x");
    assert!(changed);
    assert_eq!(r.changes, ["owner"]);
}

/// A write that runs out of space leaves the old file whole and no temporary file behind.
#[test]
fn a_write_that_fails_midway_leaves_the_old_file_intact() {
    if !root_or_explain("mounting a small tmpfs") {
        return;
    }
    let mut s = Session::start("file-atomic", false);
    let mnt = s.tmp.0.join("small");
    std::fs::create_dir(&mnt).unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "wisp-test"])
        .arg(&mnt)
        .status()
        .unwrap()
        .success();
    assert!(ok, "cannot mount a tmpfs");
    let _unmount = Unmount(mnt.clone());
    std::fs::set_permissions(&mnt, std::fs::Permissions::from_mode(0o755)).unwrap();
    let target = mnt.join("data");
    let old = vec![b'o'; 64 * 1024];
    std::fs::write(&target, &old).unwrap();
    let big = vec![b'n'; 1024 * 1024];
    let e = s
        .cmd("file.write", json!({"path": target}), json!({}), &big)
        .refused();
    assert_eq!(e.code, ErrorCode::OpFailed);
    assert!(e.message.contains("No space left"), "{}", e.message);
    assert_eq!(
        std::fs::read(&target).unwrap(),
        old,
        "the old file was damaged"
    );
    assert_eq!(names(&mnt), ["data"], "a temporary file was left behind");
}

struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A `file.write` whose content stops arriving part-way is dropped after `--upload-idle`, with
/// an ERROR naming why; nothing is written and the session goes on.
#[test]
fn a_write_whose_data_stops_coming_is_dropped_and_writes_nothing() {
    use std::time::Duration;
    use wisp_protocol::message::{Cmd, DataFrame, Hello, Message};
    let tmp = wisp_tests::ScratchDir::new("upload-idle");
    let target = tmp.0.join("never.txt");
    let mut r = wisp_tests::RawRunner::start(&tmp.0, &["--upload-idle", "1"]);
    r.send(Message::Hello(Hello { version: 1 }), &[]);
    let cmd = |id: &str, size: u64| Cmd {
        id: id.into(),
        op: "file.write".into(),
        args: json!({"path": target, "size": size}),
        limits: Default::default(),
    };
    r.send(Message::Cmd(cmd("c1", 10)), b"abc");
    r.send(Message::Data(DataFrame { id: "c1".into() }), b"def");
    let e = r
        .recv_until(Duration::from_secs(10), |m| matches!(m, Message::Error(_)))
        .expect("an ERROR for the stalled write");
    let Message::Error(e) = e.message else {
        unreachable!()
    };
    assert_eq!((e.id.as_deref(), e.code), (Some("c1"), ErrorCode::OpFailed));
    assert!(e.message.contains("no DATA for 1 s"), "{}", e.message);
    assert!(!target.exists());
    // Late DATA finds nothing waiting; a whole write still works.
    r.send(Message::Data(DataFrame { id: "c1".into() }), b"ghij");
    r.send(Message::Cmd(cmd("c2", 4)), b"ok\n!");
    let done = r
        .recv_until(Duration::from_secs(10), |m| matches!(m, Message::Done(_)))
        .expect("DONE for the whole write");
    assert!(matches!(done.message, Message::Done(d) if d.id == "c2"));
    assert_eq!(std::fs::read(&target).unwrap(), b"ok\n!");
}

/// Case: the primitives an edit is made of. `file.stat` with `read` sends a file's content and
/// its stamp; `file.write` with that stamp writes only while the file is still the one read:
/// a change made in between (even one byte, same size) refuses the write and leaves the
/// change; `none` writes only where nothing is. A file over `read` is refused, not cut.
#[test]
fn an_edit_reads_a_file_and_writes_it_only_if_nothing_changed_since() {
    let mut s = Session::start("edit-primitives", false);
    let path = s.tmp.0.join("conf");
    std::fs::write(&path, "a=1\n").unwrap();
    let p = path.display().to_string();
    let read = |s: &mut Session| match s.cmd(
        "file.stat",
        json!({"path": p, "read": 1024}),
        json!({}),
        &[],
    ) {
        Answer::Done { done, data, .. } => {
            let stat: FileStat = serde_json::from_value(done.result.clone().unwrap()).unwrap();
            (stat, data)
        }
        Answer::Refused(e) => panic!("refused: {e:?}"),
    };
    let (stat, data) = read(&mut s);
    assert_eq!(
        (stat.kind.as_str(), data.as_slice()),
        ("file", b"a=1\n".as_slice())
    );
    assert!(stat.stamp.split(':').count() == 3, "{}", stat.stamp);

    // Someone edits the file between the read and the write (same size).
    std::fs::write(&path, "a=2\n").unwrap();
    let e = s
        .cmd(
            "file.write",
            json!({"path": p, "if_stamp": stat.stamp}),
            json!({}),
            b"a=9\n",
        )
        .refused();
    assert_eq!(e.code, ErrorCode::OpFailed);
    assert!(
        e.message.contains("changed since it was read"),
        "{}",
        e.message
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"a=2\n");

    // Read again: now the write goes through.
    let (stat, _) = read(&mut s);
    let (changed, r, _) = write(&mut s, json!({"path": p, "if_stamp": stat.stamp}), b"a=9\n");
    assert!(changed, "{r:?}");
    assert_eq!(std::fs::read(&path).unwrap(), b"a=9\n");

    // `none`: only where nothing is.
    let fresh = s.tmp.0.join("fresh").display().to_string();
    let (changed, _, _) = write(&mut s, json!({"path": fresh, "if_stamp": "none"}), b"x\n");
    assert!(changed);
    let e = s
        .cmd(
            "file.write",
            json!({"path": fresh, "if_stamp": "none"}),
            json!({}),
            b"y\n",
        )
        .refused();
    assert!(
        e.message.contains("changed since it was read"),
        "{}",
        e.message
    );

    let e = s
        .cmd("file.stat", json!({"path": p, "read": 2}), json!({}), &[])
        .refused();
    assert!(e.message.contains("more than 2 to read"), "{}", e.message);
}
