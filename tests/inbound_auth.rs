//! postdesk verifying the senders it receives over SMTP, end to end: a private dnsmasq on
//! loopback publishes SPF, DKIM and DMARC records; mail is DKIM-signed by dkimpy (an
//! independent implementation) with keys made by `postdesk dkim-keygen`, sent to the real
//! daemon by smtplib from 127.0.0.1, and what the daemon stored (our Authentication-Results
//! on top), what its API says (`sender_verdict`) and what it did (acknowledged or not, agent
//! mail acted on or quarantined) is checked. No query leaves the machine: the daemon asks
//! only the test's dnsmasq.

mod common;
use common::dns::{Dns, Zone};
use common::web::{http, login_as, set_passwords};
use common::*;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const ALICE: &str = "alice@example.test";
/// Signs with DKIM, publishes DMARC p=reject and an SPF record that authorises nobody:
/// only a valid signature passes DMARC for it.
const SIGNED: &str = "signed.example";
/// SPF authorises 127.0.0.1; no DMARC record.
const SPF_OK: &str = "spf-ok.example";
/// SPF authorises 192.0.2.0/24 only (not 127.0.0.1); no DMARC record.
const SPF_NO: &str = "spf-no.example";

/// Runs `postdesk dkim-keygen` for `domain` into `dir`: the key file and the TXT record.
fn keygen(dir: &Path, selector: &str, domain: &str) -> (PathBuf, String) {
    let key = dir.join(format!("{selector}.{domain}.pem"));
    let out = Command::new(daemon_bin())
        .args([
            "dkim-keygen",
            "--selector",
            selector,
            "--domain",
            domain,
            "--algorithm",
            "rsa",
            "--key-file",
        ])
        .arg(&key)
        .output()
        .expect("run postdesk dkim-keygen");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "dkim-keygen failed: {stdout}");
    let zone = stdout
        .lines()
        .find(|l| l.starts_with(&format!("{selector}._domainkey.{domain}. IN TXT (")))
        .unwrap_or_else(|| panic!("no zone line in:\n{stdout}"));
    let strings: Vec<&str> = zone.split('"').skip(1).step_by(2).collect();
    (key, strings.concat())
}

/// `raw` signed by dkimpy with `key` as `selector._domainkey.domain`.
fn sign(raw: &[u8], key: &Path, selector: &str, domain: &str) -> Vec<u8> {
    let mut child = Command::new(python())
        .arg(peer_script("dkim_sign.py"))
        .arg(key)
        .args([selector, domain])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run dkim_sign.py");
    child.stdin.take().unwrap().write_all(raw).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "dkim_sign.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The zone of these tests, with the keys of `signed.example` and `example.test` (the agents').
struct Keys {
    _dir: TempDir,
    signed: PathBuf,
    agents: PathBuf,
    zone: Zone,
}

fn keys() -> Keys {
    let dir = TempDir::new("inbound-auth-keys");
    let (signed, signed_txt) = keygen(&dir.path, "s1", SIGNED);
    let (agents, agents_txt) = keygen(&dir.path, "pd1", "example.test");
    // The whole of .example and .test answered from here: DMARC's tree walk asks up to the
    // top-level domain (`_dmarc.example`), which must be "no record", not a refusal.
    let zone = Zone::new()
        .authoritative("example")
        .authoritative("test")
        .txt_long(&format!("s1._domainkey.{SIGNED}"), &signed_txt)
        .txt(SIGNED, "v=spf1 -all")
        .txt(&format!("_dmarc.{SIGNED}"), "v=DMARC1; p=reject")
        .txt(SPF_OK, "v=spf1 ip4:127.0.0.1 -all")
        .txt(SPF_NO, "v=spf1 ip4:192.0.2.0/24 -all")
        .txt_long("pd1._domainkey.example.test", &agents_txt)
        .txt("example.test", "v=spf1 -all")
        .txt("_dmarc.example.test", "v=DMARC1; p=reject");
    Keys {
        _dir: dir,
        signed,
        agents,
        zone,
    }
}

/// A daemon verifying senders against `dns`.
fn start(dns: &Dns, tweak: impl FnOnce(&mut DaemonConfig)) -> (Sink, Daemon) {
    let sink = Sink::start();
    let d = Daemon::start_with(&sink, |c| {
        c.set("auth", "verify", "true");
        c.set("auth", "verify_loopback", "true");
        c.set("auth", "dns_server", &q(&dns.addr.to_string()));
        tweak(c);
    });
    (sink, d)
}

/// The stored raw message `seq`, as text.
fn stored(d: &Daemon, seq: u64) -> String {
    d.wait_message(seq, SECS_30);
    let (st, raw) = d.api_get_raw(&format!("/api/v1/messages/{seq}/raw"));
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&raw));
    String::from_utf8_lossy(&raw).into_owned()
}

