//! One module per `fvfsd` subcommand.
pub mod format;
pub mod fsck;
pub mod mount;
pub mod serve;
pub mod status;
