//! wa-mock's own tests: pairing, messaging, groups, faults, with real whatsapp-rust clients.
//!
//! One test binary: each module is one area (what was one test file), so the whole
//! stack is linked once per feature set. Run one area with a filter, e.g.
//! `cargo test -p wa-mock --test it faults::`.

mod common;

mod faults;
mod groups;
mod messaging;
mod pair_code;
mod pairing;
