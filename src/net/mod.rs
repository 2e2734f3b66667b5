//! The only room that speaks HTTP: the LAN API ([`api`], HTTPS in [`api::tls`]), media
//! fetched by URL for sends ([`fetch`]), the mDNS announcement ([`discovery`]), and the three started
//! together by the daemon ([`lan`]), the browser dashboard at `/` ([`dashboard`]); the webhook
//! forwarder comes next.

pub mod api;
pub mod dashboard;
pub mod discovery;
pub mod fetch;
pub mod lan;
