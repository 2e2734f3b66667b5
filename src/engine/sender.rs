//! The per-session send worker: takes messages from the session's durable queue, in order,
//! while the session is connected, and sends them.
//!
//! For each message: WhatsApp's id is fixed and committed first ([`queue::mark_sending`]),
//! then media is uploaded and the message sent with that id; when the server acknowledges
//! that id the outcome is committed ([`queue::mark_sent`] / [`queue::mark_failed`]) and
//! published. `sent` means the server has the message, not that it was written to a socket:
//! a stanza still in a send buffer when the power goes (or the process is killed, or the link
//! drops) is lost with it. A crash or disconnect before the acknowledgement leaves the message
//! first in the queue with its id; the next attempt sends it again with that id, so the
//! recipient sees one message (see `store::queue`). A refusal (a nack) fails the message with
//! the server's code, or retries it when the code says the service was unavailable.
//!
//! Pacing ([`super::pacing`]) wraps [`Sender::send_one`]: before each message the worker
//! asks the policy when it may go (rate limits, warm-up, then a random delay), waits for
//! that while the session stays connected, shows `composing` (text) or `recording` (voice
//! notes) for a while, then sends. The send is logged for the rate-limit windows in the
//! transaction that marks the message sent. A message interrupted mid-send (status
//! `sending` after a crash) goes again at once, with its WhatsApp id, unpaced: it was paced
//! the first time. A session that is not connected (banned, logged out, stopped,
//! reconnecting) takes nothing from its queue; the queue stays and `GET .../queue` says why.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use tokio::sync::{Notify, oneshot, watch};
use whatsapp_rust::Client;
use whatsapp_rust::send::SendOptions;
use whatsapp_rust::upload::UploadOptions;

use super::EngineStats;
use super::compose::{self, Content, MediaSource, Outgoing, UploadedMedia};
use super::pacing::{self, Limit, Overrides, Settings};
use super::session::ClientSlot;
use crate::events::{Bus, Event, EventKind, Notice, SessionState, now_ms};
use crate::net::fetch::{self, FetchError};
use crate::store::queue::{self, MessageRecord, MessageStatus};
use crate::store::{self as store, Store, StoreError, outbox};

/// How often one message is tried while connected before it is failed.
pub const MAX_ATTEMPTS: u32 = 5;

/// The largest media file a URL may bring (WhatsApp's own limit for documents is 2 GB; a
/// small board's memory is the real bound here).
pub const MEDIA_LIMIT: u64 = 64 * 1024 * 1024;

/// How long fetching one media URL may take.
pub const MEDIA_FETCH_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the worker waits for the server to acknowledge a message it sent before it
/// counts the attempt failed and sends it again (with the same id).
pub const ACK_TIMEOUT: Duration = Duration::from_secs(30);

/// What the server answered to a sent message: `None` accepted, `Some(code)` refused.
type AckAnswer = Option<String>;

/// The server acknowledgements the send worker is waiting for, by WhatsApp message id. The
/// client's event handler answers them as the acks arrive.
#[derive(Default)]
pub(crate) struct AckWaiters(
    std::sync::Mutex<std::collections::HashMap<String, oneshot::Sender<AckAnswer>>>,
);

impl AckWaiters {
    /// Wait for the ack of `wa_id` (registered before the message goes, as the ack can come
    /// back before the send call returns).
    fn expect(&self, wa_id: &str) -> oneshot::Receiver<AckAnswer> {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut w) = self.0.lock() {
            w.insert(wa_id.to_string(), tx);
        }
        rx
    }

    fn forget(&self, wa_id: &str) {
        if let Ok(mut w) = self.0.lock() {
            w.remove(wa_id);
        }
    }

    /// The server acknowledged `wa_id` (`error`: its refusal code). False if nobody waits.
    pub(crate) fn answer(&self, wa_id: &str, error: Option<String>) -> bool {
        let waiter = self.0.lock().ok().and_then(|mut w| w.remove(wa_id));
        waiter.is_some_and(|tx| tx.send(error).is_ok())
    }
}

