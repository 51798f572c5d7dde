//! The SLA timers of open tickets, in due order: `(sortable due, ticket,
//! kind code)` → nothing. `sla_scheduler.rs` takes the due ones from the
//! front; `sla/` adds and clears a ticket's timers.
//!
//! The key is fixed-width (8 + 8 + 1 bytes) because every open ticket holds
//! three or four timers: the older text key `"{due:020}:{ticket:020}:{kind}"`
//! (56 bytes, table `sla_timers`) cost about 380 bytes per ticket, this one
//! about 100 (`cargo bench --bench store`). Older stores are moved over when
//! opened ([`migrate_legacy`]).
//!
//! The store keeps the kind as the string `sla` names it
//! (`first_response:warning`, …) at its interface and stores it as a
//! [`TimerCode`], whose numbers are on disk and so never change.

use super::*;
use redb::TableHandle;

/// `(sortable due, ticket, kind code)` → nothing.
pub(super) const SLA_TIMERS: TableDefinition<(u64, u64, u8), ()> =
    TableDefinition::new("sla_timers_by_due");

/// The table of older stores, `"{due:020}:{ticket:020}:{kind}"` → nothing
/// (due offset by 2^62 so that it sorts as text). Only read by the migration.
const LEGACY_SLA_TIMERS: TableDefinition<&str, ()> = TableDefinition::new("sla_timers");

/// One stored timer kind. The discriminants are the stored codes: append
/// new kinds with new numbers, never renumber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum TimerCode {
    FirstResponseWarning = 1,
    FirstResponseBreach = 2,
    ResolutionWarning = 3,
    ResolutionBreach = 4,
}

impl TimerCode {
    const ALL: [TimerCode; 4] = [
        TimerCode::FirstResponseWarning,
        TimerCode::FirstResponseBreach,
        TimerCode::ResolutionWarning,
        TimerCode::ResolutionBreach,
    ];

    /// The kind as `sla::TimerKind::key` writes it.
    fn kind(self) -> &'static str {
        match self {
            TimerCode::FirstResponseWarning => "first_response:warning",
            TimerCode::FirstResponseBreach => "first_response:breach",
            TimerCode::ResolutionWarning => "resolution:warning",
            TimerCode::ResolutionBreach => "resolution:breach",
        }
    }

    fn from_kind(kind: &str) -> Option<TimerCode> {
        TimerCode::ALL.into_iter().find(|c| c.kind() == kind)
    }

    fn from_code(code: u8) -> Option<TimerCode> {
        TimerCode::ALL.into_iter().find(|c| *c as u8 == code)
    }
}

fn key(due: i64, ticket: TicketId, code: TimerCode) -> (u64, u64, u8) {
    (sortable(due), ticket, code as u8)
}

/// Parses a key of the older text table: (due, ticket, kind).
fn parse_legacy_key(k: &str) -> Option<(i64, TicketId, &str)> {
    let mut parts = k.splitn(3, ':');
    let due: u64 = parts.next()?.parse().ok()?;
    let ticket: TicketId = parts.next()?.parse().ok()?;
    let kind = parts.next()?;
    Some(((due as i128 - (1i128 << 62)) as i64, ticket, kind))
}

/// The code of a kind read from the older table. Some early timers were
/// written with a bare goal, which `sla::TimerKind::parse` reads as its
/// breach: they keep that meaning here.
fn legacy_code(kind: &str) -> Option<TimerCode> {
    match kind {
        "first_response" => Some(TimerCode::FirstResponseBreach),
        "resolution" => Some(TimerCode::ResolutionBreach),
        other => TimerCode::from_kind(other),
    }
}

/// Moves the timers of an older store's text-keyed table into
/// [`SLA_TIMERS`] and deletes it, inside the caller's transaction (the
/// store's open), so a crash leaves either the old table or the new one.
/// A timer whose key or kind cannot be read is dropped with a warning, as
/// the scheduler would have dropped it when it fell due.
pub(super) fn migrate_legacy(txn: &WriteTransaction) -> Result<()> {
    let exists = txn
        .list_tables()?
        .any(|t| t.name() == LEGACY_SLA_TIMERS.name());
    if !exists {
        return Ok(());
    }
    let (mut moved, mut dropped) = (0u64, 0u64);
    {
        let old = txn.open_table(LEGACY_SLA_TIMERS)?;
        let mut new = txn.open_table(SLA_TIMERS)?;
        for item in old.iter()? {
            let (k, _) = item?;
            let k = k.value();
            match parse_legacy_key(k).and_then(|(due, t, kind)| Some((due, t, legacy_code(kind)?)))
            {
                Some((due, ticket, code)) => {
                    new.insert(key(due, ticket, code), ())?;
                    moved += 1;
                }
                None => {
                    tracing::warn!(key = k, "unreadable SLA timer in the old table; dropped");
                    dropped += 1;
                }
            }
        }
    }
    txn.delete_table(LEGACY_SLA_TIMERS)?;
    tracing::info!(moved, dropped, "SLA timers moved to the fixed-width table");
    Ok(())
}

