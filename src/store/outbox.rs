//! The webhook outbox, the delivery log and the webhook endpoints.
//!
//! An event is written here in the same transaction as the state change that caused it
//! ([`record`]): a session state, a message status, an inbound message. The same transaction
//! fans it out into one [`Delivery`] per enabled endpoint whose filters take it, due at once.
//! The forwarder (`net::webhook`) takes due deliveries in order, posts them and records every
//! attempt ([`attempted`]), which either finishes the delivery or schedules its next try.
//! Nothing is deleted until it is finished and older than the retention ([`prune`]).
//!
//! Layout:
//! - `wh_endpoint`   endpoint id -> [`Endpoint`] as JSON
//! - `wh_event`      event id -> the event body as sent (JSON bytes, signed as they are)
//! - `wh_event_time` (timestamp ms, event id) -> (): replay `since` and retention by age
//! - `wh_seq`        session -> last `seq` given to one of its events
//! - `wh_event_log`  log position -> event id: every event in the order it was written (ids
//!   are not: an inbound message's id carries the time it was sent); SSE catch-up reads it
//! - `wh_event_pos`  event id -> its log position
//! - `wh_delivery`   delivery id -> [`Delivery`] as JSON; ids are monotonic ULIDs, so key
//!   order is creation order
//! - `wh_due`        (endpoint id, due at ms, delivery id) -> (): each endpoint's scheduled
//!   deliveries, earliest first; first attempts are due when written, so per endpoint they go
//!   out in event order, and a delivery waiting for a retry sits later in this index and
//!   never blocks the ones behind it (nor another endpoint's)
//! - `wh_pair`       (event id, endpoint id) -> delivery id: one delivery per pair
//! - `wh_count`      "deliveries" -> how many rows `wh_delivery` holds; "failed/<session>" ->
//!   how many of a session's deliveries are `failed` (the status screen shows it);
//!   "log_bytes" -> the bytes of every `wh_event` and `wh_delivery` value (the retention's
//!   byte budget; counted once at open when missing); "log_pos" -> the last log position
//!   given; "pruned_pos" -> the highest log position the retention removed

use std::sync::Mutex;

use redb::{
    ReadTransaction, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction,
};
use serde::{Deserialize, Serialize};

use super::{Result, StoreError};
use crate::events::{EVENT_TYPES, Event, EventKind};

const ENDPOINT: TableDefinition<&str, &[u8]> = TableDefinition::new("wh_endpoint");
const EVENT: TableDefinition<&str, &[u8]> = TableDefinition::new("wh_event");
const EVENT_TIME: TableDefinition<(u64, &str), ()> = TableDefinition::new("wh_event_time");
const SEQ: TableDefinition<&str, u64> = TableDefinition::new("wh_seq");
const EVENT_LOG: TableDefinition<u64, &str> = TableDefinition::new("wh_event_log");
const EVENT_POS: TableDefinition<&str, u64> = TableDefinition::new("wh_event_pos");
const DELIVERY: TableDefinition<&str, &[u8]> = TableDefinition::new("wh_delivery");
const DUE: TableDefinition<(&str, u64, &str), ()> = TableDefinition::new("wh_due");
const PAIR: TableDefinition<(&str, &str), &str> = TableDefinition::new("wh_pair");
const COUNT: TableDefinition<&str, u64> = TableDefinition::new("wh_count");

/// The first retries, before the configurable tail.
pub const FIRST_RETRIES_MS: [u64; 3] = [1_000, 5_000, 30_000];

/// How many attempts a delivery's log keeps (the oldest go first past this).
pub const MAX_ATTEMPTS_KEPT: usize = 32;

/// How much of a receiver's answer an attempt keeps.
pub const RESPONSE_KEPT: usize = 1024;

/// The longest wait a `Retry-After` may ask for.
pub const MAX_RETRY_AFTER_MS: u64 = 12 * 3600 * 1000;

pub(crate) fn create_tables(txn: &WriteTransaction) -> Result<()> {
    txn.open_table(ENDPOINT)?;
    txn.open_table(EVENT)?;
    txn.open_table(EVENT_TIME)?;
    txn.open_table(SEQ)?;
    txn.open_table(DELIVERY)?;
    let unlogged = txn.open_table(EVENT_LOG)?.is_empty()? && !txn.open_table(EVENT)?.is_empty()?;
    if unlogged {
        // A store from before the log: its events in time order, the best order known.
        let ids: Vec<String> = txn
            .open_table(EVENT_TIME)?
            .iter()?
            .map(|row| row.map(|(k, _)| k.value().1.to_string()))
            .collect::<std::result::Result<_, _>>()?;
        for id in ids {
            log_event(txn, &id)?;
        }
    }
    txn.open_table(DUE)?;
    txn.open_table(PAIR)?;
    let missing = txn.open_table(COUNT)?.get(LOG_BYTES)?.is_none();
    if missing {
        let mut bytes = 0u64;
        for table in [EVENT, DELIVERY] {
            for row in txn.open_table(table)?.iter()? {
                bytes += row?.1.value().len() as u64;
            }
        }
        txn.open_table(COUNT)?.insert(LOG_BYTES, bytes)?;
    }
    Ok(())
}

/// The `wh_count` key of the log's size in bytes.
const LOG_BYTES: &str = "log_bytes";

/// Add to the log's byte count the difference between a value written and the one it
/// replaced (or, with `new` 0, one removed).
fn add_bytes(txn: &WriteTransaction, new: usize, old: usize) -> Result<()> {
    bump(txn, LOG_BYTES, new as i64 - old as i64)
}

/// How many bytes the events and deliveries hold (their stored values).
pub fn log_bytes(txn: &ReadTransaction) -> Result<u64> {
    Ok(txn
        .open_table(COUNT)?
        .get(LOG_BYTES)?
        .map(|v| v.value())
        .unwrap_or(0))
}

/// Monotonic ULIDs: two ids made in the same millisecond still sort in the order made.
fn next_ulid() -> ulid::Ulid {
    static GEN: Mutex<Option<ulid::Generator>> = Mutex::new(None);
    let mut g = match GEN.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    g.get_or_insert_with(ulid::Generator::new)
        .generate()
        .unwrap_or_else(|_| ulid::Ulid::new())
}

fn corrupt(table: &'static str, detail: impl ToString) -> StoreError {
    StoreError::Corrupt {
        table,
        detail: detail.to_string(),
    }
}

fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| StoreError::Invalid(e.to_string()))
}

// ---------------------------------------------------------------------------------------------
// Endpoints
// ---------------------------------------------------------------------------------------------

/// A receiver of webhooks.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Endpoint {
    /// `whk_` + ULID.
    pub id: String,
    pub url: String,
    /// Event types it takes, or `["*"]` for all (`webhook.test` always reaches it when asked
    /// for explicitly).
    pub events: Vec<String>,
    /// Sessions it takes events of; `None` for all.
    #[serde(default)]
    pub sessions: Option<Vec<String>>,
    pub enabled: bool,
    #[serde(default)]
    pub description: Option<String>,
    /// `whsec_` + base64 of 32 random bytes.
    pub secret: String,
    /// The secret before the last rotation, signed with as well until `previous_until`.
    #[serde(default)]
    pub previous_secret: Option<String>,
    #[serde(default)]
    pub previous_until: Option<i64>,
    /// Why wagate disabled it (a 410 answer), if it did.
    #[serde(default)]
    pub disabled_reason: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Endpoint {
    /// Whether this endpoint takes `event` (filters only; `enabled` is checked apart).
    pub fn takes(&self, event_type: &str, session: &str) -> bool {
        if event_type == "webhook.test" {
            return false;
        }
        let by_type = self.events.iter().any(|e| e == "*" || e == event_type);
        let by_session = self
            .sessions
            .as_ref()
            .is_none_or(|s| s.iter().any(|x| x == session));
        by_type && by_session
    }

    /// The previous secret while its grace lasts.
    pub fn previous_at(&self, now: i64) -> Option<&str> {
        match (&self.previous_secret, self.previous_until) {
            (Some(s), Some(until)) if now < until => Some(s),
            _ => None,
        }
    }
}

/// Check an event filter: `["*"]` or known event types, at least one.
pub fn check_event_filter(events: &[String]) -> std::result::Result<(), String> {
    if events.is_empty() {
        return Err("must name at least one event type, or \"*\"".into());
    }
    for e in events {
        if e != "*" && !EVENT_TYPES.contains(&e.as_str()) {
            return Err(format!(
                "unknown event type '{e}'; one of {}, or \"*\"",
                EVENT_TYPES.join(", ")
            ));
        }
    }
    Ok(())
}

fn decode_endpoint(bytes: &[u8]) -> Result<Endpoint> {
    serde_json::from_slice(bytes).map_err(|e| corrupt("wh_endpoint", e))
}

fn endpoints_w(txn: &WriteTransaction) -> Result<Vec<Endpoint>> {
    let t = txn.open_table(ENDPOINT)?;
    let mut out = Vec::new();
    for row in t.iter()? {
        out.push(decode_endpoint(row?.1.value())?);
    }
    Ok(out)
}

fn endpoint_w(txn: &WriteTransaction, id: &str) -> Result<Option<Endpoint>> {
    let t = txn.open_table(ENDPOINT)?;
    t.get(id)?.map(|v| decode_endpoint(v.value())).transpose()
}

fn put_endpoint(txn: &WriteTransaction, ep: &Endpoint) -> Result<()> {
    txn.open_table(ENDPOINT)?
        .insert(ep.id.as_str(), to_json(ep)?.as_slice())?;
    Ok(())
}

/// A new endpoint id.
/// The id of the MQTT broker endpoint (`[mqtt]`): one fixed row, owned by the configuration
/// rather than the webhook API. Its deliveries are published by `net::mqtt`, not posted.
pub const MQTT_ENDPOINT: &str = "mqtt";

/// Make the MQTT endpoint match the configuration: `Some((url, events))` creates or updates
/// it enabled (its pending deliveries due at once when it was off); `None` disables it, so
/// no new deliveries pile up for a broker nobody configured any more.
pub fn configure_mqtt(
    txn: &WriteTransaction,
    target: Option<(&str, &[String])>,
    now: i64,
) -> Result<()> {
    let existing = endpoint_w(txn, MQTT_ENDPOINT)?;
    match (target, existing) {
        (None, None) => Ok(()),
        (None, Some(_)) => {
            // What still waits for a broker nobody configures any more ends `expired` (so
            // the retention can remove it and the events it holds).
            expire_backlog(
                txn,
                MQTT_ENDPOINT,
                i64::MAX,
                0,
                0,
                "MQTT was turned off",
                now,
            )?;
            set_enabled(txn, MQTT_ENDPOINT, false, Some("MQTT is off".into()), now)
        }
        (Some((url, events)), existing) => {
            let mut ep = existing.clone().unwrap_or_else(|| Endpoint {
                id: MQTT_ENDPOINT.to_string(),
                url: String::new(),
                events: Vec::new(),
                sessions: None,
                enabled: false,
                description: Some("MQTT broker ([mqtt] in the configuration)".into()),
                secret: String::new(),
                previous_secret: None,
                previous_until: None,
                disabled_reason: None,
                created_at: now,
                updated_at: now,
            });
            if ep.url != url || ep.events != events {
                ep.url = url.to_string();
                ep.events = events.to_vec();
                ep.updated_at = now;
            }
            if existing.as_ref() != Some(&ep) {
                put_endpoint(txn, &ep)?;
            }
            set_enabled(txn, MQTT_ENDPOINT, true, None, now)
        }
    }
}

pub fn new_endpoint_id() -> String {
    format!("whk_{}", next_ulid())
}

pub fn insert_endpoint(txn: &WriteTransaction, ep: &Endpoint) -> Result<()> {
    put_endpoint(txn, ep)
}

pub fn list_endpoints(txn: &ReadTransaction) -> Result<Vec<Endpoint>> {
    let t = txn.open_table(ENDPOINT)?;
    let mut out = Vec::new();
    for row in t.iter()? {
        out.push(decode_endpoint(row?.1.value())?);
    }
    Ok(out)
}

pub fn get_endpoint(txn: &ReadTransaction, id: &str) -> Result<Option<Endpoint>> {
    let t = txn.open_table(ENDPOINT)?;
    t.get(id)?.map(|v| decode_endpoint(v.value())).transpose()
}

/// What `PATCH` may change.
#[derive(Debug, Clone, Default)]
pub struct EndpointPatch {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    /// `Some(None)` clears the session filter.
    pub sessions: Option<Option<Vec<String>>>,
    pub enabled: Option<bool>,
    pub description: Option<Option<String>>,
}

