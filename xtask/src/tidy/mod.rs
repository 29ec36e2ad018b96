//! Tidy: invariants of the repository checked by plain `cargo test` (see ARCHITECTURE.md).
//!
//! `files`: what each file must say or must not hold (docs, size, placeholders, stdout in the
//! runner, PROTOCOL.md and ARCHITECTURE.md in step with the code, crates in layers);
//! `functions`: the function cap; `imports`: how modules and crates may name each other (no
//! circle at any level, the controller's layers, SSH only in transports, every dependency
//! used). The helpers they read the workspace with are here.

#[cfg(test)]
mod files;
#[cfg(test)]
mod functions;
#[cfg(test)]
mod imports;

#[cfg(test)]
use std::path::{Path, PathBuf};

/// Every crate directory of the workspace, as the workspace's `members` names them.
#[cfg(test)]
fn crates() -> Vec<String> {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let members = manifest
        .lines()
        .find_map(|l| l.strip_prefix("members = ["))
        .expect("the workspace lists its members on one line");
    members
        .trim_end_matches(']')
        .split(',')
        .map(|m| m.trim().trim_matches('"').to_owned())
        .filter(|m| !m.is_empty())
        .collect()
}

/// The crates that hold the product's code (not its tests, tasks or benchmarks).
#[cfg(test)]
fn library_crates() -> Vec<String> {
    crates()
        .into_iter()
        .filter(|c| !matches!(c.as_str(), "tests" | "xtask" | "bench"))
        .collect()
}

#[cfg(test)]
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

#[cfg(test)]
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[cfg(test)]
fn sources(crate_dir: &str) -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    rust_files(&root().join(crate_dir).join("src"), &mut files);
    files.sort();
    files
        .into_iter()
        .map(|p| (p.clone(), std::fs::read_to_string(&p).unwrap()))
        .collect()
}

/// The `[dependencies]` table of a crate's manifest, as names.
#[cfg(test)]
fn dependencies(crate_dir: &str) -> Vec<String> {
    let manifest = std::fs::read_to_string(root().join(crate_dir).join("Cargo.toml")).unwrap();
    let mut in_deps = false;
    let mut names = Vec::new();
    for line in manifest.lines() {
        if line.starts_with('[') {
            in_deps = line.trim() == "[dependencies]";
        } else if in_deps && let Some((name, _)) = line.split_once('=') {
            // `serde.workspace = true` names `serde`.
            let name = name.trim();
            names.push(name.strip_suffix(".workspace").unwrap_or(name).to_owned());
        }
    }
    names
}

/// The code of a line, without its `//` comment.
#[cfg(test)]
fn code(line: &str) -> &str {
    line.split("//").next().unwrap_or("")
}
