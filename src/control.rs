//! Control socket (being written).
