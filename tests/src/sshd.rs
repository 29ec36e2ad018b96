//! Real OpenSSH `sshd` hosts on loopback for end-to-end tests.
//!
//! Each [`Fleet`] gets its own scratch directory holding a client key, `authorized_keys`, a
//! `known_hosts` with every host's key, one host key and config per host, and the hosts'
//! temp directory (`SetEnv TMPDIR=`), so "nothing left behind" can be checked precisely. Hosts
//! listen on 127.x.y.z addresses unique to the fleet. Everything stops when the fleet drops.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::{ScratchDir, is_dead, wait_for};

/// The sshd binary Debian's `openssh-server` installs.
pub const SSHD: &str = "/usr/sbin/sshd";
const PORT: u16 = 2222;

static FLEETS: AtomicU32 = AtomicU32::new(0);

/// Where fleets whose hosts mount over `/tmp` keep their files.
pub const NAMESPACED_FLEETS: &str = "/var/lib/wisp-test-fleets";

/// The mounts of a CIS-hardened host (see [`Fleet::start_hardened`]); `$REMOTE_TMP` is the
/// fleet's TMPDIR.
const NOEXEC: &str = "for d in /tmp /var/tmp /dev/shm \"$REMOTE_TMP\"; do \
    mount -t tmpfs -o noexec,nosuid,nodev,mode=1777,size=64m tmpfs \"$d\"; done";

/// One sshd host.
#[derive(Debug)]
pub struct Host {
    /// Its address.
    pub addr: String,
    /// Its port.
    pub port: u16,
    /// Its host public key, as in a known_hosts line (`ssh-ed25519 AAAA...`).
    pub host_key: String,
    /// Its config file.
    pub config: PathBuf,
    child: Option<Child>,
}

impl Host {
    /// `addr:port`, as a wisp target.
    pub fn target(&self) -> String {
        if self.addr.contains(':') {
            format!("[{}]:{}", self.addr, self.port)
        } else {
            format!("{}:{}", self.addr, self.port)
        }
    }

    /// Its sshd's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops this host's sshd (to test an unreachable host).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            // Until nothing listens any more, a restart could bind beside a leftover listener
            // (held by a connection's child) and a client could reach the wrong one.
            let addr = self.target();
            let _ = wait_for(Duration::from_secs(5), || {
                TcpStream::connect(&addr).is_err().then_some(())
            });
        }
    }
}

/// A set of sshd hosts and the client files to reach them.
#[derive(Debug)]
pub struct Fleet {
    /// The scratch directory holding everything.
    pub dir: ScratchDir,
    /// The hosts.
    pub hosts: Vec<Host>,
    /// The client's private key (ed25519, no passphrase).
    pub client_key: PathBuf,
    /// A known_hosts file listing every host's key.
    pub known_hosts: PathBuf,
    /// The hosts' TMPDIR.
    pub remote_tmp: PathBuf,
    /// Shell commands each host's sshd runs first in a mount namespace of its own (see
    /// [`Fleet::start_with_private_dir`] and [`Fleet::start_hardened`]).
    namespace_setup: Option<String>,
}

/// Fails loudly (never skips) when sshd cannot run here.
pub fn require_sshd() {
    assert!(
        Path::new(SSHD).is_file(),
        "{SSHD} is missing: install Debian's openssh-server (.ci/run does) to run the SSH tests"
    );
    // sshd refuses to start without its privilege-separation directory.
    let _ = std::fs::create_dir_all("/run/sshd");
}

fn keygen(path: &Path, comment: &str) -> String {
    keygen_of_type(path, comment, "ed25519")
}

