//! The outbox on a real redb file, with time passed in explicitly (the forwarder's clock).

use super::*;
use crate::events::{EventKind, MessageUpdate};
use crate::store::Store;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&dir.path().join("o.redb"), 1 << 20).unwrap();
    (dir, s)
}

fn endpoint(id: &str, events: &[&str], sessions: Option<&[&str]>) -> Endpoint {
    Endpoint {
        id: id.into(),
        url: format!("http://127.0.0.1:9/{id}"),
        events: events.iter().map(|s| s.to_string()).collect(),
        sessions: sessions.map(|s| s.iter().map(|x| x.to_string()).collect()),
        enabled: true,
        description: None,
        secret: "whsec_AAAA".into(),
        previous_secret: None,
        previous_until: None,
        disabled_reason: None,
        created_at: 0,
        updated_at: 0,
    }
}

fn sent(session: &str, at: i64) -> Event {
    let mut e = Event::new(
        session,
        EventKind::MessageSent(MessageUpdate {
            id: "msg_1".into(),
            wa_id: Some("3EB0".into()),
            kind: "text".into(),
            to: "15550001111@s.whatsapp.net".into(),
            to_phone: Some("15550001111@s.whatsapp.net".into()),
            to_lid: None,
            status: "sent".into(),
            reason: None,
            target: None,
        }),
    );
    e.timestamp = at;
    e
}

/// Age and count bounds, no byte budget.
fn bounds(older_than: i64, max_deliveries: u64, max_events: u64) -> Bounds {
    Bounds {
        older_than,
        max_deliveries,
        max_events,
        max_bytes: u64::MAX,
    }
}

fn fail(code: Option<u16>) -> Outcome {
    Outcome {
        attempt: AttemptRecord {
            at: 0,
            status_code: code,
            latency_ms: 1,
            response: None,
            error: Some("nope".into()),
        },
        retry_after_ms: None,
    }
}

fn ok() -> Outcome {
    Outcome {
        attempt: AttemptRecord {
            at: 0,
            status_code: Some(200),
            latency_ms: 1,
            response: Some("ok".into()),
            error: None,
        },
        retry_after_ms: None,
    }
}

const RETRIES: [u64; 5] = [1_000, 5_000, 30_000, 300_000, 1_800_000];

#[test]
fn events_fan_out_to_matching_endpoints_with_seq_per_session() {
    let (_d, s) = store();
    s.write_blocking(|t| {
        insert_endpoint(t, &endpoint("whk_all", &["*"], None))?;
        insert_endpoint(t, &endpoint("whk_sent_a", &["message.sent"], Some(&["a"])))?;
        insert_endpoint(t, &endpoint("whk_qr", &["session.qr"], None))?;
        let mut off = endpoint("whk_off", &["*"], None);
        off.enabled = false;
        insert_endpoint(t, &off)
    })
    .unwrap();
    let a1 = s
        .write_blocking(|t| record(t, sent("a", 10)))
        .unwrap()
        .unwrap();
    let b1 = s
        .write_blocking(|t| record(t, sent("b", 11)))
        .unwrap()
        .unwrap();
    let a2 = s
        .write_blocking(|t| record(t, sent("a", 12)))
        .unwrap()
        .unwrap();
    assert_eq!((a1.seq, b1.seq, a2.seq), (1, 1, 2), "seq grows per session");

    let all = s.read_blocking(|t| due(t, "whk_all", 100, 10)).unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(
        all.iter().map(|d| d.event_id.as_str()).collect::<Vec<_>>(),
        [a1.id.as_str(), b1.id.as_str(), a2.id.as_str()],
        "first attempts are due in event order"
    );
    let filtered = s.read_blocking(|t| due(t, "whk_sent_a", 100, 10)).unwrap();
    assert_eq!(filtered.len(), 2, "session filter");
    assert!(
        s.read_blocking(|t| due(t, "whk_qr", 100, 10))
            .unwrap()
            .is_empty()
    );
    assert!(
        s.read_blocking(|t| due(t, "whk_off", 100, 10))
            .unwrap()
            .is_empty()
    );

    let body = s.read_blocking(|t| event_body(t, &a2.id)).unwrap().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    for k in ["id", "type", "session", "seq", "timestamp", "data"] {
        assert!(keys.contains(&k), "body has {k}: {v}");
    }
    assert_eq!(keys.len(), 6, "and nothing else: {v}");
    assert_eq!(v["seq"], 2);
    assert_eq!(v["data"]["to_phone"], "15550001111@s.whatsapp.net");
}

