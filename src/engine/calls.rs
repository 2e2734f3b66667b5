//! Calls: an offered call becomes `call.received`; with the session's `reject_calls` it is
//! declined after a paced pause (`call.rejected`, `rejected_by: "auto"`) and, with
//! `call_reply`, a text goes to the caller through the send queue; `POST .../calls/{id}/reject`
//! declines one by hand.
//!
//! whatsapp-rust parses the `<call>` stanzas and acknowledges them itself (the `<ack
//! class="call">` and, for a live offer, the `<receipt><offer/></receipt>`); wagate only
//! reads `Event::IncomingCall` and `Event::MissedCall`. Without the library's `voip-runtime`
//! (wagate does not take calls) a call that ends is seen as its `terminate` action: the
//! record keeps when and why.

use std::sync::Arc;
use std::time::Duration;

use whatsapp_rust::Client;
use whatsapp_rust::types::call::{CallAction, IncomingCall, MissedCall};

use super::compose::{Content, Outgoing, Recipient};
use super::pacing;
use super::{EngineError, SessionManager};
use crate::events::{Bus, CallInfo, Event, EventKind, Notice, now_ms};
use crate::store::calls::{self, CallRecord};
use crate::store::{Store, outbox, queue};

/// What the session task lends the call handling.
#[derive(Clone)]
pub(crate) struct CallCtx {
    pub session: Arc<str>,
    pub store: Store,
    pub bus: Bus,
    pub defaults: Arc<pacing::Settings>,
    /// Wakes the session's send worker (a reply was queued).
    pub wake: Arc<tokio::sync::Notify>,
}

fn jid(j: &whatsapp_rust::Jid) -> String {
    j.to_non_ad().to_string()
}

/// The caller's phone number and LID, from the offer and the client's mapping.
async fn caller(
    client: &Client,
    creator: &whatsapp_rust::Jid,
    caller_pn: Option<&whatsapp_rust::Jid>,
) -> (Option<String>, Option<String>) {
    let c = jid(creator);
    let (mut phone, mut lid) = match creator.server.as_str() {
        "lid" => (caller_pn.map(jid), Some(c)),
        _ => (Some(c), None),
    };
    if (phone.is_none() || lid.is_none())
        && let Ok(Some(entry)) = client.get_lid_pn_entry(creator).await
    {
        lid.get_or_insert_with(|| format!("{}@lid", entry.lid));
        phone.get_or_insert_with(|| format!("{}@s.whatsapp.net", entry.phone_number));
    }
    (phone, lid)
}

/// A call stanza from WhatsApp: an offer is recorded and reported (and declined when the
/// session says so); the end of a known call is recorded.
pub(crate) async fn incoming(ctx: &CallCtx, client: &Arc<Client>, call: &IncomingCall) {
    match &call.action {
        CallAction::Offer {
            call_id,
            call_creator,
            caller_pn,
            is_video,
            group_jid,
            ..
        } => {
            let (from_phone, from_lid) = caller(client, call_creator, caller_pn.as_ref()).await;
            let info = CallInfo {
                call_id: call_id.clone(),
                from: jid(call_creator),
                from_phone,
                from_lid,
                push_name: call.notify.clone().filter(|n| !n.is_empty()),
                video: *is_video,
                group: group_jid.as_ref().map(jid),
                offline: call.offline,
                offered_at: call.timestamp.timestamp_millis(),
                ..Default::default()
            };
            offered(
                ctx,
                client,
                info,
                Some((call.from.clone(), call_creator.clone())),
            )
            .await;
        }
        CallAction::Terminate {
            call_id, reason, ..
        } => {
            let (sid, id, why) = (ctx.session.to_string(), call_id.clone(), reason.clone());
            if let Err(e) = ctx
                .store
                .write(move |t| calls::ended(t, &sid, &id, why.as_deref(), now_ms()))
                .await
            {
                tracing::warn!(session = %ctx.session, error = %e, "cannot record a call's end");
            }
        }
        _ => {}
    }
}

/// A call offered while the device was offline: reported as missed (it rang out long ago).
pub(crate) async fn missed(ctx: &CallCtx, client: &Arc<Client>, m: &MissedCall) {
    let (from_phone, from_lid) = caller(client, &m.from, None).await;
    let info = CallInfo {
        call_id: m.call_id.clone(),
        from: jid(&m.from),
        from_phone,
        from_lid,
        offline: true,
        offered_at: m.timestamp.timestamp_millis(),
        ..Default::default()
    };
    offered(ctx, client, info, None).await;
}

