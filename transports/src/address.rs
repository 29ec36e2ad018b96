//! `[user@]host[:port]`: the one reading of a host address, shared by targets on the command
//! line and ssh_config's `ProxyJump` hops.
//!
//! An IPv6 literal with a port goes in brackets (`[::1]:2222`); a bare one (`::1`, more than
//! one `:`) is a host without a port, as OpenSSH reads it. The user is everything before the
//! last `@`, so a user name may itself hold one.

/// A parsed address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAddress {
    /// Login user, when given as `user@`.
    pub user: Option<String>,
    /// Host name, alias or address (IPv6 without its brackets).
    pub host: String,
    /// Port, when given.
    pub port: Option<u16>,
}

/// Why an address does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// `@host`.
    #[error("empty user before '@'")]
    EmptyUser,
    /// `[::1` without its `]`.
    #[error("missing ']'")]
    UnclosedBracket,
    /// `[::1]x`.
    #[error("unexpected {0:?} after ']'")]
    AfterBracket(String),
    /// A port that is not a number from 1 to 65535.
    #[error("{0:?} is not a port")]
    BadPort(String),
    /// Empty, or with characters no host name or address has.
    #[error("{0:?} is not a host name or address")]
    BadHost(String),
}

impl HostAddress {
    /// Parses `[user@]host[:port]`.
    pub fn parse(text: &str) -> Result<HostAddress, AddressError> {
        let (user, rest) = match text.rsplit_once('@') {
            Some(("", _)) => return Err(AddressError::EmptyUser),
            Some((u, r)) => (Some(u.to_owned()), r),
            None => (None, text),
        };
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (addr, after) = v6.split_once(']').ok_or(AddressError::UnclosedBracket)?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(port(p)?),
                None if after.is_empty() => None,
                None => return Err(AddressError::AfterBracket(after.to_owned())),
            };
            (addr, port)
        } else if rest.matches(':').count() > 1 {
            (rest, None)
        } else {
            match rest.split_once(':') {
                Some((h, p)) => (h, Some(port(p)?)),
                None => (rest, None),
            }
        };
        let valid = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._:".contains(c));
        if !valid {
            return Err(AddressError::BadHost(host.to_owned()));
        }
        Ok(HostAddress {
            user,
            host: host.to_owned(),
            port,
        })
    }
}

fn port(p: &str) -> Result<u16, AddressError> {
    p.parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| AddressError::BadPort(p.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: Result<(Option<&str>, &str, Option<u16>), AddressError>) {
        let got = HostAddress::parse(text);
        let expected = expected.map(|(user, host, port)| HostAddress {
            user: user.map(str::to_owned),
            host: host.to_owned(),
            port,
        });
        assert_eq!(got, expected, "{text}");
    }

    #[test]
    fn forms() {
        check("web1", Ok((None, "web1", None)));
        check("ops@web1:2222", Ok((Some("ops"), "web1", Some(2222))));
        check("127.0.1.7", Ok((None, "127.0.1.7", None)));
        check("[::1]:2200", Ok((None, "::1", Some(2200))));
        check("ops@[fe80::1]", Ok((Some("ops"), "fe80::1", None)));
        check("::1", Ok((None, "::1", None)));
        check("2001:db8::5", Ok((None, "2001:db8::5", None)));
        check("a@b@jump", Ok((Some("a@b"), "jump", None)));
    }

    #[test]
    fn refusals() {
        check("@web", Err(AddressError::EmptyUser));
        check("web:0", Err(AddressError::BadPort("0".into())));
        check("web:http", Err(AddressError::BadPort("http".into())));
        check("web:65536", Err(AddressError::BadPort("65536".into())));
        check("[::1", Err(AddressError::UnclosedBracket));
        check("[::1]x", Err(AddressError::AfterBracket("x".into())));
        check("[::1]:", Err(AddressError::BadPort(String::new())));
        check("we b", Err(AddressError::BadHost("we b".into())));
        check("a;b", Err(AddressError::BadHost("a;b".into())));
        check("ops@", Err(AddressError::BadHost(String::new())));
    }
}
