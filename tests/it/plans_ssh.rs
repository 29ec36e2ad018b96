//! A role-shaped plan on 10 real sshd hosts: an nginx-like web role in the usual layout
//! (`roles/web/`: tasks, handlers, defaults, per-OS vars, templates) with a package step, a
//! config templated with loops over vhosts, a validate step, a service and its handler, and
//! tags. Each host works in a private prefix of its own (they share this machine's disk).
//! `--check --diff` first says what would change; the first run changes exactly that; the
//! second changes nothing; `--tags config` runs only the config tasks.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed unwrap is a failed test

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Output;

use wisp_tests::sshd::Fleet;
use wisp_tests::{root_or_explain, runner_path};

const HOSTS: usize = 10;

fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// The role, written the way public roles are: defaults, per-OS vars chosen by a fact, a
/// package step, a validated template, a service, a handler, tags.
fn write_role(dir: &Path) {
    write(
        dir,
        "roles/web/defaults/main.yml",
        "web_port: 80\nweb_vhosts: []\nweb_workers: auto\n",
    );
    write(
        dir,
        "roles/web/vars/main.toml",
        r#"web_os = { debian = { user = "www-data", conf = "sites-enabled" }, rhel = { user = "nginx", conf = "conf.d" } }
web_cfg = "{{ web_os[facts.os_id] | default(web_os['debian']) }}"
"#,
    );
    write(
        dir,
        "roles/web/tasks/main.toml",
        r#"[[task]]
name = "web package"
op = "exec"
shell = "mkdir -p {{ prefix }}/pkg && echo installed > {{ prefix }}/pkg/web"
creates = "{{ prefix }}/pkg/web"
tags = ["packages"]

[[task]]
name = "config dir"
op = "dir.ensure"
path = "{{ prefix }}/etc/{{ web_cfg.conf }}"
make_parents = true
tags = ["config"]

[[task]]
name = "main config"
op = "template"
src = "web.conf.j2"
dest = "{{ prefix }}/etc/web.conf"
mode = "0644"
notify = "restart web"
tags = ["config"]

[[task]]
name = "vhost"
op = "template"
src = "vhost.j2"
dest = "{{ prefix }}/etc/{{ web_cfg.conf }}/{{ item.name }}.conf"
loop = "{{ web_vhosts }}"
loop_control = { label = "{{ item.name }}" }
notify = "restart web"
tags = ["config"]

[[task]]
name = "validate"
op = "exec"
shell = "grep -q '^user ' {{ prefix }}/etc/web.conf && test $(ls {{ prefix }}/etc/{{ web_cfg.conf }} | wc -l) -eq {{ web_vhosts | length }}"
register = "validated"
changed_when = false
check_mode = false
failed_when = "validated.rc != 0 and not ansible_check_mode"
tags = ["config"]

[[task]]
name = "web running"
op = "service.start"
args = { name = "{{ service }}" }
tags = ["service"]
"#,
    );
    write(
        dir,
        "roles/web/handlers/main.toml",
        "[[handler]]\nname = \"restart web\"\nop = \"service.restart\"\nargs = { name = \"{{ service }}\" }\n",
    );
    write(
        dir,
        "roles/web/templates/web.conf.j2",
        "# {{ ansible_managed | default('managed by wisp') }}\nuser {{ web_cfg.user }};\nworker_processes {{ web_workers }};\n{% include 'events.j2' %}\n",
    );
    write(
        dir,
        "roles/web/templates/events.j2",
        "events {\n    worker_connections {{ (web_port | int) * 8 }};\n}\n",
    );
    write(
        dir,
        "roles/web/templates/vhost.j2",
        "server {\n    listen {{ item.port | default(web_port) }}{{ ' ssl' if item.tls | default(false) }};\n    server_name {{ ([item.name] + item.aliases | default([])) | join(' ') }};\n{% for loc in item.locations | default([]) %}\n    location {{ loc.path }} {\n        {{ loc.rule }};\n    }\n{% endfor %}\n}\n",
    );
}

