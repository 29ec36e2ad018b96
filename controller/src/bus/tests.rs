//! The wire types carry a job there and back whole, and refuse what cannot travel.

use super::*;
use wisp_plan::Plan;

const PLAN: &str = r#"
[vars]
app = "demo"

[[task]]
name = "config"
op = "file.write"
path = "/etc/{{ app }}.conf"
content = "port = 8080\n"
mode = "0644"
notify = ["reload"]

[[task]]
name = "look"
op = "exec"
argv = ["ls", "-l", "/etc"]
env = { LANG = "C", DEPTH = "3" }
when = 'app == "demo"'
limits = { memory = "64M", timeout = "5s", ro = ["/etc"], seccomp = "strict" }

[[handler]]
name = "reload"
op = "exec"
shell = "true"
"#;

#[test]
fn a_plan_travels_as_its_tasks_and_arrives_whole() {
    let plan = Plan::parse(PLAN, std::path::Path::new("site.toml")).unwrap();
    let job = Job::Plan {
        plan: Arc::new(plan.clone()),
        options: ApplyOptions {
            check: true,
            diff: false,
            drift: false,
            facts_ttl: Some(Duration::from_secs(60)),
        },
        resume: None,
    };
    let text = serde_json::to_string(&work_of(&job).unwrap()).unwrap();
    // No local path, no Duration's {secs, nanos}, no clap struct: the shapes are ours.
    assert!(!text.contains("\"path\":\"site.toml\""), "{text}");
    assert!(!text.contains("nanos"), "{text}");
    assert!(text.contains("\"timeout_ms\":5000"), "{text}");
    let work: Work = serde_json::from_str(&text).unwrap();
    let Job::Plan {
        plan: back,
        options,
        ..
    } = job_of(work, Default::default()).unwrap()
    else {
        panic!("not a plan");
    };
    assert!(options.check && options.facts_ttl == Some(Duration::from_secs(60)));
    assert_eq!(back.hash, plan.hash);
    assert_eq!(back.vars, plan.vars);
    for (a, b) in back
        .tasks
        .iter()
        .chain(&back.handlers)
        .zip(plan.tasks.iter().chain(&plan.handlers))
    {
        assert_eq!(a.name, b.name);
        assert_eq!(a.args, b.args, "{}", a.name);
        assert_eq!(a.when, b.when);
        assert_eq!(a.line, b.line);
        assert_eq!(
            format!("{:?}", a.limits),
            format!("{:?}", b.limits),
            "{}",
            a.name
        );
    }
}

#[test]
fn a_job_that_reads_this_machine_does_not_travel() {
    let mut plan = Plan::parse(
        "[[task]]\nop = \"exec\"\nargv = [\"true\"]\n",
        std::path::Path::new("p.toml"),
    )
    .unwrap();
    plan.tasks[0].limits.seccomp = Some("filter-{arch}.json".into());
    let job = Job::Plan {
        plan: Arc::new(plan),
        options: ApplyOptions {
            check: false,
            diff: false,
            drift: false,
            facts_ttl: None,
        },
        resume: None,
    };
    let e = work_of(&job).unwrap_err();
    assert!(e.contains("p.toml:1: a seccomp file"), "{e}");
}
