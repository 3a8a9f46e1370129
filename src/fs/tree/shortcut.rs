//! Web links (Box's bookmarks) as files: the name a web link shows with (`NAME.url`), the
//! Box name a shown name stands for, and the content of its file, an Internet shortcut
//! made here from the URL. Desktop file managers and browsers open `.url` files of this
//! form; `cat` shows the address.
//!
//! Box keeps a web link's name apart from any extension, so `Manual` shows as
//! `Manual.url`. A name that already ends in `.url` (any case) shows as it is, so a link
//! made by dropping `Manual.url` in Box's web app does not become `Manual.url.url`. Going
//! back, the shown name loses its `.url`: renaming `Manual.url` to `Handbook.url` names the
//! link `Handbook` on Box, which shows as `Handbook.url` again (see [`box_name_of`] for the
//! names that keep it).

use std::borrow::Cow;

use box_client::types::Item;

/// The extension web links show with.
pub const SHORTCUT_SUFFIX: &str = ".url";

/// The name `item` shows with in its folder: a web link's with `.url`, any other's as Box
/// gives it.
pub fn shown_name(item: &Item) -> Cow<'_, str> {
    if item.is_web_link() && !item.name.is_empty() && !has_suffix(&item.name) {
        Cow::Owned(format!("{}{SHORTCUT_SUFFIX}", item.name))
    } else {
        Cow::Borrowed(&item.name)
    }
}

/// The Box name of a web link that is to show as `shown`: `None` if `shown` does not end in
/// `.url` (a web link cannot show under any other name) or is nothing else. The name loses
/// its `.url` only where [`shown_name`] puts it back the same: not `.URL`, and not a second
/// `.url` (`a.url.url` stays whole, or it would show as `a.url`).
pub fn box_name_of(shown: &str) -> Option<&str> {
    if !has_suffix(shown) || shown.len() == SHORTCUT_SUFFIX.len() {
        return None;
    }
    match shown.strip_suffix(SHORTCUT_SUFFIX) {
        Some(stem) if !has_suffix(stem) => Some(stem),
        _ => Some(shown),
    }
}

fn has_suffix(name: &str) -> bool {
    name.len() >= SHORTCUT_SUFFIX.len()
        && name.is_char_boundary(name.len() - SHORTCUT_SUFFIX.len())
        && name[name.len() - SHORTCUT_SUFFIX.len()..].eq_ignore_ascii_case(SHORTCUT_SUFFIX)
}

/// The content of a web link's file: an Internet shortcut, with the CRLF line ends Windows
/// wrote it with (every reader of the format takes them).
pub fn shortcut(url: &str) -> String {
    format!("[InternetShortcut]\r\nURL={url}\r\n")
}

/// The size of [`shortcut`]`(url)`, without making it.
pub fn shortcut_len(url: &str) -> u64 {
    (shortcut("").len() + url.len()) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(name: &str) -> Item {
        Item {
            kind: "web_link".into(),
            id: "5".into(),
            name: name.into(),
            url: Some("https://example.com/".into()),
            ..Item::default()
        }
    }

    #[test]
    fn web_links_show_with_url_once() {
        assert_eq!(shown_name(&link("Manual")), "Manual.url");
        assert_eq!(shown_name(&link("Manual.URL")), "Manual.URL");
        assert_eq!(shown_name(&link("")), "", "a mini item without its name");
        let file = Item {
            kind: "file".into(),
            name: "Manual".into(),
            ..Item::default()
        };
        assert_eq!(shown_name(&file), "Manual");
    }

    #[test]
    fn a_shown_name_gives_back_the_box_name() {
        assert_eq!(box_name_of("Handbook.url"), Some("Handbook"));
        assert_eq!(box_name_of("Handbook.Url"), Some("Handbook.Url"));
        assert_eq!(box_name_of("a.url.url"), Some("a.url.url"));
        assert_eq!(box_name_of("Handbook"), None);
        assert_eq!(box_name_of(".url"), None);
        assert_eq!(box_name_of("é.url"), Some("é"));
        assert_eq!(
            box_name_of("ü"),
            None,
            "shorter than the suffix, not a char boundary"
        );
        assert_eq!(box_name_of("aaéurl"), None);
        // Whatever is taken shows again as it was asked for.
        for shown in [
            "Handbook.url",
            "Handbook.Url",
            "a.url.url",
            "x.URL",
            "é.url",
        ] {
            let item = link(box_name_of(shown).unwrap());
            assert_eq!(shown_name(&item), shown);
        }
    }

    #[test]
    fn the_shortcut_is_an_internet_shortcut() {
        let s = shortcut("https://example.com/a?b=1");
        assert_eq!(s, "[InternetShortcut]\r\nURL=https://example.com/a?b=1\r\n");
        assert_eq!(shortcut_len("https://example.com/a?b=1"), s.len() as u64);
    }
}
