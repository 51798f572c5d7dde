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

/// A customer's mail; returns the ticket it went to.
fn mail_to(h: &Harness, from: &str, id: &str, subject: &str, extra: &str) -> TicketId {
    let seq = h.deliver(
        from,
        "support@example.test",
        &format!(
            "From: {from}\nTo: support@example.test\nSubject: {subject}\nMessage-ID: <{id}>\n{extra}\nMore.\n"
        ),
    );
    h.store.message(seq).unwrap().unwrap().ticket.unwrap()
}

fn merge(into: TicketId, reason: Option<&str>) -> Action {
    Action::Merge {
        into,
        reason: reason.map(str::to_string),
    }
}

fn refusal_of(h: &Harness, r: Request) -> String {
    match act(h, r) {
        Err(Refusal::Invalid(checked)) => checked
            .into_iter()
            .filter_map(Result::err)
            .collect::<Vec<_>>()
            .join("; "),
        other => panic!("not refused: {other:?}"),
    }
}

#[test]
fn a_merge_moves_the_conversation_and_later_mail_follows_it() {
    let h = harness();
    let old = ticket(&h, 10);
    let survivor = mail_to(&h, "bob@example.org", "b10@example.org", "Also broken", "");
    assert_ne!(old, survivor);
    let jobs = h.store.due_jobs(i64::MAX, 100).unwrap().len();
    let done = act(
        &h,
        request(
            old,
            "alice",
            Some(0),
            vec![merge(survivor, Some("same printer"))],
        ),
    )
    .unwrap();
    assert!(done.results[0].contains(&format!("merged into #{survivor}")));
    assert_eq!(done.ticket.status, Status::Closed);
    assert_eq!(done.ticket.version, 1);
    let s = done.other.expect("the survivor");
    assert_eq!((s.id, s.version), (survivor, 1));

    let merged = h.store.ticket(old).unwrap().unwrap();
    assert_eq!(merged.status, Status::Closed);
    assert!(merged.sla.is_none());
    assert!(h.store.ticket_messages(old).unwrap().is_empty());
    assert_eq!(h.store.merged_into(old).unwrap(), Some(survivor));
    assert_eq!(h.store.merged_from(survivor).unwrap(), [old]);
    let s = h.store.ticket(survivor).unwrap().unwrap();
    assert!(
        s.participants.contains("ann@example.org") && s.participants.contains("bob@example.org")
    );
    let msgs = h.store.ticket_messages(survivor).unwrap();
    assert!(
        msgs.iter()
            .any(|m| m.message_id == "c10@example.org" && m.ticket == Some(survivor))
    );
    assert_eq!(s.message_count, msgs.len() as u64);
    for id in [old, survivor] {
        let ev = h.store.ticket_events(id).unwrap();
        let e = ev
            .iter()
            .find(|e| e.kind == "merged")
            .expect("merged event");
        assert_eq!(e.actor, "alice");
        assert!(e.detail.contains("same printer"), "{}", e.detail);
    }
    // Closing by merge tells the customer nothing.
    assert_eq!(h.store.due_jobs(i64::MAX, 100).unwrap().len(), jobs);

    // Later mail to the merged ticket: by Message-ID and by its subject tag.
    let by_id = mail_to(
        &h,
        "ann@example.org",
        "r1@example.org",
        "Re: Broken 10",
        "In-Reply-To: <c10@example.org>\n",
    );
    assert_eq!(by_id, survivor);
    let by_tag = mail_to(
        &h,
        "ann@example.org",
        "r2@example.org",
        &format!("[#{old}] still"),
        "",
    );
    assert_eq!(by_tag, survivor);
    let ev = h.store.ticket_events(survivor).unwrap();
    assert!(ev.iter().any(|e| {
        e.detail
            .contains(&format!("#{old} was merged into #{survivor}"))
    }));

    // A request on the merged ticket acts on the survivor.
    let noted = act(
        &h,
        request(old, "bob", None, vec![Action::Note("x".into())]),
    )
    .unwrap();
    assert_eq!(noted.ticket.id, survivor);
}

#[test]
fn merges_are_refused_into_itself_a_descendant_a_merged_or_unknown_ticket() {
    let h = harness();
    let a = ticket(&h, 20);
    let b = ticket(&h, 21);
    let c = ticket(&h, 22);
    let r = |id, seen, actions| request(id, "alice", seen, actions);
    assert!(refusal_of(&h, r(a, None, vec![merge(a, None)])).contains("into itself"));
    assert!(refusal_of(&h, r(a, None, vec![merge(9999, None)])).contains("no ticket #9999"));
    assert!(refusal_of(&h, r(a, None, vec![merge(b, None), reply("hi")])).contains("on its own"));
    // The version the agent saw must be the ticket's.
    act(&h, r(a, None, vec![reply("first")])).unwrap();
    assert!(refusal_of(&h, r(a, Some(0), vec![merge(b, None)])).contains("changed since"));
    let events = h.store.ticket_events(a).unwrap().len();
    assert_eq!(h.store.merged_into(a).unwrap(), None);

    // a → b, b → c: a chain; mail to a reaches c.
    act(&h, r(a, Some(1), vec![merge(b, None)])).unwrap();
    assert!(h.store.ticket_events(a).unwrap().len() > events);
    assert!(refusal_of(&h, r(b, None, vec![merge(a, None)])).contains("cycle"));
    assert!(refusal_of(&h, r(a, None, vec![merge(c, None)])).contains("already merged"));
    act(&h, r(b, None, vec![merge(c, None)])).unwrap();
    // c may not go into a or b: both are its descendants now.
    assert!(refusal_of(&h, r(c, None, vec![merge(a, None)])).contains("cycle"));
    assert!(refusal_of(&h, r(c, None, vec![merge(b, None)])).contains("cycle"));
    let d = ticket(&h, 23);
    assert!(refusal_of(&h, r(d, None, vec![merge(a, None)])).contains(&format!("merge into #{c}")));
    let to_a = mail_to(
        &h,
        "ann@example.org",
        "r20@example.org",
        "Re: Broken 20",
        "In-Reply-To: <c20@example.org>\n",
    );
    assert_eq!(to_a, c);
    assert_eq!(
        h.store
            .ticket_messages(c)
            .unwrap()
            .iter()
            .filter(|m| m.kind == MessageKind::Customer)
            .count(),
        4
    );
}

