//! The send body validation on its own (fast, no store): any JSON value for every kind
//! through `compose::parse`, what it accepts stored and read back as the queue does, and the
//! media type sniffing of raw bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wagate::engine::compose;
use wagate::net::api::error::parse_json;

fuzz_target!(|data: &[u8]| {
    let _ = compose::sniff_mimetype(data);
    let Ok(value) = parse_json::<serde_json::Value>(data) else {
        return;
    };
    for kind in wagate_fuzz::KINDS.iter().chain(&["", "TEXT", "unknown"]) {
        if let Ok(out) = compose::parse(kind, &value) {
            assert_eq!(out.content.kind(), *kind);
            let _ = compose::media_type(&out.content);
            let _ = out.content.text();
            let _ = out.content.mimetype();
            // The queue stores it as JSON: what is accepted must come back the same.
            let stored = serde_json::to_vec(&out).expect("serializable");
            let back: compose::Outgoing =
                serde_json::from_slice(&stored).expect("the stored form reads back");
            assert_eq!(back, out);
        }
    }
});
