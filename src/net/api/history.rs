//! `GET /api/sessions/{sid}/messages`: the session's history, sent and received, one page at
//! a time (`store::history`). Query: `direction=in|out`, `chat=<JID or phone digits>`,
//! `order=newest|oldest` (newest first by default), `after=<message id>` (the `next` of
//! the page before), `limit` (1..=500, default 50). Answer: `{"messages": [...], "next"}`,
//! `next` null at the end. The history reaches back as far as the store's retention keeps
//! messages (`store.message_retention_*`).

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{PathParams, QueryParams};
use super::{ApiError, ApiState};
use crate::store::history::{self, Direction, Item, Query};
use crate::store::inbound::InboundRecord;

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 500;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Params {
    #[serde(default)]
    direction: Option<String>,
    #[serde(default)]
    chat: Option<String>,
    #[serde(default)]
    order: Option<String>,
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

fn invalid(message: String) -> ApiError {
    ApiError::bad_request("invalid_query", message)
}

fn query(p: Params) -> Result<Query, ApiError> {
    let direction = match p.direction.as_deref() {
        None => None,
        Some("in") => Some(Direction::In),
        Some("out") => Some(Direction::Out),
        Some(other) => return Err(invalid(format!("direction: 'in' or 'out', not '{other}'"))),
    };
    let oldest_first = match p.order.as_deref() {
        None | Some("newest") => false,
        Some("oldest") => true,
        Some(other) => {
            return Err(invalid(format!(
                "order: 'newest' or 'oldest', not '{other}'"
            )));
        }
    };
    let chat = match p.chat {
        None => None,
        Some(c) if !c.is_empty() && c.len() <= 128 && c.bytes().all(|b| b.is_ascii_digit()) => {
            Some(format!("{c}@s.whatsapp.net"))
        }
        Some(c) if c.len() <= 128 && c.parse::<wacore_binary::Jid>().is_ok() && c.contains('@') => {
            Some(c)
        }
        Some(c) => {
            return Err(invalid(format!(
                "chat: a JID (…@s.whatsapp.net, …@lid, …@g.us) or phone digits, not '{c}'"
            )));
        }
    };
    if let Some(a) = &p.after
        && (!a.starts_with("msg_") || a.len() > 64)
    {
        return Err(invalid(format!(
            "after: a message id (msg_…) from the page before, not '{a}'"
        )));
    }
    let limit = p.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(invalid(format!("limit: 1 to {MAX_LIMIT}")));
    }
    Ok(Query {
        direction,
        chat,
        after: p.after,
        oldest_first,
        limit,
    })
}

/// A received message as the API shows it.
pub(super) fn in_view(sid: &str, r: &InboundRecord) -> Value {
    let has_media = r.mimetype.is_some();
    json!({
        "id": r.id,
        "session": sid,
        "direction": "in",
        "kind": r.kind,
        "chat": r.chat,
        "from": r.sender,
        "wa_id": r.wa_id,
        "sent_at": r.sent_at,
        "text": r.edited_text.as_ref().or(r.text.as_ref()),
        "mimetype": r.mimetype,
        "file_name": r.file_name,
        "size": r.size,
        "media_url": has_media.then(|| crate::engine::inbound::media_url(sid, &r.id)),
        "edited_at": r.edited_at,
        "revoked_at": r.revoked_at,
    })
}

/// A sent message in the history: its record's view, with its direction and text.
fn out_view(rec: &crate::store::queue::MessageRecord) -> Value {
    let mut v = super::messages::view(rec);
    let content = rec.content.get("content");
    let text = rec.edited_text.clone().or_else(|| {
        content
            .and_then(|c| c.get("text").or_else(|| c.get("caption")))
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    if let Some(obj) = v.as_object_mut() {
        obj.insert("direction".into(), "out".into());
        obj.insert("text".into(), text.into());
    }
    v
}

pub(super) async fn list(
    State(state): State<ApiState>,
    PathParams(sid): PathParams<String>,
    QueryParams(params): QueryParams<Params>,
) -> Result<Json<Value>, ApiError> {
    let q = query(params)?;
    state.manager().get(&sid).await?;
    let key = sid.clone();
    let page = state
        .store()
        .read(move |t| history::page(t, &key, &q))
        .await?;
    let messages: Vec<Value> = page
        .items
        .iter()
        .map(|i| match i {
            Item::Out(r) => out_view(r),
            Item::In(r) => in_view(&sid, r),
        })
        .collect();
    Ok(Json(json!({ "messages": messages, "next": page.next })))
}
