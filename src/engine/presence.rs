//! Presence: what the session's linked device tells WhatsApp about being online, so the
//! owner's phone keeps its notifications.
//!
//! WhatsApp routes notifications away from the phone while one of the account's devices is
//! `available`, and whatsapp-rust announces `available` on every connect (and after a push
//! name change), as WhatsApp Web does when someone opens it. A gateway that stays online all
//! day therefore silences the phone. Each session has a policy ([`PresencePolicy`], the
//! pacing setting `presence`):
//! - `unavailable` (the default): offline, except for the moment of a paced send;
//! - `available`: always online (the library's behaviour);
//! - `pulse`: offline, but online for `pulse_for_s` every `pulse_every_s` from the connect
//!   (the contact's "last seen" moves, the phone keeps its notifications most of the time).
//!
//! The [`Keeper`] puts the policy back after each connect, after each push name update (the
//! library's own `available` follows it) and after each paced send. A paced send is
//! `available` for its own span: [`Keeper::hold`] before the typing indicator, the policy's
//! state again when the send is done, as WhatsApp Web does when a person opens a chat, types,
//! sends and leaves.
//!
//! The same task applies the session's `active_receipts` setting: whatsapp-rust marks delivery
//! receipts `inactive` while the device is not `available`, and a phone shows no "delivered"
//! tick for those; with the setting on (the default) receipts go out active whatever the
//! presence.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::time::Instant;
use whatsapp_rust::Client;
use whatsapp_rust::PresenceStatus;

use super::pacing::Settings;
use crate::store::Store;

/// What a session tells WhatsApp about being online.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PresencePolicy {
    /// Offline except while a paced send is under way: the phone keeps its notifications.
    Unavailable,
    /// Always online: the phone gets no notifications while the box is connected.
    Available,
    /// Offline, online for `pulse_for_s` every `pulse_every_s`.
    Pulse,
}

/// The waits, one after the other, before the policy is put back after a push name update
/// (at 2 s and at 8 s): the library sends its own `available` from a task of its own after
/// the event, usually at once, later on a busy link; the second catches a late one.
const AFTER_PUSH_NAME: [Duration; 2] = [Duration::from_secs(2), Duration::from_secs(6)];

/// The presence state the policy asks for `since_connect` after the connect.
pub fn wanted(s: &Settings, since_connect: Duration) -> (PresenceStatus, Option<Duration>) {
    match s.presence {
        PresencePolicy::Available => (PresenceStatus::Available, None),
        PresencePolicy::Unavailable => (PresenceStatus::Unavailable, None),
        PresencePolicy::Pulse => {
            let every = Duration::from_secs(s.pulse_every_s.max(1));
            let on = Duration::from_secs(s.pulse_for_s).min(every);
            let into = Duration::from_nanos(
                (since_connect.as_nanos() % every.as_nanos())
                    .try_into()
                    .unwrap_or(0),
            );
            if into < on {
                (PresenceStatus::Available, Some(on - into))
            } else {
                (PresenceStatus::Unavailable, Some(every - into))
            }
        }
    }
}

/// The presence of one session: shared by its session task (connects, push names, settings
/// changes) and its send worker (paced sends).
pub(crate) struct Keeper {
    session: Arc<str>,
    store: Store,
    defaults: Arc<Settings>,
    /// Paced sends under way: while any is, the device stays `available`.
    holds: AtomicU32,
    /// The next look must send the policy's state even if it was the last one sent (the
    /// library may have announced `available` on its own since).
    force: AtomicBool,
    /// A new connection: the pulse schedule starts again.
    fresh: AtomicBool,
    /// The `active_receipts` setting last applied to the client (`None`: not yet).
    receipts: std::sync::Mutex<Option<bool>>,
    kick: Notify,
    /// The last state sent on this connection (`None`: not known); held while one is sent.
    sent: tokio::sync::Mutex<Option<PresenceStatus>>,
}

/// A paced send's `available`; dropping it lets the policy back.
pub(crate) struct Hold<'a>(&'a Keeper);

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        self.0.holds.fetch_sub(1, Ordering::AcqRel);
        self.0.kick.notify_one();
    }
}

impl Keeper {
    pub fn new(session: Arc<str>, store: Store, defaults: Arc<Settings>) -> Self {
        Keeper {
            session,
            store,
            defaults,
            holds: AtomicU32::new(0),
            force: AtomicBool::new(true),
            fresh: AtomicBool::new(true),
            receipts: std::sync::Mutex::new(None),
            kick: Notify::new(),
            sent: tokio::sync::Mutex::new(None),
        }
    }

    /// Look again now: the settings changed.
    pub fn refresh(&self) {
        self.kick.notify_one();
    }

    /// A new connection: the library announced `available` before saying it is connected.
    /// Put the policy's state back now; a pulse schedule starts from here.
    pub fn connected(&self) {
        self.fresh.store(true, Ordering::Release);
        self.reassert();
    }

    /// Put the policy's state back now, whatever was sent last (a presence went out that
    /// the keeper did not send: a push name change).
    pub fn reassert(&self) {
        self.force.store(true, Ordering::Release);
        self.kick.notify_one();
    }

