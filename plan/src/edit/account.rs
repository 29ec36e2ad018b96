//! `user` and `group` as Ansible's modules have them, computed by the controller: the host's
//! `/etc/passwd` and `/etc/group` read, what differs from what is asked found here, and the
//! host's own `useradd`/`usermod`/`userdel` (`groupadd`/`groupmod`/`groupdel`) run to change
//! only that.

use crate::data::{Data, DataMap};

/// The account ops.
pub const ACCOUNT_OPS: &[&str] = &["user", "group"];

/// The files an account op reads.
pub const ACCOUNT_FILES: &[&str] = &["/etc/passwd", "/etc/group"];

/// One `/etc/passwd` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Passwd {
    name: String,
    uid: i64,
    gid: i64,
    comment: String,
    home: String,
    shell: String,
}

fn passwd(text: &str) -> Vec<Passwd> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 7).then(|| Passwd {
                name: f[0].into(),
                uid: f[2].parse().unwrap_or(-1),
                gid: f[3].parse().unwrap_or(-1),
                comment: f[4].into(),
                home: f[5].into(),
                shell: f[6].into(),
            })
        })
        .collect()
}

/// `/etc/group`: name, gid, members.
fn groups(text: &str) -> Vec<(String, i64, Vec<String>)> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 4).then(|| {
                let members = f[3]
                    .split(',')
                    .filter(|m| !m.is_empty())
                    .map(str::to_owned)
                    .collect();
                (f[0].to_owned(), f[2].parse().unwrap_or(-1), members)
            })
        })
        .collect()
}

/// What an account op found to do: the command to run (none when the host already is as
/// asked) and the result fields Ansible returns.
#[derive(Debug)]
pub struct AccountChange {
    /// The command, when something changes.
    pub argv: Option<Vec<String>>,
    /// `name`, `state`, and what the account has (`uid`, `group`, `home`, `shell`, ...).
    pub result: DataMap,
}

fn text(args: &DataMap, k: &str) -> Result<Option<String>, String> {
    match args.get(k) {
        None | Some(Data::Null) => Ok(None),
        Some(Data::Str(s)) => Ok(Some(s.clone())),
        Some(Data::Int(i)) => Ok(Some(i.to_string())),
        Some(other) => Err(format!("{k} must be text, not {other:?}")),
    }
}

fn flag(args: &DataMap, k: &str, default: bool) -> Result<bool, String> {
    match args.get(k) {
        None | Some(Data::Null) => Ok(default),
        Some(Data::Bool(b)) => Ok(*b),
        Some(other) => Err(format!("{k} must be true or false, not {other:?}")),
    }
}

/// The args each account op takes.
pub fn known_args(op: &str) -> &'static [&'static str] {
    if op == "group" {
        &["name", "gid", "state", "system"]
    } else {
        &[
            "name",
            "uid",
            "group",
            "groups",
            "append",
            "shell",
            "home",
            "create_home",
            "system",
            "comment",
            "password",
            "state",
            "remove",
            "update_password",
        ]
    }
}

/// What `op` (`user` or `group`) with `args` changes on a host whose `/etc/passwd` and
/// `/etc/group` are `files`.
pub fn account(op: &str, args: &DataMap, files: [&str; 2]) -> Result<AccountChange, String> {
    if let Some(k) = args.keys().find(|k| !known_args(op).contains(&k.as_str())) {
        return Err(format!(
            "{op}: no arg {k:?} (wisp reads: {})",
            known_args(op).join(", ")
        ));
    }
    let name = text(args, "name")?.ok_or_else(|| format!("{op} needs name"))?;
    let present = match text(args, "state")?.as_deref() {
        None | Some("present") => true,
        Some("absent") => false,
        Some(s) => return Err(format!("{op}: state {s:?} (present or absent)")),
    };
    let (users, all_groups) = (passwd(files[0]), groups(files[1]));
    if op == "group" {
        return group(&name, present, args, &all_groups);
    }
    let found = users.iter().find(|u| u.name == name);
    let mut result = DataMap::new();
    result.insert("name".into(), Data::Str(name.clone()));
    result.insert(
        "state".into(),
        Data::Str(if present { "present" } else { "absent" }.into()),
    );
    let argv = match (present, found) {
        (false, None) => None,
        (false, Some(_)) => {
            let mut a = vec!["userdel".to_owned()];
            if flag(args, "remove", false)? {
                a.push("-r".into());
            }
            a.push(name.clone());
            Some(a)
        }
        (true, None) => Some(useradd(&name, args, &all_groups)?),
        (true, Some(u)) => {
            describe(u, &all_groups, &mut result);
            usermod(u, args, &all_groups)?
        }
    };
    Ok(AccountChange { argv, result })
}

