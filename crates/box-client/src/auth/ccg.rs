//! Client credentials (CCG): the app's client id and secret buy a token for its service
//! account (`box_subject_type=enterprise`) or for one user of the enterprise
//! (`box_subject_type=user`). The module also owns what every grant without a refresh
//! token shares with JWT (`super::jwt`): the [`Subject`] a token acts as, the app's
//! credentials (`AppCredentials`: the exchange at the token endpoint, revocation), `Minter`,
//! which keeps the current token, mints a new one a little before it expires or when Box
//! refuses it, and lets many concurrent callers wait for one mint instead of each starting
//! their own, and the one [`Authenticator`] of both grants, written over `MintingGrant`
//! (what a grant adds: how it mints).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;

use super::super::client::{http_client, Client, Request, RetryPolicy};
use super::super::endpoints::Endpoints;
use super::super::error::{BoxError, BoxResult};
use super::super::secret::Secret;
use super::super::users::check_id;
use super::store::token_lifetime;
use super::{revoke_token, Authenticator, DeveloperToken};

/// Who a JWT or client-credentials token acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// The app's service account in this enterprise (the enterprise id).
    Enterprise(String),
    /// A user of the enterprise: a managed user or one of the app's app users.
    User(String),
}

impl Subject {
    /// `enterprise` or `user`: `box_subject_type` (CCG) and `box_sub_type` (JWT).
    pub fn kind(&self) -> &'static str {
        match self {
            Subject::Enterprise(_) => "enterprise",
            Subject::User(_) => "user",
        }
    }

    /// The enterprise id or user id.
    pub fn id(&self) -> &str {
        match self {
            Subject::Enterprise(id) | Subject::User(id) => id,
        }
    }

    /// Both kinds of id are Box ids (decimal strings): anything else never reaches Box.
    pub(crate) fn check(&self) -> BoxResult<()> {
        check_id(self.id()).map_err(|_| {
            BoxError::Invalid(format!(
                "'{}' is not a valid {} id to authenticate as",
                self.id(),
                self.kind()
            ))
        })
    }
}

/// A freshly issued access token and how long Box said it lives.
pub(crate) struct Minted {
    pub token: Secret,
    pub lifetime: Duration,
}

/// Box's AccessToken answer (the fields a grant without refresh token needs).
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Secret,
    #[serde(default)]
    expires_in: Option<Value>,
}

/// Box documents access tokens as living about an hour; used only if `expires_in` is missing.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);
/// A token is replaced once less than this is left (or half its lifetime, if shorter).
const RENEW_MARGIN: Duration = Duration::from_secs(60);

/// A client for the token endpoint only: every request it sends is unauthenticated, so its
/// authenticator is never asked for anything.
pub(crate) fn token_client(
    endpoints: &Endpoints,
    http: reqwest::Client,
    retry: RetryPolicy,
) -> Client {
    Client::with_http(
        Arc::new(DeveloperToken::new("")),
        endpoints.clone(),
        http,
        retry,
    )
}

/// An app's client id and secret, and the client that sends its token requests (never
/// authenticated itself).
#[derive(Clone)]
pub(crate) struct AppCredentials {
    pub client_id: String,
    pub client_secret: Secret,
    pub token_client: Client,
}

impl AppCredentials {
    /// Posts the grant `grant_type` (with the app's id and secret and `fields`) to
    /// `{oauth}/token` and reads the token out of the answer. The form is never logged (the
    /// request layer logs method, URL and status only).
    pub async fn exchange(
        &self,
        grant_type: &str,
        fields: Vec<(String, String)>,
    ) -> BoxResult<Minted> {
        let mut form = vec![
            ("grant_type".to_string(), grant_type.to_string()),
            ("client_id".to_string(), self.client_id.clone()),
            (
                "client_secret".to_string(),
                self.client_secret.expose().to_string(),
            ),
        ];
        form.extend(fields);
        exchange(&self.token_client, form).await
    }

    /// Revokes `token` at `{oauth}/revoke`.
    async fn revoke(&self, token: &Secret) -> BoxResult<()> {
        revoke_token(
            &self.token_client,
            &self.client_id,
            &self.client_secret,
            token,
        )
        .await
    }
}

async fn exchange(client: &Client, fields: Vec<(String, String)>) -> BoxResult<Minted> {
    let req = Request::new(Method::POST, client.endpoints().token_url())
        .form(fields)
        .unauthenticated();
    let answer: TokenAnswer = client.json(req).await.map_err(|e| match e {
        // serde's messages may quote a value of the answer: keep only where it failed.
        BoxError::Decode(_) => BoxError::Decode(
            "the token endpoint's answer has no usable access_token/expires_in".into(),
        ),
        other => other,
    })?;
    if answer.access_token.is_empty() {
        return Err(BoxError::Decode(
            "the token endpoint answered an empty access_token".into(),
        ));
    }
    let lifetime = answer
        .expires_in
        .as_ref()
        .and_then(token_lifetime)
        .unwrap_or(DEFAULT_LIFETIME);
    Ok(Minted {
        token: answer.access_token,
        lifetime,
    })
}

