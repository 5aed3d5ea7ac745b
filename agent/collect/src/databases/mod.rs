//! Database discovery (being written).
