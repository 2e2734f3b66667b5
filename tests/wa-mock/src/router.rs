//! Stanza handling: what the server does with each node a client sends, and
//! what it sends when a connection is established.
//!
//! All functions run with the state lock held and never await; replies go
//! out through the connection's writer channel.

use base64::Engine as _;
use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Jid, Node, SERVER_JID, Server};
use waproto::whatsapp as wa;

use crate::phone;
use crate::server::Inner;
use crate::stanza::{
    attr, attr_jid, be_uint, bytes, child_bytes, first_child, iq_error, iq_result, key32,
};
use crate::state::{
    ConnId, DeviceAddr, DeviceRecord, LoginFailure, MessageFault, PairWait, Registration,
    SignedPreKey, State, now_secs,
};

/// A connection finished its handshake with this payload.
pub fn on_established(inner: &Inner, st: &mut State, conn: ConnId, payload: &wa::ClientPayload) {
    if let Some(reg) = payload.device_pairing_data.as_option() {
        start_registration(inner, st, conn, reg);
    } else {
        login(inner, st, conn, payload);
    }
}

fn start_registration(
    inner: &Inner,
    st: &mut State,
    conn: ConnId,
    reg: &wa::client_payload::DevicePairingRegistrationData,
) {
    let registration = (|| {
        let skey_id = be_uint(reg.e_skey_id.as_deref()?)?;
        Some(Registration {
            registration_id: be_uint(reg.e_regid.as_deref()?)?,
            identity: key32(reg.e_ident.as_deref()?)?,
            signed_prekey: SignedPreKey {
                id: skey_id,
                public: key32(reg.e_skey_val.as_deref()?)?,
                signature: reg.e_skey_sig.clone()?,
            },
            platform: "web".into(),
        })
    })();
    let Some(registration) = registration else {
        tracing::warn!(conn, "registration payload incomplete; closing");
        st.close(conn);
        return;
    };
    let refs: Vec<String> = (0..inner.cfg.qr_refs)
        .map(|_| {
            let raw: [u8; 18] = rand::random();
            format!("2@{}", base64::prelude::BASE64_STANDARD.encode(raw))
        })
        .collect();
    for r in &refs {
        st.refs.insert(r.clone(), conn);
    }
    if let Some(c) = st.conns.get_mut(&conn) {
        c.registration = Some(registration);
        c.refs = refs.clone();
    }
    let id = st.new_id();
    let iq = NodeBuilder::new("iq")
        .attr("from", SERVER_JID)
        .attr("type", "set")
        .attr("id", id)
        .attr("xmlns", "md")
        .children([NodeBuilder::new("pair-device")
            .children(
                refs.into_iter()
                    .map(|r| NodeBuilder::new("ref").bytes(r.into_bytes()).build()),
            )
            .build()])
        .build();
    st.send(conn, iq);
}

fn failure_node(f: &LoginFailure) -> Node {
    match f {
        LoginFailure::TempBan { code, expire_secs } => NodeBuilder::new("failure")
            .attr("reason", "402")
            .attr("code", code.to_string())
            .attr("expire", expire_secs.to_string())
            .build(),
        LoginFailure::ClientOutdated => NodeBuilder::new("failure").attr("reason", "405").build(),
        LoginFailure::LoggedOut => NodeBuilder::new("failure").attr("reason", "401").build(),
        LoginFailure::Other { reason } => NodeBuilder::new("failure")
            .attr("reason", reason.to_string())
            .build(),
    }
}

fn login(inner: &Inner, st: &mut State, conn: ConnId, payload: &wa::ClientPayload) {
    let phone = payload.username.map(|u| u.to_string()).unwrap_or_default();
    let device = payload.device.unwrap_or(0) as u16;
    let addr = DeviceAddr {
        phone: phone.clone(),
        device,
    };

    if let Some(pos) = st
        .login_failures
        .iter()
        .position(|(p, _)| p.as_ref().is_none_or(|p| *p == phone))
    {
        let (_, failure) = st.login_failures.remove(pos);
        tracing::info!(conn, %phone, ?failure, "answering login with a connect failure");
        st.send(conn, failure_node(&failure));
        st.close(conn);
        return;
    }

    let noise_pub = st.conns.get(&conn).map(|c| c.noise_pub).unwrap_or_default();
    let known = st
        .accounts
        .get(&phone)
        .and_then(|a| a.devices.get(&device))
        .is_some_and(|d| device != 0 && d.noise_pub == noise_pub);
    if !known {
        tracing::info!(conn, %phone, device, "login from an unknown device; answering 401");
        st.send(conn, failure_node(&LoginFailure::LoggedOut));
        st.close(conn);
        return;
    }

    // A newer login replaces an older connection of the same device.
    let older: Vec<ConnId> = st
        .conns
        .values()
        .filter(|c| c.id != conn && c.device.as_ref() == Some(&addr))
        .map(|c| c.id)
        .collect();
    for old in older {
        tracing::info!(old, "closing older connection of the same device");
        st.close(old);
        let unacked = match st.conns.get_mut(&old) {
            Some(c) => {
                c.device = None;
                c.active = false;
                std::mem::take(&mut c.unacked)
            }
            None => Vec::new(),
        };
        // What the older connection never acked is the device's still: WhatsApp hands it to
        // the new connection (with the offline messages), as when a connection ends.
        if !unacked.is_empty() {
            tracing::info!(
                old,
                count = unacked.len(),
                "unacked messages kept for the new connection"
            );
            st.offline.entry(addr.clone()).or_default().extend(unacked);
        }
    }

    let lid = st
        .accounts
        .get(&phone)
        .map(|a| a.lid.clone())
        .unwrap_or_default();
    if let Some(d) = st
        .accounts
        .get_mut(&phone)
        .and_then(|a| a.devices.get_mut(&device))
    {
        d.logins += 1;
    }
    let passive = payload.passive.unwrap_or(false);
    if let Some(c) = st.conns.get_mut(&conn) {
        c.device = Some(addr.clone());
    }
    tracing::info!(conn, jid = %addr.pn_jid(), passive, "login accepted");
    let t = now_secs();
    let success = NodeBuilder::new("success")
        .attr("t", t.to_string())
        .attr("props", "1")
        .attr("location", "mock")
        .attr("creation", t.to_string())
        .attr("lid", Jid::lid_device(lid.as_str(), device))
        .build();
    st.send(conn, success);
    if !passive {
        go_active(inner, st, conn);
    }
}

