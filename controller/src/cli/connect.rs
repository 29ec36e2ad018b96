//! Connection flags turned into targets: each host named on the command line or selected from
//! the inventory, with the transport that reaches it. The one module of the CLI that knows
//! remote hosts are reached over SSH; everything below sees [`Target`]s.

use std::sync::Arc;

use wisp_transports::Transport;
use wisp_transports::local::LocalTransport;
use wisp_transports::ssh;

use super::common::Common;
use crate::fleet::Target;
use crate::inventory::{self, Inventory};

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
pub(super) enum TargetsError {
    Inventory(String),
    Options(String),
}

pub(super) fn targets(spec: &str, common: &Common) -> Result<Vec<Target>, TargetsError> {
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
