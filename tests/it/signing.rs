//! Runner signatures: the controller pushes only runners signed by a key it trusts, checks them
//! before any host is contacted, and says which key signed what with `-v`.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::process::Output;

use minisign::KeyPair;
use wisp_tests::{ScratchDir, runner_path};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `wisp run TARGET -- true` with `exe` (the CLI under test unless given) and extra options;
/// no runner named in the environment unless `runner` is given.
fn wisp(exe: Option<&Path>, target: &str, runner: Option<&Path>, extra: &[&str]) -> Output {
    let exe = exe.map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_wisp-under-test")),
        Path::to_path_buf,
    );
    let scratch = ScratchDir::new("sign-run");
    let mut c = wisp_tests::wisp::isolated(&exe, &scratch.0);
    c.env_remove("WISP_RUNNER")
        .args(["run", target])
        .args(extra);
    if let Some(r) = runner {
        c.arg("--runner").arg(r);
    }
    c.args(["--", "true"]).output().unwrap()
}

/// A copy of the built runner and its signature in `dir`.
fn copy_runner(dir: &Path) -> PathBuf {
    let path = dir.join("wisp-runner");
    std::fs::copy(runner_path(), &path).unwrap();
    let mut sig = runner_path().into_os_string();
    sig.push(".minisig");
    std::fs::copy(sig, dir.join("wisp-runner.minisig")).unwrap();
    path
}

fn flip_one_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

/// The dev key's ID, as the build signed with it.
fn dev_key_id() -> String {
    let sig = std::fs::read_to_string(format!("{}.minisig", runner_path().display())).unwrap();
    let sig = minisign::SignatureBox::from_string(&sig).unwrap();
    sig.keynum()
        .iter()
        .rev()
        .map(|b| format!("{b:02X}"))
        .collect()
}

#[test]
fn a_tampered_runner_is_refused_before_any_host_is_contacted() {
    let tmp = ScratchDir::new("sign-tamper");
    let runner = copy_runner(&tmp.0);
    let out = wisp(None, "localhost", Some(&runner), &["-v"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    flip_one_byte(&runner);
    // An address nothing listens on: had wisp tried to connect, it would say unreachable.
    for target in ["localhost", "127.0.0.1:1"] {
        let out = wisp(None, target, Some(&runner), &[]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(5), "{stderr}");
        assert!(stderr.contains(&runner.display().to_string()), "{stderr}");
        assert!(stderr.contains(&dev_key_id()), "names the key: {stderr}");
        assert!(stderr.contains("changed after it was signed"), "{stderr}");
        assert!(!stderr.contains("UNREACHABLE"), "it connected: {stderr}");
    }
}

#[test]
fn a_runner_signed_by_an_untrusted_key_is_refused_until_the_key_is_trusted() {
    let tmp = ScratchDir::new("sign-untrusted");
    let runner = copy_runner(&tmp.0);
    let KeyPair { pk, sk } = KeyPair::generate_unencrypted_keypair().unwrap();
    let bytes = std::fs::read(&runner).unwrap();
    let sig = minisign::sign(Some(&pk), &sk, std::io::Cursor::new(bytes), None, None).unwrap();
    std::fs::write(tmp.0.join("wisp-runner.minisig"), sig.into_string()).unwrap();
    let id: String = pk
        .keynum()
        .iter()
        .rev()
        .map(|b| format!("{b:02X}"))
        .collect();

    let out = wisp(None, "localhost", Some(&runner), &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "signed by key {id}, which this controller does not trust"
        )),
        "{stderr}"
    );

    let key_file = tmp.0.join("team.pub");
    std::fs::write(&key_file, pk.to_box().unwrap().into_string()).unwrap();
    let key_arg = key_file.display().to_string();
    let out = wisp(
        None,
        "localhost",
        Some(&runner),
        &["-v", "--trusted-key", &key_arg],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("signature ok, key {id} ({key_arg})")),
        "{stderr}"
    );
}