/// The device left passive mode: flush its offline queue, then `<ib><offline>`.
fn go_active(_inner: &Inner, st: &mut State, conn: ConnId) {
    let Some(addr) = st.conns.get(&conn).and_then(|c| c.device.clone()) else {
        return;
    };
    if let Some(c) = st.conns.get_mut(&conn) {
        c.active = true;
    }
    let queued = st.offline.remove(&addr).unwrap_or_default();
    let count = queued.len();
    for mut node in queued {
        node.attrs.insert("offline", "1");
        st.send(conn, node);
    }
    let ib = NodeBuilder::new("ib")
        .children([NodeBuilder::new("offline")
            .attr("count", count.to_string())
            .build()])
        .build();
    st.send(conn, ib);
}

/// A node arrived on a connection.
pub fn on_node(inner: &Inner, st: &mut State, conn: ConnId, node: Node) {
    match node.tag.as_ref() {
        "iq" => on_iq(inner, st, conn, &node),
        "message" => on_message(inner, st, conn, &node),
        "receipt" => on_receipt(st, conn, &node),
        "chatstate" => on_chatstate(st, conn, &node),
        "presence" => {
            if let Some(from) = sender(st, conn) {
                crate::profile::on_presence(st, &from.phone, &node);
            }
        }
        "ack" if attr(&node, "class").as_deref() == Some("message") => {
            let id = attr(&node, "id").unwrap_or_default();
            st.acked(conn, &id, attr_jid(&node, "to").as_ref());
        }
        _ => {}
    }
}

fn sender(st: &State, conn: ConnId) -> Option<DeviceAddr> {
    st.conns.get(&conn).and_then(|c| c.device.clone())
}

