//! `Secret`: a string that never shows itself. Tokens, client secrets, passphrases and
//! authorization codes travel as `Secret`s so that no `Debug`, `Display` or log line can
//! print them by accident; `expose()` is the one deliberate way to read one.

use std::fmt;

#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Secret {
        Secret(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Secret {
        Secret(s.to_string())
    }
}

/// Query and form keys whose values are secrets.
const SECRET_KEYS: [&str; 13] = [
    // A realtime long-poll URL's channel lets anyone listen to the account's events.
    "channel",
    "access_token",
    "refresh_token",
    "token",
    "code",
    "client_secret",
    "assertion",
    "password",
    "shared_link_password",
    "subject_token",
    "actor_token",
    "passphrase",
    // redis+unix:///run/redis.sock?pass=…
    "pass",
];

pub fn is_secret_key(key: &str) -> bool {
    SECRET_KEYS.iter().any(|k| k.eq_ignore_ascii_case(key))
}

/// A URL fit for a log line: a password (`user:password@`) and the values of secret query
/// parameters are replaced.
pub fn redact_url(url: &url::Url) -> String {
    let mut url = url.clone();
    if url.password().is_some() {
        let _ = url.set_password(Some("***"));
    }
    if url.query().is_none() {
        return url.to_string();
    }
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if is_secret_key(&k) {
                "[REDACTED]".to_string()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    let mut out = url.clone();
    out.query_pairs_mut().clear().extend_pairs(pairs);
    out.to_string()
}

/// A URL written in text (a setting, a message) fit to be shown, as [`redact_url`]. Text
/// that does not parse as a URL is shown with everything before an `@` replaced.
pub fn redact_url_text(text: &str) -> String {
    match url::Url::parse(text) {
        // Shown as written (no trailing `/` added) when there is nothing to hide.
        Ok(url)
            if url.password().is_none() && !url.query_pairs().any(|(k, _)| is_secret_key(&k)) =>
        {
            text.to_string()
        }
        Ok(url) => redact_url(&url),
        Err(_) => match text.rsplit_once('@') {
            Some((_, host)) => format!("***@{host}"),
            None => text.to_string(),
        },
    }
}

/// A JSON value fit for a log line: values under secret keys are replaced, recursively.
pub fn redact_json(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(m) => serde_json::Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let v = if is_secret_key(k) {
                        serde_json::json!("[REDACTED]")
                    } else {
                        redact_json(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        serde_json::Value::Array(a) => {
            serde_json::Value::Array(a.iter().map(redact_json).collect())
        }
        other => other.clone(),
    }
}

/// Form fields fit for a log line.
pub fn redact_form(fields: &[(String, String)]) -> String {
    fields
        .iter()
        .map(|(k, v)| {
            if is_secret_key(k) {
                format!("{k}=[REDACTED]")
            } else {
                format!("{k}={v}")
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "Secret(***) ***");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn passwords_in_urls_never_show() {
        for (text, hidden) in [
            ("redis+unix:///run/redis.sock?db=0&pass=hunter2", "hunter2"),
            ("redis://:hunter2@h:6379/0?key=k", "hunter2"),
            ("https://me:hunter2@box.example.com/base", "hunter2"),
            ("not a url but:hunter2@host", "hunter2"),
        ] {
            let shown = redact_url_text(text);
            assert!(!shown.contains(hidden), "{text} -> {shown}");
        }
        assert_eq!(
            redact_url_text("https://me:pw@h/base"),
            "https://me:***@h/base"
        );
        assert_eq!(redact_url_text("http://h"), "http://h");
    }

    #[test]
    fn urls_forms_and_json_are_redacted() {
        let u = url::Url::parse("http://h/x?access_token=abc&fields=name&code=zz").unwrap();
        let r = redact_url(&u);
        assert!(
            !r.contains("abc") && !r.contains("zz") && r.contains("fields=name"),
            "{r}"
        );
        let f = redact_form(&[
            ("grant_type".into(), "refresh_token".into()),
            ("refresh_token".into(), "rt".into()),
        ]);
        assert_eq!(f, "grant_type=refresh_token&refresh_token=[REDACTED]");
        let j = redact_json(
            &serde_json::json!({"a": {"client_secret": "s"}, "b": [{"password": "p"}]}),
        );
        assert!(!j.to_string().contains("\"s\"") && !j.to_string().contains("\"p\""));
    }
}
