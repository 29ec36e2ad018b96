//! `~/.ssh/config`, the parts wisp uses: `Host` blocks (patterns with `*`, `?` and `!`),
//! `HostName`, `User`, `Port`, `IdentityFile`, `ProxyJump`, `ConnectTimeout` and
//! `ServerAliveInterval`. As in OpenSSH, the first value found for a keyword wins, except
//! `IdentityFile`, which accumulates; lines before the first `Host` apply to every host.
//! `Match` blocks and `Include` are not understood: their lines are skipped, never misapplied.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::known_hosts::glob;

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
    /// `ProxyJump`: hops as written (`[user@]host[:port]`), or empty for none.
    pub proxy_jump: Vec<String>,
    /// `ConnectTimeout`.
    pub connect_timeout: Option<Duration>,
    /// `ServerAliveInterval`.
    pub server_alive_interval: Option<Duration>,
}

/// A parsed config file.
#[derive(Debug, Clone, Default)]
pub struct SshConfig {
    blocks: Vec<Block>,
}

#[derive(Debug, Clone)]
struct Block {
    /// `None` for the lines before the first `Host`, and for `Match` blocks (skipped).
    patterns: Option<Vec<String>>,
    skip: bool,
    options: Vec<(String, String)>,
}

impl SshConfig {
    /// Reads `path`; a missing file is an empty config.
    pub fn load(path: &Path) -> std::io::Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Self::parse(&text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e),
        }
    }

    /// `~/.ssh/config`, if `$HOME` is set and it exists.
    pub fn user_default() -> Self {
        std::env::var_os("HOME")
            .and_then(|h| Self::load(&Path::new(&h).join(".ssh/config")).ok())
            .unwrap_or_default()
    }

    /// Parses config text.
    pub fn parse(text: &str) -> Self {
        let mut blocks = vec![Block {
            patterns: None,
            skip: false,
            options: Vec::new(),
        }];
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = match line.split_once(|c: char| c.is_whitespace() || c == '=') {
                Some((k, v)) => (
                    k.to_ascii_lowercase(),
                    v.trim_start_matches(|c: char| c.is_whitespace() || c == '=')
                        .trim(),
                ),
                None => (line.to_ascii_lowercase(), ""),
            };
            let value = value.trim_matches('"').to_owned();
            match key.as_str() {
                "host" => blocks.push(Block {
                    patterns: Some(value.split_whitespace().map(str::to_owned).collect()),
                    skip: false,
                    options: Vec::new(),
                }),
                "match" => blocks.push(Block {
                    patterns: None,
                    skip: true,
                    options: Vec::new(),
                }),
                _ => {
                    if let Some(b) = blocks.last_mut() {
                        b.options.push((key, value));
                    }
                }
            }
        }
        Self { blocks }
    }

    /// The settings for `alias` (the name as given on the command line), for `user`.
    pub fn for_host(&self, alias: &str) -> HostConfig {
        let mut c = HostConfig::default();
        let mut jump_set = false;
        for block in &self.blocks {
            let applies = match (&block.patterns, block.skip) {
                (_, true) => false,
                (None, false) => true,
                (Some(p), false) => host_matches(p, alias),
            };
            if !applies {
                continue;
            }
            for (key, value) in &block.options {
                match key.as_str() {
                    "hostname" if c.hostname.is_none() => {
                        c.hostname = Some(value.replace("%h", alias))
                    }
                    "user" if c.user.is_none() => c.user = Some(value.clone()),
                    "port" if c.port.is_none() => c.port = value.parse().ok(),
                    "identityfile" => c.identity_files.push(PathBuf::from(value)),
                    "proxyjump" if !jump_set => {
                        jump_set = true;
                        if !value.eq_ignore_ascii_case("none") {
                            c.proxy_jump = value
                                .split(',')
                                .map(|h| h.trim().to_owned())
                                .filter(|h| !h.is_empty())
                                .collect();
                        }
                    }
                    "connecttimeout" if c.connect_timeout.is_none() => {
                        c.connect_timeout = value.parse().ok().map(Duration::from_secs);
                    }
                    "serveraliveinterval" if c.server_alive_interval.is_none() => {
                        c.server_alive_interval = value
                            .parse()
                            .ok()
                            .filter(|s| *s > 0)
                            .map(Duration::from_secs);
                    }
                    _ => {}
                }
            }
        }
        c
    }
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
        let c = SshConfig::parse(CONFIG).for_host("web-1");
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
        let c = SshConfig::parse(CONFIG).for_host("web-legacy");
        assert_eq!(c.hostname, None);
        assert_eq!(c.port, None, "the Match block is skipped, not applied");
        let none =
            SshConfig::parse("Host a\n ProxyJump none\nHost *\n ProxyJump b\n").for_host("a");
        assert!(
            none.proxy_jump.is_empty(),
            "ProxyJump none stops the search"
        );
    }
}