fn on_iq(inner: &Inner, st: &mut State, conn: ConnId, node: &Node) {
    let id = attr(node, "id").unwrap_or_default();
    let ty = attr(node, "type").unwrap_or_default();
    let xmlns = attr(node, "xmlns").unwrap_or_default();
    if ty == "result" || ty == "error" {
        on_iq_response(st, conn, node, &id, &ty);
        return;
    }
    let child = first_child(node);
    let child_tag = child.map(|c| c.tag.to_string()).unwrap_or_default();
    let reply = match (xmlns.as_str(), child_tag.as_str()) {
        ("w:p", _) => iq_result(&id, vec![]),
        ("passive", "active") => {
            st.send(conn, iq_result(&id, vec![]));
            go_active(inner, st, conn);
            return;
        }
        ("passive", _) => {
            if let Some(c) = st.conns.get_mut(&conn) {
                c.active = false;
            }
            iq_result(&id, vec![])
        }
        ("encrypt", "count") => {
            let n = sender(st, conn)
                .and_then(|a| {
                    st.accounts
                        .get(&a.phone)?
                        .devices
                        .get(&a.device)
                        .map(|d| d.prekeys.len())
                })
                .unwrap_or(0);
            iq_result(
                &id,
                vec![
                    NodeBuilder::new("count")
                        .attr("value", n.to_string())
                        .build(),
                ],
            )
        }
        ("encrypt", "key") => match child {
            Some(key) => iq_result(&id, vec![prekey_bundles(st, key)]),
            None => iq_error(&id, 400, "bad-request"),
        },
        ("encrypt", "digest") => {
            let record = sender(st, conn).and_then(|a| {
                st.accounts
                    .get(&a.phone)?
                    .devices
                    .get(&a.device)
                    .filter(|d| d.signed_prekey.is_some())
                    .map(digest_node)
            });
            match record {
                Some(digest) => iq_result(&id, vec![digest]),
                // No key bundle on record: the client uploads one.
                None => iq_error(&id, 404, "item-not-found"),
            }
        }
        ("encrypt", "rotate") => {
            if let (Some(addr), Some(skey)) = (
                sender(st, conn),
                child.and_then(|c| c.get_optional_child("skey")),
            ) && let Some(spk) = parse_skey(skey)
                && let Some(d) = st
                    .accounts
                    .get_mut(&addr.phone)
                    .and_then(|a| a.devices.get_mut(&addr.device))
            {
                d.signed_prekey = Some(spk);
            }
            iq_result(&id, vec![])
        }
        ("encrypt", _) if node.get_optional_child("registration").is_some() => {
            upload_prekeys(st, conn, node);
            iq_result(&id, vec![])
        }
        ("w:profile:picture", _) => match sender(st, conn) {
            Some(from) if ty == "get" => crate::profile::picture_get(
                st,
                inner.media.as_ref().map(|m| m.host.as_str()),
                &from.phone,
                &id,
                node,
            ),
            Some(from) => {
                let (answer, stored) = crate::profile::picture_set(st, &from.phone, &id, node);
                if let (Some((path, jpeg)), Some(media)) = (stored, inner.media.as_ref()) {
                    media.put(&path, jpeg);
                }
                answer
            }
            None => iq_error(&id, 401, "not-authorized"),
        },
        ("status", _) if ty == "set" => match sender(st, conn) {
            Some(from) => crate::profile::status_set(st, &from.phone, &id, node),
            None => iq_error(&id, 401, "not-authorized"),
        },
        ("usync", "usync") => match child {
            Some(u) => iq_result(&id, vec![usync(st, u)]),
            None => iq_error(&id, 400, "bad-request"),
        },
        ("abt" | "w", "props") => iq_result(
            &id,
            vec![
                NodeBuilder::new("props")
                    .attr("protocol", "1")
                    .attr("hash", "mock")
                    .build(),
            ],
        ),
        ("blocklist", _) => iq_result(&id, vec![NodeBuilder::new("list").build()]),
        ("privacy", _) if ty == "get" => iq_result(&id, vec![privacy_settings()]),
        ("w:sync:app:state", "sync") => iq_result(&id, vec![app_state_sync(child)]),
        ("w:m", "media_conn") => iq_result(&id, vec![media_conn(inner)]),
        ("w:g2", _) => match sender(st, conn) {
            Some(from) => {
                // The answer first, then the `w:gp2` notifications the change causes.
                let (reply, notes) =
                    crate::groups::on_iq(st, &from, &id, node, inner.cfg.lid_groups);
                st.send(conn, reply);
                for (addr, note) in notes {
                    st.deliver(&addr, note);
                }
                return;
            }
            None => iq_error(&id, 401, "not-authorized"),
        },
        // The passkey request's options, when the notification came without them.
        ("md", "passkey_request_options") => {
            if std::mem::take(&mut st.passkey_options_fail) {
                iq_error(&id, 500, "internal-server-error")
            } else {
                match crate::phone::passkey_request(&id, true)
                    .get_optional_child("passkey_request_options")
                {
                    Some(opts) => iq_result(&id, vec![opts.clone()]),
                    None => iq_error(&id, 500, "internal-server-error"),
                }
            }
        }
        ("md", "link_code_companion_reg") => match child {
            Some(reg) => match link_code(inner, st, conn, &id, reg) {
                Some(n) => n,
                None => return,
            },
            None => iq_error(&id, 400, "bad-request"),
        },
        _ => {
            tracing::debug!(%xmlns, %child_tag, "unhandled iq answered with an empty result");
            iq_result(&id, vec![])
        }
    };
    st.send(conn, reply);
}

fn on_iq_response(st: &mut State, conn: ConnId, node: &Node, id: &str, ty: &str) {
    let Some(c) = st.conns.get_mut(&conn) else {
        return;
    };
    if c.pair_wait.as_ref().is_none_or(|w| w.iq_id != id) {
        return;
    }
    let Some(mut wait) = c.pair_wait.take() else {
        return;
    };
    let reply = wait.reply.take();
    if ty == "error" {
        let text = node
            .get_optional_child("error")
            .map(|e| {
                format!(
                    "{} {}",
                    attr(e, "code").unwrap_or_default(),
                    attr(e, "text").unwrap_or_default()
                )
            })
            .unwrap_or_else(|| "error".into());
        tracing::warn!(conn, %text, "companion rejected pair-success");
        if let Some(r) = reply {
            let _ = r.send(Err(text));
        }
        return;
    }
    let device_identity = node
        .get_optional_child("pair-device-sign")
        .and_then(|s| child_bytes(s, "device-identity"))
        .map(<[u8]>::to_vec);
    let Some(reg) = c.registration.clone() else {
        return;
    };
    let noise_pub = c.noise_pub;
    let record = DeviceRecord {
        id: wait.addr.device,
        key_index: wait.key_index,
        noise_pub,
        registration_id: reg.registration_id,
        identity: reg.identity,
        signed_prekey: Some(reg.signed_prekey),
        prekeys: Default::default(),
        device_identity,
        platform: reg.platform,
        logins: 0,
    };
    if let Some(acc) = st.accounts.get_mut(&wait.addr.phone) {
        acc.devices.insert(wait.addr.device, record);
    }
    tracing::info!(conn, jid = %wait.addr.pn_jid(), "companion paired; sending stream error 515");
    st.send(
        conn,
        NodeBuilder::new("stream:error").attr("code", "515").build(),
    );
    st.close(conn);
    if let Some(r) = reply {
        let _ = r.send(Ok(()));
    }
}

