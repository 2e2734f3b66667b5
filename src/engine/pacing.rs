//! Anti-ban pacing: the policy the send worker ([`super::sender`]) asks before every send.
//!
//! Everything here is pure: functions of the [`Settings`], what was sent when, and a `now`
//! the caller passes in (unix milliseconds), so tests drive time by hand and the worker
//! drives it with the system clock. Randomness comes from a caller's RNG for the same reason.
//!
//! The policy, per session:
//! - a random delay, uniform in `min_delay_ms..=max_delay_ms`, before every send;
//! - a typing indicator before text (`composing`, a wait of the text's length at
//!   `typing_cps` characters per second capped at `typing_max_ms`, then `paused`), and
//!   `recording` before voice notes (the note's length, same cap);
//! - sliding-window rate limits: at most `per_minute` sends in any 60 s, `per_hour` in any
//!   hour, `per_day` in any 24 h. A send over a limit waits until the oldest send in that
//!   window leaves it: with `per_minute = 3` and three sends at `t`, the fourth may go at
//!   exactly `t + 60 000`, not a millisecond before;
//! - warm-up: for the first days after a number is paired, the daily limit is the smaller of
//!   `per_day` and the curve's entry for that day (`warmup[0]` on day 1, ...);
//! - the duplicate-content guard: the same content to more than `duplicate_recipients`
//!   distinct recipients within `duplicate_window_s` is held (or refused, or let through).

use rand::Rng;
use serde::{Deserialize, Serialize};

pub use super::presence::PresencePolicy;

pub const MINUTE_MS: i64 = 60_000;
pub const HOUR_MS: i64 = 60 * MINUTE_MS;
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// The longest delay or typing wait accepted (an hour): beyond it a setting is a mistake.
pub const MAX_WAIT_MS: u64 = 3_600_000;
/// The longest warm-up curve, in days.
pub const MAX_WARMUP_DAYS: usize = 90;
/// The longest pulse period (a day).
pub const MAX_PULSE_EVERY_S: u64 = 24 * 3600;
/// The longest a number check's answer is kept (30 days).
pub const MAX_CHECK_CACHE_S: u64 = 30 * 24 * 3600;
/// The longest duplicate window (a week).
pub const MAX_DUPLICATE_WINDOW_S: u64 = 7 * 24 * 3600;

/// What the duplicate-content guard does with a message over its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DuplicateAction {
    /// Accept it with status `held`: it waits in the queue until released or cancelled.
    Hold,
    /// Refuse it (409 `duplicate_content`).
    Reject,
    /// No guard.
    Off,
}

/// The pacing settings of a session: the platform defaults (`[pacing]` in the config) with
/// the session's overrides applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The shortest random delay before a send.
    pub min_delay_ms: u64,
    /// The longest random delay before a send.
    pub max_delay_ms: u64,
    /// Show `composing` before text and `recording` before voice notes.
    pub typing: bool,
    /// Typing speed: the wait before a text is its length at this many characters a second.
    pub typing_cps: u32,
    /// The longest typing (or recording) wait.
    pub typing_max_ms: u64,
    /// Sends in any 60 seconds.
    pub per_minute: u32,
    /// Sends in any hour.
    pub per_hour: u32,
    /// Sends in any 24 hours.
    pub per_day: u32,
    /// Daily limits for the first days after pairing (day 1 first); empty: no warm-up.
    pub warmup: Vec<u32>,
    /// The guard: the same content to more than this many distinct recipients ...
    pub duplicate_recipients: u32,
    /// ... within this many seconds ...
    pub duplicate_window_s: u64,
    /// ... is held, rejected, or (off) let through.
    pub duplicate_action: DuplicateAction,
    /// Before a send to a chat with unread received messages, mark them read (after the
    /// random delay, then a pause of half a fresh one before typing starts).
    pub auto_read: bool,
    /// What the device tells WhatsApp about being online between sends
    /// ([`super::presence`]): `unavailable` keeps the owner's phone notified.
    pub presence: PresencePolicy,
    /// With `presence = "pulse"`: a pulse every this many seconds from the connect ...
    pub pulse_every_s: u64,
    /// ... online for this many seconds.
    pub pulse_for_s: u64,
    /// Delivery receipts go out active (the sender sees "delivered") whatever the
    /// presence; off, they are `inactive` while the device is not `available`.
    pub active_receipts: bool,
    /// Number checks ([`super::contacts`]): numbers asked of WhatsApp in any 60 s ...
    pub check_per_minute: u32,
    /// ... in any hour ...
    pub check_per_hour: u32,
    /// ... in any 24 h.
    pub check_per_day: u32,
    /// How long a number's answer is kept and given again without asking (0: never).
    pub check_cache_s: u64,
    /// Reject incoming calls (after a short paced pause; [`super::calls`]).
    pub reject_calls: bool,
    /// With `reject_calls`: a text queued to the caller after a rejection (empty: none).
    pub call_reply: String,
}

