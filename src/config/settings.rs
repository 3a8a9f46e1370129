//! The configuration keys: one typed, optional value per key in [`Settings`], which is what
//! every layer of the configuration holds (the file's top level, a profile, the environment,
//! the command line) and what they resolve to. The `settings!` list below is the one place a
//! key is declared: it gives the key its type, its environment variable (`BOXFS_` and the
//! key in capitals) and its place in `boxfs config show`.
//!
//! Values are read leniently where a TOML writer would be surprised otherwise: a Box id may be
//! written as a number or a string, a size as `8G` or a number of bytes, a umask as `"022"`
//! or `0o022`, a switch as `true`, `"yes"` or `1`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use super::auth::{AuthKind, StoreSpec};
use box_client::{Rate, Secret};

/// A value as TOML (or the environment) wrote it, before the key's type reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Text(String),
    Int(i64),
    Bool(bool),
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Scalar, D::Error> {
        struct ScalarVisitor;
        impl Visitor<'_> for ScalarVisitor {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, a whole number or true/false")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar::Bool(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                i64::try_from(v)
                    .map(Scalar::Int)
                    .map_err(|_| E::custom("the number is too large"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::Text(v.to_string()))
            }
        }
        d.deserialize_any(ScalarVisitor)
    }
}

/// The type of a configuration key: how it is read from text (the environment, a flag) and
/// from TOML, and how `boxfs config show` prints it. Errors never quote the value (it may be
/// a secret written under the wrong key).
pub trait SettingValue: Sized + Clone + PartialEq {
    fn parse(text: &str) -> Result<Self, String>;

    fn from_scalar(v: Scalar) -> Result<Self, String> {
        match v {
            Scalar::Text(s) => Self::parse(&s),
            Scalar::Int(i) => Self::parse(&i.to_string()),
            Scalar::Bool(b) => Self::parse(&b.to_string()),
        }
    }

    fn show(&self) -> String;
}

impl SettingValue for String {
    fn parse(text: &str) -> Result<String, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("the value is empty".into());
        }
        Ok(text.to_string())
    }
    fn from_scalar(v: Scalar) -> Result<String, String> {
        match v {
            Scalar::Text(s) => Self::parse(&s),
            Scalar::Int(i) => Ok(i.to_string()),
            Scalar::Bool(_) => Err("expected text, found true/false".into()),
        }
    }
    fn show(&self) -> String {
        self.clone()
    }
}

impl SettingValue for Secret {
    fn parse(text: &str) -> Result<Secret, String> {
        String::parse(text).map(Secret::new)
    }
    fn show(&self) -> String {
        // `Secret`'s Display: the value never shows.
        self.to_string()
    }
}

impl SettingValue for PathBuf {
    fn parse(text: &str) -> Result<PathBuf, String> {
        String::parse(text).map(PathBuf::from)
    }
    fn from_scalar(v: Scalar) -> Result<PathBuf, String> {
        match v {
            Scalar::Text(s) => Self::parse(&s),
            _ => Err("expected a path (a string)".into()),
        }
    }
    fn show(&self) -> String {
        self.display().to_string()
    }
}

impl SettingValue for bool {
    fn parse(text: &str) -> Result<bool, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" | "y" | "t" => Ok(true),
            "0" | "false" | "no" | "off" | "n" | "f" => Ok(false),
            _ => Err("expected true or false".into()),
        }
    }
    fn show(&self) -> String {
        self.to_string()
    }
}

macro_rules! number_setting {
    ($($t:ty),*) => {$(
        impl SettingValue for $t {
            fn parse(text: &str) -> Result<$t, String> {
                text.trim()
                    .parse()
                    .map_err(|_| format!("expected a whole number from {} to {}", <$t>::MIN, <$t>::MAX))
            }
            fn show(&self) -> String {
                self.to_string()
            }
        }
    )*};
}
number_setting!(u16, u32, u64, usize);

