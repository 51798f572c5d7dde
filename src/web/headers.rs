//! The one set of security headers on every response of the listener (the
//! web pages and the JSON API alike, including 401/404 answers and the raw
//! messages): a CSP that allows nothing but our own stylesheet, our own
//! scripts (`/static/*.js`, which may fetch from us) and forms to us, with no
//! inline script or style, no remote origin and no framing; nosniff; and no
//! Referer leaking ticket URLs.
//!
//! One policy for both: the API's JSON runs no script whatever the policy
//! says, and a page needs `script-src 'self'` / `connect-src 'self'` for the
//! live queue. A handler may send a stricter CSP of its own (the sanitised
//! mail frame) or one that adds a frame source ([`CSP_WITH_MAIL_FRAMES`]);
//! the middleware then keeps it.

use axum::extract::Request;
use axum::http::header;
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

/// The policy text, shared by the two constants below.
macro_rules! base_csp {
    () => {
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'"
    };
}

pub const CSP: &str = base_csp!();

/// [`CSP`] for a page that frames our own sanitised mail HTML
/// (`web::mail_html`), and nothing else.
pub const CSP_WITH_MAIL_FRAMES: &str = concat!(base_csp!(), "; frame-src 'self'");

/// Sets the headers on `h`, keeping a CSP or framing rule a handler chose.
pub fn apply(h: &mut HeaderMap) {
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
}

/// Middleware: [`apply`] on every response.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    apply(resp.headers_mut());
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_header_is_set_and_a_handlers_own_csp_is_kept() {
        let mut h = HeaderMap::new();
        apply(&mut h);
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        // Nothing by default, nothing inline, nothing remote, no framing.
        for part in [
            "default-src 'none'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "script-src 'self'",
            "style-src 'self'",
        ] {
            assert!(csp.contains(part), "{csp} lacks {part}");
        }
        for loose in [
            "unsafe-inline",
            "unsafe-eval",
            "http:",
            "https:",
            "*",
            "data:",
        ] {
            assert!(!csp.contains(loose), "{csp} allows {loose}");
        }
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[header::REFERRER_POLICY], "no-referrer");
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");

        let mut own = HeaderMap::new();
        own.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'"),
        );
        apply(&mut own);
        assert_eq!(own[header::CONTENT_SECURITY_POLICY], "default-src 'none'");
        assert!(CSP_WITH_MAIL_FRAMES.starts_with(CSP));
        assert!(CSP_WITH_MAIL_FRAMES.ends_with("frame-src 'self'"));
    }
}