/// Record a call and its `call.received` in one transaction; decline it after a pause when
/// the session rejects calls and it still rings (`ring`: the stanza's sender and the call's
/// creator).
async fn offered(
    ctx: &CallCtx,
    client: &Arc<Client>,
    info: CallInfo,
    ring: Option<(whatsapp_rust::Jid, whatsapp_rust::Jid)>,
) {
    let sid = ctx.session.to_string();
    let rec = info.clone();
    let peer = ring.as_ref().map(|(p, _)| p.to_string());
    let written = ctx
        .store
        .write(move |t| {
            if !calls::offered(t, &sid, &rec, peer.clone())? {
                return Ok(None);
            }
            outbox::record(t, Event::new(&sid, EventKind::CallReceived(rec.clone())))
        })
        .await;
    match written {
        Ok(Some(event)) => ctx.bus.publish(Notice::Event(event)),
        Ok(None) => return,
        Err(e) => {
            tracing::error!(session = %ctx.session, error = %e, "cannot record a call");
            return;
        }
    }
    tracing::info!(session = %ctx.session, call = %info.call_id, video = info.video, offline = info.offline, "call offered");
    let Some((peer, creator)) = ring.filter(|_| !info.offline) else {
        return;
    };
    let settings = match super::sender::load_settings(&ctx.store, &ctx.defaults, &ctx.session).await
    {
        Ok((s, _, _)) => s,
        Err(e) => {
            tracing::error!(session = %ctx.session, error = %e, "cannot read the session's settings");
            return;
        }
    };
    if !settings.reject_calls {
        return;
    }
    let (ctx, client) = (ctx.clone(), client.clone());
    tokio::spawn(async move {
        // A person takes a moment to decline.
        let pause = pacing::draw_delay(&settings, &mut rand::rng());
        tokio::time::sleep(Duration::from_millis(pause)).await;
        // Rejected through the API meanwhile, or over: nothing to decline.
        let (sid, id) = (ctx.session.to_string(), info.call_id.clone());
        match ctx.store.read(move |t| calls::get(t, &sid, &id)).await {
            Ok(Some(rec)) if rec.rejected_at.is_none() && rec.ended_at.is_none() => {}
            Ok(_) => return,
            Err(e) => {
                tracing::error!(session = %ctx.session, error = %e, "cannot read a call");
                return;
            }
        }
        if let Err(e) = client
            .voip()
            .reject_call(&info.call_id, &peer, &creator)
            .await
        {
            tracing::warn!(session = %ctx.session, call = %info.call_id, error = %e, "call not rejected");
            return;
        }
        let reply = Some(settings.call_reply.clone()).filter(|r| !r.trim().is_empty());
        if let Err(e) = record_rejection(&ctx, &info.call_id, "auto", reply).await {
            tracing::error!(session = %ctx.session, error = %e, "cannot record a call's rejection")
        }
    });
}

/// What [`record_rejection`] found.
enum Recorded {
    /// Rejected now (this record).
    Now(Box<CallRecord>),
    /// Rejected before: nothing was written.
    Already,
    /// No such call.
    Unknown,
}

