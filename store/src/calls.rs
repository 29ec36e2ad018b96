//! Calls made under a policy (`wisp mcp`'s tools, `wisp run --policy`): who asked what, which
//! rule allowed it or why it was refused, and how it ended. Every call is kept, refused ones
//! too.

use rusqlite::params;

use super::{Store, StoreError};
use crate::clock::timestamp_now;

/// One call, as it is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// `mcp` or `cli`.
    pub via: String,
    /// Who asked: the MCP client's name and version, or the user.
    pub client: String,
    /// The tool (`run`, `inventory`) or command.
    pub tool: String,
    /// Its arguments, as JSON.
    pub args: String,
    /// The policy rule that allowed it.
    pub rule: Option<String>,
    /// `allowed` or `refused`.
    pub decision: String,
    /// Why it was refused, or how it ended.
    pub outcome: String,
}

/// A recorded call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRow {
    /// Its number.
    pub id: i64,
    /// When.
    pub at: String,
    /// The call.
    pub call: Call,
}

impl Store {
    /// Records a call.
    pub fn record_call(&self, c: &Call) -> Result<i64, StoreError> {
        self.conn
            .execute(
                "INSERT INTO calls (at, via, client, tool, args, rule, decision, outcome) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    timestamp_now(),
                    c.via,
                    c.client,
                    c.tool,
                    c.args,
                    c.rule,
                    c.decision,
                    c.outcome
                ],
            )
            .map(|_| self.conn.last_insert_rowid())
            .map_err(|e| self.fail("cannot record a call", e))
    }

    /// The `limit` newest calls, newest first.
    pub fn calls(&self, limit: usize) -> Result<Vec<CallRow>, StoreError> {
        let read = || -> rusqlite::Result<Vec<CallRow>> {
            let mut stmt = self.conn.prepare(
                "SELECT id, at, via, client, tool, args, rule, decision, outcome FROM calls \
                 ORDER BY id DESC LIMIT ?1",
            )?;
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            stmt.query_map([limit], |r| {
                Ok(CallRow {
                    id: r.get(0)?,
                    at: r.get(1)?,
                    call: Call {
                        via: r.get(2)?,
                        client: r.get(3)?,
                        tool: r.get(4)?,
                        args: r.get(5)?,
                        rule: r.get(6)?,
                        decision: r.get(7)?,
                        outcome: r.get(8)?,
                    },
                })
            })?
            .collect()
        };
        read().map_err(|e| self.fail("cannot read its calls", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_kept_refused_ones_too_newest_first() {
        let dir = std::env::temp_dir().join(format!("wisp-calls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir.join("s.db")).unwrap();
        let call = |decision: &str, rule: Option<&str>| Call {
            via: "mcp".into(),
            client: "agent 1.0".into(),
            tool: "run".into(),
            args: r#"{"argv":["sh","-c","id"]}"#.into(),
            rule: rule.map(str::to_owned),
            decision: decision.into(),
            outcome: "no rule allows the program \"sh\"".into(),
        };
        store.record_call(&call("refused", None)).unwrap();
        store.record_call(&call("allowed", Some("look"))).unwrap();
        let rows = store.calls(10).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].call, call("allowed", Some("look")));
        assert_eq!(rows[1].call.decision, "refused");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
