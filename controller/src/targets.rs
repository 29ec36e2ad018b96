//! Targets on the command line: `localhost` (the local transport), `[user@]host[:port]`
//! (SSH; `[v6addr]:port` for IPv6), comma-separated. Inventories and patterns build on this.

/// One target as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSpec {
    /// The name shown in output: what the operator typed, minus the user.
    pub name: String,
    /// `None` for `localhost` (no SSH).
    pub ssh: Option<SshSpec>,
}

/// Where an SSH target is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshSpec {
    /// Login user, when given as `user@`.
    pub user: Option<String>,
    /// Host name or address.
    pub host: String,
    /// Port, when given (else ssh_config's, else 22).
    pub port: Option<u16>,
}

/// Parses a comma-separated target list; duplicates are dropped, order is kept.
pub fn parse_list(spec: &str) -> Result<Vec<TargetSpec>, String> {
    let mut out: Vec<TargetSpec> = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let t = parse(item)?;
        if !out.iter().any(|o| o == &t) {
            out.push(t);
        }
    }
    if out.is_empty() {
        return Err(format!("no targets in {spec:?}"));
    }
    Ok(out)
}

/// Parses one target.
pub fn parse(item: &str) -> Result<TargetSpec, String> {
    if item == "localhost" {
        return Ok(TargetSpec {
            name: item.into(),
            ssh: None,
        });
    }
    let (user, rest) = match item.rsplit_once('@') {
        Some((u, r)) if !u.is_empty() => (Some(u.to_owned()), r),
        Some(_) => return Err(format!("target {item:?}: empty user before '@'")),
        None => (None, item),
    };
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (addr, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("target {item:?}: missing ']'"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(parse_port(item, p)?),
            None if after.is_empty() => None,
            None => return Err(format!("target {item:?}: unexpected {after:?} after ']'")),
        };
        (addr.to_owned(), port)
    } else {
        match rest.split_once(':') {
            Some((h, p)) => (h.to_owned(), Some(parse_port(item, p)?)),
            None => (rest.to_owned(), None),
        }
    };
    let valid = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._:".contains(c));
    if !valid {
        return Err(format!(
            "target {item:?}: {host:?} is not a host name or address"
        ));
    }
    Ok(TargetSpec {
        name: rest.to_owned(),
        ssh: Some(SshSpec { user, host, port }),
    })
}

fn parse_port(item: &str, p: &str) -> Result<u16, String> {
    p.parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("target {item:?}: {p:?} is not a port"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ssh(user: Option<&str>, host: &str, port: Option<u16>) -> Option<SshSpec> {
        Some(SshSpec {
            user: user.map(str::to_owned),
            host: host.into(),
            port,
        })
    }

    #[test]
    fn forms() {
        assert_eq!(parse("localhost").unwrap().ssh, None);
        assert_eq!(parse("web1").unwrap().ssh, ssh(None, "web1", None));
        assert_eq!(
            parse("ops@web1:2222").unwrap(),
            TargetSpec {
                name: "web1:2222".into(),
                ssh: ssh(Some("ops"), "web1", Some(2222))
            }
        );
        assert_eq!(
            parse("[::1]:2200").unwrap().ssh,
            ssh(None, "::1", Some(2200))
        );
        assert_eq!(
            parse("127.0.1.7").unwrap().ssh,
            ssh(None, "127.0.1.7", None)
        );
        for bad in ["@web", "web:0", "web:http", "we b", "[::1", "a;b"] {
            assert!(parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn lists_keep_order_and_drop_duplicates() {
        let l = parse_list("b, a,b,,localhost").unwrap();
        assert_eq!(
            l.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
            ["b", "a", "localhost"]
        );
        assert!(parse_list(" , ").is_err());
    }
}
