//! `--jwt-config FILE`: the Box developer-console app config JSON that JWT clients (the
//! official SDKs, rclone) are given, registered as an app of the emulator.
//!
//! The file's layout is Box's:
//! `{"boxAppSettings": {"clientID", "clientSecret", "appAuth": {"publicKeyID", "privateKey",
//! "passphrase"}}, "enterpriseID"}`, where `privateKey` is an encrypted PKCS#8 PEM.
//!
//! - If FILE exists, its private key is decrypted with the passphrase, the public key is
//!   derived from it and registered under `publicKeyID` for the app `clientID` (created with
//!   its service account if the store does not know it yet, so restarts with `--data`
//!   register it once).
//! - If FILE does not exist, a fresh app is made: random client id and secret, a new
//!   2048-bit RSA key encrypted with PBES2 (PBKDF2-SHA256, AES-256-CBC, the scheme every
//!   PKCS#8 reader including Python's `cryptography` supports) under a random passphrase,
//!   and the emulator's enterprise id. The file is written with mode 0600.
//!
//! JWT clients put the file's `enterpriseID` in their assertions (`sub`), so it has to be
//! the emulator's enterprise. A freshly bootstrapped emulator (nothing created yet) simply
//! takes the file's enterprise id; an emulator that already holds data keeps its own and
//! warns, because assertions for the other enterprise will be refused.

use std::io::Write;
use std::path::Path;

use rand::Rng;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::RsaPrivateKey;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::anyhow_like::{Result, StartError};
use super::store::Store;
use super::users;

/// PBKDF2 rounds for newly written keys.
const PBKDF2_ITERATIONS: u32 = 100_000;
const RSA_BITS: usize = 2048;

/// Box's app config file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JwtConfig {
    #[serde(rename = "boxAppSettings")]
    pub box_app_settings: BoxAppSettings,
    /// A string in Box's files; a number is accepted too.
    #[serde(rename = "enterpriseID", deserialize_with = "string_or_number")]
    pub enterprise_id: String,
}

#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct BoxAppSettings {
    #[serde(rename = "clientID")]
    pub client_id: String,
    #[serde(rename = "clientSecret")]
    pub client_secret: String,
    #[serde(rename = "appAuth")]
    pub app_auth: AppAuth,
}

#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct AppAuth {
    #[serde(rename = "publicKeyID")]
    pub public_key_id: String,
    #[serde(rename = "privateKey")]
    pub private_key: String,
    pub passphrase: String,
}

impl std::fmt::Debug for BoxAppSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoxAppSettings")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("app_auth", &self.app_auth)
            .finish()
    }
}

impl std::fmt::Debug for AppAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppAuth")
            .field("public_key_id", &self.public_key_id)
            .field("private_key", &"<redacted>")
            .field("passphrase", &"<redacted>")
            .finish()
    }
}

fn string_or_number<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected a string or a number, found {other}"
        ))),
    }
}

impl JwtConfig {
    /// Reads and parses a config file.
    pub fn read(path: &Path) -> Result<JwtConfig> {
        let text = std::fs::read(path)
            .map_err(|e| StartError(format!("cannot read {}: {e}", path.display())))?;
        serde_json::from_slice(&text).map_err(|e| {
            StartError(format!(
                "{} is not a Box app config (boxAppSettings.clientID/clientSecret/appAuth, enterpriseID): {e}",
                path.display()
            ))
        })
    }

    /// The app's RSA private key, decrypted with the passphrase (an unencrypted PKCS#8 or
    /// PKCS#1 PEM is accepted too), read as the client reads it.
    pub fn private_key(&self) -> Result<RsaPrivateKey> {
        let auth = &self.box_app_settings.app_auth;
        box_client::auth::jwt::decrypt_private_key(&auth.private_key, &auth.passphrase)
            .map_err(|e| StartError(e.to_string()))
    }

