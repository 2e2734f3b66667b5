//! The mock's world: accounts, their devices and keys, live connections,
//! offline queues, fault switches and the stanza record.
//!
//! Everything sits behind one `std::sync::Mutex` (no `.await` ever happens
//! while it is held); a `watch` counter ticks on every change so tests can
//! wait for a condition without sleeping.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use wacore::libsignal::protocol::KeyPair;
use wacore_binary::{Jid, Node, Server};

use crate::stanza;

/// Identifies one WebSocket connection.
pub type ConnId = u64;

/// A device of an account: `(phone, device id)`; device 0 is the mock phone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize)]
pub struct DeviceAddr {
    pub phone: String,
    pub device: u16,
}

impl DeviceAddr {
    /// `phone:device@s.whatsapp.net` (or `phone@s.whatsapp.net` for device 0).
    pub fn pn_jid(&self) -> Jid {
        Jid::pn_device(self.phone.as_str(), self.device)
    }
}

/// A signed pre-key as uploaded by a device.
#[derive(Debug, Clone)]
pub struct SignedPreKey {
    pub id: u32,
    pub public: [u8; 32],
    pub signature: Vec<u8>,
}

/// What the server knows about one device's Signal keys and pairing.
#[derive(Debug, Clone)]
pub struct DeviceRecord {
    pub id: u16,
    pub key_index: u32,
    /// Noise static key the device logs in with (zero for the phone).
    pub noise_pub: [u8; 32],
    pub registration_id: u32,
    pub identity: [u8; 32],
    pub signed_prekey: Option<SignedPreKey>,
    pub prekeys: VecDeque<(u32, [u8; 32])>,
    /// The companion's signed ADV identity (from pair-device-sign).
    pub device_identity: Option<Vec<u8>>,
    pub platform: String,
    pub logins: u32,
}

/// One mock WhatsApp account: a phone number, a LID, the phone's identity.
pub struct Account {
    pub phone: String,
    pub lid: String,
    pub push_name: String,
    /// The primary phone's identity key; it signs companions' ADV identities.
    pub identity: KeyPair,
    pub raw_id: u32,
    pub next_device: u16,
    pub next_key_index: u32,
    pub devices: BTreeMap<u16, DeviceRecord>,
    /// About text, picture, business flag and their privacy.
    pub profile: crate::profile::Profile,
}

/// A member of a mock group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupMember {
    pub phone: String,
    /// `superadmin` (the creator), `admin`, or `None` for a plain member.
    pub role: Option<String>,
}

/// A group's description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupDescription {
    /// The id the setting client chose (the next change names it as `prev`).
    pub id: String,
    pub body: String,
    /// Phone of who set it.
    pub owner: String,
    pub time: u64,
}

/// An invitation WhatsApp handed out because a number's privacy settings refused a direct
/// add (`<add_request code expiration>`), for the admin to send as an invite message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddRequest {
    pub phone: String,
    pub code: String,
    /// Unix seconds.
    pub expiration: u64,
    /// Phone of the admin whose add was refused.
    pub admin: String,
}

/// A request to join waiting for an admin (membership approval mode).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JoinRequest {
    pub phone: String,
    pub time: u64,
}

/// A group the server keeps: PN-addressed (`addressing_mode="pn"`, members by
/// phone number, as groups were before the LID migration) or LID-addressed
/// (`addressing_mode="lid"`, members by LID, as WhatsApp creates them now).
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    /// The user part of the group JID (`<id>@g.us`).
    pub id: String,
    pub subject: String,
    /// Phone of who set the subject last (the creator at first).
    pub subject_owner: String,
    pub subject_time: u64,
    /// Phone of the creator.
    pub creator: String,
    pub creation: u64,
    pub members: Vec<GroupMember>,
    /// `addressing_mode="lid"`.
    pub lid_addressed: bool,
    pub description: Option<GroupDescription>,
    /// Only admins send messages (`<announcement/>`).
    pub announcement: bool,
    /// Only admins edit the group's info (`<locked/>`).
    pub locked: bool,
    /// Disappearing messages timer in seconds; 0 is off.
    pub ephemeral: u32,
    /// Joining by link needs an admin's approval (`<membership_approval_mode>`).
    pub membership_approval: bool,
    /// Every member may add members (`all_member_add`), not only admins (`admin_add`).
    pub all_member_add: bool,
    /// The invite link's code, made on the first request for it.
    pub invite_code: Option<String>,
    /// Codes of links that were reset (joining with one answers 410 gone).
    pub revoked_invites: Vec<String>,
    /// Invitations handed out for refused adds.
    pub add_requests: Vec<AddRequest>,
    /// Join requests waiting for approval.
    pub join_requests: Vec<JoinRequest>,
}

