//! The HTML of a customer's mail, sanitised with ammonia and served on its
//! own route for a sandboxed iframe of the ticket page.
//!
//! Three layers, each enough on its own against script: ammonia keeps only
//! its allow-list of tags and attributes (no script, no event handlers, no
//! `javascript:` URLs, no SVG or MathML, inline styles only for layout
//! properties); the iframe is `sandbox` without `allow-scripts` or
//! `allow-same-origin`; and this route's own CSP allows no script, no
//! remote origin and framing only by us. Remote images are removed (only
//! `data:` images stay) until the agent asks for them (`?images=remote`, a
//! link under the frame): they tell the sender that the mail was read, and
//! from where, so loading them is the agent's choice, per message.

use super::{Shared, WebError, blocking, session};
use crate::model::{Direction, MessageRecord};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::collections::HashSet;

/// The CSP of the sanitised document: inline style attributes (the mail's
/// layout), images only from `data:`, nothing else.
pub const FRAME_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'; base-uri 'none'; frame-ancestors 'self'";

/// [`FRAME_CSP`] once the agent asked for the remote images: images from
/// the web too, still nothing else.
pub const FRAME_CSP_REMOTE_IMAGES: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data: https: http:; form-action 'none'; base-uri 'none'; frame-ancestors 'self'";

/// Whether a mail's remote images are loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteImages {
    Blocked,
    /// The agent asked for them (this message, this view).
    Shown,
}

/// CSS properties a mail's inline styles may keep: layout and type, none
/// that can load anything.
const STYLE_PROPERTIES: &[&str] = &[
    "color",
    "background-color",
    "font-family",
    "font-size",
    "font-style",
    "font-weight",
    "text-align",
    "text-decoration",
    "line-height",
    "vertical-align",
    "white-space",
    "width",
    "max-width",
    "height",
    "margin",
    "margin-top",
    "margin-bottom",
    "margin-left",
    "margin-right",
    "padding",
    "padding-top",
    "padding-bottom",
    "padding-left",
    "padding-right",
    "border",
    "border-top",
    "border-bottom",
    "border-left",
    "border-right",
    "border-collapse",
    "border-spacing",
    "display",
];

/// `html` with everything that could run, load or navigate removed.
pub fn sanitize(html: &str) -> String {
    sanitize_with(html, RemoteImages::Blocked)
}

/// [`sanitize`], keeping `http(s):` image sources when `images` is `Shown`
/// (never anything that runs, and no other remote load: styles stay
/// filtered to layout properties).
pub fn sanitize_with(html: &str, images: RemoteImages) -> String {
    ammonia::Builder::default()
        .add_generic_attributes(["style"])
        .filter_style_properties(STYLE_PROPERTIES.iter().copied().collect::<HashSet<_>>())
        .add_tag_attributes(
            "table",
            ["width", "cellpadding", "cellspacing", "border", "bgcolor"],
        )
        .add_tag_attributes("td", ["width", "bgcolor", "valign"])
        .add_tag_attributes("th", ["width", "bgcolor", "valign"])
        .add_tag_attributes("font", ["color", "size", "face"])
        .add_tags(["font", "center"])
        .link_rel(Some("noopener noreferrer"))
        // Remote images would tell the sender the mail was read (and from
        // where): only inline data: images stay; the CSP blocks the rest too.
        // `data:` is let through the scheme list for images only.
        .add_url_schemes(["data"])
        .attribute_filter(move |element, attribute, value| {
            let data_image = value
                .trim_start()
                .get(..11)
                .is_some_and(|p| p.eq_ignore_ascii_case("data:image/"));
            let data = value
                .trim_start()
                .get(..5)
                .is_some_and(|p| p.eq_ignore_ascii_case("data:"));
            let web_image = images == RemoteImages::Shown && {
                let v = value.trim_start();
                v.get(..8)
                    .is_some_and(|p| p.eq_ignore_ascii_case("https://"))
                    || v.get(..7)
                        .is_some_and(|p| p.eq_ignore_ascii_case("http://"))
            };
            match (element, attribute) {
                ("img", "src") if !data_image && !web_image => None,
                ("img", "srcset") => None,
                (_, _) if data && !(element == "img" && attribute == "src") => None,
                _ => Some(value.into()),
            }
        })
        .clean(html)
        .to_string()
}

