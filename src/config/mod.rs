//! The configuration of boxfs: a TOML file (`config.toml` in the XDG config directory,
//! `~/.config/boxfs`, or `--config FILE` / `BOXFS_CONFIG`) holding the app's credentials,
//! where tokens are kept, the API URL, cache and mount defaults, and named profiles
//! (`[profiles.NAME]`, chosen with `--profile NAME` / `BOXFS_PROFILE`; `default` when none is
//! named). `boxfs login` records in the profile how to authenticate.
//!
//! Each key's value comes from the first of: the command line, the environment
//! (`BOXFS_<KEY>`), the profile, the file's top level, the built-in default. [`Effective`]
//! keeps, for every key, which of them it came from, for `boxfs config show` and for error
//! messages that say where a wrong value was written.

pub mod auth;
pub mod client;
pub mod file;
pub mod http;
pub mod settings;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

pub use auth::{authenticator, AuthKind, StoreSpec};
use box_client::Endpoints;
pub use client::client;
pub use http::http_client;
pub use settings::{Mode, Settings, Size};

/// The profile used when none is named.
pub const DEFAULT_PROFILE: &str = "default";
pub const DEFAULT_CACHE_SIZE: u64 = 8 << 30;
pub const DEFAULT_ROOT_FOLDER: &str = "0";
pub const DEFAULT_UMASK: u32 = 0o022;
/// How long `boxfs login` waits for the browser, in seconds.
pub const DEFAULT_LOGIN_TIMEOUT: u64 = 300;

/// Which configuration file and profile: the flags every command that reads the
/// configuration takes.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Selection {
    /// The configuration file [default: config.toml in the XDG config directory,
    /// ~/.config/boxfs].
    #[arg(long, value_name = "FILE", env = "BOXFS_CONFIG")]
    pub config: Option<PathBuf>,
    /// The profile to use ([profiles.NAME] in the configuration file) [default: default].
    #[arg(long, value_name = "NAME", env = "BOXFS_PROFILE")]
    pub profile: Option<String>,
}

/// Where a value came from, highest precedence first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    CommandLine,
    Environment,
    Profile(String),
    File,
    Default,
}

impl Source {
    /// Higher wins.
    fn rank(&self) -> u8 {
        match self {
            Source::CommandLine => 4,
            Source::Environment => 3,
            Source::Profile(_) => 2,
            Source::File => 1,
            Source::Default => 0,
        }
    }
}

/// The built-in defaults (the lowest layer).
pub fn defaults() -> Settings {
    Settings {
        token_store: Some(StoreSpec::File(None)),
        login_port: Some(0),
        login_timeout: Some(DEFAULT_LOGIN_TIMEOUT),
        foreground: Some(false),
        read_only: Some(false),
        root_folder_id: Some(DEFAULT_ROOT_FOLDER.into()),
        cache_size: Some(Size(DEFAULT_CACHE_SIZE)),
        metadata_cache_entries: Some(crate::fs::FsOptions::default().max_inodes),
        umask: Some(Mode(DEFAULT_UMASK)),
        allow_other: Some(false),
        box_locks: Some(false),
        posix_attributes: Some(false),
        ..Settings::default()
    }
}

/// A configuration file as read, with the profile chosen.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file (it may not exist yet).
    pub path: PathBuf,
    pub exists: bool,
    pub profile: String,
    top: Settings,
    profiles: BTreeMap<String, Settings>,
}

/// The configuration file used when none is named.
pub fn default_config_file() -> Result<PathBuf, String> {
    directories::ProjectDirs::from("", "", "boxfs")
        .map(|d| d.config_dir().join("config.toml"))
        .ok_or_else(|| "cannot find the home directory: name a file with --config FILE".into())
}

