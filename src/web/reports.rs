//! The reports page (`/reports`): every report of [`crate::reports`] for
//! the period in the form, each table with a server-rendered SVG chart
//! where one helps (bars; the weekday × hour heatmap) and a CSV download
//! (`/reports/{name}.csv?table=…`). No chart script: the SVG is inline
//! markup with presentation attributes, which the CSP allows.
//!
//! The tables are the API's tables, rendered cell by cell with
//! [`crate::reports::cell_text`], so page, CSV and JSON cannot differ.

use super::html::{self, esc};
use super::{Shared, WebError, session};
use crate::report_service::{Params, RunError, run, run_many};
use crate::reports::{NAMES, Report, Table, cell_text, to_csv};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::Value;

/// The page's query: the report parameters, plus `table` for a CSV.
#[derive(Debug, Default, Deserialize)]
pub struct ReportQuery {
    #[serde(flatten)]
    pub params: Params,
    pub table: Option<String>,
}

/// Runs the reports off the async threads; a bad period is the agent's
/// mistake (shown on the page), a store failure is ours.
async fn compute(
    state: &Shared,
    names: Vec<&'static str>,
    params: Params,
) -> Result<Result<Vec<Report>, String>, WebError> {
    let store = state.store.clone();
    let rules = state.rules.current();
    let now = state.clock.now();
    let out = tokio::task::spawn_blocking(move || run_many(&store, &rules, &names, &params, now))
        .await
        .map_err(|e| WebError::Internal(format!("task failed: {e}")))?;
    match out {
        Ok(r) => Ok(Ok(r)),
        Err(RunError::Report(e)) => Ok(Err(e.to_string())),
        Err(RunError::Store(e)) => Err(e.into()),
    }
}

pub async fn page(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<ReportQuery>,
) -> Result<Response, WebError> {
    let Some(cur) = session::current(&state, &headers).await? else {
        return Ok(Redirect::to("/login").into_response());
    };
    let params = q.params;
    let mut body = String::from("<h1>Reports</h1>");
    body.push_str(&form(&params));
    let mut names = NAMES.to_vec();
    names.push(crate::reports::satisfaction::NAME);
    let (status, content) = match compute(&state, names, params.clone()).await? {
        Ok(reports) => (StatusCode::OK, render_reports(&reports, &params)),
        Err(why) => (
            StatusCode::BAD_REQUEST,
            format!(r#"<p class="error">{}</p>"#, esc(&why)),
        ),
    };
    body.push_str(&content);
    let viewer = html::Viewer {
        agent: &cur.session.agent,
        csrf: &cur.session.csrf,
    };
    Ok(html::page(status, "Reports", Some(&viewer), &body))
}

/// `/reports/{name}.csv?table=ID&since=…`: one table as CSV (the report's
/// first table without `table`).
pub async fn csv(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(file): Path<String>,
    Query(q): Query<ReportQuery>,
) -> Result<Response, WebError> {
    if session::current(&state, &headers).await?.is_none() {
        return Ok(Redirect::to("/login").into_response());
    }
    let Some(name) = file.strip_suffix(".csv").and_then(|n| {
        NAMES
            .iter()
            .chain([&crate::reports::satisfaction::NAME])
            .find(|x| **x == n)
    }) else {
        return Err(WebError::NotFound);
    };
    let store = state.store.clone();
    let rules = state.rules.current();
    let now = state.clock.now();
    let params = q.params;
    let report = tokio::task::spawn_blocking(move || run(&store, &rules, name, &params, now))
        .await
        .map_err(|e| WebError::Internal(format!("task failed: {e}")))?;
    let report = match report {
        Ok(r) => r,
        Err(RunError::Report(e)) => {
            return Ok((StatusCode::BAD_REQUEST, e.to_string()).into_response());
        }
        Err(RunError::Store(e)) => return Err(e.into()),
    };
    let table = match q.table.as_deref() {
        Some(id) => report.tables.iter().find(|t| t.id == id),
        None => report.tables.first(),
    };
    let Some(table) = table else {
        return Err(WebError::NotFound);
    };
    let filename = format!("{name}-{}.csv", table.id);
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        to_csv(table),
    )
        .into_response())
}

