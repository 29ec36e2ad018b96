//! The way to a host: the target and each `ProxyJump` hop resolved through ssh_config, and
//! one authenticated session opened per hop (later hops through the previous one's tunnel).

use super::*;

/// One connection of the chain: a jump host, or the target itself, fully resolved.
#[derive(Debug, Clone)]
pub(super) struct Hop {
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) user: String,
    pub(super) keys: Vec<PathBuf>,
    pub(super) tcp_timeout: Option<Duration>,
    pub(super) keepalive: Option<Duration>,
    /// The known_hosts file its key is checked against (`--known-hosts`, else ssh_config's
    /// `UserKnownHostsFile`, else `~/.ssh/known_hosts`).
    pub(super) known_hosts: PathBuf,
    /// Record its key when unknown (`--accept-new`, or `StrictHostKeyChecking accept-new`;
    /// `no` is taken as `accept-new`: a changed key is still refused).
    pub(super) accept_new: bool,
    /// The agent to ask for keys: `None` for none (`IdentityAgent none`).
    pub(super) agent: Option<AgentSocket>,
    /// `IdentitiesOnly`: of the agent's keys, offer only those of the identity files.
    pub(super) identities_only: bool,
    /// `ProxyCommand`, tokens expanded: its stdin and stdout carry the connection.
    pub(super) proxy_command: Option<String>,
    /// `CertificateFile`s, expanded: user certificates offered with their keys.
    pub(super) certificates: Vec<PathBuf>,
}

/// Where the agent is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum AgentSocket {
    /// `$SSH_AUTH_SOCK`.
    Env,
    /// A socket named by `IdentityAgent`.
    Path(PathBuf),
}

impl Hop {
    pub(super) fn label(&self) -> String {
        format!("{}@{}:{}", self.user, self.host, self.port)
    }
}

impl SshTransport {
    /// Resolves a name through ssh_config: explicit settings first, then `--user`, then the
    /// config, then defaults.
    pub(super) fn resolve(
        &self,
        alias: &str,
        host: Option<String>,
        port: Option<u16>,
        user: Option<String>,
        key: Option<PathBuf>,
    ) -> Hop {
        let hint = user.clone().or_else(|| self.options.default_user.clone());
        let c = self.options.ssh_config.for_host(alias, hint.as_deref());
        let host = host
            .or_else(|| c.hostname.clone())
            .unwrap_or_else(|| alias.to_owned());
        let user = user
            .or_else(|| self.options.default_user.clone())
            .or_else(|| c.user.clone())
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "root".into());
        let mut keys: Vec<PathBuf> = key.into_iter().collect();
        for k in c
            .expand_identities(&host, &user)
            .into_iter()
            .chain(self.options.keys.iter().cloned())
        {
            if !keys.contains(&k) && (k.is_file() || self.options.keys.contains(&k)) {
                keys.push(k);
            }
        }
        let port = port.or(c.port).unwrap_or(22);
        let known_hosts = match c.user_known_hosts_files.first() {
            Some(f) if !self.options.known_hosts_given => f.clone(),
            _ => self.options.known_hosts.clone(),
        };
        let strict = c.strict_host_key_checking.as_deref();
        let agent = match c.identity_agent.as_deref() {
            _ if !self.options.use_agent => None,
            Some(a) if a.eq_ignore_ascii_case("none") => None,
            None | Some("SSH_AUTH_SOCK") => Some(AgentSocket::Env),
            Some(a) => Some(AgentSocket::Path(PathBuf::from(config::tokens(
                &a.replace('~', "%d"),
                &host,
                alias,
                port,
                &user,
            )))),
        };
        Hop {
            proxy_command: c
                .proxy_command
                .as_deref()
                .map(|cmd| config::tokens(cmd, &host, alias, port, &user)),
            host,
            port,
            user,
            keys,
            tcp_timeout: c.connect_timeout,
            keepalive: c.server_alive_interval,
            known_hosts,
            accept_new: self.options.accept_new
                || matches!(strict, Some("accept-new" | "no" | "off")),
            agent,
            identities_only: c.identities_only,
            certificates: c.certificate_files.clone(),
        }
    }

    /// The jump hosts from ssh_config's `ProxyJump`, then the target.
    pub(super) fn hops(&self) -> Result<Vec<Hop>, TransportError> {
        let t = &self.target;
        let mut hops = Vec::new();
        let hint = t.user.clone().or_else(|| self.options.default_user.clone());
        let target = self.options.ssh_config.for_host(&t.alias, hint.as_deref());
        for jump in target.proxy_jump {
            let hop = HostAddress::parse(&jump).map_err(|e| TransportError::Handshake {
                detail: format!("ProxyJump {jump:?} for {}: {e}", t.alias),
            })?;
            hops.push(self.resolve(&hop.host, None, hop.port, hop.user, None));
        }
        hops.push(self.resolve(
            &t.alias,
            t.host.clone(),
            t.port,
            t.user.clone(),
            t.key.clone(),
        ));
        Ok(hops)
    }

    /// Opens an authenticated session to `hop`, over `stream` (TCP, or a tunnel through the
    /// previous hop).
    pub(super) async fn connect_hop<S>(
        &self,
        hop: &Hop,
        stream: S,
    ) -> Result<(Handle<HostKeyCheck>, String), TransportError>
    where
        S: AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let mut preferred = russh::Preferred::default();
        if let Ok(text) = std::fs::read_to_string(&hop.known_hosts) {
            let recorded = known_hosts::recorded_algorithms(&text, &hop.host, hop.port);
            preferred.key = known_hosts::prefer_recorded(&preferred.key, &recorded).into();
            // A host a CA is trusted for is asked for its certificate first.
            if !known_hosts::authorities(&text, &hop.host, hop.port).is_empty() {
                preferred.host_key_certificates = preferred.key.clone();
            }
        }
        let config = Arc::new(client::Config {
            keepalive_interval: Some(hop.keepalive.unwrap_or(Duration::from_secs(15))),
            keepalive_max: 3,
            nodelay: true,
            preferred,
            ..client::Config::default()
        });
        let refusal = Arc::new(Mutex::new(None));
        let accepted = Arc::new(Mutex::new(None));
        let check = HostKeyCheck {
            hop: hop.clone(),
            refusal: Arc::clone(&refusal),
            accepted: Arc::clone(&accepted),
        };
        let mut session = match client::connect_stream(config, stream, check).await {
            Ok(s) => s,
            Err(e) => {
                let why = refusal.lock().ok().and_then(|mut r| r.take());
                return Err(match why {
                    Some(detail) => TransportError::HostKey { detail },
                    None if dropped(&e) => TransportError::Dropped {
                        detail: format!(
                            "{} closed the connection during the SSH handshake ({e})",
                            hop.label()
                        ),
                    },
                    None => ssh_error(hop, e),
                });
            }
        };
        self.authenticate(&mut session, hop).await?;
        let key = accepted.lock().ok().and_then(|mut a| a.take());
        Ok((session, key.unwrap_or_default()))
    }
}
