//! The HTTP client every request goes through, and the options a deployment may need to
//! reach Box: a proxy named explicitly, and extra root certificates to trust. Companies often
//! reach Box through a TLS-inspecting proxy that re-signs Box's certificates with its own CA;
//! a test server that answers for Box's host names has its own CA too. Without options the
//! client is what boxfs always used: pooled keep-alive connections, TCP_NODELAY, no automatic
//! redirects (downloads resolve Box's redirect themselves), and the proxies the environment
//! names (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`).
//!
//! Trusted are the system's CAs (its bundle, or the `SSL_CERT_FILE` file and the
//! `SSL_CERT_DIR` directories when either is set), the public CAs compiled in (so that a
//! machine without a CA bundle still reaches Box), and the roots added here. A certificate
//! none of them signed becomes [`BoxError::Certificate`] (see [`certificate_refusal`]),
//! never retried.
//!
//! ```
//! # fn f(ca_pem: &[u8]) -> box_client::BoxResult<()> {
//! use box_client::http::HttpOptions;
//! let http = HttpOptions::new()
//!     .proxy("http://proxy.example.com:3128")?
//!     .add_root_certificates_pem(ca_pem)?
//!     .build()?;
//! # drop(http);
//! # Ok(())
//! # }
//! ```

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use super::error::{BoxError, BoxResult, CertificateProblem};
use super::secret::redact_url_text;

/// How the HTTP client reaches Box. Build it with [`HttpOptions::build`] and hand the result
/// to [`crate::Client::with_http`] (and to the authenticator's `with_http`, whose token
/// requests go the same way).
#[derive(Clone, Default)]
pub struct HttpOptions {
    /// Every request, `http://` and `https://`, goes through it (the environment's proxy
    /// settings are then not used).
    proxy: Option<reqwest::Proxy>,
    /// Where the proxy is, for messages (credentials redacted).
    proxy_shown: Option<String>,
    /// Trusted in addition to the built-in roots.
    roots: Vec<reqwest::Certificate>,
    /// No proxy at all, whatever the environment says.
    direct: bool,
}

impl std::fmt::Debug for HttpOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpOptions")
            .field("proxy", &self.proxy_shown)
            .field("extra_roots", &self.roots.len())
            .field("direct", &self.direct)
            .finish()
    }
}

impl HttpOptions {
    pub fn new() -> HttpOptions {
        HttpOptions::default()
    }

    /// Sends every request through the proxy at `url` (`http://host:port`, or
    /// `http://user:password@host:port`); HTTPS goes through it with `CONNECT`.
    pub fn proxy(mut self, url: &str) -> BoxResult<HttpOptions> {
        let shown = redact_url_text(url);
        let parsed = url::Url::parse(url)
            .map_err(|e| BoxError::Config(format!("proxy '{shown}' is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(BoxError::Config(format!(
                "proxy '{shown}' must be an http:// or https:// URL with a host"
            )));
        }
        let proxy = reqwest::Proxy::all(parsed.as_str())
            .map_err(|e| BoxError::Config(format!("proxy '{shown}' cannot be used: {e}")))?;
        self.proxy = Some(proxy);
        self.proxy_shown = Some(shown);
        self.direct = false;
        Ok(self)
    }

    /// Connects directly, without the proxies the environment names (for a server on this
    /// machine, which a proxy elsewhere cannot reach).
    pub fn direct(mut self) -> HttpOptions {
        self.proxy = None;
        self.proxy_shown = None;
        self.direct = true;
        self
    }

    /// Also trusts every certificate of a PEM bundle (one or more `BEGIN CERTIFICATE`
    /// blocks).
    pub fn add_root_certificates_pem(mut self, pem: &[u8]) -> BoxResult<HttpOptions> {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| BoxError::Config(format!("cannot read the PEM certificates: {e}")))?;
        if certs.is_empty() {
            return Err(BoxError::Config(
                "the PEM data holds no certificate (no BEGIN CERTIFICATE block)".into(),
            ));
        }
        self.roots.extend(certs);
        Ok(self)
    }

    /// [`HttpOptions::add_root_certificates_pem`] with the contents of a file. Every error
    /// names the file.
    pub fn add_root_certificates_file(self, path: &Path) -> BoxResult<HttpOptions> {
        let shown = path.display();
        let mut pem = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_PEM_FILE + 1).read_to_end(&mut pem))
            .map_err(|e| {
                BoxError::Config(format!("cannot read the certificates in {shown}: {e}"))
            })?;
        if pem.len() as u64 > MAX_PEM_FILE {
            return Err(BoxError::Config(format!(
                "{shown} is larger than {} MiB: not a file of PEM certificates",
                MAX_PEM_FILE >> 20
            )));
        }
        self.add_root_certificates_pem(&pem).map_err(|e| match e {
            BoxError::Config(why) => BoxError::Config(format!("{shown}: {why}")),
            other => other,
        })
    }

    /// The HTTP client with these options.
    pub fn build(&self) -> BoxResult<reqwest::Client> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(60))
            // Box's hosts answer a connection within a second or two, through a proxy too;
            // one that takes longer is treated as out of reach (`BoxError::Unreachable`).
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("boxfs/", env!("CARGO_PKG_VERSION")))
            // Both sets of roots, said here so that the build fails if a reqwest feature that
            // provides one goes missing: the public CAs compiled in, and the system's (which
            // honours SSL_CERT_FILE and SSL_CERT_DIR).
            .tls_built_in_webpki_certs(true)
            .tls_built_in_native_certs(true);
        if let Some(proxy) = &self.proxy {
            builder = builder.proxy(proxy.clone());
        }
        if self.direct {
            builder = builder.no_proxy();
        }
        for cert in &self.roots {
            builder = builder.add_root_certificate(cert.clone());
        }
        builder
            .build()
            .map_err(|e| BoxError::Config(format!("cannot set up the HTTP client: {e}")))
    }
}

