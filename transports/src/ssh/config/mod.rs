//! `~/.ssh/config` with OpenSSH's meaning: `Host` blocks (patterns with `*`, `?` and `!`),
//! `Match` blocks (`all`, `host`, `originalhost`, `user`, `localuser`, `exec`), `Include`
//! (globs, relative to `~/.ssh`), and the directives that decide how a host is reached:
//! `HostName`, `User`, `Port`, `IdentityFile`, `IdentitiesOnly`, `IdentityAgent`,
//! `ProxyJump`, `ProxyCommand`, `ConnectTimeout`, `ServerAliveInterval`,
//! `StrictHostKeyChecking`, `UserKnownHostsFile`. As in OpenSSH, the first value found for a
//! keyword wins, except `IdentityFile`, which accumulates; lines before the first `Host`
//! apply to every host. A directive wisp cannot honour is an error naming its file and line
//! ([`directives`]), never skipped.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::known_hosts::glob;

mod directives;
mod parse;

/// What the config says about one host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostConfig {
    /// `HostName`, with `%h` expanded.
    pub hostname: Option<String>,
    /// `User`.
    pub user: Option<String>,
    /// `Port`.
    pub port: Option<u16>,
    /// `IdentityFile`s, in order, with `~`, `%d`, `%h`, `%r`, `%u` expanded.
    pub identity_files: Vec<PathBuf>,
    /// `IdentitiesOnly yes`: offer only the identity files, none of the agent's other keys.
    pub identities_only: bool,
    /// `IdentityAgent`: `none` (no agent), or the agent's socket.
    pub identity_agent: Option<String>,
    /// `ProxyJump`: hops as written (`[user@]host[:port]`), or empty for none.
    pub proxy_jump: Vec<String>,
    /// `ProxyCommand`, as written (`%h`, `%p`, `%r`, `%n` expanded when it runs).
    pub proxy_command: Option<String>,
    /// `ConnectTimeout`.
    pub connect_timeout: Option<Duration>,
    /// `ServerAliveInterval`.
    pub server_alive_interval: Option<Duration>,
    /// `StrictHostKeyChecking`, lower case (`yes`, `accept-new`, `no`, `off`, `ask`).
    pub strict_host_key_checking: Option<String>,
    /// `UserKnownHostsFile`s, `~` expanded (`none`: none).
    pub user_known_hosts_files: Vec<PathBuf>,
    /// `CertificateFile`s, `~` expanded: user certificates to offer with their keys.
    pub certificate_files: Vec<PathBuf>,
}

/// A config that wisp cannot follow: the file, the line and why.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}:{line}: {message}", file.display())]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// The line (0: the file itself).
    pub line: usize,
    /// What is wrong, and what to do.
    pub message: String,
}

/// A parsed config file, its includes followed.
#[derive(Debug, Clone, Default)]
pub struct SshConfig {
    blocks: Vec<Block>,
}

#[derive(Debug, Clone)]
struct Block {
    cond: Cond,
    options: Vec<Opt>,
}

#[derive(Debug, Clone)]
struct Opt {
    key: String,
    value: String,
    #[allow(dead_code)] // kept for messages about a value that does not parse
    file: PathBuf,
    #[allow(dead_code)]
    line: usize,
}

/// When a block applies.
#[derive(Debug, Clone)]
enum Cond {
    /// Lines before the first `Host` or `Match`.
    All,
    /// `Host` patterns, against the name as given.
    Host(Vec<String>),
    /// `Match` criteria, all of which must hold.
    Match(Vec<Criterion>),
}

#[derive(Debug, Clone)]
enum Criterion {
    Always,
    Host(Vec<String>),
    OriginalHost(Vec<String>),
    User(Vec<String>),
    LocalUser(Vec<String>),
    Exec(String),
    Not(Box<Criterion>),
}

impl SshConfig {
    /// Reads `path` and what it includes; a missing file is an empty config.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        if !path.exists() {
            return Ok(Self::default());
        }
        let mut blocks = Vec::new();
        parse::file(path, &Cond::All, 0, &mut blocks)?;
        Ok(Self { blocks })
    }

    /// `~/.ssh/config`, if `$HOME` is set and it exists.
    pub fn user_default() -> Result<Self, ConfigError> {
        match std::env::var_os("HOME") {
            Some(h) => Self::load(&Path::new(&h).join(".ssh/config")),
            None => Ok(Self::default()),
        }
    }

    /// Parses config text (for tests; `Include`s are read relative to the working
    /// directory).
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let mut blocks = Vec::new();
        parse::text_into(text, Path::new("ssh_config"), &Cond::All, 0, &mut blocks)?;
        Ok(Self { blocks })
    }

    /// The settings for `alias` (the name as given), logging in as `user` when that is
    /// already known (given with the host or by `--user`).
    pub fn for_host(&self, alias: &str, user: Option<&str>) -> HostConfig {
        let mut c = HostConfig::default();
        let mut set = std::collections::HashSet::new();
        for block in &self.blocks {
            if !self.applies(&block.cond, alias, user, &c) {
                continue;
            }
            for o in &block.options {
                // ProxyJump and ProxyCommand compete: whichever comes first wins.
                let slot = match o.key.as_str() {
                    "proxyjump" | "proxycommand" => "proxy",
                    k => k,
                };
                let first = set.insert(slot.to_owned());
                apply(&mut c, o, alias, first);
            }
        }
        c
    }

    fn applies(&self, cond: &Cond, alias: &str, user: Option<&str>, c: &HostConfig) -> bool {
        match cond {
            Cond::All => true,
            Cond::Host(p) => host_matches(p, alias),
            Cond::Match(all) => all.iter().all(|m| criterion(m, alias, user, c)),
        }
    }
}

