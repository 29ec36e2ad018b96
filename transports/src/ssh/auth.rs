//! Authentication at one hop: the agent's keys, then key files (an encrypted one with its
//! passphrase), then a password when one was given; what was tried, when nothing worked.

use super::*;

impl SshTransport {
    pub(super) async fn authenticate(
        &self,
        session: &mut Handle<HostKeyCheck>,
        t: &Hop,
    ) -> Result<(), TransportError> {
        let mut tried = Vec::new();
        if self.agent_keys(session, t, &mut tried).await {
            return Ok(());
        }
        let from_env = std::env::var(PASSPHRASE_ENV).ok();
        for path in &t.keys {
            let passphrase = self
                .options
                .passphrases
                .get(path)
                .map(Secret::expose)
                .or(from_env.as_deref());
            let key = match russh::keys::load_secret_key(path, passphrase) {
                Ok(k) => k,
                Err(russh::keys::Error::KeyIsEncrypted) => {
                    tried.push(format!(
                        "{} (encrypted: put its passphrase in ${PASSPHRASE_ENV})",
                        path.display()
                    ));
                    continue;
                }
                Err(e) => {
                    tried.push(format!("{} (unreadable: {e})", path.display()));
                    continue;
                }
            };
            let key = Arc::new(key);
            // Its certificate first (`KEY-cert.pub`, or a CertificateFile for this key).
            for cert in certificates_for(&key, path, &t.certificates) {
                match session
                    .authenticate_openssh_cert(t.user.as_str(), Arc::clone(&key), cert)
                    .await
                {
                    Ok(r) if r.success() => return Ok(()),
                    Ok(_) => tried.push(format!("{} (certificate)", path.display())),
                    Err(e) => return Err(ssh_error(t, e)),
                }
            }
            let hash = rsa_hash(session, key.public_key()).await;
            let key = PrivateKeyWithHashAlg::new(key, hash);
            match session.authenticate_publickey(t.user.as_str(), key).await {
                Ok(r) if r.success() => return Ok(()),
                Ok(_) => tried.push(path.display().to_string()),
                Err(e) => return Err(ssh_error(t, e)),
            }
        }
        if self.password(session, t, &mut tried).await? {
            return Ok(());
        }
        Err(TransportError::Auth {
            detail: format!(
                "{} refused every key offered: {}",
                t.label(),
                if tried.is_empty() {
                    "none (no agent, no key files: use --key FILE)".to_owned()
                } else {
                    tried.join(", ")
                }
            ),
        })
    }

    /// The `--ask-pass` password: as a password, then as the answer to a
    /// keyboard-interactive exchange (PAM asks for it that way where password
    /// authentication is off); true when it logged in.
    async fn password(
        &self,
        session: &mut Handle<HostKeyCheck>,
        t: &Hop,
        tried: &mut Vec<String>,
    ) -> Result<bool, TransportError> {
        use russh::client::KeyboardInteractiveAuthResponse as Answer;
        let Some(password) = &self.options.password else {
            return Ok(false);
        };
        match session
            .authenticate_password(t.user.as_str(), password.expose())
            .await
        {
            Ok(r) if r.success() => return Ok(true),
            Ok(_) => tried.push("password".into()),
            Err(e) => return Err(ssh_error(t, e)),
        }
        let mut answer = session
            .authenticate_keyboard_interactive_start(t.user.as_str(), None)
            .await
            .map_err(|e| ssh_error(t, e))?;
        // A few rounds: PAM asks once; an empty request or two may come around it.
        for _ in 0..4 {
            match answer {
                Answer::Success => return Ok(true),
                Answer::Failure { .. } => break,
                Answer::InfoRequest { prompts, .. } => {
                    // Hidden prompts get the password; shown ones (a name, a menu) nothing.
                    let replies = prompts
                        .iter()
                        .map(|p| {
                            if p.echo {
                                String::new()
                            } else {
                                password.expose().to_owned()
                            }
                        })
                        .collect();
                    answer = session
                        .authenticate_keyboard_interactive_respond(replies)
                        .await
                        .map_err(|e| ssh_error(t, e))?;
                }
            }
        }
        tried.push("keyboard-interactive".into());
        Ok(false)
    }

    /// Offers the agent's keys (those of the identity files alone, with `IdentitiesOnly`);
    /// true when one was accepted.
    async fn agent_keys(
        &self,
        session: &mut Handle<HostKeyCheck>,
        t: &Hop,
        tried: &mut Vec<String>,
    ) -> bool {
        let agent = match &t.agent {
            Some(AgentSocket::Env) if std::env::var_os("SSH_AUTH_SOCK").is_some() => {
                Some(AgentClient::connect_env().await.map_err(|e| e.to_string()))
            }
            Some(AgentSocket::Path(p)) => Some(
                AgentClient::connect_uds(p)
                    .await
                    .map_err(|e| format!("{e} (IdentityAgent {})", p.display())),
            ),
            _ => None,
        };
        // IdentitiesOnly: the agent signs only for the identity files' keys.
        let only: Option<Vec<russh::keys::PublicKey>> = t.identities_only.then(|| {
            t.keys
                .iter()
                .filter_map(|k| {
                    let public = std::fs::read_to_string(k.with_extension("pub")).ok()?;
                    russh::keys::PublicKey::from_openssh(public.trim()).ok()
                })
                .collect()
        });
        if let Some(agent) = agent {
            match agent {
                Ok(mut agent) => {
                    let identities = agent.request_identities().await.unwrap_or_default();
                    for identity in identities {
                        let AgentIdentity::PublicKey { key, comment } = identity else {
                            continue;
                        };
                        if only
                            .as_ref()
                            .is_some_and(|o| !o.iter().any(|k| k.key_data() == key.key_data()))
                        {
                            continue;
                        }
                        let hash = rsa_hash(session, &key).await;
                        match session
                            .authenticate_publickey_with(t.user.as_str(), key, hash, &mut agent)
                            .await
                        {
                            Ok(r) if r.success() => return true,
                            _ => tried.push(format!("agent key {comment}")),
                        }
                    }
                }
                Err(e) => tried.push(format!("ssh-agent ({e})")),
            }
        }
        false
    }
}

/// For RSA keys, the best signature hash the server accepts; `None` for other key types.
async fn rsa_hash(
    session: &Handle<HostKeyCheck>,
    key: &russh::keys::PublicKey,
) -> Option<russh::keys::HashAlg> {
    if !key.algorithm().is_rsa() {
        return None;
    }
    session
        .best_supported_rsa_hash()
        .await
        .ok()
        .flatten()
        .flatten()
}

/// The certificates for `key` (read from `path`): `PATH-cert.pub` beside it, then the
/// `CertificateFile`s, those whose key is this key.
fn certificates_for(
    key: &russh::keys::PrivateKey,
    path: &Path,
    files: &[PathBuf],
) -> Vec<russh::keys::Certificate> {
    let mut beside = path.as_os_str().to_owned();
    beside.push("-cert.pub");
    std::iter::once(PathBuf::from(beside))
        .chain(files.iter().cloned())
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .filter_map(|text| russh::keys::Certificate::from_openssh(text.trim()).ok())
        .filter(|c| c.public_key() == key.public_key().key_data())
        .collect()
}
