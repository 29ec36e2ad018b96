//! `wisp mcp` driven by a client this project does not write: the official Python MCP SDK
//! (`mcp` from PyPI, in the suite's venv), over stdio, against real sshd hosts. It lists the
//! tools and their hints, reads the inventory, runs programs on 20 hosts (results folded),
//! is refused, with the reason, what the policy does not allow, and takes a plan through
//! check, an operator's approval from another process, one apply, and drift.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed unwrap is a failed test
#![allow(clippy::print_stdout)] // what the client said goes into the failure report

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde_json::{Value, json};
use wisp_tests::sshd::Fleet;

/// The suite venv's python with the MCP SDK, or `None` (said) outside `cargo xtask test`.
pub(crate) fn client_python() -> Option<PathBuf> {
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

/// The client: starts the server given on its command line, says what it is and its tools,
/// then makes each call its stdin gives (one JSON object per line: `{"tool": ..., "args":
/// ...}`, with `"progress": true` to ask for progress notifications and `"timeout": S` to give
/// up, and so cancel, after S seconds) as it comes, printing one JSON line per answer.
const CLIENT: &str = r#"
import asyncio, json, os, sys
from mcp import ClientSession, StdioServerParameters, types
from mcp.client.stdio import stdio_client

async def main():
    server = StdioServerParameters(command=sys.argv[1], args=sys.argv[2:], env=dict(os.environ))
    async with stdio_client(server) as (r, w):
        me = types.Implementation(name=os.environ.get("AGENT_NAME", "mcp"), version="1.0")
        async with ClientSession(r, w, client_info=me) as s:
            init = await s.initialize()
            print(json.dumps({"server": init.server_info.name}), flush=True)
            tools = await s.list_tools()
            print(json.dumps({"tools": {t.name: t.annotations.model_dump(by_alias=True, exclude_none=True) for t in tools.tools}}), flush=True)
            while True:
                line = await asyncio.to_thread(sys.stdin.readline)
                if not line.strip():
                    break
                c = json.loads(line)
                seen = []
                async def progress(done, total, message):
                    seen.append([done, total, message])
                try:
                    res = await s.call_tool(c["tool"], c["args"], read_timeout_seconds=c.get("timeout"),
                                            progress_callback=progress if c.get("progress") else None)
                    out = {"error": res.is_error, "text": res.content[0].text}
                except Exception as e:
                    out = {"error": True, "text": "client: %s: %s" % (type(e).__name__, e)}
                out["progress"] = seen
                print(json.dumps(out), flush=True)

asyncio.run(main())
"#;

/// An agent: the Python SDK's client, connected to `wisp mcp`, one call at a time.
pub(crate) struct Agent {
    child: Child,
    calls: Option<ChildStdin>,
    answers: BufReader<ChildStdout>,
    /// The server's name and its tools' hints, as the client listed them.
    pub(crate) hello: (Value, Value),
}

impl Agent {
    /// Starts the client and `wisp mcp ARGS` under it, in `dir`, with the environment the
    /// tests give wisp.
    pub(crate) fn start(python: &Path, dir: &Path, args: &[std::ffi::OsString]) -> Agent {
        Agent::start_with(python, dir, args, &[])
    }

    /// [`Agent::start`], with `env` set for the server too.
    pub(crate) fn start_with(
        python: &Path,
        dir: &Path,
        args: &[std::ffi::OsString],
        env: &[(&str, &Path)],
    ) -> Agent {
        std::fs::write(dir.join("client.py"), CLIENT).unwrap();
        let mut wisp = wisp_tests::wisp_command!(dir);
        for (k, v) in env {
            wisp.env(k, v);
        }
        let mut client = Command::new(python);
        for (k, v) in wisp.get_envs() {
            match v {
                Some(v) => client.env(k, v),
                None => client.env_remove(k),
            };
        }
        let mut child = client
            .arg(dir.join("client.py"))
            .arg(wisp.get_program())
            .arg("mcp")
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join("client.stderr")).unwrap())
            .spawn()
            .unwrap();
        let calls = child.stdin.take();
        let mut answers = BufReader::new(child.stdout.take().unwrap());
        let mut read = || {
            let mut line = String::new();
            answers.read_line(&mut line).unwrap();
            println!("--- client: {line}");
            serde_json::from_str::<Value>(&line).unwrap_or_else(|e| {
                panic!(
                    "the client said {line:?} ({e}); its stderr: {}",
                    std::fs::read_to_string(dir.join("client.stderr")).unwrap_or_default()
                )
            })
        };
        let hello = (read()["server"].clone(), read()["tools"].clone());
        Agent {
            child,
            calls,
            answers,
            hello,
        }
    }

    /// Calls `tool`; whether it answered an error, and its text.
    pub(crate) fn call(&mut self, tool: &str, args: Value) -> (bool, String) {
        let v = self.ask(json!({"tool": tool, "args": args}));
        (
            v["error"].as_bool().unwrap(),
            v["text"].as_str().unwrap().to_owned(),
        )
    }

    /// Makes `call` (as the client reads it) and returns the client's whole answer.
    pub(crate) fn ask(&mut self, call: Value) -> Value {
        println!("--- call: {call}");
        let stdin = self.calls.as_mut().unwrap();
        writeln!(stdin, "{call}").unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        self.answers.read_line(&mut line).unwrap();
        println!("--- answer: {line}");
        serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("no answer to {call} ({e}): {line:?}"))
    }

    /// Hangs up; the client and the server must end cleanly.
    pub(crate) fn finish(mut self) {
        drop(self.calls.take());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "the client ended with {status}");
    }
}

