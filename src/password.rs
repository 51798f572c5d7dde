//! Agents' web passwords: argon2id PHC strings (`$argon2id$v=19$m=…`), made
//! by `postdesk hash-password` and kept as `password_hash` in
//! rules/agents.toml. Only hashes are ever stored; checking a password takes
//! as long whether or not the account exists (see [`verify`]).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2};

/// Why a password could not be hashed or a hash not used.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("the password is empty")]
    Empty,
    #[error("not an argon2id PHC string (make one with `postdesk hash-password`): {0}")]
    BadHash(String),
    #[error("hashing failed: {0}")]
    Hashing(String),
}

/// An argon2id PHC string for `password`, with a fresh random salt and the
/// crate's recommended cost (OWASP: m=19 MiB, t=2, p=1).
pub fn hash(password: &str) -> Result<String, PasswordError> {
    if password.is_empty() {
        return Err(PasswordError::Empty);
    }
    let mut salt = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt)
        .map_err(|_| PasswordError::Hashing("no randomness for the salt".into()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| PasswordError::Hashing(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hashing(e.to_string()))
}

/// Checks that `phc` is a usable argon2id hash (what `postdesk check` and
/// rule loading ask).
pub fn check_hash(phc: &str) -> Result<(), PasswordError> {
    let parsed = PasswordHash::new(phc).map_err(|e| PasswordError::BadHash(e.to_string()))?;
    if parsed.algorithm != Algorithm::Argon2id.ident() {
        return Err(PasswordError::BadHash(format!(
            "algorithm {} (argon2id expected)",
            parsed.algorithm
        )));
    }
    Ok(())
}

/// A hash of no password anyone knows, checked against when the account
/// does not exist, so that an unknown account answers as slowly as a wrong
/// password.
const DUMMY: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$4jVC+XE3z2dQ6G2rAqJ9CE6+ehpmv8jLm6JvD6gwb9Y";

/// Whether `password` matches `phc` (None: the account has no password or
/// does not exist; the same work is done, and the answer is false).
pub fn verify(password: &str, phc: Option<&str>) -> bool {
    let (hash, real) = match phc {
        Some(h) => (h, true),
        None => (DUMMY, false),
    };
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let ok = Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    ok && real
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_verify_and_refuse() {
        let h = hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$v=19$"), "{h}");
        check_hash(&h).unwrap();
        assert!(verify("correct horse", Some(&h)));
        assert!(!verify("wrong horse", Some(&h)));
        assert!(!verify("correct horse", None));
        // Salts differ: the same password never hashes the same twice.
        assert_ne!(h, hash("correct horse").unwrap());
        assert!(matches!(hash(""), Err(PasswordError::Empty)));
        check_hash(DUMMY).unwrap();
    }

    #[test]
    fn only_argon2id_phc_strings_are_accepted() {
        assert!(check_hash("hunter2").is_err());
        assert!(check_hash("$2b$12$abcdefghijklmnopqrstuu").is_err());
        let argon2i = "$argon2i$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$4jVC+XE3z2dQ6G2rAqJ9CE6+ehpmv8jLm6JvD6gwb9Y";
        assert!(check_hash(argon2i).is_err());
    }
}
