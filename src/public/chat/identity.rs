//! Who the visitor is: a random token for the browser, and, when the site
//! vouches for an address, its signed identity.
//!
//! A site's backend signs `address \n expires \n nonce` with HMAC-SHA256
//! and the site's shared secret (hex). postdesk accepts it once: the nonce
//! is remembered in the store until the identity expires, so a captured
//! identity cannot be replayed, not even after a restart. Expiry is at
//! most a day ahead, which bounds what is remembered.

use ring::hmac;
use serde::Deserialize;

/// The longest an identity may be valid ahead of now.
pub const MAX_IDENTITY_LIFETIME: i64 = 86_400;

/// What the site's backend handed the page, passed through by the widget.
#[derive(Debug, Clone, Deserialize)]
pub struct SignedIdentity {
    pub address: String,
    pub expires: i64,
    pub nonce: String,
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("this site cannot verify identities")]
    NoSecret,
    #[error("the identity has expired or expires too far ahead")]
    Expired,
    #[error("the identity is malformed")]
    Malformed,
    #[error("the identity's signature does not match")]
    Forged,
}

/// The text the site signs.
pub fn signed_text(address: &str, expires: i64, nonce: &str) -> String {
    format!(
        "{}\n{expires}\n{nonce}",
        address.trim().to_ascii_lowercase()
    )
}

/// Checks everything but the nonce's first use (the store's part).
pub fn check(id: &SignedIdentity, secret: Option<&[u8]>, now: i64) -> Result<(), IdentityError> {
    let secret = secret.ok_or(IdentityError::NoSecret)?;
    if id.expires < now || id.expires > now + MAX_IDENTITY_LIFETIME {
        return Err(IdentityError::Expired);
    }
    let nonce_ok = (16..=64).contains(&id.nonce.len())
        && id
            .nonce
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    let sig = data_encoding::HEXLOWER_PERMISSIVE
        .decode(id.signature.as_bytes())
        .map_err(|_| IdentityError::Malformed)?;
    if !nonce_ok || sig.len() != 32 {
        return Err(IdentityError::Malformed);
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    hmac::verify(
        &key,
        signed_text(&id.address, id.expires, &id.nonce).as_bytes(),
        &sig,
    )
    .map_err(|_| IdentityError::Forged)
}

/// A new visitor token: 128 random bits, hex.
pub fn new_visitor_token() -> String {
    let mut b = [0u8; 16];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    data_encoding::HEXLOWER.encode(&b)
}

/// The store key of a visitor token (the token itself is never stored):
/// None unless it is 32 hex digits.
pub fn visitor_key(token: &str) -> Option<String> {
    let ok = token.len() == 32 && token.chars().all(|c| c.is_ascii_hexdigit());
    ok.then(|| {
        let d = ring::digest::digest(&ring::digest::SHA256, token.to_ascii_lowercase().as_bytes());
        data_encoding::HEXLOWER.encode(d.as_ref())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_780_000_000;

    fn sign(secret: &[u8], address: &str, expires: i64, nonce: &str) -> SignedIdentity {
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
        let tag = hmac::sign(&key, signed_text(address, expires, nonce).as_bytes());
        SignedIdentity {
            address: address.into(),
            expires,
            nonce: nonce.into(),
            signature: data_encoding::HEXLOWER.encode(tag.as_ref()),
        }
    }

    #[test]
    fn only_a_fresh_identity_signed_with_the_sites_secret_passes() {
        let secret = b"0123456789abcdef-site";
        let good = sign(secret, "ann@example.org", NOW + 300, "n0nce-0123456789ab");
        assert_eq!(check(&good, Some(secret), NOW), Ok(()));
        assert_eq!(check(&good, None, NOW), Err(IdentityError::NoSecret));
        assert_eq!(
            check(&good, Some(b"another secret!!"), NOW),
            Err(IdentityError::Forged)
        );
        let mut other = good.clone();
        other.address = "bob@example.org".into();
        assert_eq!(check(&other, Some(secret), NOW), Err(IdentityError::Forged));
        assert_eq!(
            check(&good, Some(secret), NOW + 301),
            Err(IdentityError::Expired)
        );
        let far = sign(
            secret,
            "ann@example.org",
            NOW + 2 * 86_400,
            "n0nce-0123456789ab",
        );
        assert_eq!(check(&far, Some(secret), NOW), Err(IdentityError::Expired));
        let short = sign(secret, "ann@example.org", NOW + 300, "short");
        assert_eq!(
            check(&short, Some(secret), NOW),
            Err(IdentityError::Malformed)
        );
    }

    #[test]
    fn visitor_tokens_are_128_bits_and_stored_hashed() {
        let t = new_visitor_token();
        assert_eq!(t.len(), 32);
        let k = visitor_key(&t).unwrap();
        assert_ne!(k, t);
        assert!(visitor_key("xyz").is_none());
        assert_ne!(new_visitor_token(), t);
    }
}
