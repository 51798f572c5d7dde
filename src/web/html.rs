//! The page frame and the one escaping function every dynamic string
//! goes through.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// `s` as HTML text or a quoted attribute value.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Who is logged in, for the header bar and its logout form.
pub struct Viewer<'a> {
    pub agent: &'a str,
    pub csrf: &'a str,
}

/// The hidden input every form of a session carries.
pub fn csrf_input(token: &str) -> String {
    format!(
        r#"<input type="hidden" name="csrf" value="{}">"#,
        esc(token)
    )
}

/// A whole page: `body` is already escaped HTML. Pages are never cached:
/// they show tickets to one logged-in agent.
pub fn page(status: StatusCode, title: &str, viewer: Option<&Viewer<'_>>, body: &str) -> Response {
    let bar = match viewer {
        Some(v) => format!(
            r#"<header class="bar"><a class="home" href="/">postdesk</a><form class="search" method="get" action="/search" role="search"><input type="search" name="q" aria-label="Search tickets" placeholder="Search"></form><span class="who">{}</span><form method="post" action="/logout">{}<button type="submit">Log out</button></form></header>"#,
            esc(v.agent),
            csrf_input(v.csrf)
        ),
        None => r#"<header class="bar"><span class="home">postdesk</span></header>"#.to_string(),
    };
    // Pages beside the queue, for logged-in agents.
    let nav = match viewer {
        Some(_) => {
            r#"<nav class="pages"><a class="reports" href="/reports">Reports</a> <a class="availability" href="/availability">Live chat</a> <a class="kb" href="/kb">Knowledge base</a></nav>"#
        }
        None => "",
    };
    let html = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>{} · postdesk</title><link rel="stylesheet" href="/static/app.css"><script src="/static/app.js" defer></script></head>
<body>{bar}{nav}<main>{body}</main></body></html>
"#,
        esc(title)
    );
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        html,
    )
        .into_response()
}

/// A time as UTC text, with the RFC 3339 value for machines; `app.js`
/// rewrites the text in the viewer's zone and the title keeps the UTC
/// value for hover.
pub fn time(secs: i64) -> String {
    let iso = crate::clock::rfc3339(secs);
    let shown = format!("{} UTC", iso.get(..16).unwrap_or(&iso).replace('T', " "));
    format!(
        r#"<time datetime="{}" title="{}">{}</time>"#,
        esc(&iso),
        esc(&shown),
        esc(&shown)
    )
}

#[cfg(test)]
mod tests {
    use super::esc;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc(r#"<script>alert('x')</script> & "q""#),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }
}