/// Everything the worker needs.
pub(crate) struct Sender {
    pub id: Arc<str>,
    pub store: Store,
    pub bus: Bus,
    pub state: watch::Receiver<SessionState>,
    pub client: ClientSlot,
    pub wake: Arc<Notify>,
    pub stats: Arc<EngineStats>,
    /// The platform's pacing defaults.
    pub defaults: Arc<Settings>,
    pub pace: Arc<PaceShared>,
    /// Where the server's acknowledgements of sent messages arrive.
    pub acks: Arc<AckWaiters>,
    /// The session's presence: `available` for the span of each paced send.
    pub presence: Arc<super::presence::Keeper>,
}

/// What the worker and the manager share about pacing.
#[derive(Debug, Default)]
pub(crate) struct PaceShared {
    /// Wakes the worker when the session's settings change: it plans again.
    pub replan: Notify,
    /// The message the worker waits to send, and until when.
    pub plan: std::sync::Mutex<Option<Plan>>,
}

impl PaceShared {
    fn set(&self, plan: Option<Plan>) {
        if let Ok(mut p) = self.plan.lock() {
            *p = plan;
        }
    }

    pub fn get(&self) -> Option<Plan> {
        self.plan.lock().ok().and_then(|p| p.clone())
    }
}

/// When the worker will send its next message.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plan {
    pub msg: String,
    /// Unix ms.
    pub at: i64,
    /// The limit that holds it back, if one does.
    pub limit: Option<Limit>,
}

/// The session's effective settings, its own overrides, and when it paired.
pub(crate) async fn load_settings(
    st: &Store,
    defaults: &Settings,
    session: &str,
) -> Result<(Settings, Overrides, Option<i64>), StoreError> {
    let sid = session.to_string();
    let (raw, rec) = st
        .read(move |t| {
            Ok((
                store::pacing::overrides(t, &sid)?,
                store::sessions::get(t, &sid)?,
            ))
        })
        .await?;
    let overrides: Overrides = match raw {
        Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
            table: "pace_settings",
            detail: e.to_string(),
        })?,
        None => Overrides::default(),
    };
    Ok((
        defaults.with(&overrides),
        overrides,
        rec.and_then(|r| r.paired_at),
    ))
}

/// What waiting for a message's turn came to.
enum Paced {
    /// Send it now, with these settings.
    Go(Settings),
    /// Something changed (settings, the session, the head of the queue): look again.
    Again,
    /// The session is gone.
    Closed,
}