fn group(
    name: &str,
    present: bool,
    args: &DataMap,
    all: &[(String, i64, Vec<String>)],
) -> Result<AccountChange, String> {
    let found = all.iter().find(|g| g.0 == name);
    let gid = text(args, "gid")?;
    let mut result = DataMap::new();
    result.insert("name".into(), Data::Str(name.to_owned()));
    result.insert(
        "state".into(),
        Data::Str(if present { "present" } else { "absent" }.into()),
    );
    result.insert("system".into(), Data::Bool(flag(args, "system", false)?));
    if let Some(g) = found {
        result.insert("gid".into(), Data::Int(g.1));
    }
    let argv = match (present, found) {
        (false, None) => None,
        (false, Some(_)) => Some(vec!["groupdel".to_owned(), name.to_owned()]),
        (true, None) => {
            let mut a = vec!["groupadd".to_owned()];
            if let Some(g) = &gid {
                a.extend(["-g".into(), g.clone()]);
            }
            if flag(args, "system", false)? {
                a.push("-r".into());
            }
            a.push(name.to_owned());
            Some(a)
        }
        (true, Some(g)) => match &gid {
            Some(want) if *want != g.1.to_string() => Some(vec![
                "groupmod".to_owned(),
                "-g".into(),
                want.clone(),
                name.to_owned(),
            ]),
            _ => None,
        },
    };
    Ok(AccountChange { argv, result })
}

/// The groups asked for (`groups`: a list, or text with commas).
fn wanted_groups(args: &DataMap) -> Result<Option<Vec<String>>, String> {
    match args.get("groups") {
        None | Some(Data::Null) => Ok(None),
        Some(Data::Str(s)) => Ok(Some(
            s.split(',')
                .map(str::trim)
                .filter(|g| !g.is_empty())
                .map(str::to_owned)
                .collect(),
        )),
        Some(Data::List(l)) => Ok(Some(
            l.iter()
                .map(|g| g.as_str().map(str::to_owned).ok_or("groups must be names"))
                .collect::<Result<_, _>>()?,
        )),
        Some(other) => Err(format!("groups must be a list of names, not {other:?}")),
    }
}

/// `useradd`, its options in the order Ansible's module gives them.
fn useradd(
    name: &str,
    args: &DataMap,
    all: &[(String, i64, Vec<String>)],
) -> Result<Vec<String>, String> {
    let mut a = vec!["useradd".to_owned()];
    if let Some(v) = text(args, "uid")? {
        a.extend(["-u".to_owned(), v]);
    }
    match text(args, "group")? {
        Some(g) => a.extend(["-g".to_owned(), g]),
        // A group of the user's name already there: useradd must not try to make one.
        None if all.iter().any(|g| g.0 == name) => a.push("-N".into()),
        None => {}
    }
    if let Some(g) = wanted_groups(args)?
        && !g.is_empty()
    {
        a.extend(["-G".to_owned(), g.join(",")]);
    }
    for (k, opt) in [
        ("comment", "-c"),
        ("home", "-d"),
        ("shell", "-s"),
        ("password", "-p"),
    ] {
        if let Some(v) = text(args, k)? {
            a.extend([opt.to_owned(), v]);
        }
    }
    a.push(
        if flag(args, "create_home", true)? {
            "-m"
        } else {
            "-M"
        }
        .into(),
    );
    if flag(args, "system", false)? {
        a.push("-r".into());
    }
    a.push(name.to_owned());
    Ok(a)
}

