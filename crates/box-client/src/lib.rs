//! A Rust client for the Box.com API: what Box's Python SDK offers, for boxfs and for any
//! Rust program. [`Client`] is the request layer (authentication, As-User, retries of 429,
//! 5xx and dropped connections, typed errors, redacted logging) with its pacer (Box's per-user rate limits); the other modules are the
//! API surface (folders, files, web links, uploads, locks, shared links, search, events,
//! metadata) and the ways to authenticate (developer token, OAuth 2.0, JWT, client
//! credentials, an external command, token stores shared between processes and machines).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use box_client::upload::UploadOptions;
//! use box_client::{Client, DeveloperToken, Endpoints};
//! # let emulator = box_emulator::Emulator::start(Default::default()).await?;
//! # let token = emulator.info.developer_token.clone();
//! # let endpoints = Endpoints::from_base(emulator.base_url())?;
//! // Against Box itself: `Endpoints::box_com()`, and a token from the developer console.
//! let client = Client::new(Arc::new(DeveloperToken::new(token)), endpoints);
//! let folder = client.create_folder("0", "Reports").await?;
//! let file = client
//!     .upload_file(&folder.id, "q3.txt", b"figures".to_vec(), &UploadOptions::default())
//!     .await?;
//! let content = client.download(&file.id).await?.bytes().await?;
//! assert_eq!(&content[..], b"figures");
//! # Ok(())
//! # }
//! ```

pub mod auth;
pub mod client;
mod download;
pub mod endpoints;
pub mod error;
pub mod events;
pub mod files;
pub mod folders;
pub mod http;
mod items;
pub mod metadata;
pub mod pacer;
pub mod reachability;
mod redis_server;
pub mod search;
pub mod secret;
pub mod stats;
pub mod types;
pub mod upload;
pub mod users;
pub mod web_links;

pub use auth::{Authenticator, DeveloperToken};
pub use client::{Client, ClientBuilder, RetryPolicy};
pub use endpoints::Endpoints;
pub use error::{BoxError, BoxResult};
pub use pacer::{Pacer, PacerConfig, PacerStats, Priority, Rate};
pub use secret::Secret;
