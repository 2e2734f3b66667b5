//! `MockServer`: the handle tests hold. It binds one address for the
//! WebSocket endpoint (`/ws/chat`) and the admin API (`/admin/...`), owns the
//! shared state and offers the phone and fault controls as async methods.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{State as AxState, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use tokio::sync::{oneshot, watch};
use wacore_binary::builder::NodeBuilder;

use crate::error::{Error, Result};
use crate::media::MediaHost;
use crate::noise::ServerIdentity;
use crate::phone;
use crate::router;
use crate::state::{DeviceAddr, Direction, Group, LoginFailure, MessageFault, StanzaRecord, State};

/// How the mock behaves.
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// Address to bind (default `127.0.0.1:0`).
    pub listen: SocketAddr,
    /// QR refs sent in `pair-device` (default 6).
    pub qr_refs: usize,
    /// Number of the first allocated account: phones are `1555000NNNN`.
    pub first_phone: u32,
    /// Send the account's push name in `pair-success` (`<biz name>`), so the
    /// client knows its push name without an app-state sync (default true).
    pub push_name_in_pairing: bool,
    /// How long `scan` / `enter_pair_code` wait for the companion's signature.
    pub pair_timeout: Duration,
    /// Start the TLS media host (default true).
    pub media: bool,
    /// Fixed Noise static key (32 private bytes) so a restarted mock keeps
    /// serving IK to clients that cached its key; random when `None`.
    pub noise_private_key: Option<[u8; 32]>,
    /// Name a direct message's sender in both forms, as WhatsApp does: `sender_lid` beside a
    /// phone-number `from`, `sender_pn` beside a LID `from` (default true). False sends only
    /// `from`, the form a client must complete from its own mapping.
    pub sender_alt: bool,
    /// Create groups LID-addressed (`addressing_mode="lid"`: members and message
    /// senders by LID, phone numbers beside them) instead of PN-addressed
    /// (default false).
    pub lid_groups: bool,
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            qr_refs: 6,
            first_phone: 1,
            push_name_in_pairing: true,
            pair_timeout: Duration::from_secs(30),
            media: true,
            noise_private_key: None,
            sender_alt: true,
            lid_groups: false,
        }
    }
}

/// A linked companion device, as `scan` and `enter_pair_code` report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountInfo {
    pub phone: String,
    pub lid: String,
    pub push_name: String,
    /// The new companion's device id.
    pub device: u16,
    /// `phone:device@s.whatsapp.net`.
    pub jid: String,
    /// `lid:device@lid`.
    pub lid_jid: String,
}

impl AccountInfo {
    /// The companion's address.
    pub fn addr(&self) -> DeviceAddr {
        DeviceAddr {
            phone: self.phone.clone(),
            device: self.device,
        }
    }

    /// The account's user JID (`phone@s.whatsapp.net`), what others send to.
    pub fn user_jid(&self) -> String {
        format!("{}@s.whatsapp.net", self.phone)
    }
}

/// A device in the accounts listing.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceSummary {
    pub device: u16,
    pub jid: String,
    pub online: bool,
    pub active: bool,
    pub prekeys: usize,
    pub logins: u32,
    pub queued: usize,
    /// Messages sent to its connection that it has not acked yet.
    pub unacked: usize,
}

/// An account in the accounts listing.
#[derive(Debug, Clone, Serialize)]
pub struct AccountSummary {
    pub phone: String,
    pub lid: String,
    pub push_name: String,
    pub devices: Vec<DeviceSummary>,
}

/// Which stanzas `stanzas` returns; every set field must match.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct StanzaFilter {
    /// PN JID of the device (`phone:device@s.whatsapp.net`).
    pub device: Option<String>,
    pub tag: Option<String>,
    pub direction: Option<Direction>,
    /// Only records with `seq` greater than this.
    pub after: Option<u64>,
}

/// A stream error the server can send to a connected device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamError {
    /// `<stream:error code=N/>` (515 restart, 401 logged out, 409 conflict, 503, ...).
    Code(u16),
    /// `<stream:error><conflict type="replaced"/></stream:error>`.
    Replaced,
}