/// Change an endpoint. Disabling it takes its pending deliveries off the schedule (they stay
/// pending); enabling it puts them back, due now.
pub fn update_endpoint(
    txn: &WriteTransaction,
    id: &str,
    patch: EndpointPatch,
    now: i64,
) -> Result<Option<Endpoint>> {
    let Some(mut ep) = endpoint_w(txn, id)? else {
        return Ok(None);
    };
    if let Some(url) = patch.url {
        ep.url = url;
    }
    if let Some(events) = patch.events {
        ep.events = events;
    }
    if let Some(sessions) = patch.sessions {
        ep.sessions = sessions;
    }
    if let Some(description) = patch.description {
        ep.description = description;
    }
    ep.updated_at = now;
    put_endpoint(txn, &ep)?;
    if let Some(enabled) = patch.enabled {
        set_enabled(txn, id, enabled, None, now)?;
        ep = endpoint_w(txn, id)?.ok_or_else(|| corrupt("wh_endpoint", "vanished"))?;
    }
    Ok(Some(ep))
}

/// Enable or disable an endpoint (with a reason when wagate does it), moving its pending
/// deliveries off or back onto the schedule.
pub fn set_enabled(
    txn: &WriteTransaction,
    id: &str,
    enabled: bool,
    reason: Option<String>,
    now: i64,
) -> Result<()> {
    let Some(mut ep) = endpoint_w(txn, id)? else {
        return Ok(());
    };
    let was = ep.enabled;
    ep.enabled = enabled;
    ep.disabled_reason = if enabled { None } else { reason };
    ep.updated_at = now;
    put_endpoint(txn, &ep)?;
    if was == enabled {
        return Ok(());
    }
    for mut d in deliveries_of_w(txn, id)? {
        if d.status != DeliveryStatus::Pending {
            continue;
        }
        if enabled {
            d.next_at = Some(now);
            schedule(txn, &d)?;
        } else {
            unschedule(txn, &d)?;
            d.next_at = None;
        }
        put_delivery(txn, &d)?;
    }
    Ok(())
}

/// Start a secret rotation: `secret` signs from now on, the old one as well until `until`.
pub fn rotate_secret(
    txn: &WriteTransaction,
    id: &str,
    secret: String,
    until: i64,
    now: i64,
) -> Result<Option<Endpoint>> {
    let Some(mut ep) = endpoint_w(txn, id)? else {
        return Ok(None);
    };
    ep.previous_secret = Some(std::mem::replace(&mut ep.secret, secret));
    ep.previous_until = Some(until);
    ep.updated_at = now;
    put_endpoint(txn, &ep)?;
    Ok(Some(ep))
}

/// Remove an endpoint; its pending deliveries end as `failed` ("endpoint deleted"), its log
/// stays until the retention removes it.
pub fn delete_endpoint(txn: &WriteTransaction, id: &str, now: i64) -> Result<bool> {
    if txn.open_table(ENDPOINT)?.remove(id)?.is_none() {
        return Ok(false);
    }
    for mut d in deliveries_of_w(txn, id)? {
        if d.status == DeliveryStatus::Pending {
            unschedule(txn, &d)?;
            d.status = DeliveryStatus::Failed;
            d.next_at = None;
            d.finished_at = Some(now);
            d.last_error = Some("endpoint deleted".into());
            put_delivery(txn, &d)?;
            add_failed(txn, &d.session, 1)?;
        }
    }
    Ok(true)
}

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

/// Write `event` to the outbox: give it the session's next `seq`, keep its body, and make one
/// delivery per enabled endpoint that takes it. A fresh event id (`evt_` + ULID) is given when
/// the event has none. Returns the event as written, or `None` when an event with its id is
/// already there (an inbound message handed over twice: nothing is written again).
pub fn record(txn: &WriteTransaction, mut event: Event) -> Result<Option<Event>> {
    if event.id.is_empty() {
        event.id = format!("evt_{}", next_ulid());
    } else if txn.open_table(EVENT)?.get(event.id.as_str())?.is_some() {
        return Ok(None);
    }
    if event.session.is_empty() {
        event.seq = 0;
    } else {
        let mut seq = txn.open_table(SEQ)?;
        let next = seq
            .get(event.session.as_str())?
            .map(|v| v.value())
            .unwrap_or(0)
            + 1;
        seq.insert(event.session.as_str(), next)?;
        event.seq = next;
    }
    put_event(txn, &mut event)?;
    let kind = event.type_name();
    let mut due = None;
    for ep in endpoints_w(txn)? {
        if ep.enabled && ep.takes(kind, &event.session) {
            let at = match due {
                Some(at) => at,
                None => *due.insert(event_due(txn, &event)?),
            };
            new_delivery(txn, &event, &ep.id, at)?;
        }
    }
    Ok(Some(event))
}

/// A `webhook.test` event for one endpoint, delivered to it alone (even when disabled: a
/// test is how a user checks a fixed receiver before enabling it again).
pub fn record_test(
    txn: &WriteTransaction,
    endpoint: &str,
    event: Event,
) -> Result<Option<(Event, Delivery)>> {
    if endpoint_w(txn, endpoint)?.is_none() {
        return Ok(None);
    }
    let mut event = event;
    if event.id.is_empty() {
        event.id = format!("evt_{}", next_ulid());
    }
    event.seq = 0;
    put_event(txn, &mut event)?;
    let at = event_due(txn, &event)?;
    let d = new_delivery(txn, &event, endpoint, at)?;
    Ok(Some((event, d)))
}

/// When an event's first attempts are due: its time, but never before the first attempts of
/// events written earlier. The forwarder takes deliveries in (due, id) order, so first
/// attempts go out in the order events were written (the order of `seq`) even when an event
/// was stamped before a later-written one (an inbound message stamped before its media was
/// fetched). A high-water mark ahead of the system clock by more than a minute (the clock
/// was stepped back) is not followed: deliveries must not wait for the clock to catch up.
fn event_due(txn: &WriteTransaction, event: &Event) -> Result<i64> {
    const KEY: &str = "first_due";
    let mut t = txn.open_table(COUNT)?;
    let mark = t.get(KEY)?.map(|v| v.value()).unwrap_or(0);
    let mark = i64::try_from(mark).unwrap_or(0);
    let now = crate::events::now_ms();
    let due = if mark > now + 60_000 {
        event.timestamp
    } else {
        event.timestamp.max(mark)
    };
    t.insert(KEY, u64::try_from(due.max(0)).unwrap_or(0))?;
    Ok(due)
}

