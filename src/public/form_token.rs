//! Anti-forgery tokens for the public forms, which have no session to bind
//! a token to: `{issued}.{mac}`, an HMAC under the link key over the form's
//! scope (`new` for the web form, the link for a status page's forms) and
//! the time the page was served. A token is refused after
//! [`MAX_AGE_SECS`], so a captured form cannot be replayed for long, and
//! for another scope, so one status page's token acts on no other ticket.
//! The Origin / Sec-Fetch-Site check comes first (`web::csrf::same_origin`).

use super::links::Links;

/// How long a served form may be submitted.
pub const MAX_AGE_SECS: i64 = 4 * 3600;

const LABEL: &str = "public-form";

/// The token for a form of `scope` served at `now`.
pub fn issue(links: &Links, scope: &str, now: i64) -> String {
    format!("{now}.{}", links.mac(LABEL, &format!("{scope}\n{now}")))
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Missing, malformed, forged or for another scope.
    Invalid,
    /// Genuine but older than [`MAX_AGE_SECS`] (or from the future).
    Expired,
}

/// Checks `token` for `scope` at `now`.
pub fn check(links: &Links, scope: &str, token: Option<&str>, now: i64) -> Result<(), Refused> {
    let token = token.ok_or(Refused::Invalid)?;
    let (issued, mac) = token.split_once('.').ok_or(Refused::Invalid)?;
    let issued_at: i64 = issued.parse().map_err(|_| Refused::Invalid)?;
    let want = links.mac(LABEL, &format!("{scope}\n{issued_at}"));
    if !crate::token::constant_eq(&want, mac) {
        return Err(Refused::Invalid);
    }
    // A minute of leeway for a clock step between serving and posting.
    if now - issued_at > MAX_AGE_SECS || issued_at - now > 60 {
        return Err(Refused::Expired);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_expire_and_stay_in_their_scope() {
        let l = Links::new(b"0123456789abcdef0123456789abcdef");
        let t = issue(&l, "new", 1000);
        assert_eq!(check(&l, "new", Some(&t), 1000 + 60), Ok(()));
        assert_eq!(
            check(&l, "new", Some(&t), 1000 + MAX_AGE_SECS + 1),
            Err(Refused::Expired)
        );
        assert_eq!(check(&l, "status 7", Some(&t), 1000), Err(Refused::Invalid));
        let later = t.replacen("1000.", "9000.", 1);
        assert_eq!(check(&l, "new", Some(&later), 9000), Err(Refused::Invalid));
        assert_eq!(check(&l, "new", None, 1000), Err(Refused::Invalid));
        let other = Links::new(b"another secret, 32 bytes long!!!");
        assert_eq!(check(&other, "new", Some(&t), 1000), Err(Refused::Invalid));
    }
}
