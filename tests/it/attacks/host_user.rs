//! Attacker 2: another user on a host, racing the files wisp writes, the runner it uploads
//! and the directories it works in.

use super::*;

fn mode_of(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// A login user whom sudo asks for `password`, created (or reset) for the attack tests.
fn sudo_user_with_password(name: &str, password: &str) {
    let exists = |n: &str| {
        Command::new("id")
            .arg(n)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !exists(name) {
        let _ = Command::new("useradd")
            .args(["--create-home", "--shell", "/bin/sh", name])
            .status();
    }
    assert!(exists(name), "cannot create the test user {name}");
    let mut chpasswd = Command::new("chpasswd")
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        chpasswd.stdin.as_mut().unwrap(),
        format!("{name}:{password}\n").as_bytes(),
    )
    .unwrap();
    drop(chpasswd.stdin.take());
    assert!(chpasswd.wait().unwrap().success(), "chpasswd failed");
    let rule = Path::new("/etc/sudoers.d/wisp-attack-test");
    std::fs::write(rule, format!("{name} ALL=(ALL) ALL\n")).unwrap();
    let _ = Command::new("chmod").arg("0440").arg(rule).status();
}

/// Case: another user plants links where root's file ops act — at the target, at a parent
/// directory, and swapped in between the check and the change — for `file.write` (content
/// and mode only), `dir.ensure`, `file.absent` and backups. Nothing outside the intended path
/// is written, chmod-ed, created or removed; a link owned by root on the way is followed; a
/// backup name taken in advance neither blocks the write nor loses the taker's file.
#[test]
fn file_ops_do_not_follow_links_another_user_planted() {
    use std::os::unix::fs::PermissionsExt;
    if !root_or_explain("links planted by another user") {
        return;
    }
    let tmp = ScratchDir::new("attack-fileops");
    let shared = SharedDir::new(&tmp);
    std::fs::set_permissions(&shared.victim, std::fs::Permissions::from_mode(0o600)).unwrap();
    let victim_dir = tmp.0.join("victim-dir");
    std::fs::create_dir(&victim_dir).unwrap();
    std::fs::write(victim_dir.join("keep"), "keep\n").unwrap();
    let s = shared.dir.display().to_string();

    // At the target, content and mode only.
    shared.plant("app.conf");
    for (content, what) in [("x\\n", "content"), ("root's own\\n", "mode only")] {
        let plan = format!(
            "[[task]]\nop = \"file.write\"\npath = \"{s}/app.conf\"\ncontent = \"{content}\"\nmode = \"0644\"\n"
        );
        let (out, text) = apply_local(&tmp, "target.toml", &plan);
        assert_eq!(out.status.code(), Some(2), "{what}: {text}");
        assert!(text.contains("symlink"), "{what}: {text}");
        assert!(
            shared.victim_untouched() && mode_of(&shared.victim) == 0o600,
            "{what}"
        );
    }

    // At a parent: write, mkdir and remove through it are refused, naming the link.
    let link = shared.dir.join("dir");
    std::os::unix::fs::symlink(&victim_dir, &link).unwrap();
    std::os::unix::fs::lchown(&link, Some(65534), Some(65534)).unwrap();
    let tasks = [
        format!("op = \"file.write\"\npath = \"{s}/dir/new.conf\"\ncontent = \"x\""),
        format!("op = \"dir.ensure\"\npath = \"{s}/dir/sub\""),
        format!("op = \"file.absent\"\npath = \"{s}/dir/keep\""),
    ];
    for task in &tasks {
        let (out, text) = apply_local(&tmp, "parent.toml", &format!("[[task]]\n{task}\n"));
        assert_eq!(out.status.code(), Some(2), "{task}: {text}");
        assert!(text.contains("owned by uid 65534"), "{task}: {text}");
    }
    let left: Vec<_> = std::fs::read_dir(&victim_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left, ["keep"], "the victim directory changed");

    // A root-owned link on the way is followed.
    let real = tmp.0.join("real");
    std::fs::create_dir(&real).unwrap();
    std::os::unix::fs::symlink(&real, shared.dir.join("rootlink")).unwrap();
    let plan =
        format!("[[task]]\nop = \"file.write\"\npath = \"{s}/rootlink/f\"\ncontent = \"ok\"\n");
    let (out, text) = apply_local(&tmp, "rootlink.toml", &plan);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(std::fs::read_to_string(real.join("f")).unwrap(), "ok");

    // Backups: the names the next seconds would give are taken by another user first.
    let own = shared.dir.join("own.conf");
    std::fs::write(&own, "v1\n").unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for secs in now..now + 30 {
        let taken = shared.dir.join(format!("own.conf.{secs}.bak"));
        std::fs::write(&taken, "theirs\n").unwrap();
        std::os::unix::fs::lchown(&taken, Some(65534), Some(65534)).unwrap();
    }
    let plan = format!(
        "[[task]]\nop = \"file.write\"\npath = \"{s}/own.conf\"\ncontent = \"v2\\n\"\nbackup = true\n"
    );
    let (out, text) = apply_local(&tmp, "backup.toml", &plan);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(std::fs::read_to_string(&own).unwrap(), "v2\n");
    let names: Vec<String> = std::fs::read_dir(&shared.dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let theirs = names
        .iter()
        .filter(|n| n.starts_with("own.conf.") && n.ends_with(".bak"))
        .count();
    assert_eq!(theirs, 31, "30 taken names and one backup: {names:?}");
    let backups: Vec<_> = names
        .iter()
        .filter(|n| std::fs::read_to_string(shared.dir.join(n)).is_ok_and(|c| c == "v1\n"))
        .collect();
    assert_eq!(backups.len(), 1, "{names:?}");
    assert!(
        !names.iter().any(|n| n.ends_with(".tmp")),
        "a temp file was left: {names:?}"
    );
}

/// Case: the swap between the check and the change. While root's plan sets the mode of a
/// file 300 times, another user keeps replacing that file by a link to a root file and back.
/// The root file's mode never changes; each step either acts on the file it checked or is
/// refused. (Bounded: the swapper stops when the plan ends, or after 50 million swaps.)
#[test]
fn a_link_swapped_in_after_the_check_is_not_followed() {
    use std::os::unix::fs::PermissionsExt;
    if !root_or_explain("links planted by another user") {
        return;
    }
    let tmp = ScratchDir::new("attack-swap");
    let shared = SharedDir::new(&tmp);
    std::fs::set_permissions(&shared.victim, std::fs::Permissions::from_mode(0o600)).unwrap();
    let target = shared.dir.join("race.conf");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let (stop, dir, victim) = (stop.clone(), shared.dir.clone(), shared.victim.clone());
        std::thread::spawn(move || {
            // A regular file and a link to the victim, exchanged in one step each time.
            let target = dir.join("race.conf");
            let other = dir.join("other");
            std::fs::write(&target, "root's own\n").unwrap();
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
            std::os::unix::fs::symlink(&victim, &other).unwrap();
            // Held open: its mode goes back to 0600 after every change, through the
            // descriptor (a chmod by name could land on the link and so on the victim).
            let regular = std::fs::File::open(&target).unwrap();
            let (a, b) = (
                std::ffi::CString::new(target.to_str().unwrap()).unwrap(),
                std::ffi::CString::new(other.to_str().unwrap()).unwrap(),
            );
            let mut swaps = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) && swaps < 50_000_000 {
                // SAFETY: two live C strings; RENAME_EXCHANGE swaps the two names.
                #[allow(unsafe_code)]
                unsafe {
                    libc::renameat2(
                        libc::AT_FDCWD,
                        a.as_ptr(),
                        libc::AT_FDCWD,
                        b.as_ptr(),
                        libc::RENAME_EXCHANGE,
                    )
                };
                let _ = regular.set_permissions(std::fs::Permissions::from_mode(0o600));
                swaps += 1;
            }
            swaps
        })
    };
    let task = format!(
        "[[task]]\nop = \"file.write\"\npath = \"{}\"\ncontent = \"root's own\\n\"\nmode = \"0644\"\nignore_errors = true\n",
        target.display()
    );
    let (out, text) = apply_local(&tmp, "race.toml", &task.repeat(300));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let swaps = swapper.join().unwrap();
    assert!(swaps > 0, "the swapper never ran");
    assert!(out.status.code().is_some(), "{text}");
    assert_eq!(
        mode_of(&shared.victim),
        0o600,
        "the victim's mode changed: {text}"
    );
    assert!(shared.victim_untouched());
}

