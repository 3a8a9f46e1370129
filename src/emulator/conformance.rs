//! (being written)
use std::path::Path;

use axum::http::Method;
use axum::response::Response;

use super::anyhow_like::Result;

pub struct Validator {}

impl Validator {
    pub fn load(_path: &Path) -> Result<Validator> {
        Ok(Validator {})
    }
    pub async fn check(&self, _method: &Method, _template: &str, response: Response) -> Response {
        response
    }
    pub fn violations(&self) -> Vec<String> {
        Vec::new()
    }
}
