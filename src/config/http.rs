//! The HTTP client boxfs reaches Box with, made from the effective configuration in one
//! place: every API client and every authenticator's token requests go through it. It
//! trusts the system's CAs (`SSL_CERT_FILE` and `SSL_CERT_DIR` when set), the public CAs
//! compiled in, and the PEM bundle of `ca_cert` (`--ca-cert FILE`, `BOXFS_CA_CERT`): the CA of
//! a company's TLS-inspecting proxy. Proxies come from `HTTPS_PROXY`, `HTTP_PROXY` and
//! `NO_PROXY`. A certificate no trusted CA signed is reported in one line that says which
//! setting fixes it ([`failure`]).

use box_client::error::CertificateProblem;
use box_client::http::HttpOptions;
use box_client::BoxError;

use super::Effective;

/// What fixes a certificate no trusted CA signed, said after it.
pub const UNTRUSTED_CA_HINT: &str = "if a proxy re-signs TLS, give its CA with --ca-cert FILE \
                                     (or ca_cert in the config, or SSL_CERT_FILE)";

/// The HTTP client of this configuration: the system's and the compiled-in CAs, and
/// `ca_cert`'s certificates. A `ca_cert` that cannot be read, or holds no certificate, is an
/// error naming the file and where it was set.
pub fn http_client(eff: &Effective) -> Result<reqwest::Client, String> {
    let mut options = HttpOptions::new();
    if let Some(path) = &eff.values.ca_cert {
        options = options
            .add_root_certificates_file(path)
            .map_err(|e| eff.bad("ca_cert", plain(e)))?;
    }
    options.build().map_err(|e| plain(e).to_string())
}

/// A configuration error's own words, without "configuration error: " before them.
fn plain(e: BoxError) -> String {
    match e {
        BoxError::Config(why) => why,
        other => other.to_string(),
    }
}

/// What to tell the user when a call to Box failed: `context: error`. A refused certificate
/// says everything itself (which host, why), so it stands alone, with how to trust a proxy's
/// CA when no trusted CA signed it.
pub fn failure(context: &str, e: &BoxError) -> String {
    match e {
        BoxError::Certificate {
            problem: CertificateProblem::UnknownIssuer,
            ..
        } => format!("{e}; {UNTRUSTED_CA_HINT}"),
        BoxError::Certificate { .. } => e.to_string(),
        _ => format!("{context}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Selection, Settings};
    use std::path::PathBuf;

    fn effective(ca_cert: Option<PathBuf>) -> Effective {
        let config = Config::load(&Selection {
            config: Some("/dev/null".into()),
            profile: None,
        })
        .unwrap();
        config
            .resolve_with_env(
                Settings {
                    ca_cert,
                    ..Settings::default()
                },
                &|_| None,
            )
            .unwrap()
    }

    #[test]
    fn a_ca_file_that_cannot_be_used_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\n!!!\n").unwrap();
        let missing = dir.path().join("missing.pem");
        for path in [&empty, &garbage, &missing, &dir.path().to_path_buf()] {
            let err = http_client(&effective(Some(path.clone()))).unwrap_err();
            assert!(
                err.starts_with("ca_cert (command line): ")
                    && err.contains(&*path.to_string_lossy()),
                "{err}"
            );
            assert!(!err.contains("configuration error"), "{err}");
            assert!(!err.contains('\n'), "{err}");
        }
        http_client(&effective(None)).expect("no ca_cert: the system's roots");
    }

    #[test]
    fn an_unknown_issuer_says_how_to_trust_a_proxy() {
        let e = BoxError::Certificate {
            origin: "https://api.box.com".into(),
            problem: CertificateProblem::UnknownIssuer,
        };
        assert_eq!(
            failure("cannot sign in to Box", &e),
            "cannot reach https://api.box.com: its TLS certificate is not signed by a trusted \
             CA; if a proxy re-signs TLS, give its CA with --ca-cert FILE (or ca_cert in the \
             config, or SSL_CERT_FILE)"
        );
        let other = BoxError::Network("GET /users/me: connection refused".into());
        assert_eq!(
            failure("cannot sign in to Box", &other),
            format!("cannot sign in to Box: {other}")
        );
    }
}