/// The longest `call_reply`, in characters.
pub const MAX_CALL_REPLY_CHARS: usize = 1024;

impl Default for Settings {
    fn default() -> Self {
        Settings {
            min_delay_ms: 2_000,
            max_delay_ms: 6_000,
            typing: true,
            typing_cps: 8,
            typing_max_ms: 8_000,
            per_minute: 10,
            per_hour: 200,
            per_day: 1_000,
            warmup: vec![40, 80, 150, 300, 500, 700],
            duplicate_recipients: 5,
            duplicate_window_s: 3_600,
            duplicate_action: DuplicateAction::Hold,
            auto_read: false,
            presence: PresencePolicy::Unavailable,
            pulse_every_s: 1_800,
            pulse_for_s: 30,
            active_receipts: true,
            check_per_minute: 10,
            check_per_hour: 60,
            check_per_day: 200,
            check_cache_s: 86_400,
            reject_calls: false,
            call_reply: String::new(),
        }
    }
}

/// A setting that does not hold, with the field named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SettingsError {
    pub field: &'static str,
    pub message: String,
}

fn bad(field: &'static str, message: impl Into<String>) -> SettingsError {
    SettingsError {
        field,
        message: message.into(),
    }
}

impl Settings {
    /// Check the rules serde cannot: the first broken one, with its field.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.max_delay_ms > MAX_WAIT_MS {
            return Err(bad(
                "max_delay_ms",
                format!("{} is above {MAX_WAIT_MS}", self.max_delay_ms),
            ));
        }
        if self.min_delay_ms > self.max_delay_ms {
            return Err(bad(
                "min_delay_ms",
                format!(
                    "{} is above max_delay_ms ({})",
                    self.min_delay_ms, self.max_delay_ms
                ),
            ));
        }
        if self.typing_cps == 0 {
            return Err(bad("typing_cps", "must be at least 1"));
        }
        if self.typing_max_ms > MAX_WAIT_MS {
            return Err(bad(
                "typing_max_ms",
                format!("{} is above {MAX_WAIT_MS}", self.typing_max_ms),
            ));
        }
        for (field, v) in [
            ("per_minute", self.per_minute),
            ("per_hour", self.per_hour),
            ("per_day", self.per_day),
            ("duplicate_recipients", self.duplicate_recipients),
            ("check_per_minute", self.check_per_minute),
            ("check_per_hour", self.check_per_hour),
            ("check_per_day", self.check_per_day),
        ] {
            if v == 0 {
                return Err(bad(field, "must be at least 1"));
            }
        }
        if self.warmup.len() > MAX_WARMUP_DAYS {
            return Err(bad(
                "warmup",
                format!("{} days; at most {MAX_WARMUP_DAYS}", self.warmup.len()),
            ));
        }
        if let Some(day) = self.warmup.iter().position(|&n| n == 0) {
            return Err(bad(
                "warmup",
                format!("day {} is 0; every day's limit must be at least 1", day + 1),
            ));
        }
        if !(1..=MAX_DUPLICATE_WINDOW_S).contains(&self.duplicate_window_s) {
            return Err(bad(
                "duplicate_window_s",
                format!(
                    "{} is out of range 1..={MAX_DUPLICATE_WINDOW_S}",
                    self.duplicate_window_s
                ),
            ));
        }
        if self.call_reply.chars().count() > MAX_CALL_REPLY_CHARS {
            return Err(bad(
                "call_reply",
                format!("at most {MAX_CALL_REPLY_CHARS} characters"),
            ));
        }
        if self.check_cache_s > MAX_CHECK_CACHE_S {
            return Err(bad(
                "check_cache_s",
                format!("{} is above {MAX_CHECK_CACHE_S}", self.check_cache_s),
            ));
        }
        if !(10..=MAX_PULSE_EVERY_S).contains(&self.pulse_every_s) {
            return Err(bad(
                "pulse_every_s",
                format!(
                    "{} is out of range 10..={MAX_PULSE_EVERY_S}",
                    self.pulse_every_s
                ),
            ));
        }
        if self.pulse_for_s == 0 || self.pulse_for_s >= self.pulse_every_s {
            return Err(bad(
                "pulse_for_s",
                format!(
                    "{} must be at least 1 and below pulse_every_s ({})",
                    self.pulse_for_s, self.pulse_every_s
                ),
            ));
        }
        Ok(())
    }

    /// These settings with a session's overrides applied.
    pub fn with(&self, o: &Overrides) -> Settings {
        let mut s = self.clone();
        macro_rules! take {
            ($($f:ident),*) => {$(
                if let Some(v) = &o.$f {
                    s.$f = v.clone();
                }
            )*};
        }
        take!(
            min_delay_ms,
            max_delay_ms,
            typing,
            typing_cps,
            typing_max_ms,
            per_minute,
            per_hour,
            per_day,
            warmup,
            duplicate_recipients,
            duplicate_window_s,
            duplicate_action,
            auto_read,
            presence,
            pulse_every_s,
            pulse_for_s,
            active_receipts,
            check_per_minute,
            check_per_hour,
            check_per_day,
            check_cache_s,
            reject_calls,
            call_reply
        );
        s
    }
}

