//! `boxfs search`: runs a Box search (text, `--type`, `--in`, metadata filters) and prints
//! each result as a path inside a running mount of the same account that shows it, or as a
//! Box path (`/Documents/notes.txt`) when none does. Running mounts are found through their
//! daemon records ([`DaemonRecord::running`]); a folder given to `--in` is either a
//! directory of a mount (its Box id read from the `user.box.id` attribute) or a Box path,
//! resolved by listing folders from the root.
//!
//! Exit status: 0 with results, 1 when nothing matches, 2 on errors.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use clap::Args;
use futures_util::{StreamExt, TryStreamExt};
use serde_json::Value;

use crate::cli::ConnectionArgs;
use crate::config::{self, DEFAULT_ROOT_FOLDER};
use crate::daemon::record::DaemonRecord;
use box_client::folders::ListOptions;
use box_client::search::{FieldFilter, ItemType, MetadataFilter, SearchQuery, MAX_SEARCH_LIMIT};
use box_client::types::Item;
use box_client::Client;

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// What to look for, in Box's query language (may be left out with --mdfilter).
    pub query: Option<String>,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub mount: crate::cli::session::MountSelect,
    /// A metadata condition: SCOPE.TEMPLATE.FIELD=VALUE (VALUE read as JSON when it is,
    /// else as text), or FIELD>=N / FIELD<=N for an inclusive range. Repeatable; every
    /// condition must name the same template.
    #[arg(long = "mdfilter", value_name = "SCOPE.TEMPLATE.FIELD=VALUE")]
    pub mdfilters: Vec<String>,
    /// Only files or only folders.
    #[arg(long = "type", value_name = "TYPE", value_parser = ["file", "folder"])]
    pub item_type: Option<String>,
    /// Only inside this folder: a directory of a running mount, or a Box path.
    #[arg(long = "in", value_name = "PATH")]
    pub within: Option<PathBuf>,
    /// At most this many results.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub limit: usize,
}

/// A running mount: where it is and which Box folder it shows.
#[derive(Debug, Clone, PartialEq)]
pub struct MountView {
    pub mountpoint: PathBuf,
    pub root_folder_id: String,
}

/// Parses the `--mdfilter` conditions into one filter (Box searches one template at a time).
pub fn parse_mdfilters(specs: &[String]) -> Result<Option<MetadataFilter>, String> {
    let mut filter: Option<MetadataFilter> = None;
    for spec in specs {
        let bad = |why: &str| format!("bad --mdfilter '{spec}': {why}");
        let eq = spec
            .find('=')
            .ok_or_else(|| bad("expected SCOPE.TEMPLATE.FIELD=VALUE"))?;
        let (mut key, raw) = (&spec[..eq], &spec[eq + 1..]);
        let bound = match key.chars().last() {
            Some('>') => Some(true),
            Some('<') => Some(false),
            _ => None,
        };
        if bound.is_some() {
            key = &key[..key.len() - 1];
        }
        let parts: Vec<&str> = key.splitn(3, '.').collect();
        let [scope, template, field] = parts[..] else {
            return Err(bad("expected SCOPE.TEMPLATE.FIELD before the '='"));
        };
        if scope.is_empty() || template.is_empty() || field.is_empty() {
            return Err(bad("scope, template and field must all be given"));
        }
        if raw.is_empty() {
            return Err(bad("no value after the '='"));
        }
        let value =
            serde_json::from_str::<Value>(raw).unwrap_or_else(|_| Value::String(raw.into()));
        if !(value.is_string() || value.is_number()) {
            return Err(bad("the value must be a string or a number"));
        }
        let f = filter.get_or_insert_with(|| MetadataFilter::new(scope, template));
        if f.scope != scope || f.template_key != template {
            return Err(bad(&format!(
                "Box searches one template at a time, and another condition names {}.{}",
                f.scope, f.template_key
            )));
        }
        match bound {
            None => f.filters.push((field.into(), FieldFilter::Equals(value))),
            Some(lower) => {
                // Box's `gt`/`lt` are inclusive: `>=` and `<=`. Both ends of one field merge.
                let existing = f.filters.iter_mut().find_map(|(name, cond)| match cond {
                    FieldFilter::Range { gt, lt } if name == field => Some((gt, lt)),
                    _ => None,
                });
                let (gt, lt) = match existing {
                    Some(ends) => ends,
                    None => {
                        f.filters
                            .push((field.into(), FieldFilter::Range { gt: None, lt: None }));
                        match &mut f.filters.last_mut().expect("just pushed").1 {
                            FieldFilter::Range { gt, lt } => (gt, lt),
                            _ => unreachable!("just pushed a range"),
                        }
                    }
                };
                *(if lower { gt } else { lt }) = Some(value);
            }
        }
    }
    if let Some(f) = &filter {
        f.to_mdfilters()
            .map_err(|e| format!("bad --mdfilter: {e}"))?;
    }
    Ok(filter)
}

