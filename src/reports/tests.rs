//! A scripted December in Berlin business hours (Mon–Fri 09–17, Christmas
//! Day a holiday): customers write by SMTP, IMAP and phone, agents answer,
//! a ticket waits on its customer, one is reopened, one breaches. Every
//! figure below is worked out by hand in the comments.

use super::*;
use crate::model::{Event, EventKind, Priority, SlaState, Status, Ticket};
use std::path::Path;

const CALENDAR: &str = r#"
[default]
timezone = "Europe/Berlin"
hours = { mon = "09:00-17:00", tue = "09:00-17:00", wed = "09:00-17:00", thu = "09:00-17:00", fri = "09:00-17:00" }
holidays = ["2026-12-25"]
"#;

fn policies(cals: &[Calendar], first_response: &str) -> Policies {
    let text = format!(
        "[[policy]]\nname = \"normal\"\npriorities = [\"normal\"]\nfirst_response = \"{first_response}\"\nresolution = \"16h\"\ncalendar = \"default\"\n"
    );
    Policies::parse(
        &text,
        Path::new("sla.toml"),
        cals,
        &crate::rules::Agents::default(),
    )
    .unwrap()
}

fn ts(s: &str) -> i64 {
    s.parse::<jiff::Timestamp>().unwrap().as_second()
}

fn ev(at: &str, kind: EventKind, actor: &str, detail: &str) -> Event {
    Event::new(ts(at), kind, actor, detail.to_string())
}

struct Script {
    histories: Vec<History>,
}

impl Script {
    // One line of the script per ticket reads best with every field named in place.
    #[allow(clippy::too_many_arguments)]
    fn ticket(
        &mut self,
        id: u64,
        at: &str,
        channel: &str,
        queue: &str,
        priority: Priority,
        status: Status,
        events: Vec<Event>,
    ) {
        let mut t = Ticket::new(id, "c@example.test", ts(at));
        t.queue = queue.into();
        t.priority = priority;
        t.status = status;
        if priority == Priority::Normal {
            // What the SLA clock recorded: 4h / 16h business from opening
            // (ticket 2's deadlines moved by its pause; they are not read).
            let cal = &calendars()[0];
            t.sla = Some(SlaState {
                policy: "normal".into(),
                first_response_due: Some(cal.add_business_seconds(ts(at), 4 * 3600)),
                resolution_due: Some(cal.add_business_seconds(ts(at), 16 * 3600)),
                started_at: Some(ts(at)),
                ..SlaState::default()
            });
        }
        let mut all = vec![ev(
            at,
            EventKind::Created,
            "c@example.test",
            "customer from c@example.test: no thread matched",
        )];
        all.extend(events);
        self.histories.push(History {
            ticket: t,
            events: all,
            channel: channel.into(),
        });
    }
}

fn calendars() -> Vec<Calendar> {
    Calendar::parse_file(CALENDAR, Path::new("calendar.toml")).unwrap()
}

