//! Self-checks of the test harness (no daemon needed): the aiosmtpd sink, the smtplib and
//! swaks clients, and the small helpers the other tests rely on.

mod common;
use common::*;
use std::time::Duration;

#[test]
fn sink_receives_from_smtplib_and_swaks_and_survives_restart() {
    let mut sink = Sink::start();
    assert!(port_open(sink.port));

    let raw = mail(
        "Alice <alice@customer.example>",
        "first",
        "<h1@customer.example>",
        &[],
        "one\n",
    );
    let r = send_smtp(
        sink.port,
        "alice@customer.example",
        &["bob@example.org"],
        &raw,
    );
    assert_eq!(r.code, Some(250), "{r:?}");

    let (ok, transcript) = swaks(
        sink.port,
        &[
            "--from",
            "carol@customer.example",
            "--to",
            "dave@example.org",
            "--header",
            "Subject: second",
        ],
    );
    assert!(ok, "swaks failed:\n{transcript}");

    let msgs = sink.wait_for(2, Duration::from_secs(10));
    assert_eq!(msgs.len(), 2);
    assert_eq!(
        header(&msgs[0], "X-MailFrom").as_deref(),
        Some("alice@customer.example")
    );
    assert_eq!(
        header(&msgs[0], "X-RcptTo").as_deref(),
        Some("bob@example.org")
    );
    assert_eq!(header(&msgs[0], "Subject").as_deref(), Some("first"));
    assert_eq!(header(&msgs[1], "Subject").as_deref(), Some("second"));
    assert_eq!(sink.messages_to("dave@example.org").len(), 1);

    // Relay down: connections fail; then up again on the same port.
    sink.stop();
    let r = send_smtp(
        sink.port,
        "alice@customer.example",
        &["bob@example.org"],
        &raw,
    );
    assert_eq!(r.code, None, "sink is down, yet: {r:?}");
    sink.start_again();
    let r = send_smtp(sink.port, "", &["bob@example.org"], &raw);
    assert_eq!(r.code, Some(250), "{r:?}");
    let msgs = sink.wait_for(3, Duration::from_secs(10));
    // aiosmtpd records the null reverse path as "<>".
    assert_eq!(header(&msgs[2], "X-MailFrom").as_deref(), Some("<>"));
}

#[test]
fn batch_sender_reports_each_message() {
    let sink = Sink::start();
    let dir = TempDir::new("batch");
    let mut jobs = Vec::new();
    for i in 0..3 {
        let f = dir.path.join(format!("{i}.eml"));
        std::fs::write(
            &f,
            mail(
                "x@customer.example",
                &format!("b{i}"),
                &format!("<b{i}@x>"),
                &[],
                "hi",
            ),
        )
        .unwrap();
        jobs.push(Job {
            mail_from: "x@customer.example".into(),
            rcpts: vec!["y@example.org".into()],
            file: f,
        });
    }
    let res = send_batch(sink.port, &jobs);
    assert!(res.iter().all(|r| r.code == Some(250)), "{res:?}");
    sink.wait_for(3, Duration::from_secs(10));
    // Nothing listening: connection failure is reported, not a panic.
    let r = send_smtp(
        free_port(),
        "x@customer.example",
        &["y@example.org"],
        b"Subject: x\r\n\r\nx\r\n",
    );
    assert_eq!((r.code, r.stage.as_str()), (None, "connect"), "{r:?}");
}

#[test]
fn helpers() {
    assert_eq!(to_crlf(b"a\nb\r\nc\rd"), b"a\r\nb\r\nc\r\nd\r\n".to_vec());
    assert_eq!(to_crlf(b"a\r\n"), b"a\r\n".to_vec());
    let raw = b"Subject: hello\r\n world\r\nReply-To: Support <support+t1.abc@example.test>\r\n\r\nSubject: body\r\n";
    assert_eq!(header(raw, "subject").as_deref(), Some("hello world"));
    assert_eq!(
        bare_address(&header(raw, "Reply-To").unwrap()),
        "support+t1.abc@example.test"
    );
    assert_eq!(headers(raw, "Subject").len(), 1);
    assert_eq!(queued_as("2.0.0 Ok: queued as 17"), Some(17));
    assert_eq!(queued_as("2.0.0 Ok"), None);
    let a = free_port();
    assert!(a > 0 && !port_open(a));
}

/// The private DNS server answers the records it was given, and only those: the delivery and
/// sender-authentication tests depend on both.
#[test]
fn private_dns_serves_given_txt_record_and_nothing_else() {
    use common::dns::{Dns, Zone};
    let dns = Dns::start(&Zone::new().txt("_dmarc.example.test", "v=DMARC1; p=reject"));
    let ask = |name: &str| -> Vec<u8> {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        // Query id 0x4242, RD, one question NAME TXT IN.
        let mut q = vec![0x42, 0x42, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.split('.') {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.extend_from_slice(&[0, 0, 16, 0, 1]);
        sock.send_to(&q, dns.addr).unwrap();
        let mut buf = [0u8; 1500];
        let (n, _) = sock.recv_from(&mut buf).unwrap();
        buf[..n].to_vec()
    };
    let answer = ask("_dmarc.example.test");
    let ancount = u16::from_be_bytes([answer[6], answer[7]]);
    assert_eq!(ancount, 1, "one TXT answer");
    assert!(
        answer.windows(18).any(|w| w == b"v=DMARC1; p=reject"),
        "the record's text is in the answer"
    );
    // …as the whole character-string (length byte, then the text: no quotes kept).
    assert!(
        answer
            .windows(19)
            .any(|w| w[0] == 18 && &w[1..] == b"v=DMARC1; p=reject"),
        "the text is the record's whole string: {answer:?}"
    );
    let other = ask("_dmarc.elsewhere.test");
    assert_eq!(
        u16::from_be_bytes([other[6], other[7]]),
        0,
        "no answer for an unknown name"
    );
}
