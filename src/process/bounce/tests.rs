//! Real delivery reports from fixtures/corpus/autoreply-bounce (sisimai's
//! set-of-emails and the mail gem; sources and licences in its MANIFEST.md).

use super::*;

fn fixture(path: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/corpus/autoreply-bounce")
        .join(path);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn report(path: &str) -> Report {
    parse(&fixture(path)).unwrap_or_else(|| panic!("{path}: not read as a delivery report"))
}

fn only(path: &str) -> Recipient {
    let r = report(path);
    assert_eq!(r.recipients.len(), 1, "{path}: {r:?}");
    r.recipients.into_iter().next().unwrap()
}

#[test]
fn rfc3464_sendmail_report() {
    let r = report("sisimai/bsd/rfc3464-01.eml");
    assert_eq!(r.format, Format::Rfc3464);
    assert_eq!(r.reporting_mta.as_deref(), Some("smtpgw.example.jp"));
    let rc = &r.recipients[0];
    assert_eq!(rc.address, "userunknown@bouncehammer.jp");
    assert_eq!(rc.action, Action::Failed);
    assert_eq!(rc.status.as_deref(), Some("5.1.1"));
    assert_eq!(rc.remote_mta.as_deref(), Some("mx.bouncehammer.jp"));
    assert_eq!(
        rc.diagnostic.as_deref(),
        Some("550 5.1.1 <userunknown@bouncehammer.jp>... User Unknown")
    );
}

#[test]
fn postfix_names_the_original_recipient() {
    let rc = only("sisimai/bsd/lhost-postfix-01.eml");
    assert_eq!(rc.address, "kijitora@example.org");
    assert_eq!(rc.action, Action::Failed);
    assert_eq!(rc.status.as_deref(), Some("5.1.1"));
    assert!(
        rc.diagnostic.as_deref().unwrap().starts_with("procmail:"),
        "{rc:?}"
    );
}

#[test]
fn exchange_2007_report() {
    let rc = only("sisimai/bsd/lhost-exchange2007-01.eml");
    assert_eq!(rc.address, "mikeneko@example.co.jp");
    assert_eq!(rc.status.as_deref(), Some("5.1.1"));
    assert!(rc.diagnostic.as_deref().unwrap().contains("RecipNotFound"));
}

#[test]
fn delayed_report_is_not_a_failure() {
    let rc = only("mail-gem/report_422.eml");
    assert_eq!(rc.address, "fraser@oooooooo.com.au");
    assert_eq!(rc.action, Action::Delayed);
    assert_eq!(rc.status.as_deref(), Some("4.2.2"));
    assert_eq!(rc.remote_mta.as_deref(), Some("mail.oooooooo.com.au"));
}

#[test]
fn several_recipients_in_one_report() {
    let r = report("mail-gem/multi_address_bounce1.eml");
    assert_eq!(r.recipients.len(), 5, "{r:?}");
    assert!(r.recipients.iter().all(|rc| rc.action == Action::Failed
        && rc.status.as_deref() == Some("5.1.1")
        && rc.remote_mta.as_deref() == Some("gmail-smtp-in.l.google.com")));
    assert_eq!(r.recipients[0].address, "bbbbvhvbbvkjbhfbvbvjhb@gmail.com");
    // A continued Diagnostic-Code is one line.
    let d = r.recipients[0].diagnostic.as_deref().unwrap();
    assert!(d.starts_with("550-5.1.1 The email account that you tried to reach does"));
    assert!(d.len() > 60 && !d.contains('\n'), "{d}");
}

#[test]
fn angle_bracketed_final_recipient() {
    let r = report("mail-gem/multipart_report_multiple_status.eml");
    assert_eq!(r.recipients[0].address, "u@ci.com");
    assert_eq!(r.recipients[0].status.as_deref(), Some("5.3.0"));
}

#[test]
fn qmail_plain_text_bounce() {
    let r = report("sisimai/bsd/lhost-qmail-01.eml");
    assert_eq!(r.format, Format::Qmail);
    assert_eq!(r.reporting_mta.as_deref(), Some("mx4.example.jp"));
    let rc = &r.recipients[0];
    assert_eq!(rc.address, "kijitora@example.ne.jp");
    assert_eq!(rc.action, Action::Failed);
    assert_eq!(rc.status.as_deref(), Some("5.5.0"));
    assert_eq!(rc.remote_mta.as_deref(), Some("192.0.2.32"));
    assert!(
        rc.diagnostic
            .as_deref()
            .unwrap()
            .contains("550 Unknown user kijitora@example.ne.jp"),
        "{rc:?}"
    );
}

#[test]
fn exim_plain_text_bounce_with_two_recipients() {
    let r = report("sisimai/bsd/lhost-exim-02.eml");
    assert_eq!(r.format, Format::Exim);
    let got: Vec<(&str, Option<&str>, Option<&str>)> = r
        .recipients
        .iter()
        .map(|rc| {
            (
                rc.address.as_str(),
                rc.status.as_deref(),
                rc.remote_mta.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("kijitora@example.jp", Some("5.1.1"), Some("mx.example.jp")),
            ("sabatora@example.jp", Some("5.2.1"), Some("mx.example.jp")),
        ]
    );
    assert!(r.recipients.iter().all(|rc| rc.action == Action::Failed));
}

#[test]
fn exim_failure_at_mail_from() {
    let rc = only("sisimai/bsd/lhost-exim-01.eml");
    assert_eq!(rc.address, "kijitora@example.ed.jp");
    assert_eq!(rc.status.as_deref(), Some("5.7.0"));
    assert_eq!(rc.remote_mta.as_deref(), Some("mx.example.jp"));
}

#[test]
fn gmail_bounce_by_x_failed_recipients() {
    let r = report("sisimai/bsd/lhost-gmail-01.eml");
    assert_eq!(r.format, Format::FailedRecipientsHeader);
    let rc = &r.recipients[0];
    assert_eq!(rc.address, "userunknown@example.jp");
    assert_eq!(rc.action, Action::Failed);
    assert_eq!(rc.status.as_deref(), Some("5.1.1"));
    assert_eq!(rc.remote_mta.as_deref(), Some("mx.example.jp"));
    assert_eq!(
        rc.diagnostic.as_deref(),
        Some("550 5.1.1 <userunknown@example.jp>... User Unknown")
    );
}

#[test]
fn auto_replies_and_feedback_reports_are_not_delivery_reports() {
    for f in [
        "sisimai/bsd/rfc3834-01.eml",
        "sisimai/bsd/rfc3834-02.eml",
        "sisimai/bsd/arf-01.eml",
    ] {
        assert_eq!(parse(&fixture(f)), None, "{f}");
    }
}

/// How many of the corpus's delivery reports this module reads (printed;
/// the floor only guards against a regression).
#[test]
fn reads_most_of_the_corpus_bounces() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/corpus/autoreply-bounce");
    let manifest = std::fs::read_to_string(dir.join("MANIFEST.md")).unwrap();
    let bounces: Vec<&str> = manifest
        .lines()
        .filter(|l| l.contains("is_bounce: YES"))
        .filter_map(|l| l.split('|').nth(1).map(str::trim))
        .collect();
    let read: Vec<&str> = bounces
        .iter()
        .copied()
        .filter(|f| {
            std::fs::read(dir.join(f))
                .ok()
                .and_then(|raw| parse(&raw))
                .is_some()
        })
        .collect();
    let missed: Vec<&&str> = bounces.iter().filter(|f| !read.contains(f)).collect();
    eprintln!(
        "read {} of {} corpus bounces; not read: {missed:?}",
        read.len(),
        bounces.len()
    );
    assert!(bounces.len() > 50, "{}", bounces.len());
    // 59 of 87 when written (RFC 3464 and the plain-text forms above); the
    // rest are vendor formats (Domino, Notes, Office 365's HTML, Japanese
    // carriers) that stay quarantined or keep the subject as their summary.
    assert!(read.len() >= 59, "{missed:?}");
}

#[test]
fn dsn_fields_left_in_the_text_of_a_broken_report() {
    let rc = only("sisimai/bsd/rfc3464-04.eml");
    assert_eq!(rc.address, "kijitora@mailx-53.neko.example.edu");
    assert_eq!(rc.action, Action::Failed);
    assert_eq!(rc.status.as_deref(), Some("5.5.0"));
}

#[test]
fn yahoo_copies_qmail() {
    let rc = only("sisimai/bsd/lhost-yahoo-01.eml");
    assert_eq!(rc.address, "kijitora@example.org");
    assert_eq!(rc.action, Action::Failed);
    assert_eq!(rc.status.as_deref(), Some("5.1.1"));
}

#[test]
fn sendmail_text_without_a_dsn_part() {
    let rc = only("sisimai/bsd/lhost-activehunter-01.eml");
    assert_eq!(rc.address, "kijitora@example.org");
    assert_eq!(rc.action, Action::Failed);
    assert_eq!(rc.status.as_deref(), Some("5.1.1"));
    assert_eq!(
        rc.diagnostic.as_deref(),
        Some("550 sorry, no mailbox here by that name (#5.1.1 - chkusr)")
    );
}