/// Case: `--ask-become-pass`, and a process of the login user replaces the runner it uploaded
/// after the check and before root starts it (while sudo checks the password). Root runs only
/// the bytes it hashed itself, from a directory of its own: the swapped-in script never runs as
/// root, and the host fails saying the runner changed.
#[test]
fn a_runner_swapped_after_its_check_never_runs_as_root() {
    const USER: &str = "wisp-attacker";
    const PASSWORD: &str = "attack at dawn, 2 horses";
    if !root_or_explain("a login user racing the bootstrap") {
        return;
    }
    sudo_user_with_password(USER, PASSWORD);
    let mut fleet = wisp_tests::sshd::Fleet::start(1);
    fleet.restart_with(0, "PasswordAuthentication yes");
    let t = fleet.remote_tmp.clone();
    let evil = t.join("evil");
    std::fs::write(
        &evil,
        format!(
            "#!/bin/sh\nid -u > {}/pwned-$(id -u)\nexit 0\n",
            t.display()
        ),
    )
    .unwrap();
    std::os::unix::fs::chown(&evil, Some(0), Some(0)).unwrap();
    let _ = Command::new("chmod").arg("0755").arg(&evil).status();
    // The login user's process: whenever sudo runs for them (the bootstrap checks the
    // password after it checked the runner), put the script in place of every uploaded
    // runner. Bounded by a stop file and 60 seconds.
    let swapper = format!(
        r#"end=$(( $(date +%s) + 60 ))
while [ ! -e {t}/stop ] && [ $(date +%s) -lt $end ]; do
  if pgrep -U {USER} -x sudo >/dev/null 2>&1; then
    for f in {t}/wisp-*/wisp-runner; do
      [ -f "$f" ] || continue
      cp {evil} "$f.x" && mv -f "$f.x" "$f" && echo "$f" >> {t}/swapped
    done
  fi
done"#,
        t = t.display(),
        evil = evil.display()
    );
    let mut attacker = Command::new("runuser")
        .args(["-u", USER, "--", "sh", "-c", &swapper])
        .spawn()
        .unwrap();
    let home = fleet.dir.0.join("no-keys-home");
    std::fs::create_dir_all(&home).unwrap();
    let mut c = wisp_tests::wisp_command!(&fleet.dir.0);
    c.args([
        "run",
        &format!("{USER}@{}", fleet.hosts[0].target()),
        "--known-hosts",
    ])
    .arg(&fleet.known_hosts)
    .args([
        "--ssh-config",
        "/dev/null",
        "--ask-pass",
        "--ask-become-pass",
    ])
    .args(["--connect-timeout", "20s", "--", "id", "-u"])
    .env("HOME", &home)
    .env("WISP_SSH_PASSWORD", PASSWORD)
    .env("WISP_BECOME_PASSWORD", PASSWORD)
    .stdin(Stdio::null());
    let out = wisp_tests::wisp::run(&mut c, &fleet.dir.0);
    std::fs::write(t.join("stop"), "").unwrap();
    attacker.wait().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        t.join("swapped").exists(),
        "the swapper never caught the window; the test proved nothing: {stderr}"
    );
    assert!(
        !t.join("pwned-0").exists(),
        "the swapped-in script ran as root: {stderr}"
    );
    // The host answered and refused to run it: it could not start the runner (7). The swap
    // lands after the check (the runner changed since) or, when sudo shows up early, while
    // the upload is still being checked (its hash is not the announced one): refused either
    // way.
    assert_eq!(out.status.code(), Some(7), "{stderr}");
    assert!(
        stderr.contains("changed after it was checked")
            || stderr.contains("does not match the announced"),
        "{stderr}"
    );
}

