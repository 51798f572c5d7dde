//! `postdesk dkim-keygen --selector S`: makes a DKIM private key and prints
//! the TXT record to publish for it. Opens nothing but the key file it
//! writes (new, mode 0600; never over an existing one).

use crate::dkim::{Algorithm, Key};
use std::io::Write;
use std::path::Path;

/// What `dkim-keygen` made: the PEM private key and the DNS record.
pub struct Generated {
    pub private_pem: String,
    /// The zone-file line(s) for `SELECTOR._domainkey.DOMAIN`.
    pub zone: String,
}

/// Why `dkim-keygen` failed.
#[derive(Debug, thiserror::Error)]
pub enum KeygenCliError {
    #[error("{0:?} is not a DNS label; a selector is letters, digits and hyphens")]
    Selector(String),
    #[error("{0:?} is not a domain name")]
    Domain(String),
    #[error(transparent)]
    Generate(#[from] crate::dkim::KeygenError),
    #[error(transparent)]
    Key(#[from] crate::dkim::KeyError),
    #[error("cannot write {path}: {source} (an existing key is never overwritten)")]
    Write {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

fn is_label_list(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Makes a key for `selector._domainkey.domain`.
pub fn generate(
    selector: &str,
    domain: &str,
    algorithm: Algorithm,
) -> Result<Generated, KeygenCliError> {
    if !is_label_list(selector) {
        return Err(KeygenCliError::Selector(selector.into()));
    }
    let domain = domain.trim_end_matches('.');
    if !is_label_list(domain) {
        return Err(KeygenCliError::Domain(domain.into()));
    }
    let private_pem = crate::dkim::generate(algorithm)?;
    // The record comes from the key as postdesk will load it, so what is
    // published is what the signer uses.
    let key = Key::from_pem(private_pem.as_bytes())?;
    Ok(Generated {
        zone: zone_record(selector, domain, &key.dns_record()),
        private_pem,
    })
}

/// A TXT record in zone-file form; a TXT string holds at most 255 bytes
/// (RFC 1035 §3.3), so a 2048-bit RSA key is split into several strings,
/// which verifiers join.
fn zone_record(selector: &str, domain: &str, value: &str) -> String {
    let strings: Vec<String> = value
        .as_bytes()
        .chunks(250)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect();
    format!(
        "{selector}._domainkey.{domain}. IN TXT ( {} )\n",
        strings.join(" ")
    )
}

/// Writes the private key to a new file readable only by its owner.
pub fn write_key(path: &Path, pem: &str) -> Result<(), KeygenCliError> {
    let write = || -> std::io::Result<()> {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(path)?;
        f.write_all(pem.as_bytes())?;
        f.sync_all()
    };
    write().map_err(|source| KeygenCliError::Write {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_records_are_split_into_strings_of_at_most_255_bytes() {
        let value = format!("v=DKIM1; k=rsa; p={}", "A".repeat(392));
        let zone = zone_record("s1", "example.test", &value);
        assert!(zone.starts_with("s1._domainkey.example.test. IN TXT ( \""));
        let strings: Vec<&str> = zone.split('"').skip(1).step_by(2).collect();
        assert!(strings.len() > 1);
        assert!(strings.iter().all(|s| s.len() <= 255));
        assert_eq!(strings.concat(), value);
    }

    #[test]
    fn bad_selector_and_domain_are_refused() {
        assert!(matches!(
            generate("a b", "example.test", Algorithm::Ed25519),
            Err(KeygenCliError::Selector(_))
        ));
        assert!(matches!(
            generate("s1", "exa mple", Algorithm::Ed25519),
            Err(KeygenCliError::Domain(_))
        ));
    }

    #[test]
    fn refuses_to_overwrite_a_key() {
        let dir = std::env::temp_dir().join(format!("pd-keygen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("k.pem");
        let _ = std::fs::remove_file(&path);
        write_key(&path, "one").unwrap();
        assert!(write_key(&path, "two").is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
