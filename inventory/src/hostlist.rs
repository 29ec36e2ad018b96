//! Host lists on the command line: `localhost` (the local transport), `[user@]host[:port]`
//! (a remote host; `[v6addr]:port` for IPv6, read by [`HostAddress`]), comma-separated. Each
//! entry is a [`HostEntry`]; inventories and patterns build on this.

use wisp_transports::address::HostAddress;

/// One target as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEntry {
    /// The name shown in output: what the operator typed, minus the user.
    pub name: String,
    /// Where it is; `None` for `localhost` (the local transport).
    pub remote: Option<HostAddress>,
}

/// Parses a comma-separated target list; duplicates are dropped, order is kept.
pub fn parse_list(spec: &str) -> Result<Vec<HostEntry>, String> {
    let mut out: Vec<HostEntry> = Vec::new();
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
pub fn parse(item: &str) -> Result<HostEntry, String> {
    if item == "localhost" {
        return Ok(HostEntry {
            name: item.into(),
            remote: None,
        });
    }
    let address = HostAddress::parse(item).map_err(|e| format!("target {item:?}: {e}"))?;
    // The name shown is what was typed, minus the user.
    let name = match item.rsplit_once('@') {
        Some((_, rest)) => rest,
        None => item,
    };
    Ok(HostEntry {
        name: name.to_owned(),
        remote: Some(address),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(user: Option<&str>, host: &str, port: Option<u16>) -> Option<HostAddress> {
        Some(HostAddress {
            user: user.map(str::to_owned),
            host: host.into(),
            port,
        })
    }

    #[test]
    fn forms() {
        assert_eq!(parse("localhost").unwrap().remote, None);
        assert_eq!(parse("web1").unwrap().remote, remote(None, "web1", None));
        assert_eq!(
            parse("ops@web1:2222").unwrap(),
            HostEntry {
                name: "web1:2222".into(),
                remote: remote(Some("ops"), "web1", Some(2222))
            }
        );
        assert_eq!(
            parse("[::1]:2200").unwrap().remote,
            remote(None, "::1", Some(2200))
        );
        assert_eq!(
            parse("127.0.1.7").unwrap().remote,
            remote(None, "127.0.1.7", None)
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
