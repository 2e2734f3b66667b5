//! `GET /api/openapi.json` (any valid key): the OpenAPI 3.0 document of every route.
//!
//! Built from the route table ([`super::routes`]): paths, methods, summaries and security
//! come from it, so a route cannot be missing; request and response shapes are written here
//! per route (a route this file does not know yet still appears, with the generic answers).

use axum::Json;
use axum::http::Method;
use axum::routing::get;
use serde_json::{Value, json};

use super::{Access, Route, RouteInfo};

pub(super) fn routes() -> Vec<Route> {
    vec![Route::new(
        Method::GET,
        "/api/openapi.json",
        Access::AnyKey,
        "This OpenAPI document",
        get(|| async { Json(document()) }),
    )]
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn json_content(schema: Value) -> Value {
    json!({ "application/json": { "schema": schema } })
}

fn error_response(description: &str) -> Value {
    json!({ "description": description, "content": json_content(schema_ref("Error")) })
}

fn ok(status: &str, description: &str, schema: Option<Value>) -> (String, Value) {
    let mut r = json!({ "description": description });
    if let Some(s) = schema {
        r["content"] = json_content(s);
    }
    (status.to_string(), r)
}

/// The webhook and delivery schemas (apart: one `json!` for all would pass the macro's
/// recursion limit).
fn webhook_schemas() -> Value {
    json!({
            "Webhook": {
                "type": "object",
                "required": ["id", "url", "events", "sessions", "enabled", "description", "disabled_reason", "previous_secret_until", "created_at", "updated_at"],
                "properties": {
                    "id": {"type": "string", "example": "whk_01JF0000000000000000000000"},
                    "url": {"type": "string"},
                    "events": {"type": "array", "items": {"type": "string"}, "description": "Event types, or [\"*\"]"},
                    "sessions": {"type": "array", "nullable": true, "items": {"type": "string"}},
                    "enabled": {"type": "boolean"},
                    "description": {"type": "string", "nullable": true},
                    "disabled_reason": {"type": "string", "nullable": true, "description": "Set when wagate disabled it (the receiver answered 410)"},
                    "previous_secret_until": {"type": "integer", "format": "int64", "nullable": true, "description": "While set, deliveries carry the previous secret's signatures too"},
                    "created_at": {"type": "integer", "format": "int64"},
                    "updated_at": {"type": "integer", "format": "int64"}
                }
            },
            "WebhookCreated": {
                "allOf": [
                    {"$ref": "#/components/schemas/Webhook"},
                    {"type": "object", "required": ["secret"], "properties": {"secret": {"type": "string", "description": "whsec_ + base64 of 32 random bytes; shown this once"}}}
                ]
            },
            "WebhookCreate": {
                "type": "object", "required": ["url"], "additionalProperties": false,
                "properties": {
                    "url": {"type": "string", "description": "http:// or https:// with a host"},
                    "events": {"type": "array", "items": {"type": "string"}, "description": "Event types or [\"*\"] (the default)"},
                    "sessions": {"type": "array", "nullable": true, "items": {"type": "string"}},
                    "enabled": {"type": "boolean", "default": true},
                    "description": {"type": "string", "nullable": true, "maxLength": 200}
                }
            },
            "WebhookPatch": {
                "type": "object", "additionalProperties": false,
                "properties": {
                    "url": {"type": "string"},
                    "events": {"type": "array", "items": {"type": "string"}},
                    "sessions": {"type": "array", "nullable": true, "items": {"type": "string"}, "description": "null: all sessions"},
                    "enabled": {"type": "boolean"},
                    "description": {"type": "string", "nullable": true, "maxLength": 200}
                }
            },
            "Delivery": {
                "type": "object",
                "required": ["id", "event_id", "event_type", "session", "endpoint", "status", "created_at", "attempts"],
                "properties": {
                    "id": {"type": "string", "description": "dlv_ + ULID: X-Wagate-Delivery-Id and webhook-id of every attempt"},
                    "event_id": {"type": "string"},
                    "event_type": {"type": "string"},
                    "session": {"type": "string"},
                    "endpoint": {"type": "string"},
                    "status": {"type": "string", "enum": ["pending", "delivered", "failed", "expired"]},
                    "created_at": {"type": "integer", "format": "int64"},
                    "next_at": {"type": "integer", "format": "int64", "nullable": true},
                    "tries": {"type": "integer"},
                    "attempt_count": {"type": "integer"},
                    "last_error": {"type": "string", "nullable": true},
                    "finished_at": {"type": "integer", "format": "int64", "nullable": true},
                    "attempts": {"type": "array", "items": {
                        "type": "object", "required": ["at", "latency_ms"],
                        "properties": {
                            "at": {"type": "integer", "format": "int64"},
                            "status_code": {"type": "integer", "nullable": true},
                            "latency_ms": {"type": "integer"},
                            "response": {"type": "string", "nullable": true, "description": "The first 1 KiB of the answer"},
                            "error": {"type": "string", "nullable": true}
                        }
                    }}
                }
            }
    })
}

fn components() -> Value {
    let nullable_string = json!({"type": "string", "nullable": true});
    let nullable_int = json!({"type": "integer", "format": "int64", "nullable": true});
    let scopes = json!({
        "type": "array",
        "items": {"type": "string", "enum": ["admin", "sessions:read", "sessions:write", "messages:send", "webhooks:manage"]}
    });
    let mut v = json!({
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "An API key: wgk_<id>_<secret>"
            }
        },
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "properties": {
                            "code": {"type": "string", "description": "Stable snake_case code", "example": "session_not_found"},
                            "message": {"type": "string", "description": "For people"}
                        }
                    }
                }
            },
            "Health": {
                "type": "object",
                "required": ["status", "version", "uptime_s", "sessions", "clock_synced", "store_ok", "setup_pending", "device_id", "tls", "cert_sha256", "webhooks", "mqtt"],
                "properties": {
                    "status": {"type": "string", "enum": ["ok", "store_failed"]},
                    "version": {"type": "string"},
                    "uptime_s": {"type": "integer", "format": "int64"},
                    "sessions": {
                        "type": "object", "nullable": true,
                        "description": "Sessions per state; null when the store cannot be read",
                        "additionalProperties": {"type": "integer"}
                    },
                    "clock_synced": {"type": "boolean", "nullable": true, "description": "From adjtimex(2); null when unknown"},
                    "store_ok": {"type": "boolean"},
                    "setup_pending": {"type": "boolean"},
                    "device_id": {"type": "string", "nullable": true, "example": "3fa91c770b5ed248", "description": "This device's stable id (16 hex digits); null in an embedded server without one"},
                    "tls": {"type": "boolean", "description": "The API speaks HTTPS"},
                    "cert_sha256": {"type": "string", "nullable": true, "example": "3F:A9:1C:77:...:E4:7F", "description": "SHA-256 of the API certificate's DER as colon-separated hex pairs, for pinning; null without TLS"},
                    "webhooks": {
                        "type": "object", "nullable": true,
                        "description": "The webhook forwarder; null when none runs",
                        "required": ["waiting_for_clock", "require_clock_sync", "pending"],
                        "properties": {
                            "waiting_for_clock": {"type": "boolean", "description": "webhooks.require_clock_sync is on and the clock is not synchronized: deliveries wait"},
                            "require_clock_sync": {"type": "boolean"},
                            "pending": {"type": "integer", "nullable": true, "description": "Deliveries scheduled"}
                        }
                    },
                    "mqtt": {
                        "type": "object", "nullable": true,
                        "description": "The MQTT link; null while [mqtt] is off",
                        "required": ["connected", "broker", "base_topic", "backlog", "published", "error"],
                        "properties": {
                            "connected": {"type": "boolean"},
                            "broker": {"type": "string", "example": "mqtt://homeassistant.lan:1883", "description": "mqtt[s]://host:port (never credentials)"},
                            "base_topic": {"type": "string", "example": "wagate/3fa91c770b5ed248"},
                            "backlog": {"type": "integer", "nullable": true, "description": "Events waiting for the broker"},
                            "published": {"type": "integer", "description": "Events the broker acknowledged since start"},
                            "error": {"type": "string", "nullable": true, "description": "Why the link is down, while it is"}
                        }
                    }
                }
            },
            "SetupStatus": {
                "type": "object", "required": ["open"],
                "properties": {"open": {"type": "boolean"}}
            },
            "SetupClaim": {
                "type": "object", "required": ["code"], "additionalProperties": false,
                "properties": {"code": {"type": "string", "example": "7KQ2-M9XD", "description": "Dashes, spaces and case do not matter"}}
            },
            "KeyCreate": {
                "type": "object", "required": ["scopes"], "additionalProperties": false,
                "properties": {
                    "scopes": scopes,
                    "sessions": {"type": "array", "nullable": true, "items": {"type": "string"}, "description": "Limit the key to these sessions (not with admin)"},
                    "name": {"type": "string", "nullable": true, "maxLength": 64}
                }
            },
            "Key": {
                "type": "object",
                "required": ["id", "name", "scopes", "sessions", "prefix", "created_at", "revoked_at"],
                "properties": {
                    "id": {"type": "string"},
                    "name": nullable_string,
                    "scopes": scopes,
                    "sessions": {"type": "array", "nullable": true, "items": {"type": "string"}},
                    "prefix": {"type": "string", "example": "wgk_k3j9x2m4qa_"},
                    "created_at": {"type": "integer", "format": "int64", "description": "Unix milliseconds"},
                    "revoked_at": nullable_int
                }
            },
            "CreatedKey": {
                "allOf": [
                    schema_ref("Key"),
                    {
                        "type": "object", "required": ["key"],
                        "properties": {"key": {"type": "string", "description": "The whole key, shown this once"}}
                    }
                ]
            },
            "SessionCreate": {
                "type": "object", "required": ["id"], "additionalProperties": false,
                "properties": {"id": {"type": "string", "pattern": "^[a-z0-9_-]{1,32}$"}}
            },
            "Session": {
                "type": "object",
                "required": ["id", "state", "reason", "phone", "lid", "enabled", "created_at"],
                "properties": {
                    "id": {"type": "string"},
                    "state": {"type": "string", "enum": ["stopped", "connecting", "qr", "connected", "disconnected", "failed"]},
                    "reason": {
                        "type": "string", "nullable": true,
                        "enum": ["logged_out", "banned", "qr_exhausted", "client_outdated", "replaced", "pair_failed", "passkey_required", "storage", "connection_lost", "no_answer", "connect_failed", null],
                        "description": "failed: why it failed (logged_out ... storage); disconnected: why it is not connected (connection_lost: the connection ended; no_answer: WhatsApp stopped answering on an open connection; connect_failed: it has not reached WhatsApp since it started); null otherwise"
                    },
                    "phone": nullable_string,
                    "lid": nullable_string,
                    "enabled": {"type": "boolean", "description": "Whether it runs (and starts at boot)"},
                    "created_at": {"type": "integer", "format": "int64"},
                    "code": {"type": "string", "description": "qr: the QR payload"},
                    "expires_at": {"type": "integer", "format": "int64", "description": "qr: when this code expires (unix ms)"},
                    "pair_code": {"type": "string", "description": "qr: the phone-number link code, once asked for"},
                    "since": {"type": "integer", "format": "int64", "description": "connected / disconnected: since when"},
                    "attempts": {"type": "integer", "description": "disconnected: reconnect attempts so far"},
                    "until": {"type": "integer", "format": "int64", "description": "failed (banned): when the ban ends"},
                    "message": {"type": "string", "description": "failed and disconnected: details"}
                }
            },
            "QrCode": {
                "type": "object", "required": ["code", "expires_at"],
                "properties": {
                    "code": {"type": "string"},
                    "expires_at": {"type": "integer", "format": "int64"},
                    "pair_code": {"type": "string"}
                }
            },
            "PairCodeRequest": {
                "type": "object", "required": ["phone"], "additionalProperties": false,
                "properties": {"phone": {"type": "string", "example": "+44 7700 900123", "description": "With the country code"}}
            },
            "PairCode": {
                "type": "object", "required": ["code"],
                "properties": {"code": {"type": "string", "example": "ABCD1234"}}
            },
            "MessageRequest": {
                "type": "object", "required": ["to"],
                "description": "The kind's fields beside `to` (a phone number with country code or a JID: a person's, or a group's `<id>@g.us`); see docs/message-kinds.md. Media: exactly one of `url`, `base64`. Every kind but `reaction` takes the reply fields; `text` takes `mentions`.",
                "properties": {
                    "to": {"type": "string", "example": "447700900123"},
                    "reply_to": {"type": "string", "description": "Quote a message: a wagate message id (msg_..., of a message sent or of a message.received) or a WhatsApp message id"},
                    "reply_to_participant": {"type": "string", "description": "The quoted message's author (phone number or JID), for a WhatsApp id wagate does not know; needed in groups"},
                    "reply_to_text": {"type": "string", "description": "The quoted text to show, for a WhatsApp id wagate does not know"},
                    "mentions": {"type": "array", "items": {"type": "string"}, "description": "text only: people mentioned (phone numbers or person JIDs); write @<digits> in the text where each appears"}
                },
                "additionalProperties": true
            },
            "MessageAccepted": {
                "type": "object", "required": ["id", "status", "to", "to_phone", "to_lid"],
                "properties": {
                    "id": {"type": "string", "example": "msg_01JF8ZK3Q4W5E6R7T8Y9U0I1O2"},
                    "status": {"type": "string", "enum": ["queued", "held"], "description": "held: the duplicate guard holds it (release or cancel it)"},
                    "to": {"type": "string", "description": "The chat as a JID"},
                    "to_phone": {"type": "string", "nullable": true, "description": "The recipient's phone-number JID, when known"},
                    "to_lid": {"type": "string", "nullable": true, "description": "The recipient's LID, when known"}
                }
            },
            "Group": {
                "type": "object", "required": ["id", "subject", "addressing_mode", "participants"],
                "properties": {
                    "id": {"type": "string", "example": "120363025246125486@g.us"},
                    "subject": {"type": "string"},
                    "addressing_mode": {"type": "string", "enum": ["pn", "lid"]},
                    "created_at": {"type": "integer", "format": "int64", "nullable": true, "description": "Unix seconds"},
                    "participants": {"type": "array", "items": {
                        "type": "object", "required": ["jid", "role"],
                        "properties": {
                            "jid": {"type": "string", "description": "The JID the group knows the member by"},
                            "phone": nullable_string.clone(),
                            "lid": nullable_string.clone(),
                            "role": {"type": "string", "enum": ["superadmin", "admin", "member"]}
                        }
                    }}
                }
            },
            "Message": {
                "type": "object", "required": ["id", "session", "kind", "to", "status"],
                "properties": {
                    "id": {"type": "string"},
                    "session": {"type": "string"},
                    "kind": {"type": "string"},
                    "to": {"type": "string"},
                    "to_phone": {"type": "string", "nullable": true, "description": "The recipient's phone-number JID, when known"},
                    "to_lid": {"type": "string", "nullable": true, "description": "The recipient's LID, when known"},
                    "status": {"type": "string", "enum": ["queued", "held", "sent", "delivered", "read", "cancelled", "failed"]},
                    "reason": nullable_string.clone(),
                    "wa_id": nullable_string.clone(),
                    "attempts": {"type": "integer"},
                    "created_at": {"type": "integer", "format": "int64"},
                    "sent_at": nullable_int.clone(),
                    "delivered_at": nullable_int.clone(),
                    "read_at": nullable_int.clone(),
                    "failed_at": nullable_int.clone(),
                    "cancelled_at": nullable_int.clone()
                }
            }
        }
    });
    if let (Some(all), Value::Object(more)) = (v["schemas"].as_object_mut(), pacing_schemas()) {
        all.extend(more);
    }
    if let (Some(all), Value::Object(more)) = (v["schemas"].as_object_mut(), webhook_schemas()) {
        all.extend(more);
    }
    if let (Some(all), Value::Object(more)) = (v["schemas"].as_object_mut(), people_schemas()) {
        all.extend(more);
    }
    if let (Some(all), Value::Object(more)) = (v["schemas"].as_object_mut(), conversation_schemas())
    {
        all.extend(more);
    }
    if let (Some(props), Value::Object(more)) = (
        v["schemas"]["Message"]["properties"].as_object_mut(),
        json!({
            "edited_at": {"type": "integer", "format": "int64", "nullable": true, "description": "When an edit of it was sent"},
            "revoked_at": {"type": "integer", "format": "int64", "nullable": true, "description": "When it was deleted for everyone"},
            "target": {"type": "string", "nullable": true, "description": "For an edit or revoke: the message it changes"},
            "direction": {"type": "string", "enum": ["out"], "description": "In the history"},
            "text": {"type": "string", "nullable": true, "description": "In the history: its text or caption (the edited one after an edit)"}
        }),
    ) {
        props.extend(more);
    }
    v
}

