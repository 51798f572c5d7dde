//! Agent mail on a real store, without sockets: the SLA interplay of replies
//! and status commands, and replays of the same mail (end-to-end tests over
//! SMTP are in tests/agents.rs).

use super::*;
use crate::rules::{Agents, RuleSet};

const CONFIG: &str = r#"
[server]
hostname = "support.example.test"
[[mailbox]]
address = "support@example.test"
[outbound]
relay = "maildir:outbox"
from = "Example Support <support@example.test>"
[web]
api_token = "t"
[agents]
notify = true
"#;

const AGENTS: &str = "[[agent]]\nname = \"alice\"\naddress = \"alice@example.test\"\nqueues = [\"general\"]\n\n[[agent]]\nname = \"bob\"\naddress = \"bob@example.test\"\nqueues = [\"general\"]\n";

const SLA: &str = "[[policy]]\nname = \"std\"\nfirst_response = \"1h\"\nresolution = \"8h\"\ncalendar = \"always\"\n";

type Env = super::tests::Harness;

fn env() -> Env {
    let agents = Agents::parse(AGENTS, std::path::Path::new("agents.toml")).unwrap();
    let sla =
        crate::sla::Policies::parse(SLA, std::path::Path::new("sla.toml"), &[], &agents).unwrap();
    let rules = RuleSet {
        agents,
        sla,
        ..RuleSet::default()
    };
    super::tests::harness_with(CONFIG, rules, None)
}

impl Env {
    fn ticket(&self, id: TicketId) -> Ticket {
        self.store.ticket(id).unwrap().unwrap()
    }

    fn agent_mail(&self, token: &str, id: &str, body: &str) -> MessageSeq {
        self.deliver(
            "alice@example.test",
            token,
            &format!(
                "From: Alice <alice@example.test>\nTo: {token}\nSubject: Re: x\nMessage-ID: <{id}>\n\n{body}\n"
            ),
        )
    }

    fn replies(&self, id: TicketId) -> usize {
        self.store
            .ticket_messages(id)
            .unwrap()
            .iter()
            .filter(|m| m.kind == MessageKind::Agent && m.direction == Direction::Outbound)
            .count()
    }
}

#[test]
fn replies_and_status_commands_drive_the_sla_clock() {
    let e = env();
    let s = e.deliver(
        "ann@example.org",
        "support@example.test",
        "From: Ann <ann@example.org>\nTo: support@example.test\nSubject: Broken\nMessage-ID: <c1@x>\n\nIt broke.\n",
    );
    let id = e.store.message(s).unwrap().unwrap().ticket.unwrap();
    // Both agents are notified (not listed among the ticket's messages).
    let t = e.ticket(id);
    assert_eq!(t.message_count, 1);
    assert_eq!(e.store.due_jobs(i64::MAX, 10).unwrap().len(), 2);
    // The processor does not start SLA clocks itself yet; start one as routing would.
    let rules = e.processor.rules.current();
    e.store
        .write(|tx| {
            let mut t = e.ticket(id);
            crate::sla::start(
                tx,
                &mut t,
                &rules.sla,
                &rules.calendars,
                e.processor.clock.now(),
            )?;
            tx.put_ticket(&t)
        })
        .unwrap();
    assert!(e.store.next_sla_timer().unwrap().is_some());

    let token = e.processor.tokens.agent_address(
        "support@example.test",
        id,
        "alice",
        0,
        e.processor.clock.now(),
    );
    e.agent_mail(
        &token,
        "r1@example.test",
        "#pending\nPlease send us the logs.",
    );
    let t = e.ticket(id);
    assert_eq!(t.status, Status::Pending);
    let sla = t.sla.clone().unwrap();
    assert!(
        sla.first_response_at.is_some(),
        "the reply met the first response"
    );
    assert!(sla.paused_since.is_some(), "pending pauses the clock");
    assert!(
        e.store.next_sla_timer().unwrap().is_none(),
        "no timers while paused"
    );
    assert_eq!(e.replies(id), 1);
    assert_eq!(t.version, 1);

    // The same mail again (a client retry): a duplicate, nothing happens twice.
    e.agent_mail(
        &token,
        "r1@example.test",
        "#pending\nPlease send us the logs.",
    );
    assert_eq!(e.replies(id), 1);

    e.agent_mail(&token, "r2@example.test", "#open");
    let t = e.ticket(id);
    assert_eq!(t.status, Status::Open);
    assert!(
        t.sla.unwrap().paused_since.is_none(),
        "open resumes the clock"
    );
    assert!(e.store.next_sla_timer().unwrap().is_some());

    e.agent_mail(&token, "r3@example.test", "#close");
    assert_eq!(e.ticket(id).status, Status::Closed);
    assert!(
        e.store.next_sla_timer().unwrap().is_none(),
        "closed: nothing can breach"
    );
    assert_eq!(e.replies(id), 1, "commands alone send nothing");
}

#[test]
fn bob_is_held_after_alice_and_the_hold_expires_by_the_clock() {
    let e = env();
    let s = e.deliver(
        "ann@example.org",
        "support@example.test",
        "From: Ann <ann@example.org>\nTo: support@example.test\nSubject: Broken\nMessage-ID: <c2@x>\n\nIt broke.\n",
    );
    let id = e.store.message(s).unwrap().unwrap().ticket.unwrap();
    let tokens = &e.processor.tokens;
    let alice = tokens.agent_address(
        "support@example.test",
        id,
        "alice",
        0,
        e.processor.clock.now(),
    );
    let bob = tokens.agent_address(
        "support@example.test",
        id,
        "bob",
        0,
        e.processor.clock.now(),
    );
    e.agent_mail(&alice, "a@example.test", "Alice's answer.");
    let held = e.deliver(
        "bob@example.test",
        &bob,
        &format!("From: bob@example.test\nTo: {bob}\nSubject: Re: x\nMessage-ID: <b@example.test>\n\nBob's answer.\n"),
    );
    assert_eq!(e.replies(id), 1);
    let m = e.store.message(held).unwrap().unwrap();
    assert_eq!(m.kind, MessageKind::Held);
    assert!(e.store.next_held_expiry().unwrap().is_some());
    // Not yet expired: nothing happens.
    assert_eq!(e.processor.expire_held().unwrap(), 0);
    // A day later (the default hold_expiry) it expires, once, with an event and a notice.
    let jobs = e.store.due_jobs(i64::MAX, 100).unwrap().len();
    e.processor.clock.advance(24 * 3600);
    assert_eq!(e.processor.expire_held().unwrap(), 1);
    assert_eq!(e.processor.expire_held().unwrap(), 0);
    assert!(e.store.next_held_expiry().unwrap().is_none());
    let events = e.store.ticket_events(id).unwrap();
    assert!(
        events.iter().any(|ev| ev.kind == "held_expired"),
        "{events:?}"
    );
    assert_eq!(e.store.due_jobs(i64::MAX, 100).unwrap().len(), jobs + 1);
    assert_eq!(e.replies(id), 1, "never sent");
}