/// Makes an unencrypted key pair of `kind` (`ed25519`, `ecdsa`, `rsa`) at `path` and returns
/// its public half as `TYPE BASE64`.
pub fn keygen_of_type(path: &Path, comment: &str, kind: &str) -> String {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", kind, "-N", "", "-C", comment, "-f"])
        .arg(path)
        .output()
        .expect("run ssh-keygen");
    assert!(
        out.status.success(),
        "ssh-keygen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let public = std::fs::read_to_string(path.with_extension("pub")).expect("read public key");
    let mut fields = public.split_whitespace();
    format!(
        "{} {}",
        fields.next().unwrap_or(""),
        fields.next().unwrap_or("")
    )
}

impl Fleet {
    /// Starts `n` sshd hosts; `known_hosts` lists them all.
    pub fn start(n: usize) -> Self {
        Self::start_inner(n, None, false)
    }

    /// Like [`Fleet::start`], but each host's sshd runs in a mount namespace of its own with a
    /// fresh tmpfs at `dir`: one path, a different folder on every host, as on real machines.
    /// Needs root.
    pub fn start_with_private_dir(n: usize, dir: &Path) -> Self {
        std::fs::create_dir_all(dir).expect("create the private folder's mount point");
        let setup = format!("mount -t tmpfs -o mode=0755 tmpfs '{}'", dir.display());
        Self::start_inner(n, Some(setup), false)
    }

    /// Like [`Fleet::start`], but each host is hardened as CIS benchmarks ask: `/tmp`,
    /// `/var/tmp`, `/dev/shm` and the hosts' TMPDIR are `noexec` (fresh tmpfs, in a mount
    /// namespace of the host's own), and `extra` shell commands run after (more mounts).
    /// Needs root.
    pub fn start_hardened(n: usize, extra: &str) -> Self {
        Self::start_in_namespace(n, &format!("{NOEXEC}\n{extra}"))
    }

    /// Like [`Fleet::start`], but each host's sshd runs in a mount and UTS namespace of its
    /// own, after `setup` (shell commands, `sh -e`; `$REMOTE_TMP` is the hosts' TMPDIR and
    /// `$HOST_NO` the host's index). Needs root.
    pub fn start_in_namespace(n: usize, setup: &str) -> Self {
        Self::start_inner(n, Some(setup.to_owned()), true)
    }

    /// `apart`: the fleet's own files live outside /tmp (its hosts mount over it).
    fn start_inner(n: usize, namespace_setup: Option<String>, apart: bool) -> Self {
        require_sshd();
        // A host that mounts over /tmp must still see its own config and keys: those hosts'
        // fleets live where no mount of theirs goes.
        let dir = if apart {
            ScratchDir::new_in(Path::new(NAMESPACED_FLEETS), "sshd")
        } else {
            ScratchDir::new("sshd")
        };
        let remote_tmp = dir.0.join("remote-tmp");
        let namespace_setup =
            namespace_setup.map(|s| s.replace("$REMOTE_TMP", &remote_tmp.display().to_string()));
        std::fs::create_dir_all(&remote_tmp).expect("create the hosts' temp dir");
        // World-writable with the sticky bit, like /tmp: unprivileged logins stage here too.
        let _ = Command::new("chmod").arg("1777").arg(&remote_tmp).status();
        let _ = Command::new("chmod").arg("755").arg(&dir.0).status();
        let client_key = dir.0.join("client_key");
        let client_pub = keygen(&client_key, "wisp-test-client");
        let authorized = dir.0.join("authorized_keys");
        std::fs::write(&authorized, format!("{client_pub}\n")).expect("write authorized_keys");
        // Unique 127.x.y.0/24 per fleet: fleets of parallel tests never share an address.
        let fleet_no = FLEETS.fetch_add(1, Ordering::SeqCst);
        let (b, c) = (10 + std::process::id() % 200, 1 + fleet_no % 250);
        let mut hosts = Vec::new();
        let mut known = String::new();
        for i in 0..n {
            // 250 hosts per /24; a larger fleet (the 1,000-host benchmark) takes the next ones.
            let addr = format!("127.{b}.{}.{}", (c as usize + i / 250) % 256, i % 250 + 1);
            let host_key_path = dir.0.join(format!("host{i}_ed25519"));
            let host_key = keygen(&host_key_path, &addr);
            let config = dir.0.join(format!("sshd{i}.conf"));
            std::fs::write(
                &config,
                format!(
                    "ListenAddress {addr}:{PORT}\nHostKey {}\nAuthorizedKeysFile {}\nPidFile none\nUsePAM no\n\
                     PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
                     PermitRootLogin prohibit-password\nStrictModes no\nLogLevel ERROR\nMaxStartups 200\n\
                     Subsystem sftp internal-sftp\nSetEnv TMPDIR={}\n",
                    host_key_path.display(),
                    authorized.display(),
                    remote_tmp.display()
                ),
            )
            .expect("write sshd config");
            known.push_str(&format!("[{addr}]:{PORT} {host_key}\n"));
            hosts.push(Host {
                addr,
                port: PORT,
                host_key,
                config,
                child: None,
            });
        }
        let known_hosts = dir.0.join("known_hosts");
        std::fs::write(&known_hosts, known).expect("write known_hosts");
        let mut fleet = Fleet {
            dir,
            hosts,
            client_key,
            known_hosts,
            remote_tmp,
            namespace_setup,
        };
        for i in 0..n {
            fleet.start_host(i);
        }
        fleet
    }

    /// (Re)starts host `i`'s sshd and waits until it accepts connections.
    pub fn start_host(&mut self, i: usize) {
        let host = &mut self.hosts[i];
        // sshd's own log (it logs the readiness probe below, among others) goes to a file.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(host.config.with_extension("log"))
            .expect("sshd log");
        let mut command = match &self.namespace_setup {
            None => Command::new(SSHD),
            Some(setup) => {
                let mut c = Command::new("unshare");
                c.args(["--mount", "--uts", "--propagation", "private", "sh", "-ec"])
                    .arg(format!("{setup}\nexec \"$@\""))
                    .arg("sshd-in-namespace")
                    .arg(SSHD)
                    .env("HOST_NO", i.to_string());
                c
            }
        };
        let child = command
            .args(["-D", "-e", "-f"])
            .arg(&host.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start sshd");
        let pid = child.id();
        host.child = Some(child);
        let addr = host.target();
        // Up means this sshd answers with its banner, not merely that something accepts.
        let up = wait_for(Duration::from_secs(10), || {
            let mut stream = TcpStream::connect(&addr).ok()?;
            stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
            let mut banner = [0u8; 4];
            std::io::Read::read_exact(&mut stream, &mut banner).ok()?;
            (&banner == b"SSH-" && !is_dead(pid)).then_some(())
        });
        assert!(
            up.is_some() && !is_dead(pid),
            "sshd on {addr} did not come up"
        );
    }

    /// Restarts host `i` with an sshd option set (for example `AllowTcpForwarding no`),
    /// replacing any earlier value: sshd takes the first value it reads.
    pub fn restart_with(&mut self, i: usize, option: &str) {
        self.hosts[i].stop();
        let config = &self.hosts[i].config;
        let keyword = option
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        let mut text: String = std::fs::read_to_string(config)
            .expect("read sshd config")
            .lines()
            .filter(|l| {
                l.split_whitespace().next().map(str::to_ascii_lowercase) != Some(keyword.clone())
            })
            .map(|l| format!("{l}\n"))
            .collect();
        text.push_str(option);
        text.push('\n');
        std::fs::write(config, text).expect("write sshd config");
        self.start_host(i);
    }

    /// The options that make `wisp` reach this fleet as root: its known_hosts and client key,
    /// no agent config, a generous connect timeout (a later `--connect-timeout` wins).
    pub fn root_options(&self) -> Vec<std::ffi::OsString> {
        let mut out: Vec<std::ffi::OsString> = vec!["--known-hosts".into()];
        out.push(self.known_hosts.clone().into());
        for a in ["--connect-timeout", "30s", "--ssh-config", "/dev/null"] {
            out.push(a.into());
        }
        out.extend(["--user".into(), "root".into(), "--key".into()]);
        out.push(self.client_key.clone().into());
        out
    }

    /// Writes an inventory naming the hosts `web01`, `web02`, ... (with their addresses and
    /// ports) to `path`.
    pub fn write_inventory(&self, path: &Path) {
        let text: String = self
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| {
                format!(
                    "web{:02} ansible_host={} ansible_port={}\n",
                    i + 1,
                    h.addr,
                    h.port
                )
            })
            .collect();
        std::fs::write(path, text).expect("write the inventory");
    }

    /// Runs `wisp ARGS -i hosts (credentials)` in `dir` (a command after `--` stays last);
    /// `wisp` is the test's [`wisp_command!`](crate::wisp_command) for `dir`, and `hosts` what
    /// [`Fleet::write_inventory`] wrote there.
    pub fn wisp(&self, mut wisp: Command, dir: &Path, args: &[&str]) -> std::process::Output {
        let split = args.iter().position(|a| *a == "--").unwrap_or(args.len());
        let c = &mut wisp;
        c.args(&args[..split])
            .args(["-i", "hosts"])
            .args(self.root_options())
            .args(&args[split..])
            .current_dir(dir);
        crate::wisp::run(c, dir)
    }

    /// Every host as a comma-separated target list.
    pub fn targets(&self) -> String {
        self.hosts
            .iter()
            .map(Host::target)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Entries left in the hosts' temp directory.
    pub fn leftovers(&self) -> Vec<String> {
        std::fs::read_dir(&self.remote_tmp)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Live processes whose command line mentions this fleet's temp directory (runners
    /// staged there, and anything they still run from it).
    pub fn live_runners(&self) -> Vec<(u32, String)> {
        let needle = self.remote_tmp.to_string_lossy().into_owned();
        crate::all_processes()
            .into_iter()
            .map(|(pid, argv)| (pid, argv.join(" ")))
            .filter(|(_, cmdline)| cmdline.contains(&needle))
            .collect()
    }

    /// Asserts the promise made after every run: no file left in the hosts' temp directory
    /// and no runner process alive. Waits briefly for sessions that are still closing.
    pub fn assert_clean(&self) {
        let clean = wait_for(Duration::from_secs(3), || {
            (self.leftovers().is_empty() && self.live_runners().is_empty()).then_some(())
        });
        assert!(
            clean.is_some(),
            "left behind: files {:?}, processes {:?}",
            self.leftovers(),
            self.live_runners()
        );
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for h in &mut self.hosts {
            h.stop();
        }
    }
}
