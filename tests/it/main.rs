//! wagate's integration tests: the daemon, the API, the engine through wa-mock, the store, the screen.
//!
//! One test binary: each module is one area (what was one test file), so the whole
//! stack is linked once per feature set. Run one area with a filter, e.g.
//! `cargo test --test it store_faults::`.

mod common;

mod api_auth;
mod api_daemon;
mod api_display;
mod api_docs;
mod api_pacing;
mod api_qr_render;
mod api_sessions;
mod api_setup_keys;
mod appliance;
mod crash_loop;
mod daemon;
mod dashboard;
mod discovery_netns;
mod display;
mod e2e_api;
mod e2e_calls;
mod e2e_conversations;
mod e2e_dead_link;
mod e2e_display;
mod e2e_engine;
mod e2e_group_admin;
mod e2e_groups;
mod e2e_inbound;
mod e2e_lost_inbound;
mod e2e_number;
mod e2e_pacing;
mod e2e_presence;
mod e2e_server_ack;
mod e2e_webhooks;
mod e2e_wire_gate;
mod full_disk;
mod host_guard;
mod https;
mod manager;
mod mock_cert_refused;
mod mqtt;
mod retention_daemon;
mod store_backend;
mod store_faults;
mod webhook_crash;
mod webhooks;
