//! Number checks: is a number on WhatsApp, under which phone JID and LID, a business or not,
//! and (for a single check) its profile picture and about text.
//!
//! Checking numbers in bulk is what gets gateways' numbers banned, so checks have a budget
//! of their own, separate from sends: at most `check_per_minute` / `check_per_hour` /
//! `check_per_day` numbers asked of WhatsApp in any sliding window (pacing settings). Answers
//! are kept for `check_cache_s`, and a number asked again within that time is answered from
//! the store without asking WhatsApp. Over budget, a single check is refused (429 with
//! `Retry-After`); a batch answers what the budget and the cache allow and lists the rest as
//! `deferred`, with when to ask again. The budget is taken (and recorded durably) before
//! WhatsApp is asked, so a crash in between never lets more checks through.
//!
//! The budget is a pure function of the settings, the times of earlier checks and `now`
//! ([`room`]), so tests drive it with an injected clock.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use whatsapp_rust::{Client, Jid};

use super::pacing::{DAY_MS, HOUR_MS, MINUTE_MS, Settings};
use super::{EngineError, normalize_phone};
use crate::store::{Store, StoreError, contacts as stored};

/// The most numbers one batch check takes.
pub const MAX_BATCH: usize = 500;

/// The least wait a batch asks for when WhatsApp refused some of its numbers.
pub const REFUSED_RETRY_S: u64 = 60;

/// How far in the future a recorded check still counts (the clock slewed or stepped a little);
/// beyond it the clock was set back and the record is not counted.
const CLOCK_SLACK_MS: i64 = 60_000;

/// What WhatsApp says about a number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactInfo {
    /// The number asked, digits with the country code.
    pub number: String,
    pub on_whatsapp: bool,
    /// The phone-number JID (`<digits>@s.whatsapp.net`), when on WhatsApp.
    pub jid: Option<String>,
    /// The LID (`<digits>@lid`), when WhatsApp says.
    pub lid: Option<String>,
    /// A WhatsApp Business account.
    pub business: bool,
    /// The business's verified name, when it has one.
    pub verified_name: Option<String>,
    /// Where its profile picture can be downloaded, when it has one the account may see
    /// (single checks only; such URLs expire after a while).
    pub picture_url: Option<String>,
    /// Its about text, when visible (single checks only).
    pub about: Option<String>,
    /// Whether picture and about were asked (a single check) or not (a batch).
    pub details: bool,
    /// When WhatsApp was asked (unix ms).
    pub checked_at: i64,
    /// Answered from the store, not asked again.
    #[serde(default)]
    pub cached: bool,
}

impl ContactInfo {
    /// A cached answer that still serves: younger than the cache's lifetime, and with the
    /// details when they are wanted.
    /// An answer from the future (the clock was set back since) does not serve. A number
    /// not on WhatsApp has no details to ask.
    pub fn fresh(&self, s: &Settings, now: i64, want_details: bool) -> bool {
        let ttl = i64::try_from(s.check_cache_s.saturating_mul(1000)).unwrap_or(i64::MAX);
        let age = now - self.checked_at;
        (0..ttl).contains(&age) && (self.details || !want_details || !self.on_whatsapp)
    }
}

/// A batch's answer: what could be answered now, and what waits for the budget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckOutcome {
    pub results: Vec<ContactInfo>,
    /// Numbers not answered now: the budget is spent, or WhatsApp refused them. Ask again
    /// after `retry_after_s`.
    pub deferred: Vec<String>,
    /// Seconds until the budget takes another number, when some are deferred.
    pub retry_after_s: Option<u64>,
}

/// How many more numbers the budget takes at `now`, given when earlier numbers were asked
/// (`checks`, ascending unix ms), and when it takes one more once those are spent.
/// Checks recorded more than a minute after `now` (the clock was set back since) are not
/// counted: they would hold the budget for as long as the clock is behind.
pub fn room(s: &Settings, checks: &[i64], now: i64) -> (usize, i64) {
    let checks = &checks[..checks.partition_point(|&t| t <= now + CLOCK_SLACK_MS)];
    let windows = [
        (MINUTE_MS, s.check_per_minute),
        (HOUR_MS, s.check_per_hour),
        (DAY_MS, s.check_per_day),
    ];
    let mut room = usize::MAX;
    for (window, limit) in windows {
        let start = checks.partition_point(|&t| t <= now - window);
        let inside = checks.len() - start;
        room = room.min((limit as usize).saturating_sub(inside));
    }
    // Spend the room at `now`, then see when the first window frees a place.
    let mut after: Vec<i64> = checks.to_vec();
    after.extend(std::iter::repeat_n(now, room));
    let mut next = now;
    for (window, limit) in windows {
        let limit = (limit as usize).max(1);
        let start = after.partition_point(|&t| t <= now - window);
        let inside = &after[start..];
        if inside.len() >= limit {
            next = next.max(inside[inside.len() - limit] + window);
        }
    }
    (room, next)
}

