//! The live chat's state that must survive a restart: each visitor's
//! conversation (by the hash of their token, never the token itself) and
//! the nonces of verified identities already used (until they expire, so
//! an identity cannot be replayed across a restart either).

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
