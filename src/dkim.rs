//! DKIM (RFC 6376, RFC 8463): loading the signing keys named in `[dkim]`,
//! signing outgoing mail, and making new keys with their DNS records
//! (`postdesk dkim-keygen`). The only module naming mail-auth and rsa.
//!
//! Mail is signed by the sender at the moment it is handed to the relay
//! ([`crate::outbound::sender`]), not when it is queued: the signature then
//! covers exactly the bytes that leave, carries a fresh `t=`, and a key
//! rotated while mail waits in the queue (a restart with a new first
//! selector) signs that mail with the new key instead of a key whose DNS
//! record may already be gone. The stored copy stays as composed (raw bytes
//! are never rewritten); retries sign again, which costs one signature.

use data_encoding::BASE64;
use mail_auth::common::crypto::{DkimKey, Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner, Done};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use std::path::{Path, PathBuf};

/// The headers we sign. Those a message lacks are still listed (mail-auth
/// adds them to `h=` as absent), so nobody can add a Reply-To, Cc or
/// References on the way without breaking the signature.
const SIGNED_HEADERS: [&str; 14] = [
    "From",
    "Reply-To",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Auto-Submitted",
    "Precedence",
];

/// RSA keys `dkim-keygen` makes; RFC 8301 asks for at least 1024 bits and
/// 2048 is what large receivers expect today.
pub const RSA_BITS: usize = 2048;

/// The key algorithms we sign with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// rsa-sha256: verified by every receiver.
    Rsa,
    /// ed25519-sha256 (RFC 8463): small, but not verified everywhere yet.
    Ed25519,
}

impl Algorithm {
    /// The `k=` tag of the DNS record.
    pub fn dns_name(self) -> &'static str {
        match self {
            Algorithm::Rsa => "rsa",
            Algorithm::Ed25519 => "ed25519",
        }
    }
}

/// Why a key file cannot be used; `check` and the daemon's start report it.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A `credential:NAME` key file that names no usable credential.
    #[error("DKIM key {path}: {reason}")]
    Credential { path: PathBuf, reason: String },
    #[error("cannot read DKIM key {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("DKIM key {path} is not a PEM private key (PKCS#8 or PKCS#1): {reason}")]
    Pem { path: PathBuf, reason: String },
    #[error("DKIM key {path} is neither an RSA (2048 to 8192 bits) nor an Ed25519 key: {reason}")]
    Unsupported { path: PathBuf, reason: String },
}

/// Why a message could not be signed.
#[derive(Debug, thiserror::Error)]
#[error("cannot DKIM-sign the message: {0}")]
pub struct SignError(String);

/// Why `dkim-keygen` could not make a key.
#[derive(Debug, thiserror::Error)]
#[error("cannot generate a DKIM key: {0}")]
pub struct KeygenError(String);

