//! `boxfs login`, `logout` and `whoami`: getting credentials, checking them with Box, and
//! recording in the profile how to authenticate, so that a later `boxfs mount` needs no flags.
//!
//! Every kind of login is verified before anything is recorded: the browser flow exchanges
//! the code, JWT and client credentials get a token, a bare token or a token command is
//! tried, and each then asks Box who it is (`GET /users/me`). Only what was given on the
//! command line is written to the profile; values from the environment stay there.

pub mod redirect;

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

use crate::config::http::failure;
use crate::config::{http_client, AuthKind, Config, Effective, Settings, Source, StoreSpec};
use crate::human::human_bytes;
use box_client::auth::{JwtConfig, OAuth2, TokenPair};
use box_client::types::User;
use box_client::{Authenticator, Client, DeveloperToken, Endpoints};
use redirect::{Page, RedirectListener};

/// What `boxfs login` was asked for beyond the configuration keys.
#[derive(Debug, Clone, Default)]
pub struct LoginOptions {
    /// `--enterprise` without an id: the service account of the JWT app's own enterprise.
    pub app_enterprise: bool,
}

/// The keys a kind of login uses (and so may record in the profile).
fn keys_of(kind: AuthKind) -> &'static [&'static str] {
    match kind {
        AuthKind::OAuth => &[
            "api_url",
            "ca_cert",
            "client_id",
            "client_secret",
            "token_store",
        ],
        AuthKind::Jwt => &[
            "api_url",
            "ca_cert",
            "jwt_config",
            "user_id",
            "enterprise_id",
        ],
        AuthKind::Ccg => &[
            "api_url",
            "ca_cert",
            "client_id",
            "client_secret",
            "user_id",
            "enterprise_id",
        ],
        AuthKind::Token | AuthKind::Command => &["api_url", "ca_cert", "token_store"],
    }
}

/// Keys that belong to one kind of login only: dropped from the profile by a login of
/// another kind. (`token` is always dropped: a login keeps tokens in the token store.)
const KIND_SPECIFIC: [&str; 4] = ["jwt_config", "user_id", "enterprise_id", "token"];

/// The text a key is written to the file with (unmasked: the file is 0600).
fn raw_value(v: &Settings, key: &str) -> Option<String> {
    match key {
        "api_url" => v.api_url.clone(),
        "client_id" => v.client_id.clone(),
        "client_secret" => v.client_secret.as_ref().map(|s| s.expose().to_string()),
        "token_store" => v.token_store.as_ref().map(|s| match s {
            StoreSpec::File(None) => "file".to_string(),
            StoreSpec::File(Some(p)) => format!("file:{}", p.display()),
            StoreSpec::Redis(url) => url.clone(),
            StoreSpec::Command(argv) => format!("command:{}", argv.join(" ")),
        }),
        "jwt_config" => v.jwt_config.as_ref().map(|p| absolute(p)),
        "ca_cert" => v.ca_cert.as_ref().map(|p| absolute(p)),
        "user_id" => v.user_id.clone(),
        "enterprise_id" => v.enterprise_id.clone(),
        _ => None,
    }
}

/// A path as the profile records it: absolute, so that it means the same from anywhere.
fn absolute(p: &std::path::Path) -> String {
    std::path::absolute(p)
        .unwrap_or_else(|_| p.to_path_buf())
        .display()
        .to_string()
}

/// What a login of `kind` writes to the profile, and what it removes from it.
fn profile_changes(
    eff: &Effective,
    kind: AuthKind,
) -> (Vec<(&'static str, String)>, Vec<&'static str>) {
    let used = keys_of(kind);
    let mut set = vec![("auth", kind.name().to_string())];
    for key in used {
        if eff.source(key) == Some(&Source::CommandLine) {
            if let Some(value) = raw_value(&eff.values, key) {
                set.push((key, value));
            }
        }
    }
    let mut remove: Vec<&'static str> = KIND_SPECIFIC
        .iter()
        .copied()
        .filter(|k| !used.contains(k))
        .collect();
    // A subject given now replaces the other kind of subject in the profile.
    for (chosen, other) in [("user_id", "enterprise_id"), ("enterprise_id", "user_id")] {
        if used.contains(&chosen) && set.iter().any(|(k, _)| *k == chosen) {
            remove.push(other);
        }
    }
    (set, remove)
}

/// `GET /users/me` with `auth`, sent with `http`: the proof that the credentials work.
async fn verify(
    auth: Arc<dyn Authenticator>,
    endpoints: &Endpoints,
    http: &reqwest::Client,
) -> Result<User, String> {
    Client::builder(auth, endpoints.clone())
        .http(http.clone())
        .build()
        .map_err(|e| e.to_string())?
        .me()
        .await
        .map_err(|e| failure("Box did not accept the credentials", &e))
}

/// Starts a browser on the authorization URL, only where one can appear: a graphical
/// session and a person at the terminal.
fn open_browser(url: &str) {
    let graphical = ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()));
    if !graphical || !std::io::stdout().is_terminal() {
        return;
    }
    match tokio::process::Command::new("xdg-open")
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        Ok(mut child) => {
            tokio::spawn(async move {
                let _ = child.wait().await;
            });
        }
        Err(e) => log::debug!("cannot start xdg-open: {e}"),
    }
}

