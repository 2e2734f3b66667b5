//! Pure rendering: a [`DisplayState`] becomes pixels on any embedded-graphics
//! `DrawTarget<Color = Rgb565>`. No clocks, no I/O: the state carries `now_ms`, so the same
//! state always draws the same frame (the golden snapshots rely on it).
//!
//! Four screens, laid out for 240x240, 320x240 (landscape) and 240x320 (portrait); any
//! size of at least 240x240 works, those three are the ones the snapshots pin down:
//!
//! - [`Screen::Setup`]: device name, every LAN address with the API port, the one-time setup
//!   code while the device is unclaimed, the certificate fingerprint when there is one.
//! - [`Screen::Pairing`]: the pairing QR at the largest integer scale that leaves a quiet zone
//!   of [`QUIET_ZONE`] modules, the session, the code's remaining life, and where to scan it;
//!   or the 8-character code when pairing by phone number.
//! - [`Screen::Status`]: each session with its state, number, queue depth and failed webhook
//!   deliveries.
//! - [`Screen::Failure`]: a failed session, why, and what to do about it.
//!
//! Which screen shows is decided by [`Selector`], one small state machine.

use core::fmt::{self, Write as _};
use std::net::IpAddr;

use embedded_graphics::mono_font::iso_8859_1::{
    FONT_6X13, FONT_7X13, FONT_7X13_BOLD, FONT_9X15, FONT_9X15_BOLD, FONT_10X20,
};
use embedded_graphics::mono_font::{MonoFont, MonoTextStyle};
use embedded_graphics::pixelcolor::Rgb565;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::{
    Circle, PrimitiveStyle, PrimitiveStyleBuilder, Rectangle, RoundedRectangle,
};
use embedded_graphics::text::{Alignment, Baseline, Text, TextStyleBuilder};
use profont::PROFONT_24_POINT;
use qrcode::{EcLevel, QrCode};

use crate::events::{FailReason, SessionState};

// ---------------------------------------------------------------------------------------------
// Input
// ---------------------------------------------------------------------------------------------

/// A session id (`^[a-z0-9_-]{1,32}$`).
pub type SessionId = heapless::String<32>;
/// A phone number as the engine reports it (digits, or a JID).
pub type Phone = heapless::String<48>;
/// The device's name (hostname).
pub type DeviceName = heapless::String<32>;
/// The one-time setup code.
pub type SetupCode = heapless::String<16>;
/// A certificate's SHA-256 fingerprint: 32 hex pairs joined by colons (95 characters).
pub type Fingerprint = heapless::String<104>;
/// One line of screen text.
pub type Line = heapless::String<64>;

/// How many LAN addresses the setup screen lists.
pub const MAX_ADDRESSES: usize = 4;

/// Everything the screens show. Owned by the display task; built by hand in tests and by
/// `wagate display render` from [`sample`].
#[derive(Debug, Clone, PartialEq)]
pub struct DisplayState {
    pub device_name: DeviceName,
    /// LAN addresses the API answers on (IPv4 first).
    pub addresses: heapless::Vec<IpAddr, MAX_ADDRESSES>,
    pub api_port: u16,
    /// The API speaks HTTPS.
    pub tls: bool,
    /// Shown while the device is unclaimed.
    pub setup_code: Option<SetupCode>,
    /// The API certificate's fingerprint, when it has one.
    pub cert_fingerprint: Option<Fingerprint>,
    /// By id.
    pub sessions: Vec<SessionView>,
    /// A button is wired: hints say "press the button".
    pub has_button: bool,
    /// Unix milliseconds the frame is drawn for.
    pub now_ms: i64,
}

impl Default for DisplayState {
    fn default() -> Self {
        DisplayState {
            device_name: short("wagate"),
            addresses: heapless::Vec::new(),
            api_port: 8080,
            tls: false,
            setup_code: None,
            cert_fingerprint: None,
            sessions: Vec::new(),
            has_button: false,
            now_ms: 0,
        }
    }
}

/// One session as the screens show it.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionView {
    pub id: SessionId,
    pub state: SessionState,
    pub phone: Option<Phone>,
    /// Messages waiting in the send queue.
    pub queue_depth: u32,
    /// Webhook deliveries that gave up.
    pub failed_deliveries: u32,
}

impl SessionView {
    pub fn new(id: &str, state: SessionState) -> Self {
        SessionView {
            id: short(id),
            state,
            phone: None,
            queue_depth: 0,
            failed_deliveries: 0,
        }
    }
}

impl DisplayState {
    /// The first session waiting for a scan (or a pair code), by id.
    pub fn pairing(&self) -> Option<&SessionView> {
        self.sessions
            .iter()
            .find(|s| matches!(s.state, SessionState::Qr { .. }))
    }

    /// The first failed session, by id.
    pub fn failed(&self) -> Option<&SessionView> {
        self.sessions.iter().find(|s| s.state.is_failed())
    }

    /// The first session whose pairing ran out of QR codes (the button restarts it).
    pub fn qr_exhausted(&self) -> Option<&SessionView> {
        self.sessions.iter().find(|s| {
            matches!(
                s.state,
                SessionState::Failed {
                    reason: FailReason::QrExhausted,
                    ..
                }
            )
        })
    }

    /// Insert or update a session, keeping the list sorted by id.
    pub fn upsert(&mut self, view: SessionView) {
        match self
            .sessions
            .binary_search_by(|s| s.id.as_str().cmp(view.id.as_str()))
        {
            Ok(i) => self.sessions[i] = view,
            Err(i) => self.sessions.insert(i, view),
        }
    }

    pub fn session_mut(&mut self, id: &str) -> Option<&mut SessionView> {
        self.sessions.iter_mut().find(|s| s.id.as_str() == id)
    }
}

/// A heapless string from `s`, cut at capacity (on a char boundary).
pub fn short<const N: usize>(s: &str) -> heapless::String<N> {
    let mut out = heapless::String::new();
    let _ = Cut(&mut out).write_str(s);
    out
}

/// `fmt::Write` into a heapless string that silently stops at capacity.
struct Cut<'a, const N: usize>(&'a mut heapless::String<N>);

impl<const N: usize> fmt::Write for Cut<'_, N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            if self.0.push(c).is_err() {
                break;
            }
        }
        Ok(())
    }
}

