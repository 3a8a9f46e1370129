//! A call rate as a user writes it (`1000`, `1000/min`, `20/s`, `unlimited`), and the
//! kinds of request Box limits separately.

use std::fmt;
use std::str::FromStr;

/// Calls allowed per minute, or no limit at all.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    PerMinute(f64),
    Unlimited,
}

impl Rate {
    pub fn per_minute(calls: f64) -> Rate {
        Rate::PerMinute(calls)
    }

    pub fn per_second(calls: f64) -> Rate {
        Rate::PerMinute(calls * 60.0)
    }

    /// Calls per second, `None` when unlimited.
    pub(crate) fn per_sec(&self) -> Option<f64> {
        match self {
            Rate::PerMinute(m) => Some(m / 60.0),
            Rate::Unlimited => None,
        }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rate::PerMinute(m) => write!(f, "{m}/min"),
            Rate::Unlimited => f.write_str("unlimited"),
        }
    }
}

/// Why a rate could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a call rate: give calls per minute ('1000' or '1000/min'), per second ('20/s') or 'unlimited'")]
pub struct RateParseError(pub String);

impl FromStr for Rate {
    type Err = RateParseError;

    fn from_str(s: &str) -> Result<Rate, RateParseError> {
        let text = s.trim();
        if text.eq_ignore_ascii_case("unlimited") {
            return Ok(Rate::Unlimited);
        }
        let err = || RateParseError(s.to_string());
        let (count, unit) = match text.split_once('/') {
            Some((c, u)) => (c.trim(), u.trim().to_ascii_lowercase()),
            None => (text, "min".to_string()),
        };
        let count: f64 = count.parse().map_err(|_| err())?;
        if !count.is_finite() || count <= 0.0 {
            return Err(err());
        }
        match unit.as_str() {
            "m" | "min" | "minute" => Ok(Rate::per_minute(count)),
            "s" | "sec" | "second" => Ok(Rate::per_second(count)),
            _ => Err(err()),
        }
    }
}

/// The kinds of request Box counts against separate per-user limits. Every request counts
/// as a general call; uploads and searches also count against their own limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    General,
    /// `POST /files/content`, `POST /files/ID/content`, upload-session creation.
    Upload,
    /// `GET /search`.
    Search,
}

impl Kind {
    /// The kind of a request by its method and URL path.
    pub fn of(method: &reqwest::Method, path: &str) -> Kind {
        let segs: Vec<&str> = path.trim_end_matches('/').rsplit('/').take(3).collect();
        let post = method == reqwest::Method::POST;
        match segs.as_slice() {
            ["content", "files", ..] | ["upload_sessions", "files", ..] if post => Kind::Upload,
            ["content", _, "files"] | ["upload_sessions", _, "files"] if post => Kind::Upload,
            ["search", ..] if method == reqwest::Method::GET => Kind::Search,
            _ => Kind::General,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Kind::General => "api",
            Kind::Upload => "upload",
            Kind::Search => "search",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::Method;

    #[test]
    fn rates_parse_and_bad_ones_are_explained() {
        assert_eq!("1000".parse(), Ok(Rate::PerMinute(1000.0)));
        assert_eq!("1000/min".parse(), Ok(Rate::PerMinute(1000.0)));
        assert_eq!(" 20/s ".parse(), Ok(Rate::PerMinute(1200.0)));
        assert_eq!("2.5/sec".parse(), Ok(Rate::PerMinute(150.0)));
        assert_eq!("Unlimited".parse(), Ok(Rate::Unlimited));
        for bad in ["", "fast", "0", "-5", "10/h", "NaN", "1000/", "inf"] {
            let err = bad.parse::<Rate>().unwrap_err().to_string();
            assert!(
                err.contains("not a call rate") && err.contains("unlimited"),
                "{err}"
            );
        }
    }

    #[test]
    fn requests_are_classified_as_box_counts_them() {
        let k = |m: Method, p: &str| Kind::of(&m, p);
        assert_eq!(k(Method::POST, "/api/2.0/files/content"), Kind::Upload);
        assert_eq!(k(Method::POST, "/api/2.0/files/123/content"), Kind::Upload);
        assert_eq!(
            k(Method::POST, "/api/2.0/files/upload_sessions"),
            Kind::Upload
        );
        assert_eq!(
            k(Method::POST, "/api/2.0/files/9/upload_sessions"),
            Kind::Upload
        );
        assert_eq!(k(Method::GET, "/2.0/files/123/content"), Kind::General);
        assert_eq!(
            k(Method::PUT, "/api/2.0/files/upload_sessions/abc"),
            Kind::General
        );
        assert_eq!(k(Method::GET, "/2.0/search"), Kind::Search);
        assert_eq!(k(Method::GET, "/2.0/folders/0/items"), Kind::General);
    }
}
