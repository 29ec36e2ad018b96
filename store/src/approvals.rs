//! Plan checks bound to an operator's approval. A check records what its plan, vars and hosts
//! hashed to and what it saw on each host, under a fresh id; `wisp approve ID` records who
//! approved it and until when; an apply takes the id once. Every step is one conditional
//! `UPDATE`, so two processes cannot both approve or both use one id.

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError};

/// What a check found, as it is recorded for approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Who asked: the MCP client's name and version.
    pub asked_by: String,
    /// The policy's plan rule that allowed the check.
    pub rule: String,
    /// The plan file, as the check read it (absolute).
    pub plan_file: String,
    /// The SHA-256 of the plan and every file it is made of.
    pub plan_hash: String,
    /// The extra vars the check was given, as JSON (`{}` when none).
    pub vars: String,
    /// The SHA-256 of those vars and every host's inventory vars.
    pub vars_hash: String,
    /// The hosts as asked (an inventory pattern).
    pub targets: String,
    /// The hosts it selected, in order.
    pub hosts: Vec<String>,
    /// What the check saw on each host, as JSON: host name to a digest of its findings.
    pub states: String,
    /// The report shown to the approver: every host's changes with their diffs (redacted).
    pub report: String,
}

/// A recorded check and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    /// Its id.
    pub id: String,
    /// When the check was made (Unix seconds).
    pub at: u64,
    /// The check.
    pub check: Check,
    /// Who approved it.
    pub approved_by: Option<String>,
    /// When (Unix seconds).
    pub approved_at: Option<u64>,
    /// Until when the approval may be used (Unix seconds).
    pub expires_at: Option<u64>,
    /// When it was used (Unix seconds); an approval is used once.
    pub used_at: Option<u64>,
}

impl Approval {
    /// `pending`, `approved`, `used` or `expired`, at `now`.
    pub fn state(&self, now: u64) -> &'static str {
        match (self.approved_at, self.expires_at, self.used_at) {
            (_, _, Some(_)) => "used",
            (Some(_), Some(until), None) if now >= until => "expired",
            (Some(_), _, None) => "approved",
            (None, _, None) => "pending",
        }
    }
}

