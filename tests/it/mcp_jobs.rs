//! `wisp mcp`'s sessions and jobs, driven by the Python MCP SDK's client against sshd hosts:
//! runners kept between calls and closed when idle or when the client goes; a run in the
//! background followed, cancelled, and output too long for an answer read page by page.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed unwrap is a failed test

use serde_json::json;
use wisp_tests::sshd::Fleet;

use crate::mcp::{Agent, client_python, serve_args};

#[test]
fn warm_sessions_are_reused_between_calls_and_closed_when_idle_or_done() {
    let Some(python) = client_python() else {
        return;
    };
    let scratch = wisp_tests::ScratchDir::new("mcp-warm");
    let dir = scratch.0.clone();
    let fleet = Fleet::start(3);
    fleet.write_inventory(&dir.join("hosts"));
    std::fs::write(
        dir.join("policy.toml"),
        "[[rule]]\nname = \"look\"\nprograms = [\"/usr/bin/id\"]\n",
    )
    .unwrap();
    let start = |extra: &[&str]| {
        let mut args = serve_args(&fleet);
        args.extend(extra.iter().map(Into::into));
        Agent::start(&python, &dir, &args)
    };
    let pids = || {
        let mut p: Vec<u32> = fleet.live_runners().iter().map(|(pid, _)| *pid).collect();
        p.sort_unstable();
        p
    };
    let id = json!({"targets": "all", "argv": ["id", "-u"]});

    // Kept: the second call runs on the runners the first one started.
    let mut agent = start(&["--warm-idle", "2s"]);
    assert!(!agent.call("run", id.clone()).0);
    let first = pids();
    assert_eq!(first.len(), 3, "one runner kept per host: {first:?}");
    assert!(!agent.call("run", id.clone()).0);
    assert_eq!(pids(), first, "the second call reused the kept runners");
    // Idle past --warm-idle: closed, and the next call starts fresh ones.
    let closed = wisp_tests::wait_for(std::time::Duration::from_secs(10), || {
        pids().is_empty().then_some(())
    });
    assert!(closed.is_some(), "idle runners still alive: {:?}", pids());
    assert!(!agent.call("run", id.clone()).0);
    let again = pids();
    assert_eq!(again.len(), 3);
    assert!(
        again.iter().all(|p| !first.contains(p)),
        "{again:?} {first:?}"
    );
    // The client goes: every kept runner says goodbye and removes itself.
    agent.finish();
    fleet.assert_clean();

    // --warm 0: nothing is kept.
    let mut agent = start(&["--warm", "0"]);
    assert!(!agent.call("run", id.clone()).0);
    assert!(pids().is_empty(), "{:?}", fleet.live_runners());
    agent.finish();
    fleet.assert_clean();
}

#[test]
fn long_work_is_a_job_followed_cancelled_and_read_page_by_page() {
    let Some(python) = client_python() else {
        return;
    };
    let scratch = wisp_tests::ScratchDir::new("mcp-jobs");
    let dir = scratch.0.clone();
    let fleet = Fleet::start(3);
    fleet.write_inventory(&dir.join("hosts"));
    std::fs::write(
        dir.join("policy.toml"),
        "[[rule]]\nname = \"slow\"\nprograms = [\"/usr/bin/sleep\", \"/usr/bin/seq\"]\n",
    )
    .unwrap();
    let args = serve_args(&fleet);
    let mut agent = Agent::start(&python, &dir, &args);

    // In the background: the answer comes at once; `job` follows it; `cancel` stops it.
    let (error, text) = agent.call(
        "run",
        json!({"targets": "all", "argv": ["sleep", "600"], "background": true}),
    );
    assert!(!error && text.contains("job 1 started"), "{text}");
    let (error, text) = agent.call("job", json!({"id": 1}));
    assert!(
        !error && text.starts_with("job 1: sleep on web[01-03] (3 hosts): running for "),
        "{text}"
    );
    let (error, text) = agent.call("cancel", json!({"id": 1}));
    assert!(!error && text.starts_with("job 1: cancelling"), "{text}");
    let ended = wisp_tests::wait_for(std::time::Duration::from_secs(30), || {
        let (_, text) = agent.call("job", json!({"id": 1}));
        text.contains(": ended in ").then_some(text)
    });
    let text = ended.expect("the cancelled job ended");
    assert!(text.contains("web[01-03]: interrupted"), "{text}");
    let (error, text) = agent.call("cancel", json!({"id": 1}));
    assert!(error && text.contains("has ended"), "{text}");

    // Waited for: progress told as hosts end; given up by the client: cancelled on the hosts.
    let answer = agent.ask(json!({"tool": "run", "progress": true,
        "args": {"targets": "all", "argv": ["sleep", "2"]}}));
    assert_eq!(answer["error"], false, "{answer}");
    let progress = answer["progress"].as_array().unwrap();
    assert!(!progress.is_empty(), "no progress told: {answer}");
    assert!(progress.iter().all(|p| p[1] == 3.0), "{answer}");
    assert_eq!(progress[0][2], "0 of 3 hosts ended", "{answer}");
    assert_eq!(
        progress.last().unwrap()[2],
        "3 of 3 hosts ended",
        "told at the end: {answer}"
    );
    let answer = agent.ask(json!({"tool": "run", "timeout": 1.5,
        "args": {"targets": "all", "argv": ["sleep", "600"]}}));
    assert_eq!(answer["error"], true, "{answer}");
    let ended = wisp_tests::wait_for(std::time::Duration::from_secs(30), || {
        let (_, text) = agent.call("job", json!({"id": 3}));
        text.contains(": ended in ").then_some(text)
    });
    let text = ended.expect("the job of the abandoned call ended");
    assert!(text.contains("web[01-03]: interrupted"), "{text}");

    // Output longer than an answer: cut there, whole in the job's pages.
    let (error, text) = agent.call("run", json!({"targets": "all", "argv": ["seq", "5000"]}));
    assert!(!error, "{text}");
    assert!(
        text.contains("web[01-03]: ok, exit 0, same output\n  1\n")
            && text.contains("  (4960 more lines)\n")
            && text.contains("(output cut; job 4 holds all of it"),
        "{text}"
    );
    let mut whole = String::new();
    for page in 1.. {
        let (error, text) = agent.call("job", json!({"id": 4, "page": page}));
        if error {
            assert!(text.contains("job 4 has "), "{text}");
            break;
        }
        let (head, body) = text.split_once('\n').unwrap();
        assert!(head.contains(&format!("page {page} of ")), "{head}");
        whole.push_str(body);
    }
    let want: String = (1..=5000).map(|i| format!("  {i}\n")).collect();
    assert_eq!(
        whole,
        format!("web[01-03]: ok, exit 0, same output\n{want}")
    );
    agent.finish();
    fleet.assert_clean();
}
