//! JWT server authentication: the app config JSON of Box's developer console (client id and
//! secret, an RSA key encrypted with a passphrase, the enterprise id) signs short-lived
//! assertions that the token endpoint exchanges for an access token of the app's service
//! account or of one user (an app user, or any managed user the app may act as).
//!
//! Box's rules for the assertion: header `kid` = the config's `publicKeyID`, RS256/384/512;
//! claims `iss` = client id, `sub` + `box_sub_type` = enterprise or user, `aud` = the token
//! URL, a `jti` never used before (16 to 128 characters) and an `exp` at most 60 s ahead.
//! There is no refresh token: a new assertion is made a little before the token expires
//! and when Box refuses the token (shared with client credentials, see
//! `ccg::Minter`). A machine whose clock is off makes Box refuse `exp`; the token
//! endpoint's `Date` header then tells how far off, and the assertion is made once more
//! in the server's time (and every later one too).

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use rand::Rng;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::RsaPrivateKey;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::super::client::{http_client, Client, RetryPolicy};
use super::super::endpoints::Endpoints;
use super::super::error::{BoxError, BoxResult};
use super::super::secret::Secret;
use super::super::types::User;
use super::ccg::{token_client, AppCredentials, Minted, Minter, MintingGrant, Subject};

const GRANT_JWT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// How far ahead an assertion's `exp` is (Box refuses more than 60 s).
const ASSERTION_LIFETIME_SECS: i64 = 45;
/// `jti` length (Box: 16 to 128 characters).
const JTI_LEN: usize = 40;

/// Box's app config file (`config.json` from the developer console).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JwtConfig {
    #[serde(rename = "boxAppSettings")]
    pub box_app_settings: BoxAppSettings,
    /// A string in Box's files (a number is accepted too); absent for apps that may only
    /// authenticate as users.
    #[serde(
        rename = "enterpriseID",
        default,
        deserialize_with = "string_or_number"
    )]
    pub enterprise_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BoxAppSettings {
    #[serde(rename = "clientID")]
    pub client_id: String,
    #[serde(rename = "clientSecret")]
    pub client_secret: Secret,
    #[serde(rename = "appAuth")]
    pub app_auth: AppAuth,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppAuth {
    #[serde(rename = "publicKeyID")]
    pub public_key_id: String,
    /// An encrypted PKCS#8 PEM (unencrypted PKCS#8 and PKCS#1 PEMs are accepted too).
    #[serde(rename = "privateKey")]
    pub private_key: Secret,
    #[serde(default = "no_passphrase")]
    pub passphrase: Secret,
}

fn no_passphrase() -> Secret {
    Secret::new("")
}

fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(serde::de::Error::custom(
            "enterpriseID must be a string or a number",
        )),
    }
}

impl JwtConfig {
    /// Parses the JSON text of a config file.
    pub fn from_json(text: &str) -> BoxResult<JwtConfig> {
        let config: JwtConfig = serde_json::from_str(text).map_err(|e| {
            // serde may quote a value of the file, which may be secret: only a missing
            // field's name is repeated, otherwise just where the problem is.
            let message = e.to_string();
            let what = if message.starts_with("missing field") {
                message
            } else {
                format!(
                    "{:?} error at line {} column {}",
                    e.classify(),
                    e.line(),
                    e.column()
                )
            };
            BoxError::Config(format!(
                "not a Box app config (boxAppSettings.clientID/clientSecret/appAuth.publicKeyID/\
                 privateKey/passphrase, enterpriseID): {what}"
            ))
        })?;
        let s = &config.box_app_settings;
        if s.client_id.is_empty() || s.client_secret.is_empty() {
            return Err(BoxError::Config(
                "the app config has an empty clientID or clientSecret".into(),
            ));
        }
        if s.app_auth.public_key_id.is_empty() || s.app_auth.private_key.is_empty() {
            return Err(BoxError::Config(
                "the app config has no key (appAuth.publicKeyID and appAuth.privateKey); \
                 add a public key to the app in the developer console"
                    .into(),
            ));
        }
        Ok(config)
    }

    /// Reads and parses a config file.
    pub fn from_file(path: &Path) -> BoxResult<JwtConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| BoxError::Config(format!("cannot read {}: {e}", path.display())))?;
        JwtConfig::from_json(&text)
            .map_err(|e| BoxError::Config(format!("{}: {}", path.display(), config_text(&e))))
    }

    /// The app's RSA private key, decrypted with the passphrase.
    pub fn private_key(&self) -> BoxResult<RsaPrivateKey> {
        let auth = &self.box_app_settings.app_auth;
        decrypt_private_key(auth.private_key.expose(), auth.passphrase.expose())
    }
}

