//! MQTT against a real broker (Debian's mosquitto on a loopback port), with mosquitto's own
//! clients on the other side and the real `wagate run` paired with wa-mock:
//! - every event reaches a subscriber, in order, through a broker stopped for a while and
//!   restarted; a repeat carries the same event id and the same bytes;
//! - a command on `<base>/<session>/send/<kind>` sends through wa-mock and is answered (on
//!   `<base>/<session>/result` with its `request_id`, or on the MQTT 5 response topic with its
//!   correlation data); a repeated request id is the same message; bad commands get the API's
//!   error and send nothing;
//! - Home Assistant discovery: each session is a device whose payload has every key Home
//!   Assistant requires, its QR image decodes to the code the API shows, its state is
//!   retained, the `online` birth message brings the configs back, and a deleted session's
//!   device is removed.
//!
//! Needs `mosquitto` and `mosquitto-clients` (`.ci/run` installs them) and
//! `--features wagate/trust-wa-mock`.
#![cfg(feature = "trust-wa-mock")]

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::runtime::Runtime;
use wa_mock::{MockConfig, MockServer};

use crate::common::daemon::{Gate, wait_until};
use crate::common::mqtt::{self, Broker, Msg, Sub, publish, retain};
use crate::common::peer::{peer, text_of};
use crate::common::{call, delete, get, metric, post_json};

const BASE: &str = "wagate/t";
const STEP: Duration = Duration::from_secs(40);

fn need_mosquitto() {
    assert!(
        mqtt::available(),
        "these tests need a real broker: apt-get install mosquitto mosquitto-clients"
    );
}

fn health(gate: &Gate) -> Value {
    get(&format!("{}/api/health", gate.base()), None).json()
}

/// Wait until a message the API accepted has left the queue.
fn wait_sent(gate: &Gate, key: &str, id: &str) {
    let url = format!("{}/api/sessions/default/messages/{id}", gate.base());
    wait_until("the message to be sent", STEP, || {
        let s = get(&url, Some(key)).json()["status"].clone();
        s == "sent" || s == "delivered" || s == "read"
    });
}

/// The QR payload a PNG shows, if it shows one.
fn qr_in(png_bytes: &[u8]) -> Option<String> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().ok()?;
    let mut buf = vec![0; reader.output_buffer_size()?];
    let frame = reader.next_frame(&mut buf).ok()?;
    let (w, h, stride) = (frame.width as usize, frame.height as usize, frame.line_size);
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| buf[y * stride + x]);
    let grids = img.detect_grids();
    let (_, content) = grids.first()?.decode().ok()?;
    Some(content)
}

