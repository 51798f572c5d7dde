//! A message's attachments and its raw bytes, as downloads.
//!
//! Whatever a customer attaches is hostile: an HTML file opened in our
//! origin would run with the agent's session. So nothing here is ever
//! rendered by the browser: every answer is `Content-Disposition:
//! attachment`, `nosniff`, a sandboxing CSP, and a content type that is
//! `application/octet-stream` unless it is a raster image (SVG is not: it
//! can carry script). The filename travels as RFC 6266 `filename*` (UTF-8,
//! percent-encoded) with an ASCII fallback, so no header injection. Both
//! routes want a session and the message to belong to the ticket in the
//! path: another ticket's message is 404, as if it did not exist.

use super::{Shared, WebError, blocking, session};
use crate::model::{MessageRecord, MessageSeq, TicketId};
use crate::outbound::compose::Attachment;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

/// The CSP of a download: should a browser display it anyway, nothing in
/// it loads or runs.
const DOWNLOAD_CSP: &str = "default-src 'none'; sandbox";

/// Image types a browser decodes without running anything.
const RASTER_IMAGES: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "image/avif",
];

/// The content type we serve an attachment declared as `declared` with.
pub fn served_type(declared: &str) -> &'static str {
    let declared = declared.trim().to_ascii_lowercase();
    RASTER_IMAGES
        .iter()
        .find(|t| **t == declared)
        .copied()
        .unwrap_or("application/octet-stream")
}

/// `attachment; filename="…"; filename*=UTF-8''…` for `name`: the fallback
/// keeps ASCII letters, digits and `.-_ ` (others become `_`), the
/// extended value percent-encodes every byte outside RFC 5987's attr-char.
pub fn disposition(name: &str) -> String {
    let name: String = name.chars().filter(|c| !c.is_control()).collect();
    let name = if name.trim().is_empty() {
        "attachment".to_string()
    } else {
        name
    };
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ' ') {
                c
            } else {
                '_'
            }
        })
        .collect();
    // RFC 5987 attr-char.
    let ext = crate::percent::encode(&name, b"!#$&+-.^_`|~");
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{ext}")
}

/// The attachments of a stored raw message (what the parser calls
/// attachments, less inline images of an HTML body).
pub fn of_raw(raw: &[u8]) -> Vec<Attachment> {
    crate::process::parse::attachments_of(raw)
}

/// The ticket page's list of a message's attachments: links to download.
pub fn list(ticket: TicketId, seq: MessageSeq, attachments: &[(String, usize)]) -> String {
    if attachments.is_empty() {
        return String::new();
    }
    let items: String = attachments
        .iter()
        .enumerate()
        .map(|(n, (name, size))| {
            format!(
                r#"<li><a href="/tickets/{ticket}/messages/{seq}/attachments/{n}" download>{}</a> <span class="size">{}</span></li>"#,
                super::html::esc(name),
                human_size(*size)
            )
        })
        .collect();
    format!(r#"<ul class="attachments" aria-label="Attachments">{items}</ul>"#)
}

fn human_size(n: usize) -> String {
    match n {
        0..1024 => format!("{n} B"),
        1024..1_048_576 => format!("{} KB", n.div_ceil(1024)),
        _ => format!("{:.1} MB", n as f64 / 1_048_576.0),
    }
}

/// The message `seq` of ticket `id` and its raw bytes, or 404.
async fn load(
    state: &Shared,
    id: TicketId,
    seq: MessageSeq,
) -> Result<(MessageRecord, Vec<u8>), WebError> {
    let store = state.store.clone();
    let found = blocking(move || {
        let Some(m) = store.message(seq)? else {
            return Ok(None);
        };
        if m.ticket != Some(id) {
            return Ok(None);
        }
        Ok(store.raw(seq)?.map(|raw| (m, raw)))
    })
    .await?;
    found.ok_or(WebError::NotFound)
}

fn download(content_type: &str, disposition: &str, body: Vec<u8>) -> Response {
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    if let Ok(v) = HeaderValue::from_str(disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    } else {
        h.insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment"),
        );
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(DOWNLOAD_CSP),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// `GET /tickets/{id}/messages/{seq}/attachments/{n}` (n from 0).
pub async fn attachment(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((id, seq, n)): Path<(u64, u64, usize)>,
) -> Result<Response, WebError> {
    if session::current(&state, &headers).await?.is_none() {
        return Ok(Redirect::to("/login").into_response());
    }
    let (_, raw) = load(&state, id, seq).await?;
    let found = tokio::task::spawn_blocking(move || of_raw(&raw).into_iter().nth(n))
        .await
        .map_err(|e| WebError::Internal(format!("task failed: {e}")))?;
    let a = found.ok_or(WebError::NotFound)?;
    tracing::info!(ticket = id, message = seq, n, "attachment downloaded");
    Ok(download(
        served_type(&a.content_type),
        &disposition(&a.name),
        a.data,
    ))
}

/// `GET /tickets/{id}/messages/{seq}/raw`: the bytes as received (or as
/// we sent them), as a plain-text download.
pub async fn raw(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((id, seq)): Path<(u64, u64)>,
) -> Result<Response, WebError> {
    if session::current(&state, &headers).await?.is_none() {
        return Ok(Redirect::to("/login").into_response());
    }
    let (_, raw) = load(&state, id, seq).await?;
    Ok(download(
        "text/plain; charset=utf-8",
        &disposition(&format!("ticket-{id}-message-{seq}.eml")),
        raw,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames_cannot_break_the_header_and_keep_their_unicode() {
        let d = disposition("r\u{e9}sum\u{e9}\r\nSet-Cookie: x=1\";.html");
        assert!(!d.contains('\r') && !d.contains('\n'), "{d}");
        assert!(
            d.starts_with("attachment; filename=\"r_sum_Set-Cookie_ x_1__.html\""),
            "{d}"
        );
        assert!(
            d.contains("filename*=UTF-8''r%C3%A9sum%C3%A9Set-Cookie%3A%20x%3D1%22%3B.html"),
            "{d}"
        );
        assert!(HeaderValue::from_str(&d).is_ok());
        assert_eq!(
            disposition(""),
            "attachment; filename=\"attachment\"; filename*=UTF-8''attachment"
        );
    }

    #[test]
    fn only_raster_images_keep_their_type() {
        assert_eq!(served_type("image/png"), "image/png");
        assert_eq!(served_type("IMAGE/JPEG "), "image/jpeg");
        for t in [
            "text/html",
            "image/svg+xml",
            "application/xhtml+xml",
            "text/plain",
            "",
        ] {
            assert_eq!(served_type(t), "application/octet-stream", "{t}");
        }
    }
}