fn parse_skey(skey: &Node) -> Option<SignedPreKey> {
    Some(SignedPreKey {
        id: be_uint(child_bytes(skey, "id")?)?,
        public: key32(child_bytes(skey, "value")?)?,
        signature: child_bytes(skey, "signature")?.to_vec(),
    })
}

fn upload_prekeys(st: &mut State, conn: ConnId, node: &Node) {
    let Some(addr) = sender(st, conn) else {
        return;
    };
    let Some(d) = st
        .accounts
        .get_mut(&addr.phone)
        .and_then(|a| a.devices.get_mut(&addr.device))
    else {
        return;
    };
    if let Some(r) = child_bytes(node, "registration").and_then(be_uint) {
        d.registration_id = r;
    }
    if let Some(i) = child_bytes(node, "identity").and_then(key32) {
        d.identity = i;
    }
    if let Some(spk) = node.get_optional_child("skey").and_then(parse_skey) {
        d.signed_prekey = Some(spk);
    }
    if let Some(list) = node.get_optional_child("list") {
        for key in list.get_children_by_tag("key") {
            if let (Some(id), Some(v)) = (
                child_bytes(key, "id").and_then(be_uint),
                child_bytes(key, "value").and_then(key32),
            ) && !d.prekeys.iter().any(|(k, _)| *k == id)
            {
                d.prekeys.push_back((id, v));
            }
        }
    }
    tracing::debug!(jid = %addr.pn_jid(), prekeys = d.prekeys.len(), "prekeys uploaded");
}

fn prekey_bundles(st: &mut State, key: &Node) -> Node {
    let mut users = Vec::new();
    for user in key.get_children_by_tag("user") {
        let Some(jid) = attr_jid(user, "jid") else {
            continue;
        };
        let jid_attr = attr(user, "jid").unwrap_or_default();
        let record = st.phone_of(&jid).and_then(|phone| {
            let d = st.accounts.get_mut(&phone)?.devices.get_mut(&jid.device)?;
            let otk = d.prekeys.pop_front();
            Some((d.clone(), otk))
        });
        let node = match record {
            Some((d, otk)) if d.signed_prekey.is_some() => bundle_node(&jid_attr, &d, otk),
            _ => NodeBuilder::new("user")
                .attr("jid", jid_attr)
                .children([NodeBuilder::new("error")
                    .attr("code", "404")
                    .attr("text", "item-not-found")
                    .build()])
                .build(),
        };
        users.push(node);
    }
    NodeBuilder::new("list").children(users).build()
}

/// The server's key-bundle digest for a device: what it holds (registration id, identity,
/// signed prekey, the ids of the one-time prekeys left) and a SHA-1 over identity, signed
/// prekey, its signature and each prekey's public key, so the client can check its own copy.
fn digest_node(d: &DeviceRecord) -> Node {
    use sha1::Digest as _;
    let mut hash = sha1::Sha1::new();
    hash.update(d.identity);
    let mut children = vec![
        NodeBuilder::new("registration")
            .bytes(d.registration_id.to_be_bytes().to_vec())
            .build(),
        NodeBuilder::new("type").bytes(vec![5]).build(),
        NodeBuilder::new("identity")
            .bytes(d.identity.to_vec())
            .build(),
    ];
    if let Some(spk) = &d.signed_prekey {
        hash.update(spk.public);
        hash.update(&spk.signature);
        children.push(
            NodeBuilder::new("skey")
                .children([
                    NodeBuilder::new("id").bytes(id3(spk.id)).build(),
                    NodeBuilder::new("value").bytes(spk.public.to_vec()).build(),
                    NodeBuilder::new("signature")
                        .bytes(spk.signature.clone())
                        .build(),
                ])
                .build(),
        );
    }
    let mut ids = Vec::with_capacity(d.prekeys.len());
    for (id, public) in &d.prekeys {
        hash.update(public);
        ids.push(NodeBuilder::new("id").bytes(id3(*id)).build());
    }
    children.push(NodeBuilder::new("list").children(ids).build());
    children.push(
        NodeBuilder::new("hash")
            .bytes(hash.finalize().to_vec())
            .build(),
    );
    NodeBuilder::new("digest").children(children).build()
}

fn id3(id: u32) -> Vec<u8> {
    id.to_be_bytes()[1..].to_vec()
}

fn bundle_node(jid: &str, d: &DeviceRecord, otk: Option<(u32, [u8; 32])>) -> Node {
    let mut children = vec![
        NodeBuilder::new("registration")
            .bytes(d.registration_id.to_be_bytes().to_vec())
            .build(),
        NodeBuilder::new("type").bytes(vec![5]).build(),
        NodeBuilder::new("identity")
            .bytes(d.identity.to_vec())
            .build(),
    ];
    if let Some(spk) = &d.signed_prekey {
        children.push(
            NodeBuilder::new("skey")
                .children([
                    NodeBuilder::new("id").bytes(id3(spk.id)).build(),
                    NodeBuilder::new("value").bytes(spk.public.to_vec()).build(),
                    NodeBuilder::new("signature")
                        .bytes(spk.signature.clone())
                        .build(),
                ])
                .build(),
        );
    }
    if let Some((id, v)) = otk {
        children.push(
            NodeBuilder::new("key")
                .children([
                    NodeBuilder::new("id").bytes(id3(id)).build(),
                    NodeBuilder::new("value").bytes(v.to_vec()).build(),
                ])
                .build(),
        );
    }
    if let Some(di) = &d.device_identity {
        children.push(
            NodeBuilder::new("device-identity")
                .bytes(di.clone())
                .build(),
        );
    }
    NodeBuilder::new("user")
        .attr("jid", jid.to_string())
        .children(children)
        .build()
}

