//! The emulator's OAuth 2.0 server over loopback HTTP: authorize + code exchange, single-use
//! rotating refresh tokens, revoke, expiry, JWT assertions (signature, aud, exp, jti),
//! client credentials, and As-User.

use std::collections::HashMap;

use box_emulator::testing::TestEmu;
use box_emulator::EmulatorConfig;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use serde_json::{json, Value};

async fn token_call(t: &TestEmu, form: &[(&str, &str)]) -> (StatusCode, Value) {
    TestEmu::send(t.http.post(format!("{}/oauth2/token", t.base)).form(form)).await
}

/// A token request that breaks Box's description on purpose (the check requires it to).
async fn bad_token_call(t: &TestEmu, form: &[(&str, &str)]) -> (StatusCode, Value) {
    TestEmu::send(
        t.http
            .post(format!("{}/oauth2/token", t.base))
            .header(box_emulator::conformance::EXPECT_INVALID, "1")
            .form(form),
    )
    .await
}

fn creds(t: &TestEmu) -> (String, String) {
    let info = &t.emulator().info;
    (info.client_id.clone(), info.client_secret.clone())
}

async fn me(t: &TestEmu, token: &str) -> (StatusCode, Value) {
    TestEmu::send(t.http.get(t.api("/users/me")).bearer_auth(token)).await
}

/// Runs the browser part: authorize, follow nothing, read code and state off the redirect.
async fn authorize(t: &TestEmu, state: &str) -> (String, String) {
    let (client_id, _) = creds(t);
    let resp = t
        .http
        .get(format!("{}/api/oauth2/authorize", t.base))
        .query(&[
            ("response_type", "code"),
            ("client_id", client_id.as_str()),
            ("redirect_uri", "http://127.0.0.1:9/callback"),
            ("state", state),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let url = url::Url::parse(&location).unwrap();
    assert!(
        location.starts_with("http://127.0.0.1:9/callback?"),
        "{location}"
    );
    let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
    (q["code"].clone(), q["state"].clone())
}

#[tokio::test]
async fn authorization_code_flow_with_rotating_refresh() {
    let t = TestEmu::start().await;
    let (client_id, secret) = creds(&t);
    let (code, state) = authorize(&t, "csrf 123&x=y").await;
    assert_eq!(state, "csrf 123&x=y", "state comes back unchanged");

    let (s, tok) = token_call(
        &t,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &client_id),
            ("client_secret", &secret),
            ("code", &code),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{tok}");
    assert_eq!(tok["token_type"], "bearer");
    assert_eq!(tok["expires_in"], 3600);
    let access = tok["access_token"].as_str().unwrap().to_string();
    let refresh = tok["refresh_token"].as_str().unwrap().to_string();
    let (s, user) = me(&t, &access).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(user["login"], "admin@example.com");

    // A code works once.
    let (s, e) = token_call(
        &t,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &client_id),
            ("client_secret", &secret),
            ("code", &code),
        ],
    )
    .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );

    // Refresh: a new pair; the old refresh token and the old access token are dead.
    let (s, tok2) = token_call(
        &t,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &client_id),
            ("client_secret", &secret),
            ("refresh_token", &refresh),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{tok2}");
    assert_ne!(tok2["refresh_token"].as_str().unwrap(), refresh);
    let (s, e) = token_call(
        &t,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &client_id),
            ("client_secret", &secret),
            ("refresh_token", &refresh),
        ],
    )
    .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    assert_eq!(me(&t, &access).await.0, StatusCode::UNAUTHORIZED);
    let access2 = tok2["access_token"].as_str().unwrap().to_string();
    assert_eq!(me(&t, &access2).await.0, StatusCode::OK);

    // Revoke: a JSON body (the Python SDK parses it), and the pair is gone.
    let resp = t
        .http
        .post(format!("{}/oauth2/revoke", t.base))
        .form(&[
            ("client_id", client_id.as_str()),
            ("client_secret", secret.as_str()),
            ("token", access2.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let _: Value = resp.json().await.unwrap();
    assert_eq!(me(&t, &access2).await.0, StatusCode::UNAUTHORIZED);
    let (s, _) = token_call(
        &t,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &client_id),
            ("client_secret", &secret),
            ("refresh_token", tok2["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn token_endpoint_refuses_bad_input() {
    let t = TestEmu::start().await;
    let (client_id, secret) = creds(&t);
    let (s, e) = bad_token_call(&t, &[("client_id", &client_id)]).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    let (s, e) = token_call(
        &t,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &client_id),
            ("client_secret", "wrong"),
            ("code", "x"),
        ],
    )
    .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_client"))
    );
    let (s, e) = bad_token_call(
        &t,
        &[
            ("grant_type", "password"),
            ("client_id", &client_id),
            ("client_secret", &secret),
        ],
    )
    .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unsupported_grant_type"))
    );
    let (s, e) = token_call(
        &t,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &client_id),
            ("client_secret", &secret),
            ("code", "forged"),
        ],
    )
    .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    // The authorize page refuses unknown clients and other response types.
    let resp = t
        .http
        .get(format!(
            "{}/api/oauth2/authorize?response_type=code&client_id=nope",
            t.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = t
        .http
        .get(format!("{}/api/oauth2/authorize?response_type=token&client_id={client_id}&redirect_uri=http://127.0.0.1:9/cb&state=s", t.base))
        .header(box_emulator::conformance::EXPECT_INVALID, "1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert!(resp.headers()["location"]
        .to_str()
        .unwrap()
        .contains("error=unsupported_response_type"));
}

#[tokio::test]
async fn access_tokens_expire() {
    let t = TestEmu::start_with(EmulatorConfig {
        token_ttl_secs: 1,
        ..EmulatorConfig::default()
    })
    .await;
    let (client_id, secret) = creds(&t);
    let (s, tok) = token_call(
        &t,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &client_id),
            ("client_secret", &secret),
            ("box_subject_type", "enterprise"),
            ("box_subject_id", &t.emulator().info.enterprise_id),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{tok}");
    assert_eq!(tok["expires_in"], 1);
    assert!(
        tok.get("refresh_token").is_none(),
        "client credentials carry no refresh token"
    );
    let access = tok["access_token"].as_str().unwrap();
    assert_eq!(me(&t, access).await.0, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    assert_eq!(me(&t, access).await.0, StatusCode::UNAUTHORIZED);
}

struct Signer {
    kid: String,
    key: EncodingKey,
}

/// Registers a fresh RSA key for the default app, as the developer console would.
fn register_key(t: &TestEmu, kid: &str) -> Signer {
    let private = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    let public_pem = private
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let private_pem = private.to_pkcs8_pem(LineEnding::LF).unwrap();
    let client_id = creds(t).0;
    t.emulator()
        .shared
        .store()
        .apps
        .get_mut(&client_id)
        .unwrap()
        .public_keys
        .insert(kid.to_string(), public_pem);
    Signer {
        kid: kid.to_string(),
        key: EncodingKey::from_rsa_pem(private_pem.as_bytes()).unwrap(),
    }
}

fn assertion(signer: &Signer, alg: Algorithm, claims: Value) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(signer.kid.clone());
    jsonwebtoken::encode(&header, &claims, &signer.key).unwrap()
}

fn claims(t: &TestEmu, sub: &str, sub_type: &str, aud: &str, exp_in: i64, jti: &str) -> Value {
    json!({
        "iss": creds(t).0,
        "sub": sub,
        "box_sub_type": sub_type,
        "aud": aud,
        "jti": jti,
        "exp": chrono::Utc::now().timestamp() + exp_in,
    })
}

async fn jwt_grant(t: &TestEmu, assertion: &str) -> (StatusCode, Value) {
    let (client_id, secret) = creds(t);
    token_call(
        t,
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("client_id", &client_id),
            ("client_secret", &secret),
            ("assertion", assertion),
        ],
    )
    .await
}

