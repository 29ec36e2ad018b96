//! File descriptors: a run with many hosts at once needs one or two per host (the SSH socket;
//! a local runner's pipes), and the default soft limit (often 1024) is far below what the
//! kernel allows. wisp raises its soft `RLIMIT_NOFILE` to the hard limit before it starts, and
//! refuses a run whose concurrency cannot fit, naming the figures and the fix, rather than
//! failing hosts one by one with EMFILE.

/// Descriptors one host at work may hold: its socket or pipes, with room to spare.
pub const PER_HOST: u64 = 4;
/// Descriptors the controller keeps for itself: the store, the journal, the terminal, the
/// runtime, runner files, known_hosts.
pub const RESERVE: u64 = 64;

/// Raises the soft limit to the hard one, and checks that `hosts_at_once` hosts fit in it.
pub fn prepare(hosts_at_once: usize) -> Result<u64, String> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (mut soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)
        .map_err(|e| format!("cannot read this process's file descriptor limit: {e}"))?;
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        soft = hard;
    }
    check(hosts_at_once, soft, hard)?;
    Ok(soft)
}

/// Whether `hosts_at_once` hosts fit in `soft` descriptors (the hard limit `hard` caps any
/// raise).
fn check(hosts_at_once: usize, soft: u64, hard: u64) -> Result<(), String> {
    let hosts = u64::try_from(hosts_at_once).unwrap_or(u64::MAX);
    let needed = hosts.saturating_mul(PER_HOST).saturating_add(RESERVE);
    if needed <= soft {
        return Ok(());
    }
    let fits = soft.saturating_sub(RESERVE) / PER_HOST;
    Err(format!(
        "{hosts} hosts at once need about {needed} file descriptors, and this process may open \
         {soft} (hard limit {hard}): lower --forks to {fits} or less, or raise the hard limit \
         (`ulimit -Hn`, LimitNOFILE= in a systemd unit, nofile in limits.conf)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrency_must_fit_the_limit() {
        assert!(check(200, 1024, 1024).is_ok());
        let e = check(1000, 1024, 1024).unwrap_err();
        assert!(e.contains("lower --forks to 240 or less"), "{e}");
        assert!(check(usize::MAX, u64::MAX - 1, u64::MAX).is_err());
    }
}