fn december() -> Vec<History> {
    use EventKind::{MessageAdded, Reopened, Replied, SlaBreach, SlaPaused};
    let mut s = Script {
        histories: Vec::new(),
    };
    // #1 Tue 1 Dec 09:00 local; alice answers at 11:00 (2h, 2h), resolves
    // Wed 09:00 (8h business, 24h wall). One touch.
    s.ticket(
        1,
        "2026-12-01T08:00:00Z",
        "smtp",
        "general",
        Priority::Normal,
        Status::Resolved,
        vec![
            ev("2026-12-01T10:00:00Z", Replied, "alice", "reply by alice"),
            ev(
                "2026-12-02T08:00:00Z",
                EventKind::Status,
                "alice",
                "open → resolved by alice",
            ),
        ],
    );
    // #2 Tue 16:00 local; bob answers Wed 10:00 (1h+1h = 2h business, 18h
    // wall) and sets pending; the customer answers Thu 09:00 (clock runs
    // again); bob replies and resolves Thu 11:00 local (1+8+2 = 11h, 43h).
    s.ticket(
        2,
        "2026-12-01T15:00:00Z",
        "imap",
        "general",
        Priority::Normal,
        Status::Resolved,
        vec![
            ev("2026-12-02T09:00:00Z", Replied, "bob", "reply by bob"),
            ev(
                "2026-12-02T10:00:00Z",
                EventKind::Status,
                "bob",
                "open → pending by bob",
            ),
            ev("2026-12-02T10:00:00Z", SlaPaused, "sla", "clock paused"),
            ev(
                "2026-12-03T08:00:00Z",
                MessageAdded,
                "c@example.test",
                "customer threaded by In-Reply-To",
            ),
            ev(
                "2026-12-03T08:00:00Z",
                EventKind::Status,
                "c@example.test",
                "pending → open: customer replied",
            ),
            ev("2026-12-03T09:00:00Z", Replied, "bob", "reply by bob"),
            ev(
                "2026-12-03T10:00:00Z",
                EventKind::Status,
                "bob",
                "open → resolved by bob",
            ),
        ],
    );
    // #3 by phone, billing, Thu 24 Dec 15:00 local; Christmas Day and the
    // weekend are closed: alice answers Mon 28th 10:00 (2+1 = 3h business,
    // 91h wall), resolves at 11:00 (4h, 92h); the customer reopens it Tue.
    s.ticket(
        3,
        "2026-12-24T14:00:00Z",
        "phone",
        "billing",
        Priority::Normal,
        Status::Open,
        vec![
            ev("2026-12-28T09:00:00Z", Replied, "alice", "reply by alice"),
            ev(
                "2026-12-28T10:00:00Z",
                EventKind::Status,
                "alice",
                "open → resolved by alice",
            ),
            ev(
                "2026-12-29T08:00:00Z",
                MessageAdded,
                "c@example.test",
                "customer threaded by [#3]",
            ),
            ev(
                "2026-12-29T08:00:00Z",
                Reopened,
                "c@example.test",
                "customer replied to a resolved ticket",
            ),
        ],
    );
    // #4 Wed 2 Dec 09:00 local: first response due 13:00 local, breached;
    // alice answers at 15:00 (6h, 6h); resolution breached Thu 17:00 local.
    s.ticket(
        4,
        "2026-12-02T08:00:00Z",
        "smtp",
        "general",
        Priority::Normal,
        Status::Open,
        vec![
            ev(
                "2026-12-02T12:00:00Z",
                SlaBreach,
                "sla",
                "first response overdue since 2026-12-02T12:00:00Z (policy normal)",
            ),
            ev("2026-12-02T14:00:00Z", Replied, "alice", "reply by alice"),
            ev(
                "2026-12-03T16:00:00Z",
                SlaBreach,
                "sla",
                "resolution overdue since 2026-12-03T16:00:00Z (policy normal)",
            ),
        ],
    );
    // #5 Saturday 11:00 local, urgent (no policy), unanswered.
    s.ticket(
        5,
        "2026-12-05T10:00:00Z",
        "smtp",
        "general",
        Priority::Urgent,
        Status::Open,
        vec![],
    );
    // #6 November: outside the period everywhere but the backlog (resolved: not there either).
    s.ticket(
        6,
        "2026-11-20T10:00:00Z",
        "smtp",
        "general",
        Priority::Normal,
        Status::Resolved,
        vec![
            ev("2026-11-20T11:00:00Z", Replied, "alice", "reply by alice"),
            ev(
                "2026-11-20T12:00:00Z",
                EventKind::Status,
                "alice",
                "open → resolved by alice",
            ),
        ],
    );
    s.histories
}

fn run(name: &str, first_response: &str, recompute: bool, queue: Option<&str>) -> Report {
    let cals = calendars();
    let pols = policies(&cals, first_response);
    let q = Query {
        since: ts("2026-12-01T00:00:00Z"),
        until: ts("2027-01-01T00:00:00Z"),
        queue: queue.map(String::from),
        interval: Interval::Day,
        calendars: &cals,
        policies: &pols,
        now: ts("2026-12-31T12:00:00Z"),
        recompute,
    };
    compute(name, &q, &december()).unwrap()
}

