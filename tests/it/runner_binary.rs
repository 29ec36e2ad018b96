//! The runner as a shipped artifact: statically linked, small, light when idle.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed unwrap is a failed test

use std::time::Duration;

use wisp_protocol::message::{Hello, Message};
use wisp_tests::{RawRunner, Received, ScratchDir, runner_path};

const MAX_SIZE: u64 = 1024 * 1024;
const MAX_IDLE_RSS_KB: u64 = 4 * 1024;

fn u16_at(b: &[u8], at: usize) -> usize {
    usize::from(u16::from_le_bytes([b[at], b[at + 1]]))
}

#[test]
fn runner_is_a_static_executable_of_at_most_one_mib() {
    let path = runner_path();
    let bytes = std::fs::read(&path).expect("read runner");
    let size = bytes.len() as u64;
    println!(
        "runner: {} ({size} bytes, {:.1} KiB; budget {} KiB)",
        path.display(),
        size as f64 / 1024.0,
        MAX_SIZE / 1024
    );
    assert!(
        size <= MAX_SIZE,
        "runner is {size} bytes, over the 1 MiB budget"
    );

    // ELF64 little-endian: no PT_INTERP (no dynamic loader) and no PT_DYNAMIC.
    assert_eq!(&bytes[..4], b"\x7fELF", "not an ELF file");
    assert_eq!(bytes[4], 2, "not ELF64");
    let phoff = usize::try_from(u64::from_le_bytes(bytes[0x20..0x28].try_into().unwrap())).unwrap();
    let (phentsize, phnum) = (u16_at(&bytes, 0x36), u16_at(&bytes, 0x38));
    let types: Vec<u32> = (0..phnum)
        .map(|i| u32::from_le_bytes(bytes[phoff + i * phentsize..][..4].try_into().unwrap()))
        .collect();
    const PT_DYNAMIC: u32 = 2;
    const PT_INTERP: u32 = 3;
    assert!(
        !types.contains(&PT_INTERP),
        "runner asks for a dynamic loader (PT_INTERP)"
    );
    assert!(!types.contains(&PT_DYNAMIC), "runner has a dynamic section");

    // Cross-check with file(1), which is what operators will run.
    match std::process::Command::new("file").arg(&path).output() {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout);
            println!("file: {}", text.trim());
            assert!(
                text.contains("statically linked"),
                "file(1) does not say statically linked: {text}"
            );
        }
        Err(e) => println!(
            "file(1) cross-check skipped: file is not installed ({e}); the ELF check above still ran"
        ),
    }
}

#[test]
fn idle_runner_stays_under_four_mib_resident() {
    let scratch = ScratchDir::new("rss");
    let mut r = RawRunner::start(&scratch.0, &[]);
    assert!(
        matches!(r.recv(Duration::from_secs(10)), Some(Received::Frame(f)) if matches!(f.message, Message::Ready(_)))
    );
    r.send(Message::Hello(Hello { version: 1 }), &[]);
    std::thread::sleep(Duration::from_millis(100));
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", r.child.id())).expect("runner status");
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS");
    println!("idle runner RSS: {rss_kb} KiB (budget {MAX_IDLE_RSS_KB} KiB)");
    assert!(
        rss_kb <= MAX_IDLE_RSS_KB,
        "idle RSS {rss_kb} KiB is over budget"
    );
    r.stdin = None;
    let _ = r.child.wait();
}
