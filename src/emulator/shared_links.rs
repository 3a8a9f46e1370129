//! (being written)
use axum::Router;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::error::ApiResult;
use super::http::AppState;
use super::store::{Id, Store};

pub fn routes() -> Router<AppState> {
    Router::new()
}

/// Applies the `shared_link` value of a PUT body to an item: an object creates or updates
/// the link, `null` removes it; records the ITEM_SHARED_* event.
pub fn apply(
    _store: &mut Store,
    _id: Id,
    _value: &Value,
    _by: Id,
    _now: DateTime<Utc>,
) -> ApiResult<()> {
    Ok(())
}
