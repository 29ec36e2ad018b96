//! Plan rendering on the controller: a 100-task plan of loops, conditions and templates
//! rendered for 1,000 hosts (each with its own inventory vars and facts), every host's scope
//! kept alive at once as a run at `--forks 1000` keeps them. Prints the controller CPU it took
//! and the peak RSS it added per host, against the targets (2 s, 100 KB), and the same plan
//! with no templates at all (its baseline: what reading and walking the plan costs).

use std::sync::Arc;
use std::time::Duration;

use wisp_plan::{Compiled, Data, DataMap, HostInfo, Plan};

const HOSTS: usize = 1000;
const TASKS: usize = 100;

/// The plan: every fourth task loops over a list of maps, every task has a condition on a
/// fact, every other writes a templated file with a for-loop, an if and filters.
fn plan_text(templated: bool) -> String {
    let mut t = String::from(
        "[vars]\nbase = \"/srv/{{ app }}\"\napp = \"shop\"\n\
         vhosts = [ { name = \"a\", port = 80 }, { name = \"b\", port = 8080, tls = true }, { name = \"c\", port = 81 } ]\n\
         opts = { gzip = \"on\", sendfile = \"on\" }\n\n",
    );
    for i in 0..TASKS {
        if !templated {
            t.push_str(&format!(
                "[[task]]\nname = \"t{i}\"\nop = \"file.write\"\npath = \"/srv/shop/{i}.conf\"\ncontent = \"static\\n\"\n\n"
            ));
            continue;
        }
        let looped = if i % 4 == 0 {
            "loop = \"{{ vhosts }}\"\nloop_control = { label = \"{{ item.name }}\" }\n"
        } else {
            ""
        };
        let body = if i % 2 == 0 {
            "content = \"\"\"\n# {{ inventory_hostname }} ({{ facts.os_pretty }})\n{% for k, v in opts | dictsort %}\n{{ k }} {{ v }};\n{% endfor %}\n{% for v in vhosts %}\nserver {{ v.name }}:{{ v.port }}{{ ' ssl' if v.tls | default(false) else '' }} region={{ region | upper }};\n{% endfor %}\n\"\"\"\n"
        } else {
            "content = \"workers={{ facts.cpus * 2 }} {{ base }}\\n\"\n"
        };
        t.push_str(&format!(
            "[[task]]\nname = \"t{i}\"\nop = \"file.write\"\npath = \"{{{{ base }}}}/{i}{{{{ '-' ~ item.name if item is defined else '' }}}}.conf\"\nmode = \"0644\"\n\
             when = \"facts.os_id == 'debian' or facts.os_id == 'ubuntu'\"\n{looped}{body}\n"
        ));
    }
    t
}

/// User plus system CPU of this process so far.
fn cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// A memory figure of this process from `/proc/self/status` (`VmHWM:` the peak RSS,
/// `VmRSS:` the RSS now), in KiB.
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Renders the plan for every host: (CPU, peak RSS added, RSS held with every host's scope
/// alive, lines rendered). The peak is this process's: only the first call's is its own.
fn render_all(templated: bool) -> (Duration, u64, u64, usize) {
    let dir = std::env::temp_dir();
    let plan = Plan::parse(&plan_text(templated), &dir.join("bench-render.toml")).unwrap();
    let (cpu0, peak0, rss0) = (cpu(), status_kib("VmHWM:"), status_kib("VmRSS:"));
    let compiled = Compiled::new(&plan).unwrap();
    let facts = Data::from_json(&serde_json::json!({
        "os_id": "debian", "os_pretty": "Debian GNU/Linux 13", "cpus": 4, "hostname": "h"
    }));
    let mut scopes = Vec::with_capacity(HOSTS);
    let mut lines = 0;
    for h in 0..HOSTS {
        let mut vars = DataMap::new();
        vars.insert("region".into(), Data::Str(format!("eu-{}", h % 7)));
        vars.insert("rack".into(), Data::Int(i64::try_from(h).unwrap_or(0)));
        let name = format!("web{h:04}");
        let scope = compiled.host_scope(
            &plan,
            HostInfo {
                name: &name,
                vars: &vars,
                facts: Some(&facts),
                check: false,
                diff: false,
            },
        );
        lines += plan.preview(&compiled.engine, &Arc::clone(&scope)).len();
        scopes.push(scope);
    }
    let took = cpu() - cpu0;
    let peak = status_kib("VmHWM:").saturating_sub(peak0);
    let held = status_kib("VmRSS:").saturating_sub(rss0);
    drop(scopes);
    (took, peak, held, lines)
}

pub(crate) fn bench() {
    let (cpu, peak, held, lines) = render_all(true);
    let (base_cpu, _, base_held, base_lines) = render_all(false);
    #[allow(clippy::cast_precision_loss)] // figures for a person to read
    let per_host = |k: u64| k as f64 / HOSTS as f64;
    println!(
        "plan render, {TASKS} tasks x {HOSTS} hosts, templated: {cpu:.3?} CPU ({lines} task lines), \
         peak +{:.1} KiB/host, held {:.1} KiB/host; target 2 s: {:.2}x of it; 100 KB/host: {:.2}x of it",
        per_host(peak),
        per_host(held),
        cpu.as_secs_f64() / 2.0,
        per_host(peak) * 1024.0 / 100_000.0,
    );
    println!(
        "plan render, the same plan without templates (baseline): {base_cpu:.3?} CPU ({base_lines} task lines), \
         held {:.1} KiB/host; templated/baseline CPU {:.1}x",
        per_host(base_held),
        cpu.as_secs_f64() / base_cpu.as_secs_f64().max(0.001),
    );
}
