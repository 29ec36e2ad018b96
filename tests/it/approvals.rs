//! Approvals bound to the change, attacked by an agent (the Python MCP SDK's client) that
//! replays them: with the plan changed, with other vars (given, or in the inventory), with
//! more hosts, with another plan, after expiry, twice; a host changed between check and apply
//! is left alone while the others are applied; a plan rule that never applies, and one that
//! approves by itself. Each attempt is refused with its reason, and recorded. A plan's secret
//! reaches the host but not the agent nor the store, and an agent's name cannot drive the
//! approver's terminal.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed unwrap is a failed test

use serde_json::json;

use crate::mcp::{
    Agent, approve, calls, check_id, client_python, edit_by_hand, hosts_with_a_folder, plan_text,
    serve_args,
};

#[test]
fn replayed_approvals_are_refused_and_a_changed_host_is_left_alone() {
    let Some(python) = client_python() else {
        return;
    };
    if !wisp_tests::root_or_explain("hosts with a folder of their own (mount namespaces)") {
        return;
    }
    let (scratch, fleet, conf) = hosts_with_a_folder(3, "approvals");
    let dir = scratch.0.clone();
    let plan = |port: u32| plan_text(&conf, port);
    std::fs::write(dir.join("site.toml"), plan(8080)).unwrap();
    std::fs::write(dir.join("other.toml"), plan(8080)).unwrap();
    std::fs::write(dir.join("audit.toml"), plan(8080)).unwrap();
    std::fs::write(dir.join("quick.toml"), plan(7070)).unwrap();
    let here = std::fs::canonicalize(&dir).unwrap();
    let here = here.display();
    std::fs::write(
        dir.join("policy.toml"),
        format!(
            "[[plan]]\nname = \"site\"\npath = \"{here}/*e*.toml\"\napproval_for = \"30m\"\n\n\
             [[plan]]\nname = \"audit only\"\npath = \"{here}/audit.toml\"\napply = \"never\"\n\n\
             [[plan]]\nname = \"quick\"\npath = \"{here}/quick.toml\"\napply = \"direct\"\n"
        ),
    )
    .unwrap();
    let args = serve_args(&fleet);
    let mut agent = Agent::start(&python, &dir, &args);
    let checked = |agent: &mut Agent, args: serde_json::Value| {
        let (error, text) = agent.call("check", args);
        assert!(!error, "{text}");
        let id = check_id(&text);
        assert_eq!(approve(&dir, &id, &[]).status.code(), Some(0));
        id
    };
    let refused = |(error, text): (bool, String), id: &str, why: &str| {
        assert!(error, "{text}");
        let want = format!("refused by the policy: approval {id} {why}");
        assert!(text.starts_with(&want), "wanted {want:?}, got {text:?}");
    };

    // The plan changed after the approval.
    let id = checked(&mut agent, json!({"plan": "site.toml"}));
    std::fs::write(dir.join("site.toml"), plan(8080) + "# edited\n").unwrap();
    let answer = agent.call("apply", json!({"approval": id}));
    refused(answer, &id, "was for another version of");
    std::fs::write(dir.join("site.toml"), plan(8080)).unwrap();
    // Another plan, under the same rule, given with the approval.
    let answer = agent.call("apply", json!({"approval": id, "plan": "other.toml"}));
    refused(
        answer,
        &id,
        &format!("was for {here}/site.toml, not {here}/other.toml"),
    );
    // Other vars given.
    let answer = agent.call("apply", json!({"approval": id, "vars": {"port": 22}}));
    refused(answer, &id, "was for other vars");
    // More hosts than approved.
    let id = checked(
        &mut agent,
        json!({"plan": "site.toml", "targets": "web01,web02"}),
    );
    let answer = agent.call("apply", json!({"approval": id, "targets": "all"}));
    refused(
        answer,
        &id,
        "was for web[01-02] (2 hosts), not web[01-03] (3 hosts)",
    );
    // The hosts' inventory vars changed after the approval.
    std::fs::create_dir_all(dir.join("group_vars")).unwrap();
    std::fs::write(dir.join("group_vars/all.yml"), "extra: 1\n").unwrap();
    let answer = agent.call("apply", json!({"approval": id}));
    refused(answer, &id, "was for other vars");
    std::fs::remove_dir_all(dir.join("group_vars")).unwrap();
    // Expired.
    let (error, text) = agent.call("check", json!({"plan": "site.toml"}));
    assert!(!error, "{text}");
    let id = check_id(&text);
    assert_eq!(approve(&dir, &id, &["--for", "1s"]).status.code(), Some(0));
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let answer = agent.call("apply", json!({"approval": id}));
    refused(answer, &id, "expired at ");
    // Approved twice: the second operator is told it is not pending.
    let id = checked(&mut agent, json!({"plan": "site.toml"}));
    assert_eq!(approve(&dir, &id, &[]).status.code(), Some(5));

    // A host changed between check and apply: the others are applied, it is left alone.
    edit_by_hand(&fleet, &dir, "web02", &conf, "port = 2");
    let (error, text) = agent.call("apply", json!({"approval": id}));
    assert!(error, "{text}");
    assert!(
        text.starts_with(&format!("applied check {id} on web[01,03]\n")),
        "{text}"
    );
    assert!(
        text.contains(&format!("NOT APPLIED web02: not what check {id} saw there")),
        "{text}"
    );
    let (error, text) = agent.call("drift", json!({"plan": "site.toml"}));
    assert!(
        !error && text.starts_with("DRIFTED web02 (1 host)\n"),
        "{text}"
    );

    // A plan the policy lets be checked, never applied: approving it does not help.
    let id = checked(&mut agent, json!({"plan": "audit.toml"}));
    let answer = agent.call("apply", json!({"approval": id}));
    refused(answer, &id, "plan rule \"audit only\" never applies plans");
    // A plan no rule names.
    std::fs::write(dir.join("rogue.yml"), plan(1)).unwrap();
    let (error, text) = agent.call("check", json!({"plan": "rogue.yml"}));
    assert!(error, "{text}");
    assert!(
        text.starts_with("refused by the policy: no plan rule names"),
        "{text}"
    );
    // A plan the rule approves by itself: applied at once, once.
    let (error, text) = agent.call("check", json!({"plan": "quick.toml"}));
    assert!(!error && text.contains("the policy approves it"), "{text}");
    let id = check_id(&text);
    let (error, text) = agent.call("apply", json!({"approval": id}));
    assert!(!error, "{text}");
    let answer = agent.call("apply", json!({"approval": id}));
    refused(answer, &id, "was used already");
    agent.finish();

    // Every attempt is in the audit, refused ones with their reason.
    let calls = calls(&dir);
    assert_eq!(calls.matches("refused: approval").count(), 8, "{calls}");
    assert_eq!(
        calls.matches("refused: no plan rule names").count(),
        1,
        "{calls}"
    );
    fleet.assert_clean();
}