#[test]
fn a_split_gives_a_message_its_own_ticket_and_its_replies_follow() {
    let h = harness();
    let old = ticket(&h, 30);
    let joined = mail_to(
        &h,
        "ann@example.org",
        "other@example.org",
        "Re: Broken 30 [#1] and another thing",
        "In-Reply-To: <c30@example.org>\n",
    );
    assert_eq!(joined, old);
    let seq = h
        .store
        .ticket_messages(old)
        .unwrap()
        .iter()
        .find(|m| m.message_id == "other@example.org")
        .unwrap()
        .seq;
    let split = |s| Action::Split {
        message: s,
        reason: Some("another problem".into()),
    };
    assert!(
        refusal_of(&h, request(old, "alice", None, vec![split(seq + 1000)]))
            .contains("not in ticket")
    );
    let done = act(&h, request(old, "alice", Some(0), vec![split(seq)])).unwrap();
    let new = done.other.expect("the new ticket");
    assert_ne!(new.id, old);
    assert_eq!(new.requester, "ann@example.org");
    assert_eq!(done.ticket.version, 1);
    assert!(new.participants.contains("ann@example.org"));
    let moved = h.store.message(seq).unwrap().unwrap();
    assert_eq!(moved.ticket, Some(new.id));
    assert_eq!(h.store.ticket_messages(new.id).unwrap().len(), 1);
    assert!(
        h.store
            .ticket_messages(old)
            .unwrap()
            .iter()
            .all(|m| m.seq != seq)
    );
    let ev = h.store.ticket_events(old).unwrap();
    let e = ev.iter().find(|e| e.kind == "split").expect("split event");
    assert!(e.detail.contains(&format!("#{}", new.id)) && e.actor == "alice");
    assert!(e.detail.contains("another problem"));
    let created = h.store.ticket_events(new.id).unwrap();
    assert!(
        created
            .iter()
            .any(|e| e.kind == "created" && e.detail.contains(&format!("split from #{old}")))
    );

    // The customer's answer to the split message follows it.
    let reply_to = mail_to(
        &h,
        "ann@example.org",
        "r30@example.org",
        "Re: another thing",
        "In-Reply-To: <other@example.org>\n",
    );
    assert_eq!(reply_to, new.id);
    // The old ticket keeps its first message: it cannot be split out alone.
    let first = h.store.ticket_messages(old).unwrap()[0].seq;
    assert!(
        refusal_of(&h, request(old, "alice", None, vec![split(first)]))
            .contains("only customer message")
    );
}

#[test]
fn held_replies_and_later_requests_follow_a_merge() {
    let h = harness();
    let a = ticket(&h, 40);
    let b = ticket(&h, 41);
    // Bob's reply on a is held behind alice's.
    act(&h, request(a, "alice", Some(0), vec![reply("Alice on a.")])).unwrap();
    let held = act(&h, request(a, "bob", Some(0), vec![reply("Bob on a.")])).unwrap();
    assert!(matches!(held.sent, Sent::Held(_)), "{:?}", held.sent);
    act(&h, request(b, "alice", Some(0), vec![reply("Alice on b.")])).unwrap();
    act(&h, request(a, "alice", Some(1), vec![merge(b, None)])).unwrap();
    assert!(h.store.held_for_ticket(a).unwrap().is_empty());
    assert_eq!(
        h.store.held_for_ticket(b).unwrap().len(),
        1,
        "held on the survivor"
    );
    // A reply written on the merged ticket has not seen the survivor's
    // replies: whatever version it names there, alice's counts as unseen.
    let late = act(&h, request(a, "bob", Some(9), vec![reply("Bob late.")])).unwrap();
    assert_eq!(late.ticket.id, b);
    assert!(matches!(late.sent, Sent::Held(_)), "{:?}", late.sent);
    // #send on the survivor releases both.
    let sent = act(&h, request(b, "bob", None, vec![Action::SendHeld])).unwrap();
    assert_eq!(sent.released.len(), 2);
}

#[test]
fn a_note_with_a_merge_joins_the_survivors_conversation() {
    let h = harness();
    let a = ticket(&h, 50);
    let b = ticket(&h, 51);
    let done = act(
        &h,
        request(
            a,
            "alice",
            None,
            vec![merge(b, None), Action::Note("dup of b".into())],
        ),
    )
    .unwrap();
    let Sent::Note(seq) = done.sent else {
        panic!("{:?}", done.sent);
    };
    assert_eq!(h.store.message(seq).unwrap().unwrap().ticket, Some(b));
    assert!(
        h.store
            .ticket_messages(b)
            .unwrap()
            .iter()
            .any(|m| m.seq == seq)
    );
    assert!(h.store.ticket_messages(a).unwrap().is_empty());
    let s = h.store.ticket(b).unwrap().unwrap();
    assert_eq!(
        s.message_count,
        h.store.ticket_messages(b).unwrap().len() as u64
    );
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
