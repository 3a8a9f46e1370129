//! Box's host names, as Box routes them. Box spreads its API over several hosts and each
//! serves only its part: `api.box.com` the API (`/2.0/...`) and the OAuth token endpoint,
//! `upload.box.com` uploads (`/api/2.0/files/content`, upload sessions), `account.box.com`
//! the authorize page, `dl.boxcloud.com` download URLs, `app.box.com` shared-link pages, and
//! the realtime hosts the long-poll. The emulator serves all of them on one port; a request
//! that arrives for one of Box's names (through the HTTPS interception, `intercept.rs`, or as
//! a plain-HTTP proxy request for the realtime host) is held to what that host serves, and
//! the URLs handed out in its answer (download redirects, upload-session endpoints, the
//! realtime server, shared links) use Box's names too, so the client stays on them.
//! Requests to the emulator's own base URL are served whatever their path, as before.

use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// Box's API host.
pub const API_HOST: &str = "api.box.com";
/// Box's upload host.
pub const UPLOAD_HOST: &str = "upload.box.com";
/// Where Box's download redirects point.
pub const DOWNLOAD_HOST: &str = "dl.boxcloud.com";
/// Box's web app (shared-link pages).
pub const APP_HOST: &str = "app.box.com";
/// The realtime host `OPTIONS /events` names (Box's answers give it as plain `http://`).
pub const REALTIME_HOST: &str = "2.realtime.services.box.net";

/// Whether `host` is one of Box's (the interception answers for these and no other).
pub fn is_box_host(host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    host == "box.com"
        || host.ends_with(".box.com")
        || host.ends_with(".boxcloud.com")
        || host.ends_with(".box.net")
}

/// Which of Box's services a host name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Api,
    Upload,
    Account,
    App,
    Download,
    Realtime,
    /// A Box name that serves no part of the API.
    Other,
}

impl Service {
    pub fn of(host: &str) -> Service {
        let host = host.to_ascii_lowercase();
        match host.as_str() {
            "api.box.com" => Service::Api,
            // Box's Java SDK once used `upload.app.box.com`; both names upload.
            "upload.box.com" | "upload.app.box.com" => Service::Upload,
            "account.box.com" => Service::Account,
            "app.box.com" => Service::App,
            "dl.boxcloud.com" | "public.boxcloud.com" => Service::Download,
            h if h.ends_with(".app.box.com") => Service::App,
            h if h.ends_with(".realtime.services.box.net") => Service::Realtime,
            _ => Service::Other,
        }
    }

    /// Whether this service answers `path` (the emulator's route layout, which is Box's).
    pub fn serves(self, path: &str) -> bool {
        let under = |prefix: &str| path.starts_with(prefix);
        match self {
            Service::Api => under("/2.0/") || under("/oauth2/"),
            Service::Upload => under("/api/2.0/"),
            Service::Account => under("/api/oauth2/"),
            Service::App => {
                under("/s/") || under("/v/") || under("/shared/static/") || under("/api/oauth2/")
            }
            Service::Download => under("/dl/"),
            Service::Realtime => path == "/subscribe",
            Service::Other => false,
        }
    }
}

/// The answer for a path the host does not serve: an upload sent to `api.box.com`, an API
/// call sent to `upload.box.com`. Box answers these 404 with its error body and code
/// `not_found`, as for any unknown path (Box's Node SDK issue #794: uploads sent to the API
/// host's base URL failed with "404 Not Found"; Box's description documents no other status
/// for a wrong host).
pub fn wrong_host(host: &str, path: &str) -> Response {
    ApiError::new(
        404,
        "not_found",
        format!("Not Found: {host} does not serve {path}"),
    )
    .into_response()
}

/// Which names a request used to reach the emulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addressed {
    /// The emulator's own base URL.
    BaseUrl,
    /// One of Box's host names.
    BoxHosts,
}

tokio::task_local! {
    /// Set by the middleware around each request's handler.
    static ADDRESSED: Addressed;
}

