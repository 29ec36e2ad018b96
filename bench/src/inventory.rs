//! Inventory parsing at fleet sizes: 10,000 and 100,000 hosts in groups of 100, with host
//! vars, in each format wisp reads: loaded, `all` selected, and every host resolved.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use wisp_inventory::Inventory;

fn ini(n: usize) -> String {
    let mut text = String::new();
    for g in 0..n / 100 {
        let _ = writeln!(text, "[group{g}]");
        for h in 0..100 {
            let i = g * 100 + h;
            let _ = writeln!(
                text,
                "host{i:06} ansible_host=10.{}.{}.{} ansible_port=22 role=web",
                i >> 16 & 255,
                i >> 8 & 255,
                i & 255
            );
        }
    }
    text
}

fn yaml(n: usize) -> String {
    let mut text = String::from("all:\n  children:\n");
    for g in 0..n / 100 {
        let _ = writeln!(text, "    group{g}:\n      hosts:");
        for h in 0..100 {
            let i = g * 100 + h;
            let _ = writeln!(
                text,
                "        host{i:06}:\n          ansible_host: 10.{}.{}.{}\n          role: web",
                i >> 16 & 255,
                i >> 8 & 255,
                i & 255
            );
        }
    }
    text
}

fn toml(n: usize) -> String {
    let mut text = String::new();
    for g in 0..n / 100 {
        let hosts: Vec<String> = (0..100)
            .map(|h| format!("\"host{:06}\"", g * 100 + h))
            .collect();
        let _ = writeln!(text, "[groups.group{g}]\nhosts = [{}]", hosts.join(", "));
    }
    for i in 0..n {
        let _ = writeln!(
            text,
            "[hosts.host{i:06}]\naddress = \"10.{}.{}.{}\"\nrole = \"web\"",
            i >> 16 & 255,
            i >> 8 & 255,
            i & 255
        );
    }
    text
}

/// Load, select `all` and resolve every host's vars and connection settings, as a run does;
/// timed. Panics unless every host is selected and resolved.
fn load(path: &std::path::Path, n: usize) -> Duration {
    let t = Instant::now();
    let inv = Inventory::load(path)
        .unwrap_or_else(|e| panic!("{}: {}", path.display(), wisp_protocol::error::chain(&e)));
    let hosts = wisp_inventory::select(&inv, "all").expect("select all");
    let resolver = inv.resolver();
    let resolved = hosts.iter().filter_map(|h| resolver.resolve(h)).count();
    let took = t.elapsed();
    assert_eq!(
        (hosts.len(), resolved),
        (n, n),
        "{}: every host",
        path.display()
    );
    took
}

pub(crate) fn bench(scratch: &std::path::Path) {
    for n in [10_000, 100_000] {
        for (ext, text) in [("ini", ini(n)), ("yml", yaml(n)), ("toml", toml(n))] {
            let path = scratch.join(format!("inventory-{n}.{ext}"));
            std::fs::write(&path, &text).expect("write the inventory");
            let took = load(&path, n);
            println!(
                "inventory parse, {n:>6} hosts, {ext:<4} ({:>5} KiB): {took:>10.3?}",
                text.len() / 1024
            );
        }
    }
}
