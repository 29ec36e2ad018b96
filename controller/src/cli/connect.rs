//! Connection flags turned into targets: each host named on the command line or selected from
//! the inventory, with the transport that reaches it. Remote hosts come from
//! [`wisp_transports::remote`], which alone knows what carries the connection; this module maps
//! flags to [`RemoteOptions`] and asks the operator the questions it returns.

use std::sync::Arc;

use wisp_transports::Transport;
use wisp_transports::local::LocalTransport;
use wisp_transports::remote::{Question, Remote, RemoteHost, RemoteOptions, Secret};

use super::options::RunOptions;
use crate::fleet::Target;
use wisp_inventory::Inventory;
use wisp_protocol::error::chain as error_chain;

/// Asks the operator on the terminal. Without one, a password is an error that names its
/// variable, and a key passphrase stays unasked (the key is refused if it is needed).
fn ask(question: Question<'_>) -> Result<Option<Secret>, String> {
    if let Question::Passphrase(key) = question {
        if std::fs::File::open("/dev/tty").is_err() {
            return Ok(None);
        }
        return rpassword::prompt_password(question.prompt())
            .map(|p| Some(Secret::new(p)))
            .map_err(|e| format!("cannot read the passphrase for {}: {e}", key.display()));
    }
    rpassword::prompt_password(question.prompt())
        .map(|p| Some(Secret::new(p)))
        .map_err(|e| {
            format!(
                "cannot ask for the {}: {e}; without a terminal, set ${}",
                question.prompt().trim_end_matches(": "),
                question.env()
            )
        })
}

/// Why the targets could not be worked out, with the exit status it deserves.
pub(super) enum TargetsError {
    Inventory(String),
    Options(String),
}

/// The hosts `spec` names (a host list, or a pattern over the inventory, narrowed by
/// `--limit`), each paired with the transport that reaches it.
pub(super) fn resolve(spec: &str, common: &RunOptions) -> Result<Vec<Target>, TargetsError> {
    let local: Arc<dyn Transport> = Arc::new(LocalTransport {
        sudo: common.become_root,
    });
    let options = RemoteOptions {
        keys: common.key.clone(),
        known_hosts: common.known_hosts.clone(),
        accept_new: common.accept_new,
        become_root: common.become_root,
        ask_pass: common.ask_pass,
        ask_become_pass: common.ask_become_pass,
        become_method: match common.become_method {
            super::options::BecomeMethodArg::Sudo => wisp_transports::remote::BecomeMethod::Sudo,
            super::options::BecomeMethodArg::Doas => wisp_transports::remote::BecomeMethod::Doas,
        },
        default_user: common.user.clone(),
        config: common.ssh_config.clone(),
    };
    // Every secret is asked once, here, before any host is contacted: no prompt races.
    let remote = Remote::new(options, ask).map_err(|e| TargetsError::Options(error_chain(&e)))?;
    let remote_target = |name: String, host: RemoteHost, vars| Target {
        name,
        transport: remote.transport(host.clone()),
        vars,
        remote: Some(host),
    };
    let mut out = Vec::new();
    if let Some(path) = &common.inventory {
        let inv = Inventory::load(path).map_err(|e| TargetsError::Inventory(error_chain(&e)))?;
        let mut names = wisp_inventory::select(&inv, spec).map_err(TargetsError::Options)?;
        if let Some(limit) = &common.limit {
            let allowed = wisp_inventory::select(&inv, limit)
                .map_err(|e| TargetsError::Options(format!("--limit: {e}")))?;
            names.retain(|n| allowed.contains(n));
        }
        let resolver = inv.resolver();
        for name in names {
            let Some(h) = resolver.resolve(&name) else {
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
                    remote: None,
                });
                continue;
            }
            // As with Ansible: the address (ansible_host, else the name) is what ssh_config
            // matches, and the inventory's user beats --user.
            let host = RemoteHost {
                address: h.address,
                port: h.port,
                user: h.user,
                key: h.key,
            };
            out.push(remote_target(name, host, h.vars));
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
    for spec in wisp_inventory::hostlist::parse_list(spec).map_err(TargetsError::Options)? {
        out.push(match spec.remote {
            None => Target {
                name: spec.name,
                transport: Arc::clone(&local),
                vars: Default::default(),
                remote: None,
            },
            Some(s) => {
                let host = RemoteHost {
                    address: s.host,
                    port: s.port,
                    user: s.user,
                    key: None,
                };
                remote_target(spec.name, host, Default::default())
            }
        });
    }
    Ok(out)
}