fn rows(r: &Report, table: &str) -> Vec<Vec<serde_json::Value>> {
    r.tables
        .iter()
        .find(|t| t.id == table)
        .unwrap()
        .rows
        .clone()
}

macro_rules! row {
    ($($v:expr),* $(,)?) => { vec![$(serde_json::json!($v)),*] };
}

#[test]
fn response_and_resolution_times_in_business_and_wall_hours() {
    let r = run("times", "4h", false, None);
    assert_eq!(
        rows(&r, "times"),
        vec![
            // business [2,2,3,6] → median 2, p90 6; wall [2,6,18,91] → 6, 91
            row!["first_response", 4, 2.0, 6.0, 6.0, 91.0],
            // business [4,8,11] → 8, 11; wall [24,43,92] → 43, 92
            row!["first_resolution", 3, 8.0, 11.0, 43.0, 92.0],
            // #3 is open again: [8,11] → 8, 11; wall [24,43] → 24, 43
            row!["final_resolution", 2, 8.0, 11.0, 24.0, 43.0],
        ]
    );
}

#[test]
fn reopen_and_one_touch_rates() {
    let r = run("rates", "4h", false, None);
    assert_eq!(
        rows(&r, "rates"),
        vec![row!["reopened", 1, 3, 0.3333], row!["one_touch", 1, 2, 0.5],]
    );
}

#[test]
fn sla_compliance_as_recorded_and_breaches_listed() {
    let r = run("sla", "4h", false, None);
    assert_eq!(
        rows(&r, "compliance"),
        vec![
            row!["first_response", 4, 3, 1, 0.75],
            row!["resolution", 4, 3, 1, 0.75],
        ]
    );
    assert_eq!(
        rows(&r, "breaches"),
        vec![
            row![
                4,
                "first_response",
                "2026-12-02T12:00:00Z",
                "general",
                "normal"
            ],
            row![4, "resolution", "2026-12-03T16:00:00Z", "general", "normal"],
        ]
    );
}

#[test]
fn recompute_under_todays_policy() {
    // Today's first response target is 3h: #3's reply at Mon 10:00 local is
    // exactly on its deadline (met), #4's 6h breaches; #1, #2 met. #4 is
    // still unresolved past its 16h resolution deadline (breached now).
    let r = run("sla", "3h", true, None);
    assert!(r.recomputed);
    assert_eq!(
        rows(&r, "compliance"),
        vec![
            row!["first_response", 4, 3, 1, 0.75],
            row!["resolution", 4, 3, 1, 0.75],
        ]
    );
    // 1h: every first response breaches.
    let r = run("sla", "1h", true, None);
    assert_eq!(
        rows(&r, "compliance")[0],
        row!["first_response", 4, 0, 4, 0.0]
    );
    assert_eq!(rows(&r, "breaches").len(), 5);
}

#[test]
fn volume_per_day_and_week_in_the_team_zone() {
    let r = run("volume", "4h", false, None);
    let total = rows(&r, "total");
    // December in UTC ends at 00:59 on 1 January in Berlin: 32 local days.
    assert_eq!(total.len(), 32);
    assert_eq!(total[31], row!["2027-01-01", 0]);
    assert_eq!(total[0], row!["2026-12-01", 2]);
    assert_eq!(total[1], row!["2026-12-02", 1]);
    assert_eq!(total[2], row!["2026-12-03", 0]);
    assert_eq!(total[4], row!["2026-12-05", 1]);
    assert_eq!(total[23], row!["2026-12-24", 1]);
    assert_eq!(total.iter().map(|r| r[1].as_u64().unwrap()).sum::<u64>(), 5);
    assert_eq!(
        rows(&r, "by_channel"),
        vec![
            row!["2026-12-01", "imap", 1],
            row!["2026-12-01", "smtp", 1],
            row!["2026-12-02", "smtp", 1],
            row!["2026-12-05", "smtp", 1],
            row!["2026-12-24", "phone", 1],
        ]
    );
    assert_eq!(
        rows(&r, "by_priority"),
        vec![
            row!["2026-12-01", "normal", 2],
            row!["2026-12-02", "normal", 1],
            row!["2026-12-05", "urgent", 1],
            row!["2026-12-24", "normal", 1],
        ]
    );
    let cals = calendars();
    let pols = policies(&cals, "4h");
    let q = Query {
        since: ts("2026-12-01T00:00:00Z"),
        until: ts("2027-01-01T00:00:00Z"),
        queue: None,
        interval: Interval::Week,
        calendars: &cals,
        policies: &pols,
        now: ts("2026-12-31T12:00:00Z"),
        recompute: false,
    };
    let weekly = compute("volume", &q, &december()).unwrap();
    assert_eq!(
        rows(&weekly, "total"),
        vec![
            row!["2026-11-30", 4],
            row!["2026-12-07", 0],
            row!["2026-12-14", 0],
            row!["2026-12-21", 1],
            // 31 Dec 23:59 UTC is 1 Jan 00:59 in Berlin: that week too.
            row!["2026-12-28", 0],
        ]
    );
}

