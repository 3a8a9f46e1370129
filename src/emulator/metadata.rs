//! (being written)
use axum::Router;
use serde_json::{json, Value};

use super::http::AppState;
use super::store::{Item, MetadataInstance, Store};

pub fn routes() -> Router<AppState> {
    Router::new()
}

/// `enterprise` is shorthand for the caller's `enterprise_<id>` scope.
pub fn full_scope(store: &Store, scope: &str) -> String {
    if scope == "enterprise" {
        format!("enterprise_{}", store.enterprise_id)
    } else {
        scope.to_string()
    }
}

pub fn instance_json(item: &Item, inst: &MetadataInstance) -> Value {
    let mut v = json!({
        "$id": inst.id,
        "$type": format!("{}-{}", inst.template, &inst.id[..8.min(inst.id.len())]),
        "$parent": format!("{}_{}", item.kind.as_str(), item.id),
        "$scope": inst.scope,
        "$template": inst.template,
        "$version": inst.version,
        "$typeVersion": inst.type_version,
        "$canEdit": true,
    });
    for (k, val) in &inst.values {
        v[k.as_str()] = val.clone();
    }
    v
}