/// A private key read from its file, with what its DNS record publishes.
pub struct Key {
    algorithm: Algorithm,
    key: DkimKey,
    /// The `p=` value: SubjectPublicKeyInfo for RSA, the raw 32 bytes for
    /// Ed25519 (RFC 8463 §4.2).
    public: Vec<u8>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the private key, not even in a debug log.
        f.debug_struct("Key")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl Key {
    /// Reads a PEM private key: PKCS#8 (`PRIVATE KEY`, RSA or Ed25519, as
    /// `dkim-keygen` and `openssl genpkey` write) or PKCS#1 (`RSA PRIVATE KEY`,
    /// as opendkim-genkey writes).
    pub fn load(path: &Path) -> Result<Key, KeyError> {
        let pem = std::fs::read(path).map_err(|source| KeyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Key::from_pem(&pem).map_err(|e| match e {
            KeyError::Pem { reason, .. } => KeyError::Pem {
                path: path.to_path_buf(),
                reason,
            },
            KeyError::Unsupported { reason, .. } => KeyError::Unsupported {
                path: path.to_path_buf(),
                reason,
            },
            other => other,
        })
    }

    /// [`Key::load`] on PEM text already read.
    pub fn from_pem(pem: &[u8]) -> Result<Key, KeyError> {
        let der = PrivateKeyDer::from_pem_slice(pem).map_err(|e| KeyError::Pem {
            path: PathBuf::new(),
            reason: e.to_string(),
        })?;
        let unsupported = |reason: String| KeyError::Unsupported {
            path: PathBuf::new(),
            reason,
        };
        if let PrivateKeyDer::Pkcs8(p8) = &der
            && let Ok(ed) = Ed25519Key::from_pkcs8_maybe_unchecked_der(p8.secret_pkcs8_der())
        {
            let public = ed.public_key();
            return Ok(Key {
                algorithm: Algorithm::Ed25519,
                key: DkimKey::Ed25519(ed),
                public,
            });
        }
        match der {
            PrivateKeyDer::Pkcs1(_) | PrivateKeyDer::Pkcs8(_) => {
                let rsa =
                    RsaKey::<Sha256>::from_key_der(der).map_err(|e| unsupported(e.to_string()))?;
                let public = rsa_spki(&rsa.public_key());
                Ok(Key {
                    algorithm: Algorithm::Rsa,
                    key: DkimKey::Rsa(rsa),
                    public,
                })
            }
            _ => Err(unsupported("an EC (SEC1) key".into())),
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The TXT record to publish at `SELECTOR._domainkey.DOMAIN`.
    pub fn dns_record(&self) -> String {
        format!(
            "v=DKIM1; k={}; p={}",
            self.algorithm.dns_name(),
            BASE64.encode(&self.public)
        )
    }
}

/// Signs outgoing mail with the first (active) selector of `[dkim]`.
pub struct Signer {
    domain: String,
    selector: String,
    signer: DkimSigner<DkimKey, Done>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// A signer for `d=domain; s=selector`.
    pub fn new(domain: String, selector: String, key: Key) -> Signer {
        let signer = DkimSigner::from_key(key.key)
            .domain(domain.clone())
            .selector(selector.clone())
            .headers(SIGNED_HEADERS)
            .header_canonicalization(Canonicalization::Relaxed)
            .body_canonicalization(Canonicalization::Relaxed);
        Signer {
            domain,
            selector,
            signer,
        }
    }

    pub fn selector(&self) -> &str {
        &self.selector
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The message with its DKIM-Signature header in front: the bytes to send.
    pub fn sign(&self, raw: &[u8]) -> Result<Vec<u8>, SignError> {
        let signature = self
            .signer
            .sign(raw)
            .map_err(|e| SignError(e.to_string()))?;
        let header = signature.to_header();
        let mut out = Vec::with_capacity(header.len() + raw.len());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(raw);
        Ok(out)
    }
}

/// A new private key as PKCS#8 PEM text.
pub fn generate(algorithm: Algorithm) -> Result<String, KeygenError> {
    match algorithm {
        Algorithm::Ed25519 => {
            let rng = ring::rand::SystemRandom::new();
            let der = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|e| KeygenError(e.to_string()))?;
            Ok(pem("PRIVATE KEY", der.as_ref()))
        }
        Algorithm::Rsa => {
            // ring cannot make RSA keys; the rsa crate only generates here,
            // ring does all the signing.
            use rsa::pkcs8::EncodePrivateKey;
            let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, RSA_BITS)
                .map_err(|e| KeygenError(e.to_string()))?;
            let der = key.to_pkcs8_der().map_err(|e| KeygenError(e.to_string()))?;
            Ok(pem("PRIVATE KEY", der.as_bytes()))
        }
    }
}

/// PEM armour (RFC 7468): base64 in 64-column lines.
fn pem(label: &str, der: &[u8]) -> String {
    let b64 = BASE64.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Wraps a PKCS#1 RSAPublicKey into the SubjectPublicKeyInfo that RFC 6376
/// §3.6.1 asks `p=` to hold (ring gives the former).
fn rsa_spki(pkcs1: &[u8]) -> Vec<u8> {
    // AlgorithmIdentifier { rsaEncryption, NULL }
    const ALGORITHM: [u8; 15] = [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bits = vec![0u8]; // no unused bits
    bits.extend_from_slice(pkcs1);
    let mut body = ALGORITHM.to_vec();
    body.extend(der_tlv(0x03, &bits));
    der_tlv(0x30, &body)
}

/// One DER tag-length-value.
fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|&b| b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: &[u8] = b"From: Support <support@example.test>\r\nTo: a@example.org\r\nSubject: hi\r\nMessage-ID: <x@support.example.test>\r\n\r\nHello\r\n";

    #[test]
    fn ed25519_key_round_trips_and_signs() {
        let pem = generate(Algorithm::Ed25519).unwrap();
        let key = Key::from_pem(pem.as_bytes()).unwrap();
        assert_eq!(key.algorithm(), Algorithm::Ed25519);
        let record = key.dns_record();
        assert!(record.starts_with("v=DKIM1; k=ed25519; p="), "{record}");
        // 32 raw bytes are 44 base64 characters.
        assert_eq!(record.split("p=").nth(1).unwrap().len(), 44);
        let signer = Signer::new("example.test".into(), "s1".into(), key);
        let signed = signer.sign(MESSAGE).unwrap();
        let text = String::from_utf8(signed).unwrap();
        assert!(text.starts_with("DKIM-Signature: "), "{text}");
        assert!(text.contains("a=ed25519-sha256"), "{text}");
        assert!(text.contains("d=example.test"), "{text}");
        assert!(text.contains("s=s1"), "{text}");
        assert!(text.ends_with(std::str::from_utf8(MESSAGE).unwrap()));
    }

    #[test]
    fn not_a_key_is_refused() {
        let err = Key::from_pem(b"hello").unwrap_err();
        assert!(matches!(err, KeyError::Pem { .. }), "{err}");
    }

    #[test]
    fn der_lengths_use_long_form_above_127() {
        assert_eq!(der_tlv(0x04, &[0; 3])[..2], [0x04, 3]);
        assert_eq!(der_tlv(0x04, &[0; 200])[..3], [0x04, 0x81, 200]);
        assert_eq!(der_tlv(0x04, &[0; 300])[..4], [0x04, 0x82, 0x01, 0x2c]);
    }
}
