//! `SessionManager`: the engine's handle. Creates, lists, starts, stops, logs out and deletes
//! sessions, and restores every session at boot.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::{Mutex, Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use whatsapp_rust::Client;

use super::contacts::{self, CheckOutcome, ContactInfo};
use super::media::{MediaError, MediaFile};
use super::pacing::{self, Limit, Overrides, Settings, WarmUp};
use super::profile::{self, OwnProfile, ProfileChange};
use super::sender::{self, PaceShared, Sender};
use super::session::{self, ClientSlot, Command, SessionCtx};
use super::{EngineConfig, EngineError, EngineStats, startable, valid_session_id};
use crate::events::{Bus, FailReason, SessionState, now_ms};
use crate::store::Store;
use crate::store::inbound::InboundRecord;
use crate::store::pacing as store_pacing;
use crate::store::queue::{self, MessageRecord};
use crate::store::sessions::{self, SessionRecord};
use crate::store::wa_backend::{self, Identity};

/// A session as the engine reports it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SessionInfo {
    pub id: String,
    #[serde(flatten)]
    pub state: SessionState,
    /// Whether the session runs (and is started at boot).
    pub enabled: bool,
    pub phone: Option<String>,
    pub lid: Option<String>,
    pub created_at: i64,
}

struct Handle {
    commands: mpsc::Sender<Command>,
    state: watch::Receiver<SessionState>,
    client: ClientSlot,
    task: JoinHandle<()>,
    /// Wakes the send worker when a message is queued.
    wake: Arc<Notify>,
    sender: JoinHandle<()>,
    pace: Arc<PaceShared>,
    presence: Arc<super::presence::Keeper>,
    /// One number check of the session at a time takes from its budget
    /// ([`super::contacts`]).
    checks: Arc<Mutex<()>>,
}

struct Inner {
    stats: Arc<EngineStats>,
    store: Store,
    bus: Bus,
    cfg: Arc<EngineConfig>,
    sessions: Mutex<HashMap<String, Handle>>,
    media: Arc<super::media::MediaCache>,
}

/// The engine's handle. Cloning shares it.
#[derive(Clone)]
pub struct SessionManager {
    inner: Arc<Inner>,
}

impl SessionManager {
    /// Restore every session in the store. Enabled sessions start when `autostart` is set;
    /// the others wait for `start`.
    pub async fn open(
        store: Store,
        bus: Bus,
        cfg: EngineConfig,
        autostart: bool,
    ) -> Result<Self, EngineError> {
        let media = Arc::new(
            super::media::MediaCache::open(
                cfg.media_cache_dir
                    .clone()
                    .unwrap_or_else(|| super::media::default_dir(store.path())),
                cfg.media_cache_max_bytes,
                cfg.inline_media_max_bytes,
            )
            .await,
        );
        let mgr = SessionManager {
            inner: Arc::new(Inner {
                media,
                stats: Arc::default(),
                store,
                bus,
                cfg: Arc::new(cfg),
                sessions: Mutex::new(HashMap::new()),
            }),
        };
        let records = mgr.inner.store.read(sessions::list).await?;
        let mut map = mgr.inner.sessions.lock().await;
        for rec in records {
            let start = autostart && rec.enabled;
            let handle = mgr.spawn(&rec.id, rec.state.clone(), start);
            map.insert(rec.id.clone(), handle);
        }
        drop(map);
        Ok(mgr)
    }

