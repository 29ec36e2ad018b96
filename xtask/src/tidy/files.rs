//! Tidy rules on files: what each must say and must not hold.

use super::{code, crates, dependencies, library_crates, root, rust_files, sources};

#[test]
fn every_source_file_says_what_it_owns() {
    for dir in crates() {
        for (path, text) in sources(&dir) {
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
    for dir in library_crates().iter().filter(|c| *c != "transports") {
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

/// The workspace's own crates in layers, lowest first: a crate may depend only on crates of
/// a lower layer. Every library crate is in one.
const LAYERS: &[&[&str]] = &[
    &["protocol", "yaml"],
    &["micro-runner", "transports"],
    &["secrets"],
    &["plan", "inventory", "store", "conformance", "runners"],
    &["events"],
    &["bus"],
    &["controller"],
];

#[test]
fn crates_depend_only_on_crates_below_them() {
    let layer = |dir: &str| LAYERS.iter().position(|l| l.contains(&dir));
    for dir in library_crates() {
        let own = layer(&dir).unwrap_or_else(|| panic!("{dir}: in no layer of tidy's LAYERS"));
        for dep in dependencies(&dir) {
            let Some(dep_dir) = dep.strip_prefix("wisp-") else {
                continue;
            };
            let below = layer(dep_dir).is_some_and(|l| l < own);
            assert!(
                below,
                "{dir}/Cargo.toml depends on {dep}, which is not below it (layers, lowest \
                 first: {LAYERS:?})"
            );
        }
    }
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

/// The names a crate root defines at its top level (functions, constants, statics,
/// types), which are not modules.
fn root_items(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in text.lines() {
        let line = line
            .trim_start_matches("pub(crate) ")
            .trim_start_matches("pub ");
        for kind in ["fn ", "const ", "static ", "struct ", "enum ", "type "] {
            if let Some(rest) = line.strip_prefix(kind) {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    names.push(name);
                }
            }
        }
    }
    names
}

#[test]
fn no_runner_module_names_main_rs() {
    // main.rs is the binary's edge (arguments, start, shutdown): what modules share lives
    // in a module of its own (`diag`), so main.rs stays a root nothing depends on.
    let main = std::fs::read_to_string(root().join("micro-runner/src/main.rs")).unwrap();
    let items = root_items(&main);
    assert!(items.iter().any(|i| i == "main"), "{items:?}");
    for (path, text) in sources("micro-runner") {
        if path.ends_with("main.rs") {
            continue;
        }
        for (i, line) in text.lines().enumerate() {
            let code = code(line);
            for item in &items {
                let named = format!("crate::{item}");
                let at = code.find(&named);
                let whole = at.is_some_and(|a| {
                    !code[a + named.len()..]
                        .starts_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':')
                        || code[a + named.len()..].starts_with("::<")
                });
                assert!(
                    !whole,
                    "{}:{}: names {named} from main.rs; move it into a module",
                    path.display(),
                    i + 1
                );
            }
        }
    }
}

#[test]
fn no_placeholders_or_ignored_tests() {
    for dir in crates() {
        let mut files = Vec::new();
        rust_files(&root().join(&dir), &mut files);
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
    let dirs = crates()
        .into_iter()
        .map(|c| format!("{c}/"))
        .chain(["golden/".to_owned(), "fuzz/".to_owned()]);
    for dir in dirs {
        assert!(
            arch.contains(&format!("`{dir}`")),
            "ARCHITECTURE.md has no entry for {dir}"
        );
    }
}

#[test]
fn no_source_file_is_over_500_lines() {
    for dir in crates() {
        let mut files = Vec::new();
        rust_files(&root().join(&dir), &mut files);
        for path in files
            .into_iter()
            .filter(|p| !p.components().any(|c| c.as_os_str() == "target"))
        {
            let text = std::fs::read_to_string(&path).unwrap();
            let lines = text.lines().count();
            assert!(
                lines <= 500,
                "{}: {lines} lines; split it by concern (500 at most)",
                path.display()
            );
        }
    }
}