#[test]
fn an_event_written_twice_with_one_id_is_one_event() {
    let (_d, s) = store();
    s.write_blocking(|t| insert_endpoint(t, &endpoint("whk_1", &["*"], None)))
        .unwrap();
    let mut e = sent("a", 5);
    e.id = format!("evt_{}", inbound_ulid("a", "chat", "sender", "3EB0AA", 5));
    let again = e.clone();
    assert!(
        s.write_blocking(|t| record(t, e.clone()))
            .unwrap()
            .is_some()
    );
    assert!(
        s.write_blocking(|t| record(t, again.clone()))
            .unwrap()
            .is_none()
    );
    assert_eq!(
        s.read_blocking(|t| due(t, "whk_1", 100, 10)).unwrap().len(),
        1
    );
    assert_eq!(s.read_blocking(|t| last_seq(t, "a")).unwrap(), 1);
}

#[test]
fn inbound_ids_are_derived_from_session_chat_sender_and_id() {
    let a = inbound_ulid(
        "s",
        "c@s.whatsapp.net",
        "p@s.whatsapp.net",
        "ID1",
        1_700_000_000_000,
    );
    assert_eq!(
        a,
        inbound_ulid(
            "s",
            "c@s.whatsapp.net",
            "p@s.whatsapp.net",
            "ID1",
            1_700_000_000_000
        )
    );
    assert_ne!(
        a,
        inbound_ulid(
            "t",
            "c@s.whatsapp.net",
            "p@s.whatsapp.net",
            "ID1",
            1_700_000_000_000
        )
    );
    assert_ne!(
        a,
        inbound_ulid(
            "s",
            "d@s.whatsapp.net",
            "p@s.whatsapp.net",
            "ID1",
            1_700_000_000_000
        )
    );
    assert_ne!(
        a,
        inbound_ulid(
            "s",
            "c@s.whatsapp.net",
            "q@s.whatsapp.net",
            "ID1",
            1_700_000_000_000
        )
    );
    assert_ne!(
        a,
        inbound_ulid(
            "s",
            "c@s.whatsapp.net",
            "p@s.whatsapp.net",
            "ID2",
            1_700_000_000_000
        )
    );
    let u: ulid::Ulid = a.parse().unwrap();
    assert_eq!(
        u.timestamp_ms(),
        1_700_000_000_000,
        "sorts by the message's time"
    );
}

#[test]
fn retries_follow_the_schedule_then_fail() {
    let (_d, s) = store();
    s.write_blocking(|t| insert_endpoint(t, &endpoint("whk_1", &["*"], None)))
        .unwrap();
    s.write_blocking(|t| record(t, sent("a", 1_000))).unwrap();
    let mut now = 1_000;
    let mut waits = Vec::new();
    loop {
        let due_now = s.read_blocking(|t| due(t, "whk_1", now, 10)).unwrap();
        assert_eq!(due_now.len(), 1, "due at {now}");
        // One millisecond earlier it was not due.
        assert!(
            s.read_blocking(|t| due(t, "whk_1", now - 1, 10))
                .unwrap()
                .is_empty()
        );
        let d = s
            .write_blocking(|t| attempted(t, &due_now[0].id, fail(Some(500)), &RETRIES, now))
            .unwrap()
            .unwrap();
        match d.next_at {
            Some(at) => {
                waits.push(at - now);
                now = at;
            }
            None => {
                assert_eq!(d.status, DeliveryStatus::Failed);
                assert_eq!(d.attempt_count, RETRIES.len() as u32 + 1);
                break;
            }
        }
    }
    assert!(
        s.read_blocking(|t| due(t, "whk_1", i64::MAX / 2, 10))
            .unwrap()
            .is_empty()
    );
    assert_eq!(waits, [1_000, 5_000, 30_000, 300_000, 1_800_000]);
    assert_eq!(s.read_blocking(|t| failed_count(t, "a")).unwrap(), 1);
    assert_eq!(
        s.read_blocking(failed_counts).unwrap(),
        vec![("a".to_string(), 1)]
    );
    let d = s
        .read_blocking(|t| {
            list_deliveries(
                t,
                &DeliveryFilter {
                    limit: 1,
                    ..Default::default()
                },
            )
        })
        .unwrap()
        .remove(0);
    s.write_blocking(|t| redeliver(t, &d.id, now)).unwrap();
    assert_eq!(
        s.read_blocking(|t| failed_count(t, "a")).unwrap(),
        0,
        "redelivered: not failed any more"
    );
    assert!(s.read_blocking(failed_counts).unwrap().is_empty());
}

