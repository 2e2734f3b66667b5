//! Home Assistant MQTT discovery: one device per session, published as a device discovery
//! payload (`<prefix>/device/<object id>/config`, retained), following Home Assistant's MQTT
//! documentation as of 2026.5 (device discovery since 2024.11; `default_entity_id`, not the
//! removed `object_id`).
//!
//! Every component names its platform (`p`) and a `unique_id`; the root carries the device
//! (`dev`) and origin (`o`), which components may not override, and the availability that
//! they all share: the bridge's `<base>/status` (`online`, or `offline` by the client's last
//! will).

use serde_json::{Map, Value, json};

use crate::config::NotifyTarget;
use crate::events::InboundContent;

/// Where a session's topics are.
#[derive(Debug, Clone)]
pub struct Topics {
    /// `<base>`.
    pub base: String,
    /// `<discovery prefix>`.
    pub prefix: String,
    /// The device id (the box), part of every unique id.
    pub device_id: String,
}

impl Topics {
    /// `<base>/status`: `online` / `offline` (the last will).
    pub fn availability(&self) -> String {
        format!("{}/status", self.base)
    }

    /// `<base>/<session>/status`: the session's state, retained.
    pub fn status(&self, session: &str) -> String {
        format!("{}/{session}/status", self.base)
    }

    /// `<base>/<session>/qr`: the pairing QR as PNG, retained.
    pub fn qr(&self, session: &str) -> String {
        format!("{}/{session}/qr", self.base)
    }

    /// `<base>/<session>/event/<type>`: the outbox's events.
    pub fn event(&self, session: &str, event_type: &str) -> String {
        format!("{}/{session}/event/{event_type}", self.base)
    }

    /// `<base>/<session>/result`: answers to commands without a response topic.
    pub fn result(&self, session: &str) -> String {
        format!("{}/{session}/result", self.base)
    }

    /// `<base>/<session>/pair`: the pairing button.
    pub fn pair(&self, session: &str) -> String {
        format!("{}/{session}/pair", self.base)
    }

    /// `<base>/<session>/notify/<slug>`: a notify entity's messages.
    pub fn notify(&self, session: &str, slug: &str) -> String {
        format!("{}/{session}/notify/{slug}", self.base)
    }

    /// The device discovery topic of a session.
    pub fn config(&self, session: &str) -> String {
        format!("{}/device/{}/config", self.prefix, self.object_id(session))
    }

    /// `wagate_<device>_<session>`: the topic's object id and the stem of unique ids. Session
    /// ids (`[a-z0-9_-]`) and device ids (hex) are what a topic segment allows, kept as they
    /// are so `home-1` and `home_1` stay two devices; entity ids are slugs of it (Home
    /// Assistant numbers a clash).
    pub fn object_id(&self, session: &str) -> String {
        format!("wagate_{}_{session}", slug(&self.device_id))
    }
}

/// A topic segment and id made of `[a-z0-9_]` (what Home Assistant's entity ids allow):
/// other characters become `_`, surrounding spaces go.
pub fn slug(s: &str) -> String {
    s.trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// The notify targets of a session (those naming it, and those naming no session), with
/// their slugs.
pub fn notify_targets<'a>(
    targets: &'a [NotifyTarget],
    session: &str,
) -> Vec<(String, &'a NotifyTarget)> {
    targets
        .iter()
        .filter(|t| t.session.as_deref().is_none_or(|s| s == session))
        .map(|t| (slug(&t.name), t))
        .collect()
}