/// The browser flow: print the authorization URL, wait for Box's redirect to the loopback
/// port, check its state, exchange the code (the pair goes to the token store).
async fn browser_login(
    eff: &Effective,
    endpoints: &Endpoints,
    http: &reqwest::Client,
) -> Result<User, String> {
    let oauth: OAuth2 = eff.oauth(endpoints, http)?;
    let listener = RedirectListener::bind(eff.values.login_port.unwrap_or(0)).await?;
    let redirect_uri = listener.redirect_uri();
    let (url, state) = oauth.authorization_url(&redirect_uri);
    let timeout = eff
        .values
        .login_timeout
        .unwrap_or(crate::config::DEFAULT_LOGIN_TIMEOUT);
    println!("To log in to Box, open this address in a browser:\n\n    {url}\n");
    println!(
        "Waiting up to {timeout} s for Box to send the browser back to {redirect_uri} \
         (the app's redirect URI must be that address; choose the port with --port)."
    );
    let _ = std::io::stdout().flush();
    open_browser(url.as_str());
    let (code, reply) =
        tokio::time::timeout(Duration::from_secs(timeout), listener.wait_for_code(&state))
            .await
            .map_err(|_| {
                format!(
                    "no answer from the browser within {timeout} s; run `boxfs login` again \
             (--timeout SECS waits longer)"
                )
            })??;
    let outcome = async {
        oauth
            .authenticate(code)
            .await
            .map_err(|e| failure("Box did not exchange the authorization code", &e))?;
        verify(Arc::new(oauth), endpoints, http).await
    }
    .await;
    match &outcome {
        Ok(user) => {
            reply
                .send(Page::ok(
                    "Logged in",
                    &format!(
                        "boxfs is logged in to Box as {} ({}). You can close this window.",
                        user.name, user.login
                    ),
                ))
                .await
        }
        Err(e) => reply.send(Page::refused("Login failed", e)).await,
    }
    outcome
}

/// `--enterprise` without an id: the JWT app config's enterprise.
fn fill_app_enterprise(eff: &mut Effective, kind: AuthKind) -> Result<(), String> {
    if kind != AuthKind::Jwt {
        return Err("--enterprise needs the enterprise id (--enterprise ID)".into());
    }
    let path = eff
        .values
        .jwt_config
        .clone()
        .ok_or("--enterprise without an id needs the app config (--jwt CONFIG.json)")?;
    let config = JwtConfig::from_file(&path).map_err(|e| e.to_string())?;
    let id = config.enterprise_id.ok_or_else(|| {
        format!(
            "{} has no enterpriseID: pass --enterprise ID",
            path.display()
        )
    })?;
    eff.values.enterprise_id = Some(id);
    eff.sources.insert("enterprise_id", Source::CommandLine);
    Ok(())
}

/// Runs `boxfs login`: returns what to tell the user.
pub async fn login(
    config: &Config,
    given: Settings,
    options: LoginOptions,
) -> Result<String, String> {
    let mut eff = config.resolve(given)?;
    // Nothing said about how: the browser.
    let kind = eff.auth_kind().unwrap_or(AuthKind::OAuth);
    if options.app_enterprise {
        fill_app_enterprise(&mut eff, kind)?;
    }
    let endpoints = eff.endpoints()?;
    let http = http_client(&eff)?;
    let user = match kind {
        AuthKind::OAuth => browser_login(&eff, &endpoints, &http).await?,
        AuthKind::Jwt => verify(Arc::new(eff.jwt(&endpoints, &http)?), &endpoints, &http).await?,
        AuthKind::Ccg => verify(Arc::new(eff.ccg(&endpoints, &http)?), &endpoints, &http).await?,
        AuthKind::Command => verify(Arc::new(eff.token_command()?), &endpoints, &http).await?,
        AuthKind::Token => {
            let token =
                eff.values.token.clone().ok_or(
                    "auth token needs the token: boxfs login --token TOKEN (or BOXFS_TOKEN)",
                )?;
            let user = verify(
                Arc::new(DeveloperToken::new(token.clone())),
                &endpoints,
                &http,
            )
            .await?;
            let store = eff.token_store()?.ok_or_else(|| {
                format!(
                    "{} prints tokens itself: it cannot keep one given with --token",
                    eff.origin("token_store")
                )
            })?;
            store
                .save(&TokenPair::new(token, None, None))
                .await
                .map_err(|e| e.to_string())?;
            user
        }
    };
    let (set, remove) = profile_changes(&eff, kind);
    config.record(&set, &remove)?;
    let kept = match kind {
        AuthKind::OAuth | AuthKind::Token => {
            format!("; tokens are kept in {}", eff.token_store_shown())
        }
        _ => String::new(),
    };
    Ok(format!(
        "Logged in to Box as {} ({}) with {}{kept}.\nProfile '{}' of {} records how to log in.",
        user.name,
        user.login,
        kind.name(),
        eff.profile,
        config.path.display()
    ))
}

