use super::*;
use crate::rules::agents::Agents;

const AGENTS: &str = "[[agent]]\nname = \"alice\"\naddress = \"alice@example.test\"\nqueues = [\"billing\"]\nskills = [\"printers\"]\n";

fn routing(text: &str) -> Result<Routing, Vec<Diagnostic>> {
    let agents = Agents::parse(AGENTS, Path::new("agents.toml")).unwrap();
    Routing::parse(
        text,
        Path::new("routing.toml"),
        &agents,
        &["general".into()],
    )
}

fn facts<'a>(sender: &'a str, subject: &'a str, body: &'a str, cal: &'a Calendar) -> Facts<'a> {
    Facts {
        mailbox: "support@example.test",
        sender,
        subject,
        body,
        headers: &[],
        attachments: &[],
        now: 1_764_000_000, // a Monday, 2025-11-24 16:00 UTC
        calendar: cal,
    }
}

#[test]
fn first_matching_rules_apply_in_order_until_stop() {
    let r = routing(
        r#"
[lists]
vip = ["@bigclient.example"]

[[rule]]
name = "billing"
when = { any = [ { subject = "invoice|refund" }, { body = "credit card" } ] }
queue = "billing"
tags = ["billing"]
assign = "alice"

[[rule]]
name = "vip"
when = { in_list = "vip" }
priority = "urgent"
tags = ["vip"]
stop = true

[[rule]]
name = "never reached for vips"
priority = "low"
"#,
    )
    .unwrap();
    let cal = Calendar::always_open();
    let o = r.evaluate(&facts(
        "boss@bigclient.example",
        "Your INVOICE 42",
        "",
        &cal,
    ));
    assert_eq!(o.queue.as_deref(), Some("billing"));
    assert_eq!(o.priority, Some(Priority::Urgent));
    assert_eq!(o.tags, vec!["billing", "vip"]);
    assert_eq!(o.assign, Some(Assign::Agent("alice".into())));
    assert_eq!(o.matched.len(), 2);
    assert!(o.matched[0].1[0].contains("INVOICE"), "{:?}", o.matched);

    let o = r.evaluate(&facts("ann@example.org", "Hello", "", &cal));
    assert_eq!(o.priority, Some(Priority::Low));
    assert_eq!(o.queue, None);
}

#[test]
fn not_and_case_sensitivity() {
    let r = routing(
        r#"
[[rule]]
name = "exact"
when = { subject = { regex = "^URGENT", case_sensitive = true }, not = { sender_domain = "example.org" } }
priority = "high"
"#,
    )
    .unwrap();
    let cal = Calendar::always_open();
    assert_eq!(
        r.evaluate(&facts("a@shop.example", "URGENT: x", "", &cal))
            .priority,
        Some(Priority::High)
    );
    assert_eq!(
        r.evaluate(&facts("a@shop.example", "urgent: x", "", &cal))
            .priority,
        None
    );
    assert_eq!(
        r.evaluate(&facts("a@sub.example.org", "URGENT: x", "", &cal))
            .priority,
        None
    );
}

#[test]
fn invalid_rules_report_exact_positions() {
    let text = "[[rule]]\nname = \"bad regex\"\nwhen = { subject = \"(unclosed\" }\n";
    let e = routing(text).unwrap_err();
    assert_eq!((e[0].line, e[0].column), (3, 21), "{}", e[0]);
    assert!(e[0].message.contains("invalid regex"), "{}", e[0]);

    let text = "[[rule]]\nname = \"x\"\npriority = \"hgih\"\n";
    let e = routing(text).unwrap_err();
    assert_eq!((e[0].line, e[0].column), (3, 12), "{}", e[0]);

    let text = "[[rule]]\nname = \"x\"\nassign = \"bob\"\n";
    let e = routing(text).unwrap_err();
    assert_eq!((e[0].line, e[0].column), (3, 10), "{}", e[0]);

    let text = "[[rule]]\nname = \"x\"\nwhen = { subjet = \"a\" }\n";
    let e = routing(text).unwrap_err();
    assert_eq!(e[0].line, 3, "{}", e[0]);
    assert!(e[0].message.contains("subjet"), "{}", e[0]);

    let text = "[[rule]]\nname = \"x\"\nqueue = \"nowhere\"\n";
    let e = routing(text).unwrap_err();
    assert_eq!((e[0].line, e[0].column), (3, 9), "{}", e[0]);
}

#[test]
fn hours_wrap_midnight_in_calendar_time() {
    let r = routing("[[rule]]\nname = \"night\"\nwhen = { hours = \"18:00-08:00\" }\ntags = [\"after-hours\"]\n").unwrap();
    let utc = Calendar::always_open();
    // 16:00 UTC: not night
    assert!(
        r.evaluate(&facts("a@x.example", "s", "", &utc))
            .tags
            .is_empty()
    );
    let mut f = facts("a@x.example", "s", "", &utc);
    f.now += 4 * 3600; // 20:00
    assert_eq!(r.evaluate(&f).tags, vec!["after-hours"]);
}

#[test]
fn language_detection() {
    assert_eq!(
        detect_language(
            "Problem",
            "Ich kann mich nicht anmelden, bitte helfen Sie mir und danke"
        ),
        Some("de")
    );
    assert_eq!(
        detect_language("Help", "I cannot log in and the page is blank, please help"),
        Some("en")
    );
    assert_eq!(detect_language("", "12345"), None);
}
