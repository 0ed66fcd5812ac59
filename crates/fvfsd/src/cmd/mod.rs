//! One module per `fvfsd` subcommand.
pub mod dump;
pub mod export;
pub mod files;
pub mod format;
pub mod fsck;
pub mod hsm;
pub mod migrate;
pub mod mount;
pub mod music;
pub mod music_mount;
pub mod restore;
pub mod serve;
pub mod status;
pub mod tiers;
pub mod token;
