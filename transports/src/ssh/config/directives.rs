//! Every ssh_config directive OpenSSH has, as wisp treats it: honoured, of no effect on what
//! wisp does (it opens no forwards, asks for no terminal, never forwards the agent: leaving
//! these out only makes wisp do less), or refused because ignoring it would reach a host in a
//! way the config does not mean.

/// How wisp treats one directive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// Read and applied.
    Honoured,
    /// Read and of no effect on a wisp connection.
    NoEffect,
    /// Refused, with why.
    Refused(&'static str),
    /// Not an OpenSSH directive wisp knows of.
    Unknown,
}

const HONOURED: &[&str] = &[
    "hostname",
    "user",
    "port",
    "identityfile",
    "identitiesonly",
    "identityagent",
    "proxyjump",
    "proxycommand",
    "connecttimeout",
    "serveraliveinterval",
    "stricthostkeychecking",
    "userknownhostsfile",
    "certificatefile",
];

/// Of no effect on what wisp does (see the module docs). Algorithm lists included: wisp's
/// SSH library offers only algorithms without known weaknesses, whatever a config adds.
const NO_EFFECT: &[&str] = &[
    "addkeystoagent",
    "addressfamily",
    "batchmode",
    "bindaddress",
    "bindinterface",
    "casignaturealgorithms",
    "challengeresponseauthentication",
    "checkhostip",
    "ciphers",
    "clearallforwardings",
    "compression",
    "connectionattempts",
    "controlmaster",
    "controlpath",
    "controlpersist",
    "dynamicforward",
    "enableescapecommandline",
    "escapechar",
    "exitonforwardfailure",
    "fingerprinthash",
    "forkafterauthentication",
    "forwardagent",
    "forwardx11",
    "forwardx11timeout",
    "forwardx11trusted",
    "gatewayports",
    "globalknownhostsfile",
    "gssapiauthentication",
    "gssapidelegatecredentials",
    "hashknownhosts",
    "hostbasedacceptedalgorithms",
    "hostbasedauthentication",
    "hostbasedkeytypes",
    "hostkeyalgorithms",
    "ignoreunknown",
    "ipqos",
    "kbdinteractiveauthentication",
    "kbdinteractivedevices",
    "kexalgorithms",
    "localcommand",
    "localforward",
    "loglevel",
    "logverbose",
    "macs",
    "nohostauthenticationforlocalhost",
    "numberofpasswordprompts",
    "obscurekeystroketiming",
    "passwordauthentication",
    "permitlocalcommand",
    "permitremoteopen",
    "preferredauthentications",
    "pubkeyacceptedalgorithms",
    "pubkeyacceptedkeytypes",
    "pubkeyauthentication",
    "rekeylimit",
    "remoteforward",
    "requesttty",
    "sendenv",
    "serveralivecountmax",
    "sessiontype",
    "setenv",
    "stdinnull",
    "streamlocalbindmask",
    "streamlocalbindunlink",
    "syslogfacility",
    "tcpkeepalive",
    "tunnel",
    "tunneldevice",
    "updatehostkeys",
    "usekeychain",
    "verifyhostkeydns",
    "visualhostkey",
    "xauthlocation",
];

/// How wisp treats `key` (lower case) set to `value`.
pub(super) fn kind(key: &str, value: &str) -> Kind {
    let off = matches!(value.to_ascii_lowercase().as_str(), "no" | "none" | "false");
    match key {
        k if HONOURED.contains(&k) => Kind::Honoured,
        k if NO_EFFECT.contains(&k) => Kind::NoEffect,
        "canonicalizehostname" | "proxyusefdpass" if off => Kind::NoEffect,
        "canonicaldomains"
        | "canonicalizefallbacklocal"
        | "canonicalizemaxdots"
        | "canonicalizepermittedcnames" => Kind::NoEffect,
        "canonicalizehostname" => Kind::Refused(
            "wisp does not canonicalize host names, so the Host blocks it would match differ",
        ),
        "proxyusefdpass" => {
            Kind::Refused("wisp reads a ProxyCommand's output, not a passed socket")
        }
        "remotecommand" => Kind::Refused("it would replace the command wisp runs on the host"),
        "hostkeyalias" => Kind::Refused(
            "wisp looks host keys up by name and port; without the alias it would look up \
             another entry",
        ),
        "knownhostscommand" => {
            Kind::Refused("wisp reads known_hosts files only, and would miss the keys it gives")
        }
        "revokedhostkeys" => {
            Kind::Refused("wisp would not see the revoked keys, and could accept one of them")
        }
        "pkcs11provider" | "securitykeyprovider" => {
            Kind::Refused("wisp does not load keys from tokens; put the key in an ssh-agent")
        }
        _ => Kind::Unknown,
    }
}
