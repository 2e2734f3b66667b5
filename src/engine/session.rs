//! One session: a task that owns the session's whatsapp-rust client.
//!
//! The task builds a fresh client on every start (on the session's redb namespace), turns the
//! library's events into [`SessionState`] changes, and obeys [`Command`]s. whatsapp-rust keeps
//! its own reconnect loop (Fibonacci backoff, 1 s up to 15 min, as WhatsApp Web does); the
//! library raises no event for a connect attempt that fails before a connection exists, so
//! while the session is not connected the task reads the client's reconnect counter on a
//! slowly growing timer (1 s doubling to 30 s) and shows it as `disconnected { attempts }`.
//!
//! The state also follows a connection that dies without an event. whatsapp-rust reports a
//! `Disconnected` event only for what it calls an unexpected disconnect; when its keepalive
//! finds a dead socket it reconnects as it does after a 515 ("expected"), silently. So while
//! connected the task looks at the link every [`LINK_CHECK`]: a client no longer logged in is
//! `disconnected`; and a link silent for [`PROBE_AFTER`] gets a ping of wagate's own (a
//! keepalive IQ, as the library sends) that must be answered within [`PROBE_TIMEOUT`], or
//! the session is `disconnected` (`no_answer`) and the client reconnects at once. A dead link
//! is seen within about 45 s of its last word, whatever the library's keepalive timing. The
//! session is `connected` again on the library's next `Connected` event.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use whatsapp_rust::Client;
use whatsapp_rust::bot::{Bot, BotHandle};
use whatsapp_rust::pair_code::PairCodeOptions;
use whatsapp_rust::transport::TokioWebSocketTransportFactory;
use whatsapp_rust::types::events::{Event as WaEvent, EventHandler, EventInterest, EventKind};
use whatsapp_rust::wacore::iq::keepalive::KeepaliveSpec;

use super::inbound;
use super::sender::AckWaiters;
use super::wire::GatedTransportFactory;
use super::{EngineConfig, EngineError, EngineStats, normalize_phone};
use crate::events::{
    Bus, DisconnectReason, Event, EventKind as DomainKind, FailReason, Notice, SessionState, now_ms,
};
use crate::store::queue::{self, MessageStatus};
use crate::store::{RedbBackend, Store, outbox, sessions, wa_backend};

/// What a session that met a passkey request says (API, events, dashboard).
pub const PASSKEY_HELP: &str = "WhatsApp asked for this account's passkey before linking the device, and \
     wagate cannot hold a passkey. On the phone, remove the account's passkey (WhatsApp > \
     Settings > Account > Passkeys), link the device again, then add the passkey back if you \
     like.";

/// What a session task is asked to do.
pub(crate) enum Command {
    Start,
    Stop(oneshot::Sender<()>),
    /// Unlink the device: log out on WhatsApp when connected, wipe the keys, stop.
    Logout(oneshot::Sender<Result<(), EngineError>>),
    PairCode {
        phone: String,
        reply: oneshot::Sender<Result<String, EngineError>>,
    },
    /// Stop the client for a daemon shutdown (the session stays enabled).
    Shutdown(oneshot::Sender<()>),
}

/// The live client of a session, readable from outside the task.
pub(crate) type ClientSlot = Arc<Mutex<Option<Arc<Client>>>>;

/// Everything a session task needs.
pub(crate) struct SessionCtx {
    pub id: Arc<str>,
    pub store: Store,
    pub bus: Bus,
    pub cfg: Arc<EngineConfig>,
    pub state_tx: watch::Sender<SessionState>,
    pub client: ClientSlot,
    pub stats: Arc<EngineStats>,
    pub media: Arc<super::media::MediaCache>,
    /// The send worker's outstanding server acknowledgements.
    pub acks: Arc<AckWaiters>,
    /// The session's presence policy, shared with the send worker.
    pub presence: Arc<super::presence::Keeper>,
    /// Wakes the send worker (a call's reply was queued).
    pub wake: Arc<tokio::sync::Notify>,
}

/// Forwards the client's events, in dispatch order, to the session task; the server's
/// acknowledgements of sent messages go straight to the send worker waiting for them.
struct Forward(mpsc::UnboundedSender<Arc<WaEvent>>, Arc<AckWaiters>);

impl EventHandler for Forward {
    fn handle_event(&self, event: Arc<WaEvent>) {
        if let WaEvent::ServerAck(ack) = &*event {
            if ack.class.as_deref().is_none_or(|c| c == "message") {
                self.1.answer(&ack.id, ack.error.clone());
            }
            return;
        }
        let _ = self.0.send(event);
    }

