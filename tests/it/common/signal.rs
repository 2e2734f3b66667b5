//! What a test can read of a Signal message on the wire without its keys: the sending chain
//! (the sender's ratchet key) and the counter on it, from the `<enc>` children of a
//! `<message>` stanza wa-mock recorded.

#![allow(dead_code)]

use whatsapp_rust::wacore::libsignal::protocol::{PreKeySignalMessage, SignalMessage};
use whatsapp_rust::wacore_binary::node::{Node, NodeContent};

/// The chain and counter one `<enc>` was encrypted on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChainStep {
    /// The sender's ratchet key (33 bytes, serialized).
    pub chain: Vec<u8>,
    pub counter: u32,
}

impl ChainStep {
    /// The first bytes of the chain's key in hex, to name it in a message.
    pub fn short(&self) -> String {
        let hex: String = self.chain.iter().map(|b| format!("{b:02x}")).collect();
        format!("{}…#{}", &hex[..hex.len().min(12)], self.counter)
    }
}

/// The chain and counter of an `<enc type="msg"|"pkmsg">`; `None` for other kinds.
pub fn chain_step(enc: &Node) -> Option<ChainStep> {
    let Some(NodeContent::Bytes(bytes)) = &enc.content else {
        return None;
    };
    let kind = enc.attrs.get("type")?.as_str().into_owned();
    let step = |m: &SignalMessage| ChainStep {
        chain: m.sender_ratchet_key().serialize().to_vec(),
        counter: m.counter(),
    };
    match kind.as_str() {
        "msg" => Some(step(&SignalMessage::try_from(bytes.as_slice()).ok()?)),
        "pkmsg" => Some(step(
            PreKeySignalMessage::try_from(bytes.as_slice())
                .ok()?
                .message(),
        )),
        _ => None,
    }
}

/// The `<enc>` children of a `<message>` addressed to a device `to` accepts (by its JID),
/// whether the stanza names one recipient or lists several under `<participants>`.
pub fn encs_to(message: &Node, to: impl Fn(&str) -> bool) -> Vec<&Node> {
    let mut encs = Vec::new();
    if let Some(parts) = message.get_optional_child("participants") {
        for dest in parts.get_children_by_tag("to") {
            if dest.attrs.get("jid").is_some_and(|j| to(&j.as_str())) {
                encs.extend(dest.get_children_by_tag("enc"));
            }
        }
    } else if message.attrs.get("to").is_some_and(|j| to(&j.as_str())) {
        encs.extend(message.get_children_by_tag("enc"));
    }
    encs
}

/// Whether a JID or Signal address (`user@server`, `user:device@server`, `user.0:device`)
/// belongs to one of `users` (phone numbers or LIDs).
pub fn is_user(jid: &str, users: &[&str]) -> bool {
    let user = jid.split(['@', ':', '.']).next().unwrap_or_default();
    users.contains(&user)
}