/// Case: the login user's TMPDIR is a base another user could rename things in, so they
/// could put their own staging directory in place of the runner's between the check and the
/// exec: (0) world-writable without the sticky bit; (1) sticky, but owned by that user (an
/// owner renames anything in their own directory); (2) a link that user owns, to their
/// directory; (3) a root-owned 0700 directory beneath a directory that user owns (they can
/// rename the whole base). The bootstrap passes each over and stages in /tmp. Every unsafe
/// base is a full 64 KiB tmpfs: staging there could only fail, and the run would show it.
#[test]
fn a_temp_dir_others_can_rename_in_is_passed_over() {
    use std::os::unix::fs::PermissionsExt;
    if !root_or_explain("mounting small tmpfs bases") {
        return;
    }
    const NOBODY: u32 = 65534;
    let mut fleet = wisp_tests::sshd::Fleet::start(4);
    let mut mounts = Vec::new();
    let mut mount = |path: &Path, mode: u32, owner: u32| {
        std::fs::create_dir_all(path).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
            .arg(path)
            .status()
            .unwrap();
        assert!(
            mounted.success(),
            "mount a 64 KiB tmpfs on {}",
            path.display()
        );
        std::os::unix::fs::chown(path, Some(owner), Some(owner)).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        // Fill it, so that a runner staged there could not be written.
        let _ = std::fs::write(path.join("fill"), vec![0u8; 64 * 1024]);
        mounts.push(path.to_path_buf());
    };
    let open = fleet.dir.0.join("open-tmp");
    mount(&open, 0o777, NOBODY);
    let theirs = fleet.dir.0.join("their-sticky-tmp");
    mount(&theirs, 0o1777, NOBODY);
    let link = fleet.dir.0.join("their-link");
    std::os::unix::fs::symlink(&theirs, &link).unwrap();
    std::os::unix::fs::lchown(&link, Some(NOBODY), Some(NOBODY)).unwrap();
    let parent = fleet.dir.0.join("their-parent");
    std::fs::create_dir(&parent).unwrap();
    std::os::unix::fs::chown(&parent, Some(NOBODY), Some(NOBODY)).unwrap();
    let below = parent.join("root-private");
    mount(&below, 0o700, 0);
    let bases = [&open, &theirs, &link, &below];
    for (i, base) in bases.iter().enumerate() {
        fleet.restart_with(i, &format!("SetEnv TMPDIR={}", base.display()));
    }
    let mut c = wisp_tests::wisp_command!(&fleet.dir.0);
    c.args(["run", &fleet.targets()])
        .args(fleet.root_options())
        .args(["--", "true"])
        .current_dir(&fleet.dir.0);
    let out = c.output().unwrap();
    let staged: Vec<String> = mounts
        .iter()
        .flat_map(|m| std::fs::read_dir(m).unwrap().flatten())
        .map(|e| e.path().display().to_string())
        .filter(|p| !p.ends_with("/fill"))
        .collect();
    for m in &mounts {
        let _ = Command::new("umount").arg(m).status();
    }
    wisp_tests::wisp::show(&c, &out, &fleet.dir.0);
    assert_eq!(
        out.status.code(),
        Some(0),
        "a host staged in its unsafe base"
    );
    assert!(staged.is_empty(), "staged in an unsafe base: {staged:?}");
}

