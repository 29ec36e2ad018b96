//! CPU time, to say where a round's work went: the whole machine's (controller, sshd and
//! everything the hosts ran, which on loopback all share these cores), this process's own, and
//! that of the children it has reaped (a `wisp` or `ssh` it waited for). Read from /proc in
//! clock ticks (USER_HZ, 100 per second on Linux), so a figure is good to about 10 ms.

use std::time::Duration;

const TICK: Duration = Duration::from_millis(10);

/// A reading of the three clocks.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cpu {
    machine: u64,
    own: u64,
    reaped: u64,
}

/// What each clock advanced by between two readings.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Spent {
    /// Every core's busy time.
    pub machine: Duration,
    /// This process.
    pub own: Duration,
    /// Children reaped in between.
    pub reaped: Duration,
}

fn ticks(n: u64) -> Duration {
    TICK * u32::try_from(n).unwrap_or(u32::MAX)
}

impl Cpu {
    pub(crate) fn now() -> Self {
        let stat = std::fs::read_to_string("/proc/stat").expect("/proc/stat");
        // cpu  user nice system idle iowait irq softirq steal ...: busy is all but idle, iowait.
        let fields: Vec<u64> = stat
            .lines()
            .next()
            .unwrap_or("")
            .split_whitespace()
            .skip(1)
            .filter_map(|f| f.parse().ok())
            .collect();
        let machine = fields
            .iter()
            .take(8)
            .enumerate()
            .filter(|(i, _)| *i != 3 && *i != 4)
            .map(|(_, v)| v)
            .sum();
        let own = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
        // After the command name's closing parenthesis: field 3 onwards; utime is field 14.
        let rest: Vec<u64> = own
            .rsplit_once(')')
            .map_or("", |(_, r)| r)
            .split_whitespace()
            .skip(11)
            .take(4)
            .filter_map(|f| f.parse().ok())
            .collect();
        let at = |i: usize| rest.get(i).copied().unwrap_or(0);
        Self {
            machine,
            own: at(0) + at(1),
            reaped: at(2) + at(3),
        }
    }

    /// What was spent since `self`.
    pub(crate) fn since(self) -> Spent {
        let now = Self::now();
        Spent {
            machine: ticks(now.machine.saturating_sub(self.machine)),
            own: ticks(now.own.saturating_sub(self.own)),
            reaped: ticks(now.reaped.saturating_sub(self.reaped)),
        }
    }
}

/// `total` spread over `n` hosts, in milliseconds.
pub(crate) fn per_host_ms(total: Duration, n: usize) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let n = n.max(1) as f64;
    total.as_secs_f64() * 1000.0 / n
}