/// A number of bytes, written `512M`, `8G` or `1048576`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

/// `512M`, `8G`, `1048576` (K, M, G and T are powers of 1024; `KiB`, `MB` … are read alike).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, ""),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("'{s}' is not a size (like 512M or 8G)"))?;
    let shift = match unit
        .trim()
        .to_ascii_uppercase()
        .trim_end_matches("IB")
        .trim_end_matches('B')
    {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return Err(format!("'{s}': unknown unit '{unit}' (use K, M, G or T)")),
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("'{s}' is too large"))
}

impl SettingValue for Size {
    fn parse(text: &str) -> Result<Size, String> {
        parse_size(text).map(Size)
    }
    fn show(&self) -> String {
        for (unit, shift) in [("T", 40), ("G", 30), ("M", 20), ("K", 10)] {
            if self.0 >= 1 << shift && self.0 % (1 << shift) == 0 {
                return format!("{}{unit}", self.0 >> shift);
            }
        }
        self.0.to_string()
    }
}

impl SettingValue for Rate {
    fn parse(text: &str) -> Result<Rate, String> {
        text.parse()
            .map_err(|e: box_client::pacer::RateParseError| e.to_string())
    }
    fn show(&self) -> String {
        self.to_string()
    }
}

/// Permission bits, written in octal: `022`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode(pub u32);

/// An octal mask like `022` (at most `0777`).
pub fn parse_octal(s: &str) -> Result<u32, String> {
    let v = u32::from_str_radix(s.trim().trim_start_matches("0o"), 8)
        .map_err(|_| format!("'{s}' is not an octal mask like 022"))?;
    if v > 0o777 {
        return Err(format!("'{s}' is more than 0777"));
    }
    Ok(v)
}

impl SettingValue for Mode {
    fn parse(text: &str) -> Result<Mode, String> {
        parse_octal(text).map(Mode)
    }
    /// TOML's `0o022` arrives as the number 18: a number is the mask itself.
    fn from_scalar(v: Scalar) -> Result<Mode, String> {
        match v {
            Scalar::Int(i) if (0..=0o777).contains(&i) => Ok(Mode(i as u32)),
            Scalar::Int(_) => Err("a umask is at most 0o777".into()),
            Scalar::Text(s) => Self::parse(&s),
            Scalar::Bool(_) => Err("expected an octal mask like \"022\"".into()),
        }
    }
    fn show(&self) -> String {
        format!("{:03o}", self.0)
    }
}

/// Reads one key of a TOML table through [`SettingValue::from_scalar`].
fn scalar<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: SettingValue,
{
    T::from_scalar(Scalar::deserialize(d)?)
        .map(Some)
        .map_err(de::Error::custom)
}

/// The environment variable of a key: `cache_size` → `BOXFS_CACHE_SIZE`.
pub fn env_var(key: &str) -> String {
    format!("BOXFS_{}", key.to_ascii_uppercase())
}

