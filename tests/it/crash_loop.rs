//! The crash suite's SIGKILL loop: the real `wagate run` process, paired with wa-mock, is
//! killed with SIGKILL at random points while a client posts messages of several kinds and a
//! webhook receiver takes every event. After each restart the messages accepted since the
//! previous one must still be there (a 202 means written first); at the end every accepted
//! message must have reached the recipient exactly once or be reported failed, and every
//! event wagate recorded for the endpoint must have reached the receiver at least once (a
//! repeat only with the same delivery id). Meanwhile two customers write in, the recipient
//! of the sends among them: every message WhatsApp (wa-mock) took must reach the receiver as `message.received`, under one event
//! id however often it was handed over (wa-mock delivers a message again until it is acked,
//! and wagate acks only once the event is in redb).
//!
//! `CRASH_KILLS` sets the number of kills (default 6, the CI form); the long form is
//! `CRASH_KILLS=1000`. `CRASH_MINUTES` ends the killing early after that long (the figures
//! name the kills done). `CRASH_SEED` replays a run (the seed is printed first). The last line
//! printed is the figures. `CRASH_BIN` runs a copy of the wagate binary instead of the one
//! cargo built. Needs `--features wagate/trust-wa-mock`.
#![cfg(feature = "trust-wa-mock")]

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::daemon::Gate;
use crate::common::peer::peer;
use crate::common::receiver::Receiver;
use crate::common::signal;
use crate::common::{get, post_json};
use base64::Engine as _;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use tokio::runtime::Runtime;
use wa_mock::{MockConfig, MockServer, StanzaFilter};
use whatsapp_rust::types::events::Event;

/// The kinds the client cycles through; each carries the message's token in a text field.
const KINDS: [&str; 5] = ["text", "location", "contact", "poll", "image"];
/// How long each step of the end may take (the next message leaving the queue, the
/// recipient's last message, the last webhook).
const SETTLE: Duration = Duration::from_secs(300);

/// The token `ck<n>x` a message carries, if it carries one.
fn token(text: &str) -> Option<u64> {
    let mut rest = text;
    while let Some(i) = rest.find("ck") {
        let after = &rest[i + 2..];
        let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
        if !digits.is_empty() && after[digits.len()..].starts_with('x') {
            return digits.parse().ok();
        }
        rest = after;
    }
    None
}

fn body(kind: &str, n: u64, to: &str, png: &str) -> serde_json::Value {
    let t = format!("ck{n}x");
    let mut b = match kind {
        "text" => json!({"text": format!("crash {t}")}),
        "location" => json!({"latitude": 51.5, "longitude": -0.12, "name": t}),
        "contact" => json!({"name": t, "phones": ["+44 7700 900123"]}),
        "poll" => json!({"question": t, "options": ["yes", "no"]}),
        "image" => json!({"base64": png, "caption": t}),
        _ => unreachable!(),
    };
    b["to"] = json!(to);
    b
}

/// What the client learnt of one message it posted.
#[derive(Debug, Clone)]
struct Posted {
    token: u64,
    kind: &'static str,
    /// wagate's id when the answer was 202.
    id: Option<String>,
}

#[derive(Default)]
struct ClientLog {
    posted: Vec<Posted>,
    /// Requests that got no answer (the daemon died under them): not accepted, may be queued.
    unanswered: u64,
    /// Answers other than 202 while the daemon was up.
    refused: BTreeMap<u16, u64>,
}

