//! The server's host key, checked against known_hosts as the handshake offers it: strict by
//! default, `--accept-new` recording it (locked), a changed key always refused.

use super::*;

/// The host-key check russh calls during key exchange; records why it refused.
pub(super) struct HostKeyCheck {
    pub(super) hop: Hop,
    pub(super) refusal: Arc<Mutex<Option<String>>>,
    /// The key accepted, as `ALGORITHM SHA256:...`.
    pub(super) accepted: Arc<Mutex<Option<String>>>,
}

impl HostKeyCheck {
    pub(super) fn verdict(&self, offered: &PublicKeyOrCertificate) -> Result<(), String> {
        let path = &self.hop.known_hosts;
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let (host, port) = (self.hop.host.as_str(), self.hop.port);
        let name = known_hosts::host_entry_name(host, port);
        let key = match offered {
            PublicKeyOrCertificate::PublicKey { key, .. } => key,
            PublicKeyOrCertificate::Certificate(cert) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                // --accept-new never applies: trusting a certificate is the CA's to say.
                return known_hosts::check_certificate(&text, host, port, cert, now).map_err(
                    |why| {
                        format!(
                            "host certificate of {name} refused: {why} (CAs are trusted with \
                             @cert-authority lines in {})",
                            path.display()
                        )
                    },
                );
            }
        };
        let shown = format!("{} {}", key.algorithm(), known_hosts::fingerprint(key));
        let verdict = known_hosts::check(&text, host, port, key);
        if matches!(verdict, known_hosts::Verdict::Unknown { .. })
            && !known_hosts::authorities(&text, host, port).is_empty()
        {
            // Pinning the plain key (--accept-new) would step around the CA.
            return Err(format!(
                "{name} offered a plain host key ({shown}) where {} trusts a CA for it: give \
                 the host its certificate (sshd's HostCertificate); --accept-new does not \
                 record keys of hosts a CA speaks for",
                path.display()
            ));
        }
        match verdict {
            known_hosts::Verdict::Known => Ok(()),
            // A key of a new type beside a recorded one is a changed key (as OpenSSH
            // treats it): an attacker with a fresh key would pick a type never recorded.
            known_hosts::Verdict::Unknown { other_types } if !other_types.is_empty() => {
                Err(format!(
                    "HOST KEY OF {name} HAS CHANGED: it offered {shown}, but {} records only {} keys for it. This can be a man-in-the-middle attack. If the host really changed its keys, remove the old ones with `ssh-keygen -R '{name}' -f {}`; --accept-new never adds a key of a new type beside a recorded one",
                    path.display(),
                    other_types.join(", "),
                    path.display()
                ))
            }
            known_hosts::Verdict::Unknown { .. } if self.hop.accept_new => {
                known_hosts::learn(path, host, port, key).map_err(|e| {
                    format!(
                        "cannot record the host key of {name} in {}: {e}",
                        path.display()
                    )
                })
            }
            known_hosts::Verdict::Unknown { .. } => Err(format!(
                "host key of {name} is not in {}: it offered {shown}. Check that fingerprint, then run once with --accept-new (or add it with `ssh-keyscan -p {port} {host} >> {}`)",
                path.display(),
                path.display()
            )),
            known_hosts::Verdict::Changed { line } => Err(format!(
                "HOST KEY OF {name} HAS CHANGED: it offered {shown}, which differs from line {line} of {}. This can be a man-in-the-middle attack. If the host was reinstalled, remove the old key with `ssh-keygen -R '{name}' -f {}`; --accept-new never overrides a changed key",
                path.display(),
                path.display()
            )),
            known_hosts::Verdict::Revoked { line } => Err(format!(
                "host key of {name} ({shown}) is marked @revoked on line {line} of {}",
                path.display()
            )),
        }
    }
}

impl client::Handler for HostKeyCheck {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        offered: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        match self.verdict(offered) {
            Ok(()) => {
                let shown = match offered {
                    PublicKeyOrCertificate::PublicKey { key, .. } => {
                        format!("{} {}", key.algorithm(), known_hosts::fingerprint(key))
                    }
                    PublicKeyOrCertificate::Certificate(cert) => {
                        let key = russh::keys::PublicKey::from(cert.public_key().clone());
                        format!("{} {}", key.algorithm(), known_hosts::fingerprint(&key))
                    }
                };
                if let Ok(mut a) = self.accepted.lock() {
                    *a = Some(shown);
                }
                Ok(true)
            }
            Err(why) => {
                if let Ok(mut r) = self.refusal.lock() {
                    *r = Some(why);
                }
                Ok(false)
            }
        }
    }
}