fn put_event(txn: &WriteTransaction, event: &mut Event) -> Result<()> {
    let body = to_json(event)?;
    let old = txn
        .open_table(EVENT)?
        .insert(event.id.as_str(), body.as_slice())?
        .map_or(0, |v| v.value().len());
    add_bytes(txn, body.len(), old)?;
    txn.open_table(EVENT_TIME)?
        .insert((event.timestamp.max(0) as u64, event.id.as_str()), ())?;
    event.pos = log_event(txn, &event.id)?;
    Ok(())
}

/// Give an event the next log position (or tell the one it has).
fn log_event(txn: &WriteTransaction, id: &str) -> Result<u64> {
    let mut positions = txn.open_table(EVENT_POS)?;
    if let Some(pos) = positions.get(id)? {
        return Ok(pos.value());
    }
    let pos = {
        let mut count = txn.open_table(COUNT)?;
        let next = count.get(LOG_POS)?.map(|v| v.value()).unwrap_or(0) + 1;
        count.insert(LOG_POS, next)?;
        next
    };
    positions.insert(id, pos)?;
    txn.open_table(EVENT_LOG)?.insert(pos, id)?;
    Ok(pos)
}

/// The `wh_count` keys of the last log position given and the highest one pruned.
const LOG_POS: &str = "log_pos";
const PRUNED_POS: &str = "pruned_pos";

/// Where the event log stands: the last position written and the highest one the retention
/// removed (0 when none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogMark {
    pub last: u64,
    pub pruned: u64,
}

pub fn log_mark(txn: &ReadTransaction) -> Result<LogMark> {
    let t = txn.open_table(COUNT)?;
    let get = |k: &str| -> Result<u64> { Ok(t.get(k)?.map(|v| v.value()).unwrap_or(0)) };
    Ok(LogMark {
        last: get(LOG_POS)?,
        pruned: get(PRUNED_POS)?,
    })
}

/// An event's position in the log, while it is kept.
pub fn log_position(txn: &ReadTransaction, id: &str) -> Result<Option<u64>> {
    Ok(txn.open_table(EVENT_POS)?.get(id)?.map(|v| v.value()))
}

/// Up to `limit` events written after log position `after`, in the order written, each with
/// its position.
pub fn events_after(txn: &ReadTransaction, after: u64, limit: usize) -> Result<Vec<Event>> {
    let log = txn.open_table(EVENT_LOG)?;
    let bodies = txn.open_table(EVENT)?;
    let mut out = Vec::new();
    for row in log.range(after.saturating_add(1)..)? {
        if out.len() >= limit {
            break;
        }
        let (pos, id) = row?;
        let Some(body) = bodies.get(id.value())? else {
            continue;
        };
        let mut event: Event =
            serde_json::from_slice(body.value()).map_err(|e| corrupt("wh_event", e))?;
        event.pos = pos.value();
        out.push(event);
    }
    Ok(out)
}

/// The body of an event, exactly as it is sent.
pub fn event_body(txn: &ReadTransaction, id: &str) -> Result<Option<Vec<u8>>> {
    let t = txn.open_table(EVENT)?;
    Ok(t.get(id)?.map(|v| v.value().to_vec()))
}

/// Whether an event with this id is in the outbox.
pub fn has_event(txn: &ReadTransaction, id: &str) -> Result<bool> {
    Ok(txn.open_table(EVENT)?.get(id)?.is_some())
}

/// The last `seq` a session's events got.
pub fn last_seq(txn: &ReadTransaction, session: &str) -> Result<u64> {
    Ok(txn
        .open_table(SEQ)?
        .get(session)?
        .map(|v| v.value())
        .unwrap_or(0))
}

// ---------------------------------------------------------------------------------------------
// Deliveries
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its first attempt or a retry (or for its endpoint to be enabled again).
    Pending,
    Delivered,
    /// Every attempt of the schedule failed, the receiver answered 410, or the endpoint was
    /// deleted; `POST /api/deliveries/{id}/redeliver` tries again.
    Failed,
    /// Dropped unsent because it no longer meant anything (a `session.qr` whose code expired).
    Expired,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Expired => "expired",
        }
    }
}

impl std::str::FromStr for DeliveryStatus {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "pending" => Ok(DeliveryStatus::Pending),
            "delivered" => Ok(DeliveryStatus::Delivered),
            "failed" => Ok(DeliveryStatus::Failed),
            "expired" => Ok(DeliveryStatus::Expired),
            other => Err(format!(
                "unknown status '{other}'; one of pending, delivered, failed, expired"
            )),
        }
    }
}

/// One try at posting a delivery.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AttemptRecord {
    /// Unix milliseconds when the request started.
    pub at: i64,
    /// The receiver's status code, if it answered.
    #[serde(default)]
    pub status_code: Option<u16>,
    pub latency_ms: u64,
    /// The first 1 KiB of the answer's body (lossy UTF-8).
    #[serde(default)]
    pub response: Option<String>,
    /// Why it failed, when it did (no answer, timeout, a non-2xx status).
    #[serde(default)]
    pub error: Option<String>,
}

/// One event on its way to one endpoint.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Delivery {
    /// `dlv_` + ULID: the `X-Wagate-Delivery-Id` and `webhook-id` of every attempt.
    pub id: String,
    pub event_id: String,
    pub event_type: String,
    pub session: String,
    pub endpoint: String,
    pub status: DeliveryStatus,
    pub created_at: i64,
    /// When it is due next; `None` when not scheduled.
    #[serde(default)]
    pub next_at: Option<i64>,
    /// Failed attempts since it was (re)scheduled: the place in the retry schedule.
    #[serde(default)]
    pub tries: u32,
    /// Every attempt, oldest first (the last [`MAX_ATTEMPTS_KEPT`]).
    #[serde(default)]
    pub attempts: Vec<AttemptRecord>,
    #[serde(default)]
    pub attempt_count: u32,
    #[serde(default)]
    pub last_error: Option<String>,
    #[serde(default)]
    pub finished_at: Option<i64>,
}

fn decode_delivery(bytes: &[u8]) -> Result<Delivery> {
    serde_json::from_slice(bytes).map_err(|e| corrupt("wh_delivery", e))
}

fn put_delivery(txn: &WriteTransaction, d: &Delivery) -> Result<()> {
    let value = to_json(d)?;
    let old = txn
        .open_table(DELIVERY)?
        .insert(d.id.as_str(), value.as_slice())?
        .map_or(0, |v| v.value().len());
    add_bytes(txn, value.len(), old)
}

