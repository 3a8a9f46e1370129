//! Secrets never reach the log: everything logged at TRACE level during a full run (an
//! OAuth code flow by hand, a refresh, JWT and client credentials, API calls, an upload, a
//! refused token and a refused assertion) is captured and searched for every secret the
//! run handled, and the `Debug` output of the authenticators and configs likewise. The log
//! must still say what was requested (method, path, status).

use std::sync::{Arc, Mutex, OnceLock};

use box_client::auth::jwt::JwtAlgorithm;
use box_client::auth::{CcgAuth, JwtAuth, JwtConfig};
use box_client::client::{Body, Request};
use box_client::{Authenticator, BoxError, Client, DeveloperToken, Endpoints, Secret};
use box_emulator::testing::TestEmu;
use box_emulator::EmulatorConfig;
use reqwest::Method;
use serde_json::{json, Value};

/// Keeps every log record of the process, whatever its level or target.
struct Capture {
    text: Mutex<String>,
}

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }

    fn log(&self, record: &log::Record) {
        let line = format!("{} {} {}\n", record.level(), record.target(), record.args());
        self.text
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_str(&line);
    }

    fn flush(&self) {}
}

fn capture() -> &'static Capture {
    static CAPTURE: OnceLock<&'static Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture: &'static Capture = Box::leak(Box::new(Capture {
            text: Mutex::new(String::new()),
        }));
        log::set_logger(capture).expect("no other logger yet");
        log::set_max_level(log::LevelFilter::Trace);
        capture
    })
}

fn captured() -> String {
    capture()
        .text
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
}

/// Every secret of the run, by what it is.
#[derive(Default)]
struct Secrets(Vec<(String, String)>);

impl Secrets {
    fn add(&mut self, what: &str, value: &str) {
        assert!(value.len() >= 8, "{what} is too short to search for");
        self.0.push((what.to_string(), value.to_string()));
    }

    fn add_secret(&mut self, what: &str, value: &Secret) {
        self.add(what, value.expose());
    }

    fn assert_absent(&self, text: &str, where_: &str) {
        for (what, value) in &self.0 {
            assert!(
                !text.contains(value.as_str()),
                "the {what} appears in {where_}"
            );
        }
        // Signed JWTs start with a base64url `{"`: no assertion may appear either.
        assert!(
            !text.contains("eyJ"),
            "something like a JWT appears in {where_}"
        );
    }
}

fn str_field(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {v}"))
        .to_string()
}

