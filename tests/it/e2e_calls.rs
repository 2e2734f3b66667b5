//! Calls end to end through wa-mock: WhatsApp's `<call><offer>` reaches a wagate session as
//! `call.received` (caller phone and LID, voice or video); it is rejected through the API or
//! by the session's `reject_calls` setting (the device's `<reject>` reaches the server; the
//! caller gets the `call_reply` text through the paced queue); a call that ended or was
//! missed while offline cannot be rejected. Needs `--features trust-wa-mock`.
#![cfg(feature = "trust-wa-mock")]

use crate::common::peer::{Rig, STEP, create_and_pair, peer, text_of, wait_until};
use crate::common::receiver::Hit;
use crate::common::{Resp, call, get, post_json};
use serde_json::{Value, json};
use wa_mock::StanzaFilter;

fn event(hits: &[Hit], ty: &str, call_id: &str) -> Option<Value> {
    hits.iter()
        .map(Hit::json)
        .find(|b| b["type"] == ty && b["data"]["call_id"] == call_id)
        .map(|b| b["data"].clone())
}

fn wait_event(rig: &Rig, ty: &str, call_id: &str) -> Value {
    let hits = rig
        .rx
        .wait_for(ty, STEP, |h| event(h, ty, call_id).is_some());
    event(&hits, ty, call_id).unwrap()
}

fn reject(rig: &Rig, call_id: &str) -> Resp {
    call(
        "POST",
        &rig.server
            .url(&format!("/api/sessions/a/calls/{call_id}/reject")),
        Some(&rig.key),
        &[],
        None,
    )
}

fn settings(rig: &Rig, body: Value) {
    let r = call(
        "PUT",
        &rig.server.url("/api/sessions/a/settings"),
        Some(&rig.key),
        &[],
        Some(("application/json", body.to_string().into_bytes())),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

/// The `<reject>` stanzas session a's device sent for `call_id`.
fn rejects(rig: &Rig, call_id: &str) -> usize {
    rig.mock
        .stanzas(&StanzaFilter {
            tag: Some("call".into()),
            ..Default::default()
        })
        .iter()
        .filter(|s| s.xml.contains("<reject") && s.xml.contains(call_id))
        .count()
}

fn calls(rig: &Rig) -> Vec<Value> {
    let r = get(&rig.server.url("/api/sessions/a/calls"), Some(&rig.key));
    assert_eq!(r.status, 200, "{}", r.text());
    r.json().as_array().unwrap().clone()
}

#[test]
fn calls_are_reported_and_rejected_by_hand_or_by_the_setting() {
    let rig = Rig::start();
    let k = Some(rig.key.as_str());
    let a = create_and_pair(&rig.server, &rig.mock_rt, &rig.mock, k, "a");
    let mut c = rig.mock_rt.block_on(peer(&rig.mock));

    // A voice call: reported with both of the caller's identities, then rejected by hand.
    let id = rig.mock.offer_call(&c.phone, &a.phone, false).unwrap();
    let got = wait_event(&rig, "call.received", &id);
    assert_eq!(got["from"], format!("{}@lid", c.lid));
    assert_eq!(got["from_phone"], c.jid.as_str());
    assert_eq!(got["from_lid"], format!("{}@lid", c.lid));
    assert_eq!(got["video"], false);
    assert_eq!(got["offline"], false);
    assert!(got["group"].is_null());
    assert_eq!(calls(&rig)[0]["call_id"], id.as_str());
    let r = reject(&rig, &id);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["rejected_by"], "api");
    assert!(r.json()["rejected_at"].is_i64());
    wait_until("the reject at the server", || rejects(&rig, &id) == 1);
    assert_eq!(wait_event(&rig, "call.rejected", &id)["rejected_by"], "api");
    let r = reject(&rig, &id);
    assert_eq!((r.status, r.error_code().as_str()), (409, "call_rejected"));
    let r = reject(&rig, "NO-SUCH-CALL");
    assert_eq!((r.status, r.error_code().as_str()), (404, "call_not_found"));

    // A call the caller gave up on cannot be rejected any more.
    let id = rig.mock.offer_call(&c.phone, &a.phone, false).unwrap();
    wait_event(&rig, "call.received", &id);
    assert!(rig.mock.end_call(&c.phone, &a.phone, &id, "timeout"));
    wait_until("the call's end recorded", || {
        calls(&rig)
            .iter()
            .any(|x| x["call_id"] == id.as_str() && x["end_reason"] == "timeout")
    });
    let r = reject(&rig, &id);
    assert_eq!((r.status, r.error_code().as_str()), (409, "call_ended"));
    assert_eq!(rejects(&rig, &id), 0);

    // reject_calls with a reply: a video call is declined by itself and the caller gets
    // the text, once.
    settings(
        &rig,
        json!({"reject_calls": true, "call_reply": "This number takes no calls; please write."}),
    );
    let id = rig.mock.offer_call(&c.phone, &a.phone, true).unwrap();
    assert_eq!(wait_event(&rig, "call.received", &id)["video"], true);
    let rejected = wait_event(&rig, "call.rejected", &id);
    assert_eq!(rejected["rejected_by"], "auto");
    let reply_id = rejected["reply_id"]
        .as_str()
        .expect("the reply's id")
        .to_string();
    wait_until("the automatic reject at the server", || {
        rejects(&rig, &id) == 1
    });
    assert_eq!(
        text_of(&mut c, &rig.mock_rt, "the call reply"),
        "This number takes no calls; please write."
    );
    let r = get(
        &rig.server
            .url(&format!("/api/sessions/a/messages/{reply_id}")),
        k,
    );
    assert_eq!(r.json()["to"], c.jid.as_str());
    wait_until("the reply recorded as sent", || {
        get(
            &rig.server
                .url(&format!("/api/sessions/a/messages/{reply_id}")),
            k,
        )
        .json()["status"]
            != "queued"
    });

    // A call while the device is offline arrives as missed when it reconnects: reported,
    // not rejected (it rang out long ago).
    let r = post_json(&rig.server.url("/api/sessions/a/stop"), k, json!({}));
    assert_eq!(r.status, 200);
    wait_until("a stopped", || {
        get(&rig.server.url("/api/sessions/a"), k).json()["state"] == "stopped"
    });
    let id = rig.mock.offer_call(&c.phone, &a.phone, false).unwrap();
    let r = post_json(&rig.server.url("/api/sessions/a/start"), k, json!({}));
    assert_eq!(r.status, 200);
    let missed = wait_event(&rig, "call.received", &id);
    assert_eq!(missed["offline"], true);
    assert_eq!(missed["from_phone"], c.jid.as_str());
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(event(&rig.rx.hits(), "call.rejected", &id).is_none());
    assert_eq!(rejects(&rig, &id), 0);
    let r = reject(&rig, &id);
    assert_eq!((r.status, r.error_code().as_str()), (409, "call_ended"));
}
