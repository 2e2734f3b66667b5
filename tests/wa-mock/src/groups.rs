//! Groups: the `w:g2` IQs, the `w:gp2` notifications that tell members about
//! changes, and the routing of group messages and receipts.
//!
//! # IQs (`xmlns="w:g2"`)
//! To `g.us`: `create`, `participating`, `leave`, and by invite code `<invite
//! code/>` (`get`: the group's info, `set`: join). To a group JID: `query`,
//! `add` / `remove` / `promote` / `demote`, `subject`, `description`,
//! `announcement` / `not_announcement`, `locked` / `unlocked`, `ephemeral` /
//! `not_ephemeral`, `membership_approval_mode`, `member_add_mode`, `invite`
//! (`get`: the link's code, `set`: a new one), `accept` (an `<add_request>`
//! invitation), `membership_approval_requests`, `membership_requests_action`.
//!
//! Refusals, as WhatsApp answers them: an unknown group is `404
//! item-not-found`, a non-member `403 forbidden`, a member without the admin
//! rights a change needs `401 not-authorized`, a description update whose
//! `prev` is not the current description `409 conflict`. Participant changes
//! answer per participant: no `error` when done, `error="404"` for a number
//! not on WhatsApp (or, for remove / promote / demote, not in the group),
//! `error="409"` for someone already in it, `error="403"` with an
//! `<add_request code expiration/>` invitation for someone whose privacy
//! settings refuse being added ([`State::group_add_refused`]).
//!
//! # Notifications
//! Every change is told to every device of every member (the author's devices
//! included, and those of members a change removes) as `<notification
//! type="w:gp2" from=group participant=author id t addressing_mode notify>`
//! (`participant_pn` beside a LID author) with one child: `<create><group/></create>`,
//! `<add>` / `<remove>` / `<promote>` / `<demote>` of `<participant jid/>`s
//! (a member leaving is a `<remove>` of the author; joining by link is
//! `<add reason="invite">`), `<subject subject s_o s_t/>`, `<description
//! id><body/></description>` (or `<delete/>`), `<announcement/>`, ...,
//! `<invite code/>` for a reset link. A join request is told to the admins
//! only (`<created_membership_requests><requested_user/>`). Clients ack them
//! with `<ack class="notification">`, which needs no answer.
//!
//! # Messages
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
use wacore_binary::{Jid, Node, NodeContent, Server};

use crate::stanza::{attr, attr_jid, bytes, first_child, iq_error, iq_result};
use crate::state::{
    AddRequest, DeviceAddr, Group, GroupDescription, GroupMember, JoinRequest, State, now_secs,
};

/// Stanzas to deliver once the IQ is answered: `(device, node)`.
pub type Outbox = Vec<(DeviceAddr, Node)>;

/// How long an `<add_request>` invitation stays valid (WhatsApp gives three days).
const ADD_REQUEST_TTL_SECS: u64 = 3 * 24 * 3600;

/// Answers an IQ in the `w:g2` namespace sent by `from`. Returns the answer and
/// the notifications to deliver after it.
pub fn on_iq(
    st: &mut State,
    from: &DeviceAddr,
    id: &str,
    node: &Node,
    lid_groups: bool,
) -> (Node, Outbox) {
    let mut out = Outbox::new();
    let reply = answer(st, from, id, node, lid_groups, &mut out);
    (reply, out)
}

