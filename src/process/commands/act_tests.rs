//! `Processor::act` on a real store, without mail: what the web view and the
//! JSON API will call. (Through mail it is covered by `process/agent_tests.rs`
//! and tests/agents.rs.)

use super::super::{Action, Refusal, Request, Sent, Via};
use crate::model::*;
use crate::process::tests::{Harness, harness_with};
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
"#;

const AGENTS: &str = "[[agent]]\nname = \"alice\"\naddress = \"alice@example.test\"\nqueues = [\"general\", \"billing\"]\n\n[[agent]]\nname = \"bob\"\naddress = \"bob@example.test\"\nqueues = [\"general\"]\n";

fn harness() -> Harness {
    let agents = Agents::parse(AGENTS, std::path::Path::new("agents.toml")).unwrap();
    harness_with(
        CONFIG,
        RuleSet {
            agents,
            ..RuleSet::default()
        },
        None,
    )
}

/// A customer's new ticket; returns its id.
fn ticket(h: &Harness, n: u32) -> TicketId {
    let seq = h.deliver(
        "ann@example.org",
        "support@example.test",
        &format!(
            "From: Ann <ann@example.org>\nTo: support@example.test\nSubject: Broken {n}\nMessage-ID: <c{n}@example.org>\n\nIt broke.\n"
        ),
    );
    h.store.message(seq).unwrap().unwrap().ticket.unwrap()
}

fn request(ticket: TicketId, actor: &str, seen: Option<u64>, actions: Vec<Action>) -> Request {
    Request {
        ticket,
        actor: actor.into(),
        seen_version: seen,
        actions,
        via: Via::Web,
    }
}

/// `act` in its own committed transaction.
fn act(h: &Harness, request: Request) -> Result<super::super::Outcome, Refusal> {
    let rules = h.processor.rules.current();
    let now = h.processor.clock.now();
    h.store
        .write(|tx| Ok(h.processor.act(tx, &rules, request, now)))
        .unwrap()
}

fn reply(text: &str) -> Action {
    Action::Reply {
        text: text.into(),
        attachments: Vec::new(),
    }
}

fn replies_to_customer(h: &Harness, id: TicketId) -> Vec<MessageRecord> {
    h.store
        .ticket_messages(id)
        .unwrap()
        .into_iter()
        .filter(|m| m.kind == MessageKind::Agent && m.direction == Direction::Outbound)
        .collect()
}

#[test]
fn one_bad_action_applies_nothing() {
    let h = harness();
    let id = ticket(&h, 1);
    let before = h.store.ticket(id).unwrap().unwrap();
    let events = h.store.ticket_events(id).unwrap().len();
    let jobs = h.store.due_jobs(i64::MAX, 100).unwrap().len();
    let refusal = act(
        &h,
        request(
            id,
            "alice",
            Some(0),
            vec![
                Action::Status(Status::Pending),
                Action::Priority(Priority::Urgent),
                Action::Queue("nowhere".into()),
                reply("On it."),
            ],
        ),
    )
    .unwrap_err();
    let Refusal::Invalid(checked) = refusal else {
        panic!("{refusal:?}");
    };
    assert_eq!(checked.len(), 4);
    assert!(checked[0].is_ok() && checked[1].is_ok() && checked[3].is_ok());
    assert!(
        checked[2].as_ref().unwrap_err().contains("unknown queue"),
        "{checked:?}"
    );
    let after = h.store.ticket(id).unwrap().unwrap();
    assert_eq!(after.status, before.status);
    assert_eq!(after.priority, before.priority);
    assert_eq!(after.version, before.version);
    assert_eq!(h.store.ticket_events(id).unwrap().len(), events);
    assert_eq!(h.store.due_jobs(i64::MAX, 100).unwrap().len(), jobs);
    assert!(replies_to_customer(&h, id).is_empty());

    // Nor does a request for a ticket or an agent that does not exist.
    assert!(matches!(
        act(&h, request(id + 100, "alice", None, vec![reply("x")])),
        Err(Refusal::NoTicket(_))
    ));
    assert!(matches!(
        act(&h, request(id, "mallory", None, vec![reply("x")])),
        Err(Refusal::UnknownAgent(_))
    ));
    // A canned response in an internal request would reach the customer.
    let Err(Refusal::Invalid(checked)) = act(
        &h,
        request(
            id,
            "alice",
            None,
            vec![Action::Note("internal".into()), Action::Canned("x".into())],
        ),
    ) else {
        panic!("canned with a note applied");
    };
    assert!(checked[1].as_ref().unwrap_err().contains("#note"));
    // A request's text goes out as one message.
    let Err(Refusal::Invalid(checked)) = act(
        &h,
        request(id, "alice", None, vec![reply("one"), reply("two")]),
    ) else {
        panic!("two replies applied");
    };
    assert!(checked[0].is_ok());
    assert!(checked[1].as_ref().unwrap_err().contains("one reply"));
    assert_eq!(h.store.ticket_events(id).unwrap().len(), events);
}

