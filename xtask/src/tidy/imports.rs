//! Tidy rules on names: how modules and crates may name each other.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::{code, dependencies, library_crates, root, sources};

/// The module a source file is (`cli/run.rs` → `cli::run`, `bus/worker/mod.rs` →
/// `bus::worker`, the crate root → empty); `None` for `src/bin/`.
fn module_path(src: &Path, file: &Path) -> Option<Vec<String>> {
    let rel = file.strip_prefix(src).ok()?;
    if rel.starts_with("bin") {
        return None;
    }
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let last = parts.pop()?;
    let stem = last.strip_suffix(".rs")?;
    if !matches!(stem, "mod" | "lib" | "main") || !parts.is_empty() && stem != "mod" {
        parts.push(stem.to_owned());
    }
    Some(parts)
}

/// A file's code without comments and without its unit tests (an inline `mod tests`,
/// whose `super` is the file's own module, not its parent).
fn code_of(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or("");
    text.lines().map(code).collect::<Vec<_>>().join("\n")
}

/// The paths a piece of code names from `crate`, `super` or `self`, each as its base
/// (`crate`, `super`, `super::super`, `self`) and the names after it; a group
/// (`super::{a, b::c}`) gives one path per member.
fn paths_named(code: &str) -> Vec<(String, Vec<String>)> {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut out = Vec::new();
    for (i, _) in code.match_indices("::") {
        // Where the path that this `::` continues begins.
        let head_start = code[..i]
            .rfind(|c: char| !(ident(c) || c == ':'))
            .map_or(0, |p| p + 1);
        if head_start
            != code[..i]
                .rfind(|c: char| !ident(c) && c != ':')
                .map_or(0, |p| p + 1)
        {
            continue;
        }
        let head = &code[head_start..i];
        if !matches!(head.split("::").next(), Some("crate" | "super" | "self")) {
            continue;
        }
        // Only the `::` right after the base's last `super`/`crate`/`self`.
        let segments: Vec<&str> = head.split("::").collect();
        if segments
            .iter()
            .any(|s| !matches!(*s, "crate" | "super" | "self"))
        {
            continue;
        }
        let base = head.to_owned();
        let rest = &code[i + 2..];
        // A `super::super::x` is read once, from its last `::`.
        if ["super::", "self::", "crate::"]
            .iter()
            .any(|b| rest.starts_with(b))
        {
            continue;
        }
        let members: Vec<String> = match rest.strip_prefix('{') {
            Some(group) => {
                let mut depth = 0;
                let mut end = group.len();
                for (k, c) in group.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => {
                            end = k;
                            break;
                        }
                        '}' => depth -= 1,
                        _ => {}
                    }
                }
                group[..end]
                    .split(',')
                    .map(|m| m.trim().to_owned())
                    .collect()
            }
            None => vec![
                rest.split(|c: char| !(ident(c) || c == ':'))
                    .next()
                    .unwrap_or("")
                    .to_owned(),
            ],
        };
        for m in members {
            let names: Vec<String> = m
                .split("::")
                .map(|n| n.trim().to_owned())
                .filter(|n| !n.is_empty() && n.chars().all(ident))
                .collect();
            if !names.is_empty() {
                out.push((base.clone(), names));
            }
        }
    }
    out
}

/// Every reference between a crate's modules, through `crate::`, `super::` and `self::`
/// paths: (from module, to module), the target being the longest module the path names.
fn module_references(crate_dir: &str) -> Vec<(Vec<String>, Vec<String>)> {
    let src = root().join(crate_dir).join("src");
    let files = sources(crate_dir);
    let modules: BTreeSet<Vec<String>> = files
        .iter()
        .filter_map(|(p, _)| module_path(&src, p))
        .collect();
    let mut edges = Vec::new();
    for (path, text) in &files {
        let Some(from) = module_path(&src, path) else {
            continue;
        };
        for (base, names) in paths_named(&code_of(text)) {
            // `crate` is the root; `self` and `super` start from this file's module.
            let mut target: Vec<String> = if base.starts_with("crate") {
                Vec::new()
            } else {
                from.clone()
            };
            for _ in base.split("::").filter(|p| *p == "super") {
                target.pop();
            }
            for n in names {
                let mut longer = target.clone();
                longer.push(n);
                if modules.contains(&longer) {
                    target = longer;
                } else {
                    break;
                }
            }
            if target != from {
                edges.push((from.clone(), target));
            }
        }
    }
    edges
}

