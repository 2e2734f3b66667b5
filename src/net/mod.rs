//! The only room that speaks HTTP: the LAN API ([`api`], HTTPS in [`api::tls`]), media
//! fetched by URL for sends ([`fetch`]), the webhook forwarder ([`webhook`]), the mDNS
//! announcement ([`discovery`]), the three started together by the daemon ([`lan`]), and the
//! browser dashboard at `/` ([`dashboard`]).

pub mod api;
pub mod dashboard;
pub mod discovery;
pub mod fetch;
pub mod lan;
pub mod mqtt;
pub mod webhook;
