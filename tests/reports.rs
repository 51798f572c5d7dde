//! Reports through the real binary: customers write over SMTP and one
//! calls in (a phone ticket by the API), alice answers by the JSON API,
//! notes one ticket and resolves another; then the report API, the
//! `postdesk report` command (through the daemon's API) and the web page
//! with its CSV downloads all give the same figures.

mod common;
use common::web::*;
use common::*;
use serde_json::{Value, json};
use std::process::Command;

fn post(port: u16, path: &str, body: &Value) -> Value {
    let (status, _, body) =
        http_request(port, "POST", path, Some(API_TOKEN), Some(&body.to_string()))
            .expect("HTTP POST");
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    assert!(status == 200 || status == 201, "{path}: {status} {v}");
    v
}

/// A GET with optional extra headers: (status, head lines, body).
fn get(port: u16, path: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
    let a = http(port, "GET", path, headers, "");
    let head = a
        .headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join("\r\n");
    (a.status, head, a.body)
}

/// Gives alice a web password (the rules reload picks it up) and logs her in.
fn login_alice(d: &Daemon) -> String {
    set_passwords(d);
    login_as(d, "alice")
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// The body rows of table `id` on the page, as cell texts.
fn page_rows(page: &str, id: &str) -> Vec<Vec<String>> {
    let start = page
        .find(&format!(r#"<table class="report-table" id="{id}">"#))
        .unwrap_or_else(|| panic!("table {id} not on the page"));
    let table = &page[start..start + page[start..].find("</table>").unwrap()];
    let body = &table[table.find("<tbody>").unwrap()..];
    let tr = regex::Regex::new(r"<tr>(.*?)</tr>").unwrap();
    let td = regex::Regex::new(r"<td>(.*?)</td>").unwrap();
    tr.captures_iter(body)
        .map(|r| td.captures_iter(&r[1]).map(|c| unescape(&c[1])).collect())
        .collect()
}

fn json_rows(t: &Value) -> Vec<Vec<String>> {
    t["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_array().unwrap().iter().map(cell).collect())
        .collect()
}

fn table<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap_or_else(|| panic!("no table {id} in {report}"))
}

const NAMES: [&str; 8] = [
    "volume",
    "heatmap",
    "times",
    "sla",
    "backlog",
    "rates",
    "agents",
    "satisfaction",
];

#[test]
fn reports_agree_across_api_cli_page_and_csv() {
    let sink = Sink::start();
    let d = Daemon::start(&sink);
    let port = d.web_port;

    // Three customers write by mail, one calls in.
    let mut ids = Vec::new();
    for (i, who) in ["ann", "ben", "cat"].iter().enumerate() {
        let from = format!("{who}@customer.example");
        let raw = mail(
            &format!("{who} <{from}>"),
            &format!("Problem {i}"),
            &format!("<rep-{i}@customer.example>"),
            &[],
            "Help, please.\n",
        );
        ids.push(d.ticket_of(d.send_ok(&from, &[SUPPORT], &raw)));
    }
    let phone = post(
        port,
        "/api/v1/tickets",
        &json!({"agent": "alice", "customer": "dan@customer.example", "subject": "Called in", "body": "Printer broken."}),
    );
    let phone_id = id_string(&phone["ticket"])
        .or_else(|| id_string(&phone["id"]))
        .unwrap_or_else(|| panic!("{phone}"));
    d.wait_processed(SECS_30);

    // alice answers two (one of them resolved with that one reply), notes the third.
    let act = |id: &str, action: &str, body: Value| {
        post(port, &format!("/api/v1/tickets/{id}/{action}"), &body)
    };
    act(
        &ids[0],
        "reply",
        json!({"agent": "alice", "body": "Fixed it.", "commands": ["#resolve"]}),
    );
    act(
        &ids[1],
        "reply",
        json!({"agent": "alice", "body": "Looking into it."}),
    );
    act(
        &ids[2],
        "note",
        json!({"agent": "alice", "body": "Internal: waiting for stock."}),
    );

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let period = format!("since={}&until={}", now - 86_400, now + 3600);

    // No token, no report; an unknown report is refused.
    let (code, _) = api_status(port, &format!("/api/v1/reports/volume?{period}"), None);
    assert_eq!(code, 401);
    let (code, v) = api_status(
        port,
        &format!("/api/v1/reports/nonsense?{period}"),
        Some(API_TOKEN),
    );
    assert_eq!(code, 400, "{v}");
    let (code, v) = api_status(
        port,
        "/api/v1/reports/volume?since=yesterday",
        Some(API_TOKEN),
    );
    assert_eq!(code, 400, "{v}");

    // Recomputed under today's policies: said so, and the same targets are due here.
    let re = d.api_ok(&format!("/api/v1/reports/sla?{period}&recompute=1"));
    assert_eq!(re["recomputed"], true, "{re}");
    assert_eq!(
        table(&re, "compliance")["rows"][0][1],
        2,
        "two first responses due: {re}"
    );

    let api: Vec<Value> = NAMES
        .iter()
        .map(|n| d.api_ok(&format!("/api/v1/reports/{n}?{period}")))
        .collect();
    let report = |n: &str| &api[NAMES.iter().position(|x| *x == n).unwrap()];

    // The figures of this run.
    let total: u64 = json_rows(table(report("volume"), "total"))
        .iter()
        .map(|r| r[1].parse::<u64>().unwrap())
        .sum();
    assert_eq!(total, 4, "{}", report("volume"));
    let mut channels: Vec<(String, String)> = json_rows(table(report("volume"), "by_channel"))
        .into_iter()
        .map(|r| (r[1].clone(), r[2].clone()))
        .collect();
    channels.sort();
    let sum = |ch: &str| -> u64 {
        channels
            .iter()
            .filter(|c| c.0 == ch)
            .map(|c| c.1.parse::<u64>().unwrap())
            .sum()
    };
    assert_eq!((sum("smtp"), sum("phone")), (3, 1), "{channels:?}");
    let times = json_rows(table(report("times"), "times"));
    assert_eq!(times[0][0], "first_response");
    assert_eq!(
        times[0][1], "2",
        "two tickets answered (the note is no reply): {times:?}"
    );
    assert_eq!(times[1][1], "1", "one resolved: {times:?}");
    let rates = json_rows(table(report("rates"), "rates"));
    assert_eq!(rates[1], vec!["one_touch", "1", "1", "1.0"], "{rates:?}");
    let agents = json_rows(table(report("agents"), "agents"));
    assert_eq!(agents.len(), 1, "{agents:?}");
    assert_eq!(agents[0][..3], ["alice", "2", "1"], "{agents:?}");
    let backlog: u64 = json_rows(table(report("backlog"), "by_age"))
        .iter()
        .map(|r| r[1].parse::<u64>().unwrap())
        .sum();
    assert_eq!(backlog, 3, "three tickets still open");
    let heat: u64 = json_rows(table(report("heatmap"), "heatmap"))
        .iter()
        .flat_map(|r| {
            r[1..]
                .iter()
                .map(|c| c.parse::<u64>().unwrap())
                .collect::<Vec<_>>()
        })
        .sum();
    assert_eq!(heat, 4);
    assert!(
        phone_id != ids[0],
        "the phone ticket is a ticket of its own"
    );

    // The CLI asks the daemon and prints the same JSON; CSV and table too.
    let cli = |name: &str, format: &str| -> String {
        let out = Command::new(daemon_bin())
            .args(["report", name, "--config"])
            .arg(&d.config_path)
            .args([
                "--since",
                &(now - 86_400).to_string(),
                "--until",
                &(now + 3600).to_string(),
                "--format",
                format,
            ])
            .output()
            .expect("run postdesk report");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    for (n, api) in NAMES.iter().zip(&api) {
        let from_cli: Value = serde_json::from_str(&cli(n, "json")).unwrap();
        assert_eq!(from_cli["tables"], api["tables"], "{n}: CLI and API differ");
    }
    let csv = cli("agents", "csv");
    assert!(csv.contains("agent,replies,resolved,"), "{csv}");
    assert!(csv.contains("\r\nalice,2,1,"), "{csv}");
    let text = cli("rates", "table");
    assert!(text.contains("one_touch"), "{text}");
    let out = Command::new(daemon_bin())
        .args(["report", "nonsense", "--config"])
        .arg(&d.config_path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no report named"));

    // The page needs a session; with one it shows every table as the API does.
    let (code, head, _) = get(port, &format!("/reports?{period}"), &[]);
    assert_eq!(code, 303, "{head}");
    let (code, head, _) = get(port, "/reports/times.csv", &[]);
    assert_eq!(code, 303, "{head}");
    let cookie = login_alice(&d);
    let (code, _, page) = get(port, &format!("/reports?{period}"), &[("Cookie", &cookie)]);
    assert_eq!(code, 200, "{page}");
    assert!(
        page.contains(r#"href="/reports""#),
        "the layout links the reports"
    );
    assert!(
        page.contains("<svg class=\"chart heatmap\""),
        "heatmap chart"
    );
    assert!(page.contains("<svg class=\"chart bars\""), "bar chart");
    assert!(!page.contains("<script>"), "no inline script");
    for (n, r) in NAMES.iter().zip(&api) {
        for t in r["tables"].as_array().unwrap() {
            let id = t["id"].as_str().unwrap();
            assert_eq!(
                page_rows(&page, &format!("{n}-{id}")),
                json_rows(t),
                "{n}/{id}: page and API differ"
            );
            // Each table's CSV download: the same cells.
            let (code, head, csv) = get(
                port,
                &format!("/reports/{n}.csv?table={id}&{period}"),
                &[("Cookie", &cookie)],
            );
            assert_eq!(code, 200, "{n}/{id}: {csv}");
            assert!(
                head.to_ascii_lowercase().contains("content-type: text/csv"),
                "{head}"
            );
            assert!(head.to_ascii_lowercase().contains("attachment"), "{head}");
            let mut want = t["columns"]
                .as_array()
                .unwrap()
                .iter()
                .map(cell)
                .collect::<Vec<_>>()
                .join(",");
            want.push_str("\r\n");
            for row in json_rows(t) {
                want.push_str(&row.join(","));
                want.push_str("\r\n");
            }
            assert_eq!(csv, want, "{n}/{id}: CSV and API differ");
        }
    }
    let (code, _, _) = get(port, "/reports/nonsense.csv", &[("Cookie", &cookie)]);
    assert_eq!(code, 404);

    // In Debian's chromium: reached by the header link, the charts drawn
    // (the heatmap's 168 cells), no script error or CSP complaint, the
    // first table's CSV link works from the page.
    let out_dir = repo_root().join("target/web-screenshots/reports");
    std::fs::create_dir_all(&out_dir).unwrap();
    let out = Command::new(python())
        .arg(peer_script("web_reports.py"))
        .args([
            &format!("http://127.0.0.1:{port}"),
            "alice",
            PASSWORD,
            &period,
        ])
        .arg(&out_dir)
        .output()
        .expect("run tests/peers/web_reports.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "web_reports.py failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_str(stdout.trim()).expect("JSON from web_reports.py");
    assert_eq!(seen["reached_by_link"], true, "{seen}");
    assert_eq!(seen["page_errors"], json!([]), "{seen}");
    assert_eq!(seen["console"], json!([]), "{seen}");
    assert_eq!(seen["failed"], json!([]), "{seen}");
    assert_eq!(seen["foreign_requests"], json!([]), "{seen}");
    let charts = seen["charts"].as_array().unwrap();
    let heat = charts
        .iter()
        .find(|c| c["cls"] == "chart heatmap")
        .unwrap_or_else(|| panic!("no heatmap: {seen}"));
    assert_eq!(heat["rects"], 7 * 24, "{seen}");
    assert!(heat["width"].as_f64().unwrap() > 100.0, "{seen}");
    assert!(
        charts.iter().filter(|c| c["cls"] == "chart bars").count() >= 3,
        "{seen}"
    );
    assert_eq!(
        seen["tables"].as_array().unwrap().len(),
        api.iter()
            .map(|r| r["tables"].as_array().unwrap().len())
            .sum::<usize>()
    );
    assert_eq!(seen["csv"]["status"], 200, "{seen}");
    assert_eq!(seen["csv"]["first_line"], "period,tickets", "{seen}");
    assert!(out_dir.join("reports-desktop.png").exists());
}

fn api_status(port: u16, path: &str, token: Option<&str>) -> (u16, Value) {
    let (status, _, body) = http_request(port, "GET", path, token, None).expect("HTTP GET");
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}