impl Group {
    /// A new group of `members`, created by `creator` now.
    pub fn new(
        id: String,
        subject: String,
        creator: String,
        members: Vec<GroupMember>,
        lid_addressed: bool,
    ) -> Self {
        let creation = now_secs();
        Self {
            id,
            subject,
            subject_owner: creator.clone(),
            subject_time: creation,
            creator,
            creation,
            members,
            lid_addressed,
            description: None,
            announcement: false,
            locked: false,
            ephemeral: 0,
            membership_approval: false,
            all_member_add: false,
            invite_code: None,
            revoked_invites: Vec::new(),
            add_requests: Vec::new(),
            join_requests: Vec::new(),
        }
    }

    /// `<id>@g.us`.
    pub fn jid(&self) -> Jid {
        Jid::group(self.id.as_str())
    }

    pub fn has_member(&self, phone: &str) -> bool {
        self.members.iter().any(|m| m.phone == phone)
    }

    /// Whether `phone` is a member with admin rights (admin or superadmin).
    pub fn is_admin(&self, phone: &str) -> bool {
        self.members
            .iter()
            .any(|m| m.phone == phone && m.role.is_some())
    }
}

/// Registration data a pairing client sent in its ClientPayload.
#[derive(Debug, Clone)]
pub struct Registration {
    pub registration_id: u32,
    pub identity: [u8; 32],
    pub signed_prekey: SignedPreKey,
    pub platform: String,
}

/// Scan in progress: pair-success was sent, the companion's answer is awaited.
pub struct PairWait {
    pub iq_id: String,
    pub addr: DeviceAddr,
    pub key_index: u32,
    pub reply: Option<oneshot::Sender<Result<(), String>>>,
}

/// A pair-code request (stage 1) waiting for the phone to enter the code.
pub struct PairCodeRequest {
    pub phone: String,
    pub wrapped_companion_ephemeral: Vec<u8>,
    pub pairing_ref: Vec<u8>,
    /// Set once the phone entered the code (stage 2 state).
    pub primary_ephemeral: Option<KeyPair>,
    pub companion_ephemeral: Option<[u8; 32]>,
    /// Completes `enter_pair_code` once the companion signed.
    pub reply: Option<oneshot::Sender<Result<(), String>>>,
}

/// What the connection writer task is told to do.
pub enum Outbound {
    Node(Node),
    /// Close the socket (after anything queued before it).
    Close,
}

/// One live WebSocket connection.
pub struct Conn {
    pub id: ConnId,
    pub tx: mpsc::UnboundedSender<Outbound>,
    pub noise_pub: [u8; 32],
    /// Set once logged in.
    pub device: Option<DeviceAddr>,
    /// Sent `<active/>`: messages are delivered directly, not queued.
    pub active: bool,
    pub registration: Option<Registration>,
    pub refs: Vec<String>,
    pub pair_wait: Option<PairWait>,
    pub pair_code: Option<PairCodeRequest>,
    /// Messages sent on this connection that the client has not acked yet. WhatsApp keeps a
    /// message until the device acks it: when the connection ends first, they are delivered
    /// again (on its next connection, as offline messages).
    pub unacked: Vec<Node>,
}

/// A connect failure to answer the next matching login with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LoginFailure {
    /// `<failure reason="402" code=.. expire=..>`: temporary ban.
    TempBan { code: u32, expire_secs: u64 },
    /// `<failure reason="405">`: client outdated.
    ClientOutdated,
    /// `<failure reason="401">`: logged out / device removed.
    LoggedOut,
    /// Any other reason code.
    Other { reason: u32 },
}

/// What the server does instead of taking the next matching `<message>` from a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MessageFault {
    /// Read it and do nothing: no ack, no routing, as if it never arrived (lost in a send
    /// buffer when the link or the power went).
    Swallow,
    /// `<ack class="message" error=code>`: the server refuses it; nothing is routed.
    Refuse { code: u32 },
}

