//! Templates in the shapes real roles use, rendered by wisp and compared byte for byte with
//! what ansible-core 2.19 renders for them: each case under `tests/templates/` has a
//! `template.j2`, its `vars.yml`, and the `expected` text ansible-core wrote
//! (`tests/templates/generate.py` writes it, and with `--check` says whether it still would).

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::path::Path;
use std::sync::Arc;

use wisp_plan::scope::{HostScope, Layer};
use wisp_plan::{Data, Engine};

#[test]
fn wisp_renders_what_ansible_renders() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/templates");
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(cases.len() >= 10, "cases missing in {}", dir.display());
    let mut differ = Vec::new();
    for case in &cases {
        let vars = match Data::parse_yaml(&std::fs::read_to_string(case.join("vars.yml")).unwrap())
            .unwrap()
        {
            Data::Map(m) => m,
            other => panic!("{}: {other:?}", case.display()),
        };
        let source = std::fs::read_to_string(case.join("template.j2")).unwrap();
        let expected = std::fs::read_to_string(case.join("expected")).unwrap();
        let mut engine = Engine::new(Default::default());
        engine.add(&source).unwrap();
        let engine = Arc::new(engine);
        let scope = HostScope::new(
            Arc::clone(&engine),
            vec![Arc::new(Layer::new(&vars))],
            Arc::new(Layer::default()),
            Default::default(),
        );
        let frame = scope.frame(Arc::new(Layer::default()), Arc::new(Layer::default()));
        let got = engine
            .render(&source, &frame)
            .unwrap_or_else(|e| format!("ERROR: {e}"));
        if std::env::var_os("WISP_TEMPLATES_OUT").is_some() {
            std::fs::write(case.join("got"), &got).unwrap();
        }
        if got != expected {
            differ.push(format!(
                "{}:\n--- ansible-core\n{expected}\n--- wisp\n{got}",
                case.display()
            ));
        }
    }
    assert!(
        differ.is_empty(),
        "{} of {} differ:\n{}",
        differ.len(),
        cases.len(),
        differ.join("\n")
    );
}

/// The expected texts are still what ansible-core renders: `generate.py --check` under the
/// python of a venv with ansible-core (`WISP_ANSIBLE_PYTHON`; `cargo xtask test` makes one).
#[test]
fn the_expected_texts_are_what_ansible_core_renders() {
    let Some(python) = std::env::var_os("WISP_ANSIBLE_PYTHON") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "comparing with ansible-core needs WISP_ANSIBLE_PYTHON, and CI must run it (cargo xtask test sets it)"
        );
        println!(
            "not run: WISP_ANSIBLE_PYTHON names no python with ansible-core; `cargo xtask test` makes one"
        );
        return;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/templates/generate.py");
    let out = std::process::Command::new(python)
        .arg(&script)
        .arg("--check")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
