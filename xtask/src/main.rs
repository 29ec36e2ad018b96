//! `cargo xtask`: the project's chores, in Rust so they run wherever cargo does.
//!
//! - `build-runner`: the static musl runners for x86_64 and aarch64 (installs the rustup targets
//!   when missing), each signed with minisign: with the key `WISP_SIGNING_KEY` names (password
//!   in `WISP_SIGNING_PASSWORD`), else with this build tree's dev key (made on first use);
//! - `keygen DIR`: a new password-protected signing key pair for releases;
//! - `sign FILE...`: sign runners built some other way (cross-rs) with the same key;
//! - `dist`: `target/dist/wisp`, a release controller that carries both signed runners and
//!   trusts the key that signed them;
//! - `test`: install missing test packages (sshd), build the runner, then run every test;
//! - `golden`: regenerate the golden files from the built runner (review the git diff!);
//! - `fuzz-seed`: write the fuzz corpus seeds from the golden cases;
//! - `bench`: release builds, then the benchmarks in `bench/` (figures, not pass/fail).

mod signing;
mod tidy;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

const USAGE: &str = "usage: cargo xtask <build-runner | test | golden | fuzz-seed | bench | \
                     dist | keygen DIR | sign FILE...>";

fn main() -> Result<()> {
    let task = std::env::args().nth(1).unwrap_or_default();
    match task.as_str() {
        "build-runner" => build_runner().map(|_| ()),
        "test" => test(),
        "golden" => golden(),
        "fuzz-seed" => fuzz_seed(),
        "bench" => bench(),
        "keygen" => signing::keygen(std::env::args().nth(2)),
        "sign" => signing::sign_files(std::env::args().skip(2).map(PathBuf::from).collect()),
        "dist" => dist(),
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

/// The architectures runners are built for.
const RUNNER_ARCHES: &[&str] = &["x86_64", "aarch64"];

/// The runners' size budget, per architecture.
const RUNNER_BUDGET: u64 = 1 << 20;

/// Builds and signs the runner for every architecture (aarch64 links with rust-lld, no cross
/// compiler needed); returns the path of this machine's.
fn build_runner() -> Result<PathBuf> {
    let key = signing::key()?;
    let mut native = None;
    for arch in RUNNER_ARCHES {
        let triple = format!("{arch}-unknown-linux-musl");
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
        if size > RUNNER_BUDGET {
            bail!(
                "{} is {size} bytes, over the {RUNNER_BUDGET}-byte budget",
                path.display()
            );
        }
        let id = signing::sign(&key, &path)?;
        eprintln!(
            "runner: {} ({size} bytes), signed by key {id} ({})",
            path.display(),
            key.describe()
        );
        if *arch == std::env::consts::ARCH {
            native = Some(path);
        }
    }
    native.context("this machine's architecture has no runner target")
}

/// Debian packages the tests use, by a file each one installs.
const TEST_PACKAGES: &[(&str, &str)] = &[
    ("openssh-server", "/usr/sbin/sshd"),
    // The playbook tests' cron role installs user crontabs with it.
    ("cron", "/usr/bin/crontab"),
    // ansible-playbook's package_facts reads dpkg's database through it.
    (
        "python3-apt",
        "/usr/lib/python3/dist-packages/apt/__init__.py",
    ),
    ("file", "/usr/bin/file"),
    ("sudo", "/usr/bin/sudo"),
    ("qemu-user-static", "/usr/bin/qemu-aarch64-static"),
    // The worker tests start their own `nats-server -js` on a loopback port.
    ("nats-server", "/usr/sbin/nats-server"),
    // The TLS worker test makes its CA and server certificate with it.
    ("openssl", "/usr/bin/openssl"),
    // The bootstrap race in the attack suite watches for sudo with pgrep.
    ("procps", "/usr/bin/pgrep"),
    // Login shells of every family, and doas: hosts set up as real fleets are.
    ("zsh", "/usr/bin/zsh"),
    ("fish", "/usr/bin/fish"),
    ("tcsh", "/usr/bin/tcsh"),
    ("csh", "/usr/bin/bsd-csh"),
    ("busybox", "/usr/bin/busybox"),
    ("doas", "/usr/bin/doas"),
    ("dropbear-bin", "/usr/sbin/dropbear"),
    // The reference tools (ansible-core and the MCP SDK, from PyPI) live in a venv the
    // suite makes.
    ("python3-venv", "/usr/share/doc/python3-venv/copyright"),
];

/// The ansible-core the reference comparisons run (its rendering is what the template
/// suite's expected texts are).
const ANSIBLE_CORE: &str = "ansible-core==2.19.14";

/// The MCP client the `wisp mcp` tests drive it with: the official Python SDK.
const MCP_SDK: &str = "mcp==2.3.0";

/// A venv with ansible-core and the MCP SDK from PyPI, under the build directory (made
/// once); its python.
fn reference_venv() -> Result<PathBuf> {
    let dir = target_dir().join("reference-venv");
    let python = dir.join("bin/python");
    let marker = dir.join(format!("{ANSIBLE_CORE}+{MCP_SDK}.installed"));
    if !marker.exists() {
        run(Command::new("python3").args(["-m", "venv"]).arg(&dir))?;
        run(Command::new(dir.join("bin/pip")).args(["install", "--quiet", ANSIBLE_CORE, MCP_SDK]))?;
        std::fs::write(&marker, "")?;
    }
    Ok(python)
}

/// What the benchmarks use beyond the tests' packages: strace counts the programs each tool
/// executes on a host.
const BENCH_PACKAGES: &[(&str, &str)] = &[("strace", "/usr/bin/strace")];

/// Installs the test packages that are missing (as root, with apt-get); otherwise says what
/// to install. The SSH tests fail loudly without sshd rather than skip.
fn ensure_test_packages() -> Result<()> {
    ensure_packages(TEST_PACKAGES)
}

/// Installs those of `packages` that are missing (see [`ensure_test_packages`]).
fn ensure_packages(packages: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<&str> = packages
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
    // Without binfmt_misc (a container may not allow the mount) the cross-arch test names
    // qemu-aarch64-static itself; registering only saves it that.
    if let Err(e) = ensure_aarch64_emulation() {
        eprintln!(
            "note: qemu-aarch64 not registered with binfmt_misc ({e:#}); the tests call qemu directly"
        );
    }
    let runner = build_runner()?;
    let ansible = reference_venv()?;
    // Every test runs wisp in its own scratch HOME and XDG dirs (tests/src/wisp.rs): the
    // operator's state directory must come out of the suite exactly as it went in.
    let state = user_state_dir();
    let before = tree_listing(&state);
    run(cargo()
        .args(["test", "--workspace", "--no-fail-fast"])
        .env("WISP_RUNNER", &runner)
        .env("WISP_ANSIBLE_PYTHON", &ansible)
        .env("WISP_MCP_PYTHON", &ansible))?;
    let after = tree_listing(&state);
    if before != after {
        bail!(
            "the test suite changed {}: a test ran wisp outside its scratch directory \
             (use wisp_tests::wisp_command!)\nbefore: {before:?}\nafter: {after:?}",
            state.display()
        );
    }
    eprintln!("{} unchanged by the suite", state.display());
    Ok(())
}

/// `$XDG_STATE_HOME/wisp`, else `~/.local/state/wisp`: where wisp keeps an operator's state.
fn user_state_dir() -> PathBuf {
    std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("/nonexistent"))
        .join("wisp")
}

/// Every path below `dir` with its size, sorted; empty when `dir` does not exist.
fn tree_listing(dir: &Path) -> Vec<(PathBuf, u64)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, u64)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            let len = e.metadata().map_or(0, |m| m.len());
            if path.is_dir() {
                walk(&path, out);
            }
            out.push((path, len));
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out.sort();
    out
}

