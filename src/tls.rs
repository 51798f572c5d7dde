//! Loading TLS material from the files an admin names. Its own module so
//! that config validation (`postdesk check`) and the connections that use
//! the material load it the same way, and the config need not depend on the
//! IMAP poller to check a CA file.

use anyhow::Context;
use std::path::Path;
use std::sync::Arc;
use tokio_rustls::rustls::RootCertStore;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::pki_types::pem::PemObject;

/// The certificate authorities in a PEM file, for servers the system's trust
/// store does not vouch for. The error says what is wrong with the file.
pub fn load_ca_file(path: &Path) -> Result<RootCertStore, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read certificates from {}: {e}", path.display()))?;
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!("{} holds no usable certificate", path.display()));
    }
    Ok(roots)
}

/// A TLS server identity from a PEM certificate chain and key, for a
/// listener (`section` names the config section in errors: `smtp.tls_cert`).
pub fn server_config(
    cert: &Path,
    key: &Path,
    section: &str,
) -> anyhow::Result<tokio_rustls::rustls::ServerConfig> {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::PrivateKeyDer;
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("cannot read {section}.tls_cert {}", cert.display()))?;
    if chain.is_empty() {
        anyhow::bail!("{section}.tls_cert {} holds no certificate", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("cannot read {section}.tls_key {}", key.display()))?;
    // An explicit provider: no dependence on (or panic about) the process default.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS provider does not support the default protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .with_context(|| {
            format!("{section}.tls_cert and {section}.tls_key do not form a usable TLS identity")
        })
}
