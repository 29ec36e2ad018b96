//! The wisp controller: the `wisp` CLI and the library behind it.
//!
//! - [`cli`]: argument parsing and the entry point; maps outcomes to exit codes;
//! - [`session`]: a conversation with one runner (HELLO, CMD, EVENT, DONE, CANCEL, EXIT);
//! - [`limits`]: the limit flags, turned into the protocol's limits; enforcement summaries;
//! - [`plan`]: plan files, parsed and checked before anything connects; templates;
//! - [`apply`]: a plan's tasks and handlers on one host's session; unified diffs;
//! - [`fleet`]: running one op on every target and collecting outcomes; Ctrl-C handling;
//! - [`report`]: what the operator sees, human lines or JSON lines;
//! - [`journal`]: the record of each run, JSON lines under the XDG state directory;
//! - [`runners`]: finding the runner executables to push and checking their signatures;
//! - [`secrets`]: age-encrypted secrets files, and the redaction of their values everywhere;
//! - [`bundle`]: runners carried inside the `wisp` executable (`wisp bundle`);
//! - [`targets`]: parsing the hosts named on the command line;
//! - [`inventory`]: TOML, Ansible INI and YAML inventories, and host patterns;
//! - [`conformance`]: the golden-file conformance suite, runnable against any runner.
//!
//! Invariant: nothing here knows how a host is reached. Transports hand back framed
//! connections (`wisp_transports`); SSH details stay there.

pub mod apply;
pub mod bundle;
pub mod cli;
pub mod conformance;
pub mod exit;
pub mod fleet;
pub mod inventory;
pub mod journal;
pub mod limits;
pub mod plan;
pub mod report;
pub mod runners;
pub mod secrets;
pub mod secrets_cli;
pub mod session;
pub mod targets;