/// A release `wisp` carrying both signed runners, trusting the key that signed them.
fn dist() -> Result<()> {
    build_runner()?;
    let key = signing::key()?;
    run(cargo()
        .args(["build", "--release", "--package", "wisp-controller"])
        .env("WISP_RELEASE_PUBKEY", key.public_base64()))?;
    let dist = target_dir().join("dist");
    std::fs::create_dir_all(&dist)?;
    let out = dist.join("wisp");
    run(Command::new(target_dir().join("release/wisp"))
        .args(["bundle", "--out"])
        .arg(&out)
        .env_remove("WISP_RUNNER"))?;
    let size = std::fs::metadata(&out)?.len();
    eprintln!(
        "{} ({size} bytes): carries the x86_64 and aarch64 runners and trusts key {} ({})",
        out.display(),
        key.id(),
        key.describe()
    );
    Ok(())
}

/// Lets the aarch64 runner run here: qemu-user registered with binfmt_misc (with the F flag,
/// so it works whatever the runner's mount namespace). Root only; otherwise the cross-arch test
/// says what is missing.
fn ensure_aarch64_emulation() -> Result<()> {
    let misc = Path::new("/proc/sys/fs/binfmt_misc");
    if misc.join("qemu-aarch64").exists() {
        return Ok(());
    }
    let conf = Path::new("/usr/lib/binfmt.d/qemu-aarch64.conf");
    if !conf.exists() {
        bail!("{} is missing: install qemu-user-static", conf.display());
    }
    if !misc.join("register").exists() {
        run(Command::new("mount")
            .args(["-t", "binfmt_misc", "binfmt_misc"])
            .arg(misc))?;
    }
    let rule = std::fs::read_to_string(conf)?;
    std::fs::write(misc.join("register"), rule.trim())
        .context("cannot register qemu-aarch64 with binfmt_misc (root needed)")
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
            .env("WISP_JOURNAL_DIR", target_dir().join("bench-journals"))
            .env("WISP_STATE", target_dir().join("bench-state/wisp.db")))
    };
    bench(&[])?;
    // The fleet benchmark needs sshd and root (it starts sshd instances).
    ensure_test_packages()?;
    ensure_packages(BENCH_PACKAGES)?;
    let hosts = std::env::var("WISP_BENCH_HOSTS").unwrap_or_else(|_| "50".into());
    bench(&["--ssh", &hosts])?;
    let workers = std::env::var("WISP_BENCH_WORKERS").unwrap_or_else(|_| "200".into());
    bench(&["--workers", &workers])?;
    bench(&["--mcp", "20"])?;
    let scale = std::env::var("WISP_BENCH_SCALE").unwrap_or_else(|_| "1000".into());
    bench(&["--scale", &scale])
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