/// The names of the folders above `item`, from All Files down (All Files itself left out),
/// with their ids.
fn ancestors(item: &Item) -> Vec<(&str, &str)> {
    item.path_collection
        .iter()
        .flat_map(|p| p.entries.iter())
        .filter(|f| f.id != DEFAULT_ROOT_FOLDER)
        .map(|f| (f.id.as_str(), f.name.as_str()))
        .collect()
}

/// `item` as a path inside the first of `mounts` that shows it, else as a Box path.
pub fn result_path(item: &Item, mounts: &[MountView]) -> String {
    let above = ancestors(item);
    for m in mounts {
        let below = if m.root_folder_id == DEFAULT_ROOT_FOLDER {
            Some(0)
        } else if m.root_folder_id == item.id && item.kind == "folder" {
            return m.mountpoint.display().to_string();
        } else {
            above
                .iter()
                .position(|(id, _)| *id == m.root_folder_id)
                .map(|i| i + 1)
        };
        if let Some(start) = below {
            let mut path = m.mountpoint.clone();
            path.extend(above[start..].iter().map(|(_, name)| *name));
            return path.join(&item.name).display().to_string();
        }
    }
    let mut path = String::new();
    for (_, name) in above
        .iter()
        .chain(std::iter::once(&("", item.name.as_str())))
    {
        path.push('/');
        path.push_str(name);
    }
    path
}

fn same_api(a: Option<&str>, b: Option<&str>) -> bool {
    let norm = |u: Option<&str>| u.map(|u| u.trim_end_matches('/').to_string());
    norm(a) == norm(b)
}

/// The running mounts of the API at `api_url` (none: Box itself).
fn mounts_of(api_url: Option<&str>) -> Vec<MountView> {
    DaemonRecord::running()
        .into_iter()
        .filter(|r| same_api(r.api_url.as_deref(), api_url))
        .filter_map(|r| {
            Some(MountView {
                mountpoint: r.mountpoint,
                root_folder_id: r.root_folder_id?,
            })
        })
        .collect()
}

