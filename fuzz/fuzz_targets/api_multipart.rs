//! The multipart/form-data send (a `file` part with the media and text parts for the other
//! fields) through the real router, for every media kind and the rest: the input's first
//! byte picks the kind, the second a boundary form, the rest is the form body as sent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wagate_fuzz::{Api, KINDS};

const CONTENT_TYPES: [&str; 4] = [
    "multipart/form-data; boundary=X",
    "multipart/form-data; boundary=\"--b0undary\"",
    "multipart/form-data",
    "Multipart/Form-Data;boundary=X;charset=utf-8",
];

fuzz_target!(|data: &[u8]| {
    let [kind, ct, body @ ..] = data else {
        return;
    };
    let api = Api::get();
    let path = format!(
        "/api/sessions/default/messages/{}",
        KINDS[*kind as usize % KINDS.len()]
    );
    let ct = CONTENT_TYPES[*ct as usize % CONTENT_TYPES.len()];
    api.check("POST", &path, Some(ct), body.to_vec());
});
