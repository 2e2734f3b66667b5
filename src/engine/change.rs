//! Edit and revoke (delete for everyone) a message this session sent.
//!
//! Both are messages of their own: a `protocolMessage` naming the target by its WhatsApp id,
//! queued, paced and sent like any other (durable before the 202, idempotent by key, with
//! their own record and `message.sent` / `delivered` events, whose `target` names the
//! message changed). When one is sent, the target's record gets `edited_at` (and the new
//! text) or `revoked_at`.
//!
//! Rules, checked at request time against the target's record:
//! - only a message that was sent (sent, delivered or read) can be changed; one still queued
//!   or held is cancelled instead (`DELETE`, or a revoke does it);
//! - an edit within [`compose::EDIT_WINDOW_MS`] of the send, of a text, link preview, image
//!   or video (their text or caption), not after a revoke;
//! - a revoke within [`compose::REVOKE_WINDOW_MS`].
//!
//! A queue that holds an edit or revoke past what recipients honour fails it at send time
//! ([`super::sender::too_late`]).

use serde_json::Value;

use super::compose::{self, Content, Outgoing, Recipient};
use super::{EngineError, SessionManager};
use crate::events::now_ms;
use crate::store::queue::{Cancel, Enqueued, MessageRecord, MessageStatus};

/// What a revoke request did.
#[derive(Debug)]
pub enum Revoked {
    /// The message had not started sending: it was cancelled, nothing goes to WhatsApp.
    Cancelled(MessageRecord),
    /// The revoke is queued.
    Queued(Enqueued),
}

fn refuse(code: &'static str, message: String) -> EngineError {
    EngineError::NotChangeable { code, message }
}

/// The target, sent: its WhatsApp id and send time.
fn sent_target(rec: &MessageRecord, what: &str) -> Result<(String, i64), EngineError> {
    if rec.target().is_some() {
        return Err(refuse(
            "not_changeable",
            format!(
                "message '{}' is itself an {}; {what} the message it changed",
                rec.id, rec.kind
            ),
        ));
    }
    let sent = matches!(
        rec.status,
        MessageStatus::Sent | MessageStatus::Delivered | MessageStatus::Read
    );
    match (sent, &rec.wa_id, rec.sent_at) {
        (true, Some(wa_id), Some(at)) => Ok((wa_id.clone(), at)),
        _ => Err(refuse(
            "not_sent",
            format!(
                "message '{}' is {}: only a sent message can be changed",
                rec.id,
                rec.status.as_str()
            ),
        )),
    }
}

/// Whether message `rec` may be edited at `now`: its WhatsApp id and send time.
fn check_edit(rec: &MessageRecord, now: i64) -> Result<(String, i64), EngineError> {
    let (wa_id, sent_at) = sent_target(rec, "edit")?;
    if let Some(at) = rec.revoked_at {
        return Err(refuse(
            "revoked",
            format!(
                "message '{}' was deleted for everyone at {at}: it cannot be edited",
                rec.id
            ),
        ));
    }
    if now >= sent_at.saturating_add(compose::EDIT_WINDOW_MS) {
        return Err(refuse(
            "edit_window_passed",
            format!(
                "message '{}' was sent {} minutes ago: WhatsApp lets a message be edited for \
                 {} minutes",
                rec.id,
                now.saturating_sub(sent_at) / 60_000,
                compose::EDIT_WINDOW_MS / 60_000
            ),
        ));
    }
    Ok((wa_id, sent_at))
}

/// Whether message `rec` may be deleted for everyone at `now`: its WhatsApp id and send
/// time.
fn check_revoke(rec: &MessageRecord, now: i64) -> Result<(String, i64), EngineError> {
    let (wa_id, sent_at) = sent_target(rec, "revoke")?;
    if let Some(at) = rec.revoked_at {
        return Err(refuse(
            "revoked",
            format!(
                "message '{}' was deleted for everyone already, at {at}",
                rec.id
            ),
        ));
    }
    if now >= sent_at.saturating_add(compose::REVOKE_WINDOW_MS) {
        return Err(refuse(
            "revoke_window_passed",
            format!(
                "message '{}' was sent {} hours ago: WhatsApp deletes a message for everyone \
                 up to {} hours after it was sent",
                rec.id,
                now.saturating_sub(sent_at) / 3_600_000,
                compose::REVOKE_WINDOW_MS / 3_600_000
            ),
        ));
    }
    Ok((wa_id, sent_at))
}

