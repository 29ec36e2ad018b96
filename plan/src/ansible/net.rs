//! Ansible's network facts (`ansible_default_ipv4`, `ansible_default_ipv6`,
//! `ansible_all_ipv4_addresses`, `ansible_all_ipv6_addresses`, `ansible_interfaces`), from
//! what the host's `ip` and `/sys/class/net` say: read by [`SCRIPT`] on the host when a plan
//! names one, parsed here. `ip route get` looks a route up; it sends nothing.

use crate::data::{Data, DataMap};

/// The names, after `ansible_`.
pub const NAMES: &[&str] = &[
    "default_ipv4",
    "default_ipv6",
    "all_ipv4_addresses",
    "all_ipv6_addresses",
    "interfaces",
];

/// What the host is asked, in sections [`parse`] reads.
pub const SCRIPT: &str = r#"command -v ip >/dev/null 2>&1 || exit 0
ip -4 route get 8.8.8.8 2>/dev/null | head -n 1; echo '=='
ip -6 route get 2001:4860:4860::8888 2>/dev/null | head -n 1; echo '=='
ip -o addr show 2>/dev/null; echo '=='
for d in /sys/class/net/*; do
  [ -e "$d" ] || continue
  echo "${d##*/} $(cat "$d/address" 2>/dev/null) $(cat "$d/mtu" 2>/dev/null) $(cat "$d/type" 2>/dev/null)"
done"#;

/// One address of an interface, as `ip -o addr` lists it.
struct Addr {
    dev: String,
    v6: bool,
    addr: String,
    prefix: u8,
    broadcast: Option<String>,
    scope: String,
}

/// The word after `key` in `words`.
fn after<'a>(words: &[&'a str], key: &str) -> Option<&'a str> {
    words
        .iter()
        .position(|w| *w == key)
        .and_then(|i| words.get(i + 1).copied())
}

fn addrs(section: &str) -> Vec<Addr> {
    let mut out = Vec::new();
    for line in section.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        let (Some(dev), Some(fam), Some(cidr)) = (w.get(1), w.get(2), w.get(3)) else {
            continue;
        };
        let Some((addr, prefix)) = cidr.split_once('/') else {
            continue;
        };
        out.push(Addr {
            dev: dev.trim_end_matches(':').to_owned(),
            v6: *fam == "inet6",
            addr: addr.to_owned(),
            prefix: prefix.parse().unwrap_or(0),
            broadcast: after(&w, "brd").map(str::to_owned),
            scope: after(&w, "scope").unwrap_or("global").to_owned(),
        });
    }
    out
}

/// An IPv4 netmask and network of `addr`/`prefix`.
fn v4_net(addr: &str, prefix: u8) -> Option<(String, String)> {
    let ip: std::net::Ipv4Addr = addr.parse().ok()?;
    let mask = u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0);
    let net = u32::from(ip) & mask;
    Some((
        std::net::Ipv4Addr::from(mask).to_string(),
        std::net::Ipv4Addr::from(net).to_string(),
    ))
}