/// Reads an app's private key PEM: encrypted PKCS#8 (what the developer console gives, with
/// its passphrase), or plain PKCS#8 / PKCS#1. Errors never quote the key.
pub fn decrypt_private_key(pem: &str, passphrase: &str) -> BoxResult<RsaPrivateKey> {
    let pem = pem.trim();
    if pem.contains("BEGIN ENCRYPTED PRIVATE KEY") {
        RsaPrivateKey::from_pkcs8_encrypted_pem(pem, passphrase.as_bytes()).map_err(|_| {
            BoxError::Config(
                "cannot decrypt the app's private key: wrong passphrase or damaged key".into(),
            )
        })
    } else if pem.contains("BEGIN RSA PRIVATE KEY") {
        use rsa::pkcs1::DecodeRsaPrivateKey;
        RsaPrivateKey::from_pkcs1_pem(pem)
            .map_err(|_| BoxError::Config("cannot read the app's private key".into()))
    } else if pem.contains("BEGIN PRIVATE KEY") {
        RsaPrivateKey::from_pkcs8_pem(pem)
            .map_err(|_| BoxError::Config("cannot read the app's private key".into()))
    } else {
        Err(BoxError::Config(
            "the app's privateKey is not a PEM private key".into(),
        ))
    }
}

fn config_text(e: &BoxError) -> String {
    match e {
        BoxError::Config(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The signature algorithms Box accepts for assertions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JwtAlgorithm {
    #[default]
    RS256,
    RS384,
    RS512,
}

impl JwtAlgorithm {
    fn jsonwebtoken(self) -> jsonwebtoken::Algorithm {
        match self {
            JwtAlgorithm::RS256 => jsonwebtoken::Algorithm::RS256,
            JwtAlgorithm::RS384 => jsonwebtoken::Algorithm::RS384,
            JwtAlgorithm::RS512 => jsonwebtoken::Algorithm::RS512,
        }
    }
}

/// Where assertions take the time from: the system clock, unless one is given
/// ([`JwtAuth::with_clock`]).
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    box_sub_type: &'a str,
    aud: &'a str,
    jti: String,
    iat: i64,
    exp: i64,
}

#[derive(Clone)]
struct App {
    credentials: AppCredentials,
    key_id: String,
    key: jsonwebtoken::EncodingKey,
    enterprise_id: Option<String>,
    algorithm: JwtAlgorithm,
    clock: Clock,
    /// Server time minus local time, in seconds, learnt from a refused `exp` (0 until then).
    /// Shared by every subject of the app.
    skew: Arc<AtomicI64>,
    retry: RetryPolicy,
}

/// JWT authentication of a Box app. Cheap to clone; clones share the token. An
/// [`Authenticator`](super::Authenticator) (shared with [`super::CcgAuth`]).
///
/// ```no_run
/// # async fn f() -> box_client::BoxResult<()> {
/// use box_client::auth::jwt::{JwtAuth, JwtConfig};
/// use box_client::Endpoints;
/// let config = JwtConfig::from_file("config.json".as_ref())?;
/// let service = JwtAuth::new(&config, &Endpoints::box_com())?;
/// let (user, as_user) = service.create_app_user("Ada", None).await?;
/// let me = as_user.client().me().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct JwtAuth {
    app: Arc<App>,
    subject: Subject,
    tokens: Arc<Minter>,
}

impl std::fmt::Debug for JwtAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuth")
            .field("client_id", &self.app.credentials.client_id)
            .field("client_secret", &self.app.credentials.client_secret)
            .field("public_key_id", &self.app.key_id)
            .field("algorithm", &self.app.algorithm)
            .field("subject", &self.subject)
            .finish()
    }
}

impl JwtAuth {
    /// The app's service account (`sub` = the config's enterprise id), at `endpoints`.
    pub fn new(config: &JwtConfig, endpoints: &Endpoints) -> BoxResult<JwtAuth> {
        let enterprise = config.enterprise_id.clone().ok_or_else(|| {
            BoxError::Config(
                "the app config has no enterpriseID: only user subjects are possible \
                 (JwtAuth::with_subject)"
                    .into(),
            )
        })?;
        JwtAuth::with_subject(config, Subject::Enterprise(enterprise), endpoints)
    }

    /// Reads `path` and authenticates as the app's service account.
    pub fn from_file(path: &Path, endpoints: &Endpoints) -> BoxResult<JwtAuth> {
        JwtAuth::new(&JwtConfig::from_file(path)?, endpoints)
    }