/// Received messages, the history, edits.
fn conversation_schemas() -> Value {
    let nullable_string = json!({"type": "string", "nullable": true});
    let nullable_int = json!({"type": "integer", "format": "int64", "nullable": true});
    json!({
        "ReceivedMessage": {
            "type": "object",
            "required": ["id", "session", "direction", "kind", "chat", "from", "wa_id", "sent_at"],
            "properties": {
                "id": {"type": "string"},
                "session": {"type": "string"},
                "direction": {"type": "string", "enum": ["in"]},
                "kind": {"type": "string", "description": "As message.received's kind (text, image, ..., edit, revoke)"},
                "chat": {"type": "string"},
                "from": {"type": "string", "description": "The sender's JID as the message named it"},
                "wa_id": {"type": "string"},
                "sent_at": {"type": "integer", "format": "int64"},
                "text": {"type": "string", "nullable": true, "description": "Its text, the newest edit's when edited (media captions are not kept)"},
                "mimetype": nullable_string.clone(),
                "file_name": nullable_string.clone(),
                "size": {"type": "integer", "nullable": true},
                "media_url": {"type": "string", "nullable": true, "description": "Where its media downloads, when it has media"},
                "edited_at": nullable_int.clone(),
                "revoked_at": nullable_int.clone()
            }
        },
        "AnyMessage": {
            "oneOf": [schema_ref("Message"), schema_ref("ReceivedMessage")]
        },
        "MessagePage": {
            "type": "object", "required": ["messages", "next"],
            "properties": {
                "messages": {"type": "array", "items": schema_ref("AnyMessage")},
                "next": {"type": "string", "nullable": true, "description": "Pass as after= for the next page; null at the end"}
            }
        },
        "NewGroup": {
            "type": "object", "required": ["subject"], "additionalProperties": false,
            "properties": {
                "subject": {"type": "string", "minLength": 1, "maxLength": 100},
                "participants": {"type": "array", "maxItems": 1024, "items": {"type": "string", "example": "447700900123"}, "description": "Phone numbers with the country code, or person JIDs"}
            }
        },
        "GroupPatch": {
            "type": "object", "additionalProperties": false, "minProperties": 1,
            "properties": {
                "subject": {"type": "string", "minLength": 1, "maxLength": 100},
                "description": {"type": "string", "maxLength": 2048, "description": "\"\" removes it"},
                "announce": {"type": "boolean", "description": "Only admins send messages"},
                "locked": {"type": "boolean", "description": "Only admins change subject, description and settings"},
                "ephemeral_s": {"type": "integer", "enum": [0, 86400, 604800, 7776000], "description": "Disappearing messages (0: off)"},
                "approval": {"type": "boolean", "description": "New members need an admin's approval"}
            }
        },
        "MemberChange": {
            "type": "object", "required": ["action", "participants"], "additionalProperties": false,
            "properties": {
                "action": {"type": "string", "enum": ["add", "remove", "promote", "demote"]},
                "participants": {"type": "array", "minItems": 1, "maxItems": 1024, "items": {"type": "string"}}
            }
        },
        "ParticipantResult": {
            "type": "object", "required": ["jid", "ok", "error", "reason", "invited_until"],
            "properties": {
                "jid": {"type": "string"},
                "ok": {"type": "boolean"},
                "error": {"type": "string", "nullable": true, "description": "WhatsApp's code: 403 privacy settings (an invitation went instead), 404 not on WhatsApp or not in the group, 409 already in it, ..."},
                "reason": nullable_string.clone(),
                "invited_until": {"type": "integer", "nullable": true, "description": "Unix seconds: the invitation sent instead of an add is valid until then"}
            }
        },
        "ParticipantResults": {
            "type": "object", "required": ["results"],
            "properties": {"results": {"type": "array", "items": schema_ref("ParticipantResult")}}
        },
        "GroupDetails": {
            "type": "object",
            "required": ["id", "subject", "description", "addressing_mode", "created_at", "owner", "participants", "admins", "settings", "invite_link"],
            "properties": {
                "id": {"type": "string"},
                "subject": {"type": "string"},
                "description": nullable_string.clone(),
                "addressing_mode": {"type": "string", "enum": ["pn", "lid"]},
                "created_at": {"type": "integer", "nullable": true},
                "owner": nullable_string.clone(),
                "participants": {"type": "array", "items": {"type": "object", "required": ["jid", "phone", "lid", "role"], "properties": {
                    "jid": {"type": "string"}, "phone": nullable_string.clone(), "lid": nullable_string.clone(),
                    "role": {"type": "string", "enum": ["superadmin", "admin", "member"]}}}},
                "admins": {"type": "array", "items": {"type": "string"}},
                "settings": {"type": "object", "required": ["announce", "locked", "ephemeral_s", "approval"], "properties": {
                    "announce": {"type": "boolean"}, "locked": {"type": "boolean"},
                    "ephemeral_s": {"type": "integer"}, "approval": {"type": "boolean"}}},
                "invite_link": {"type": "string", "nullable": true, "description": "When the account is an admin"}
            }
        },
        "GroupCreated": {
            "type": "object", "required": ["group", "participants"],
            "properties": {
                "group": schema_ref("GroupDetails"),
                "participants": {"type": "array", "items": schema_ref("ParticipantResult")}
            }
        },
        "InviteLink": {
            "type": "object", "required": ["link"],
            "properties": {"link": {"type": "string", "example": "https://chat.whatsapp.com/AbCdEfGhIjKlMnOpQrStUv"}}
        },
        "JoinGroup": {
            "type": "object", "required": ["code"], "additionalProperties": false,
            "properties": {"code": {"type": "string", "minLength": 1, "maxLength": 90, "description": "An invite code or https://chat.whatsapp.com/<code>"}}
        },
        "GroupJoined": {
            "type": "object", "required": ["id", "pending_approval"],
            "properties": {"id": {"type": "string"}, "pending_approval": {"type": "boolean"}}
        },
        "Call": {
            "type": "object",
            "required": ["call_id", "from", "from_phone", "from_lid", "video", "group", "offline", "offered_at", "rejected_at", "rejected_by", "reply_id", "ended_at", "end_reason"],
            "properties": {
                "call_id": {"type": "string"},
                "from": {"type": "string", "description": "The caller as the call named them (often a LID)"},
                "from_phone": nullable_string.clone(),
                "from_lid": nullable_string.clone(),
                "push_name": {"type": "string"},
                "video": {"type": "boolean"},
                "group": nullable_string.clone(),
                "offline": {"type": "boolean", "description": "Offered while the device was offline: missed"},
                "offered_at": {"type": "integer", "format": "int64"},
                "rejected_at": nullable_int.clone(),
                "rejected_by": {"type": "string", "nullable": true, "enum": ["auto", "api", null]},
                "reply_id": {"type": "string", "nullable": true, "description": "The text queued to the caller (call_reply)"},
                "ended_at": nullable_int.clone(),
                "end_reason": nullable_string.clone()
            }
        },
        "MessageEdit": {
            "type": "object", "additionalProperties": false, "minProperties": 1, "maxProperties": 1,
            "properties": {
                "text": {"type": "string", "minLength": 1, "maxLength": 65536, "description": "The new text of a text or link_preview message"},
                "caption": {"type": "string", "minLength": 1, "maxLength": 65536, "description": "The new caption of an image or video"}
            }
        }
    })
}

