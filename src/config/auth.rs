//! From the effective configuration to an [`Authenticator`]: which kind of credential the
//! profile uses (`auth`), where tokens are kept (`token_store`), and who JWT or
//! client-credentials tokens act as (`user_id` / `enterprise_id`).
//!
//! Kinds: `oauth` (tokens from `boxfs login`'s browser flow, refreshed and kept in the token
//! store), `jwt` (the developer console's app config JSON), `ccg` (client credentials),
//! `token` (a bare access token: the `token` key, or the one `boxfs login --token` put in the
//! token store) and `command` (an external program prints the access token). Token requests
//! go through the configuration's HTTP client (`super::http`), as API calls do.

use std::path::PathBuf;
use std::sync::Arc;

use super::settings::SettingValue;
use super::{Effective, DEFAULT_PROFILE};
use box_client::auth::{
    oauth, CcgAuth, CommandToken, FileTokenStore, JwtAuth, JwtConfig, OAuth2, RedisTokenStore,
    StoredToken, Subject, TokenStore,
};
use box_client::secret::redact_url_text;
use box_client::{Authenticator, DeveloperToken, Endpoints, RetryPolicy, Secret};

/// How a profile authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthKind {
    OAuth,
    Jwt,
    Ccg,
    Token,
    Command,
}

impl AuthKind {
    pub fn name(self) -> &'static str {
        match self {
            AuthKind::OAuth => "oauth",
            AuthKind::Jwt => "jwt",
            AuthKind::Ccg => "ccg",
            AuthKind::Token => "token",
            AuthKind::Command => "command",
        }
    }
}

impl SettingValue for AuthKind {
    fn parse(text: &str) -> Result<AuthKind, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "oauth" | "oauth2" => Ok(AuthKind::OAuth),
            "jwt" => Ok(AuthKind::Jwt),
            "ccg" | "client_credentials" => Ok(AuthKind::Ccg),
            "token" | "developer_token" => Ok(AuthKind::Token),
            "command" => Ok(AuthKind::Command),
            _ => Err("expected oauth, jwt, ccg, token or command".into()),
        }
    }
    fn show(&self) -> String {
        self.name().into()
    }
}

/// Where tokens are kept.
#[derive(Clone, PartialEq)]
pub enum StoreSpec {
    /// A JSON file, mode 0600 (default: `tokens.json` in the XDG data directory).
    File(Option<PathBuf>),
    /// A Redis URL (`redis://[:password@]host[:port][/db][?key=KEY]`): several machines
    /// sharing one account share its tokens.
    Redis(String),
    /// A program (and its arguments) that prints an access token.
    Command(Vec<String>),
}

impl std::fmt::Debug for StoreSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.show())
    }
}

impl SettingValue for StoreSpec {
    fn parse(text: &str) -> Result<StoreSpec, String> {
        let text = text.trim();
        if text == "file" {
            return Ok(StoreSpec::File(None));
        }
        if let Some(path) = text.strip_prefix("file:") {
            return match path.trim() {
                "" => Err("file: needs a path (or say just `file`)".into()),
                p => Ok(StoreSpec::File(Some(PathBuf::from(p)))),
            };
        }
        if ["redis://", "rediss://", "redis+unix://"]
            .iter()
            .any(|p| text.starts_with(p))
        {
            return Ok(StoreSpec::Redis(text.to_string()));
        }
        if let Some(command) = text.strip_prefix("command:") {
            let argv: Vec<String> = command.split_whitespace().map(String::from).collect();
            if argv.is_empty() {
                return Err("command: needs a program".into());
            }
            return Ok(StoreSpec::Command(argv));
        }
        Err(
            "expected file, file:PATH, redis://HOST[:PORT][/DB][?key=KEY] or \
             command:PROGRAM [ARGS]"
                .into(),
        )
    }

    /// A Redis password and a command's arguments may be secrets: neither shows.
    fn show(&self) -> String {
        match self {
            StoreSpec::File(None) => "file".into(),
            StoreSpec::File(Some(p)) => format!("file:{}", p.display()),
            StoreSpec::Redis(url) => redact_url_text(url),
            StoreSpec::Command(argv) if argv.len() > 1 => format!("command:{} ***", argv[0]),
            StoreSpec::Command(argv) => format!("command:{}", argv.join(" ")),
        }
    }
}