    /// Message counters since start.
    pub fn stats(&self) -> &EngineStats {
        &self.inner.stats
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn bus(&self) -> &Bus {
        &self.inner.bus
    }

    fn spawn(&self, id: &str, last: SessionState, start: bool) -> Handle {
        // After a restart the last recorded state is history until the client says more:
        // a failed session stays failed (with its reason) until started; anything else is
        // stopped until its task starts it.
        let initial = if last.is_failed() {
            last
        } else {
            SessionState::Stopped
        };
        let (state_tx, state) = watch::channel(initial);
        let (commands, rx) = mpsc::channel(16);
        let client: ClientSlot = Default::default();
        let defaults = Arc::new(self.inner.cfg.pacing.clone());
        let presence = Arc::new(super::presence::Keeper::new(
            id.into(),
            self.inner.store.clone(),
            defaults.clone(),
        ));
        let wake = Arc::new(Notify::new());
        let ctx = SessionCtx {
            wake: wake.clone(),
            id: id.into(),
            store: self.inner.store.clone(),
            bus: self.inner.bus.clone(),
            cfg: self.inner.cfg.clone(),
            state_tx,
            client: client.clone(),
            stats: self.inner.stats.clone(),
            media: self.inner.media.clone(),
            acks: Arc::default(),
            presence: presence.clone(),
        };
        let pace = Arc::new(PaceShared::default());
        let sender = Sender {
            defaults,
            pace: pace.clone(),
            id: id.into(),
            store: self.inner.store.clone(),
            bus: self.inner.bus.clone(),
            state: ctx.state_tx.subscribe(),
            client: client.clone(),
            wake: wake.clone(),
            stats: self.inner.stats.clone(),
            acks: ctx.acks.clone(),
            presence: presence.clone(),
        };
        let task = tokio::spawn(session::run(ctx, rx, start));
        let sender = tokio::spawn(sender.run());
        Handle {
            commands,
            state,
            client,
            task,
            wake,
            sender,
            pace,
            presence,
            checks: Arc::default(),
        }
    }

    /// Create a session; `start` starts it at once (it will show a QR code to scan).
    pub async fn create(&self, id: &str, start: bool) -> Result<SessionInfo, EngineError> {
        if !valid_session_id(id) {
            return Err(EngineError::InvalidId(id.to_string()));
        }
        let mut map = self.inner.sessions.lock().await;
        if map.contains_key(id) {
            return Err(EngineError::Exists(id.to_string()));
        }
        let mut rec = SessionRecord::new(id, now_ms());
        rec.enabled = start;
        let r = rec.clone();
        let inserted = self
            .inner
            .store
            .write(move |txn| sessions::insert(txn, &r))
            .await?;
        if !inserted {
            return Err(EngineError::Exists(id.to_string()));
        }
        let handle = self.spawn(id, SessionState::Stopped, start);
        let info = info_of(&rec, &handle);
        map.insert(id.to_string(), handle);
        Ok(info)
    }

    /// Every session, by id.
    pub async fn list(&self) -> Result<Vec<SessionInfo>, EngineError> {
        let records = self.inner.store.read(sessions::list).await?;
        let map = self.inner.sessions.lock().await;
        Ok(records
            .iter()
            .filter_map(|rec| map.get(&rec.id).map(|h| info_of(rec, h)))
            .collect())
    }

    pub async fn get(&self, id: &str) -> Result<SessionInfo, EngineError> {
        let key = id.to_string();
        let rec = self
            .inner
            .store
            .read(move |txn| sessions::get(txn, &key))
            .await?
            .ok_or_else(|| EngineError::NotFound(id.to_string()))?;
        let map = self.inner.sessions.lock().await;
        let handle = map
            .get(id)
            .ok_or_else(|| EngineError::NotFound(id.to_string()))?;
        Ok(info_of(&rec, handle))
    }

    /// The live state of a session, as a watch that changes with it.
    pub async fn watch(&self, id: &str) -> Result<watch::Receiver<SessionState>, EngineError> {
        let map = self.inner.sessions.lock().await;
        map.get(id)
            .map(|h| h.state.clone())
            .ok_or_else(|| EngineError::NotFound(id.to_string()))
    }

    /// The session's live client, while it has one.
    pub async fn client(&self, id: &str) -> Option<Arc<Client>> {
        let map = self.inner.sessions.lock().await;
        map.get(id)
            .and_then(|h| h.client.lock().ok().and_then(|c| c.clone()))
    }

    /// Tell the session's send worker that its queue has a new message.
    pub async fn wake(&self, id: &str) {
        let map = self.inner.sessions.lock().await;
        if let Some(h) = map.get(id) {
            h.wake.notify_one();
        }
    }

    /// The platform's pacing defaults (`[pacing]`).
    pub(crate) fn pacing_defaults(&self) -> super::pacing::Settings {
        self.inner.cfg.pacing.clone()
    }

    /// What call handling needs of session `id` (`super::calls`).
    pub(crate) async fn call_ctx(&self, id: &str) -> Result<super::calls::CallCtx, EngineError> {
        let map = self.inner.sessions.lock().await;
        let h = map
            .get(id)
            .ok_or_else(|| EngineError::NotFound(id.to_string()))?;
        Ok(super::calls::CallCtx {
            session: id.into(),
            store: self.inner.store.clone(),
            bus: self.inner.bus.clone(),
            defaults: Arc::new(self.inner.cfg.pacing.clone()),
            wake: h.wake.clone(),
        })
    }

    async fn commands(&self, id: &str) -> Result<mpsc::Sender<Command>, EngineError> {
        let map = self.inner.sessions.lock().await;
        map.get(id)
            .map(|h| h.commands.clone())
            .ok_or_else(|| EngineError::NotFound(id.to_string()))
    }

    async fn set_enabled(&self, id: &str, enabled: bool) -> Result<(), EngineError> {
        let key = id.to_string();
        let found = self
            .inner
            .store
            .write(move |txn| {
                let Some(mut rec) = sessions::get_in_write(txn, &key)? else {
                    return Ok(false);
                };
                if rec.enabled != enabled {
                    rec.enabled = enabled;
                    sessions::put(txn, &rec)?;
                }
                Ok(true)
            })
            .await?;
        if found {
            Ok(())
        } else {
            Err(EngineError::NotFound(id.to_string()))
        }
    }

    /// Mark a session to run, without starting it (the CLI with no daemon uses this).
    pub async fn enable(&self, id: &str) -> Result<(), EngineError> {
        self.set_enabled(id, true).await
    }

    /// Start a stopped or failed session (a failed one gets a fresh client). Starting a
    /// running session does nothing.
    pub async fn start(&self, id: &str) -> Result<SessionInfo, EngineError> {
        let tx = self.commands(id).await?;
        self.set_enabled(id, true).await?;
        let mut state = self.watch(id).await?;
        let was = state.borrow_and_update().clone();
        tx.send(Command::Start)
            .await
            .map_err(|_| EngineError::Closed)?;
        if startable(&was) {
            // Wait until the task has taken the command, so the answer shows it.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), state.changed()).await;
        }
        self.get(id).await
    }

    /// Stop a session; it stays stopped across restarts until started.
    pub async fn stop(&self, id: &str) -> Result<SessionInfo, EngineError> {
        let tx = self.commands(id).await?;
        self.set_enabled(id, false).await?;
        let (done, wait) = oneshot::channel();
        tx.send(Command::Stop(done))
            .await
            .map_err(|_| EngineError::Closed)?;
        wait.await.map_err(|_| EngineError::Closed)?;
        self.get(id).await
    }

    /// Unlink the device from the WhatsApp account and wipe the session's keys. The session
    /// stays (stopped); `start` pairs it again with a new QR code.
    pub async fn logout(&self, id: &str) -> Result<SessionInfo, EngineError> {
        let tx = self.commands(id).await?;
        self.set_enabled(id, false).await?;
        let (done, wait) = oneshot::channel();
        tx.send(Command::Logout(done))
            .await
            .map_err(|_| EngineError::Closed)?;
        wait.await.map_err(|_| EngineError::Closed)??;
        self.get(id).await
    }

    /// Ask for an 8-character code to link by phone number instead of scanning the QR.
    pub async fn pair_code(&self, id: &str, phone: &str) -> Result<String, EngineError> {
        let tx = self.commands(id).await?;
        let (reply, wait) = oneshot::channel();
        tx.send(Command::PairCode {
            phone: phone.to_string(),
            reply,
        })
        .await
        .map_err(|_| EngineError::Closed)?;
        wait.await.map_err(|_| EngineError::Closed)?
    }

    /// Accept a message into the session's durable queue (committed before this returns) and
    /// wake its send worker. `outgoing` is what `compose::parse` made of the request; `blob`
    /// its media bytes. A known `idempotency_key` returns the first message unchanged.
    pub async fn enqueue(
        &self,
        id: &str,
        kind: &str,
        outgoing: &super::compose::Outgoing,
        blob: Option<Vec<u8>>,
        idempotency_key: Option<String>,
    ) -> Result<queue::Enqueued, EngineError> {
        let state = self.watch(id).await?.borrow().clone();
        if let SessionState::Failed { reason, .. } = state {
            return Err(EngineError::SessionFailed {
                id: id.to_string(),
                reason: reason.as_str(),
            });
        }
        let content =
            serde_json::to_value(outgoing).map_err(|e| EngineError::Client(e.to_string()))?;
        let (settings, _, _) =
            sender::load_settings(&self.inner.store, &self.inner.cfg.pacing, id).await?;
        let hash = content_hash(&outgoing.content);
        let window_s = settings.duplicate_window_s;
        let now = now_ms();
        let (to_phone, to_lid) = self.known_addresses(id, outgoing.to.as_str()).await?;
        let new = queue::NewMessage {
            kind: kind.to_string(),
            to: outgoing.to.as_str().to_string(),
            content,
            blob,
            idempotency_key,
            now_ms: now,
            to_phone,
            to_lid,
        };
        let sid = id.to_string();
        let accepted = self
            .inner
            .store
            .write(move |txn| {
                if let Some(key) = &new.idempotency_key
                    && let Some(record) = queue::by_idempotency_key(txn, &sid, key)?
                {
                    return Ok(Ok(queue::Enqueued {
                        record,
                        replayed: true,
                    }));
                }
                let since = now.saturating_sub(pacing::duplicate_window_ms(&settings));
                let (verdict, recipients) =
                    pacing::duplicate_at(txn, &sid, &settings, &hash, &new.to, now)?;
                if verdict == pacing::Duplicate::Reject {
                    let mut distinct = recipients.clone();
                    distinct.sort_unstable();
                    distinct.dedup();
                    return Ok(Err(distinct.len()));
                }
                let to = new.to.clone();
                let mut done = queue::enqueue(txn, &sid, &new)?;
                if verdict == pacing::Duplicate::Hold {
                    done.record = queue::hold(
                        txn,
                        &sid,
                        &done.record.id,
                        "duplicate content: held by the duplicate guard",
                    )?;
                } else if settings.duplicate_action != pacing::DuplicateAction::Off {
                    store_pacing::log_content(txn, &sid, &hash, &to, now, &done.record.id)?;
                }
                store_pacing::forget_content(txn, &sid, since)?;
                Ok(Ok(done))
            })
            .await?;
        let done = accepted.map_err(|recipients| EngineError::Duplicate {
            recipients,
            window_s,
        })?;
        if !done.replayed {
            self.wake(id).await;
            super::sender::publish_depth(&self.inner.store, &self.inner.bus, id).await;
        }
        Ok(done)
    }

    /// Cancel a message that has not started sending.
    pub async fn cancel(&self, id: &str, msg: &str) -> Result<queue::Cancel, EngineError> {
        let (sid, m) = (id.to_string(), msg.to_string());
        let outcome = self
            .inner
            .store
            .write(move |t| queue::cancel(t, &sid, &m, now_ms()))
            .await?;
        if matches!(outcome, queue::Cancel::Cancelled(_)) {
            // The worker may be waiting out a rate limit for this very message: it plans again
            // for the next one instead of sleeping the cancelled message's wait.
            if let Some(h) = self.inner.sessions.lock().await.get(id) {
                h.pace.replan.notify_one();
            }
            super::sender::publish_depth(&self.inner.store, &self.inner.bus, id).await;
        }
        Ok(outcome)
    }

    /// A message of the session by wagate id.
    pub async fn message(&self, id: &str, msg: &str) -> Result<Option<MessageRecord>, EngineError> {
        let (sid, msg) = (id.to_string(), msg.to_string());
        Ok(self
            .inner
            .store
            .read(move |txn| queue::get(txn, &sid, &msg))
            .await?)
    }

    /// The groups the session's account is in (asked of WhatsApp each time).
    pub async fn groups(&self, id: &str) -> Result<Vec<super::groups::GroupSummary>, EngineError> {
        let connected = matches!(
            *self.watch(id).await?.borrow(),
            SessionState::Connected { .. }
        );
        let client = match (connected, self.client(id).await) {
            (true, Some(c)) => c,
            _ => return Err(EngineError::NotConnected(id.to_string())),
        };
        super::groups::list(&client).await
    }

    /// A person's phone-number JID and LID, as far as the session knows them (from the
    /// LID-PN pairs its client keeps): both for a JID of either kind, nothing for a group.
    async fn known_addresses(
        &self,
        id: &str,
        to: &str,
    ) -> Result<(Option<String>, Option<String>), EngineError> {
        let (sid, to) = (id.to_string(), to.to_string());
        Ok(self
            .inner
            .store
            .read(move |t| {
                Ok(if let Some(user) = to.strip_suffix("@s.whatsapp.net") {
                    let lid = wa_backend::identity_by_phone(t, &sid, user)?;
                    (Some(to.clone()), lid.map(|i| format!("{}@lid", i.lid)))
                } else if let Some(user) = to.strip_suffix("@lid") {
                    let pn = wa_backend::identity_by_lid(t, &sid, user)?;
                    (
                        pn.map(|i| format!("{}@s.whatsapp.net", i.phone)),
                        Some(to.clone()),
                    )
                } else {
                    (None, None)
                })
            })
            .await?)
    }

    /// The session's number-check turn.
    async fn check_turn(&self, id: &str) -> Result<Arc<Mutex<()>>, EngineError> {
        let map = self.inner.sessions.lock().await;
        map.get(id)
            .map(|h| h.checks.clone())
            .ok_or_else(|| EngineError::NotFound(id.to_string()))
    }

    /// The session's client while it is connected.
    pub(crate) async fn connected_client(
        &self,
        id: &str,
    ) -> Result<Option<Arc<Client>>, EngineError> {
        let connected = matches!(
            *self.watch(id).await?.borrow(),
            SessionState::Connected { .. }
        );
        Ok(match connected {
            true => self.client(id).await,
            false => None,
        })
    }

    /// Is `number` on WhatsApp: phone JID, LID, business, picture and about. From the cache,
    /// or asked within the session's check budget.
    pub async fn contact(&self, id: &str, number: &str) -> Result<ContactInfo, EngineError> {
        let client = self.connected_client(id).await?;
        let turn = self.check_turn(id).await?;
        let (settings, _, _) =
            sender::load_settings(&self.inner.store, &self.inner.cfg.pacing, id).await?;
        contacts::check_one(
            &self.inner.store,
            client.as_deref(),
            &turn,
            id,
            &settings,
            number,
            now_ms(),
        )
        .await
    }

    /// Up to [`contacts::MAX_BATCH`] numbers: what the cache and the budget allow now, the
    /// rest deferred.
    pub async fn check_contacts(
        &self,
        id: &str,
        numbers: &[String],
    ) -> Result<CheckOutcome, EngineError> {
        let client = self.connected_client(id).await?;
        let turn = self.check_turn(id).await?;
        let (settings, _, _) =
            sender::load_settings(&self.inner.store, &self.inner.cfg.pacing, id).await?;
        contacts::check_many(
            &self.inner.store,
            client.as_deref(),
            &turn,
            id,
            &settings,
            numbers,
            now_ms(),
        )
        .await
    }

    /// The session's own profile, as WhatsApp has it.
    pub async fn profile(&self, id: &str) -> Result<OwnProfile, EngineError> {
        let client = self
            .connected_client(id)
            .await?
            .ok_or_else(|| EngineError::NotConnected(id.to_string()))?;
        profile::read(&client).await
    }

    /// Change the session's push name, about text or picture; the profile after it. A new
    /// push name is kept for the session's next start, and the presence policy is put back
    /// (whatsapp-rust announces the name with a presence).
    pub async fn set_profile(
        &self,
        id: &str,
        change: ProfileChange,
    ) -> Result<OwnProfile, EngineError> {
        change.validate()?;
        let client = self
            .connected_client(id)
            .await?
            .ok_or_else(|| EngineError::NotConnected(id.to_string()))?;
        if let Some(name) = &change.push_name {
            profile::set_name(&client, name).await?;
            // The policy put back and the name kept at once, whatever the rest of the change
            // does: the name went out as a presence without a type (online).
            if let Some(h) = self.inner.sessions.lock().await.get(id) {
                h.presence.reassert();
            }
            let (sid, name) = (id.to_string(), name.clone());
            self.inner
                .store
                .write(move |t| sessions::set_push_name(t, &sid, Some(&name)))
                .await?;
        }
        profile::change_rest(&client, &change).await?;
        profile::read(&client).await
    }

    /// The phone number behind a LID (user part or `<digits>@lid`), as the session's client
    /// learned it (kept in the store: also while the session is stopped).
    pub async fn identity_by_lid(
        &self,
        id: &str,
        lid: &str,
    ) -> Result<Option<Identity>, EngineError> {
        self.get(id).await?;
        let user = lid.strip_suffix("@lid").unwrap_or(lid);
        if user.is_empty() || !user.bytes().all(|b| b.is_ascii_digit()) {
            return Err(EngineError::InvalidJid(lid.to_string()));
        }
        let (sid, user) = (id.to_string(), user.to_string());
        Ok(self
            .inner
            .store
            .read(move |t| wa_backend::identity_by_lid(t, &sid, &user))
            .await?)
    }

    /// The LID of a phone number, as the session's client learned it.
    pub async fn identity_by_phone(
        &self,
        id: &str,
        phone: &str,
    ) -> Result<Option<Identity>, EngineError> {
        self.get(id).await?;
        let number = contacts::number_of(phone)?;
        let sid = id.to_string();
        Ok(self
            .inner
            .store
            .read(move |t| wa_backend::identity_by_phone(t, &sid, &number))
            .await?)
    }

    /// A session's pacing: effective settings, its own overrides, the platform defaults and
    /// where it is on the warm-up curve.
    pub async fn settings(&self, id: &str) -> Result<SettingsInfo, EngineError> {
        self.get(id).await?;
        let (settings, overrides, paired_at) =
            sender::load_settings(&self.inner.store, &self.inner.cfg.pacing, id).await?;
        Ok(SettingsInfo {
            session: id.to_string(),
            warm_up: pacing::warm_up(&settings, paired_at, now_ms()),
            paired_at,
            settings,
            overrides,
            defaults: self.inner.cfg.pacing.clone(),
        })
    }

    /// Replace a session's overrides (an empty set follows the platform defaults). Refused
    /// with the field named unless the settings they make are valid. The send worker plans
    /// its next message again with them.
    pub async fn set_settings(
        &self,
        id: &str,
        overrides: Overrides,
    ) -> Result<SettingsInfo, EngineError> {
        self.get(id).await?;
        let effective = self.inner.cfg.pacing.with(&overrides);
        effective.validate()?;
        let json =
            serde_json::to_vec(&overrides).map_err(|e| EngineError::Client(e.to_string()))?;
        let sid = id.to_string();
        self.inner
            .store
            .write(move |t| {
                let empty = overrides == Overrides::default();
                store_pacing::set_overrides(t, &sid, (!empty).then_some(json.as_slice()))
            })
            .await?;
        if let Some(h) = self.inner.sessions.lock().await.get(id) {
            h.pace.replan.notify_one();
            h.presence.refresh();
            // Receipts follow the setting from the next message on.
            if let Some(client) = h.client.lock().ok().and_then(|c| c.clone()) {
                h.presence.receipts(&client, effective.active_receipts);
            }
        }
        self.settings(id).await
    }

    /// The session's queue: how long, what is held, when the next message goes and, when
    /// nothing goes, why.
    pub async fn queue(&self, id: &str) -> Result<QueueInfo, EngineError> {
        let info = self.get(id).await?;
        let (settings, _, paired_at) =
            sender::load_settings(&self.inner.store, &self.inner.cfg.pacing, id).await?;
        let now = now_ms();
        let sid = id.to_string();
        let (depth, held, next, sends) = self
            .inner
            .store
            .read(move |t| {
                Ok((
                    queue::depth(t, &sid)?,
                    queue::held(t, &sid, QUEUE_LIST_LIMIT)?,
                    queue::next(t, &sid)?,
                    store_pacing::sends_since(t, &sid, now - pacing::DAY_MS)?,
                ))
            })
            .await?;
        let plan = {
            let map = self.inner.sessions.lock().await;
            map.get(id).and_then(|h| h.pace.get())
        };
        let warm_up = pacing::warm_up(&settings, paired_at, now);
        let count = |w: i64| sends.iter().filter(|&&t| t > now - w).count();
        let sent = SentCounts {
            last_minute: count(pacing::MINUTE_MS),
            last_hour: count(pacing::HOUR_MS),
            last_day: count(pacing::DAY_MS),
        };
        // When the next message goes: the worker's own plan when it has one for the head of
        // the queue, else the policy's earliest slot plus the shortest delay.
        let (next_send_at, limit) = match (&next, &plan) {
            (None, _) => (None, None),
            (Some(head), Some(p)) if p.msg == head.id => (Some(p.at), p.limit),
            (Some(_), _) => {
                let slot = pacing::earliest(&settings, &sends, paired_at, now);
                let min = i64::try_from(settings.min_delay_ms).unwrap_or(i64::MAX);
                (Some(slot.at.saturating_add(min)), slot.limit)
            }
        };
        let paused = match &info.state {
            SessionState::Connected { .. } => limit.map(|l| Paused {
                reason: if l == Limit::WarmUp {
                    "warm_up"
                } else {
                    "rate_limit"
                },
                limit: Some(l),
                detail: None,
                until: next_send_at,
            }),
            SessionState::Failed { reason, until, .. } => Some(Paused {
                reason: match reason {
                    FailReason::Banned => "banned",
                    FailReason::LoggedOut => "logged_out",
                    _ => "failed",
                },
                limit: None,
                detail: Some(reason.as_str()),
                until: *until,
            }),
            SessionState::Stopped => Some(Paused {
                reason: "stopped",
                limit: None,
                detail: None,
                until: None,
            }),
            _ => Some(Paused {
                reason: "not_connected",
                limit: None,
                detail: Some(info.state.name()),
                until: None,
            }),
        };
        let connected = matches!(info.state, SessionState::Connected { .. });
        Ok(QueueInfo {
            session: id.to_string(),
            depth,
            held_count: held.len(),
            next_send_at: if connected { next_send_at } else { None },
            paused: if next.is_some() || !held.is_empty() || !connected {
                paused
            } else {
                None
            },
            held,
            sent,
            warm_up,
        })
    }

    /// Let a held message go: it is queued again in its place.
    pub async fn release(&self, id: &str, msg: &str) -> Result<MessageRecord, EngineError> {
        self.get(id).await?;
        let (sid, m) = (id.to_string(), msg.to_string());
        let outcome = self
            .inner
            .store
            .write(move |t| queue::release(t, &sid, &m))
            .await?;
        match outcome {
            queue::Release::Released(rec) => {
                self.wake(id).await;
                Ok(rec)
            }
            queue::Release::NotHeld(rec) => Err(EngineError::NotHeld {
                id: msg.to_string(),
                status: status_str(rec.status),
            }),
            queue::Release::NotFound => Err(EngineError::MessageNotFound(msg.to_string())),
        }
    }

    /// Send read receipts for received messages (`wa_ids` are WhatsApp's ids, `chat` and, in
    /// groups, `sender` as the `message.received` event named them).
    pub async fn mark_read(
        &self,
        id: &str,
        chat: &str,
        sender: Option<&str>,
        wa_ids: &[&str],
    ) -> Result<(), EngineError> {
        let client = self
            .client(id)
            .await
            .ok_or_else(|| EngineError::NotConnected(id.to_string()))?;
        let bad = |j: &str| EngineError::InvalidJid(j.to_string());
        let chat: whatsapp_rust::Jid = chat.parse().map_err(|_| bad(chat))?;
        let sender: Option<whatsapp_rust::Jid> = match sender {
            Some(s) => Some(s.parse().map_err(|_| bad(s))?),
            None => None,
        };
        client
            .mark_as_read(&chat, sender.as_ref(), wa_ids)
            .await
            .map_err(|e| EngineError::Client(e.to_string()))
    }

    /// A received message's record.
    pub async fn inbound(&self, id: &str, msg: &str) -> Result<Option<InboundRecord>, EngineError> {
        let (sid, msg) = (id.to_string(), msg.to_string());
        Ok(self
            .inner
            .store
            .read(move |txn| crate::store::inbound::get(txn, &sid, &msg))
            .await?)
    }

    /// The media of a received message as a file in the cache (downloaded and decrypted
    /// first when it is not there).
    pub async fn media(&self, id: &str, msg: &str) -> Result<MediaFile, MediaError> {
        let rec = self
            .inbound(id, msg)
            .await
            .map_err(|e| MediaError::Other(e.to_string()))?
            .ok_or(MediaError::NotFound)?;
        if rec.proto.is_none() {
            return Err(MediaError::NotFound);
        }
        if let Some(hit) = self.inner.media.cached(id, &rec).await {
            return Ok(hit);
        }
        let client = self
            .client(id)
            .await
            .ok_or_else(|| MediaError::NotConnected(id.to_string()))?;
        self.inner.media.fetch(&client, id, &rec).await
    }

    /// Mark a received message read: a read receipt to its sender, and no longer unread.
    pub async fn read_inbound(&self, id: &str, msg: &str) -> Result<Option<()>, EngineError> {
        let Some(rec) = self.inbound(id, msg).await? else {
            return Ok(None);
        };
        let group = rec.chat.ends_with("@g.us");
        self.mark_read(
            id,
            &rec.chat,
            group.then_some(rec.sender.as_str()),
            &[rec.wa_id.as_str()],
        )
        .await?;
        let (sid, chat, mid) = (id.to_string(), rec.chat.clone(), rec.id.clone());
        self.inner
            .store
            .write(move |t| {
                crate::store::inbound::mark_read(t, &sid, &chat, std::slice::from_ref(&mid))
            })
            .await?;
        Ok(Some(()))
    }

    /// Stop the session, then remove it and every key it had.
    pub async fn delete(&self, id: &str) -> Result<(), EngineError> {
        let mut map = self.inner.sessions.lock().await;
        let handle = map
            .remove(id)
            .ok_or_else(|| EngineError::NotFound(id.to_string()))?;
        let (done, wait) = oneshot::channel();
        if handle.commands.send(Command::Shutdown(done)).await.is_ok() {
            let _ = wait.await;
        }
        let _ = handle.task.await;
        let _ = handle.sender.await;
        let key = id.to_string();
        self.inner
            .store
            .write(move |txn| sessions::delete(txn, &key).map(|_| ()))
            .await?;
        self.inner.media.remove_session(id).await;
        tracing::info!(session = id, "session deleted");
        Ok(())
    }

    /// Stop every client (sessions stay enabled for the next boot) and wait for them.
    pub async fn shutdown(&self) {
        let mut map = self.inner.sessions.lock().await;
        let mut waits = Vec::new();
        for (_, handle) in map.drain() {
            let (done, wait) = oneshot::channel();
            if handle.commands.send(Command::Shutdown(done)).await.is_ok() {
                waits.push((wait, handle.task, handle.sender));
            }
        }
        drop(map);
        for (wait, task, sender) in waits {
            let _ = wait.await;
            let _ = task.await;
            let _ = sender.await;
        }
    }
}

fn info_of(rec: &SessionRecord, handle: &Handle) -> SessionInfo {
    SessionInfo {
        id: rec.id.clone(),
        state: handle.state.borrow().clone(),
        enabled: rec.enabled,
        phone: rec.phone.clone(),
        lid: rec.lid.clone(),
        created_at: rec.created_at,
    }
}

/// The most held messages a queue answer lists.
pub const QUEUE_LIST_LIMIT: usize = 100;

/// A session's pacing settings as the API shows them.
#[derive(Debug, Clone, Serialize)]
pub struct SettingsInfo {
    pub session: String,
    /// What the worker uses: the defaults with the overrides applied.
    pub settings: Settings,
    /// The session's own values.
    pub overrides: Overrides,
    /// The platform's (`[pacing]` in the config).
    pub defaults: Settings,
    /// When the session paired (unix ms), if known.
    pub paired_at: Option<i64>,
    pub warm_up: WarmUp,
}

/// Sends in the rate-limit windows up to now.
#[derive(Debug, Clone, Serialize)]
pub struct SentCounts {
    pub last_minute: usize,
    pub last_hour: usize,
    pub last_day: usize,
}

/// Why a queue is not moving.
#[derive(Debug, Clone, Serialize)]
pub struct Paused {
    /// `banned`, `logged_out`, `failed`, `stopped`, `not_connected`, `rate_limit`, `warm_up`.
    pub reason: &'static str,
    /// For `rate_limit` / `warm_up`: which limit.
    pub limit: Option<Limit>,
    /// The failure reason or the session state.
    pub detail: Option<&'static str>,
    /// When it may move again (unix ms), when known.
    pub until: Option<i64>,
}

/// A session's queue as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct QueueInfo {
    pub session: String,
    /// Messages waiting, held ones included.
    pub depth: u64,
    pub held_count: usize,
    /// The held messages, in queue order (at most [`QUEUE_LIST_LIMIT`]).
    #[serde(skip)]
    pub held: Vec<MessageRecord>,
    /// When the next message is expected to go (unix ms); null when nothing waits or the
    /// session is not connected.
    pub next_send_at: Option<i64>,
    /// Why nothing goes now, if something holds the queue.
    pub paused: Option<Paused>,
    pub sent: SentCounts,
    pub warm_up: WarmUp,
}

fn status_str(s: queue::MessageStatus) -> &'static str {
    use queue::MessageStatus as M;
    match s {
        M::Queued | M::Sending => "queued",
        M::Held => "held",
        M::Sent => "sent",
        M::Delivered => "delivered",
        M::Read => "read",
        M::Cancelled => "cancelled",
        M::Failed => "failed",
    }
}

/// What the duplicate guard compares: the message's content without its recipient.
fn content_hash(content: &super::compose::Content) -> String {
    use sha2::Digest;
    let bytes = serde_json::to_vec(content).unwrap_or_default();
    let digest = sha2::Sha256::digest(&bytes);
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}