/// Direction of a recorded stanza, seen from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Client to server.
    In,
    /// Server to client.
    Out,
}

/// One stanza that crossed a connection.
#[derive(Debug, Clone, Serialize)]
pub struct StanzaRecord {
    pub seq: u64,
    /// Unix milliseconds.
    pub at_ms: u64,
    pub conn: ConnId,
    /// The device's PN JID once the connection logged in.
    pub device: Option<String>,
    pub direction: Direction,
    pub tag: String,
    pub xml: String,
    #[serde(skip)]
    pub node: Node,
}

/// The shared world.
pub struct State {
    pub accounts: BTreeMap<String, Account>,
    pub lid_to_phone: HashMap<String, String>,
    pub conns: HashMap<ConnId, Conn>,
    pub refs: HashMap<String, ConnId>,
    pub offline: HashMap<DeviceAddr, Vec<Node>>,
    pub stanzas: Vec<StanzaRecord>,
    pub refuse_until: Option<Instant>,
    /// Keyed by phone; `None` matches any login.
    pub login_failures: Vec<(Option<String>, LoginFailure)>,
    /// Keyed by the sender's phone; `None` matches any sender.
    pub message_faults: Vec<(Option<String>, MessageFault)>,
    /// The next QR scan is answered with a passkey request instead of `pair-success`.
    pub passkey_next: bool,
    /// With `passkey_next`: the request carries no options, and fetching them fails (the
    /// client then reports a passkey error instead of a request).
    pub passkey_options_fail: bool,
    /// Numbers people dial that WhatsApp answers under another account's number (a
    /// country's numbering change): dialled digits -> the account's phone.
    pub number_aliases: HashMap<String, String>,
    /// Numbers whose next contact query is answered with a per-user error (code, text).
    pub check_errors: HashMap<String, (u16, String)>,
    /// Devices whose next message ack is lost.
    pub lost_acks: Vec<DeviceAddr>,
    pub next_conn: ConnId,
    pub next_phone: u32,
    pub next_id: u64,
    pub next_seq: u64,
    pub media_blobs: HashMap<String, Vec<u8>>,
    /// Groups by id (the user part of the group JID).
    pub groups: BTreeMap<String, Group>,
    /// Phones whose privacy settings refuse being added to groups: an add is answered
    /// per participant with `error="403"` and an `<add_request>` invitation.
    pub group_add_refused: std::collections::HashSet<String>,
    pub next_group: u64,
    /// Called with every stanza a client sends, as it arrives (see [`crate::MockServer::tap`]).
    pub taps: Vec<Tap>,
}

/// An observer of the stanzas clients send.
pub type Tap = std::sync::Arc<dyn Fn(&StanzaRecord) + Send + Sync>;

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as u64
}

impl State {
    pub fn new(first_phone: u32) -> Self {
        Self {
            accounts: BTreeMap::new(),
            lid_to_phone: HashMap::new(),
            conns: HashMap::new(),
            refs: HashMap::new(),
            offline: HashMap::new(),
            stanzas: Vec::new(),
            refuse_until: None,
            login_failures: Vec::new(),
            message_faults: Vec::new(),
            passkey_next: false,
            passkey_options_fail: false,
            number_aliases: HashMap::new(),
            check_errors: HashMap::new(),
            lost_acks: Vec::new(),
            next_conn: 1,
            next_phone: first_phone,
            next_id: 1,
            next_seq: 1,
            media_blobs: HashMap::new(),
            groups: BTreeMap::new(),
            group_add_refused: std::collections::HashSet::new(),
            next_group: 1,
            taps: Vec::new(),
        }
    }

    /// A fresh server-side stanza id.
    pub fn new_id(&mut self) -> String {
        let id = self.next_id;
        self.next_id += 1;
        format!("mock-{id}")
    }

    /// Resolves the phone number of a PN or LID user.
    pub fn phone_of(&self, jid: &Jid) -> Option<String> {
        match jid.server {
            Server::Pn | Server::Hosted => self
                .accounts
                .contains_key(jid.user.as_str())
                .then(|| jid.user.to_string()),
            Server::Lid | Server::HostedLid => self.lid_to_phone.get(jid.user.as_str()).cloned(),
            _ => None,
        }
    }

