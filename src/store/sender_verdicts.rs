//! What postdesk's own SMTP intake verified about each message's sender
//! (`crate::sender_auth`), kept apart from the message records so that
//! mail that was never verified (IMAP, `deliver`, our own) costs nothing.

use super::{Result, Store, Tx, dec, enc};
use crate::model::{MessageSeq, SenderVerdict};
use redb::{ReadableDatabase, TableDefinition};
use std::collections::HashMap;

/// Message sequence → JSON [`SenderVerdict`].
pub(super) const SENDER_VERDICTS: TableDefinition<u64, &[u8]> =
    TableDefinition::new("sender_verdicts");

impl Tx<'_> {
    /// Records the verdict of message `seq` (in the message's transaction).
    pub fn put_sender_verdict(&mut self, seq: MessageSeq, v: &SenderVerdict) -> Result<()> {
        let mut t = self.txn.open_table(SENDER_VERDICTS)?;
        t.insert(seq, enc(v).as_slice())?;
        Ok(())
    }
}

impl Store {
    /// The verdicts of those of `seqs` that have one.
    pub fn sender_verdicts(
        &self,
        seqs: impl IntoIterator<Item = MessageSeq>,
    ) -> Result<HashMap<MessageSeq, SenderVerdict>> {
        let r = self.db()?.0.begin_read()?;
        let t = match r.open_table(SENDER_VERDICTS) {
            Ok(t) => t,
            // Never written yet: no message was verified.
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(HashMap::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = HashMap::new();
        for seq in seqs {
            if let Some(v) = t.get(seq)? {
                out.insert(seq, dec("sender_verdicts", v.value())?);
            }
        }
        Ok(out)
    }
}