fn line(args: fmt::Arguments<'_>) -> Line {
    let mut l = Line::new();
    let _ = Cut(&mut l).write_fmt(args);
    l
}

// ---------------------------------------------------------------------------------------------
// Which screen
// ---------------------------------------------------------------------------------------------

/// The screens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Screen {
    Setup,
    Pairing,
    Status,
    Failure,
}

impl Screen {
    pub const ALL: [Screen; 4] = [
        Screen::Setup,
        Screen::Pairing,
        Screen::Status,
        Screen::Failure,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Screen::Setup => "setup",
            Screen::Pairing => "pairing",
            Screen::Status => "status",
            Screen::Failure => "failure",
        }
    }

    /// Whether this screen has something to show for `state`.
    pub fn available(self, state: &DisplayState) -> bool {
        match self {
            Screen::Setup | Screen::Status => true,
            Screen::Pairing => state.pairing().is_some(),
            Screen::Failure => state.failed().is_some(),
        }
    }

    /// The screen the device shows by itself: a session waiting for a scan wins; an unclaimed
    /// device shows setup; a failed session shows failure; otherwise status.
    pub fn auto(state: &DisplayState) -> Screen {
        if state.pairing().is_some() {
            Screen::Pairing
        } else if state.setup_code.is_some() {
            Screen::Setup
        } else if state.failed().is_some() {
            Screen::Failure
        } else {
            Screen::Status
        }
    }

    /// How often the screen changes by itself (a countdown), if it does.
    pub fn tick_ms(self, state: &DisplayState) -> Option<i64> {
        match self {
            Screen::Pairing => state.pairing().map(|_| 1_000),
            Screen::Failure => match state.failed().map(|s| &s.state) {
                Some(SessionState::Failed { until: Some(_), .. }) => Some(30_000),
                _ => None,
            },
            _ => None,
        }
    }
}

impl std::str::FromStr for Screen {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Screen::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .ok_or_else(|| format!("unknown screen {s:?}: setup, pairing, status or failure"))
    }
}

/// What a button press asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Press {
    /// Restart pairing for this session (its QR codes ran out).
    RestartPairing(SessionId),
    /// Show this screen for a while.
    Show(Screen),
}

/// How long a screen chosen with the button stays before the automatic choice returns.
pub const MANUAL_MS: i64 = 20_000;

/// The screen state machine: [`Screen::auto`], overridden for [`MANUAL_MS`] by a button press.
/// A new automatic choice (a QR appears, a session fails) ends the override at once.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    /// (chosen screen, automatic choice when chosen, until).
    manual: Option<(Screen, Screen, i64)>,
}

impl Selector {
    /// The screen to draw now.
    pub fn current(&mut self, state: &DisplayState) -> Screen {
        let auto = Screen::auto(state);
        if let Some((screen, auto_then, until)) = self.manual {
            if auto_then == auto && state.now_ms < until && screen.available(state) {
                return screen;
            }
            self.manual = None;
        }
        auto
    }

    /// A button press: restarts pairing for a session whose QR codes ran out; otherwise
    /// cycles to the next screen that has something to show.
    pub fn press(&mut self, state: &DisplayState) -> Press {
        if let Some(s) = state.qr_exhausted() {
            self.manual = None;
            return Press::RestartPairing(s.id.clone());
        }
        let now = self.current(state);
        const ORDER: [Screen; 4] = [
            Screen::Status,
            Screen::Setup,
            Screen::Failure,
            Screen::Pairing,
        ];
        let at = ORDER.iter().position(|s| *s == now).unwrap_or(0);
        let next = (1..=ORDER.len())
            .map(|k| ORDER[(at + k) % ORDER.len()])
            .find(|s| s.available(state))
            .unwrap_or(Screen::Status);
        self.manual = Some((next, Screen::auto(state), state.now_ms + MANUAL_MS));
        Press::Show(next)
    }
}

// ---------------------------------------------------------------------------------------------
// Look
// ---------------------------------------------------------------------------------------------

const fn rgb(r: u8, g: u8, b: u8) -> Rgb565 {
    Rgb565::new(r >> 3, g >> 2, b >> 3)
}

const BG: Rgb565 = rgb(14, 18, 24);
const RULE: Rgb565 = rgb(44, 52, 62);
const TEXT: Rgb565 = rgb(236, 239, 242);
const MUTED: Rgb565 = rgb(148, 160, 172);
const GREEN: Rgb565 = rgb(37, 211, 102);
const AMBER: Rgb565 = rgb(255, 184, 28);
const RED: Rgb565 = rgb(240, 72, 72);
const BLUE: Rgb565 = rgb(92, 166, 255);
const PAPER: Rgb565 = Rgb565::WHITE;
const INK: Rgb565 = Rgb565::BLACK;
const INK_MUTED: Rgb565 = rgb(90, 98, 108);

/// Modules of light margin around the QR symbol (the standard's minimum).
pub const QUIET_ZONE: u32 = 4;
const MARGIN: i32 = 8;
const HEADER_H: u32 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Square,
    Landscape,
    Portrait,
}

fn shape(size: Size) -> Shape {
    if size.width > size.height {
        Shape::Landscape
    } else if size.height > size.width {
        Shape::Portrait
    } else {
        Shape::Square
    }
}

fn advance(font: &MonoFont<'_>) -> u32 {
    font.character_size.width + font.character_spacing
}

fn text_width(s: &str, font: &MonoFont<'_>) -> u32 {
    let n = s.chars().count() as u32;
    (n * advance(font)).saturating_sub(font.character_spacing)
}

/// How many characters of `font` fit in `width` pixels.
fn chars_in(width: u32, font: &MonoFont<'_>) -> usize {
    ((width + font.character_spacing) / advance(font)) as usize
}

/// `s` cut to `width` pixels, with ".." where it was cut.
fn fit(s: &str, font: &MonoFont<'_>, width: u32) -> Line {
    let max = chars_in(width, font);
    if s.chars().count() <= max {
        return short(s);
    }
    let keep = max.saturating_sub(2);
    let mut out = Line::new();
    for c in s.chars().take(keep) {
        let _ = out.push(c);
    }
    let _ = Cut(&mut out).write_str("..");
    out
}

