//! The command line: parsing, the entry point, and exit codes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tokio::sync::watch;
use wisp_protocol::message::Limits;
use wisp_protocol::ops::ExecArgs;
use wisp_transports::local::LocalTransport;
use wisp_transports::ssh;
use wisp_transports::{Launch, Transport};

use crate::exit::ExitStatus;
use crate::fleet::{self, Interrupt, Job, Target};
use crate::inventory::{self, Inventory};
use crate::limits::LimitArgs;
use crate::report::{Reporter, exit_status};

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
    Run(Box<RunArgs>),
    /// Bring hosts to the state a plan describes: `wisp apply site.toml web`.
    ///
    /// A plan is a TOML file of ordered tasks (file.write, dir.ensure, file.absent, exec, ...)
    /// with vars, conditions and handlers; it is checked completely, naming file and line for
    /// any error, before a host is contacted. Each host runs the whole plan over one runner
    /// session and stops at its first failed task (unless the task says `ignore_errors`).
    /// Each task reports ok, changed, failed or skipped; a second run reports nothing changed.
    #[command(after_help = AFTER_HELP)]
    Apply(Box<ApplyArgs>),
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
    Conformance(ConformanceArgs),
    /// Write a copy of this `wisp` that carries its runners: one file to ship.
    ///
    /// The runners are found as for a run (--runner, $WISP_RUNNER, beside wisp, the build
    /// tree), their signatures checked, and appended with those signatures to a copy of this
    /// executable. The copy pushes the runners it carries, checking them against its trusted
    /// keys on every run, exactly like runner files.
    Bundle(BundleArgs),
    /// Keep secrets in an age-encrypted file: keygen, init, set, list, rm, edit.
    ///
    /// Plans use them as {{ secret.NAME }} (in exec env and stdin, and in file content: never
    /// on a command line, where every user of the host could read them). Their values are
    /// replaced by [secret:NAME] in everything wisp prints or journals.
    Secrets(crate::secrets_cli::SecretsArgs),
}

#[derive(Debug, Args)]
struct Common {
    /// Print JSON lines (one event per line, then a summary line) instead of text.
    #[arg(long)]
    json: bool,
    /// Give up on a host that has not started its runner within this time.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    connect_timeout: Duration,
    /// The runner exits by itself after this long, whatever happens to the controller.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    ttl: Duration,
    /// Run the runner as root through `sudo -n` (sudo must not ask for a password).
    #[arg(long = "become")]
    become_root: bool,
    /// Run the runner as root through sudo with a password, asked once on the terminal (or
    /// read from $WISP_BECOME_PASSWORD). It travels inside the SSH channel, never as an
    /// argument. Implies --become; SSH hosts only.
    #[arg(long)]
    ask_become_pass: bool,
    /// Also offer a password, asked once on the terminal (or read from $WISP_SSH_PASSWORD),
    /// after every key: for first contact with hosts that have no key of yours yet.
    #[arg(long)]
    ask_pass: bool,
    /// The runner executable to push [default: $WISP_RUNNER, then beside wisp, then the
    /// build tree].
    #[arg(long, value_name = "PATH")]
    runner: Option<PathBuf>,
    /// Also trust runners signed by this minisign public key (repeatable). Always trusted:
    /// ~/.config/wisp/trusted-keys/*.pub, the release key built in, and a build tree's dev key.
    #[arg(long, value_name = "FILE")]
    trusted_key: Vec<PathBuf>,
    /// Push runners without checking their signatures. Development only: it warns on every run.
    #[arg(long)]
    insecure_unsigned_runner: bool,
    /// Say more on stderr: which runner files were pushed and who signed them.
    #[arg(short = 'v', long)]
    verbose: bool,
    /// SSH login user for targets that do not name one [default: $USER].
    #[arg(short = 'u', long, value_name = "USER")]
    user: Option<String>,
    /// Private key file to offer (repeatable) [default: ~/.ssh/id_ed25519, id_ecdsa, id_rsa].
    /// Keys of the ssh-agent at $SSH_AUTH_SOCK are offered first. Encrypted keys read their
    /// passphrase from $WISP_SSH_PASSPHRASE.
    #[arg(long, value_name = "FILE")]
    key: Vec<PathBuf>,
    /// The known_hosts file host keys are checked against [default: ~/.ssh/known_hosts].
    #[arg(long, value_name = "FILE")]
    known_hosts: Option<PathBuf>,
    /// Trust hosts whose key is not in known_hosts yet, and record it there. A key that
    /// differs from the recorded one is still refused.
    #[arg(long)]
    accept_new: bool,
    /// Inventory file: native TOML (`.toml`), Ansible YAML (`.yml`, `.yaml`) or Ansible INI
    /// (anything else). With one, TARGETS is a host pattern over it.
    #[arg(short = 'i', long, value_name = "FILE")]
    inventory: Option<PathBuf>,
    /// OpenSSH client config to read (Host, HostName, User, Port, IdentityFile, ProxyJump,
    /// ConnectTimeout, ServerAliveInterval) [default: ~/.ssh/config].
    #[arg(short = 'F', long, value_name = "FILE")]
    ssh_config: Option<PathBuf>,
    /// Only the hosts that also match this pattern.
    #[arg(long, value_name = "PATTERN")]
    limit: Option<String>,
    /// Stop the whole run after this long: remote commands still running are cancelled (as
    /// with Ctrl-C) and their hosts count as failed.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    run_timeout: Option<Duration>,
    /// How many hosts to work on at once.
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    forks: u32,
}