/// Seconds from `now` to `at`, at least 1.
pub fn secs_until(at: i64, now: i64) -> u64 {
    u64::try_from((at - now).max(0))
        .unwrap_or(0)
        .div_ceil(1000)
        .max(1)
}

/// The numbers of a request, as digits, each once, in the order given; the first one that is
/// no phone number is refused by name.
pub fn parse_numbers(raw: &[String]) -> Result<Vec<String>, EngineError> {
    if raw.is_empty() {
        return Err(EngineError::Numbers("numbers: give at least one".into()));
    }
    if raw.len() > MAX_BATCH {
        return Err(EngineError::Numbers(format!(
            "numbers: {} given, at most {MAX_BATCH} per check",
            raw.len()
        )));
    }
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for r in raw {
        let n = number_of(r)?;
        if seen.insert(n.clone()) {
            out.push(n);
        }
    }
    Ok(out)
}

/// A number as digits: `+44 7700 900123`, `447700900123` or `447700900123@s.whatsapp.net`.
pub fn number_of(raw: &str) -> Result<String, EngineError> {
    let bare = raw.strip_suffix("@s.whatsapp.net").unwrap_or(raw);
    normalize_phone(bare).ok_or_else(|| EngineError::InvalidPhone(raw.to_string()))
}

fn corrupt(e: serde_json::Error) -> EngineError {
    EngineError::Store(StoreError::Corrupt {
        table: "contact_cache",
        detail: e.to_string(),
    })
}

/// The cached answers that still serve, by number.
async fn from_cache(
    store: &Store,
    session: &str,
    numbers: &[String],
    s: &Settings,
    now: i64,
    details: bool,
) -> Result<HashMap<String, ContactInfo>, EngineError> {
    let (sid, nums) = (session.to_string(), numbers.to_vec());
    let raw = store
        .read(move |t| {
            nums.iter()
                .map(|n| Ok((n.clone(), stored::cached(t, &sid, n)?)))
                .collect::<Result<Vec<_>, StoreError>>()
        })
        .await?;
    let mut out = HashMap::new();
    for (n, bytes) in raw {
        let Some(bytes) = bytes else { continue };
        let mut info: ContactInfo = serde_json::from_slice(&bytes).map_err(corrupt)?;
        if info.fresh(s, now, details) {
            info.cached = true;
            out.insert(n, info);
        }
    }
    Ok(out)
}

/// Take up to `want` numbers from the budget at `now`, durably: how many were taken, and
/// when the budget takes one more. The caller holds the engine's check turn.
async fn take_budget(
    store: &Store,
    session: &str,
    s: &Settings,
    want: usize,
    now: i64,
) -> Result<(usize, i64), EngineError> {
    let sid = session.to_string();
    let checks = store
        .read(move |t| stored::checks_since(t, &sid, now - DAY_MS + 1))
        .await?;
    let (room, _) = room(s, &checks, now);
    let take = room.min(want);
    let mut spent = checks;
    spent.extend(std::iter::repeat_n(now, take));
    let (_, next) = self::room(s, &spent, now);
    if take > 0 {
        let sid = session.to_string();
        store
            .write(move |t| stored::log_checks(t, &sid, now, take))
            .await?;
    }
    Ok((take, next))
}

/// What WhatsApp answered: the numbers it answered (kept), and those it did not (an error
/// for that number, or no entry: not kept, to be asked again).
struct Asked {
    answered: Vec<ContactInfo>,
    unanswered: Vec<(String, String)>,
}