struct Current {
    token: Secret,
    /// When to stop handing it out (some margin before Box's expiry).
    renew_at: Instant,
}

/// The current token of a grant that has no refresh token, minted again when needed.
///
/// One async mutex guards the token and is held while minting, so concurrent callers that
/// find the token missing, stale or refused queue behind the one mint and then share its
/// result.
#[derive(Default)]
pub(crate) struct Minter {
    current: tokio::sync::Mutex<Option<Current>>,
}

impl Minter {
    /// The current token if it is still good, else the result of `mint`.
    pub async fn token<F, Fut>(&self, mint: F) -> BoxResult<Secret>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = BoxResult<Minted>>,
    {
        let mut current = self.current.lock().await;
        if let Some(c) = current.as_ref() {
            if Instant::now() < c.renew_at {
                return Ok(c.token.clone());
            }
        }
        self.mint_into(&mut current, mint).await
    }

    /// Box refused `rejected`: mint a new token, unless someone already replaced it.
    pub async fn replace<F, Fut>(&self, rejected: &Secret, mint: F) -> BoxResult<Secret>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = BoxResult<Minted>>,
    {
        let mut current = self.current.lock().await;
        if let Some(c) = current.as_ref() {
            if &c.token != rejected && Instant::now() < c.renew_at {
                return Ok(c.token.clone());
            }
        }
        self.mint_into(&mut current, mint).await
    }

    /// Forgets the current token, handing it back (for revocation).
    pub async fn take(&self) -> Option<Secret> {
        self.current.lock().await.take().map(|c| c.token)
    }

    async fn mint_into<F, Fut>(&self, current: &mut Option<Current>, mint: F) -> BoxResult<Secret>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = BoxResult<Minted>>,
    {
        *current = None;
        let asked_at = Instant::now();
        let minted = mint().await?;
        let margin = RENEW_MARGIN.min(minted.lifetime / 2);
        *current = Some(Current {
            token: minted.token.clone(),
            // `lifetime` is clamped; the fallback only guards the arithmetic.
            renew_at: asked_at
                .checked_add(minted.lifetime - margin)
                .unwrap_or(asked_at + DEFAULT_LIFETIME),
        });
        Ok(minted.token)
    }
}

/// A grant that has no refresh token (JWT, client credentials): what it adds to the
/// [`Authenticator`] they share is how it mints a token.
#[async_trait]
pub(crate) trait MintingGrant: Send + Sync {
    fn credentials(&self) -> &AppCredentials;
    /// The token of this grant's subject (shared by its clones).
    fn tokens(&self) -> &Minter;
    async fn mint(&self) -> BoxResult<Minted>;
}

/// The authenticator of JWT and client credentials (each a `MintingGrant`): the current
/// token until it is about to expire, a new one when Box refuses it (one mint however many
/// callers), and revocation with the app's credentials.
#[async_trait]
impl<G: MintingGrant> Authenticator for G {
    async fn access_token(&self) -> BoxResult<Secret> {
        self.tokens().token(|| self.mint()).await
    }

    async fn refresh(&self, rejected: &Secret) -> BoxResult<Secret> {
        self.tokens().replace(rejected, || self.mint()).await
    }

    async fn revoke(&self) -> BoxResult<()> {
        match self.tokens().take().await {
            Some(token) => self.credentials().revoke(&token).await,
            None => Ok(()),
        }
    }
}

/// Client-credentials authentication: `grant_type=client_credentials` with
/// `box_subject_type` and `box_subject_id`. Box issues no refresh token, so a new token is
/// requested a little before the old one expires and whenever Box refuses it. Cheap to
/// clone; clones share the token. An [`Authenticator`] (shared with [`super::JwtAuth`]).
#[derive(Clone)]
pub struct CcgAuth {
    app: Arc<AppCredentials>,
    subject: Subject,
    tokens: Arc<Minter>,
}

impl std::fmt::Debug for CcgAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CcgAuth")
            .field("client_id", &self.app.client_id)
            .field("client_secret", &self.app.client_secret)
            .field("subject", &self.subject)
            .finish()
    }
}

impl CcgAuth {
    /// Tokens for `subject`, from the app `client_id`/`client_secret`, at `endpoints`' token URL.
    pub fn new(
        client_id: &str,
        client_secret: impl Into<Secret>,
        subject: Subject,
        endpoints: &Endpoints,
    ) -> BoxResult<CcgAuth> {
        CcgAuth::with_http(
            client_id,
            client_secret,
            subject,
            endpoints,
            http_client(),
            RetryPolicy::default(),
        )
    }