fn answer(
    st: &mut State,
    from: &DeviceAddr,
    id: &str,
    node: &Node,
    lid_groups: bool,
    out: &mut Outbox,
) -> Node {
    let Some(child) = first_child(node) else {
        return iq_error(id, 400, "bad-request");
    };
    let ty = attr(node, "type").unwrap_or_default();
    // A group JID; `g.us` alone addresses the groups service.
    let group = attr_jid(node, "to").filter(|j| j.server == Server::Group && !j.user.is_empty());
    match (ty.as_str(), child.tag.as_ref(), group) {
        ("set", "create", _) => create(st, from, id, child, lid_groups, out),
        ("get", "participating", _) => {
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
        ("set", "leave", _) => leave(st, from, id, child, out),
        ("get", "invite", None) => match find_code(st, child) {
            Code::Live(gid) => match st.groups.get(&gid) {
                Some(g) => iq_result(id, vec![group_node(st, g)]),
                None => iq_error(id, 406, "not-acceptable"),
            },
            Code::Revoked => iq_error(id, 410, "gone"),
            Code::Unknown => iq_error(id, 406, "not-acceptable"),
        },
        ("set", "invite", None) => match find_code(st, child) {
            Code::Live(gid) => with_group(st, &gid, id, |st, g| join_by_link(st, g, from, id, out)),
            Code::Revoked => iq_error(id, 410, "gone"),
            Code::Unknown => iq_error(id, 406, "not-acceptable"),
        },
        (_, _, Some(g)) => with_group(st, g.user.as_str(), id, |st, g| {
            group_iq(st, g, from, id, &ty, child, out)
        }),
        _ => {
            tracing::debug!(tag = %child.tag, "unhandled w:g2 iq answered with an empty result");
            iq_result(id, vec![])
        }
    }
}

/// Runs `f` on the group `gid` taken out of the state (so `f` may use the
/// state beside it), then puts it back. An unknown group is `404`.
fn with_group(
    st: &mut State,
    gid: &str,
    id: &str,
    f: impl FnOnce(&mut State, &mut Group) -> Node,
) -> Node {
    let Some(mut g) = st.groups.remove(gid) else {
        return iq_error(id, 404, "item-not-found");
    };
    let reply = f(st, &mut g);
    st.groups.insert(g.id.clone(), g);
    reply
}

/// IQs to one group.
fn group_iq(
    st: &mut State,
    g: &mut Group,
    from: &DeviceAddr,
    id: &str,
    ty: &str,
    child: &Node,
    out: &mut Outbox,
) -> Node {
    let actor = from.phone.as_str();
    if (ty, child.tag.as_ref()) == ("set", "accept") {
        return accept_add_request(st, g, actor, id, child, out);
    }
    if !g.has_member(actor) {
        return iq_error(id, 403, "forbidden");
    }
    let admin = g.is_admin(actor);
    // A locked group's info (subject, description, disappearing timer) is the admins'.
    let may_edit_info = admin || !g.locked;
    let tag = child.tag.to_string();
    match (ty, tag.as_str()) {
        ("get", "query") => iq_result(id, vec![group_node(st, g)]),
        ("set", action @ ("add" | "remove" | "promote" | "demote")) => {
            if !(admin || (action == "add" && g.all_member_add)) {
                return not_authorized(id);
            }
            change_participants(st, g, actor, id, action, child, out)
        }
        ("set", "subject") if may_edit_info => set_subject(st, g, actor, id, child, out),
        ("set", "description") if may_edit_info => set_description(st, g, actor, id, child, out),
        ("set", "ephemeral" | "not_ephemeral") if may_edit_info => {
            let expiration = match tag.as_str() {
                "ephemeral" => {
                    match attr(child, "expiration").and_then(|e| e.parse::<u32>().ok()) {
                        Some(e) if e > 0 => e,
                        _ => return iq_error(id, 400, "bad-request"),
                    }
                }
                _ => 0,
            };
            if g.ephemeral != expiration {
                g.ephemeral = expiration;
                let node = match expiration {
                    0 => NodeBuilder::new("not_ephemeral").build(),
                    e => NodeBuilder::new("ephemeral")
                        .attr("expiration", e.to_string())
                        .build(),
                };
                notify(st, g, actor, node, everyone(g, &[]), out);
            }
            iq_result(id, vec![])
        }
        ("set", "subject" | "description" | "ephemeral" | "not_ephemeral") => not_authorized(id),
        // Everything below is the admins'.
        _ if !admin => not_authorized(id),
        ("set", "announcement" | "not_announcement" | "locked" | "unlocked") => {
            let on = !tag.starts_with("not_") && tag != "unlocked";
            let field = if tag.ends_with("announcement") {
                &mut g.announcement
            } else {
                &mut g.locked
            };
            let changed = *field != on;
            *field = on;
            if changed {
                notify(
                    st,
                    g,
                    actor,
                    NodeBuilder::new_dynamic(tag.clone()).build(),
                    everyone(g, &[]),
                    out,
                );
            }
            iq_result(id, vec![])
        }
        ("set", "membership_approval_mode") => {
            let on = match child
                .get_optional_child("group_join")
                .and_then(|j| attr(j, "state"))
                .as_deref()
            {
                Some("on") => true,
                Some("off") => false,
                _ => return iq_error(id, 400, "bad-request"),
            };
            if g.membership_approval != on {
                g.membership_approval = on;
                notify(st, g, actor, approval_mode_node(on), everyone(g, &[]), out);
            }
            iq_result(id, vec![])
        }
        ("set", "member_add_mode") => {
            let mode = bytes(child).map(|b| String::from_utf8_lossy(b).into_owned());
            let all = match mode.as_deref() {
                Some("all_member_add") => true,
                Some("admin_add") => false,
                _ => return iq_error(id, 400, "bad-request"),
            };
            if g.all_member_add != all {
                g.all_member_add = all;
                notify(
                    st,
                    g,
                    actor,
                    member_add_mode_node(all),
                    everyone(g, &[]),
                    out,
                );
            }
            iq_result(id, vec![])
        }
        ("get", "invite") => {
            let code = g.invite_code.get_or_insert_with(|| random_code(22)).clone();
            iq_result(id, vec![invite_node(&code)])
        }
        ("set", "invite") => {
            if let Some(old) = g.invite_code.take() {
                g.revoked_invites.push(old);
            }
            let code = random_code(22);
            g.invite_code = Some(code.clone());
            notify(st, g, actor, invite_node(&code), everyone(g, &[]), out);
            iq_result(id, vec![invite_node(&code)])
        }
        ("get", "membership_approval_requests") => {
            let requests: Vec<Node> = g
                .join_requests
                .iter()
                .map(|r| {
                    let (jid, other) = member_jids(st, g, &r.phone);
                    let mut b = NodeBuilder::new("membership_approval_request")
                        .attr("jid", jid)
                        .attr("request_time", r.time.to_string());
                    if g.lid_addressed
                        && let Some(pn) = other
                    {
                        b = b.attr("phone_number", pn);
                    }
                    b.build()
                })
                .collect();
            iq_result(
                id,
                vec![
                    NodeBuilder::new("membership_approval_requests")
                        .children(requests)
                        .build(),
                ],
            )
        }
        ("set", "membership_requests_action") => {
            membership_requests_action(st, g, actor, id, child, out)
        }
        _ => {
            tracing::debug!(%tag, "unhandled w:g2 group iq answered with an empty result");
            iq_result(id, vec![])
        }
    }
}

fn not_authorized(id: &str) -> Node {
    iq_error(id, 401, "not-authorized")
}

fn invite_node(code: &str) -> Node {
    NodeBuilder::new("invite").attr("code", code).build()
}

fn approval_mode_node(on: bool) -> Node {
    NodeBuilder::new("membership_approval_mode")
        .children([NodeBuilder::new("group_join")
            .attr("state", if on { "on" } else { "off" })
            .build()])
        .build()
}

fn member_add_mode_node(all: bool) -> Node {
    NodeBuilder::new("member_add_mode")
        .string_content(if all { "all_member_add" } else { "admin_add" })
        .build()
}

/// `len` characters of `[A-Za-z0-9]`, as invite codes are.
fn random_code(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..len)
        .filter_map(|_| {
            let r: u8 = rand::random();
            ALPHABET
                .get(usize::from(r) % ALPHABET.len())
                .map(|c| char::from(*c))
        })
        .collect()
}