/// The new text of an edit: `{"text": ...}` for a text or link preview, `{"caption": ...}`
/// for an image or video.
fn edit_text(target_kind: &str, body: &Value) -> Result<String, EngineError> {
    let Some(field) = compose::EDITABLE
        .iter()
        .find(|(k, _)| *k == target_kind)
        .map(|(_, f)| *f)
    else {
        return Err(refuse(
            "not_editable",
            format!(
                "a {target_kind} message has no text to edit; editable: text, link_preview, \
                 image and video (caption)"
            ),
        ));
    };
    let Some(obj) = body.as_object() else {
        return Err(EngineError::InvalidEdit(
            "the body must be a JSON object".into(),
        ));
    };
    if let Some(other) = obj.keys().find(|k| k.as_str() != field) {
        return Err(EngineError::InvalidEdit(format!(
            "{other}: unknown field; a {target_kind} message is edited with {field}"
        )));
    }
    let text = match obj.get(field) {
        Some(Value::String(t)) => t.clone(),
        Some(_) => {
            return Err(EngineError::InvalidEdit(format!(
                "{field}: must be a string"
            )));
        }
        None => {
            return Err(EngineError::InvalidEdit(format!(
                "{field}: missing; the new {field} of the message"
            )));
        }
    };
    let chars = text.chars().count();
    if text.trim().is_empty() || chars > compose::MAX_TEXT_CHARS {
        return Err(EngineError::InvalidEdit(format!(
            "{field}: 1 to {} characters, not blank",
            compose::MAX_TEXT_CHARS
        )));
    }
    Ok(text)
}

impl SessionManager {
    async fn target(&self, sid: &str, id: &str) -> Result<MessageRecord, EngineError> {
        self.get(sid).await?;
        self.message(sid, id)
            .await?
            .ok_or_else(|| EngineError::MessageNotFound(id.to_string()))
    }

    /// Queue an edit of message `id` with the request `body`.
    pub async fn edit(
        &self,
        sid: &str,
        id: &str,
        body: &Value,
        key: Option<String>,
    ) -> Result<Enqueued, EngineError> {
        let rec = self.target(sid, id).await?;
        let text = edit_text(&rec.kind, body)?;
        let (wa_id, sent_at) = check_edit(&rec, now_ms())?;
        let outgoing = Outgoing {
            to: Recipient::stored(&rec.to),
            content: Content::Edit {
                chat: rec.to.clone(),
                message_id: wa_id,
                target: rec.id.clone(),
                target_kind: rec.kind.clone(),
                target_sent_at: sent_at,
                text,
            },
            reply_to: None,
            mentions: Vec::new(),
        };
        self.enqueue(sid, "edit", &outgoing, None, key).await
    }

