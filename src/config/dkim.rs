//! The `[dkim]` table: which domain signs our mail and with which keys.
//!
//! ```toml
//! [dkim]
//! domain = "example.test"          # d=; default: the domain of outbound.from
//! [[dkim.selector]]                # the first signs; later ones are retired
//! name = "pd2027"                  # keys still published, checked by `check`
//! key_file = "dkim/pd2027.pem"
//! ```

use super::{Config, Diagnostic, line_col, split_address};
use crate::dkim::{Key, KeyError, Signer};
use serde::Deserialize;
use std::path::PathBuf;

/// DKIM signing; no selector means mail goes out unsigned.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DkimConfig {
    /// The signing domain (`d=`). DMARC needs it aligned with the From
    /// domain, so it defaults to the domain of `outbound.from`.
    pub domain: Option<String>,
    /// Keys in order: the first signs everything; the others are kept for
    /// rotation (their DNS records stay published while mail signed with
    /// them may still be verified) and are loaded only to be checked.
    #[serde(rename = "selector")]
    pub selectors: Vec<DkimSelector>,
}

/// One `[[dkim.selector]]`: a DNS selector and its private key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DkimSelector {
    pub name: String,
    /// PEM private key (PKCS#8 RSA or Ed25519, or PKCS#1 RSA), relative to
    /// the config file.
    pub key_file: PathBuf,
}

/// A DNS name made of letter/digit/hyphen labels (what a selector and a
/// signing domain must be, RFC 6376 §3.1 and §3.5).
fn is_dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

impl Config {
    /// The `d=` of our signatures.
    pub fn dkim_domain(&self) -> &str {
        match &self.dkim.domain {
            Some(d) => d,
            None => split_address(self.from_address()).map_or("", |(_, d)| d),
        }
    }

    pub(super) fn validate_dkim(&self, text: &str, out: &mut Vec<Diagnostic>) {
        let from = text.find("[dkim").unwrap_or(0);
        let mut err = |needle: &str, message: String| {
            let (line, column) = text[from..]
                .find(needle)
                .map_or_else(|| line_col(text, from), |o| line_col(text, from + o));
            out.push(Diagnostic {
                file: self.path.clone(),
                line,
                column,
                message,
            });
        };
        if self.dkim.selectors.is_empty() {
            if self.dkim.domain.is_some() {
                err(
                    "domain",
                    "dkim.domain is set but no [[dkim.selector]] names a key: nothing would be signed".into(),
                );
            }
            return;
        }
        let domain = self.dkim_domain().to_ascii_lowercase();
        if !is_dns_name(&domain) {
            err(
                "domain",
                format!("dkim.domain {domain:?} is not a domain name"),
            );
        } else {
            // DMARC's relaxed alignment: the From domain is d= or below it.
            let from_domain = split_address(self.from_address())
                .map(|(_, d)| d.to_ascii_lowercase())
                .unwrap_or_default();
            if from_domain != domain && !from_domain.ends_with(&format!(".{domain}")) {
                err(
                    "domain",
                    format!(
                        "dkim.domain {domain:?} is not the domain of outbound.from ({from_domain:?}) nor a parent of it: DMARC would not count the signature"
                    ),
                );
            }
        }
        let mut seen = std::collections::HashSet::new();
        for sel in &self.dkim.selectors {
            if !is_dns_name(&sel.name) {
                err(
                    &sel.name,
                    format!("dkim selector {:?} is not a DNS label", sel.name),
                );
            } else if !seen.insert(sel.name.to_ascii_lowercase()) {
                err(
                    &sel.name,
                    format!("dkim selector {:?} is listed twice", sel.name),
                );
            }
            let needle = sel.key_file.to_string_lossy().into_owned();
            let path = match self.resolve_file(&sel.key_file) {
                Ok(path) => path,
                Err(e) => {
                    err(&needle, e);
                    continue;
                }
            };
            // A credential is only there under systemd: `postdesk check`
            // run by hand warns about it instead (cli/check.rs).
            if crate::credentials::is_credential(&sel.key_file) && !path.exists() {
                continue;
            }
            if let Err(e) = crate::dkim::Key::load(&path) {
                err(&needle, e.to_string());
            }
        }
    }
}