/// The phone of the user a `<participant jid [phone_number]>` names.
fn resolve(st: &State, p: &Node) -> Option<String> {
    attr_jid(p, "jid")
        .and_then(|j| st.phone_of(&j.to_non_ad()))
        .or_else(|| attr_jid(p, "phone_number").and_then(|j| st.phone_of(&j.to_non_ad())))
}

/// `<participant jid lid|phone_number>` naming `phone` in the group's addressing.
fn participant(st: &State, g: &Group, phone: &str) -> NodeBuilder {
    let (jid, other) = member_jids(st, g, phone);
    let mut b = NodeBuilder::new("participant").attr("jid", jid);
    if let Some(other) = other {
        b = b.attr(
            if g.lid_addressed {
                "phone_number"
            } else {
                "lid"
            },
            other,
        );
    }
    b
}

/// The members' phones, and `extra` ones (members a change removed).
fn everyone(g: &Group, extra: &[String]) -> Vec<String> {
    let mut phones: Vec<String> = g.members.iter().map(|m| m.phone.clone()).collect();
    for p in extra {
        if !phones.contains(p) {
            phones.push(p.clone());
        }
    }
    phones
}

/// The admins' phones, and `extra` ones.
fn admins(g: &Group, extra: &[String]) -> Vec<String> {
    let mut phones: Vec<String> = g
        .members
        .iter()
        .filter(|m| m.role.is_some())
        .map(|m| m.phone.clone())
        .collect();
    for p in extra {
        if !phones.contains(p) {
            phones.push(p.clone());
        }
    }
    phones
}

