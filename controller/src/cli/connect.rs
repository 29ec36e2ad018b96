//! Connection flags turned into targets: each host named on the command line or selected from
//! the inventory, with the transport that reaches it. Remote hosts come from
//! [`wisp_transports::remote`], which alone knows what carries the connection; this module maps
//! flags to [`RemoteOptions`] and asks the operator the questions it returns.

use std::sync::Arc;

use wisp_transports::Transport;
use wisp_transports::local::LocalTransport;
use wisp_transports::remote::{BecomeMethod, Question, Remote, RemoteHost, RemoteOptions, Secret};

use super::options::RunOptions;
use crate::fleet::Target;
use wisp_events::exit::ExitStatus;
use wisp_inventory::{Connection, Inventory, ResolvedHost};
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
            super::options::BecomeMethodArg::Sudo => BecomeMethod::Sudo,
            super::options::BecomeMethodArg::Doas => BecomeMethod::Doas,
            super::options::BecomeMethodArg::Su => BecomeMethod::Su,
        },
        default_user: common.user.clone(),
        config: common.ssh_config.clone(),
    };
    // Every secret is asked once, here, before any host is contacted: no prompt races.
    let remote = Remote::new(options, ask).map_err(|e| TargetsError::Options(error_chain(&e)))?;
    if let Some(path) = &common.inventory {
        return from_inventory(path, spec, common, &local, &remote);
    }
    let mut out = Vec::new();
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
                    become_root: None,
                    become_method: None,
                };
                remote_target(&remote, spec.name, host, Default::default())
            }
        });
    }
    Ok(out)
}

/// The become method a host's `ansible_become_method` names, refusing what wisp cannot do
/// (another method, or becoming a user other than root for the whole connection) when the
/// host is to become anyone at all.
fn become_of(h: &ResolvedHost, common: &RunOptions) -> Result<Option<BecomeMethod>, String> {
    let becomes = h
        .become_root
        .unwrap_or(common.become_root || common.ask_become_pass);
    let method = match h.become_method.as_deref() {
        None => None,
        Some("sudo" | "ansible.builtin.sudo") => Some(BecomeMethod::Sudo),
        Some("doas" | "community.general.doas") => Some(BecomeMethod::Doas),
        Some("su" | "ansible.builtin.su") => Some(BecomeMethod::Su),
        Some(other) if becomes => {
            return Err(format!(
                "{}: ansible_become_method={other}: wisp becomes root with sudo, doas or su",
                h.name
            ));
        }
        Some(_) => None,
    };
    if let Some(user) = h.become_user.as_deref().filter(|u| *u != "root" && becomes) {
        return Err(format!(
            "{}: ansible_become_user={user}: wisp becomes root for the connection; run tasks \
             as {user} with become_user on the plan's tasks",
            h.name
        ));
    }
    Ok(method)
}

/// `--list-hosts`: the names `spec` selects, one a line, contacting no host.
pub(super) fn list_hosts(spec: &str, common: &RunOptions) -> ExitStatus {
    match resolve(spec, common) {
        Ok(targets) => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            for t in targets {
                let _ = writeln!(out, "{}", t.name);
            }
            ExitStatus::Ok
        }
        Err(TargetsError::Options(e)) => super::usage_error(&e),
        Err(TargetsError::Inventory(e)) => super::parse_error(&e),
    }
}

/// The targets `spec` selects from the inventory at `path` (after --limit), each with the
/// transport its connection settings ask for.
fn from_inventory(
    path: &std::path::Path,
    spec: &str,
    common: &RunOptions,
    local: &Arc<dyn Transport>,
    remote: &Remote,
) -> Result<Vec<Target>, TargetsError> {
    let mut out = Vec::new();
    let mut inv = Inventory::load(path).map_err(|e| TargetsError::Inventory(error_chain(&e)))?;
    if let Some(dir) = &common.playbook_dir {
        inv.add_vars_dirs(dir)
            .map_err(|e| TargetsError::Inventory(error_chain(&e)))?;
    }
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
        let local_conn = h.connection == Connection::Local
            || (name == "localhost" && !h.vars.contains_key("ansible_host"));
        let become_method = become_of(&h, common).map_err(TargetsError::Inventory)?;
        if local_conn {
            let transport = match h.become_root {
                Some(b) if b != common.become_root => Arc::new(LocalTransport { sudo: b }),
                _ => Arc::clone(local),
            };
            out.push(Target {
                name,
                transport,
                vars: h.vars,
                remote: None,
            });
            continue;
        }
        if let Connection::Other(how) = &h.connection {
            return Err(TargetsError::Inventory(format!(
                "{name}: ansible_connection={how}: wisp reaches hosts over SSH (or `local`); \
                 leave this host out with --limit '!{name}'"
            )));
        }
        // As with Ansible: the address (ansible_host, else the name) is what ssh_config
        // matches, and the inventory's user beats --user.
        let host = RemoteHost {
            address: h.address,
            port: h.port,
            user: h.user,
            key: h.key,
            become_root: h.become_root,
            become_method,
        };
        out.push(remote_target(remote, name, host, h.vars));
    }
    if out.is_empty() {
        return Err(TargetsError::Options(format!(
            "{spec:?} selects no host from {}",
            path.display()
        )));
    }
    Ok(out)
}

/// A remote host's target.
fn remote_target(
    remote: &Remote,
    name: String,
    host: RemoteHost,
    vars: wisp_inventory::Vars,
) -> Target {
    Target {
        name,
        transport: remote.transport(host.clone()),
        vars,
        remote: Some(host),
    }
}
