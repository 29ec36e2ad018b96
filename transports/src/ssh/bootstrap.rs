//! The bootstrap: one exec channel that receives the runner, verifies it and becomes it.
//!
//! Conversation on the channel (stdout <- host, stdin -> host). The controller does not wait
//! for the host to speak first: the upload goes out with the exec request, so reaching READY
//! costs no round trip beyond SSH's own.
//!
//! 1. controller: `<arch> <raw|gz> <size> <sha256-hex> <raw-size>\n` and `size` bytes: the runner for
//!    the architecture it expects (the one this run's hosts have shown, else its own), gzip
//!    compressed (about half the bytes; `gzip` is on every Linux distribution's base system);
//!    the SHA-256 and the raw size are of the runner itself (with `--ask-become-pass`, the
//!    sudo password follows, see [`PASSWORD_LINES`]);
//! 2. host: `WISP-ARCH <nonce> <arch> <raw|gz> take|resend\n` (login noise may come before
//!    it): its architecture, whether it has gzip, and whether it takes this upload. On
//!    `resend` it discards the bytes and reads one more header and upload, which the
//!    controller sends for the architecture and encoding the host named;
//! 3. host: writes the runner into a fresh `mktemp -d` directory (umask 077) beneath the first
//!    base, in order `TMPDIR`, `/tmp`, `/var/tmp`, `/dev/shm`, `XDG_RUNTIME_DIR`, `/run` (for
//!    root), `~/.cache`, `~`, that no other user can rename things in (a sticky `/tmp`,
//!    `/var/tmp` or `/dev/shm`, else a base resolved once to its physical path whose every
//!    directory, up to `/`, is owned by root or the login user and writable by others only
//!    when sticky) and that has room for it, decompressing it when it came compressed,
//!    refuses unless its SHA-256 matches, tries the copy (`--version`) to detect a `noexec`
//!    mount and moves on to the next location if needed, then `exec`s the runner on the
//!    same channel, which prints `WISP-START <nonce>` and READY.
//!
//! The script itself travels first on the channel (see [`command`]): the exec request is
//! one line that every login shell, csh and tcsh included, passes on unchanged.
//!
//! Becoming root (`--become`, `--ask-become-pass`), the runner the login user wrote and checked
//! is not the one root runs: the login user (or anything running as them) can change files in
//! their own directory at any moment. Root copies it into a directory of its own (`mktemp -d`
//! beneath a root-owned base that no other user can rename into: `/run`, a sticky
//! `/tmp`, `/dev/shm`, `/var/tmp`, or root's home), checks the SHA-256 of that copy, and runs that copy: the
//! bytes hashed are the bytes executed, out of the login user's reach.
//!
//! Programs the host runs: `sh`, `mktemp`, `find` (a base's permissions), `df` (its room),
//! `head` (with `gzip` when compressed), the SHA-256 tool, `chmod`, `sudo` or `doas` and `cp`
//! (when becoming root), the runner's `--version` probe and the runner (`uname` only on
//! kernels without `/proc/sys/kernel/arch`).
//!
//! Becoming root is tried (`sudo -n true`, `doas -n true`) before anything is written: a
//! host that refuses keeps nothing of the attempt, and when sudo or the runner as root ends
//! the script removes the login user's copy before it exits.
//!
//! Failures print one `wisp-bootstrap: ...` line on stderr and exit non-zero; nothing is
//! executed from an unverified file, and the directory is removed.

use std::sync::{Arc, OnceLock};

/// Exit status of the bootstrap when the upload did not match what was announced.
pub const EXIT_MISMATCH: u32 = 65;
/// Exit status when no location can hold and execute the runner.
pub const EXIT_NO_LOCATION: u32 = 66;
/// Exit status when the host has no SHA-256 tool, so nothing can be verified.
pub const EXIT_NO_SHA256: u32 = 67;

/// Exit status when becoming root was refused (sudo or doas missing, refusing this user,
/// wanting a password none was given for, or a terminal).
pub const EXIT_BECOME: u32 = 68;

/// How many times the sudo password line follows the upload. The script reads the first
/// into a shell variable (never an argument, never exported) and checks it through a pipe
/// (`sudo -S -v`: one try, so a wrong password fails at once); the second is read by
/// `sudo -S` for the command itself, straight from the channel, a byte at a time, when sudo
/// keeps no credentials between two calls (`timestamp_timeout=0`). A line no one needs is
/// read and dropped before the runner starts.
pub const PASSWORD_LINES: usize = 2;