/// A session's own settings: each field set replaces the platform default; an absent (or
/// null) field follows the default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overrides {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_delay_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_delay_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typing: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typing_cps: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typing_max_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_minute: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_hour: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_day: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup: Option<Vec<u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_recipients: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_window_s: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_action: Option<DuplicateAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_read: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence: Option<PresencePolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pulse_every_s: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pulse_for_s: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_receipts: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_per_minute: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_per_hour: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_per_day: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_cache_s: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reject_calls: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_reply: Option<String>,
}

/// The random delay before one send: uniform in `min_delay_ms..=max_delay_ms`.
pub fn draw_delay(s: &Settings, rng: &mut impl Rng) -> u64 {
    if s.max_delay_ms <= s.min_delay_ms {
        return s.min_delay_ms;
    }
    rng.random_range(s.min_delay_ms..=s.max_delay_ms)
}

/// How long `composing` shows before a text of `chars` characters.
pub fn typing_ms(s: &Settings, chars: usize) -> u64 {
    let cps = u64::from(s.typing_cps.max(1));
    (chars as u64)
        .saturating_mul(1000)
        .div_ceil(cps)
        .min(s.typing_max_ms)
}

/// How long `recording` shows before a voice note of `seconds` (the cap when unknown).
pub fn recording_ms(s: &Settings, seconds: Option<u32>) -> u64 {
    seconds
        .map(|sec| u64::from(sec) * 1000)
        .unwrap_or(s.typing_max_ms)
        .min(s.typing_max_ms)
}

/// Which limit holds a send back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    PerMinute,
    PerHour,
    PerDay,
    /// The day's warm-up limit (lower than `per_day`).
    WarmUp,
}

/// Where a session stands on its warm-up curve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WarmUp {
    /// Day 1 is the first 24 hours after pairing.
    pub day: u32,
    /// The daily limit today.
    pub daily_limit: u32,
    /// Whether the curve still lowers the limit (false once it is past or above `per_day`).
    pub active: bool,
}