#[derive(Debug, Args)]
struct HostsArgs {
    /// Hosts to run on (see "Targets" in `wisp --help`).
    targets: String,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Hosts to run on (see "Targets" in `wisp --help`).
    targets: String,
    #[command(flatten)]
    common: Common,
    /// Keep at most this many bytes of each output stream per host; the rest is dropped
    /// (and the recap says so).
    #[arg(long, value_name = "BYTES")]
    max_output: Option<u64>,
    /// Working directory for the command.
    #[arg(long, value_name = "DIR")]
    cwd: Option<String>,
    /// Also save each host's stdout and stderr, byte for byte, as DIR/HOST.stdout and
    /// DIR/HOST.stderr.
    #[arg(long, value_name = "DIR")]
    output_dir: Option<PathBuf>,
    /// Set an environment variable for the command (repeatable).
    #[arg(long = "env", value_name = "NAME=VALUE", value_parser = parse_env)]
    env: Vec<(String, String)>,
    // Last among the options: its help heading applies to everything after it.
    #[command(flatten)]
    limits: LimitArgs,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<String>,
}

#[derive(Debug, Args)]
struct ApplyArgs {
    /// The plan file.
    plan: PathBuf,
    /// Hosts to run on [default: the plan's `targets`].
    targets: Option<String>,
    #[command(flatten)]
    common: Common,
    /// Report what would change, and change nothing (exec tasks are skipped).
    #[arg(long)]
    check: bool,
    /// Show a unified diff for every file whose content changes (or would).
    #[arg(long)]
    diff: bool,
    /// The secrets file for {{ secret.NAME }} [default: the plan's `secrets`].
    #[arg(long, value_name = "FILE")]
    secrets: Option<PathBuf>,
    #[command(flatten)]
    identity: crate::secrets_cli::IdentityArg,
}

#[derive(Debug, Args)]
struct BundleArgs {
    /// Where to write the bundled wisp.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// The runner for this machine's architecture [default: as for a run].
    #[arg(long, value_name = "PATH")]
    runner: Option<PathBuf>,
    /// Also trust runners signed by this minisign public key (repeatable).
    #[arg(long, value_name = "FILE")]
    trusted_key: Vec<PathBuf>,
}

#[derive(Debug, Args)]
struct ConformanceArgs {
    /// The runner executable to test.
    #[arg(long, value_name = "PATH")]
    runner: PathBuf,
    /// Start it through this emulator, for a runner built for another architecture
    /// (`--interpreter qemu-aarch64-static`).
    #[arg(long, value_name = "PROGRAM")]
    interpreter: Option<PathBuf>,
    /// The directory of golden cases [default: ./golden, else the one this wisp was built from].
    #[arg(long, value_name = "DIR")]
    golden: Option<PathBuf>,
    /// Run only the cases whose name contains this text.
    #[arg(long, value_name = "TEXT")]
    case: Option<String>,
    /// Rewrite the expected frames from the runner's answers instead of comparing.
    #[arg(long)]
    update: bool,
}

