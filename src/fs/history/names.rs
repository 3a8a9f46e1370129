//! The names the virtual history folders show, worked out from what Box says and nothing
//! else: the unique names of trashed items in `.trash/`, and the names of earlier versions in
//! `.versions/NAME/`. Pure functions, no state.
//!
//! **Trash names.** Box's trash is one flat list in which any number of items may share a
//! name (two `report.txt` deleted from two folders, or the same folder twice). A name held by
//! one trashed item is shown as it is; a name held by several (compared ignoring case, as Box
//! compares names) is shown by each of them with its Box id before the extension:
//! `report (box 1234).txt`. The id, not a counter, so that a name never moves to another item
//! when the trash changes between a listing and an `rm`: `report (box 1234).txt` always means
//! that one item, and the plain name only ever means the one item holding it alone.
//!
//! **Version names.** `v<number> <date> <time><.ext>`, e.g. `v2 2026-12-04 10.15.03.txt`:
//! the number is the version's place counted from the oldest Box still keeps (1), the time
//! is when the version was uploaded, in UTC, with dots because `:` upsets tools (`scp`,
//! Windows shares) and `/` cannot be in a name; the extension is the file's, so that programs
//! that go by it open the version as they open the file.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

/// The part of `name` from its last dot (`.txt`), if it has an extension: a leading dot
/// (`.bashrc`) or a trailing one starts none.
pub fn extension(name: &str) -> &str {
    match name.rfind('.') {
        Some(0) | None => "",
        Some(i) if i + 1 == name.len() => "",
        Some(i) => &name[i..],
    }
}

/// `name` with `tag` before its extension: `report.txt` + `box 7` → `report (box 7).txt`.
fn tagged(name: &str, tag: &str) -> String {
    let ext = extension(name);
    let stem = &name[..name.len() - ext.len()];
    format!("{stem} ({tag}){ext}")
}

/// The name `.trash/` shows for each of `items` (pairs of Box id and name), in the same
/// order: the name itself when no other item has it (ignoring case), else the name tagged
/// with the item's Box id.
pub fn unique_trash_names<'a>(items: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<String> {
    let items: Vec<(&str, &str)> = items.into_iter().collect();
    let mut holders: HashMap<String, usize> = HashMap::new();
    for (_, name) in &items {
        *holders.entry(name.to_lowercase()).or_default() += 1;
    }
    items
        .iter()
        .map(|(id, name)| {
            if holders[&name.to_lowercase()] > 1 {
                tagged(name, &format!("box {id}"))
            } else {
                (*name).to_string()
            }
        })
        .collect()
}

/// The Box id a tagged trash name carries (`report (box 1234).txt` → `1234`), so that a name
/// seen in an earlier listing still finds its item after the others that shared its name
/// left the trash.
pub fn tagged_id(name: &str) -> Option<&str> {
    let ext = extension(name);
    let stem = name[..name.len() - ext.len()].strip_suffix(')')?;
    let open = stem.rfind(" (box ")?;
    let id = &stem[open + " (box ".len()..];
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())).then_some(id)
}

/// The name of earlier version number `number` of a file named `file_name`, uploaded at
/// `uploaded` (unknown: no time in the name).
pub fn version_name(number: usize, uploaded: Option<DateTime<Utc>>, file_name: &str) -> String {
    let ext = extension(file_name);
    match uploaded {
        Some(t) => format!("v{number} {}{ext}", t.format("%Y-%m-%d %H.%M.%S")),
        None => format!("v{number}{ext}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions() {
        assert_eq!(extension("report.txt"), ".txt");
        assert_eq!(extension("archive.tar.gz"), ".gz");
        assert_eq!(extension("README"), "");
        assert_eq!(extension(".bashrc"), "");
        assert_eq!(extension("odd."), "");
    }

    #[test]
    fn a_name_held_alone_is_kept() {
        let names = unique_trash_names([("1", "a.txt"), ("2", "b.txt")]);
        assert_eq!(names, ["a.txt", "b.txt"]);
    }

    #[test]
    fn shared_names_carry_the_box_id_whatever_their_case() {
        let names = unique_trash_names([
            ("11", "report.txt"),
            ("12", "notes"),
            ("13", "Report.TXT"),
            ("14", "report.txt"),
        ]);
        assert_eq!(
            names,
            [
                "report (box 11).txt",
                "notes",
                "Report (box 13).TXT",
                "report (box 14).txt"
            ]
        );
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len());
    }

    #[test]
    fn tagged_names_give_back_their_id() {
        assert_eq!(tagged_id("report (box 11).txt"), Some("11"));
        assert_eq!(tagged_id("notes (box 7)"), Some("7"));
        assert_eq!(tagged_id("report.txt"), None);
        assert_eq!(tagged_id("report (box x1).txt"), None);
        assert_eq!(tagged_id("report (box ).txt"), None);
    }

    #[test]
    fn version_names_keep_the_extension_and_avoid_colons() {
        let t = DateTime::parse_from_rfc3339("2026-12-04T10:15:03-08:00")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            version_name(1, Some(t), "report.txt"),
            "v1 2026-12-04 18.15.03.txt"
        );
        assert_eq!(
            version_name(12, Some(t), "Makefile"),
            "v12 2026-12-04 18.15.03"
        );
        assert_eq!(version_name(3, None, "a.pdf"), "v3.pdf");
        assert!(!version_name(1, Some(t), "x.txt").contains([':', '/']));
    }
}