/// Words of `s` in lines of at most `max` characters (long words are split).
fn wrap(s: &str, max: usize) -> heapless::Vec<Line, 8> {
    let mut lines: heapless::Vec<Line, 8> = heapless::Vec::new();
    let mut cur = Line::new();
    let max = max.clamp(1, 64);
    for word in s.split_whitespace() {
        let mut word = word;
        loop {
            let need = word.chars().count() + usize::from(!cur.is_empty());
            if cur.chars().count() + need <= max {
                if !cur.is_empty() {
                    let _ = cur.push(' ');
                }
                let _ = Cut(&mut cur).write_str(word);
                break;
            }
            if !cur.is_empty() {
                let _ = lines.push(core::mem::take(&mut cur));
                continue;
            }
            // A word longer than a line: split it.
            let split = word.char_indices().nth(max).map_or(word.len(), |(i, _)| i);
            let _ = Cut(&mut cur).write_str(&word[..split]);
            let _ = lines.push(core::mem::take(&mut cur));
            word = &word[split..];
            if word.is_empty() {
                break;
            }
        }
    }
    if !cur.is_empty() {
        let _ = lines.push(cur);
    }
    lines
}

/// Draw `s` with its top at `y`; `x` is the left edge, centre or right edge per `align`.
fn text<D: DrawTarget<Color = Rgb565>>(
    t: &mut D,
    s: &str,
    font: &MonoFont<'_>,
    color: Rgb565,
    x: i32,
    y: i32,
    align: Alignment,
) -> Result<(), D::Error> {
    let style = MonoTextStyle::new(font, color);
    let layout = TextStyleBuilder::new()
        .alignment(align)
        .baseline(Baseline::Top)
        .build();
    Text::with_text_style(s, Point::new(x, y), style, layout).draw(t)?;
    Ok(())
}

fn fill<D: DrawTarget<Color = Rgb565>>(
    t: &mut D,
    x: i32,
    y: i32,
    w: u32,
    h: u32,
    color: Rgb565,
) -> Result<(), D::Error> {
    t.fill_solid(&Rectangle::new(Point::new(x, y), Size::new(w, h)), color)
}

/// A coloured bar across the top with a title on the left and a note on the right.
fn header<D: DrawTarget<Color = Rgb565>>(
    t: &mut D,
    title: &str,
    note: &str,
    color: Rgb565,
) -> Result<(), D::Error> {
    let w = t.bounding_box().size.width;
    fill(t, 0, 0, w, HEADER_H, color)?;
    let title = fit(title, &FONT_9X15_BOLD, w - 2 * MARGIN as u32);
    text(t, &title, &FONT_9X15_BOLD, BG, MARGIN, 8, Alignment::Left)?;
    let room = w
        .saturating_sub(text_width(&title, &FONT_9X15_BOLD) + 3 * MARGIN as u32)
        .max(1);
    if !note.is_empty() && chars_in(room, &FONT_7X13) >= 4 {
        let note = fit(note, &FONT_7X13, room);
        text(
            t,
            &note,
            &FONT_7X13,
            BG,
            w as i32 - MARGIN,
            9,
            Alignment::Right,
        )?;
    }
    Ok(())
}

/// A small label above a value.
fn label<D: DrawTarget<Color = Rgb565>>(
    t: &mut D,
    s: &str,
    x: i32,
    y: i32,
) -> Result<i32, D::Error> {
    text(t, s, &FONT_6X13, MUTED, x, y, Alignment::Left)?;
    Ok(y + 14)
}

/// `+4915123456789` from `4915123456789`, `4915123456789@s.whatsapp.net` or `...:12@...`.
pub fn pretty_phone(raw: &str) -> Line {
    let user = raw.split(['@', ':']).next().unwrap_or(raw);
    if !user.is_empty() && user.bytes().all(|b| b.is_ascii_digit()) {
        line(format_args!("+{user}"))
    } else {
        short(user)
    }
}

/// `m:ss` of what is left until `deadline`.
fn countdown(deadline: i64, now: i64) -> Line {
    let left = (deadline - now).max(0);
    let secs = (left + 999) / 1000;
    line(format_args!("{}:{:02}", secs / 60, secs % 60))
}

/// "3 h 20 min", "5 min", "2 d 4 h".
fn duration_words(ms: i64) -> Line {
    let mins = (ms.max(0) + 59_999) / 60_000;
    let (d, h, m) = (mins / 1440, (mins / 60) % 24, mins % 60);
    if d > 0 {
        line(format_args!("{d} d {h} h"))
    } else if h > 0 {
        line(format_args!("{h} h {m} min"))
    } else {
        line(format_args!("{m} min"))
    }
}

/// `2026-11-24 13:05 UTC` (civil date from days, Howard Hinnant's algorithm).
fn utc_time(ms: i64) -> Line {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    line(format_args!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        sod / 3600,
        (sod / 60) % 60
    ))
}