    fn interest(&self) -> EventInterest {
        EventInterest::of(&[
            EventKind::Connected,
            EventKind::Disconnected,
            EventKind::PairSuccess,
            EventKind::PairError,
            EventKind::LoggedOut,
            EventKind::PairingQrCode,
            EventKind::PairingCode,
            EventKind::PairingCodeError,
            EventKind::PairingQrCodesExhausted,
            EventKind::PairPasskeyRequest,
            EventKind::PairPasskeyError,
            EventKind::ClientOutdated,
            EventKind::StreamReplaced,
            EventKind::TemporaryBan,
            EventKind::ConnectFailure,
            EventKind::Messages,
            EventKind::Receipt,
            EventKind::ServerAck,
            EventKind::SelfPushNameUpdated,
            EventKind::IncomingCall,
            EventKind::MissedCall,
            EventKind::GroupUpdate,
        ])
    }
}

/// A started client.
struct Running {
    client: Arc<Client>,
    /// The client's storage; retired when the client is halted.
    backend: RedbBackend,
    handle: BotHandle,
    events: mpsc::UnboundedReceiver<Arc<WaEvent>>,
    /// Asks senders again for messages a crash left decrypted but never kept
    /// ([`super::recover`]); aborted with the client.
    _recover: Option<AbortOnDrop>,
    /// Keeps the presence policy while the client runs.
    _presence: AbortOnDrop,
    /// A pair-code flow is outstanding: QR exhaustion does not end the attempt.
    pair_pending: bool,
    /// The user asked for a logout: the `LoggedOut` that follows ends in `stopped`.
    user_logout: bool,
    /// The client's reconnect counter when the session last connected: reconnect attempts
    /// since the link was lost count from it.
    reconnects_base: u64,
    /// The session has been connected since this client started.
    ever_connected: bool,
    /// When the link last carried something from WhatsApp, as last seen while it was up (the
    /// client's own figure may be reset by a reconnect by the time the loss is noticed).
    last_heard_ms: u64,
    /// wagate's own ping on a silent link. Never aborted: a probe that found the link dead
    /// is dropping the connection, and must finish that.
    probe: Option<tokio::task::JoinHandle<()>>,
    /// Where a probe that found the link dead says so.
    dead_tx: mpsc::UnboundedSender<Dead>,
    dead_rx: mpsc::UnboundedReceiver<Dead>,
}

/// A probe found the link dead: nothing came back for `silent_ms`.
struct Dead {
    silent_ms: u64,
}

impl Running {
    /// Reconnect attempts since the link was lost (or since the client started, before it
    /// ever connected).
    fn attempts(&self) -> u32 {
        let stats = self.client.stats();
        let since_lost = stats.reconnects.saturating_sub(self.reconnects_base);
        stats
            .reconnect_errors
            .max(u32::try_from(since_lost).unwrap_or(u32::MAX))
    }
}

fn silent_since(last_received_ms: u64) -> Option<u64> {
    if last_received_ms == 0 {
        return None;
    }
    u64::try_from(now_ms())
        .ok()
        .map(|now| now.saturating_sub(last_received_ms))
}

/// A task that ends when its owner is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What an event asks of the task.
enum After {
    Continue,
    /// Stop the client and enter this state (keys wiped first when `wipe`).
    End {
        state: SessionState,
        wipe: bool,
    },
}

const POLL_MIN: Duration = Duration::from_secs(1);
const POLL_MAX: Duration = Duration::from_secs(30);

/// How often a connected session looks at its link.
pub(crate) const LINK_CHECK: Duration = Duration::from_secs(5);
/// How long the link may be silent before wagate pings (the library pings an idle link too,
/// but only on its own 15-30 s ticks, and may skip a tick).
pub(crate) const PROBE_AFTER: Duration = Duration::from_secs(20);
/// How long a ping may go unanswered: the library's own keepalive deadline.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

impl SessionCtx {
    fn call_ctx(&self) -> super::calls::CallCtx {
        super::calls::CallCtx {
            session: self.id.clone(),
            store: self.store.clone(),
            bus: self.bus.clone(),
            defaults: Arc::new(self.cfg.pacing.clone()),
            wake: self.wake.clone(),
        }
    }

    fn state(&self) -> SessionState {
        self.state_tx.borrow().clone()
    }

