//! End-to-end tests live in `tests/`; see the crate description.
