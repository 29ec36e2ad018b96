//! SSH certificates made with `ssh-keygen -s`: a host key signed by a CA that an
//! `@cert-authority` line trusts is accepted with no key of the host recorded, and refused
//! when it names another host, has expired, or its CA is `@revoked`; a user certificate
//! beside its key logs in where sshd trusts the CA and knows no key.

use super::*;

/// `ssh-keygen -s CA ARGS... PUBKEY`, which writes `PUBKEY`'s `-cert.pub`.
fn sign(ca: &std::path::Path, args: &[&str], public: &std::path::Path) {
    let out = Command::new("ssh-keygen")
        .arg("-q")
        .arg("-s")
        .arg(ca)
        .args(args)
        .arg(public)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn host_and_user_certificates_signed_by_a_trusted_ca() {
    let mut fleet = Fleet::start(1);
    let ca = fleet.dir.0.join("ca");
    let ca_pub = wisp_tests::sshd::keygen_of_type(&ca, "wisp-test-ca", "ed25519");
    let host = fleet.hosts[0].addr.clone();
    let port = fleet.hosts[0].port;
    let host_key = fleet.dir.0.join("host0_ed25519");
    let host_pub = host_key.with_extension("pub");
    let host_cert = fleet.dir.0.join("host0_ed25519-cert.pub");
    // known_hosts trusts the CA for this host and records no key of it.
    let trust = format!("@cert-authority [{host}]:{port} {ca_pub}\n");
    std::fs::write(&fleet.known_hosts, &trust).unwrap();
    let attempt = |fleet: &Fleet| run(sub(fleet, "run", &fleet.targets()).args(["--", "true"]));

    sign(
        &ca,
        &["-I", "host0", "-h", "-n", &host, "-V", "-5m:+1h"],
        &host_pub,
    );
    // Before it has its certificate, the host's plain key is refused, --accept-new or not:
    // pinning it would step around the CA.
    let plain = run(sub(&fleet, "run", &fleet.targets()).args(["--accept-new", "--", "true"]));
    assert_eq!(plain.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&plain.stderr).contains("offered a plain host key"));
    assert_eq!(std::fs::read_to_string(&fleet.known_hosts).unwrap(), trust);
    fleet.restart_with(0, &format!("HostCertificate {}", host_cert.display()));
    let out = attempt(&fleet);
    assert_eq!(
        out.status.code(),
        Some(0),
        "a certificate the CA signed for it"
    );

    let refused = |fleet: &mut Fleet, args: &[&str], words: &str| {
        sign(&ca, args, &host_pub);
        fleet.restart_with(0, &format!("HostCertificate {}", host_cert.display()));
        let out = attempt(fleet);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(3), "{args:?}: {err}");
        assert!(err.contains(words), "{args:?}: {words:?} not in {err}");
    };
    refused(
        &mut fleet,
        &["-I", "h", "-h", "-n", "other.example", "-V", "-5m:+1h"],
        "not 127.",
    );
    refused(
        &mut fleet,
        &["-I", "h", "-h", "-n", &host, "-V", "20200101:20200102"],
        "not valid now",
    );
    refused(
        &mut fleet,
        &["-I", "h", "-n", &host, "-V", "-5m:+1h"],
        "user certificate",
    );
    sign(
        &ca,
        &["-I", "host0", "-h", "-n", &host, "-V", "-5m:+1h"],
        &host_pub,
    );
    fleet.restart_with(0, &format!("HostCertificate {}", host_cert.display()));
    std::fs::write(&fleet.known_hosts, format!("{trust}@revoked * {ca_pub}\n")).unwrap();
    let out = attempt(&fleet);
    assert_eq!(out.status.code(), Some(3), "a revoked CA");
    assert!(String::from_utf8_lossy(&out.stderr).contains("@revoked"));
    std::fs::write(&fleet.known_hosts, &trust).unwrap();

    // A user certificate: sshd trusts the CA and knows no key at all.
    let user_key = fleet.dir.0.join("user_key");
    wisp_tests::sshd::keygen_of_type(&user_key, "wisp-test-user", "ed25519");
    fleet.restart_with(
        0,
        &format!("TrustedUserCAKeys {}", ca.with_extension("pub").display()),
    );
    fleet.restart_with(0, "AuthorizedKeysFile none");
    let with_user_key = |fleet: &Fleet| {
        let mut c = base(fleet, "run", &fleet.targets());
        c.args(["--user", "root", "--key"])
            .arg(&user_key)
            .args(["--", "true"]);
        run(&mut c)
    };
    assert_eq!(
        with_user_key(&fleet).status.code(),
        Some(3),
        "no certificate yet"
    );
    sign(
        &ca,
        &["-I", "user", "-n", "root", "-V", "-5m:+1h"],
        &user_key.with_extension("pub"),
    );
    assert_eq!(
        with_user_key(&fleet).status.code(),
        Some(0),
        "the key's certificate"
    );
    fleet.assert_clean();
}
