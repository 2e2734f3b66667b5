//! Profiles: the about text, the profile picture and the business flag of an account, as
//! the usync `status` / `picture` / `business` protocols, the `w:profile:picture` IQ and the
//! `status` IQ show and change them.
//!
//! Shapes (checked against wacore's usync parser and whatsmeow's `GetUserInfo` /
//! `GetProfilePictureInfo`):
//! - usync user: `<status t="..">about</status>` (hidden: `<status code="401"/>`),
//!   `<picture id="<digits>"/>` only when there is one and it is visible, `<business/>` only
//!   for business accounts (a client takes any `<business>` node as "is business");
//! - picture get: `<picture id url direct_path type/>`, or IQ error 404 (none) / 401
//!   (hidden by privacy);
//! - picture set (own, no `target`): `<picture type="image">JPEG</picture>` answered
//!   `<picture id="NEW"/>`; no child removes it; a body that is not a JPEG is 406;
//! - status set: `<status>text</status>`, empty result.

use wacore_binary::Node;
use wacore_binary::builder::NodeBuilder;

use crate::stanza::{attr, attr_jid, bytes, iq_error, iq_result};
use crate::state::{Account, State, now_secs};

/// What an account shows of itself.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    /// The about text and when it was set (unix seconds).
    pub about: Option<(String, u64)>,
    /// The profile picture: its id and JPEG bytes.
    pub picture: Option<(u64, Vec<u8>)>,
    /// A WhatsApp Business account.
    pub business: bool,
    /// Privacy "nobody" for the about text.
    pub about_hidden: bool,
    /// Privacy "nobody" for the profile picture.
    pub picture_hidden: bool,
}

/// The direct path a picture is served at by the media host.
pub fn picture_path(phone: &str, id: u64) -> String {
    format!("/v/t61.24694-24/mock-pp-{phone}-{id}.jpg")
}

/// The usync children of `protocols` this module answers for a registered user.
pub fn usync_children(acc: &Account, proto: &str) -> Option<Node> {
    let p = &acc.profile;
    match proto {
        "status" if p.about_hidden => Some(NodeBuilder::new("status").attr("code", "401").build()),
        "status" => Some(match &p.about {
            Some((text, t)) => NodeBuilder::new("status")
                .attr("t", t.to_string())
                .string_content(text.clone())
                .build(),
            None => NodeBuilder::new("status").build(),
        }),
        "picture" => match &p.picture {
            Some((id, _)) if !p.picture_hidden => Some(
                NodeBuilder::new("picture")
                    .attr("id", id.to_string())
                    .build(),
            ),
            _ => None,
        },
        "business" if p.business => Some(NodeBuilder::new("business").build()),
        _ => None,
    }
}

/// `w:profile:picture` get: the picture of `target` (the asking account's own when absent).
pub fn picture_get(st: &State, media_host: Option<&str>, own: &str, id: &str, node: &Node) -> Node {
    let phone = match attr_jid(node, "target") {
        Some(t) => st.phone_of(&t.to_non_ad()),
        None => Some(own.to_string()),
    };
    let Some(acc) = phone.and_then(|p| st.accounts.get(&p)) else {
        return iq_error(id, 404, "item-not-found");
    };
    let p = &acc.profile;
    if p.picture_hidden && acc.phone != own {
        return iq_error(id, 401, "not-authorized");
    }
    let (Some((pic, _)), Some(host)) = (&p.picture, media_host) else {
        return iq_error(id, 404, "item-not-found");
    };
    let kind = node
        .get_optional_child("picture")
        .and_then(|c| attr(c, "type"))
        .unwrap_or_else(|| "image".into());
    let path = picture_path(&acc.phone, *pic);
    iq_result(
        id,
        vec![
            NodeBuilder::new("picture")
                .attr("id", pic.to_string())
                .attr("type", kind)
                .attr("url", format!("https://{host}{path}"))
                .attr("direct_path", path)
                .build(),
        ],
    )
}

/// `w:profile:picture` set on the sender's own account (a `target` means a group, which
/// this mock does not keep pictures for). Returns the answer and, when a picture was
/// stored, its direct path and bytes for the media host.
pub fn picture_set(
    st: &mut State,
    own: &str,
    id: &str,
    node: &Node,
) -> (Node, Option<(String, Vec<u8>)>) {
    if node.attrs.contains_key("target") {
        return (iq_error(id, 404, "item-not-found"), None);
    }
    let Some(acc) = st.accounts.get_mut(own) else {
        return (iq_error(id, 401, "not-authorized"), None);
    };
    match node.get_optional_child("picture").and_then(bytes) {
        Some(jpeg) if jpeg.starts_with(&[0xFF, 0xD8, 0xFF]) => {
            let pic = now_secs() * 1000 + u64::from(rand::random::<u16>() % 1000);
            acc.profile.picture = Some((pic, jpeg.to_vec()));
            let answer = iq_result(
                id,
                vec![
                    NodeBuilder::new("picture")
                        .attr("id", pic.to_string())
                        .build(),
                ],
            );
            (answer, Some((picture_path(own, pic), jpeg.to_vec())))
        }
        Some(_) => (iq_error(id, 406, "not-acceptable"), None),
        None => {
            acc.profile.picture = None;
            (iq_result(id, vec![]), None)
        }
    }
}

/// `status` set: the sender's about text.
pub fn status_set(st: &mut State, own: &str, id: &str, node: &Node) -> Node {
    let text = node
        .get_optional_child("status")
        .and_then(bytes)
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default();
    if text.chars().count() > 139 {
        return iq_error(id, 406, "not-acceptable");
    }
    match st.accounts.get_mut(own) {
        Some(acc) => {
            acc.profile.about = Some((text, now_secs()));
            iq_result(id, vec![])
        }
        None => iq_error(id, 401, "not-authorized"),
    }
}

/// `<presence name="..">`: the account's push name (what `set_push_name` sends).
pub fn on_presence(st: &mut State, own: &str, node: &Node) {
    if let Some(name) = attr(node, "name").filter(|n| !n.is_empty())
        && let Some(acc) = st.accounts.get_mut(own)
    {
        acc.push_name = name;
    }
}

/// What a test may change of an account's profile (`POST /admin/profile`); absent fields stay.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct ProfileChange {
    pub about: Option<String>,
    pub business: Option<bool>,
    pub about_hidden: Option<bool>,
    pub picture_hidden: Option<bool>,
}

impl ProfileChange {
    pub fn apply(self, p: &mut Profile) {
        if let Some(text) = self.about {
            p.about = Some((text, now_secs()));
        }
        if let Some(b) = self.business {
            p.business = b;
        }
        if let Some(h) = self.about_hidden {
            p.about_hidden = h;
        }
        if let Some(h) = self.picture_hidden {
            p.picture_hidden = h;
        }
    }
}
