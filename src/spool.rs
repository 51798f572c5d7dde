//! Durable intake: the one door through which accepted mail enters.
//!
//! Intake (SMTP, IMAP) hands over a raw message and its envelope and waits;
//! a single writer thread commits everything that arrived meanwhile in one
//! redb transaction (group commit), then answers every waiter. So one fsync
//! serves many sessions, and nobody hears "accepted" before the commit.

use crate::model::{Envelope, ImapCommit, MessageSeq};
use crate::store::Store;
use std::sync::Arc;
use tokio::sync::{Notify, mpsc, oneshot};

/// Most messages committed in one transaction.
const MAX_BATCH: usize = 256;
/// Most bytes committed in one transaction (a batch always takes at least one message).
const MAX_BATCH_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error, Clone)]
pub enum SpoolError {
    /// The commit failed (disk full, I/O error): nothing of the batch was written.
    #[error("could not commit message to storage: {0}")]
    CommitFailed(String),
    /// The daemon is shutting down.
    #[error("spool is closed")]
    Closed,
}

/// One submission: its messages (and IMAP cursor) are committed together,
/// never split across transactions.
struct Request {
    messages: Vec<(Envelope, Vec<u8>)>,
    imap: Option<ImapCommit>,
    reply: oneshot::Sender<Result<Vec<MessageSeq>, SpoolError>>,
}

/// Handle for submitting messages; cheap to clone.
#[derive(Clone)]
pub struct Spool {
    tx: mpsc::Sender<Request>,
}

impl Spool {
    /// Starts the writer thread. `committed` is notified after each commit
    /// (the processor waits on it).
    pub fn start(store: Store, committed: Arc<Notify>) -> Spool {
        let (tx, rx) = mpsc::channel::<Request>(4096);
        // Running from now (not from when the thread gets scheduled) until the writer returns.
        let running = crate::liveness::SPOOL_WRITER.running();
        std::thread::Builder::new()
            .name("spool-writer".into())
            .spawn(move || {
                let _running = running;
                writer(store, rx, committed)
            })
            .expect("spawning the spool writer thread at startup");
        Spool { tx }
    }

    /// Commits `raw` with its envelope durably; resolves only after the commit.
    pub async fn submit(&self, envelope: Envelope, raw: Vec<u8>) -> Result<MessageSeq, SpoolError> {
        let seqs = self.send(vec![(envelope, raw)], None).await?;
        seqs.first()
            .copied()
            .ok_or_else(|| SpoolError::CommitFailed("no sequence number returned".into()))
    }

    /// Commits IMAP messages together with their folder's new cursor (and the
    /// quarantine entries of messages too large to fetch) in one transaction,
    /// still group-committed with whatever else is waiting. Resolves after the
    /// commit: only then may the poller flag, move or delete on the server.
    pub async fn submit_imap(
        &self,
        messages: Vec<(Envelope, Vec<u8>)>,
        commit: ImapCommit,
    ) -> Result<Vec<MessageSeq>, SpoolError> {
        self.send(messages, Some(commit)).await
    }

    async fn send(
        &self,
        messages: Vec<(Envelope, Vec<u8>)>,
        imap: Option<ImapCommit>,
    ) -> Result<Vec<MessageSeq>, SpoolError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request {
                messages,
                imap,
                reply,
            })
            .await
            .map_err(|_| SpoolError::Closed)?;
        rx.await.map_err(|_| SpoolError::Closed)?
    }
}

