//! Remote hosts as the controller asks for them, without knowing what reaches them.
//!
//! The controller fills [`RemoteOptions`] from its flags and answers each [`Question`]
//! (passwords, key passphrases) once, before any host is contacted; [`Remote`] then hands out
//! one [`Transport`] per [`RemoteHost`]. Which protocol carries the connection (SSH today),
//! its config file, its key formats and its environment variables stay in this crate.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::Transport;
pub use crate::secret::Secret;
use crate::ssh;
pub use crate::ssh::BecomeMethod;

/// Settings shared by every remote host of a run, as the operator gave them.
#[derive(Debug, Clone, Default)]
pub struct RemoteOptions {
    /// Private key files to offer, in order (empty: the user's default keys).
    pub keys: Vec<PathBuf>,
    /// The known-hosts file (default: the user's).
    pub known_hosts: Option<PathBuf>,
    /// Trust and record keys of hosts not known yet. Never overrides a changed key.
    pub accept_new: bool,
    /// Run the runner as root.
    pub become_root: bool,
    /// Ask for a login password (tried after every key).
    pub ask_pass: bool,
    /// Ask for the password that becoming root takes (implies `become_root`).
    pub ask_become_pass: bool,
    /// What becomes root on the host.
    pub become_method: BecomeMethod,
    /// Login user for hosts that name none, before the client config's.
    pub default_user: Option<String>,
    /// The client config file (default: the user's, when it exists).
    pub config: Option<PathBuf>,
}

/// A secret the controller must get from the operator before fan-out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Question<'a> {
    /// The login password (`ask_pass`).
    Password,
    /// The password for becoming root (`ask_become_pass`).
    BecomePassword,
    /// The passphrase of an encrypted key file.
    Passphrase(&'a Path),
}

impl Question<'_> {
    /// The prompt to show, ending in `": "`.
    pub fn prompt(&self) -> String {
        match self {
            Question::Password => "SSH password: ".into(),
            Question::BecomePassword => "sudo password: ".into(),
            Question::Passphrase(key) => format!("Passphrase for {}: ", key.display()),
        }
    }

    /// The environment variable that answers it without a terminal.
    pub fn env(&self) -> &'static str {
        match self {
            Question::Password => ssh::PASSWORD_ENV,
            Question::BecomePassword => ssh::BECOME_PASSWORD_ENV,
            Question::Passphrase(_) => ssh::PASSPHRASE_ENV,
        }
    }
}

/// One remote host. Unset fields come from the client config, then defaults.
#[derive(Debug, Clone)]
pub struct RemoteHost {
    /// What is connected to and what the client config matches: a name, alias or address.
    pub address: String,
    /// The port, when given.
    pub port: Option<u16>,
    /// The login user, when given.
    pub user: Option<String>,
    /// A key file for this host alone, offered before the shared ones.
    pub key: Option<PathBuf>,
    /// Whether to become root on this host, over the run's choice (`ansible_become`).
    pub become_root: Option<bool>,
    /// How to become root on this host, over the run's choice (`ansible_become_method`).
    pub become_method: Option<BecomeMethod>,
}

/// Why remote hosts cannot be reached with these options.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// A question could not be answered; the message is the controller's.
    #[error("{0}")]
    Unanswered(String),
    /// The options ask for something no host could do.
    #[error("{0}")]
    Options(String),
    /// The client config cannot be followed: unreadable, or a directive wisp cannot honour.
    #[error("SSH client config {0}")]
    Config(#[from] ssh::config::ConfigError),
}

/// Hands out transports for remote hosts, all sharing one run's options.
#[derive(Debug, Clone)]
pub struct Remote {
    options: Arc<ssh::SshOptions>,
}

impl Remote {
    /// Settles the options: reads the client config, and gets every secret they need through
    /// `answer` (asked only when its [`Question::env`] is unset; `Ok(None)` leaves it unasked,
    /// e.g. a passphrase without a terminal, to be refused at connect time if it is needed).
    pub fn new(
        options: RemoteOptions,
        mut answer: impl FnMut(Question<'_>) -> Result<Option<Secret>, String>,
    ) -> Result<Remote, RemoteError> {
        let keys = if options.keys.is_empty() {
            ssh::default_keys()
        } else {
            options.keys
        };
        if options.ask_become_pass && options.become_method == BecomeMethod::Doas {
            return Err(RemoteError::Options(
                "--ask-become-pass with --become-method doas: doas reads a password from a \
                 terminal only; give the login user a `permit nopass` rule in doas.conf, or use sudo"
                    .into(),
            ));
        }
        if options.become_method == BecomeMethod::Su && !options.ask_become_pass {
            return Err(RemoteError::Options(
                "--become-method su asks for root's password: give --ask-become-pass (or \
                 $WISP_BECOME_PASSWORD)"
                    .into(),
            ));
        }
        let known_hosts_given = options.known_hosts.is_some();
        let known_hosts = options.known_hosts.unwrap_or_else(ssh::default_known_hosts);
        let become_root = options.become_root || options.ask_become_pass;
        let mut ssh =
            ssh::SshOptions::new(keys, true, known_hosts, options.accept_new, become_root);
        let mut ask = |q: Question<'_>| match std::env::var(q.env()) {
            Ok(value) => Ok(Some(Secret::new(value))),
            Err(_) => answer(q).map_err(RemoteError::Unanswered),
        };
        ssh.become_method = options.become_method;
        if options.ask_pass {
            ssh.password = ask(Question::Password)?;
        }
        if options.ask_become_pass {
            ssh.become_password = ask(Question::BecomePassword)?;
        }
        // The passphrase variable answers every key at connect time; ask per key otherwise.
        if std::env::var_os(ssh::PASSPHRASE_ENV).is_none() {
            for key in ssh.keys.clone() {
                if ssh::is_encrypted_key(&key)
                    && let Some(phrase) =
                        answer(Question::Passphrase(&key)).map_err(RemoteError::Unanswered)?
                {
                    ssh.passphrases.insert(key, phrase);
                }
            }
        }
        ssh.default_user = options.default_user;
        ssh.known_hosts_given = known_hosts_given;
        ssh.ssh_config = match options.config {
            Some(path) => ssh::config::SshConfig::load(&path)?,
            None => ssh::config::SshConfig::user_default()?,
        };
        Ok(Remote {
            options: Arc::new(ssh),
        })
    }

    /// A transport for `host`.
    pub fn transport(&self, host: RemoteHost) -> Arc<dyn Transport> {
        let target = ssh::SshTarget {
            alias: host.address,
            host: None,
            port: host.port,
            user: host.user,
            key: host.key,
            become_root: host.become_root,
            become_method: host.become_method,
        };
        Arc::new(ssh::SshTransport::new(target, Arc::clone(&self.options)))
    }
}