/// Why one attempt did not end the message.
#[derive(Debug, thiserror::Error)]
enum Attempt {
    #[error("{0}")]
    Retry(String),
    #[error("{0}")]
    Fail(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Sender {
    fn client(&self) -> Option<Arc<Client>> {
        self.client.lock().ok().and_then(|c| c.clone())
    }

    /// Run until the session's state channel closes (the session is deleted or shut down).
    pub async fn run(mut self) {
        let mut backoff = Duration::from_secs(1);
        loop {
            if self
                .state
                .wait_for(|s| matches!(s, SessionState::Connected { .. }))
                .await
                .is_err()
            {
                return;
            }
            let sid = self.id.clone();
            let next = match self.store.read(move |t| queue::next(t, &sid)).await {
                Ok(next) => next,
                Err(e) => {
                    tracing::error!(session = %self.id, error = %e, "cannot read the queue");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    continue;
                }
            };
            let Some(rec) = next else {
                tokio::select! {
                    _ = self.wake.notified() => {}
                    r = self.state.changed() => if r.is_err() { return },
                }
                continue;
            };
            // An interrupted send goes again at once: it was paced the first time.
            let settings = match rec.status {
                MessageStatus::Sending => None,
                _ => match self.pace(&rec).await {
                    Paced::Go(settings) => Some(settings),
                    Paced::Again => continue,
                    Paced::Closed => return,
                },
            };
            // A paced send is `available` from reading and typing to the server's answer;
            // then the presence policy's state comes back.
            let mut hold = None;
            if let Some(settings) = &settings {
                if let Some(client) = self.client() {
                    hold = Some(self.presence.hold(&client).await);
                }
                self.auto_read(&rec, settings).await;
                self.simulate(&rec, settings).await
            }
            let outcome = self.send_one(&rec).await;
            drop(hold);
            self.pace.set(None);
            match outcome {
                Ok(()) => backoff = Duration::from_secs(1),
                Err(Attempt::Retry(why)) if rec.attempts + 1 < MAX_ATTEMPTS => {
                    tracing::warn!(session = %self.id, msg = %rec.id, error = %why, "send failed; will retry");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                }
                Err(Attempt::Retry(why) | Attempt::Fail(why)) => {
                    tracing::warn!(session = %self.id, msg = %rec.id, error = %why, "send failed");
                    let (sid, id) = (self.id.clone(), rec.id.clone());
                    let res = self
                        .store
                        .write(move |t| {
                            let rec = queue::mark_failed(t, &sid, &id, &why, now_ms())?;
                            let event = Event::new(&sid, EventKind::MessageFailed(rec.update()));
                            outbox::record(t, event)
                        })
                        .await;
                    match res {
                        Ok(event) => {
                            EngineStats::bump(&self.stats.failed);
                            self.publish(event).await
                        }
                        Err(e) => {
                            tracing::error!(session = %self.id, error = %e, "cannot record a failure")
                        }
                    }
                }
                Err(Attempt::Store(e)) => {
                    tracing::error!(session = %self.id, error = %e, "queue write failed");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            }
        }
    }

    /// Wait for the message's turn: the rate limits and warm-up, then a random delay.
    async fn pace(&mut self, rec: &MessageRecord) -> Paced {
        let settings = match load_settings(&self.store, &self.defaults, &self.id).await {
            Ok((s, _, paired_at)) => (s, paired_at),
            Err(e) => {
                tracing::error!(session = %self.id, error = %e, "cannot read pacing settings");
                tokio::time::sleep(Duration::from_secs(5)).await;
                return Paced::Again;
            }
        };
        let (settings, paired_at) = settings;
        let now = now_ms();
        let sid = self.id.clone();
        let sends = match self
            .store
            .read(move |t| store::pacing::sends_since(t, &sid, now - pacing::DAY_MS))
            .await
        {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(session = %self.id, error = %e, "cannot read the send log");
                tokio::time::sleep(Duration::from_secs(5)).await;
                return Paced::Again;
            }
        };
        let slot = pacing::earliest(&settings, &sends, paired_at, now);
        let delay = pacing::draw_delay(&settings, &mut rand::rng());
        let at = slot
            .at
            .saturating_add(i64::try_from(delay).unwrap_or(i64::MAX));
        if let Some(limit) = slot.limit {
            tracing::info!(session = %self.id, msg = %rec.id, ?limit, until = slot.at, "rate limit: the message waits");
        }
        self.pace.set(Some(Plan {
            msg: rec.id.clone(),
            at,
            limit: slot.limit,
        }));
        let sleep = tokio::time::sleep(Duration::from_millis(
            u64::try_from(at.saturating_sub(now)).unwrap_or(0),
        ));
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => break,
                _ = self.pace.replan.notified() => {
                    self.pace.set(None);
                    return Paced::Again;
                }
                r = self.state.changed() => {
                    if r.is_err() {
                        return Paced::Closed;
                    }
                    if !matches!(*self.state.borrow(), SessionState::Connected { .. }) {
                        self.pace.set(None);
                        return Paced::Again;
                    }
                }
            }
        }
        // Still the head of the queue (not cancelled or held while we waited)?
        let sid = self.id.clone();
        match self.store.read(move |t| queue::next(t, &sid)).await {
            Ok(Some(head)) if head.id == rec.id && head.status == rec.status => Paced::Go(settings),
            Ok(_) => {
                self.pace.set(None);
                Paced::Again
            }
            Err(e) => {
                tracing::error!(session = %self.id, error = %e, "cannot read the queue");
                self.pace.set(None);
                Paced::Again
            }
        }
    }

