//! The daemon's self-signed TLS certificate: generated once (at format time, or the first
//! start that finds none) as `<state>/tls/cert.pem` and `<state>/tls/key.pem`, and loaded
//! into a rustls server configuration.
//!
//! Invariants: the private key file has mode 0600 from its creation; clients pin the
//! certificate by [`fingerprint`] (SHA-256 of the DER, lowercase hex without colons), so the
//! certificate is never replaced behind their back: `ensure` keeps an existing pair.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot generate the certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{path}: {msg}")]
    Pem { path: PathBuf, msg: String },
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Where the certificate and key of a state directory are.
pub fn paths(state_dir: &Path) -> (PathBuf, PathBuf) {
    let d = state_dir.join("tls");
    (d.join("cert.pem"), d.join("key.pem"))
}

/// SHA-256 of a certificate's DER bytes: lowercase hex, no colons.
pub fn fingerprint(cert_der: &[u8]) -> String {
    hex::encode(Sha256::digest(cert_der))
}

/// Names the certificate is valid for: localhost, the loopback addresses, the host name
/// and its mDNS name.
pub fn subject_names(hostname: &str) -> Vec<String> {
    let mut v = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    let h = hostname.trim().trim_end_matches('.');
    if !h.is_empty() && h != "localhost" {
        let short = h.strip_suffix(".local").unwrap_or(h);
        v.push(short.to_string());
        v.push(format!("{short}.local"));
    }
    v
}

/// Generates a certificate for `hostname` in `<state>/tls/` unless one is there; returns
/// its fingerprint either way.
pub fn ensure(state_dir: &Path, hostname: &str) -> Result<String, TlsError> {
    let (cert_p, key_p) = paths(state_dir);
    if cert_p.exists() && key_p.exists() {
        return Ok(fingerprint(&load_cert(&cert_p)?));
    }
    let dir = state_dir.join("tls");
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TlsError::Io { path, source }
    };
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let mut params = rcgen::CertificateParams::new(subject_names(hostname))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("fvfsd {hostname}"));
    // rcgen's default validity (1975 to 4096) stays: the pin, not the dates, is trusted.
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    crate::auth::write_private(&key_p, key.serialize_pem().as_bytes()).map_err(io(&key_p))?;
    std::fs::write(&cert_p, cert.pem()).map_err(io(&cert_p))?;
    Ok(fingerprint(cert.der()))
}

fn load_cert(path: &Path) -> Result<CertificateDer<'static>, TlsError> {
    CertificateDer::from_pem_file(path).map_err(|e| TlsError::Pem {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })
}

/// The fingerprint of the certificate in `<state>/tls/` (the one `serve` presents), or
/// None when there is none yet.
pub fn stored_fingerprint(state_dir: &Path) -> Result<Option<String>, TlsError> {
    let (cert_p, _) = paths(state_dir);
    if !cert_p.exists() {
        return Ok(None);
    }
    Ok(Some(fingerprint(&load_cert(&cert_p)?)))
}

/// The server configuration of `<state>/tls/` and the certificate's fingerprint.
pub fn load(state_dir: &Path) -> Result<(Arc<rustls::ServerConfig>, String), TlsError> {
    let (cert_p, key_p) = paths(state_dir);
    let cert = load_cert(&cert_p)?;
    let key = PrivateKeyDer::from_pem_file(&key_p).map_err(|e| TlsError::Pem {
        path: key_p.clone(),
        msg: e.to_string(),
    })?;
    let fp = fingerprint(&cert);
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(cfg), fp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generate_load_and_keep() {
        let dir = tempfile::tempdir().unwrap();
        let fp = ensure(dir.path(), "nas").unwrap();
        assert_eq!(fp.len(), 64);
        assert!(fp
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        let (_, key) = paths(dir.path());
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (_, fp2) = load(dir.path()).unwrap();
        assert_eq!(fp, fp2);
        assert_eq!(stored_fingerprint(dir.path()).unwrap(), Some(fp.clone()));
        let none = tempfile::tempdir().unwrap();
        assert_eq!(stored_fingerprint(none.path()).unwrap(), None);
        assert_eq!(
            ensure(dir.path(), "other").unwrap(),
            fp,
            "an existing pair is kept"
        );
        assert_eq!(
            subject_names("nas.local"),
            vec!["localhost", "127.0.0.1", "::1", "nas", "nas.local"]
        );
    }
}