/// The token file of a profile when `token_store = "file"`: `tokens.json` (the `default`
/// profile) or `tokens-NAME.json` in the XDG data directory (`~/.local/share/boxfs`).
pub fn default_token_file(profile: &str) -> Result<PathBuf, String> {
    let dirs = directories::ProjectDirs::from("", "", "boxfs").ok_or(
        "cannot find the home directory for the token file: set token_store = \"file:PATH\"",
    )?;
    let name = if profile == DEFAULT_PROFILE {
        "tokens.json".to_string()
    } else {
        format!("tokens-{profile}.json")
    };
    Ok(dirs.data_dir().join(name))
}

impl Effective {
    /// The token store of the profile; `None` for a `command:` store (the program keeps
    /// its tokens itself).
    pub fn token_store(&self) -> Result<Option<Arc<dyn TokenStore>>, String> {
        let spec = self
            .values
            .token_store
            .clone()
            .unwrap_or(StoreSpec::File(None));
        Ok(match spec {
            StoreSpec::File(None) => Some(Arc::new(FileTokenStore::new(default_token_file(
                &self.profile,
            )?))),
            StoreSpec::File(Some(path)) => Some(Arc::new(FileTokenStore::new(path))),
            StoreSpec::Redis(url) => Some(Arc::new(
                RedisTokenStore::from_spec(&url).map_err(|e| self.bad("token_store", e))?,
            )),
            StoreSpec::Command(_) => None,
        })
    }

    /// Where tokens are kept, for messages: a file's path, a Redis URL without password.
    pub fn token_store_shown(&self) -> String {
        match &self.values.token_store {
            None | Some(StoreSpec::File(None)) => default_token_file(&self.profile)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|e| e),
            Some(spec) => spec.show(),
        }
    }

    /// How this configuration authenticates. A `token` set on the command line or in the
    /// environment (or anywhere at least as high as `auth`) is used as it is; otherwise
    /// `auth` says; without `auth`, a `command:` token store means the command.
    pub fn auth_kind(&self) -> Result<AuthKind, String> {
        if self.values.token.is_some() && self.rank("token") >= self.rank("auth") {
            return Ok(AuthKind::Token);
        }
        match (&self.values.auth, &self.values.token_store) {
            (Some(kind), _) => Ok(*kind),
            (None, Some(StoreSpec::Command(_))) => Ok(AuthKind::Command),
            (None, _) => Err(format!(
                "not logged in: profile '{}' of {} says nothing about how to log in to Box \
                 (no auth key); run `boxfs login`, or pass --token TOKEN",
                self.profile,
                self.file.display()
            )),
        }
    }

    /// Who JWT or client-credentials tokens act as: `user_id` or `enterprise_id`, the one
    /// from the higher layer if both are set.
    pub fn subject(&self) -> Result<Option<Subject>, String> {
        let v = &self.values;
        match (&v.user_id, &v.enterprise_id) {
            (Some(user), Some(ent)) => {
                match self.rank("user_id").cmp(&self.rank("enterprise_id")) {
                    std::cmp::Ordering::Greater => Ok(Some(Subject::User(user.clone()))),
                    std::cmp::Ordering::Less => Ok(Some(Subject::Enterprise(ent.clone()))),
                    std::cmp::Ordering::Equal => Err(format!(
                        "both {} and {} are set: tokens act as a user or as the enterprise's \
                     service account, not both",
                        self.origin("user_id"),
                        self.origin("enterprise_id")
                    )),
                }
            }
            (Some(user), None) => Ok(Some(Subject::User(user.clone()))),
            (None, Some(ent)) => Ok(Some(Subject::Enterprise(ent.clone()))),
            (None, None) => Ok(None),
        }
    }

    fn client_credentials(&self, kind: AuthKind) -> Result<(String, Secret), String> {
        match (&self.values.client_id, &self.values.client_secret) {
            (Some(id), Some(secret)) => Ok((id.clone(), secret.clone())),
            _ => Err(format!(
                "auth {} needs the app's client_id and client_secret: pass --client-id and \
                 --client-secret (BOXFS_CLIENT_ID, BOXFS_CLIENT_SECRET), or set them in {}",
                kind.name(),
                self.file.display()
            )),
        }
    }

    /// The OAuth 2.0 authenticator of this profile, its tokens in the token store, its token
    /// requests sent with `http`.
    pub fn oauth(&self, endpoints: &Endpoints, http: &reqwest::Client) -> Result<OAuth2, String> {
        let (id, secret) = self.client_credentials(AuthKind::OAuth)?;
        let store = self.token_store()?.ok_or_else(|| {
            format!(
                "{} runs a program for each access token and cannot keep OAuth tokens; \
                 use token_store = \"file\" or a Redis URL",
                self.origin("token_store")
            )
        })?;
        Ok(OAuth2::new(id, secret, endpoints.clone())
            .with_store(store)
            .with_http(http.clone(), oauth::token_retries()))
    }

    /// The JWT authenticator: the app config's service account unless a subject is set; its
    /// token requests sent with `http`.
    pub fn jwt(&self, endpoints: &Endpoints, http: &reqwest::Client) -> Result<JwtAuth, String> {
        let path = self.values.jwt_config.as_ref().ok_or_else(|| {
            format!(
                "auth jwt needs jwt_config, the app's config JSON from the developer \
                 console: run `boxfs login --jwt CONFIG.json`, or set it in {}",
                self.file.display()
            )
        })?;
        let config = JwtConfig::from_file(path).map_err(|e| self.bad("jwt_config", e))?;
        let auth = match self.subject()? {
            Some(subject) => JwtAuth::with_subject(&config, subject, endpoints),
            None => JwtAuth::new(&config, endpoints),
        };
        auth.map(|a| a.with_http(http.clone(), RetryPolicy::default()))
            .map_err(|e| self.bad("jwt_config", e))
    }

    /// The client-credentials authenticator (a subject is required), its token requests sent
    /// with `http`.
    pub fn ccg(&self, endpoints: &Endpoints, http: &reqwest::Client) -> Result<CcgAuth, String> {
        let (id, secret) = self.client_credentials(AuthKind::Ccg)?;
        let subject = self.subject()?.ok_or(
            "auth ccg needs a subject: --user ID (BOXFS_USER_ID, user_id) or --enterprise ID \
             (BOXFS_ENTERPRISE_ID, enterprise_id)",
        )?;
        CcgAuth::with_http(
            &id,
            secret,
            subject,
            endpoints,
            http.clone(),
            RetryPolicy::default(),
        )
        .map_err(|e| e.to_string())
    }

    /// The program of a `command:` token store.
    pub fn token_command(&self) -> Result<CommandToken, String> {
        match &self.values.token_store {
            Some(StoreSpec::Command(argv)) => {
                CommandToken::new(argv.clone()).map_err(|e| self.bad("token_store", e))
            }
            _ => Err(format!(
                "auth command needs token_store = \"command:PROGRAM\" (now {})",
                self.origin("token_store")
            )),
        }
    }
}

