//! HTML-only replies through the real binary: what the processor stores as a
//! message's visible text comes from the HTML-aware stripper, so the quote
//! markup of Gmail, Outlook, Thunderbird, Apple Mail and webmails is cut even
//! when there is no text/plain alternative to read.

mod common;
use common::*;
use std::time::Duration;

/// `html` sent as the only body of a customer's reply.
fn html_only(n: usize, html: &str) -> Vec<u8> {
    let mut m = format!(
        "From: Alex Customer <alex@customer.example>\r\nTo: Support <{SUPPORT}>\r\n\
         Subject: Re: order {n}\r\nMessage-ID: <html-{n}@customer.example>\r\n\
         Date: Thu, 26 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    )
    .into_bytes();
    m.extend(to_crlf(html.as_bytes()));
    m
}

fn no_ws(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

#[test]
fn html_only_replies_keep_only_what_the_sender_wrote() {
    let sink = Sink::start();
    let d = Daemon::start(&sink);
    let dir = repo_root().join("fixtures/reply-stripping/talon/html_replies");
    // talon's HTML fixtures: the same reply ("Hi. I am fine. Thanks, Alex")
    // above each client's quote markup.
    let clients = [
        "gmail.html",
        "hotmail.html",
        "mail_ru.html",
        "ms_outlook_2003.html",
        "ms_outlook_2007.html",
        "ms_outlook_2010.html",
        "thunderbird.html",
        "windows_mail.html",
        "yandex_ru.html",
    ];
    let mut misses = Vec::new();
    for (n, file) in clients.iter().enumerate() {
        let html = std::fs::read_to_string(dir.join(file)).unwrap();
        let seq = d.send_ok("alex@customer.example", &[SUPPORT], &html_only(n, &html));
        let m = d.wait_message(seq, Duration::from_secs(30));
        let text = m["text"].as_str().unwrap_or_default().to_string();
        if no_ws(&text) != "Hi.Iamfine.Thanks,Alex" {
            misses.push(format!("{file}: {text:?}"));
        }
    }
    assert!(
        misses.is_empty(),
        "visible text of HTML-only replies: {misses:#?}"
    );
}

#[test]
fn a_text_plain_alternative_is_still_what_is_read() {
    let sink = Sink::start();
    let d = Daemon::start(&sink);
    // The plain part and the HTML part say different things: the plain one is
    // what the processor reads when both are there.
    let raw =
        b"From: Alex Customer <alex@customer.example>\r\nTo: Support <support@example.test>\r\n\
Subject: Re: order\r\nMessage-ID: <alt-1@customer.example>\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/alternative; boundary=\"b\"\r\n\r\n--b\r\n\
Content-Type: text/plain; charset=utf-8\r\n\r\nPlain words.\r\n\r\n\
On Mon, 1 Jan 2024 at 10:00, Support <support@example.test> wrote:\r\n> old\r\n--b\r\n\
Content-Type: text/html; charset=utf-8\r\n\r\n<p>Markup words.</p>\r\n--b--\r\n";
    let seq = d.send_ok("alex@customer.example", &[SUPPORT], raw);
    let m = d.wait_message(seq, Duration::from_secs(30));
    assert_eq!(m["text"], "Plain words.", "{m}");
}