/// Applies one directive (`first`: no earlier value of it was seen).
fn apply(c: &mut HostConfig, o: &Opt, alias: &str, first: bool) {
    let value = o.value.as_str();
    let on = |v: &str| v.eq_ignore_ascii_case("yes") || v.eq_ignore_ascii_case("true");
    match o.key.as_str() {
        "identityfile" => c.identity_files.push(PathBuf::from(value)),
        "certificatefile" => c.certificate_files.push(expand_tilde(value)),
        _ if !first => {}
        "hostname" => c.hostname = Some(value.replace("%h", alias)),
        "user" => c.user = Some(value.to_owned()),
        "port" => c.port = value.parse().ok(),
        "identitiesonly" => c.identities_only = on(value),
        "identityagent" => c.identity_agent = Some(value.to_owned()),
        "proxyjump" if !value.eq_ignore_ascii_case("none") => {
            c.proxy_jump = value
                .split(',')
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
                .collect();
        }
        "proxycommand" if !value.eq_ignore_ascii_case("none") => {
            c.proxy_command = Some(value.to_owned());
        }
        "connecttimeout" => c.connect_timeout = value.parse().ok().map(Duration::from_secs),
        "serveraliveinterval" => {
            c.server_alive_interval = value
                .parse()
                .ok()
                .filter(|s| *s > 0)
                .map(Duration::from_secs);
        }
        "stricthostkeychecking" => c.strict_host_key_checking = Some(value.to_ascii_lowercase()),
        "userknownhostsfile" => {
            c.user_known_hosts_files = value
                .split_whitespace()
                .filter(|f| !f.eq_ignore_ascii_case("none"))
                .map(expand_tilde)
                .collect();
        }
        _ => {}
    }
}

fn expand_tilde(p: &str) -> PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest),
        _ => PathBuf::from(p),
    }
}

fn criterion(m: &Criterion, alias: &str, user: Option<&str>, c: &HostConfig) -> bool {
    let local_user = std::env::var("USER").unwrap_or_default();
    let host = c.hostname.clone().unwrap_or_else(|| alias.to_owned());
    let user = user
        .map(str::to_owned)
        .or_else(|| c.user.clone())
        .unwrap_or_else(|| local_user.clone());
    match m {
        Criterion::Always => true,
        Criterion::Host(p) => host_matches(p, &host),
        Criterion::OriginalHost(p) => host_matches(p, alias),
        Criterion::User(p) => host_matches(p, &user),
        Criterion::LocalUser(p) => host_matches(p, &local_user),
        Criterion::Exec(cmd) => {
            let cmd = tokens(cmd, &host, alias, c.port.unwrap_or(22), &user);
            std::process::Command::new("sh")
                .args(["-c", &cmd])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        }
        Criterion::Not(inner) => !criterion(inner, alias, user.as_str().into(), c),
    }
}

/// OpenSSH's `%` tokens in a command: `%h` host, `%n` name as given, `%p` port, `%r` remote
/// user, `%u` local user, `%d` home, `%%` a percent sign.
pub fn tokens(text: &str, host: &str, alias: &str, port: u16, user: &str) -> String {
    let home = std::env::var("HOME").unwrap_or_default();
    let local_user = std::env::var("USER").unwrap_or_default();
    text.replace("%%", "\u{0}")
        .replace("%h", host)
        .replace("%n", alias)
        .replace("%p", &port.to_string())
        .replace("%r", user)
        .replace("%u", &local_user)
        .replace("%d", &home)
        .replace('\u{0}', "%")
}

impl HostConfig {
    /// Expands `~` and `%` tokens in the identity files for the final host and user.
    pub fn expand_identities(&self, host: &str, user: &str) -> Vec<PathBuf> {
        let home = std::env::var("HOME").unwrap_or_default();
        let local_user = std::env::var("USER").unwrap_or_default();
        self.identity_files
            .iter()
            .map(|p| {
                let s = p.to_string_lossy();
                let s = match s.strip_prefix("~/") {
                    Some(rest) => format!("{home}/{rest}"),
                    None => s.into_owned(),
                };
                PathBuf::from(
                    s.replace("%%", "\u{0}")
                        .replace("%d", &home)
                        .replace("%h", host)
                        .replace("%r", user)
                        .replace("%u", &local_user)
                        .replace('\u{0}', "%"),
                )
            })
            .collect()
    }
}