/// An extended attribute of `path`, if it has it.
fn xattr(path: &Path, name: &std::ffi::CStr) -> Option<String> {
    let c_path = CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut buf = [0u8; 256];
    // SAFETY: both strings are NUL-terminated and the buffer's length is passed.
    let n = unsafe {
        libc::getxattr(
            c_path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    let n = usize::try_from(n).ok()?;
    String::from_utf8(buf[..n].to_vec()).ok()
}

/// The Box id of the folder `--in` names.
async fn folder_id_of(client: &Client, path: &Path) -> Result<String, String> {
    if path.is_dir() {
        if let Some(id) = xattr(path, c"user.box.id") {
            if xattr(path, c"user.box.type").as_deref() == Some("folder") {
                return Ok(id);
            }
        }
    }
    let text = path.to_string_lossy();
    if !text.starts_with('/') {
        return Err(format!(
            "--in {text}: neither a folder of a running boxfs mount nor a Box path (/Folder/…)"
        ));
    }
    let mut id = DEFAULT_ROOT_FOLDER.to_string();
    for name in text.split('/').filter(|n| !n.is_empty()) {
        let found = client
            .folder_items(&id, ListOptions::default().fields(&["name", "type"]))
            .try_filter(|i| {
                // Box compares names case-insensitively.
                std::future::ready(
                    i.kind == "folder" && i.name.to_lowercase() == name.to_lowercase(),
                )
            })
            .boxed()
            .try_next()
            .await
            .map_err(|e| config::http::failure(&format!("--in {text}"), &e))?;
        id = found
            .ok_or_else(|| format!("--in {text}: Box has no folder '{name}' there"))?
            .id;
    }
    Ok(id)
}

/// Runs `boxfs search`; `Ok(false)` when nothing matched.
pub async fn run_search(args: SearchArgs) -> Result<bool, String> {
    let metadata = parse_mdfilters(&args.mdfilters)?;
    let query = args.query.clone().filter(|q| !q.trim().is_empty());
    if query.is_none() && metadata.is_none() {
        return Err("give a QUERY, an --mdfilter, or both".into());
    }
    if args.limit == 0 {
        return Err("--limit must be at least 1".into());
    }
    let chosen =
        crate::cli::session::client_for(&args.connection, &args.mount, args.within.as_deref())
            .await?;
    let client = chosen.client;
    let mut search = SearchQuery {
        query,
        metadata_filter: metadata,
        ..SearchQuery::default()
    }
    .limit(u32::try_from(args.limit).map_or(MAX_SEARCH_LIMIT, |l| l.min(MAX_SEARCH_LIMIT)))
    .fields(&["name", "path_collection", "type", "id"]);
    search.item_type = args.item_type.as_deref().map(|t| match t {
        "folder" => ItemType::Folder,
        _ => ItemType::File,
    });
    if let Some(within) = &args.within {
        search = search.ancestor_folders([folder_id_of(&client, within).await?]);
    }
    let mounts = mounts_of(chosen.api_url.as_deref());
    let items: Vec<Item> = client
        .search_items(search)
        .take(args.limit)
        .try_collect()
        .await
        .map_err(|e| config::http::failure("search failed", &e))?;
    for item in &items {
        println!("{}", result_path(item, &mounts));
    }
    Ok(!items.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use box_client::types::{FolderMini, PathCollection};
    use serde_json::json;

    fn item(kind: &str, id: &str, name: &str, above: &[(&str, &str)]) -> Item {
        Item {
            kind: kind.into(),
            id: id.into(),
            name: name.into(),
            path_collection: Some(PathCollection {
                total_count: above.len() as u64,
                entries: above
                    .iter()
                    .map(|(id, name)| FolderMini {
                        id: (*id).into(),
                        name: (*name).into(),
                        ..FolderMini::default()
                    })
                    .collect(),
            }),
            ..Item::default()
        }
    }

    #[test]
    fn paths_inside_mounts_or_on_box() {
        let it = item(
            "file",
            "9",
            "notes.txt",
            &[("0", "All Files"), ("5", "Documents"), ("6", "Work")],
        );
        assert_eq!(result_path(&it, &[]), "/Documents/Work/notes.txt");
        let all = MountView {
            mountpoint: "/mnt/box".into(),
            root_folder_id: "0".into(),
        };
        assert_eq!(
            result_path(&it, &[all]),
            "/mnt/box/Documents/Work/notes.txt"
        );
        let docs = MountView {
            mountpoint: "/mnt/docs".into(),
            root_folder_id: "5".into(),
        };
        assert_eq!(
            result_path(&it, std::slice::from_ref(&docs)),
            "/mnt/docs/Work/notes.txt"
        );
        let other = MountView {
            mountpoint: "/mnt/o".into(),
            root_folder_id: "77".into(),
        };
        assert_eq!(
            result_path(&it, &[other, docs.clone()]),
            "/mnt/docs/Work/notes.txt"
        );
        let folder = item("folder", "5", "Documents", &[("0", "All Files")]);
        assert_eq!(result_path(&folder, &[docs]), "/mnt/docs");
    }

    fn specs(s: &[&str]) -> Result<Option<MetadataFilter>, String> {
        parse_mdfilters(&s.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn mdfilter_syntax() {
        let f = specs(&[
            "enterprise.contract.status=active",
            "enterprise.contract.amount>=100",
            "enterprise.contract.amount<=500",
        ])
        .unwrap()
        .unwrap();
        let v: Value = serde_json::from_str(&f.to_mdfilters().unwrap()).unwrap();
        assert_eq!(v[0]["filters"]["status"], "active");
        assert_eq!(v[0]["filters"]["amount"], json!({"gt": 100, "lt": 500}));
        assert!(specs(&[]).unwrap().is_none());
        for bad in [
            "status=active",
            "a.b.c",
            "a.b.=1",
            "global.properties.x=",
            "global.properties.x=[1]",
        ] {
            assert!(specs(&[bad]).is_err(), "{bad}");
        }
        assert!(specs(&["global.properties.a=1", "enterprise.contract.b=2"]).is_err());
    }
}
