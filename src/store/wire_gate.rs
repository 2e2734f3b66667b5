//! Holds a session's outgoing frames until the Signal state they may carry is in redb.
//!
//! Why: when whatsapp-rust decrypts a message that starts a new ratchet step, it makes a new
//! sending chain for that contact but saves it only with its write-behind flush, some 25 ms
//! later (the counter lease of the old chain covers the new one, so the send path sees no
//! reason to save first). A message wagate sends in that gap goes out on the unsaved chain.
//! If the power goes (or the process is killed) before the flush, redb still holds the old
//! chain while the contact has already seen the new one: both sides then fail each other's
//! messages with a bad MAC until a retry with keys rebuilds the session, and a message can be
//! lost for good (README, "Crashes").
//!
//! The gate closes that gap from outside the library. The store backend tells it when an
//! inbound message has been decrypted (whatsapp-rust writes the message's pending row right
//! after the decrypt, before anything reaches the hook) and when a write of Signal state
//! (sessions, sender keys) completes. The session's transport asks [`WireGate::pass`] before
//! every frame: a frame written after a decrypt waits until a Signal-state write that began
//! after that decrypt has committed. Frames with no decrypt before them pass at once.
//!
//! The wait is bounded ([`WireGate::new`]'s `max_wait`): if no such write comes (a failing
//! disk, or a decrypt that changed nothing the flush writes), the frame goes after the bound,
//! as it would have without the gate, and later frames no longer wait for that decrypt.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;

/// The gates' counters across sessions (for `/metrics`).
#[derive(Debug, Default)]
pub struct WireStats {
    /// Frames that had to wait for a Signal-state write.
    pub waits: AtomicU64,
    /// Frames that gave up waiting after the bound.
    pub timeouts: AtomicU64,
    /// Microseconds spent waiting, summed.
    pub wait_micros: AtomicU64,
}

/// How a frame went through the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Passage {
    /// Nothing decrypted since the last Signal-state write: no wait.
    Open,
    /// It waited for a Signal-state write that began after the last decrypt.
    Waited(Duration),
    /// No such write came within the bound; it went anyway.
    TimedOut,
}

/// One client's gate (shared by its store backend and its transport).
#[derive(Debug)]
pub struct WireGate {
    /// Decrypts seen so far (a counter; each decrypt takes the next number).
    decrypts: AtomicU64,
    /// The highest decrypt number that a completed Signal-state write began after.
    saved: watch::Sender<u64>,
    /// Decrypt numbers up to this one are no longer waited for (a wait for them timed out).
    given_up: AtomicU64,
    max_wait: Duration,
    stats: Arc<WireStats>,
}

impl WireGate {
    pub fn new(max_wait: Duration, stats: Arc<WireStats>) -> Self {
        WireGate {
            decrypts: AtomicU64::new(0),
            saved: watch::Sender::new(0),
            given_up: AtomicU64::new(0),
            max_wait,
            stats,
        }
    }

    /// An inbound message was decrypted: the Signal state in memory is ahead of redb.
    pub fn decrypted(&self) {
        self.decrypts.fetch_add(1, Ordering::SeqCst);
    }

    /// A write of Signal state is about to begin; hand the token to [`Self::write_committed`].
    ///
    /// whatsapp-rust holds its session cache locked from taking the snapshot it writes until
    /// the write returns, and a decrypt stores its result in that cache before the gate hears
    /// of it; so every decrypt counted here is in the snapshot being written.
    pub fn write_begins(&self) -> u64 {
        self.decrypts.load(Ordering::SeqCst)
    }

    /// The write that began with `token` committed.
    pub fn write_committed(&self, token: u64) {
        self.saved.send_if_modified(|saved| {
            if token > *saved {
                *saved = token;
                true
            } else {
                false
            }
        });
    }