/// `wisp mcp`'s arguments for `fleet`: the inventory `hosts` and the policy `policy.toml`
/// (both in the test's dir), and the fleet's credentials.
pub(crate) fn serve_args(fleet: &Fleet) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = vec![
        "-i".into(),
        "hosts".into(),
        "--policy".into(),
        "policy.toml".into(),
    ];
    args.extend(fleet.root_options());
    args
}

/// Writes `text` into `file` on `host` by hand (through `wisp run`, not the agent).
pub(crate) fn edit_by_hand(fleet: &Fleet, dir: &Path, host: &str, file: &Path, text: &str) {
    let edit = fleet.wisp(
        wisp_tests::wisp_command!(dir),
        dir,
        &[
            "run",
            host,
            "--",
            "sh",
            "-c",
            &format!("echo '{text}' > {}", file.display()),
        ],
    );
    assert_eq!(edit.status.code(), Some(0));
}

/// `wisp history --calls` in `dir`.
pub(crate) fn calls(dir: &Path) -> String {
    let mut history = wisp_tests::wisp_command!(dir);
    history
        .args(["history", "--calls", "-n", "100"])
        .current_dir(dir);
    String::from_utf8_lossy(&wisp_tests::wisp::run(&mut history, dir).stdout).into_owned()
}

/// `wisp approve ID --yes` in `dir`, as an operator in another process.
pub(crate) fn approve(dir: &Path, id: &str, extra: &[&str]) -> std::process::Output {
    let mut approve = wisp_tests::wisp_command!(dir);
    approve
        .args(["approve", id, "--yes"])
        .args(extra)
        .current_dir(dir);
    wisp_tests::wisp::run(&mut approve, dir)
}

/// The id in a `check`'s answer (`check ID: ...`).
pub(crate) fn check_id(text: &str) -> String {
    text.strip_prefix("check ")
        .and_then(|t| t.split(':').next())
        .unwrap_or_else(|| panic!("no check id in {text:?}"))
        .to_owned()
}