/// Parses `500ms`, `30s`, `10m`, `1h`, or a plain number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 500ms, 30s, 10m or 1h"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (use ms, s, m or h)"
            ));
        }
    };
    if d.is_zero() {
        return Err(format!("{text:?}: must be more than zero"));
    }
    Ok(d)
}

fn parse_env(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("{text:?}: expected NAME=VALUE")),
    }
}

/// An error the operator must fix before anything runs.
fn usage_error(message: &str) -> ExitStatus {
    let _ = std::io::Write::write_fmt(&mut std::io::stderr(), format_args!("error: {message}\n"));
    ExitStatus::BadOptions
}

/// A secret from `env`, else asked on the terminal.
fn secret(env: &str, prompt: &str) -> Result<ssh::Secret, String> {
    if let Ok(value) = std::env::var(env) {
        return Ok(ssh::Secret::new(value));
    }
    rpassword::prompt_password(prompt)
        .map(ssh::Secret::new)
        .map_err(|e| {
            format!(
                "cannot ask for the {}: {e}; without a terminal, set ${env}",
                prompt.trim_end_matches(": ")
            )
        })
}

/// Why the targets could not be worked out, with the exit status it deserves.
enum TargetsError {
    Inventory(String),
    Options(String),
}

fn targets(spec: &str, common: &Common) -> Result<Vec<Target>, TargetsError> {
    let local: Arc<dyn Transport> = Arc::new(LocalTransport {
        sudo: common.become_root,
    });
    let keys = if common.key.is_empty() {
        ssh::default_keys()
    } else {
        common.key.clone()
    };
    let known_hosts = common
        .known_hosts
        .clone()
        .unwrap_or_else(ssh::default_known_hosts);
    let become_root = common.become_root || common.ask_become_pass;
    let mut options = ssh::SshOptions::new(keys, true, known_hosts, common.accept_new, become_root);
    // Every secret is asked once, here, before any host is contacted: no prompt races.
    if common.ask_pass {
        options.password =
            Some(secret(ssh::PASSWORD_ENV, "SSH password: ").map_err(TargetsError::Options)?);
    }
    if common.ask_become_pass {
        options.become_password = Some(
            secret(ssh::BECOME_PASSWORD_ENV, "sudo password: ").map_err(TargetsError::Options)?,
        );
    }
    if std::env::var_os(ssh::PASSPHRASE_ENV).is_none() && std::fs::File::open("/dev/tty").is_ok() {
        for key in options
            .keys
            .clone()
            .iter()
            .filter(|k| ssh::is_encrypted_key(k))
        {
            let phrase = rpassword::prompt_password(format!("Passphrase for {}: ", key.display()))
                .map_err(|e| {
                    TargetsError::Options(format!(
                        "cannot read the passphrase for {}: {e}",
                        key.display()
                    ))
                })?;
            options
                .passphrases
                .insert(key.clone(), ssh::Secret::new(phrase));
        }
    }
    options.default_user = common.user.clone();
    options.ssh_config = match &common.ssh_config {
        Some(path) => ssh::config::SshConfig::load(path)
            .map_err(|e| TargetsError::Options(format!("--ssh-config {}: {e}", path.display())))?,
        None => ssh::config::SshConfig::user_default(),
    };
    let options = Arc::new(options);
    let ssh_target = |name: String, target: ssh::SshTarget, vars| Target {
        name,
        transport: Arc::new(ssh::SshTransport::new(target, Arc::clone(&options))),
        vars,
    };
    let mut out = Vec::new();
    if let Some(path) = &common.inventory {
        let inv = Inventory::load(path).map_err(|e| TargetsError::Inventory(e.to_string()))?;
        let mut names = inventory::select(&inv, spec).map_err(TargetsError::Options)?;
        if let Some(limit) = &common.limit {
            let allowed = inventory::select(&inv, limit)
                .map_err(|e| TargetsError::Options(format!("--limit: {e}")))?;
            names.retain(|n| allowed.contains(n));
        }
        for name in names {
            let Some(h) = inv.resolve(&name) else {
                continue;
            };
            let local_conn = h
                .vars
                .get("ansible_connection")
                .is_some_and(|c| c == "local")
                || (name == "localhost" && !h.vars.contains_key("ansible_host"));
            if local_conn {
                out.push(Target {
                    name,
                    transport: Arc::clone(&local),
                    vars: h.vars,
                });
                continue;
            }
            // As with Ansible: the address (ansible_host, else the name) is what ssh_config
            // matches, and the inventory's user beats --user.
            let target = ssh::SshTarget {
                alias: h.address,
                host: None,
                port: h.port,
                user: h.user,
                key: h.key,
            };
            out.push(ssh_target(name, target, h.vars));
        }
        if out.is_empty() {
            return Err(TargetsError::Options(format!(
                "{spec:?} selects no host from {}",
                path.display()
            )));
        }
        return Ok(out);
    }
    if common.limit.is_some() {
        return Err(TargetsError::Options(
            "--limit needs an inventory (-i FILE)".into(),
        ));
    }
    for spec in crate::targets::parse_list(spec).map_err(TargetsError::Options)? {
        out.push(match spec.ssh {
            None => Target {
                name: spec.name,
                transport: Arc::clone(&local),
                vars: Default::default(),
            },
            Some(s) => {
                let target = ssh::SshTarget {
                    alias: s.host,
                    host: None,
                    port: s.port,
                    user: s.user,
                    key: None,
                };
                ssh_target(spec.name, target, Default::default())
            }
        });
    }
    Ok(out)
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
    let mut output_dir = None;
    let (common, targets_spec, job) = match cli.command {
        Command::Conformance(args) => {
            return crate::conformance::cli_main(
                &args.runner,
                args.interpreter.as_deref(),
                args.golden,
                args.case,
                args.update,
            )
            .into();
        }
        Command::Bundle(a) => return bundle(&a).into(),
        Command::Secrets(a) => return crate::secrets_cli::main(a).into(),
        Command::Facts(a) => (a.common, a.targets, Job::Facts),
        Command::Apply(a) => {
            let a = *a;
            let mut plan = match crate::plan::Plan::load(&a.plan) {
                Ok(p) => p,
                Err(e) => {
                    let _ = usage_error(&e.message);
                    return ExitStatus::ParseError.into();
                }
            };
            if !plan.secret_refs.is_empty() {
                // Opened before anything connects: a missing secret is a plan error.
                let Some(file) = a.secrets.clone().or_else(|| plan.secrets_file.clone()) else {
                    return usage_error(&format!(
                        "{} uses secrets: name the file with --secrets FILE or `secrets = \"...\"` in the plan",
                        a.plan.display()
                    ))
                    .into();
                };
                let values = crate::secrets::identities(a.identity.identity.as_deref())
                    .and_then(|ids| crate::secrets::open(&file, &ids));
                let values = match values {
                    Ok(v) => v,
                    Err(e) => return usage_error(&e).into(),
                };
                if let Err(e) = plan.attach_secrets(values, &file) {
                    let _ = usage_error(&e.message);
                    return ExitStatus::ParseError.into();
                }
            }
            let Some(targets) = a.targets.clone().or_else(|| plan.targets.clone()) else {
                return usage_error(&format!(
                    "name the hosts to apply {} to (or set `targets` in the plan)",
                    a.plan.display()
                ))
                .into();
            };
            let options = crate::apply::ApplyOptions {
                check: a.check,
                diff: a.diff,
            };
            (
                a.common,
                targets,
                Job::Plan {
                    plan: Arc::new(plan),
                    options,
                },
            )
        }
        Command::Ping(a) => (a.common, a.targets, Job::Ping),
        Command::Run(a) => {
            let args = ExecArgs {
                argv: Some(a.command),
                env: a.env.into_iter().collect(),
                cwd: a.cwd,
                max_output: a.max_output,
                ..ExecArgs::default()
            };
            if let Err(e) = args.validate() {
                return usage_error(&e).into();
            }
            // Checked here, before any host is contacted, for this machine's architecture; a
            // seccomp file is compiled again for each host's.
            // (A file named per architecture is only compiled per host.)
            let per_host_file = a
                .limits
                .seccomp
                .as_deref()
                .is_some_and(|s| s.contains("{arch}"));
            let limits = match a.limits.to_limits(std::env::consts::ARCH) {
                Ok(l) => l,
                Err(_) if per_host_file => Limits::default(),
                Err(e) => return usage_error(&e).into(),
            };
            let per_arch = a.limits.per_arch().then(|| Box::new(a.limits.clone()));
            output_dir = a.output_dir;
            (
                a.common,
                a.targets,
                Job::Exec {
                    args,
                    limits: Box::new(limits),
                    per_arch,
                },
            )
        }
    };
    let targets = match targets(&targets_spec, &common) {
        Ok(t) => t,
        Err(TargetsError::Options(e)) => return usage_error(&e).into(),
        Err(TargetsError::Inventory(e)) => {
            let _ = usage_error(&e);
            return ExitStatus::ParseError.into();
        }
    };
    let mut job = job;
    if let Job::Plan { plan, .. } = &mut job
        && let Some(plan) = Arc::get_mut(plan)
        && plan
            .tasks
            .iter()
            .chain(&plan.handlers)
            .any(|t| t.targets.is_some())
    {
        // Task patterns select among the hosts this run has, by the inventory's rules.
        let inv = match &common.inventory {
            Some(path) => match Inventory::load(path) {
                Ok(inv) => inv,
                Err(e) => return usage_error(&e.to_string()).into(),
            },
            None => Inventory::of_hosts(targets.iter().map(|t| t.name.clone())),
        };
        if let Err(e) = plan.select_task_hosts(|p| inventory::select(&inv, p)) {
            let _ = usage_error(&e.message);
            return ExitStatus::ParseError.into();
        }
    }
    // Every runner is read and its signature checked before any host is contacted.
    let runners =
        match crate::runners::Trust::load(&common.trusted_key, common.insecure_unsigned_runner)
            .and_then(|trust| {
                crate::runners::locate(common.runner.as_deref(), &trust, common.verbose)
            }) {
            Ok(r) => r,
            Err(e) => return usage_error(&e.to_string()).into(),
        };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return usage_error(&format!("cannot start the async runtime: {e}")).into(),
    };
    let status = runtime.block_on(async move {
        let launch = Launch::new(runners, common.ttl, common.connect_timeout);
        let names: Vec<String> = targets.iter().map(|t| t.name.clone()).collect();
        let journal = open_journal();
        journal.record(run_line(&job, &targets_spec, &names));
        let run_started = std::time::Instant::now();
        let mut reporter = Reporter::new(common.json, &names).with_journal(journal);
        if let Job::Plan { plan, .. } = &job {
            reporter = reporter.with_secrets(&plan.secrets);
        }
        let reporter = Arc::new(reporter);
        let (tx, rx) = watch::channel(Interrupt::None);
        let tx = Arc::new(tx);
        tokio::spawn(watch_signals(Arc::clone(&tx)));
        // --run-timeout: the same orderly cancel as Ctrl-C, but the hosts it stops failed.
        let timed_out = Arc::new(std::sync::atomic::AtomicBool::new(false));
        if let Some(limit) = common.run_timeout {
            let (tx, timed_out) = (Arc::clone(&tx), Arc::clone(&timed_out));
            tokio::spawn(async move {
                tokio::time::sleep(limit).await;
                timed_out.store(true, std::sync::atomic::Ordering::SeqCst);
                let _ = std::io::Write::write_fmt(
                    &mut std::io::stderr(),
                    format_args!("run timeout ({limit:?}) reached: cancelling remote commands\n"),
                );
                tx.send_if_modified(|i| {
                    let change = *i == Interrupt::None;
                    if change {
                        *i = Interrupt::Cancel;
                    }
                    change
                });
            });
        }
        let forks = usize::try_from(common.forks).unwrap_or(usize::MAX);
        let results = fleet::run(
            targets,
            job,
            &launch,
            forks,
            output_dir,
            Arc::clone(&reporter),
            rx.clone(),
        )
        .await;
        let mut results = results;
        let timed_out = timed_out.load(std::sync::atomic::Ordering::SeqCst);
        if timed_out {
            for r in results
                .iter_mut()
                .filter(|r| r.outcome == crate::report::HostOutcome::Interrupted)
            {
                r.outcome = crate::report::HostOutcome::Failed;
                r.detail = "run timeout".into();
            }
        }
        let interrupted = *rx.borrow() != Interrupt::None && !timed_out;
        let status = exit_status(&results, interrupted);
        reporter.recap(&results, status);
        for r in &results {
            reporter.journal().record(serde_json::json!({
                "kind": "host", "host": r.host, "outcome": r.outcome.label(), "detail": r.detail,
                "elapsed_ms": u64::try_from(r.elapsed.as_millis()).unwrap_or(u64::MAX),
                "sandbox": r.sandbox,
            }));
        }
        reporter.journal().record(serde_json::json!({
            "kind": "end", "exit": status as u8,
            "elapsed_ms": u64::try_from(run_started.elapsed().as_millis()).unwrap_or(u64::MAX),
        }));
        status
    });
    // Host tasks that were cut off by a second Ctrl-C must not hold the exit.
    runtime.shutdown_timeout(Duration::from_millis(100));
    status.into()
}