#[test]
fn a_retry_does_not_block_the_deliveries_behind_it() {
    let (_d, s) = store();
    s.write_blocking(|t| insert_endpoint(t, &endpoint("whk_1", &["*"], None)))
        .unwrap();
    let first = s
        .write_blocking(|t| record(t, sent("a", 100)))
        .unwrap()
        .unwrap();
    let d1 = s
        .read_blocking(|t| due(t, "whk_1", 100, 10))
        .unwrap()
        .remove(0);
    s.write_blocking(|t| attempted(t, &d1.id, fail(None), &RETRIES, 100))
        .unwrap();
    let second = s
        .write_blocking(|t| record(t, sent("a", 200)))
        .unwrap()
        .unwrap();
    let due_now = s.read_blocking(|t| due(t, "whk_1", 200, 10)).unwrap();
    assert_eq!(due_now.len(), 1);
    assert_eq!(due_now[0].event_id, second.id, "the later event goes first");
    s.write_blocking(|t| attempted(t, &due_now[0].id, ok(), &RETRIES, 200))
        .unwrap();
    assert!(
        s.read_blocking(|t| due(t, "whk_1", 1_099, 10))
            .unwrap()
            .is_empty()
    );
    let later = s.read_blocking(|t| due(t, "whk_1", 1_100, 10)).unwrap();
    assert_eq!(later[0].event_id, first.id, "then the retry, when due");
}

#[test]
fn gone_disables_the_endpoint_and_retry_after_is_honoured() {
    let (_d, s) = store();
    s.write_blocking(|t| {
        insert_endpoint(t, &endpoint("whk_gone", &["*"], None))?;
        insert_endpoint(t, &endpoint("whk_busy", &["*"], None))
    })
    .unwrap();
    s.write_blocking(|t| record(t, sent("a", 10))).unwrap();
    s.write_blocking(|t| record(t, sent("a", 11))).unwrap();

    let gone = s.read_blocking(|t| due(t, "whk_gone", 20, 10)).unwrap();
    let d = s
        .write_blocking(|t| attempted(t, &gone[0].id, fail(Some(410)), &RETRIES, 20))
        .unwrap()
        .unwrap();
    assert_eq!(d.status, DeliveryStatus::Failed);
    let ep = s
        .read_blocking(|t| get_endpoint(t, "whk_gone"))
        .unwrap()
        .unwrap();
    assert!(!ep.enabled);
    assert!(ep.disabled_reason.unwrap().contains("410"));
    assert!(
        s.read_blocking(|t| due(t, "whk_gone", 1_000_000, 10))
            .unwrap()
            .is_empty(),
        "a disabled endpoint's pending deliveries are off the schedule"
    );
    assert!(
        s.write_blocking(|t| record(t, sent("a", 30)))
            .unwrap()
            .is_some()
    );
    assert!(
        s.read_blocking(|t| due(t, "whk_gone", 1_000_000, 10))
            .unwrap()
            .is_empty(),
        "and it gets no new ones"
    );
    // Enabled again: the pending one is due at once.
    s.write_blocking(|t| set_enabled(t, "whk_gone", true, None, 40))
        .unwrap();
    assert_eq!(
        s.read_blocking(|t| due(t, "whk_gone", 40, 10))
            .unwrap()
            .len(),
        1
    );

    let busy = s.read_blocking(|t| due(t, "whk_busy", 20, 10)).unwrap();
    let mut o = fail(Some(429));
    o.retry_after_ms = Some(120_000);
    let d = s
        .write_blocking(|t| attempted(t, &busy[0].id, o.clone(), &RETRIES, 20))
        .unwrap()
        .unwrap();
    assert_eq!(
        d.next_at,
        Some(120_020),
        "Retry-After replaces the 1 s wait"
    );
    let mut o = fail(Some(503));
    o.retry_after_ms = Some(u64::MAX);
    let d = s
        .write_blocking(|t| attempted(t, &busy[0].id, o.clone(), &RETRIES, 120_020))
        .unwrap()
        .unwrap();
    assert_eq!(
        d.next_at,
        Some(120_020 + MAX_RETRY_AFTER_MS as i64),
        "capped"
    );
    let mut o = fail(Some(500));
    o.retry_after_ms = Some(120_000);
    let d = s
        .write_blocking(|t| attempted(t, &busy[0].id, o.clone(), &RETRIES, 0))
        .unwrap()
        .unwrap();
    assert_eq!(d.next_at, Some(30_000), "only 429 and 503 ask for a wait");
}