    /// `auto_read`: mark the chat's unread received messages read before replying, then
    /// pause half a fresh random delay (reading), so typing does not start at the receipt.
    /// A receipt that does not go out is logged; the message still goes.
    async fn auto_read(&self, rec: &MessageRecord, s: &Settings) {
        if !s.auto_read {
            return;
        }
        let Some(client) = self.client() else {
            return;
        };
        // The chat as received may be named by phone number or by LID.
        let mut chats = vec![rec.to.clone()];
        if let Ok(jid) = rec.to.parse::<whatsapp_rust::Jid>()
            && let Ok(Some(entry)) = client.get_lid_pn_entry(&jid).await
        {
            for alt in [
                format!("{}@lid", entry.lid),
                format!("{}@s.whatsapp.net", entry.phone_number),
            ] {
                if !chats.contains(&alt) {
                    chats.push(alt);
                }
            }
        }
        let (sid, cs) = (self.id.clone(), chats.clone());
        let unread = match self
            .store
            .read(move |t| {
                let mut all = Vec::new();
                for c in &cs {
                    all.extend(store::inbound::unread(t, &sid, c)?);
                }
                Ok(all)
            })
            .await
        {
            Ok(u) => u,
            Err(e) => {
                tracing::error!(session = %self.id, error = %e, "cannot read unread messages");
                return;
            }
        };
        if unread.is_empty() {
            return;
        }
        // One receipt per chat and (in groups) sender.
        let mut batches: Vec<ReadBatch> = Vec::new();
        for m in &unread {
            let sender = m.chat.ends_with("@g.us").then(|| m.sender.clone());
            let key = (m.chat.clone(), sender);
            match batches.iter_mut().find(|(k, _, _)| *k == key) {
                Some((_, wa, ids)) => {
                    wa.push(m.wa_id.clone());
                    ids.push(m.id.clone());
                }
                None => batches.push((key, vec![m.wa_id.clone()], vec![m.id.clone()])),
            }
        }
        for ((chat, sender), wa_ids, ids) in batches {
            let (Ok(chat_jid), sender_jid) = (
                chat.parse::<whatsapp_rust::Jid>(),
                sender.as_deref().map(str::parse::<whatsapp_rust::Jid>),
            ) else {
                continue;
            };
            let sender_jid = match sender_jid {
                Some(Ok(j)) => Some(j),
                Some(Err(_)) => continue,
                None => None,
            };
            let refs: Vec<&str> = wa_ids.iter().map(String::as_str).collect();
            if let Err(e) = client
                .mark_as_read(&chat_jid, sender_jid.as_ref(), &refs)
                .await
            {
                tracing::warn!(session = %self.id, chat, error = %e, "auto_read: receipt not sent");
                continue;
            }
            let sid = self.id.clone();
            if let Err(e) = self
                .store
                .write(move |t| store::inbound::mark_read(t, &sid, &chat, &ids))
                .await
            {
                tracing::error!(session = %self.id, error = %e, "cannot record read messages");
            }
        }
        let pause = pacing::draw_delay(s, &mut rand::rng()) / 2;
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }

