//! Data-driven checks of the plan engine: each file under `tests/cases/` holds a plan, a
//! host (its name, inventory vars and facts) and the lines `Plan::preview` must give for it:
//! each task's loop items, conditions and rendered args, without running anything. A case
//! that expects an error holds `error = "..."`, a part of the message.

use std::path::Path;
use std::sync::Arc;

use wisp_plan::{Compiled, Data, DataMap, HostInfo, Plan};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    plan: String,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    vars: toml::Table,
    #[serde(default)]
    facts: toml::Table,
    #[serde(default)]
    extra_vars: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    skip_tags: Vec<String>,
    #[serde(default)]
    start_at: Option<String>,
    #[serde(default)]
    expected: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

fn map(t: &toml::Table) -> DataMap {
    match Data::from_toml(&toml::Value::Table(t.clone())) {
        Data::Map(m) => m,
        _ => DataMap::new(),
    }
}

/// What a case gives: the preview's lines, or the error.
fn run(case: &Case, dir: &Path) -> Result<String, String> {
    let extra = wisp_plan::extra_vars(&case.extra_vars)?;
    let mut plan =
        Plan::parse_with(&case.plan, &dir.join("plan.toml"), extra).map_err(|e| e.to_string())?;
    plan.select(&wisp_plan::Selection {
        tags: case.tags.clone(),
        skip_tags: case.skip_tags.clone(),
        start_at: case.start_at.clone(),
    })?;
    let vars = map(&case.vars);
    let names: Vec<String> = vars.keys().cloned().collect();
    plan.verify(&names).map_err(|e| e.to_string())?;
    let compiled = Compiled::new(&plan).map_err(|e| e.to_string())?;
    let facts = (!case.facts.is_empty()).then(|| Data::Map(map(&case.facts)));
    let scope = compiled.host_scope(
        &plan,
        HostInfo {
            name: case.host.as_deref().unwrap_or("web1"),
            vars: &vars,
            facts: facts.as_ref(),
            check: false,
            diff: false,
        },
    );
    Ok(plan
        .preview(&compiled.engine, &Arc::clone(&scope))
        .join("\n")
        + "\n")
}

#[test]
fn every_case_previews_as_expected() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "cases missing in {}", dir.display());
    let mut failed = Vec::new();
    for file in &files {
        let case: Case = toml::from_str(&std::fs::read_to_string(file).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let got = run(&case, &dir);
        let ok = match (&case.expected, &case.error, &got) {
            (Some(want), None, Ok(got)) => want == got,
            (None, Some(want), Err(got)) => got.contains(want.as_str()),
            _ => false,
        };
        if !ok {
            failed.push(format!(
                "{}:\n  expected: {:?}\n  error:    {:?}\n  got:      {got:?}",
                file.display(),
                case.expected,
                case.error
            ));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} cases:\n{}",
        failed.len(),
        files.len(),
        failed.join("\n")
    );
}