fn form(p: &Params) -> String {
    let v = |x: &Option<String>| esc(x.as_deref().unwrap_or(""));
    let week = p.interval.as_deref() == Some("week");
    format!(
        r#"<form class="report-period" method="get" action="/reports"><label>Since <input name="since" value="{since}" placeholder="30d"></label> <label>Until <input name="until" value="{until}" placeholder="now"></label> <label>Queue <input name="queue" value="{queue}" placeholder="all"></label> <label>Per <select name="interval"><option value="day"{day}>day</option><option value="week"{wk}>week</option></select></label> <label><input type="checkbox" name="recompute" value="1"{re}> Recompute under today's calendars and SLA policies</label> <button type="submit">Show</button></form>"#,
        since = v(&p.since),
        until = v(&p.until),
        queue = v(&p.queue),
        day = if week { "" } else { " selected" },
        wk = if week { " selected" } else { "" },
        re = if p.recompute() { " checked" } else { "" },
    )
}

fn render_reports(reports: &[Report], p: &Params) -> String {
    let mut out = String::new();
    if let Some(r) = reports.first() {
        out.push_str(&format!(
            r#"<p class="period">From {} to {}{}{}</p>"#,
            esc(&r.since),
            esc(&r.until),
            r.queue
                .as_deref()
                .map(|q| format!(", queue {}", esc(q)))
                .unwrap_or_default(),
            if r.recomputed {
                ", SLA recomputed under today's policies"
            } else {
                ""
            }
        ));
    }
    for r in reports {
        out.push_str(&format!(
            r#"<section class="report" id="report-{name}"><h2>{name}</h2>"#,
            name = esc(&r.name)
        ));
        for t in &r.tables {
            out.push_str(&format!("<h3>{}</h3>", esc(&t.title)));
            out.push_str(&chart(&r.name, t));
            out.push_str(&table_html(&r.name, t));
            out.push_str(&format!(
                r#"<p><a class="csv" href="/reports/{}.csv?{}">Download CSV</a></p>"#,
                esc(&r.name),
                esc(&csv_query(p, &t.id))
            ));
        }
        out.push_str("</section>");
    }
    out
}

