//! The wisp wire contract, shared by the controller and every runner implementation.
//!
//! Layers, from bytes up:
//! - [`marker`]: finds the start of the framed stream behind login-shell noise;
//! - [`frame`]: splits bytes into frames (a JSON header plus an optional raw data section);
//! - [`message`]: the typed frames (READY, HELLO, CMD, EVENT, DONE, ERROR, CANCEL, EXIT);
//! - [`ops`]: the typed arguments and results of each CMD op;
//! - [`sandbox`]: the protections a CMD may ask for and the enforcement report DONE carries;
//! - [`error`]: error codes and their retry classes.
//!
//! What this crate deliberately does not do: IO of any kind, async, process management, SSH.
//! It is sans-IO so the synchronous runner and the async controller share one implementation,
//! and so a decoder of untrusted bytes can be fuzzed in isolation. PROTOCOL.md at the root of
//! the repository is the normative description; this crate is its executable form.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod error;
pub mod frame;
pub mod marker;
pub mod message;
pub mod ops;
pub mod sandbox;

/// The protocol version this crate speaks. Bumped only for incompatible changes; additions
/// (new optional fields, new ops, new frame types answered with ERROR by old peers) keep it.
pub const PROTOCOL_VERSION: u32 = 1;

/// The oldest protocol version this crate can still speak.
pub const MIN_PROTOCOL_VERSION: u32 = 1;
