//! JWT and client-credentials authentication against the emulator: the service account,
//! app users and managed users as subjects, every signature algorithm, tokens made anew
//! before they expire and after a 401 (one request for many concurrent callers), typed
//! errors for bad configs and subjects, and recovery from a skewed local clock.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use box_client::auth::jwt::{Clock, JwtAlgorithm};
use box_client::auth::{CcgAuth, JwtAuth, JwtConfig, Subject};
use box_client::{Authenticator, BoxError, Client, Endpoints, Secret};
use box_emulator::testing::TestEmu;
use box_emulator::EmulatorConfig;
use serde_json::Value;

struct Setup {
    t: TestEmu,
    _dir: tempfile::TempDir,
    config_path: PathBuf,
    log_path: PathBuf,
}

/// One app config (RSA key generation is slow) given to every emulator but the one that
/// makes its own.
fn shared_app_config() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| {
        let config = box_emulator::jwt_config::JwtConfig::generate("730000001").unwrap();
        serde_json::to_string(&config).unwrap()
    })
}

impl Setup {
    /// An emulator with an app config written for it, and a request log.
    async fn start(token_ttl_secs: i64) -> Setup {
        Setup::start_with(token_ttl_secs, false).await
    }

    /// With `fresh_app`, the emulator generates the app config file itself.
    async fn start_with(token_ttl_secs: i64, fresh_app: bool) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("config.json");
        let log_path = dir.path().join("requests.jsonl");
        if !fresh_app {
            std::fs::write(&config_path, shared_app_config()).unwrap();
        }
        let t = TestEmu::start_with(EmulatorConfig {
            jwt_config: Some(config_path.clone()),
            request_log: Some(log_path.clone()),
            token_ttl_secs,
            ..EmulatorConfig::default()
        })
        .await;
        Setup {
            t,
            _dir: dir,
            config_path,
            log_path,
        }
    }

    fn endpoints(&self) -> Endpoints {
        Endpoints::from_base(&self.t.base).unwrap()
    }

    fn config(&self) -> JwtConfig {
        JwtConfig::from_file(&self.config_path).unwrap()
    }

    fn jwt(&self) -> JwtAuth {
        JwtAuth::new(&self.config(), &self.endpoints()).unwrap()
    }

    /// The request log's lines for the token endpoint: their statuses, in order.
    fn token_requests(&self) -> Vec<u64> {
        requests(&self.log_path)
            .into_iter()
            .filter(|r| r["path"] == "/oauth2/token")
            .map(|r| r["status"].as_u64().unwrap())
            .collect()
    }

    fn statuses(&self) -> Vec<u64> {
        requests(&self.log_path)
            .into_iter()
            .map(|r| r["status"].as_u64().unwrap())
            .collect()
    }

    /// Revokes `token` behind the authenticator's back, as an expiry at Box would.
    async fn revoke(&self, client_id: &str, client_secret: &str, token: &Secret) {
        let resp = self
            .t
            .http
            .post(format!("{}/oauth2/revoke", self.t.base))
            .form(&[
                ("client_id", client_id),
                ("client_secret", client_secret),
                ("token", token.expose()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
}

fn requests(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn client_of(auth: impl Authenticator + 'static, endpoints: Endpoints) -> Client {
    Client::new(Arc::new(auth), endpoints)
}

fn oauth_error(err: &BoxError) -> (&str, &str) {
    match err {
        BoxError::OAuth {
            error, description, ..
        } => (error, description),
        other => panic!("expected an OAuth error, got {other:?}"),
    }
}

#[tokio::test]
async fn service_account_app_users_and_managed_users() {
    let s = Setup::start_with(3600, true).await;
    let auth = s.jwt();
    assert!(matches!(auth.subject(), Subject::Enterprise(_)));
    let service = auth.client();
    let me = service.me().await.unwrap();
    assert!(me.login.starts_with("AutomationUser_"), "{}", me.login);

    // An app user, made by the service account, then authenticated as itself.
    let (user, as_user) = auth
        .create_app_user("Ada Lovelace", Some("ada-1"))
        .await
        .unwrap();
    let me_user = as_user.client().me().await.unwrap();
    assert_eq!(me_user.id, user.id);
    assert_ne!(me_user.id, me.id);

    // Any user of the enterprise, by id.
    let admin = s.t.emulator().info.user_id.clone();
    let as_admin = auth.for_user(&admin).unwrap();
    assert_eq!(as_admin.client().me().await.unwrap().id, admin);
    // And back to the service account.
    let back = as_admin.enterprise().unwrap().client().me().await.unwrap();
    assert_eq!(back.id, me.id);

    // Through a plain Client too.
    let c = client_of(auth.for_user(&user.id).unwrap(), s.endpoints());
    assert_eq!(c.me().await.unwrap().id, user.id);
}

#[tokio::test]
async fn every_signature_algorithm_is_accepted() {
    let s = Setup::start(3600).await;
    for alg in [
        JwtAlgorithm::RS256,
        JwtAlgorithm::RS384,
        JwtAlgorithm::RS512,
    ] {
        let auth = s.jwt().with_algorithm(alg);
        let me = auth.client().me().await.unwrap();
        assert!(me.login.starts_with("AutomationUser_"), "{alg:?}");
        let (user, as_user) = auth
            .create_app_user(&format!("{alg:?} user"), None)
            .await
            .unwrap();
        assert_eq!(as_user.client().me().await.unwrap().id, user.id, "{alg:?}");
    }
    assert_eq!(s.token_requests(), vec![200; 6]);
}

#[tokio::test]
async fn short_lived_tokens_are_replaced_before_they_expire() {
    let s = Setup::start(2).await;
    let c = s.jwt().client();
    c.me().await.unwrap();
    c.me().await.unwrap();
    assert_eq!(s.token_requests().len(), 1, "one token serves while fresh");
    tokio::time::sleep(Duration::from_millis(1300)).await;
    c.me().await.unwrap();
    assert_eq!(s.token_requests().len(), 2, "a new assertion before expiry");
    tokio::time::sleep(Duration::from_millis(2300)).await;
    c.me().await.unwrap();
    assert_eq!(s.token_requests(), vec![200; 3]);
    assert!(
        !s.statuses().contains(&401),
        "no request went out with an expired token: {:?}",
        s.statuses()
    );
}

#[tokio::test]
async fn a_refused_token_is_replaced_once_for_many_callers() {
    let s = Setup::start(3600).await;
    let config = s.config();
    let auth = s.jwt();
    let c = auth.client();

    let calls: Vec<_> = (0..16)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.me().await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(s.token_requests().len(), 1, "one assertion for 16 callers");

    let settings = &config.box_app_settings;
    let token = auth.access_token().await.unwrap();
    s.revoke(&settings.client_id, settings.client_secret.expose(), &token)
        .await;
    let calls: Vec<_> = (0..16)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.me().await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(
        s.token_requests(),
        vec![200, 200],
        "one new assertion after the 401s"
    );
    assert!(s.statuses().contains(&401));
    assert_ne!(auth.access_token().await.unwrap(), token);
}

#[tokio::test]
async fn bad_configs_and_subjects_are_typed_errors() {
    let s = Setup::start(3600).await;
    let endpoints = s.endpoints();
    let good = s.config();

    let mut wrong = good.clone();
    wrong.box_app_settings.app_auth.passphrase = Secret::new("not the passphrase");
    let err = JwtAuth::new(&wrong, &endpoints).unwrap_err();
    assert!(matches!(err, BoxError::Config(_)), "{err:?}");

    let text = std::fs::read_to_string(&s.config_path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in [
        ("truncated.json", text[..text.len() / 2].to_string()),
        ("empty.json", String::new()),
        ("garbage.json", "\u{0}\u{1}binary".to_string()),
        ("damaged-key.json", {
            // Flip some of the encrypted bytes in the middle of the PEM.
            let mut v: Value = serde_json::from_str(&text).unwrap();
            let pem = v["boxAppSettings"]["appAuth"]["privateKey"]
                .as_str()
                .unwrap()
                .to_string();
            let mid = pem.len() / 2;
            let flipped: String = pem[mid..mid + 8]
                .chars()
                .map(|c| if c == 'A' { 'B' } else { 'A' })
                .collect();
            let damaged = format!("{}{}{}", &pem[..mid], flipped, &pem[mid + 8..]);
            v["boxAppSettings"]["appAuth"]["privateKey"] = Value::String(damaged);
            v.to_string()
        }),
        ("no-key.json", {
            let mut v: Value = serde_json::from_str(&text).unwrap();
            v["boxAppSettings"]["appAuth"]
                .as_object_mut()
                .unwrap()
                .remove("privateKey");
            v.to_string()
        }),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        let err = JwtAuth::from_file(&path, &endpoints).unwrap_err();
        assert!(matches!(err, BoxError::Config(_)), "{name}: {err:?}");
    }
    let err = JwtAuth::from_file(&dir.path().join("missing.json"), &endpoints).unwrap_err();
    assert!(matches!(err, BoxError::Config(_)), "{err:?}");

    // A key id Box does not know.
    let mut unknown = good.clone();
    unknown.box_app_settings.app_auth.public_key_id = "nokey123".into();
    let err = JwtAuth::new(&unknown, &endpoints)
        .unwrap()
        .client()
        .me()
        .await
        .unwrap_err();
    let (error, description) = oauth_error(&err);
    assert_eq!(error, "invalid_grant");
    assert!(description.contains("kid"), "{description}");

    // Subjects Box does not know, or that are not ids at all.
    let auth = JwtAuth::new(&good, &endpoints).unwrap();
    let err = auth
        .for_user("99999999")
        .unwrap()
        .client()
        .me()
        .await
        .unwrap_err();
    assert_eq!(oauth_error(&err).0, "invalid_grant");
    let mut other_enterprise = good.clone();
    other_enterprise.enterprise_id = Some("1".into());
    let err = JwtAuth::new(&other_enterprise, &endpoints)
        .unwrap()
        .client()
        .me()
        .await
        .unwrap_err();
    assert_eq!(oauth_error(&err).0, "invalid_grant");
    assert!(matches!(auth.for_user("me"), Err(BoxError::Invalid(_))));
    let mut no_enterprise = good.clone();
    no_enterprise.enterprise_id = None;
    assert!(matches!(
        JwtAuth::new(&no_enterprise, &endpoints),
        Err(BoxError::Config(_))
    ));

    // A wrong client secret.
    let mut bad_secret = good.clone();
    bad_secret.box_app_settings.client_secret = Secret::new("wrong");
    let err = JwtAuth::new(&bad_secret, &endpoints)
        .unwrap()
        .client()
        .me()
        .await
        .unwrap_err();
    assert_eq!(oauth_error(&err).0, "invalid_client");

    // The emulator is still fine, and the good config still works.
    assert!(auth.client().me().await.is_ok());
}

fn clock_off_by(secs: i64) -> Clock {
    Arc::new(move || {
        let now = SystemTime::now();
        if secs >= 0 {
            now + Duration::from_secs(secs as u64)
        } else {
            now - Duration::from_secs(secs.unsigned_abs())
        }
    })
}

#[tokio::test]
async fn a_skewed_clock_is_corrected_by_the_servers_date() {
    for skew in [600, -600] {
        let s = Setup::start(3600).await;
        let auth = s.jwt().with_clock(clock_off_by(skew));
        let me = auth.client().me().await.unwrap();
        assert!(me.login.starts_with("AutomationUser_"));
        assert_eq!(
            s.token_requests(),
            vec![400, 200],
            "clock {skew}s off: refused once, then accepted in server time"
        );
        // What was learnt about the clock serves every later assertion of the app.
        let admin = s.t.emulator().info.user_id.clone();
        auth.for_user(&admin).unwrap().client().me().await.unwrap();
        assert_eq!(s.token_requests(), vec![400, 200, 200]);
    }
}

#[tokio::test]
async fn a_slightly_off_clock_needs_no_correction() {
    let s = Setup::start(3600).await;
    // Off by only a little: Box's 60 s window absorbs it.
    let auth = s.jwt().with_clock(clock_off_by(10));
    auth.client().me().await.unwrap();
    assert_eq!(s.token_requests(), vec![200]);
}

#[tokio::test]
async fn client_credentials_for_the_enterprise_and_for_users() {
    let s = Setup::start(3600).await;
    let info = s.t.emulator().info.clone();
    let endpoints = s.endpoints();

    let service = CcgAuth::enterprise(
        &info.client_id,
        info.client_secret.as_str(),
        &info.enterprise_id,
        &endpoints,
    )
    .unwrap();
    let me = service.client().me().await.unwrap();
    assert!(me.login.starts_with("AutomationUser_"), "{}", me.login);

    let admin = CcgAuth::user(
        &info.client_id,
        info.client_secret.as_str(),
        &info.user_id,
        &endpoints,
    )
    .unwrap();
    assert_eq!(admin.client().me().await.unwrap().id, info.user_id);

    let user = service
        .client()
        .create_app_user("Grace Hopper", None)
        .await
        .unwrap();
    let as_user = service.for_user(&user.id).unwrap();
    assert_eq!(as_user.client().me().await.unwrap().id, user.id);

    // Bad subjects and credentials.
    let err = service
        .for_user("99999999")
        .unwrap()
        .client()
        .me()
        .await
        .unwrap_err();
    assert_eq!(oauth_error(&err).0, "invalid_grant");
    let other = CcgAuth::enterprise(
        &info.client_id,
        info.client_secret.as_str(),
        "1",
        &endpoints,
    )
    .unwrap();
    let err = other.client().me().await.unwrap_err();
    assert_eq!(oauth_error(&err).0, "invalid_grant");
    assert!(matches!(service.for_user("x"), Err(BoxError::Invalid(_))));
    assert!(matches!(
        CcgAuth::user(&info.client_id, "s", "", &endpoints),
        Err(BoxError::Invalid(_))
    ));
    let wrong =
        CcgAuth::enterprise(&info.client_id, "wrong", &info.enterprise_id, &endpoints).unwrap();
    let err = wrong.client().me().await.unwrap_err();
    assert_eq!(oauth_error(&err).0, "invalid_client");
}

#[tokio::test]
async fn client_credentials_are_requested_again_on_expiry_and_401_once() {
    let s = Setup::start(2).await;
    let info = s.t.emulator().info.clone();
    let auth = CcgAuth::enterprise(
        &info.client_id,
        info.client_secret.as_str(),
        &info.enterprise_id,
        &s.endpoints(),
    )
    .unwrap();
    let c = auth.client();
    let calls: Vec<_> = (0..16)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.me().await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(s.token_requests().len(), 1, "one request for 16 callers");

    tokio::time::sleep(Duration::from_millis(1300)).await;
    c.me().await.unwrap();
    assert_eq!(s.token_requests().len(), 2, "renewed before expiry");
    assert!(!s.statuses().contains(&401));

    let token = auth.access_token().await.unwrap();
    s.revoke(&info.client_id, &info.client_secret, &token).await;
    let calls: Vec<_> = (0..16)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.me().await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(
        s.token_requests(),
        vec![200; 3],
        "one request after the 401s"
    );
    assert!(s.statuses().contains(&401));

    // Revoking ends the token at the server.
    let token = auth.access_token().await.unwrap();
    auth.revoke().await.unwrap();
    let (status, _) = TestEmu::send(
        s.t.http
            .get(s.t.api("/users/me"))
            .bearer_auth(token.expose()),
    )
    .await;
    assert_eq!(status, 401);
}