impl Config {
    /// The signer `[dkim]` asks for, or None when no selector is configured
    /// (mail goes out unsigned, as before). The other selectors are loaded
    /// too, so a broken retired key is noticed, but only the first signs.
    /// Here rather than in `dkim.rs` so that modules depend one way
    /// (config names dkim, dkim names no config).
    pub fn dkim_signer(&self) -> Result<Option<Signer>, KeyError> {
        let mut active = None;
        for sel in &self.dkim.selectors {
            let path = self
                .resolve_file(&sel.key_file)
                .map_err(|reason| KeyError::Credential {
                    path: sel.key_file.clone(),
                    reason,
                })?;
            let key = Key::load(&path)?;
            if active.is_none() {
                active = Some((sel.name.clone(), key));
            }
        }
        let Some((selector, key)) = active else {
            return Ok(None);
        };
        let domain = self.dkim_domain().to_string();
        Ok(Some(Signer::new(domain, selector, key)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::MINIMAL;
    use super::*;
    use std::path::Path;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pd-dkimcfg-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn no_dkim_table_signs_nothing() {
        let c = Config::from_str(MINIMAL, Path::new("/etc/postdesk/config.toml")).unwrap();
        assert!(c.dkim.selectors.is_empty());
        assert_eq!(c.dkim_domain(), "example.test");
    }

    #[test]
    fn a_missing_or_broken_key_is_reported_at_its_key_file() {
        let d = dir("broken");
        std::fs::write(d.join("junk.pem"), "not a key").unwrap();
        let text = format!(
            "{MINIMAL}\n[dkim]\n[[dkim.selector]]\nname = \"s1\"\nkey_file = \"missing.pem\"\n[[dkim.selector]]\nname = \"s2\"\nkey_file = \"junk.pem\"\n"
        );
        let err = Config::from_str(&text, &d.join("config.toml")).unwrap_err();
        let msgs: Vec<String> = err.0.iter().map(|d| d.message.clone()).collect();
        assert_eq!(err.0.len(), 2, "{msgs:?}");
        assert!(msgs[0].contains("cannot read DKIM key"), "{msgs:?}");
        assert!(msgs[1].contains("not a PEM private key"), "{msgs:?}");
        let line = text
            .lines()
            .position(|l| l.contains("missing.pem"))
            .unwrap()
            + 1;
        assert_eq!(err.0[0].line, line);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_domain_dmarc_would_not_align_is_refused() {
        let d = dir("align");
        let pem = crate::dkim::generate(crate::dkim::Algorithm::Ed25519).unwrap();
        std::fs::write(d.join("k.pem"), pem).unwrap();
        let sel = "[[dkim.selector]]\nname = \"s1\"\nkey_file = \"k.pem\"\n";
        let ok = format!("{MINIMAL}\n[dkim]\n{sel}");
        let c = Config::from_str(&ok, &d.join("config.toml")).unwrap();
        assert_eq!(c.dkim_domain(), "example.test");
        let parent = ok.replace("support@example.test>", "support@help.example.test>");
        let parent = parent.replace("[dkim]\n", "[dkim]\ndomain = \"example.test\"\n");
        assert!(Config::from_str(&parent, &d.join("config.toml")).is_ok());
        let foreign = ok.replace("[dkim]\n", "[dkim]\ndomain = \"other.test\"\n");
        let err = Config::from_str(&foreign, &d.join("config.toml")).unwrap_err();
        assert!(err.0[0].message.contains("DMARC"), "{err}");
        let twice = format!("{ok}{sel}");
        let err = Config::from_str(&twice, &d.join("config.toml")).unwrap_err();
        assert!(err.0[0].message.contains("listed twice"), "{err}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