impl Store {
    /// When the earliest SLA timer is due.
    pub fn next_sla_timer(&self) -> Result<Option<i64>> {
        let r = self.db()?.0.begin_read()?;
        let t = r.open_table(SLA_TIMERS)?;
        let first = t.first()?;
        Ok(first.map(|(k, _)| unsortable(k.value().0)))
    }
}

impl Tx<'_> {
    /// Schedules SLA timer `kind` of `ticket` at `due`. A kind without a
    /// stored code is refused ([`StoreError::UnknownSlaTimerKind`]).
    pub fn add_sla_timer(&mut self, due: i64, ticket: TicketId, kind: &str) -> Result<()> {
        let code = TimerCode::from_kind(kind)
            .ok_or_else(|| StoreError::UnknownSlaTimerKind(kind.to_string()))?;
        self.txn
            .open_table(SLA_TIMERS)?
            .insert(key(due, ticket, code), ())?;
        Ok(())
    }

    /// Removes every SLA timer of `ticket` (a full scan of the timer table, which
    /// holds only the timers of open tickets).
    pub fn clear_sla_timers(&mut self, ticket: TicketId) -> Result<()> {
        let mut t = self.txn.open_table(SLA_TIMERS)?;
        t.retain(|(_, of, _), _| of != ticket)?;
        Ok(())
    }

    /// Takes (removes and returns) the timers due at `now`: (due, ticket,
    /// kind). A timer with an unknown code is removed with a warning and not
    /// returned, as the scheduler drops a kind it cannot read.
    pub fn take_due_sla_timers(
        &mut self,
        now: i64,
        limit: usize,
    ) -> Result<Vec<(i64, TicketId, String)>> {
        let mut t = self.txn.open_table(SLA_TIMERS)?;
        let mut keys = Vec::new();
        for item in t.range(..=(sortable(now), u64::MAX, u8::MAX))? {
            if keys.len() >= limit {
                break;
            }
            keys.push(item?.0.value());
        }
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            t.remove(k)?;
            let (due, ticket, code) = (unsortable(k.0), k.1, k.2);
            match TimerCode::from_code(code) {
                Some(c) => out.push((due, ticket, c.kind().to_string())),
                None => tracing::warn!(ticket, code, "unknown SLA timer code; dropped"),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A data directory of its own, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let dir = std::env::temp_dir()
                .join(format!("postdesk-sla-timers-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// The older text key, as the previous version wrote it.
    fn legacy_key(due: i64, ticket: TicketId, kind: &str) -> String {
        format!(
            "{:020}:{ticket:020}:{kind}",
            (due as i128 + (1i128 << 62)) as u64
        )
    }

    #[test]
    fn codes_are_stable_and_round_trip() {
        let stored: Vec<(u8, &str)> = TimerCode::ALL
            .into_iter()
            .map(|c| (c as u8, c.kind()))
            .collect();
        assert_eq!(
            stored,
            vec![
                (1, "first_response:warning"),
                (2, "first_response:breach"),
                (3, "resolution:warning"),
                (4, "resolution:breach"),
            ]
        );
        for c in TimerCode::ALL {
            assert_eq!(TimerCode::from_code(c as u8), Some(c));
            assert_eq!(TimerCode::from_kind(c.kind()), Some(c));
        }
        assert_eq!(TimerCode::from_code(0), None);
        assert_eq!(TimerCode::from_code(5), None);
        assert_eq!(TimerCode::from_kind("lunch:breach"), None);
    }

    #[test]
    fn an_older_store_s_text_keyed_timers_move_to_the_fixed_width_table() {
        let dir = TempDir::new("migrate");
        let data = dir.0.join("data");
        std::fs::create_dir_all(&data).unwrap();
        // An older store: its timers in the text-keyed table, nothing else
        // (every other table is created by the open, as for any older file).
        {
            let db = redb::Database::create(data.join("postdesk.redb")).unwrap();
            let w = db.begin_write().unwrap();
            {
                let mut t = w.open_table(LEGACY_SLA_TIMERS).unwrap();
                for k in [
                    legacy_key(2_000, 7, "resolution:breach"),
                    legacy_key(1_000, 7, "first_response:warning"),
                    legacy_key(-50, 9, "first_response"),
                    legacy_key(1_500, 9, "lunch:breach"),
                    "not a timer".to_string(),
                ] {
                    t.insert(k.as_str(), ()).unwrap();
                }
            }
            w.commit().unwrap();
        }
        let store = Store::open(&data).unwrap();
        {
            let r = store.db().unwrap().0.begin_read().unwrap();
            assert!(
                !r.list_tables()
                    .unwrap()
                    .any(|t| t.name() == LEGACY_SLA_TIMERS.name()),
                "the old table is deleted"
            );
        }
        // Earliest first, a negative instant included.
        assert_eq!(store.next_sla_timer().unwrap(), Some(-50));
        let due = store
            .write(|tx| tx.take_due_sla_timers(i64::MAX, 10))
            .unwrap();
        assert_eq!(
            due,
            vec![
                (-50, 9, "first_response:breach".to_string()),
                (1_000, 7, "first_response:warning".to_string()),
                (2_000, 7, "resolution:breach".to_string()),
            ],
            "the unreadable ones are dropped, the bare goal is its breach"
        );
        assert_eq!(store.next_sla_timer().unwrap(), None);
        drop(store);
        // Opening again finds nothing to move and keeps new timers.
        let store = Store::open(&data).unwrap();
        store
            .write(|tx| tx.add_sla_timer(30, 3, "resolution:warning"))
            .unwrap();
        drop(store);
        let store = Store::open(&data).unwrap();
        assert_eq!(store.next_sla_timer().unwrap(), Some(30));
    }

    #[test]
    fn timers_come_due_in_order_and_clear_per_ticket() {
        let dir = TempDir::new("order");
        let store = Store::open(&dir.0).unwrap();
        store
            .write(|tx| {
                tx.add_sla_timer(300, 1, "resolution:breach")?;
                tx.add_sla_timer(100, 1, "first_response:warning")?;
                tx.add_sla_timer(200, 2, "first_response:breach")?;
                tx.add_sla_timer(i64::MIN, 3, "resolution:warning")?;
                tx.add_sla_timer(i64::MAX, 3, "resolution:breach")
            })
            .unwrap();
        let refused = store.write(|tx| tx.add_sla_timer(1, 4, "lunch:breach"));
        assert!(
            matches!(refused, Err(StoreError::UnknownSlaTimerKind(ref k)) if k == "lunch:breach"),
            "{refused:?}"
        );
        assert_eq!(store.next_sla_timer().unwrap(), Some(i64::MIN));
        store.write(|tx| tx.clear_sla_timers(3)).unwrap();
        assert_eq!(store.next_sla_timer().unwrap(), Some(100));
        let due = store.write(|tx| tx.take_due_sla_timers(200, 1)).unwrap();
        assert_eq!(due, vec![(100, 1, "first_response:warning".to_string())]);
        let due = store.write(|tx| tx.take_due_sla_timers(299, 10)).unwrap();
        assert_eq!(due, vec![(200, 2, "first_response:breach".to_string())]);
        store.write(|tx| tx.clear_sla_timers(1)).unwrap();
        assert_eq!(store.next_sla_timer().unwrap(), None);
    }

    #[test]
    fn an_unknown_code_is_dropped_with_a_warning_not_a_panic() {
        let dir = TempDir::new("unknown-code");
        let store = Store::open(&dir.0).unwrap();
        store
            .write(|tx| {
                tx.txn
                    .open_table(SLA_TIMERS)?
                    .insert((sortable(10), 5, 200), ())?;
                tx.add_sla_timer(20, 6, "resolution:breach")
            })
            .unwrap();
        let due = store.write(|tx| tx.take_due_sla_timers(100, 10)).unwrap();
        assert_eq!(due, vec![(20, 6, "resolution:breach".to_string())]);
        assert_eq!(store.next_sla_timer().unwrap(), None, "both removed");
    }
}
