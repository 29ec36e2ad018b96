//! Ansible's facts under their own names, from what the runner's `facts` op reports:
//! `ansible_facts` (keys without the prefix) and each fact as an `ansible_*` var, as Ansible
//! injects them. What the runner does not report (`default_ipv4`, `python`...) is absent, so
//! a template that reads it fails naming it.

use crate::data::{Data, DataMap};

/// The facts by their name in `ansible_facts` (the var is `ansible_` and the name).
pub const NAMES: &[&str] = &[
    "os_family",
    "distribution",
    "distribution_version",
    "distribution_major_version",
    "distribution_release",
    "architecture",
    "machine",
    "hostname",
    "nodename",
    "fqdn",
    "domain",
    "kernel",
    "system",
    "processor_vcpus",
    "processor_nproc",
    "memtotal_mb",
    "service_mgr",
    "pkg_mgr",
];

/// Whether `name` (as a template reads it: `ansible_facts`, `ansible_facts.x`,
/// `ansible_os_family`) is a fact only a host can tell.
pub fn is_fact(name: &str) -> bool {
    let head = name.split('.').next().unwrap_or(name);
    head == "ansible_facts"
        || head
            .strip_prefix("ansible_")
            .is_some_and(|n| NAMES.contains(&n) || super::net::NAMES.contains(&n))
}

/// Whether `name` (as [`is_fact`] takes it) may read a network fact, which the host is asked
/// for apart: `ansible_default_ipv4`, `ansible_facts` whole or `ansible_facts.interfaces`...
pub fn is_net_fact(name: &str) -> bool {
    let mut parts = name.split('.');
    match (parts.next(), parts.next()) {
        (Some("ansible_facts"), None) => true,
        (Some("ansible_facts"), Some(n)) => super::net::NAMES.contains(&n),
        (Some(head), _) => head
            .strip_prefix("ansible_")
            .is_some_and(|n| super::net::NAMES.contains(&n)),
        _ => false,
    }
}

/// The distribution's name as Ansible writes it, and its family, from os-release's `ID`.
fn distribution(id: &str) -> (String, String) {
    let (name, family) = match id {
        "debian" => ("Debian", "Debian"),
        "ubuntu" => ("Ubuntu", "Debian"),
        "linuxmint" => ("Linux Mint", "Debian"),
        "raspbian" => ("Debian", "Debian"),
        "kali" => ("Kali", "Debian"),
        "pop" => ("Pop!_OS", "Debian"),
        "centos" => ("CentOS", "RedHat"),
        "rhel" => ("RedHat", "RedHat"),
        "fedora" => ("Fedora", "RedHat"),
        "rocky" => ("Rocky", "RedHat"),
        "almalinux" => ("AlmaLinux", "RedHat"),
        "ol" => ("OracleLinux", "RedHat"),
        "amzn" => ("Amazon", "RedHat"),
        "alpine" => ("Alpine", "Alpine"),
        "arch" => ("Archlinux", "Archlinux"),
        "opensuse-leap" => ("openSUSE Leap", "Suse"),
        "opensuse-tumbleweed" => ("openSUSE Tumbleweed", "Suse"),
        "sles" => ("SLES", "Suse"),
        "gentoo" => ("Gentoo", "Gentoo"),
        other => {
            let mut c = other.chars();
            let name: String = c
                .next()
                .map(|f| f.to_uppercase().chain(c).collect())
                .unwrap_or_default();
            return (name.clone(), name);
        }
    };
    (name.to_owned(), family.to_owned())
}

