//! The `RUST_LOG` filter of the `boxfs` binary. The Box client and the emulator are crates
//! of their own (`box_client`, `box_emulator`), so their log lines carry those targets; a
//! directive for `boxfs` (`RUST_LOG=boxfs=debug`, as the documentation says) is widened to
//! them too, so that one word still means "all of boxfs".

/// The crates whose log lines `boxfs` in a directive stands for, besides its own.
const SAME_PROJECT: &[&str] = &["box_client", "box_emulator"];

/// `spec` with every directive for the `boxfs` crate as a whole repeated for the client and
/// the emulator: `boxfs=debug,hyper=warn` becomes
/// `boxfs=debug,box_client=debug,box_emulator=debug,hyper=warn`. Directives for a module
/// inside boxfs (`boxfs::fs=debug`), for other crates, and a `/regex` suffix are kept as
/// they are.
pub fn widen_boxfs_directives(spec: &str) -> String {
    let (directives, regex) = match spec.split_once('/') {
        Some((d, r)) => (d, Some(r)),
        None => (spec, None),
    };
    let mut out: Vec<String> = Vec::new();
    for directive in directives.split(',') {
        out.push(directive.to_string());
        let (target, level) = match directive.split_once('=') {
            Some((t, l)) => (t.trim(), Some(l)),
            None => (directive.trim(), None),
        };
        if target != "boxfs" {
            continue;
        }
        for other in SAME_PROJECT {
            out.push(match level {
                Some(level) => format!("{other}={level}"),
                None => other.to_string(),
            });
        }
    }
    let mut widened = out.join(",");
    if let Some(regex) = regex {
        widened.push('/');
        widened.push_str(regex);
    }
    widened
}

#[cfg(test)]
mod tests {
    use super::widen_boxfs_directives as widen;

    #[test]
    fn a_boxfs_directive_covers_the_client_and_the_emulator() {
        assert_eq!(
            widen("boxfs=debug"),
            "boxfs=debug,box_client=debug,box_emulator=debug"
        );
        assert_eq!(
            widen("warn,boxfs=info,hyper=error"),
            "warn,boxfs=info,box_client=info,box_emulator=info,hyper=error"
        );
        assert_eq!(widen("boxfs"), "boxfs,box_client,box_emulator");
    }

    #[test]
    fn other_directives_are_kept_as_they_are() {
        assert_eq!(widen("debug"), "debug");
        assert_eq!(widen("boxfs::fs=debug"), "boxfs::fs=debug");
        assert_eq!(widen("boxfsx=debug"), "boxfsx=debug");
        assert_eq!(
            widen("boxfs=debug/upload"),
            "boxfs=debug,box_client=debug,box_emulator=debug/upload"
        );
    }
}
