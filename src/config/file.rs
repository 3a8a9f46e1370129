//! The configuration file on disk: reading it with errors that name the file, the line and
//! the key, and recording a login in a profile without disturbing the rest of the file (its
//! comments and layout are kept; the file is rewritten atomically, mode 0600, since it may
//! hold a client secret).

use std::collections::BTreeMap;
use std::path::Path;

use super::settings::{FileLayout, Settings};
use box_client::auth::store::file::write_atomically;

/// What a new configuration file starts with.
const NEW_FILE_HEADER: &str = "# boxfs configuration. Top-level keys apply to every profile; \
[profiles.NAME] tables override them.\n# `boxfs config show` lists every key with its effective value.\n\n";

/// A profile name: it becomes part of file names (`tokens-NAME.json`).
pub fn check_profile_name(name: &str) -> Result<(), String> {
    if !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(())
    } else {
        Err(format!(
            "'{name}' is not a profile name (letters, digits, - and _ only)"
        ))
    }
}

/// Parses a configuration file's text into its top level and its profiles.
pub fn parse(path: &Path, text: &str) -> Result<(Settings, BTreeMap<String, Settings>), String> {
    let de = toml::Deserializer::parse(text).map_err(|e| located(path, text, &e, ""))?;
    let layout: FileLayout = serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        located(path, text, e.inner(), &key)
    })?;
    let (top, profiles) = layout.split();
    for name in profiles.keys() {
        check_profile_name(name)
            .map_err(|m| format!("{}: [profiles.{name}]: {m}", path.display()))?;
    }
    Ok((top, profiles))
}

/// `FILE, line N, key K: what is wrong`. Only the message is kept from the parser, never
/// the offending line: it may hold a secret.
fn located(path: &Path, text: &str, e: &toml::de::Error, key: &str) -> String {
    let mut key = if key == "." {
        String::new()
    } else {
        key.to_string()
    };
    let mut message = e.message().to_string();
    // serde names an unknown key in the message; the path may or may not end with it.
    if let Some(rest) = message.strip_prefix("unknown field `") {
        if let Some(name) = rest.split('`').next() {
            if key.is_empty() {
                key = name.to_string();
            } else if key.rsplit('.').next() != Some(name) {
                key = format!("{key}.{name}");
            }
            message = "unknown key (`boxfs config show` lists the keys)".into();
        }
    }
    let mut out = path.display().to_string();
    if let Some(span) = e.span() {
        let before = text.get(..span.start).unwrap_or(text);
        out.push_str(&format!(", line {}", before.matches('\n').count() + 1));
    }
    if !key.is_empty() {
        out.push_str(&format!(", key {key}"));
    }
    format!("{out}: {message}")
}

/// Sets `set` and removes `remove` in `[profiles.PROFILE]` of the file at `path` (created if
/// missing), keeping everything else as it was written.
pub fn record_profile(
    path: &Path,
    profile: &str,
    set: &[(&str, String)],
    remove: &[&str],
) -> Result<(), String> {
    let (text, header) = match std::fs::read_to_string(path) {
        Ok(text) => (text, ""),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (String::new(), NEW_FILE_HEADER),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| format!("{}: {}", path.display(), e.message()))?;
    let not_table = |what: &str| format!("{}: {what} is not a table", path.display());
    let profiles = doc
        .entry("profiles")
        .or_insert_with(|| {
            let mut t = toml_edit::Table::new();
            t.set_implicit(true);
            toml_edit::Item::Table(t)
        })
        .as_table_mut()
        .ok_or_else(|| not_table("profiles"))?;
    let table = profiles
        .entry(profile)
        .or_insert(toml_edit::table())
        .as_table_mut()
        .ok_or_else(|| not_table(&format!("profiles.{profile}")))?;
    for (key, value) in set {
        table[*key] = toml_edit::value(value.as_str());
    }
    for key in remove {
        table.remove(key);
    }
    write_atomically(path, format!("{header}{doc}").as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn errors_name_the_file_line_and_key_but_not_the_value() {
        let p = Path::new("/etc/boxfs.toml");
        let e = parse(
            p,
            "api_url = \"x\"\n[profiles.work]\ncache_size = \"lots\"\n",
        )
        .unwrap_err();
        assert!(
            e.starts_with("/etc/boxfs.toml, line 3, key profiles.work.cache_size: "),
            "{e}"
        );
        let e = parse(p, "\n\nchache_size = 1\n").unwrap_err();
        assert!(
            e.contains("line 3") && e.contains("key chache_size: unknown key"),
            "{e}"
        );
        let e = parse(p, "[profiles.w]\nsecretish = \"hunter2\"\n").unwrap_err();
        assert!(
            e.contains("key profiles.w.secretish") && !e.contains("hunter2"),
            "{e}"
        );
        let e = parse(p, "client_secret = \"hunter2\n").unwrap_err();
        assert!(e.contains("line 1") && !e.contains("hunter2"), "{e}");
        let e = parse(p, "[profiles.\"a b\"]\n").unwrap_err();
        assert!(e.contains("not a profile name"), "{e}");
    }

    #[test]
    fn recording_a_profile_keeps_the_rest_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/config.toml");
        record_profile(&path, "default", &[("auth", "oauth".into())], &[]).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let written = std::fs::read_to_string(&path).unwrap();
        assert!(written.starts_with("# boxfs configuration"), "{written}");
        std::fs::write(
            &path,
            format!("# my cache\ncache_size = \"1G\"\n\n{written}\n[profiles.work]\nuser_id = \"5\" # me\n"),
        )
        .unwrap();
        record_profile(
            &path,
            "work",
            &[("auth", "ccg".into()), ("enterprise_id", "9".into())],
            &["user_id"],
        )
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("# my cache\ncache_size = \"1G\""), "{text}");
        let (top, profiles) = parse(&path, &text).unwrap();
        assert_eq!(top.cache_size.map(|s| s.0), Some(1 << 30));
        let work = &profiles["work"];
        assert_eq!(work.enterprise_id.as_deref(), Some("9"));
        assert_eq!(work.user_id, None);
        assert!(profiles["default"].auth.is_some());
    }
}