/// Runs `boxfs logout`: revokes OAuth tokens at Box and forgets the stored ones.
pub async fn logout(eff: &Effective) -> Result<String, String> {
    let kind = eff.auth_kind()?;
    let endpoints = eff.endpoints()?;
    match kind {
        AuthKind::Token if eff.values.token.is_some() => Ok(
            "The token comes from --token, BOXFS_TOKEN or the configuration, not from a token \
             store: nothing to forget."
                .into(),
        ),
        AuthKind::OAuth | AuthKind::Token => {
            let store = match eff.token_store()? {
                Some(store) => store,
                None => {
                    return Ok(
                        "the token command keeps its tokens itself: nothing to forget here".into(),
                    )
                }
            };
            let where_ = eff.token_store_shown();
            if store.load().await.map_err(|e| e.to_string())?.is_none() {
                return Ok(format!("Not logged in: no tokens in {where_}."));
            }
            // Revoking needs the app's credentials (a developer token can be revoked with
            // them too); without them the tokens can only be forgotten here.
            let http = http_client(eff)?;
            let Ok(oauth) = eff.oauth(&endpoints, &http) else {
                store.clear().await.map_err(|e| e.to_string())?;
                return Ok(format!(
                    "Removed the tokens from {where_}. Without the app's client id and secret \
                     they cannot be revoked: they work at Box until they expire."
                ));
            };
            match oauth.revoke().await {
                Ok(()) => Ok(format!(
                    "Logged out: the tokens are revoked at Box and removed from {where_}."
                )),
                Err(e) => {
                    store.clear().await.map_err(|e| e.to_string())?;
                    Err(format!(
                        "the tokens were removed from {where_}, but revoking them at Box failed \
                         (they work until they expire): {e}"
                    ))
                }
            }
        }
        AuthKind::Jwt | AuthKind::Ccg => Ok(format!(
            "auth {} keeps no tokens: each run gets new ones from the app's credentials. \
             Remove [profiles.{}] from {} to stop using them.",
            kind.name(),
            eff.profile,
            eff.file.display()
        )),
        AuthKind::Command => {
            Ok("The token command keeps its tokens itself: nothing to forget here.".into())
        }
    }
}

/// Box reports an unlimited quota as a huge number (or -1 in some answers).
const UNLIMITED_QUOTA: i64 = 999_999_999_999_999;

fn quota_line(used: Option<i64>, total: Option<i64>) -> String {
    let used = used.unwrap_or(0).max(0) as u64;
    match total {
        Some(t) if !(0..UNLIMITED_QUOTA).contains(&t) => {
            format!("{} used (unlimited)", human_bytes(used))
        }
        Some(t) => {
            let percent = if t > 0 {
                used as f64 * 100.0 / t as f64
            } else {
                100.0
            };
            format!(
                "{} used of {} ({percent:.1}%)",
                human_bytes(used),
                human_bytes(t as u64)
            )
        }
        None => format!("{} used", human_bytes(used)),
    }
}

/// Runs `boxfs whoami`: who the profile logs in as (the As-User target when `as_user` is
/// set), or the running mount whose session it borrows (`crate::cli::session`), with the
/// enterprise and the quota.
pub async fn whoami(
    conn: &crate::cli::ConnectionArgs,
    select: &crate::cli::session::MountSelect,
) -> Result<String, String> {
    let chosen = crate::cli::session::client_for(conn, select, None).await?;
    let client = chosen.client;
    // A borrowed session acts as the mount does already.
    let client = match (&chosen.mountpoint, client.acting_as()) {
        (None, None) => match &conn.settings()?.values.as_user {
            Some(id) => client.as_user(id),
            None => client,
        },
        _ => client,
    };
    let me = client
        .me_with_fields(&["login", "name", "enterprise", "space_amount", "space_used"])
        .await
        .map_err(|e| failure("cannot ask Box who this is", &e))?;
    let enterprise = match &me.enterprise {
        Some(e) if !e.name.is_empty() => format!("{} ({})", e.name, e.id),
        Some(e) => e.id.clone(),
        None => "none".into(),
    };
    Ok(format!(
        "login:      {}\nname:       {}\nenterprise: {enterprise}\nquota:      {}",
        me.login,
        me.name,
        quota_line(me.space_used, me.space_amount)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(
            quota_line(Some(0), Some(100 << 30)),
            "0 B used of 100 GiB (0.0%)"
        );
        assert!(quota_line(Some(5), Some(-1)).contains("unlimited"));
    }
}