fn delivery_w(txn: &WriteTransaction, id: &str) -> Result<Option<Delivery>> {
    let t = txn.open_table(DELIVERY)?;
    t.get(id)?.map(|v| decode_delivery(v.value())).transpose()
}

fn due_key(d: &Delivery, at: i64) -> (&str, u64, &str) {
    (d.endpoint.as_str(), at.max(0) as u64, d.id.as_str())
}

fn schedule(txn: &WriteTransaction, d: &Delivery) -> Result<()> {
    if let Some(at) = d.next_at {
        txn.open_table(DUE)?.insert(due_key(d, at), ())?;
    }
    Ok(())
}

fn unschedule(txn: &WriteTransaction, d: &Delivery) -> Result<()> {
    if let Some(at) = d.next_at {
        txn.open_table(DUE)?.remove(due_key(d, at))?;
    }
    Ok(())
}

fn bump(txn: &WriteTransaction, key: &str, delta: i64) -> Result<()> {
    let mut t = txn.open_table(COUNT)?;
    let n = t.get(key)?.map(|v| v.value()).unwrap_or(0);
    t.insert(key, n.saturating_add_signed(delta))?;
    Ok(())
}

fn add_count(txn: &WriteTransaction, delta: i64) -> Result<()> {
    bump(txn, "deliveries", delta)
}

fn add_failed(txn: &WriteTransaction, session: &str, delta: i64) -> Result<()> {
    bump(txn, &format!("failed/{session}"), delta)
}

/// Every session with failed deliveries, and how many.
pub fn failed_counts(txn: &ReadTransaction) -> Result<Vec<(String, u64)>> {
    let t = txn.open_table(COUNT)?;
    let mut out = Vec::new();
    for row in t.range("failed/".."failed0")? {
        let (k, v) = row?;
        if v.value() > 0 {
            out.push((k.value()["failed/".len()..].to_string(), v.value()));
        }
    }
    Ok(out)
}

/// How many of a session's deliveries are `failed` (until redelivered or pruned).
pub fn failed_count(txn: &ReadTransaction, session: &str) -> Result<u64> {
    Ok(txn
        .open_table(COUNT)?
        .get(format!("failed/{session}").as_str())?
        .map(|v| v.value())
        .unwrap_or(0))
}

fn new_delivery(
    txn: &WriteTransaction,
    event: &Event,
    endpoint: &str,
    due: i64,
) -> Result<Delivery> {
    let d = Delivery {
        id: format!("dlv_{}", next_ulid()),
        event_id: event.id.clone(),
        event_type: event.type_name().to_string(),
        session: event.session.clone(),
        endpoint: endpoint.to_string(),
        status: DeliveryStatus::Pending,
        created_at: due,
        next_at: Some(due),
        tries: 0,
        attempts: Vec::new(),
        attempt_count: 0,
        last_error: None,
        finished_at: None,
    };
    put_delivery(txn, &d)?;
    schedule(txn, &d)?;
    txn.open_table(PAIR)?
        .insert((event.id.as_str(), endpoint), d.id.as_str())?;
    add_count(txn, 1)?;
    Ok(d)
}

fn deliveries_of_w(txn: &WriteTransaction, endpoint: &str) -> Result<Vec<Delivery>> {
    let t = txn.open_table(DELIVERY)?;
    let mut out = Vec::new();
    for row in t.iter()? {
        let d = decode_delivery(row?.1.value())?;
        if d.endpoint == endpoint {
            out.push(d);
        }
    }
    Ok(out)
}

/// An endpoint's deliveries due at `now`, earliest first, at most `limit`.
pub fn due(txn: &ReadTransaction, endpoint: &str, now: i64, limit: usize) -> Result<Vec<Delivery>> {
    let due = txn.open_table(DUE)?;
    let all = txn.open_table(DELIVERY)?;
    let mut out = Vec::new();
    for row in due.range((endpoint, 0u64, "")..=(endpoint, now.max(0) as u64, "\u{10FFFF}"))? {
        if out.len() >= limit {
            break;
        }
        let (key, _) = row?;
        let (_, _, id) = key.value();
        let d = all
            .get(id)?
            .map(|v| decode_delivery(v.value()))
            .transpose()?
            .ok_or_else(|| corrupt("wh_due", format!("delivery {id} is missing")))?;
        out.push(d);
    }
    Ok(out)
}

/// When an endpoint's earliest scheduled delivery is due, if any is.
pub fn next_due(txn: &ReadTransaction, endpoint: &str) -> Result<Option<i64>> {
    let due = txn.open_table(DUE)?;
    let mut range = due.range((endpoint, 0u64, "")..=(endpoint, u64::MAX, "\u{10FFFF}"))?;
    Ok(range.next().transpose()?.map(|(k, _)| k.value().1 as i64))
}

pub fn get_delivery(txn: &ReadTransaction, id: &str) -> Result<Option<Delivery>> {
    let t = txn.open_table(DELIVERY)?;
    t.get(id)?.map(|v| decode_delivery(v.value())).transpose()
}

/// How many deliveries are scheduled.
pub fn pending_count(txn: &ReadTransaction) -> Result<u64> {
    Ok(txn.open_table(DUE)?.len()?)
}

/// How many deliveries the log holds.
pub fn delivery_count(txn: &ReadTransaction) -> Result<u64> {
    Ok(txn
        .open_table(COUNT)?
        .get("deliveries")?
        .map(|v| v.value())
        .unwrap_or(0))
}

/// A filter for the delivery log.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub status: Option<DeliveryStatus>,
    pub endpoint: Option<String>,
    pub session: Option<String>,
    /// An event type (`message.received`) or an event id (`evt_...`).
    pub event: Option<String>,
    /// Only deliveries older than this id (paging: pass the last id of the previous page).
    pub before: Option<String>,
    pub limit: usize,
}

