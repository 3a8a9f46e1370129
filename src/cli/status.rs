//! `boxfs status [MOUNTPOINT] [--json]`: asks one running mount (or each of them) over its
//! control socket ([`crate::daemon::control`]) how it is doing, and prints the account, the event
//! stream, the caches, the uploads and the API calls, compactly for a person or as the
//! daemon's JSON. A mount point with no running daemon (or a record its daemon left when it
//! was killed) is an error: a message and exit status 1.

use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::Value;

use crate::daemon::control::{self, ControlRequest};
use crate::daemon::record::DaemonRecord;
use crate::daemon::status::{ConnectionStatus, MountStatus, OfflineStatus, UploadsStatus};
use crate::human::{human_bytes, human_duration, human_rate, thousands};
use box_client::pacer::BucketStats;
use box_client::PacerStats;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// A mount point (every running mount when left out).
    pub mountpoint: Option<PathBuf>,
    /// Print the daemon's figures as JSON: one object for a MOUNTPOINT, else an array.
    #[arg(long)]
    pub json: bool,
}

/// The daemon of `mountpoint`, or why there is none.
pub fn daemon_of(mountpoint: &Path) -> Result<DaemonRecord, String> {
    if let Some(record) = DaemonRecord::find(mountpoint) {
        return Ok(record);
    }
    Err(match DaemonRecord::stale(mountpoint) {
        Some(pid) => format!(
            "{}: not running (its daemon, pid {pid}, has exited without unmounting; \
             `boxfs unmount` clears what it left)",
            mountpoint.display()
        ),
        None => format!("{}: no boxfs mount is running there", mountpoint.display()),
    })
}

/// Asks a daemon for its figures, as JSON.
pub fn ask_status(record: &DaemonRecord) -> Result<Value, String> {
    let socket = record.control_socket.as_ref().ok_or_else(|| {
        format!(
            "{}: its daemon (pid {}) has no control socket",
            record.mountpoint.display(),
            record.pid
        )
    })?;
    control::ask(socket, ControlRequest::Status).map_err(|e| {
        format!(
            "{}: its daemon (pid {}) does not answer: {e}",
            record.mountpoint.display(),
            record.pid
        )
    })
}

/// Runs `boxfs status`.
pub fn run_status(args: StatusArgs) -> Result<(), String> {
    let records = match &args.mountpoint {
        Some(mp) => vec![daemon_of(mp)?],
        None => {
            let mut all = DaemonRecord::running();
            if all.is_empty() {
                return Err("no boxfs mount is running".into());
            }
            all.sort_by(|a, b| a.mountpoint.cmp(&b.mountpoint));
            all
        }
    };
    let mut answers = Vec::new();
    let mut failures = Vec::new();
    for record in &records {
        match ask_status(record) {
            Ok(v) => answers.push(v),
            Err(e) => failures.push(e),
        }
    }
    if args.json {
        let shown = match (&args.mountpoint, answers.len()) {
            (Some(_), 1) => answers.pop().unwrap_or(Value::Null),
            (Some(_), _) => Value::Null,
            (None, _) => Value::Array(answers),
        };
        if !shown.is_null() {
            println!(
                "{}",
                serde_json::to_string_pretty(&shown).map_err(|e| e.to_string())?
            );
        }
    } else {
        let mut first = true;
        for v in answers {
            let status: MountStatus = serde_json::from_value(v)
                .map_err(|e| format!("the daemon's answer is not a status: {e}"))?;
            if !first {
                println!();
            }
            first = false;
            print!("{}", render(&status));
        }
    }
    match failures.len() {
        0 => Ok(()),
        _ => Err(failures.join("\nboxfs: ")),
    }
}

/// A moment given as seconds since the Unix epoch, in local time, and how long ago.
fn moment(unix: u64) -> String {
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix);
    let ago = std::time::SystemTime::now()
        .duration_since(when)
        .unwrap_or_default();
    let local = chrono::DateTime::<chrono::Local>::from(when);
    format!(
        "{} ({} ago)",
        local.format("%Y-%m-%d %H:%M:%S"),
        human_duration(ago.as_secs_f64())
    )
}