/// The script, sent on the channel's stdin ahead of the upload (so the exec request stays
/// one line any login shell parses, csh's included); `$1` nonce, `$2` TTL seconds, `$3` how
/// to become root: empty, `sudo`, `sudo-pass`, `doas` or `su-pass`.
///
/// Becoming root is tried before anything is written (`sudo -n true`), so a host that
/// refuses keeps no file of the attempt, and sudo's own words are the error. With
/// `sudo-pass`, [`PASSWORD_LINES`] lines after the runner's bytes are the password.
///
/// Where the runner goes: the first base, in the order below, that is safe (no other user
/// can rename things in it) and has room for the runner (`df`, when there is one: only then
/// is the upload read, so a full base costs nothing); when the runner written there cannot
/// execute (a `noexec` mount), it is copied on to the next such base.
const SCRIPT: &str = include_str!("bootstrap.sh");

/// The exec request for a session: one line with no newline, no `!` and no quote inside
/// the quotes, which every login shell (sh, bash, zsh, fish, busybox, csh and tcsh) passes
/// on to `sh` unchanged. `sh` reads the script itself from the channel (see [`script`]),
/// then the upload. The login shell `exec`s `sh`: some shells (dash) otherwise fork for the
/// command and stay behind, waiting, one more process on every host.
pub fn command(nonce: &str, ttl_s: u64, mode: Become) -> String {
    debug_assert!(crate::marker_safe(nonce));
    let mode = match mode {
        Become::No => "''",
        Become::Sudo => "sudo",
        Become::SudoWithPassword => "sudo-pass",
        Become::Doas => "doas",
        Become::SuWithPassword => "su-pass",
    };
    format!(
        "exec sh -c 'eval \"$(head -c {})\"' wisp-bootstrap {nonce} {ttl_s} {mode}",
        SCRIPT.len()
    )
}

/// The script's bytes, sent first on the channel (see [`command`]).
pub fn script() -> &'static [u8] {
    SCRIPT.as_bytes()
}

/// How the runner is started on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Become {
    /// As the login user.
    No,
    /// Through `sudo -n` (no password).
    Sudo,
    /// Through sudo, with a password sent after the runner's bytes.
    SudoWithPassword,
    /// Through `doas -n` (a `nopass` rule: doas reads a password from a terminal only).
    Doas,
    /// Through `su`, with root's password, on a terminal `script(1)` makes.
    SuWithPassword,
}

/// How the runner's bytes travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// As they are.
    Raw,
    /// gzip-compressed (the host decompresses with `gzip -dc`).
    Gzip,
}

impl Encoding {
    fn label(self) -> &'static str {
        match self {
            Encoding::Raw => "raw",
            Encoding::Gzip => "gz",
        }
    }
}

/// The header line the controller sends before the runner's bytes: for `arch`, `size` bytes
/// in `encoding`, whose decoded SHA-256 is `sha256_hex` and decoded size `raw_size` (the room
/// the host looks for).
pub fn header(
    arch: &str,
    encoding: Encoding,
    size: usize,
    sha256_hex: &str,
    raw_size: usize,
) -> String {
    format!(
        "{arch} {} {size} {sha256_hex} {raw_size}\n",
        encoding.label()
    )
}

/// What the host said of the first upload: `WISP-ARCH <nonce> <arch> <raw|gz> take|resend`,
/// after the nonce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSaid {
    /// Its architecture, normalised.
    pub arch: String,
    /// Whether it can decompress gzip.
    pub gzip: bool,
    /// Whether it took the upload (else it wants another).
    pub took: bool,
}

impl HostSaid {
    /// Parses the rest of the line after the nonce.
    pub fn parse(line: &str) -> Option<HostSaid> {
        let mut words = line.split_whitespace();
        let arch = normalise_arch(words.next()?).to_owned();
        let gzip = words.next()? == "gz";
        let took = match words.next()? {
            "take" => true,
            "resend" => false,
            _ => return None,
        };
        Some(HostSaid { arch, gzip, took })
    }
}

/// A runner as it travels: its bytes, their SHA-256, and the same bytes compressed (made once,
/// on a thread of its own from the moment the payload exists, so the first hosts' handshakes
/// hide it). One per runner file for the whole fleet.
#[derive(Debug)]
pub struct Payload {
    raw: Arc<Vec<u8>>,
    /// The runner's SHA-256, hex.
    pub sha256: String,
    gz: Arc<OnceLock<Vec<u8>>>,
}

impl Payload {
    /// The payload of `raw` (hashed now).
    pub fn new(raw: Arc<Vec<u8>>) -> Payload {
        use sha2::Digest;
        let sha256 = sha2::Sha256::digest(raw.as_slice())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let gz: Arc<OnceLock<Vec<u8>>> = Arc::default();
        let (early, bytes) = (Arc::clone(&gz), Arc::clone(&raw));
        // Whoever needs it first while this runs waits for it (OnceLock runs one init).
        std::thread::spawn(move || {
            early.get_or_init(|| gzip(&bytes));
        });
        Payload { raw, sha256, gz }
    }