    /// Record a new state: the store first, with the domain event the change is (if it is
    /// one) written to the webhook outbox in the same transaction; then the bus. A store
    /// failure is logged; the store then reports itself failed and the daemon restarts.
    async fn set_state(
        &self,
        state: SessionState,
        account: Option<(Option<String>, Option<String>)>,
    ) {
        let prev = self.state();
        if prev == state && account.is_none() {
            return;
        }
        let known = account.clone().unwrap_or_else(|| self.account());
        let event = domain_event(&prev, &state, known).map(|kind| Event::new(&self.id, kind));
        let id = self.id.clone();
        let st = state.clone();
        let res = self
            .store
            .write(move |txn| {
                let Some(mut rec) = sessions::get_in_write(txn, &id)? else {
                    return Ok(None);
                };
                rec.state = st.clone();
                if let Some((phone, lid)) = account.clone() {
                    rec.phone = phone;
                    rec.lid = lid;
                }
                sessions::put(txn, &rec)?;
                match &event {
                    Some(e) => outbox::record(txn, e.clone()),
                    None => Ok(None),
                }
            })
            .await;
        let event = match res {
            Ok(event) => event,
            Err(e) => {
                tracing::error!(session = %self.id, error = %e, "could not record session state");
                None
            }
        };
        self.state_tx.send_replace(state.clone());
        if prev.name() != state.name() {
            tracing::info!(session = %self.id, from = prev.name(), to = state.name(), "session state");
        }
        self.bus.publish(Notice::State {
            session: self.id.to_string(),
            state,
        });
        if let Some(e) = event {
            self.bus.publish(Notice::Event(e));
        }
    }

    fn account(&self) -> (Option<String>, Option<String>) {
        match self.client.lock() {
            Ok(slot) => slot
                .as_ref()
                .map(|c| {
                    (
                        c.pn().map(|j| j.to_string()),
                        c.lid().map(|j| j.to_string()),
                    )
                })
                .unwrap_or_default(),
            Err(_) => (None, None),
        }
    }

    fn set_client(&self, client: Option<Arc<Client>>) {
        if let Ok(mut slot) = self.client.lock() {
            *slot = client;
        }
    }

    /// Build a fresh client on the session's namespace and start it.
    async fn launch(&self) -> Option<Running> {
        self.set_state(SessionState::Connecting, None).await;
        let (tx, events) = mpsc::unbounded_channel();
        let (a, b, c) = self.cfg.version;
        let backend = self.store.backend(&self.id);
        // The account's own name once known (set through the API or learned from WhatsApp);
        // the configured default until then. whatsapp-rust sends it with every presence.
        // Sessions paired before wagate kept the name have it only in the client's device
        // record (whatsapp-rust's builder overwrites that with what it is given).
        let sid = self.id.clone();
        let recorded = match self.store.read(move |t| sessions::get(t, &sid)).await {
            Ok(rec) => rec.and_then(|r| r.push_name),
            Err(e) => {
                tracing::warn!(session = %self.id, error = %e, "cannot read the session's push name");
                None
            }
        };
        let push_name = match recorded {
            Some(name) => name,
            None => {
                use whatsapp_rust::wacore::store::traits::DeviceStore as _;
                match backend.load().await {
                    Ok(Some(d)) if d.pn.is_some() && !d.push_name.is_empty() => d.push_name,
                    _ => self.cfg.push_name.clone(),
                }
            }
        };
        let bot = Bot::builder()
            .with_backend(backend.clone())
            .with_transport_factory(GatedTransportFactory::new(
                TokioWebSocketTransportFactory::new().with_url(&self.cfg.ws_url),
                backend.wire_gate(),
            ))
            .with_http_client(media_client(self.cfg.trust_ca_pem.as_deref()))
            .with_version((a, b, c))
            .with_push_name(push_name)
            .skip_history_sync()
            .with_inbound_durability_hook(inbound::Durable {
                session: self.id.clone(),
                store: self.store.clone(),
                bus: self.bus.clone(),
                stats: self.stats.clone(),
                media: self.media.clone(),
            })
            .with_event_handler(Forward(tx, self.acks.clone()))
            .build()
            .await;
        let bot = match bot {
            Ok(bot) => bot,
            Err(e) => {
                tracing::error!(session = %self.id, error = %e, "could not build the client");
                let state = SessionState::Failed {
                    reason: FailReason::Storage,
                    until: None,
                    message: Some(e.to_string()),
                };
                self.set_state(state, None).await;
                return None;
            }
        };
        let client = bot.client();
        self.set_client(Some(client.clone()));
        let reconnects_base = client.stats().reconnects;
        let handle = bot.spawn();
        let recover = backend.take_unrecovered().map(|lost| {
            AbortOnDrop(tokio::spawn(super::recover::run(
                self.id.clone(),
                client.clone(),
                lost,
                self.stats.clone(),
            )))
        });
        let (dead_tx, dead_rx) = mpsc::unbounded_channel();
        let presence = AbortOnDrop(tokio::spawn(self.presence.clone().run(client.clone())));
        Some(Running {
            client,
            backend,
            handle,
            events,
            _recover: recover,
            _presence: presence,
            pair_pending: false,
            user_logout: false,
            reconnects_base,
            ever_connected: false,
            last_heard_ms: 0,
            probe: None,
            dead_tx,
            dead_rx,
        })
    }