fn writer(store: Store, mut rx: mpsc::Receiver<Request>, committed: Arc<Notify>) {
    let mut batch: Vec<Request> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        let size = |r: &Request| r.messages.iter().map(|(_, raw)| raw.len()).sum::<usize>();
        let mut bytes = size(&first);
        let mut count = first.messages.len();
        batch.push(first);
        // Take whatever queued up while the previous commit ran: no added delay.
        while count < MAX_BATCH && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(r) => {
                    bytes += size(&r);
                    count += r.messages.len();
                    batch.push(r);
                }
                Err(_) => break,
            }
        }
        let items: Vec<(&Envelope, &[u8])> = batch
            .iter()
            .flat_map(|r| r.messages.iter().map(|(e, raw)| (e, raw.as_slice())))
            .collect();
        let imap: Vec<&ImapCommit> = batch.iter().filter_map(|r| r.imap.as_ref()).collect();
        let busy = crate::liveness::SPOOL_WRITER.busy();
        let result = store.spool_commit(&items, &imap, |tx| {
            for n in imap.iter().flat_map(|c| &c.notices) {
                crate::outbound::queue::enqueue_system(tx, n)?;
            }
            Ok(())
        });
        drop(busy);
        drop(items);
        drop(imap);
        match result {
            Ok(seqs) => {
                tracing::debug!(messages = count, bytes, "spool commit");
                crate::counters::spooled(&seqs);
                let mut seqs = seqs.into_iter();
                for r in batch.drain(..) {
                    let mine: Vec<MessageSeq> = seqs.by_ref().take(r.messages.len()).collect();
                    let _ = r.reply.send(Ok(mine));
                }
                committed.notify_one();
            }
            Err(e) => {
                tracing::error!(error = %e, messages = count, "spool commit failed");
                let err = SpoolError::CommitFailed(e.to_string());
                for r in batch.drain(..) {
                    let _ = r.reply.send(Err(err.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Source;

    fn env(i: usize) -> Envelope {
        Envelope {
            mail_from: format!("c{i}@example.org"),
            rcpt_to: vec!["support@example.test".into()],
            received_at: 0,
            source: Source::Smtp,
            peer: String::new(),
            helo: String::new(),
            imap: None,
            sender_auth: None,
            imported_as: None,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_submits_are_all_committed_byte_exact() {
        let dir = tempdir();
        let store = Store::open(&dir).unwrap();
        let spool = Spool::start(store.clone(), Arc::new(Notify::new()));
        let mut tasks = Vec::new();
        for i in 0..200 {
            let spool = spool.clone();
            tasks.push(tokio::spawn(async move {
                let raw = format!("Subject: {i}\r\n\r\nbody {i}\r\n").into_bytes();
                (spool.submit(env(i), raw.clone()).await.unwrap(), raw)
            }));
        }
        let mut seqs = std::collections::HashSet::new();
        for t in tasks {
            let (seq, raw) = t.await.unwrap();
            assert!(seqs.insert(seq), "sequence {seq} handed out twice");
            assert_eq!(store.raw(seq).unwrap().unwrap(), raw);
        }
        assert_eq!(store.pending_spool(1000).unwrap().len(), 200);
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn imap_group_commits_messages_cursor_and_quarantine_together() {
        use crate::model::{ImapCommit, ImapCursor, ImapFolderState, QuarantineEntry};
        let dir = tempdir();
        let store = Store::open(&dir).unwrap();
        let spool = Spool::start(store.clone(), Arc::new(Notify::new()));
        let cursor = |uid, stored: &[u32]| ImapCursor {
            key: "u@h:143/INBOX".into(),
            uidvalidity: 7,
            uid,
            stored: stored.to_vec(),
        };
        let big = QuarantineEntry {
            message: 0,
            at: 0,
            reason: "IMAP message 3 in INBOX is 999 bytes, above the limit".into(),
            from: String::new(),
            subject: String::new(),
        };
        let msgs = vec![(env(1), b"a".to_vec()), (env(2), b"b".to_vec())];
        let seqs = spool
            .submit_imap(
                msgs,
                ImapCommit {
                    cursor: cursor(3, &[1, 2]),
                    quarantine: vec![big],
                    notices: vec![],
                },
            )
            .await
            .unwrap();
        assert_eq!(seqs.len(), 2);
        let st = store.imap_state("u@h:143/INBOX").unwrap().unwrap();
        assert_eq!(
            st,
            ImapFolderState {
                uidvalidity: 7,
                last_uid: 3,
                acted_uid: 0,
                // UID 3 was quarantined: only 1 and 2 may be flagged.
                unacted: vec![1, 2],
                ..ImapFolderState::default()
            }
        );
        // The cursor never moves back under the same UIDVALIDITY.
        spool
            .submit_imap(
                vec![],
                ImapCommit {
                    cursor: cursor(1, &[]),
                    quarantine: vec![],
                    notices: vec![],
                },
            )
            .await
            .unwrap();
        assert_eq!(
            store.imap_state("u@h:143/INBOX").unwrap().unwrap().last_uid,
            3
        );
        let q = store.quarantine().unwrap();
        assert_eq!(q.len(), 1);
        assert!(
            !seqs.contains(&q[0].message),
            "quarantine entry has its own sequence"
        );
        store.imap_acted("u@h:143/INBOX", 7, 9).unwrap();
        assert_eq!(
            store
                .imap_state("u@h:143/INBOX")
                .unwrap()
                .unwrap()
                .acted_uid,
            3
        );
        assert!(
            store
                .imap_state("u@h:143/INBOX")
                .unwrap()
                .unwrap()
                .unacted
                .is_empty()
        );
        std::fs::remove_dir_all(dir).ok();
    }

    fn tempdir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!(
            "postdesk-spool-test-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
