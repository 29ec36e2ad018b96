//! What each role may do on the NATS server, as the server's own configuration: the one
//! place the subjects wisp uses are turned into permissions (`wisp nats-config` writes them,
//! and the tests run the server with them).
//!
//! - A **controller** publishes work and cancels, reads the events of its runs, makes the
//!   streams when they are missing, and purges the work it queued when interrupted.
//! - A **worker** pulls work from its region's consumer (which it may make), acks it, writes
//!   claims, publishes events and listens for cancels.
//! - Nobody may delete a stream or a consumer, purge the claims or the events, or read
//!   another role's replies. Anyone else is not let in at all.

use super::{CLAIMS_STREAM, EVENTS_STREAM, WORK_STREAM};

/// The reply-subject prefix of controllers.
pub const CONTROLLER_INBOX: &str = "_I_WISP_C";
/// The reply-subject prefix of workers.
pub const WORKER_INBOX: &str = "_I_WISP_W";

/// The JetStream API subjects of `what` for each of wisp's streams.
fn for_streams(what: &str) -> Vec<String> {
    [WORK_STREAM, EVENTS_STREAM, CLAIMS_STREAM]
        .iter()
        .map(|s| format!("$JS.API.STREAM.{what}.{s}"))
        .collect()
}

/// What a controller may publish.
pub fn controller_publish() -> Vec<String> {
    let mut allow = vec![
        "wisp.work.>".to_owned(),
        "wisp.cancel.>".to_owned(),
        "$JS.API.INFO".to_owned(),
        // Queued work that no worker took is removed when the run is interrupted.
        format!("$JS.API.STREAM.PURGE.{WORK_STREAM}"),
        // The run's events, through an ordered consumer of its own.
        format!("$JS.API.CONSUMER.CREATE.{EVENTS_STREAM}"),
        format!("$JS.API.CONSUMER.CREATE.{EVENTS_STREAM}.>"),
        format!("$JS.API.CONSUMER.INFO.{EVENTS_STREAM}.*"),
        format!("$JS.API.CONSUMER.DELETE.{EVENTS_STREAM}.*"),
        format!("$JS.API.CONSUMER.MSG.NEXT.{EVENTS_STREAM}.*"),
        format!("$JS.FC.{EVENTS_STREAM}.>"),
    ];
    allow.extend(for_streams("INFO"));
    allow.extend(for_streams("CREATE"));
    allow
}

/// What a worker may publish.
pub fn worker_publish() -> Vec<String> {
    let mut allow = vec![
        "wisp.events.>".to_owned(),
        "wisp.claims.*".to_owned(),
        "$JS.API.INFO".to_owned(),
        // Its region's durable consumer on the work stream: made, checked, pulled, acked.
        format!("$JS.API.CONSUMER.CREATE.{WORK_STREAM}.>"),
        format!("$JS.API.CONSUMER.DURABLE.CREATE.{WORK_STREAM}.*"),
        format!("$JS.API.CONSUMER.INFO.{WORK_STREAM}.*"),
        format!("$JS.API.CONSUMER.MSG.NEXT.{WORK_STREAM}.*"),
        format!("$JS.ACK.{WORK_STREAM}.>"),
        // The newest claim on an item.
        format!("$JS.API.STREAM.MSG.GET.{CLAIMS_STREAM}"),
        format!("$JS.API.DIRECT.GET.{CLAIMS_STREAM}.>"),
    ];
    allow.extend(for_streams("INFO"));
    allow.extend(for_streams("CREATE"));
    allow
}

/// A list as the server's configuration writes it.
fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("\"{i}\"")).collect();
    format!("[{}]", quoted.join(", "))
}

/// nats-server configuration: an `authorization` block with one user per role, each known
/// by its nkey (a public key: the server holds no secret), and their permissions. Meant to
/// be `include`d by the server's configuration.
pub fn authorization(controller_nkey: &str, worker_nkey: &str) -> String {
    format!(
        "# wisp's users on this NATS server (written by `wisp nats-config`). A client without\n\
         # one of these keys is not let in. Include this file in nats-server.conf.\n\
         authorization {{\n  \
           WISP_CONTROLLER = {{\n    \
             publish = {{ allow = {} }}\n    \
             subscribe = {{ allow = [\"{CONTROLLER_INBOX}.>\"] }}\n  \
           }}\n  \
           WISP_WORKER = {{\n    \
             publish = {{ allow = {} }}\n    \
             subscribe = {{ allow = [\"{WORKER_INBOX}.>\", \"wisp.cancel.>\"] }}\n  \
           }}\n  \
           users = [\n    \
             {{ nkey: \"{controller_nkey}\", permissions: $WISP_CONTROLLER }}\n    \
             {{ nkey: \"{worker_nkey}\", permissions: $WISP_WORKER }}\n  \
           ]\n\
         }}\n",
        list(&controller_publish()),
        list(&worker_publish()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_role_may_delete_or_purge_what_it_does_not_own() {
        let all: Vec<String> = controller_publish()
            .into_iter()
            .chain(worker_publish())
            .collect();
        for forbidden in [".DELETE.WISP_WORK", ".DELETE.WISP_CLAIMS", "STREAM.DELETE"] {
            assert!(!all.iter().any(|a| a.contains(forbidden)), "{forbidden}");
        }
        assert!(!all.iter().any(|a| a.contains("PURGE.WISP_CLAIMS")));
        assert!(!all.iter().any(|a| a.contains("PURGE.WISP_EVENTS")));
        assert!(!worker_publish().iter().any(|a| a.starts_with("wisp.work")));
        assert!(
            !controller_publish()
                .iter()
                .any(|a| a.starts_with("wisp.claims"))
        );
        assert!(
            !controller_publish()
                .iter()
                .any(|a| a.starts_with("wisp.events"))
        );
        let text = authorization("UCONTROLLER", "UWORKER");
        assert!(text.contains("nkey: \"UWORKER\", permissions: $WISP_WORKER"));
    }
}
