//! Options every fleet subcommand shares (connection, trust, output, fan-out), and the
//! subcommands that take nothing else (`facts`, `ping`).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use wisp_plan::quantity::parse_duration;

/// `--become-method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum BecomeMethodArg {
    Sudo,
    Doas,
    Su,
}

#[derive(Debug, Clone, Args)]
pub(super) struct RunOptions {
    /// Print JSON lines (one event per line, then a summary line) instead of text.
    #[arg(long)]
    pub(super) json: bool,
    /// Print each host's output at the end, once per group of hosts with the same output and
    /// result, under the group's hosts folded into ranges (`web[01-29]`); the recap is folded
    /// the same way. With --json, output still streams and a `fold` line precedes the summary.
    #[arg(long)]
    pub(super) fold: bool,
    /// Give up on a host that has not started its runner within this time.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub(super) connect_timeout: Duration,
    /// The runner exits by itself after this long, whatever happens to the controller.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub(super) ttl: Duration,
    /// The directory whose `group_vars/` and `host_vars/` are read above the inventory's
    /// own: a plan's (set by `apply` and `drift`, not a flag).
    #[arg(skip)]
    pub(super) playbook_dir: Option<PathBuf>,
    /// Run the runner as root through `sudo -n` (sudo must not ask for a password; see
    /// --ask-become-pass) or `doas -n` (--become-method doas). Becoming root is tried before
    /// anything is written to the host: a refusal leaves nothing there, exits 7, and quotes
    /// sudo or doas.
    #[arg(long = "become")]
    pub(super) become_root: bool,
    /// What becomes root on SSH hosts: sudo, doas (with a `nopass` rule: doas reads a
    /// password from a terminal only), or su (root's password, with --ask-become-pass).
    #[arg(long, value_name = "METHOD", default_value = "sudo")]
    pub(super) become_method: BecomeMethodArg,
    /// Run the runner as root through sudo with a password, asked once on the terminal (or
    /// read from $WISP_BECOME_PASSWORD). It travels inside the SSH channel, never as an
    /// argument. Implies --become; SSH hosts only.
    #[arg(long)]
    pub(super) ask_become_pass: bool,
    /// Also offer a password, asked once on the terminal (or read from $WISP_SSH_PASSWORD),
    /// after every key: for first contact with hosts that have no key of yours yet.
    #[arg(long)]
    pub(super) ask_pass: bool,
    /// The runner executable to push [default: $WISP_RUNNER, then beside wisp, then the
    /// build tree].
    #[arg(long, value_name = "PATH")]
    pub(super) runner: Option<PathBuf>,
    /// Also trust runners signed by this minisign public key (repeatable). Always trusted:
    /// ~/.config/wisp/trusted-keys/*.pub, the release key built in, and a build tree's dev key.
    #[arg(long, value_name = "FILE")]
    pub(super) trusted_key: Vec<PathBuf>,
    /// Push runners without checking their signatures. Development only: it warns on every run.
    #[arg(long)]
    pub(super) insecure_unsigned_runner: bool,
    /// Say more on stderr: which runner files were pushed and who signed them.
    #[arg(short = 'v', long)]
    pub(super) verbose: bool,
    /// SSH login user for targets that do not name one [default: $USER].
    #[arg(short = 'u', long, value_name = "USER")]
    pub(super) user: Option<String>,
    /// Private key file to offer (repeatable) [default: ~/.ssh/id_ed25519, id_ecdsa, id_rsa].
    /// Keys of the ssh-agent at $SSH_AUTH_SOCK are offered first. Encrypted keys read their
    /// passphrase from $WISP_SSH_PASSPHRASE.
    #[arg(long, value_name = "FILE")]
    pub(super) key: Vec<PathBuf>,
    /// The known_hosts file host keys are checked against [default: ~/.ssh/known_hosts].
    #[arg(long, value_name = "FILE")]
    pub(super) known_hosts: Option<PathBuf>,
    /// Trust hosts whose key is not in known_hosts yet, and record it there. A key that
    /// differs from the recorded one is still refused.
    #[arg(long)]
    pub(super) accept_new: bool,
    /// Inventory file: native TOML (`.toml`), Ansible YAML (`.yml`, `.yaml`) or Ansible INI
    /// (anything else). With one, TARGETS is a host pattern over it.
    #[arg(short = 'i', long, value_name = "FILE")]
    pub(super) inventory: Option<PathBuf>,
    /// OpenSSH client config to read, with its Host, Match and Include, HostName, User, Port,
    /// IdentityFile, IdentitiesOnly, IdentityAgent, ProxyJump, ProxyCommand, ConnectTimeout,
    /// ServerAliveInterval, StrictHostKeyChecking and UserKnownHostsFile; a directive wisp
    /// cannot honour stops the run, naming its line [default: ~/.ssh/config].
    #[arg(short = 'F', long, value_name = "FILE")]
    pub(super) ssh_config: Option<PathBuf>,
    /// Only the hosts that also match this pattern.
    #[arg(long, value_name = "PATTERN")]
    pub(super) limit: Option<String>,
    /// Stop the whole run after this long: remote commands still running are cancelled (as
    /// with Ctrl-C) and their hosts count as failed. A host that has not answered the cancel
    /// 5 s later is disconnected, so the run never outlasts the limit by more than that.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(super) run_timeout: Option<Duration>,
    /// How many hosts to work on at once.
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub(super) forks: u32,
    #[command(flatten)]
    pub(super) state: StateArgs,
    #[command(flatten)]
    pub(super) rollout: RolloutArgs,
    #[command(flatten)]
    pub(super) bus: super::nats::BusArgs,
    /// The run this one retries (`wisp retry`), recorded with it.
    #[arg(skip)]
    pub(super) retry_of: Option<i64>,
}

