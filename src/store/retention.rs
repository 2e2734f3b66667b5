//! Message retention: finished sent messages and received messages are removed once older
//! than `[store] message_retention_days` or beyond `message_retention_max` (oldest first),
//! once at start and every `retention_interval_minutes` (hourly by default), in bounded
//! batches so no write transaction grows large.
//! Messages still queued, held or sending are never removed.
//!
//! The same rounds hold whatsapp-rust's per-message records (copies of sent messages for
//! retry receipts, message secrets) to `[store] wa_message_records_max` per session, and
//! forget number-check answers older than the longest cache lifetime (30 days). Call records
//! go with the messages' age bound.

use std::time::Duration;

use super::{Result, Store, calls, contacts, inbound, queue, wa_backend};
use crate::clock::Clock;
use crate::config::StoreConfig;

/// At most this many records of a table are removed per write transaction.
pub const BATCH: usize = 500;

/// The retention's bounds, from `[store]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub max_age_ms: i64,
    /// Bound on finished sent messages, and separately on received messages.
    pub max: u64,
    /// Bound on whatsapp-rust's sent-message copies, and separately on its message secrets,
    /// per session.
    pub wa_max: u64,
    /// How often a round runs after the first (at start).
    pub every: Duration,
}

impl From<&StoreConfig> for Settings {
    fn from(c: &StoreConfig) -> Self {
        Settings {
            max_age_ms: i64::from(c.message_retention_days) * 86_400_000,
            max: u64::from(c.message_retention_max),
            wa_max: u64::from(c.wa_message_records_max),
            every: Duration::from_secs(60 * u64::from(c.retention_interval_minutes)),
        }
    }
}

/// One round at `now_ms`: batches until nothing is left to remove. Returns (sent messages,
/// received messages) removed.
pub async fn prune(store: &Store, now_ms: i64, s: Settings) -> Result<(u64, u64)> {
    let older = now_ms.saturating_sub(s.max_age_ms);
    let mut sent = 0;
    loop {
        let n = store
            .write(move |t| queue::prune(t, older, s.max, BATCH))
            .await?;
        sent += n;
        if (n as usize) < BATCH {
            break;
        }
    }
    let mut received = 0;
    loop {
        let n = store
            .write(move |t| inbound::prune(t, older, s.max, BATCH))
            .await?;
        received += n;
        if (n as usize) < BATCH {
            break;
        }
    }
    store.write(move |t| calls::prune(t, older)).await?;
    Ok((sent, received))
}

/// Hold whatsapp-rust's per-message records to `s.wa_max` per session, in batches. Returns
/// the rows removed.
pub async fn prune_wa_records(store: &Store, s: Settings) -> Result<u64> {
    let mut removed = 0;
    loop {
        let n = store
            .write(move |t| wa_backend::prune_message_records(t, s.wa_max, BATCH))
            .await?;
        removed += n;
        if n == 0 {
            return Ok(removed);
        }
    }
}

/// Forget number-check answers asked before `older_than` (unix ms), in batches. Returns the
/// rows removed.
pub async fn prune_checks(store: &Store, older_than: i64) -> Result<u64> {
    let mut removed = 0;
    loop {
        let n = store
            .write(move |t| contacts::prune(t, older_than, BATCH))
            .await?;
        removed += n;
        if (n as usize) < BATCH {
            return Ok(removed);
        }
    }
}