/// Queues `<notification type="w:gp2">` with `action` by `actor` for every
/// device of `recipients`.
fn notify(
    st: &mut State,
    g: &Group,
    actor: &str,
    action: Node,
    recipients: Vec<String>,
    out: &mut Outbox,
) {
    let id = st.new_id();
    let (actor_jid, actor_other) = member_jids(st, g, actor);
    let mut b = NodeBuilder::new("notification")
        .attr("from", g.jid())
        .attr("type", "w:gp2")
        .attr("id", id)
        .attr("t", now_secs().to_string())
        .attr("participant", actor_jid)
        .attr(
            "addressing_mode",
            if g.lid_addressed { "lid" } else { "pn" },
        );
    if g.lid_addressed
        && let Some(pn) = actor_other
    {
        b = b.attr("participant_pn", pn);
    }
    if let Some(name) = st
        .accounts
        .get(actor)
        .map(|a| a.push_name.clone())
        .filter(|n| !n.is_empty())
    {
        b = b.attr("notify", name);
    }
    let node = b.children([action]).build();
    tracing::info!(group = %g.jid(), tag = %first_child(&node).map(|c| c.tag.to_string()).unwrap_or_default(), "group notification");
    for phone in recipients {
        for device in st.device_ids(&phone) {
            // Device 0 is the mock phone: nothing is delivered to it.
            if device != 0 {
                out.push((
                    DeviceAddr {
                        phone: phone.clone(),
                        device,
                    },
                    node.clone(),
                ));
            }
        }
    }
}

fn create(
    st: &mut State,
    from: &DeviceAddr,
    id: &str,
    create: &Node,
    lid_addressed: bool,
    out: &mut Outbox,
) -> Node {
    let subject = attr(create, "subject").unwrap_or_default();
    if subject.trim().is_empty() {
        return iq_error(id, 400, "bad-request");
    }
    let mut members = vec![GroupMember {
        phone: from.phone.clone(),
        role: Some("superadmin".into()),
    }];
    let mut refused: Vec<String> = Vec::new();
    for p in create.get_children_by_tag("participant") {
        // A LID participant may carry its phone number beside it.
        match resolve(st, p) {
            Some(phone) if members.iter().any(|m| m.phone == phone) || refused.contains(&phone) => {
            }
            Some(phone) if st.group_add_refused.contains(&phone) => refused.push(phone),
            Some(phone) => members.push(GroupMember { phone, role: None }),
            None => tracing::debug!(
                jid = attr(p, "jid").unwrap_or_default(),
                "group create: unknown participant left out"
            ),
        }
    }
    let n = st.next_group;
    st.next_group += 1;
    let mut group = Group::new(
        format!("120363{:012}", n),
        subject,
        from.phone.clone(),
        members,
        lid_addressed,
    );
    // Whoever refuses being added is named with an invitation, not made a member.
    let refusals: Vec<Node> = refused
        .iter()
        .map(|phone| {
            let req = add_request(&mut group, phone, &from.phone);
            participant(st, &group, phone)
                .attr("error", "403")
                .children([add_request_node(&req)])
                .build()
        })
        .collect();
    tracing::info!(group = %group.jid(), members = group.members.len(), "group created");
    let mut answer = group_node(st, &group);
    if let Some(NodeContent::Nodes(children)) = &mut answer.content {
        children.extend(refusals);
    }
    let mut note = NodeBuilder::new("create");
    if let Some(key) = attr(create, "key") {
        note = note.attr("key", key);
    }
    let note = note.children([group_node(st, &group)]).build();
    notify(st, &group, &from.phone, note, everyone(&group, &[]), out);
    st.groups.insert(group.id.clone(), group);
    iq_result(id, vec![answer])
}

