//! What a task's run comes to: `until` holding, `changed_when` and `failed_when` over the op's
//! own answer, and `creates`/`removes` deciding it need not run at all.

use minijinja::value::Value;
use wisp_plan::{Data, Task};
use wisp_protocol::ops::{Op, PathArgs};

use super::apply::{Stop, TaskStatus};
use super::flow::HostRun;
use super::op::Ran;
use crate::session::Session;

impl HostRun<'_> {
    /// `delegate_to`: whether the task runs on this machine instead of the host (then its
    /// session here is opened, once). `localhost` (or the host itself) only, for now; any
    /// other target fails the task.
    pub(super) async fn delegated(&mut self, t: &Task, frame: &Value) -> Result<bool, Box<Ran>> {
        let Some(to) = &t.flow.delegate_to else {
            return Ok(false);
        };
        let fail = |why: String| Box::new(Ran::without_running(TaskStatus::Failed, why));
        let to = self
            .engine
            .render(to, frame)
            .map_err(|e| fail(format!("delegate_to: {e}")))?;
        if to == self.host {
            return Ok(false);
        }
        if !matches!(to.as_str(), "localhost" | "127.0.0.1" | "::1") {
            return Err(fail(format!(
                "delegate_to: {to}: only localhost (this machine) or the host itself can be \
                 delegated to for now"
            )));
        }
        if self.local.is_none() {
            let here = wisp_transports::local::LocalTransport { sudo: false };
            let opened = Session::open(&here, self.launch).await;
            self.local = Some(opened.map_err(|e| fail(format!("delegate_to localhost: {e}")))?);
        }
        Ok(true)
    }

    /// Whether every `until` condition holds for this result.
    pub(super) fn holds(&self, until: &[String], t: &Task, ran: &Ran, frame: &Value) -> bool {
        if let Some(name) = &t.flow.register {
            self.scope
                .register(name, Data::Map(ran.result.clone()).to_value());
        }
        until
            .iter()
            .all(|c| self.engine.condition(c, frame).unwrap_or(false))
    }

    /// `changed_when` and `failed_when`, read with the result registered, over the op's own
    /// answer (an exec task is changed unless `changed_when` says otherwise).
    pub(super) fn judged(&self, t: &Task, mut ran: Ran, frame: &Value) -> Ran {
        if ran.done.is_none() || (t.flow.changed_when.is_empty() && t.flow.failed_when.is_empty()) {
            return ran;
        }
        if let Some(name) = &t.flow.register {
            self.scope
                .register(name, Data::Map(ran.result.clone()).to_value());
        }
        let all = |conds: &[String]| -> Result<Option<bool>, String> {
            if conds.is_empty() {
                return Ok(None);
            }
            for c in conds {
                if !self.engine.condition(c, frame)? {
                    return Ok(Some(false));
                }
            }
            Ok(Some(true))
        };
        let failed = match all(&t.flow.failed_when) {
            Ok(f) => f,
            Err(e) => return Ran::without_running(TaskStatus::Failed, format!("failed_when: {e}")),
        };
        let changed = match all(&t.flow.changed_when) {
            Ok(c) => c,
            Err(e) => {
                return Ran::without_running(TaskStatus::Failed, format!("changed_when: {e}"));
            }
        };
        let was_failed = ran.status == TaskStatus::Failed;
        let is_failed = failed.unwrap_or(was_failed);
        let is_changed = changed.unwrap_or(ran.done.as_ref().is_some_and(|d| d.changed));
        ran.status = match (is_failed, is_changed) {
            (true, _) => TaskStatus::Failed,
            (false, true) => TaskStatus::Changed,
            (false, false) => TaskStatus::Ok,
        };
        if was_failed && !is_failed {
            ran.detail = format!("not failed (failed_when): {}", ran.detail);
        } else if is_failed && !was_failed {
            ran.detail = "failed_when holds".to_owned();
        }
        ran.result
            .insert("changed".into(), Data::Bool(is_changed && !is_failed));
        ran.result.insert("failed".into(), Data::Bool(is_failed));
        ran
    }

    /// `creates`/`removes`: an exec task that does not run because the path is (or is not)
    /// there.
    pub(super) async fn creates_or_removes(
        &mut self,
        t: &Task,
        frame: &Value,
        delegated: bool,
    ) -> Result<Option<Ran>, Stop> {
        for (key, path, skip_when_there) in [
            ("creates", &t.flow.creates, true),
            ("removes", &t.flow.removes, false),
        ] {
            let Some(path) = path else { continue };
            let path = match self.engine.render(path, frame) {
                Ok(p) => p,
                Err(e) => {
                    return Ok(Some(Ran::without_running(
                        TaskStatus::Failed,
                        format!("{key}: {e}"),
                    )));
                }
            };
            let stat = Op::FileStat(PathArgs { path: path.clone() });
            let session: &mut Session = match (delegated, self.local.as_mut()) {
                (true, Some(local)) => local,
                _ => &mut *self.session,
            };
            let there = super::op::stat_exists(session, &stat).await?;
            if there == Some(skip_when_there) {
                let why = if skip_when_there {
                    "exists"
                } else {
                    "does not exist"
                };
                let mut ran =
                    Ran::without_running(TaskStatus::Ok, format!("not run: {path} {why} ({key})"));
                ran.result.shift_remove("skipped");
                return Ok(Some(ran));
            }
        }
        Ok(None)
    }
}