    /// Typing before text, recording before voice notes: the state for a while, then
    /// `paused`. A chat state that does not go out is logged; the message still goes.
    async fn simulate(&self, rec: &MessageRecord, s: &Settings) {
        if !s.typing {
            return;
        }
        let Ok(outgoing) = serde_json::from_value::<Outgoing>(rec.content.clone()) else {
            return;
        };
        let (recording, wait) = match &outgoing.content {
            Content::Text { text } => (false, pacing::typing_ms(s, text.chars().count())),
            Content::Audio {
                voice: true,
                seconds,
                ..
            } => (true, pacing::recording_ms(s, *seconds)),
            _ => return,
        };
        let (Some(client), Ok(to)) = (self.client(), rec.to.parse::<whatsapp_rust::Jid>()) else {
            return;
        };
        let cs = client.chatstate();
        let shown = if recording {
            cs.send_recording(&to).await
        } else {
            cs.send_composing(&to).await
        };
        if let Err(e) = shown {
            tracing::warn!(session = %self.id, msg = %rec.id, error = %e, "chat state not sent");
            return;
        }
        tokio::time::sleep(Duration::from_millis(wait)).await;
        if let Err(e) = cs.send_paused(&to).await {
            tracing::warn!(session = %self.id, msg = %rec.id, error = %e, "chat state not sent");
        }
    }

    async fn send_one(&self, rec: &MessageRecord) -> Result<(), Attempt> {
        let client = self
            .client()
            .ok_or_else(|| Attempt::Retry("the session has no client".into()))?;
        let outgoing: Outgoing = serde_json::from_value(rec.content.clone())
            .map_err(|e| Attempt::Fail(format!("stored message is unreadable: {e}")))?;
        let to: whatsapp_rust::Jid = rec
            .to
            .parse()
            .map_err(|e| Attempt::Fail(format!("bad recipient {}: {e}", rec.to)))?;
        let wa_id = rec
            .wa_id
            .clone()
            .unwrap_or_else(|| client.generate_message_id());
        let (phone, lid) = match (&rec.to_phone, &rec.to_lid) {
            (Some(_), Some(_)) => (None, None),
            _ => addresses(&client, &rec.to).await,
        };
        // A poll's secret is fixed with its id: votes on it are decrypted with the stored one.
        let fresh_secret = matches!(outgoing.content, Content::Poll { .. })
            .then(|| B64.encode(compose::random_secret()));
        let (sid, id, w) = (self.id.clone(), rec.id.clone(), wa_id.clone());
        let marked = self
            .store
            .write(move |t| {
                if queue::mark_sending(t, &sid, &id, &w)?.is_none() {
                    return Ok(None);
                }
                if let Some(secret) = &fresh_secret {
                    queue::set_secret(t, &sid, &id, secret)?;
                }
                queue::set_addresses(t, &sid, &id, phone.clone(), lid.clone()).map(Some)
            })
            .await?;
        let Some(marked) = marked else {
            tracing::info!(session = %self.id, msg = %rec.id, "cancelled or held before it went; not sent");
            return Ok(());
        };
        too_late(&outgoing.content, now_ms()).map_or(Ok(()), |why| Err(Attempt::Fail(why)))?;
        let poll_secret = match &marked.secret {
            Some(s) => Some(
                B64.decode(s)
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .ok_or_else(|| {
                        Attempt::Fail("the poll's stored secret is unreadable".into())
                    })?,
            ),
            None => None,
        };

        let media = match compose::media_type(&outgoing.content) {
            Some(media_type) => {
                let (bytes, fetched_type) = self.media_bytes(rec, &outgoing.content).await?;
                let mimetype = fetched_type
                    .filter(|_| outgoing.content.mimetype().is_none())
                    .or_else(|| compose::mimetype_for(&outgoing.content, &bytes))
                    .unwrap_or_else(|| "application/octet-stream".to_string());
                let up = client
                    .upload(bytes, media_type, UploadOptions::default())
                    .await
                    .map_err(|e| Attempt::Retry(format!("media upload failed: {e}")))?;
                Some(UploadedMedia::new(up, mimetype))
            }
            None => None,
        };
        let mut message = compose::build(&outgoing.content, media.as_ref())
            .map_err(|e| Attempt::Fail(e.to_string()))?;
        if let Some(secret) = poll_secret {
            compose::set_poll_secret(&mut message, secret);
        }
        let message = super::reply::apply(&self.store, &self.id, &client, &outgoing, message)
            .await
            .map_err(|e| match e.is_transient() {
                true => Attempt::Retry(e.to_string()),
                false => Attempt::Fail(e.to_string()),
            })?;
        let ack = self.acks.expect(&wa_id);
        let sent = client
            .send_message_with_options(to, message, SendOptions::default().with_message_id(&wa_id))
            .await
            .map_err(|e| match e {
                whatsapp_rust::send::SendError::InvalidRequest(m) => Attempt::Fail(m),
                other => Attempt::Retry(other.to_string()),
            });
        let answer = match sent {
            Ok(_) => self.server_answer(ack).await,
            Err(e) => Err(e),
        };
        self.acks.forget(&wa_id);
        if let Some(code) = answer? {
            // 5xx: the service could not take it now; anything else names a fault in the
            // message or the account that sending again will not mend.
            let why = format!("WhatsApp refused the message (error {code})");
            return Err(match code.starts_with('5') {
                true => Attempt::Retry(why),
                false => Attempt::Fail(why),
            });
        }
        let (sid, id) = (self.id.clone(), rec.id.clone());
        let change = target_change(&outgoing.content);
        let recorded = self
            .store
            .write(move |t| {
                let at = now_ms();
                // None: its receipt came first (while the send returned, or after a crash
                // mid-send) and recorded the send and `message.sent` then.
                let Some(sent) = queue::mark_sent(t, &sid, &id, at)? else {
                    return Ok(None);
                };
                if let Some((target, change)) = change.clone() {
                    queue::mark_changed(t, &sid, &target, change, at)?;
                }
                store::pacing::log_send(t, &sid, at)?;
                outbox::record(t, Event::new(&sid, EventKind::MessageSent(sent.update()))).map(Some)
            })
            .await?;
        tracing::info!(session = %self.id, msg = %rec.id, wa_id = %wa_id, "sent");
        match recorded {
            Some(event) => {
                EngineStats::bump(&self.stats.sent);
                self.publish(event).await;
            }
            None => self.publish(None).await,
        }
        Ok(())
    }