    /// Wait, if need be, until the Signal state of every decrypt so far is in redb.
    pub async fn pass(&self) -> Passage {
        let target = self.decrypts.load(Ordering::SeqCst);
        let mut saved = self.saved.subscribe();
        if *saved.borrow() >= target || self.given_up.load(Ordering::SeqCst) >= target {
            return Passage::Open;
        }
        let start = tokio::time::Instant::now();
        let outcome = tokio::time::timeout(self.max_wait, saved.wait_for(|s| *s >= target)).await;
        let waited = start.elapsed();
        self.stats.waits.fetch_add(1, Ordering::Relaxed);
        self.stats.wait_micros.fetch_add(
            u64::try_from(waited.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        match outcome {
            Ok(Ok(_)) => Passage::Waited(waited),
            // The sender lives as long as `self`, so the channel cannot close while we wait.
            Ok(Err(_)) => Passage::Waited(waited),
            Err(_) => {
                self.given_up.fetch_max(target, Ordering::SeqCst);
                self.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    waited_ms = waited.as_millis() as u64,
                    "no Signal-state write followed a decrypt; sending without it"
                );
                Passage::TimedOut
            }
        }
    }

    /// Production reads the counters through `Store::wire_stats`; the unit tests here, which
    /// build a gate without a store, read them through the gate.
    #[cfg(test)]
    fn stats(&self) -> &WireStats {
        &self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(max_wait_ms: u64) -> Arc<WireGate> {
        Arc::new(WireGate::new(
            Duration::from_millis(max_wait_ms),
            Arc::default(),
        ))
    }

    #[tokio::test]
    async fn a_frame_with_no_decrypt_before_it_passes_at_once() {
        let g = gate(1000);
        assert_eq!(g.pass().await, Passage::Open);
        let t = g.write_begins();
        g.write_committed(t);
        assert_eq!(g.pass().await, Passage::Open);
        assert_eq!(g.stats().waits.load(Ordering::Relaxed), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_decrypt_a_frame_waits_for_a_write_that_began_after_it() {
        let g = gate(10_000);
        // A write that began before the decrypt does not count.
        let before = g.write_begins();
        g.decrypted();
        let waiting = tokio::spawn({
            let g = Arc::clone(&g);
            async move { g.pass().await }
        });
        tokio::time::sleep(Duration::from_millis(5)).await;
        g.write_committed(before);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !waiting.is_finished(),
            "released by a write from before the decrypt"
        );
        // The write-behind flush 25 ms later: it began after the decrypt.
        let after = g.write_begins();
        tokio::time::sleep(Duration::from_millis(3)).await;
        assert!(
            !waiting.is_finished(),
            "released before the write committed"
        );
        g.write_committed(after);
        match waiting.await.unwrap() {
            Passage::Waited(d) => assert_eq!(d, Duration::from_millis(28)),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            g.pass().await,
            Passage::Open,
            "saved: the next frame is free"
        );
        assert_eq!(g.stats().waits.load(Ordering::Relaxed), 1);
        assert_eq!(g.stats().wait_micros.load(Ordering::Relaxed), 28_000);
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_is_bounded_and_not_repeated_for_the_same_decrypt() {
        let g = gate(500);
        g.decrypted();
        assert_eq!(g.pass().await, Passage::TimedOut);
        assert_eq!(
            g.pass().await,
            Passage::Open,
            "the next frame does not wait again"
        );
        g.decrypted();
        let waiting = tokio::spawn({
            let g = Arc::clone(&g);
            async move { g.pass().await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!waiting.is_finished(), "a new decrypt is waited for");
        let t = g.write_begins();
        g.write_committed(t);
        assert_eq!(
            waiting.await.unwrap(),
            Passage::Waited(Duration::from_millis(10))
        );
        assert_eq!(g.stats().timeouts.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn committed_tokens_only_move_forward() {
        let g = gate(50);
        g.decrypted();
        g.decrypted();
        let second = g.write_begins();
        g.write_committed(second);
        g.write_committed(0);
        assert_eq!(g.pass().await, Passage::Open);
    }
}
