//! Users: who the client is (`/users/me`, with quota), other users of the enterprise, and
//! app users (`POST /users` with `is_platform_access_only`).

use reqwest::Method;
use serde_json::json;

use super::client::Client;
use super::error::{BoxError, BoxResult};
use super::types::User;

impl Client {
    /// The user the client acts as (the As-User target when set).
    pub async fn me(&self) -> BoxResult<User> {
        self.json(self.api(Method::GET, "/users/me")).await
    }

    /// `me` with the named fields (`enterprise`, `role` …) as well.
    pub async fn me_with_fields(&self, fields: &[&str]) -> BoxResult<User> {
        self.json(
            self.api(Method::GET, "/users/me")
                .query("fields", fields.join(",")),
        )
        .await
    }

    pub async fn user(&self, user_id: &str) -> BoxResult<User> {
        check_id(user_id)?;
        self.json(self.api(Method::GET, &format!("/users/{user_id}")))
            .await
    }

    /// Creates an app user (a user only this app's credentials can act as).
    pub async fn create_app_user(&self, name: &str, external_id: Option<&str>) -> BoxResult<User> {
        if name.is_empty() || name.chars().count() > 50 {
            return Err(BoxError::Invalid(
                "an app user's name has 1 to 50 characters".into(),
            ));
        }
        let mut body = json!({"name": name, "is_platform_access_only": true});
        if let Some(ext) = external_id {
            body["external_app_user_id"] = json!(ext);
        }
        self.json(self.api(Method::POST, "/users").json(body)).await
    }
}

/// Box ids are decimal strings; anything else never reaches the network.
pub fn check_id(id: &str) -> BoxResult<()> {
    if !id.is_empty() && id.len() <= 24 && id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(BoxError::Invalid(format!("'{id}' is not a Box id")))
    }
}