fn usync(st: &mut State, req: &Node) -> Node {
    let protocols: Vec<String> = req
        .get_optional_child("query")
        .and_then(|q| q.children())
        .map(|c| c.iter().map(|n| n.tag.to_string()).collect())
        .unwrap_or_default();
    let mut users = Vec::new();
    for user in req
        .get_optional_child("list")
        .map(|l| l.get_children_by_tag("user").collect::<Vec<_>>())
        .unwrap_or_default()
    {
        let mut by_lid = false;
        let mut contact_query = None;
        let mut contact_error: Option<(u16, String)> = None;
        let (jid_attr, phone) = if let Some(jid) = attr_jid(user, "jid") {
            by_lid = jid.server == Server::Lid;
            (
                Some(attr(user, "jid").unwrap_or_default()),
                st.phone_of(&jid.to_non_ad()),
            )
        } else if let Some(contact) = user.get_optional_child("contact").and_then(bytes) {
            let asked = String::from_utf8_lossy(contact).into_owned();
            let number: String = asked.chars().filter(char::is_ascii_digit).collect();
            if number.is_empty() {
                continue;
            }
            contact_query = Some(asked);
            contact_error = st.check_errors.remove(&number);
            // Every user carries its JID, registered or not (whatsmeow and wacore drop a
            // user without one): a number not on WhatsApp is answered `type="out"`. A dialled
            // number WhatsApp knows under another (an alias) is answered with that one's JID.
            match st.number_aliases.get(&number) {
                Some(real) if st.accounts.contains_key(real) => {
                    (Some(format!("{real}@s.whatsapp.net")), Some(real.clone()))
                }
                _ => {
                    let phone = st.accounts.contains_key(&number).then_some(number.clone());
                    (Some(format!("{number}@s.whatsapp.net")), phone)
                }
            }
        } else {
            continue;
        };
        let account = phone.as_ref().and_then(|p| st.accounts.get(p));
        // A LID nobody has: the user is left out of the answer.
        if by_lid && account.is_none() {
            continue;
        }
        let mut children = Vec::new();
        for proto in &protocols {
            match (proto.as_str(), account) {
                ("devices", Some(acc)) => {
                    let devices: Vec<Node> = acc
                        .devices
                        .values()
                        .map(|d| {
                            let b = NodeBuilder::new("device").attr("id", d.id.to_string());
                            if d.id == 0 {
                                b.build()
                            } else {
                                b.attr("key-index", d.key_index.to_string()).build()
                            }
                        })
                        .collect();
                    children.push(
                        NodeBuilder::new("devices")
                            .children([
                                NodeBuilder::new("device-list")
                                    .attr("hash", format!("2:mock{}", acc.devices.len()))
                                    .children(devices)
                                    .build(),
                                NodeBuilder::new("key-index-list")
                                    .attr("ts", now_secs().to_string())
                                    .bytes(phone::key_index_list(acc))
                                    .build(),
                            ])
                            .build(),
                    );
                }
                ("devices", None) => children.push(
                    NodeBuilder::new("devices")
                        .children([NodeBuilder::new("device-list").build()])
                        .build(),
                ),
                // Asked by LID: the phone number travels as the user's `pn_jid` (below),
                // not as a LID mapped to itself.
                ("lid", Some(_)) if by_lid => {}
                ("lid", Some(acc)) => children.push(
                    NodeBuilder::new("lid")
                        .attr("val", Jid::lid(acc.lid.as_str()))
                        .build(),
                ),
                // The asked string comes back as the contact's content.
                // A per-user error (a rate limit): the protocol node carries it.
                ("contact", _) if contact_error.is_some() => {
                    let (code, text) = contact_error.clone().unwrap_or_default();
                    children.push(
                        NodeBuilder::new("contact")
                            .children([NodeBuilder::new("error")
                                .attr("code", code.to_string())
                                .attr("text", text)
                                .build()])
                            .build(),
                    );
                }
                ("contact", acc) => {
                    let b = NodeBuilder::new("contact")
                        .attr("type", if acc.is_some() { "in" } else { "out" });
                    children.push(match &contact_query {
                        Some(q) => b.string_content(q.clone()).build(),
                        None => b.build(),
                    });
                }
                (proto, Some(acc)) => {
                    if let Some(n) = crate::profile::usync_children(acc, proto) {
                        children.push(n);
                    }
                }
                _ => {}
            }
        }
        let mut b = NodeBuilder::new("user");
        if let Some(j) = jid_attr {
            b = b.attr("jid", j);
        }
        if by_lid && let Some(p) = &phone {
            b = b.attr("pn_jid", Jid::pn(p.as_str()));
        }
        users.push(b.children(children).build());
    }
    let mut b = NodeBuilder::new("usync");
    for key in ["sid", "mode", "context", "index", "last"] {
        if let Some(v) = attr(req, key) {
            b = b.attr(key, v);
        }
    }
    b.children([NodeBuilder::new("list").children(users).build()])
        .build()
}

