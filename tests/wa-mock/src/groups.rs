//! Groups: the `w:g2` IQs (create, query, participating) and the routing of
//! group messages and receipts.
//!
//! A sender encrypts a group message once with its sender key (`<enc
//! type="skmsg">`) and adds, for every device that does not hold that key
//! yet, a pairwise `<to jid=device><enc type="pkmsg|msg"/></to>` inside
//! `<participants>` carrying the sender-key distribution message. The server
//! fans out one stanza per member device: `from` the group, `participant`
//! the sending device (device-qualified, so the pairwise part decrypts),
//! that device's pairwise `enc` when there is one, then the `skmsg`.
//!
//! A PN-addressed group (`addressing_mode="pn"`, the default) names members by
//! phone number, with their LIDs as `lid` on `<participant>` and
//! `participant_lid` on messages; a LID-addressed one (`MockConfig::lid_groups`)
//! names them by LID, with `phone_number` and `participant_pn` beside. Either
//! way a receiver learns both identities of the sender.

use std::collections::HashMap;

use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Jid, Node, Server};

use crate::stanza::{attr, attr_jid, first_child, iq_error, iq_result};
use crate::state::{DeviceAddr, Group, GroupMember, State, now_secs};

/// Answers an IQ in the `w:g2` namespace sent by `from`.
pub fn on_iq(st: &mut State, from: &DeviceAddr, id: &str, node: &Node, lid_groups: bool) -> Node {
    let Some(child) = first_child(node) else {
        return iq_error(id, 400, "bad-request");
    };
    let ty = attr(node, "type").unwrap_or_default();
    match (ty.as_str(), child.tag.as_ref()) {
        ("set", "create") => create(st, from, id, child, lid_groups),
        ("get", "query") => {
            let Some(to) = attr_jid(node, "to").filter(|j| j.server == Server::Group) else {
                return iq_error(id, 400, "bad-request");
            };
            match st.groups.get(to.user.as_str()) {
                None => iq_error(id, 404, "item-not-found"),
                Some(g) if !g.has_member(&from.phone) => iq_error(id, 403, "forbidden"),
                Some(g) => iq_result(id, vec![group_node(st, g)]),
            }
        }
        ("get", "participating") => {
            let groups: Vec<Node> = st
                .groups
                .values()
                .filter(|g| g.has_member(&from.phone))
                .map(|g| group_node(st, g))
                .collect();
            iq_result(
                id,
                vec![NodeBuilder::new("groups").children(groups).build()],
            )
        }
        _ => {
            tracing::debug!(tag = %child.tag, "unhandled w:g2 iq answered with an empty result");
            iq_result(id, vec![])
        }
    }
}

fn create(st: &mut State, from: &DeviceAddr, id: &str, create: &Node, lid_addressed: bool) -> Node {
    let subject = attr(create, "subject").unwrap_or_default();
    if subject.trim().is_empty() {
        return iq_error(id, 400, "bad-request");
    }
    let mut members = vec![GroupMember {
        phone: from.phone.clone(),
        role: Some("superadmin".into()),
    }];
    for p in create.get_children_by_tag("participant") {
        // A LID participant may carry its phone number beside it.
        let phone = attr_jid(p, "jid")
            .and_then(|j| st.phone_of(&j.to_non_ad()))
            .or_else(|| attr_jid(p, "phone_number").and_then(|j| st.phone_of(&j.to_non_ad())));
        match phone {
            Some(phone) if !members.iter().any(|m| m.phone == phone) => {
                members.push(GroupMember { phone, role: None });
            }
            Some(_) => {}
            None => tracing::debug!(
                jid = attr(p, "jid").unwrap_or_default(),
                "group create: unknown participant left out"
            ),
        }
    }
    let n = st.next_group;
    st.next_group += 1;
    let group = Group {
        id: format!("120363{:012}", n),
        subject,
        creator: from.phone.clone(),
        creation: now_secs(),
        members,
        lid_addressed,
    };
    tracing::info!(group = %group.jid(), members = group.members.len(), "group created");
    let node = group_node(st, &group);
    st.groups.insert(group.id.clone(), group);
    iq_result(id, vec![node])
}

/// A member's JID in the group's address family (LID or PN), and the other one.
fn member_jids(st: &State, g: &Group, phone: &str) -> (Jid, Option<Jid>) {
    let pn = Jid::pn(phone);
    let lid = st.accounts.get(phone).map(|a| Jid::lid(a.lid.as_str()));
    match (g.lid_addressed, lid) {
        (true, Some(lid)) => (lid, Some(pn)),
        (_, lid) => (pn, lid),
    }
}

/// `<group id subject creator creation addressing_mode><participant jid lid|phone_number type/>..`.
pub fn group_node(st: &State, g: &Group) -> Node {
    let (mode, other_attr) = if g.lid_addressed {
        ("lid", "phone_number")
    } else {
        ("pn", "lid")
    };
    let participants: Vec<Node> = g
        .members
        .iter()
        .map(|m| {
            let (jid, other) = member_jids(st, g, &m.phone);
            let mut b = NodeBuilder::new("participant").attr("jid", jid);
            if let Some(other) = other {
                b = b.attr(other_attr, other);
            }
            if let Some(role) = &m.role {
                b = b.attr("type", role.clone());
            }
            b.build()
        })
        .collect();
    let (creator, creator_other) = member_jids(st, g, &g.creator);
    let mut b = NodeBuilder::new("group")
        .attr("id", g.id.clone())
        .attr("subject", g.subject.clone())
        .attr("s_t", g.creation.to_string())
        .attr("s_o", creator.clone())
        .attr("creator", creator)
        .attr("creation", g.creation.to_string())
        .attr("addressing_mode", mode)
        .attr("size", g.members.len().to_string());
    if g.lid_addressed
        && let Some(pn) = creator_other
    {
        b = b.attr("creator_pn", pn);
    }
    b.children(participants).build()
}