    /// Stop a running client gracefully, wait for its run loop to end, and retire its
    /// storage so none of its lingering tasks writes to the session's keys again.
    async fn halt(&self, running: Running) {
        running.handle.shutdown().await;
        running.backend.retire();
        self.set_client(None);
    }

    async fn wipe_keys(&self) {
        let id = self.id.clone();
        let res = self
            .store
            .write(move |txn| {
                wa_backend::delete_session_keys(txn, &id)?;
                sessions::set_push_name(txn, &id, None)
            })
            .await;
        match res {
            Ok(()) => tracing::info!(session = %self.id, "session keys wiped"),
            Err(e) => tracing::error!(session = %self.id, error = %e, "could not wipe keys"),
        }
    }

    /// Apply one client event.
    async fn on_event(&self, running: &mut Running, event: &WaEvent) -> After {
        match event {
            WaEvent::PairingQrCode(q) => {
                let pair_code = match self.state() {
                    SessionState::Qr { pair_code, .. } => pair_code,
                    _ => None,
                };
                let state = SessionState::Qr {
                    code: q.code.clone(),
                    expires_at: now_ms() + q.timeout.as_millis() as i64,
                    pair_code,
                };
                self.set_state(state, None).await;
            }
            WaEvent::PairingCode(p) => {
                running.pair_pending = true;
                let (code, expires_at) = match self.state() {
                    SessionState::Qr {
                        code, expires_at, ..
                    } => (code, expires_at),
                    _ => (String::new(), now_ms() + p.timeout.as_millis() as i64),
                };
                let state = SessionState::Qr {
                    code,
                    expires_at,
                    pair_code: Some(p.code.clone()),
                };
                self.set_state(state, None).await;
            }
            WaEvent::PairingCodeError(e) => {
                running.pair_pending = false;
                tracing::warn!(session = %self.id, error = %e.error, "pair code failed");
            }
            WaEvent::PairSuccess(p) => {
                tracing::info!(session = %self.id, phone = %p.id, "paired");
                let account = Some((
                    Some(p.id.to_non_ad().to_string()),
                    Some(p.lid.to_non_ad().to_string()),
                ));
                self.set_state(SessionState::Connecting, account).await;
                // Warm-up counts its days from here.
                let id = self.id.clone();
                let at = now_ms();
                if let Err(e) = self
                    .store
                    .write(move |txn| sessions::set_paired_at(txn, &id, at))
                    .await
                {
                    tracing::error!(session = %self.id, error = %e, "could not record the pairing time");
                }
            }
            WaEvent::PairError(p) => {
                return After::End {
                    state: failed(FailReason::PairFailed, None, Some(p.error.clone())),
                    wipe: true,
                };
            }
            // The request's options could not be read or fetched: the same dead end.
            WaEvent::PairPasskeyError(e) if !e.continuation => {
                tracing::warn!(session = %self.id, error = %e.error, "passkey request failed; pairing cannot finish");
                return After::End {
                    state: failed(FailReason::PasskeyRequired, None, Some(PASSKEY_HELP.into())),
                    wipe: true,
                };
            }
            WaEvent::PairPasskeyRequest(_) => {
                // The phone scanned the code, but WhatsApp wants an assertion from the
                // account's passkey before it links the device. wagate holds none; waiting
                // would only leave the session showing codes nobody can use.
                tracing::warn!(session = %self.id, "WhatsApp asked for the account's passkey; pairing cannot finish");
                return After::End {
                    state: failed(FailReason::PasskeyRequired, None, Some(PASSKEY_HELP.into())),
                    wipe: true,
                };
            }
            WaEvent::PairingQrCodesExhausted(_) if !running.pair_pending => {
                return After::End {
                    state: failed(
                        FailReason::QrExhausted,
                        None,
                        Some("no QR code was scanned in time; start the session again".into()),
                    ),
                    wipe: false,
                };
            }
            WaEvent::Connected(_) => {
                if matches!(self.state(), SessionState::Connected { .. }) {
                    // Connected again without a loss seen in between: the client lost the
                    // link and reconnected between two looks (whatsapp-rust reconnects after
                    // a dead socket without an event). Say both.
                    let attempts = running.attempts().max(1);
                    self.link_gone(running.last_heard_ms, attempts).await;
                }
                running.pair_pending = false;
                running.ever_connected = true;
                running.reconnects_base = running.client.stats().reconnects;
                let account = (
                    running.client.pn().map(|j| j.to_non_ad().to_string()),
                    running.client.lid().map(|j| j.to_non_ad().to_string()),
                );
                self.set_state(SessionState::Connected { since: now_ms() }, Some(account))
                    .await;
                self.presence.connected();
            }
            WaEvent::Disconnected(d) => {
                tracing::info!(session = %self.id, reason = %d.reason, "disconnected");
                let since = match self.state() {
                    SessionState::Disconnected { since, .. } => since,
                    _ => now_ms(),
                };
                self.set_state(
                    SessionState::Disconnected {
                        since,
                        attempts: running.attempts().max(1),
                        reason: DisconnectReason::ConnectionLost,
                        message: Some(d.reason.to_string()),
                    },
                    None,
                )
                .await;
            }
            WaEvent::LoggedOut(l) => {
                let state = if running.user_logout {
                    SessionState::Stopped
                } else {
                    failed(
                        FailReason::LoggedOut,
                        None,
                        Some(format!("logged out by WhatsApp ({:?})", l.reason)),
                    )
                };
                return After::End { state, wipe: true };
            }
            WaEvent::TemporaryBan(b) => {
                let until = now_ms() + b.expire.num_milliseconds();
                let message = b
                    .message
                    .clone()
                    .unwrap_or_else(|| format!("temporarily banned ({:?})", b.code));
                return After::End {
                    state: failed(FailReason::Banned, Some(until), Some(message)),
                    wipe: false,
                };
            }
            WaEvent::ClientOutdated(_) => {
                return After::End {
                    state: failed(
                        FailReason::ClientOutdated,
                        None,
                        Some("WhatsApp refused this client version; set whatsapp.version".into()),
                    ),
                    wipe: false,
                };
            }
            WaEvent::StreamReplaced(_) => {
                return After::End {
                    state: failed(
                        FailReason::Replaced,
                        None,
                        Some("another connection with these credentials replaced this one".into()),
                    ),
                    wipe: false,
                };
            }
            WaEvent::SelfPushNameUpdated(u) => {
                self.presence.reassert_later();
                let (sid, name) = (self.id.clone(), u.new_name.clone());
                if let Err(e) = self
                    .store
                    .write(move |t| sessions::set_push_name(t, &sid, Some(&name)))
                    .await
                {
                    tracing::error!(session = %self.id, error = %e, "cannot record the push name");
                }
            }
            WaEvent::IncomingCall(call) => {
                super::calls::incoming(&self.call_ctx(), &running.client, call).await;
            }
            WaEvent::MissedCall(m) => {
                super::calls::missed(&self.call_ctx(), &running.client, m).await;
            }
            WaEvent::GroupUpdate(u) => {
                super::groups::on_update(&self.store, &self.bus, &self.id, &running.client, u)
                    .await;
            }
            WaEvent::ConnectFailure(f) => {
                tracing::warn!(session = %self.id, reason = ?f.reason, message = ?f.message, "connect failure");
            }
            WaEvent::Receipt(r) => {
                use whatsapp_rust::types::presence::ReceiptType;
                let status = match r.r#type {
                    // A recipient that has not announced presence acknowledges delivery
                    // as `inactive`.
                    ReceiptType::Delivered | ReceiptType::Inactive => MessageStatus::Delivered,
                    ReceiptType::Read | ReceiptType::Played => MessageStatus::Read,
                    _ => return After::Continue,
                };
                let at = r.timestamp.timestamp_millis();
                for wa_id in &r.message_ids {
                    let (sid, wa_id) = (self.id.clone(), wa_id.to_string());
                    let res = self
                        .store
                        .write(move |t| {
                            let r = queue::apply_receipt(t, &sid, &wa_id, status, at)?;
                            // The send was never recorded (a crash came between it and its
                            // record): record it now, before the receipt.
                            let sent = match r.sent {
                                Some(rec) => {
                                    crate::store::pacing::log_send(t, &sid, at)?;
                                    let kind = DomainKind::MessageSent(rec.update());
                                    outbox::record(t, Event::new(&sid, kind))?
                                }
                                None => None,
                            };
                            let Some(rec) = r.advanced else {
                                return Ok((sent, None));
                            };
                            let update = rec.update();
                            let kind = if status == MessageStatus::Read {
                                DomainKind::MessageRead(update)
                            } else {
                                DomainKind::MessageDelivered(update)
                            };
                            Ok((sent, outbox::record(t, Event::new(&sid, kind))?))
                        })
                        .await;
                    match res {
                        Ok((sent, advanced)) => {
                            if let Some(event) = sent {
                                EngineStats::bump(&self.stats.sent);
                                self.bus.publish(Notice::Event(event));
                            }
                            if let Some(event) = advanced {
                                if status == MessageStatus::Read {
                                    EngineStats::bump(&self.stats.read);
                                } else {
                                    EngineStats::bump(&self.stats.delivered);
                                }
                                self.bus.publish(Notice::Event(event));
                            }
                        }
                        Err(e) => {
                            tracing::error!(session = %self.id, error = %e, "cannot record a receipt")
                        }
                    }
                }
            }
            WaEvent::Messages(batch) if !batch.hook_committed => {
                // The durability hook wrote the others before their ack; these the library
                // hands over without it (newsletters, placeholder recoveries).
                inbound::record_missing(
                    &self.id,
                    &running.client,
                    &self.store,
                    &self.bus,
                    &self.stats,
                    &self.media,
                    &batch.messages,
                )
                .await;
            }
            _ => {}
        }
        After::Continue
    }

    /// While not connected, show the library's reconnect counter.
    async fn poll(&self, running: &Running) {
        if running.client.is_connected() {
            return;
        }
        let attempts = running.attempts();
        if attempts == 0 {
            return;
        }
        let (since, reason, message) = match self.state() {
            SessionState::Disconnected { attempts: a, .. } if a == attempts => return,
            SessionState::Disconnected {
                since,
                reason,
                message,
                ..
            } => (since, reason, message),
            _ if !running.ever_connected => (now_ms(), DisconnectReason::ConnectFailed, None),
            _ => (now_ms(), DisconnectReason::ConnectionLost, None),
        };
        self.set_state(
            SessionState::Disconnected {
                since,
                attempts,
                reason,
                message,
            },
            None,
        )
        .await;
    }

    /// While connected: is the link still there? A client that is no longer logged in lost
    /// it without an event (whatsapp-rust reconnects after a dead socket as after a 515);
    /// a link silent for [`PROBE_AFTER`] gets a ping.
    async fn check_link(&self, running: &mut Running) {
        let heard = running.client.stats().last_data_received_ms;
        if !running.client.is_logged_in() {
            let attempts = running.attempts();
            self.link_gone(heard.max(running.last_heard_ms), attempts)
                .await;
            return;
        }
        running.last_heard_ms = running.last_heard_ms.max(heard);
        let silent = silent_since(heard);
        let probing = running.probe.as_ref().is_some_and(|p| !p.is_finished());
        if probing || silent.is_none_or(|ms| ms < PROBE_AFTER.as_millis() as u64) {
            return;
        }
        tracing::debug!(session = %self.id, silent_ms = ?silent, "the link is silent; pinging");
        running.probe = Some(tokio::spawn(probe(
            self.id.clone(),
            running.client.clone(),
            running.dead_tx.clone(),
        )));
    }

    /// The link went without an event from the library (`heard_ms`: when it last carried
    /// something): `no_answer` if WhatsApp had been silent for a ping's deadline by now,
    /// else `connection_lost`.
    async fn link_gone(&self, heard_ms: u64, attempts: u32) {
        let silent = silent_since(heard_ms);
        let (reason, message) =
            match silent.is_some_and(|ms| ms >= PROBE_TIMEOUT.as_millis() as u64) {
                true => (
                    DisconnectReason::NoAnswer,
                    "WhatsApp stopped answering; reconnecting",
                ),
                false => (
                    DisconnectReason::ConnectionLost,
                    "the connection ended; reconnecting",
                ),
            };
        tracing::warn!(session = %self.id, reason = reason.as_str(), silent_ms = ?silent, "the link was lost");
        self.set_state(
            SessionState::Disconnected {
                since: now_ms(),
                attempts,
                reason,
                message: Some(message.into()),
            },
            None,
        )
        .await;
    }

    /// A probe found the link dead: say so; the probe has asked the client to reconnect.
    async fn on_dead(&self, running: &Running, dead: Dead) {
        if !matches!(self.state(), SessionState::Connected { .. }) {
            return;
        }
        self.set_state(
            SessionState::Disconnected {
                since: now_ms(),
                attempts: running.attempts(),
                reason: DisconnectReason::NoAnswer,
                message: Some(format!(
                    "WhatsApp did not answer for {} s; reconnecting",
                    dead.silent_ms / 1000
                )),
            },
            None,
        )
        .await;
    }
}