/// Check a device discovery payload against Home Assistant's MQTT discovery documentation
/// (2026.5): the root needs `dev` (with identifiers) and `o` (with a name) and `cmps`; every
/// component a platform `p` and a `unique_id`, and the keys its platform requires.
fn check_discovery(config: &Value) -> BTreeMap<String, Value> {
    let dev = &config["dev"];
    assert!(
        dev["identifiers"].as_array().is_some_and(|a| !a.is_empty())
            || dev["connections"].is_array(),
        "dev needs identifiers: {config}"
    );
    assert!(dev["name"].is_string(), "dev needs a name: {config}");
    assert!(config["o"]["name"].is_string(), "o needs a name: {config}");
    let topic_ok = |t: &Value| {
        t.as_str()
            .is_some_and(|s| !s.is_empty() && !s.contains(['+', '#']))
    };
    let avty = &config["availability_topic"];
    assert!(topic_ok(avty), "availability_topic: {config}");
    let cmps = config["cmps"].as_object().expect("cmps is a map");
    let mut ids = std::collections::HashSet::new();
    for (key, c) in cmps {
        let p = c["p"].as_str().unwrap_or_else(|| panic!("{key}: no p"));
        let uid = c["unique_id"]
            .as_str()
            .unwrap_or_else(|| panic!("{key}: no unique_id"));
        assert!(
            ids.insert(uid.to_string()),
            "{key}: unique_id {uid} repeats"
        );
        assert!(
            key.chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-'),
            "{key}"
        );
        if let Some(d) = c.get("default_entity_id") {
            assert!(
                d.as_str().is_some_and(|d| d.starts_with(&format!("{p}."))),
                "{key}: default_entity_id is <platform>.<id>: {d}"
            );
        }
        assert!(
            c.get("object_id").is_none(),
            "{key}: object_id was removed in 2026.4"
        );
        match p {
            "binary_sensor" | "sensor" => assert!(topic_ok(&c["state_topic"]), "{key}"),
            "event" => {
                assert!(topic_ok(&c["state_topic"]), "{key}");
                let types = c["event_types"].as_array().expect("event_types");
                assert!(
                    !types.is_empty() && types.iter().all(Value::is_string),
                    "{key}"
                );
            }
            "image" => {
                assert!(topic_ok(&c["image_topic"]), "{key}");
                assert!(
                    c.get("url_topic").is_none(),
                    "{key}: image_topic or url_topic"
                );
            }
            "button" | "notify" => assert!(topic_ok(&c["command_topic"]), "{key}"),
            other => panic!("{key}: unexpected platform {other}"),
        }
        if c["p"] == "sensor" && c.get("entity_category").is_some() {
            assert_eq!(c["entity_category"], "diagnostic", "{key}");
        }
        if c["p"] == "binary_sensor" {
            assert_eq!(c["device_class"], "connectivity", "{key}");
        }
    }
    cmps.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// A broker in a fresh directory (the daemon's data and logs go beside it).
fn start_broker() -> (tempfile::TempDir, Broker) {
    need_mosquitto();
    let dir = tempfile::tempdir().unwrap();
    for d in ["logs", "broker"] {
        std::fs::create_dir_all(dir.path().join(d)).unwrap();
    }
    let broker = Broker::start(&dir.path().join("broker"));
    (dir, broker)
}

/// wagate with MQTT on this broker under [`BASE`].
fn gate_on(dir: &tempfile::TempDir, mock: &MockServer, broker: &Broker) -> Gate {
    let mut gate = Gate::new(&dir.path().join("data"), &dir.path().join("logs"), mock);
    gate.env.push(("WAGATE_MQTT__URL".into(), broker.url()));
    gate.env
        .push(("WAGATE_MQTT__BASE_TOPIC".into(), BASE.into()));
    gate
}

/// Render Home Assistant templates with Jinja2 as Home Assistant does
/// (`common/ha_render.py`; needs python3 with jinja2).
fn render_templates(jobs: &[Value]) -> Vec<Value> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/common/ha_render.py");
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (with jinja2: apt-get install python3-jinja2)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(Value::from(jobs.to_vec()).to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "ha_render.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn event_topic(m: &Msg) -> bool {
    m.topic.starts_with(&format!("{BASE}/")) && m.topic.contains("/event/")
}

#[test]
fn events_reach_a_subscriber_in_order_and_once_through_a_broker_restart() {
    let (dir, mut broker) = start_broker();
    // A subscriber whose session the broker keeps: what it misses while the broker is down
    // it gets after.
    let sub = Sub::start(
        broker.port,
        &[&format!("{BASE}/+/event/#")],
        Some("events-sub"),
    );
    let rt = Runtime::new().unwrap();
    let mock = rt
        .block_on(MockServer::start(MockConfig::default()))
        .unwrap();
    let mut gate = gate_on(&dir, &mock, &broker);
    let key = gate.admin_key();
    let _child = gate.start();
    gate.pair(&rt, &mock, &key);
    let b = rt.block_on(peer(&mock));
    let send = |text: &str| {
        let r = post_json(
            &format!("{}/api/sessions/default/messages/text", gate.base()),
            Some(&key),
            json!({"to": b.jid, "text": text}),
        );
        assert_eq!(r.status, 202, "{}", r.text());
        r.json()["id"].as_str().unwrap().to_string()
    };
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(send(&format!("while the broker is up {i}")));
    }
    for id in &ids {
        wait_sent(&gate, &key, id);
    }
    assert_eq!(health(&gate)["mqtt"]["connected"], true);

    // The broker goes away; messages go on and their events wait.
    broker.stop();
    wait_until("wagate to see the broker gone", STEP, || {
        health(&gate)["mqtt"]["connected"] == false
    });
    let mut later = Vec::new();
    for i in 0..5 {
        later.push(send(&format!("while the broker is away {i}")));
    }
    for id in &later {
        wait_sent(&gate, &key, id);
    }
    let h = health(&gate);
    let backlog = h["mqtt"]["backlog"].as_u64().unwrap();
    assert!(backlog >= 5, "a message.sent per text waits at least: {h}");
    assert!(h["mqtt"]["error"].is_string(), "health says why: {h}");
    let m = get(&format!("{}/metrics", gate.base()), Some(&key)).text();
    assert_eq!(metric(&m, "wagate_mqtt_connected"), 0.0);
    assert!(metric(&m, "wagate_mqtt_backlog") >= 5.0);
    std::thread::sleep(Duration::from_secs(3));
    broker.restart();
    ids.extend(later);

    wait_until("the backlog to go out", Duration::from_secs(60), || {
        let h = health(&gate);
        h["mqtt"]["connected"] == true && h["mqtt"]["backlog"] == 0
    });
    // Every MQTT delivery ended delivered; each of its events reached the subscriber.
    let log = get(
        &format!("{}/api/deliveries?endpoint=mqtt&limit=1000", gate.base()),
        Some(&key),
    )
    .json();
    let deliveries = log["deliveries"].as_array().unwrap().clone();
    assert!(deliveries.len() >= 20, "{log}");
    for d in &deliveries {
        assert_eq!(d["status"], "delivered", "{d}");
    }
    let expected: Vec<String> = deliveries
        .iter()
        .map(|d| d["event_id"].as_str().unwrap().to_string())
        .collect();
    wait_until("every event at the subscriber", STEP, || {
        let got: std::collections::HashSet<String> = sub
            .on(|t| t.contains("/event/"))
            .iter()
            .map(|m| m.json()["id"].as_str().unwrap().to_string())
            .collect();
        expected.iter().all(|e| got.contains(e))
    });

    let msgs: Vec<Msg> = sub.all().into_iter().filter(event_topic).collect();
    let mut first: HashMap<String, Vec<u8>> = HashMap::new();
    let mut order: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut repeats = 0;
    for m in &msgs {
        let body = m.json();
        let id = body["id"].as_str().unwrap().to_string();
        let (session, kind) = (
            body["session"].as_str().unwrap(),
            body["type"].as_str().unwrap(),
        );
        assert_eq!(m.topic, format!("{BASE}/{session}/event/{kind}"));
        match first.get(&id) {
            Some(bytes) => {
                // A repeat is the same event: same id, same bytes.
                assert_eq!(bytes, &m.payload, "{id} came back different");
                repeats += 1;
            }
            None => {
                first.insert(id, m.payload.clone());
                order
                    .entry(session.to_string())
                    .or_default()
                    .push(body["seq"].as_u64().unwrap());
            }
        }
    }
    for (session, seqs) in &order {
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "{session}: events out of order: {seqs:?}"
        );
    }
    // Each text's message.sent is among them.
    let sent: std::collections::HashSet<String> = msgs
        .iter()
        .map(Msg::json)
        .filter(|b| b["type"] == "message.sent")
        .map(|b| b["data"]["id"].as_str().unwrap().to_string())
        .collect();
    for id in &ids {
        assert!(sent.contains(id), "no message.sent for {id}");
    }
    eprintln!(
        "mqtt: {} events ({} while the broker was away), {} repeats, in order; broker restarted once",
        first.len(),
        backlog,
        repeats
    );
}

