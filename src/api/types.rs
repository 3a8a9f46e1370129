//! Wire types: what Box sends, as serde structs. Fields Box may leave out (with `fields=`
//! or in mini representations) are `Option` or defaulted, so a partial answer still
//! decodes. Ids are strings, as Box sends them.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct UserMini {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub login: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Enterprise {
    pub id: String,
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct User {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub login: String,
    pub status: Option<String>,
    pub role: Option<String>,
    pub space_amount: Option<i64>,
    pub space_used: Option<i64>,
    pub max_upload_size: Option<i64>,
    pub created_at: Option<String>,
    pub modified_at: Option<String>,
    pub language: Option<String>,
    pub timezone: Option<String>,
    pub is_platform_access_only: Option<bool>,
    pub external_app_user_id: Option<String>,
    pub enterprise: Option<Enterprise>,
}
