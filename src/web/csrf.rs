//! CSRF defence for every state-changing request: the browser must say the
//! request comes from our own origin (Origin and Sec-Fetch-Site, when
//! sent), and a form must carry its session's token, compared in constant
//! time. SameSite=Lax on the cookie is a third layer, not relied on alone.

use super::WebError;
use axum::http::{HeaderMap, header};

/// Refuses a request another site's page made. The expected origin is our
/// scheme (`web.https`) with the Host the browser addressed.
///
/// Under our `Referrer-Policy: no-referrer` browsers send `Origin: null`
/// on form posts, so a `null` Origin is accepted only when Sec-Fetch-Site
/// (which the browser sets and pages cannot) says `same-origin`.
pub fn same_origin(headers: &HeaderMap, https: bool) -> Result<(), WebError> {
    let fetch_site = headers.get("sec-fetch-site");
    if fetch_site.is_some_and(|s| s.as_bytes() != b"same-origin") {
        return Err(WebError::Forbidden("Sec-Fetch-Site is not same-origin"));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        if origin.as_bytes() == b"null" && fetch_site.is_some() {
            return Ok(());
        }
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .ok_or(WebError::Forbidden("no Host header"))?;
        let scheme = if https { "https" } else { "http" };
        if origin.as_bytes() != format!("{scheme}://{host}").as_bytes() {
            tracing::info!(origin = ?origin, host, "cross-origin request");
            return Err(WebError::Forbidden("Origin is not this site"));
        }
    }
    Ok(())
}

/// Both checks for a form posted within a session.
pub fn check(
    headers: &HeaderMap,
    https: bool,
    session_token: &str,
    given: Option<&str>,
) -> Result<(), WebError> {
    same_origin(headers, https)?;
    match given {
        Some(g) if constant_eq(g.as_bytes(), session_token.as_bytes()) => Ok(()),
        _ => Err(WebError::Forbidden("missing or wrong CSRF token")),
    }
}

/// Equal without an early exit (the length is not secret: always 32 hex).
fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    !b.is_empty()
        && a.len() == b.len()
        && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn foreign_origin_or_site_or_token_is_refused() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(check(&h, false, "abcd", Some("abcd")).is_ok());
        assert!(check(&h, false, "abcd", Some("abce")).is_err());
        assert!(check(&h, false, "abcd", None).is_err());
        assert!(check(&h, true, "abcd", Some("abcd")).is_err());
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(check(&h, false, "abcd", Some("abcd")).is_err());
        h.remove("sec-fetch-site");
        h.insert(header::ORIGIN, HeaderValue::from_static("http://evil.test"));
        assert!(check(&h, false, "abcd", Some("abcd")).is_err());
        // Origin: null (no-referrer) passes only with Sec-Fetch-Site: same-origin.
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(check(&h, false, "abcd", Some("abcd")).is_err());
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(check(&h, false, "abcd", Some("abcd")).is_ok());
        h.insert("sec-fetch-site", HeaderValue::from_static("same-site"));
        assert!(check(&h, false, "abcd", Some("abcd")).is_err());
    }
}