#[test]
fn a_reply_against_an_old_version_by_another_agent_is_held() {
    let h = harness();
    let id = ticket(&h, 2);
    // Both saw version 0; alice answers first.
    let alice = act(
        &h,
        request(id, "alice", Some(0), vec![reply("Alice here.")]),
    )
    .unwrap();
    let Sent::Reply(first) = alice.sent else {
        panic!("{:?}", alice.sent);
    };
    assert_eq!(alice.ticket.version, 1);
    // Her own earlier reply never holds her.
    let again = act(&h, request(id, "alice", Some(0), vec![reply("And more.")])).unwrap();
    assert!(matches!(again.sent, Sent::Reply(_)), "{:?}", again.sent);
    assert_eq!(again.ticket.version, 2);

    let bob = act(&h, request(id, "bob", Some(0), vec![reply("Bob here.")])).unwrap();
    let Sent::Held(held) = bob.sent else {
        panic!("{:?}", bob.sent);
    };
    assert_eq!(bob.ticket.version, 2, "a held reply is no new version");
    assert_eq!(replies_to_customer(&h, id).len(), 2);
    let table = h.store.held_for_ticket(id).unwrap();
    assert_eq!(table.len(), 1);
    assert_eq!(table[0].agent, "bob");
    assert_eq!(table[0].message, held);
    assert_eq!(table[0].text, "Bob here.");
    let m = h.store.message(held).unwrap().unwrap();
    assert_eq!(m.kind, MessageKind::Held);
    assert_eq!(m.text, "Bob here.");
    assert!(
        h.store
            .ticket_events(id)
            .unwrap()
            .iter()
            .any(|e| e.kind == "reply_held" && e.actor == "bob"),
    );
    // Having seen version 2, bob is not held.
    let seen = act(&h, request(id, "bob", Some(2), vec![reply("Seen it.")])).unwrap();
    assert!(matches!(seen.sent, Sent::Reply(_)), "{:?}", seen.sent);
    // SendHeld releases the held one (from the API this time).
    let release = act(
        &h,
        Request {
            via: Via::Api,
            ..request(id, "bob", None, vec![Action::SendHeld])
        },
    )
    .unwrap();
    assert_eq!(release.released.len(), 1);
    assert!(h.store.held_for_ticket(id).unwrap().is_empty());
    let sent = replies_to_customer(&h, id);
    assert_eq!(sent.len(), 4);
    assert!(
        sent.iter()
            .any(|m| m.seq == release.released[0] && m.text == "Bob here.")
    );
    assert_ne!(first, release.released[0]);
}

#[test]
fn events_carry_the_actor() {
    let h = harness();
    let id = ticket(&h, 3);
    let events = h.store.ticket_events(id).unwrap().len();
    let outcome = act(
        &h,
        request(
            id,
            "bob",
            None,
            vec![
                Action::Status(Status::Pending),
                Action::Priority(Priority::High),
                Action::Assign("me".into()),
                Action::Queue("billing".into()),
                Action::Tags {
                    add: vec!["vip".into()],
                    remove: Vec::new(),
                },
                Action::Note("Customer called, see CRM.".into()),
            ],
        ),
    )
    .unwrap();
    assert!(outcome.internal);
    let Sent::Note(note) = outcome.sent else {
        panic!("{:?}", outcome.sent);
    };
    assert_eq!(outcome.results.len(), 6);
    assert!(
        outcome.results.iter().all(|r| r.starts_with("done")),
        "{:?}",
        outcome.results
    );
    let t = h.store.ticket(id).unwrap().unwrap();
    assert_eq!(t.status, Status::Pending);
    assert_eq!(t.priority, Priority::High);
    assert_eq!(t.assignee.as_deref(), Some("bob"));
    assert_eq!(t.queue, "billing");
    assert_eq!(t.tags, ["vip"]);
    let new: Vec<Event> = h.store.ticket_events(id).unwrap()[events..].to_vec();
    let kinds: Vec<&str> = new.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["status", "priority", "assigned", "queue", "tags", "note"],
        "{new:?}"
    );
    assert!(new.iter().all(|e| e.actor == "bob"), "{new:?}");
    // The note is a message of the ticket, never sent.
    let m = h.store.message(note).unwrap().unwrap();
    assert_eq!(m.kind, MessageKind::Note);
    assert_eq!(m.text, "Customer called, see CRM.");
    assert!(
        h.store
            .ticket_messages(id)
            .unwrap()
            .iter()
            .any(|m| m.seq == note)
    );
    assert!(replies_to_customer(&h, id).is_empty());
}

