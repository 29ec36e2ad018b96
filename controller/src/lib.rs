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
//! - [`plan`]: plan files, parsed and checked before anything connects; templates;
//! - [`limits`]: the limit flags, turned into the protocol's limits; enforcement summaries;
//! - [`rollout`]: `--serial` batches and `--max-fail` budgets;
//! - [`fds`]: the file-descriptor limit raised, and checked against the hosts at once;
//! - [`files`]: files written on the operator's machine without following planted links;
//! - [`quantity`]: durations, sizes, CPU counts, modes: one parser each, for flags and plans;
//! - [`interrupt`]: Ctrl-C, SIGTERM and `--run-timeout`, as one watch channel;
//! - [`report`]: what the operator sees, human lines or JSON lines; host outcomes;
//! - [`journal`]: the record of each run, to the store and as JSON lines (an export);
//! - [`store`]: the SQLite state store of runs, host and task results, events, facts, audit;
//! - [`clock`]: the one timestamp format;
//! - [`runners`]: finding the runner executables to push and checking their signatures;
//! - [`secrets`]: age-encrypted secrets files, and the redaction of their values everywhere;
//! - [`bundle`]: runners carried inside the `wisp` executable (`wisp bundle`);
//! - [`targets`]: parsing the hosts named on the command line;
//! - [`inventory`]: TOML, Ansible INI and YAML inventories, and host patterns;
//! - [`conformance`]: the golden-file conformance suite, runnable against any runner;
//! - [`exit`]: the exit codes.
//!
//! Invariant: nothing here knows how a host is reached. Transports hand back framed
//! connections (`wisp_transports`); `cli::connect` maps connection flags to their neutral
//! `remote` options.

pub mod bundle;
pub mod bus;
pub mod cli;
pub mod exit;
pub mod fds;
pub mod fleet;
pub mod interrupt;
pub mod jobs;
pub mod report;
pub mod rollout;
pub mod runners;
pub mod session;