    /// [`CcgAuth::new`] with a given HTTP client and retry policy for the token requests.
    pub fn with_http(
        client_id: &str,
        client_secret: impl Into<Secret>,
        subject: Subject,
        endpoints: &Endpoints,
        http: reqwest::Client,
        retry: RetryPolicy,
    ) -> BoxResult<CcgAuth> {
        let client_secret = client_secret.into();
        if client_id.is_empty() || client_secret.is_empty() {
            return Err(BoxError::Config(
                "client credentials need a client id and a client secret".into(),
            ));
        }
        subject.check()?;
        Ok(CcgAuth {
            app: Arc::new(AppCredentials {
                client_id: client_id.to_string(),
                client_secret,
                token_client: token_client(endpoints, http, retry),
            }),
            subject,
            tokens: Arc::new(Minter::default()),
        })
    }

    /// The service account of enterprise `enterprise_id`.
    pub fn enterprise(
        client_id: &str,
        client_secret: impl Into<Secret>,
        enterprise_id: &str,
        endpoints: &Endpoints,
    ) -> BoxResult<CcgAuth> {
        CcgAuth::new(
            client_id,
            client_secret,
            Subject::Enterprise(enterprise_id.to_string()),
            endpoints,
        )
    }

    /// The user `user_id` of the app's enterprise.
    pub fn user(
        client_id: &str,
        client_secret: impl Into<Secret>,
        user_id: &str,
        endpoints: &Endpoints,
    ) -> BoxResult<CcgAuth> {
        CcgAuth::new(
            client_id,
            client_secret,
            Subject::User(user_id.to_string()),
            endpoints,
        )
    }

    /// The same app acting as `user_id`, with its own token.
    pub fn for_user(&self, user_id: &str) -> BoxResult<CcgAuth> {
        let subject = Subject::User(user_id.to_string());
        subject.check()?;
        Ok(CcgAuth {
            app: self.app.clone(),
            subject,
            tokens: Arc::new(Minter::default()),
        })
    }

    pub fn subject(&self) -> &Subject {
        &self.subject
    }

    /// A [`Client`] authenticated by this, at the endpoints and with the HTTP client the
    /// token requests use.
    pub fn client(&self) -> Client {
        let tc = &self.app.token_client;
        Client::with_http(
            Arc::new(self.clone()),
            tc.endpoints().clone(),
            tc.http().clone(),
            RetryPolicy::default(),
        )
    }
}

#[async_trait]
impl MintingGrant for CcgAuth {
    fn credentials(&self) -> &AppCredentials {
        &self.app
    }

    fn tokens(&self) -> &Minter {
        &self.tokens
    }

    async fn mint(&self) -> BoxResult<Minted> {
        self.app
            .exchange(
                "client_credentials",
                vec![
                    ("box_subject_type".into(), self.subject.kind().into()),
                    ("box_subject_id".into(), self.subject.id().into()),
                ],
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn one_mint_for_many_callers_and_none_for_a_replaced_token() {
        let minter = Arc::new(Minter::default());
        let mints = Arc::new(AtomicUsize::new(0));
        let mint = |mints: Arc<AtomicUsize>| async move {
            let n = mints.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(Minted {
                token: Secret::new(format!("t{n}")),
                lifetime: Duration::from_secs(3600),
            })
        };
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let (minter, mints) = (minter.clone(), mints.clone());
                tokio::spawn(async move { minter.token(|| mint(mints)).await })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap().expose(), "t0");
        }
        assert_eq!(mints.load(Ordering::SeqCst), 1);

        let rejected = Secret::new("t0");
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let (minter, mints, rejected) = (minter.clone(), mints.clone(), rejected.clone());
                tokio::spawn(async move { minter.replace(&rejected, || mint(mints)).await })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap().expose(), "t1");
        }
        assert_eq!(mints.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn short_lived_tokens_are_renewed_before_they_expire() {
        let minter = Minter::default();
        let mints = AtomicUsize::new(0);
        let mint = || async {
            let n = mints.fetch_add(1, Ordering::SeqCst);
            Ok(Minted {
                token: Secret::new(format!("t{n}")),
                lifetime: Duration::from_millis(200),
            })
        };
        assert_eq!(minter.token(mint).await.unwrap().expose(), "t0");
        assert_eq!(minter.token(mint).await.unwrap().expose(), "t0");
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert_eq!(minter.token(mint).await.unwrap().expose(), "t1");
    }

    #[test]
    fn subjects_are_checked_and_never_print_secrets() {
        assert!(Subject::User("12".into()).check().is_ok());
        assert!(matches!(
            Subject::Enterprise("x y".into()).check(),
            Err(BoxError::Invalid(_))
        ));
        let auth = CcgAuth::enterprise(
            "cid",
            "very-secret",
            "42",
            &Endpoints::from_base("http://127.0.0.1:9").unwrap(),
        )
        .unwrap();
        let shown = format!("{auth:?}");
        assert!(
            !shown.contains("very-secret") && shown.contains("cid"),
            "{shown}"
        );
        assert!(matches!(
            CcgAuth::enterprise(
                "",
                "s",
                "1",
                &Endpoints::from_base("http://127.0.0.1:9").unwrap()
            ),
            Err(BoxError::Config(_))
        ));
    }
}