/// Number checks, identities and the own profile.
fn people_schemas() -> Value {
    let nullable_string = json!({"type": "string", "nullable": true});
    json!({
            "Contact": {
                "type": "object",
                "required": ["number", "on_whatsapp", "jid", "lid", "business", "verified_name", "picture_url", "about", "details", "checked_at", "cached"],
                "properties": {
                    "number": {"type": "string", "example": "447700900123", "description": "The number asked, digits with the country code"},
                    "on_whatsapp": {"type": "boolean"},
                    "jid": {"type": "string", "nullable": true, "example": "447700900123@s.whatsapp.net", "description": "The phone-number JID, when on WhatsApp"},
                    "lid": {"type": "string", "nullable": true, "example": "123456789012345@lid", "description": "The LID, when WhatsApp says"},
                    "business": {"type": "boolean", "description": "A WhatsApp Business account"},
                    "verified_name": nullable_string.clone(),
                    "picture_url": {"type": "string", "nullable": true, "description": "Its profile picture, when it has one this account may see (single checks; the URL expires)"},
                    "about": {"type": "string", "nullable": true, "description": "Its about text, when visible (single checks)"},
                    "details": {"type": "boolean", "description": "Whether picture and about were asked (single check) or not (batch)"},
                    "checked_at": {"type": "integer", "format": "int64", "description": "When WhatsApp was asked (unix ms)"},
                    "cached": {"type": "boolean", "description": "Answered from the store without asking WhatsApp"}
                }
            },
            "ContactCheck": {
                "type": "object", "required": ["numbers"], "additionalProperties": false,
                "properties": {
                    "numbers": {"type": "array", "minItems": 1, "maxItems": 500, "items": {"type": "string", "example": "+44 7700 900123"}, "description": "Phone numbers with the country code (digits, a leading +, spaces, dashes and parentheses; or a phone JID); each is answered once"}
                }
            },
            "ContactCheckResult": {
                "type": "object", "required": ["results", "deferred", "retry_after_s"],
                "properties": {
                    "results": {"type": "array", "items": schema_ref("Contact"), "description": "In the order asked; cached answers marked"},
                    "deferred": {"type": "array", "items": {"type": "string"}, "description": "Numbers not asked: the check budget is spent. Never dropped: ask again later"},
                    "retry_after_s": {"type": "integer", "nullable": true, "description": "Seconds until the budget takes another number, when some are deferred"}
                }
            },
            "Profile": {
                "type": "object", "required": ["phone", "lid", "push_name", "about", "picture_url", "picture_id"],
                "properties": {
                    "phone": {"type": "string", "nullable": true, "example": "447700900123@s.whatsapp.net"},
                    "lid": {"type": "string", "nullable": true, "example": "123456789012345@lid"},
                    "push_name": {"type": "string", "description": "The name contacts see"},
                    "about": {"type": "string", "nullable": true},
                    "picture_url": {"type": "string", "nullable": true, "description": "Where the profile picture can be downloaded (the URL expires)"},
                    "picture_id": {"type": "string", "nullable": true, "description": "Changes with the picture"}
                }
            },
            "ProfilePatch": {
                "type": "object", "additionalProperties": false, "minProperties": 1,
                "properties": {
                    "push_name": {"type": "string", "minLength": 1, "maxLength": 25, "pattern": "\\S", "description": "The name contacts see"},
                    "about": {"type": "string", "maxLength": 139, "description": "The about text (empty clears it)"},
                    "picture": {"type": "string", "nullable": true, "format": "byte", "description": "A JPEG (640x640 is what WhatsApp shows), base64, at most 1 MiB; null removes the picture"}
                }
            },
            "Identity": {
                "type": "object", "required": ["lid", "phone", "learned_at", "updated_at", "source"],
                "properties": {
                    "lid": {"type": "string", "example": "123456789012345@lid"},
                    "phone": {"type": "string", "example": "447700900123@s.whatsapp.net"},
                    "learned_at": {"type": "integer", "format": "int64", "nullable": true, "description": "Unix seconds (null when the client did not record it)"},
                    "updated_at": {"type": "integer", "format": "int64", "nullable": true, "description": "Unix seconds (null when the client did not record it)"},
                    "source": {"type": "string", "description": "How the session learned the pair (usync, peer_pn_message, ...)"}
                }
            }
    })
}