/// Records an invitation for `phone`, whose privacy refused `admin`'s add.
fn add_request(g: &mut Group, phone: &str, admin: &str) -> AddRequest {
    let req = AddRequest {
        phone: phone.to_string(),
        code: random_code(16),
        expiration: now_secs() + ADD_REQUEST_TTL_SECS,
        admin: admin.to_string(),
    };
    g.add_requests.retain(|r| r.phone != phone);
    g.add_requests.push(req.clone());
    req
}

fn add_request_node(req: &AddRequest) -> Node {
    NodeBuilder::new("add_request")
        .attr("code", req.code.clone())
        .attr("expiration", req.expiration.to_string())
        .build()
}

/// `add` / `remove` / `promote` / `demote`: answered per participant.
fn change_participants(
    st: &mut State,
    g: &mut Group,
    actor: &str,
    id: &str,
    action: &str,
    child: &Node,
    out: &mut Outbox,
) -> Node {
    let mut answers = Vec::new();
    let mut changed: Vec<String> = Vec::new();
    for p in child.get_children_by_tag("participant") {
        let Some(asked) = attr_jid(p, "jid") else {
            continue;
        };
        let Some(phone) = resolve(st, p) else {
            // Not on WhatsApp.
            answers.push(
                NodeBuilder::new("participant")
                    .attr("jid", asked)
                    .attr("error", "404")
                    .build(),
            );
            continue;
        };
        let b = participant(st, g, &phone);
        let answer = match action {
            "add" if g.has_member(&phone) => b.attr("error", "409").build(),
            "add" if st.group_add_refused.contains(&phone) => {
                let req = add_request(g, &phone, actor);
                b.attr("error", "403")
                    .children([add_request_node(&req)])
                    .build()
            }
            "add" => {
                g.members.push(GroupMember {
                    phone: phone.clone(),
                    role: None,
                });
                g.join_requests.retain(|r| r.phone != phone);
                g.add_requests.retain(|r| r.phone != phone);
                b.build()
            }
            _ if !g.has_member(&phone) => b.attr("error", "404").build(),
            "remove" => {
                g.members.retain(|m| m.phone != phone);
                b.build()
            }
            _ => {
                let role = (action == "promote").then(|| "admin".to_string());
                for m in g.members.iter_mut().filter(|m| m.phone == phone) {
                    // Promoting the creator leaves them superadmin.
                    if role.is_none() || m.role.is_none() {
                        m.role = role.clone();
                    }
                }
                b.build()
            }
        };
        if attr(&answer, "error").is_none() {
            changed.push(phone);
        }
        answers.push(answer);
    }
    if !changed.is_empty() {
        let note = NodeBuilder::new_dynamic(action.to_string())
            .children(changed.iter().map(|p| participant(st, g, p).build()))
            .build();
        let removed: &[String] = if action == "remove" { &changed } else { &[] };
        notify(st, g, actor, note, everyone(g, removed), out);
    }
    iq_result(
        id,
        vec![
            NodeBuilder::new_dynamic(action.to_string())
                .children(answers)
                .build(),
        ],
    )
}

