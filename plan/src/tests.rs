//! Plans parsed, checked and rendered.

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
    assert_eq!(p.tasks.len(), 2);
    assert_eq!(p.tasks[0].args["mode"].as_str(), Some("0644"));
    assert_eq!(p.tasks[1].name, "exec (line 13)");
    assert!(p.needs_facts);
    assert_eq!(p.tasks[1].limits.memory, Some(64 << 20));
}

#[test]
fn templates_and_conditions() {
    let mut vars = BTreeMap::new();
    vars.insert("app".to_owned(), "demo".to_owned());
    let mut host = BTreeMap::new();
    host.insert("port".to_owned(), "81".to_owned());
    let facts: wisp_protocol::ops::Facts = serde_json::from_str(
        r#"{
        "os_id": "debian", "os_version": "13", "os_pretty": "", "kernel": "6.18",
        "arch": "x86_64", "hostname": "web1", "cpus": 2, "mem_total_kb": 1024,
        "caps": {
            "landlock": {"abi": 7, "status": "enabled"},
            "seccomp": {"filter": true, "already_filtered": false},
            "cgroup": {"mode": "hybrid", "writable": true, "detail": ""}
        },
        "init": "sysv", "pkg_manager": "apt"
    }"#,
    )
    .unwrap();
    let ctx = Context::for_host(&vars, "web1", &host, Some(&facts));
    let mut refs = Vec::new();
    assert_eq!(
        render(
            "{{app}}:{{ host.port }}@{{ host.name }}/{{ facts.cpus }}",
            &ctx,
            &mut refs
        )
        .unwrap(),
        "demo:81@web1/2"
    );
    assert!(condition("facts.os_id == \"debian\"", &ctx, &mut refs).unwrap());
    assert!(!condition("not app", &ctx, &mut refs).unwrap());
    assert!(condition("facts.os_id != \"alpine\"", &ctx, &mut refs).unwrap());
    assert!(render("{{ nope }}", &ctx, &mut refs).is_err());
    assert!(render("{{ app", &ctx, &mut refs).is_err());
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