/// The schemas of the pacing routes.
fn pacing_schemas() -> Value {
    let nullable_string = json!({"type": "string", "nullable": true});
    let nullable_int = json!({"type": "integer", "format": "int64", "nullable": true});
    json!({
        "PacingSettings": pacing_settings(false),
        "PacingOverrides": pacing_settings(true),
        "WarmUp": {
            "type": "object", "required": ["day", "daily_limit", "active"],
            "properties": {
                "day": {"type": "integer", "description": "Day 1 is the first 24 hours after pairing; 0 when the pairing time is unknown"},
                "daily_limit": {"type": "integer"},
                "active": {"type": "boolean", "description": "Whether the warm-up curve lowers today's limit"}
            }
        },
        "SessionSettings": {
            "type": "object", "required": ["session", "settings", "overrides", "defaults", "paired_at", "warm_up"],
            "properties": {
                "session": {"type": "string"},
                "settings": schema_ref("PacingSettings"),
                "overrides": schema_ref("PacingOverrides"),
                "defaults": schema_ref("PacingSettings"),
                "paired_at": nullable_int.clone(),
                "warm_up": schema_ref("WarmUp")
            }
        },
        "Queue": {
            "type": "object", "required": ["session", "depth", "held_count", "held", "next_send_at", "paused", "sent", "warm_up"],
            "properties": {
                "session": {"type": "string"},
                "depth": {"type": "integer", "description": "Messages waiting, held ones included"},
                "held_count": {"type": "integer"},
                "held": {"type": "array", "items": schema_ref("Message"), "description": "Held messages in queue order (at most 100)"},
                "next_send_at": {"type": "integer", "format": "int64", "nullable": true, "description": "Estimated time of the next send (unix ms); null when nothing waits or the session is not connected"},
                "paused": {
                    "type": "object", "nullable": true,
                    "required": ["reason", "limit", "detail", "until"],
                    "properties": {
                        "reason": {"type": "string", "enum": ["banned", "logged_out", "failed", "stopped", "not_connected", "rate_limit", "warm_up"]},
                        "limit": {"type": "string", "nullable": true, "enum": ["per_minute", "per_hour", "per_day", "warm_up", null]},
                        "detail": nullable_string.clone(),
                        "until": nullable_int.clone()
                    }
                },
                "sent": {
                    "type": "object", "required": ["last_minute", "last_hour", "last_day"],
                    "properties": {
                        "last_minute": {"type": "integer"},
                        "last_hour": {"type": "integer"},
                        "last_day": {"type": "integer"}
                    }
                },
                "warm_up": schema_ref("WarmUp")
            }
        }
    })
}