/// The network facts from [`SCRIPT`]'s output (none when the host has no `ip`).
pub fn parse(out: &str) -> DataMap {
    let mut m = DataMap::new();
    let sections: Vec<&str> = out.split("==\n").collect();
    let [route4, route6, addr, links] = sections[..] else {
        return m;
    };
    let addrs = addrs(addr);
    // Each interface's MAC address, MTU and kind.
    let link = |dev: &str| -> (String, i64, &'static str) {
        for l in links.lines() {
            let w: Vec<&str> = l.split_whitespace().collect();
            if w.first() == Some(&dev) {
                let kind = match w.get(3) {
                    Some(&"1") => "ether",
                    Some(&"772") => "loopback",
                    _ => "unknown",
                };
                let mtu = w.get(2).and_then(|m| m.parse().ok()).unwrap_or(0);
                return (w.get(1).unwrap_or(&"").to_string(), mtu, kind);
            }
        }
        (String::new(), 0, "unknown")
    };
    for (v6, route) in [(false, route4), (true, route6)] {
        let w: Vec<&str> = route.split_whitespace().collect();
        let mut d = DataMap::new();
        if let (Some(dev), Some(src)) = (after(&w, "dev"), after(&w, "src"))
            && let Some(a) = addrs
                .iter()
                .find(|a| a.v6 == v6 && a.dev == dev && a.addr == src)
        {
            let (mac, mtu, kind) = link(dev);
            let s = |v: &str| Data::Str(v.to_owned());
            d.insert("address".into(), s(&a.addr));
            if !v6 {
                d.insert("alias".into(), s(dev));
                d.insert("broadcast".into(), s(a.broadcast.as_deref().unwrap_or("")));
            }
            d.insert("gateway".into(), s(after(&w, "via").unwrap_or("")));
            d.insert("interface".into(), s(dev));
            d.insert("macaddress".into(), s(&mac));
            d.insert("mtu".into(), Data::Int(mtu));
            if let (false, Some((mask, net))) = (v6, v4_net(&a.addr, a.prefix)) {
                d.insert("netmask".into(), s(&mask));
                d.insert("network".into(), s(&net));
            }
            d.insert("prefix".into(), Data::Str(a.prefix.to_string()));
            if v6 {
                d.insert("scope".into(), s(&a.scope));
            }
            d.insert("type".into(), s(kind));
            d.sort_keys();
        }
        let name = if v6 { "default_ipv6" } else { "default_ipv4" };
        m.insert(name.into(), Data::Map(d));
    }
    for (v6, name) in [(false, "all_ipv4_addresses"), (true, "all_ipv6_addresses")] {
        let list = addrs
            .iter()
            .filter(|a| a.v6 == v6 && a.scope != "host")
            .map(|a| Data::Str(a.addr.clone()))
            .collect();
        m.insert(name.into(), Data::List(list));
    }
    let names = links
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(|n| Data::Str(n.to_owned()))
        .collect();
    m.insert("interfaces".into(), Data::List(names));
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(d: &Data) -> &DataMap {
        match d {
            Data::Map(m) => m,
            other => panic!("not a map: {other:?}"),
        }
    }

    fn len(d: &Data) -> usize {
        match d {
            Data::List(l) => l.len(),
            other => panic!("not a list: {other:?}"),
        }
    }

    #[test]
    fn the_default_route_s_interface_is_described_as_ansible_describes_it() {
        let out = "8.8.8.8 via 192.0.2.1 dev eth0 src 192.0.2.2 uid 0 \n==\n\
            2001:4860:4860::8888 from :: via fd00::1 dev eth0 src fd00::2 metric 1024\n==\n\
            1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever\n\
            1: lo    inet6 ::1/128 scope host \\       valid_lft forever\n\
            4: eth0    inet 192.0.2.2/24 brd 192.0.2.255 scope global eth0\\       valid\n\
            4: eth0    inet6 fd00::2/64 scope global nodad \\       valid_lft\n\
            4: eth0    inet6 fe80::fc:ff:fe00:1/64 scope link \\       valid_lft\n==\n\
            eth0 02:fc:00:00:00:01 1400 1\nlo 00:00:00:00:00:00 65536 772\n";
        let m = parse(out);
        let v4 = m["default_ipv4"].to_value();
        assert_eq!(
            v4.to_string(),
            "{\"address\": \"192.0.2.2\", \"alias\": \"eth0\", \"broadcast\": \"192.0.2.255\", \
             \"gateway\": \"192.0.2.1\", \"interface\": \"eth0\", \"macaddress\": \
             \"02:fc:00:00:00:01\", \"mtu\": 1400, \"netmask\": \"255.255.255.0\", \"network\": \
             \"192.0.2.0\", \"prefix\": \"24\", \"type\": \"ether\"}"
        );
        let v6 = map(&m["default_ipv6"]);
        assert_eq!(v6["gateway"], Data::Str("fd00::1".into()));
        assert_eq!(v6["scope"], Data::Str("global".into()));
        assert_eq!(
            m["all_ipv4_addresses"],
            Data::List(vec![Data::Str("192.0.2.2".into())])
        );
        assert_eq!(len(&m["all_ipv6_addresses"]), 2);
        assert_eq!(len(&m["interfaces"]), 2);
    }

    #[test]
    fn no_route_and_no_ip_tool_give_empty_facts() {
        assert!(parse("").is_empty());
        let m = parse("==\n==\n1: lo    inet 127.0.0.1/8 scope host lo\n==\nlo x 65536 772\n");
        assert_eq!(m["default_ipv4"], Data::Map(DataMap::new()));
    }
}