#[test]
fn redeliver_keeps_the_id_and_replay_covers_since() {
    let (_d, s) = store();
    s.write_blocking(|t| insert_endpoint(t, &endpoint("whk_1", &["*"], None)))
        .unwrap();
    let e1 = s
        .write_blocking(|t| record(t, sent("a", 1_000)))
        .unwrap()
        .unwrap();
    let e2 = s
        .write_blocking(|t| record(t, sent("a", 2_000)))
        .unwrap()
        .unwrap();
    let ds = s.read_blocking(|t| due(t, "whk_1", 2_000, 10)).unwrap();
    for d in &ds {
        s.write_blocking(|t| attempted(t, &d.id, ok(), &RETRIES, 2_000))
            .unwrap();
    }
    assert!(
        s.read_blocking(|t| due(t, "whk_1", 9_000, 10))
            .unwrap()
            .is_empty()
    );

    let again = s
        .write_blocking(|t| redeliver(t, &ds[0].id, 3_000))
        .unwrap()
        .unwrap();
    assert_eq!(again.id, ds[0].id);
    assert_eq!(again.status, DeliveryStatus::Pending);
    assert_eq!(again.attempts.len(), 1, "the log keeps the earlier attempt");
    s.write_blocking(|t| attempted(t, &again.id, ok(), &RETRIES, 3_000))
        .unwrap();

    // A new endpoint replays from 1500: only e2, as a new delivery.
    s.write_blocking(|t| insert_endpoint(t, &endpoint("whk_2", &["*"], None)))
        .unwrap();
    let n = s
        .write_blocking(|t| replay(t, "whk_2", 1_500, 4_000))
        .unwrap();
    assert_eq!(n, Some(1));
    let due2 = s.read_blocking(|t| due(t, "whk_2", 4_000, 10)).unwrap();
    assert_eq!(due2.len(), 1);
    assert_eq!(due2[0].event_id, e2.id);
    // The old endpoint replays everything through the deliveries it had.
    let n = s.write_blocking(|t| replay(t, "whk_1", 0, 4_000)).unwrap();
    assert_eq!(n, Some(2));
    let due1 = s.read_blocking(|t| due(t, "whk_1", 4_000, 10)).unwrap();
    let mut ids: Vec<&str> = due1.iter().map(|d| d.id.as_str()).collect();
    ids.sort();
    let mut before: Vec<&str> = ds.iter().map(|d| d.id.as_str()).collect();
    before.sort();
    assert_eq!(ids, before, "same delivery ids");
    assert!(due1.iter().any(|d| d.event_id == e1.id));
    assert_eq!(
        s.write_blocking(|t| replay(t, "whk_none", 0, 4_000))
            .unwrap(),
        None
    );
}

#[test]
fn the_log_filters_and_pages_newest_first() {
    let (_d, s) = store();
    s.write_blocking(|t| {
        insert_endpoint(t, &endpoint("whk_1", &["*"], None))?;
        insert_endpoint(t, &endpoint("whk_2", &["*"], None))
    })
    .unwrap();
    for i in 0..5 {
        let session = if i % 2 == 0 { "a" } else { "b" };
        s.write_blocking(|t| record(t, sent(session, i))).unwrap();
    }
    let f = |f: DeliveryFilter| s.read_blocking(move |t| list_deliveries(t, &f)).unwrap();
    let all = f(DeliveryFilter {
        limit: 100,
        ..Default::default()
    });
    assert_eq!(all.len(), 10);
    assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    let page1 = f(DeliveryFilter {
        limit: 4,
        ..Default::default()
    });
    let page2 = f(DeliveryFilter {
        limit: 4,
        before: Some(page1[3].id.clone()),
        ..Default::default()
    });
    assert_eq!(page1[..], all[..4]);
    assert_eq!(page2[..], all[4..8]);
    assert_eq!(
        f(DeliveryFilter {
            limit: 100,
            session: Some("a".into()),
            endpoint: Some("whk_2".into()),
            ..Default::default()
        })
        .len(),
        3
    );
    assert_eq!(
        f(DeliveryFilter {
            limit: 100,
            status: Some(DeliveryStatus::Delivered),
            ..Default::default()
        })
        .len(),
        0
    );
    assert_eq!(
        f(DeliveryFilter {
            limit: 100,
            event: Some("message.sent".into()),
            ..Default::default()
        })
        .len(),
        10
    );
}