/// The authenticator and endpoints the effective configuration describes: what `boxfs
/// mount`, `whoami` and `logout` use. Its token requests go through `http` (the client's
/// own HTTP client, [`super::http_client`]).
pub fn authenticator(
    eff: &Effective,
    http: &reqwest::Client,
) -> Result<(Arc<dyn Authenticator>, Endpoints), String> {
    let endpoints = eff.endpoints()?;
    let kind = eff.auth_kind()?;
    let auth: Arc<dyn Authenticator> = match kind {
        AuthKind::OAuth => Arc::new(eff.oauth(&endpoints, http)?),
        AuthKind::Jwt => Arc::new(eff.jwt(&endpoints, http)?),
        AuthKind::Ccg => Arc::new(eff.ccg(&endpoints, http)?),
        AuthKind::Command => Arc::new(eff.token_command()?),
        AuthKind::Token => match &eff.values.token {
            Some(token) => Arc::new(DeveloperToken::new(token.clone())),
            None => match eff.token_store()? {
                Some(store) => Arc::new(StoredToken::new(store)),
                None => Arc::new(eff.token_command()?),
            },
        },
    };
    Ok((auth, endpoints))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_specs_parse_and_hide_their_secrets() {
        assert_eq!(StoreSpec::parse("file"), Ok(StoreSpec::File(None)));
        assert_eq!(
            StoreSpec::parse("file:/x/t.json"),
            Ok(StoreSpec::File(Some("/x/t.json".into())))
        );
        assert!(StoreSpec::parse("file:").is_err());
        assert!(StoreSpec::parse("memory:").is_err());
        let redis = StoreSpec::parse("redis://:hunter2@h:6379/0?key=k").unwrap();
        assert!(!redis.show().contains("hunter2"), "{}", redis.show());
        let cmd = StoreSpec::parse("command:get-token --password hunter2").unwrap();
        assert_eq!(
            cmd,
            StoreSpec::Command(vec![
                "get-token".into(),
                "--password".into(),
                "hunter2".into()
            ])
        );
        assert!(!format!("{cmd:?}").contains("hunter2"));
        assert!(StoreSpec::parse("command:  ").is_err());
        assert_eq!(AuthKind::parse("JWT"), Ok(AuthKind::Jwt));
        assert!(AuthKind::parse("basic").is_err());
    }
}
