//! The work consumer of a worker's region: made and signed by a worker, and used only when
//! a trusted worker made it with wisp's terms.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull};

use super::Worker;
use crate::auth::Domain;
use crate::{Bus, BusError, WORK_STREAM};

/// The durable consumer of a region, as a worker makes it.
fn consumer_config(worker: &Worker) -> pull::Config {
    let durable = format!("wisp-{}", worker.region);
    pull::Config {
        durable_name: Some(durable),
        filter_subject: format!("wisp.work.{}.>", worker.region),
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        deliver_policy: jetstream::consumer::DeliverPolicy::All,
        ack_wait: worker.ack_wait,
        max_deliver: -1,
        ..Default::default()
    }
}

/// How often an idle worker checks that its consumer is still one a worker made.
pub(super) const CONSUMER_CHECK: Duration = Duration::from_secs(10);

/// What a worker signs of a consumer's configuration: everything that decides which items
/// reach workers and when they come again.
fn consumer_terms(
    name: &str,
    filter: &str,
    ack: jetstream::consumer::AckPolicy,
    deliver: jetstream::consumer::DeliverPolicy,
    ack_wait: Duration,
    max_deliver: i64,
) -> String {
    format!(
        "{name}|{filter}|{ack:?}|{deliver:?}|{}|{max_deliver}",
        ack_wait.as_millis()
    )
}

const MADE_BY: &str = "wisp work consumer; signed by worker key ";

/// The region's consumer: made (and signed) when missing; when present, used only if a
/// trusted worker made it with wisp's terms. A consumer someone else made (another filter
/// starves every worker; another ack wait runs items twice) is refused, naming the fix.
pub(super) async fn work_consumer(
    bus: &Bus,
    worker: &Worker,
) -> Result<jetstream::consumer::PullConsumer, BusError> {
    let setup = |why: String| BusError::Setup {
        what: "the work consumer",
        url: bus.url.clone(),
        why,
    };
    let stream = bus
        .js
        .get_stream(WORK_STREAM)
        .await
        .map_err(|e| setup(e.to_string()))?;
    let mut config = consumer_config(worker);
    let durable = config.durable_name.clone().unwrap_or_default();
    let terms = consumer_terms(
        &durable,
        &config.filter_subject,
        config.ack_policy,
        config.deliver_policy,
        config.ack_wait,
        config.max_deliver,
    );
    config.description = Some(format!(
        "{MADE_BY}{} {}",
        worker.key.id(),
        worker.key.sign(Domain::Consumer, terms.as_bytes())
    ));
    let consumer: jetstream::consumer::PullConsumer = match stream.get_consumer(&durable).await {
        Ok(c) => c,
        Err(_) => {
            // Not there (or not answering): made, and said, since a consumer that goes
            // missing under running workers is news.
            let made = stream
                .create_consumer(config)
                .await
                .map_err(|e| setup(e.to_string()))?;
            crate::log(
                &worker.name,
                &format!("made the work consumer {durable} on {WORK_STREAM}"),
            );
            made
        }
    };
    let found = &consumer.cached_info().config;
    let terms = consumer_terms(
        &durable,
        &found.filter_subject,
        found.ack_policy,
        found.deliver_policy,
        found.ack_wait,
        found.max_deliver,
    );
    let signed = found
        .description
        .as_deref()
        .and_then(|d| d.strip_prefix(MADE_BY))
        .and_then(|d| d.split_once(' '))
        .map(|(_, sig)| sig);
    match worker
        .workers
        .check(Domain::Consumer, terms.as_bytes(), signed)
    {
        Ok(_) => Ok(consumer),
        Err(why) => Err(BusError::ForeignConsumer {
            why: format!(
                "consumer {durable} on {WORK_STREAM} at {} was not made by a trusted wisp \
                 worker ({why}; it has filter {:?}, ack wait {:?}, description {:?}): someone \
                 else may have replaced it to take or hold back the work. Have the server's \
                 admin delete it (`nats consumer rm {WORK_STREAM} {durable}`); a worker makes \
                 it again",
                bus.url, found.filter_subject, found.ack_wait, found.description
            ),
        }),
    }
}

/// The consumer looked at again (back from a lost connection, after a failed pull, or when
/// idle), and made again with the streams when they are gone. `Ok(None)`: the server is not
/// answering yet, keep the one in hand; `Err` only when it is someone else's.
pub(super) async fn recheck(
    bus: &Bus,
    worker: &Worker,
) -> Result<Option<jetstream::consumer::PullConsumer>, BusError> {
    let gone = match work_consumer(bus, worker).await {
        Ok(c) => return Ok(Some(c)),
        Err(e @ BusError::ForeignConsumer { .. }) => return Err(e),
        Err(e) => e,
    };
    if bus.ensure().await.is_err() {
        return Ok(None);
    }
    match work_consumer(bus, worker).await {
        Ok(c) => {
            crate::log(
                &worker.name,
                &format!("the work stream was gone ({gone}); made it again"),
            );
            Ok(Some(c))
        }
        Err(e @ BusError::ForeignConsumer { .. }) => Err(e),
        Err(_) => Ok(None),
    }
}
