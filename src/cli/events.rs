//! `boxfs events [--follow] [--json] [--stream-position POS|now] [--limit N]`: the
//! account's event stream on the command line, like the Python SDK's long-poll generator.
//! Without `--follow` it prints the events from the position (Box's earliest retained,
//! `0`, by default) up to now, page by page (`GET /events`), and exits; with `--follow` it
//! long-polls ([`Client::event_stream`], from `now` by default) and prints each event as it
//! arrives until interrupted (Ctrl-C exits 0). Box may repeat an event: repeats are
//! printed once.
//!
//! A line for people: time, event type, item type and id, name, path (or parent folder)
//! when Box sent it, and who. `--json`: each event as Box sent it, one object per line.

use std::io::Write;

use clap::Args;
use serde_json::Value;

use crate::cli::ConnectionArgs;
use crate::config;
use box_client::events::{Event, EventStreamOptions, EventsQuery, RecentIds, MAX_EVENTS_LIMIT};
use box_client::{BoxError, Client};

#[derive(Debug, Args)]
pub struct EventsArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub mount: crate::cli::session::MountSelect,
    /// Keep long-polling and print each event as it arrives, until interrupted.
    #[arg(long)]
    pub follow: bool,
    /// Print each event as Box sent it, one JSON object per line.
    #[arg(long)]
    pub json: bool,
    /// Start after this position (from an earlier run), `0` for the earliest event Box
    /// keeps, or `now` [default: 0, or now with --follow].
    #[arg(long, value_name = "POS")]
    pub stream_position: Option<String>,
    /// Stop after printing this many events.
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
}

/// How many event ids are remembered to print a repeated event once.
const REMEMBERED_IDS: usize = 4096;

fn check_position(pos: &str) -> Result<(), String> {
    if pos == "now" || (!pos.is_empty() && pos.bytes().all(|b| b.is_ascii_digit())) {
        Ok(())
    } else {
        Err(format!(
            "--stream-position '{pos}': expected a number from an earlier page, 0, or now"
        ))
    }
}

/// The item's path from its `path_collection` (the root, All Files, left out), or `None`
/// when Box did not send one.
fn path_of(source: &Value) -> Option<String> {
    let entries = source.get("path_collection")?.get("entries")?.as_array()?;
    let mut path = String::new();
    for e in entries {
        if e.get("id").and_then(Value::as_str) == Some("0") {
            continue;
        }
        path.push('/');
        path.push_str(e.get("name").and_then(Value::as_str).unwrap_or("?"));
    }
    path.push('/');
    path.push_str(source.get("name").and_then(Value::as_str)?);
    Some(path)
}

/// One event as a line for people.
pub fn event_line(ev: &Event) -> String {
    let mut fields: Vec<String> = vec![
        ev.created_at.clone().unwrap_or_else(|| "-".into()),
        ev.event_type.clone(),
    ];
    match (ev.item_type(), ev.item_id()) {
        (Some(t), Some(id)) => fields.push(format!("{t} {id}")),
        (Some(t), None) => fields.push(t.to_string()),
        (None, Some(id)) => fields.push(id.to_string()),
        (None, None) => fields.push("-".into()),
    }
    if let Some(path) = path_of(&ev.source) {
        fields.push(path);
    } else {
        if let Some(name) = ev.item_name() {
            fields.push(format!("{name:?}"));
        }
        if let Some(parent) = ev.parent_id() {
            let parent_name = ev
                .source
                .get("parent")
                .and_then(|p| p.get("name"))
                .and_then(Value::as_str);
            fields.push(match parent_name {
                Some(n) => format!("in folder {parent} ({n})"),
                None => format!("in folder {parent}"),
            });
        }
    }
    if let Some(by) = &ev.created_by {
        let who = if by.login.is_empty() {
            &by.name
        } else {
            &by.login
        };
        if !who.is_empty() {
            fields.push(format!("by {who}"));
        }
    }
    fields.join("  ")
}

/// Prints events until `limit`; false once the reader went away (a closed pipe) or the
/// limit is reached.
struct Printer {
    json: bool,
    left: Option<u64>,
}

impl Printer {
    fn print(&mut self, ev: &Event) -> bool {
        if self.left == Some(0) {
            return false;
        }
        let line = if self.json {
            serde_json::to_string(ev).unwrap_or_default()
        } else {
            event_line(ev)
        };
        if writeln!(std::io::stdout().lock(), "{line}").is_err() {
            return false;
        }
        if let Some(n) = &mut self.left {
            *n -= 1;
        }
        self.left != Some(0)
    }
}

