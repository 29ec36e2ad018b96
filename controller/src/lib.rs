//! The wisp controller: the `wisp` CLI and the library behind it.
//!
//! Layers, top first; a module imports only from layers below its own (tidy checks it):
//!
//! - [`cli`]: the clap tree, one module per subcommand, exit codes; builds jobs and targets;
//! - [`bus`]: runs handed to workers on NATS JetStream (`--nats`) and the worker that runs
//!   them (`wisp worker`): signed items, claims, events back, cancels;
//! - [`jobs`]: what a run does on each host (exec, facts, ping, a plan), with one per-command
//!   event loop shared by exec jobs and plan tasks;
//! - [`fleet`]: fan-out over targets, at most `--forks` at once, in batches;
//! - [`session`]: a conversation with one runner (HELLO, CMD, EVENT, DONE, CANCEL, EXIT);
//!
//! and below them, knowing none of them:
//!
//! - [`report`]: the run's event stream and its consumers (terminal, JSON, drift, journal,
//!   bus forwarder); host outcomes;
//! - [`rollout`]: `--serial` batches and `--max-fail` budgets;
//! - [`fds`]: the file-descriptor limit raised, and checked against the hosts at once;
//! - [`interrupt`]: Ctrl-C, SIGTERM and `--run-timeout`, as one watch channel;
//! - [`exit`]: the exit codes.
//!
//! Below the crate: `wisp_plan` (plans, limits, quantities), `wisp_inventory` (inventories,
//! host patterns, command-line targets), `wisp_store` (the state store, the journal and its
//! records), `wisp_conformance`, `wisp_runners` (runners and their signatures, bundles),
//! `wisp_secrets` (secrets, redaction, private files), `wisp_transports`, `wisp_protocol`.
//!
//! Invariant: nothing here knows how a host is reached. Transports hand back framed
//! connections (`wisp_transports`); `cli::connect` maps connection flags to their neutral
//! `remote` options.

pub mod bus;
pub mod cli;
pub mod fds;
pub mod fleet;
pub mod jobs;
pub mod policy;
pub mod report;
pub mod rollout;
pub mod session;