fn state_label(state: &SessionState) -> (&'static str, Rgb565) {
    match state {
        SessionState::Stopped => ("stopped", MUTED),
        SessionState::Connecting => ("connecting", BLUE),
        SessionState::Qr {
            pair_code: Some(_), ..
        } => ("enter code", AMBER),
        SessionState::Qr { .. } => ("scan QR", AMBER),
        SessionState::Connected { .. } => ("online", GREEN),
        SessionState::Disconnected { .. } => ("reconnecting", AMBER),
        SessionState::Failed { reason, .. } => (
            match reason {
                FailReason::LoggedOut => "logged out",
                FailReason::Banned => "banned",
                FailReason::QrExhausted => "QR expired",
                FailReason::ClientOutdated => "outdated",
                FailReason::Replaced => "replaced",
                FailReason::PairFailed => "pair failed",
                FailReason::PasskeyRequired => "passkey needed",
                FailReason::Storage => "storage error",
            },
            RED,
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Drawing
// ---------------------------------------------------------------------------------------------

/// Draw `screen` for `state`. A screen with nothing to show (pairing with no session waiting,
/// failure with none failed) draws the status screen.
pub fn draw<D: DrawTarget<Color = Rgb565>>(
    screen: Screen,
    state: &DisplayState,
    t: &mut D,
) -> Result<(), D::Error> {
    match screen {
        Screen::Setup => setup(state, t),
        Screen::Pairing => match state.pairing() {
            Some(s) => pairing(state, s, t),
            None => status(state, t),
        },
        Screen::Status => status(state, t),
        Screen::Failure => match state.failed() {
            Some(s) => failure(state, s, t),
            None => status(state, t),
        },
    }
}

fn address_line(state: &DisplayState, ip: &IpAddr) -> Line {
    let scheme = if state.tls { "https" } else { "http" };
    match ip {
        IpAddr::V4(v4) => line(format_args!("{scheme}://{v4}:{}", state.api_port)),
        IpAddr::V6(v6) => line(format_args!("{scheme}://[{v6}]:{}", state.api_port)),
    }
}

fn setup<D: DrawTarget<Color = Rgb565>>(state: &DisplayState, t: &mut D) -> Result<(), D::Error> {
    let size = t.bounding_box().size;
    let inner = size.width - 2 * MARGIN as u32;
    t.clear(BG)?;
    let title = if state.setup_code.is_some() {
        "Set up wagate"
    } else {
        "This device"
    };
    header(t, title, "", BLUE)?;
    let x = MARGIN;
    let mut y = HEADER_H as i32 + 8;

    y = label(t, "Device name", x, y)?;
    let name = fit(&state.device_name, &FONT_10X20, inner);
    text(t, &name, &FONT_10X20, TEXT, x, y, Alignment::Left)?;
    y += 26;

    y = label(t, "Open in a browser", x, y)?;
    if state.addresses.is_empty() {
        text(
            t,
            "No network yet",
            &FONT_7X13,
            AMBER,
            x,
            y,
            Alignment::Left,
        )?;
        y += 16;
    }
    // Leave room for the code box (and the fingerprint) below the addresses.
    let reserve = if state.setup_code.is_some() { 62 } else { 0 }
        + if state.cert_fingerprint.is_some() {
            58
        } else {
            0
        };
    for ip in &state.addresses {
        if y + 15 > size.height as i32 - reserve {
            break;
        }
        let addr = address_line(state, ip);
        let font = if text_width(&addr, &FONT_7X13_BOLD) <= inner {
            &FONT_7X13_BOLD
        } else {
            &FONT_6X13
        };
        // A cut address is no use; skip it unless it is the only one.
        if text_width(&addr, font) > inner && state.addresses.len() > 1 {
            continue;
        }
        let addr = fit(&addr, font, inner);
        text(t, &addr, font, TEXT, x, y, Alignment::Left)?;
        y += 16;
    }
    y += 6;

    if let Some(code) = &state.setup_code {
        y = label(t, "Setup code", x, y)?;
        let w = text_width(code, &PROFONT_24_POINT) + 24;
        let box_ = RoundedRectangle::with_equal_corners(
            Rectangle::new(Point::new(x, y), Size::new(w.min(inner), 38)),
            Size::new(6, 6),
        );
        box_.into_styled(PrimitiveStyle::with_stroke(GREEN, 2))
            .draw(t)?;
        text(
            t,
            code,
            &PROFONT_24_POINT,
            GREEN,
            x + 12,
            y + 5,
            Alignment::Left,
        )?;
        y += 46;
    }

    if let Some(fp) = &state.cert_fingerprint {
        y = label(t, "Certificate SHA-256", x, y)?;
        // Break lines after a colon, so no hex pair is cut in two.
        let max = chars_in(inner, &FONT_6X13) / 3 * 3;
        let mut rest: &str = fp;
        for _ in 0..3 {
            if rest.is_empty() {
                break;
            }
            let cut = rest.char_indices().nth(max).map_or(rest.len(), |(i, _)| i);
            text(t, &rest[..cut], &FONT_6X13, MUTED, x, y, Alignment::Left)?;
            rest = &rest[cut..];
            y += 14;
        }
    }
    Ok(())
}

/// A QR symbol fitted to a box: the code, its scale (pixels per module) and side in pixels
/// including the quiet zone.
pub struct FittedQr {
    pub code: QrCode,
    pub level: EcLevel,
    pub scale: u32,
}

impl FittedQr {
    /// Modules per side without the quiet zone.
    pub fn modules(&self) -> u32 {
        self.code.width() as u32
    }

    /// Side in pixels, quiet zone included.
    pub fn side(&self) -> u32 {
        (self.modules() + 2 * QUIET_ZONE) * self.scale
    }
}

/// Encode `payload` at the largest integer scale that fits `max_w` x `max_h` with the quiet
/// zone. Error correction M unless L (a smaller symbol) reaches a larger scale. `None` when
/// no level fits at scale 1.
pub fn fit_qr(payload: &str, max_w: u32, max_h: u32) -> Option<FittedQr> {
    let room = max_w.min(max_h);
    let mut best: Option<FittedQr> = None;
    for level in [EcLevel::M, EcLevel::L] {
        let Ok(code) = QrCode::with_error_correction_level(payload.as_bytes(), level) else {
            continue;
        };
        let scale = room / (code.width() as u32 + 2 * QUIET_ZONE);
        if scale > 0 && best.as_ref().is_none_or(|b| scale > b.scale) {
            best = Some(FittedQr { code, level, scale });
        }
    }
    best
}

/// Draw the symbol with its quiet zone, top-left corner of the quiet zone at `at`.
fn draw_qr<D: DrawTarget<Color = Rgb565>>(
    t: &mut D,
    qr: &FittedQr,
    at: Point,
) -> Result<(), D::Error> {
    let side = qr.side();
    t.fill_solid(&Rectangle::new(at, Size::new(side, side)), PAPER)?;
    let n = qr.code.width();
    let s = qr.scale;
    let origin = at + Point::new((QUIET_ZONE * s) as i32, (QUIET_ZONE * s) as i32);
    for (i, c) in qr.code.to_colors().into_iter().enumerate() {
        if c == qrcode::Color::Dark {
            let p = origin + Point::new(((i % n) as u32 * s) as i32, ((i / n) as u32 * s) as i32);
            t.fill_solid(&Rectangle::new(p, Size::new(s, s)), INK)?;
        }
    }
    Ok(())
}

/// Room the pairing screen keeps for text below (square, portrait) or beside (landscape) the
/// QR code.
const QR_TEXT_BELOW: u32 = 28;
const QR_TEXT_BESIDE: u32 = 104;

fn pairing<D: DrawTarget<Color = Rgb565>>(
    state: &DisplayState,
    s: &SessionView,
    t: &mut D,
) -> Result<(), D::Error> {
    let SessionState::Qr {
        code,
        expires_at,
        pair_code,
    } = &s.state
    else {
        return status(state, t);
    };
    if let Some(pc) = pair_code {
        return pair_code_screen(state, s, pc, *expires_at, t);
    }
    let size = t.bounding_box().size;
    let sh = shape(size);
    t.clear(PAPER)?;
    let (max_w, max_h) = match sh {
        Shape::Landscape => (size.width - QR_TEXT_BESIDE, size.height),
        _ => (size.width, size.height - QR_TEXT_BELOW),
    };
    let Some(qr) = fit_qr(code, max_w, max_h) else {
        let msg = wrap("This QR code is too long for the screen.", 28);
        let mut y = 40;
        for l in &msg {
            text(
                t,
                l,
                &FONT_9X15,
                INK,
                size.width as i32 / 2,
                y,
                Alignment::Center,
            )?;
            y += 18;
        }
        return Ok(());
    };
    let side = qr.side();
    let left = countdown(*expires_at, state.now_ms);
    let urgent = *expires_at - state.now_ms < 10_000;
    let time_color = if urgent { RED } else { INK };

    match sh {
        Shape::Landscape => {
            let y0 = (size.height.saturating_sub(side) / 2) as i32;
            draw_qr(t, &qr, Point::new(0, y0))?;
            // The panel beside the code.
            let px = side as i32;
            let pw = size.width - side;
            let cx = px + pw as i32 / 2 - 4;
            let inner = pw - 8;
            let mut y = 22;
            let id = fit(&s.id, &FONT_9X15_BOLD, inner);
            text(t, &id, &FONT_9X15_BOLD, INK, cx, y, Alignment::Center)?;
            y += 30;
            text(
                t,
                &left,
                &PROFONT_24_POINT,
                time_color,
                cx,
                y,
                Alignment::Center,
            )?;
            y += 30;
            text(t, "left", &FONT_6X13, INK_MUTED, cx, y, Alignment::Center)?;
            y += 34;
            for l in ["Scan in", "WhatsApp >", "Linked", "devices"] {
                text(t, l, &FONT_7X13_BOLD, INK, cx, y, Alignment::Center)?;
                y += 15;
            }
        }
        Shape::Square => {
            let x0 = ((size.width - side) / 2) as i32;
            draw_qr(t, &qr, Point::new(x0, 0))?;
            let mut y = side as i32 + 1;
            let room = size.height as i32 - y;
            // Two lines when they fit, else one.
            let two = room >= 27;
            if two {
                text(
                    t,
                    "Scan: WhatsApp > Linked devices",
                    &FONT_6X13,
                    INK,
                    size.width as i32 / 2,
                    y,
                    Alignment::Center,
                )?;
                y += 14;
            }
            let id = fit(&s.id, &FONT_7X13_BOLD, size.width / 2);
            text(t, &id, &FONT_7X13_BOLD, INK, MARGIN, y, Alignment::Left)?;
            let tl = line(format_args!("expires {left}"));
            text(
                t,
                &tl,
                &FONT_7X13_BOLD,
                time_color,
                size.width as i32 - MARGIN,
                y,
                Alignment::Right,
            )?;
        }
        Shape::Portrait => {
            let x0 = ((size.width - side) / 2) as i32;
            draw_qr(t, &qr, Point::new(x0, 0))?;
            let cx = size.width as i32 / 2;
            let mut y = side as i32 + 2;
            let id = fit(&s.id, &FONT_10X20, size.width - 16);
            text(t, &id, &FONT_10X20, INK, cx, y, Alignment::Center)?;
            y += 24;
            text(
                t,
                &left,
                &PROFONT_24_POINT,
                time_color,
                cx,
                y,
                Alignment::Center,
            )?;
            y += 34;
            for l in ["Scan in WhatsApp >", "Linked devices"] {
                text(t, l, &FONT_7X13_BOLD, INK, cx, y, Alignment::Center)?;
                y += 15;
            }
        }
    }
    Ok(())
}

/// Pairing by phone number: the 8-character code to type on the phone, as `ABCD-EFGH`.
fn pair_code_screen<D: DrawTarget<Color = Rgb565>>(
    state: &DisplayState,
    s: &SessionView,
    pc: &str,
    expires_at: i64,
    t: &mut D,
) -> Result<(), D::Error> {
    let size = t.bounding_box().size;
    let inner = size.width - 2 * MARGIN as u32;
    let cx = size.width as i32 / 2;
    t.clear(BG)?;
    header(t, "Link with phone", &s.id, AMBER)?;
    let mut y = HEADER_H as i32 + 10;
    let help = "On the phone: WhatsApp > Linked devices > Link a device > Link with phone number instead, then type:";
    for l in &wrap(help, chars_in(inner, &FONT_6X13)) {
        text(t, l, &FONT_6X13, MUTED, MARGIN, y, Alignment::Left)?;
        y += 14;
    }
    y += 8;
    let mut compact = Line::new();
    for c in pc.chars().filter(|c| !c.is_whitespace() && *c != '-') {
        let _ = compact.push(c);
    }
    let shown = if compact.chars().count() == 8 {
        let (a, b) = compact.split_at(4);
        line(format_args!("{a}-{b}"))
    } else {
        short(pc)
    };
    let w = (text_width(&shown, &PROFONT_24_POINT) + 24).min(inner);
    let bx = cx - w as i32 / 2;
    RoundedRectangle::with_equal_corners(
        Rectangle::new(Point::new(bx, y), Size::new(w, 42)),
        Size::new(6, 6),
    )
    .into_styled(
        PrimitiveStyleBuilder::new()
            .stroke_color(AMBER)
            .stroke_width(2)
            .build(),
    )
    .draw(t)?;
    text(
        t,
        &shown,
        &PROFONT_24_POINT,
        TEXT,
        cx,
        y + 7,
        Alignment::Center,
    )?;
    y += 54;
    let left = countdown(expires_at, state.now_ms);
    let urgent = expires_at - state.now_ms < 10_000;
    let tl = line(format_args!("expires in {left}"));
    text(
        t,
        &tl,
        &FONT_9X15_BOLD,
        if urgent { RED } else { TEXT },
        cx,
        y,
        Alignment::Center,
    )?;
    Ok(())
}

fn status<D: DrawTarget<Color = Rgb565>>(state: &DisplayState, t: &mut D) -> Result<(), D::Error> {
    let size = t.bounding_box().size;
    let w = size.width;
    t.clear(BG)?;
    header(t, "wagate", &state.device_name, GREEN)?;

    const ROW_H: u32 = 44;
    const COMPACT_H: u32 = 22;
    const FOOTER_H: u32 = 18;
    let top = HEADER_H as i32;
    let body = size.height - HEADER_H - FOOTER_H;
    let n = state.sessions.len();
    // Two lines per session while they fit, else one.
    let compact = n > (body / ROW_H) as usize;
    let row_h = if compact { COMPACT_H } else { ROW_H };
    let fits = (body / row_h) as usize;
    let shown = if n > fits { fits.saturating_sub(1) } else { n };

    if n == 0 {
        text(
            t,
            "No sessions yet",
            &FONT_9X15,
            MUTED,
            w as i32 / 2,
            top + 40,
            Alignment::Center,
        )?;
    }
    for (i, s) in state.sessions.iter().take(shown).enumerate() {
        let y = top + (i as u32 * row_h) as i32;
        session_row(t, s, y, w, compact)?;
        fill(
            t,
            MARGIN,
            y + row_h as i32 - 1,
            w - 2 * MARGIN as u32,
            1,
            RULE,
        )?;
    }
    if shown < n {
        let y = top + (shown as u32 * row_h) as i32 + 5;
        let more = line(format_args!("+ {} more sessions", n - shown));
        text(t, &more, &FONT_7X13, MUTED, MARGIN + 16, y, Alignment::Left)?;
    }

    // Footer: where the API is.
    let fy = (size.height - FOOTER_H) as i32 + 3;
    let footer = match state.addresses.first() {
        Some(ip) => address_line(state, ip),
        None => short("no network"),
    };
    let footer = fit(&footer, &FONT_6X13, w - 2 * MARGIN as u32);
    text(
        t,
        &footer,
        &FONT_6X13,
        MUTED,
        w as i32 / 2,
        fy,
        Alignment::Center,
    )?;
    Ok(())
}

fn session_row<D: DrawTarget<Color = Rgb565>>(
    t: &mut D,
    s: &SessionView,
    y: i32,
    w: u32,
    compact: bool,
) -> Result<(), D::Error> {
    let (label, color) = state_label(&s.state);
    if compact {
        // One line: dot, id, (failed deliveries), state.
        Circle::new(Point::new(MARGIN + 1, y + 6), 8)
            .into_styled(PrimitiveStyle::with_fill(color))
            .draw(t)?;
        let right = w as i32 - MARGIN;
        text(
            t,
            label,
            &FONT_7X13_BOLD,
            color,
            right,
            y + 4,
            Alignment::Right,
        )?;
        let mut used = text_width(label, &FONT_7X13_BOLD);
        if s.failed_deliveries > 0 {
            let f = line(format_args!("{} failed ", s.failed_deliveries));
            text(
                t,
                &f,
                &FONT_6X13,
                RED,
                right - used as i32,
                y + 4,
                Alignment::Right,
            )?;
            used += text_width(&f, &FONT_6X13);
        }
        let room = w.saturating_sub(2 * MARGIN as u32 + 16 + used + 6);
        let id = fit(&s.id, &FONT_7X13_BOLD, room);
        text(
            t,
            &id,
            &FONT_7X13_BOLD,
            TEXT,
            MARGIN + 16,
            y + 4,
            Alignment::Left,
        )?;
        return Ok(());
    }
    Circle::new(Point::new(MARGIN, y + 8), 10)
        .into_styled(PrimitiveStyle::with_fill(color))
        .draw(t)?;
    let right = w as i32 - MARGIN;
    // Line 1: id, state.
    let label_w = text_width(label, &FONT_7X13_BOLD);
    let id_room = w.saturating_sub(2 * MARGIN as u32 + 16 + label_w + 8);
    let id = fit(&s.id, &FONT_9X15_BOLD, id_room);
    text(
        t,
        &id,
        &FONT_9X15_BOLD,
        TEXT,
        MARGIN + 16,
        y + 6,
        Alignment::Left,
    )?;
    text(
        t,
        label,
        &FONT_7X13_BOLD,
        color,
        right,
        y + 7,
        Alignment::Right,
    )?;
    // Line 2: number, queue, failed deliveries.
    let y2 = y + 25;
    let q = line(format_args!("queue {}", s.queue_depth));
    let f = line(format_args!(" · failed {}", s.failed_deliveries));
    let f_color = if s.failed_deliveries > 0 { RED } else { MUTED };
    text(t, &f, &FONT_6X13, f_color, right, y2, Alignment::Right)?;
    let qx = right - text_width(&f, &FONT_6X13) as i32;
    text(t, &q, &FONT_6X13, MUTED, qx, y2, Alignment::Right)?;
    let used = text_width(&q, &FONT_6X13) + text_width(&f, &FONT_6X13);
    let phone_room = w.saturating_sub(2 * MARGIN as u32 + 16 + used + 6);
    let phone = match &s.phone {
        Some(p) => pretty_phone(p),
        None => short("not linked"),
    };
    let phone = fit(&phone, &FONT_6X13, phone_room);
    text(
        t,
        &phone,
        &FONT_6X13,
        if s.phone.is_some() { TEXT } else { MUTED },
        MARGIN + 16,
        y2,
        Alignment::Left,
    )?;
    Ok(())
}

fn failure<D: DrawTarget<Color = Rgb565>>(
    state: &DisplayState,
    s: &SessionView,
    t: &mut D,
) -> Result<(), D::Error> {
    let SessionState::Failed {
        reason,
        until,
        message,
    } = &s.state
    else {
        return status(state, t);
    };
    let size = t.bounding_box().size;
    let inner = size.width - 2 * MARGIN as u32;
    let x = MARGIN;
    t.clear(BG)?;
    let others = state
        .sessions
        .iter()
        .filter(|o| o.state.is_failed())
        .count()
        - 1;
    let note = if others > 0 {
        line(format_args!("+{others} more"))
    } else {
        Line::new()
    };
    header(t, "Needs attention", &note, RED)?;
    let mut y = HEADER_H as i32 + 8;

    y = label(t, "Session", x, y)?;
    let id = fit(&s.id, &FONT_10X20, inner);
    text(t, &id, &FONT_10X20, TEXT, x, y, Alignment::Left)?;
    y += 26;

    let (title, detail): (&str, Line) = match reason {
        FailReason::Banned => (
            "Banned by WhatsApp",
            match until {
                Some(u) => line(format_args!(
                    "Until {}\n{} left",
                    utc_time(*u),
                    duration_words(*u - state.now_ms)
                )),
                None => short("No end date given."),
            },
        ),
        FailReason::LoggedOut => ("Logged out", short("The phone removed this linked device.")),
        FailReason::QrExhausted => ("QR code expired", short("Nobody scanned the code in time.")),
        FailReason::ClientOutdated => (
            "Client outdated",
            short("WhatsApp refuses this client version."),
        ),
        FailReason::Replaced => ("Replaced", short("Another connection took over.")),
        FailReason::PairFailed => ("Pairing failed", short("The phone did not finish linking.")),
        FailReason::PasskeyRequired => (
            "Passkey needed",
            short("WhatsApp wants the account's passkey. This box cannot use one."),
        ),
        FailReason::Storage => ("Storage error", short("Keys could not be loaded or saved.")),
    };
    text(t, title, &FONT_9X15_BOLD, RED, x, y, Alignment::Left)?;
    y += 19;
    let max = chars_in(inner, &FONT_7X13);
    let detail_lines = detail.split('\n').flat_map(|part| wrap(part, max));
    for l in detail_lines.take(3) {
        text(t, &l, &FONT_7X13, TEXT, x, y, Alignment::Left)?;
        y += 15;
    }
    // The passkey's explanation is the hint below, in the screen's own words.
    let message = message
        .as_deref()
        .filter(|_| *reason != FailReason::PasskeyRequired);
    if let Some(m) = message.filter(|m| !m.is_empty()) {
        for l in wrap(m, chars_in(inner, &FONT_6X13)).iter().take(2) {
            text(t, l, &FONT_6X13, MUTED, x, y, Alignment::Left)?;
            y += 14;
        }
    }

    // What to do, at the bottom.
    let hint: Line = match reason {
        FailReason::QrExhausted if state.has_button => short("Press the button for a new QR code."),
        FailReason::QrExhausted | FailReason::LoggedOut | FailReason::PairFailed => {
            line(format_args!(
                "Pair again: restart wagate or run: wagate session start {}",
                s.id
            ))
        }
        FailReason::Banned => short("Wait for the ban to end, then start the session again."),
        FailReason::ClientOutdated => short("Update wagate or whatsapp.version."),
        FailReason::Replaced => line(format_args!(
            "Stop the other client, then: wagate session start {}",
            s.id
        )),
        FailReason::Storage => short("Check the logs and the data directory."),
        FailReason::PasskeyRequired => {
            short("Phone: Settings > Account > Passkeys: remove it, pair again.")
        }
    };
    let lines = wrap(&hint, chars_in(inner - 12, &FONT_7X13));
    let n = lines.len().min(4) as u32;
    let box_h = n * 15 + 12;
    let by = (size.height - box_h - MARGIN as u32) as i32;
    if by > y {
        RoundedRectangle::with_equal_corners(
            Rectangle::new(Point::new(x, by), Size::new(inner, box_h)),
            Size::new(6, 6),
        )
        .into_styled(PrimitiveStyle::with_fill(RULE))
        .draw(t)?;
        let mut ly = by + 6;
        for l in lines.iter().take(4) {
            text(t, l, &FONT_7X13, AMBER, x + 6, ly, Alignment::Left)?;
            ly += 15;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Samples
// ---------------------------------------------------------------------------------------------

/// A fixed instant for samples and snapshots: 2026-11-24 12:00:00 UTC.
pub const SAMPLE_NOW_MS: i64 = 1_795_521_600_000;

/// A realistic pairing payload: `ref,base64(noise pub),base64(identity pub),base64(adv
/// secret),client_type`, with a ref of `ref_len` characters (WhatsApp's are ~ 80-90).
pub fn sample_qr_payload(ref_len: usize) -> String {
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    // A fixed pseudo-random stream (xorshift), so the sample is stable.
    let mut x: u32 = 0x9E37_79B9;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        B64[(x % 64) as usize] as char
    };
    let mut s = String::from("2@");
    for _ in 0..ref_len.saturating_sub(2) {
        s.push(next());
    }
    for _ in 0..3 {
        s.push(',');
        // base64 of 32 bytes: 43 characters and one '='.
        for _ in 0..43 {
            s.push(next());
        }
        s.push('=');
    }
    s.push_str(",1");
    s
}

/// The sample certificate fingerprint.
pub const SAMPLE_FINGERPRINT: &str = "3F:A9:1C:77:0B:5E:D2:48:9A:C3:11:F0:6D:2B:84:E7:55:19:AC:0D:73:BE:42:96:1F:C8:3A:60:DB:25:E4:7F";

/// A plausible state that shows `screen` (for `wagate display render` and the snapshots).
pub fn sample(screen: Screen) -> DisplayState {
    let now = SAMPLE_NOW_MS;
    let mut st = DisplayState {
        device_name: short("wagate-kitchen"),
        api_port: 8080,
        now_ms: now,
        has_button: true,
        ..DisplayState::default()
    };
    let _ = st.addresses.push(IpAddr::from([192, 168, 1, 23]));
    let _ = st.addresses.push(IpAddr::from([
        0xfd00, 0, 0, 0, 0x1a2b, 0x3c4d, 0x5e6f, 0x7081,
    ]));

    let mut shop = SessionView::new(
        "shop",
        SessionState::Connected {
            since: now - 3_600_000,
        },
    );
    shop.phone = Some(short("4915123456789"));
    shop.queue_depth = 3;
    let mut support = SessionView::new(
        "support",
        SessionState::Disconnected {
            since: now - 20_000,
            attempts: 2,
            reason: crate::events::DisconnectReason::NoAnswer,
            message: None,
        },
    );
    support.phone = Some(short("447700900123@s.whatsapp.net"));
    support.failed_deliveries = 2;
    let newbie = SessionView::new(
        "newbie",
        SessionState::Qr {
            code: sample_qr_payload(88),
            expires_at: now + 42_000,
            pair_code: None,
        },
    );
    let banned = SessionView::new(
        "promo",
        SessionState::Failed {
            reason: FailReason::Banned,
            until: Some(now + 3 * 3_600_000 + 20 * 60_000),
            message: None,
        },
    );
    match screen {
        Screen::Setup => {
            st.setup_code = Some(short("K7P4-QX9M"));
            st.tls = true;
            st.api_port = 8443;
            st.cert_fingerprint = Some(short(SAMPLE_FINGERPRINT));
        }
        Screen::Pairing => {
            st.upsert(shop);
            st.upsert(newbie);
        }
        Screen::Status => {
            st.upsert(shop);
            st.upsert(support);
            st.upsert(SessionView::new("alerts", SessionState::Connecting));
        }
        Screen::Failure => {
            st.upsert(shop);
            st.upsert(banned);
        }
    }
    st
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_splits_words_and_long_words() {
        let l = wrap("one two three", 7);
        assert_eq!(
            l.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            ["one two", "three"]
        );
        let l = wrap("abcdefghij", 4);
        assert_eq!(
            l.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            ["abcd", "efgh", "ij"]
        );
    }

    #[test]
    fn fit_cuts_with_dots() {
        assert_eq!(fit("abcdef", &FONT_6X13, 36).as_str(), "abcdef");
        assert_eq!(fit("abcdefg", &FONT_6X13, 36).as_str(), "abcd..");
    }

    #[test]
    fn times() {
        assert_eq!(utc_time(SAMPLE_NOW_MS).as_str(), "2026-11-24 12:00 UTC");
        assert_eq!(utc_time(0).as_str(), "1970-01-01 00:00 UTC");
        assert_eq!(countdown(42_000, 0).as_str(), "0:42");
        assert_eq!(countdown(41_001, 0).as_str(), "0:42");
        assert_eq!(countdown(-5, 0).as_str(), "0:00");
        assert_eq!(
            duration_words(3 * 3_600_000 + 20 * 60_000).as_str(),
            "3 h 20 min"
        );
        assert_eq!(duration_words(50 * 3_600_000).as_str(), "2 d 2 h");
    }

    #[test]
    fn phones() {
        assert_eq!(pretty_phone("4915123456789").as_str(), "+4915123456789");
        assert_eq!(
            pretty_phone("4915123456789:12@s.whatsapp.net").as_str(),
            "+4915123456789"
        );
        assert_eq!(pretty_phone("12345@lid").as_str(), "+12345");
    }

    #[test]
    fn auto_screen_priorities() {
        let mut st = sample(Screen::Status);
        assert_eq!(Screen::auto(&st), Screen::Status);
        st.upsert(SessionView::new(
            "x",
            SessionState::Failed {
                reason: FailReason::LoggedOut,
                until: None,
                message: None,
            },
        ));
        assert_eq!(Screen::auto(&st), Screen::Failure);
        st.setup_code = Some(short("ABC"));
        assert_eq!(Screen::auto(&st), Screen::Setup);
        st.upsert(SessionView::new(
            "y",
            SessionState::Qr {
                code: "c".into(),
                expires_at: 0,
                pair_code: None,
            },
        ));
        assert_eq!(Screen::auto(&st), Screen::Pairing);
    }

    #[test]
    fn button_cycles_then_times_out_and_restarts_exhausted_pairing() {
        let mut sel = Selector::default();
        let mut st = sample(Screen::Status);
        assert_eq!(sel.current(&st), Screen::Status);
        assert_eq!(sel.press(&st), Press::Show(Screen::Setup));
        assert_eq!(sel.current(&st), Screen::Setup);
        // Failure and pairing have nothing to show: back to status.
        assert_eq!(sel.press(&st), Press::Show(Screen::Status));
        assert_eq!(sel.press(&st), Press::Show(Screen::Setup));
        st.now_ms += MANUAL_MS;
        assert_eq!(sel.current(&st), Screen::Status);

        // A new QR ends the override at once.
        assert_eq!(sel.press(&st), Press::Show(Screen::Setup));
        st.upsert(SessionView::new(
            "new",
            SessionState::Qr {
                code: "c".into(),
                expires_at: st.now_ms + 1000,
                pair_code: None,
            },
        ));
        assert_eq!(sel.current(&st), Screen::Pairing);

        // An exhausted pairing: the press restarts it.
        st.upsert(SessionView::new(
            "new",
            SessionState::Failed {
                reason: FailReason::QrExhausted,
                until: None,
                message: None,
            },
        ));
        assert_eq!(sel.current(&st), Screen::Failure);
        assert_eq!(sel.press(&st), Press::RestartPairing(short("new")));
    }

    #[test]
    fn sample_payload_is_realistic() {
        let p = sample_qr_payload(88);
        let parts: Vec<&str> = p.split(',').collect();
        assert_eq!(parts.len(), 5);
        assert_eq!(parts[0].len(), 88);
        assert!(parts[1..4].iter().all(|k| k.len() == 44));
        assert!((220..=240).contains(&p.len()), "{}", p.len());
    }

    #[test]
    fn qr_scale_at_240() {
        let p = sample_qr_payload(96);
        let q = fit_qr(&p, 240, 240 - QR_TEXT_BELOW).unwrap();
        assert_eq!(q.scale, 3);
        assert!(q.side() <= 240 - QR_TEXT_BELOW);
        assert_eq!(q.level, EcLevel::M);
        // A short code gets a larger scale.
        let q = fit_qr("2@short,a,b,c,1", 240, 212).unwrap();
        assert!(q.scale >= 7, "{}", q.scale);
    }
}