fn privacy_settings() -> Node {
    let cats = [
        ("last", "all"),
        ("online", "all"),
        ("profile", "all"),
        ("status", "all"),
        ("groupadd", "all"),
        ("readreceipts", "all"),
        ("calladd", "all"),
    ];
    NodeBuilder::new("privacy")
        .children(cats.iter().map(|(n, v)| {
            NodeBuilder::new("category")
                .attr("name", *n)
                .attr("value", *v)
                .build()
        }))
        .build()
}

fn app_state_sync(req: Option<&Node>) -> Node {
    let collections: Vec<Node> = req
        .map(|s| {
            s.get_children_by_tag("collection")
                .filter_map(|c| attr(c, "name"))
                .map(|name| {
                    NodeBuilder::new("collection")
                        .attr("name", name)
                        .attr("version", "0")
                        .build()
                })
                .collect()
        })
        .unwrap_or_default();
    NodeBuilder::new("sync").children(collections).build()
}

fn media_conn(inner: &Inner) -> Node {
    let host = inner
        .media
        .as_ref()
        .map(|m| m.host.clone())
        .unwrap_or_else(|| "127.0.0.1:1".into());
    NodeBuilder::new("media_conn")
        .attr("auth", "mock-media-auth")
        .attr("ttl", "3600")
        .attr("auth_ttl", "3600")
        .attr("max_buckets", "4")
        .children([NodeBuilder::new("host")
            .attr("hostname", host)
            .attr("type", "primary")
            .build()])
        .build()
}

/// Answers pair-code stages; `None` when the reply was already sent.
fn link_code(inner: &Inner, st: &mut State, conn: ConnId, id: &str, reg: &Node) -> Option<Node> {
    Some(match attr(reg, "stage").as_deref() {
        Some("companion_hello") => {
            let phone = attr_jid(reg, "jid")
                .map(|j| j.user.to_string())
                .unwrap_or_default();
            let Some(wrapped) =
                child_bytes(reg, "link_code_pairing_wrapped_companion_ephemeral_pub")
            else {
                return Some(iq_error(id, 400, "bad-request"));
            };
            let pairing_ref: Vec<u8> = {
                let raw: [u8; 12] = rand::random();
                base64::prelude::BASE64_STANDARD.encode(raw).into_bytes()
            };
            tracing::info!(conn, %phone, "pair-code request (companion_hello)");
            if let Some(c) = st.conns.get_mut(&conn) {
                c.pair_code = Some(crate::state::PairCodeRequest {
                    phone,
                    wrapped_companion_ephemeral: wrapped.to_vec(),
                    pairing_ref: pairing_ref.clone(),
                    primary_ephemeral: None,
                    companion_ephemeral: None,
                    reply: None,
                });
            }
            iq_result(
                id,
                vec![
                    NodeBuilder::new("link_code_companion_reg")
                        .children([NodeBuilder::new("link_code_pairing_ref")
                            .bytes(pairing_ref)
                            .build()])
                        .build(),
                ],
            )
        }
        Some("companion_finish") => return companion_finish(inner, st, conn, id, reg),
        _ => iq_error(id, 400, "bad-request"),
    })
}

fn companion_finish(
    inner: &Inner,
    st: &mut State,
    conn: ConnId,
    id: &str,
    reg: &Node,
) -> Option<Node> {
    let Some(c) = st.conns.get_mut(&conn) else {
        return Some(iq_error(id, 404, "item-not-found"));
    };
    let Some(mut req) = c.pair_code.take() else {
        return Some(iq_error(id, 404, "item-not-found"));
    };
    let (Some(primary_eph), Some(companion_eph)) =
        (req.primary_ephemeral.take(), req.companion_ephemeral)
    else {
        return Some(iq_error(id, 400, "bad-request"));
    };
    let reply = req.reply.take();
    let fail = |st: &mut State,
                reply: Option<tokio::sync::oneshot::Sender<Result<(), String>>>,
                why: String| {
        tracing::warn!(conn, %why, "companion_finish failed");
        if let Some(r) = reply {
            let _ = r.send(Err(why));
        }
        let _ = st;
        Some(iq_error(id, 400, "bad-request"))
    };
    let Some(wrapped_bundle) = child_bytes(reg, "link_code_pairing_wrapped_key_bundle") else {
        return fail(st, reply, "no key bundle".into());
    };
    let Some(account) = st.accounts.get(&req.phone) else {
        return fail(st, reply, "account vanished".into());
    };
    let (companion_identity, adv_secret) = match phone::open_key_bundle(
        &primary_eph,
        &companion_eph,
        &account.identity,
        wrapped_bundle,
    ) {
        Ok(v) => v,
        Err(e) => {
            return fail(
                st,
                reply,
                format!("key bundle did not open (wrong code?): {e}"),
            );
        }
    };
    let answer = iq_result(id, vec![]);
    st.send(conn, answer);
    if let Err(e) = send_pair_success(
        inner,
        st,
        conn,
        &req.phone,
        &companion_identity,
        &adv_secret,
        reply,
    ) {
        tracing::warn!(conn, error = %e, "pair-success after pair code failed");
    }
    None
}

