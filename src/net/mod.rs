//! The only room that speaks HTTP: the LAN API ([`api`]) with its browser dashboard
//! ([`dashboard`]), media fetched by URL for sends ([`fetch`]), and the webhook forwarder
//! ([`webhook`]).

pub mod api;
pub mod dashboard;
pub mod fetch;
pub mod webhook;
