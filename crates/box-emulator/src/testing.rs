//! The harness of integration tests (feature `testing`): an in-process emulator that checks
//! every request it receives and every JSON response it sends against Box's OpenAPI
//! description, a reqwest client, and small request helpers. Dropping a [`TestEmu`] fails
//! the test if any request or response broke the description, or if API calls were made but
//! none was checked (the checks must not be able to switch off unnoticed).
//!
//! ```no_run
//! # async fn f() {
//! use box_emulator::testing::TestEmu;
//! let t = TestEmu::start().await;
//! let folder = t.mkdir("0", "reports").await;
//! let (status, body) = t.get(&format!("/folders/{folder}")).await;
//! assert_eq!(status, 200);
//! assert_eq!(body["name"], "reports");
//! # }
//! ```

use std::path::PathBuf;

pub mod redis;
pub mod uploads;

use crate::{Emulator, EmulatorConfig};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Box's OpenAPI description, kept with this crate.
pub fn openapi_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("openapi/openapi.json")
}

/// Box's own response bodies (from Box's Java SDK), kept with this crate.
pub fn box_fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("box-fixtures")
}

/// The workspace's root directory (where `.ci/install-deps` puts `target/client-venv`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the workspace root exists")
}

/// The venv's python, or a failure that says how to make it.
pub fn venv_python() -> PathBuf {
    let python = workspace_root().join("target/client-venv/bin/python");
    let ok = python.exists()
        && std::process::Command::new(&python)
            .args(["-c", "import boxsdk, jwt, cryptography"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
    assert!(
        ok,
        "{} with boxsdk is missing: run `bash .ci/install-deps` once (it creates target/client-venv \
         from crates/box-emulator/tests/clients/requirements.txt){}",
        python.display(),
        if std::env::var_os("CI").is_some() {
            "; CI must run .ci/install-deps before the tests"
        } else {
            ""
        }
    );
    python
}

pub struct TestEmu {
    pub emu: Option<Emulator>,
    pub http: reqwest::Client,
    pub base: String,
    /// The admin's developer token.
    pub token: String,
    /// When serving HTTPS: the file with the CA certificate that clients must trust
    /// (removed when the `TestEmu` is dropped). `http` already trusts it.
    pub ca_file: Option<PathBuf>,
}

impl TestEmu {
    pub async fn start() -> TestEmu {
        Self::start_with(EmulatorConfig::default()).await
    }

    pub async fn start_with(mut config: EmulatorConfig) -> TestEmu {
        let _ = env_logger::builder().is_test(true).try_init();
        config.validate_responses = Some(openapi_path());
        let emu = Emulator::start(config).await.expect("emulator starts");
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("http client");
        TestEmu {
            base: emu.base_url().to_string(),
            token: emu.info.developer_token.clone(),
            emu: Some(emu),
            http,
            ca_file: None,
        }
    }

    /// An emulator that serves HTTPS (`EmulatorConfig::serve_https`) with a CA made for
    /// it: `base` is its `https://` URL, `ca_file` the CA certificate, and `http` a client
    /// that trusts it.
    pub async fn start_https() -> TestEmu {
        Self::start_https_with(EmulatorConfig::default()).await
    }

    pub async fn start_https_with(mut config: EmulatorConfig) -> TestEmu {
        let ca_file = std::env::temp_dir().join(format!(
            "box-emulator-ca-{}-{:016x}.pem",
            std::process::id(),
            rand::random::<u64>()
        ));
        config.serve_https = Some(ca_file.clone());
        let mut t = Self::start_with(config).await;
        let pem = std::fs::read(&ca_file).expect("the emulator wrote its CA certificate");
        t.http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("a PEM certificate"))
            .build()
            .expect("http client");
        t.ca_file = Some(ca_file);
        t
    }

    pub fn emulator(&self) -> &Emulator {
        self.emu.as_ref().expect("running")
    }

    /// `/2.0` + path.
    pub fn api(&self, path: &str) -> String {
        format!("{}/2.0{}", self.base, path)
    }

    /// `/api/2.0` + path (the upload host).
    pub fn upload(&self, path: &str) -> String {
        format!("{}/api/2.0{}", self.base, path)
    }

    /// A request with the admin's token.
    pub fn req(&self, method: Method, url: &str) -> reqwest::RequestBuilder {
        self.http.request(method, url).bearer_auth(&self.token)
    }

    /// A request with the admin's token that breaks Box's OpenAPI description on purpose
    /// (to test the emulator's 400s): the validator then requires that it does.
    pub fn bad_req(&self, method: Method, url: &str) -> reqwest::RequestBuilder {
        self.req(method, url)
            .header(crate::conformance::EXPECT_INVALID, "1")
    }

    /// Sends and returns status and JSON body (Null when empty or not JSON).
    pub async fn send(rb: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let resp = rb.send().await.expect("request sent");
        let status = resp.status();
        let bytes = resp.bytes().await.expect("body read");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, body)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        Self::send(self.req(Method::GET, &self.api(path))).await
    }

    pub async fn post_json(&self, path: &str, body: Value) -> (StatusCode, Value) {
        Self::send(self.req(Method::POST, &self.api(path)).json(&body)).await
    }

    pub async fn put_json(&self, path: &str, body: Value) -> (StatusCode, Value) {
        Self::send(self.req(Method::PUT, &self.api(path)).json(&body)).await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        Self::send(self.req(Method::DELETE, &self.api(path))).await
    }

    /// `get`, `post_json` and `put_json` for requests that break Box's description on
    /// purpose (see [`TestEmu::bad_req`]).
    pub async fn bad_get(&self, path: &str) -> (StatusCode, Value) {
        Self::send(self.bad_req(Method::GET, &self.api(path))).await
    }

    pub async fn bad_post_json(&self, path: &str, body: Value) -> (StatusCode, Value) {
        Self::send(self.bad_req(Method::POST, &self.api(path)).json(&body)).await
    }

    pub async fn bad_put_json(&self, path: &str, body: Value) -> (StatusCode, Value) {
        Self::send(self.bad_req(Method::PUT, &self.api(path)).json(&body)).await
    }

    /// Creates a folder and returns its id.
    pub async fn mkdir(&self, parent: &str, name: &str) -> String {
        let (status, body) = self
            .post_json(
                "/folders",
                serde_json::json!({"name": name, "parent": {"id": parent}}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "create folder {name}: {body}");
        body["id"].as_str().expect("folder id").to_string()
    }

    /// Uploads a small file through the multipart endpoint and returns its JSON.
    pub async fn upload_file(&self, parent: &str, name: &str, content: &[u8]) -> Value {
        let attributes = serde_json::json!({"name": name, "parent": {"id": parent}}).to_string();
        let form = reqwest::multipart::Form::new()
            .text("attributes", attributes)
            .part(
                "file",
                reqwest::multipart::Part::bytes(content.to_vec()).file_name(name.to_string()),
            );
        let (status, body) = Self::send(
            self.req(Method::POST, &self.upload("/files/content"))
                .multipart(form),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "upload {name}: {body}");
        body["entries"][0].clone()
    }

    /// A client of this emulator with the admin's token. It does not pace itself: the
    /// emulator enforces no rate limits unless a test turns them on.
    pub fn client(&self, retry: box_client::RetryPolicy) -> box_client::Client {
        box_client::Client::builder(
            std::sync::Arc::new(box_client::DeveloperToken::new(self.token.clone())),
            box_client::Endpoints::from_base(&self.base).expect("emulator base URL"),
        )
        .retry(retry)
        .pacing(box_client::PacerConfig::unlimited())
        .build()
        .expect("a client without shared pacing")
    }

    /// A second user of the enterprise and a developer token for it; with `shared`, an
    /// editor collaborator on that folder.
    pub fn other_user(&self, shared: Option<u64>) -> (u64, String) {
        use crate::store::{Collaboration, Role, TokenKind};
        use crate::users;
        let mut s = self.emulator().shared.store();
        let n = s.users.len();
        let uid = users::add_user(
            &mut s,
            "Other User",
            &format!("other{n}@example.com"),
            Role::User,
            -1,
            None,
        );
        let client_id = self.emulator().info.client_id.clone();
        let token = users::issue_token(&mut s, uid, &client_id, TokenKind::Developer, 3600);
        if let Some(f) = shared {
            let cid = s.alloc_id();
            let by = s.items[&f].owner;
            s.items
                .get_mut(&f)
                .expect("shared folder")
                .collaborations
                .push(Collaboration {
                    id: cid,
                    user: uid,
                    role: "editor".into(),
                    created_by: by,
                    created_at: chrono::Utc::now(),
                });
        }
        (uid, token)
    }

    /// Requests and responses so far that broke Box's OpenAPI description (none once
    /// stopped: [`TestEmu::stop`] checked them).
    pub fn violations(&self) -> Vec<String> {
        self.emu
            .as_ref()
            .map(|e| e.conformance_violations())
            .unwrap_or_default()
    }

    /// Panics if what the emulator served so far broke Box's description, or left a part of
    /// it the conformance check requires unexercised (nothing to check once stopped).
    fn assert_conforms(&self) {
        let violations = self.violations();
        assert!(
            violations.is_empty(),
            "{} request(s) or response(s) do not match Box's OpenAPI description:\n{}",
            violations.len(),
            violations.join("\n")
        );
        if let Some(gap) = self.emu.as_ref().and_then(|e| e.conformance_gap()) {
            panic!("{gap}");
        }
    }

    /// Stops the emulator, as if Box went out of reach, after checking that what it served
    /// so far kept to Box's description. With a `data_dir`, starting another one with the
    /// same configuration (and `listen` address) brings the same Box back.
    pub async fn stop(&mut self) {
        self.assert_conforms();
        if let Some(emu) = self.emu.take() {
            emu.stop().await;
        }
    }

    /// Requests until `expect_bad(false)` break Box's description on purpose; at least one
    /// of them must (see `Validator::expect_invalid_requests`).
    pub fn expect_bad(&self, on: bool) {
        self.emulator()
            .shared
            .conformance
            .as_ref()
            .expect("test emulators validate")
            .expect_invalid_requests(on);
    }

    /// How many requests and responses were checked so far.
    pub fn coverage(&self) -> crate::conformance::Coverage {
        self.emulator()
            .shared
            .conformance
            .as_ref()
            .expect("test emulators validate")
            .coverage()
    }
}

impl Drop for TestEmu {
    fn drop(&mut self) {
        if let Some(ca_file) = &self.ca_file {
            let _ = std::fs::remove_file(ca_file);
        }
        if std::thread::panicking() {
            return;
        }
        self.assert_conforms();
    }
}