/// For each module, how its child modules name each other: the reference between two
/// modules, seen from the children of their nearest common parent (`bus::worker::claim`
/// naming `bus::events` is `worker` naming `events` inside `bus`). A module naming its own
/// ancestor or descendant is not an edge.
fn sibling_graphs(
    edges: &[(Vec<String>, Vec<String>)],
) -> BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> {
    let mut graphs: BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (from, to) in edges {
        let common = from.iter().zip(to).take_while(|(a, b)| a == b).count();
        if common == from.len() || common == to.len() {
            continue;
        }
        let graph = graphs.entry(from[..common].to_vec()).or_default();
        graph
            .entry(from[common].clone())
            .or_default()
            .insert(to[common].clone());
        graph.entry(to[common].clone()).or_default();
    }
    graphs
}

/// The top-level modules of a crate and the ones each names.
fn module_graph(crate_dir: &str) -> BTreeMap<String, BTreeSet<String>> {
    sibling_graphs(&module_references(crate_dir))
        .remove(&Vec::new())
        .unwrap_or_default()
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
fn the_reference_finder_follows_super_and_self() {
    let found = paths_named(
        "use super::{events::Events, worker::log};\nsuper::super::jobs::run(); self::a::b; crate::x",
    );
    let found: Vec<String> = found
        .iter()
        .map(|(b, n)| format!("{b}::{}", n.join("::")))
        .collect();
    assert_eq!(
        found,
        [
            "super::events::Events",
            "super::worker::log",
            "super::super::jobs::run",
            "self::a::b",
            "crate::x"
        ]
    );
    let edges = vec![
        (
            vec!["bus".into(), "worker".into(), "claim".into()],
            vec!["bus".into(), "events".into()],
        ),
        (
            vec!["bus".into(), "events".into()],
            vec!["bus".into(), "worker".into()],
        ),
        (
            vec!["bus".into(), "worker".into(), "claim".into()],
            vec!["bus".into(), "worker".into()],
        ),
    ];
    let graphs = sibling_graphs(&edges);
    let bus = &graphs[&vec!["bus".to_owned()]];
    assert_eq!(
        find_cycle(bus),
        Some(vec!["events".into(), "worker".into(), "events".into()])
    );
    assert_eq!(
        graphs.len(),
        1,
        "a child naming its parent is no edge: {graphs:?}"
    );
}

#[test]
fn no_import_circle_between_modules() {
    for dir in library_crates() {
        let graphs = sibling_graphs(&module_references(&dir));
        // The scan itself must work: the two crates with the most modules have edges.
        assert!(
            !matches!(dir.as_str(), "controller" | "micro-runner")
                || graphs.get(&Vec::new()).is_some_and(|g| g.len() > 2),
            "{dir}: no modules found: {graphs:?}"
        );
        for (parent, graph) in &graphs {
            if let Some(cycle) = find_cycle(graph) {
                panic!(
                    "{dir}: modules of {} name each other in a circle (through crate::, \
                     super:: or self:: paths): {}. Move what they share into a module \
                     both can name",
                    if parent.is_empty() {
                        "the crate root".to_owned()
                    } else {
                        parent.join("::")
                    },
                    cycle.join(" -> ")
                );
            }
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
    for dir in library_crates().iter().filter(|c| *c != "transports") {
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
    for dir in library_crates() {
        let code: String = sources(&dir).into_iter().map(|(_, t)| t).collect();
        for dep in dependencies(&dir) {
            let name = dep.replace('-', "_");
            assert!(
                code.contains(&format!("{name}::")) || code.contains(&format!("use {name}")),
                "{dir}/Cargo.toml: {dep} is never used in {dir}/src; remove it"
            );
        }
    }
}