    /// The JID of `addr` in the same address family (PN or LID) as `like`.
    pub fn jid_like(&self, addr: &DeviceAddr, like: &Jid) -> Jid {
        if like.server == Server::Lid
            && let Some(acc) = self.accounts.get(&addr.phone)
        {
            return Jid::lid_device(acc.lid.as_str(), addr.device);
        }
        addr.pn_jid()
    }

    /// The connection currently logged in as `addr`.
    /// The device's live connection: the newest of its connections (a connection of a
    /// client that stopped may linger until its socket is seen closed, and the map has no
    /// order).
    pub fn conn_of(&self, addr: &DeviceAddr) -> Option<&Conn> {
        self.conns
            .values()
            .filter(|c| c.device.as_ref() == Some(addr))
            .max_by_key(|c| c.id)
    }

    /// Records a stanza.
    pub fn record(&mut self, conn: ConnId, direction: Direction, node: &Node) {
        let device = self
            .conns
            .get(&conn)
            .and_then(|c| c.device.as_ref())
            .map(|d| d.pn_jid().to_string());
        let seq = self.next_seq;
        self.next_seq += 1;
        self.stanzas.push(StanzaRecord {
            seq,
            at_ms: now_ms(),
            conn,
            device,
            direction,
            tag: node.tag.to_string(),
            xml: stanza::to_xml(node),
            node: node.clone(),
        });
        if direction == Direction::In
            && let Some(rec) = self.stanzas.last()
        {
            for tap in &self.taps {
                tap(rec);
            }
        }
    }

    /// Sends a node on a connection (and records it). Returns false if gone.
    pub fn send(&mut self, conn: ConnId, node: Node) -> bool {
        let Some(c) = self.conns.get(&conn) else {
            return false;
        };
        tracing::debug!(conn, xml = %stanza::to_xml(&node), "-> client");
        let tx = c.tx.clone();
        self.record(conn, Direction::Out, &node);
        if node.tag == "message"
            && let Some(c) = self.conns.get_mut(&conn)
        {
            c.unacked.push(node.clone());
        }
        tx.send(Outbound::Node(node)).is_ok()
    }

    /// The client acked a message: a `<receipt>` for it (how WhatsApp Web acks a chat
    /// message once it is stored) or `<ack class="message">` (failure paths). `to` is the
    /// chat the ack names; the server may forget the message.
    pub fn acked(&mut self, conn: ConnId, id: &str, to: Option<&Jid>) {
        let device = self.conns.get(&conn).and_then(|c| c.device.clone());
        if let Some(i) = self
            .lost_acks
            .iter()
            .position(|d| Some(d) == device.as_ref())
        {
            self.lost_acks.remove(i);
            tracing::info!(conn, id, "message ack lost (fault)");
            return;
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.unacked.retain(|n| {
                let same_id = stanza::attr(n, "id").as_deref() == Some(id);
                let same_chat = to.is_none_or(|to| {
                    stanza::attr_jid(n, "from").is_some_and(|f| f.to_non_ad() == to.to_non_ad())
                });
                !(same_id && same_chat)
            });
        }
    }

    /// Closes a connection after what is queued.
    pub fn close(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get(&conn) {
            let _ = c.tx.send(Outbound::Close);
        }
    }

    /// Delivers to a device: at once when it is online and active, otherwise
    /// into its offline queue. Stanzas for the mock phone (device 0) are only
    /// recorded in the log of the sending connection.
    pub fn deliver(&mut self, addr: &DeviceAddr, node: Node) {
        if addr.device == 0 {
            tracing::debug!(phone = %addr.phone, tag = %node.tag, "stanza for the mock phone dropped");
            return;
        }
        let online = self.conn_of(addr).filter(|c| c.active).map(|c| c.id);
        match online {
            Some(conn) => {
                self.send(conn, node);
            }
            None => {
                tracing::debug!(device = %addr.pn_jid(), tag = %node.tag, "queued offline");
                self.offline.entry(addr.clone()).or_default().push(node);
            }
        }
    }

    /// Every device id of an account (the phone included).
    pub fn device_ids(&self, phone: &str) -> Vec<u16> {
        self.accounts
            .get(phone)
            .map(|a| a.devices.keys().copied().collect())
            .unwrap_or_default()
    }
}
