//! Container inventory (being written).
