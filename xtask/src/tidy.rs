//! Tidy: invariants of the repository checked by plain `cargo test` (see ARCHITECTURE.md).

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    /// Every crate directory of the workspace.
    const CRATES: [&str; 7] = [
        "protocol",
        "micro-runner",
        "transports",
        "controller",
        "tests",
        "xtask",
        "bench",
    ];

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .to_owned()
    }

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

    #[test]
    fn every_source_file_says_what_it_owns() {
        for dir in CRATES {
            for (path, text) in sources(dir) {
                assert!(
                    text.starts_with("//!"),
                    "{} does not start with a `//!` module doc",
                    path.display()
                );
            }
        }
    }

    #[test]
    fn dependency_rules_hold() {
        // protocol: no IO runtime, no SSH, no process management.
        assert_eq!(dependencies("protocol"), ["serde", "serde_json"]);
        // The runner: std plus the protocol, thin syscall wrappers and the two sandbox
        // builders (Landlock rulesets, seccomp BPF); no async runtime, no cgroup library.
        assert_eq!(
            dependencies("micro-runner"),
            [
                "wisp-protocol",
                "serde_json",
                "libc",
                "landlock",
                "seccompiler",
                "nix"
            ]
        );
        // Only transports may know how hosts are reached.
        for dir in ["protocol", "micro-runner", "controller"] {
            let deps = dependencies(dir);
            assert!(
                !deps
                    .iter()
                    .any(|d| d.contains("russh") || d.contains("ssh")),
                "{dir} depends on SSH: {deps:?}"
            );
        }
        assert!(
            !dependencies("micro-runner").iter().any(|d| d == "tokio"),
            "the runner has no async runtime"
        );
    }

    #[test]
    fn the_runner_writes_nothing_but_frames_to_stdout() {
        for (path, text) in sources("micro-runner") {
            for (i, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                for banned in ["println!", "print!(", "dbg!(", "io::stdout()"] {
                    let allowed = banned == "io::stdout()" && path.ends_with("wire.rs");
                    assert!(
                        allowed || !code.contains(banned),
                        "{}:{}: {banned} in the runner",
                        path.display(),
                        i + 1
                    );
                }
            }
        }
    }

    #[test]
    fn no_placeholders_or_ignored_tests() {
        for dir in CRATES {
            let mut files = Vec::new();
            rust_files(&root().join(dir), &mut files);
            for path in files
                .into_iter()
                .filter(|p| !p.components().any(|c| c.as_os_str() == "target"))
            {
                let text = std::fs::read_to_string(&path).unwrap();
                // Spelled in pieces so that this file does not contain what it bans.
                let banned_list = [
                    concat!("todo", "!("),
                    concat!("unimplemented", "!("),
                    concat!("#[", "ignore"),
                    concat!("#[", "should_panic"),
                ];
                for banned in banned_list {
                    assert!(
                        !text.contains(banned),
                        "{}: contains {banned}",
                        path.display()
                    );
                }
            }
        }
    }

    #[test]
    fn protocol_md_documents_every_code_frame_and_op() {
        let spec = std::fs::read_to_string(root().join("PROTOCOL.md")).unwrap();
        for code in wisp_protocol::error::ErrorCode::ALL {
            let name = serde_json::to_value(code).unwrap();
            let name = format!("`{}`", name.as_str().unwrap());
            assert!(
                spec.contains(&name),
                "PROTOCOL.md does not document error code {name}"
            );
        }
        for t in wisp_protocol::message::KNOWN_TYPES {
            assert!(
                spec.contains(&t.to_uppercase()),
                "PROTOCOL.md does not document frame {t}"
            );
        }
        for op in wisp_protocol::ops::KNOWN_OPS {
            assert!(
                spec.contains(&format!("`{op}`")),
                "PROTOCOL.md does not document op {op}"
            );
        }
        for constant in [
            wisp_protocol::frame::MAX_JSON_LEN.to_string(),
            wisp_protocol::frame::MAX_DATA_LEN.to_string(),
            wisp_protocol::marker::MARKER_PREFIX.trim().to_owned(),
        ] {
            assert!(
                spec.contains(&constant),
                "PROTOCOL.md does not state {constant}"
            );
        }
    }

    #[test]
    fn architecture_md_names_every_crate() {
        let arch = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
        for dir in [
            "bench/",
            "protocol/",
            "micro-runner/",
            "transports/",
            "controller/",
            "golden/",
            "tests/",
            "xtask/",
            "fuzz/",
        ] {
            assert!(
                arch.contains(&format!("`{dir}`")),
                "ARCHITECTURE.md has no entry for {dir}"
            );
        }
    }
}