    /// The public key (SPKI PEM) that verifies this app's assertions.
    pub fn public_key_pem(&self) -> Result<String> {
        public_pem(&self.private_key()?)
    }

    /// A key that signs JWT assertions as this app (RS256/384/512).
    pub fn encoding_key(&self) -> Result<jsonwebtoken::EncodingKey> {
        let pem = self
            .private_key()?
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| StartError(format!("cannot encode the private key: {e}")))?;
        jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes())
            .map_err(|e| StartError(format!("cannot use the private key: {e}")))
    }

    /// A new app with a fresh key, for `enterprise_id`.
    pub fn generate(enterprise_id: &str) -> Result<JwtConfig> {
        let mut rng = rand::thread_rng();
        let key = RsaPrivateKey::new(&mut rng, RSA_BITS)
            .map_err(|e| StartError(format!("cannot generate an RSA key: {e}")))?;
        let passphrase = random_string(32);
        let salt: [u8; 16] = rng.gen();
        let iv: [u8; 16] = rng.gen();
        let params =
            pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(PBKDF2_ITERATIONS, &salt, &iv)
                .map_err(|e| StartError(format!("cannot set up key encryption: {e}")))?;
        let der = key
            .to_pkcs8_der()
            .map_err(|e| StartError(format!("cannot encode the private key: {e}")))?;
        let info = pkcs8::PrivateKeyInfo::try_from(der.as_bytes())
            .map_err(|e| StartError(format!("cannot encode the private key: {e}")))?;
        let encrypted = info
            .encrypt_with_params(params, passphrase.as_bytes())
            .map_err(|e| StartError(format!("cannot encrypt the private key: {e}")))?;
        let pem = encrypted
            .to_pem("ENCRYPTED PRIVATE KEY", LineEnding::LF)
            .map_err(|e| StartError(format!("cannot encode the private key: {e}")))?;
        Ok(JwtConfig {
            box_app_settings: BoxAppSettings {
                client_id: users::random_token(32),
                client_secret: users::random_token(32),
                app_auth: AppAuth {
                    public_key_id: users::random_token(8),
                    private_key: pem.to_string(),
                    passphrase,
                },
            },
            enterprise_id: enterprise_id.to_string(),
        })
    }

    /// Writes the file with mode 0600 (atomically: a temporary file renamed into place).
    pub fn write(&self, path: &Path) -> Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| StartError(format!("cannot encode the app config: {e}")))?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir)
            .map_err(|e| StartError(format!("cannot create {}: {e}", dir.display())))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".{name}.tmp-{}", uuid::Uuid::new_v4().simple()));
        let written = (|| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(StartError(format!("cannot write {}: {e}", path.display())));
        }
        Ok(())
    }
}

fn random_string(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

fn public_pem(key: &RsaPrivateKey) -> Result<String> {
    key.to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| StartError(format!("cannot encode the public key: {e}")))
}

/// A key that verifies RS256/384/512 assertions signed by the holder of a registered
/// public key (`App::public_keys` values: SPKI or PKCS#1 PEM).
pub fn decoding_key(
    pem: &str,
) -> std::result::Result<jsonwebtoken::DecodingKey, jsonwebtoken::errors::Error> {
    jsonwebtoken::DecodingKey::from_rsa_pem(pem.as_bytes())
}

/// Whether nothing has happened in the store yet besides bootstrapping (users and their
/// empty root folders, apps, tokens).
fn is_fresh(store: &Store) -> bool {
    store.events.is_empty()
        && store.templates.is_empty()
        && store.items.values().all(|i| i.is_root())
}

/// Makes `enterprise_id` the store's enterprise (a fresh store only).
fn adopt_enterprise(store: &mut Store, enterprise_id: &str) {
    store.enterprise_id = enterprise_id.to_string();
    for user in store.users.values_mut() {
        user.enterprise_id = enterprise_id.to_string();
    }
    for app in store.apps.values_mut() {
        app.enterprise_id = enterprise_id.to_string();
    }
}

