//! The only room that speaks HTTP: the LAN API ([`api`]), media fetched by URL for
//! sends ([`fetch`]); the webhook forwarder comes next.

pub mod api;
pub mod fetch;
