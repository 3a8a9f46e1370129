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
const SECRET_KEYS: [&str; 12] = [
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
];

pub fn is_secret_key(key: &str) -> bool {
    SECRET_KEYS.iter().any(|k| k.eq_ignore_ascii_case(key))
}

/// A URL fit for a log line: the values of secret query parameters are replaced.
pub fn redact_url(url: &url::Url) -> String {
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