/// Registers the app of `path` (creating the file with a new app if it does not exist).
pub fn register(store: &mut Store, path: &Path) -> Result<()> {
    let config = if path.exists() {
        JwtConfig::read(path)?
    } else {
        let config = JwtConfig::generate(&store.enterprise_id)?;
        config.write(path)?;
        log::info!(
            "emulator: wrote a new app config to {} (client id {})",
            path.display(),
            config.box_app_settings.client_id
        );
        config
    };
    let public_pem = config
        .public_key_pem()
        .map_err(|e| StartError(format!("{}: {}", path.display(), e.0)))?;
    if config.enterprise_id != store.enterprise_id {
        if is_fresh(store) {
            adopt_enterprise(store, &config.enterprise_id);
        } else {
            log::warn!(
                "emulator: {} names enterprise {}, but this emulator's enterprise is {}; the app \
                 is registered under {}, and JWT assertions for enterprise {} will be refused \
                 (set enterpriseID in the file to {})",
                path.display(),
                config.enterprise_id,
                store.enterprise_id,
                store.enterprise_id,
                config.enterprise_id,
                store.enterprise_id
            );
        }
    }
    let settings = &config.box_app_settings;
    if !store.apps.contains_key(&settings.client_id) {
        let quota = store
            .users
            .get(&store.admin)
            .map(|u| u.space_amount)
            .unwrap_or(-1);
        users::add_app(store, &settings.client_id, &settings.client_secret, quota);
    }
    let enterprise_id = store.enterprise_id.clone();
    let app = store
        .apps
        .get_mut(&settings.client_id)
        .ok_or_else(|| StartError("the app was not registered".into()))?;
    // The file is the truth for the secret and the key (an edited file takes effect).
    app.client_secret = settings.client_secret.clone();
    app.enterprise_id = enterprise_id;
    app.public_keys
        .insert(settings.app_auth.public_key_id.clone(), public_pem);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_round_trips_and_verifies_signatures() {
        let config = JwtConfig::generate("123456").expect("generate");
        let pem = &config.box_app_settings.app_auth.private_key;
        assert!(
            pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----\n"),
            "{pem}"
        );
        let public = config.public_key_pem().expect("public key");
        assert!(public.starts_with("-----BEGIN PUBLIC KEY-----"));

        // A wrong passphrase does not decrypt it.
        let mut wrong = config.clone();
        wrong.box_app_settings.app_auth.passphrase = "nope".into();
        assert!(wrong.private_key().is_err());

        // What the key signs, the registered public key verifies.
        let claims = serde_json::json!({"iss": "x", "exp": 4_000_000_000u64});
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(config.box_app_settings.app_auth.public_key_id.clone());
        let token = jsonwebtoken::encode(&header, &claims, &config.encoding_key().expect("key"))
            .expect("sign");
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let decoded = jsonwebtoken::decode::<Value>(
            &token,
            &decoding_key(&public).expect("decoding key"),
            &validation,
        )
        .expect("verifies");
        assert_eq!(decoded.claims["iss"], "x");
        // Another key does not.
        let other = JwtConfig::generate("1")
            .expect("generate")
            .public_key_pem()
            .expect("pem");
        assert!(jsonwebtoken::decode::<Value>(
            &token,
            &decoding_key(&other).expect("key"),
            &validation
        )
        .is_err());
    }

    #[test]
    fn enterprise_id_may_be_a_number() {
        let text = r#"{"boxAppSettings": {"clientID": "a", "clientSecret": "b",
            "appAuth": {"publicKeyID": "k", "privateKey": "p", "passphrase": "s"}},
            "enterpriseID": 42}"#;
        let c: JwtConfig = serde_json::from_str(text).expect("parses");
        assert_eq!(c.enterprise_id, "42");
        assert!(
            !format!("{c:?}").contains("\"s\""),
            "the passphrase is redacted"
        );
    }
}
