//! The MCP server: what it says it is, its tools, and each call dispatched to its tool. A
//! refusal or a failure is a tool error (`isError`), with the reason, for the agent to read.

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{ErrorData, ServerHandler};

use super::{Shared, State, jobs, plans, tools};

/// The fleet, served.
#[derive(Debug, Clone)]
pub(super) struct Fleet {
    state: State,
}

impl Fleet {
    pub(super) fn new(shared: Shared) -> Fleet {
        Fleet {
            state: std::sync::Arc::new(shared),
        }
    }

    /// The state its calls share.
    pub(super) fn state(&self) -> State {
        std::sync::Arc::clone(&self.state)
    }

    /// Records a call and what came of it.
    fn audit(&self, client: String, request: &CallToolRequestParams, answer: &Answer) {
        let Some(store) = &self.state.store else {
            return;
        };
        let (decision, rule, outcome) = match answer {
            Ok((rule, text)) => {
                let summary: Vec<&str> = text
                    .lines()
                    .filter(|l| !l.starts_with("  ") && !l.starts_with("rule "))
                    .collect();
                ("allowed", rule.clone(), summary.join("; "))
            }
            Err(why) if why.starts_with(tools::REFUSED) => {
                ("refused", None, why[tools::REFUSED.len()..].to_owned())
            }
            Err(why) => ("failed", None, why.clone()),
        };
        let call = wisp_store::calls::Call {
            via: "mcp".into(),
            client,
            tool: request.name.to_string(),
            args: redacted(&serde_json::Value::Object(
                request.arguments.clone().unwrap_or_default(),
            ))
            .to_string(),
            rule,
            decision: decision.into(),
            outcome,
        };
        if let Ok(s) = store.lock()
            && let Err(e) = s.record_call(&call)
        {
            let _ =
                std::io::Write::write_fmt(&mut std::io::stderr(), format_args!("wisp mcp: {e}\n"));
        }
    }
}

/// Names of values that are not recorded: a var called `db_password`, `api_token`, `secret`,
/// `ssh_key` or `credentials` is kept as `[redacted]`, however deep in the call's arguments.
const SECRET_NAMES: [&str; 6] = ["pass", "secret", "token", "key", "credential", "auth"];

/// The call's arguments as the audit keeps them.
fn redacted(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let lower = k.to_lowercase();
                    let hidden = SECRET_NAMES.iter().any(|n| lower.contains(n));
                    let v = if hidden {
                        Value::String("[redacted]".into())
                    } else {
                        redacted(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(redacted).collect()),
        other => other.clone(),
    }
}

/// How the client follows this call: its progress token, if any, and its cancellation.
fn follow(context: &RequestContext<RoleServer>) -> jobs::Follow<'_> {
    jobs::Follow {
        progress: context
            .meta
            .get_progress_token()
            .map(|t| (context.peer.clone(), t)),
        cancelled: Box::pin(context.ct.cancelled()),
    }
}

/// What a tool gave: the rule that allowed it (when one did) and its text, or why not.
type Answer = Result<(Option<String>, String), String>;

impl ServerHandler for Fleet {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("wisp", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "A fleet of Linux hosts. `inventory` lists them; `run` runs a program on \
                 some of them, as the operator's policy allows, in a sandbox the hosts' \
                 kernels enforce. Plans are checked first (`check`), approved by an operator, \
                 then applied once (`apply`).",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult {
            tools: tools::list(),
            ..ListToolsResult::default()
        })
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let client = context.peer.peer_info().map_or_else(
            || "an unnamed client".to_owned(),
            |i| format!("{} {}", i.client_info.name, i.client_info.version),
        );
        let args = request.arguments.clone().unwrap_or_default();
        let answer: Answer = match request.name.as_ref() {
            "inventory" => tools::inventory(&self.state, &args).map(|t| (None, t)),
            "facts" => tools::facts(&self.state, &args).await.map(|t| (None, t)),
            "run" => tools::run(&self.state, &args, follow(&context))
                .await
                .map(|(rule, t)| (Some(rule), t)),
            "check" => plans::check(&self.state, &client, &args)
                .await
                .map(|(rule, t)| (Some(rule), t)),
            "apply" => plans::apply(&self.state, &args)
                .await
                .map(|(rule, t)| (Some(rule), t)),
            "drift" => plans::drift(&self.state, &args)
                .await
                .map(|(rule, t)| (Some(rule), t)),
            "job" => jobs::status(&self.state, &args).map(|t| (None, t)),
            "cancel" => jobs::cancel(&self.state, &args).map(|t| (None, t)),
            other => Err(format!("no tool {other:?}")),
        };
        self.audit(client, &request, &answer);
        Ok(match answer {
            Ok((_, text)) => CallToolResult::success(vec![ContentBlock::text(text)]),
            Err(why) => CallToolResult::error(vec![ContentBlock::text(why)]),
        }
        .into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vars_named_like_secrets_are_not_recorded() {
        let args = serde_json::json!({
            "plan": "site.toml",
            "vars": {"port": 80, "db_password": "hunter2", "nested": {"API_Token": ["t"]}}
        });
        let kept = redacted(&args).to_string();
        assert!(
            !kept.contains("hunter2") && !kept.contains("\"t\""),
            "{kept}"
        );
        assert!(kept.contains(r#""db_password":"[redacted]""#), "{kept}");
        assert!(
            kept.contains(r#""port":80"#) && kept.contains("site.toml"),
            "{kept}"
        );
    }
}