/// Case: another user on the host watches `/tmp`, `/dev/shm` and `/run` for staging
/// directories and, for each one, tries to list it, write into it, plant a link in it and
/// rename it away, while two hosts (TMPDIR `/tmp` and `/dev/shm`) take the runner over a slow
/// link, so each staging directory stays there for over a second. The attacker sees them
/// (asserted, or the test proved nothing), gets none of it, and both hosts run.
#[test]
fn another_user_cannot_touch_the_staging_directory() {
    use std::os::unix::fs::PermissionsExt;
    if !root_or_explain("an attacker user beside a root login") {
        return;
    }
    let mut fleet = wisp_tests::sshd::Fleet::start(2);
    fleet.restart_with(0, "SetEnv TMPDIR=/tmp");
    fleet.restart_with(1, "SetEnv TMPDIR=/dev/shm");
    let log = ScratchDir::new("staging-attacker");
    std::os::unix::fs::chown(&log.0, Some(65534), Some(65534)).unwrap();
    std::fs::set_permissions(&log.0, std::fs::Permissions::from_mode(0o700)).unwrap();
    let l = log.0.display();
    let attack = format!(
        r#"end=$(( $(date +%s) + 90 ))
while [ ! -e {l}/stop ] && [ $(date +%s) -lt $end ]; do
  for d in /tmp/wisp-?????????? /dev/shm/wisp-?????????? /run/wisp-root-??????????; do
    [ -d "$d" ] || continue
    grep -qxF "$d" {l}/seen 2>/dev/null || echo "$d" >> {l}/seen
    ls "$d" >/dev/null 2>&1 && echo "listed $d" >> {l}/won
    ( echo x > "$d/planted" ) 2>/dev/null && echo "wrote into $d" >> {l}/won
    ln -s /etc/shadow "$d/wisp-runner.next" 2>/dev/null && echo "linked in $d" >> {l}/won
    mv "$d" "$d-taken" 2>/dev/null && echo "renamed $d" >> {l}/won
  done
  sleep 0.01
done"#
    );
    let mut attacker = Command::new("runuser")
        .args(["-u", "nobody", "--", "sh", "-c", &attack])
        .spawn()
        .unwrap();
    let hosts: Vec<(String, u16)> = fleet
        .hosts
        .iter()
        .map(|h| (h.addr.clone(), h.port))
        .collect();
    // About half a megabyte of compressed runner at 2.5 Mbit/s: over a second and a half.
    let wan = wisp_tests::wan::start(&hosts, std::time::Duration::from_millis(10), 2_500_000);
    let known = fleet.dir.0.join("known_hosts.wan");
    wisp_tests::wan::known_hosts(&fleet.known_hosts, &known);
    let targets: Vec<String> = wan.listen.iter().map(|(a, p)| format!("{a}:{p}")).collect();
    let mut c = wisp_tests::wisp_command!(&fleet.dir.0);
    c.args(["run", &targets.join(",")])
        .args(fleet.root_options())
        .arg("--known-hosts")
        .arg(&known)
        .args(["--connect-timeout", "30s", "--", "echo", "staged-safely"])
        .current_dir(&fleet.dir.0);
    let out = wisp_tests::wisp::run(&mut c, &fleet.dir.0);
    std::fs::write(log.0.join("stop"), "").unwrap();
    attacker.wait().unwrap();
    let seen = std::fs::read_to_string(log.0.join("seen")).unwrap_or_default();
    let won = std::fs::read_to_string(log.0.join("won")).unwrap_or_default();
    assert!(
        won.is_empty(),
        "the other user got at a staging directory:\n{won}"
    );
    for base in ["/tmp/", "/dev/shm/"] {
        assert!(
            seen.lines().any(|d| d.starts_with(base)),
            "the attacker never saw a staging directory in {base}; the test proved nothing: {seen}"
        );
    }
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.matches("staged-safely").count(), 2, "{stdout}");
    fleet.assert_clean();
}
