//! The groups a session's account is in, as the API lists them: each member by the JID the
//! group addresses them with, plus their phone-number JID and LID where known.

use serde::Serialize;
use whatsapp_rust::{Client, Jid};

use super::EngineError;

/// A group, for `GET /api/sessions/{sid}/groups`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupSummary {
    /// The group JID (`<id>@g.us`): the `to` of a message to the group.
    pub id: String,
    pub subject: String,
    /// `pn` or `lid`: how the group addresses its members.
    pub addressing_mode: String,
    /// Unix seconds, when the server says.
    pub created_at: Option<u64>,
    pub participants: Vec<GroupMember>,
}

/// A member of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupMember {
    /// The JID the group knows the member by.
    pub jid: String,
    /// `<digits>@s.whatsapp.net`, when known.
    pub phone: Option<String>,
    /// `<digits>@lid`, when known.
    pub lid: Option<String>,
    /// `superadmin`, `admin` or `member`.
    pub role: &'static str,
}

/// Every group the client's account participates in, sorted by id.
pub(crate) async fn list(client: &Client) -> Result<Vec<GroupSummary>, EngineError> {
    let groups = client
        .groups()
        .get_participating()
        .await
        .map_err(|e| EngineError::Client(e.to_string()))?;
    let mut out = Vec::with_capacity(groups.len());
    for (jid, meta) in groups {
        let mut participants = Vec::with_capacity(meta.participants.len());
        for p in &meta.participants {
            let mut phone = p
                .phone_number
                .clone()
                .or_else(|| p.jid.is_pn().then(|| p.jid.clone()));
            let mut lid = p
                .lid
                .clone()
                .or_else(|| p.jid.is_lid().then(|| p.jid.clone()));
            if (phone.is_none() || lid.is_none())
                && let Ok(Some(entry)) = client.get_lid_pn_entry(&p.jid).await
            {
                phone.get_or_insert_with(|| Jid::pn(&*entry.phone_number));
                lid.get_or_insert_with(|| Jid::lid(&*entry.lid));
            }
            participants.push(GroupMember {
                jid: p.jid.to_non_ad().to_string(),
                phone: phone.map(|j| j.to_non_ad().to_string()),
                lid: lid.map(|j| j.to_non_ad().to_string()),
                role: if p.is_super_admin() {
                    "superadmin"
                } else if p.is_admin() {
                    "admin"
                } else {
                    "member"
                },
            });
        }
        out.push(GroupSummary {
            id: jid.to_string(),
            subject: meta.subject.to_string(),
            addressing_mode: meta.addressing_mode.as_str().to_string(),
            created_at: meta.creation_time,
            participants,
        });
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}
