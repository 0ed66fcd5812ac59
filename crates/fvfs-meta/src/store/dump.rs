//! [`DumpStore`]: the whole metadata to and from the engine-neutral JSON dump
//! (`crate::dump`, docs/FORMAT.md "Metadata dump"), to move a filesystem between engines
//! or keep a copy readable without fvfs.

use crate::dump::DumpTotals;
use crate::error::Result;

pub trait DumpStore {
    /// Writes every table but the live sessions, from one consistent snapshot, streaming.
    /// Concurrent operations go on while it runs.
    fn dump(&self, out: &mut dyn std::io::Write) -> Result<DumpTotals>;
    /// Fills this store, which must be empty (not formatted), from a dump of the same
    /// schema version, in one transaction: on any error nothing is loaded.
    fn load(&self, input: &mut dyn std::io::Read) -> Result<DumpTotals>;
}