impl Config {
    /// Reads the selected file. The default file may be missing (nothing is configured
    /// then); a file named with `--config` must exist, and so must a profile named with
    /// `--profile` (`default` may be absent).
    pub fn load(selection: &Selection) -> Result<Config, String> {
        let config = Config::read(selection, false)?;
        if config.profile != DEFAULT_PROFILE && !config.profiles.contains_key(&config.profile) {
            let known: Vec<&str> = config.profiles.keys().map(String::as_str).collect();
            return Err(format!(
                "profile '{}' is not in {} (profiles there: {}); `boxfs login --profile {}` \
                 creates it",
                config.profile,
                config.path.display(),
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                },
                config.profile
            ));
        }
        Ok(config)
    }

    /// As [`Config::load`], but the file and the profile may be missing: `boxfs login`
    /// creates them.
    pub fn load_for_login(selection: &Selection) -> Result<Config, String> {
        Config::read(selection, true)
    }

    fn read(selection: &Selection, may_be_missing: bool) -> Result<Config, String> {
        let profile = selection
            .profile
            .clone()
            .unwrap_or_else(|| DEFAULT_PROFILE.to_string());
        file::check_profile_name(&profile)?;
        let (path, named) = match &selection.config {
            Some(p) => (p.clone(), true),
            None => (default_config_file()?, false),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if named && !may_be_missing {
                    return Err(format!(
                        "the configuration file {} does not exist",
                        path.display()
                    ));
                }
                None
            }
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let (top, profiles) = match &text {
            Some(text) => file::parse(&path, text)?,
            None => Default::default(),
        };
        Ok(Config {
            exists: text.is_some(),
            path,
            profile,
            top,
            profiles,
        })
    }

    /// The effective values: `given` (the command line) over the environment over the
    /// profile over the file over the defaults.
    pub fn resolve(&self, given: Settings) -> Result<Effective, String> {
        self.resolve_with_env(given, &|var| std::env::var(var).ok())
    }

    /// [`Config::resolve`] with the environment read through `env`.
    pub fn resolve_with_env(
        &self,
        given: Settings,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Effective, String> {
        let env = Settings::from_env(env)?;
        // clap hands over a flag's environment variable as if it were the flag: a value the
        // environment holds as well is counted as the environment's.
        let given = given.without_values_of(&env);
        let profile = self
            .profiles
            .get(&self.profile)
            .cloned()
            .unwrap_or_default();
        let defaults = defaults();
        let (values, sources) = Settings::layered(&[
            (Source::CommandLine, &given),
            (Source::Environment, &env),
            (Source::Profile(self.profile.clone()), &profile),
            (Source::File, &self.top),
            (Source::Default, &defaults),
        ]);
        Ok(Effective {
            values,
            sources,
            profile: self.profile.clone(),
            file: self.path.clone(),
            file_exists: self.exists,
        })
    }

    /// Sets and removes keys of this profile in the file (see [`file::record_profile`]).
    pub fn record(&self, set: &[(&str, String)], remove: &[&str]) -> Result<(), String> {
        file::record_profile(&self.path, &self.profile, set, remove)
    }
}

/// Every key's effective value and where it came from.
#[derive(Debug, Clone)]
pub struct Effective {
    pub values: Settings,
    pub sources: BTreeMap<&'static str, Source>,
    pub profile: String,
    pub file: PathBuf,
    pub file_exists: bool,
}

impl Effective {
    pub fn source(&self, key: &str) -> Option<&Source> {
        self.sources.get(key)
    }

    /// How high the layer that set `key` is (0 when unset or a default).
    fn rank(&self, key: &str) -> u8 {
        self.source(key).map_or(0, Source::rank)
    }

    /// Where `key` was set, for messages: `api_url (environment variable BOXFS_API_URL)`.
    pub fn origin(&self, key: &str) -> String {
        match self.source(key) {
            Some(source) => format!("{key} ({})", self.describe(key, source)),
            None => format!("{key} (not set)"),
        }
    }

    fn describe(&self, key: &str, source: &Source) -> String {
        match source {
            Source::CommandLine => "command line".into(),
            Source::Environment => format!("environment variable {}", settings::env_var(key)),
            Source::Profile(name) => format!("[profiles.{name}] of {}", self.file.display()),
            Source::File => self.file.display().to_string(),
            Source::Default => "default".into(),
        }
    }

    /// A readable error about the value of `key`.
    pub fn bad(&self, key: &str, e: impl fmt::Display) -> String {
        format!("{}: {e}", self.origin(key))
    }

    /// The API's endpoints: `api_url`'s, or Box's own.
    pub fn endpoints(&self) -> Result<Endpoints, String> {
        match &self.values.api_url {
            Some(url) => Endpoints::from_base(url).map_err(|e| self.bad("api_url", e)),
            None => Ok(Endpoints::box_com()),
        }
    }

