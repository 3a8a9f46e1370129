//! (being written)
use axum::Router;

use super::http::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
}