/// `wisp bundle`: this executable plus its checked runners, in one file.
fn bundle(a: &BundleArgs) -> ExitStatus {
    let files = crate::runners::Trust::load(&a.trusted_key, false)
        .and_then(|trust| crate::runners::checked_files(a.runner.as_deref(), &trust));
    let files = match files {
        Ok(f) => f,
        Err(e) => return usage_error(&e.to_string()),
    };
    if let Err(e) = crate::bundle::write(&a.out, &files) {
        return usage_error(&format!("cannot write {}: {e}", a.out.display()));
    }
    let arches: Vec<&str> = files.iter().map(|(a, _)| a.as_str()).collect();
    eprintln!(
        "wrote {} with the runners for {}",
        a.out.display(),
        arches.join(" and ")
    );
    ExitStatus::Ok
}

/// The journal for this run; when none can be made, says so once and runs unjournalled.
fn open_journal() -> crate::journal::Journal {
    use crate::journal::{Journal, dir};
    let Some(dir) = dir() else {
        let _ = std::io::Write::write_fmt(
            &mut std::io::stderr(),
            format_args!("wisp: no HOME or XDG_STATE_HOME: this run is not journalled\n"),
        );
        return Journal::disabled();
    };
    Journal::create(&dir).unwrap_or_else(|e| {
        let _ = std::io::Write::write_fmt(
            &mut std::io::stderr(),
            format_args!(
                "wisp: cannot open a journal in {}: {e}; this run is not journalled (set \
                 WISP_JOURNAL_DIR to a writable directory)\n",
                dir.display()
            ),
        );
        Journal::disabled()
    })
}

