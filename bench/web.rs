//! The web view's pages at scale: the queue page over 100,000 open tickets
//! and a ticket page with 200 messages, served by the real router on a
//! loopback socket. Prints p50 / p99 of the time from sending a request to
//! the last byte of the answer (server time plus a loopback round trip);
//! not a test.
//!
//!     cargo bench --bench web                          # 100,000 open tickets
//!     BENCH_TICKETS=20000 cargo bench --bench web      # quicker
//!
//! The ticket page's HTML-version check reads each inbound message's raw
//! bytes, so the 200 messages carry small raw mails too.

use postdesk::clock::Clock;
use postdesk::model::{
    Direction, MessageKind, MessageRecord, Priority, SlaState, Status, Ticket, WebSession,
};
use postdesk::rules::{Agent, LiveRules, RuleSet};
use postdesk::store::Store;
use postdesk::web::{WebState, session};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Instant;

const SAMPLES: usize = 200;

fn main() {
    let n: u64 = std::env::var("BENCH_TICKETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = std::env::temp_dir().join(format!("postdesk-bench-web-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::open(&dir).expect("store");
    let now = Clock::system().now();
    let start = Instant::now();
    let mut id = 0;
    while id < n {
        store
            .write(|tx| {
                for _ in 0..10_000 {
                    if id >= n {
                        break;
                    }
                    id += 1;
                    let x = id.wrapping_mul(2654435761);
                    let due = now - 3600 + (x % 200_000) as i64;
                    let mut t = Ticket {
                        subject: format!("Ticket {id}: the printer on floor {}", x % 9),
                        status: [Status::New, Status::Open, Status::Pending][(x % 3) as usize],
                        priority: [Priority::Low, Priority::Normal, Priority::High]
                            [((x >> 2) % 3) as usize],
                        queue: ["general", "billing", "it"][((x >> 4) % 3) as usize].into(),
                        assignee: [None, Some("alice"), Some("bob"), Some("carol")]
                            [((x >> 6) % 4) as usize]
                            .map(str::to_string),
                        sla: Some(SlaState {
                            policy: "standard".into(),
                            first_response_due: Some(due),
                            resolution_due: Some(due + 86_400),
                            first_response_at: None,
                            paused_since: None,
                            fired: Vec::new(),
                            started_at: Some(now - 7200),
                            paused_business_secs: 0,
                        }),
                        ..Ticket::new(id, "customer@example.org", now - 7200)
                    };
                    if x % 50 == 0 {
                        t.tags.push("vip".into());
                    }
                    tx.put_ticket(&t)?;
                }
                Ok(())
            })
            .expect("write tickets");
    }
    let long = n + 1;
    store
        .write(|tx| {
            let mut t = Ticket::new(long, "customer@example.org", now - 86_400);
            t.subject = "A long conversation".into();
            t.status = Status::Open;
            t.message_count = 200;
            tx.put_ticket(&t)?;
            for i in 0..200u64 {
                let seq = 1_000_000 + i;
                let inbound = i % 2 == 0;
                let text = format!(
                    "Message {i}.\n\nThe printer on floor 3 still prints every page twice; \
                     we tried the driver update and a restart.\n\n-- \nA customer\n"
                );
                tx.put_message(&MessageRecord {
                    seq,
                    ticket: Some(long),
                    message_id: format!("m{i}@example.org"),
                    direction: if inbound {
                        Direction::Inbound
                    } else {
                        Direction::Outbound
                    },
                    kind: if inbound {
                        MessageKind::Customer
                    } else {
                        MessageKind::Agent
                    },
                    from: "customer@example.org".into(),
                    to: vec!["support@example.test".into()],
                    subject: "Re: A long conversation".into(),
                    date: now - 86_400 + i as i64 * 60,
                    text: text.clone(),
                    stranger: None,
                })?;
                if inbound {
                    let raw = format!(
                        "From: customer@example.org\r\nTo: support@example.test\r\nSubject: Re: A long conversation\r\nMessage-ID: <m{i}@example.org>\r\nContent-Type: text/plain\r\n\r\n{}",
                        text.replace('\n', "\r\n")
                    );
                    tx.put_raw(seq, raw.as_bytes())?;
                }
            }
            Ok(())
        })
        .expect("write the long ticket");
    println!(
        "store: {n} open tickets and one of 200 messages written in {:.1} s",
        start.elapsed().as_secs_f64()
    );

    let mut rules = RuleSet::default();
    rules.agents.list.push(Agent {
        name: "alice".into(),
        display_name: "Alice".into(),
        address: "alice@example.test".into(),
        alternates: vec![],
        queues: vec!["general".into()],
        skills: vec![],
        password_hash: Some("$argon2id$bench".into()),
    });
    let state = WebState {
        store: store.clone(),
        rules: Arc::new(LiveRules::new(rules)),
        clock: Clock::system(),
        session_idle: 8 * 3600,
        https: false,
        limiter: Default::default(),
        processor: None,
        spool: None,
        presence: Default::default(),
        search: None,
    };
    let session_id = "b".repeat(64);
    store
        .put_web_session(
            &session::key_of(&session_id),
            &WebSession {
                agent: "alice".into(),
                created: now,
                last_seen: now,
                csrf: "c".repeat(64),
            },
            now - 3600,
        )
        .expect("session");
    let cookie = format!("{}={session_id}", session::cookie_name(false));

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = postdesk::web::router(Arc::new(state))
        .layer(axum::middleware::from_fn(
            postdesk::web::headers::security_headers,
        ))
        .into_make_service_with_connect_info::<SocketAddr>();
    rt.spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let first = get(addr, "/", &cookie).1;
    let next = first
        .split(r#"<a rel="next" href=""#)
        .nth(1)
        .and_then(|s| s.split('"').next())
        .map(|s| s.replace("&amp;", "&"))
        .expect("a next page");
    let cases = [
        ("queue page, All open (first page)", "/".to_string()),
        ("queue page, All open (second page)", next),
        ("queue page, Unassigned", "/?folder=unassigned".to_string()),
        (
            "queue page, All open + priority=high + tag=vip",
            "/?folder=open&priority=high&tag=vip".to_string(),
        ),
        (
            "live refresh fragment",
            "/queue/live?folder=open".to_string(),
        ),
        ("ticket page, 200 messages", format!("/tickets/{long}")),
    ];
    println!(
        "\n{:<48} {:>9} {:>9} {:>9}",
        "request", "p50 ms", "p99 ms", "bytes"
    );
    for (name, path) in cases {
        for _ in 0..5 {
            get(addr, &path, &cookie);
        }
        let mut ms = Vec::with_capacity(SAMPLES);
        let mut bytes = 0;
        for _ in 0..SAMPLES {
            let t = Instant::now();
            let (status, body) = get(addr, &path, &cookie);
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(status, 200, "{path}");
            bytes = body.len();
        }
        ms.sort_by(f64::total_cmp);
        let p = |q: f64| ms[((ms.len() as f64 * q) as usize).min(ms.len() - 1)];
        println!("{name:<48} {:>9.2} {:>9.2} {bytes:>9}", p(0.50), p(0.99));
    }
    drop(rt);
    let _ = std::fs::remove_dir_all(&dir);
}

/// One GET on a fresh connection: (status, body).
fn get(addr: SocketAddr, path: &str, cookie: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).expect("read");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}
