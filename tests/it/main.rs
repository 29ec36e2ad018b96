//! Every end-to-end test in one binary, so the workspace links the controller once for them
//! (each module was a binary of its own). A module per area; `cargo test -p wisp-tests --test
//! it MODULE::` runs one area, `cargo test ... -- NAME` one test.

mod apply;
mod apply_ssh;
mod approvals;
mod attacks;
mod bootstrap;
mod conformance;
mod cross_arch;
mod drift;
mod file_ops;
mod inventory;
mod inventory_ansible;
mod lifecycle;
mod mcp;
mod mcp_jobs;
mod pkg;
mod plans;
mod plans_ssh;
mod playbooks;
mod policy;
mod records;
mod rollout;
mod runner_binary;
mod runner_robustness;
mod sandbox;
mod scale;
mod secrets;
mod service;
mod signing;
mod ssh;
mod state;
mod workers;
