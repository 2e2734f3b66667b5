//! Phone numbers and JIDs: the send recipient (`to`), the pair-code phone, session ids, and
//! the display's phone formatting.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wagate::engine::compose::parse_recipient;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = parse_recipient(s) {
        // A recipient that parses is one WhatsApp JID, and parsing what it prints is stable.
        let jid = r.jid().expect("a parsed recipient has a JID");
        let again = parse_recipient(r.as_str()).expect("a parsed recipient parses again");
        assert_eq!(again.as_str(), r.as_str());
        assert_eq!(again.is_group(), r.is_group());
        let _ = jid;
    }
    if let Some(p) = wagate::engine::normalize_phone(s) {
        assert!(p.bytes().all(|b| b.is_ascii_digit()) && (7..=15).contains(&p.len()));
        assert_eq!(wagate::engine::normalize_phone(&p).as_deref(), Some(p.as_str()));
    }
    let _ = wagate::engine::valid_session_id(s);
    let _ = wagate::display::screens::pretty_phone(s);
});