/// The day's limit for a number paired at `paired_at` (none known: no warm-up).
pub fn warm_up(s: &Settings, paired_at: Option<i64>, now: i64) -> WarmUp {
    let Some(paired) = paired_at else {
        return WarmUp {
            day: 0,
            daily_limit: s.per_day,
            active: false,
        };
    };
    let index = (now.saturating_sub(paired).max(0) / DAY_MS) as usize;
    let day = u32::try_from(index + 1).unwrap_or(u32::MAX);
    match s.warmup.get(index) {
        Some(&n) if n < s.per_day => WarmUp {
            day,
            daily_limit: n,
            active: true,
        },
        _ => WarmUp {
            day,
            daily_limit: s.per_day,
            active: false,
        },
    }
}

/// When the next send may go as far as the rate limits and warm-up say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// Unix milliseconds; `now` when nothing holds the send back.
    pub at: i64,
    /// The limit that holds it back, if one does.
    pub limit: Option<Limit>,
}

/// The earliest time at or after `now` a send stays within every limit. `sends` are the
/// times of earlier sends, ascending (at least the last 24 hours of them); none is after
/// `now`.
pub fn earliest(s: &Settings, sends: &[i64], paired_at: Option<i64>, now: i64) -> Slot {
    let mut t = now;
    let mut first: Option<Limit> = None;
    // Each round moves `t` forward to where the limit that was broken frees up; a later
    // warm-up day can raise the daily limit, so a few rounds settle it.
    for _ in 0..(MAX_WARMUP_DAYS + 4) {
        let warm = warm_up(s, paired_at, t);
        let day_limit = if warm.active {
            (warm.daily_limit, Limit::WarmUp)
        } else {
            (s.per_day, Limit::PerDay)
        };
        let mut need = t;
        let mut why = None;
        for (window, (limit, kind)) in [
            (MINUTE_MS, (s.per_minute, Limit::PerMinute)),
            (HOUR_MS, (s.per_hour, Limit::PerHour)),
            (DAY_MS, day_limit),
        ] {
            let limit = limit.max(1) as usize;
            // Sends inside the window (t - window, t].
            let start = sends.partition_point(|&x| x <= t - window);
            let inside = &sends[start..];
            if inside.len() >= limit {
                let free = inside[inside.len() - limit] + window;
                if free > need {
                    need = free;
                    why = Some(kind);
                }
            }
        }
        if need == t {
            return Slot {
                at: t,
                limit: first,
            };
        }
        // The next warm-up day may allow more before the window frees up.
        if warm.active
            && let Some(paired) = paired_at
        {
            let next_day = paired + i64::from(warm.day) * DAY_MS;
            if next_day > t && next_day < need {
                need = next_day;
            }
        }
        first = first.or(why);
        t = need;
    }
    Slot {
        at: t,
        limit: first,
    }
}

/// The duplicate guard's answer for a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Duplicate {
    Allow,
    Hold,
    Reject,
}

/// The duplicate guard at `now`: the content `hash` accepted for `to`, against what the
/// session accepted of the same content within the window before `now` (rows exactly at
/// the window's start count). The verdict and the recipients it counted.
pub fn duplicate_at(
    txn: &redb::WriteTransaction,
    session: &str,
    s: &Settings,
    hash: &str,
    to: &str,
    now: i64,
) -> crate::store::Result<(Duplicate, Vec<String>)> {
    let since = now.saturating_sub(duplicate_window_ms(s));
    let recipients = crate::store::pacing::content_recipients(txn, session, hash, since)?;
    let verdict = duplicate(s, recipients.iter().map(String::as_str), to);
    Ok((verdict, recipients))
}