    /// Wait for the server's answer to a message just sent, while the session stays
    /// connected and for at most [`ACK_TIMEOUT`].
    async fn server_answer(&self, ack: oneshot::Receiver<AckAnswer>) -> Result<AckAnswer, Attempt> {
        let mut state = self.state.clone();
        let dropped = state.wait_for(|s| !matches!(s, SessionState::Connected { .. }));
        tokio::select! {
            answer = ack => answer.map_err(|_| Attempt::Retry("the acknowledgement was lost".into())),
            _ = dropped => Err(Attempt::Retry(
                "the connection ended before the server acknowledged the message".into(),
            )),
            _ = tokio::time::sleep(ACK_TIMEOUT) => Err(Attempt::Retry(format!(
                "the server did not acknowledge the message within {}s",
                ACK_TIMEOUT.as_secs()
            ))),
        }
    }

    /// The media of a message: inline in its content, stored with it from an upload, or
    /// fetched from its URL now (with the size and time limits).
    async fn media_bytes(
        &self,
        rec: &MessageRecord,
        content: &compose::Content,
    ) -> Result<(Vec<u8>, Option<String>), Attempt> {
        match content.media() {
            Some(MediaSource::Inline(bytes)) => Ok((bytes.clone(), None)),
            Some(MediaSource::Upload(_)) => {
                let (sid, id) = (self.id.clone(), rec.id.clone());
                let bytes = self
                    .store
                    .read(move |t| queue::blob(t, &sid, &id))
                    .await?
                    .ok_or_else(|| Attempt::Fail("the message's media is missing".into()))?;
                Ok((bytes, None))
            }
            Some(MediaSource::Url(url)) => {
                let url = url.clone();
                let fetched = tokio::task::spawn_blocking(move || {
                    fetch::fetch(&url, MEDIA_LIMIT, MEDIA_FETCH_TIMEOUT)
                })
                .await
                .map_err(|e| Attempt::Retry(e.to_string()))?;
                match fetched {
                    Ok(f) => Ok((f.bytes, f.content_type)),
                    Err(e @ (FetchError::TooLarge { .. } | FetchError::Status { .. })) => {
                        Err(Attempt::Fail(e.to_string()))
                    }
                    Err(e) => Err(Attempt::Retry(e.to_string())),
                }
            }
            None => Err(Attempt::Fail("this kind carries no media".into())),
        }
    }

