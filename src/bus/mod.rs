//! Redis pub/sub between replicas: every write this process commits is
//! published with its organization, revision and changes; every message
//! from another replica is applied (or, after a gap, caught up from the
//! store). Pub/sub may drop messages and Redis may be down: the poller of
//! `poll.rs` bounds staleness either way, and checks never wait on Redis.

pub mod poll;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};
use tracing::{debug, info, warn};

use crate::engine::Change;
use crate::service::{Origin, Warden};

/// Changes larger than this (as JSON) travel without their body: receivers
/// catch up from the store's change log instead.
const MAX_INLINE_BYTES: usize = 256 * 1024;

/// One message on the channel.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Message {
    /// Organization id.
    pub org: String,
    /// The revision the write made.
    pub revision: u64,
    /// Its changes, when small enough to carry.
    pub changes: Option<Vec<Change>>,
    /// The replica that committed it.
    pub origin: String,
    /// When it was published (Unix milliseconds), for the propagation
    /// delay; absent in messages of older replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_unix_ms: Option<i64>,
}

/// Counters of the bus, for metrics and tests.
#[derive(Debug, Default)]
pub struct BusStats {
    /// Messages published.
    pub published: AtomicU64,
    /// Publishes that failed (Redis down).
    pub publish_failures: AtomicU64,
    /// Messages received from other replicas.
    pub received: AtomicU64,
    /// Times the subscription was (re)established.
    pub subscriptions: AtomicU64,
}

/// The Redis side of a replica.
pub struct Bus {
    client: redis::Client,
    channel: String,
    replica: String,
    stats: Arc<BusStats>,
}

impl Bus {
    /// A bus on `url` (redis://HOST:PORT) and `channel`.
    pub fn new(url: &str, channel: &str) -> Result<Bus, redis::RedisError> {
        Ok(Bus {
            client: redis::Client::open(url)?,
            channel: channel.to_string(),
            replica: format!("{}-{}", std::process::id(), rand_suffix()),
            stats: Arc::new(BusStats::default()),
        })
    }

    /// Counters.
    pub fn stats(&self) -> Arc<BusStats> {
        self.stats.clone()
    }

    /// Runs until `stop` turns true: publishes local writes and applies
    /// other replicas' messages, reconnecting with backoff.
    pub async fn run(self: Arc<Self>, warden: Arc<Warden>, stop: watch::Receiver<bool>) {
        let publisher = tokio::spawn(self.clone().publish_loop(warden.subscribe(), stop.clone()));
        self.subscribe_loop(warden, stop).await;
        publisher.abort();
    }

    async fn publish_loop(
        self: Arc<Self>,
        mut feed: broadcast::Receiver<Arc<crate::service::Committed>>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut conn: Option<redis::aio::MultiplexedConnection> = None;
        loop {
            let committed = tokio::select! {
                c = feed.recv() => c,
                _ = stop.changed() => return,
            };
            let committed = match committed {
                Ok(c) if c.origin == Origin::Local => c,
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    warn!(
                        skipped = n,
                        "bus publisher lagged; other replicas will catch up by polling"
                    );
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            let mut message = Message {
                org: committed.org_id.clone(),
                revision: committed.revision,
                changes: committed.changes.as_ref().map(|c| c.as_ref().clone()),
                origin: self.replica.clone(),
                published_unix_ms: Some(chrono::Utc::now().timestamp_millis()),
            };
            let mut payload = serde_json::to_string(&message).unwrap_or_default();
            if payload.len() > MAX_INLINE_BYTES {
                message.changes = None;
                payload = serde_json::to_string(&message).unwrap_or_default();
            }
            if conn.is_none() {
                conn = self.client.get_multiplexed_async_connection().await.ok();
            }
            let sent = match conn.as_mut() {
                Some(c) => c
                    .publish::<_, _, i64>(&self.channel, &payload)
                    .await
                    .is_ok(),
                None => false,
            };
            if sent {
                self.stats.published.fetch_add(1, Ordering::Relaxed);
            } else {
                conn = None;
                self.stats.publish_failures.fetch_add(1, Ordering::Relaxed);
                debug!(org = %message.org, revision = message.revision, "publish failed; replicas will catch up by polling");
            }
        }
    }

    async fn subscribe_loop(&self, warden: Arc<Warden>, mut stop: watch::Receiver<bool>) {
        let mut backoff = Duration::from_millis(50);
        loop {
            if *stop.borrow() {
                return;
            }
            match self.client.get_async_pubsub().await {
                Ok(mut pubsub) => {
                    if pubsub.subscribe(&self.channel).await.is_ok() {
                        self.stats.subscriptions.fetch_add(1, Ordering::Relaxed);
                        info!(channel = %self.channel, "subscribed to the change channel");
                        backoff = Duration::from_millis(50);
                        // Anything missed while unsubscribed is in the store.
                        if let Err(e) = warden.poll().await {
                            warn!(error = %e, "catch-up after subscribing failed");
                        }
                        let mut messages = pubsub.on_message();
                        loop {
                            let msg = tokio::select! {
                                m = messages.next() => m,
                                _ = stop.changed() => return,
                            };
                            let Some(msg) = msg else { break };
                            let Ok(payload) = msg.get_payload::<String>() else {
                                continue;
                            };
                            let Ok(message) = serde_json::from_str::<Message>(&payload) else {
                                warn!("ignoring a malformed bus message");
                                continue;
                            };
                            if message.origin == self.replica {
                                continue;
                            }
                            self.stats.received.fetch_add(1, Ordering::Relaxed);
                            crate::telemetry::metrics().bus_message(message.published_unix_ms.map(
                                |t| (chrono::Utc::now().timestamp_millis() - t) as f64 / 1000.0,
                            ));
                            if let Err(e) = warden
                                .apply_remote(&message.org, message.revision, message.changes)
                                .await
                            {
                                warn!(org = %message.org, error = %e, "applying a bus message failed; the poller will retry");
                            }
                        }
                        warn!("lost the Redis subscription; reconnecting");
                    }
                }
                Err(e) => debug!(error = %e, "Redis unreachable"),
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {},
                _ = stop.changed() => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}
