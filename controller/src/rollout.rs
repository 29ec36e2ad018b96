//! Rollout policy: hosts in batches (`--serial`) and the failures a run may take before it
//! starts no more hosts (`--max-fail` over the whole run, `--max-fail-batch` per batch).
//!
//! `--serial` is a count (`5`), a percentage of the hosts (`25%`, rounded down, at least one)
//! or a list of them (`1,10%,100%`) whose last step repeats until every host had its turn.
//! When the list has more than one step its first batch is a canary: one failure there stops
//! the run whatever the budget.
//!
//! A failure is a host that failed or was unreachable. A budget of `N` lets `N` hosts fail; the
//! next failure spends it, and the run starts no further batch. A percentage counts against
//! all the run's hosts (`--max-fail`) or the batch's (`--max-fail-batch`).

use std::str::FromStr;

/// A step of `--serial`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// This many hosts.
    Count(usize),
    /// This percentage of all the hosts.
    Percent(u32),
}

impl Step {
    fn size(self, total: usize) -> usize {
        match self {
            Step::Count(n) => n,
            Step::Percent(p) => total * p as usize / 100,
        }
        .max(1)
    }
}

fn parse_step(text: &str) -> Result<Step, String> {
    let t = text.trim();
    if let Some(p) = t.strip_suffix('%') {
        return match p.parse::<u32>() {
            Ok(p) if (1..=100).contains(&p) => Ok(Step::Percent(p)),
            _ => Err(format!("{t:?} is not a percentage from 1% to 100%")),
        };
    }
    match t.parse::<usize>() {
        Ok(n) if n > 0 => Ok(Step::Count(n)),
        _ => Err(format!(
            "{t:?} is not a host count or a percentage like 10%"
        )),
    }
}

/// `--serial`: batch sizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Serial(Vec<Step>);

impl FromStr for Serial {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let steps = text
            .split(',')
            .map(parse_step)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Serial(steps))
    }
}

impl Serial {
    /// The batch sizes for `total` hosts, summing to `total`.
    pub fn batches(&self, total: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let mut left = total;
        let mut steps = self.0.iter();
        let mut step = steps.next().copied().unwrap_or(Step::Percent(100));
        while left > 0 {
            let size = step.size(total).min(left);
            out.push(size);
            left -= size;
            if let Some(next) = steps.next() {
                step = *next;
            }
        }
        out
    }

    /// Whether the first batch is a canary (the list has more than one step).
    pub fn has_canary(&self) -> bool {
        self.0.len() > 1
    }
}

/// `--max-fail` or `--max-fail-batch`: how many failures are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// This many hosts may fail.
    Count(usize),
    /// This percentage of the hosts counted against may fail.
    Percent(u32),
}

impl FromStr for Budget {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if let Some(p) = t.strip_suffix('%') {
            return match p.parse::<u32>() {
                Ok(p) if p <= 100 => Ok(Budget::Percent(p)),
                _ => Err(format!("{t:?} is not a percentage from 0% to 100%")),
            };
        }
        t.parse::<usize>()
            .map(Budget::Count)
            .map_err(|_| format!("{t:?} is not a number of hosts or a percentage like 10%"))
    }
}

impl Budget {
    /// Whether `failed` of `of` hosts is more than this budget allows.
    pub fn spent(self, failed: usize, of: usize) -> bool {
        match self {
            Budget::Count(n) => failed > n,
            Budget::Percent(p) => failed * 100 > p as usize * of,
        }
    }
}

impl std::fmt::Display for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Budget::Count(n) => write!(f, "{n}"),
            Budget::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// The whole policy; the default runs every host in one batch with no budget.
#[derive(Debug, Clone, Default)]
pub struct Rollout {
    /// Hosts worked on at once (`--forks`), within a batch.
    pub forks: usize,
    /// Batch sizes, when given.
    pub serial: Option<Serial>,
    /// Failures allowed over the whole run.
    pub max_fail: Option<Budget>,
    /// Failures allowed in one batch.
    pub max_fail_batch: Option<Budget>,
}

impl Rollout {
    /// The batch sizes for `total` hosts.
    pub fn batches(&self, total: usize) -> Vec<usize> {
        match &self.serial {
            Some(s) => s.batches(total),
            None if total > 0 => vec![total],
            None => Vec::new(),
        }
    }

    /// After batch `index` (`failed` of its `size` hosts failed; `failed_total` of `total`
    /// so far in the run), why the run must start nothing more, if it must.
    pub fn stop_after(
        &self,
        index: usize,
        failed: usize,
        size: usize,
        failed_total: usize,
        total: usize,
    ) -> Option<String> {
        let canary = index == 0 && self.serial.as_ref().is_some_and(Serial::has_canary);
        if canary && failed > 0 {
            return Some(format!(
                "the canary batch failed ({failed} of {size} hosts)"
            ));
        }
        if let Some(b) = self.max_fail
            && b.spent(failed_total, total)
        {
            return Some(format!(
                "{failed_total} of {total} hosts failed, over the --max-fail {b} budget"
            ));
        }
        if let Some(b) = self.max_fail_batch
            && b.spent(failed, size)
        {
            return Some(format!(
                "{failed} of {size} hosts in batch {} failed, over the --max-fail-batch {b} budget",
                index + 1
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_follow_the_steps_and_the_last_repeats() {
        let b = |s: &str, n| s.parse::<Serial>().unwrap().batches(n);
        assert_eq!(b("5", 20), [5, 5, 5, 5]);
        assert_eq!(b("5", 12), [5, 5, 2]);
        assert_eq!(b("1,10%,100%", 50), [1, 5, 44]);
        assert_eq!(b("1,50%", 20), [1, 10, 9]);
        assert_eq!(b("25%", 3), [1, 1, 1]);
        assert_eq!(b("3", 0), Vec::<usize>::new());
        for bad in ["0", "x", "0%", "101%", "1,,2", ""] {
            assert!(bad.parse::<Serial>().is_err(), "{bad}");
        }
    }

    #[test]
    fn budgets_allow_n_and_stop_at_the_next() {
        let r = Rollout {
            forks: 50,
            serial: Some("5".parse().unwrap()),
            max_fail: Some("3".parse().unwrap()),
            max_fail_batch: None,
        };
        assert_eq!(
            r.stop_after(0, 2, 5, 2, 20),
            None,
            "a single-step serial has no canary"
        );
        assert_eq!(
            r.stop_after(1, 1, 5, 3, 20),
            None,
            "3 failures are within a budget of 3"
        );
        assert_eq!(
            r.stop_after(2, 1, 5, 4, 20).as_deref(),
            Some("4 of 20 hosts failed, over the --max-fail 3 budget")
        );
        let canary = Rollout {
            serial: Some("1,50%".parse().unwrap()),
            ..Rollout::default()
        };
        assert!(
            canary
                .stop_after(0, 1, 1, 1, 20)
                .unwrap()
                .contains("canary")
        );
        assert_eq!(
            canary.stop_after(1, 5, 10, 5, 20),
            None,
            "no budget: later batches go on"
        );
        let per_batch = Rollout {
            max_fail_batch: Some("20%".parse().unwrap()),
            ..Rollout::default()
        };
        assert_eq!(per_batch.stop_after(0, 1, 5, 1, 20), None);
        assert!(
            per_batch
                .stop_after(0, 2, 5, 2, 20)
                .unwrap()
                .contains("--max-fail-batch 20%")
        );
        assert!("x".parse::<Budget>().is_err());
    }
}