/// The pacing settings object; as overrides every field is optional (null = the default).
fn pacing_settings(overrides: bool) -> Value {
    let int = |d: &str| json!({"type": "integer", "minimum": 0, "description": d});
    let mut v = json!({
        "type": "object", "additionalProperties": false,
        "properties": {
            "min_delay_ms": int("Shortest random delay before a send"),
            "max_delay_ms": int("Longest random delay before a send (at least min_delay_ms)"),
            "typing": {"type": "boolean", "description": "composing before text, recording before voice notes"},
            "typing_cps": int("Typing speed in characters per second (at least 1)"),
            "typing_max_ms": int("Longest typing or recording wait"),
            "per_minute": int("Sends in any 60 s (at least 1)"),
            "per_hour": int("Sends in any hour (at least 1)"),
            "per_day": int("Sends in any 24 h (at least 1)"),
            "warmup": {"type": "array", "items": {"type": "integer", "minimum": 1}, "maxItems": 90, "description": "Daily limits for the first days after pairing"},
            "duplicate_recipients": int("The same content to more than this many distinct recipients ... (at least 1)"),
            "duplicate_window_s": int("... within this many seconds ..."),
            "duplicate_action": {"type": "string", "enum": ["hold", "reject", "off"], "description": "... is held, rejected (409), or let through"},
            "auto_read": {"type": "boolean", "description": "Before a send to a chat with unread received messages, mark them read"},
            "presence": {"type": "string", "enum": ["unavailable", "available", "pulse"], "description": "Online state between sends: unavailable keeps the owner's phone notified (online only for each paced send); available always online; pulse online for pulse_for_s every pulse_every_s"},
            "pulse_every_s": {"type": "integer", "minimum": 10, "maximum": 86400, "description": "With presence pulse: a pulse every this many seconds"},
            "pulse_for_s": {"type": "integer", "minimum": 1, "description": "With presence pulse: online this many seconds (below pulse_every_s)"},
            "active_receipts": {"type": "boolean", "description": "Delivery receipts go out active (the sender sees delivered) whatever the presence; off: inactive while not available"},
            "check_per_minute": {"type": "integer", "minimum": 1, "description": "Number checks: numbers asked of WhatsApp in any 60 s (at least 1)"},
            "check_per_hour": {"type": "integer", "minimum": 1, "description": "Numbers asked in any hour (at least 1)"},
            "check_per_day": {"type": "integer", "minimum": 1, "description": "Numbers asked in any 24 h (at least 1)"},
            "check_cache_s": {"type": "integer", "minimum": 0, "maximum": 2592000, "description": "Seconds a number's answer is kept and given again without asking WhatsApp (0: never)"}
        }
    });
    if let (Some(props), Value::Object(more)) = (
        v["properties"].as_object_mut(),
        json!({
            "reject_calls": {"type": "boolean", "description": "Reject incoming calls, after a short paced pause (call.rejected with rejected_by auto)"},
            "call_reply": {"type": "string", "maxLength": 1024, "description": "With reject_calls: a text queued to the caller after each rejection (empty: none)"}
        }),
    ) {
        props.extend(more);
    }
    if overrides {
        if let Some(props) = v["properties"].as_object_mut() {
            for p in props.values_mut() {
                p["nullable"] = json!(true);
            }
        }
    } else {
        v["required"] = json!([
            "min_delay_ms",
            "max_delay_ms",
            "typing",
            "typing_cps",
            "typing_max_ms",
            "per_minute",
            "per_hour",
            "per_day",
            "warmup",
            "duplicate_recipients",
            "duplicate_window_s",
            "duplicate_action",
            "auto_read",
            "presence",
            "pulse_every_s",
            "pulse_for_s",
            "active_receipts",
            "check_per_minute",
            "check_per_hour",
            "check_per_day",
            "check_cache_s",
            "reject_calls",
            "call_reply"
        ]);
    }
    v
}

/// What one route takes and answers: the request body schema's name, the success
/// responses, and the route's own error responses (status, description).
type Specifics = (
    Option<&'static str>,
    Vec<(String, Value)>,
    Vec<(&'static str, &'static str)>,
);

/// Groups and calls.
fn conversation_specifics(r: &RouteInfo) -> Option<Specifics> {
    let not_connected = (
        "409",
        "The session is not connected (asked of WhatsApp at the time)",
    );
    let refused = (
        "403",
        "The key lacks the scope, or WhatsApp refused: not in the group or not an admin (group_forbidden)",
    );
    let group_404 = (
        "404",
        "No such session, or WhatsApp knows no such group (group_not_found)",
    );
    let invalid = (
        "422",
        "A wrong field (named): subject, description, ephemeral_s, participants, action, code, group id",
    );
    let rate = (
        "429",
        "Adding or removing these numbers would pass the session's send limits (rate_limited, Retry-After); nothing was done",
    );
    let upstream = (
        "502",
        "WhatsApp did not answer, or answered with an error not listed here (whatsapp_error)",
    );
    Some(match (r.method.as_str(), r.path) {
        ("POST", "/api/sessions/{sid}/groups") => (
            Some("NewGroup"),
            vec![ok(
                "201",
                "Created: the group and a result per participant",
                Some(schema_ref("GroupCreated")),
            )],
            vec![
                ("404", "No such session"),
                not_connected,
                invalid,
                rate,
                upstream,
            ],
        ),
        ("POST", "/api/sessions/{sid}/groups/join") => (
            Some("JoinGroup"),
            vec![ok(
                "200",
                "Joined, or waiting for an admin's approval",
                Some(schema_ref("GroupJoined")),
            )],
            vec![
                (
                    "404",
                    "No such session, or WhatsApp knows no such invite code (invite_not_found)",
                ),
                (
                    "409",
                    "The session is not connected, or the account is in the group already (already_member)",
                ),
                ("410", "The invite code was reset (invite_revoked)"),
                invalid,
                upstream,
            ],
        ),
        ("GET", "/api/sessions/{sid}/groups/{gid}") => (
            None,
            vec![ok("200", "The group", Some(schema_ref("GroupDetails")))],
            vec![group_404, refused, not_connected, invalid, upstream],
        ),
        ("PATCH", "/api/sessions/{sid}/groups/{gid}") => (
            Some("GroupPatch"),
            vec![ok(
                "200",
                "The group as it is now",
                Some(schema_ref("GroupDetails")),
            )],
            vec![
                group_404,
                refused,
                (
                    "409",
                    "The session is not connected, or the description changed meanwhile (group_changed)",
                ),
                invalid,
                upstream,
            ],
        ),
        ("POST", "/api/sessions/{sid}/groups/{gid}/participants") => (
            Some("MemberChange"),
            vec![ok(
                "200",
                "A result per person, in the order asked",
                Some(schema_ref("ParticipantResults")),
            )],
            vec![group_404, refused, not_connected, invalid, rate, upstream],
        ),
        ("GET", "/api/sessions/{sid}/groups/{gid}/invite")
        | ("POST", "/api/sessions/{sid}/groups/{gid}/invite/reset") => (
            None,
            vec![ok("200", "The invite link", Some(schema_ref("InviteLink")))],
            vec![group_404, refused, not_connected, invalid, upstream],
        ),
        ("POST", "/api/sessions/{sid}/groups/{gid}/leave") => (
            None,
            vec![ok(
                "200",
                "Left",
                Some(
                    json!({"type": "object", "required": ["left"], "properties": {"left": {"type": "boolean"}}}),
                ),
            )],
            vec![group_404, refused, not_connected, invalid, upstream],
        ),
        ("GET", "/api/sessions/{sid}/calls") => (
            None,
            vec![ok(
                "200",
                "Recent calls, newest first",
                Some(json!({"type": "array", "items": schema_ref("Call")})),
            )],
            vec![("404", "No such session")],
        ),
        ("POST", "/api/sessions/{sid}/calls/{id}/reject") => (
            None,
            vec![ok("200", "Rejected", Some(schema_ref("Call")))],
            vec![
                ("404", "No such session or call (call_not_found)"),
                (
                    "409",
                    "The call was rejected already (call_rejected) or ended or was missed (call_ended), or the session is not connected",
                ),
                ("422", "The call's JIDs are unreadable"),
                ("502", "WhatsApp did not take the rejection"),
            ],
        ),
        _ => return None,
    })
}