#[tokio::test]
async fn jwt_enterprise_and_app_user_tokens() {
    let t = TestEmu::start().await;
    let signer = register_key(&t, "key-1");
    let enterprise = t.emulator().info.enterprise_id.clone();
    let own_aud = format!("{}/oauth2/token", t.base);

    // Enterprise subject: the service account. Box's own token URL is accepted as `aud`.
    let a = assertion(
        &signer,
        Algorithm::RS256,
        claims(
            &t,
            &enterprise,
            "enterprise",
            "https://api.box.com/oauth2/token",
            45,
            "jti-0000000000000001",
        ),
    );
    let (s, tok) = jwt_grant(&t, &a).await;
    assert_eq!(s, StatusCode::OK, "{tok}");
    assert!(tok.get("refresh_token").is_none());
    let sa_token = tok["access_token"].as_str().unwrap().to_string();
    let (_, sa) = me(&t, &sa_token).await;
    assert!(
        sa["login"].as_str().unwrap().starts_with("AutomationUser_"),
        "{sa}"
    );

    // The same jti again is refused.
    let (s, e) = jwt_grant(&t, &a).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );

    // The service account creates an app user, then a JWT for that user works (RS512 too).
    let (s, user) = TestEmu::send(
        t.http
            .post(t.api("/users"))
            .bearer_auth(&sa_token)
            .json(&json!({"name": "App Person", "is_platform_access_only": true})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{user}");
    let uid = user["id"].as_str().unwrap().to_string();
    let a = assertion(
        &signer,
        Algorithm::RS512,
        claims(&t, &uid, "user", &own_aud, 30, "jti-0000000000000002"),
    );
    let (s, tok) = jwt_grant(&t, &a).await;
    assert_eq!(s, StatusCode::OK, "{tok}");
    let (_, who) = me(&t, tok["access_token"].as_str().unwrap()).await;
    assert_eq!(who["id"], uid.as_str());
    let a = assertion(
        &signer,
        Algorithm::RS384,
        claims(&t, &uid, "user", &own_aud, 30, "jti-0000000000000003"),
    );
    assert_eq!(jwt_grant(&t, &a).await.0, StatusCode::OK);

    // Refusals: exp too far ahead, expired, wrong aud, short jti, unknown kid, wrong key,
    // unknown subject.
    let cases = [
        claims(
            &t,
            &enterprise,
            "enterprise",
            &own_aud,
            300,
            "jti-0000000000000010",
        ),
        claims(
            &t,
            &enterprise,
            "enterprise",
            &own_aud,
            -10,
            "jti-0000000000000011",
        ),
        claims(
            &t,
            &enterprise,
            "enterprise",
            "https://evil.example/token",
            30,
            "jti-0000000000000012",
        ),
        claims(&t, &enterprise, "enterprise", &own_aud, 30, "short"),
        claims(
            &t,
            "12345",
            "enterprise",
            &own_aud,
            30,
            "jti-0000000000000013",
        ),
        claims(&t, "98765", "user", &own_aud, 30, "jti-0000000000000014"),
    ];
    for c in cases {
        let (s, e) = jwt_grant(&t, &assertion(&signer, Algorithm::RS256, c.clone())).await;
        assert_eq!(
            (s, e["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_grant")),
            "{c}"
        );
    }
    let other = register_key(&t, "key-2");
    let forged = Signer {
        kid: "key-1".into(),
        key: other.key,
    };
    let (s, _) = jwt_grant(
        &t,
        &assertion(
            &forged,
            Algorithm::RS256,
            claims(
                &t,
                &enterprise,
                "enterprise",
                &own_aud,
                30,
                "jti-0000000000000020",
            ),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let unknown = Signer {
        kid: "key-9".into(),
        key: forged.key,
    };
    let (s, _) = jwt_grant(
        &t,
        &assertion(
            &unknown,
            Algorithm::RS256,
            claims(
                &t,
                &enterprise,
                "enterprise",
                &own_aud,
                30,
                "jti-0000000000000021",
            ),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = jwt_grant(&t, "not.a.jwt").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn as_user_is_for_admins_and_service_accounts() {
    let t = TestEmu::start().await;
    let (s, user) = t
        .post_json(
            "/users",
            json!({"name": "Worker", "is_platform_access_only": true}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{user}");
    let uid = user["id"].as_str().unwrap().to_string();

    // Admin acting as the user sees the user's own root.
    let (s, who) = TestEmu::send(
        t.req(reqwest::Method::GET, &t.api("/users/me"))
            .header("As-User", &uid),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(who["id"], uid.as_str());
    let (s, _) = TestEmu::send(
        t.req(reqwest::Method::POST, &t.api("/folders"))
            .header("As-User", &uid)
            .json(&json!({"name": "Mine", "parent": {"id": "0"}})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let (_, admin_root) = t.get("/folders/0/items").await;
    assert_eq!(
        admin_root["total_count"], 0,
        "the folder went to the user's root, not the admin's"
    );

    // The user's own token may not use As-User.
    let (client_id, secret) = creds(&t);
    let (_, tok) = token_call(
        &t,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &client_id),
            ("client_secret", &secret),
            ("box_subject_type", "user"),
            ("box_subject_id", &uid),
        ],
    )
    .await;
    let user_token = tok["access_token"].as_str().unwrap();
    let (s, _) = TestEmu::send(
        t.http
            .get(t.api("/users/me"))
            .bearer_auth(user_token)
            .header("As-User", &t.emulator().info.user_id),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Unknown target, malformed target.
    let (s, _) = TestEmu::send(
        t.req(reqwest::Method::GET, &t.api("/users/me"))
            .header("As-User", "424242"),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = TestEmu::send(
        t.req(reqwest::Method::GET, &t.api("/users/me"))
            .header("As-User", "abc"),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // Client credentials for an unknown user or enterprise.
    let (s, _) = token_call(
        &t,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &client_id),
            ("client_secret", &secret),
            ("box_subject_type", "enterprise"),
            ("box_subject_id", "1"),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn users_me_reports_quota() {
    let t = TestEmu::start().await;
    let (s, u) = t.get("/users/me").await;
    assert_eq!(s, StatusCode::OK);
    assert!(u["space_amount"].as_i64().unwrap() > 0);
    assert_eq!(u["space_used"], 0);
    let (_, u) = t.get("/users/me?fields=enterprise,role").await;
    assert_eq!(u["role"], "admin");
    assert_eq!(
        u["enterprise"]["id"],
        t.emulator().info.enterprise_id.as_str()
    );
    let (s, _) = t.post_json("/users", json!({"name": ""})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = t.post_json("/users", json!({"name": "No Login"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn unauthenticated_authorizations_keep_a_bounded_number_of_codes() {
    let t = TestEmu::start().await;
    let max = box_emulator::auth::MAX_AUTH_CODES;
    let mut last = String::new();
    for i in 0..max + 50 {
        last = authorize(&t, &format!("s{i}")).await.0;
    }
    let held = t.emulator().shared.store().auth_codes.len();
    assert!(held <= max, "{held} codes held");
    // The newest code still works.
    assert!(t.emulator().shared.store().auth_codes.contains_key(&last));
}