#[test]
fn a_plans_secrets_reach_neither_the_agent_nor_the_audit() {
    let Some(python) = client_python() else {
        return;
    };
    let scratch = wisp_tests::ScratchDir::new("approvals-secrets");
    let dir = scratch.0.clone();
    let value = format!("s3cret-{}-x", std::process::id());
    crate::secrets::setup(&dir, &value);
    let fleet = wisp_tests::sshd::Fleet::start(1);
    fleet.write_inventory(&dir.join("hosts"));
    let conf = dir.join("db.conf");
    std::fs::write(
        dir.join("db.toml"),
        format!(
            "secrets = \"s.age\"\ntargets = \"all\"\n\n[[task]]\nname = \"db config\"\n\
             op = \"file.write\"\npath = \"{}\"\ncontent = \"password = {{{{ secret.db_pass }}}}\\n\"\n",
            conf.display()
        ),
    )
    .unwrap();
    let here = std::fs::canonicalize(&dir).unwrap();
    std::fs::write(
        dir.join("policy.toml"),
        format!(
            "[[plan]]\nname = \"db\"\npath = \"{}/db.toml\"\napply = \"direct\"\n",
            here.display()
        ),
    )
    .unwrap();
    let args = serve_args(&fleet);
    let key = dir.join("a.key");
    // An agent whose name would drive the approver's terminal (set its title, ring).
    let name = std::path::Path::new("evil\x1b]0;owned\x07agent");
    let env = [("WISP_AGE_IDENTITY", key.as_path()), ("AGENT_NAME", name)];
    let mut agent = Agent::start_with(&python, &dir, &args, &env);
    let (error, text) = agent.call("check", json!({"plan": "db.toml"}));
    assert!(!error, "{text}");
    assert!(
        text.contains("+password = [secret:db_pass]") && !text.contains(&value),
        "{text}"
    );
    let id = check_id(&text);
    let (error, text) = agent.call("apply", json!({"approval": id}));
    assert!(!error && !text.contains(&value), "{text}");
    agent.finish();
    assert_eq!(
        std::fs::read_to_string(&conf).unwrap(),
        format!("password = {value}\n"),
        "the host got the value"
    );
    let mut list = wisp_tests::wisp_command!(&dir);
    list.args(["approvals", "--all"]).current_dir(&dir);
    let listed = wisp_tests::wisp::run(&mut list, &dir);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains("evil\\x1b]0;owned\\x07agent 1.0") && !listed.contains('\x1b'),
        "the client's name is shown escaped: {listed:?}"
    );
    // Nothing the store keeps holds it: the calls, the check's report, the runs.
    let calls = calls(&dir);
    assert!(
        calls.contains("check") && !calls.contains(&value),
        "{calls}"
    );
    let state = dir.join(wisp_tests::wisp::ENV_DIR).join("state/wisp");
    for f in std::fs::read_dir(&state).unwrap() {
        let bytes = std::fs::read(f.unwrap().path()).unwrap();
        let found = bytes.windows(value.len()).any(|w| w == value.as_bytes());
        assert!(!found, "the state store holds the secret");
    }
    fleet.assert_clean();
}