#[test]
fn queue_filter_applies_to_every_report() {
    let r = run("volume", "4h", false, Some("billing"));
    assert_eq!(rows(&r, "by_queue"), vec![row!["2026-12-24", "billing", 1]]);
    let r = run("times", "4h", false, Some("billing"));
    assert_eq!(
        rows(&r, "times")[0],
        row!["first_response", 1, 3.0, 3.0, 91.0, 91.0]
    );
}

#[test]
fn heatmap_by_local_weekday_and_hour() {
    let r = run("heatmap", "4h", false, None);
    let grid = rows(&r, "heatmap");
    let at = |day: usize, hour: usize| grid[day][hour + 1].as_u64().unwrap();
    assert_eq!(grid[1][0], serde_json::json!("tue"));
    assert_eq!(
        (at(1, 9), at(1, 16), at(2, 9), at(3, 15), at(5, 11)),
        (1, 1, 1, 1, 1)
    );
    let sum: u64 = grid
        .iter()
        .flat_map(|r| r[1..].iter().map(|v| v.as_u64().unwrap()))
        .sum();
    assert_eq!(sum, 5);
}

#[test]
fn backlog_by_age_and_customer_wait() {
    let r = run("backlog", "4h", false, None);
    // Open now (31 Dec 12:00): #3 (7 days less 2h old; customer wrote 2 days
    // 4h ago), #4 (29 days), #5 (26 days).
    assert_eq!(
        rows(&r, "by_age"),
        vec![
            row!["< 1 day", 0],
            row!["1-3 days", 0],
            row!["3-7 days", 1],
            row!["7-30 days", 2],
            row![">= 30 days", 0],
        ]
    );
    assert_eq!(
        rows(&r, "by_customer_wait"),
        vec![
            row!["< 1 day", 0],
            row!["1-3 days", 1],
            row!["3-7 days", 0],
            row!["7-30 days", 2],
            row![">= 30 days", 0],
        ]
    );
}

#[test]
fn per_agent_replies_resolutions_and_times() {
    let r = run("agents", "4h", false, None);
    assert_eq!(
        rows(&r, "agents"),
        vec![
            // first responses [2,3,6] business → median 3, p90 6; final resolution #1: 8
            row!["alice", 3, 2, 3.0, 6.0, 8.0, 8.0],
            row!["bob", 2, 1, 2.0, 2.0, 11.0, 11.0],
        ]
    );
}

#[test]
fn percentiles_are_nearest_rank() {
    assert_eq!(percentile(&mut [], 50), None);
    assert_eq!(percentile(&mut [4, 1, 3, 2], 50), Some(2));
    assert_eq!(percentile(&mut [4, 1, 3, 2], 90), Some(4));
    assert_eq!(percentile(&mut [7], 90), Some(7));
    let mut ten: Vec<i64> = (1..=10).collect();
    assert_eq!(percentile(&mut ten, 90), Some(9));
}