#[test]
fn retention_removes_finished_and_old_but_never_pending() {
    let (_d, s) = store();
    s.write_blocking(|t| insert_endpoint(t, &endpoint("whk_1", &["*"], None)))
        .unwrap();
    for i in 0..10 {
        s.write_blocking(|t| record(t, sent("a", i * 100))).unwrap();
    }
    let ds = s.read_blocking(|t| due(t, "whk_1", 10_000, 100)).unwrap();
    // The first six delivered, the rest pending.
    for d in &ds[..6] {
        s.write_blocking(|t| attempted(t, &d.id, ok(), &RETRIES, 1_000))
            .unwrap();
    }
    // By age: everything before 350 that is finished (deliveries at 0, 100, 200, 300).
    let (gone, events) = s
        .write_blocking(|t| prune(t, bounds(350, 1_000, 1_000)))
        .unwrap();
    assert_eq!((gone, events), (4, 4));
    assert_eq!(s.read_blocking(delivery_count).unwrap(), 6);
    // By size: at most 100 kept is fine; now a cap below the count removes the oldest
    // finished (400, 500) and stops at the pending ones.
    let (gone, _) = s.write_blocking(|t| prune(t, bounds(0, 1, 1_000))).unwrap();
    assert_eq!(gone, 2);
    assert_eq!(s.read_blocking(delivery_count).unwrap(), 4);
    assert_eq!(
        s.read_blocking(|t| due(t, "whk_1", 10_000, 100))
            .unwrap()
            .len(),
        4
    );
    // Old events that pending deliveries need stay.
    let (_, events) = s
        .write_blocking(|t| prune(t, bounds(100_000, 1, 1_000)))
        .unwrap();
    assert_eq!(
        events, 2,
        "the two delivered, unneeded events go; four stay"
    );
}

/// A store with one endpoint and ten events `make(0..10)`, every delivery done but the
/// second event's: (dir, store, event ids, deliveries).
fn ten_delivered_but_the_second(
    make: impl Fn(i64) -> Event,
) -> (tempfile::TempDir, Store, Vec<String>, Vec<Delivery>) {
    let (d, s) = store();
    s.write_blocking(|t| insert_endpoint(t, &endpoint("whk_1", &["*"], None)))
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..10 {
        let e = s.write_blocking(|t| record(t, make(i))).unwrap().unwrap();
        ids.push(e.id);
    }
    let ds = s.read_blocking(|t| due(t, "whk_1", 10_000, 100)).unwrap();
    for d in ds.iter().filter(|d| d.event_id != ids[1]) {
        s.write_blocking(|t| attempted(t, &d.id, ok(), &RETRIES, 3_000))
            .unwrap();
    }
    (d, s, ids, ds)
}

#[test]
fn the_event_log_is_bounded_by_count_oldest_first_keeping_what_pending_deliveries_need() {
    // The soak found the event log growing by age bound alone: 8,455 events in 30 minutes.
    let (_d, s, ids, ds) = ten_delivered_but_the_second(|i| sent("a", 1_000 + i * 100));
    let events = |s: &Store| {
        s.read_blocking(|t| Ok(t.open_table(EVENT)?.len()?))
            .unwrap()
    };
    // Nothing is old; a bound of 4 removes the six oldest the pending one does not need.
    let (_, gone) = s.write_blocking(|t| prune(t, bounds(0, 1_000, 4))).unwrap();
    assert_eq!(gone, 6);
    assert_eq!(events(&s), 4);
    let kept = kept_events(&s);
    assert_eq!(kept, [ids[1].as_str(), &ids[7], &ids[8], &ids[9]]);
    // At the bound nothing more goes; replay from the start finds only what is kept.
    assert_eq!(
        s.write_blocking(|t| prune(t, bounds(0, 1_000, 4)))
            .unwrap()
            .1,
        0
    );
    s.write_blocking(|t| insert_endpoint(t, &endpoint("whk_2", &["*"], None)))
        .unwrap();
    assert_eq!(
        s.write_blocking(|t| replay(t, "whk_2", 0, 4_000)).unwrap(),
        Some(4)
    );
    for d in s.read_blocking(|t| due(t, "whk_2", 10_000, 100)).unwrap() {
        s.write_blocking(|t| attempted(t, &d.id, ok(), &RETRIES, 4_000))
            .unwrap();
    }
    // The pending one's event goes once its delivery finished.
    let pending = ds.iter().find(|d| d.event_id == ids[1]).unwrap();
    s.write_blocking(|t| attempted(t, &pending.id, ok(), &RETRIES, 5_000))
        .unwrap();
    let (_, gone) = s.write_blocking(|t| prune(t, bounds(0, 1_000, 3))).unwrap();
    assert_eq!(gone, 1);
    assert_eq!(events(&s), 3);
}