#[test]
fn sigkill_loop_loses_and_duplicates_nothing() {
    let kills: u32 = std::env::var("CRASH_KILLS")
        .ok()
        .map(|v| v.parse().expect("CRASH_KILLS: a number"))
        .unwrap_or(6);
    let seed: u64 = std::env::var("CRASH_SEED")
        .ok()
        .map(|v| v.parse().expect("CRASH_SEED: a number"))
        .unwrap_or_else(|| rand::rng().random());
    let budget = std::env::var("CRASH_MINUTES")
        .ok()
        .map(|v| Duration::from_secs(60 * v.parse::<u64>().expect("CRASH_MINUTES: a number")));
    eprintln!("crash loop: CRASH_SEED={seed} CRASH_KILLS={kills} CRASH_MINUTES={budget:?}");
    let mut rng = StdRng::seed_from_u64(seed);

    let mock_rt = Runtime::new().unwrap();
    let mock = mock_rt
        .block_on(MockServer::start(MockConfig::default()))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // `CRASH_LOGS` keeps the daemon's logs (one per run) after the test, for a failing seed.
    let logs = std::env::var_os("CRASH_LOGS").map(std::path::PathBuf::from);
    if let Some(l) = &logs {
        std::fs::create_dir_all(l).unwrap();
    }
    let mut gate = Gate::new(dir.path(), logs.as_deref().unwrap_or(dir.path()), &mock);
    let base = gate.base();
    let key = gate.admin_key();
    let k = Some(key.as_str());
    let mut child = gate.start();
    gate.pair(&mock_rt, &mock, &key);

    // The recipient, and everything it decrypts: (token, WhatsApp id).
    let mut b = mock_rt.block_on(peer(&mock));
    let to = b.jid.clone();
    let received: Arc<Mutex<Vec<(u64, String)>>> = Arc::default();
    // Messages the recipient got but could not decrypt: (WhatsApp id, why).
    let undecryptable: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let undec = undecryptable.clone();
    let (_keep, dummy) = tokio::sync::mpsc::unbounded_channel();
    let mut events = std::mem::replace(&mut b.events, dummy);
    let rec = received.clone();
    mock_rt.spawn(async move {
        while let Some(e) = events.recv().await {
            match &*e {
                Event::Messages(batch) => {
                    for m in batch.messages.iter().filter(|m| !m.info.source.is_from_me) {
                        if let Some(t) = token(&format!("{:?}", m.message)) {
                            rec.lock().unwrap().push((t, m.info.id.to_string()));
                        }
                    }
                }
                Event::UndecryptableMessage(u) => undec
                    .lock()
                    .unwrap()
                    .push((u.info.id.to_string(), format!("{:?}", u.decrypt_fail_mode))),
                _ => {}
            }
        }
    });

    // The webhook receiver takes every event type.
    let rx = Receiver::start();
    let types: Vec<&str> = wagate::events::EVENT_TYPES
        .iter()
        .copied()
        .filter(|t| *t != "webhook.test")
        .collect();
    let r = post_json(
        &format!("{base}/api/webhooks"),
        k,
        json!({"url": rx.url(), "events": types}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let endpoint = r.json()["id"].as_str().unwrap().to_string();

    let me: whatsapp_rust::Jid = get(&format!("{base}/api/sessions/default"), k).json()["phone"]
        .as_str()
        .expect("the paired session's phone")
        .parse()
        .unwrap();
    // Two customers write in: the recipient of the sends (the day-one conversation: both
    // sides advance their Signal sessions with each other while wagate is killed) and a
    // second customer who is never sent to. Their answers share one numbering; an answer
    // counts once wa-mock has acked it.
    let c = mock_rt.block_on(peer(&mock));
    let answered: Arc<Mutex<Vec<u64>>> = Arc::default();
    // Each answer's WhatsApp id, to find it in the daemon's logs and wa-mock's stanzas.
    let answer_ids: Arc<Mutex<BTreeMap<u64, String>>> = Arc::default();
    let stop_answers = Arc::new(AtomicBool::new(false));
    let numbering = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let answers: Vec<_> = [(b.client.clone(), 0xa75), (c.client.clone(), 0xc75)]
        .into_iter()
        .map(|(client, salt)| {
            let (answered, answer_ids, stop, me, numbering) = (
                answered.clone(),
                answer_ids.clone(),
                stop_answers.clone(),
                me.clone(),
                numbering.clone(),
            );
            let mut arng = StdRng::seed_from_u64(seed ^ salt);
            mock_rt.spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let n = numbering.fetch_add(1, Ordering::Relaxed) + 1;
                    if let Ok(sent) = client.send_text(me.clone(), &format!("answer {n}")).await {
                        answered.lock().unwrap().push(n);
                        answer_ids.lock().unwrap().insert(n, sent.message_id);
                    }
                    let pause = arng.random_range(100..800);
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
            })
        })
        .collect();

    // The client: posts one message after another, cycling the kinds, until told to stop.
    let png = base64::engine::general_purpose::STANDARD
        .encode([&b"\x89PNG\r\n\x1a\n"[..], &[9u8; 600]].concat());
    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(ClientLog::default()));
    let client = {
        let (stop, log, base, key, to) = (
            stop.clone(),
            log.clone(),
            base.clone(),
            key.clone(),
            to.clone(),
        );
        let mut crng = StdRng::seed_from_u64(seed ^ 0x5eed);
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let kind = KINDS[(n as usize) % KINDS.len()];
                let url = format!("{base}/api/sessions/default/messages/{kind}");
                let r = common::agent()
                    .post(&url)
                    .header("Authorization", &format!("Bearer {key}"))
                    .content_type("application/json")
                    .send(body(kind, n, &to, &png).to_string());
                let id = match r {
                    Ok(mut resp) if resp.status() == 202 => {
                        // The answer may be cut by the kill after its status line.
                        let text = resp.body_mut().read_to_string();
                        match text
                            .ok()
                            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                        {
                            Some(v) => Some(v["id"].as_str().unwrap().to_string()),
                            None => {
                                log.lock().unwrap().unanswered += 1;
                                None
                            }
                        }
                    }
                    Ok(resp) => {
                        *log.lock()
                            .unwrap()
                            .refused
                            .entry(resp.status().as_u16())
                            .or_default() += 1;
                        None
                    }
                    Err(_) => {
                        log.lock().unwrap().unanswered += 1;
                        None
                    }
                };
                let down = id.is_none();
                log.lock()
                    .unwrap()
                    .posted
                    .push(Posted { token: n, kind, id });
                let pause = if down { 100 } else { crng.random_range(5..60) };
                std::thread::sleep(Duration::from_millis(pause));
            }
        })
    };

    // The loop: a random while, SIGKILL, restart, check what was accepted is still there.
    let mut checked = 0usize;
    let t0 = Instant::now();
    let mut kills_done = 0u32;
    for i in 0..kills {
        if budget.is_some_and(|b| t0.elapsed() >= b) {
            eprintln!("crash loop: CRASH_MINUTES is up after {i} kills");
            break;
        }
        kills_done += 1;
        let delay = rng.random_range(0..1500u64);
        std::thread::sleep(Duration::from_millis(delay));
        child.kill9();
        child = gate.start();
        let accepted: Vec<String> = {
            let log = log.lock().unwrap();
            log.posted[checked..]
                .iter()
                .filter_map(|p| p.id.clone())
                .collect()
        };
        checked = log.lock().unwrap().posted.len();
        for id in &accepted {
            let r = get(&format!("{base}/api/sessions/default/messages/{id}"), k);
            assert_eq!(
                r.status,
                200,
                "kill {i} (seed {seed}): accepted message {id} is gone after the restart: {}",
                r.text()
            );
        }
        if (i + 1) % 50 == 0 {
            eprintln!(
                "crash loop: {} kills in {:?}, {} posted",
                i + 1,
                t0.elapsed(),
                checked
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    stop_answers.store(true, Ordering::Relaxed);
    client.join().unwrap();
    for a in answers {
        mock_rt.block_on(a).unwrap();
    }
    let answered = answered.lock().unwrap().clone();
    let log = std::mem::take(&mut *log.lock().unwrap());

    // Settle: every accepted message sent or failed, every recorded event delivered.
    let accepted: Vec<&Posted> = log.posted.iter().filter(|p| p.id.is_some()).collect();
    let mut status: BTreeMap<String, String> = BTreeMap::new();
    for p in &accepted {
        let id = p.id.as_deref().unwrap();
        // Per message: the queue drains in order, so each waits about one send.
        let deadline = Instant::now() + SETTLE;
        loop {
            let v = get(&format!("{base}/api/sessions/default/messages/{id}"), k).json();
            let s = v["status"].as_str().unwrap_or("").to_string();
            if ["sent", "delivered", "read", "failed", "cancelled"].contains(&s.as_str()) {
                status.insert(id.to_string(), s);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "seed {seed}: message {id} never left the queue: {v}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let sent_ids: BTreeSet<u64> = accepted
        .iter()
        .filter(|p| status[p.id.as_deref().unwrap()] != "failed")
        .map(|p| p.token)
        .collect();
    let deadline = Instant::now() + SETTLE;
    loop {
        let got: BTreeSet<u64> = received.lock().unwrap().iter().map(|r| r.0).collect();
        let missing: Vec<&Posted> = accepted
            .iter()
            .filter(|p| sent_ids.contains(&p.token) && !got.contains(&p.token))
            .copied()
            .collect();
        if missing.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            // Name each one with what wagate recorded and what wa-mock saw of its WhatsApp
            // id, so the run can be followed in the logs.
            let seen = mock.stanzas(&StanzaFilter {
                tag: Some("message".into()),
                ..StanzaFilter::default()
            });
            let undec = undecryptable.lock().unwrap().clone();
            let detail: Vec<String> = missing
                .iter()
                .map(|p| {
                    let id = p.id.as_deref().unwrap_or("?");
                    let v = get(&format!("{base}/api/sessions/default/messages/{id}"), k).json();
                    let wa = v["wa_id"].as_str().unwrap_or("-").to_string();
                    let at_mock: Vec<String> = seen
                        .iter()
                        .filter(|r| r.xml.contains(&format!("id=\"{wa}\"")))
                        .map(|r| format!("{:?} conn {} {:?}", r.direction, r.conn, r.device))
                        .collect();
                    let why: Vec<&String> =
                        undec.iter().filter(|u| u.0 == wa).map(|u| &u.1).collect();
                    // The chain step (ratchet key, counter) it left on, and any other message
                    // of wagate's to the recipient that left on the same one (a reused
                    // counter reads as a duplicate at the recipient).
                    let b_users = [b.phone.as_str(), b.lid.as_str()];
                    let ins: Vec<&wa_mock::StanzaRecord> = seen
                        .iter()
                        .filter(|r| r.direction == wa_mock::Direction::In)
                        .collect();
                    let steps = |r: &wa_mock::StanzaRecord| -> Vec<signal::ChainStep> {
                        signal::encs_to(&r.node, |j| signal::is_user(j, &b_users))
                            .into_iter()
                            .filter_map(signal::chain_step)
                            .collect()
                    };
                    let is_it = |r: &wa_mock::StanzaRecord| r.xml.contains(&format!("id=\"{wa}\""));
                    let own: Vec<signal::ChainStep> = ins
                        .iter()
                        .filter(|r| is_it(r))
                        .flat_map(|r| steps(r))
                        .collect();
                    let shared: Vec<String> = ins
                        .iter()
                        .filter(|r| !is_it(r) && steps(r).iter().any(|s| own.contains(s)))
                        .map(|r| format!("seq {} {:?}", r.seq, r.node.attrs.get("id")))
                        .collect();
                    let own: Vec<String> = own.iter().map(signal::ChainStep::short).collect();
                    format!(
                        "token {} {id}: {v}\n  at wa-mock: {at_mock:?}; undecryptable: {why:?}; \
                         chain steps {own:?}, also used by {shared:?}",
                        p.token
                    )
                })
                .collect();
            panic!(
                "seed {seed}: {} sent message(s) never reached the recipient \
                 ({} undecryptable at the recipient in all):\n{}",
                missing.len(),
                undec.len(),
                detail.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Every answer arrives as message.received.
    let answers_at_receiver = || -> BTreeMap<u64, BTreeSet<String>> {
        let mut m: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
        for h in rx.hits() {
            let v = h.json();
            if v["type"] != "message.received" {
                continue;
            }
            let n = v["data"]["text"]
                .as_str()
                .and_then(|t| t.strip_prefix("answer "))
                .and_then(|t| t.parse().ok());
            if let Some(n) = n {
                m.entry(n)
                    .or_default()
                    .insert(v["id"].as_str().unwrap().to_string());
            }
        }
        m
    };
    let deadline = Instant::now() + SETTLE;
    loop {
        let got = answers_at_receiver();
        let missing: Vec<u64> = answered
            .iter()
            .copied()
            .filter(|n| !got.contains_key(n))
            .collect();
        if missing.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            let ids = answer_ids.lock().unwrap().clone();
            let seen = mock.stanzas(&StanzaFilter::default());
            let detail: Vec<String> = missing
                .iter()
                .map(|n| {
                    let wa = ids.get(n).map_or("-", String::as_str);
                    let at_mock: Vec<String> = seen
                        .iter()
                        .filter(|r| r.xml.contains(&format!("id=\"{wa}\"")))
                        .map(|r| {
                            format!("{:?} {} conn {} {:?}", r.direction, r.tag, r.conn, r.device)
                        })
                        .collect();
                    format!("answer {n} (WhatsApp id {wa}) at wa-mock: {at_mock:?}")
                })
                .collect();
            panic!(
                "seed {seed}: {} answer(s) WhatsApp took never arrived as message.received:\n{}",
                missing.len(),
                detail.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Every delivery wagate recorded for the endpoint, all pages.
    let deliveries = || -> Vec<serde_json::Value> {
        let mut all = Vec::new();
        let mut before: Option<String> = None;
        loop {
            let mut url = format!("{base}/api/deliveries?limit=1000&endpoint={endpoint}");
            if let Some(b) = &before {
                url.push_str(&format!("&before={b}"));
            }
            let v = get(&url, k).json();
            all.extend(v["deliveries"].as_array().unwrap().iter().cloned());
            match v["next_before"].as_str() {
                Some(b) => before = Some(b.to_string()),
                None => return all,
            }
        }
    };
    let mut recorded = deliveries();
    let deadline = Instant::now() + SETTLE;
    while recorded.iter().any(|d| d["status"] == "pending") {
        assert!(
            Instant::now() < deadline,
            "seed {seed}: deliveries still pending"
        );
        std::thread::sleep(Duration::from_millis(200));
        recorded = deliveries();
    }
    // Nothing left running that could add hits while they are counted.
    child.kill9();
    std::thread::sleep(Duration::from_millis(200));

    // The figures.
    let got = received.lock().unwrap().clone();
    let mut at_peer: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for (t, wa) in &got {
        at_peer.entry(*t).or_default().push(wa.clone());
    }
    let mut sent = 0;
    let mut failed_reported = 0;
    let mut lost = Vec::new();
    let mut duplicated = Vec::new();
    let mut same_id_repeats = 0;
    let mut by_kind: BTreeMap<&str, u64> = BTreeMap::new();
    for p in &accepted {
        *by_kind.entry(p.kind).or_default() += 1;
        let st = &status[p.id.as_deref().unwrap()];
        match at_peer.get(&p.token) {
            Some(was) => {
                sent += 1;
                let distinct: BTreeSet<&String> = was.iter().collect();
                if distinct.len() > 1 {
                    duplicated.push((p.token, was.clone()));
                }
                same_id_repeats += was.len() - distinct.len();
                assert_ne!(
                    st, "failed",
                    "seed {seed}: ck{}x arrived yet failed",
                    p.token
                );
            }
            None if st == "failed" => failed_reported += 1,
            None => lost.push((p.token, st.clone())),
        }
    }
    let accepted_tokens: BTreeSet<u64> = accepted.iter().map(|p| p.token).collect();
    let unaccepted_sent = at_peer
        .keys()
        .filter(|t| !accepted_tokens.contains(t))
        .count();

    let hits = rx.hits();
    let mut hit_deliveries: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for h in &hits {
        hit_deliveries
            .entry(h.json()["id"].as_str().unwrap().to_string())
            .or_default()
            .insert(h.delivery_id());
    }
    let events: BTreeSet<String> = recorded
        .iter()
        .map(|d| d["event_id"].as_str().unwrap().to_string())
        .collect();
    let delivered = events
        .iter()
        .filter(|e| hit_deliveries.contains_key(*e))
        .count();
    let undelivered: Vec<&String> = events
        .iter()
        .filter(|e| !hit_deliveries.contains_key(*e))
        .collect();
    let duplicate_deliveries = hits.len() - hit_deliveries.len();
    let split_ids: Vec<_> = hit_deliveries.iter().filter(|(_, d)| d.len() > 1).collect();
    // Every message the recipient got has its message.sent event at the receiver.
    let sent_events: BTreeSet<String> = hits
        .iter()
        .map(|h| h.json())
        .filter(|v| v["type"] == "message.sent")
        .filter_map(|v| v["data"]["id"].as_str().map(str::to_string))
        .collect();
    let no_sent_event: Vec<&str> = accepted
        .iter()
        .filter(|p| at_peer.contains_key(&p.token))
        .filter_map(|p| p.id.as_deref())
        .filter(|id| !sent_events.contains(*id))
        .collect();

    eprintln!(
        "crash loop: seed {seed}, {:?}, posted {} ({} unanswered at a kill, refused {:?}), \
         accepted by kind {by_kind:?}, {unaccepted_sent} unanswered posts were sent, \
         {same_id_repeats} repeats with the same WhatsApp id, {} webhook requests, {} \
         copies undecryptable at the recipient (asked again by retry receipt)",
        t0.elapsed(),
        log.posted.len(),
        log.unanswered,
        log.refused,
        hits.len(),
        undecryptable.lock().unwrap().len()
    );
    let answers_got = answers_at_receiver();
    let split_answers: Vec<_> = answers_got
        .iter()
        .filter(|(_, ids)| ids.len() > 1)
        .collect();
    // How often wa-mock handed wagate the same message again (its ack had not come when a
    // kill ended the connection), and how many came from the offline queue at all.
    let to_gate: Vec<String> = mock
        .stanzas(&StanzaFilter {
            tag: Some("message".into()),
            direction: Some(wa_mock::Direction::Out),
            ..StanzaFilter::default()
        })
        .into_iter()
        .filter(|r| {
            r.device
                .as_deref()
                .is_some_and(|d| d.starts_with(&format!("{}:", me.user)))
        })
        .map(|r| r.xml)
        .collect();
    let offline = to_gate
        .iter()
        .filter(|x| x.contains("offline=\"1\""))
        .count();
    let mut copies: BTreeMap<&str, u32> = BTreeMap::new();
    for x in &to_gate {
        if let Some(id) = x.split("id=\"").nth(1).and_then(|r| r.split('"').next()) {
            *copies.entry(id).or_default() += 1;
        }
    }
    let again: u32 = copies.values().map(|n| n - 1).sum();
    eprintln!(
        "crash figures (answers): answered {}, arrived {}, under two event ids {}, \
         handed to wagate {} times ({offline} from the offline queue, {again} again after a \
         kill)",
        answered.len(),
        answered
            .iter()
            .filter(|n| answers_got.contains_key(n))
            .count(),
        split_answers.len(),
        to_gate.len()
    );
    eprintln!(
        "crash figures: kills {kills_done}, accepted {}, sent {sent}, failed-reported \
         {failed_reported}, lost {}, duplicated {}, events {}, delivered {delivered}, \
         duplicate deliveries {duplicate_deliveries}",
        accepted.len(),
        lost.len(),
        duplicated.len(),
        events.len()
    );
    assert!(lost.is_empty(), "seed {seed}: lost {lost:?}");
    assert!(
        duplicated.is_empty(),
        "seed {seed}: sent twice (distinct WhatsApp ids) {duplicated:?}"
    );
    assert!(
        undelivered.is_empty(),
        "seed {seed}: events never delivered {undelivered:?}"
    );
    assert!(
        split_answers.is_empty(),
        "seed {seed}: one answer under two event ids {split_answers:?}"
    );
    assert!(
        split_ids.is_empty(),
        "seed {seed}: one event under two delivery ids {split_ids:?}"
    );
    assert!(
        no_sent_event.is_empty(),
        "seed {seed}: sent without a message.sent webhook {no_sent_event:?}"
    );
    assert!(
        accepted.len() as u32 >= kills_done,
        "the client got messages in"
    );
    drop((b, c));
    mock_rt.block_on(mock.shutdown());
}
