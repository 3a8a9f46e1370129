//! How long cached metadata is trusted, here and in the kernel: long while the event stream
//! delivers (events keep the caches true), short while it does not (lost, reconnecting, not
//! started). The stream's state is [`StreamHealth`], which the event follower updates.

use std::sync::Arc;
use std::time::Duration;

use crate::fs::sync::events::StreamHealth;

/// The TTLs of a mount and the stream health that chooses between them.
pub struct Freshness {
    health: Arc<StreamHealth>,
    ttl_healthy: Duration,
    ttl_unhealthy: Duration,
    kernel_ttl_healthy: Duration,
    kernel_ttl_unhealthy: Duration,
}

impl Freshness {
    /// TTLs for our caches (`ttl`) and for the kernel's (`kernel_ttl`), each as
    /// (healthy, unhealthy).
    pub fn new(ttl: (Duration, Duration), kernel_ttl: (Duration, Duration)) -> Freshness {
        Freshness {
            health: Arc::new(StreamHealth::new()),
            ttl_healthy: ttl.0,
            ttl_unhealthy: ttl.1,
            kernel_ttl_healthy: kernel_ttl.0,
            kernel_ttl_unhealthy: kernel_ttl.1,
        }
    }

    /// The event stream's state, shared with the events task.
    pub fn health(&self) -> &Arc<StreamHealth> {
        &self.health
    }

    /// How long our cached metadata is trusted right now.
    pub fn ttl(&self) -> Duration {
        if self.health.is_healthy() {
            self.ttl_healthy
        } else {
            self.ttl_unhealthy
        }
    }

    /// The TTL to hand the kernel for entries and attributes right now.
    pub fn kernel_ttl(&self) -> Duration {
        if self.health.is_healthy() {
            self.kernel_ttl_healthy
        } else {
            self.kernel_ttl_unhealthy
        }
    }
}