/// The `box` line: online, or offline since when, what waits, and when Box last answered.
fn connection_text(c: &ConnectionStatus, uploads: &UploadsStatus) -> String {
    let last = c.last_reached.map_or("never".to_string(), |t| {
        format!("last reached {}", moment(t))
    });
    if c.online {
        return format!("online; {last}");
    }
    let since = c.offline_since.map(moment).unwrap_or_default();
    let mut text = format!(
        "offline since {since}; {last}; {} upload(s) queued ({}); probing with backoff",
        thousands(uploads.pending_files),
        human_bytes(uploads.pending_bytes)
    );
    if let Some(why) = &c.last_failure {
        text.push_str(&format!("\n           why: {why}"));
    }
    text
}

/// The human view of one mount.
pub fn render(s: &MountStatus) -> String {
    let mut out = format!(
        "{}  (pid {}, up {}{})\n",
        s.mountpoint.display(),
        s.pid,
        human_duration(s.uptime),
        if s.read_only { ", read-only" } else { "" }
    );
    let mut line = |label: &str, text: String| {
        out.push_str(&format!("  {label:<8} {text}\n"));
    };
    let a = &s.account;
    line(
        "account",
        format!(
            "{}{} on {}{}",
            a.login,
            a.as_user
                .as_ref()
                .map(|u| format!(" as user {u}"))
                .unwrap_or_default(),
            a.api_url,
            if a.root_folder_id == "0" {
                String::new()
            } else {
                format!(", folder {}", a.root_folder_id)
            }
        ),
    );
    if let Some(c) = &s.connection {
        line("box", connection_text(c, &s.uploads));
    }
    let e = &s.events;
    let mut events = e.state.clone();
    let ago = |t: Option<f64>| {
        t.map_or("never".to_string(), |t| {
            format!("{} ago", human_duration(t))
        })
    };
    events.push_str(&format!(
        "; Box answered {}, last event {}",
        ago(e.since_last_answer),
        ago(e.since_last_event)
    ));
    events.push_str(&format!(
        " ({} events, {} errors{})",
        thousands(e.events),
        thousands(e.errors),
        if e.revalidations > 0 {
            format!(", {} revalidations", e.revalidations)
        } else {
            String::new()
        }
    ));
    if let (Some(err), true) = (&e.last_error, e.state != "healthy" || e.errors > 0) {
        let when = e
            .since_last_error
            .map(|t| format!(" {} ago", human_duration(t)))
            .unwrap_or_default();
        events.push_str(&format!("\n           last error{when}: {err}"));
    }
    line("events", events);
    let c = &s.cache;
    let content = match (c.content_bytes, c.content_limit) {
        (Some(used), Some(limit)) => {
            format!("; content {} of {}", human_bytes(used), human_bytes(limit))
        }
        _ => "; no content cache".into(),
    };
    line(
        "cache",
        format!(
            "{} of {} files and folders{content}",
            thousands(c.inodes),
            thousands(c.inode_limit)
        ),
    );
    let r = &s.reads;
    line(
        "reads",
        format!(
            "{} open files reading; {} of {} in memory; {} of {} requests in flight",
            thousands(r.active_readers),
            human_bytes(r.memory_held),
            human_bytes(r.memory_limit),
            thousands(r.requests_in_flight),
            thousands(r.connection_limit)
        ),
    );
    line("uploads", uploads_text(&s.uploads));
    if let Some(text) = offline_text(&s.offline, &s.mountpoint) {
        line("offline", text);
    }
    let api = &s.api;
    let errors = if api.errors.is_empty() {
        "no errors".to_string()
    } else {
        let by: Vec<String> = api
            .errors
            .iter()
            .map(|(k, n)| format!("{k}: {}", thousands(*n)))
            .collect();
        format!(
            "{} errors ({})",
            thousands(api.error_count()),
            by.join(", ")
        )
    };
    line("api", format!("{} calls, {errors}", thousands(api.calls)));
    if let Some(pacing) = &s.pacing {
        line("budget", budget_text(pacing));
    }
    out
}

