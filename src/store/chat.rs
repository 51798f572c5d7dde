//! The live chat's state that must survive a restart: each visitor's
//! conversation (by the hash of their token, never the token itself) and
//! the nonces of verified identities already used (until they expire, so
//! an identity cannot be replayed across a restart either).
//!
//! A conversation's record is bookkeeping (who, which ticket, what the
//! transcript covered); its lines are the ticket's messages. Once ended
//! and kept for `keep_conversations`, the record is pruned
//! ([`Store::prune_chat_conversations`]), so the table, which the chat's
//! sweeper and erasure walk, holds recent visitors only.

use super::{Result, Store, Tx, dec, enc};
use crate::model::{MessageSeq, TicketId};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

/// SHA-256 of the visitor token (hex) → JSON [`ChatConversation`].
pub(super) const CHAT_CONVERSATIONS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("chat_conversations");
/// Nonce of a verified identity → its expiry (unix seconds).
pub(super) const CHAT_NONCES: TableDefinition<&str, i64> = TableDefinition::new("chat_nonces");
/// Agent name (lower-cased) → since when they are away (`#away`); absent:
/// available for live chats.
pub(super) const CHAT_AWAY: TableDefinition<&str, i64> = TableDefinition::new("chat_away");

/// One visitor's conversation with the desk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatConversation {
    pub site: String,
    /// The visitor's address (lower-cased).
    pub address: String,
    #[serde(default)]
    pub name: String,
    /// The site vouched for the address (a valid identity) or the visitor
    /// opened the link mailed to it.
    pub verified: bool,
    pub started_at: i64,
    /// The visitor's last line or stream, for the idle timeout.
    pub last_active: i64,
    /// The spooled first line, until the processor has made its ticket.
    pub first_seq: Option<MessageSeq>,
    pub ticket: Option<TicketId>,
    /// Message-IDs of the first and the latest line (threading headers).
    pub root_message_id: Option<String>,
    pub last_message_id: Option<String>,
    /// Lines the visitor sent.
    pub lines: u64,
    /// The visitor left or idled out; the transcript was queued.
    pub ended: bool,
    /// The highest message of the ticket a transcript has covered.
    #[serde(default)]
    pub transcript_upto: MessageSeq,
    /// The "continue this chat" link went to the (unverified) address.
    #[serde(default)]
    pub link_mailed: bool,
}

impl ChatConversation {
    /// Whether the record may go: its visitor was last there before
    /// `before`, and it ended (transcript queued) or never made a ticket
    /// (a first line that never became one cannot end). One that is not
    /// ended yet waits for the sweeper to end it and mail its transcript.
    pub fn prunable(&self, before: i64) -> bool {
        self.last_active < before && (self.ended || self.ticket.is_none())
    }
}