    /// Publish what happened to a message that left the queue (the event is in the outbox
    /// already), and the new queue depth.
    async fn publish(&self, event: Option<Event>) {
        if let Some(event) = event {
            self.bus.publish(Notice::Event(event));
        }
        publish_depth(&self.store, &self.bus, &self.id).await;
    }
}

/// Tell the bus how long the session's queue is now (the display and SSE show it).
pub(crate) async fn publish_depth(store: &Store, bus: &Bus, session: &str) {
    let sid = session.to_string();
    match store.read(move |t| queue::depth(t, &sid)).await {
        Ok(depth) => bus.publish(Notice::Queue {
            session: session.to_string(),
            depth,
        }),
        Err(e) => tracing::warn!(session, error = %e, "cannot read the queue depth"),
    }
}

/// The recipient's phone-number JID and LID, as far as the client knows the mapping.
pub(crate) async fn addresses(client: &Client, to: &str) -> (Option<String>, Option<String>) {
    let (mut phone, mut lid) = (None, None);
    if let Ok(jid) = to.parse::<whatsapp_rust::Jid>() {
        if jid.is_lid() {
            lid = Some(to.to_string());
        } else if jid.is_pn() {
            phone = Some(to.to_string());
        }
        if let Ok(Some(entry)) = client.get_lid_pn_entry(&jid).await {
            lid.get_or_insert_with(|| format!("{}@lid", entry.lid));
            phone.get_or_insert_with(|| format!("{}@s.whatsapp.net", entry.phone_number));
        }
    }
    (phone, lid)
}

/// Unread messages of one chat and (in groups) sender: ((chat, sender), WhatsApp ids, ids).
type ReadBatch = ((String, Option<String>), Vec<String>, Vec<String>);

/// Why an edit or a revoke can no longer go at `now`: an edit sent
/// [`compose::EDIT_DROPPED_AFTER_MS`] or more after its message is dropped by recipients, a
/// revoke after [`compose::REVOKE_WINDOW_MS`] is not honoured. A queue that held one that long
/// fails it rather than send it to be ignored.
pub(crate) fn too_late(content: &Content, now: i64) -> Option<String> {
    let (sent_at, window, what) = match content {
        Content::Edit { target_sent_at, .. } => {
            (*target_sent_at, compose::EDIT_DROPPED_AFTER_MS, "an edit")
        }
        Content::Revoke { target_sent_at, .. } => {
            (*target_sent_at, compose::REVOKE_WINDOW_MS, "a revoke")
        }
        _ => return None,
    };
    (now >= sent_at.saturating_add(window)).then(|| {
        format!(
            "too late for {what}: WhatsApp takes it up to {} minutes after the message, and \
             the message was sent {} minutes ago",
            window / 60_000,
            now.saturating_sub(sent_at) / 60_000
        )
    })
}

/// What a sent edit or revoke does to its target's record.
fn target_change(content: &Content) -> Option<(String, queue::Change)> {
    match content {
        Content::Edit { target, text, .. } => {
            Some((target.clone(), queue::Change::Edited { text: text.clone() }))
        }
        Content::Revoke { target, .. } => Some((target.clone(), queue::Change::Revoked)),
        _ => None,
    }
}