/// The largest file [`HttpOptions::add_root_certificates_file`] reads (a CA bundle of a few
/// hundred certificates is well under 1 MiB).
const MAX_PEM_FILE: u64 = 16 << 20;

/// Whether a request failed because the server's TLS certificate was refused, and why: the
/// TLS library's error, found in the error's chain of causes.
pub fn certificate_refusal(e: &reqwest::Error) -> Option<CertificateProblem> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cause {
        if let Some(rustls::Error::InvalidCertificate(problem)) =
            err.downcast_ref::<rustls::Error>()
        {
            return Some(match problem {
                rustls::CertificateError::UnknownIssuer => CertificateProblem::UnknownIssuer,
                other => CertificateProblem::Other(other.to_string()),
            });
        }
        // An I/O error that carries another error (the TLS error, or an I/O error around it)
        // gives, as its source, that error's source: look inside it instead.
        cause = match err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    None
}

/// The HTTP client boxfs uses when given no [`HttpOptions`].
pub fn http_client() -> reqwest::Client {
    HttpOptions::new()
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_proxies_and_certificates_are_refused_readably() {
        let err = HttpOptions::new().proxy("not a url").unwrap_err();
        assert!(err.to_string().contains("not a URL"), "{err}");
        let err = HttpOptions::new()
            .proxy("ftp://proxy.example.com")
            .unwrap_err();
        assert!(err.to_string().contains("http://"), "{err}");
        let err = HttpOptions::new()
            .proxy("http://user:hunter2@[::1")
            .unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let err = HttpOptions::new()
            .add_root_certificates_pem(b"no certificates here")
            .unwrap_err();
        assert!(err.to_string().contains("no certificate"), "{err}");
        let err = HttpOptions::new()
            .add_root_certificates_file(Path::new("/nonexistent/ca.pem"))
            .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
        let empty = std::env::temp_dir().join(format!("box-client-empty-{}", std::process::id()));
        std::fs::write(&empty, b"").unwrap();
        let err = HttpOptions::new()
            .add_root_certificates_file(&empty)
            .unwrap_err()
            .to_string();
        let _ = std::fs::remove_file(&empty);
        assert_eq!(err.matches("configuration error").count(), 1, "{err}");
        assert!(err.contains("no certificate"), "{err}");
        // A device that never ends is refused, not read into memory.
        let err = HttpOptions::new()
            .add_root_certificates_file(Path::new("/dev/zero"))
            .unwrap_err();
        assert!(
            err.to_string().contains("/dev/zero is larger than"),
            "{err}"
        );
    }

    #[test]
    fn direct_replaces_a_proxy() {
        let opts = HttpOptions::new()
            .proxy("http://proxy.example.com:3128")
            .unwrap()
            .direct();
        let shown = format!("{opts:?}");
        assert!(shown.contains("direct: true") && !shown.contains("proxy.example.com"));
        opts.build().expect("builds");
    }

    #[test]
    fn a_proxy_with_credentials_is_shown_without_them() {
        let opts = HttpOptions::new()
            .proxy("http://user:hunter2@proxy.example.com:3128")
            .unwrap();
        let shown = format!("{opts:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("proxy.example.com"), "{shown}");
        opts.build().expect("builds");
    }
}
