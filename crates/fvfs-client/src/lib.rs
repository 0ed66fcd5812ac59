//! The LAN client of fvfsd: a typed HTTP client of `/v1` (`client.rs`), discovery of the
//! daemon over mDNS (`discover.rs`), the stored login and TLS pins (`config.rs`), a
//! read cache of blocks keyed by content id (`cache.rs`) and a read-write FUSE mount
//! through the API (`mount/`).
//!
//! Invariants: no byte from the network is used before it is verified: a block against
//! its BLAKE3 id, a TLS peer against its pinned SHA-256 fingerprint. This crate links
//! neither SQLite nor any storage SDK.

pub mod cache;
pub mod client;
pub mod config;
pub mod discover;
pub mod mount;

pub use client::{Client, ClientError};
