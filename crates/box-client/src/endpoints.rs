//! Where the client sends what: Box spreads its API over several hosts (api, upload,
//! OAuth token, browser authorize). One base URL (`--api-url`) can stand for all of them,
//! laid out as `boxfs emulator` serves them.

use url::Url;

use super::error::BoxError;

#[derive(Debug, Clone)]
pub struct Endpoints {
    /// `https://api.box.com/2.0`
    pub api: Url,
    /// `https://upload.box.com/api/2.0`
    pub upload: Url,
    /// `https://api.box.com/oauth2` (token and revoke live under it)
    pub oauth: Url,
    /// `https://account.box.com/api/oauth2/authorize`
    pub authorize: Url,
}

fn parse(s: &str) -> Result<Url, BoxError> {
    Url::parse(s).map_err(|e| {
        BoxError::Config(format!(
            "'{}' is not a valid URL: {e}",
            super::secret::redact_url_text(s)
        ))
    })
}

impl Endpoints {
    /// Box's real hosts.
    pub fn box_com() -> Endpoints {
        Endpoints::from_parts(
            "https://api.box.com/2.0",
            "https://upload.box.com/api/2.0",
            "https://api.box.com/oauth2",
            "https://account.box.com/api/oauth2/authorize",
        )
        .expect("Box's URLs parse")
    }

    /// Every endpoint under one base URL, as `boxfs emulator` serves them.
    pub fn from_base(base: &str) -> Result<Endpoints, BoxError> {
        let base = base.trim_end_matches('/');
        let url = parse(base)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(BoxError::Config(format!(
                "'{}' is not an http(s) URL",
                super::secret::redact_url_text(base)
            )));
        }
        Endpoints::from_parts(
            &format!("{base}/2.0"),
            &format!("{base}/api/2.0"),
            &format!("{base}/oauth2"),
            &format!("{base}/api/oauth2/authorize"),
        )
    }

    pub fn from_parts(
        api: &str,
        upload: &str,
        oauth: &str,
        authorize: &str,
    ) -> Result<Endpoints, BoxError> {
        Ok(Endpoints {
            api: parse(api)?,
            upload: parse(upload)?,
            oauth: parse(oauth)?,
            authorize: parse(authorize)?,
        })
    }

    fn join(base: &Url, path: &str) -> Url {
        let mut s = base.as_str().trim_end_matches('/').to_string();
        s.push_str(path);
        Url::parse(&s).unwrap_or_else(|_| base.clone())
    }

    /// An API URL: `api("/folders/0")`.
    pub fn api(&self, path: &str) -> Url {
        Self::join(&self.api, path)
    }

    /// An upload-host URL: `upload("/files/content")`.
    pub fn upload(&self, path: &str) -> Url {
        Self::join(&self.upload, path)
    }

    pub fn token_url(&self) -> Url {
        Self::join(&self.oauth, "/token")
    }

    pub fn revoke_url(&self) -> Url {
        Self::join(&self.oauth, "/revoke")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_base_covers_every_host() {
        let e = Endpoints::from_base("http://127.0.0.1:8080/").unwrap();
        assert_eq!(
            e.api("/folders/0").as_str(),
            "http://127.0.0.1:8080/2.0/folders/0"
        );
        assert_eq!(
            e.upload("/files/content").as_str(),
            "http://127.0.0.1:8080/api/2.0/files/content"
        );
        assert_eq!(e.token_url().as_str(), "http://127.0.0.1:8080/oauth2/token");
        assert_eq!(
            e.authorize.as_str(),
            "http://127.0.0.1:8080/api/oauth2/authorize"
        );
        assert!(Endpoints::from_base("ftp://x").is_err());
        assert!(Endpoints::from_base("not a url").is_err());
        assert_eq!(
            Endpoints::box_com().token_url().as_str(),
            "https://api.box.com/oauth2/token"
        );
    }
}
