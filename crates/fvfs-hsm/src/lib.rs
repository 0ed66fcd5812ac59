//! fvfs HSM face: in-place tiering of a native directory. Cold files become sparse
//! "stubs" whose content is recalled from the tiers when a process touches it.
//!
//! This crate is being built in layers; [`fanotify`] is the lowest one, a safe wrapper over
//! the Linux fanotify pre-content API (`FAN_PRE_ACCESS`, kernel 6.14+) with a fallback to
//! `FAN_OPEN_PERM` (whole-file recall on open) on older kernels.

pub mod fanotify;