/// The token endpoint through the client's request layer (so its log lines are checked).
async fn token_request(c: &Client, fields: &[(&str, &str)]) -> Value {
    let req = Request::new(Method::POST, c.endpoints().token_url())
        .form(
            fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
        .unauthenticated();
    c.json(req).await.expect("token endpoint")
}

#[tokio::test]
async fn no_secret_is_ever_logged() {
    capture();
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("config.json");
    let t = TestEmu::start_with(EmulatorConfig {
        jwt_config: Some(config_path.clone()),
        ..EmulatorConfig::default()
    })
    .await;
    let info = t.emulator().info.clone();
    let endpoints = Endpoints::from_base(&t.base).unwrap();
    let config = JwtConfig::from_file(&config_path).unwrap();
    let mut secrets = Secrets::default();
    secrets.add("developer token", &t.token);
    secrets.add("client secret", &info.client_secret);
    secrets.add_secret(
        "JWT app's client secret",
        &config.box_app_settings.client_secret,
    );
    secrets.add_secret("passphrase", &config.box_app_settings.app_auth.passphrase);
    let pem = config
        .box_app_settings
        .app_auth
        .private_key
        .expose()
        .to_string();
    for (i, line) in pem.lines().filter(|l| !l.starts_with("-----")).enumerate() {
        if line.len() >= 16 {
            secrets.add(&format!("private key line {i}"), line);
        }
    }

    // OAuth 2.0: the browser's part by hand, then the code exchange and a refresh.
    let redirect = "http://127.0.0.1:9/callback";
    let resp = t
        .http
        .get(format!("{}/api/oauth2/authorize", t.base))
        .query(&[
            ("response_type", "code"),
            ("client_id", info.client_id.as_str()),
            ("redirect_uri", redirect),
            ("state", "state-1234"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    let location = url::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code");
    secrets.add("authorization code", &code);
    let anonymous = Client::new(Arc::new(DeveloperToken::new("")), endpoints.clone());
    let first = token_request(
        &anonymous,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", &info.client_id),
            ("client_secret", &info.client_secret),
            ("redirect_uri", redirect),
        ],
    )
    .await;
    secrets.add("OAuth access token", &str_field(&first, "access_token"));
    secrets.add("OAuth refresh token", &str_field(&first, "refresh_token"));
    let refreshed = token_request(
        &anonymous,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &str_field(&first, "refresh_token")),
            ("client_id", &info.client_id),
            ("client_secret", &info.client_secret),
        ],
    )
    .await;
    let access = str_field(&refreshed, "access_token");
    secrets.add("refreshed access token", &access);
    secrets.add(
        "second refresh token",
        &str_field(&refreshed, "refresh_token"),
    );
    // The code again: refused, and the refusal is logged without it.
    let reused = Request::new(Method::POST, endpoints.token_url())
        .form(vec![
            ("grant_type".into(), "authorization_code".into()),
            ("code".into(), code.clone()),
            ("client_id".into(), info.client_id.clone()),
            ("client_secret".into(), info.client_secret.clone()),
        ])
        .unauthenticated();
    let err = anonymous.json::<Value>(reused).await.unwrap_err();
    assert_eq!(err.code(), Some("invalid_grant"));
    let mut shown = format!("{err} {err:?}");

    // API calls with the OAuth token: reads, writes, an upload, a download URL, an error.
    let user = Client::new(
        Arc::new(DeveloperToken::new(access.clone())),
        endpoints.clone(),
    );
    let me = user.me().await.unwrap();
    assert_eq!(me.id, info.user_id);
    let folder: Value = user
        .json(
            user.api(Method::POST, "/folders")
                .json(json!({"name": "Logged", "parent": {"id": "0"}})),
        )
        .await
        .unwrap();
    let folder_id = str_field(&folder, "id");
    let attributes = json!({"name": "notes.txt", "parent": {"id": folder_id}}).to_string();
    let make_form = move || {
        reqwest::multipart::Form::new()
            .text("attributes", attributes.clone())
            .part(
                "file",
                reqwest::multipart::Part::bytes(b"private words".to_vec()).file_name("notes.txt"),
            )
    };
    let uploaded: Value = user
        .json(
            user.upload(Method::POST, "/files/content")
                .body(Body::Multipart(Arc::new(make_form))),
        )
        .await
        .unwrap();
    let file_id = str_field(&uploaded["entries"][0], "id");
    let listing: Value = user
        .json(
            user.api(Method::GET, &format!("/folders/{folder_id}/items"))
                .query("fields", "name,size"),
        )
        .await
        .unwrap();
    assert_eq!(listing["entries"][0]["name"], "notes.txt");
    let download = user
        .send(user.api(Method::GET, &format!("/files/{file_id}/content")))
        .await
        .unwrap();
    assert_eq!(download.status(), 302, "Box redirects downloads");
    let location = download.headers()["location"].to_str().unwrap();
    let target = url::Url::parse(location).unwrap();
    // A pre-signed download URL is a credential for the file.
    for segment in target.path_segments().unwrap() {
        if segment.len() >= 24 {
            secrets.add("download URL's credential", segment);
        }
    }
    let content = user
        .send(Request::new(Method::GET, target).unauthenticated())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&content[..], b"private words");
    // The client's own downloads send such URLs as pre-signed requests: named by host only.
    let resolved = user.download_url(&file_id, None).await.unwrap();
    for segment in resolved.expose().path_segments().unwrap() {
        if segment.len() >= 24 {
            secrets.add("download URL's credential", segment);
        }
    }
    let fetched = user.download_from(&resolved, None).await.unwrap();
    assert_eq!(&fetched.bytes().await.unwrap()[..], b"private words");
    // A URL carrying a token in its query is logged redacted.
    let with_token = Request::new(Method::GET, endpoints.api("/users/me"))
        .query("access_token", &access)
        .unauthenticated();
    // That query parameter is not in Box's description: expected to break it.
    t.expect_bad(true);
    let _ = user.empty(with_token).await;
    t.expect_bad(false);
    let err = user.user("99999999").await.unwrap_err();
    assert!(err.is_not_found());
    shown.push_str(&format!("{err} {err:?}"));

    // A revoked token: 401, the refresh refused, the error shown.
    let revoke = Request::new(Method::POST, endpoints.revoke_url())
        .form(vec![
            ("client_id".into(), info.client_id.clone()),
            ("client_secret".into(), info.client_secret.clone()),
            ("token".into(), access.clone()),
        ])
        .unauthenticated();
    anonymous.empty(revoke).await.unwrap();
    let err = user.me().await.unwrap_err();
    assert!(matches!(err, BoxError::Auth(_)), "{err:?}");
    shown.push_str(&format!("{err} {err:?}"));

    // JWT: the service account, an app user, RS512, a refused assertion, a skewed clock.
    let jwt = JwtAuth::new(&config, &endpoints).unwrap();
    let service = jwt.client();
    service.me().await.unwrap();
    secrets.add_secret("JWT service token", &jwt.access_token().await.unwrap());
    let (app_user, as_app_user) = jwt.create_app_user("Logged User", None).await.unwrap();
    let as_app_user = as_app_user.with_algorithm(JwtAlgorithm::RS512);
    assert_eq!(as_app_user.client().me().await.unwrap().id, app_user.id);
    secrets.add_secret("JWT user token", &as_app_user.access_token().await.unwrap());
    let skewed = JwtAuth::new(&config, &endpoints)
        .unwrap()
        .with_clock(Arc::new(|| {
            std::time::SystemTime::now() + std::time::Duration::from_secs(900)
        }));
    skewed.client().me().await.unwrap();
    secrets.add_secret(
        "skew-corrected JWT token",
        &skewed.access_token().await.unwrap(),
    );
    let mut unknown_kid = config.clone();
    unknown_kid.box_app_settings.app_auth.public_key_id = "unknown1".into();
    let err = JwtAuth::new(&unknown_kid, &endpoints)
        .unwrap()
        .client()
        .me()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("invalid_grant"));
    shown.push_str(&format!("{err} {err:?}"));
    let mut wrong_passphrase = config.clone();
    wrong_passphrase.box_app_settings.app_auth.passphrase = Secret::new("wrong passphrase");
    let err = JwtAuth::new(&wrong_passphrase, &endpoints).unwrap_err();
    shown.push_str(&format!("{err} {err:?}"));

    // Client credentials, for the enterprise and for a user; revoked at the end.
    let ccg = CcgAuth::enterprise(
        &info.client_id,
        info.client_secret.as_str(),
        &info.enterprise_id,
        &endpoints,
    )
    .unwrap();
    ccg.client().me().await.unwrap();
    secrets.add_secret("CCG token", &ccg.access_token().await.unwrap());
    let ccg_user = ccg.for_user(&info.user_id).unwrap();
    ccg_user.client().me().await.unwrap();
    secrets.add_secret("CCG user token", &ccg_user.access_token().await.unwrap());
    ccg_user.revoke().await.unwrap();
    let err = CcgAuth::enterprise(
        &info.client_id,
        "wrong-secret",
        &info.enterprise_id,
        &endpoints,
    )
    .unwrap()
    .client()
    .me()
    .await
    .unwrap_err();
    assert_eq!(err.code(), Some("invalid_client"));
    shown.push_str(&format!("{err} {err:?}"));

    // What the types show of themselves.
    shown.push_str(&format!(
        "{jwt:?} {as_app_user:?} {skewed:?} {ccg:?} {ccg_user:?} {config:?} {:?} {:?} {user:?} {service:?}",
        config.box_app_settings, config.box_app_settings.app_auth
    ));
    secrets.assert_absent(&shown, "Debug or Display output");

    let log = captured();
    secrets.assert_absent(&log, "the log");
    // It still says what happened.
    let port = url::Url::parse(&t.base).unwrap().port().unwrap();
    for expected in [
        format!("POST http://127.0.0.1:{port}/oauth2/token -> 200"),
        format!("POST http://127.0.0.1:{port}/oauth2/token -> 400"),
        format!("GET http://127.0.0.1:{port}/2.0/users/me -> 200"),
        format!("GET http://127.0.0.1:{port}/2.0/users/me -> 401"),
        format!("POST http://127.0.0.1:{port}/2.0/folders -> 201"),
        format!("POST http://127.0.0.1:{port}/api/2.0/files/content -> 201"),
        format!("GET http://127.0.0.1:{port}/2.0/users/99999999 -> 404"),
        format!("POST http://127.0.0.1:{port}/oauth2/revoke -> 200"),
        format!("GET http://127.0.0.1:{port}/dl/[REDACTED] -> 200"),
        "GET download URL on http://127.0.0.1 -> 200".to_string(),
        "access_token=%5BREDACTED%5D".to_string(),
    ] {
        assert!(
            log.contains(&expected),
            "the log lacks '{expected}':\n{log}"
        );
    }
    assert!(
        log.lines().any(|l| l.starts_with("TRACE")),
        "TRACE records are captured too"
    );
}