/// Ping WhatsApp on a silent link. Unanswered within [`PROBE_TIMEOUT`], with nothing else
/// received meanwhile and the same connection still up, the link is dead: tell the session
/// task, then drop the connection so the client reconnects now (what the library's own
/// dead-socket watchdog does, sooner).
async fn probe(session: Arc<str>, client: Arc<Client>, dead: mpsc::UnboundedSender<Dead>) {
    let before = client.stats();
    let answer = client
        .execute(KeepaliveSpec::with_timeout(PROBE_TIMEOUT))
        .await;
    let Err(e) = answer else { return };
    let after = client.stats();
    let same_link = client.is_logged_in() && after.reconnects == before.reconnects;
    if !same_link || after.last_data_received_ms != before.last_data_received_ms {
        tracing::debug!(session = %session, error = %e, "a ping failed on a link that moved on");
        return;
    }
    let silent_ms = silent_since(after.last_data_received_ms).unwrap_or_default();
    tracing::warn!(session = %session, error = %e, silent_ms, "WhatsApp does not answer; reconnecting");
    let _ = dead.send(Dead { silent_ms });
    client.reconnect_immediately().await;
}

/// The HTTP client whatsapp-rust uses for media. A `trust-wa-mock` build given a certificate
/// trusts that one (wa-mock's media host) instead of the public roots; a release build never
/// takes one.
fn media_client(extra_pem: Option<&[u8]>) -> whatsapp_rust::http::UreqHttpClient {
    #[cfg(feature = "trust-wa-mock")]
    if let Some(pem) = extra_pem {
        use ureq::tls::{Certificate, RootCerts, TlsConfig};
        match Certificate::from_pem(pem) {
            Ok(cert) => {
                // The demo and the tests talk to wa-mock alone: its certificate is the root.
                let tls = TlsConfig::builder()
                    .root_certs(RootCerts::new_with_certs(&[cert.to_owned()]))
                    .build();
                let agent: ureq::Agent =
                    ureq::Agent::config_builder().tls_config(tls).build().into();
                return whatsapp_rust::http::UreqHttpClient::with_agent(agent);
            }
            Err(e) => {
                tracing::error!(error = %e, "whatsapp.trust_ca_file is not a PEM certificate")
            }
        }
    }
    #[cfg(not(feature = "trust-wa-mock"))]
    let _ = extra_pem;
    whatsapp_rust::http::UreqHttpClient::new()
}

