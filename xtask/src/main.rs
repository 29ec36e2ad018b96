//! `cargo xtask`: the project's chores, in Rust so they run wherever cargo does.
//!
//! - `build-runner`: the static musl runner (installs the rustup target when missing);
//! - `test`: install missing test packages (sshd), build the runner, then run every test;
//! - `golden`: regenerate the golden files from the built runner (review the git diff!);
//! - `fuzz-seed`: write the fuzz corpus seeds from the golden cases;
//! - `bench`: release builds, then the benchmarks in `bench/` (figures, not pass/fail).

mod tidy;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

const USAGE: &str = "usage: cargo xtask <build-runner | test | golden | fuzz-seed | bench>";

fn main() -> Result<()> {
    let task = std::env::args().nth(1).unwrap_or_default();
    match task.as_str() {
        "build-runner" => build_runner().map(|_| ()),
        "test" => test(),
        "golden" => golden(),
        "fuzz-seed" => fuzz_seed(),
        "bench" => bench(),
        _ => bail!("{USAGE}"),
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_owned()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from)
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("$ {cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(root());
    c
}

/// The musl target for this machine's architecture.
fn native_musl() -> String {
    format!("{}-unknown-linux-musl", std::env::consts::ARCH)
}

fn ensure_target(triple: &str) -> Result<()> {
    let out = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .current_dir(root())
        .output();
    match out {
        Ok(out)
            if String::from_utf8_lossy(&out.stdout)
                .lines()
                .any(|l| l.trim() == triple) =>
        {
            Ok(())
        }
        Ok(_) => run(Command::new("rustup")
            .args(["target", "add", triple])
            .current_dir(root())),
        // Without rustup the toolchain must already carry the target; cargo will say if not.
        Err(_) => Ok(()),
    }
}

/// Builds the runner for this machine; returns its path.
fn build_runner() -> Result<PathBuf> {
    let triple = native_musl();
    ensure_target(&triple)?;
    run(cargo().args([
        "build",
        "--package",
        "wisp-runner",
        "--profile",
        "runner",
        "--target",
        &triple,
    ]))?;
    let path = target_dir().join(&triple).join("runner/wisp-runner");
    let size = std::fs::metadata(&path)
        .with_context(|| format!("{} was not built", path.display()))?
        .len();
    eprintln!("runner: {} ({size} bytes)", path.display());
    Ok(path)
}

/// Debian packages the tests use, by a file each one installs.
const TEST_PACKAGES: &[(&str, &str)] = &[
    ("openssh-server", "/usr/sbin/sshd"),
    ("file", "/usr/bin/file"),
    ("sudo", "/usr/bin/sudo"),
];

/// Installs the test packages that are missing (as root, with apt-get); otherwise says what
/// to install. The SSH tests fail loudly without sshd rather than skip.
fn ensure_test_packages() -> Result<()> {
    let missing: Vec<&str> = TEST_PACKAGES
        .iter()
        .filter(|(_, file)| !Path::new(file).exists())
        .map(|(pkg, _)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if !root {
        bail!(
            "the tests need these packages: {}; install them (sudo apt-get install {}) and rerun",
            missing.join(", "),
            missing.join(" ")
        );
    }
    run(Command::new("apt-get").arg("update"))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

fn test() -> Result<()> {
    ensure_test_packages()?;
    let runner = build_runner()?;
    run(cargo()
        .args(["test", "--workspace", "--no-fail-fast"])
        .env("WISP_RUNNER", &runner)
        // The runs the tests make are journalled in the build tree, not the user's state.
        .env("WISP_JOURNAL_DIR", target_dir().join("test-journals")))
}

fn bench() -> Result<()> {
    let runner = build_runner()?;
    run(cargo().args(["build", "--release", "--package", "wisp-controller"]))?;
    let bench = |extra: &[&str]| {
        run(cargo()
            .args([
                "run",
                "--release",
                "--quiet",
                "--package",
                "wisp-bench",
                "--",
            ])
            .args(extra)
            .env("WISP_RUNNER", &runner)
            .env("WISP_BIN", target_dir().join("release/wisp"))
            .env("WISP_JOURNAL_DIR", target_dir().join("bench-journals")))
    };
    bench(&[])?;
    // The fleet benchmark needs sshd and root (it starts sshd instances).
    ensure_test_packages()?;
    let hosts = std::env::var("WISP_BENCH_HOSTS").unwrap_or_else(|_| "50".into());
    bench(&["--ssh", &hosts])
}

fn golden() -> Result<()> {
    let runner = build_runner()?;
    run(cargo()
        .args([
            "run",
            "--quiet",
            "--package",
            "wisp-controller",
            "--",
            "conformance",
            "--update",
            "--runner",
        ])
        .arg(&runner)
        .arg("--golden")
        .arg(root().join("golden")))?;
    eprintln!("golden files regenerated: review them with `git diff golden/` before committing");
    Ok(())
}

/// Every frame a golden case sends, encoded, one file each: the fuzzer starts from real traffic.
fn fuzz_seed() -> Result<()> {
    let dir = root().join("fuzz/corpus/decode");
    std::fs::create_dir_all(&dir)?;
    let mut n = 0;
    for entry in std::fs::read_dir(root().join("golden"))? {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "jsonl") {
            continue;
        }
        let stem = path
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let mut session = Vec::new();
        for line in std::fs::read_to_string(&path)?.lines() {
            let v: serde_json::Value = serde_json::from_str(line)?;
            let data = v
                .get("data")
                .and_then(|d| d.as_str())
                .unwrap_or("")
                .as_bytes()
                .to_vec();
            let json = match (v.get("send"), v.get("send_json")) {
                (Some(frame), _) => serde_json::to_vec(frame)?,
                (None, Some(text)) => text.as_str().unwrap_or("").as_bytes().to_vec(),
                _ => continue,
            };
            let mut bytes = Vec::new();
            wisp_protocol::frame::encode(&json, &data, &mut bytes)?;
            std::fs::write(dir.join(format!("{stem}-{n}")), &bytes)?;
            session.extend_from_slice(&bytes);
            n += 1;
        }
        std::fs::write(dir.join(format!("{stem}-session")), &session)?;
    }
    eprintln!(
        "wrote {n} frame seeds (plus one whole session per case) to {}",
        dir.display()
    );
    Ok(())
}
