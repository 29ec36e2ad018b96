//! What a task's run comes to: `until` holding, `changed_when` and `failed_when` over the op's
//! own answer, and `creates`/`removes` deciding it need not run at all.

use minijinja::value::Value;
use wisp_plan::{Data, Task};
use wisp_protocol::ops::{Op, PathArgs};

use super::apply::{Stop, TaskStatus};
use super::flow::HostRun;
use super::op::Ran;
use std::sync::Arc;

use crate::session::Session;
use wisp_transports::Transport;
use wisp_transports::local::LocalTransport;

impl HostRun<'_> {
    /// `delegate_to`: where the task runs instead of the host: `None` for the host itself;
    /// else the name of the session it runs in (this machine's for `localhost`, another of the
    /// run's hosts' by its name), opened once per host.
    pub(super) async fn delegated(
        &mut self,
        t: &Task,
        frame: &Value,
    ) -> Result<Option<String>, Box<Ran>> {
        let Some(to) = &t.flow.delegate_to else {
            return Ok(None);
        };
        let fail = |why: String| Box::new(Ran::without_running(TaskStatus::Failed, why));
        let to = self
            .engine
            .render(to, frame)
            .map_err(|e| fail(format!("delegate_to: {e}")))?;
        if to == self.host {
            return Ok(None);
        }
        let key = if matches!(to.as_str(), "localhost" | "127.0.0.1" | "::1") {
            "localhost".to_owned()
        } else {
            to.clone()
        };
        if !self.delegates.contains_key(&key) {
            let here: Arc<dyn Transport> = Arc::new(LocalTransport { sudo: false });
            let transport = match self.peers.get(&key) {
                Some(t) => Arc::clone(t),
                None if key == "localhost" => here,
                None => {
                    return Err(fail(format!(
                        "delegate_to: {to} is neither localhost nor one of this run's hosts"
                    )));
                }
            };
            let opened = Session::open(transport.as_ref(), self.launch).await;
            let session = opened.map_err(|e| fail(format!("delegate_to {to}: {e}")))?;
            self.delegates.insert(key.clone(), session);
        }
        Ok(Some(key))
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
        delegated: Option<&str>,
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
            let stat = Op::FileStat(PathArgs {
                path: path.clone(),
                read: None,
            });
            let session: &mut Session = match delegated.and_then(|k| self.delegates.get_mut(k)) {
                Some(other) => other,
                None => &mut *self.session,
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
