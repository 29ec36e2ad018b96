//! The command line: the clap tree, dispatch to one module per subcommand, and exit codes.
//!
//! Layering: cli is the top. It builds jobs ([`crate::jobs`]) and targets, and nothing below
//! it imports it. `connect` is the one module that turns connection flags into transports.

mod apply;
mod approve;
mod bundle;
mod conformance;
mod connect;
mod drift;
mod execute;
mod history;
mod inventory;
mod keys;
mod mcp;
mod nats;
mod options;
mod playbook;
mod retry;
mod run;
mod secrets;
mod worker;

use clap::{Parser, Subcommand};

use crate::jobs::Job;
use options::HostsArgs;
use wisp_events::exit::ExitStatus;

const AFTER_HELP: &str = "\
Targets:
  localhost           this machine, through a local runner process (no SSH)
  [user@]host[:port]  a host over SSH (IPv6: [addr]:port); host keys are checked strictly
  a,b                 a comma-separated list
With -i FILE, TARGETS is a pattern over the inventory, as in Ansible:
  all, GROUP, HOST    every host, a group (with its children), one host
  web*                a glob over host and group names
  a,b  a,!b  a,&b     union, exclusion, intersection

Exit codes:
  0   every host succeeded
  2   some host failed (non-zero exit, signal, timeout, refused command)
  3   some host was unreachable, and none failed
  4   inventory or plan parse error
  5   bad options
  6   the state store cannot be opened or written (nothing ran; see --state, --no-state)
  99  interrupted (Ctrl-C or SIGTERM)

Ctrl-C cancels remote work: the runner kills the command's whole process tree and removes
itself. A second Ctrl-C disconnects at once; runners still clean up when they see the
connection close.";