/// The delivery log, newest first.
pub fn list_deliveries(txn: &ReadTransaction, f: &DeliveryFilter) -> Result<Vec<Delivery>> {
    let t = txn.open_table(DELIVERY)?;
    let mut out = Vec::new();
    let iter = match &f.before {
        Some(b) => t.range(..b.as_str())?,
        None => t.range::<&str>(..)?,
    };
    for row in iter.rev() {
        if out.len() >= f.limit {
            break;
        }
        let d = decode_delivery(row?.1.value())?;
        let keep = f.status.is_none_or(|s| d.status == s)
            && f.endpoint.as_ref().is_none_or(|e| &d.endpoint == e)
            && f.session.as_ref().is_none_or(|s| &d.session == s)
            && f.event
                .as_ref()
                .is_none_or(|e| &d.event_type == e || &d.event_id == e);
        if keep {
            out.push(d);
        }
    }
    Ok(out)
}

/// How one attempt ended, as the forwarder saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub attempt: AttemptRecord,
    /// The receiver asked for this wait (`Retry-After` on a 429 or 503), in milliseconds.
    pub retry_after_ms: Option<u64>,
}

impl Outcome {
    fn delivered(&self) -> bool {
        self.attempt
            .status_code
            .is_some_and(|c| (200..300).contains(&c))
    }
}

/// Take a delivery off the schedule and log an attempt on it (the caller decides what it
/// now is, and writes it). `None` when it is gone, or, with `pending_only`, when it ended
/// meanwhile (expired by the backlog bound, failed by its endpoint's deletion): an attempt
/// that was under way then must not bring it back.
fn take_attempt(
    txn: &WriteTransaction,
    id: &str,
    attempt: AttemptRecord,
    pending_only: bool,
) -> Result<Option<Delivery>> {
    let Some(mut d) = delivery_w(txn, id)? else {
        return Ok(None);
    };
    if pending_only && d.status != DeliveryStatus::Pending {
        return Ok(None);
    }
    unschedule(txn, &d)?;
    d.next_at = None;
    d.attempt_count += 1;
    d.last_error = attempt.error.clone();
    d.attempts.push(attempt);
    if d.attempts.len() > MAX_ATTEMPTS_KEPT {
        d.attempts.remove(0);
    }
    Ok(Some(d))
}

/// Record an attempt: delivered on a 2xx; on 410 the delivery fails and its endpoint is
/// disabled; otherwise the next try is scheduled from `retries_ms` (the wait after the n-th
/// failed try; a receiver's `Retry-After` on 429/503 replaces it) or, past the schedule, the
/// delivery fails. Returns the delivery as it now is (`None` if it vanished meanwhile).
pub fn attempted(
    txn: &WriteTransaction,
    id: &str,
    outcome: Outcome,
    retries_ms: &[u64],
    now: i64,
) -> Result<Option<Delivery>> {
    let Some(mut d) = take_attempt(txn, id, outcome.attempt.clone(), true)? else {
        return Ok(None);
    };
    let code = outcome.attempt.status_code;
    if outcome.delivered() {
        d.status = DeliveryStatus::Delivered;
        d.finished_at = Some(now);
        d.last_error = None;
    } else if code == Some(410) {
        d.status = DeliveryStatus::Failed;
        d.finished_at = Some(now);
        add_failed(txn, &d.session, 1)?;
        set_enabled(
            txn,
            &d.endpoint,
            false,
            Some("the receiver answered 410 Gone".into()),
            now,
        )?;
    } else {
        let wait = match (code, outcome.retry_after_ms) {
            (Some(429 | 503), Some(ms)) => Some(ms.min(MAX_RETRY_AFTER_MS)),
            _ => retries_ms.get(d.tries as usize).copied(),
        };
        d.tries += 1;
        match wait {
            Some(ms) if (d.tries as usize) <= retries_ms.len() => {
                d.status = DeliveryStatus::Pending;
                d.next_at = Some(now + ms as i64);
            }
            _ => {
                d.status = DeliveryStatus::Failed;
                d.finished_at = Some(now);
                add_failed(txn, &d.session, 1)?;
            }
        }
    }
    schedule(txn, &d)?;
    put_delivery(txn, &d)?;
    Ok(Some(d))
}

/// Record a delivery the MQTT broker acknowledged (PUBACK with success): delivered.
pub fn acknowledged(
    txn: &WriteTransaction,
    id: &str,
    attempt: AttemptRecord,
    now: i64,
) -> Result<Option<Delivery>> {
    // The broker has it, whatever happened to the delivery meanwhile.
    let Some(mut d) = take_attempt(txn, id, attempt, false)? else {
        return Ok(None);
    };
    d.status = DeliveryStatus::Delivered;
    d.finished_at = Some(now);
    d.last_error = None;
    put_delivery(txn, &d)?;
    Ok(Some(d))
}

/// How many `message.sent` and `message.failed` events each session has had since `since`
/// (unix ms): `(session, sent, failed)`. Reads the event log by time.
pub fn sent_failed_since(txn: &ReadTransaction, since: i64) -> Result<Vec<(String, u64, u64)>> {
    #[derive(Deserialize)]
    struct Head {
        session: String,
        #[serde(rename = "type")]
        kind: String,
    }
    let times = txn.open_table(EVENT_TIME)?;
    let bodies = txn.open_table(EVENT)?;
    let mut counts: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    for row in times.range((since.max(0) as u64, "")..)? {
        let (key, _) = row?;
        let (_, id) = key.value();
        let Some(body) = bodies.get(id)? else {
            continue;
        };
        let Ok(head) = serde_json::from_slice::<Head>(body.value()) else {
            continue;
        };
        let c = counts.entry(head.session).or_default();
        match head.kind.as_str() {
            "message.sent" => c.0 += 1,
            "message.failed" => c.1 += 1,
            _ => {}
        }
    }
    Ok(counts.into_iter().map(|(s, (a, b))| (s, a, b)).collect())
}

/// Bound an endpoint's backlog: its scheduled deliveries made before `older_than`, and the
/// oldest past `max` of them or past `max_bytes` of their events, end `expired` with `why`
/// (the retention then removes them and their events). For the MQTT endpoint, whose
/// deliveries wait unattempted while the broker is away, pinning their events. Returns how
/// many ended.
pub fn expire_backlog(
    txn: &WriteTransaction,
    endpoint: &str,
    older_than: i64,
    max: u64,
    max_bytes: u64,
    why: &str,
    now: i64,
) -> Result<u64> {
    let mut waiting = Vec::new();
    {
        let due = txn.open_table(DUE)?;
        let events = txn.open_table(EVENT)?;
        for row in due.range((endpoint, 0u64, "")..=(endpoint, u64::MAX, "\u{10FFFF}"))? {
            let (key, _) = row?;
            let id = key.value().2.to_string();
            if let Some(d) = delivery_w(txn, &id)? {
                let bytes = events
                    .get(d.event_id.as_str())?
                    .map_or(0, |v| v.value().len() as u64);
                waiting.push((d.created_at, id, bytes));
            }
        }
    }
    // Oldest first by creation (a refused one waits later in the schedule than its age).
    waiting.sort();
    let mut count = waiting.len() as u64;
    let mut bytes: u64 = waiting.iter().map(|w| w.2).sum();
    let mut ended = 0;
    for (created_at, id, size) in waiting {
        if count > max || bytes > max_bytes || created_at < older_than {
            expire(txn, &id, why, now)?;
            ended += 1;
            count -= 1;
            bytes -= size;
        }
    }
    Ok(ended)
}

