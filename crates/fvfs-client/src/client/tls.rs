//! TLS by certificate pinning: the daemon's certificate is self-signed, so its identity is
//! the SHA-256 of its DER encoding (hex, lowercase), learnt from mDNS (`fp`) or at first
//! use (`known_hosts.toml`).
//!
//! Invariants: a pinned connection completes only if the end-entity certificate hashes to
//! the pin AND the handshake signatures verify against that certificate's key with the
//! aws-lc-rs provider's algorithms (so a peer replaying the certificate without its key
//! fails). Host names and validity dates are not checked: the pin is the identity. The
//! recording verifier (first use) accepts any certificate but still checks the handshake
//! signatures, and remembers the first fingerprint it saw.

use parking_lot::Mutex;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// SHA-256 of a DER certificate, hex lowercase (the format of the TXT `fp` and of pins).
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// A pin as users may type it (`AB:CD:…`, upper case) → 64 lowercase hex digits.
pub fn normalize_pin(pin: &str) -> Option<String> {
    let s: String = pin
        .trim()
        .chars()
        .filter(|c| *c != ':')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())).then_some(s)
}

/// What the verifier checks the end-entity certificate against.
#[derive(Debug)]
enum Mode {
    /// Accept exactly this fingerprint.
    Pinned(String),
    /// Accept any certificate, record its fingerprint (first use).
    Record,
}

/// A rustls verifier for pinned (or first-use) connections. Shared with the client so
/// that after a failed handshake the client can say which fingerprint it saw.
#[derive(Debug)]
pub struct PinVerifier {
    mode: Mode,
    provider: Arc<CryptoProvider>,
    /// The last fingerprint presented by a peer (mismatching or recorded).
    seen: Mutex<Option<String>>,
}

impl PinVerifier {
    pub fn pinned(pin: String) -> Arc<PinVerifier> {
        Arc::new(PinVerifier {
            mode: Mode::Pinned(pin),
            provider: provider(),
            seen: Mutex::new(None),
        })
    }

    pub fn recording() -> Arc<PinVerifier> {
        Arc::new(PinVerifier {
            mode: Mode::Record,
            provider: provider(),
            seen: Mutex::new(None),
        })
    }

    /// The fingerprint the last peer presented, if any handshake got that far.
    pub fn seen(&self) -> Option<String> {
        self.seen.lock().clone()
    }

    /// The pin this verifier enforces (None when recording).
    pub fn pin(&self) -> Option<&str> {
        match &self.mode {
            Mode::Pinned(p) => Some(p),
            Mode::Record => None,
        }
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let fp = fingerprint(end_entity.as_ref());
        *self.seen.lock() = Some(fp.clone());
        match &self.mode {
            Mode::Record => Ok(ServerCertVerified::assertion()),
            Mode::Pinned(pin) if *pin == fp => Ok(ServerCertVerified::assertion()),
            Mode::Pinned(pin) => Err(rustls::Error::General(format!(
                "certificate fingerprint {fp} does not match the pinned {pin}"
            ))),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A rustls client configuration that trusts only what `verifier` accepts.
pub fn client_config(verifier: Arc<PinVerifier>) -> Result<rustls::ClientConfig, String> {
    let provider = verifier.provider.clone();
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_normalised() {
        let fp = "AB".repeat(32);
        assert_eq!(normalize_pin(&fp), Some("ab".repeat(32)));
        let colons = vec!["0F"; 32].join(":");
        assert_eq!(normalize_pin(&colons), Some("0f".repeat(32)));
        assert_eq!(normalize_pin("abc"), None);
        assert_eq!(normalize_pin(&"zz".repeat(32)), None);
    }
}