/// Run commands on a fleet of Linux hosts, with nothing installed on them.
///
/// wisp pushes a small static runner to each host, runs the work under limits the runner
/// enforces, streams output back as it is produced, and leaves nothing behind.
#[derive(Debug, Parser)]
// A repeated option takes its last value, so wrappers and aliases can override defaults.
#[command(name = "wisp", version, after_help = AFTER_HELP, args_override_self = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a command on every matching host: `wisp run localhost -- uname -a`.
    ///
    /// The command is executed directly, without a shell; use `sh -c '...'` for pipes and
    /// redirections. Output streams back live, one line at a time, prefixed with the host:
    /// `host | line` for stdout, `host ! line` for stderr. The recap goes to stderr.
    #[command(after_help = AFTER_HELP)]
    Run(Box<run::RunArgs>),
    /// Serve the fleet to an AI agent as Model Context Protocol tools on stdio: `wisp mcp -i
    /// hosts --policy agent.toml`.
    ///
    /// Tools: `inventory` (groups and their hosts, folded), `facts` (what each host is), `run`
    /// (a program, by argv, on some hosts; a job, in the background if asked), `job` (a job's
    /// progress, or its whole output page by page), `cancel`, `check` (a plan in check mode,
    /// its changes recorded for an operator's approval), `apply` (an approved check, once, only
    /// while nothing it was made of changed) and `drift`. Every call is held to the policy
    /// before any host is contacted, and the hosts' kernels hold every command to the policy's
    /// sandbox; results come back folded (`web[01-40]: ok, exit 0, same output`). Runner
    /// sessions are kept warm between calls. Configure a client with the command `wisp` and
    /// the arguments `mcp -i /path/to/hosts --policy /path/to/policy.toml`; approve checks
    /// with `wisp approvals` and `wisp approve ID`.
    #[command(after_help = AFTER_HELP)]
    Mcp(Box<mcp::McpArgs>),
    /// Bring hosts to the state a plan describes: `wisp apply site.toml web`.
    ///
    /// A plan is a TOML file of ordered tasks (file.write, template, pkg.ensure, service.*,
    /// exec, ...) with vars of any shape, Jinja2 templates and conditions, loops, register,
    /// blocks with rescue and always, tags and handlers; it is checked completely, naming
    /// file and line for any error, before a host is contacted. Each host runs the whole plan
    /// over one runner session and stops at its first failed task (unless the task says
    /// `ignore_errors`). Each task reports ok, changed, failed or skipped; a second run
    /// reports nothing changed.
    ///
    /// Every key, op, filter and the vars' precedence, and how plans differ from Ansible:
    /// docs/plans.md in wisp's source.
    #[command(after_help = AFTER_HELP)]
    Apply(Box<apply::ApplyArgs>),
    /// Find hosts that no longer match a plan: `wisp drift site.toml web`.
    ///
    /// Runs the plan in check mode (nothing changes; exec tasks are skipped) with diffs on
    /// every host, records it in the state store, and prints one report: hosts that drifted
    /// the same way (the same tasks, the same diffs) folded into one group (`web[01-03,07]`),
    /// then the unreachable ones, then the clean ones. Exit 0 when nothing drifted, 2 when
    /// some host drifted (or could not be checked), 3 when some host was unreachable.
    /// `--history` shows since when each host has drifted, from the recorded runs.
    #[command(after_help = AFTER_HELP)]
    Drift(Box<drift::DriftArgs>),
    /// Show what each host is: OS, kernel, CPUs, memory, init system, package manager and
    /// what the kernel can enforce (Landlock, seccomp, cgroups).
    #[command(after_help = AFTER_HELP)]
    Facts(HostsArgs),
    /// Connect, start the runner, read its READY, and stop it again.
    #[command(after_help = AFTER_HELP)]
    Ping(HostsArgs),
    /// Run the golden conformance suite against a runner executable.
    ///
    /// Each case in the golden directory sends frames to a fresh runner and compares its
    /// normalised answers with the expected ones; a mismatch prints a diff. `--update`
    /// rewrites the expected frames from what the runner answered (review them as a git diff).
    Conformance(conformance::ConformanceArgs),
    /// Write a copy of this `wisp` that carries its runners: one file to ship.
    ///
    /// The runners are found as for a run (--runner, $WISP_RUNNER, beside wisp, the build
    /// tree), their signatures checked, and appended with those signatures to a copy of this
    /// executable. The copy pushes the runners it carries, checking them against its trusted
    /// keys on every run, exactly like runner files.
    Bundle(bundle::BundleArgs),
    /// Show an inventory as wisp reads it, as `ansible-inventory` shows one: `--list`,
    /// `--host HOST` (its vars after precedence), `--graph [GROUP]`. Contacts no host.
    ///
    /// Read as Ansible reads them: INI, YAML (and a file with no extension holding YAML),
    /// native TOML, executable inventories (run with --list), with the `group_vars/` and
    /// `host_vars/` beside the inventory (and, with --playbook-dir, beside a plan).
    Inventory(inventory::InventoryArgs),
    /// Keep secrets in an age-encrypted file: keygen, init, set, list, rm, edit.
    ///
    /// Plans use them as {{ secret.NAME }} (in exec env and stdin, and in file content: never
    /// on a command line, where every user of the host could read them). Their values are
    /// replaced by [secret:NAME] in everything wisp prints or journals.
    Secrets(secrets::SecretsArgs),
    /// Run a recorded run again on its hosts that did not end ok: `wisp retry` (the last run).
    ///
    /// The hosts are read from the state store: those that failed, were unreachable, were
    /// interrupted or were never started (a rollout stopped by its failure budget). A plan is
    /// read again from its file, and refused when it changed since (unless
    /// --plan-changed-ok); with
    /// --from-failed-task each host that failed a task starts at that task. A `wisp run` is
    /// retried with its command given again after `--`, since command arguments are never
    /// recorded. The inventory and --become carry over; other options are given again. The
    /// new run records which run it retries (see `wisp history`).
    #[command(after_help = AFTER_HELP)]
    Retry(Box<retry::RetryArgs>),
    /// List recent runs from the state store, newest first, one line each.
    ///
    /// Each line: the run's number, when it started, who ran it where, the command and what it
    /// ran, its targets, how its hosts ended, and its exit code (or "not finished" for a run
    /// still going or killed). `wisp show N` tells the whole of one.
    History(history::HistoryArgs),
    /// List the plan checks waiting for an operator's approval (`wisp mcp`'s `check`): id,
    /// who asked, when, the plan and its hosts. `--all` lists approved, used and expired ones
    /// too.
    Approvals(approve::ApprovalsArgs),
    /// Show a plan check whole (who asked, the plan and its hash, the vars, the hosts, every
    /// change with its diff) and approve it: `wisp approve 3f9c0a1b2d4e`.
    ///
    /// The agent may then apply it once, before the approval expires (--for), and only while
    /// the plan, its vars, its hosts and what each host holds are what the check saw. Asks on
    /// the terminal unless --yes.
    Approve(approve::ApproveArgs),
    /// Show one run from the state store: each host's result and each task's, with changes and
    /// what the sandbox enforced.
    ///
    /// RUN is a number from `wisp history`, or `last`. `--json` prints the run's journal lines
    /// as they were recorded (the same lines as the journal file), for scripts.
    Show(history::ShowArgs),
    /// Take hosts' work from NATS JetStream and run it: `wisp worker --nats URL --trust-jobs
    /// jobs.key.pub`.
    ///
    /// Controllers started with `--nats URL` put one signed item per host on the stream;
    /// each worker pulls items, checks each one's signature and expiry, runs it with its own
    /// SSH keys, known_hosts and runners, and sends output and results back. Several workers
    /// share the work; `--region` keeps a worker to the hosts of its region. When a worker
    /// dies, its plans are run again by another worker after the ack wait, and its commands
    /// are reported as lost. SIGTERM or Ctrl-C: take no more, finish what started, exit.
    Worker(Box<worker::WorkerArgs>),
    /// Make a key pair: FILE (secret) and FILE.pub. A controller's job key (--sign-jobs;
    /// workers trust it with --trust-jobs) or a worker's own key (--sign-events; controllers
    /// and other workers trust it with --trust-workers).
    Keygen(keys::KeygenArgs),
    /// Write the users and permissions of a NATS server for wisp: `wisp nats-config DIR`.
    ///
    /// DIR/wisp-auth.conf is an `authorization` block to include in nats-server.conf: a
    /// controller user that may publish work and cancels and read events, a worker user that
    /// may pull work, write claims and publish events, and nobody else let in; neither may
    /// delete or purge what the other relies on. DIR/controller.nk and DIR/worker.nk are their
    /// nkey seeds (--nats-nkey).
    NatsConfig(keys::NatsConfigArgs),
}