/// The pacer's line: calls in the last minute against the limits, what the adaptive limit
/// is down to, time waited and 429s.
fn budget_text(p: &PacerStats) -> String {
    let against = |b: &BucketStats| match b.limit_per_minute {
        Some(limit) => format!(
            "{} of {}",
            thousands(b.calls_last_minute),
            thousands(limit.round() as u64)
        ),
        None => format!("{} (no limit)", thousands(b.calls_last_minute)),
    };
    let mut text = format!(
        "{} calls in the last minute (uploads {}, searches {})",
        against(&p.api),
        against(&p.upload),
        against(&p.search)
    );
    if let (Some(limit), Some(now)) = (p.api.limit_per_minute, p.api.effective_per_minute) {
        if now < limit * 0.99 {
            text.push_str(&format!(
                "; slowed to {}/min after 429s",
                thousands(now.round() as u64)
            ));
        }
    }
    text.push_str(&format!(
        "; waited {} for the pacer; {} answered 429",
        human_duration(p.waited.as_secs_f64()),
        thousands(p.throttled)
    ));
    if let Some(redis) = &p.shared_through {
        text.push_str(&format!("; shared through {redis}"));
    }
    text
}

/// The pins' line, when anything is pinned or a pin was refused: items, files and bytes
/// downloaded of the total, what is downloading, failures.
fn offline_text(o: &OfflineStatus, mountpoint: &Path) -> Option<String> {
    if o.items.is_empty() && o.refused.is_none() && o.failures == 0 {
        return None;
    }
    let mut text = format!(
        "{} pinned; {} of {} files ({} of {}) on disk",
        thousands(o.items.len() as u64),
        thousands(o.files_done),
        thousands(o.files_total),
        human_bytes(o.bytes_done),
        human_bytes(o.bytes_total)
    );
    let walking = o.items.iter().filter(|i| !i.walked).count() as u64;
    if walking > 0 {
        text.push_str(&format!("; {} being listed", thousands(walking)));
    }
    if o.waiting > 0 {
        text.push_str(&format!("; {} waiting", thousands(o.waiting)));
    }
    if o.failures > 0 {
        text.push_str(&format!("; {} failed", thousands(o.failures)));
    }
    for item in &o.items {
        let shown = match &item.path {
            Some(p) => mountpoint.join(p).display().to_string(),
            None => format!("Box {} {} (not found yet)", item.kind, item.id),
        };
        let files = if item.files == 1 { "file" } else { "files" };
        text.push_str(&format!(
            "\n           pinned {shown}: {} {files}, {}",
            thousands(item.files),
            human_bytes(item.bytes)
        ));
    }
    for d in &o.downloading {
        text.push_str(&format!(
            "\n           downloading {}: {} of {}",
            d.name,
            human_bytes(d.done),
            human_bytes(d.size)
        ));
    }
    if let Some(f) = &o.last_failure {
        text.push_str(&format!("\n           last failure: {f}"));
    }
    if let Some(r) = &o.refused {
        text.push_str(&format!(
            "\n           refused {}: needs {}, {} available",
            mountpoint.join(r.path.trim_start_matches('/')).display(),
            human_bytes(r.needed),
            human_bytes(r.available)
        ));
    }
    Some(text)
}

