//! The runners for both architectures: static, within the size budget, and the aarch64 one
//! answering the golden suite under qemu-user exactly as the native one does.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed unwrap is a failed test
#![allow(clippy::print_stdout)] // sizes and the report go into the test output

use std::path::{Path, PathBuf};

use wisp_conformance::{default_golden_dir, load_dir, render_report, run_cases_under};
use wisp_tests::runner_path;

/// The runner built for `arch`, beside this machine's in the build tree.
fn runner_for(arch: &str) -> PathBuf {
    let native = runner_path();
    let target = native.parent().unwrap().parent().unwrap().parent().unwrap();
    target.join(format!("{arch}-unknown-linux-musl/runner/wisp-runner"))
}

/// ELF machine and whether the file asks for a dynamic loader (a PT_INTERP header).
fn elf_facts(path: &Path) -> (u16, bool) {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[..4], b"\x7fELF", "{} is not ELF", path.display());
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
    let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
    let machine = u16_at(18);
    let (phoff, phentsize, phnum) = (
        usize::try_from(u64_at(32)).unwrap(),
        usize::from(u16_at(54)),
        u16_at(56),
    );
    let interp = (0..usize::from(phnum))
        .any(|i| u32::from_le_bytes(b[phoff + i * phentsize..][..4].try_into().unwrap()) == 3);
    (machine, interp)
}

#[test]
fn both_runners_are_static_and_within_the_size_budget() {
    for (arch, machine) in [("x86_64", 62), ("aarch64", 183)] {
        let path = runner_for(arch);
        assert!(
            path.is_file(),
            "{} is missing: `cargo xtask build-runner` builds both arches",
            path.display()
        );
        let size = std::fs::metadata(&path).unwrap().len();
        println!("{arch}: {} ({size} bytes)", path.display());
        assert!(size <= 1 << 20, "{arch} runner is {size} bytes, over 1 MiB");
        let (m, interp) = elf_facts(&path);
        assert_eq!(m, machine, "{arch}: wrong ELF machine");
        assert!(!interp, "{arch}: dynamically linked");
    }
}

/// The one frame qemu-user cannot give: it maps guest signals onto host ones, and the host
/// programs the emulated runner starts inherit host signal 32 ignored whatever the runner
/// resets (qemu translates the reset; 32 has no guest number). On aarch64 hardware the runner
/// runs natively and this difference cannot arise.
const QEMU_SIGNAL_32: &str = "SigIgn:\\t0000000080000000";

#[test]
fn the_aarch64_runner_passes_the_golden_suite_under_qemu() {
    // binfmt_misc runs it directly when qemu is registered there; otherwise qemu is named.
    let registered = Path::new("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists();
    let qemu = Path::new("/usr/bin/qemu-aarch64-static");
    let interpreter = if registered { None } else { Some(qemu) };
    if !registered && !qemu.exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "qemu-user-static is not installed; `cargo xtask test` installs it"
        );
        println!(
            "not run: no qemu-aarch64 (install qemu-user-static, or run `cargo xtask test` as root)"
        );
        return;
    }
    println!(
        "running the aarch64 runner through {}",
        interpreter.map_or("binfmt_misc".into(), |q| q.display().to_string())
    );
    let cases = load_dir(&default_golden_dir()).unwrap();
    let outcomes = run_cases_under(&cases, &runner_for("aarch64"), interpreter, false);
    let report = render_report(&outcomes);
    println!("{report}");
    for o in &outcomes {
        if o.name == "exec-signal" && !o.passed() {
            let text = o.failures.join("\n");
            assert!(
                text.contains(QEMU_SIGNAL_32) && o.failures.len() == 1,
                "exec-signal differs beyond qemu's own signal:\n{text}"
            );
            println!("exec-signal: only host signal 32, which qemu-user leaves ignored, differs");
            continue;
        }
        assert!(o.passed(), "{} failed under qemu:\n{report}", o.name);
    }
    assert!(outcomes.len() >= 36, "{} cases", outcomes.len());
}