/// Record a rejection, queue the reply to the caller (once per call: the call id is its
/// idempotency key), and report `call.rejected`; a call rejected before is left as it is.
async fn record_rejection(
    ctx: &CallCtx,
    call_id: &str,
    by: &'static str,
    reply: Option<String>,
) -> Result<Recorded, crate::store::StoreError> {
    let (sid, id) = (ctx.session.to_string(), call_id.to_string());
    let done = ctx
        .store
        .write(move |t| {
            let Some(rec) = calls::get_w(t, &sid, &id)? else {
                return Ok(Err(Recorded::Unknown));
            };
            if rec.rejected_at.is_some() {
                return Ok(Err(Recorded::Already));
            }
            let reply_id = match (&reply, caller_chat(&rec.info)) {
                (Some(text), Some(to)) => {
                    let content = serde_json::to_value(Outgoing {
                        to: Recipient::stored(&to),
                        content: Content::Text { text: text.clone() },
                        reply_to: None,
                        mentions: Vec::new(),
                    })
                    .map_err(|e| crate::store::StoreError::Invalid(e.to_string()))?;
                    let done = queue::enqueue(
                        t,
                        &sid,
                        &queue::NewMessage {
                            kind: "text".into(),
                            to: to.clone(),
                            content,
                            blob: None,
                            idempotency_key: Some(format!("call:{id}")),
                            now_ms: now_ms(),
                            to_phone: rec.info.from_phone.clone(),
                            to_lid: rec.info.from_lid.clone(),
                        },
                    )?;
                    Some(done.record.id)
                }
                _ => None,
            };
            let Some(rec) = calls::rejected(t, &sid, &id, by, reply_id, now_ms())? else {
                return Ok(Err(Recorded::Unknown));
            };
            let event = outbox::record(
                t,
                Event::new(&sid, EventKind::CallRejected(rec.info.clone())),
            )?;
            Ok(Ok((rec, event)))
        })
        .await?;
    let (rec, event) = match done {
        Ok(done) => done,
        Err(other) => return Ok(other),
    };
    if let Some(event) = event {
        ctx.bus.publish(Notice::Event(event));
    }
    if rec.info.reply_id.is_some() {
        ctx.wake.notify_one();
        super::sender::publish_depth(&ctx.store, &ctx.bus, &ctx.session).await;
    }
    tracing::info!(session = %ctx.session, call = %call_id, by, "call rejected");
    Ok(Recorded::Now(Box::new(rec)))
}

/// Where a reply to the caller goes: their phone number, else the JID the call named.
fn caller_chat(info: &CallInfo) -> Option<String> {
    info.from_phone
        .clone()
        .or_else(|| (!info.from.is_empty()).then(|| info.from.clone()))
}

impl SessionManager {
    /// Decline call `call_id` now.
    pub async fn reject_call(&self, sid: &str, call_id: &str) -> Result<CallRecord, EngineError> {
        self.get(sid).await?;
        let (s, c) = (sid.to_string(), call_id.to_string());
        let rec = self
            .store()
            .read(move |t| calls::get(t, &s, &c))
            .await?
            .ok_or_else(|| EngineError::CallNotFound(call_id.to_string()))?;
        let refused = |code, message: String| EngineError::NotChangeable { code, message };
        if rec.info.offline {
            return Err(refused(
                "call_ended",
                format!("call '{call_id}' was missed while the device was offline"),
            ));
        }
        if let Some(at) = rec.rejected_at {
            return Err(refused(
                "call_rejected",
                format!("call '{call_id}' was rejected already, at {at}"),
            ));
        }
        if let Some(at) = rec.ended_at {
            return Err(refused(
                "call_ended",
                format!(
                    "call '{call_id}' ended at {at} ({})",
                    rec.end_reason.as_deref().unwrap_or("the caller hung up")
                ),
            ));
        }
        let client = self
            .client(sid)
            .await
            .ok_or_else(|| EngineError::NotConnected(sid.to_string()))?;
        let parse = |j: &str| {
            j.parse::<whatsapp_rust::Jid>()
                .map_err(|_| EngineError::InvalidJid(j.to_string()))
        };
        let creator = parse(&rec.info.from)?;
        let peer = match &rec.peer {
            Some(p) => parse(p)?,
            None => creator.clone(),
        };
        client
            .voip()
            .reject_call(call_id, &peer, &creator)
            .await
            .map_err(|e| EngineError::Client(e.to_string()))?;
        let ctx = self.call_ctx(sid).await?;
        match record_rejection(&ctx, call_id, "api", None).await? {
            Recorded::Now(rec) => Ok(*rec),
            // The session's own rejection came first, while this one was on its way.
            Recorded::Already => Err(refused(
                "call_rejected",
                format!("call '{call_id}' was rejected already"),
            )),
            Recorded::Unknown => Err(EngineError::CallNotFound(call_id.to_string())),
        }
    }

    /// The session's recent calls, newest first.
    pub async fn calls(&self, sid: &str, limit: usize) -> Result<Vec<CallRecord>, EngineError> {
        self.get(sid).await?;
        let s = sid.to_string();
        Ok(self
            .store()
            .read(move |t| calls::recent(t, &s, limit))
            .await?)
    }
}
