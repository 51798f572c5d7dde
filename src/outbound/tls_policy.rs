//! Certificate checks of direct delivery: every MX connection records
//! whether the server's certificate verified for the MX host name, and a
//! policy that requires it (`tls_policy = "require"`, MTA-STS `enforce`)
//! refuses the handshake when it does not.
//!
//! Opportunistic STARTTLS (RFC 3207 §4.1, RFC 7435) must not give up on a
//! server whose certificate does not verify (self-signed certificates are
//! common on MX hosts, and clear text would be worse), so the check is a
//! verifier that asks the real one and writes the verdict down instead of
//! failing, one per connection so the verdict belongs to that connection.

use crate::store::TlsEvidence;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, Error, ProtocolVersion, SignatureScheme,
};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(tokio_rustls::rustls::crypto::ring::default_provider())
}

/// The verifier of MX certificates and MTA-STS policy hosts: the system's
/// trust store, or only the CAs of `outbound.tls_ca_file` when it is set.
pub fn base_verifier(ca_file: Option<&Path>) -> Result<Arc<dyn ServerCertVerifier>, String> {
    match ca_file {
        Some(path) => {
            let roots = crate::tls::load_ca_file(path)?;
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map(|v| v as Arc<dyn ServerCertVerifier>)
                .map_err(|e| format!("{}: {e}", path.display()))
        }
        None => rustls_platform_verifier::Verifier::new(provider())
            .map(|v| Arc::new(v) as Arc<dyn ServerCertVerifier>)
            .map_err(|e| format!("system trust store: {e}")),
    }
}

/// A TLS client that only completes handshakes whose certificate verifies
/// (the MTA-STS policy fetch, RFC 8461 §3.3).
pub fn strict_connector(base: &Arc<dyn ServerCertVerifier>) -> Result<TlsConnector, String> {
    client_config(base.clone()).map(|c| TlsConnector::from(Arc::new(c)))
}

fn client_config(verifier: Arc<dyn ServerCertVerifier>) -> Result<ClientConfig, String> {
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map(|b| {
            b.dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_no_client_auth()
        })
        .map_err(|e| format!("TLS set-up: {e}"))
}

/// The certificate check of one MX connection.
pub struct TlsCheck {
    recording: Arc<Recording>,
}

impl TlsCheck {
    /// `enforce`: a certificate that does not verify fails the handshake.
    pub fn new(base: &Arc<dyn ServerCertVerifier>, enforce: bool) -> TlsCheck {
        TlsCheck {
            recording: Arc::new(Recording {
                inner: base.clone(),
                enforce,
                failure: Mutex::new(None),
            }),
        }
    }

    pub fn connector(&self) -> Result<TlsConnector, String> {
        client_config(self.recording.clone()).map(|c| TlsConnector::from(Arc::new(c)))
    }

    /// Why the certificate did not verify (None: it did, or no handshake yet).
    pub fn failure(&self) -> Option<String> {
        self.recording
            .failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Asks `inner` and writes its verdict down; accepts what it refuses
/// unless `enforce`.
#[derive(Debug)]
struct Recording {
    inner: Arc<dyn ServerCertVerifier>,
    enforce: bool,
    failure: Mutex<Option<String>>,
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(v) => Ok(v),
            Err(e) => {
                *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                if self.enforce {
                    Err(e)
                } else {
                    Ok(ServerCertVerified::assertion())
                }
            }
        }
    }

    // The handshake signature is always checked: it proves the server holds
    // the key of the certificate it showed, verified or not.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// What a finished handshake says about itself, for the evidence.
pub fn tls_evidence(
    conn: &ClientConnection,
    verified: bool,
    verify_error: Option<String>,
) -> TlsEvidence {
    let version = match conn.protocol_version() {
        Some(ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
        Some(ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
        Some(other) => format!("{other:?}"),
        None => "unknown".into(),
    };
    let cipher = conn
        .negotiated_cipher_suite()
        .map(|s| {
            let s = s.suite();
            s.as_str().map_or_else(|| format!("{s:?}"), str::to_string)
        })
        .unwrap_or_else(|| "unknown".into());
    TlsEvidence {
        version,
        cipher,
        verified,
        verify_error,
    }
}