/// `n` sshd hosts named in `hosts`, each with a folder of its own; the path of a file in it.
pub(crate) fn hosts_with_a_folder(
    n: usize,
    name: &str,
) -> (wisp_tests::ScratchDir, Fleet, PathBuf) {
    let scratch = wisp_tests::ScratchDir::new(name);
    let srv = scratch.0.join("srv");
    let fleet = Fleet::start_with_private_dir(n, &srv);
    fleet.write_inventory(&scratch.0.join("hosts"));
    (scratch, fleet, srv.join("app.conf"))
}

/// A plan that writes `port = PORT` (a var) into `conf` on all its hosts, then runs a
/// command (which check mode cannot check).
pub(crate) fn plan_text(conf: &Path, port: u32) -> String {
    format!(
        "targets = \"all\"\n[vars]\nport = {port}\n\n[[task]]\nname = \"config\"\n\
         op = \"file.write\"\npath = \"{}\"\ncontent = \"port = {{{{ port }}}}\\n\"\n\n\
         [[task]]\nname = \"reload\"\nop = \"exec\"\nargv = [\"true\"]\n",
        conf.display()
    )
}

/// Each tool's hints as a client reads them: read-only, destructive, idempotent.
fn assert_hints(tools: &Value) {
    for (tool, read_only, destructive, idempotent) in [
        ("inventory", true, false, true),
        ("facts", true, false, true),
        ("run", false, true, false),
        ("check", true, false, false),
        ("apply", false, true, false),
        ("drift", true, false, true),
    ] {
        let hints = &tools[tool];
        assert_eq!(hints["readOnlyHint"], read_only, "{tool}: {hints}");
        assert_eq!(hints["destructiveHint"], destructive, "{tool}: {hints}");
        assert_eq!(hints["idempotentHint"], idempotent, "{tool}: {hints}");
    }
}