/// Judge a message to `to` whose content already went (within the window) to `recipients`
/// (distinct or not). A recipient who already had it may get it again.
pub fn duplicate<'a>(
    s: &Settings,
    recipients: impl IntoIterator<Item = &'a str>,
    to: &str,
) -> Duplicate {
    if s.duplicate_action == DuplicateAction::Off {
        return Duplicate::Allow;
    }
    let mut seen: Vec<&str> = Vec::new();
    for r in recipients {
        if r == to {
            return Duplicate::Allow;
        }
        if !seen.contains(&r) {
            seen.push(r);
        }
    }
    if seen.len() < s.duplicate_recipients as usize {
        return Duplicate::Allow;
    }
    match s.duplicate_action {
        DuplicateAction::Hold => Duplicate::Hold,
        DuplicateAction::Reject => Duplicate::Reject,
        DuplicateAction::Off => Duplicate::Allow,
    }
}

/// The guard's window in milliseconds.
pub fn duplicate_window_ms(s: &Settings) -> i64 {
    i64::try_from(s.duplicate_window_s.saturating_mul(1000)).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn settings() -> Settings {
        Settings {
            min_delay_ms: 1_000,
            max_delay_ms: 3_000,
            typing: true,
            typing_cps: 10,
            typing_max_ms: 5_000,
            per_minute: 3,
            per_hour: 10,
            per_day: 20,
            warmup: vec![],
            duplicate_recipients: 2,
            duplicate_window_s: 600,
            duplicate_action: DuplicateAction::Hold,
            auto_read: false,
            ..Settings::default()
        }
    }

    #[test]
    fn delays_stay_in_bounds_and_spread() {
        let s = settings();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let draws: Vec<u64> = (0..2000).map(|_| draw_delay(&s, &mut rng)).collect();
        assert!(draws.iter().all(|d| (1_000..=3_000).contains(d)));
        let mut distinct = draws.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert!(distinct.len() > 500, "{} distinct delays", distinct.len());
        // Uniform: each third of the range gets about a third of the draws.
        for (lo, hi) in [(1_000, 1_666), (1_667, 2_333), (2_334, 3_000)] {
            let n = draws.iter().filter(|d| (lo..=hi).contains(*d)).count();
            assert!((550..=780).contains(&n), "{n} draws in {lo}..={hi}");
        }
        // Hits both ends' neighbourhoods: not clamped to the middle.
        assert!(draws.iter().any(|&d| d < 1_050) && draws.iter().any(|&d| d > 2_950));
        let fixed = Settings {
            min_delay_ms: 500,
            max_delay_ms: 500,
            ..settings()
        };
        assert_eq!(draw_delay(&fixed, &mut rng), 500);
    }

    #[test]
    fn typing_is_proportional_to_length_and_capped() {
        let s = settings();
        assert_eq!(typing_ms(&s, 0), 0);
        assert_eq!(typing_ms(&s, 10), 1_000);
        assert_eq!(typing_ms(&s, 20), 2_000);
        assert_eq!(typing_ms(&s, 25), 2_500);
        assert_eq!(typing_ms(&s, 3), 300);
        assert_eq!(typing_ms(&s, 50), 5_000);
        assert_eq!(typing_ms(&s, 10_000), 5_000);
        assert_eq!(recording_ms(&s, Some(2)), 2_000);
        assert_eq!(recording_ms(&s, Some(60)), 5_000);
        assert_eq!(recording_ms(&s, None), 5_000);
    }

    #[test]
    fn limits_hold_exactly_at_the_minute_edge() {
        let s = settings();
        let t0 = 1_000_000_000;
        assert_eq!(earliest(&s, &[], None, t0).at, t0);
        let sends = [t0, t0 + 10, t0 + 20];
        let slot = earliest(&s, &sends, None, t0 + 30);
        assert_eq!(slot.at, t0 + MINUTE_MS);
        assert_eq!(slot.limit, Some(Limit::PerMinute));
        // One millisecond before the edge still waits; at the edge it goes.
        assert_eq!(
            earliest(&s, &sends, None, t0 + MINUTE_MS - 1).at,
            t0 + MINUTE_MS
        );
        assert_eq!(
            earliest(&s, &sends, None, t0 + MINUTE_MS),
            Slot {
                at: t0 + MINUTE_MS,
                limit: None
            }
        );
    }

    #[test]
    fn limits_hold_exactly_at_the_hour_and_day_edges() {
        let s = settings();
        let t0 = 1_000_000_000;
        // Ten sends spaced a minute apart fill the hour.
        let sends: Vec<i64> = (0..10).map(|i| t0 + i * MINUTE_MS).collect();
        let now = t0 + 10 * MINUTE_MS;
        let slot = earliest(&s, &sends, None, now);
        assert_eq!(
            slot,
            Slot {
                at: t0 + HOUR_MS,
                limit: Some(Limit::PerHour)
            }
        );
        assert_eq!(
            earliest(&s, &sends, None, t0 + HOUR_MS - 1).at,
            t0 + HOUR_MS
        );
        assert_eq!(earliest(&s, &sends, None, t0 + HOUR_MS).limit, None);

        // Twenty sends, ten in each of two hours, fill the day.
        let mut day: Vec<i64> = (0..10).map(|i| t0 + i * MINUTE_MS).collect();
        day.extend((0..10).map(|i| t0 + 2 * HOUR_MS + i * MINUTE_MS));
        let slot = earliest(&s, &day, None, t0 + 5 * HOUR_MS);
        assert_eq!(
            slot,
            Slot {
                at: t0 + DAY_MS,
                limit: Some(Limit::PerDay)
            }
        );
        assert_eq!(earliest(&s, &day, None, t0 + DAY_MS - 1).at, t0 + DAY_MS);
        // At the edge the first send has left the day; the next one is the hour's limit
        // no longer (its ten sends were 22 hours ago).
        assert_eq!(earliest(&s, &day, None, t0 + DAY_MS).at, t0 + DAY_MS);
    }

    #[test]
    fn warm_up_ramps_over_days() {
        let s = Settings {
            per_minute: 100,
            per_hour: 1_000,
            per_day: 10,
            warmup: vec![2, 4, 20],
            ..settings()
        };
        let paired = 5_000_000;
        let w = warm_up(&s, Some(paired), paired);
        assert_eq!(
            w,
            WarmUp {
                day: 1,
                daily_limit: 2,
                active: true
            }
        );
        assert_eq!(
            warm_up(&s, Some(paired), paired + DAY_MS - 1).daily_limit,
            2
        );
        assert_eq!(warm_up(&s, Some(paired), paired + DAY_MS).daily_limit, 4);
        assert_eq!(warm_up(&s, Some(paired), paired + DAY_MS).day, 2);
        // Day 3's curve is above per_day: per_day rules, the ramp is over.
        let w3 = warm_up(&s, Some(paired), paired + 2 * DAY_MS);
        assert_eq!((w3.daily_limit, w3.active), (10, false));
        assert!(!warm_up(&s, Some(paired), paired + 40 * DAY_MS).active);
        assert!(!warm_up(&s, None, paired).active);

        // Two sends on day 1 use it up; the third waits for day 2 (sooner than the
        // 24-hour window would free up), with the warm-up named.
        let sends = [paired + HOUR_MS, paired + 2 * HOUR_MS];
        let slot = earliest(&s, &sends, Some(paired), paired + 3 * HOUR_MS);
        assert_eq!(
            slot,
            Slot {
                at: paired + DAY_MS,
                limit: Some(Limit::WarmUp)
            }
        );
        // Day 2 allows four in 24 hours: two more, then the window decides.
        let mut more = sends.to_vec();
        more.extend([paired + DAY_MS, paired + DAY_MS + 1]);
        let slot = earliest(&s, &more, Some(paired), paired + DAY_MS + 2);
        assert_eq!(
            slot,
            Slot {
                at: paired + DAY_MS + HOUR_MS,
                limit: Some(Limit::WarmUp)
            }
        );
    }

    #[test]
    fn duplicate_guard_counts_distinct_recipients() {
        let s = settings();
        assert_eq!(duplicate(&s, [], "a"), Duplicate::Allow);
        assert_eq!(duplicate(&s, ["a"], "b"), Duplicate::Allow);
        assert_eq!(duplicate(&s, ["a", "a", "a"], "b"), Duplicate::Allow);
        // Two distinct recipients had it: a third is over the limit.
        assert_eq!(duplicate(&s, ["a", "b"], "c"), Duplicate::Hold);
        // One who already had it may get it again.
        assert_eq!(duplicate(&s, ["a", "b"], "b"), Duplicate::Allow);
        let reject = Settings {
            duplicate_action: DuplicateAction::Reject,
            ..settings()
        };
        assert_eq!(duplicate(&reject, ["a", "b"], "c"), Duplicate::Reject);
        let off = Settings {
            duplicate_action: DuplicateAction::Off,
            ..settings()
        };
        assert_eq!(duplicate(&off, ["a", "b", "c"], "d"), Duplicate::Allow);
    }

    /// The window on a given clock: two recipients had the content at 1 000 and 2 000 ms
    /// (window 600 s, limit 2): a third is held while the first is inside the window (its
    /// start included) and let through the millisecond it leaves.
    #[test]
    fn duplicate_window_edges_on_a_given_clock() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(&dir.path().join("w.redb"), 1 << 20).unwrap();
        let s = settings();
        let window = duplicate_window_ms(&s);
        assert_eq!(window, 600_000);
        let at = |now: i64| {
            let s = s.clone();
            store
                .write_blocking(move |t| Ok(duplicate_at(t, "a", &s, "h", "c@s", now)?.0))
                .unwrap()
        };
        store
            .write_blocking(|t| {
                crate::store::pacing::log_content(t, "a", "h", "a@s", 1_000, "m1")?;
                crate::store::pacing::log_content(t, "a", "h", "b@s", 2_000, "m2")?;
                // Other content and another session do not count.
                crate::store::pacing::log_content(t, "a", "other", "x@s", 1_500, "m3")?;
                crate::store::pacing::log_content(t, "b", "h", "y@s", 1_500, "m4")
            })
            .unwrap();
        assert_eq!(at(2_000), Duplicate::Hold);
        assert_eq!(
            at(1_000 + window),
            Duplicate::Hold,
            "the window's start counts"
        );
        assert_eq!(at(1_000 + window + 1), Duplicate::Allow);
        assert_eq!(at(2_000 + window + 1), Duplicate::Allow);
        let (_, counted) = store
            .write_blocking(|t| duplicate_at(t, "a", &s, "h", "c@s", 2_000))
            .unwrap();
        assert_eq!(counted, ["a@s", "b@s"]);
    }

    #[test]
    fn validation_names_the_field() {
        assert_eq!(Settings::default().validate(), Ok(()));
        let cases = [
            (
                Settings {
                    min_delay_ms: 5,
                    max_delay_ms: 4,
                    ..settings()
                },
                "min_delay_ms",
            ),
            (
                Settings {
                    per_minute: 0,
                    ..settings()
                },
                "per_minute",
            ),
            (
                Settings {
                    per_day: 0,
                    ..settings()
                },
                "per_day",
            ),
            (
                Settings {
                    typing_cps: 0,
                    ..settings()
                },
                "typing_cps",
            ),
            (
                Settings {
                    warmup: vec![3, 0],
                    ..settings()
                },
                "warmup",
            ),
            (
                Settings {
                    duplicate_window_s: 0,
                    ..settings()
                },
                "duplicate_window_s",
            ),
        ];
        for (s, field) in cases {
            assert_eq!(s.validate().unwrap_err().field, field);
        }
        let o: Overrides = serde_json::from_str(r#"{"min_delay_ms": 10, "warmup": []}"#).unwrap();
        let s = Settings::default().with(&o);
        assert_eq!((s.min_delay_ms, s.max_delay_ms), (10, 6_000));
        assert!(s.warmup.is_empty());
        assert!(serde_json::from_str::<Overrides>(r#"{"min_delay": 10}"#).is_err());
    }
}