fn apply(fleet: &Fleet, dir: &Path, extra: &[&str]) -> (Output, String) {
    let out = wisp_tests::wisp_command!(dir)
        .arg("apply")
        .arg(dir.join("site.toml"))
        .arg("all")
        .arg("-i")
        .arg(dir.join("inventory.ini"))
        .args(fleet.root_options())
        .args(extra)
        .env("WISP_RUNNER", runner_path())
        .env_remove("SSH_AUTH_SOCK")
        .current_dir(dir)
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out, said)
}

/// The (host, task, item) of each `changed` line.
fn changed(said: &str) -> BTreeSet<String> {
    said.lines()
        .filter_map(|l| {
            let (host, rest) = l.split_once(" | ")?;
            let rest = rest.strip_prefix("changed  ")?;
            let task = rest.split(" (").take(2).collect::<Vec<_>>().join(" (");
            let task = if rest.contains("(item=") {
                task
            } else {
                rest.split(" (").next()?.to_owned()
            };
            Some(format!("{} {task}", host.trim()))
        })
        .collect()
}

#[test]
fn a_role_shaped_plan_converges_on_ten_hosts_and_check_mode_predicts_it() {
    if !root_or_explain("installing init scripts for the hosts' services") {
        return;
    }
    let fleet = Fleet::start(HOSTS);
    let dir = fleet.dir.0.join("site");
    std::fs::create_dir_all(&dir).unwrap();
    write_role(&dir);
    let services: Vec<String> = (1..=HOSTS)
        .map(|i| format!("wisp-web{i:02}-{}", std::process::id()))
        .collect();
    let _cleanup = super::service::Cleanup(services.clone());
    let mut inventory = String::from("[web]\n");
    for (i, h) in fleet.hosts.iter().enumerate() {
        let name = format!("web{:02}", i + 1);
        let prefix = dir.join("hosts").join(&name);
        std::fs::create_dir_all(&prefix).unwrap();
        super::service::install_script(&services[i], &prefix.join("service.log"), false);
        inventory.push_str(&format!(
            "{name} ansible_host={} ansible_port={} prefix={} service={}\n",
            h.addr,
            h.port,
            prefix.display(),
            services[i]
        ));
    }
    std::fs::write(dir.join("inventory.ini"), inventory).unwrap();
    write(
        &dir,
        "site.toml",
        r#"[vars]
web_port = 8080
web_vhosts = [
  { name = "shop", aliases = ["www.shop"], locations = [ { path = "/", rule = "try_files $uri =404" }, { path = "/api", rule = "proxy_pass http://127.0.0.1:9000" } ] },
  { name = "blog", port = 8443, tls = true },
]

[[task]]
role = "web"

[[task]]
name = "announce"
op = "exec"
shell = "echo {{ inventory_hostname }} >> {{ playbook_dir }}/announced"
run_once = true
changed_when = false
tags = ["service"]

[[task]]
name = "from here"
op = "exec"
shell = "echo $HOME > {{ playbook_dir }}/where-{{ inventory_hostname }}"
delegate_to = "{{ 'localhost' if inventory_hostname != 'web10' else inventory_hostname }}"
changed_when = false
tags = ["service"]

[[task]]
name = "via web01"
op = "exec"
shell = "echo {{ inventory_hostname }} >> {{ playbook_dir }}/via-web01"
delegate_to = "web01"
changed_when = false
tags = ["service"]
"#,
    );

    // Check mode with diffs: what would change, and nothing changes.
    let (out, predicted) = apply(&fleet, &dir, &["--check", "--diff"]);
    assert_eq!(out.status.code(), Some(0), "{predicted}");
    assert!(
        !dir.join("hosts/web01/etc/web.conf").exists(),
        "--check wrote a file"
    );
    assert!(predicted.contains("web03 | +user www-data;"), "{predicted}");
    let would = changed(&predicted);

    // The first run changes exactly what check mode said it would, and runs the handler.
    let (out, first) = apply(&fleet, &dir, &[]);
    assert_eq!(out.status.code(), Some(0), "{first}");
    let did = changed(&first);
    let handlers: BTreeSet<String> = did
        .iter()
        .filter(|c| c.contains("restart web"))
        .cloned()
        .collect();
    assert_eq!(handlers.len(), HOSTS, "{first}");
    let without_handlers: BTreeSet<String> = did.difference(&handlers).cloned().collect();
    let would_without: BTreeSet<String> = would
        .iter()
        .filter(|c| !c.contains("restart web"))
        .cloned()
        .collect();
    assert_eq!(
        without_handlers,
        would_without,
        "check mode said otherwise: ran but not predicted {:?}, predicted but not ran {:?}",
        without_handlers
            .difference(&would_without)
            .collect::<Vec<_>>(),
        would_without
            .difference(&without_handlers)
            .collect::<Vec<_>>()
    );
    let vhost =
        std::fs::read_to_string(dir.join("hosts/web07/etc/sites-enabled/shop.conf")).unwrap();
    assert_eq!(
        vhost,
        "server {\n    listen 8080;\n    server_name shop www.shop;\n    location / {\n        try_files $uri =404;\n    }\n    location /api {\n        proxy_pass http://127.0.0.1:9000;\n    }\n}\n"
    );
    let main = std::fs::read_to_string(dir.join("hosts/web07/etc/web.conf")).unwrap();
    assert_eq!(
        main,
        "# managed by wisp\nuser www-data;\nworker_processes auto;\nevents {\n    worker_connections 64640;\n}\n"
    );
    let log = super::service::log(&dir.join("hosts/web07/service.log"));
    assert_eq!(log, ["start", "restart"], "{first}");

    // `run_once`: one host ran it, the nine others took its result.
    let announced = std::fs::read_to_string(dir.join("announced")).unwrap();
    assert_eq!(announced.lines().count(), 1, "{announced}");
    assert_eq!(
        first.matches("ok       announce (run once, on ").count(),
        HOSTS - 1,
        "{first}"
    );

    // `delegate_to: localhost` ran on this machine, as the controller (whose HOME the test
    // set), not through the host's SSH session (root's HOME); web10, delegated to itself,
    // ran it over SSH.
    let home = |host: &str| std::fs::read_to_string(dir.join(format!("where-{host}"))).unwrap();
    assert_ne!(home("web03").trim(), "/root", "web03 ran it over SSH");
    assert_eq!(home("web10").trim(), "/root");

    // Delegated to web01 by every host (web01 to itself): ten lines, one per host.
    let via = std::fs::read_to_string(dir.join("via-web01")).unwrap();
    assert_eq!(via.lines().collect::<BTreeSet<_>>().len(), HOSTS, "{via}");

    // The second run changes nothing anywhere.
    let (out, second) = apply(&fleet, &dir, &[]);
    assert_eq!(out.status.code(), Some(0), "{second}");
    assert!(changed(&second).is_empty(), "{second}");
    assert_eq!(
        second.matches("changed=0 failed=0").count(),
        HOSTS,
        "{second}"
    );

    // --tags config: the config tasks alone (no package, no service).
    std::fs::remove_file(dir.join("hosts/web02/etc/sites-enabled/blog.conf")).unwrap();
    let (out, tagged) = apply(&fleet, &dir, &["--tags", "config"]);
    assert_eq!(out.status.code(), Some(0), "{tagged}");
    assert!(
        !tagged.contains("web package") && !tagged.contains("web running"),
        "{tagged}"
    );
    assert_eq!(
        changed(&tagged)
            .into_iter()
            .filter(|c| !c.contains("restart web"))
            .collect::<Vec<_>>(),
        ["web02 vhost (item=blog)"],
        "{tagged}"
    );
    // With web01 down, the tasks delegated to it fail on the others, naming it.
    let mut fleet = fleet;
    fleet.hosts[0].stop();
    let (out, down) = apply(&fleet, &dir, &["--tags", "service"]);
    assert_eq!(out.status.code(), Some(2), "{down}");
    assert!(
        down.contains("web02 | failed   via web01 (delegate_to web01: "),
        "{down}"
    );
    fleet.start_host(0);
    fleet.assert_clean();
}