/// The device discovery payload of one session.
pub fn device_config(
    t: &Topics,
    session: &str,
    phone: Option<&str>,
    notify: &[NotifyTarget],
    commands: bool,
) -> Value {
    let id = t.object_id(session);
    let status = t.status(session);
    let mut cmps = Map::new();
    let mut add = |key: &str, platform: &str, mut c: Value| {
        if let Some(o) = c.as_object_mut() {
            o.insert("p".into(), json!(platform));
            o.insert("unique_id".into(), json!(format!("{id}_{key}")));
            o.insert(
                "default_entity_id".into(),
                json!(format!("{platform}.{}", slug(&format!("{id}_{key}")))),
            );
        }
        cmps.insert(key.to_string(), c);
    };
    add(
        "connected",
        "binary_sensor",
        json!({
            "name": "Connected",
            "device_class": "connectivity",
            "state_topic": status,
            "value_template": "{{ 'ON' if value_json.connected else 'OFF' }}",
        }),
    );
    add(
        "state",
        "sensor",
        json!({
            "name": "State",
            "device_class": "enum",
            "options": ["stopped", "connecting", "qr", "connected", "disconnected", "failed"],
            "state_topic": status,
            "value_template": "{{ value_json.state }}",
            "json_attributes_topic": status,
            "json_attributes_template": "{{ {'phone': value_json.phone, 'reason': value_json.reason} | tojson }}",
        }),
    );
    add(
        "queue",
        "sensor",
        json!({
            "name": "Queue",
            "state_topic": status,
            "value_template": "{{ value_json.queue_depth }}",
            "unit_of_measurement": "messages",
            "state_class": "measurement",
            "icon": "mdi:tray-full",
        }),
    );
    add(
        "sent_today",
        "sensor",
        json!({
            "name": "Sent today",
            "state_topic": status,
            "value_template": "{{ value_json.sent_today }}",
            "unit_of_measurement": "messages",
            "state_class": "total_increasing",
            "icon": "mdi:send-check",
        }),
    );
    add(
        "failed_today",
        "sensor",
        json!({
            "name": "Failed today",
            "state_topic": status,
            "value_template": "{{ value_json.failed_today }}",
            "unit_of_measurement": "messages",
            "state_class": "total_increasing",
            "icon": "mdi:send-outline",
        }),
    );
    add(
        "inbound",
        "event",
        json!({
            "name": "Inbound message",
            "state_topic": t.event(session, "message.received"),
            "event_types": InboundContent::KINDS,
            // The webhook body as it is; the entity's event is the message kind, with the
            // sender, chat, text and ids as attributes.
            // Optional fields are absent from the body when unknown: `.get` makes them null.
            "value_template": "{% set d = value_json.data %}{{ {'event_type': d.kind, \
                'id': d.id, 'event_id': value_json.id, 'from': d.from, \
                'from_phone': d.get('from_phone'), 'from_lid': d.get('from_lid'), \
                'chat': d.chat, 'push_name': d.get('push_name'), 'text': d.get('text'), \
                'group': d.get('group'), 'sent_at': d.get('sent_at')} | tojson }}",
            "icon": "mdi:message-arrow-left",
        }),
    );
    add(
        "qr",
        "image",
        json!({
            "name": "Pairing QR",
            "image_topic": t.qr(session),
            "content_type": "image/png",
            "icon": "mdi:qrcode",
        }),
    );
    if commands {
        add(
            "pair",
            "button",
            json!({
                "name": "Start pairing",
                "command_topic": t.pair(session),
                "payload_press": "PRESS",
                "entity_category": "config",
                "icon": "mdi:link-variant",
            }),
        );
        for (slug, target) in notify_targets(notify, session) {
            add(
                &format!("notify_{slug}"),
                "notify",
                json!({
                    "name": target.name,
                    "command_topic": t.notify(session, &slug),
                    "icon": "mdi:whatsapp",
                }),
            );
        }
    }
    let mut device = json!({
        "identifiers": [id],
        "name": format!("WhatsApp {session}"),
        "manufacturer": "wagate",
        "model": "WhatsApp gateway session",
        "sw_version": env!("CARGO_PKG_VERSION"),
    });
    if let (Some(phone), Some(d)) = (phone, device.as_object_mut()) {
        d.insert("serial_number".into(), json!(phone));
    }
    json!({
        "dev": device,
        "o": {
            "name": "wagate",
            "sw": env!("CARGO_PKG_VERSION"),
        },
        "availability_topic": t.availability(),
        "payload_available": "online",
        "payload_not_available": "offline",
        "qos": 1,
        "cmps": cmps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics() -> Topics {
        Topics {
            base: "wagate/abc".into(),
            prefix: "homeassistant".into(),
            device_id: "ABC-1".into(),
        }
    }

    #[test]
    fn every_component_has_a_platform_a_unique_id_and_its_required_keys() {
        let notify = vec![NotifyTarget {
            name: "Alice Smith".into(),
            to: "+491700000001".into(),
            session: None,
        }];
        let c = device_config(&topics(), "default", Some("+4917"), &notify, true);
        assert!(c["dev"]["identifiers"][0].is_string());
        assert_eq!(c["o"]["name"], "wagate");
        let cmps = c["cmps"].as_object().unwrap();
        for (key, comp) in cmps {
            assert!(comp["p"].is_string(), "{key}");
            assert_eq!(comp["unique_id"], format!("wagate_abc_1_default_{key}"));
            let required: &[&str] = match comp["p"].as_str().unwrap() {
                "binary_sensor" | "sensor" => &["state_topic"],
                "event" => &["state_topic", "event_types"],
                "image" => &["image_topic"],
                "button" | "notify" => &["command_topic"],
                other => panic!("unexpected platform {other}"),
            };
            for r in required {
                assert!(comp.get(*r).is_some(), "{key} lacks {r}");
            }
        }
        assert_eq!(
            cmps["notify_alice_smith"]["command_topic"],
            "wagate/abc/default/notify/alice_smith"
        );
        assert_eq!(
            topics().config("default"),
            "homeassistant/device/wagate_abc_1_default/config"
        );
    }

    #[test]
    fn without_commands_there_is_nothing_to_press_or_notify() {
        let notify = vec![NotifyTarget {
            name: "Bob".into(),
            to: "+1".into(),
            session: Some("other".into()),
        }];
        let c = device_config(&topics(), "default", None, &notify, false);
        let cmps = c["cmps"].as_object().unwrap();
        assert!(!cmps.contains_key("pair"));
        assert!(cmps.keys().all(|k| !k.starts_with("notify_")));
        // A target of another session is not this session's, even with commands on.
        let c = device_config(&topics(), "default", None, &notify, true);
        assert!(c["cmps"].as_object().unwrap().contains_key("pair"));
        assert!(
            c["cmps"]
                .as_object()
                .unwrap()
                .keys()
                .all(|k| !k.starts_with("notify_"))
        );
    }
}