    /// The runner's own size.
    pub fn raw_len(&self) -> usize {
        self.raw.len()
    }

    /// The bytes to send in `encoding`.
    pub fn bytes(&self, encoding: Encoding) -> &[u8] {
        match encoding {
            Encoding::Raw => &self.raw,
            Encoding::Gzip => self.gz.get_or_init(|| gzip(&self.raw)),
        }
    }

    /// The bytes to send in `encoding` with the runner's last byte flipped (the upload
    /// corruption test's hook): the host must refuse them by their hash.
    pub fn corrupted(&self, encoding: Encoding) -> Vec<u8> {
        let mut bad = self.raw.to_vec();
        if let Some(last) = bad.last_mut() {
            *last ^= 0xff;
        }
        match encoding {
            Encoding::Raw => bad,
            Encoding::Gzip => gzip(&bad),
        }
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 2),
        // Level 3: for the x86_64 runner 519 KB in 20 ms, against 594 KB in 7 ms at level 1
        // and 508 KB in 44 ms at the default 6. Made once per run while the first handshakes
        // go on, and the smaller stream also decompresses a little faster on the host.
        flate2::Compression::new(3),
    );
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(bytes);
    enc.finish().unwrap_or_default()
}

/// Maps `uname -m` to the architecture names runners are built for.
pub fn normalise_arch(uname_m: &str) -> &str {
    match uname_m {
        "arm64" | "aarch64_be" => "aarch64",
        "amd64" => "x86_64",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_line_parses() {
        assert_eq!(
            HostSaid::parse("arm64 gz resend"),
            Some(HostSaid {
                arch: "aarch64".into(),
                gzip: true,
                took: false
            })
        );
        assert_eq!(
            HostSaid::parse("x86_64 raw take").map(|h| h.took),
            Some(true)
        );
        assert_eq!(HostSaid::parse("x86_64 raw"), None);
    }

    #[test]
    fn compressed_payloads_decompress_to_the_runner() {
        let raw: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let p = Payload::new(Arc::new(raw.clone()));
        let gz = p.bytes(Encoding::Gzip);
        assert!(gz.len() < raw.len() / 2);
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(gz), &mut out).unwrap();
        assert_eq!(out, raw);
    }

    /// The real script under `sh`, fed an upload for another architecture and then the right
    /// one, both at once as the controller pipelines them: it asks for the second, discards
    /// the first, verifies the second and runs it.
    #[test]
    fn an_upload_for_another_architecture_is_discarded_and_the_next_one_taken() {
        use std::io::Write;
        let dir = std::env::temp_dir().join(format!("wisp-bootstrap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let runner = b"#!/bin/sh\necho ran \"$@\"\n".to_vec();
        let payload = Payload::new(Arc::new(runner));
        let arch = std::fs::read_to_string("/proc/sys/kernel/arch")
            .map(|a| a.trim().to_owned())
            .unwrap_or_else(|_| std::env::consts::ARCH.to_owned());
        let wrong = vec![0u8; 5000];
        let mut input = script().to_vec();
        input.extend_from_slice(
            header("not-this-arch", Encoding::Raw, wrong.len(), "0", 0).as_bytes(),
        );
        input.extend_from_slice(&wrong);
        let gz = payload.bytes(Encoding::Gzip);
        input.extend_from_slice(
            header(
                &arch,
                Encoding::Gzip,
                gz.len(),
                &payload.sha256,
                payload.raw_len(),
            )
            .as_bytes(),
        );
        input.extend_from_slice(gz);
        let mut child = std::process::Command::new("sh")
            .args(["-c", &command("n0nce-for-test", 60, Become::No)])
            .env("TMPDIR", &dir)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&input).unwrap();
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<&str> = stdout.lines().collect();
        assert!(
            lines[0].starts_with("WISP-ARCH n0nce-for-test ") && lines[0].ends_with(" resend"),
            "{stdout}"
        );
        assert!(lines[1].ends_with(" take"), "{stdout}");
        assert!(
            lines[2].starts_with("ran --marker n0nce-for-test --ttl 60 --private-dir "),
            "{stdout}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// What a csh-family login shell cannot take inside single quotes: a newline, and `!`
    /// (history).
    #[test]
    fn the_exec_request_is_one_line_any_login_shell_passes_on() {
        let line = command("n0nce-for-test", 60, Become::SudoWithPassword);
        assert!(!line.contains('\n') && !line.contains('!'), "{line}");
        assert_eq!(line.matches('\'').count(), 2, "{line}");
    }

    #[test]
    fn script_is_valid_sh() {
        let out = std::process::Command::new("sh")
            .args(["-n", "-c", SCRIPT])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