/// Batches and failure budgets (see `crate::rollout`).
#[derive(Debug, Clone, Args)]
pub(super) struct RolloutArgs {
    /// Work through the hosts in batches: a count (5), a share (25%), or a list whose last
    /// step repeats (1,10%,100%). With a list, the first batch is a canary: any failure in it
    /// stops the run.
    #[arg(long, value_name = "BATCHES")]
    pub(super) serial: Option<crate::rollout::Serial>,
    /// Failed or unreachable hosts the whole run may have (N or N% of its hosts); one more
    /// and no further batch starts. The hosts left out are reported as not started (exit 2).
    #[arg(long, value_name = "N|N%")]
    pub(super) max_fail: Option<crate::rollout::Budget>,
    /// The same, counted in each batch (N or N% of the batch).
    #[arg(long, value_name = "N|N%")]
    pub(super) max_fail_batch: Option<crate::rollout::Budget>,
}

impl RolloutArgs {
    pub(super) fn rollout(&self, forks: usize) -> crate::rollout::Rollout {
        crate::rollout::Rollout {
            forks,
            serial: self.serial.clone(),
            max_fail: self.max_fail,
            max_fail_batch: self.max_fail_batch,
        }
    }
}

/// Where runs are recorded.
#[derive(Debug, Clone, Args)]
pub(super) struct StateArgs {
    /// The state store (SQLite) runs are recorded in and `wisp history`/`show` read
    /// [default: $WISP_STATE, else $XDG_STATE_HOME/wisp/wisp.db, else ~/.local/state/wisp/wisp.db].
    #[arg(long, value_name = "FILE", global = true)]
    pub(super) state: Option<PathBuf>,
    /// Record nothing in the state store (the output and the journal file still have it all).
    #[arg(long, conflicts_with = "state")]
    pub(super) no_state: bool,
}

impl StateArgs {
    /// The store's file: `--state`, else the default; `None` with `--no-state` or without a
    /// home to put it in.
    pub(super) fn path(&self) -> Option<PathBuf> {
        if self.no_state {
            return None;
        }
        self.state.clone().or_else(wisp_store::default_path)
    }
}

#[derive(Debug, Args)]
pub(super) struct HostsArgs {
    /// Hosts to run on (see "Targets" in `wisp --help`).
    pub(super) targets: String,
    #[command(flatten)]
    pub(super) common: RunOptions,
}