/// How many of an endpoint's deliveries are scheduled (its backlog).
pub fn scheduled_count(txn: &ReadTransaction, endpoint: &str) -> Result<u64> {
    let due = txn.open_table(DUE)?;
    let mut n = 0;
    for row in due.range((endpoint, 0u64, "")..=(endpoint, u64::MAX, "\u{10FFFF}"))? {
        row?;
        n += 1;
    }
    Ok(n)
}

/// Drop a delivery unsent (`expired`), with the reason in its log.
pub fn expire(txn: &WriteTransaction, id: &str, why: &str, now: i64) -> Result<Option<Delivery>> {
    let Some(mut d) = delivery_w(txn, id)? else {
        return Ok(None);
    };
    unschedule(txn, &d)?;
    d.next_at = None;
    d.status = DeliveryStatus::Expired;
    d.last_error = Some(why.to_string());
    d.finished_at = Some(now);
    put_delivery(txn, &d)?;
    Ok(Some(d))
}

/// Send a delivery again from the start of the schedule, with the same id.
pub fn redeliver(txn: &WriteTransaction, id: &str, now: i64) -> Result<Option<Delivery>> {
    let Some(mut d) = delivery_w(txn, id)? else {
        return Ok(None);
    };
    if txn.open_table(EVENT)?.get(d.event_id.as_str())?.is_none() {
        return Err(StoreError::Invalid(format!(
            "the event of delivery {id} was removed by the retention"
        )));
    }
    unschedule(txn, &d)?;
    if d.status == DeliveryStatus::Failed {
        add_failed(txn, &d.session, -1)?;
    }
    d.status = DeliveryStatus::Pending;
    d.tries = 0;
    d.finished_at = None;
    let enabled = endpoint_w(txn, &d.endpoint)?.is_some_and(|e| e.enabled);
    d.next_at = enabled.then_some(now);
    schedule(txn, &d)?;
    put_delivery(txn, &d)?;
    Ok(Some(d))
}

/// Send everything since `since` (unix ms) to an endpoint again: every stored event its
/// filters take, through the delivery it had (same id) or a new one. Returns how many.
pub fn replay(txn: &WriteTransaction, endpoint: &str, since: i64, now: i64) -> Result<Option<u64>> {
    let Some(ep) = endpoint_w(txn, endpoint)? else {
        return Ok(None);
    };
    let ids: Vec<String> = {
        let t = txn.open_table(EVENT_TIME)?;
        let mut v = Vec::new();
        for row in t.range((since.max(0) as u64, "")..)? {
            v.push(row?.0.value().1.to_string());
        }
        v
    };
    let mut n = 0;
    for id in ids {
        let event: Event = {
            let t = txn.open_table(EVENT)?;
            let Some(v) = t.get(id.as_str())? else {
                continue;
            };
            serde_json::from_slice(v.value()).map_err(|e| corrupt("wh_event", e))?
        };
        if !ep.takes(event.type_name(), &event.session) {
            continue;
        }
        let existing = txn
            .open_table(PAIR)?
            .get((id.as_str(), endpoint))?
            .map(|v| v.value().to_string());
        match existing {
            Some(dlv) => {
                let pending =
                    delivery_w(txn, &dlv)?.is_some_and(|d| d.status == DeliveryStatus::Pending);
                if !pending {
                    redeliver(txn, &dlv, now)?;
                }
            }
            None => {
                let d = new_delivery(txn, &event, endpoint, now)?;
                if !ep.enabled {
                    unschedule(txn, &d)?;
                    let mut d = d;
                    d.next_at = None;
                    put_delivery(txn, &d)?;
                }
            }
        }
        n += 1;
    }
    Ok(Some(n))
}

/// The delivery log's retention bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Finished deliveries and events stamped before this (unix ms) go.
    pub older_than: i64,
    pub max_deliveries: u64,
    pub max_events: u64,
    /// The bytes events and deliveries may hold together ([`log_bytes`]).
    pub max_bytes: u64,
}

