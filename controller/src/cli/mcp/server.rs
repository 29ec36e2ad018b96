//! The MCP server: what it says it is, its tools, and each call dispatched to its tool. A
//! refusal or a failure is a tool error (`isError`), with the reason, for the agent to read.

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{ErrorData, ServerHandler};

use super::{Shared, State, tools};
use crate::policy::Policy;

/// The fleet, served.
#[derive(Debug, Clone)]
pub(super) struct Fleet {
    state: State,
}

impl Fleet {
    pub(super) fn new(
        common: super::RunOptions,
        policy: Policy,
        launch: wisp_transports::Launch,
    ) -> Fleet {
        Fleet {
            state: std::sync::Arc::new(Shared {
                common,
                policy,
                launch,
            }),
        }
    }
}

impl ServerHandler for Fleet {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("wisp", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "A fleet of Linux hosts. `inventory` lists them; `run` runs a program on \
                 some of them, as the operator's policy allows, in a sandbox the hosts' \
                 kernels enforce.",
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
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let args = request.arguments.clone().unwrap_or_default();
        let answer = match request.name.as_ref() {
            "inventory" => tools::inventory(&self.state, &args),
            "run" => tools::run(&self.state, &args).await,
            other => Err(format!("no tool {other:?}")),
        };
        Ok(match answer {
            Ok(text) => CallToolResult::success(vec![ContentBlock::text(text)]),
            Err(why) => CallToolResult::error(vec![ContentBlock::text(why)]),
        }
        .into())
    }
}