    /// Authenticates as `subject`. The key is decrypted here, so a wrong passphrase or a
    /// damaged key fails now, with `BoxError::Config`.
    pub fn with_subject(
        config: &JwtConfig,
        subject: Subject,
        endpoints: &Endpoints,
    ) -> BoxResult<JwtAuth> {
        subject.check()?;
        let key = config.private_key()?;
        let der = key
            .to_pkcs1_der()
            .map_err(|_| BoxError::Config("cannot encode the app's private key".into()))?;
        let settings = &config.box_app_settings;
        let retry = RetryPolicy::default();
        Ok(JwtAuth {
            app: Arc::new(App {
                credentials: AppCredentials {
                    client_id: settings.client_id.clone(),
                    client_secret: settings.client_secret.clone(),
                    token_client: token_client(endpoints, http_client(), retry.clone()),
                },
                key_id: settings.app_auth.public_key_id.clone(),
                key: jsonwebtoken::EncodingKey::from_rsa_der(der.as_bytes()),
                enterprise_id: config.enterprise_id.clone(),
                algorithm: JwtAlgorithm::default(),
                clock: Arc::new(SystemTime::now),
                skew: Arc::new(AtomicI64::new(0)),
                retry,
            }),
            subject,
            tokens: Arc::new(Minter::default()),
        })
    }

    /// Signs with `algorithm` (RS256 by default).
    pub fn with_algorithm(mut self, algorithm: JwtAlgorithm) -> JwtAuth {
        Arc::make_mut(&mut self.app).algorithm = algorithm;
        self
    }

    /// Takes the time for assertions from `clock`.
    pub fn with_clock(mut self, clock: Clock) -> JwtAuth {
        Arc::make_mut(&mut self.app).clock = clock;
        self
    }

    /// Sends token requests (and builds [`JwtAuth::client`]s) with `http` and `retry`.
    pub fn with_http(mut self, http: reqwest::Client, retry: RetryPolicy) -> JwtAuth {
        let app = Arc::make_mut(&mut self.app);
        let credentials = &mut app.credentials;
        credentials.token_client =
            token_client(credentials.token_client.endpoints(), http, retry.clone());
        app.retry = retry;
        self
    }

    /// The same app acting as the user `user_id` (an app user, or a managed user if the
    /// app may act as users), with its own token.
    pub fn for_user(&self, user_id: &str) -> BoxResult<JwtAuth> {
        self.for_subject(Subject::User(user_id.to_string()))
    }

    /// The same app as its service account (needs the config's enterprise id).
    pub fn enterprise(&self) -> BoxResult<JwtAuth> {
        let id = self
            .app
            .enterprise_id
            .clone()
            .ok_or_else(|| BoxError::Config("the app config has no enterpriseID".into()))?;
        self.for_subject(Subject::Enterprise(id))
    }

    fn for_subject(&self, subject: Subject) -> BoxResult<JwtAuth> {
        subject.check()?;
        Ok(JwtAuth {
            app: self.app.clone(),
            subject,
            tokens: Arc::new(Minter::default()),
        })
    }

    pub fn subject(&self) -> &Subject {
        &self.subject
    }

    /// A [`Client`] authenticated by this, at the same endpoints and over the same HTTP client.
    pub fn client(&self) -> Client {
        let tc = &self.app.credentials.token_client;
        Client::with_http(
            Arc::new(self.clone()),
            tc.endpoints().clone(),
            tc.http().clone(),
            self.app.retry.clone(),
        )
    }

    /// Creates an app user with this authentication (the service account's), and returns
    /// it with an authentication acting as it.
    pub async fn create_app_user(
        &self,
        name: &str,
        external_id: Option<&str>,
    ) -> BoxResult<(User, JwtAuth)> {
        let user = self.client().create_app_user(name, external_id).await?;
        let auth = self.for_user(&user.id)?;
        Ok((user, auth))
    }

    /// A signed assertion for this subject, issued at `now` (Unix seconds).
    fn assertion(&self, now: i64) -> BoxResult<Secret> {
        let app = &self.app;
        let mut header = jsonwebtoken::Header::new(app.algorithm.jsonwebtoken());
        header.kid = Some(app.key_id.clone());
        let aud = app.credentials.token_client.endpoints().token_url();
        let claims = Claims {
            iss: &app.credentials.client_id,
            sub: self.subject.id(),
            box_sub_type: self.subject.kind(),
            aud: aud.as_str(),
            jti: rand::thread_rng()
                .sample_iter(&rand::distributions::Alphanumeric)
                .take(JTI_LEN)
                .map(char::from)
                .collect(),
            iat: now,
            exp: now + ASSERTION_LIFETIME_SECS,
        };
        jsonwebtoken::encode(&header, &claims, &app.key)
            .map(Secret::new)
            .map_err(|e| BoxError::Config(format!("cannot sign a JWT assertion: {e}")))
    }