fn failed(reason: FailReason, until: Option<i64>, message: Option<String>) -> SessionState {
    SessionState::Failed {
        reason,
        until,
        message,
    }
}

/// The webhook-worthy event a state change is, if any.
fn domain_event(
    prev: &SessionState,
    next: &SessionState,
    account: (Option<String>, Option<String>),
) -> Option<DomainKind> {
    match next {
        SessionState::Connected { .. } if !matches!(prev, SessionState::Connected { .. }) => {
            Some(DomainKind::SessionConnected {
                phone: account.0,
                lid: account.1,
            })
        }
        SessionState::Disconnected {
            attempts,
            reason,
            message,
            ..
        } if !matches!(prev, SessionState::Disconnected { .. }) => {
            Some(DomainKind::SessionDisconnected {
                attempts: *attempts,
                reason: *reason,
                message: message.clone(),
            })
        }
        SessionState::Qr {
            code, expires_at, ..
        } if !code.is_empty() && !matches!(prev, SessionState::Qr { code: c, .. } if c == code) => {
            Some(DomainKind::SessionQr {
                code: code.clone(),
                expires_at: *expires_at,
            })
        }
        SessionState::Failed {
            reason,
            until,
            message,
        } => Some(DomainKind::SessionFailed {
            reason: *reason,
            until: *until,
            message: message.clone(),
        }),
        _ => None,
    }
}

