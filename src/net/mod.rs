//! The only room that speaks HTTP: the LAN API ([`api`]); the webhook forwarder comes next.

pub mod api;