/// The HTML body of a stored message, if it was sent as HTML only (a
/// message with a text alternative shows that text).
pub fn html_of(raw: &[u8]) -> Option<String> {
    crate::process::parse::parse(raw).html
}

/// Whether the ticket page should frame an HTML view of `m`.
pub fn has_html(m: &MessageRecord, raw: Option<&[u8]>) -> bool {
    m.direction == Direction::Inbound && raw.is_some_and(|r| html_of(r).is_some())
}

/// The frame's query: `images=remote` when the agent asked for them.
#[derive(Debug, Default, serde::Deserialize)]
pub struct FrameQuery {
    images: Option<String>,
}

/// `GET /tickets/{id}/messages/{seq}/html[?images=remote]`.
pub async fn frame(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((id, seq)): Path<(u64, u64)>,
    axum::extract::Query(q): axum::extract::Query<FrameQuery>,
) -> Result<Response, WebError> {
    let images = if q.images.as_deref() == Some("remote") {
        RemoteImages::Shown
    } else {
        RemoteImages::Blocked
    };
    if session::current(&state, &headers).await?.is_none() {
        return Err(WebError::Forbidden("not logged in"));
    }
    let store = state.store.clone();
    let found = blocking(move || {
        let Some(m) = store.message(seq)? else {
            return Ok(None);
        };
        if m.ticket != Some(id) || m.direction != Direction::Inbound {
            return Ok(None);
        }
        store.raw(seq)
    })
    .await?;
    let html = found
        .as_deref()
        .and_then(html_of)
        .ok_or(WebError::NotFound)?;
    let clean = tokio::task::spawn_blocking(move || sanitize_with(&html, images))
        .await
        .map_err(|e| WebError::Internal(format!("task failed: {e}")))?;
    let doc = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"></head><body>{clean}</body></html>"
    );
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                match images {
                    RemoteImages::Blocked => FRAME_CSP,
                    RemoteImages::Shown => FRAME_CSP_REMOTE_IMAGES,
                },
            ),
            (header::X_FRAME_OPTIONS, "SAMEORIGIN"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        doc,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::sanitize;

    #[test]
    fn keeps_layout_drops_what_runs_or_loads() {
        let out = sanitize(
            r#"<table width="600" style="color: red; background-image: url(http://evil.test/x)"><tr><td onclick="alert(1)">Hi <a href="javascript:alert(2)">x</a> <a href="https://example.test/">ok</a></td></tr></table><script>alert(3)</script><svg onload=alert(4)></svg><math><mi>x</mi></math><meta http-equiv="refresh" content="0;url=http://evil.test">"#,
        );
        assert!(out.contains(r#"<table width="600""#), "{out}");
        assert!(
            out.contains("color:red") || out.contains("color: red"),
            "{out}"
        );
        let img = sanitize(
            r#"<img src="http://evil.test/p.png" srcset="http://evil.test/q.png 2x"><img src="data:image/png;base64,AAAA">"#,
        );
        assert!(!img.contains("evil.test"), "{img}");
        assert!(img.contains("data:image/png"), "{img}");
        let shown = super::sanitize_with(
            r#"<img src="https://example.test/logo.png" onerror="alert(1)"><img src="javascript:alert(2)"><p style="background-image: url(https://evil.test/bg.png)">x</p>"#,
            super::RemoteImages::Shown,
        );
        assert!(
            shown.contains(r#"src="https://example.test/logo.png""#),
            "{shown}"
        );
        for bad in ["onerror", "javascript:", "bg.png"] {
            assert!(!shown.contains(bad), "{bad} survived: {shown}");
        }
        let link = sanitize(r#"<a href="data:text/html,<script>alert(1)</script>">x</a>"#);
        assert!(!link.contains("data:"), "{link}");
        for bad in [
            "background-image",
            "onclick",
            "javascript:",
            "<script",
            "<svg",
            "<math",
            "<meta",
            "alert(3)",
        ] {
            assert!(!out.contains(bad), "{bad} survived: {out}");
        }
        assert!(out.contains(r#"rel="noopener noreferrer""#), "{out}");
    }
}