#[test]
fn commands_are_answered_and_home_assistant_discovers_each_session() {
    let (dir, broker) = start_broker();
    let port = broker.port;
    let ha = Sub::start(
        port,
        &[
            "homeassistant/#",
            &format!("{BASE}/status"),
            &format!("{BASE}/+/status"),
            &format!("{BASE}/+/qr"),
            &format!("{BASE}/+/event/message.received"),
        ],
        None,
    );
    let results = Sub::start(port, &[&format!("{BASE}/+/result"), "replies/#"], None);
    let rt = Runtime::new().unwrap();
    let mock = rt
        .block_on(MockServer::start(MockConfig::default()))
        .unwrap();
    let mut b = rt.block_on(peer(&mock));
    let mut gate = gate_on(&dir, &mock, &broker);
    gate.env.push((
        "WAGATE_MQTT__NOTIFY".into(),
        format!(r#"[{{name = "Alice", to = "{}"}}]"#, b.jid),
    ));
    let key = gate.admin_key();
    let k = Some(key.as_str());
    let _child = gate.start();
    let base = gate.base();

    // The bridge is online (retained; the last will says offline).
    ha.wait_for("online", STEP, |m| {
        m.topic == format!("{BASE}/status") && m.payload == b"online"
    });
    // The device of the default session, with every key Home Assistant requires.
    let config_topic = |sid: &str| {
        let device = health(&gate)["device_id"].as_str().unwrap().to_lowercase();
        format!("homeassistant/device/wagate_{device}_{sid}/config")
    };
    let topic = config_topic("default");
    let config = ha
        .wait_for("the default session's discovery", STEP, |m| {
            m.topic == topic && !m.payload.is_empty()
        })
        .json();
    let cmps = check_discovery(&config);
    for key in [
        "connected",
        "state",
        "queue",
        "sent_today",
        "failed_today",
        "inbound",
        "qr",
        "pair",
        "notify_alice",
    ] {
        assert!(cmps.contains_key(key), "no {key} in {config}");
    }
    assert_eq!(
        cmps["notify_alice"]["command_topic"],
        format!("{BASE}/default/notify/alice")
    );

    // The QR image is the code the API shows while the session waits; the phone scans it.
    let qr_topic = format!("{BASE}/default/qr");
    let mut code = String::new();
    wait_until("the QR image to match the API's code", STEP, || {
        let api = call(
            "GET",
            &format!("{base}/api/sessions/default/qr"),
            k,
            &[("Accept", "application/json")],
            None,
        );
        let shown = ha
            .on(|t| t == qr_topic)
            .last()
            .and_then(|m| qr_in(&m.payload));
        match (api.status, shown) {
            (200, Some(s)) if api.json()["code"] == s.as_str() => {
                code = s;
                true
            }
            _ => false,
        }
    });
    rt.block_on(mock.scan(&code)).unwrap();
    let status_topic = format!("{BASE}/default/status");
    let st = ha
        .wait_for("the connected state", STEP, |m| {
            m.topic == status_topic && m.json()["connected"] == true
        })
        .json();
    assert_eq!(st["state"], "connected", "{st}");
    assert!(st["phone"].is_string(), "the paired number is known: {st}");
    assert_eq!(st["queue_depth"], 0);
    // Paired: no QR on the image any more (a blank picture, never an empty payload).
    wait_until("the QR image cleared", STEP, || {
        ha.on(|t| t == qr_topic)
            .last()
            .is_some_and(|m| !m.payload.is_empty() && qr_in(&m.payload).is_none())
    });

    // A command sends, and its answer comes back with its request id.
    let send_topic = format!("{BASE}/default/send/text");
    let body = json!({"to": b.jid, "text": "from mqtt", "request_id": "r-1"});
    publish(port, &send_topic, body.to_string().as_bytes(), &[]);
    let result_topic = format!("{BASE}/default/result");
    let r = results
        .wait_for("the answer to r-1", STEP, |m| {
            m.topic == result_topic && m.json()["request_id"] == "r-1"
        })
        .json();
    assert_eq!(r["status"], "queued", "{r}");
    assert_eq!(r["replayed"], false, "{r}");
    let id = r["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("msg_"), "{r}");
    assert_eq!(text_of(&mut b, &rt, "the MQTT text"), "from mqtt");
    let shown = get(&format!("{base}/api/sessions/default/messages/{id}"), k).json();
    assert_eq!(shown["kind"], "text", "{shown}");
    // The same request id again is the same message, not a second one.
    publish(port, &send_topic, body.to_string().as_bytes(), &[]);
    wait_until("the replayed answer", STEP, || {
        results
            .on(|t| t == result_topic)
            .iter()
            .any(|m| m.json()["request_id"] == "r-1" && m.json()["replayed"] == true)
    });
    let again = results
        .on(|t| t == result_topic)
        .into_iter()
        .map(|m| m.json())
        .find(|j| j["replayed"] == true)
        .unwrap();
    assert_eq!(again["id"], id.as_str());

    // MQTT 5: the answer goes to the response topic with the correlation data.
    let v5 = json!({"to": b.jid, "text": "v5 request"});
    publish(
        port,
        &send_topic,
        v5.to_string().as_bytes(),
        &[
            ("response-topic", "replies/one"),
            ("correlation-data", "c-9"),
        ],
    );
    let m = results.wait_for("the v5 answer", STEP, |m| m.topic == "replies/one");
    assert_eq!(
        m.properties["correlation-data"], "c-9",
        "{:?}",
        m.properties
    );
    let r = m.json();
    assert_eq!(r["request_id"], "c-9", "{r}");
    assert_eq!(r["status"], "queued", "{r}");
    assert_eq!(text_of(&mut b, &rt, "the v5 text"), "v5 request");

    // Bad commands: the API's error, and nothing is sent.
    let bad = |topic: &str, payload: &[u8], rid: &str| -> Value {
        publish(port, topic, payload, &[("correlation-data", rid)]);
        let sid = topic.split('/').nth(2).unwrap().to_string();
        let rt = format!("{BASE}/{sid}/result");
        results
            .wait_for(&format!("the answer to {rid}"), STEP, |m| {
                m.topic == rt && m.json()["request_id"] == rid
            })
            .json()
    };
    let e = bad(&send_topic, br#"{"to": "#, "bad-1");
    assert_eq!(e["error"]["code"], "invalid_json", "{e}");
    assert_eq!(e["status_code"], 400, "{e}");
    assert!(e.get("id").is_none(), "{e}");
    let e = bad(
        &send_topic,
        json!({"to": b.jid}).to_string().as_bytes(),
        "bad-2",
    );
    assert_eq!(e["status_code"], 400, "{e}");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("text"),
        "{e}"
    );
    let e = bad(
        &format!("{BASE}/default/send/fax"),
        json!({"to": b.jid, "text": "x"}).to_string().as_bytes(),
        "bad-3",
    );
    assert_eq!(e["error"]["code"], "unknown_kind", "{e}");
    let e = bad(
        &format!("{BASE}/ghost/send/text"),
        json!({"to": b.jid, "text": "x"}).to_string().as_bytes(),
        "bad-4",
    );
    assert_eq!(e["status_code"], 404, "{e}");
    let e = bad(
        &send_topic,
        json!({"to": b.jid, "text": "x", "request_id": 7})
            .to_string()
            .as_bytes(),
        "bad-5",
    );
    assert_eq!(e["error"]["code"], "invalid_request_id", "{e}");

    // Home Assistant's notify entity sends a text; it is the next one the phone gets, so
    // none of the bad commands sent anything.
    publish(
        port,
        &format!("{BASE}/default/notify/alice"),
        b"door opened",
        &[],
    );
    assert_eq!(text_of(&mut b, &rt, "the notify text"), "door opened");

    // Home Assistant's templates, rendered as it renders them, on what wagate published: the
    // event entity on a real inbound message, the sensors on the retained status.
    let me: whatsapp_rust::Jid = st["phone"].as_str().unwrap().parse().unwrap();
    rt.block_on(b.client.send_text(me, "is the shop open?"))
        .unwrap();
    let inbound_topic = format!("{BASE}/default/event/message.received");
    let inbound = ha.wait_for("the inbound message", STEP, |m| {
        m.topic == inbound_topic && m.json()["data"]["text"] == "is the shop open?"
    });
    let status = ha.on(|t| t == status_topic).last().unwrap().clone();
    let mut jobs = Vec::new();
    for (key, c) in &cmps {
        for which in ["value_template", "json_attributes_template"] {
            if let Some(template) = c.get(which) {
                let payload = if c["p"] == "event" { &inbound } else { &status };
                jobs.push((key.clone(), which, template.clone(), payload.text()));
            }
        }
    }
    let rendered = render_templates(
        &jobs
            .iter()
            .map(|(_, _, t, p)| json!({"template": t, "payload": p}))
            .collect::<Vec<_>>(),
    );
    for ((key, which, _, _), out) in jobs.iter().zip(rendered) {
        let text = out
            .as_str()
            .unwrap_or_else(|| panic!("{key} {which}: {out}"))
            .to_string();
        let c = &cmps[key];
        match (c["p"].as_str().unwrap(), *which) {
            ("binary_sensor", _) => assert_eq!(text, "ON", "{key}"),
            ("sensor", "json_attributes_template") => {
                let attrs: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(attrs["phone"], st["phone"], "{key}: {text}");
            }
            ("sensor", _) if c.get("options").is_some() => {
                assert_eq!(text, "connected", "{key}");
                assert!(c["options"].as_array().unwrap().contains(&json!(text)));
            }
            ("sensor", _) => {
                text.parse::<f64>()
                    .unwrap_or_else(|_| panic!("{key}: {text:?} is not a number"));
            }
            ("event", _) => {
                let ev: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(ev["event_type"], "text", "{text}");
                assert!(
                    c["event_types"]
                        .as_array()
                        .unwrap()
                        .contains(&ev["event_type"])
                );
                assert_eq!(ev["text"], "is the shop open?", "{text}");
                assert_eq!(ev["event_id"], inbound.json()["id"], "{text}");
                assert_eq!(ev["from_phone"], b.jid.as_str(), "known, so there: {text}");
                assert!(ev["sent_at"].is_i64(), "{text}");
            }
            (p, w) => panic!("{key}: no check for {p} {w}"),
        }
    }

    // The pairing button on a connected session leaves it connected.
    publish(port, &format!("{BASE}/default/pair"), b"PRESS", &[]);
    let p = results
        .wait_for("the pair answer", STEP, |m| {
            m.topic == result_topic && m.json()["pair"] == true
        })
        .json();
    assert_eq!(p["state"], "connected", "{p}");

    // The day's counts follow the sends.
    wait_until("sent_today to count the three texts", STEP, || {
        ha.on(|t| t == status_topic)
            .last()
            .is_some_and(|m| m.json()["sent_today"].as_u64() >= Some(3))
    });

    // Home Assistant restarts: its birth message brings every config back.
    let before = ha.on(|t| t == topic).len();
    publish(port, "homeassistant/status", b"online", &[]);
    wait_until("the configs again", STEP, || {
        ha.on(|t| t == topic).len() > before
    });

    let h = health(&gate);
    assert_eq!(h["mqtt"]["connected"], true, "{h}");
    assert_eq!(h["mqtt"]["base_topic"], BASE, "{h}");
    let m = get(&format!("{base}/metrics"), k).text();
    assert_eq!(metric(&m, "wagate_mqtt_connected"), 1.0);
    assert!(
        metric(&m, "wagate_mqtt_commands_total{outcome=\"error\"}") >= 5.0,
        "{m}"
    );

    // A new session becomes a device; deleting it removes the device.
    let r = post_json(&format!("{base}/api/sessions"), k, json!({"id": "two"}));
    assert_eq!(r.status, 201, "{}", r.text());
    let two = config_topic("two");
    let c2 = ha
        .wait_for("the second session's device", STEP, |m| {
            m.topic == two && !m.payload.is_empty()
        })
        .json();
    check_discovery(&c2);
    assert_eq!(delete(&format!("{base}/api/sessions/two"), k).status, 204);
    ha.wait_for("the second device removed", STEP, |m| {
        m.topic == two && m.payload.is_empty()
    });
    // A device of this box whose session is gone (deleted while the broker was away) is
    // cleared when wagate sees its retained config; another box's device is left alone.
    let ghost = config_topic("ghost");
    let other = "homeassistant/device/wagate_0000000000000000_default/config";
    for t in [ghost.as_str(), other] {
        retain(
            port,
            t,
            br#"{"dev":{"identifiers":["x"]},"o":{"name":"x"},"cmps":{}}"#,
        );
    }
    ha.wait_for("the ghost device cleared", STEP, |m| {
        m.topic == ghost && m.payload.is_empty()
    });
    assert!(
        ha.on(|t| t == other).iter().all(|m| !m.payload.is_empty()),
        "another box's device stays"
    );
}

#[test]
fn mqtts_trusts_a_pinned_certificate_or_a_ca_file_and_nothing_else() {
    need_mosquitto();
    let dir = tempfile::tempdir().unwrap();
    for d in ["logs", "broker"] {
        std::fs::create_dir_all(dir.path().join(d)).unwrap();
    }
    let broker = Broker::start_tls(&dir.path().join("broker"));
    let (tls_port, ca, sha) = broker.tls.clone().unwrap();
    // Watch the bridge's availability on the plain listener: what wagate says over TLS.
    let sub = Sub::start(broker.port, &[&format!("{BASE}/status")], None);
    let rt = Runtime::new().unwrap();
    let mock = rt
        .block_on(MockServer::start(MockConfig::default()))
        .unwrap();
    let wrong = "AB:".repeat(31) + "AB";
    for (name, key, value, ok) in [
        ("pinned", "WAGATE_MQTT__CERT_SHA256", sha.as_str(), true),
        (
            "CA file",
            "WAGATE_MQTT__CA_FILE",
            ca.to_str().unwrap(),
            true,
        ),
        (
            "another pin",
            "WAGATE_MQTT__CERT_SHA256",
            wrong.as_str(),
            false,
        ),
    ] {
        let mut gate = Gate::new(&dir.path().join("data"), &dir.path().join("logs"), &mock);
        gate.env.push((
            "WAGATE_MQTT__URL".into(),
            format!("mqtts://127.0.0.1:{tls_port}"),
        ));
        gate.env
            .push(("WAGATE_MQTT__BASE_TOPIC".into(), BASE.into()));
        gate.env.push((key.into(), value.into()));
        let before = sub.on(|t| t.ends_with("/status")).len();
        let mut child = gate.start();
        let online_since = || {
            sub.on(|t| t.ends_with("/status"))[before..]
                .iter()
                .any(|m| m.payload == b"online")
        };
        if ok {
            wait_until(name, STEP, || health(&gate)["mqtt"]["connected"] == true);
            wait_until(&format!("online over TLS ({name})"), STEP, online_since);
        } else {
            let mut h = Value::Null;
            wait_until("the refusal", STEP, || {
                h = health(&gate);
                h["mqtt"]["error"].is_string()
            });
            assert_eq!(h["mqtt"]["connected"], false, "{h}");
            std::thread::sleep(Duration::from_secs(2));
            assert_eq!(health(&gate)["mqtt"]["connected"], false);
            assert!(!online_since(), "nothing reached the broker");
            let error = h["mqtt"]["error"].as_str().unwrap().to_lowercase();
            assert!(error.contains("certificate"), "{h}");
        }
        crate::common::daemon::terminate(&mut child.0);
    }
}
