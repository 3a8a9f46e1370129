//! The progress line `boxfs unmount` keeps updated on a terminal while the daemon finishes
//! its uploads: files left, bytes done of the total, rate. The figures come from the
//! daemon's control socket while it answers ([`crate::daemon::control`]), else from the count of
//! staged files on disk (all that is known once the daemon stopped answering).

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::daemon::control::{self, ControlRequest};
use crate::daemon::status::UploadsStatus;
use crate::fs::write::staging::StagingDir;
use crate::human::{human_bytes, human_rate};

/// How often the line is drawn again.
const REDRAW_EVERY: Duration = Duration::from_millis(250);

/// Where the figures stood at the first answer.
struct Baseline {
    at: Instant,
    total: u64,
    uploaded: u64,
}

pub struct UnmountProgress {
    socket: Option<PathBuf>,
    staging_dir: PathBuf,
    baseline: Option<Baseline>,
    drawn: Option<Instant>,
}

impl UnmountProgress {
    pub fn new(socket: Option<PathBuf>, staging_dir: PathBuf) -> UnmountProgress {
        UnmountProgress {
            socket,
            staging_dir,
            baseline: None,
            drawn: None,
        }
    }

    fn ask(&mut self) -> Option<UploadsStatus> {
        let socket = self.socket.as_ref()?;
        let answer = control::ask(socket, ControlRequest::Status)
            .ok()
            .and_then(|v| serde_json::from_value::<UploadsStatus>(v["uploads"].clone()).ok());
        if answer.is_none() {
            // The daemon is exiting: the staging directory tells the rest.
            self.socket = None;
        }
        answer
    }

    /// The line as it stands now.
    pub fn line(&mut self) -> String {
        let Some(u) = self.ask() else {
            let left = StagingDir::pending_count(&self.staging_dir);
            return format!("boxfs: {left} file(s) left");
        };
        let base = self.baseline.get_or_insert_with(|| Baseline {
            at: Instant::now(),
            total: u.pending_bytes,
            uploaded: u.uploaded_bytes,
        });
        let done =
            (u.uploaded_bytes.saturating_sub(base.uploaded) + u.running_done()).min(base.total);
        let secs = base.at.elapsed().as_secs_f64();
        let rate = if secs > 0.5 {
            done as f64 / secs
        } else {
            u.running_rate()
        };
        format!(
            "boxfs: {} file(s) left, {} of {}, {}",
            u.pending_files,
            human_bytes(done),
            human_bytes(base.total),
            human_rate(rate)
        )
    }

    /// Draws the line again on stderr if it is time.
    pub fn tick(&mut self) {
        if self.drawn.is_some_and(|t| t.elapsed() < REDRAW_EVERY) {
            return;
        }
        self.drawn = Some(Instant::now());
        let line = self.line();
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r{line}\x1b[K");
        let _ = err.flush();
    }

    /// Takes the line away.
    pub fn clear(&self) {
        if self.drawn.is_some() {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
        }
    }
}