/// The `usermod` that makes `u` as asked, or `None` when it already is.
fn usermod(
    u: &Passwd,
    args: &DataMap,
    all: &[(String, i64, Vec<String>)],
) -> Result<Option<Vec<String>>, String> {
    let mut a = vec!["usermod".to_owned()];
    let differs = |want: &Option<String>, have: &str| want.as_deref().is_some_and(|w| w != have);
    let uid = text(args, "uid")?;
    if differs(&uid, &u.uid.to_string()) {
        a.extend(["-u".into(), uid.unwrap_or_default()]);
    }
    if let Some(g) = text(args, "group")? {
        let gid = all.iter().find(|x| x.0 == g).map(|x| x.1);
        if gid != Some(u.gid) && g != u.gid.to_string() {
            a.extend(["-g".into(), g]);
        }
    }
    for (k, opt, have) in [
        ("shell", "-s", &u.shell),
        ("home", "-d", &u.home),
        ("comment", "-c", &u.comment),
    ] {
        let want = text(args, k)?;
        if differs(&want, have) {
            a.extend([opt.to_owned(), want.unwrap_or_default()]);
        }
    }
    if let Some(want) = wanted_groups(args)? {
        let has: Vec<&str> = all
            .iter()
            .filter(|g| g.2.contains(&u.name))
            .map(|g| g.0.as_str())
            .collect();
        let append = flag(args, "append", false)?;
        let missing = want.iter().any(|g| !has.contains(&g.as_str()));
        let extra = !append && has.iter().any(|h| !want.iter().any(|w| w == h));
        if missing || extra {
            if append {
                a.push("-a".into());
            }
            a.extend(["-G".into(), want.join(",")]);
        }
    }
    if a.len() == 1 {
        return Ok(None);
    }
    a.push(u.name.clone());
    Ok(Some(a))
}

/// The fields Ansible returns for an existing user.
fn describe(u: &Passwd, all: &[(String, i64, Vec<String>)], out: &mut DataMap) {
    out.insert("uid".into(), Data::Int(u.uid));
    out.insert("group".into(), Data::Int(u.gid));
    out.insert("home".into(), Data::Str(u.home.clone()));
    out.insert("shell".into(), Data::Str(u.shell.clone()));
    out.insert("comment".into(), Data::Str(u.comment.clone()));
    let member: Vec<&str> = all
        .iter()
        .filter(|g| g.2.contains(&u.name))
        .map(|g| g.0.as_str())
        .collect();
    out.insert("groups".into(), Data::Str(member.join(",")));
}

/// The result fields once the command ran: what the host's files say now.
pub fn after(op: &str, name: &str, files: [&str; 2], result: &mut DataMap) {
    if op == "group" {
        if let Some(g) = groups(files[1]).iter().find(|g| g.0 == name) {
            result.insert("gid".into(), Data::Int(g.1));
        }
        return;
    }
    let all = groups(files[1]);
    if let Some(u) = passwd(files[0]).iter().find(|u| u.name == name) {
        describe(u, &all, result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str =
        "root:x:0:0:root:/root:/bin/bash\ndeploy:x:1001:1001:Deploy:/home/deploy:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nsudo:x:27:deploy\ndeploy:x:1001:\nops:x:1002:\n";

    fn args(pairs: &[(&str, Data)]) -> DataMap {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    fn s(v: &str) -> Data {
        Data::Str(v.into())
    }

    #[test]
    fn only_what_differs_is_changed() {
        let a = args(&[
            ("name", s("deploy")),
            ("shell", s("/bin/sh")),
            ("groups", s("sudo")),
        ]);
        assert!(account("user", &a, [PASSWD, GROUP]).unwrap().argv.is_none());
        let a = args(&[
            ("name", s("deploy")),
            ("shell", s("/bin/bash")),
            ("groups", s("ops")),
            ("append", Data::Bool(true)),
        ]);
        assert_eq!(
            account("user", &a, [PASSWD, GROUP]).unwrap().argv.unwrap(),
            ["usermod", "-s", "/bin/bash", "-a", "-G", "ops", "deploy"]
        );
        let a = args(&[
            ("name", s("app")),
            ("uid", Data::Int(2000)),
            ("create_home", Data::Bool(false)),
        ]);
        assert_eq!(
            account("user", &a, [PASSWD, GROUP]).unwrap().argv.unwrap(),
            ["useradd", "-u", "2000", "-M", "app"]
        );
        let a = args(&[("name", s("ops")), ("gid", Data::Int(1002))]);
        assert!(
            account("group", &a, [PASSWD, GROUP])
                .unwrap()
                .argv
                .is_none()
        );
        let a = args(&[
            ("name", s("deploy")),
            ("state", s("absent")),
            ("remove", Data::Bool(true)),
        ]);
        assert_eq!(
            account("user", &a, [PASSWD, GROUP]).unwrap().argv.unwrap(),
            ["userdel", "-r", "deploy"]
        );
        assert!(
            account(
                "user",
                &args(&[("name", s("x")), ("ssh_key", s("k"))]),
                [PASSWD, GROUP]
            )
            .is_err()
        );
    }
}
