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

[[task]]
name = "guarded"
tags = ["web"]
vars = { site = { name = "a", ports = [80, 443] } }

[[task.block]]
name = "each port"
op = "exec"
argv = ["echo", "{{ item }}"]
loop = "{{ site.ports }}"
loop_control = { label = "{{ item }}" }
register = "echoed"
changed_when = false

[[task.rescue]]
op = "debug"
msg = "rescued {{ echoed.results | length }}"

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
        compiled: Arc::new(Compiled::new(&plan).unwrap()),
        once: Default::default(),
        peers: Default::default(),
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
    // Every task, block, loop and condition arrives as it left.
    let json = |v: &dyn erased::Json| v.json();
    assert_eq!(json(&back.tasks), json(&plan.tasks));
    assert_eq!(json(&back.handlers), json(&plan.handlers));
    assert_eq!(back.all_tasks().len(), 5);
}

#[test]
fn a_job_that_reads_this_machine_does_not_travel() {
    let mut plan = Plan::parse(
        "[[task]]\nop = \"exec\"\nargv = [\"true\"]\n",
        std::path::Path::new("p.toml"),
    )
    .unwrap();
    plan.each_task_mut(&mut |t| t.limits.seccomp = Some("filter-{arch}.json".into()));
    let job = Job::Plan {
        compiled: Arc::new(Compiled::new(&plan).unwrap()),
        once: Default::default(),
        peers: Default::default(),
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

/// Values compared by their JSON.
mod erased {
    pub(super) trait Json {
        fn json(&self) -> String;
    }

    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> String {
            serde_json::to_string(self).unwrap()
        }
    }
}