/// Run [`prune`], [`prune_wa_records`] and [`prune_checks`] now and every `s.every` until
/// the task is aborted.
pub fn spawn(store: Store, clock: Clock, s: Settings) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(s.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match prune(&store, clock.now_ms(), s).await {
                Ok((0, 0)) => {}
                Ok((sent, received)) => {
                    tracing::info!(sent, received, "message records pruned")
                }
                Err(e) => tracing::warn!(error = %e, "cannot prune message records"),
            }
            match prune_wa_records(&store, s).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(rows = n, "whatsapp-rust message records pruned"),
                Err(e) => tracing::warn!(error = %e, "cannot prune whatsapp-rust records"),
            }
            let horizon = clock.now_ms().saturating_sub(
                i64::try_from(crate::engine::pacing::MAX_CHECK_CACHE_S * 1000).unwrap_or(0),
            );
            match prune_checks(&store, horizon).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(rows = n, "number-check answers pruned"),
                Err(e) => tracing::warn!(error = %e, "cannot prune number-check answers"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::queue::{NewMessage, enqueue, mark_failed};

    /// A text to one number, created at `at`, with an idempotency key if given.
    fn text(i: usize, at: i64, key: Option<String>) -> NewMessage {
        NewMessage {
            kind: "text".into(),
            to: "15550001111@s.whatsapp.net".into(),
            content: serde_json::json!({ "text": i }),
            blob: None,
            idempotency_key: key,
            now_ms: at,
            to_phone: None,
            to_lid: None,
        }
    }

    /// Writes `n` texts created at `from`, `from + 1`, ... and fails each at `failed_at`
    /// (or at its own creation time): finished messages the retention may remove.
    async fn finished(store: &Store, n: usize, from: i64, failed_at: Option<i64>) {
        store
            .write(move |t| {
                for i in 0..n {
                    let at = from + i as i64;
                    let r = enqueue(t, "a", &text(i, at, Some(format!("k{i}"))))?.record;
                    mark_failed(t, "a", &r.id, "x", failed_at.unwrap_or(at))?;
                }
                Ok(())
            })
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_round_runs_batches_until_the_bounds_hold_and_a_second_finds_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("r.redb"), 1 << 20).unwrap();
        let n = BATCH * 2 + 150;
        finished(&store, n, 1_000, Some(2_000)).await;
        // One still queued, older than everything.
        store
            .write(|t| {
                enqueue(t, "a", &text(0, 0, None))?;
                Ok(())
            })
            .await
            .unwrap();
        let s = Settings {
            max_age_ms: 86_400_000,
            max: 100,
            wa_max: 50_000,
            every: Duration::from_secs(3600),
        };
        // Nothing is a day old at 2_000 (created 1_000..2_150): the count bound alone removes n - 100.
        let (sent, received) = prune(&store, 2_000, s).await.unwrap();
        assert_eq!((sent, received), (n as u64 - 100, 0));
        assert_eq!(prune(&store, 2_000, s).await.unwrap(), (0, 0));
        // A day later everything finished is old; the queued message stays.
        let (sent, _) = prune(&store, 3_000 + 86_400_000, s).await.unwrap();
        assert_eq!(sent, 100);
        let depth = store.read(|t| queue::depth(t, "a")).await.unwrap();
        assert_eq!(depth, 1);
        let next = store.read(|t| queue::next(t, "a")).await.unwrap();
        assert_eq!(next.map(|r| r.created_at), Some(0));
    }

    #[tokio::test]
    async fn the_task_runs_again_every_interval() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("r.redb"), 1 << 20).unwrap();
        let s = Settings {
            max_age_ms: 86_400_000,
            max: 100,
            wa_max: 50_000,
            every: Duration::from_millis(50),
        };
        let clock = Clock::system();
        let now = clock.now_ms();
        let task = spawn(store.clone(), clock, s);
        // Written after the round at start: only a later round can bring them to the bound.
        finished(&store, 150, now, None).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        task.abort();
        // A later round already removed the 50 beyond the bound: nothing left to remove.
        assert_eq!(prune(&store, now + 200, s).await.unwrap(), (0, 0));
    }

    #[test]
    fn settings_follow_the_config() {
        let c = StoreConfig {
            message_retention_days: 2,
            message_retention_max: 300,
            retention_interval_minutes: 5,
            wa_message_records_max: 1_000,
            ..StoreConfig::default()
        };
        assert_eq!(
            Settings::from(&c),
            Settings {
                max_age_ms: 2 * 86_400_000,
                max: 300,
                wa_max: 1_000,
                every: Duration::from_secs(300),
            }
        );
    }
}