    /// Local time by the clock, corrected by what the server's clock taught us.
    fn now(&self) -> i64 {
        unix_secs((self.app.clock)()) + self.app.skew.load(Ordering::Relaxed)
    }

    async fn exchange(&self, assertion: Secret) -> BoxResult<Minted> {
        self.app
            .credentials
            .exchange(
                GRANT_JWT,
                vec![("assertion".into(), assertion.expose().to_string())],
            )
            .await
    }

    /// A token from a fresh assertion; once more in the server's time if Box refused the
    /// assertion's `exp`.
    async fn mint_once_more_if_skewed(&self) -> BoxResult<Minted> {
        let first = self.exchange(self.assertion(self.now())?).await;
        let err = match first {
            Ok(minted) => return Ok(minted),
            Err(e) => e,
        };
        if !refuses_exp(&err) {
            return Err(err);
        }
        // Box judged `exp` by its own clock: redo the assertion in the server's time, once.
        let Some(server) = self.app.credentials.token_client.last_server_date() else {
            return Err(err);
        };
        let skew = unix_secs(server) - unix_secs((self.app.clock)());
        log::debug!(
            "the token endpoint refused the assertion's exp; the local clock is {}s off the \
             server's, retrying in server time",
            -skew
        );
        self.app.skew.store(skew, Ordering::Relaxed);
        self.exchange(self.assertion(self.now())?).await
    }
}

/// Box's `invalid_grant` about the `exp` claim (expired, or too far ahead).
fn refuses_exp(err: &BoxError) -> bool {
    match err {
        BoxError::OAuth {
            error, description, ..
        } if error == "invalid_grant" => description
            .to_ascii_lowercase()
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|w| w == "exp" || w == "expired"),
        _ => false,
    }
}

fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

#[async_trait]
impl MintingGrant for JwtAuth {
    fn credentials(&self) -> &AppCredentials {
        &self.app.credentials
    }

    fn tokens(&self) -> &Minter {
        &self.tokens
    }

    async fn mint(&self) -> BoxResult<Minted> {
        self.mint_once_more_if_skewed().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_refusals_are_recognised() {
        let oauth = |error: &str, description: &str| BoxError::OAuth {
            status: 400,
            error: error.into(),
            description: description.into(),
            request_id: None,
        };
        assert!(refuses_exp(&oauth(
            "invalid_grant",
            "Please check the 'exp' claim."
        )));
        assert!(refuses_exp(&oauth(
            "invalid_grant",
            "The assertion has expired"
        )));
        assert!(!refuses_exp(&oauth(
            "invalid_grant",
            "Unexpected 'kid' header"
        )));
        assert!(!refuses_exp(&oauth("invalid_client", "'exp'")));
    }

    #[test]
    fn bad_configs_are_typed_errors() {
        for text in [
            "",
            "{",
            "[]",
            r#"{"boxAppSettings": {}}"#,
            r#"{"boxAppSettings": {"clientID": "a", "clientSecret": "b",
               "appAuth": {"publicKeyID": "k", "privateKey": "", "passphrase": "p"}},
               "enterpriseID": "1"}"#,
        ] {
            assert!(
                matches!(JwtConfig::from_json(text), Err(BoxError::Config(_))),
                "{text}"
            );
        }
        let text = r#"{"boxAppSettings": {"clientID": "a", "clientSecret": "topsecret",
            "appAuth": {"publicKeyID": "k", "privateKey": "not a key", "passphrase": "hunter2"}},
            "enterpriseID": 42}"#;
        let c = JwtConfig::from_json(text).unwrap();
        assert_eq!(c.enterprise_id.as_deref(), Some("42"));
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("topsecret")
                && !shown.contains("hunter2")
                && !shown.contains("not a key"),
            "{shown}"
        );
        let endpoints = Endpoints::from_base("http://127.0.0.1:9").unwrap();
        assert!(matches!(
            JwtAuth::new(&c, &endpoints),
            Err(BoxError::Config(_))
        ));
        // A secret value in a wrongly typed field is not quoted back.
        let err = JwtConfig::from_json(
            r#"{"boxAppSettings": {"clientID": "a", "clientSecret": ["topsecret"]}}"#,
        )
        .unwrap_err();
        assert!(!err.to_string().contains("topsecret"), "{err}");
    }
}
