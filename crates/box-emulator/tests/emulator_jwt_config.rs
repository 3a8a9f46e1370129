//! `--jwt-config FILE`: the app config file is created once, registered once, and holds a
//! key that standard PKCS#8 readers decrypt.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use box_emulator::jwt_config::{decoding_key, JwtConfig};
use box_emulator::store::Role;
use box_emulator::testing::{openapi_path, venv_python};
use box_emulator::{Emulator, EmulatorConfig};
use serde_json::Value;

fn config(data: Option<&Path>, jwt: &Path) -> EmulatorConfig {
    EmulatorConfig {
        data_dir: data.map(Path::to_path_buf),
        jwt_config: Some(jwt.to_path_buf()),
        validate_responses: Some(openapi_path()),
        ..EmulatorConfig::default()
    }
}

#[tokio::test]
async fn a_new_config_is_written_and_registered_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let file = dir.path().join("conf").join("box_config.json");

    let emu = Emulator::start(config(Some(&data), &file))
        .await
        .expect("starts");
    let mode = std::fs::metadata(&file)
        .expect("written")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");

    // Box's layout, nothing more.
    let json: Value = serde_json::from_slice(&std::fs::read(&file).expect("read")).expect("json");
    let mut keys: Vec<&str> = json
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["boxAppSettings", "enterpriseID"]);
    let settings = &json["boxAppSettings"];
    let auth = &settings["appAuth"];
    for field in [
        &settings["clientID"],
        &settings["clientSecret"],
        &auth["publicKeyID"],
        &auth["passphrase"],
    ] {
        assert!(field.as_str().is_some_and(|s| !s.is_empty()), "{json}");
    }
    assert_eq!(json["enterpriseID"], emu.info.enterprise_id.as_str());
    let pem = auth["privateKey"].as_str().expect("privateKey");
    assert!(pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----\n"));

    // The key decrypts with the passphrase, and the store holds its public half.
    let parsed = JwtConfig::read(&file).expect("parses");
    let public = parsed.public_key_pem().expect("decrypts");
    let client_id = parsed.box_app_settings.client_id.clone();
    let first = emu.info.clone();
    assert_ne!(
        first.client_id, client_id,
        "the default app stays the printed one"
    );
    let (apps, service_account) = {
        let store = emu.shared.store();
        let app = &store.apps[&client_id];
        assert_eq!(app.client_secret, parsed.box_app_settings.client_secret);
        assert_eq!(app.enterprise_id, emu.info.enterprise_id);
        assert_eq!(
            app.public_keys[&parsed.box_app_settings.app_auth.public_key_id],
            public
        );
        decoding_key(&public).expect("usable for verification");
        let sa = &store.users[&app.service_account];
        assert_eq!(sa.role, Role::ServiceAccount);
        assert_eq!(sa.app_client_id.as_deref(), Some(client_id.as_str()));
        (store.apps.len(), app.service_account)
    };
    emu.stop().await;

    // A restart with the same data and file registers nothing new.
    let before = std::fs::read(&file).expect("read");
    let emu = Emulator::start(config(Some(&data), &file))
        .await
        .expect("restarts");
    assert_eq!(
        std::fs::read(&file).expect("read"),
        before,
        "file untouched"
    );
    assert_eq!(emu.info.client_id, first.client_id);
    assert_eq!(emu.info.client_secret, first.client_secret);
    {
        let store = emu.shared.store();
        assert_eq!(store.apps.len(), apps);
        assert_eq!(store.apps[&client_id].service_account, service_account);
        let service_accounts = store
            .users
            .values()
            .filter(|u| u.app_client_id.as_deref() == Some(client_id.as_str()))
            .count();
        assert_eq!(service_accounts, 1);
    }
    emu.stop().await;

    python_can_load(&file);
}

/// A fresh emulator given an existing file takes the file's enterprise id, so assertions
/// made from the file name the right enterprise.
#[tokio::test]
async fn an_existing_config_sets_the_enterprise_of_a_fresh_emulator() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("box_config.json");
    let written = JwtConfig::generate("987654321").expect("generate");
    written.write(&file).expect("write");

    let emu = Emulator::start(config(None, &file)).await.expect("starts");
    assert_eq!(emu.info.enterprise_id, "987654321");
    {
        let store = emu.shared.store();
        assert_eq!(store.enterprise_id, "987654321");
        assert!(store.users.values().all(|u| u.enterprise_id == "987654321"));
        let app = &store.apps[&written.box_app_settings.client_id];
        assert_eq!(app.enterprise_id, "987654321");
    }
    let me: Value = reqwest::Client::new()
        .get(format!("{}/2.0/users/me?fields=enterprise", emu.base_url()))
        .bearer_auth(&emu.info.developer_token)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(me["enterprise"]["id"], "987654321");
    assert!(
        emu.conformance_violations().is_empty(),
        "{:#?}",
        emu.conformance_violations()
    );
    emu.stop().await;
}

#[tokio::test]
async fn a_broken_config_is_a_readable_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("box_config.json");
    std::fs::write(&file, br#"{"boxAppSettings": {}}"#).expect("write");
    let err = Emulator::start(config(None, &file))
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("is not a Box app config"), "{err}");

    let mut c = JwtConfig::generate("1").expect("generate");
    c.box_app_settings.app_auth.passphrase = "wrong".into();
    c.write(&file).expect("write");
    let err = Emulator::start(config(None, &file))
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("passphrase"), "{err}");
}

/// The official Python SDK loads the key with `cryptography`: the test venv's Python (made
/// by `.ci/install-deps`, which CI runs first) must load it too. A missing venv fails.
fn python_can_load(file: &Path) {
    let script = r#"
import json, sys
from cryptography.hazmat.primitives.serialization import load_pem_private_key
c = json.load(open(sys.argv[1]))["boxAppSettings"]["appAuth"]
k = load_pem_private_key(c["privateKey"].encode(), password=c["passphrase"].encode())
print(k.key_size)
"#;
    let out = std::process::Command::new(venv_python())
        .arg("-c")
        .arg(script)
        .arg(file)
        .output()
        .expect("the venv's python runs");
    assert!(
        out.status.success(),
        "python could not load the key: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "2048");
}

/// An emulator that already holds data keeps its enterprise (and only warns).
#[tokio::test]
async fn an_emulator_with_data_keeps_its_enterprise() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let emu = Emulator::start(EmulatorConfig {
        data_dir: Some(data.clone()),
        demo: true,
        ..EmulatorConfig::default()
    })
    .await
    .expect("starts");
    let enterprise = emu.info.enterprise_id.clone();
    emu.stop().await;

    let file = dir.path().join("box_config.json");
    let written = JwtConfig::generate("555").expect("generate");
    written.write(&file).expect("write");
    let emu = Emulator::start(config(Some(&data), &file))
        .await
        .expect("starts");
    assert_eq!(emu.info.enterprise_id, enterprise);
    let store = emu.shared.store();
    assert_eq!(store.enterprise_id, enterprise);
    assert_eq!(
        store.apps[&written.box_app_settings.client_id].enterprise_id,
        enterprise
    );
}