    /// Delete message `id` for everyone: queue a revoke, or cancel it when it has not started
    /// sending.
    pub async fn revoke(
        &self,
        sid: &str,
        id: &str,
        key: Option<String>,
    ) -> Result<Revoked, EngineError> {
        let rec = self.target(sid, id).await?;
        if rec.status.is_pending() && rec.status != MessageStatus::Sending {
            match self.cancel(sid, id).await? {
                Cancel::Cancelled(rec) => return Ok(Revoked::Cancelled(rec)),
                Cancel::NotFound => return Err(EngineError::MessageNotFound(id.to_string())),
                // It started sending meanwhile: revoke it once sent.
                Cancel::TooLate(_) => {}
            }
        }
        let rec = self.target(sid, id).await?;
        let (wa_id, sent_at) = check_revoke(&rec, now_ms())?;
        let outgoing = Outgoing {
            to: Recipient::stored(&rec.to),
            content: Content::Revoke {
                chat: rec.to.clone(),
                message_id: wa_id,
                target: rec.id.clone(),
                target_sent_at: sent_at,
            },
            reply_to: None,
            mentions: Vec::new(),
        };
        self.enqueue(sid, "revoke", &outgoing, None, key)
            .await
            .map(Revoked::Queued)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MIN: i64 = 60_000;

    fn record(status: MessageStatus, sent_at: Option<i64>) -> MessageRecord {
        serde_json::from_value(json!({
            "id": "msg_1", "session": "s", "kind": "text", "to": "1@s.whatsapp.net",
            "content": {}, "status": status, "wa_id": sent_at.map(|_| "3EB0"), "seq": 0,
            "created_at": 0, "sent_at": sent_at,
        }))
        .unwrap()
    }

    fn code(r: Result<(String, i64), EngineError>) -> &'static str {
        match r {
            Ok(_) => "ok",
            Err(EngineError::NotChangeable { code, .. }) => code,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn edits_and_revokes_keep_to_whatsapps_windows() {
        let t0 = 1_700_000_000_000;
        let sent = record(MessageStatus::Delivered, Some(t0));
        assert_eq!(code(check_edit(&sent, t0 + 14 * MIN)), "ok");
        assert_eq!(code(check_edit(&sent, t0 + 15 * MIN)), "edit_window_passed");
        assert_eq!(code(check_revoke(&sent, t0 + 59 * 60 * MIN)), "ok");
        assert_eq!(
            code(check_revoke(&sent, t0 + 60 * 60 * MIN)),
            "revoke_window_passed"
        );
        // Not sent yet, or never: nothing to change.
        for status in [
            MessageStatus::Queued,
            MessageStatus::Sending,
            MessageStatus::Failed,
        ] {
            assert_eq!(code(check_edit(&record(status, None), t0)), "not_sent");
            assert_eq!(code(check_revoke(&record(status, None), t0)), "not_sent");
        }
        // Deleted for everyone: no edit, no second revoke.
        let mut gone = sent.clone();
        gone.revoked_at = Some(t0 + MIN);
        assert_eq!(code(check_edit(&gone, t0 + 2 * MIN)), "revoked");
        assert_eq!(code(check_revoke(&gone, t0 + 2 * MIN)), "revoked");
        // An edit is not itself edited.
        let mut edit = sent.clone();
        edit.kind = "edit".into();
        edit.content = json!({"content": {"target": "msg_0"}});
        assert_eq!(code(check_edit(&edit, t0)), "not_changeable");
    }

    #[test]
    fn a_queue_that_held_an_edit_too_long_fails_it() {
        let t0 = 1_700_000_000_000;
        let edit = Content::Edit {
            chat: "1@s.whatsapp.net".into(),
            message_id: "3EB0".into(),
            target: "msg_1".into(),
            target_kind: "text".into(),
            target_sent_at: t0,
            text: "x".into(),
        };
        assert_eq!(super::super::sender::too_late(&edit, t0 + 19 * MIN), None);
        let why = super::super::sender::too_late(&edit, t0 + 20 * MIN).unwrap();
        assert!(why.contains("20 minutes"), "{why}");
    }

    #[test]
    fn an_edit_names_the_field_its_message_kind_takes() {
        assert_eq!(edit_text("text", &json!({"text": "new"})).unwrap(), "new");
        assert_eq!(edit_text("image", &json!({"caption": "c"})).unwrap(), "c");
        let e = edit_text("image", &json!({"text": "c"})).unwrap_err();
        assert!(e.to_string().starts_with("text: unknown field"), "{e}");
        let e = edit_text("text", &json!({})).unwrap_err();
        assert!(e.to_string().starts_with("text: missing"), "{e}");
        let e = edit_text("text", &json!({"text": "  "})).unwrap_err();
        assert!(e.to_string().starts_with("text: 1 to"), "{e}");
        let e = edit_text("text", &json!({"text": 5})).unwrap_err();
        assert!(e.to_string().starts_with("text: must be a string"), "{e}");
        assert!(matches!(
            edit_text("location", &json!({"text": "x"})),
            Err(EngineError::NotChangeable {
                code: "not_editable",
                ..
            })
        ));
    }
}
