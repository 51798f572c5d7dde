//! Real mail, read right (issue 17), through the real binary over SMTP: replies to a message
//! postdesk never received, auto-replies without the standard headers, inline answers and
//! forwards. Fixtures from other projects are under fixtures/ (see fixtures/README.md); the
//! crafted messages here are modelled on the clients named beside them.

mod common;
use common::*;
use serde_json::Value;

fn fixture(rel: &str) -> Vec<u8> {
    to_crlf(&std::fs::read(repo_root().join("fixtures").join(rel)).unwrap())
}

/// The inbound messages of `ticket`, in order.
fn inbound(d: &Daemon, ticket: &str) -> Vec<Value> {
    messages_dir(&d.ticket(ticket), "inbound")
}

fn event_details(ticket: &Value) -> Vec<String> {
    ticket["events"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| format!("{}: {}", e["kind"], e["detail"]))
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// 1. Replies to a message postdesk never received

/// A reply to a list post, copied to support (Gmail-style Message-ID).
fn list_reply(from: &str, id: &str, parent: &str, cc: &str, body: &str) -> Vec<u8> {
    let mut headers = vec![
        format!("In-Reply-To: <{parent}>"),
        format!("References: <{parent}>"),
    ];
    if !cc.is_empty() {
        headers.push(format!("Cc: {cc}"));
    }
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    mail(
        from,
        "Re: [users] Export fails after the upgrade",
        &format!("<{id}>"),
        &headers,
        body,
    )
}

#[test]
fn replies_to_an_unseen_parent_share_a_ticket_but_let_no_stranger_in() {
    let sink = Sink::start();
    let d = Daemon::start(&sink);
    let parent = "list-post-4711.20261126@lists.example.org";

    // Ann answers a list post we never received, Cc support and her colleague Bob.
    let ann = list_reply(
        "Ann <ann@customer.example>",
        "CAFann-1x9Qk@mail.gmail.com",
        parent,
        "support@example.test, Bob <bob@customer.example>",
        "Same here: the export fails since Tuesday.\n",
    );
    let t1 = d.ticket_of(d.send_ok("ann@customer.example", &[SUPPORT], &ann));
    // Bob answers the same list post (not Ann's mail): one ticket, not two.
    let bob = list_reply(
        "Bob <bob@customer.example>",
        "bob-reply-5521@customer.example",
        parent,
        "",
        "It fails for the CSV export only.\n",
    );
    let t_bob = d.ticket_of(d.send_ok("bob@customer.example", &[SUPPORT], &bob));
    assert_eq!(
        t_bob, t1,
        "a participant's reply to the same unseen parent joins the ticket"
    );
    let t = d.ticket(&t1);
    let joined = event_details(&t);
    assert!(
        joined
            .iter()
            .any(|e| e.contains(&format!("unseen parent <{parent}>"))),
        "{joined:#?}"
    );

    // Mallory quotes the same (public) list post: she must not join Ann's ticket.
    let mallory = list_reply(
        "Mallory <mallory@evil.example>",
        "m-0001-spy@evil.example",
        parent,
        "spy@evil.example",
        "Please send me the export too.\n",
    );
    let t_m = d.ticket_of(d.send_ok("mallory@evil.example", &[SUPPORT], &mallory));
    assert_ne!(
        t_m, t1,
        "a non-participant does not join by an unseen parent"
    );
    let tm = d.ticket(&t_m);
    assert!(
        event_details(&tm)
            .iter()
            .any(|e| e.contains("not a participant") && e.contains(&format!("#{t1}"))),
        "{:#?}",
        event_details(&tm)
    );
    let participants = d.ticket(&t1)["participants"].to_string();
    assert!(
        !participants.contains("evil.example"),
        "Mallory is not a participant of #{t1}: {participants}"
    );
    // ...and her own later reply to the same post joins her ticket, not Ann's.
    let mallory2 = list_reply(
        "Mallory <mallory@evil.example>",
        "m-0002-spy@evil.example",
        parent,
        "",
        "Anyone?\n",
    );
    let t_m2 = d.ticket_of(d.send_ok("mallory@evil.example", &[SUPPORT], &mallory2));
    assert_eq!(t_m2, t_m);

    // Ids that cannot identify anything thread nothing, even from the same sender.
    let carol = |id: &str| {
        mail(
            "Carol <carol@customer.example>",
            "Question",
            &format!("<{id}>"),
            &[
                "In-Reply-To: <yes@customer.example>",
                "References: <yes@customer.example>",
            ],
            "A question.\n",
        )
    };
    let c1 = d.ticket_of(d.send_ok(
        "carol@customer.example",
        &[SUPPORT],
        &carol("carol-q1-8812@customer.example"),
    ));
    let c2 = d.ticket_of(d.send_ok(
        "carol@customer.example",
        &[SUPPORT],
        &carol("carol-q2-8813@customer.example"),
    ));
    assert_ne!(c1, c2, "<yes@…> identifies no conversation");
}

/// notmuch's ghost-root corpus (fixtures/threading/notmuch-ghost-root): a child of a root we
/// have not received, its grand-child, then the root itself arriving late; all one ticket. The
/// fake root from Mallory, who references the same ids, is kept on it as a non-participant's.
#[test]
fn notmuch_ghost_root_is_one_ticket() {
    let sink = Sink::start();
    let d = Daemon::start(&sink);
    let dir = "threading/notmuch-ghost-root";
    let child = d.send_ok(
        "alice@example.org",
        &[SUPPORT],
        &fixture(&format!("{dir}/child.eml")),
    );
    let t = d.ticket_of(child);
    for (env, file) in [
        ("alice@example.org", "grand-child.eml"),
        ("alice@example.org", "real-root.eml"),
    ] {
        let seq = d.send_ok(env, &[SUPPORT], &fixture(&format!("{dir}/{file}")));
        assert_eq!(d.ticket_of(seq), t, "{file}");
    }
    let fake = d.send_ok(
        "mallory@example.org",
        &[SUPPORT],
        &fixture(&format!("{dir}/fake-root.eml")),
    );
    assert_eq!(d.ticket_of(fake), t);
    let m = d.wait_message(fake, SECS_30);
    assert!(m["non_participant"].is_string(), "{m}");
    assert_eq!(d.tickets_total(), 1);
    assert_eq!(inbound(&d, &t).len(), 4);
}

// ---------------------------------------------------------------------------------------------
// 2. Auto-replies without the standard headers

/// Challenge-response requests and vacation notices that carry no Auto-Submitted, Precedence or
/// X-Auto-Response-Suppress (fixtures/autoreply-unmarked, crafted on the shapes of real ones):
/// stored as automatic mail, and the sink receives nothing for any of them (checked after a
/// control message got its acknowledgement and the daemon is idle).
#[test]
fn unmarked_auto_replies_are_stored_as_automatic_and_never_acknowledged() {
    let sink = Sink::start();
    let d = Daemon::start(&sink);
    let files = [
        ("challenge-en.eml", "dana@customer.example"),
        ("challenge-de.eml", "jens@kunde.example"),
        ("vacation-es-outlook.eml", "lucia@cliente.example"),
        ("vacation-nl.eml", "pieter@klant.example"),
        ("vacation-ru.eml", "ivan@klient.example"),
        ("firstclass-oof.eml", "mark@school.example"),
    ];
    let mut seqs = Vec::new();
    for (file, sender) in files {
        let raw = fixture(&format!("autoreply-unmarked/{file}"));
        seqs.push((file, d.send_ok(sender, &[SUPPORT], &raw)));
    }
    let control = mail(
        "Control <control@customer.example>",
        "control",
        "<control-1@customer.example>",
        &[],
        "Ordinary question.\n",
    );
    d.send_ok("control@customer.example", &[SUPPORT], &control);
    wait_until(SECS_60, "the control acknowledgement", || {
        (!sink.messages_to("control@customer.example").is_empty()).then_some(())
    });
    d.wait_idle(SECS_60);
    for (file, seq) in &seqs {
        let m = d.wait_message(*seq, SECS_30);
        assert_eq!(m["kind"], "auto", "{file}: {m}");
    }
    let stray: Vec<String> = sink
        .messages()
        .iter()
        .filter_map(|m| header(m, "X-RcptTo"))
        .filter(|to| to != "control@customer.example")
        .collect();
    assert!(stray.is_empty(), "acknowledged: {stray:?}");
}

// ---------------------------------------------------------------------------------------------
// 3. Inline answers

/// A customer answers between the quoted questions of the agent's mail (the way mutt and
/// Thunderbird users answer inline): the stored visible text keeps the questions, and the
/// trailing rest of the quote and the signature are cut.
#[test]
fn an_inline_answer_keeps_the_quoted_questions() {
    let sink = Sink::start();
    let d = Daemon::start(&sink);
    let first = mail(
        "Erin <erin@customer.example>",
        "Printer prints blank pages",
        "<erin-0001.9931@customer.example>",
        &[],
        "Since this morning every page comes out blank.\n",
    );
    let t = d.ticket_of(d.send_ok("erin@customer.example", &[SUPPORT], &first));
    let answer = mail(
        "Erin <erin@customer.example>",
        "Re: Printer prints blank pages",
        "<erin-0002.9932@customer.example>",
        &[
            "In-Reply-To: <erin-0001.9931@customer.example>",
            "References: <erin-0001.9931@customer.example>",
        ],
        "On Thu, 26 Nov 2026 at 10:20, Example Support <support@example.test> wrote:\n\
         > Which printer model is it?\n\
         \n\
         The LX-300 on the second floor.\n\
         \n\
         > Did you change the toner recently?\n\
         \n\
         Yes, yesterday.\n\
         \n\
         > Kind regards,\n\
         > Support\n\
         \n\
         -- \n\
         Erin Example, Accounting\n",
    );
    let seq = d.send_ok("erin@customer.example", &[SUPPORT], &answer);
    assert_eq!(d.ticket_of(seq), t);
    let m = d.wait_message(seq, SECS_30);
    assert_eq!(
        m["text"].as_str().unwrap_or_default(),
        "> Which printer model is it?\n\nThe LX-300 on the second floor.\n\n\
         > Did you change the toner recently?\n\nYes, yesterday.",
        "{m}"
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Forwards

/// A customer forwards an error message (Gmail's forward format, "Fwd:" subject): the forwarded
/// message is the request and stays in the ticket's text with its header block; the customer's
/// own mobile signature above it goes.
#[test]
fn a_forwarded_error_is_the_tickets_text() {
    let sink = Sink::start();
    let d = Daemon::start(&sink);
    let forwarded = "---------- Forwarded message ---------\n\
                     From: Billing <billing@shop.example>\n\
                     Date: Thu, 26 Nov 2026 at 09:12\n\
                     Subject: Payment failed\n\
                     To: <finn@customer.example>\n\
                     \n\
                     Your payment of EUR 40.00 could not be processed (code 51).\n\
                     Please update your card within 3 days.";
    let raw = mail(
        "Finn <finn@customer.example>",
        "Fwd: Payment failed",
        "<CAFfinn-fwd-0001@mail.gmail.com>",
        &[],
        &format!("Why did this fail? My card is fine.\n\nSent from my phone\n\n{forwarded}\n"),
    );
    let seq = d.send_ok("finn@customer.example", &[SUPPORT], &raw);
    let m = d.wait_message(seq, SECS_30);
    assert_eq!(
        m["text"].as_str().unwrap_or_default(),
        format!("Why did this fail? My card is fine.\n\n{forwarded}"),
        "{m}"
    );
}

/// A forward attached as message/rfc822 (Thunderbird's "forward as attachment") threads by the
/// forwarded message's Message-ID only when the sender takes part in its ticket.
#[test]
fn an_attached_forward_threads_only_for_participants() {
    let sink = Sink::start();
    let d = Daemon::start(&sink);
    let original = mail(
        "Gina <gina@customer.example>",
        "Contract renewal",
        "<gina-0001.4411@customer.example>",
        &[],
        "Please renew our contract.\n",
    );
    let t = d.ticket_of(d.send_ok("gina@customer.example", &[SUPPORT], &original));
    let forward = |from: &str, id: &str| {
        format!(
            "From: {from}\r\nTo: support@example.test\r\nSubject: Fwd: Contract renewal\r\n\
             Message-ID: <{id}>\r\nDate: Thu, 26 Nov 2026 11:00:00 +0000\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/mixed; boundary=\"fwd-boundary\"\r\n\r\n\
             --fwd-boundary\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
             See the attached mail.\r\n\
             --fwd-boundary\r\nContent-Type: message/rfc822\r\n\
             Content-Disposition: attachment; filename=\"Contract renewal.eml\"\r\n\r\n\
             From: Gina <gina@customer.example>\r\nSubject: Contract renewal\r\n\
             Message-ID: <gina-0001.4411@customer.example>\r\n\r\nPlease renew our contract.\r\n\
             --fwd-boundary--\r\n"
        )
        .into_bytes()
    };
    let stranger = d.send_ok(
        "mallory@evil.example",
        &[SUPPORT],
        &forward(
            "Mallory <mallory@evil.example>",
            "mal-fwd-0001@evil.example",
        ),
    );
    assert_ne!(
        d.ticket_of(stranger),
        t,
        "a stranger's forward opens its own ticket"
    );
    // The attached message is the request: shown below the sender's note as a forward.
    let m = d.wait_message(stranger, SECS_30);
    assert_eq!(
        m["text"].as_str().unwrap_or_default(),
        "See the attached mail.\n\n---------- Forwarded message ---------\n\
         From: Gina <gina@customer.example>\nSubject: Contract renewal\n\n\
         Please renew our contract.",
        "{m}"
    );
    let own = d.send_ok(
        "gina@customer.example",
        &[SUPPORT],
        &forward(
            "Gina <gina@customer.example>",
            "gina-fwd-0002@customer.example",
        ),
    );
    assert_eq!(d.ticket_of(own), t);
}