#[test]
fn an_agent_runs_checks_and_applies_only_what_an_operator_approved() {
    let Some(python) = client_python() else {
        return;
    };
    if !wisp_tests::root_or_explain("hosts with a folder of their own (mount namespaces)") {
        return;
    }
    let (scratch, fleet, conf) = hosts_with_a_folder(20, "mcp");
    let dir = scratch.0.clone();
    std::fs::write(dir.join("site.toml"), plan_text(&conf, 8080)).unwrap();
    std::fs::write(
        dir.join("policy.toml"),
        format!(
            "[limits]\nmax_hosts = 20\n\n[[rule]]\nname = \"look around\"\n\
             programs = [\"/usr/bin/uptime\", \"/usr/bin/id\"]\n[rule.sandbox]\nno_net = true\n\
             rw = [\"/tmp\"]\n\n[[plan]]\nname = \"site\"\npath = \"{}/site.toml\"\n",
            std::fs::canonicalize(&dir).unwrap().display()
        ),
    )
    .unwrap();
    let args = serve_args(&fleet);
    let mut agent = Agent::start(&python, &dir, &args);
    assert_eq!(agent.hello.0, "wisp");
    assert_hints(&agent.hello.1);

    let (error, text) = agent.call("inventory", json!({}));
    assert!(
        !error && text.contains("all: web[01-20] (20 hosts)"),
        "{text}"
    );
    // uptime's text changes by the second: the hosts fold into one group or a few.
    let (error, text) = agent.call("run", json!({"targets": "all", "argv": ["uptime"]}));
    assert!(!error && text.contains(": ok, exit 0"), "{text}");
    assert!(
        !text.contains("failed") && !text.contains("unreachable"),
        "{text}"
    );
    let groups = text.lines().filter(|l| l.starts_with("web")).count();
    assert!((1..=20).contains(&groups), "{text}");
    let (error, text) = agent.call("run", json!({"targets": "all", "argv": ["id", "-u"]}));
    assert!(
        !error && text.contains("web[01-20]: ok, exit 0, same output\n  0\n"),
        "20 hosts that said the same are told once: {text}"
    );
    for argv in [
        json!(["sh", "-c", "id; rm -rf /"]),
        json!(["id\nrm", "-rf"]),
    ] {
        let (error, text) = agent.call("run", json!({"targets": "web01", "argv": argv}));
        assert!(error, "{text}");
        assert!(
            text.starts_with("refused by the policy: no rule allows the program"),
            "{text}"
        );
    }
    let (error, text) = agent.call("facts", json!({"targets": "all"}));
    assert!(
        !error && text.starts_with("web[01-20]: ok, same output\n  ") && text.contains(" cpus, "),
        "the hosts are alike: {text}"
    );

    // A plan: checked (the diff shown), refused unapproved, approved by an operator from
    // another process, applied once.
    let (error, text) = agent.call("check", json!({"plan": "site.toml"}));
    assert!(!error, "{text}");
    assert!(
        text.contains("WOULD CHANGE web[01-20] (20 hosts)") && text.contains("+port = 8080"),
        "{text}"
    );
    assert!(
        text.ends_with("WILL RUN UNCHECKED web[01-20] (20 hosts): reload\n"),
        "what check mode cannot check is told: {text}"
    );
    let id = check_id(&text);
    let (error, text) = agent.call("apply", json!({"approval": id}));
    assert!(error, "{text}");
    assert_eq!(
        text,
        format!(
            "refused by the policy: approval {id} is not approved: an operator approves it \
             with `wisp approve {id}`"
        )
    );
    let approved = approve(&dir, &id, &[]);
    assert_eq!(approved.status.code(), Some(0));
    let shown = String::from_utf8_lossy(&approved.stdout);
    assert!(
        shown.contains("asked by  mcp ") && shown.contains("web[01-20] (20 hosts)"),
        "{shown}"
    );
    assert!(shown.contains("+port = 8080"), "{shown}");
    let (error, text) = agent.call("apply", json!({"approval": id}));
    assert!(!error, "{text}");
    assert!(
        text.starts_with(&format!(
            "applied check {id} on web[01-20]\nCHANGED web[01-20] (20 hosts)\n  changed  config"
        )),
        "{text}"
    );

    // Changed on one host since: the used approval is refused; drift names the host; a
    // fresh check and approval bring it back.
    edit_by_hand(&fleet, &dir, "web05", &conf, "port = 1");
    let (error, text) = agent.call("apply", json!({"approval": id}));
    assert!(error, "{text}");
    assert!(
        text.starts_with(&format!(
            "refused by the policy: approval {id} was used already"
        )),
        "{text}"
    );
    let (error, text) = agent.call("drift", json!({"plan": "site.toml"}));
    assert!(!error, "{text}");
    assert!(
        text.starts_with("DRIFTED web05 (1 host)")
            && text.contains("CLEAN web[01-04,06-20] (19 hosts)"),
        "{text}"
    );
    let (error, text) = agent.call("check", json!({"plan": "site.toml"}));
    assert!(
        !error && text.contains("WOULD CHANGE web05 (1 host)"),
        "{text}"
    );
    let fresh = check_id(&text);
    assert_ne!(fresh, id);
    assert_eq!(approve(&dir, &fresh, &[]).status.code(), Some(0));
    let (error, text) = agent.call("apply", json!({"approval": fresh}));
    assert!(!error, "{text}");
    let (error, text) = agent.call("drift", json!({"plan": "site.toml"}));
    assert!(!error, "{text}");
    assert_eq!(text, "CLEAN web[01-20] (20 hosts)\n");
    agent.finish();

    // Every call is recorded: who asked, what, the rule or why not.
    let calls = calls(&dir);
    assert_eq!(calls.lines().count(), 14, "{calls}");
    assert_eq!(
        calls.matches("  mcp mcp ").count(),
        14,
        "via and client: {calls}"
    );
    let id_u = r#"{"argv":["id","-u"],"targets":"all"}  allowed (rule "look around"): web[01-20]"#;
    assert!(calls.contains(id_u), "{calls}");
    assert_eq!(
        calls.matches("refused: no rule allows").count(),
        2,
        "{calls}"
    );
    assert_eq!(calls.matches("refused: approval").count(), 2, "{calls}");
    fleet.assert_clean();
}
