//! The FUSE mount through the API. Stub.
