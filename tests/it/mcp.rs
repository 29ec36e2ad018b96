//! `wisp mcp` driven by a client this project does not write: the official Python MCP SDK
//! (`mcp` from PyPI, in the suite's venv), over stdio, against real sshd hosts. It lists the
//! tools and their hints, reads the inventory, runs programs on 20 hosts (results folded),
//! and is refused, with the reason, what the policy does not allow.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed unwrap is a failed test
#![allow(clippy::print_stdout)] // what the client said goes into the failure report

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use wisp_tests::sshd::Fleet;

/// The suite venv's python with the MCP SDK, or `None` (said) outside `cargo xtask test`.
fn client_python() -> Option<PathBuf> {
    let Some(python) = std::env::var_os("WISP_MCP_PYTHON") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "driving wisp mcp needs WISP_MCP_PYTHON, and CI must run it (cargo xtask test sets it)"
        );
        println!(
            "not run: WISP_MCP_PYTHON names no python with the mcp SDK; `cargo xtask test` makes one"
        );
        return None;
    };
    Some(PathBuf::from(python))
}

/// The client: starts the server given on its command line, then makes each call its
/// stdin lists (one JSON object per line: `{"tool": ..., "args": ...}`), printing one JSON
/// line per answer.
const CLIENT: &str = r#"
import asyncio, json, os, sys
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

async def main():
    calls = [json.loads(l) for l in sys.stdin if l.strip()]
    server = StdioServerParameters(command=sys.argv[1], args=sys.argv[2:], env=dict(os.environ))
    async with stdio_client(server) as (r, w):
        async with ClientSession(r, w) as s:
            init = await s.initialize()
            print(json.dumps({"server": init.server_info.name}), flush=True)
            tools = await s.list_tools()
            print(json.dumps({"tools": {t.name: t.annotations.model_dump(by_alias=True, exclude_none=True) for t in tools.tools}}), flush=True)
            for c in calls:
                res = await s.call_tool(c["tool"], c["args"])
                print(json.dumps({"error": res.is_error, "text": res.content[0].text}), flush=True)

asyncio.run(main())
"#;

#[test]
fn an_mcp_client_lists_runs_folds_and_is_refused_by_the_policy() {
    let Some(python) = client_python() else {
        return;
    };
    let fleet = Fleet::start(20);
    let dir = fleet.dir.0.clone();
    fleet.write_inventory(&dir.join("hosts"));
    std::fs::write(
        dir.join("policy.toml"),
        "[limits]\nmax_hosts = 20\n\n[[rule]]\nname = \"look around\"\n\
         programs = [\"/usr/bin/uptime\", \"/usr/bin/id\"]\n[rule.sandbox]\nno_net = true\n\
         rw = [\"/tmp\"]\n",
    )
    .unwrap();
    std::fs::write(dir.join("client.py"), CLIENT).unwrap();
    let calls = [
        r#"{"tool": "inventory", "args": {}}"#,
        r#"{"tool": "run", "args": {"targets": "all", "argv": ["uptime"]}}"#,
        r#"{"tool": "run", "args": {"targets": "all", "argv": ["id", "-u"]}}"#,
        r#"{"tool": "run", "args": {"targets": "web01", "argv": ["sh", "-c", "id; rm -rf /"]}}"#,
        r#"{"tool": "run", "args": {"targets": "web01", "argv": ["id\nrm", "-rf"]}}"#,
        r#"{"tool": "facts", "args": {"targets": "all"}}"#,
    ];
    // The server runs as the tests run wisp: its environment isolated in the scratch dir.
    let wisp = wisp_tests::wisp_command!(&dir);
    let mut client = Command::new(python);
    for (k, v) in wisp.get_envs() {
        match v {
            Some(v) => client.env(k, v),
            None => client.env_remove(k),
        };
    }
    client
        .arg(dir.join("client.py"))
        .arg(wisp.get_program())
        .args(["mcp", "-i", "hosts", "--policy", "policy.toml"])
        .args(fleet.root_options())
        .current_dir(&dir)
        .stdin(std::process::Stdio::piped());
    let mut child = client
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(calls.join("\n").as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!(
        "--- client\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the client failed");
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["server"], "wisp");
    let tools = &lines[1]["tools"];
    assert_eq!(tools["inventory"]["readOnlyHint"], true);
    assert_eq!(tools["inventory"]["idempotentHint"], true);
    assert_eq!(tools["run"]["readOnlyHint"], false);
    assert_eq!(tools["run"]["destructiveHint"], true);
    let answer = |i: usize| {
        let text = lines[i]["text"].as_str().unwrap().to_owned();
        (lines[i]["error"].as_bool().unwrap(), text)
    };

    let (error, text) = answer(2);
    assert!(
        !error && text.contains("all: web[01-20] (20 hosts)"),
        "{text}"
    );

    // uptime's text changes by the second: the hosts fold into one group or a few.
    let (error, text) = answer(3);
    assert!(!error && text.contains(": ok, exit 0"), "{text}");
    assert!(
        !text.contains("failed") && !text.contains("unreachable"),
        "{text}"
    );
    let groups = text.lines().filter(|l| l.starts_with("web")).count();
    assert!((1..=20).contains(&groups), "{text}");

    let (error, text) = answer(4);
    assert!(!error, "{text}");
    assert!(
        text.contains("web[01-20]: ok, exit 0, same output\n  0\n"),
        "20 hosts that said the same are told once: {text}"
    );

    for i in [5, 6] {
        let (error, text) = answer(i);
        assert!(error, "{text}");
        assert!(
            text.starts_with("refused by the policy: no rule allows the program"),
            "{text}"
        );
    }
    let (error, text) = answer(7);
    assert!(!error, "{text}");
    assert!(
        text.starts_with("web[01-20]: ok, same output\n  ") && text.contains(" cpus, "),
        "the hosts are alike: {text}"
    );
    assert_eq!(tools["facts"]["readOnlyHint"], true);

    // Every call is recorded: who asked, what, the rule or why not.
    let mut history = wisp_tests::wisp_command!(&dir);
    history.args(["history", "--calls"]).current_dir(&dir);
    let calls =
        String::from_utf8_lossy(&wisp_tests::wisp::run(&mut history, &dir).stdout).into_owned();
    assert_eq!(calls.lines().count(), 6, "{calls}");
    assert_eq!(
        calls.matches("  mcp mcp ").count(),
        6,
        "via and client: {calls}"
    );
    let id = r#"{"argv":["id","-u"],"targets":"all"}  allowed (rule "look around"): web[01-20]"#;
    assert!(calls.contains(id), "{calls}");
    assert_eq!(
        calls.matches("refused: no rule allows").count(),
        2,
        "{calls}"
    );
    fleet.assert_clean();
}