/// The ids of the events kept, oldest first.
fn kept_events(s: &Store) -> Vec<String> {
    s.read_blocking(|t| {
        let mut v = Vec::new();
        for row in t.open_table(EVENT_TIME)?.iter()? {
            v.push(row?.0.value().1.to_string());
        }
        Ok(v)
    })
    .unwrap()
}

/// The bytes the event and delivery tables hold, counted row by row.
fn stored_bytes(s: &Store) -> u64 {
    s.read_blocking(|t| {
        let mut n = 0;
        for table in [EVENT, DELIVERY] {
            for row in t.open_table(table)?.iter()? {
                n += row?.1.value().len() as u64;
            }
        }
        Ok(n)
    })
    .unwrap()
}

/// A `message.failed` event with a `reason` of `len` bytes: a large event (as one with
/// inline media is).
fn large(at: i64, len: usize) -> Event {
    let mut e = sent("a", at);
    if let EventKind::MessageSent(u) = &mut e.kind {
        u.reason = Some("x".repeat(len));
    }
    e
}

#[test]
fn the_log_is_bounded_by_bytes_oldest_first_keeping_what_pending_deliveries_need() {
    let (_d, s, ids, ds) = ten_delivered_but_the_second(|i| large(1_000 + i * 100, 10_000));
    // The count follows every write, replacement (an attempt rewrites its delivery) included.
    let total = stored_bytes(&s);
    assert_eq!(s.read_blocking(log_bytes).unwrap(), total);
    assert!(total > 100_000, "{total}");

    // Room for about four events: nothing is old and the counts are far off.
    let budget = 40_000;
    let b = Bounds {
        max_bytes: budget,
        ..bounds(0, 1_000, 1_000)
    };
    let (dls, evs) = s.write_blocking(|t| prune(t, b)).unwrap();
    let left = stored_bytes(&s);
    assert_eq!(s.read_blocking(log_bytes).unwrap(), left);
    assert!(left <= budget, "{left} bytes left");
    // Not more than needed: one more removal (about 10 kB) would have done.
    assert!(
        left > budget - 11_000,
        "{left} bytes left, {dls} deliveries and {evs} events gone"
    );
    // The pending delivery and its event stay; what else stays is the newest.
    let kept = kept_events(&s);
    assert_eq!(kept[0], ids[1]);
    assert!(kept.len() >= 2 && kept.len() < 9, "{kept:?}");
    assert_eq!(kept[1..], ids[ids.len() - (kept.len() - 1)..]);
    let pending = ds.iter().find(|d| d.event_id == ids[1]).unwrap();
    let d = s.read_blocking(|t| get_delivery(t, &pending.id)).unwrap();
    assert_eq!(d.map(|d| d.status), Some(DeliveryStatus::Pending));
    // Within the budget nothing more goes.
    assert_eq!(s.write_blocking(|t| prune(t, b)).unwrap(), (0, 0));
}

#[test]
fn the_byte_count_is_taken_at_open_when_a_store_has_none() {
    // A store written before the count existed: it is counted once when opened.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o.redb");
    {
        let s = Store::open(&path, 1 << 20).unwrap();
        s.write_blocking(|t| insert_endpoint(t, &endpoint("whk_1", &["*"], None)))
            .unwrap();
        for i in 0..5 {
            s.write_blocking(|t| record(t, large(i, 1_000))).unwrap();
        }
        s.write_blocking(|t| {
            t.open_table(COUNT)?.remove(LOG_BYTES)?;
            Ok(())
        })
        .unwrap();
        assert_eq!(s.read_blocking(log_bytes).unwrap(), 0);
    }
    let s = Store::open(&path, 1 << 20).unwrap();
    let n = s.read_blocking(log_bytes).unwrap();
    assert!(n > 5_000, "{n}");
    assert_eq!(n, stored_bytes(&s));
}