/// The seconds since 1970.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A fresh id: 12 hex digits from the kernel's random source.
fn fresh_id() -> std::io::Result<String> {
    let mut bytes = [0u8; 6];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

const COLUMNS: &str = "id, at, asked_by, rule, plan_file, plan_hash, vars, vars_hash, targets, \
                       hosts, states, report, approved_by, approved_at, expires_at, used_at";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Approval> {
    let hosts: String = r.get(9)?;
    Ok(Approval {
        id: r.get(0)?,
        at: r.get(1)?,
        check: Check {
            asked_by: r.get(2)?,
            rule: r.get(3)?,
            plan_file: r.get(4)?,
            plan_hash: r.get(5)?,
            vars: r.get(6)?,
            vars_hash: r.get(7)?,
            targets: r.get(8)?,
            hosts: serde_json::from_str(&hosts).unwrap_or_default(),
            states: r.get(10)?,
            report: r.get(11)?,
        },
        approved_by: r.get(12)?,
        approved_at: r.get(13)?,
        expires_at: r.get(14)?,
        used_at: r.get(15)?,
    })
}

impl Store {
    /// Records a check, pending approval; returns its id.
    pub fn record_check(&self, c: &Check) -> Result<String, StoreError> {
        let id = fresh_id().map_err(|e| StoreError::Open {
            path: self.path.clone(),
            source: e,
        })?;
        let hosts = serde_json::to_string(&c.hosts).unwrap_or_default();
        self.conn
            .execute(
                "INSERT INTO approvals (id, at, asked_by, rule, plan_file, plan_hash, vars, \
                 vars_hash, targets, hosts, states, report) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    id,
                    now(),
                    c.asked_by,
                    c.rule,
                    c.plan_file,
                    c.plan_hash,
                    c.vars,
                    c.vars_hash,
                    c.targets,
                    hosts,
                    c.states,
                    c.report
                ],
            )
            .map_err(|e| self.fail("cannot record a check", e))?;
        Ok(id)
    }

    /// The check recorded under `id`.
    pub fn approval(&self, id: &str) -> Result<Option<Approval>, StoreError> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM approvals WHERE id = ?1"),
                [id],
                row,
            )
            .optional()
            .map_err(|e| self.fail("cannot read an approval", e))
    }

    /// The `limit` newest checks, newest first.
    pub fn approvals(&self, limit: usize) -> Result<Vec<Approval>, StoreError> {
        let read = || -> rusqlite::Result<Vec<Approval>> {
            let mut stmt = self.conn.prepare(&format!(
                "SELECT {COLUMNS} FROM approvals ORDER BY at DESC, rowid DESC LIMIT ?1"
            ))?;
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            stmt.query_map([limit], row)?.collect()
        };
        read().map_err(|e| self.fail("cannot read its approvals", e))
    }

    /// Approves a pending check, by `by`, until `expires_at`; false when `id` is not pending
    /// (unknown, already approved or used).
    pub fn approve(&self, id: &str, by: &str, expires_at: u64) -> Result<bool, StoreError> {
        self.conn
            .execute(
                "UPDATE approvals SET approved_by = ?2, approved_at = ?3, expires_at = ?4 \
                 WHERE id = ?1 AND approved_at IS NULL AND used_at IS NULL",
                params![id, by, now(), expires_at],
            )
            .map(|n| n == 1)
            .map_err(|e| self.fail("cannot record an approval", e))
    }

    /// Takes an approved check for its one use, at `now`; false when it is not approved, has
    /// expired or was used already.
    pub fn use_approval(&self, id: &str, now: u64) -> Result<bool, StoreError> {
        self.conn
            .execute(
                "UPDATE approvals SET used_at = ?2 WHERE id = ?1 AND approved_at IS NOT NULL \
                 AND used_at IS NULL AND expires_at > ?2",
                params![id, now],
            )
            .map(|n| n == 1)
            .map_err(|e| self.fail("cannot take an approval", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_approval_is_given_once_and_used_once_before_it_expires() {
        let dir = std::env::temp_dir().join(format!("wisp-approvals-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir.join("s.db")).unwrap();
        let check = Check {
            asked_by: "agent 1.0".into(),
            rule: "web config".into(),
            plan_file: "/srv/web.toml".into(),
            plan_hash: "ab".into(),
            vars: "{}".into(),
            vars_hash: "cd".into(),
            targets: "web".into(),
            hosts: vec!["web01".into(), "web02".into()],
            states: r#"{"web01":"x","web02":"y"}"#.into(),
            report: "changed config".into(),
        };
        let id = store.record_check(&check).unwrap();
        assert_eq!(id.len(), 12);
        let got = store.approval(&id).unwrap().unwrap();
        assert_eq!(got.check, check);
        assert_eq!(got.state(now()), "pending");
        assert!(!store.use_approval(&id, now()).unwrap(), "used unapproved");
        let until = now() + 60;
        assert!(store.approve(&id, "ops", until).unwrap());
        assert!(!store.approve(&id, "someone else", until).unwrap());
        assert_eq!(
            store.approval(&id).unwrap().unwrap().state(now()),
            "approved"
        );
        assert!(
            !store.use_approval(&id, until).unwrap(),
            "used once expired"
        );
        assert!(store.use_approval(&id, now()).unwrap());
        assert!(!store.use_approval(&id, now()).unwrap(), "used twice");
        let got = store.approval(&id).unwrap().unwrap();
        assert_eq!(got.approved_by.as_deref(), Some("ops"));
        assert_eq!(got.state(now()), "used");
        assert_eq!(store.approvals(10).unwrap().len(), 1);
        assert!(store.approval("000000000000").unwrap().is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
