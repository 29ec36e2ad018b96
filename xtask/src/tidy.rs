//! Tidy: invariants of the repository checked by plain `cargo test` (see ARCHITECTURE.md).

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
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

    /// The top-level module a source file belongs to (`cli/run.rs` → `cli`); `None` for the
    /// crate root.
    fn top_module(src: &Path, file: &Path) -> Option<String> {
        let rel = file.strip_prefix(src).ok()?;
        let first = rel.components().next()?.as_os_str().to_str()?;
        let name = first.strip_suffix(".rs").unwrap_or(first);
        (!matches!(name, "lib" | "main") && !rel.starts_with("bin")).then(|| name.to_owned())
    }

    /// The code of a line, without its `//` comment.
    fn code(line: &str) -> &str {
        line.split("//").next().unwrap_or("")
    }

    /// For each top-level module of a crate, the other top-level modules it names through
    /// `crate::` paths (`use crate::a::b`, `crate::a::f()`, `use crate::{a, b}`).
    fn module_graph(crate_dir: &str) -> BTreeMap<String, BTreeSet<String>> {
        let src = root().join(crate_dir).join("src");
        let files = sources(crate_dir);
        let modules: BTreeSet<String> = files
            .iter()
            .filter_map(|(p, _)| top_module(&src, p))
            .collect();
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (path, text) in &files {
            let Some(from) = top_module(&src, path) else {
                continue;
            };
            let edges = graph.entry(from.clone()).or_default();
            let code: String = text.lines().map(code).collect::<Vec<_>>().join("\n");
            for (i, _) in code.match_indices("crate::") {
                let rest = &code[i + "crate::".len()..];
                let names: Vec<&str> = match rest.strip_prefix('{') {
                    Some(group) => group
                        .split('}')
                        .next()
                        .unwrap_or("")
                        .split(',')
                        .map(|n| n.trim().split("::").next().unwrap_or(""))
                        .collect(),
                    None => vec![
                        rest.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                            .next()
                            .unwrap_or(""),
                    ],
                };
                for name in names {
                    if modules.contains(name) && name != from {
                        edges.insert(name.to_owned());
                    }
                }
            }
        }
        graph
    }

    /// The first import circle in `graph`, as a path that starts and ends at the same module.
    fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
        fn visit(
            node: &str,
            graph: &BTreeMap<String, BTreeSet<String>>,
            path: &mut Vec<String>,
            done: &mut BTreeSet<String>,
        ) -> Option<Vec<String>> {
            if let Some(at) = path.iter().position(|p| p == node) {
                let mut cycle = path[at..].to_vec();
                cycle.push(node.to_owned());
                return Some(cycle);
            }
            if done.contains(node) {
                return None;
            }
            path.push(node.to_owned());
            for next in graph.get(node).into_iter().flatten() {
                if let Some(c) = visit(next, graph, path, done) {
                    return Some(c);
                }
            }
            path.pop();
            done.insert(node.to_owned());
            None
        }
        let mut done = BTreeSet::new();
        graph
            .keys()
            .find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
    }

    #[test]
    fn the_cycle_finder_finds_cycles() {
        let graph = |edges: &[(&str, &str)]| {
            let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for (a, b) in edges {
                g.entry((*a).into()).or_default().insert((*b).into());
                g.entry((*b).into()).or_default();
            }
            g
        };
        assert_eq!(
            find_cycle(&graph(&[("a", "b"), ("b", "c"), ("a", "c")])),
            None
        );
        assert_eq!(
            find_cycle(&graph(&[("a", "b"), ("b", "c"), ("c", "a")])),
            Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
        );
    }

    #[test]
    fn no_import_circle_between_modules() {
        for dir in ["controller", "micro-runner", "transports", "protocol"] {
            let graph = module_graph(dir);
            assert!(graph.len() > 2, "{dir}: no modules found: {graph:?}");
            if let Some(cycle) = find_cycle(&graph) {
                panic!(
                    "{dir}: modules import each other in a circle: {}. Move what they share \
                     into a lower module both can import",
                    cycle.join(" -> ")
                );
            }
        }
    }

    /// The controller's layers, top first: a module may import only modules below its own
    /// layer; every module not listed is below `session`.
    const CONTROLLER_LAYERS: [&str; 5] = ["cli", "bus", "jobs", "fleet", "session"];

    #[test]
    fn controller_layers_point_one_way() {
        let rank = |m: &str| {
            CONTROLLER_LAYERS
                .iter()
                .position(|l| *l == m)
                .map_or(CONTROLLER_LAYERS.len(), |p| p)
        };
        let graph = module_graph("controller");
        for l in CONTROLLER_LAYERS {
            assert!(graph.contains_key(l), "no controller module {l}");
        }
        for (from, tos) in &graph {
            for to in tos
                .iter()
                .filter(|to| rank(from).min(rank(to)) < CONTROLLER_LAYERS.len())
            {
                assert!(
                    rank(from) < rank(to),
                    "controller: {from} imports {to}, a module of its own layer or above \
                     (layers, top first: {}, then the rest)",
                    CONTROLLER_LAYERS.join(" -> ")
                );
            }
        }
    }

    #[test]
    fn only_transports_name_ssh() {
        const SSH_NAMES: &[&str] = &[
            "russh",
            "ssh::",
            "transports::ssh",
            "SshTarget",
            "SshOptions",
        ];
        for dir in ["protocol", "micro-runner", "controller"] {
            for (path, text) in sources(dir) {
                for (i, line) in text.lines().enumerate() {
                    let code = code(line);
                    assert!(
                        !SSH_NAMES.iter().any(|n| code.contains(n)),
                        "{}:{}: SSH named outside transports (go through wisp_transports::remote): {}",
                        path.display(),
                        i + 1,
                        line.trim()
                    );
                }
            }
        }
    }

    #[test]
    fn every_dependency_is_used() {
        for dir in ["protocol", "micro-runner", "transports", "controller"] {
            let code: String = sources(dir).into_iter().map(|(_, t)| t).collect();
            for dep in dependencies(dir) {
                let name = dep.replace('-', "_");
                assert!(
                    code.contains(&format!("{name}::")) || code.contains(&format!("use {name}")),
                    "{dir}/Cargo.toml: {dep} is never used in {dir}/src; remove it"
                );
            }
        }
    }

    #[test]
    fn no_source_file_is_over_500_lines() {
        for dir in ["controller", "micro-runner"] {
            for (path, text) in sources(dir) {
                let lines = text.lines().count();
                assert!(
                    lines <= 500,
                    "{}: {lines} lines; split it by concern (500 at most)",
                    path.display()
                );
            }
        }
    }
}
