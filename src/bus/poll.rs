//! The poller: every interval, compares each organization's revision with
//! the store's and catches up those that differ. It bounds staleness when
//! pub/sub drops a message or Redis is down.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::warn;

use crate::service::Warden;

/// Polls until `stop` turns true.
pub async fn run(warden: Arc<Warden>, every: Duration, mut stop: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                if let Err(e) = warden.poll().await {
                    warn!(error = %e, "polling the store failed");
                }
            }
            _ = stop.changed() => return,
        }
    }
}