impl Tx<'_> {
    pub fn chat_conversation(&mut self, visitor: &str) -> Result<Option<ChatConversation>> {
        let t = self.txn.open_table(CHAT_CONVERSATIONS)?;
        let v = t.get(visitor)?;
        v.map(|v| dec("chat_conversations", v.value())).transpose()
    }

    pub fn put_chat_conversation(&mut self, visitor: &str, c: &ChatConversation) -> Result<()> {
        let mut t = self.txn.open_table(CHAT_CONVERSATIONS)?;
        t.insert(visitor, enc(c).as_slice())?;
        Ok(())
    }

    /// Records `nonce` until `expiry`; false when it was already used.
    pub fn use_chat_nonce(&mut self, nonce: &str, expiry: i64) -> Result<bool> {
        let mut t = self.txn.open_table(CHAT_NONCES)?;
        if t.get(nonce)?.is_some() {
            return Ok(false);
        }
        t.insert(nonce, expiry)?;
        Ok(true)
    }

    /// Marks `agent` away from live chats since `now`, or available again.
    pub fn set_chat_away(&mut self, agent: &str, away: bool, now: i64) -> Result<()> {
        let mut t = self.txn.open_table(CHAT_AWAY)?;
        let name = agent.to_ascii_lowercase();
        if away {
            if t.get(name.as_str())?.is_none() {
                t.insert(name.as_str(), now)?;
            }
        } else {
            t.remove(name.as_str())?;
        }
        Ok(())
    }

    /// Removes each of `keys` that [`ChatConversation::prunable`] still
    /// finds due (the visitor may have come back since it was listed).
    fn remove_chat_conversations(&mut self, keys: &[String], before: i64) -> Result<usize> {
        let mut t = self.txn.open_table(CHAT_CONVERSATIONS)?;
        let mut removed = 0;
        for key in keys {
            let due = match t.get(key.as_str())? {
                Some(v) => {
                    dec::<ChatConversation>("chat_conversations", v.value())?.prunable(before)
                }
                None => false,
            };
            if due {
                t.remove(key.as_str())?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Forgets nonces expired before `now` (they cannot verify any more).
    pub fn forget_chat_nonces(&mut self, now: i64) -> Result<usize> {
        let mut t = self.txn.open_table(CHAT_NONCES)?;
        let old = t.extract_if(|_, expiry| expiry < now)?.count();
        Ok(old)
    }
}

impl Store {
    pub fn chat_conversation(&self, visitor: &str) -> Result<Option<ChatConversation>> {
        let r = self.db()?.0.begin_read()?;
        let t = match r.open_table(CHAT_CONVERSATIONS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let v = t.get(visitor)?;
        v.map(|v| dec("chat_conversations", v.value())).transpose()
    }

    /// The agents (lower-cased names) who said `#away`.
    pub fn chat_away_agents(&self) -> Result<std::collections::BTreeSet<String>> {
        let r = self.db()?.0.begin_read()?;
        let t = match r.open_table(CHAT_AWAY) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Default::default()),
            Err(e) => return Err(e.into()),
        };
        let mut out = std::collections::BTreeSet::new();
        for item in t.iter()? {
            out.insert(item?.0.value().to_string());
        }
        Ok(out)
    }

    /// Removes the conversations [`ChatConversation::prunable`] before
    /// `before`, listing at most `batch` per read and removing them in one
    /// write transaction each, so intake never waits long for the writer;
    /// returns how many went.
    pub fn prune_chat_conversations(&self, before: i64, batch: usize) -> Result<usize> {
        let batch = batch.max(1);
        let mut removed = 0;
        let mut after: Option<String> = None;
        loop {
            let due = self.chat_conversations_due(before, after.as_deref(), batch)?;
            let Some(last) = due.last().cloned() else {
                return Ok(removed);
            };
            removed += self.write(|tx| tx.remove_chat_conversations(&due, before))?;
            if due.len() < batch {
                return Ok(removed);
            }
            after = Some(last);
        }
    }

    /// Up to `n` keys after `after` (in key order) of conversations due.
    fn chat_conversations_due(
        &self,
        before: i64,
        after: Option<&str>,
        n: usize,
    ) -> Result<Vec<String>> {
        let r = self.db()?.0.begin_read()?;
        let t = match r.open_table(CHAT_CONVERSATIONS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let range = match after {
            Some(k) => {
                t.range::<&str>((std::ops::Bound::Excluded(k), std::ops::Bound::Unbounded))?
            }
            None => t.range::<&str>(..)?,
        };
        let mut out = Vec::new();
        for item in range {
            let (k, v) = item?;
            let c: ChatConversation = dec("chat_conversations", v.value())?;
            if c.prunable(before) {
                out.push(k.value().to_string());
                if out.len() == n {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Conversations not ended (by key), for the chat's sweeper.
    pub fn open_chat_conversations(&self) -> Result<Vec<(String, ChatConversation)>> {
        let r = self.db()?.0.begin_read()?;
        let t = match r.open_table(CHAT_CONVERSATIONS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for item in t.iter()? {
            let (k, v) = item?;
            let c: ChatConversation = dec("chat_conversations", v.value())?;
            if !c.ended {
                out.push((k.value().to_string(), c));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conversation(last_active: i64, ended: bool, ticket: Option<TicketId>) -> ChatConversation {
        ChatConversation {
            site: "www".into(),
            address: "ann@example.org".into(),
            name: String::new(),
            verified: false,
            started_at: last_active,
            last_active,
            first_seq: ticket.map(|t| t * 10),
            ticket,
            root_message_id: None,
            last_message_id: None,
            lines: 1,
            ended,
            transcript_upto: 0,
            link_mailed: false,
        }
    }

    #[test]
    fn ended_conversations_go_after_their_keep_in_batches_and_active_ones_stay() {
        let dir =
            std::env::temp_dir().join(format!("postdesk-chat-prune-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        let (now, keep) = (1_780_000_000, 30 * 86_400);
        let old = now - keep - 1;
        // Five ended long ago (three batches of two), one stuck without a
        // ticket, one ended recently, one old but not ended (its
        // transcript is not queued yet), one the visitor is in now.
        let mut gone = Vec::new();
        store
            .write(|tx| {
                for i in 0..5 {
                    let key = format!("old-ended-{i}");
                    tx.put_chat_conversation(&key, &conversation(old, true, Some(i + 1)))?;
                    gone.push(key);
                }
                tx.put_chat_conversation("old-no-ticket", &conversation(old, false, None))?;
                gone.push("old-no-ticket".into());
                tx.put_chat_conversation("recent-ended", &conversation(now - 60, true, Some(7)))?;
                tx.put_chat_conversation("old-not-ended", &conversation(old, false, Some(8)))?;
                tx.put_chat_conversation("active", &conversation(now, false, Some(9)))
            })
            .unwrap();
        let writes = || {
            store
                .shared
                .writes
                .load(std::sync::atomic::Ordering::SeqCst)
        };
        let before = writes();
        assert_eq!(store.prune_chat_conversations(now - keep, 2).unwrap(), 6);
        assert!(writes() - before >= 3, "two at most per write");
        for key in &gone {
            assert_eq!(store.chat_conversation(key).unwrap(), None, "{key}");
        }
        for key in ["recent-ended", "old-not-ended", "active"] {
            assert!(store.chat_conversation(key).unwrap().is_some(), "{key}");
        }
        // A visitor who came back (not ended any more) is not pruned.
        let back = conversation(old, false, Some(1));
        assert!(!back.prunable(now - keep));
        assert_eq!(store.prune_chat_conversations(now - keep, 2).unwrap(), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
