//! The QR / pair-code path: what the API (PNG, SVG, JSON) and the terminal make of a QR
//! payload, and the pairing screen drawn with it and a pair code.
#![no_main]

use embedded_graphics::prelude::Size;
use libfuzzer_sys::fuzz_target;
use wagate::display::{DisplayState, Screen, SessionView};
use wagate::events::SessionState;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let (code, pair) = match s.split_once('\0') {
        Some((c, p)) => (c, Some(p.to_string())),
        None => (s, None),
    };
    let _ = wagate::display::qr::Modules::of(code);
    let _ = wagate::display::qr::qr_png(code, 4);
    let _ = wagate::display::qr::qr_svg(code, 4);
    let _ = wagate::display::terminal::qr_text(code);
    let _ = wagate::display::screens::fit_qr(code, 240, 240);
    let mut state = DisplayState::default();
    state.upsert(SessionView::new(
        "default",
        SessionState::Qr {
            code: code.to_string(),
            expires_at: 60_000,
            pair_code: pair,
        },
    ));
    for size in [Size::new(240, 240), Size::new(320, 240), Size::new(128, 160)] {
        let _ = wagate::display::render(Screen::Pairing, &state, size);
    }
});