#[test]
fn an_unsigned_runner_runs_only_when_asked_and_then_with_a_warning() {
    let tmp = ScratchDir::new("sign-unsigned");
    let runner = copy_runner(&tmp.0);
    std::fs::remove_file(tmp.0.join("wisp-runner.minisig")).unwrap();
    let out = wisp(None, "localhost", Some(&runner), &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("is not signed"), "{stderr}");
    assert!(stderr.contains("--insecure-unsigned-runner"), "{stderr}");
    let out = wisp(
        None,
        "localhost",
        Some(&runner),
        &["--insecure-unsigned-runner"],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("WARNING: --insecure-unsigned-runner"),
        "{stderr}"
    );
}

/// The default path: a controller in a build tree finds that tree's runner and checks it
/// against that tree's dev key, with nothing configured; a modified runner is refused.
#[test]
fn the_default_build_verifies_its_runner_and_refuses_a_modified_one() {
    let tmp = ScratchDir::new("sign-default");
    let built = runner_path();
    let target = tmp.0.join("target");
    let musl = target.join(format!(
        "{}-unknown-linux-musl/runner",
        std::env::consts::ARCH
    ));
    std::fs::create_dir_all(&musl).unwrap();
    std::fs::create_dir_all(target.join("debug")).unwrap();
    std::fs::create_dir_all(target.join("wisp-dev-signing")).unwrap();
    std::fs::write(
        target.join("CACHEDIR.TAG"),
        "Signature: 8a477f597d28d172789f06886806bc55\n",
    )
    .unwrap();
    let runner = copy_runner(&musl);
    // The dev key the build signed with sits in the real build tree beside the runner's.
    let real_target = built.parent().unwrap().parent().unwrap().parent().unwrap();
    std::fs::copy(
        real_target.join("wisp-dev-signing/wisp-dev.pub"),
        target.join("wisp-dev-signing/wisp-dev.pub"),
    )
    .unwrap();
    let exe = target.join("debug/wisp");
    std::fs::copy(env!("CARGO_BIN_EXE_wisp-under-test"), &exe).unwrap();

    let out = wisp(Some(&exe), "localhost", None, &["-v"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{} ({} bytes): signature ok, key {}",
            runner.display(),
            std::fs::metadata(&runner).unwrap().len(),
            dev_key_id()
        )),
        "{stderr}"
    );
    flip_one_byte(&runner);
    let out = wisp(Some(&exe), "localhost", None, &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("changed after it was signed"), "{stderr}");
}

/// `wisp bundle`: one file carrying both runners and their signatures, checked on every run
/// against the trusted keys (never against anything the bundle itself carries).
#[test]
fn a_bundled_wisp_pushes_the_runners_it_carries_once_they_check_out() {
    let tmp = ScratchDir::new("sign-bundle");
    let bundled = tmp.0.join("wisp");
    let out = wisp_tests::wisp_command!(&tmp.0)
        .args(["bundle", "--out"])
        .arg(&bundled)
        .env_remove("WISP_RUNNER")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("x86_64 and aarch64"),
        "{}",
        text(&out.stderr)
    );
    let real_target = runner_path();
    let dev_pub = real_target
        .ancestors()
        .nth(3)
        .unwrap()
        .join("wisp-dev-signing/wisp-dev.pub");
    let dev = dev_pub.display().to_string();

    // Outside the build tree nothing vouches for the dev key until it is named.
    let out = wisp(Some(&bundled), "localhost", None, &[]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("does not trust"));
    let out = wisp(
        Some(&bundled),
        "localhost",
        None,
        &["-v", "--trusted-key", &dev],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "runner {}: {} (bundled)",
            std::env::consts::ARCH,
            bundled.display()
        )) && stderr.contains("signature ok"),
        "{stderr}"
    );

    // One byte of the first carried runner changed: refused.
    let image = std::fs::metadata(env!("CARGO_BIN_EXE_wisp-under-test"))
        .unwrap()
        .len();
    let mut bytes = std::fs::read(&bundled).unwrap();
    let i = usize::try_from(image).unwrap() + 4096;
    bytes[i] ^= 0x01;
    std::fs::write(&bundled, bytes).unwrap();
    let out = wisp(Some(&bundled), "localhost", None, &["--trusted-key", &dev]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("changed after it was signed"), "{stderr}");
}