#[test]
fn periods_parse_and_unknown_names_are_refused() {
    let now = ts("2026-12-31T00:00:00Z");
    assert_eq!(parse_instant("30d", now), Ok(now - 30 * 86_400));
    assert_eq!(parse_instant("2w", now), Ok(now - 14 * 86_400));
    assert_eq!(
        parse_instant("2026-12-01", now),
        Ok(ts("2026-12-01T00:00:00Z"))
    );
    assert_eq!(
        parse_instant("2026-12-01T10:00:00Z", now),
        Ok(ts("2026-12-01T10:00:00Z"))
    );
    assert!(parse_instant("yesterday", now).is_err());
    let cals = calendars();
    let pols = policies(&cals, "4h");
    let q = Query {
        since: 0,
        until: 1,
        queue: None,
        interval: Interval::Day,
        calendars: &cals,
        policies: &pols,
        now,
        recompute: false,
    };
    assert!(matches!(
        compute("nonsense", &q, &[]),
        Err(ReportError::UnknownReport(_))
    ));
}

#[test]
fn csv_quotes_and_defuses_formulas() {
    let t = Table {
        id: "t".into(),
        title: "T".into(),
        columns: vec!["a".into(), "b".into()],
        rows: vec![
            row!["x,\"y\"", -1.5],
            vec![serde_json::json!("=cmd()"), serde_json::Value::Null],
        ],
    };
    assert_eq!(to_csv(&t), "a,b\r\n\"x,\"\"y\"\"\",-1.5\r\n'=cmd(),\r\n");
}

#[test]
fn channel_from_source_and_header() {
    use crate::model::Source;
    assert_eq!(channel_of_raw(&Source::Smtp, b""), "smtp");
    assert_eq!(channel_of_raw(&Source::Imap, b""), "imap");
    let raw = b"From: a@b\r\nX-Postdesk-Channel: Walk-in\r\n\r\nbody";
    assert_eq!(channel_of_raw(&Source::Api, raw), "walk-in");
    assert_eq!(channel_of_raw(&Source::Api, b"From: a@b\r\n\r\n"), "phone");
    assert_eq!(channel_of_raw(&Source::WebForm, b""), "web");
}

#[test]
fn chat_waiting_times_in_wall_minutes() {
    use EventKind::Replied;
    let mut s = Script {
        histories: Vec::new(),
    };
    // Three chats: answered after 2 min, after 10 min (at night: wall time
    // counts), and one still waiting; a mail ticket does not count.
    s.ticket(
        1,
        "2026-12-01T09:00:00Z",
        "chat",
        "general",
        Priority::Low,
        Status::Open,
        vec![ev("2026-12-01T09:02:00Z", Replied, "alice", "reply")],
    );
    s.ticket(
        2,
        "2026-12-01T22:00:00Z",
        "chat",
        "general",
        Priority::Low,
        Status::Open,
        vec![ev("2026-12-01T22:10:00Z", Replied, "bob", "reply")],
    );
    s.ticket(
        3,
        "2026-12-02T09:00:00Z",
        "chat",
        "general",
        Priority::Low,
        Status::New,
        vec![],
    );
    s.ticket(
        4,
        "2026-12-02T09:00:00Z",
        "smtp",
        "general",
        Priority::Low,
        Status::Open,
        vec![ev("2026-12-02T09:01:00Z", Replied, "bob", "reply")],
    );
    let cals = calendars();
    let pols = policies(&cals, "4h");
    let q = Query {
        since: ts("2026-12-01T00:00:00Z"),
        until: ts("2027-01-01T00:00:00Z"),
        queue: None,
        interval: Interval::Day,
        calendars: &cals,
        policies: &pols,
        now: ts("2026-12-31T12:00:00Z"),
        recompute: false,
    };
    let r = compute("times", &q, &s.histories).unwrap();
    // waits [2, 10] minutes → median 2, p90 10
    assert_eq!(
        rows(&r, "chat_wait"),
        vec![row!["chat", 3, 2, 2.0, 10.0, 1]]
    );
}