#[test]
fn deleting_an_endpoint_fails_its_pending_deliveries() {
    let (_d, s) = store();
    s.write_blocking(|t| insert_endpoint(t, &endpoint("whk_1", &["*"], None)))
        .unwrap();
    s.write_blocking(|t| record(t, sent("a", 1))).unwrap();
    let d = s
        .read_blocking(|t| due(t, "whk_1", 1, 10))
        .unwrap()
        .remove(0);
    assert!(
        s.write_blocking(|t| delete_endpoint(t, "whk_1", 5))
            .unwrap()
    );
    let d = s
        .read_blocking(|t| get_delivery(t, &d.id))
        .unwrap()
        .unwrap();
    assert_eq!(d.status, DeliveryStatus::Failed);
    assert_eq!(d.last_error.as_deref(), Some("endpoint deleted"));
    assert_eq!(s.read_blocking(pending_count).unwrap(), 0);
    assert!(
        !s.write_blocking(|t| delete_endpoint(t, "whk_1", 5))
            .unwrap()
    );
}

#[test]
fn qr_events_expire_with_their_code() {
    let mut e = Event::new(
        "a",
        EventKind::SessionQr {
            code: "2@x".into(),
            expires_at: 1_000,
        },
    );
    e.timestamp = 0;
    assert_eq!(expired_at(&e, 999), None);
    assert_eq!(expired_at(&e, 1_000), Some(1_000));
    assert_eq!(expired_at(&sent("a", 0), i64::MAX), None);
}

#[test]
fn event_filters_name_known_types() {
    assert!(check_event_filter(&["*".into()]).is_ok());
    assert!(check_event_filter(&["message.read".into(), "session.qr".into()]).is_ok());
    assert!(check_event_filter(&[]).is_err());
    let e = check_event_filter(&["message.recieved".into()]).unwrap_err();
    assert!(e.contains("message.recieved"), "{e}");
}

/// An event stamped before a later-written one (an inbound message stamped, then its media
/// fetched while other events were written) still has its first attempt after theirs: first
/// attempts follow the order events were written, which is the order of `seq`.
#[test]
fn first_attempts_follow_the_order_events_were_written_not_their_stamps() {
    let (_d, s) = store();
    s.write_blocking(|t| insert_endpoint(t, &endpoint("whk_1", &["*"], None)))
        .unwrap();
    let written_first = s
        .write_blocking(|t| record(t, sent("a", 500)))
        .unwrap()
        .unwrap();
    let stamped_earlier = s
        .write_blocking(|t| record(t, sent("a", 300)))
        .unwrap()
        .unwrap();
    assert!(stamped_earlier.seq > written_first.seq);
    let order: Vec<String> = s
        .read_blocking(|t| due(t, "whk_1", 1_000, 10))
        .unwrap()
        .into_iter()
        .map(|d| d.event_id)
        .collect();
    assert_eq!(order, [written_first.id, stamped_earlier.id]);
}