/// Runs `boxfs events`.
pub async fn run_events(args: EventsArgs) -> Result<(), String> {
    if let Some(pos) = &args.stream_position {
        check_position(pos)?;
    }
    let client = crate::cli::session::client_for(&args.connection, &args.mount, None)
        .await?
        .client;
    let mut printer = Printer {
        json: args.json,
        left: args.limit,
    };
    if args.limit == Some(0) {
        return Ok(());
    }
    if args.follow {
        follow(&client, args.stream_position, &mut printer).await
    } else {
        let start = args.stream_position.unwrap_or_else(|| "0".into());
        print_until_now(&client, start, &mut printer).await
    }
}

/// The events from `position` to the stream's current end, page by page. Pages are Box's
/// answers as they are, so repeats are dropped here (the long-polling feed drops its own).
async fn print_until_now(
    client: &Client,
    mut position: String,
    printer: &mut Printer,
) -> Result<(), String> {
    let mut seen = RecentIds::new(REMEMBERED_IDS);
    loop {
        let page = client
            .get_events(&EventsQuery {
                limit: Some(MAX_EVENTS_LIMIT),
                ..EventsQuery::since(position.clone())
            })
            .await
            .map_err(|e| config::http::failure("cannot read the events", &e))?;
        for ev in page.entries.iter().filter(|ev| seen.insert(&ev.event_id)) {
            if !printer.print(ev) {
                return Ok(());
            }
        }
        // Box may answer fewer events than asked while more are pending: the end is an
        // empty page (or one that does not move the position).
        let moved = !page.next_stream_position.is_empty() && page.next_stream_position != position;
        if page.chunk_size == 0 || page.entries.is_empty() || !moved {
            return Ok(());
        }
        position = page.next_stream_position;
    }
}

/// Long-polls from `position` (`now` when `None`) until Ctrl-C.
async fn follow(
    client: &Client,
    position: Option<String>,
    printer: &mut Printer,
) -> Result<(), String> {
    let mut stream = client.event_stream(EventStreamOptions {
        stream_position: position.filter(|p| p != "now"),
        dedup_capacity: REMEMBERED_IDS,
        ..EventStreamOptions::default()
    });
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;
    loop {
        tokio::select! {
            next = stream.next_event() => match next {
                Some(Ok(ev)) => {
                    if !printer.print(&ev) {
                        return Ok(());
                    }
                }
                // A certificate this process does not trust stays untrusted.
                Some(Err(e @ BoxError::Certificate { .. })) => {
                    return Err(config::http::failure("event stream", &e))
                }
                // The feed reconnects by itself and resumes where it was.
                Some(Err(e)) => eprintln!("boxfs: event stream: {e} (retrying)"),
                None => return Err("the event stream ended: Box refused the credentials".into()),
            },
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = term.recv() => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(source: Value) -> Event {
        serde_json::from_value(json!({
            "event_id": "e1",
            "event_type": "ITEM_UPLOAD",
            "created_at": "2026-11-27T05:30:00-08:00",
            "created_by": {"type": "user", "id": "9", "name": "Ann", "login": "ann@example.com"},
            "source": source,
        }))
        .unwrap()
    }

    #[test]
    fn a_line_shows_time_type_item_path_and_who() {
        let ev = event(json!({
            "type": "file", "id": "123", "name": "notes.txt",
            "parent": {"type": "folder", "id": "7", "name": "Docs"},
            "path_collection": {"total_count": 2, "entries": [
                {"type": "folder", "id": "0", "name": "All Files"},
                {"type": "folder", "id": "7", "name": "Docs"}
            ]}
        }));
        assert_eq!(
            event_line(&ev),
            "2026-11-27T05:30:00-08:00  ITEM_UPLOAD  file 123  /Docs/notes.txt  by ann@example.com"
        );
        let ev = event(json!({
            "type": "folder", "id": "8", "name": "New",
            "parent": {"type": "folder", "id": "7", "name": "Docs"}
        }));
        assert!(event_line(&ev).contains("folder 8  \"New\"  in folder 7 (Docs)"));
        let ev = event(Value::Null);
        assert!(event_line(&ev).contains("ITEM_UPLOAD  -  by ann@example.com"));
    }

    #[test]
    fn positions_are_numbers_or_now() {
        assert!(check_position("0").is_ok());
        assert!(check_position("now").is_ok());
        assert!(check_position("1234").is_ok());
        assert!(check_position("-1").is_err());
        assert!(check_position("").is_err());
    }
}