    /// The library announced `available` after a push name update, from a task of its own:
    /// put the policy back once that has gone.
    pub fn reassert_later(self: &Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move {
            for wait in AFTER_PUSH_NAME {
                tokio::time::sleep(wait).await;
                me.reassert();
            }
        });
    }

    /// Apply the `active_receipts` setting when it changed. Turned off, whatsapp-rust's own
    /// rule holds again (active while `available`): the policy's presence is sent again so
    /// the library sees the state it keys that on.
    pub fn receipts(&self, client: &Client, active: bool) {
        let Ok(mut applied) = self.receipts.lock() else {
            return;
        };
        if *applied != Some(active) {
            client.set_force_active_delivery_receipts(active);
            *applied = Some(active);
            if !active {
                self.reassert();
            }
        }
    }

    /// Be `available` for a paced send (typing, then the message): the policy's state
    /// comes back when the hold is dropped. A presence that does not go out is logged; the
    /// send goes on.
    pub async fn hold<'a>(&'a self, client: &Client) -> Hold<'a> {
        self.holds.fetch_add(1, Ordering::AcqRel);
        let mut sent = self.sent.lock().await;
        if *sent != Some(PresenceStatus::Available) {
            match client.presence().set(PresenceStatus::Available).await {
                Ok(()) => *sent = Some(PresenceStatus::Available),
                Err(e) => {
                    tracing::warn!(session = %self.session, error = %e, "presence not sent");
                    *sent = None;
                }
            }
        }
        Hold(self)
    }

    /// Keep the policy while this client runs (aborted with it).
    pub async fn run(self: Arc<Self>, client: Arc<Client>) {
        // A new client: it knows nothing of what the last one was told.
        if let Ok(mut applied) = self.receipts.lock() {
            *applied = None;
        }
        *self.sent.lock().await = None;
        let mut connected_at: Option<Instant> = None;
        loop {
            let settings = match super::sender::load_settings(
                &self.store,
                &self.defaults,
                &self.session,
            )
            .await
            {
                Ok((s, _, _)) => s,
                Err(e) => {
                    tracing::error!(session = %self.session, error = %e, "cannot read presence settings");
                    (*self.defaults).clone()
                }
            };
            self.receipts(&client, settings.active_receipts);
            let mut next = None;
            if !client.is_connected() {
                connected_at = None;
                *self.sent.lock().await = None;
            } else {
                if self.fresh.swap(false, Ordering::AcqRel) {
                    connected_at = None;
                }
                let since = connected_at.get_or_insert_with(Instant::now).elapsed();
                let (want, until) = wanted(&settings, since);
                next = until;
                // Holds are counted before a sender takes `sent`: looked at under it, a
                // send that began meanwhile is seen, and its `available` is not undone.
                let mut sent = self.sent.lock().await;
                if self.holds.load(Ordering::Acquire) == 0 {
                    let forced = self.force.swap(false, Ordering::AcqRel);
                    if forced || *sent != Some(want) {
                        match client.presence().set(want).await {
                            Ok(()) => {
                                tracing::debug!(session = %self.session, presence = %want, "presence");
                                *sent = Some(want);
                            }
                            Err(e) => {
                                tracing::warn!(session = %self.session, error = %e, "presence not sent");
                                *sent = None;
                                // Try again shortly (a push name may still be missing).
                                next = Some(next.map_or(RETRY, |n| n.min(RETRY)));
                            }
                        }
                    }
                }
            }
            match next {
                Some(d) => {
                    let _ = tokio::time::timeout(d, self.kick.notified()).await;
                }
                None => self.kick.notified().await,
            }
        }
    }
}

/// How soon a presence that did not go out is tried again.
const RETRY: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    fn pulse(every: u64, on: u64) -> Settings {
        Settings {
            presence: PresencePolicy::Pulse,
            pulse_every_s: every,
            pulse_for_s: on,
            ..Settings::default()
        }
    }

    #[test]
    fn unavailable_and_available_are_steady() {
        let mut s = Settings::default();
        assert_eq!(
            s.presence,
            PresencePolicy::Unavailable,
            "the default keeps the phone's notifications"
        );
        assert_eq!(
            wanted(&s, Duration::from_secs(999)),
            (PresenceStatus::Unavailable, None)
        );
        s.presence = PresencePolicy::Available;
        assert_eq!(
            wanted(&s, Duration::ZERO),
            (PresenceStatus::Available, None)
        );
    }

    #[test]
    fn a_pulse_is_online_at_the_start_of_each_period_then_offline() {
        let s = pulse(60, 10);
        let at = |secs| wanted(&s, Duration::from_secs(secs));
        assert_eq!(
            at(0),
            (PresenceStatus::Available, Some(Duration::from_secs(10)))
        );
        assert_eq!(at(9).0, PresenceStatus::Available);
        assert_eq!(
            at(10),
            (PresenceStatus::Unavailable, Some(Duration::from_secs(50)))
        );
        assert_eq!(
            at(59),
            (PresenceStatus::Unavailable, Some(Duration::from_secs(1)))
        );
        assert_eq!(
            at(60),
            (PresenceStatus::Available, Some(Duration::from_secs(10)))
        );
        assert_eq!(
            at(125),
            (PresenceStatus::Available, Some(Duration::from_secs(5)))
        );
    }
}
