//! The policy's checks, without a host: programs, arguments, hosts, the floor.

use super::*;

const POLICY: &str = r#"
[limits]
max_hosts = 3

[[rule]]
name = "look"
hosts = "web"
programs = ["/usr/bin/uptime", "/usr/bin/cat"]
args = ["/var/log/*", "**"]
[rule.sandbox]
no_net = true
rw = ["/tmp"]
memory = "256M"

[[rule]]
name = "shell for ops"
hosts = "ops"
programs = ["/bin/sh"]
"#;

fn hosts(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn select(pattern: &str) -> Result<Vec<String>, String> {
    Ok(match pattern {
        "web" => hosts(&["web1", "web2"]),
        "ops" => hosts(&["ops1"]),
        _ => Vec::new(),
    })
}

fn argv(words: &[&str]) -> Vec<String> {
    hosts(words)
}

#[test]
fn a_program_is_allowed_by_its_path_its_arguments_and_its_hosts() {
    let p = Policy::parse(POLICY).unwrap();
    let web = hosts(&["web1", "web2"]);
    let ok = p.allow(&argv(&["/usr/bin/cat", "/var/log/syslog"]), &web, select);
    assert_eq!(ok.unwrap().name, "look");
    assert!(
        p.allow(&argv(&["cat", "/var/log/a", "-n"]), &web, select)
            .is_ok()
    );
    for (bad, why) in [
        (
            argv(&["/usr/bin/rm", "-rf", "/"]),
            "no rule allows the program",
        ),
        (argv(&["/bin/../usr/bin/rm"]), "no rule allows"),
        (
            argv(&["/usr/bin/cat", "/etc/shadow"]),
            "only with arguments",
        ),
        (
            argv(&["/usr/bin/cat", "/var/log/a\n/etc/shadow"]),
            "only with arguments",
        ),
        (
            argv(&["sh", "-c", "cat /var/log/x"]),
            "hosts (web1...) are not in",
        ),
        (argv(&["usr/bin/cat", "/var/log/x"]), "no rule allows"),
    ] {
        let e = p.allow(&bad, &web, select).unwrap_err();
        assert!(e.contains(why), "{bad:?}: {e}");
    }
    let e = p
        .allow(
            &argv(&["cat", "/var/log/x"]),
            &hosts(&["web1", "db1"]),
            select,
        )
        .unwrap_err();
    assert!(e.contains("db1 is not in"), "{e}");
    let e = p
        .allow(&argv(&["uptime"]), &hosts(&["a", "b", "c", "d"]), select)
        .unwrap_err();
    assert!(e.contains("at most 3"), "{e}");
    let dots = argv(&["/usr/./bin/../bin/cat", "/var/log/x"]);
    assert!(p.allow(&dots, &web, select).is_ok());
}

#[test]
fn the_floor_is_kept_and_the_command_line_may_only_tighten_it() {
    let p = Policy::parse(POLICY).unwrap();
    let rule = &p.rules[0];
    let l = rule.limits(&LimitArgs::default()).unwrap();
    assert!(l.no_net);
    assert_eq!(l.rw, vec!["/tmp".to_owned()]);
    assert_eq!(l.ro, vec!["/".to_owned()]);
    assert_eq!(l.memory, Some(256 << 20));
    let tighter = LimitArgs {
        memory: Some(1 << 20),
        rw: vec!["/tmp/x".into()],
        ..LimitArgs::default()
    };
    let l = rule.limits(&tighter).unwrap();
    assert_eq!(
        (l.memory, l.rw.clone()),
        (Some(1 << 20), vec!["/tmp/x".to_owned()])
    );
    for looser in [
        LimitArgs {
            rw: vec!["/etc".into()],
            ..LimitArgs::default()
        },
        LimitArgs {
            rw: vec!["/tmp/../etc".into()],
            ..LimitArgs::default()
        },
        LimitArgs {
            allow_connect: vec![443],
            ..LimitArgs::default()
        },
        LimitArgs {
            sandbox: Some(wisp_protocol::sandbox::SandboxMode::BestEffort),
            ..LimitArgs::default()
        },
    ] {
        assert!(rule.limits(&looser).is_err(), "{looser:?}");
    }
}

#[test]
fn a_policy_that_allows_nothing_or_names_a_relative_program_is_refused() {
    assert!(Policy::parse("").unwrap_err().contains("no [[rule]]"));
    let e = Policy::parse("[[rule]]\nname = \"x\"\nprograms = [\"ls\"]\n").unwrap_err();
    assert!(e.contains("absolute"), "{e}");
    let e = Policy::parse("[[rule]]\nname = \"x\"\nprograms = [\"/bin/ls\"]\nshell = true\n");
    assert!(e.unwrap_err().contains("unknown field"));
}

#[test]
fn plans_are_allowed_by_path_and_hosts_and_say_how_they_apply() {
    let p = Policy::parse(
        r#"
[[plan]]
name = "web"
path = "/srv/plans/web-*.toml"
hosts = "web"
apply = "direct"
approval_for = "10m"

[[plan]]
name = "audit"
path = "/srv/plans/audit.yml"
apply = "never"
"#,
    )
    .unwrap();
    let plan = Path::new("/srv/plans/web-nginx.toml");
    let rule = p.allow_plan(plan, &hosts(&["web1"]), select).unwrap();
    assert_eq!((rule.name.as_str(), rule.apply), ("web", Apply::Direct));
    assert_eq!(rule.lifetime().unwrap().as_secs(), 600);
    let e = p.allow_plan(plan, &hosts(&["ops1"]), select).unwrap_err();
    assert_eq!(e, "plan rule \"web\" covers \"web\", which ops1 is not in");
    let e = p
        .allow_plan(Path::new("/etc/passwd"), &hosts(&["web1"]), select)
        .unwrap_err();
    assert_eq!(e, "no plan rule names /etc/passwd");
    let every = |pattern: &str| match pattern {
        "all" => Ok(hosts(&["web1", "web2", "ops1"])),
        other => select(other),
    };
    let audit = Path::new("/srv/plans/audit.yml");
    let rule = p.allow_plan(audit, &hosts(&["ops1"]), every).unwrap();
    assert_eq!(rule.apply, Apply::Never);
    // Facts may be read from the hosts a plan rule covers, and only from them.
    assert!(p.allow_hosts(&hosts(&["ops1"]), every).is_ok());
    assert!(p.allow_hosts(&hosts(&["ops1"]), select).is_err());
    let e = Policy::parse("[[plan]]\nname = \"x\"\npath = \"plans/*.toml\"\n").unwrap_err();
    assert!(e.contains("must be absolute"), "{e}");
    let e = Policy::parse("[[plan]]\nname = \"x\"\npath = \"/p\"\napply = \"sometimes\"\n")
        .unwrap_err();
    assert!(e.contains("unknown variant"), "{e}");
}