fn host_matches(patterns: &[String], alias: &str) -> bool {
    let mut positive = false;
    for p in patterns {
        if let Some(neg) = p.strip_prefix('!') {
            if glob(neg, alias) {
                return false;
            }
        } else if glob(p, alias) {
            positive = true;
        }
    }
    positive
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "
User everyone-default
Host web-* !web-legacy
  HostName %h.internal
  Port 2200
  IdentityFile ~/.ssh/web
Host web-1
  User not-used-first-wins
  HostName ignored
Host *
  IdentityFile ~/.ssh/id_ed25519
  ProxyJump bastion,ops@inner:2222
  ConnectTimeout 7
Match user root
  Port 1
";

    #[test]
    fn first_value_wins_and_identity_files_accumulate() {
        let c = SshConfig::parse(CONFIG).unwrap().for_host("web-1", None);
        assert_eq!(c.hostname.as_deref(), Some("web-1.internal"));
        assert_eq!(c.user.as_deref(), Some("everyone-default"));
        assert_eq!(c.port, Some(2200));
        assert_eq!(
            c.identity_files,
            [
                PathBuf::from("~/.ssh/web"),
                PathBuf::from("~/.ssh/id_ed25519")
            ]
        );
        assert_eq!(c.proxy_jump, ["bastion", "ops@inner:2222"]);
        assert_eq!(c.connect_timeout, Some(Duration::from_secs(7)));
    }

    #[test]
    fn negated_patterns_and_match_blocks() {
        let config = SshConfig::parse(CONFIG).unwrap();
        let c = config.for_host("web-legacy", None);
        assert_eq!(c.hostname, None);
        assert_eq!(
            c.port, None,
            "Match user root: the user is everyone-default"
        );
        assert_eq!(config.for_host("web-legacy", Some("root")).port, Some(1));
        let none = SshConfig::parse("Host a\n ProxyJump none\nHost *\n ProxyJump b\n")
            .unwrap()
            .for_host("a", None);
        assert!(
            none.proxy_jump.is_empty(),
            "ProxyJump none stops the search"
        );
    }

    #[test]
    fn match_host_exec_and_proxy_command_first_wins() {
        let text = "Match host *.internal exec \"test %h = db.internal\"\n  Port 2201\n\
                    Host db\n  HostName db.internal\n\
                    Host *\n  ProxyCommand ssh -W %h:%p bastion\n  ProxyJump other\n";
        let config = SshConfig::parse(text).unwrap();
        let c = config.for_host("db", None);
        assert_eq!(
            c.port, None,
            "Match is read where it stands: HostName came after it"
        );
        assert_eq!(c.proxy_command.as_deref(), Some("ssh -W %h:%p bastion"));
        assert!(c.proxy_jump.is_empty(), "ProxyCommand came first");
        let later = SshConfig::parse(&format!("Host db\n  HostName db.internal\n{text}"))
            .unwrap()
            .for_host("db", None);
        assert_eq!(
            later.port,
            Some(2201),
            "Match host sees the HostName, exec ran"
        );
    }

    #[test]
    fn what_wisp_cannot_honour_is_refused_with_its_line() {
        for (text, words) in [
            (
                "Host a\n  RemoteCommand reboot\n",
                "ssh_config:2: remotecommand reboot",
            ),
            (
                "Host a\n  HostKeyAlias other\n",
                "ssh_config:2: hostkeyalias",
            ),
            (
                "Host a\n  Frobnicate yes\n",
                "ssh_config:2: frobnicate: not a directive",
            ),
            (
                "Match canonical final\nMatch tagged x\n",
                "ssh_config:2: Match tagged",
            ),
            (
                "CanonicalizeHostname yes\n",
                "ssh_config:1: canonicalizehostname",
            ),
        ] {
            let e = SshConfig::parse(text).unwrap_err().to_string();
            assert!(e.starts_with(words), "{e}");
        }
        assert!(SshConfig::parse("ForwardAgent yes\nCanonicalizeHostname no\n").is_ok());
    }

    #[test]
    fn includes_are_read_where_they_stand() {
        let dir = std::env::temp_dir().join(format!("wisp-sshcfg-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("conf.d")).unwrap();
        std::fs::write(dir.join("conf.d/10-web"), "Host web\n  Port 2222\n").unwrap();
        std::fs::write(dir.join("conf.d/20-db"), "Host db\n  Port 5432\n").unwrap();
        let main = dir.join("config");
        std::fs::write(
            &main,
            format!("Include {}/conf.d/*\nHost *\n  User ops\n", dir.display()),
        )
        .unwrap();
        let config = SshConfig::load(&main).unwrap();
        assert_eq!(config.for_host("web", None).port, Some(2222));
        assert_eq!(config.for_host("db", None).port, Some(5432));
        assert_eq!(config.for_host("db", None).user.as_deref(), Some("ops"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