/// An error the operator must fix before anything runs.
fn usage_error(message: &str) -> ExitStatus {
    let _ = std::io::Write::write_fmt(&mut std::io::stderr(), format_args!("error: {message}\n"));
    ExitStatus::BadOptions
}

/// A state store that cannot be used; nothing ran.
fn state_error(e: &wisp_store::StoreError) -> ExitStatus {
    let _ = usage_error(&wisp_protocol::error::chain(e));
    ExitStatus::State
}

/// A plan or inventory that does not parse.
fn parse_error(message: &str) -> ExitStatus {
    let _ = usage_error(message);
    ExitStatus::ParseError
}

/// The `wisp` entry point.
pub fn main() -> std::process::ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitStatus::BadOptions.into()
            } else {
                ExitStatus::Ok.into()
            };
        }
    };
    let status = match cli.command {
        Command::Conformance(a) => conformance::main(a),
        Command::Bundle(a) => bundle::main(&a),
        Command::Secrets(a) => secrets::main(a),
        Command::Inventory(a) => inventory::main(&a),
        Command::Facts(a) => execute::fleet(a.common, &a.targets, None, |_| Ok(Job::Facts)),
        Command::Ping(a) => execute::fleet(a.common, &a.targets, None, |_| Ok(Job::Ping)),
        Command::Run(a) => run::main(*a),
        Command::Mcp(a) => mcp::main(*a),
        Command::Apply(a) if a.is_ansible() => playbook::main(*a),
        Command::Apply(a) => apply::main(*a),
        Command::Drift(a) => drift::main(*a),
        Command::Retry(a) => retry::main(*a),
        Command::History(a) => history::history(&a),
        Command::Show(a) => history::show(&a),
        Command::Approvals(a) => approve::list(&a),
        Command::Approve(a) => approve::approve(&a),
        Command::Worker(a) => worker::main(*a),
        Command::Keygen(a) => keys::keygen(&a),
        Command::NatsConfig(a) => keys::nats_config(&a),
    };
    status.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
