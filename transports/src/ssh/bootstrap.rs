//! The bootstrap: one exec channel that receives the runner, verifies it and becomes it.
//!
//! Conversation on the channel (stdout ← host, stdin → host):
//!
//! 1. host: `WISP-ARCH <nonce> <uname -m>\n` (login noise may come before it);
//! 2. controller: `<size> <sha256-hex>\n`, then exactly `size` bytes of the runner;
//! 3. host: writes them into a fresh `mktemp -d` directory (umask 077), refuses unless size and
//!    SHA-256 match, tries the copy (`--version`) to detect a `noexec` mount and moves on to the
//!    next location if needed, then `exec`s the runner on the same channel, which prints
//!    `WISP-START <nonce>` and READY.
//!
//! Failures print one `wisp-bootstrap: ...` line on stderr and exit non-zero; nothing is
//! executed from an unverified file, and the directory is removed.

/// Exit status of the bootstrap when the upload did not match what was announced.
pub const EXIT_MISMATCH: u32 = 65;
/// Exit status when no location can hold and execute the runner.
pub const EXIT_NO_LOCATION: u32 = 66;
/// Exit status when the host has no SHA-256 tool, so nothing can be verified.
pub const EXIT_NO_SHA256: u32 = 67;

/// Exit status when `sudo` needs a password and none was supplied.
pub const EXIT_BECOME: u32 = 68;

/// The script; `$1` nonce, `$2` TTL seconds, `$3` `sudo`, `sudo-pass` or empty. With
/// `sudo-pass`, one line after the runner's bytes is the sudo password. The script reads it
/// into a shell variable (never an argument, never exported), drops it if sudo needs none,
/// else validates it once through a pipe (`printf` is a builtin) so a wrong password fails at
/// once and the upload is removed, then starts the runner with `sudo -n` from the same shell,
/// which sudo's cached credentials cover. No single quotes inside: the script travels
/// single-quoted.
const SCRIPT: &str = r#"
n="$1"; ttl="$2"; become="$3"
umask 077
fail() { echo "wisp-bootstrap: $2" >&2; [ -n "$d" ] && rm -rf "$d"; exit "$1"; }
sum() {
  if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1" | cut -d" " -f1
  elif command -v shasum >/dev/null 2>&1; then shasum -a 256 "$1" | cut -d" " -f1
  elif command -v openssl >/dev/null 2>&1; then openssl dgst -sha256 -r "$1" | cut -d" " -f1
  else return 1; fi
}
printf "WISP-ARCH %s %s\n" "$n" "$(uname -m)"
read -r size want || fail 64 "no upload header"
src=""
for base in "${TMPDIR:-/tmp}" /tmp /dev/shm "${XDG_RUNTIME_DIR:-}" "${HOME:-}/.cache"; do
  [ -n "$base" ] && [ -d "$base" ] && [ -w "$base" ] || continue
  d=$(mktemp -d "$base/wisp-XXXXXXXXXX" 2>/dev/null) || continue
  f="$d/wisp-runner"
  if [ -z "$src" ]; then
    head -c "$size" > "$f" || fail 65 "cannot write $f"
    got=$(wc -c < "$f" | tr -d " ")
    [ "$got" = "$size" ] || fail 65 "upload is $got bytes, announced $size: refusing to run it"
    have=$(sum "$f") || fail 67 "no sha256sum, shasum or openssl on this host: cannot verify the upload"
        [ "$have" = "$want" ] || fail 65 "upload SHA-256 $have does not match the announced $want: refusing to run it"
        if [ "$become" = sudo-pass ]; then
      IFS= read -r pw || fail 68 "no sudo password line"
      if sudo -n true 2>/dev/null; then become=sudo
      elif printf "%s\n" "$pw" | sudo -S -p "" -v 2>/dev/null; then become=sudo-validated
      else pw=""; fail 68 "sudo refused the password"
      fi
      pw=""
    fi
  else
    cp "$src" "$f" || { rm -rf "$d"; d=""; continue; }
    rm -rf "$(dirname "$src")"
  fi
  chmod 700 "$f"
  if "$f" --version >/dev/null 2>&1; then
            if [ "$become" = sudo-validated ]; then
      sudo -n -- "$f" --marker "$n" --ttl "$ttl" --private-dir "$d"; rc=$?; rm -rf "$d"; exit $rc
    fi
    if [ -n "$become" ]; then exec sudo -n -- "$f" --marker "$n" --ttl "$ttl" --private-dir "$d"; fi
    exec "$f" --marker "$n" --ttl "$ttl" --private-dir "$d"
  fi
  src="$f"; d=""
done
[ -n "$src" ] && rm -rf "$(dirname "$src")"
d=""
fail 66 "no writable location that allows execution (tried TMPDIR, /tmp, /dev/shm, XDG_RUNTIME_DIR, ~/.cache)"
"#;

/// The exec request for a session: the script, single-quoted, with its arguments.
pub fn command(nonce: &str, ttl_s: u64, mode: Become) -> String {
    debug_assert!(!SCRIPT.contains('\''));
    debug_assert!(crate::marker_safe(nonce));
    let mode = match mode {
        Become::No => "''",
        Become::Sudo => "sudo",
        Become::SudoWithPassword => "sudo-pass",
    };
    format!("sh -c '{SCRIPT}' wisp-bootstrap {nonce} {ttl_s} {mode}")
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
}

/// The header line the controller sends before the runner's bytes.
pub fn header(size: usize, sha256_hex: &str) -> String {
    format!("{size} {sha256_hex}\n")
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