fn env_value<T: SettingValue>(
    key: &str,
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<T>, String> {
    let var = env_var(key);
    match get(&var) {
        // An empty variable counts as unset, as clap counts it.
        Some(text) if !text.trim().is_empty() => T::parse(&text)
            .map(Some)
            .map_err(|e| format!("environment variable {var}: {e}")),
        _ => Ok(None),
    }
}

macro_rules! settings {
    ($( $(#[doc = $doc:literal])* $key:ident : $ty:ty, )*) => {
        /// One layer of the configuration, or all of them resolved: every key optional.
        #[derive(Debug, Clone, Default, PartialEq, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct Settings {
            $(
                $(#[doc = $doc])*
                #[serde(default, deserialize_with = "scalar")]
                pub $key: Option<$ty>,
            )*
        }

        /// The whole file: its top-level keys (defaults for every profile) and its profiles.
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(crate) struct FileLayout {
            $(
                #[serde(default, deserialize_with = "scalar")]
                $key: Option<$ty>,
            )*
            #[serde(default)]
            profiles: BTreeMap<String, Settings>,
        }

        impl FileLayout {
            /// The top level and the profiles.
            pub(crate) fn split(self) -> (Settings, BTreeMap<String, Settings>) {
                (Settings { $($key: self.$key,)* }, self.profiles)
            }
        }

        impl Settings {
            /// Every key, in the order `boxfs config show` prints them.
            pub const KEYS: &'static [&'static str] = &[$(stringify!($key)),*];

            /// The `BOXFS_*` variables `get` knows (`std::env::var` in the program).
            pub fn from_env(get: &dyn Fn(&str) -> Option<String>) -> Result<Settings, String> {
                Ok(Settings { $($key: env_value(stringify!($key), get)?,)* })
            }

            /// Each key from the first layer that has it, and which layer that was.
            pub fn layered<S: Clone>(layers: &[(S, &Settings)]) -> (Settings, BTreeMap<&'static str, S>) {
                let mut out = Settings::default();
                let mut sources = BTreeMap::new();
                $(
                    if let Some((source, v)) = layers
                        .iter()
                        .find_map(|(s, l)| l.$key.clone().map(|v| (s.clone(), v)))
                    {
                        out.$key = Some(v);
                        sources.insert(stringify!($key), source);
                    }
                )*
                (out, sources)
            }

            /// `self` without the values `other` has as well.
            pub fn without_values_of(mut self, other: &Settings) -> Settings {
                $(
                    if self.$key.is_some() && self.$key == other.$key {
                        self.$key = None;
                    }
                )*
                self
            }

            /// Every key with its value as `boxfs config show` prints it (secrets masked).
            pub fn shown(&self) -> Vec<(&'static str, Option<String>)> {
                vec![$((stringify!($key), self.$key.as_ref().map(SettingValue::show)),)*]
            }
        }
    };
}

settings! {
    /// How to authenticate: oauth, jwt, ccg, token or command (`boxfs login` records it).
    auth: AuthKind,
    /// The API's base URL (Box itself when unset).
    api_url: String,
    /// API calls a minute this account may make (`1000`, `20/s`, `unlimited`); Box allows 1,000.
    api_rate: Rate,
    /// Uploads a minute this account may start; Box allows 240.
    upload_rate: Rate,
    /// A PEM file of CA certificates trusted besides the system's: a TLS-inspecting proxy's CA.
    ca_cert: PathBuf,
    /// The app's OAuth 2.0 / client-credentials client id.
    client_id: String,
    /// The app's client secret.
    client_secret: Secret,
    /// Where OAuth tokens (or a developer token) are kept: file, file:PATH, redis://…, command:PROGRAM.
    token_store: StoreSpec,
    /// A bare access token (a developer token), used as it is.
    token: Secret,
    /// The developer console's app config JSON, for JWT.
    jwt_config: PathBuf,
    /// The user JWT or client-credentials tokens act as.
    user_id: String,
    /// The enterprise whose service account JWT or client-credentials tokens act as.
    enterprise_id: String,
    /// The loopback port `boxfs login` listens on for Box's redirect (0: any free port).
    login_port: u16,
    /// How long `boxfs login` waits for the redirect, in seconds.
    login_timeout: u64,
    /// Keep `boxfs mount` attached to the terminal.
    foreground: bool,
    /// Mount read-only.
    read_only: bool,
    /// The Box folder to mount.
    root_folder_id: String,
    /// Act as this user (Box's As-User header).
    as_user: String,
    /// Where a mount keeps cached content and its log.
    cache_dir: PathBuf,
    /// Bound of the content cache.
    cache_size: Size,
    /// Memory all open files together may hold while reading ahead.
    read_budget: Size,
    /// Ranged GETs all open files together may have in flight.
    read_connections: usize,
    /// Bound of the metadata cache, in files and folders.
    metadata_cache_entries: usize,
    /// Owner shown for every file.
    uid: u32,
    /// Group shown for every file.
    gid: u32,
    /// Permission bits removed from 0777 and 0666.
    umask: Mode,
    /// Let other users reach the mount.
    allow_other: bool,
    /// Where a detached mount logs.
    log_file: PathBuf,
    /// Upload in the background this many seconds after close instead of before close returns.
    write_back: u64,
    /// Turn flock and fcntl write locks on files into Box locks, seen by every machine.
    box_locks: bool,
    /// Keep modes and symbolic links on Box, in each item's global.properties metadata.
    posix_attributes: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<(Settings, BTreeMap<String, Settings>), String> {
        toml::from_str::<FileLayout>(text)
            .map(FileLayout::split)
            .map_err(|e| e.message().to_string())
    }

    #[test]
    fn values_are_read_leniently_but_typed() {
        let (top, profiles) = parse(
            "cache_size = \"512M\"\numask = 0o027\nroot_folder_id = 123\nread_only = \"yes\"\n\
             [profiles.work]\numask = \"077\"\ncache_size = 4096\n",
        )
        .unwrap();
        assert_eq!(top.cache_size, Some(Size(512 << 20)));
        assert_eq!(top.umask, Some(Mode(0o027)));
        assert_eq!(top.root_folder_id.as_deref(), Some("123"));
        assert_eq!(top.read_only, Some(true));
        assert_eq!(profiles["work"].umask, Some(Mode(0o077)));
        assert_eq!(profiles["work"].cache_size, Some(Size(4096)));
        assert!(parse("cache_size = \"8X\"")
            .unwrap_err()
            .contains("unknown unit"));
        assert!(parse("uid = \"me\"").is_err());
        assert!(parse("read_only = [1]").is_err());
        assert!(parse("chache_size = 1")
            .unwrap_err()
            .contains("chache_size"));
        assert!(parse("[profiles.a.profiles.b]").is_err());
    }

    #[test]
    fn layers_take_the_first_value_and_remember_where_it_came_from() {
        let high = Settings {
            api_url: Some("http://high".into()),
            ..Settings::default()
        };
        let low = Settings {
            api_url: Some("http://low".into()),
            uid: Some(7),
            ..Settings::default()
        };
        let (out, sources) = Settings::layered(&[("high", &high), ("low", &low)]);
        assert_eq!(out.api_url.as_deref(), Some("http://high"));
        assert_eq!(out.uid, Some(7));
        assert_eq!(sources["api_url"], "high");
        assert_eq!(sources["uid"], "low");
        assert!(!sources.contains_key("gid"));
        assert_eq!(high.clone().without_values_of(&high), Settings::default());
    }

    #[test]
    fn environment_values_parse_with_the_key_and_secrets_never_show() {
        let env = |var: &str| match var {
            "BOXFS_CACHE_SIZE" => Some("2G".to_string()),
            "BOXFS_CLIENT_SECRET" => Some("hunter2".to_string()),
            "BOXFS_UID" => Some(String::new()),
            _ => None,
        };
        let s = Settings::from_env(&env).unwrap();
        assert_eq!(s.cache_size, Some(Size(2 << 30)));
        assert_eq!(s.uid, None);
        let shown = format!("{:?}", s.shown());
        assert!(
            !shown.contains("hunter2") && shown.contains("2G"),
            "{shown}"
        );
        let bad = |var: &str| (var == "BOXFS_UMASK").then(|| "999".to_string());
        assert!(Settings::from_env(&bad)
            .unwrap_err()
            .contains("BOXFS_UMASK"));
    }

    #[test]
    fn sizes_and_modes_print_as_written() {
        assert_eq!(Size(8 << 30).show(), "8G");
        assert_eq!(Size(1536).show(), "1536");
        assert_eq!(Mode(0o22).show(), "022");
        assert_eq!(parse_size("1KiB"), Ok(1024));
        assert!(parse_octal("0888").is_err());
    }
}