/// The query string of a table's CSV link: the same period and filters.
fn csv_query(p: &Params, table: &str) -> String {
    let mut parts = vec![format!("table={}", urlencode(table))];
    for (k, v) in [
        ("since", &p.since),
        ("until", &p.until),
        ("queue", &p.queue),
        ("interval", &p.interval),
    ] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            parts.push(format!("{k}={}", urlencode(v)));
        }
    }
    if p.recompute() {
        parts.push("recompute=1".into());
    }
    parts.join("&")
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A table as HTML, `id="{report}-{table}"`, each cell the CSV's text.
pub fn table_html(report: &str, t: &Table) -> String {
    let mut out = format!(
        r#"<table class="report-table" id="{}-{}"><thead><tr>"#,
        esc(report),
        esc(&t.id)
    );
    for c in &t.columns {
        out.push_str(&format!("<th>{}</th>", esc(c)));
    }
    out.push_str("</tr></thead><tbody>");
    for row in &t.rows {
        out.push_str("<tr>");
        for v in row {
            out.push_str(&format!("<td>{}</td>", esc(&cell_text(v))));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}

/// The chart a table gets: the heatmap grid, bars for a label + count
/// table, bars of the median and p90 for the times; none otherwise.
fn chart(report: &str, t: &Table) -> String {
    match (report, t.id.as_str()) {
        ("heatmap", _) => heatmap_svg(t),
        ("volume", "total") | ("backlog", _) => {
            let bars: Vec<(String, f64)> = t
                .rows
                .iter()
                .filter_map(|r| Some((cell_text(r.first()?), r.get(1)?.as_f64()?)))
                .collect();
            bars_svg(&t.title, &bars)
        }
        ("times", "times") => {
            // Median business hours per measure.
            let bars: Vec<(String, f64)> = t
                .rows
                .iter()
                .map(|r| {
                    (
                        format!("{} median (business h)", cell_text(&r[0])),
                        r.get(2).and_then(Value::as_f64).unwrap_or(0.0),
                    )
                })
                .collect();
            bars_svg(&t.title, &bars)
        }
        _ => String::new(),
    }
}

/// Vertical bars with their values, labels below (every label when few,
/// else every seventh).
fn bars_svg(title: &str, bars: &[(String, f64)]) -> String {
    if bars.is_empty() {
        return String::new();
    }
    let max = bars.iter().map(|b| b.1).fold(0.0_f64, f64::max).max(1.0);
    let (w, h, bottom) = (24.0_f64, 160.0_f64, 60.0_f64);
    let width = (bars.len() as f64 * w).max(200.0);
    let mut out = format!(
        r#"<svg class="chart bars" role="img" aria-label="{}" viewBox="0 0 {width} {total}" width="{width}" height="{total}" xmlns="http://www.w3.org/2000/svg">"#,
        esc(title),
        total = h + bottom
    );
    let every = if bars.len() > 14 { 7 } else { 1 };
    for (i, (label, v)) in bars.iter().enumerate() {
        let bh = (v / max) * (h - 16.0);
        let x = i as f64 * w + 3.0;
        out.push_str(&format!(
            r##"<rect x="{x:.1}" y="{y:.1}" width="{bw:.1}" height="{bh:.1}" fill="#4a78b5"><title>{l}: {val}</title></rect>"##,
            y = h - bh,
            bw = w - 6.0,
            l = esc(label),
            val = v
        ));
        if *v > 0.0 {
            out.push_str(&format!(
                r#"<text x="{cx:.1}" y="{ty:.1}" font-size="10" text-anchor="middle">{val}</text>"#,
                cx = x + (w - 6.0) / 2.0,
                ty = h - bh - 3.0,
                val = v
            ));
        }
        if i % every == 0 {
            out.push_str(&format!(
                r#"<text x="{cx:.1}" y="{ly:.1}" font-size="9" transform="rotate(45 {cx:.1} {ly:.1})">{l}</text>"#,
                cx = x + 2.0,
                ly = h + 10.0,
                l = esc(label)
            ));
        }
    }
    out.push_str("</svg>");
    out
}

/// 7 × 24 cells, darker the more tickets opened then.
fn heatmap_svg(t: &Table) -> String {
    let (cw, ch, left, top) = (22.0_f64, 18.0_f64, 36.0_f64, 16.0_f64);
    let max = t
        .rows
        .iter()
        .flat_map(|r| r.iter().skip(1).filter_map(Value::as_f64))
        .fold(0.0_f64, f64::max)
        .max(1.0);
    let (width, height) = (left + 24.0 * cw, top + 7.0 * ch);
    let mut out = format!(
        r#"<svg class="chart heatmap" role="img" aria-label="{}" viewBox="0 0 {width} {height}" width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">"#,
        esc(&t.title)
    );
    for hour in (0..24).step_by(3) {
        out.push_str(&format!(
            r#"<text x="{:.1}" y="11" font-size="9">{hour:02}</text>"#,
            left + hour as f64 * cw + 4.0
        ));
    }
    for (d, row) in t.rows.iter().enumerate() {
        let y = top + d as f64 * ch;
        out.push_str(&format!(
            r#"<text x="2" y="{:.1}" font-size="10">{}</text>"#,
            y + 13.0,
            esc(&row.first().map(cell_text).unwrap_or_default())
        ));
        for (hour, v) in row.iter().skip(1).enumerate() {
            let n = v.as_f64().unwrap_or(0.0);
            let opacity = if n > 0.0 { 0.15 + 0.85 * n / max } else { 0.04 };
            out.push_str(&format!(
                r##"<rect x="{:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="#c0392b" fill-opacity="{opacity:.2}"><title>{n} at {hour:02}:00</title></rect>"##,
                left + hour as f64 * cw,
                cw - 2.0,
                ch - 2.0
            ));
        }
    }
    out.push_str("</svg>");
    out
}