pub(crate) struct Inner {
    pub cfg: MockConfig,
    pub identity: ServerIdentity,
    pub state: Mutex<State>,
    pub changed: watch::Sender<u64>,
    pub media: Option<MediaHost>,
    /// What is frozen: the whole server, or some connections (see [`Freeze`]).
    pub freeze: watch::Sender<Freeze>,
}

/// A server that stopped answering, as a Wi-Fi drop, a router reboot or a NAT timeout leaves
/// a connection (or as a server process under SIGSTOP): sockets stay open, nothing is read,
/// nothing is written, no ping is answered. A frozen server also holds every new WebSocket
/// upgrade until it thaws. The admin API keeps answering, so a test can end the freeze.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Freeze {
    pub server: bool,
    pub conns: std::collections::HashSet<crate::state::ConnId>,
}

impl Freeze {
    /// Whether connection `conn` may read and write now.
    pub fn holds(&self, conn: crate::state::ConnId) -> bool {
        self.server || self.conns.contains(&conn)
    }
}

impl Inner {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes everyone waiting for a state change.
    pub fn bump(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    pub fn create_account(&self) -> Result<String> {
        let mut st = self.lock();
        let phone = self.new_account_locked(&mut st, None)?;
        drop(st);
        self.bump();
        Ok(phone)
    }

    fn new_account_locked(&self, st: &mut State, phone: Option<&str>) -> Result<String> {
        let n = st.next_phone;
        st.next_phone += 1;
        let phone = phone
            .map(str::to_string)
            .unwrap_or_else(|| format!("1555000{n:04}"));
        if st.accounts.contains_key(&phone) {
            return Ok(phone);
        }
        let lid = format!("{}", 200_000_000_000_000u64 + u64::from(n));
        let push_name = format!("Mock {}", &phone[phone.len().saturating_sub(4)..]);
        let acc = phone::new_account(phone.clone(), lid.clone(), push_name)?;
        st.lid_to_phone.insert(lid, phone.clone());
        st.accounts.insert(phone.clone(), acc);
        Ok(phone)
    }

    fn info(&self, st: &State, addr: &DeviceAddr) -> Result<AccountInfo> {
        let acc = st
            .accounts
            .get(&addr.phone)
            .ok_or_else(|| Error::UnknownAccount(addr.phone.clone()))?;
        Ok(AccountInfo {
            phone: acc.phone.clone(),
            lid: acc.lid.clone(),
            push_name: acc.push_name.clone(),
            device: addr.device,
            jid: addr.pn_jid().to_string(),
            lid_jid: wacore_binary::Jid::lid_device(acc.lid.as_str(), addr.device).to_string(),
        })
    }

    async fn await_pairing(
        &self,
        rx: oneshot::Receiver<std::result::Result<(), String>>,
        addr: DeviceAddr,
    ) -> Result<AccountInfo> {
        match tokio::time::timeout(self.cfg.pair_timeout, rx).await {
            Err(_) => Err(Error::Timeout(self.cfg.pair_timeout, "pair-device-sign")),
            Ok(Err(_)) => Err(Error::PairRejected(
                "connection closed before signing".into(),
            )),
            Ok(Ok(Err(e))) => Err(Error::PairRejected(e)),
            Ok(Ok(Ok(()))) => {
                self.bump();
                let st = self.lock();
                self.info(&st, &addr)
            }
        }
    }

    pub async fn scan(&self, qr: &str, phone: Option<&str>) -> Result<AccountInfo> {
        let qr = phone::parse_qr(qr)?;
        let (rx, addr) = {
            let mut st = self.lock();
            let conn = *st
                .refs
                .get(&qr.pairing_ref)
                .ok_or_else(|| Error::UnknownRef(qr.pairing_ref.clone()))?;
            let phone = match phone {
                Some(p) if st.accounts.contains_key(p) => p.to_string(),
                Some(p) => return Err(Error::UnknownAccount(p.to_string())),
                None => self.new_account_locked(&mut st, None)?,
            };
            if std::mem::take(&mut st.passkey_next) {
                // As WhatsApp does for an account that links devices with a passkey: the
                // scan is answered with a request for an assertion, not with pair-success.
                let inline = !st.passkey_options_fail;
                let n = crate::phone::passkey_request(&st.new_id(), inline);
                st.send(conn, n);
                tracing::info!(%phone, "mock phone scanned a QR code; a passkey is demanded");
                return Err(Error::PasskeyDemanded);
            }
            let (tx, rx) = oneshot::channel();
            let addr = router::send_pair_success(
                self,
                &mut st,
                conn,
                &phone,
                &qr.identity_pub,
                &qr.adv_secret,
                Some(tx),
            )?;
            (rx, addr)
        };
        tracing::info!(jid = %addr.pn_jid(), "mock phone scanned a QR code");
        self.await_pairing(rx, addr).await
    }

    pub async fn enter_pair_code(&self, phone: &str, code: &str) -> Result<AccountInfo> {
        let (conn, wrapped) = {
            let st = self.lock();
            let c = st
                .conns
                .values()
                .filter(|c| c.pair_code.as_ref().is_some_and(|p| p.phone == phone))
                .max_by_key(|c| c.id)
                .ok_or_else(|| Error::NoPairCodeRequest(phone.to_string()))?;
            let wrapped = c
                .pair_code
                .as_ref()
                .map(|p| p.wrapped_companion_ephemeral.clone())
                .unwrap_or_default();
            (c.id, wrapped)
        };
        let code_owned = code.to_uppercase();
        // PBKDF2 with 2^17 rounds: keep it off the async workers.
        let (primary_eph, companion_eph, wrapped_primary) =
            tokio::task::spawn_blocking(move || phone::enter_code(&wrapped, &code_owned))
                .await
                .map_err(|e| Error::Crypto(e.to_string()))??;
        let (rx, addr_phone) = {
            let mut st = self.lock();
            let phone = self.new_account_locked(&mut st, Some(phone))?;
            let identity_pub = st
                .accounts
                .get(&phone)
                .map(|a| a.identity.public_key.public_key_bytes().to_vec())
                .unwrap_or_default();
            let id = st.new_id();
            let (tx, rx) = oneshot::channel();
            let Some(req) = st.conns.get_mut(&conn).and_then(|c| c.pair_code.as_mut()) else {
                return Err(Error::NoPairCodeRequest(phone));
            };
            req.primary_ephemeral = Some(primary_eph);
            req.companion_ephemeral = Some(companion_eph);
            req.reply = Some(tx);
            let pairing_ref = req.pairing_ref.clone();
            let note = phone::primary_hello_notification(
                &id,
                &wrapped_primary,
                &identity_pub,
                &pairing_ref,
            );
            st.send(conn, note);
            (rx, phone)
        };
        tracing::info!(phone = %addr_phone, "mock phone entered a pair code");
        match tokio::time::timeout(self.cfg.pair_timeout, rx).await {
            Err(_) => Err(Error::Timeout(
                self.cfg.pair_timeout,
                "companion_finish and pair-device-sign",
            )),
            Ok(Err(_)) => Err(Error::PairRejected(
                "connection closed before signing".into(),
            )),
            Ok(Ok(Err(e))) => Err(Error::WrongPairCode(format!("{phone}: {e}"))),
            Ok(Ok(Ok(()))) => {
                self.bump();
                let st = self.lock();
                let addr = st
                    .accounts
                    .get(&addr_phone)
                    .and_then(|a| a.devices.keys().max().copied())
                    .map(|device| DeviceAddr {
                        phone: addr_phone.clone(),
                        device,
                    })
                    .ok_or_else(|| Error::UnknownAccount(addr_phone.clone()))?;
                self.info(&st, &addr)
            }
        }
    }

    pub fn stanzas(&self, f: &StanzaFilter) -> Vec<StanzaRecord> {
        let st = self.lock();
        st.stanzas
            .iter()
            .filter(|r| f.after.is_none_or(|a| r.seq > a))
            .filter(|r| f.tag.as_ref().is_none_or(|t| r.tag == *t))
            .filter(|r| f.direction.is_none_or(|d| r.direction == d))
            .filter(|r| {
                f.device
                    .as_ref()
                    .is_none_or(|d| r.device.as_ref() == Some(d))
            })
            .cloned()
            .collect()
    }

    pub fn accounts(&self) -> Vec<AccountSummary> {
        let st = self.lock();
        st.accounts
            .values()
            .map(|a| AccountSummary {
                phone: a.phone.clone(),
                lid: a.lid.clone(),
                push_name: a.push_name.clone(),
                devices: a
                    .devices
                    .values()
                    .map(|d| {
                        let addr = DeviceAddr {
                            phone: a.phone.clone(),
                            device: d.id,
                        };
                        let conn = st.conn_of(&addr);
                        DeviceSummary {
                            device: d.id,
                            jid: addr.pn_jid().to_string(),
                            online: conn.is_some(),
                            active: conn.is_some_and(|c| c.active),
                            prekeys: d.prekeys.len(),
                            logins: d.logins,
                            queued: st.offline.get(&addr).map_or(0, Vec::len),
                            unacked: conn.map_or(0, |c| c.unacked.len()),
                        }
                    })
                    .collect(),
            })
            .collect()
    }

    pub fn groups(&self) -> Vec<Group> {
        self.lock().groups.values().cloned().collect()
    }

    pub fn refuse_group_add(&self, phone: &str, refuse: bool) {
        let mut st = self.lock();
        if refuse {
            st.group_add_refused.insert(phone.to_string());
        } else {
            st.group_add_refused.remove(phone);
        }
    }

    pub fn drop_connection(&self, addr: &DeviceAddr) -> bool {
        let mut st = self.lock();
        let Some(conn) = st.conn_of(addr).map(|c| c.id) else {
            return false;
        };
        tracing::info!(jid = %addr.pn_jid(), "fault: dropping connection");
        st.close(conn);
        true
    }

    pub fn stream_error(&self, addr: &DeviceAddr, err: StreamError) -> bool {
        let mut st = self.lock();
        let Some(conn) = st.conn_of(addr).map(|c| c.id) else {
            return false;
        };
        let node = match err {
            StreamError::Code(code) => NodeBuilder::new("stream:error")
                .attr("code", code.to_string())
                .build(),
            StreamError::Replaced => NodeBuilder::new("stream:error")
                .children([NodeBuilder::new("conflict")
                    .attr("type", "replaced")
                    .build()])
                .build(),
        };
        tracing::info!(jid = %addr.pn_jid(), ?err, "fault: stream error");
        st.send(conn, node);
        st.close(conn);
        true
    }

    pub fn fail_next_login(&self, phone: Option<&str>, failure: LoginFailure) {
        self.lock()
            .login_failures
            .push((phone.map(str::to_string), failure));
    }

    pub fn refuse_connections(&self, d: Duration) {
        self.lock().refuse_until = Some(Instant::now() + d);
    }

    pub fn lose_next_ack(&self, addr: &DeviceAddr) {
        self.lock().lost_acks.push(addr.clone());
    }

    pub fn freeze_connection(&self, addr: &DeviceAddr) -> bool {
        let Some(conn) = self.lock().conn_of(addr).map(|c| c.id) else {
            return false;
        };
        tracing::info!(conn, jid = %addr.pn_jid(), "fault: connection frozen");
        self.freeze.send_modify(|f| {
            f.conns.insert(conn);
        });
        true
    }

    pub fn freeze_server(&self) {
        tracing::info!("fault: server frozen");
        self.freeze.send_modify(|f| f.server = true);
    }

    pub fn thaw(&self) {
        tracing::info!("fault: thawed");
        self.freeze.send_replace(Freeze::default());
    }

    pub fn fault_next_message(&self, phone: Option<&str>, fault: MessageFault) {
        self.lock()
            .message_faults
            .push((phone.map(str::to_string), fault));
    }

    pub fn set_profile(&self, phone: &str, change: crate::profile::ProfileChange) -> bool {
        match self.lock().accounts.get_mut(phone) {
            Some(acc) => {
                change.apply(&mut acc.profile);
                true
            }
            None => false,
        }
    }

    /// Removes a companion (as "log out this device" on the phone does) and
    /// sends it stream error 401 if connected.
    pub fn remove_device(&self, addr: &DeviceAddr) -> bool {
        let mut st = self.lock();
        let removed = st
            .accounts
            .get_mut(&addr.phone)
            .and_then(|a| a.devices.remove(&addr.device))
            .is_some();
        if let Some(conn) = st.conn_of(addr).map(|c| c.id) {
            st.send(
                conn,
                NodeBuilder::new("stream:error").attr("code", "401").build(),
            );
            st.close(conn);
        }
        removed
    }
}

async fn ws_handler(AxState(inner): AxState<Arc<Inner>>, ws: WebSocketUpgrade) -> Response {
    // A frozen server holds the upgrade: the client's connect times out, as against a server
    // that accepts TCP connections in its kernel backlog and never answers.
    let mut freeze = inner.freeze.subscribe();
    if freeze.borrow().server {
        tracing::info!("fault: a new connection waits for the thaw");
    }
    if freeze.wait_for(|f| !f.server).await.is_err() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let refusing = {
        let mut st = inner.lock();
        match st.refuse_until {
            Some(t) if Instant::now() < t => true,
            Some(_) => {
                st.refuse_until = None;
                false
            }
            None => false,
        }
    };
    if refusing {
        tracing::info!("fault: refusing a new connection");
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    ws.on_upgrade(move |socket| crate::conn::serve(inner, socket))
}

/// The running mock server.
pub struct MockServer {
    inner: Arc<Inner>,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl MockServer {
    /// Binds `cfg.listen` and starts serving.
    pub async fn start(cfg: MockConfig) -> Result<Self> {
        let identity = match cfg.noise_private_key {
            Some(k) => ServerIdentity::from_private(&k)?,
            None => ServerIdentity::generate(),
        };
        let media = if cfg.media {
            Some(MediaHost::start().await?)
        } else {
            None
        };
        let listener = tokio::net::TcpListener::bind(cfg.listen).await?;
        let addr = listener.local_addr()?;
        let (changed, _) = watch::channel(0u64);
        let (freeze, _) = watch::channel(Freeze::default());
        let inner = Arc::new(Inner {
            state: Mutex::new(State::new(cfg.first_phone)),
            cfg,
            identity,
            changed,
            media,
            freeze,
        });
        let app = Router::new()
            .route("/ws/chat", get(ws_handler))
            .merge(crate::admin::routes())
            .with_state(inner.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
            if let Err(e) = served {
                tracing::warn!(error = %e, "mock server stopped with an error");
            }
        });
        tracing::info!(%addr, "wa-mock listening");
        Ok(Self {
            inner,
            addr,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://ADDR/ws/chat`, for `TokioWebSocketTransportFactory::with_url`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws/chat", self.addr)
    }

    /// `http://ADDR`, the admin API's base.
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The server's Noise static public key.
    pub fn noise_public_key(&self) -> [u8; 32] {
        self.inner.identity.public()
    }

    /// The mock phone scans `qr` (a `PairingQrCode` event's code) and links
    /// the client as a companion of a NEW account. Resolves once the client
    /// signed the identity (it then gets stream error 515 and reconnects).
    pub async fn scan(&self, qr: &str) -> Result<AccountInfo> {
        self.inner.scan(qr, None).await
    }

    /// Like `scan`, but links the client as another device of `phone`.
    pub async fn scan_as(&self, qr: &str, phone: &str) -> Result<AccountInfo> {
        self.inner.scan(qr, Some(phone)).await
    }

    /// The mock phone of `phone` enters a pair code the client showed.
    pub async fn enter_pair_code(&self, phone: &str, code: &str) -> Result<AccountInfo> {
        self.inner.enter_pair_code(phone, code).await
    }

    /// Creates an account with no companion (a contact to send to).
    pub fn create_account(&self) -> Result<String> {
        self.inner.create_account()
    }

    /// Recorded stanzas matching `filter`, oldest first.
    pub fn stanzas(&self, filter: &StanzaFilter) -> Vec<StanzaRecord> {
        self.inner.stanzas(filter)
    }

    /// All accounts and their devices.
    pub fn accounts(&self) -> Vec<AccountSummary> {
        self.inner.accounts()
    }

    /// The groups clients created (through the `w:g2` create IQ).
    pub fn groups(&self) -> Vec<Group> {
        self.inner.groups()
    }

    /// `caller` calls `callee` (both phone numbers of accounts): every device of the callee
    /// gets WhatsApp's `<call><offer>` (queued and marked offline for a device that is not
    /// connected). The call id, or `None` for an unknown account.
    pub fn offer_call(&self, caller: &str, callee: &str, video: bool) -> Option<String> {
        crate::calls::offer(&mut self.inner.lock(), caller, callee, video)
    }

    /// The caller hangs up call `call_id` (`reason` as WhatsApp gives it: `timeout`, ...).
    pub fn end_call(&self, caller: &str, callee: &str, call_id: &str, reason: &str) -> bool {
        crate::calls::terminate(&mut self.inner.lock(), caller, callee, call_id, reason)
    }

    /// The group `id` (the user part of its JID, or the whole `id@g.us`).
    pub fn group(&self, id: &str) -> Option<Group> {
        let id = id.strip_suffix("@g.us").unwrap_or(id);
        self.inner.lock().groups.get(id).cloned()
    }

    /// `phone`'s privacy settings refuse being added to groups (WhatsApp's "who can add
    /// me to groups"): an add (or a create naming it) is answered for that participant
    /// with `error="403"` and an `<add_request code expiration/>` invitation, which the
    /// number can take up with an `<accept>` IQ.
    pub fn refuse_group_add(&self, phone: &str) {
        self.inner.refuse_group_add(phone, true)
    }

    /// Ends [`MockServer::refuse_group_add`] for `phone`.
    pub fn allow_group_add(&self, phone: &str) {
        self.inner.refuse_group_add(phone, false)
    }

    /// Closes a device's connection without a stream error (a network drop).
    pub fn drop_connection(&self, device: &DeviceAddr) -> bool {
        self.inner.drop_connection(device)
    }

    /// Sends a stream error to a device and closes its connection.
    pub fn send_stream_error(&self, device: &DeviceAddr, err: StreamError) -> bool {
        self.inner.stream_error(device, err)
    }

    /// Answers the next login (of `phone`, or of anyone) with a connect failure.
    pub fn fail_next_login(&self, phone: Option<&str>, failure: LoginFailure) {
        self.inner.fail_next_login(phone, failure)
    }

    /// Swallows or refuses the next `<message>` a client (of `phone`, or anyone) sends.
    pub fn fault_next_message(&self, phone: Option<&str>, fault: MessageFault) {
        self.inner.fault_next_message(phone, fault)
    }

    /// The next QR scan is answered with WhatsApp's passkey request
    /// (`<notification type="passkey_prologue_request">`) instead of linking the device; the
    /// scan returns [`Error::PasskeyDemanded`].
    pub fn demand_passkey_next(&self) {
        self.inner.lock().passkey_next = true;
    }

    /// As [`MockServer::demand_passkey_next`], but the request carries no options and the
    /// client's fetch of them (`<passkey_request_options/>`) is answered with an error.
    pub fn demand_passkey_next_failing_options(&self) {
        let mut st = self.inner.lock();
        st.passkey_next = true;
        st.passkey_options_fail = true;
    }

    /// People dialling `dialled` reach account `phone`: WhatsApp answers a contact query for
    /// the dialled number with that account's JID (as after a country's numbering change).
    pub fn alias_number(&self, dialled: &str, phone: &str) {
        self.inner
            .lock()
            .number_aliases
            .insert(dialled.to_string(), phone.to_string());
    }

    /// The next contact query for `number` is answered with a per-user error (`<contact>
    /// <error code text/></contact>`), as WhatsApp answers a rate-limited lookup.
    pub fn fail_next_check(&self, number: &str, code: u16, text: &str) {
        self.inner
            .lock()
            .check_errors
            .insert(number.to_string(), (code, text.to_string()));
    }

    /// Changes what an account shows of itself (about text, business flag, privacy); false
    /// for an unknown phone.
    pub fn set_profile(&self, phone: &str, change: crate::profile::ProfileChange) -> bool {
        self.inner.set_profile(phone, change)
    }

    /// Loses the next message ack `device` sends (as when the link drops under it): the
    /// message stays unacked and is delivered again after the device's connection ends.
    pub fn lose_next_ack(&self, device: &DeviceAddr) {
        self.inner.lose_next_ack(device)
    }

    /// Calls `f` with every stanza a client sends, as the server reads it and before it acts
    /// on it (the server waits for `f`): a test can see what held at the moment a message
    /// reached WhatsApp.
    pub fn tap(&self, f: impl Fn(&StanzaRecord) + Send + Sync + 'static) {
        self.inner.lock().taps.push(std::sync::Arc::new(f));
    }

    /// Freezes the connection of `device`: the socket stays open, but the server reads
    /// nothing from it, writes nothing to it and answers no ping, until [`thaw`](Self::thaw).
    /// New connections of the device are served as usual. False if it is not connected.
    pub fn freeze_connection(&self, device: &DeviceAddr) -> bool {
        self.inner.freeze_connection(device)
    }

    /// Freezes the whole server: every open connection as [`freeze_connection`] does, and
    /// every new WebSocket upgrade is held unanswered, until [`thaw`](Self::thaw). The admin
    /// API still answers.
    ///
    /// [`freeze_connection`]: Self::freeze_connection
    pub fn freeze_server(&self) {
        self.inner.freeze_server()
    }

    /// Ends every freeze: frozen connections read what waited in their sockets and go on;
    /// held upgrades are answered.
    pub fn thaw(&self) {
        self.inner.thaw()
    }

    /// Refuses WebSocket upgrades (HTTP 503) for `d`.
    pub fn refuse_connections(&self, d: Duration) {
        self.inner.refuse_connections(d)
    }

    /// Unlinks a companion; a connected one gets stream error 401.
    pub fn remove_device(&self, device: &DeviceAddr) -> bool {
        self.inner.remove_device(device)
    }

    /// Whether a device is logged in and active right now.
    pub fn is_online(&self, device: &DeviceAddr) -> bool {
        self.inner.lock().conn_of(device).is_some_and(|c| c.active)
    }

    /// Waits until `cond` holds over the state (re-checked on every change).
    pub async fn wait_until(
        &self,
        timeout: Duration,
        what: &'static str,
        mut cond: impl FnMut(&MockServer) -> bool,
    ) -> Result<()> {
        let mut rx = self.inner.changed.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if cond(self) {
                return Ok(());
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Err(_) => return Err(Error::Timeout(timeout, what)),
                Ok(Err(_)) => return Err(Error::Shutdown),
                Ok(Ok(())) => {}
            }
        }
    }

    /// Waits until `device` is logged in and active.
    pub async fn wait_online(&self, device: &DeviceAddr, timeout: Duration) -> Result<()> {
        self.wait_until(timeout, "device online", |m| m.is_online(device))
            .await
    }

    /// The media host (`host:port`) clients upload to and download from.
    pub fn media_host(&self) -> Option<String> {
        self.inner.media.as_ref().map(|m| m.host.clone())
    }

    /// PEM of the media host's self-signed certificate (trust it as a root).
    pub fn media_cert_pem(&self) -> Option<String> {
        self.inner.media.as_ref().map(|m| m.cert_pem.clone())
    }

    /// Expire the media stored at `direct_path` (as an upload answered it): downloads get
    /// 410 Gone, as from WhatsApp's CDN once media is past its lifetime. False if nothing is
    /// stored there (or the media host is off).
    pub fn expire_media(&self, direct_path: &str) -> bool {
        self.inner
            .media
            .as_ref()
            .is_some_and(|m| m.expire(direct_path))
    }

    /// Stops accepting and closes every connection.
    pub async fn shutdown(mut self) {
        self.stop().await;
    }

    async fn stop(&mut self) {
        {
            let mut st = self.inner.lock();
            let ids: Vec<_> = st.conns.keys().copied().collect();
            for id in ids {
                st.close(id);
            }
        }
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        if let Some(m) = &self.inner.media {
            m.stop();
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(m) = &self.inner.media {
            m.stop();
        }
    }
}