/// What woke the session task up from its client.
enum Wake {
    Event(Arc<WaEvent>),
    /// wagate's ping found the link dead.
    Dead(Dead),
    /// The client's run loop ended.
    Finished,
}

async fn wake(running: &mut Option<Running>) -> Wake {
    let Some(r) = running else {
        return std::future::pending().await;
    };
    tokio::select! {
        biased;
        ev = r.events.recv() => match ev {
            Some(ev) => Wake::Event(ev),
            None => Wake::Finished,
        },
        Some(dead) = r.dead_rx.recv() => Wake::Dead(dead),
        _ = &mut r.handle => Wake::Finished,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The session task. Runs until its command channel closes or a shutdown command.
pub(crate) async fn run(ctx: SessionCtx, mut commands: mpsc::Receiver<Command>, start: bool) {
    let mut running: Option<Running> = None;
    if start {
        running = ctx.launch().await;
    }
    let mut poll_every = POLL_MIN;
    let mut next_poll: Option<Instant> = None;
    // A temporary ban ends by itself: start again when it does.
    let mut restart_at: Option<Instant> = None;
    loop {
        // The reconnect counter matters while the client exists and is not connected; the
        // link, while it is.
        let state = ctx.state();
        let connected = matches!(state, SessionState::Connected { .. });
        let waiting = matches!(
            state,
            SessionState::Connecting | SessionState::Disconnected { .. }
        );
        if running.is_some() && connected {
            poll_every = POLL_MIN;
            next_poll.get_or_insert_with(|| Instant::now() + LINK_CHECK);
        } else if running.is_some() && waiting {
            next_poll.get_or_insert_with(|| Instant::now() + poll_every);
        } else {
            next_poll = None;
            poll_every = POLL_MIN;
        }
        tokio::select! {
            cmd = commands.recv() => {
                let Some(cmd) = cmd else { break };
                match cmd {
                    Command::Start => {
                        restart_at = None;
                        if running.is_none() {
                            running = ctx.launch().await;
                        }
                    }
                    Command::Stop(done) => {
                        restart_at = None;
                        if let Some(r) = running.take() {
                            ctx.halt(r).await;
                        }
                        ctx.set_state(SessionState::Stopped, None).await;
                        let _ = done.send(());
                    }
                    Command::Shutdown(done) => {
                        if let Some(r) = running.take() {
                            ctx.halt(r).await;
                        }
                        ctx.set_state(SessionState::Stopped, None).await;
                        let _ = done.send(());
                        break;
                    }
                    Command::Logout(done) => {
                        restart_at = None;
                        match running.take() {
                            Some(mut r) if r.client.is_logged_in() => {
                                r.user_logout = true;
                                r.client.logout().await;
                                ctx.halt(r).await;
                            }
                            Some(r) => ctx.halt(r).await,
                            None => {}
                        }
                        ctx.wipe_keys().await;
                        ctx.set_state(SessionState::Stopped, Some((None, None))).await;
                        let _ = done.send(Ok(()));
                    }
                    Command::PairCode { phone, reply } => {
                        let result = match (&mut running, normalize_phone(&phone)) {
                            (_, None) => Err(EngineError::InvalidPhone(phone)),
                            (Some(r), Some(phone)) if matches!(ctx.state(), SessionState::Qr { .. }) => {
                                r.pair_pending = true;
                                let options = PairCodeOptions {
                                    phone_number: phone,
                                    ..Default::default()
                                };
                                let client = r.client.clone();
                                client
                                    .pair_with_code(options)
                                    .await
                                    .map_err(|e| EngineError::PairCode(e.to_string()))
                            }
                            _ => Err(EngineError::NotPairing {
                                id: ctx.id.to_string(),
                                state: ctx.state().name(),
                            }),
                        };
                        if result.is_err()
                            && let Some(r) = running.as_mut()
                        {
                            r.pair_pending = false;
                        }
                        let _ = reply.send(result);
                    }
                }
            }
            wake = wake(&mut running) => match wake {
                Wake::Event(ev) => {
                    let Some(r) = running.as_mut() else { continue };
                    if let After::End { state, wipe } = ctx.on_event(r, &ev).await
                        && let Some(r) = running.take()
                    {
                        ctx.halt(r).await;
                        if wipe {
                            ctx.wipe_keys().await;
                        }
                        if let SessionState::Failed { until: Some(until), reason: FailReason::Banned, .. } = &state {
                            let wait = (*until - now_ms()).max(0) as u64;
                            restart_at = Some(Instant::now() + Duration::from_millis(wait));
                        }
                        ctx.set_state(state, wipe.then_some((None, None))).await;
                    }
                }
                Wake::Dead(dead) => {
                    if let Some(r) = running.as_ref() {
                        ctx.on_dead(r, dead).await;
                    }
                }
                Wake::Finished => {
                    // The run loop ended without being asked to (the library gave up).
                    // Events dispatched before it ended were read first (biased).
                    if let Some(r) = running.take() {
                        r.backend.retire();
                    }
                    ctx.set_client(None);
                    if !ctx.state().is_failed() {
                        ctx.set_state(SessionState::Stopped, None).await;
                    }
                }
            },
            _ = sleep_until(next_poll) => {
                next_poll = None;
                if let Some(r) = running.as_mut() {
                    if matches!(ctx.state(), SessionState::Connected { .. }) {
                        ctx.check_link(r).await;
                    } else {
                        poll_every = (poll_every * 2).min(POLL_MAX);
                        ctx.poll(r).await;
                    }
                }
            }
            _ = sleep_until(restart_at) => {
                restart_at = None;
                if running.is_none() {
                    tracing::info!(session = %ctx.id, "ban expired; starting again");
                    running = ctx.launch().await;
                }
            }
        }
    }
    if let Some(r) = running.take() {
        ctx.halt(r).await;
    }
}
