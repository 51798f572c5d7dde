//! Percent-encoding (RFC 3986 §2.1): every byte but ASCII letters, digits
//! and the caller's `keep` set as `%XX`. Each caller names its own set: a
//! query value keeps RFC 3986's unreserved `-._~`, RFC 5987's `attr-char`
//! keeps more for a `filename*`.

/// `s` with every byte that is not alphanumeric or in `keep` as `%XX`.
pub fn encode(s: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || keep.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// RFC 3986's unreserved punctuation: what a query value keeps.
pub const UNRESERVED: &[u8] = b"-._~";

#[cfg(test)]
mod tests {
    #[test]
    fn keeps_only_what_the_caller_allows() {
        assert_eq!(super::encode("a b/ü", super::UNRESERVED), "a%20b%2F%C3%BC");
        assert_eq!(super::encode("q:x", b":"), "q:x");
    }
}