fn set_subject(
    st: &mut State,
    g: &mut Group,
    actor: &str,
    id: &str,
    child: &Node,
    out: &mut Outbox,
) -> Node {
    let subject = bytes(child)
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default();
    if subject.trim().is_empty() {
        return iq_error(id, 400, "bad-request");
    }
    g.subject = subject.clone();
    g.subject_owner = actor.to_string();
    g.subject_time = now_secs();
    let (owner, owner_other) = member_jids(st, g, actor);
    let mut b = NodeBuilder::new("subject")
        .attr("subject", subject)
        .attr("s_o", owner)
        .attr("s_t", g.subject_time.to_string());
    if g.lid_addressed
        && let Some(pn) = owner_other
    {
        b = b.attr("s_o_pn", pn);
    }
    notify(st, g, actor, b.build(), everyone(g, &[]), out);
    iq_result(id, vec![])
}

/// `<description id prev><body/></description>`, or `delete="true"`; `prev`
/// must name the current description (none when there is none).
fn set_description(
    st: &mut State,
    g: &mut Group,
    actor: &str,
    id: &str,
    child: &Node,
    out: &mut Outbox,
) -> Node {
    let prev = attr(child, "prev");
    if prev.as_deref() != g.description.as_ref().map(|d| d.id.as_str()) {
        return iq_error(id, 409, "conflict");
    }
    let new_id = attr(child, "id").unwrap_or_else(|| random_code(8));
    let body = child
        .get_optional_child("body")
        .and_then(bytes)
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .filter(|b| !b.is_empty());
    let delete = attr(child, "delete").as_deref() == Some("true");
    let note = match body {
        Some(body) if !delete => {
            g.description = Some(GroupDescription {
                id: new_id.clone(),
                body: body.clone(),
                owner: actor.to_string(),
                time: now_secs(),
            });
            NodeBuilder::new("description")
                .attr("id", new_id)
                .children([NodeBuilder::new("body").string_content(body).build()])
                .build()
        }
        _ => {
            if g.description.take().is_none() {
                return iq_result(id, vec![]);
            }
            NodeBuilder::new("description")
                .attr("id", new_id)
                .children([NodeBuilder::new("delete").build()])
                .build()
        }
    };
    notify(st, g, actor, note, everyone(g, &[]), out);
    iq_result(id, vec![])
}

/// `<leave><group id/>..</leave>` to `g.us`.
fn leave(st: &mut State, from: &DeviceAddr, id: &str, child: &Node, out: &mut Outbox) -> Node {
    let mut left = Vec::new();
    let mut failure = None;
    for gn in child.get_children_by_tag("group") {
        let Some(gid) = attr_jid(gn, "id")
            .map(|j| j.user.to_string())
            .or_else(|| attr(gn, "id"))
        else {
            continue;
        };
        let Some(mut g) = st.groups.remove(&gid) else {
            failure.get_or_insert((404, "item-not-found"));
            continue;
        };
        if g.has_member(&from.phone) {
            g.members.retain(|m| m.phone != from.phone);
            g.join_requests.retain(|r| r.phone != from.phone);
            // Leaving is a removal by oneself.
            let note = NodeBuilder::new("remove")
                .children([participant(st, &g, &from.phone).build()])
                .build();
            let recipients = everyone(&g, std::slice::from_ref(&from.phone));
            notify(st, &g, &from.phone, note, recipients, out);
            tracing::info!(group = %g.jid(), phone = %from.phone, "left the group");
            left.push(NodeBuilder::new("group").attr("id", g.jid()).build());
        } else {
            failure.get_or_insert((403, "forbidden"));
        }
        st.groups.insert(g.id.clone(), g);
    }
    match failure {
        Some((code, text)) if left.is_empty() => iq_error(id, code, text),
        _ => iq_result(id, vec![NodeBuilder::new("leave").children(left).build()]),
    }
}