/// Links the registering client on `conn` as a new device of `phone`.
pub fn send_pair_success(
    inner: &Inner,
    st: &mut State,
    conn: ConnId,
    phone: &str,
    companion_identity: &[u8; 32],
    adv_secret: &[u8; 32],
    reply: Option<tokio::sync::oneshot::Sender<Result<(), String>>>,
) -> crate::error::Result<DeviceAddr> {
    let iq_id = st.new_id();
    let acc = st
        .accounts
        .get_mut(phone)
        .ok_or_else(|| crate::error::Error::UnknownAccount(phone.to_string()))?;
    let device = acc.next_device;
    acc.next_device += 1;
    let key_index = acc.next_key_index;
    acc.next_key_index += 1;
    let device_identity =
        phone::signed_device_identity(acc, companion_identity, key_index, adv_secret)?;
    let addr = DeviceAddr {
        phone: phone.to_string(),
        device,
    };
    let push_name = inner
        .cfg
        .push_name_in_pairing
        .then(|| acc.push_name.clone());
    let node = phone::pair_success_iq(
        &iq_id,
        device_identity,
        &addr.pn_jid(),
        &Jid::lid_device(acc.lid.as_str(), device),
        push_name.as_deref(),
    );
    // The refs of this connection are spent.
    let refs = st
        .conns
        .get(&conn)
        .map(|c| c.refs.clone())
        .unwrap_or_default();
    for r in refs {
        st.refs.remove(&r);
    }
    if let Some(c) = st.conns.get_mut(&conn) {
        c.pair_wait = Some(PairWait {
            iq_id,
            addr: addr.clone(),
            key_index,
            reply,
        });
    }
    st.send(conn, node);
    Ok(addr)
}

/// Routes an end-to-end encrypted message to the devices it names.
fn on_message(inner: &Inner, st: &mut State, conn: ConnId, node: &Node) {
    let Some(from) = sender(st, conn) else {
        return;
    };
    let id = attr(node, "id").unwrap_or_default();
    let to_attr = attr(node, "to").unwrap_or_default();
    let Some(to) = attr_jid(node, "to") else {
        return;
    };
    let t = now_secs().to_string();
    let fault = st
        .message_faults
        .iter()
        .position(|(p, _)| p.as_ref().is_none_or(|p| *p == from.phone))
        .map(|i| st.message_faults.remove(i).1);
    let mut ack = NodeBuilder::new("ack")
        .attr("class", "message")
        .attr("id", id.clone())
        .attr("from", to_attr)
        .attr("t", t.clone());
    match fault {
        Some(MessageFault::Swallow) => {
            tracing::info!(conn, id = %id, "message swallowed (fault)");
            return;
        }
        Some(MessageFault::Refuse { code }) => {
            tracing::info!(conn, id = %id, code, "message refused (fault)");
            ack = ack.attr("error", code.to_string());
            st.send(conn, ack.build());
            return;
        }
        None => {}
    }
    st.send(conn, ack.build());
    if to.server == Server::Group {
        crate::groups::route_message(st, &from, node, &to, &t);
        return;
    }
    if !matches!(to.server, Server::Pn | Server::Lid) {
        tracing::debug!(to = %to, "message to a non-user chat: acked, not routed");
        return;
    }
    let device_identity = node.get_optional_child("device-identity").cloned();
    let ty = attr(node, "type").unwrap_or_else(|| "text".into());
    let edit = attr(node, "edit");
    let push_name = st
        .accounts
        .get(&from.phone)
        .map(|a| a.push_name.clone())
        .unwrap_or_default();

    // (destination device jid, enc children)
    let mut targets: Vec<(Jid, Vec<Node>)> = Vec::new();
    if let Some(parts) = node.get_optional_child("participants") {
        for to_node in parts.get_children_by_tag("to") {
            if let Some(dj) = attr_jid(to_node, "jid") {
                targets.push((
                    dj,
                    to_node.children().map(<[Node]>::to_vec).unwrap_or_default(),
                ));
            }
        }
    } else {
        let encs: Vec<Node> = node.get_children_by_tag("enc").cloned().collect();
        if !encs.is_empty() {
            targets.push((to.clone(), encs));
        }
    }
    for (dest, encs) in targets {
        let Some(phone) = st.phone_of(&dest.to_non_ad()) else {
            tracing::debug!(dest = %dest, "message for an unknown user dropped");
            continue;
        };
        let addr = DeviceAddr {
            phone,
            device: dest.device,
        };
        if addr == from {
            continue;
        }
        let from_jid = st.jid_like(&from, &dest);
        // The other form of the sender's address beside `from`, as WhatsApp names it.
        let alt = match inner.cfg.sender_alt {
            true if from_jid.server == Server::Lid => {
                Some(("sender_pn", Jid::pn(from.phone.as_str())))
            }
            true => st
                .accounts
                .get(&from.phone)
                .map(|a| ("sender_lid", Jid::lid(a.lid.as_str()))),
            false => None,
        };
        let mut b = NodeBuilder::new("message")
            .attr("from", from_jid)
            .attr("id", id.clone())
            .attr("type", ty.clone())
            .attr("t", t.clone());
        if let Some((name, jid)) = alt {
            b = b.attr(name, jid);
        }
        if addr.phone == from.phone {
            b = b.attr("recipient", to.to_non_ad());
        } else if !push_name.is_empty() {
            b = b.attr("notify", push_name.clone());
        }
        if let Some(e) = &edit {
            b = b.attr("edit", e.clone());
        }
        let mut children = encs;
        if let Some(di) = &device_identity {
            children.push(di.clone());
        }
        st.deliver(&addr, b.children(children).build());
    }
}

