//! Delivery evidence: for each outbound message, which server took it and
//! how (its reply and queue id, the TLS of the connection, our DKIM
//! selector). Kept after the job is gone, so a ticket can show that the
//! customer's server accepted a reply, not just that we sent it.

use super::{Result, Tx, dec, enc};
use crate::model::MessageSeq;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Message sequence → JSON list of [`DeliveryEvidence`] (a message to
/// several domains, or delivered in parts, has several).
pub(super) const DELIVERY_EVIDENCE: TableDefinition<u64, &[u8]> =
    TableDefinition::new("delivery_evidence");

/// One acceptance of a message by a server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryEvidence {
    /// Unix seconds when the attempt ended.
    pub at: i64,
    /// The recipients this server accepted.
    pub rcpts: Vec<String>,
    /// How the server was chosen: `smarthost`, `mx` or `implicit-mx` (no MX
    /// record: the domain's own address), `maildir`.
    pub route: String,
    /// The server's name (MX host, smarthost, or the outbox folder).
    pub host: String,
    /// The address connected to, if any.
    #[serde(default)]
    pub ip: Option<String>,
    /// Its reply to the end of DATA, e.g. `250 2.0.0 Ok: queued as 4Xk2`.
    pub reply: String,
    /// The queue id in that reply, when it names one.
    #[serde(default)]
    pub queue_id: Option<String>,
    /// The connection's TLS; None when the message went in clear text.
    #[serde(default)]
    pub tls: Option<TlsEvidence>,
    /// The TLS policy the delivery was held to (`opportunistic`, `require`,
    /// `mta-sts enforce`…), for direct delivery.
    #[serde(default)]
    pub policy: Option<String>,
    /// The DKIM selector that signed the message, if it was signed.
    #[serde(default)]
    pub dkim_selector: Option<String>,
}

/// The TLS of a delivery connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsEvidence {
    /// `TLSv1.3`, `TLSv1.2`.
    pub version: String,
    /// The cipher suite's IANA name.
    pub cipher: String,
    /// Whether the certificate verified for the host name.
    pub verified: bool,
    /// Why it did not verify.
    #[serde(default)]
    pub verify_error: Option<String>,
}

impl Tx<'_> {
    /// Adds `evidence` to what is known of message `seq`'s delivery.
    pub fn add_delivery_evidence(
        &mut self,
        seq: MessageSeq,
        evidence: &[DeliveryEvidence],
    ) -> Result<()> {
        if evidence.is_empty() {
            return Ok(());
        }
        let mut t = self.txn.open_table(DELIVERY_EVIDENCE)?;
        let mut all: Vec<DeliveryEvidence> = match t.get(seq)? {
            Some(v) => dec("delivery_evidence", v.value())?,
            None => Vec::new(),
        };
        all.extend_from_slice(evidence);
        t.insert(seq, enc(&all).as_slice())?;
        Ok(())
    }
}

impl super::Store {
    /// The delivery evidence of each of `seqs` that has some.
    pub fn delivery_evidence(
        &self,
        seqs: &[MessageSeq],
    ) -> Result<HashMap<MessageSeq, Vec<DeliveryEvidence>>> {
        let r = self.db()?.0.begin_read()?;
        let t = match r.open_table(DELIVERY_EVIDENCE) {
            Ok(t) => t,
            // Never written yet: nothing delivered since evidence was kept.
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(HashMap::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = HashMap::new();
        for &seq in seqs {
            if let Some(v) = t.get(seq)? {
                out.insert(seq, dec("delivery_evidence", v.value())?);
            }
        }
        Ok(out)
    }
}