    /// What `boxfs config show` prints: the file, the profile, then every key with its
    /// value (secrets masked) and its source.
    pub fn show(&self) -> String {
        let mut out = format!(
            "configuration file: {}{}\nprofile: {}\n\n",
            self.file.display(),
            if self.file_exists {
                ""
            } else {
                " (does not exist)"
            },
            self.profile
        );
        let rows: Vec<(&str, String, String)> = self
            .values
            .shown()
            .into_iter()
            .map(|(key, value)| {
                let mut value = value.unwrap_or_else(|| "-".into());
                if key == "token_store"
                    && matches!(self.values.token_store, Some(StoreSpec::File(None)))
                {
                    value = format!("file ({})", self.token_store_shown());
                }
                // An API behind a proxy may carry `user:password@`.
                if key == "api_url" {
                    value = box_client::secret::redact_url_text(&value);
                }
                let source = match self.source(key) {
                    Some(s) => self.describe(key, s),
                    None => "not set".into(),
                };
                (key, value, source)
            })
            .collect();
        let key_width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        let value_width = rows
            .iter()
            .map(|r| r.1.chars().count())
            .max()
            .unwrap_or(0)
            .min(48);
        for (key, value, source) in rows {
            out.push_str(&format!(
                "{key:<key_width$}  {value:<value_width$}  {source}\n"
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str, profile: &str) -> Config {
        let (top, profiles) = file::parse(&PathBuf::from("/c.toml"), text).unwrap();
        Config {
            path: "/c.toml".into(),
            exists: true,
            profile: profile.into(),
            top,
            profiles,
        }
    }

    #[test]
    fn flag_beats_environment_beats_profile_beats_file_beats_default() {
        let c = config(
            "api_url = \"http://file\"\nuid = 1\ngid = 1\nas_user = \"1\"\n\
             [profiles.work]\napi_url = \"http://profile\"\nuid = 2\ngid = 2\n",
            "work",
        );
        let env = |var: &str| match var {
            "BOXFS_API_URL" => Some("http://env".to_string()),
            "BOXFS_UID" => Some("3".to_string()),
            _ => None,
        };
        let given = Settings {
            api_url: Some("http://flag".into()),
            ..Settings::default()
        };
        let eff = c.resolve_with_env(given, &env).unwrap();
        assert_eq!(eff.values.api_url.as_deref(), Some("http://flag"));
        assert_eq!(eff.source("api_url"), Some(&Source::CommandLine));
        assert_eq!(eff.values.uid, Some(3));
        assert_eq!(eff.source("uid"), Some(&Source::Environment));
        assert_eq!(eff.values.gid, Some(2));
        assert_eq!(eff.source("gid"), Some(&Source::Profile("work".into())));
        assert_eq!(eff.source("as_user"), Some(&Source::File));
        assert_eq!(eff.source("umask"), Some(&Source::Default));
        assert_eq!(eff.source("log_file"), None);
        // clap gives an environment value as the flag's: it stays the environment's.
        let from_env = Settings {
            uid: Some(3),
            ..Settings::default()
        };
        let eff = c.resolve_with_env(from_env, &env).unwrap();
        assert_eq!(eff.source("uid"), Some(&Source::Environment));
        assert!(eff.origin("uid").contains("BOXFS_UID"));
    }

    #[test]
    fn a_token_from_a_higher_layer_than_auth_wins() {
        let c = config("[profiles.default]\nauth = \"jwt\"\n", "default");
        let none = |_: &str| None;
        let eff = c.resolve_with_env(Settings::default(), &none).unwrap();
        assert_eq!(eff.auth_kind(), Ok(AuthKind::Jwt));
        let with_token = |v: &str| (v == "BOXFS_TOKEN").then(|| "t".to_string());
        let eff = c
            .resolve_with_env(Settings::default(), &with_token)
            .unwrap();
        assert_eq!(eff.auth_kind(), Ok(AuthKind::Token));
        let bare = config("", "default")
            .resolve_with_env(Settings::default(), &none)
            .unwrap();
        assert!(bare.auth_kind().unwrap_err().contains("boxfs login"));
    }

    #[test]
    fn show_masks_secrets_and_names_sources() {
        let c = config(
            "client_secret = \"hunter2\"\ntoken_store = \"redis://:pw@h/0\"\n\
             api_url = \"https://me:apipw@proxy.example/box\"\n\
             [profiles.unix]\ntoken_store = \"redis+unix:///run/r.sock?db=1&pass=sockpw\"\n",
            "default",
        );
        let env = |v: &str| (v == "BOXFS_TOKEN").then(|| "tok-123".to_string());
        let shown = c
            .resolve_with_env(Settings::default(), &env)
            .unwrap()
            .show();
        for secret in ["hunter2", "tok-123", ":pw@", "apipw"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        let mut unix = c.clone();
        unix.profile = "unix".into();
        let eff = unix.resolve_with_env(Settings::default(), &env).unwrap();
        assert!(!eff.show().contains("sockpw"), "{}", eff.show());
        assert!(eff.show().contains("/run/r.sock"), "{}", eff.show());
        // Errors about the URL do not quote the password either.
        let bad = Settings {
            api_url: Some("ftp://me:apipw@h".into()),
            ..Settings::default()
        };
        let err = c
            .resolve_with_env(bad, &env)
            .unwrap()
            .endpoints()
            .unwrap_err();
        assert!(!err.contains("apipw") && err.contains("ftp://"), "{err}");
        assert!(
            shown.contains("environment variable BOXFS_TOKEN"),
            "{shown}"
        );
        assert!(shown.contains("cache_size"), "{shown}");
    }
}