fn uploads_text(u: &UploadsStatus) -> String {
    let done = format!(
        "{} uploaded ({})",
        thousands(u.uploaded_files),
        human_bytes(u.uploaded_bytes)
    );
    if u.pending_files == 0 {
        return format!("none pending; {done}");
    }
    let mut text = format!(
        "{} pending ({}), {} running",
        thousands(u.pending_files),
        human_bytes(u.pending_bytes),
        u.running.len()
    );
    for r in &u.running {
        text.push_str(&format!(
            "\n           {}: {} of {}, {}",
            r.name,
            human_bytes(r.done),
            human_bytes(r.size),
            human_rate(r.rate)
        ));
    }
    text.push_str(&format!("\n           {done}"));
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::status::RunningUpload;

    #[test]
    fn figures_read_as_people_write_them() {
        assert_eq!(thousands(12), "12");
    }

    #[test]
    fn the_human_view_names_every_part() {
        let mut s = MountStatus {
            mountpoint: "/home/me/Box".into(),
            pid: 42,
            uptime: 65.0,
            ..MountStatus::default()
        };
        s.account.login = "me@example.com".into();
        s.account.api_url = "https://api.box.com/2.0".into();
        s.account.root_folder_id = "0".into();
        s.events.state = "reconnecting".into();
        s.events.errors = 1;
        s.events.last_error = Some("connection refused".into());
        s.cache.inodes = 1500;
        s.cache.inode_limit = 250_000;
        s.reads.active_readers = 2;
        s.reads.memory_held = 96 << 20;
        s.reads.memory_limit = 256 << 20;
        s.reads.requests_in_flight = 5;
        s.reads.connection_limit = 32;
        s.uploads.pending_files = 2;
        s.uploads.pending_bytes = 3 << 20;
        s.uploads.running = vec![RunningUpload {
            name: "big.iso".into(),
            size: 2 << 20,
            done: 1 << 20,
            elapsed: 1.0,
            rate: 1_048_576.0,
        }];
        s.api.calls = 12;
        s.api.errors.insert("404".into(), 2);
        let mut pacing = PacerStats {
            waited: std::time::Duration::from_millis(3200),
            throttled: 2,
            ..PacerStats::default()
        };
        pacing.api.calls_last_minute = 412;
        pacing.api.limit_per_minute = Some(1000.0);
        pacing.api.effective_per_minute = Some(500.0);
        pacing.upload.calls_last_minute = 12;
        pacing.upload.limit_per_minute = Some(240.0);
        s.pacing = Some(pacing);
        s.offline.items = vec![crate::daemon::status::PinnedItemStatus {
            id: "12".into(),
            kind: "folder".into(),
            path: Some("Projects".into()),
            files: 3,
            bytes: 3 << 20,
            walked: true,
        }];
        s.offline.files_total = 3;
        s.offline.files_done = 1;
        s.offline.bytes_total = 3 << 20;
        s.offline.bytes_done = 1 << 20;
        s.offline.downloading = vec![crate::daemon::status::PinDownloadStatus {
            name: "b.bin".into(),
            size: 1 << 20,
            done: 512 << 10,
        }];
        s.offline.failures = 1;
        s.offline.last_failure = Some("c.bin: Box answered 500".into());
        let text = render(&s);
        for part in [
            "/home/me/Box  (pid 42, up 1m 05s)",
            "me@example.com on https://api.box.com/2.0",
            "reconnecting; Box answered never",
            "last error: connection refused",
            "1,500 of 250,000 files and folders; no content cache",
            "2 open files reading; 96 MiB of 256 MiB in memory; 5 of 32 requests in flight",
            "2 pending (3 MiB), 1 running",
            "big.iso: 1 MiB of 2 MiB, 1.0 MB/s",
            "12 calls, 2 errors (404: 2)",
            "412 of 1,000 calls in the last minute (uploads 12 of 240, searches 0 (no limit))",
            "slowed to 500/min after 429s; waited 3 s for the pacer; 2 answered 429",
            "offline  1 pinned; 1 of 3 files (1 MiB of 3 MiB) on disk; 1 failed",
            "pinned /home/me/Box/Projects: 3 files, 3 MiB",
            "downloading b.bin: 512 KiB of 1 MiB",
            "last failure: c.bin: Box answered 500",
        ] {
            assert!(text.contains(part), "{part:?} missing in:\n{text}");
        }
        // Nothing pinned, nothing said.
        assert!(!render(&MountStatus::default()).contains("offline"));
    }
}
