//! The Rust Box client: what Box's Python SDK offers, for boxfs and for any Rust program.
//! [`client::Client`] is the request layer (auth, As-User, retries, typed errors, redacted
//! logging); the other modules are the API surface and the ways to authenticate.

pub mod auth;
pub mod client;
pub mod endpoints;
pub mod error;
pub mod events;
pub mod files;
pub mod folders;
pub mod metadata;
pub mod search;
pub mod secret;
pub mod stats;
pub mod types;
pub mod upload;
pub mod users;

pub use auth::{Authenticator, DeveloperToken};
pub use client::{Client, RetryPolicy};
pub use endpoints::Endpoints;
pub use error::{BoxError, BoxResult};
pub use secret::Secret;
