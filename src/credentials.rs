//! Secrets handed over by systemd's `LoadCredential=`: a file key in the
//! config (`web.api_token_file`, an IMAP `password_file`, `smtp.tls_key`,
//! `smtp.tls_cert`, `tokens.secret_file`) may name `credential:NAME`, which is the file NAME in
//! `$CREDENTIALS_DIRECTORY`. systemd copies the secret there readable only
//! by the service, so the config itself holds no secret and may be world
//! readable (the MTA's pipe user runs `postdesk deliver` with it), and the
//! secret's own file can stay root-only under /etc.

use std::path::{Path, PathBuf};

/// How a config file value names a credential.
pub const PREFIX: &str = "credential:";

/// The environment variable systemd sets for a service with credentials.
pub const DIRECTORY_VAR: &str = "CREDENTIALS_DIRECTORY";

/// Whether a config value names a credential rather than a file.
pub fn is_credential(p: &Path) -> bool {
    p.to_str().is_some_and(|s| s.starts_with(PREFIX))
}

/// Resolves a file named in the config: `credential:NAME` in
/// `$CREDENTIALS_DIRECTORY`, an absolute path as is, a relative one against
/// the config file's directory (`base_dir`). The error says what is wrong
/// in words an admin can act on.
pub fn resolve(base_dir: &Path, p: &Path) -> Result<PathBuf, String> {
    let Some(name) = p.to_str().and_then(|s| s.strip_prefix(PREFIX)) else {
        return Ok(if p.is_absolute() {
            p.to_path_buf()
        } else {
            base_dir.join(p)
        });
    };
    check_name(name)?;
    let dir = std::env::var_os(DIRECTORY_VAR).ok_or_else(|| {
        format!(
            "{PREFIX}{name} needs ${DIRECTORY_VAR}, which systemd sets with \
             LoadCredential={name}:/path/to/file; outside systemd name the file itself"
        )
    })?;
    Ok(Path::new(&dir).join(name))
}

/// A credential name is one plain file name (systemd's rule too).
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(format!(
            "{PREFIX}{name:?}: a credential name is one file name (no '/')"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_resolve_against_the_config_dir() {
        let base = Path::new("/etc/postdesk");
        assert_eq!(
            resolve(base, Path::new("secret")).unwrap(),
            PathBuf::from("/etc/postdesk/secret")
        );
        assert_eq!(
            resolve(base, Path::new("/run/x")).unwrap(),
            PathBuf::from("/run/x")
        );
    }

    #[test]
    fn credential_names_cannot_leave_the_directory() {
        for bad in [
            "credential:",
            "credential:..",
            "credential:../etc/shadow",
            "credential:a/b",
        ] {
            let e = resolve(Path::new("/etc"), Path::new(bad)).unwrap_err();
            assert!(e.contains("one file name"), "{bad}: {e}");
        }
    }
}
