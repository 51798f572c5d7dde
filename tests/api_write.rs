//! The JSON write API acts on tickets through the same `act` as agents' mail
//! commands: a reply reaches the customer threaded, through the durable
//! outbound queue; a note stays internal; a bad command applies nothing; a
//! stale reply is held; no token, no write.

mod common;
use common::*;
use serde_json::{Value, json};

/// `POST path` with a JSON body (and the bearer token when `token`): (status, JSON).
fn post(port: u16, path: &str, body: &Value, token: bool) -> (u16, Value) {
    let token = token.then_some(API_TOKEN);
    let (status, _, body) =
        http_request(port, "POST", path, token, Some(&body.to_string())).expect("HTTP POST");
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[test]
fn agents_act_on_tickets_through_the_api_as_by_mail() {
    let sink = Sink::start();
    let d = Daemon::start(&sink);
    let customer = "carla@customer.example";
    let raw = mail(
        &format!("Carla <{customer}>"),
        "Printer jammed",
        "<api-1@customer.example>",
        &[],
        "The printer is jammed.\n",
    );
    let id = d.ticket_of(d.send_ok(customer, &[SUPPORT], &raw));
    sink.nth_to(customer, 1); // the acknowledgement
    let path = |action: &str| format!("/api/v1/tickets/{id}/{action}");

    let reply = json!({"agent": "alice", "body": "Open tray 2 and pull gently.", "commands": ["#priority high"]});
    let (code, _) = post(d.web_port, &path("reply"), &reply, false);
    assert_eq!(code, 401, "no token, no write");

    let (code, v) = post(d.web_port, &path("reply"), &reply, true);
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["version"], 1, "{v}");
    assert!(v["sent"]["reply"].is_string(), "{v}");
    let got = sink.nth_to(customer, 2);
    let text = body_text(&got);
    assert!(text.contains("Open tray 2"), "{text}");
    assert_eq!(
        header(&got, "In-Reply-To").as_deref(),
        Some("<api-1@customer.example>"),
        "threaded for the customer"
    );
    assert!(header(&got, "From").unwrap_or_default().contains(SUPPORT));
    let t = d.ticket(&id);
    assert_eq!(t["priority"], "high", "{t}");
    assert!(
        t["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "replied" && e["actor"] == "alice"),
        "{t}"
    );

    // A note stays inside.
    let (code, v) = post(
        d.web_port,
        &path("note"),
        &json!({"agent": "alice", "body": "Tray 2 is worn."}),
        true,
    );
    assert_eq!(code, 200, "{v}");
    d.wait_idle(SECS_30);
    assert_eq!(sink.messages_to(customer).len(), 2, "a note is not sent");
    let t = d.ticket(&id);
    assert!(
        t["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["kind"] == "note" && m["text"].as_str().unwrap_or("").contains("worn")),
        "{t}"
    );

    // One bad command applies nothing; an unknown agent acts on nothing.
    let bad = json!({"agent": "alice", "commands": ["#priority low", "#frobnicate"]});
    let (code, v) = post(d.web_port, &path("commands"), &bad, true);
    assert_eq!(code, 400, "{v}");
    let (code, _) = post(
        d.web_port,
        &path("commands"),
        &json!({"agent": "mallory", "commands": ["#close"]}),
        true,
    );
    assert_eq!(code, 400);
    let t = d.ticket(&id);
    assert_eq!(t["priority"], "high", "nothing applied: {t}");
    assert_ne!(t["status"], "closed", "{t}");

    // Bob writes against version 0, after Alice's reply: held, not sent.
    let stale = json!({"agent": "bob", "body": "Have you tried tray 1?", "seen_version": 0});
    let (code, v) = post(d.web_port, &path("reply"), &stale, true);
    assert_eq!(code, 200, "{v}");
    assert!(v["sent"]["held"].is_string(), "{v}");
    d.wait_idle(SECS_30);
    assert!(
        !sink
            .messages_to(customer)
            .iter()
            .any(|m| body_text(m).contains("tray 1")),
        "a stale reply is not sent"
    );
    let (code, _) = post(d.web_port, "/api/v1/tickets/999/reply", &reply, true);
    assert_eq!(code, 404);
}

#[test]
fn a_phone_ticket_takes_the_same_path_as_mail() {
    let sink = Sink::start();
    let d = Daemon::start(&sink);
    let call = json!({
        "agent": "alice",
        "customer": "dan@customer.example",
        "name": "Dan Caller",
        "subject": "Called: VPN drops every hour",
        "body": "Dan called: the VPN drops every hour since Monday.",
    });
    let (code, v) = post(d.web_port, "/api/v1/tickets", &call, true);
    assert_eq!(code, 201, "{v}");
    let id = v["ticket"].as_str().expect("ticket id").to_string();
    let t = d.ticket(&id);
    assert_eq!(t["requester"], "dan@customer.example", "{t}");
    assert_eq!(t["subject"], "Called: VPN drops every hour", "{t}");
    assert!(t["sla"]["policy"].is_string(), "the SLA clock runs: {t}");
    // The customer is told, as if they had written.
    let ack = sink.nth_to("dan@customer.example", 1);
    assert!(
        header(&ack, "Subject")
            .unwrap_or_default()
            .contains(&format!("[#{id}]"))
    );
    let (_, raw) = d.api_get_raw(&format!(
        "/api/v1/messages/{}/raw",
        v["seq"].as_str().unwrap()
    ));
    let raw = String::from_utf8_lossy(&raw).into_owned();
    assert!(raw.contains("X-Postdesk-Channel: phone"), "{raw}");
    assert!(raw.contains("X-Postdesk-Taken-By: alice"), "{raw}");

    for bad in [
        json!({"agent": "alice", "customer": "not an address", "subject": "x", "body": "y"}),
        json!({"agent": "mallory", "customer": "dan@customer.example", "subject": "x", "body": "y"}),
        json!({"agent": "alice", "customer": "dan@customer.example", "subject": "", "body": "y"}),
    ] {
        let (code, v) = post(d.web_port, "/api/v1/tickets", &bad, true);
        assert_eq!(code, 400, "{bad} → {v}");
    }
    let (code, _) = post(d.web_port, "/api/v1/tickets", &call, false);
    assert_eq!(code, 401);
    assert_eq!(d.tickets_total(), 1);
}