/// The journal's first line: what was asked, of which hosts. Command arguments stay out (they
/// may hold secrets); the program does not.
fn run_line(job: &Job, spec: &str, hosts: &[String]) -> serde_json::Value {
    let mut line = serde_json::json!({
        "kind": "run", "wisp": env!("CARGO_PKG_VERSION"), "targets": spec, "hosts": hosts,
    });
    match job {
        Job::Exec { args, .. } => {
            line["command"] = "run".into();
            line["program"] = args.command_line().first().cloned().into();
        }
        Job::Plan { plan, options } => {
            line["command"] = "apply".into();
            line["plan"] = plan.path.display().to_string().into();
            line["check"] = options.check.into();
            line["diff"] = options.diff.into();
        }
        Job::Facts => line["command"] = "facts".into(),
        Job::Ping => line["command"] = "ping".into(),
    }
    line
}

/// First SIGINT/SIGTERM: cancel in order. Second: disconnect.
async fn watch_signals(tx: Arc<watch::Sender<Interrupt>>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return;
    };
    for level in [Interrupt::Cancel, Interrupt::Disconnect] {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        let note = if level == Interrupt::Cancel {
            "interrupted: cancelling remote commands (Ctrl-C again to disconnect at once)"
        } else {
            "interrupted again: disconnecting"
        };
        let _ = std::io::Write::write_fmt(&mut std::io::stderr(), format_args!("{note}\n"));
        let _ = tx.send(level);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("1d").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
