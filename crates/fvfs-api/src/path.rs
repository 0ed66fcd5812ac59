//! OWNER: see lib.rs layout. Stub.
