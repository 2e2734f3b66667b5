//! wa-mock: a mock WhatsApp server (under construction).