enum Code {
    /// A group's current invite code.
    Live(String),
    /// A code of a link that was reset.
    Revoked,
    Unknown,
}

fn find_code(st: &State, invite: &Node) -> Code {
    let code = attr(invite, "code").unwrap_or_default();
    if code.is_empty() {
        return Code::Unknown;
    }
    if let Some(g) = st
        .groups
        .values()
        .find(|g| g.invite_code.as_deref() == Some(code.as_str()))
    {
        return Code::Live(g.id.clone());
    }
    if st
        .groups
        .values()
        .any(|g| g.revoked_invites.contains(&code))
    {
        return Code::Revoked;
    }
    Code::Unknown
}

/// `<invite code/>` to `g.us`: joins, or asks the admins when approval is on.
fn join_by_link(
    st: &mut State,
    g: &mut Group,
    from: &DeviceAddr,
    id: &str,
    out: &mut Outbox,
) -> Node {
    let phone = from.phone.as_str();
    if g.has_member(phone) {
        return iq_error(id, 304, "not-modified");
    }
    if g.membership_approval {
        if !g.join_requests.iter().any(|r| r.phone == phone) {
            g.join_requests.push(JoinRequest {
                phone: phone.to_string(),
                time: now_secs(),
            });
            let (jid, other) = member_jids(st, g, phone);
            let mut user = NodeBuilder::new("requested_user").attr("jid", jid);
            if g.lid_addressed
                && let Some(pn) = other
            {
                user = user.attr("phone_number", pn);
            }
            let note = NodeBuilder::new("created_membership_requests")
                .attr("request_method", "invite_link")
                .children([user.build()])
                .build();
            notify(st, g, phone, note, admins(g, &[]), out);
        }
        return iq_result(
            id,
            vec![
                NodeBuilder::new("membership_approval_request")
                    .attr("jid", g.jid())
                    .build(),
            ],
        );
    }
    tracing::info!(group = %g.jid(), %phone, "joined by invite link");
    admit(st, g, phone, Some("invite"), id, out)
}

/// `phone` joins `g` on its own (by a link or an invitation): every member is told with an
/// `<add>` the joiner authored; the IQ answers the group's JID.
fn admit(
    st: &mut State,
    g: &mut Group,
    phone: &str,
    reason: Option<&str>,
    id: &str,
    out: &mut Outbox,
) -> Node {
    g.members.push(GroupMember {
        phone: phone.to_string(),
        role: None,
    });
    let mut note = NodeBuilder::new("add");
    if let Some(r) = reason {
        note = note.attr("reason", r);
    }
    let note = note.children([participant(st, g, phone).build()]).build();
    notify(st, g, phone, note, everyone(g, &[]), out);
    iq_result(
        id,
        vec![NodeBuilder::new("group").attr("jid", g.jid()).build()],
    )
}

/// `<accept code expiration admin/>`: takes up an `<add_request>` invitation.
fn accept_add_request(
    st: &mut State,
    g: &mut Group,
    phone: &str,
    id: &str,
    child: &Node,
    out: &mut Outbox,
) -> Node {
    let code = attr(child, "code").unwrap_or_default();
    let Some(req) = g
        .add_requests
        .iter()
        .find(|r| r.phone == phone && r.code == code)
        .cloned()
    else {
        return iq_error(id, 406, "not-acceptable");
    };
    g.add_requests.retain(|r| r.phone != phone);
    if req.expiration < now_secs() {
        return iq_error(id, 410, "gone");
    }
    if g.has_member(phone) {
        return iq_error(id, 304, "not-modified");
    }
    g.join_requests.retain(|r| r.phone != phone);
    tracing::info!(group = %g.jid(), %phone, "joined by an add request invitation");
    admit(st, g, phone, None, id, out)
}

