//! Addresses whose mail bounced for good: no more automatic mail
//! (acknowledgements, notices) goes to them until they write again.

use super::{Result, Tx, dec, enc};
use crate::model::TicketId;
use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

/// Lower-cased bare address → why it is marked.
pub(super) const BOUNCING: TableDefinition<&str, &[u8]> = TableDefinition::new("bouncing");

/// The permanent failure that marked an address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bouncing {
    /// Unix seconds when the report was processed.
    pub since: i64,
    /// The ticket whose mail bounced.
    pub ticket: TicketId,
    /// The report's status code and text, for the event that cites it.
    pub status: Option<String>,
    pub diagnostic: Option<String>,
}

impl Tx<'_> {
    /// Marks `addr` as bouncing (a later report replaces an earlier one).
    pub fn mark_bouncing(&mut self, addr: &str, why: &Bouncing) -> Result<()> {
        let mut t = self.txn.open_table(BOUNCING)?;
        t.insert(addr.to_ascii_lowercase().as_str(), enc(why).as_slice())?;
        Ok(())
    }

    /// Why `addr` is marked as bouncing, if it is.
    pub fn bouncing(&mut self, addr: &str) -> Result<Option<Bouncing>> {
        let t = self.txn.open_table(BOUNCING)?;
        let v = t.get(addr.to_ascii_lowercase().as_str())?;
        v.map(|v| dec("bouncing", v.value())).transpose()
    }

    /// Forgets the mark (the address wrote to us again); whether there was one.
    pub fn clear_bouncing(&mut self, addr: &str) -> Result<bool> {
        let mut t = self.txn.open_table(BOUNCING)?;
        let removed = t.remove(addr.to_ascii_lowercase().as_str())?.is_some();
        Ok(removed)
    }
}