#[test]
fn the_mqtt_endpoint_follows_the_configuration_and_its_backlog_is_bounded() {
    let (_d, s) = store();
    let all = vec!["*".to_string()];
    s.write_blocking(|t| configure_mqtt(t, Some(("mqtt://b:1883", &all)), 1))
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..5 {
        let e = s
            .write_blocking(|t| record(t, sent("a", 10 + i)))
            .unwrap()
            .unwrap();
        ids.push(e.id);
    }
    let waiting = |s: &Store| {
        s.read_blocking(|t| due(t, MQTT_ENDPOINT, i64::MAX, 100))
            .unwrap()
            .into_iter()
            .map(|d| d.event_id)
            .collect::<Vec<_>>()
    };
    assert_eq!(waiting(&s), ids, "one delivery per event, in order");
    // At most two wait: the three oldest expire.
    // A byte bound: one event's worth keeps only the newest.
    let one = s
        .read_blocking(|t| event_body(t, &ids[0]))
        .unwrap()
        .unwrap()
        .len() as u64;
    let n = s
        .write_blocking(|t| expire_backlog(t, MQTT_ENDPOINT, 0, 100, 4 * one, "too big", 4))
        .unwrap();
    assert_eq!(n, 1, "five events of about {one} bytes, room for four");
    assert_eq!(waiting(&s), ids[1..].to_vec());
    let n = s
        .write_blocking(|t| expire_backlog(t, MQTT_ENDPOINT, 0, 2, u64::MAX, "too many", 4))
        .unwrap();
    assert_eq!(n, 2);
    assert_eq!(waiting(&s), ids[3..].to_vec());
    assert_eq!(
        s.read_blocking(|t| scheduled_count(t, MQTT_ENDPOINT))
            .unwrap(),
        2
    );
    // A broker acknowledgement delivers; what waited too long expires.
    let first = s
        .read_blocking(|t| due(t, MQTT_ENDPOINT, i64::MAX, 1))
        .unwrap()
        .remove(0);
    let acked = s
        .write_blocking(|t| {
            acknowledged(
                t,
                &first.id,
                AttemptRecord {
                    at: 5,
                    status_code: None,
                    latency_ms: 1,
                    response: None,
                    error: None,
                },
                5,
            )
        })
        .unwrap()
        .unwrap();
    assert_eq!(acked.status, DeliveryStatus::Delivered);
    let n = s
        .write_blocking(|t| expire_backlog(t, MQTT_ENDPOINT, i64::MAX, 100, u64::MAX, "too old", 6))
        .unwrap();
    assert_eq!(n, 1);
    assert!(waiting(&s).is_empty());
    // A refusal recorded after the bound expired the delivery does not bring it back.
    let revived = s
        .write_blocking(|t| attempted(t, &first.id, fail(Some(500)), &[1000], 7))
        .unwrap();
    assert!(revived.is_none());
    // Turned off: what waits ends expired.
    s.write_blocking(|t| record(t, sent("a", 30))).unwrap();
    assert_eq!(waiting(&s).len(), 1);
    s.write_blocking(|t| configure_mqtt(t, None, 8)).unwrap();
    // Off: nothing new is added either.
    s.write_blocking(|t| record(t, sent("a", 40))).unwrap();
    s.write_blocking(|t| configure_mqtt(t, Some(("mqtt://b:1883", &all)), 9))
        .unwrap();
    assert!(
        waiting(&s).is_empty(),
        "nothing left from before it was off"
    );
    // Today's counts come from the event log.
    let counts = s.read_blocking(|t| sent_failed_since(t, 0)).unwrap();
    assert_eq!(counts, vec![("a".to_string(), 7, 0)]);
}

#[test]
fn the_event_log_keeps_write_order_and_is_filled_in_for_an_older_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o.redb");
    let ids: Vec<String> = {
        let s = Store::open(&path, 1 << 20).unwrap();
        // Written in this order, stamped in another.
        let written = s
            .write_blocking(|t| {
                let mut out = Vec::new();
                for at in [3_000, 1_000, 2_000] {
                    out.push(record(t, sent("a", at))?.unwrap());
                }
                Ok(out)
            })
            .unwrap();
        assert_eq!(
            written.iter().map(|e| e.pos).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        let read = s.read_blocking(|t| events_after(t, 1, 10)).unwrap();
        assert_eq!(read.len(), 2);
        assert_eq!(
            (read[0].id.as_str(), read[0].pos),
            (written[1].id.as_str(), 2)
        );
        assert_eq!(read[1].id, written[2].id);
        // A store from before the log: no log tables, no position counter.
        s.write_blocking(|t| {
            t.delete_table(EVENT_LOG)?;
            t.delete_table(EVENT_POS)?;
            t.open_table(COUNT)?.remove(LOG_POS)?;
            Ok(())
        })
        .unwrap();
        written.into_iter().map(|e| e.id).collect()
    };
    let s = Store::open(&path, 1 << 20).unwrap();
    // Filled in by time, the best order such a store knows.
    let all = s.read_blocking(|t| events_after(t, 0, 10)).unwrap();
    let order: Vec<&str> = all.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(
        order,
        vec![ids[1].as_str(), ids[2].as_str(), ids[0].as_str()]
    );
    let mark = s.read_blocking(log_mark).unwrap();
    assert_eq!(mark, LogMark { last: 3, pruned: 0 });
    // New events go after them.
    let next = s
        .write_blocking(|t| record(t, sent("a", 4_000)))
        .unwrap()
        .unwrap();
    assert_eq!(next.pos, 4);
    // Pruning the oldest by time marks how far the log was cut.
    s.write_blocking(|t| prune(t, bounds(1_500, u64::MAX, u64::MAX)))
        .unwrap();
    let mark = s.read_blocking(log_mark).unwrap();
    assert_eq!(mark.pruned, 1);
    assert_eq!(s.read_blocking(|t| log_position(t, &ids[1])).unwrap(), None);
    assert_eq!(
        s.read_blocking(|t| log_position(t, &ids[2])).unwrap(),
        Some(2)
    );
}
