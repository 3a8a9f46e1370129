//! The emulator's own certificates: a CA made fresh at every start (its certificate, as PEM,
//! is what clients are told to trust) and TLS server configurations whose certificate it
//! signs, for Box's host names (the HTTPS-proxy interception, `intercept`) and for the
//! emulator's own address (`EmulatorConfig::serve_https`). Keys live in memory only;
//! nothing but the CA certificate is ever written out.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::ServerConfig;

use super::anyhow_like::{Result, StartError};

/// A certificate authority made at start-up.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    der: Vec<u8>,
    /// The CA certificate (PEM) that clients must trust.
    pub pem: String,
}

fn err(e: impl std::fmt::Display) -> StartError {
    StartError(format!("cannot make the emulator's certificates: {e}"))
}

impl Ca {
    pub fn new() -> Result<Ca> {
        let key = KeyPair::generate().map_err(err)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "boxfs emulator CA");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).map_err(err)?;
        Ok(Ca {
            der: cert.der().to_vec(),
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// A TLS server configuration with a fresh certificate for `names` (host names, or IP
    /// addresses written as text, which become IP-address names), signed by this CA. Only
    /// HTTP/1.1 is offered, as on the emulator's plain-HTTP port.
    pub fn server_config(&self, names: &[String], common_name: &str) -> Result<Arc<ServerConfig>> {
        let key = KeyPair::generate().map_err(err)?;
        let mut params = CertificateParams::new(names.to_vec()).map_err(err)?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        let cert = params.signed_by(&key, &self.issuer).map_err(err)?;
        let chain = vec![
            CertificateDer::from(cert.der().to_vec()),
            CertificateDer::from(self.der.clone()),
        ];
        let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(err)?
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .map_err(err)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// Writes the CA certificate where clients will read it.
    pub fn write_pem(&self, path: &std::path::Path) -> Result<()> {
        std::fs::write(path, &self.pem).map_err(|e| {
            StartError(format!(
                "cannot write the CA certificate to {}: {e}",
                path.display()
            ))
        })
    }
}