fn specifics(r: &RouteInfo) -> Specifics {
    if let Some(s) = conversation_specifics(r) {
        return s;
    }
    let session = Some(schema_ref("Session"));
    match (r.method.as_str(), r.path) {
        ("GET", "/api/health") => (
            None,
            vec![
                ok("200", "Healthy", Some(schema_ref("Health"))),
                ok("503", "The store has failed", Some(schema_ref("Health"))),
            ],
            vec![],
        ),
        ("GET", "/api/setup") => (
            None,
            vec![ok("200", "Setup state", Some(schema_ref("SetupStatus")))],
            vec![(
                "421",
                "The Host header does not name this device (DNS-rebinding guard)",
            )],
        ),
        ("POST", "/api/setup") => (
            Some("SetupClaim"),
            vec![ok(
                "201",
                "The first admin key (shown once)",
                Some(schema_ref("CreatedKey")),
            )],
            vec![
                ("403", "Wrong setup code"),
                ("410", "Setup is closed"),
                (
                    "421",
                    "The Host header does not name this device (DNS-rebinding guard)",
                ),
                ("429", "Too many wrong codes; see Retry-After"),
            ],
        ),
        ("POST", "/api/keys") => (
            Some("KeyCreate"),
            vec![ok(
                "201",
                "The key (shown once)",
                Some(schema_ref("CreatedKey")),
            )],
            vec![(
                "422",
                "Unknown scope, bad session id, or an admin key limited to sessions",
            )],
        ),
        ("GET", "/api/keys") => (
            None,
            vec![ok(
                "200",
                "Every key, revoked ones included",
                Some(json!({"type": "array", "items": schema_ref("Key")})),
            )],
            vec![],
        ),
        ("GET", "/api/keys/{id}") => (
            None,
            vec![ok("200", "The key", Some(schema_ref("Key")))],
            vec![("404", "No such key")],
        ),
        ("DELETE", "/api/keys/{id}") => (
            None,
            vec![ok("204", "Revoked (also when it already was)", None)],
            vec![("404", "No such key"), ("409", "The last active admin key")],
        ),
        ("GET", "/api/sessions") => (
            None,
            vec![ok(
                "200",
                "Sessions the key may see",
                Some(json!({"type": "array", "items": schema_ref("Session")})),
            )],
            vec![],
        ),
        ("POST", "/api/sessions") => (
            Some("SessionCreate"),
            vec![ok("201", "Created; pairing has started", session)],
            vec![
                ("409", "A session with this id exists"),
                ("422", "Invalid session id"),
            ],
        ),
        ("GET", "/api/sessions/{sid}") => (
            None,
            vec![ok("200", "The session", session)],
            vec![("404", "No such session")],
        ),
        ("DELETE", "/api/sessions/{sid}") => (
            None,
            vec![ok("204", "Deleted, with every key it held", None)],
            vec![("404", "No such session")],
        ),
        ("POST", p) if p.ends_with("/start") || p.ends_with("/stop") || p.ends_with("/logout") => (
            None,
            vec![ok("200", "The session after the change", session)],
            vec![("404", "No such session")],
        ),
        ("GET", "/api/sessions/{sid}/qr") => {
            let mut content = serde_json::Map::new();
            content.insert(
                "image/png".into(),
                json!({"schema": {"type": "string", "format": "binary"}}),
            );
            content.insert(
                "image/svg+xml".into(),
                json!({"schema": {"type": "string"}}),
            );
            content.insert(
                "application/json".into(),
                json!({"schema": schema_ref("QrCode")}),
            );
            content.insert(
                "text/plain".into(),
                json!({"schema": {"type": "string"}, "description": "?format=text"}),
            );
            (
                None,
                vec![(
                    "200".into(),
                    json!({"description": "The current QR code (chosen by Accept or ?format=)", "content": content}),
                )],
                vec![
                    ("404", "No such session"),
                    ("406", "No acceptable format"),
                    ("409", "The session is not waiting for a scan"),
                ],
            )
        }
        ("POST", "/api/sessions/{sid}/pair-code") => (
            Some("PairCodeRequest"),
            vec![ok(
                "200",
                "The code to type on the phone",
                Some(schema_ref("PairCode")),
            )],
            vec![
                ("404", "No such session"),
                ("409", "The session is not waiting for a scan"),
                ("422", "Invalid phone number, or WhatsApp refused"),
            ],
        ),
        ("POST", "/api/sessions/{sid}/messages/{id}") => (
            Some("MessageRequest"),
            vec![ok(
                "202",
                "Queued: the message is durable in the session's queue",
                Some(schema_ref("MessageAccepted")),
            )],
            vec![
                ("400", "Bad JSON, or a missing or invalid field (named)"),
                (
                    "404",
                    "No such session, or an unknown kind (the kinds are listed)",
                ),
                (
                    "409",
                    "The session has failed (start it again first), or the duplicate guard refused the content (duplicate_content)",
                ),
                ("413", "Body or media too large"),
                ("415", "Not JSON"),
                ("422", "Not a phone number or JID"),
            ],
        ),
        ("GET", "/api/sessions/{sid}/messages/{id}") => (
            None,
            vec![ok(
                "200",
                "The message: one sent (Message) or received (ReceivedMessage)",
                Some(schema_ref("AnyMessage")),
            )],
            vec![("404", "No such session or message")],
        ),
        ("GET", "/api/sessions/{sid}/messages") => (
            None,
            vec![ok(
                "200",
                "A page of the history",
                Some(schema_ref("MessagePage")),
            )],
            vec![
                ("400", "A bad query parameter (named)"),
                ("404", "No such session"),
            ],
        ),
        ("PATCH", "/api/sessions/{sid}/messages/{id}") => (
            Some("MessageEdit"),
            vec![ok(
                "202",
                "The edit is queued (its own id; message.sent names the target)",
                Some(schema_ref("MessageAccepted")),
            )],
            vec![
                ("404", "No such session or sent message"),
                (
                    "409",
                    "not_sent, edit_window_passed (15 minutes), not_editable (a kind without text), revoked, not_changeable (an edit or revoke itself), duplicate_content or session_failed",
                ),
                (
                    "422",
                    "The new text is missing, blank or too long, or the wrong field for the kind (named)",
                ),
            ],
        ),
        ("POST", "/api/sessions/{sid}/messages/{id}/revoke") => (
            None,
            vec![
                ok(
                    "202",
                    "The revoke is queued (its own id; message.sent names the target)",
                    Some(schema_ref("MessageAccepted")),
                ),
                ok(
                    "200",
                    "The message had not started sending: it is cancelled instead",
                    Some(schema_ref("Message")),
                ),
            ],
            vec![
                ("400", "A bad Idempotency-Key"),
                ("404", "No such session or sent message"),
                (
                    "409",
                    "not_sent (sending or failed), revoke_window_passed (60 hours), revoked (already), not_changeable, duplicate_content or session_failed",
                ),
            ],
        ),
        ("DELETE", "/api/sessions/{sid}/messages/{id}") => (
            None,
            vec![ok("200", "Cancelled", Some(schema_ref("Message")))],
            vec![
                ("404", "No such session or message"),
                ("409", "Too late: already sending or sent"),
            ],
        ),
        ("GET", "/api/sessions/{sid}/messages/{id}/media") => (
            None,
            vec![(
                "200".into(),
                json!({"description": "The decrypted media, with its Content-Type and Content-Length (Content-Disposition for documents); X-Wagate-Cache says hit or miss", "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}),
            )],
            vec![
                (
                    "404",
                    "No such session, no received message with media (media_not_found), or the media expired on WhatsApp's servers (media_expired)",
                ),
                (
                    "409",
                    "The session is not connected (the media is not cached)",
                ),
                ("502", "The download failed"),
            ],
        ),
        ("POST", "/api/sessions/{sid}/messages/{id}/read") => (
            None,
            vec![ok("200", "Read receipt sent", None)],
            vec![
                ("404", "No such session or received message"),
                ("409", "The session is not connected"),
            ],
        ),
        ("GET", "/api/sessions/{sid}/groups") => (
            None,
            vec![ok(
                "200",
                "The groups, sorted by id",
                Some(json!({"type": "array", "items": schema_ref("Group")})),
            )],
            vec![
                ("404", "No such session"),
                ("409", "The session is not connected"),
                ("502", "WhatsApp did not answer"),
            ],
        ),
        ("GET", "/api/sessions/{sid}/contacts/{number}") => (
            None,
            vec![ok(
                "200",
                "What WhatsApp says of the number",
                Some(schema_ref("Contact")),
            )],
            vec![
                ("404", "No such session"),
                (
                    "409",
                    "The session is not connected (and the number is not cached)",
                ),
                ("422", "Not a phone number"),
                (
                    "429",
                    "The session's check budget is spent; see Retry-After",
                ),
                ("502", "WhatsApp did not answer"),
            ],
        ),
        ("POST", "/api/sessions/{sid}/contacts/check") => (
            Some("ContactCheck"),
            vec![ok(
                "200",
                "Answers now, the rest deferred",
                Some(schema_ref("ContactCheckResult")),
            )],
            vec![
                ("400", "Bad JSON or an unknown field (named)"),
                ("404", "No such session"),
                (
                    "409",
                    "The session is not connected (and some numbers are not cached)",
                ),
                ("415", "Not JSON"),
                (
                    "422",
                    "No numbers, more than 500, or one that is not a phone number (named)",
                ),
                ("502", "WhatsApp did not answer"),
            ],
        ),
        ("GET", "/api/sessions/{sid}/lids/{lid}" | "/api/sessions/{sid}/lids/pn/{phone}") => (
            None,
            vec![ok("200", "The pair", Some(schema_ref("Identity")))],
            vec![
                (
                    "404",
                    "No such session, or the session has not learned the pair",
                ),
                ("422", "Not a LID or not a phone number"),
            ],
        ),
        ("GET", "/api/sessions/{sid}/profile") => (
            None,
            vec![ok("200", "The profile", Some(schema_ref("Profile")))],
            vec![
                ("404", "No such session"),
                ("409", "The session is not connected"),
                ("502", "WhatsApp did not answer"),
            ],
        ),
        ("PATCH", "/api/sessions/{sid}/profile") => (
            Some("ProfilePatch"),
            vec![ok(
                "200",
                "Changed; the profile now",
                Some(schema_ref("Profile")),
            )],
            vec![
                ("400", "Bad JSON or an unknown field (named)"),
                ("404", "No such session"),
                ("409", "The session is not connected"),
                ("415", "Not JSON"),
                (
                    "422",
                    "A field WhatsApp would refuse (named): too long, not a JPEG, nothing to change",
                ),
                ("502", "WhatsApp refused or did not answer"),
            ],
        ),
        ("GET", "/api/sessions/{sid}/settings") => (
            None,
            vec![ok(
                "200",
                "The session's pacing",
                Some(schema_ref("SessionSettings")),
            )],
            vec![("404", "No such session")],
        ),
        ("PUT", "/api/sessions/{sid}/settings") => (
            Some("PacingOverrides"),
            vec![ok(
                "200",
                "Saved; the session's pacing now",
                Some(schema_ref("SessionSettings")),
            )],
            vec![
                ("400", "Bad JSON or an unknown field (named)"),
                ("404", "No such session"),
                ("415", "Not JSON"),
                ("422", "A setting out of range (the field is named)"),
            ],
        ),
        ("GET", "/api/sessions/{sid}/queue") => (
            None,
            vec![ok("200", "The session's queue", Some(schema_ref("Queue")))],
            vec![("404", "No such session")],
        ),
        ("POST", "/api/sessions/{sid}/messages/{id}/release") => (
            None,
            vec![ok(
                "200",
                "Released: queued again",
                Some(schema_ref("Message")),
            )],
            vec![
                ("404", "No such session or message"),
                ("409", "The message is not held"),
            ],
        ),
        ("GET", "/api/display.png") => (
            None,
            vec![(
                "200".into(),
                json!({"description": "The frame the screen shows", "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}}),
            )],
            vec![("404", "No frame drawn yet, or no display runs")],
        ),
        ("GET", "/api/events") => (
            None,
            vec![(
                "200".into(),
                json!({
                    "description": "An endless text/event-stream. Event names: state, resync, and the domain event types (session.connected, message.received, ...). Domain events carry their id as the SSE id; reconnecting with Last-Event-ID (or ?after=) first replays every event written after it, in order",
                    "content": {"text/event-stream": {"schema": {"type": "string"}}}
                }),
            )],
            vec![(
                "410",
                "The event named by after / Last-Event-ID, or one written after it, is no longer in the event log: resync, then connect without an id",
            )],
        ),
        ("GET", "/metrics") => (
            None,
            vec![(
                "200".into(),
                json!({"description": "Prometheus text format 0.0.4", "content": {"text/plain": {"schema": {"type": "string"}}}}),
            )],
            vec![],
        ),
        ("GET", "/api/openapi.json") => (
            None,
            vec![ok("200", "This document", Some(json!({"type": "object"})))],
            vec![],
        ),
        ("GET", path) if crate::net::dashboard::is_dashboard_path(path) => {
            let media = crate::net::dashboard::ASSETS
                .iter()
                .find(|a| a.path == path)
                .map(|a| a.content_type.split(';').next().unwrap_or(a.content_type))
                .unwrap_or("text/plain");
            (
                None,
                vec![(
                    "200".into(),
                    json!({"description": "A file of the dashboard, embedded in the binary", "content": {media: {"schema": {"type": "string"}}}}),
                )],
                vec![(
                    "421",
                    "The Host header does not name this device (DNS-rebinding guard)",
                )],
            )
        }
        ("POST", "/api/webhooks") => (
            Some("WebhookCreate"),
            vec![ok(
                "201",
                "Created; the secret is in this answer only",
                Some(schema_ref("WebhookCreated")),
            )],
            vec![("422", "Invalid url, events or sessions (named)")],
        ),
        ("GET", "/api/webhooks") => (
            None,
            vec![ok(
                "200",
                "The endpoints (never their secrets)",
                Some(json!({"type": "array", "items": schema_ref("Webhook")})),
            )],
            vec![],
        ),
        ("GET", "/api/webhooks/{id}") => (
            None,
            vec![ok("200", "The endpoint", Some(schema_ref("Webhook")))],
            vec![("404", "No such endpoint")],
        ),
        ("PATCH", "/api/webhooks/{id}") => (
            Some("WebhookPatch"),
            vec![ok("200", "The endpoint now", Some(schema_ref("Webhook")))],
            vec![
                ("404", "No such endpoint"),
                ("422", "Invalid url, events or sessions (named)"),
            ],
        ),
        ("DELETE", "/api/webhooks/{id}") => (
            None,
            vec![ok(
                "204",
                "Deleted; its pending deliveries end as failed",
                None,
            )],
            vec![("404", "No such endpoint")],
        ),
        ("POST", "/api/webhooks/{id}/rotate-secret") => (
            None,
            vec![ok(
                "200",
                "The new secret (shown once) and until when the old one signs too",
                Some(json!({
                    "type": "object", "required": ["secret", "previous_secret_until"],
                    "properties": {"secret": {"type": "string"}, "previous_secret_until": {"type": "integer", "format": "int64"}}
                })),
            )],
            vec![("404", "No such endpoint")],
        ),
        ("POST", "/api/webhooks/{id}/test") => (
            None,
            vec![ok(
                "202",
                "A webhook.test event queued for this endpoint",
                Some(json!({
                    "type": "object", "required": ["event_id", "delivery_id"],
                    "properties": {"event_id": {"type": "string"}, "delivery_id": {"type": "string"}}
                })),
            )],
            vec![("404", "No such endpoint")],
        ),
        ("POST", "/api/webhooks/{id}/replay") => (
            None,
            vec![ok(
                "202",
                "How many stored events go to the endpoint again",
                Some(json!({
                    "type": "object", "required": ["deliveries"], "properties": {"deliveries": {"type": "integer"}}
                })),
            )],
            vec![
                ("400", "since missing or negative"),
                ("404", "No such endpoint"),
            ],
        ),
        ("GET", "/api/deliveries") => (
            None,
            vec![ok(
                "200",
                "The delivery log, newest first",
                Some(json!({
                    "type": "object", "required": ["deliveries"],
                    "properties": {
                        "deliveries": {"type": "array", "items": schema_ref("Delivery")},
                        "next_before": {"type": "string", "description": "Pass as before for the next page; absent on the last page"}
                    }
                })),
            )],
            vec![("400", "A bad filter (named)")],
        ),
        ("GET", "/api/deliveries/{id}") => (
            None,
            vec![ok(
                "200",
                "The delivery with every attempt",
                Some(schema_ref("Delivery")),
            )],
            vec![("404", "No such delivery")],
        ),
        ("POST", "/api/deliveries/{id}/redeliver") => (
            None,
            vec![ok(
                "202",
                "Pending again from the start of the schedule, same id",
                Some(schema_ref("Delivery")),
            )],
            vec![
                ("404", "No such delivery"),
                ("409", "Its event was removed by the retention"),
            ],
        ),
        _ => (None, vec![ok("200", "Success", None)], vec![]),
    }
}

fn parameters(r: &RouteInfo) -> Vec<Value> {
    let mut params = Vec::new();
    for seg in r.path.split('/') {
        if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            let kind = r.method == Method::POST
                && r.path == "/api/sessions/{sid}/messages/{id}"
                && name == "id";
            params.push(if kind {
                // On this route `{id}` is the message kind.
                json!({"name": name, "in": "path", "required": true, "description": "The message kind",
                       "schema": {"type": "string", "enum": crate::engine::compose::KINDS}})
            } else {
                json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}})
            });
        }
    }
    match (r.method.as_str(), r.path) {
        ("GET", "/api/sessions/{sid}/qr") => params.push(json!({
            "name": "format", "in": "query", "required": false,
            "schema": {"type": "string", "enum": ["png", "svg", "json", "text"]},
            "description": "Overrides Accept"
        })),
        ("POST", "/api/webhooks/{id}/replay") => params.push(json!({
            "name": "since", "in": "query", "required": true,
            "schema": {"type": "integer", "format": "int64", "minimum": 0},
            "description": "Unix milliseconds"
        })),
        ("GET", "/api/deliveries") => {
            for (name, description) in [
                ("status", "pending, delivered, failed or expired"),
                ("endpoint", "An endpoint id"),
                ("session", "A session id"),
                ("event", "An event type or an event id"),
                ("before", "A delivery id: only older ones (paging)"),
            ] {
                params.push(json!({"name": name, "in": "query", "required": false, "schema": {"type": "string"}, "description": description}));
            }
            params.push(json!({"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}}));
        }
        ("GET", "/api/sessions/{sid}/calls") => {
            params.push(json!({"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}}));
        }
        ("GET", "/api/sessions/{sid}/messages") => {
            params.push(json!({"name": "direction", "in": "query", "required": false, "schema": {"type": "string", "enum": ["in", "out"]}, "description": "Only received (in) or sent (out) messages"}));
            params.push(json!({"name": "chat", "in": "query", "required": false, "schema": {"type": "string", "maxLength": 128}, "description": "Only this chat: a JID or phone digits"}));
            params.push(json!({"name": "order", "in": "query", "required": false, "schema": {"type": "string", "enum": ["newest", "oldest"], "default": "newest"}}));
            params.push(json!({"name": "after", "in": "query", "required": false, "schema": {"type": "string", "pattern": "^msg_", "maxLength": 64}, "description": "The next of the page before"}));
            params.push(json!({"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}}));
        }
        ("GET", "/api/events") => {
            params.push(json!({"name": "session", "in": "query", "required": false, "schema": {"type": "string"}, "description": "Comma list of session ids"}));
            params.push(json!({"name": "type", "in": "query", "required": false, "schema": {"type": "string"}, "description": "Comma list of event names"}));
            params.push(json!({"name": "after", "in": "query", "required": false, "schema": {"type": "string", "minLength": 1, "maxLength": 64}, "description": "Replay the events written after this event id first (as Last-Event-ID)"}));
            params.push(json!({"name": "Last-Event-ID", "in": "header", "required": false, "schema": {"type": "string", "maxLength": 64}, "description": "The id of the last event received: the events written after it are replayed first"}));
        }
        _ => {}
    }
    params
}

fn operation(r: &RouteInfo) -> Value {
    let (body, success, errors) = specifics(r);
    let mut responses = serde_json::Map::new();
    for (status, v) in success {
        responses.insert(status, v);
    }
    if body.is_some() {
        responses.insert(
            "400".into(),
            error_response("Malformed JSON or a wrong field (named in the message)"),
        );
        responses.insert(
            "413".into(),
            error_response("Body larger than api.body_limit_kb"),
        );
        responses.insert(
            "415".into(),
            error_response("Content-Type is not application/json"),
        );
    }
    match r.access {
        Access::Public => {}
        Access::AnyKey => {
            responses.insert(
                "401".into(),
                error_response("Missing, malformed, unknown or revoked key"),
            );
        }
        Access::Scope(_) => {
            responses.insert(
                "401".into(),
                error_response("Missing, malformed, unknown or revoked key"),
            );
            responses.insert(
                "403".into(),
                error_response("The key lacks the scope, or may not use this session"),
            );
        }
    }
    for (status, description) in errors {
        responses.insert(status.into(), error_response(description));
    }
    if r.path != "/api/health" && !crate::net::dashboard::is_dashboard_path(r.path) {
        responses.insert("503".into(), error_response("The store has failed"));
        responses.insert(
            "507".into(),
            error_response("The disk holding the store is full; nothing was written"),
        );
    }
    let params = parameters(r);
    // Query strings go through `QueryParams`: an unknown or invalid parameter is a 400; so
    // is a path parameter that is not UTF-8 once percent-decoded (`PathParams`).
    if params.iter().any(|p| p["in"] == "query") {
        responses.entry("400").or_insert_with(|| {
            error_response("An unknown or invalid query parameter (named in the message)")
        });
    }
    if params.iter().any(|p| p["in"] == "path") {
        responses.entry("400").or_insert_with(|| {
            error_response("A path parameter that is not UTF-8 once percent-decoded")
        });
    }
    let id = format!(
        "{}{}",
        r.method.as_str().to_ascii_lowercase(),
        r.path
            .split(['/', '{', '}', '-', '.'])
            .filter(|s| !s.is_empty())
            .map(|s| {
                let mut c = s.chars();
                c.next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default()
            })
            .collect::<String>()
    );
    let mut op = json!({
        "operationId": id,
        "summary": r.summary,
        "responses": responses,
    });
    if !params.is_empty() {
        op["parameters"] = Value::Array(params);
    }
    if let Some(schema) = body {
        op["requestBody"] = json!({"required": true, "content": json_content(schema_ref(schema))});
    }
    match r.access {
        Access::Public => op["security"] = json!([]),
        Access::AnyKey => {}
        Access::Scope(scope) => {
            op["x-wagate-scope"] = json!(scope.as_str());
            op["description"] = json!(format!(
                "Needs a key with the `{scope}` scope (or `admin`)."
            ));
        }
    }
    op
}

/// The whole document.
pub fn document() -> Value {
    let mut paths = serde_json::Map::new();
    for r in super::routes() {
        let item = paths.entry(r.path.to_string()).or_insert_with(|| json!({}));
        item[r.method.as_str().to_ascii_lowercase()] = operation(&r);
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "wagate",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The LAN HTTP API of wagate, the WhatsApp gateway appliance. Errors answer {\"error\":{\"code\",\"message\"}}."
        },
        "security": [{"bearer": []}],
        "paths": paths,
        "components": components(),
    })
}