/// `<membership_requests_action><approve|reject><participant/>..`.
fn membership_requests_action(
    st: &mut State,
    g: &mut Group,
    actor: &str,
    id: &str,
    child: &Node,
    out: &mut Outbox,
) -> Node {
    let Some(action) = first_child(child) else {
        return iq_error(id, 400, "bad-request");
    };
    let approve = match action.tag.as_ref() {
        "approve" => true,
        "reject" => false,
        _ => return iq_error(id, 400, "bad-request"),
    };
    let mut answers = Vec::new();
    let mut done: Vec<String> = Vec::new();
    for p in action.get_children_by_tag("participant") {
        let Some(asked) = attr_jid(p, "jid") else {
            continue;
        };
        let phone = resolve(st, p).filter(|ph| g.join_requests.iter().any(|r| r.phone == *ph));
        let Some(phone) = phone else {
            answers.push(
                NodeBuilder::new("participant")
                    .attr("jid", asked)
                    .attr("error", "404")
                    .build(),
            );
            continue;
        };
        g.join_requests.retain(|r| r.phone != phone);
        if approve && !g.has_member(&phone) {
            g.members.push(GroupMember {
                phone: phone.clone(),
                role: None,
            });
        }
        answers.push(participant(st, g, &phone).build());
        done.push(phone);
    }
    if !done.is_empty() {
        let children: Vec<Node> = done.iter().map(|p| participant(st, g, p).build()).collect();
        if approve {
            let note = NodeBuilder::new("add").children(children).build();
            notify(st, g, actor, note, everyone(g, &[]), out);
        } else {
            let note = NodeBuilder::new("revoked_membership_requests")
                .children(children)
                .build();
            notify(st, g, actor, note, admins(g, &done), out);
        }
    }
    iq_result(
        id,
        vec![
            NodeBuilder::new("membership_requests_action")
                .children([NodeBuilder::new_dynamic(action.tag.to_string())
                    .children(answers)
                    .build()])
                .build(),
        ],
    )
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

/// `<group id subject s_o s_t creator creation addressing_mode size>` with
/// `<participant jid lid|phone_number type/>`s and the group's settings.
pub fn group_node(st: &State, g: &Group) -> Node {
    let mut children: Vec<Node> = g
        .members
        .iter()
        .map(|m| {
            let mut b = participant(st, g, &m.phone);
            if let Some(role) = &m.role {
                b = b.attr("type", role.clone());
            }
            b.build()
        })
        .collect();
    if let Some(d) = &g.description {
        let (owner, owner_other) = member_jids(st, g, &d.owner);
        let mut b = NodeBuilder::new("description")
            .attr("id", d.id.clone())
            .attr("participant", owner)
            .attr("t", d.time.to_string());
        if g.lid_addressed
            && let Some(pn) = owner_other
        {
            b = b.attr("participant_pn", pn);
        }
        children.push(
            b.children([NodeBuilder::new("body")
                .string_content(d.body.clone())
                .build()])
                .build(),
        );
    }
    if g.announcement {
        children.push(NodeBuilder::new("announcement").build());
    }
    if g.locked {
        children.push(NodeBuilder::new("locked").build());
    }
    if g.ephemeral > 0 {
        children.push(
            NodeBuilder::new("ephemeral")
                .attr("expiration", g.ephemeral.to_string())
                .build(),
        );
    }
    if g.membership_approval {
        children.push(approval_mode_node(true));
    }
    children.push(member_add_mode_node(g.all_member_add));
    let (creator, creator_other) = member_jids(st, g, &g.creator);
    let (s_o, s_o_other) = member_jids(st, g, &g.subject_owner);
    let mut b = NodeBuilder::new("group")
        .attr("id", g.id.clone())
        .attr("subject", g.subject.clone())
        .attr("s_t", g.subject_time.to_string())
        .attr("s_o", s_o)
        .attr("creator", creator)
        .attr("creation", g.creation.to_string())
        .attr(
            "addressing_mode",
            if g.lid_addressed { "lid" } else { "pn" },
        )
        .attr("size", g.members.len().to_string());
    if g.lid_addressed {
        if let Some(pn) = creator_other {
            b = b.attr("creator_pn", pn);
        }
        if let Some(pn) = s_o_other {
            b = b.attr("s_o_pn", pn);
        }
    }
    b.children(children).build()
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