/// Ask WhatsApp about `numbers` (with picture and about when `details`), and keep the
/// answers.
async fn ask(
    store: &Store,
    client: &Client,
    session: &str,
    numbers: &[String],
    details: bool,
    now: i64,
) -> Result<Asked, EngineError> {
    let jids: Vec<Jid> = numbers.iter().map(|n| Jid::pn(n.as_str())).collect();
    let answers = client
        .contacts()
        .is_on_whatsapp(&jids)
        .await
        .map_err(|e| EngineError::Client(e.to_string()))?;
    // WhatsApp may answer a number under another JID than the one dialled (a country's
    // numbering change); the asked number then travels as `pn_jid`, or, for a single
    // number, the one answer is its answer.
    let single = numbers.len() == 1 && answers.len() == 1;
    let mut by_user: HashMap<String, _> = HashMap::new();
    let mut strays = 0;
    for r in answers {
        let key = match (&r.pn_jid, single) {
            (_, true) => numbers[0].clone(),
            (Some(pn), false) => pn.user.to_string(),
            (None, false) => r.jid.user.to_string(),
        };
        if !single && !numbers.contains(&key) {
            strays += 1;
        }
        by_user.insert(key, r);
    }
    // In a batch an answer under another JID cannot be told apart: those numbers are asked
    // one by one (the budget counted them already).
    // At most as many as there were strays; a failed one stays unanswered.
    let missing: Vec<&String> = numbers
        .iter()
        .filter(|n| !by_user.contains_key(n.as_str()))
        .take(strays)
        .collect();
    for n in missing {
        match client
            .contacts()
            .is_on_whatsapp(&[Jid::pn(n.as_str())])
            .await
        {
            Ok(one) => {
                if let [r] = one.as_slice() {
                    by_user.insert(n.clone(), r.clone());
                }
            }
            Err(e) => {
                tracing::warn!(number = %n, error = %e, "number asked again singly: no answer")
            }
        }
    }
    let mut out = Asked {
        answered: Vec::with_capacity(numbers.len()),
        unanswered: Vec::new(),
    };
    for n in numbers {
        let Some(r) = by_user.get(n.as_str()) else {
            out.unanswered
                .push((n.clone(), "WhatsApp gave no answer for it".into()));
            continue;
        };
        if let Some(e) = &r.contact_error {
            out.unanswered.push((
                n.clone(),
                format!(
                    "WhatsApp answered error {} ({})",
                    e.code.map_or_else(|| "?".into(), |c| c.to_string()),
                    e.text.as_deref().unwrap_or("no text")
                ),
            ));
            continue;
        }
        let mut info = ContactInfo {
            number: n.clone(),
            on_whatsapp: r.is_registered,
            jid: None,
            lid: r.lid.as_ref().map(|j| j.to_non_ad().to_string()),
            business: r.is_business,
            verified_name: r.verified_name.as_ref().and_then(|v| v.name.clone()),
            picture_url: None,
            about: None,
            details,
            checked_at: now,
            cached: false,
        };
        if info.on_whatsapp {
            let jid = match &r.pn_jid {
                Some(pn) => pn.to_non_ad(),
                None if r.jid.is_pn() => r.jid.to_non_ad(),
                None => Jid::pn(n.as_str()),
            };
            info.jid = Some(jid.to_string());
            if info.lid.is_none()
                && let Ok(Some(entry)) = client.get_lid_pn_entry(&jid).await
            {
                info.lid = Some(Jid::lid(&*entry.lid).to_string());
            }
            if details {
                add_details(client, &jid, &mut info).await;
            }
        }
        out.answered.push(info);
    }
    let sid = session.to_string();
    let rows = out
        .answered
        .iter()
        .map(|i| serde_json::to_vec(i).map(|j| (i.number.clone(), j)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(corrupt)?;
    store
        .write(move |t| {
            for (n, json) in &rows {
                stored::put(t, &sid, n, now, json)?;
            }
            Ok(())
        })
        .await?;
    Ok(out)
}

/// The about text and the picture: what the account may see. A detail WhatsApp does not
/// give is left out; the check stands.
async fn add_details(client: &Client, jid: &Jid, info: &mut ContactInfo) {
    match client
        .contacts()
        .get_user_info(std::slice::from_ref(jid))
        .await
    {
        Ok(map) => {
            if let Some(u) = map.values().next() {
                info.about = u.status.clone().filter(|t| !t.is_empty());
                if info.lid.is_none() {
                    info.lid = u.lid.as_ref().map(|j| j.to_non_ad().to_string());
                }
            }
        }
        Err(e) => tracing::warn!(number = %info.number, error = %e, "about text not read"),
    }
    match client.contacts().get_profile_picture(jid, false).await {
        Ok(p) => info.picture_url = p.map(|p| p.url),
        Err(e) => tracing::warn!(number = %info.number, error = %e, "profile picture not read"),
    }
}

/// One number, with its picture and about text: from the cache, or asked of WhatsApp within
/// the budget (else [`EngineError::CheckBudget`]). `client` is the connected client, if any;
/// `turn` is the session's check turn, taken only to ask WhatsApp.
pub(crate) async fn check_one(
    store: &Store,
    client: Option<&Client>,
    turn: &tokio::sync::Mutex<()>,
    session: &str,
    s: &Settings,
    raw: &str,
    now: i64,
) -> Result<ContactInfo, EngineError> {
    let number = number_of(raw)?;
    let numbers = [number];
    if let Some(hit) = from_cache(store, session, &numbers, s, now, true)
        .await?
        .remove(&numbers[0])
    {
        return Ok(hit);
    }
    let client = client.ok_or_else(|| EngineError::NotConnected(session.to_string()))?;
    let _turn = turn.lock().await;
    // The time and the cache again under the turn: a check that held it may have answered
    // this number, and its checks are counted at a time before this one.
    let now = crate::events::now_ms().max(now);
    if let Some(hit) = from_cache(store, session, &numbers, s, now, true)
        .await?
        .remove(&numbers[0])
    {
        return Ok(hit);
    }
    let (taken, next) = take_budget(store, session, s, 1, now).await?;
    if taken == 0 {
        return Err(EngineError::CheckBudget {
            retry_after_s: secs_until(next, now),
        });
    }
    let mut asked = ask(store, client, session, &numbers, true, now).await?;
    match (asked.answered.pop(), asked.unanswered.pop()) {
        (Some(info), _) => Ok(info),
        (None, Some((n, why))) => Err(EngineError::Client(format!("{n}: {why}"))),
        (None, None) => Err(EngineError::Client("no answer for the number".into())),
    }
}

/// Many numbers (on WhatsApp, phone JID, LID, business): the cache first, then as many as the
/// budget takes; the rest deferred, in the order given, with those WhatsApp did not answer.
pub(crate) async fn check_many(
    store: &Store,
    client: Option<&Client>,
    turn: &tokio::sync::Mutex<()>,
    session: &str,
    s: &Settings,
    raw: &[String],
    now: i64,
) -> Result<CheckOutcome, EngineError> {
    let numbers = parse_numbers(raw)?;
    let mut hits = from_cache(store, session, &numbers, s, now, false).await?;
    let need: Vec<String> = numbers
        .iter()
        .filter(|n| !hits.contains_key(*n))
        .cloned()
        .collect();
    let mut deferred = Vec::new();
    let mut retry_after_s = None;
    if !need.is_empty() {
        let client = client.ok_or_else(|| EngineError::NotConnected(session.to_string()))?;
        let _turn = turn.lock().await;
        // The time and the cache again under the turn (see `check_one`).
        let now = crate::events::now_ms().max(now);
        hits.extend(from_cache(store, session, &need, s, now, false).await?);
        let need: Vec<String> = need.into_iter().filter(|n| !hits.contains_key(n)).collect();
        let (taken, next) = take_budget(store, session, s, need.len(), now).await?;
        let mut unanswered = Vec::new();
        if taken > 0 {
            let asked = ask(store, client, session, &need[..taken], false, now).await?;
            for info in asked.answered {
                hits.insert(info.number.clone(), info);
            }
            for (n, why) in asked.unanswered {
                tracing::warn!(session, number = %n, %why, "number not answered; deferred");
                unanswered.push(n);
            }
        }
        deferred = need
            .iter()
            .filter(|n| unanswered.contains(n) || !hits.contains_key(*n))
            .cloned()
            .collect();
        if !deferred.is_empty() {
            let mut after = secs_until(next, now);
            // WhatsApp refused some (a rate limit): not before a minute.
            if !unanswered.is_empty() {
                after = after.max(REFUSED_RETRY_S);
            }
            retry_after_s = Some(after);
        }
    }
    let results = numbers.iter().filter_map(|n| hits.remove(n)).collect();
    Ok(CheckOutcome {
        results,
        deferred,
        retry_after_s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(per_minute: u32, per_hour: u32, per_day: u32) -> Settings {
        Settings {
            check_per_minute: per_minute,
            check_per_hour: per_hour,
            check_per_day: per_day,
            ..Settings::default()
        }
    }

    const T0: i64 = 1_800_000_000_000;

    #[test]
    fn an_idle_budget_takes_the_smallest_window() {
        let (n, _) = room(&budget(10, 60, 200), &[], T0);
        assert_eq!(n, 10);
    }

    #[test]
    fn the_minute_window_slides() {
        let s = budget(3, 100, 100);
        let checks = [T0, T0 + 10_000, T0 + 20_000];
        let (n, next) = room(&s, &checks, T0 + 30_000);
        assert_eq!(n, 0);
        assert_eq!(next, T0 + MINUTE_MS, "the first check leaves the window");
        // Exactly a minute after the first: one place again, not a millisecond before.
        assert_eq!(room(&s, &checks, T0 + MINUTE_MS - 1).0, 0);
        assert_eq!(room(&s, &checks, T0 + MINUTE_MS).0, 1);
        assert_eq!(room(&s, &checks, T0 + 20_000 + MINUTE_MS).0, 3);
    }

    #[test]
    fn the_hour_and_the_day_hold_when_the_minute_does_not() {
        let s = budget(10, 20, 30);
        // 20 checks spread over the last 50 minutes: the minute has room, the hour none.
        let checks: Vec<i64> = (0..20).map(|i| T0 + i * 150_000).collect();
        let now = T0 + 50 * MINUTE_MS;
        let (n, next) = room(&s, &checks, now);
        assert_eq!(n, 0);
        assert_eq!(next, T0 + HOUR_MS);
        // The day: 30 checks this morning, hours ago.
        let day: Vec<i64> = (0..30).map(|i| T0 + i * 1_000).collect();
        let later = T0 + 5 * HOUR_MS;
        let (n, next) = room(&s, &day, later);
        assert_eq!(n, 0);
        assert_eq!(next, T0 + DAY_MS);
        assert_eq!(
            room(&s, &day, T0 + DAY_MS + 29_000).0,
            10,
            "the minute caps it again"
        );
    }

    #[test]
    fn checks_from_after_a_clock_step_back_do_not_hold_the_budget() {
        let s = budget(2, 100, 100);
        // Recorded an hour "later" than now: the clock was set back since.
        assert_eq!(room(&s, &[T0 + HOUR_MS, T0 + HOUR_MS], T0).0, 2);
        // A few seconds ahead (a clock slewed by NTP, another request's stamp): counted.
        assert_eq!(room(&s, &[T0 + 5_000, T0 + 5_000], T0).0, 0);
    }

    #[test]
    fn room_left_is_given_and_next_says_when_more_comes() {
        let s = budget(5, 100, 100);
        let (n, next) = room(&s, &[T0, T0 + 1_000], T0 + 2_000);
        assert_eq!(n, 3);
        // With those 3 spent at T0+2 s, the check at T0 leaves the minute first.
        assert_eq!(next, T0 + MINUTE_MS);
        assert_eq!(secs_until(next, T0 + 2_000), 58);
        assert_eq!(secs_until(T0, T0), 1, "never 0");
    }

    #[test]
    fn a_cached_answer_serves_within_its_lifetime_and_with_details_when_asked() {
        let s = Settings {
            check_cache_s: 3_600,
            ..Settings::default()
        };
        let mut c = ContactInfo {
            number: "15551234567".into(),
            on_whatsapp: true,
            jid: Some("15551234567@s.whatsapp.net".into()),
            lid: None,
            business: false,
            verified_name: None,
            picture_url: None,
            about: None,
            details: false,
            checked_at: T0,
            cached: false,
        };
        assert!(c.fresh(&s, T0 + HOUR_MS - 1, false));
        assert!(!c.fresh(&s, T0 + HOUR_MS, false));
        assert!(
            !c.fresh(&s, T0, true),
            "a batch answer has no picture or about"
        );
        c.details = true;
        assert!(c.fresh(&s, T0, true));
        let none = Settings {
            check_cache_s: 0,
            ..Settings::default()
        };
        assert!(!c.fresh(&none, T0, false), "0 keeps nothing");
    }
}