/// Relays delivery/read receipts to the device (or account) they name.
fn on_receipt(st: &mut State, conn: ConnId, node: &Node) {
    let Some(from) = sender(st, conn) else {
        return;
    };
    let id = attr(node, "id").unwrap_or_default();
    let ty = attr(node, "type");
    let to_attr = attr(node, "to").unwrap_or_default();
    let mut ack = NodeBuilder::new("ack")
        .attr("class", "receipt")
        .attr("id", id.clone())
        .attr("from", to_attr);
    if let Some(t) = &ty {
        ack = ack.attr("type", t.clone());
    }
    st.send(conn, ack.build());
    // A call offer's receipt (`<receipt><offer/></receipt>`) belongs to the caller's call
    // signalling, which the mock does not run: it names no message.
    if node
        .children()
        .into_iter()
        .flatten()
        .any(|c| c.tag == "offer")
    {
        return;
    }
    let Some(to) = attr_jid(node, "to") else {
        return;
    };
    // A receipt acks the messages it names (the first id, and any in `<list>`).
    let listed: Vec<String> = node
        .children()
        .into_iter()
        .flatten()
        .filter(|c| c.tag == "list")
        .flat_map(|l| l.children().into_iter().flatten())
        .filter_map(|item| attr(item, "id"))
        .collect();
    for acked in std::iter::once(id.clone()).chain(listed) {
        st.acked(conn, &acked, Some(&to));
    }
    if to.server == Server::Group {
        crate::groups::route_receipt(st, &from, node, &to);
        return;
    }
    let Some(phone) = st.phone_of(&to.to_non_ad()) else {
        return;
    };
    let devices: Vec<u16> = if to.device != 0 {
        vec![to.device]
    } else {
        st.device_ids(&phone)
    };
    let from_jid = st.jid_like(&from, &to);
    for device in devices {
        let addr = DeviceAddr {
            phone: phone.clone(),
            device,
        };
        if addr == from {
            continue;
        }
        let mut b = NodeBuilder::new("receipt")
            .attr("from", from_jid.clone())
            .attr("id", id.clone())
            .attr(
                "t",
                attr(node, "t").unwrap_or_else(|| now_secs().to_string()),
            );
        for key in ["type", "recipient", "participant"] {
            if let Some(v) = attr(node, key) {
                b = b.attr(key, v);
            }
        }
        if let Some(children) = node.children() {
            b = b.children(children.to_vec());
        }
        st.deliver(&addr, b.build());
    }
}

/// Relays typing indicators to the other account's online devices.
fn on_chatstate(st: &mut State, conn: ConnId, node: &Node) {
    let Some(from) = sender(st, conn) else {
        return;
    };
    let Some(to) = attr_jid(node, "to") else {
        return;
    };
    let Some(phone) = st.phone_of(&to.to_non_ad()) else {
        return;
    };
    let from_jid = st.jid_like(&from, &to).to_non_ad();
    let children = node.children().map(<[Node]>::to_vec).unwrap_or_default();
    let targets: Vec<ConnId> = st
        .conns
        .values()
        .filter(|c| c.active && c.device.as_ref().is_some_and(|d| d.phone == phone) && c.id != conn)
        .map(|c| c.id)
        .collect();
    for target in targets {
        let n = NodeBuilder::new("chatstate")
            .attr("from", from_jid.clone())
            .children(children.clone())
            .build();
        st.send(target, n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::SignedPreKey;

    #[test]
    fn the_digest_hash_is_the_one_the_client_computes() {
        let d = DeviceRecord {
            id: 1,
            key_index: 1,
            noise_pub: [0; 32],
            registration_id: 0x0102_0304,
            identity: [7; 32],
            signed_prekey: Some(SignedPreKey {
                id: 1,
                public: [8; 32],
                signature: vec![9; 64],
            }),
            prekeys: [(1, [1; 32]), (2, [2; 32]), (300, [3; 32])].into(),
            device_identity: None,
            platform: String::new(),
            logins: 0,
        };
        let node = digest_node(&d);
        let expected = wacore::prekeys::compute_key_bundle_digest(
            &[7; 32],
            &[8; 32],
            &[9; 64],
            &[&[1; 32], &[2; 32], &[3; 32]],
        );
        assert_eq!(child_bytes(&node, "hash"), Some(expected.as_slice()));
        let list = node.get_optional_child("list").expect("list");
        let ids: Vec<Option<u32>> = list
            .get_children_by_tag("id")
            .map(|c| bytes(c).and_then(be_uint))
            .collect();
        assert_eq!(ids, [Some(1), Some(2), Some(300)]);
    }
}
