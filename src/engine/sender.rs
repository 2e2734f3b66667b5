//! The per-session send worker: takes messages from the session's durable queue, in order,
//! while the session is connected, and sends them.
//!
//! For each message: WhatsApp's id is fixed and committed first ([`queue::mark_sending`]),
//! then media is uploaded and the message sent with that id, then the outcome is committed
//! ([`queue::mark_sent`] / [`queue::mark_failed`]) and published. A crash between the first
//! commit and the last leaves the message first in the queue with its id; the next attempt
//! reuses it, so the recipient sees one message (see `store::queue`).
//!
//! The pacing policy (delays, typing, rate limits) wraps [`Sender::send_one`]; until it exists
//! messages go out as soon as the session is connected.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use whatsapp_rust::Client;
use whatsapp_rust::send::SendOptions;
use whatsapp_rust::upload::UploadOptions;

use super::EngineStats;
use super::compose::{self, MediaSource, Outgoing, UploadedMedia};
use super::session::ClientSlot;
use crate::events::{Bus, Event, EventKind, Notice, SessionState, now_ms};
use crate::net::fetch::{self, FetchError};
use crate::store::queue::{self, MessageRecord};
use crate::store::{Store, StoreError, outbox};

/// How often one message is tried while connected before it is failed.
pub const MAX_ATTEMPTS: u32 = 5;

/// The largest media file a URL may bring (WhatsApp's own limit for documents is 2 GB; a
/// small board's memory is the real bound here).
pub const MEDIA_LIMIT: u64 = 64 * 1024 * 1024;

/// How long fetching one media URL may take.
pub const MEDIA_FETCH_TIMEOUT: Duration = Duration::from_secs(60);

/// Everything the worker needs.
pub(crate) struct Sender {
    pub id: Arc<str>,
    pub store: Store,
    pub bus: Bus,
    pub state: watch::Receiver<SessionState>,
    pub client: ClientSlot,
    pub wake: Arc<Notify>,
    pub stats: Arc<EngineStats>,
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
            match self.send_one(&rec).await {
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
        let (sid, id, w) = (self.id.clone(), rec.id.clone(), wa_id.clone());
        self.store
            .write(move |t| {
                queue::mark_sending(t, &sid, &id, &w)?;
                queue::set_addresses(t, &sid, &id, phone, lid)
            })
            .await?;

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
        let message = compose::build(&outgoing.content, media.as_ref())
            .map_err(|e| Attempt::Fail(e.to_string()))?;
        let message = super::reply::apply(&self.store, &self.id, &client, &outgoing, message)
            .await
            .map_err(|e| match e.is_transient() {
                true => Attempt::Retry(e.to_string()),
                false => Attempt::Fail(e.to_string()),
            })?;
        client
            .send_message_with_options(to, message, SendOptions::default().with_message_id(&wa_id))
            .await
            .map_err(|e| match e {
                whatsapp_rust::send::SendError::InvalidRequest(m) => Attempt::Fail(m),
                other => Attempt::Retry(other.to_string()),
            })?;
        let (sid, id) = (self.id.clone(), rec.id.clone());
        let event = self
            .store
            .write(move |t| {
                let sent = queue::mark_sent(t, &sid, &id, now_ms())?;
                outbox::record(t, Event::new(&sid, EventKind::MessageSent(sent.update())))
            })
            .await?;
        tracing::info!(session = %self.id, msg = %rec.id, wa_id = %wa_id, "sent");
        EngineStats::bump(&self.stats.sent);
        self.publish(event).await;
        Ok(())
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