/// The Authentication-Results headers of `raw` (unfolded), in order.
fn auth_results(raw: &str) -> Vec<String> {
    headers(raw.as_bytes(), "Authentication-Results")
}

/// `sender_verdict` of message `seq` in the API.
fn verdict(d: &Daemon, seq: u64) -> Value {
    d.wait_message(seq, SECS_30)["sender_verdict"].clone()
}

fn customer_mail(from: &str, tag: &str, body: &str) -> Vec<u8> {
    mail(
        &format!("Carla <{from}>"),
        &format!("Printer on fire ({tag})"),
        &format!("<{tag}@customer.test>"),
        &[],
        body,
    )
}

#[test]
fn signed_mail_passes_altered_mail_fails_and_spf_follows_the_client_address() {
    let k = keys();
    let dns = Dns::start(&k.zone);
    let (sink, d) = start(&dns, |_| {});

    // Signed by the From's domain: DKIM and DMARC pass, our header on top, acknowledged.
    let carla = format!("carla@{SIGNED}");
    let raw = customer_mail(&carla, "signed", "The printer is on fire.\n");
    let signed = sign(&raw, &k.signed, "s1", SIGNED);
    let seq = d.send_ok(&carla, &[SUPPORT], &signed);
    let text = stored(&d, seq);
    assert!(
        text.starts_with(&format!("Authentication-Results: {HOSTNAME};")),
        "{text}"
    );
    let ar = auth_results(&text);
    assert_eq!(ar.len(), 1, "{ar:?}");
    assert!(ar[0].contains("dkim=pass"), "{ar:?}");
    assert!(ar[0].contains("dmarc=pass"), "{ar:?}");
    assert!(ar[0].contains(&format!("header.from={SIGNED}")), "{ar:?}");
    // Everything below our header is the message as received.
    assert!(text.ends_with(&String::from_utf8_lossy(&signed).into_owned()));
    let v = verdict(&d, seq);
    assert_eq!(v["verdict"], "pass", "{v}");
    assert_eq!(v["mechanism"], "dmarc", "{v}");
    assert_eq!(v["dmarc_policy"], "reject", "{v}");
    sink.nth_to(&carla, 1);
    let signed_ticket = d.ticket_of(seq);

    // The same mail altered after signing: DKIM fails, and so does DMARC (p=reject).
    let dave = format!("dave@{SIGNED}");
    let raw = customer_mail(&dave, "altered", "The printer is on fire.\n");
    let altered = String::from_utf8(sign(&raw, &k.signed, "s1", SIGNED))
        .unwrap()
        .replace("on fire", "fine now");
    let seq = d.send_ok(&dave, &[SUPPORT], altered.as_bytes());
    let ar = auth_results(&stored(&d, seq));
    // A body that no longer matches its hash: mail-auth says neutral, others fail; never pass.
    assert!(
        ar[0].contains("dkim=neutral (body hash did not verify)") || ar[0].contains("dkim=fail"),
        "{ar:?}"
    );
    assert!(ar[0].contains("dmarc=fail"), "{ar:?}");
    let v = verdict(&d, seq);
    assert_eq!(v["verdict"], "fail", "{v}");
    assert_eq!(v["mechanism"], "dmarc", "{v}");

    // SPF by the client's address (127.0.0.1): authorised by one record, excluded by the other.
    let erin = format!("erin@{SPF_OK}");
    let seq = d.send_ok(
        &erin,
        &[SUPPORT],
        &customer_mail(&erin, "spf-ok", "Hello.\n"),
    );
    let ar = auth_results(&stored(&d, seq));
    assert!(
        ar[0].contains("spf=pass") && ar[0].contains(&format!("smtp.mailfrom={erin}")),
        "{ar:?}"
    );
    assert!(ar[0].contains("dmarc=none"), "{ar:?}");
    let v = verdict(&d, seq);
    assert_eq!(
        (&v["verdict"], &v["mechanism"]),
        (&"pass".into(), &"spf".into()),
        "{v}"
    );

    let fred = format!("fred@{SPF_NO}");
    let seq = d.send_ok(
        &fred,
        &[SUPPORT],
        &customer_mail(&fred, "spf-no", "Hello.\n"),
    );
    let ar = auth_results(&stored(&d, seq));
    assert!(
        ar[0].contains("spf=fail") && ar[0].contains(&format!("smtp.mailfrom={fred}")),
        "{ar:?}"
    );
    let v = verdict(&d, seq);
    assert_eq!(
        (&v["verdict"], &v["mechanism"]),
        (&"fail".into(), &"spf".into()),
        "{v}"
    );

    let spf_no_ticket = d.ticket_of(seq);
    let ticket = d.ticket(&spf_no_ticket);
    assert_eq!(ticket["messages"][0]["sender_verdict"]["verdict"], "fail");

    // The ticket page shows the verdict next to the sender.
    set_passwords(&d);
    let cookie = login_as(&d, "alice");
    let page = |id: &str| {
        let a = http(
            d.web_port,
            "GET",
            &format!("/tickets/{id}"),
            &[("Cookie", &cookie)],
            "",
        );
        assert_eq!(a.status, 200, "{}", a.body);
        a.text()
    };
    let html = page(&signed_ticket);
    assert!(
        html.contains(r#"class="badge sender-pass" data-verdict="pass""#)
            && html.contains("verified sender (DMARC)"),
        "{html}"
    );
    let html = page(&spf_no_ticket);
    assert!(
        html.contains(r#"class="badge sender-fail" data-verdict="fail""#)
            && html.contains("sender check failed (SPF)"),
        "{html}"
    );
}

/// A sender who writes our own authserv-id into an Authentication-Results header, claiming a
/// DMARC pass for a domain that is not theirs, is neither believed nor left looking believable:
/// the header is renamed, ours says what we found, and nothing vouches for the From (no
/// acknowledgement to the forged address: it would be backscatter).
#[test]
fn a_forged_authentication_results_with_our_id_is_renamed_and_vouches_for_nothing() {
    let k = keys();
    let dns = Dns::start(&k.zone);
    let (sink, d) = start(&dns, |_| {});
    let victim = format!("victim@{SIGNED}");
    let forged = format!(
        "Authentication-Results: {HOSTNAME}; dkim=pass header.d={SIGNED}; dmarc=pass header.from={SIGNED}"
    );
    let raw = mail(
        &format!("Victim <{victim}>"),
        "Please reset my password",
        "<forged-ar@mallory.test>",
        &[forged.as_str()],
        "Send the new password to this address.\n",
    );
    let seq = d.send_ok("mallory@elsewhere.test", &[SUPPORT], &raw);
    let text = stored(&d, seq);
    let ar = auth_results(&text);
    assert_eq!(ar.len(), 1, "only our own header keeps the name: {ar:?}");
    assert!(ar[0].starts_with(HOSTNAME), "{ar:?}");
    assert!(ar[0].contains("dmarc=fail"), "{ar:?}");
    let renamed = headers(text.as_bytes(), "X-Forged-Authentication-Results");
    assert_eq!(renamed.len(), 1, "{text}");
    assert!(renamed[0].contains("dmarc=pass"), "{renamed:?}");
    assert_eq!(verdict(&d, seq)["verdict"], "fail");

    d.wait_idle(SECS_60);
    let t = d.ticket(&d.ticket_of(seq));
    let suppressed = t["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "ack_suppressed")
        .unwrap_or_else(|| panic!("no ack_suppressed event: {t}"));
    assert!(
        suppressed["detail"]
            .as_str()
            .unwrap()
            .contains("nothing vouches"),
        "{suppressed}"
    );
    assert!(
        sink.messages_to(&victim).is_empty(),
        "backscatter to {victim}"
    );
}

/// `postdesk deliver` hands over mail another MTA received: its client address (loopback)
/// proves nothing, so it is not verified, gets no header of ours, and an Authentication-Results
/// in it claiming our id is not believed (it vouches for nothing: no acknowledgement).
#[test]
fn mail_handed_over_by_deliver_is_not_verified_and_our_id_in_it_is_not_believed() {
    let k = keys();
    let dns = Dns::start(&k.zone);
    let (sink, d) = start(&dns, |_| {});
    let victim = format!("victim@{SIGNED}");
    let forged = format!("Authentication-Results: {HOSTNAME}; dmarc=pass header.from={SIGNED}");
    let raw = mail(
        &format!("Victim <{victim}>"),
        "Please reset my password",
        "<forged-deliver@mallory.test>",
        &[forged.as_str()],
        "Send the new password to this address.\n",
    );
    let mut child = Command::new(daemon_bin())
        .arg("deliver")
        .arg("-c")
        .arg(&d.config_path)
        .args(["-f", "mallory@elsewhere.test", SUPPORT])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run postdesk deliver");
    child.stdin.take().unwrap().write_all(&raw).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    d.wait_idle(SECS_60);
    let tickets = d.all_tickets();
    assert_eq!(tickets.len(), 1, "{tickets:?}");
    let t = d.ticket(&id_string(&tickets[0]["id"]).unwrap());
    let m = &t["messages"][0];
    assert!(m["sender_verdict"].is_null(), "{m}");
    let seq: u64 = id_string(&m["seq"]).unwrap().parse().unwrap();
    let text = stored(&d, seq);
    assert_eq!(
        auth_results(&text),
        vec![forged[24..].trim().to_string()],
        "{text}"
    );
    assert!(
        t["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "ack_suppressed"
                && e["detail"].as_str().unwrap().contains("nothing vouches")),
        "{t}"
    );
    assert!(
        sink.messages_to(&victim).is_empty(),
        "backscatter to {victim}"
    );
}

/// A DNS server that never answers delays intake by `auth.timeout` at most: the mail is
/// accepted and stored with temperror results, not refused.
#[test]
fn a_silent_dns_server_makes_temperror_not_a_refusal() {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let sink = Sink::start();
    let d = Daemon::start_with(&sink, |c| {
        c.set("auth", "verify", "true");
        c.set("auth", "verify_loopback", "true");
        c.set("auth", "dns_server", &q(&addr.to_string()));
        c.set("auth", "timeout", &q("1s"));
    });
    let from = format!("gina@{SPF_OK}");
    let r = d.send(
        &from,
        &[SUPPORT],
        &customer_mail(&from, "silent", "Hello.\n"),
    );
    assert_eq!(r.code, Some(250), "{:?}", r.raw_json);
    let seq = r.seq.unwrap();
    let ar = auth_results(&stored(&d, seq));
    assert!(ar[0].contains("spf=temperror"), "{ar:?}");
    assert!(ar[0].contains("dmarc=temperror"), "{ar:?}");
    assert_eq!(verdict(&d, seq)["verdict"], "none");
    drop(silent);
}

/// An agent's reply whose domain publishes DMARC p=reject: unsigned (so failing DMARC) it is
/// quarantined and the agent told why; the same reply signed by the agent's domain acts.
#[test]
fn agent_reply_failing_its_domains_dmarc_is_quarantined_and_the_signed_one_acts() {
    let k = keys();
    let dns = Dns::start(&k.zone);
    let (sink, d) = start(&dns, |c| {
        c.set("agents", "notify", "true");
    });
    let customer = format!("hana@{SPF_OK}");
    let seq = d.send_ok(
        &customer,
        &[SUPPORT],
        &customer_mail(&customer, "agent-dmarc", "My printer is on fire.\n"),
    );
    let id = d.ticket_of(seq);
    sink.nth_to(&customer, 1);
    let note = sink.nth_to(ALICE, 1);
    let reply_to = bare_address(&header(&note, "Reply-To").expect("notification Reply-To"));
    let parent = header(&note, "Message-ID").unwrap_or_default();
    let reply = |msgid: &str| {
        mail(
            &format!("Alice <{ALICE}>"),
            &format!("Re: {}", header(&note, "Subject").unwrap_or_default()),
            msgid,
            &[
                &format!("In-Reply-To: {parent}"),
                &format!("References: {parent}"),
            ],
            "Unplug it and step away, please.\n",
        )
    };

    // Unsigned: SPF of example.test authorises nobody, no signature: DMARC fails.
    let seq = d.send_ok(ALICE, &[&reply_to], &reply("<unsigned@example.test>"));
    assert_eq!(verdict(&d, seq)["verdict"], "fail");
    let notice = wait_until(SECS_30, "the notice to alice", || {
        sink.messages_to(ALICE)
            .into_iter()
            .find(|m| header(m, "Subject").is_some_and(|s| s.contains("Not posted")))
    });
    let why = body_text(&notice);
    assert!(why.contains("DMARC"), "{why}");
    let quarantine = d.api_ok("/api/v1/quarantine")["entries"].clone();
    assert!(
        quarantine
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["from"] == ALICE && e["reason"].as_str().unwrap().contains("DMARC")),
        "{quarantine}"
    );
    d.wait_idle(SECS_60);
    assert_eq!(
        sink.messages_to(&customer).len(),
        1,
        "only the acknowledgement"
    );

    // The same reply signed by example.test: DMARC passes, the reply goes to the customer.
    let signed = sign(
        &reply("<signed@example.test>"),
        &k.agents,
        "pd1",
        "example.test",
    );
    let seq = d.send_ok(ALICE, &[&reply_to], &signed);
    assert_eq!(verdict(&d, seq)["verdict"], "pass");
    let relayed = sink.nth_to(&customer, 2);
    assert!(
        body_text(&relayed).contains("Unplug it"),
        "{}",
        body_text(&relayed)
    );
    let t = d.ticket(&id);
    assert!(
        t["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["kind"] == "agent" && m["text"].as_str().unwrap().contains("Unplug it")),
        "{t}"
    );
}

/// By default a loopback client (a local tool, an MTA in front that did its own checks) is not
/// verified: its address proves nothing, and the quick start's test mail must not be judged by
/// the real DNS of its sender's domain. No lookup, no header of ours, no verdict.
#[test]
fn loopback_clients_are_not_verified_unless_asked() {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let sink = Sink::start();
    let d = Daemon::start_with(&sink, |c| {
        c.set("auth", "verify", "true");
        c.set("auth", "dns_server", &q(&addr.to_string()));
        c.set("auth", "timeout", &q("1s"));
    });
    let from = format!("ida@{SPF_OK}");
    let seq = d.send_ok(
        &from,
        &[SUPPORT],
        &customer_mail(&from, "local", "Hello.\n"),
    );
    let ar = auth_results(&stored(&d, seq));
    assert!(ar.is_empty(), "a loopback client was verified: {ar:?}");
    assert!(verdict(&d, seq).is_null(), "{}", verdict(&d, seq));
    // Nothing was asked of the DNS server.
    silent.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 512];
    assert!(silent.recv_from(&mut buf).is_err(), "a DNS query was sent");
}