/// Fans a group message from `from` out to every other member device.
/// Returns false when the group is unknown or `from` is not a member.
pub fn route_message(st: &mut State, from: &DeviceAddr, node: &Node, to: &Jid, t: &str) -> bool {
    let Some(group) = st.groups.get(to.user.as_str()) else {
        tracing::debug!(group = %to, "message to an unknown group dropped");
        return false;
    };
    if !group.has_member(&from.phone) {
        tracing::debug!(group = %to, sender = %from.pn_jid(), "message from a non-member dropped");
        return false;
    }
    let members: Vec<String> = group.members.iter().map(|m| m.phone.clone()).collect();
    let lid_addressed = group.lid_addressed;
    let id = attr(node, "id").unwrap_or_default();
    let ty = attr(node, "type").unwrap_or_else(|| "text".into());
    let edit = attr(node, "edit");
    let (push_name, lid) = st
        .accounts
        .get(&from.phone)
        .map(|a| (a.push_name.clone(), a.lid.clone()))
        .unwrap_or_default();

    // Pairwise parts (the sender-key distribution) by destination device.
    let mut pairwise: HashMap<DeviceAddr, Vec<Node>> = HashMap::new();
    if let Some(parts) = node.get_optional_child("participants") {
        for to_node in parts.get_children_by_tag("to") {
            let Some(dj) = attr_jid(to_node, "jid") else {
                continue;
            };
            let Some(phone) = st.phone_of(&dj.to_non_ad()) else {
                continue;
            };
            let encs = to_node.children().map(<[Node]>::to_vec).unwrap_or_default();
            pairwise
                .entry(DeviceAddr {
                    phone,
                    device: dj.device,
                })
                .or_default()
                .extend(encs);
        }
    }
    let group_encs: Vec<Node> = node.get_children_by_tag("enc").cloned().collect();
    let device_identity = node.get_optional_child("device-identity").cloned();

    for phone in members {
        for device in st.device_ids(&phone) {
            let addr = DeviceAddr {
                phone: phone.clone(),
                device,
            };
            if addr == *from {
                continue;
            }
            let mut children = pairwise.remove(&addr).unwrap_or_default();
            if !children.is_empty()
                && let Some(di) = &device_identity
            {
                children.push(di.clone());
            }
            children.extend(group_encs.iter().cloned());
            if children.is_empty() {
                continue;
            }
            let mut b = NodeBuilder::new("message").attr("from", to.clone());
            b = match (lid_addressed, lid.is_empty()) {
                (true, false) => b
                    .attr("participant", Jid::lid_device(lid.as_str(), from.device))
                    .attr("participant_pn", Jid::pn(from.phone.as_str()))
                    .attr("addressing_mode", "lid"),
                (false, false) => b
                    .attr("participant", from.pn_jid())
                    .attr("participant_lid", Jid::lid(lid.as_str()))
                    .attr("addressing_mode", "pn"),
                (_, true) => b
                    .attr("participant", from.pn_jid())
                    .attr("addressing_mode", "pn"),
            };
            b = b
                .attr("id", id.clone())
                .attr("type", ty.clone())
                .attr("t", t.to_string());
            if !push_name.is_empty() {
                b = b.attr("notify", push_name.clone());
            }
            if let Some(e) = &edit {
                b = b.attr("edit", e.clone());
            }
            st.deliver(&addr, b.children(children).build());
        }
    }
    for addr in pairwise.keys() {
        tracing::debug!(device = %addr.pn_jid(), "sender-key part for a non-member device dropped");
    }
    true
}

/// Relays a receipt for a group message to the devices of the message's
/// sender (named by `participant`): `from` the group, `participant` the reader.
pub fn route_receipt(st: &mut State, from: &DeviceAddr, node: &Node, group: &Jid) {
    let Some(sender) = attr_jid(node, "participant") else {
        return;
    };
    let Some(phone) = st.phone_of(&sender.to_non_ad()) else {
        return;
    };
    if st
        .groups
        .get(group.user.as_str())
        .is_none_or(|g| !g.has_member(&from.phone))
    {
        return;
    }
    let id = attr(node, "id").unwrap_or_default();
    let reader = match st.groups.get(group.user.as_str()) {
        Some(g) if g.lid_addressed => st.jid_like(from, &Jid::lid("0")),
        _ => from.pn_jid(),
    };
    for device in st.device_ids(&phone) {
        let addr = DeviceAddr {
            phone: phone.clone(),
            device,
        };
        if addr == *from {
            continue;
        }
        let mut b = NodeBuilder::new("receipt")
            .attr("from", group.clone())
            .attr("participant", reader.clone())
            .attr("id", id.clone())
            .attr(
                "t",
                attr(node, "t").unwrap_or_else(|| now_secs().to_string()),
            );
        if let Some(v) = attr(node, "type") {
            b = b.attr("type", v);
        }
        if let Some(children) = node.children() {
            b = b.children(children.to_vec());
        }
        st.deliver(&addr, b.build());
    }
}
