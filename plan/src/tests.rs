//! Plans parsed and checked.

use super::*;

fn parse(text: &str) -> Result<Plan, String> {
    Plan::parse(text, Path::new("plan.toml")).map_err(|e| e.to_string())
}

#[test]
fn a_plain_plan_parses() {
    let p = parse(
        r#"
[vars]
app = "demo"

[[task]]
name = "config"
op = "file.write"
path = "/etc/{{ app }}.conf"
content = "port = 8080\n"
mode = 0o644
notify = ["reload app"]

[[task]]
op = "exec"
shell = "echo {{ facts.os_id | quote }}"
when = 'facts.os_id == "debian"'
limits = { memory = "64M", timeout = "5s" }

[[handler]]
name = "reload app"
op = "exec"
argv = ["true"]
"#,
    )
    .unwrap();
    let tasks = p.all_tasks();
    assert_eq!(tasks.len(), 3);
    assert_eq!(tasks[0].args["mode"].as_str(), Some("0644"));
    assert_eq!(tasks[1].name, "exec (line 13)");
    assert!(p.needs_facts);
    assert_eq!(tasks[1].limits.memory, Some(64 << 20));
}

#[test]
fn a_content_file_changed_after_the_plan_was_read_is_refused() {
    let path = std::env::temp_dir().join(format!("wisp-file-at-{}", std::process::id()));
    std::fs::write(&path, "first").unwrap_or_default();
    let at = FileAt::read(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(at.len, 5);
    assert_eq!(at.load().unwrap_or_default(), b"first");
    std::fs::write(&path, "other").unwrap_or_default();
    let e = at.load().err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("changed since the plan was read"), "{e}");
    let _ = std::fs::remove_file(&path);
}