#[test]
fn a_request_from_the_web_does_what_the_same_mail_does() {
    let h = harness();
    let by_mail = ticket(&h, 4);
    let by_web = ticket(&h, 5);
    let token = h.processor.tokens.agent_address(
        "support@example.test",
        by_mail,
        "alice",
        0,
        h.processor.clock.now(),
    );
    let before = h.store.ticket_events(by_mail).unwrap().len();
    h.deliver(
        "alice@example.test",
        &token,
        &format!(
            "From: Alice <alice@example.test>\nTo: {token}\nSubject: Re: x\nMessage-ID: <m4@example.test>\n\n#pending\n#priority urgent\n#assign bob\n#tag +vip -none\n#participant add carol@example.org\nWe are on it.\n"
        ),
    );
    let web_before = h.store.ticket_events(by_web).unwrap().len();
    let outcome = act(
        &h,
        request(
            by_web,
            "alice",
            Some(0),
            vec![
                Action::Status(Status::Pending),
                Action::Priority(Priority::Urgent),
                Action::Assign("bob".into()),
                Action::Tags {
                    add: vec!["vip".into()],
                    remove: vec!["none".into()],
                },
                Action::Participant {
                    add: true,
                    addresses: vec!["carol@example.org".into()],
                },
                reply("We are on it."),
            ],
        ),
    )
    .unwrap();
    assert!(matches!(outcome.sent, Sent::Reply(_)), "{:?}", outcome.sent);

    let (m, w) = (
        h.store.ticket(by_mail).unwrap().unwrap(),
        h.store.ticket(by_web).unwrap().unwrap(),
    );
    assert_eq!(m.status, Status::Pending);
    assert_eq!(
        (m.status, m.priority, &m.assignee, &m.tags, m.version),
        (w.status, w.priority, &w.assignee, &w.tags, w.version)
    );
    assert!(w.participants.contains("carol@example.org"));
    assert_eq!(m.participants.len(), w.participants.len());
    let summary = |id: TicketId, from: usize| -> Vec<(String, String)> {
        h.store.ticket_events(id).unwrap()[from..]
            .iter()
            .map(|e| (e.kind.clone(), e.actor.clone()))
            .collect()
    };
    assert_eq!(summary(by_mail, before), summary(by_web, web_before));
    let (rm, rw) = (
        replies_to_customer(&h, by_mail),
        replies_to_customer(&h, by_web),
    );
    assert_eq!(rm.len(), 1);
    assert_eq!(rw.len(), 1);
    assert_eq!(rm[0].text, rw[0].text);
    assert_eq!(rm[0].to, rw[0].to);
}

#[test]
fn dropping_a_held_reply_with_a_revised_one_sends_only_the_revision() {
    let h = harness();
    let id = ticket(&h, 9);
    act(
        &h,
        request(id, "alice", Some(0), vec![reply("Alice first.")]),
    )
    .unwrap();
    let bob = act(&h, request(id, "bob", Some(0), vec![reply("Bob draft.")])).unwrap();
    assert!(matches!(bob.sent, Sent::Held(_)), "{:?}", bob.sent);
    // Nothing held for alice: refused, nothing changed.
    let none = act(&h, request(id, "alice", Some(1), vec![Action::DropHeld]));
    assert!(matches!(none, Err(Refusal::Invalid(_))), "{none:?}");
    // Bob revises: the held draft goes, the revision is sent, in one request.
    let revised = act(
        &h,
        request(
            id,
            "bob",
            Some(1),
            vec![Action::DropHeld, reply("Bob revised.")],
        ),
    )
    .unwrap();
    assert!(matches!(revised.sent, Sent::Reply(_)), "{:?}", revised.sent);
    assert!(h.store.held_for_ticket(id).unwrap().is_empty());
    let texts: Vec<String> = replies_to_customer(&h, id)
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(texts, vec!["Alice first.", "Bob revised."]);
    assert!(
        h.store
            .ticket_events(id)
            .unwrap()
            .iter()
            .any(|e| e.kind == "held_dropped" && e.actor == "bob")
    );
    // Nothing left to send anyway.
    let send = act(&h, request(id, "bob", None, vec![Action::SendHeld]));
    assert!(matches!(send, Err(Refusal::Invalid(_))), "{send:?}");
}

#[test]
fn events_name_the_message_they_are_about() {
    let h = harness();
    let id = ticket(&h, 10);
    let out = act(&h, request(id, "alice", Some(0), vec![reply("Hello.")])).unwrap();
    let Sent::Reply(seq) = out.sent else {
        panic!("{:?}", out.sent);
    };
    let events = h.store.ticket_events(id).unwrap();
    let customer = h.store.ticket_messages(id).unwrap()[0].seq;
    assert!(
        events
            .iter()
            .any(|e| e.kind == "created" && e.message == Some(customer)),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e.kind == "replied" && e.message == Some(seq)),
        "{events:?}"
    );
}
