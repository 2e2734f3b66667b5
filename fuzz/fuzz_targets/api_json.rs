//! Every JSON request body the API takes, through the real router (content type check, body
//! limit, serde with the field named, then the handler's validation) on a real redb file:
//! the 14 send kinds, session create, pacing settings PUT, webhook create and patch, key
//! create, the setup claim and the pair-code request. Every answer must be a non-5xx, and
//! every 4xx the JSON error shape.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wagate_fuzz::{Api, KINDS};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let api = Api::get();
    let sel = sel as usize % (KINDS.len() + 7);
    let (method, path) = match sel {
        k if k < KINDS.len() => ("POST", format!("/api/sessions/default/messages/{}", KINDS[k])),
        14 => ("POST", "/api/sessions".to_string()),
        15 => ("PUT", "/api/sessions/default/settings".to_string()),
        16 => ("POST", "/api/webhooks".to_string()),
        17 => ("PATCH", format!("/api/webhooks/{}", api.webhook)),
        18 => ("POST", "/api/keys".to_string()),
        19 => ("POST", "/api/setup".to_string()),
        _ => ("POST", "/api/sessions/default/pair-code".to_string()),
    };
    api.check(method, &path, Some("application/json"), body.to_vec());
    if sel == 15 {
        // Whatever the fuzzer set, the next input starts from the platform defaults.
        api.check(method, &path, Some("application/json"), b"{}".to_vec());
    }
});