/// Runs `handler` (a request's handling) knowing which names the request used; the URLs
/// built inside it by [`Urls::current`] follow.
pub async fn serve_as<F: std::future::Future>(addressed: Addressed, handler: F) -> F::Output {
    ADDRESSED.scope(addressed, handler).await
}

/// Where the URLs the emulator hands out point, for the request being handled.
#[derive(Debug, Clone)]
pub struct Urls {
    base: String,
    addressed: Addressed,
}

impl Urls {
    /// For the request being handled: Box's hosts when it came by them, else `base_url` (the
    /// emulator's own; also outside any request, as for the demo tree).
    pub fn current(base_url: &str) -> Urls {
        Urls {
            base: base_url.trim_end_matches('/').to_string(),
            addressed: ADDRESSED.try_with(|a| *a).unwrap_or(Addressed::BaseUrl),
        }
    }

    fn on(&self, scheme_host: &str) -> String {
        match self.addressed {
            Addressed::BaseUrl => self.base.clone(),
            Addressed::BoxHosts => scheme_host.to_string(),
        }
    }

    /// The upload host's root (`…/api/2.0` follows).
    pub fn upload(&self) -> String {
        self.on(&format!("https://{UPLOAD_HOST}"))
    }

    /// The download host's root (`/dl/{token}` follows).
    pub fn download(&self) -> String {
        self.on(&format!("https://{DOWNLOAD_HOST}"))
    }

    /// The web app's root (`/s/{token}` follows).
    pub fn app(&self) -> String {
        self.on(&format!("https://{APP_HOST}"))
    }

    /// The realtime host's root (`/subscribe?…` follows). Box names it with `http://`.
    pub fn realtime(&self) -> String {
        self.on(&format!("http://{REALTIME_HOST}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_host_serves_its_part_only() {
        let cases = [
            ("api.box.com", "/2.0/folders/0", true),
            ("api.box.com", "/oauth2/token", true),
            ("api.box.com", "/api/2.0/files/content", false),
            ("api.box.com", "/dl/abc", false),
            ("upload.box.com", "/api/2.0/files/content", true),
            (
                "upload.box.com",
                "/api/2.0/files/upload_sessions/1/commit",
                true,
            ),
            ("Upload.Box.com", "/2.0/folders/0", false),
            ("account.box.com", "/api/oauth2/authorize", true),
            ("account.box.com", "/2.0/users/me", false),
            ("dl.boxcloud.com", "/dl/abc", true),
            ("dl.boxcloud.com", "/2.0/files/1/content", false),
            ("app.box.com", "/s/abc", true),
            ("acme.app.box.com", "/v/report", true),
            ("2.realtime.services.box.net", "/subscribe", true),
            ("2.realtime.services.box.net", "/2.0/events", false),
            ("www.box.com", "/2.0/users/me", false),
            ("api.box.com", "/_emulator/knobs", false),
        ];
        for (host, path, served) in cases {
            assert_eq!(Service::of(host).serves(path), served, "{host}{path}");
        }
        assert!(is_box_host("API.box.com") && is_box_host("dl.boxcloud.com"));
        assert!(!is_box_host("box.com.example.org") && !is_box_host("127.0.0.1"));
    }

    #[tokio::test]
    async fn urls_follow_the_names_the_request_used() {
        let own = Urls::current("http://127.0.0.1:8080/");
        assert_eq!(own.download(), "http://127.0.0.1:8080");
        assert_eq!(own.upload(), "http://127.0.0.1:8080");
        let boxed = serve_as(Addressed::BoxHosts, async {
            Urls::current("http://127.0.0.1:8080")
        })
        .await;
        assert_eq!(boxed.download(), "https://dl.boxcloud.com");
        assert_eq!(boxed.upload(), "https://upload.box.com");
        assert_eq!(boxed.app(), "https://app.box.com");
        assert_eq!(boxed.realtime(), "http://2.realtime.services.box.net");
    }
}