/// Remove what the retention lets go: finished deliveries older than `older_than`, then the
/// oldest finished ones while more than `max_deliveries` remain; events older than
/// `older_than`, then the oldest while more than `max_events` remain, skipping any event a
/// pending delivery still needs; then, while the log holds more than `max_bytes`, the oldest
/// of either (inline media make single events large). Returns (deliveries, events) removed.
pub fn prune(txn: &WriteTransaction, b: Bounds) -> Result<(u64, u64)> {
    let count = {
        let t = txn.open_table(COUNT)?;
        t.get("deliveries")?.map(|v| v.value()).unwrap_or(0)
    };
    let mut excess = count.saturating_sub(b.max_deliveries);
    let doomed = finished_deliveries(txn, |d, _| {
        let old = d.created_at < b.older_than;
        let go = old || excess > 0;
        excess = excess.saturating_sub(u64::from(go));
        go
    })?;
    let mut removed = Removed::default();
    for (d, _) in &doomed {
        removed.delivery(txn, d)?;
    }

    // Events, oldest first (the time index is ordered by time): the old ones, and then as
    // many more as the count is over. One a pending delivery needs is kept and not counted.
    let mut excess = txn.open_table(EVENT)?.len()?.saturating_sub(b.max_events);
    let doomed = unneeded_events(txn, |ts, _| {
        let go = (ts as i64) < b.older_than || excess > 0;
        excess = excess.saturating_sub(u64::from(go));
        go
    })?;
    for (ts, id, _) in &doomed {
        removed.event(txn, *ts, id)?;
    }

    // Bytes: the oldest of the finished deliveries and the unneeded events, whichever is
    // older, until the log fits.
    let bytes = {
        let t = txn.open_table(COUNT)?;
        t.get(LOG_BYTES)?.map(|v| v.value()).unwrap_or(0)
    }
    .saturating_sub(removed.bytes as u64);
    if bytes > b.max_bytes {
        let over = bytes - b.max_bytes;
        let mut taken = 0u64;
        let dls = finished_deliveries(txn, |_, size| {
            let go = taken < over;
            taken += size;
            go
        })?;
        let mut taken = 0u64;
        let evs = unneeded_events(txn, |_, size| {
            let go = taken < over;
            taken += size;
            go
        })?;
        let (mut dls, mut evs) = (dls.into_iter().peekable(), evs.into_iter().peekable());
        let mut freed = 0u64;
        while freed < over {
            let delivery_first = match (dls.peek(), evs.peek()) {
                (Some((d, _)), Some((ts, _, _))) => d.created_at <= *ts as i64,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            if delivery_first {
                if let Some((d, size)) = dls.next() {
                    removed.delivery(txn, &d)?;
                    freed += size;
                }
            } else if let Some((ts, id, size)) = evs.next() {
                removed.event(txn, ts, &id)?;
                freed += size;
            }
        }
    }
    removed.settle(txn)
}

/// Finished deliveries, oldest first, with their stored size, while `take(delivery, size)`
/// says so (it is asked once per finished delivery until it answers false).
fn finished_deliveries(
    txn: &WriteTransaction,
    mut take: impl FnMut(&Delivery, u64) -> bool,
) -> Result<Vec<(Delivery, u64)>> {
    let t = txn.open_table(DELIVERY)?;
    let mut out = Vec::new();
    // Ids are in creation order: oldest first.
    for row in t.iter()? {
        let (_, v) = row?;
        let d = decode_delivery(v.value())?;
        if d.status == DeliveryStatus::Pending {
            continue;
        }
        let size = v.value().len() as u64;
        if !take(&d, size) {
            break;
        }
        out.push((d, size));
    }
    Ok(out)
}

/// Events no pending delivery needs, oldest first, as (time, id, stored size), while
/// `take(time, size)` says so.
fn unneeded_events(
    txn: &WriteTransaction,
    mut take: impl FnMut(u64, u64) -> bool,
) -> Result<Vec<(u64, String, u64)>> {
    let t = txn.open_table(EVENT_TIME)?;
    let bodies = txn.open_table(EVENT)?;
    let mut out = Vec::new();
    for row in t.iter()? {
        let (k, _) = row?;
        let (ts, id) = k.value();
        if event_needed(txn, id)? {
            continue;
        }
        let size = bodies.get(id)?.map_or(0, |v| v.value().len() as u64);
        if !take(ts, size) {
            break;
        }
        out.push((ts, id.to_string(), size));
    }
    Ok(out)
}

/// Remove a delivery and its pair row; the bytes it held. The caller settles the delivery
/// count and the byte count ([`Removed::settle`]).
fn remove_delivery(txn: &WriteTransaction, d: &Delivery) -> Result<usize> {
    if d.status == DeliveryStatus::Failed {
        add_failed(txn, &d.session, -1)?;
    }
    let old = txn
        .open_table(DELIVERY)?
        .remove(d.id.as_str())?
        .map_or(0, |v| v.value().len());
    txn.open_table(PAIR)?
        .remove((d.event_id.as_str(), d.endpoint.as_str()))?;
    Ok(old)
}

/// Remove an event, its time index row and its pair rows; the bytes it held.
fn remove_event(txn: &WriteTransaction, ts: u64, id: &str) -> Result<usize> {
    let old = txn
        .open_table(EVENT)?
        .remove(id)?
        .map_or(0, |v| v.value().len());
    txn.open_table(EVENT_TIME)?.remove((ts, id))?;
    if let Some(pos) = txn.open_table(EVENT_POS)?.remove(id)?.map(|v| v.value()) {
        txn.open_table(EVENT_LOG)?.remove(pos)?;
        let mut count = txn.open_table(COUNT)?;
        let mark = count.get(PRUNED_POS)?.map(|v| v.value()).unwrap_or(0);
        if pos > mark {
            count.insert(PRUNED_POS, pos)?;
        }
    }
    txn.open_table(PAIR)?
        .retain_in((id, "")..=(id, "\u{10FFFF}"), |_, _| false)?;
    Ok(old)
}

/// What a prune removed, counted as it goes and written to the counters once.
#[derive(Default)]
struct Removed {
    deliveries: u64,
    events: u64,
    bytes: usize,
}

impl Removed {
    fn delivery(&mut self, txn: &WriteTransaction, d: &Delivery) -> Result<()> {
        self.bytes += remove_delivery(txn, d)?;
        self.deliveries += 1;
        Ok(())
    }

    fn event(&mut self, txn: &WriteTransaction, ts: u64, id: &str) -> Result<()> {
        self.bytes += remove_event(txn, ts, id)?;
        self.events += 1;
        Ok(())
    }

    /// Write the counts down: (deliveries, events) removed.
    fn settle(self, txn: &WriteTransaction) -> Result<(u64, u64)> {
        add_count(txn, -(self.deliveries as i64))?;
        add_bytes(txn, 0, self.bytes)?;
        Ok((self.deliveries, self.events))
    }
}

/// Whether a pending delivery still needs the event.
fn event_needed(txn: &WriteTransaction, id: &str) -> Result<bool> {
    let pair = txn.open_table(PAIR)?;
    for row in pair.range((id, "")..=(id, "\u{10FFFF}"))? {
        let (_, dlv) = row?;
        if delivery_w(txn, dlv.value())?.is_some_and(|d| d.status == DeliveryStatus::Pending) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The `message.received` id for an inbound message: `evt_` and `msg_` + a ULID whose time
/// is the message's and whose random part is a hash of (session, chat, sender, WhatsApp id),
/// so the same message handed over twice gets the same ids.
pub fn inbound_ulid(session: &str, chat: &str, sender: &str, wa_id: &str, sent_at: i64) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for part in [session, chat, sender, wa_id] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes[6..].copy_from_slice(&digest[..10]);
    let random = u128::from_be_bytes(bytes);
    ulid::Ulid::from_parts(sent_at.max(0) as u64, random).to_string()
}

/// Whether an event is one whose meaning expires (a QR code nobody can scan any more).
pub fn expired_at(event: &Event, now: i64) -> Option<i64> {
    match &event.kind {
        EventKind::SessionQr { expires_at, .. } if *expires_at <= now => Some(*expires_at),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