/// `ansible_facts` and the `ansible_*` vars of a host whose runner reported `facts`.
pub fn of(facts: &Data) -> Vec<(String, Data)> {
    let Data::Map(f) = facts else {
        return Vec::new();
    };
    let text = |k: &str| {
        f.get(k)
            .and_then(Data::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let int = |k: &str| match f.get(k) {
        Some(Data::Int(i)) => *i,
        _ => 0,
    };
    let (name, family) = distribution(&text("os_id"));
    let version = text("os_version");
    let pretty = text("os_pretty");
    // os-release's PRETTY_NAME ends with the codename in parentheses on Debian.
    let release = pretty
        .rsplit_once('(')
        .and_then(|(_, r)| r.strip_suffix(')'))
        .unwrap_or_default()
        .to_owned();
    let host = text("hostname");
    let (short, domain) = host.split_once('.').unwrap_or((host.as_str(), ""));
    let mut m = DataMap::new();
    let mut put = |k: &str, v: Data| {
        m.insert(k.to_owned(), v);
    };
    put("os_family", Data::Str(family));
    put("distribution", Data::Str(name));
    put(
        "distribution_major_version",
        Data::Str(version.split('.').next().unwrap_or_default().to_owned()),
    );
    put("distribution_version", Data::Str(version));
    put("distribution_release", Data::Str(release));
    put("architecture", Data::Str(text("arch")));
    put("machine", Data::Str(text("arch")));
    put("hostname", Data::Str(short.to_owned()));
    put("nodename", Data::Str(host.clone()));
    put("fqdn", Data::Str(host.clone()));
    put("domain", Data::Str(domain.to_owned()));
    put("kernel", Data::Str(text("kernel")));
    put("system", Data::Str("Linux".into()));
    put("processor_vcpus", Data::Int(int("cpus")));
    put("processor_nproc", Data::Int(int("cpus")));
    put("memtotal_mb", Data::Int(int("mem_total_kb") / 1024));
    let mgr = match text("init").as_str() {
        "sysv" => "sysvinit".to_owned(),
        other => other.to_owned(),
    };
    put("service_mgr", Data::Str(mgr));
    let pkg = text("pkg_manager");
    put(
        "pkg_mgr",
        Data::Str(if pkg == "none" { "unknown".into() } else { pkg }),
    );
    // The network facts, when the plan named one and the host was asked.
    if let Some(Data::Map(net)) = f.get("net") {
        m.extend(net.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    let mut out: Vec<(String, Data)> = m
        .iter()
        .map(|(k, v)| (format!("ansible_{k}"), v.clone()))
        .collect();
    out.push(("ansible_facts".into(), Data::Map(m)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_debian_host_has_the_facts_roles_read() {
        let mut f = DataMap::new();
        for (k, v) in [
            ("os_id", "debian"),
            ("os_version", "12"),
            ("os_pretty", "Debian GNU/Linux 12 (bookworm)"),
            ("arch", "x86_64"),
            ("hostname", "web1.example.org"),
            ("init", "systemd"),
            ("pkg_manager", "apt"),
        ] {
            f.insert(k.into(), Data::Str(v.into()));
        }
        f.insert("mem_total_kb".into(), Data::Int(2_048_000));
        f.insert("cpus".into(), Data::Int(4));
        let all: DataMap = of(&Data::Map(f)).into_iter().collect();
        let get = |k: &str| all.get(k).cloned().unwrap_or(Data::Null);
        assert_eq!(get("ansible_os_family"), Data::Str("Debian".into()));
        assert_eq!(
            get("ansible_distribution_release"),
            Data::Str("bookworm".into())
        );
        assert_eq!(get("ansible_hostname"), Data::Str("web1".into()));
        assert_eq!(get("ansible_memtotal_mb"), Data::Int(2000));
        assert_eq!(get("ansible_processor_vcpus"), Data::Int(4));
        let Data::Map(facts) = get("ansible_facts") else {
            panic!("no ansible_facts")
        };
        assert_eq!(
            facts.get("distribution_major_version"),
            Some(&Data::Str("12".into()))
        );
        assert!(!all.contains_key("ansible_python"));
        assert!(is_fact("ansible_facts.os_family") && is_fact("ansible_pkg_mgr"));
        assert!(!is_fact("ansible_check_mode"));
    }
}
