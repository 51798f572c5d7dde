//! Security headers on every response of the listener (pages and the
//! JSON API alike): a CSP that allows nothing but our own stylesheet, our
//! own script file (`/static/app.js`, which may call back only to us) and
//! forms (no inline script or style, no remote origin, no framing),
//! nosniff and no Referer leaking ticket URLs.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;

pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; script-src 'self'; connect-src 'self'";

/// [`CSP`] for a page that frames our own sanitised mail HTML
/// (`web::mail_html`), and nothing else.
pub const CSP_WITH_MAIL_FRAMES: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; frame-src 'self'; script-src 'self'; connect-src 'self'";

/// Middleware: sets the headers unless a handler chose its own CSP.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !h.contains_key(header::X_FRAME_OPTIONS) {
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    resp
}
