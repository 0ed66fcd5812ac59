//! Stub; see lib.rs.
