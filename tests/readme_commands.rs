//! Every `boxfs …` command the README shows in its code blocks, and every one the packaging
//! files run (the systemd units' `Exec*=` lines, commands quoted in their comments), parses
//! with the real command-line definition; every `fuse.boxfs` line of an fstab example is
//! accepted by the mount helper. A renamed or removed flag fails this test until the
//! documentation follows.

use std::path::Path;

use boxfs::cli::mount_helper::{translate, HelperArgs, HELPER_NAME};
use boxfs::cli::Cli;
use clap::error::ErrorKind;
use clap::Parser;

/// Placeholders the documentation writes where a value goes, and a value of the right type.
const PLACEHOLDERS: &[(&str, &str)] = &[
    ("PORT", "8080"),
    ("N", "1"),
    ("SECS", "5"),
    ("BYTES", "1G"),
    ("BYTES_PER_SEC", "1000"),
    ("R", "0.1"),
    ("%f", "/home/me/Box"),
    ("%h", "/home/me"),
];

/// A command found in a file, and where.
#[derive(Debug)]
struct Found {
    place: String,
    line: String,
}

/// The fenced code blocks of a Markdown text, with the line number each starts at, leaving
/// out the languages that hold no shell (json, toml, rust).
fn code_blocks(text: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, bool, String)> = None;
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if let Some(lang) = trimmed.strip_prefix("```") {
            match current.take() {
                Some((start, true, body)) => blocks.push((start, body)),
                Some(_) => {}
                None => {
                    let shell = !matches!(lang.trim(), "json" | "toml" | "rust");
                    current = Some((n + 2, shell, String::new()));
                }
            }
            continue;
        }
        if let Some((_, _, body)) = current.as_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    blocks
}

/// The logical lines of a shell text: continuations (`\` at the end) joined.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut lines = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (n, line) in text.lines().enumerate() {
        let (start, mut joined) = pending.take().unwrap_or((n, String::new()));
        match line.trim_end().strip_suffix('\\') {
            Some(head) => {
                joined.push_str(head);
                joined.push(' ');
                pending = Some((start, joined));
            }
            None => {
                joined.push_str(line);
                lines.push((start, joined));
            }
        }
    }
    lines.extend(pending);
    lines
}

/// Expands an optional group written `[A | B]` into the line without it and the line with
/// each alternative (recursively, for several groups).
fn expand_optional(line: &str) -> Vec<String> {
    let (Some(open), Some(close)) = (line.find(" ["), line.find(']')) else {
        return vec![line.to_string()];
    };
    if close < open {
        return vec![line.to_string()];
    }
    let (head, inner, tail) = (&line[..open], &line[open + 2..close], &line[close + 1..]);
    let mut variants = vec![format!("{head}{tail}")];
    variants.extend(inner.split(" | ").map(|alt| format!("{head} {alt}{tail}")));
    variants.iter().flat_map(|v| expand_optional(v)).collect()
}

/// The `boxfs` argument lists of a shell line: each command of a `&&`, `;` or `|` chain that
/// runs boxfs (as `boxfs`, `/usr/bin/boxfs`, `sudo boxfs`, `VAR=x boxfs` or `cargo run … --`).
fn boxfs_invocations(line: &str) -> Vec<Vec<String>> {
    let Some(words) = shlex::split(line) else {
        panic!("cannot split as the shell would: {line}");
    };
    let mut found = Vec::new();
    for command in words.split(|w| matches!(w.as_str(), "&&" | "||" | ";" | "|")) {
        let mut words = command
            .iter()
            .skip_while(|w| *w == "sudo" || (w.contains('=') && !w.starts_with('-')));
        let Some(program) = words.next() else {
            continue;
        };
        // Redirections (`> FILE`, `2>&1`) are the shell's, not arguments.
        let rest: Vec<String> = words
            .take_while(|w| !w.starts_with('>') && !w.starts_with('<') && !w.starts_with("2>"))
            .cloned()
            .collect();
        let program = Path::new(program).file_name().unwrap_or_default();
        if program == "boxfs" {
            found.push(rest);
        } else if program == "cargo" && rest.first().is_some_and(|w| w == "run") {
            if let Some(dash) = rest.iter().position(|w| w == "--") {
                found.push(rest[dash + 1..].to_vec());
            }
        }
    }
    found
}

/// Parses one `boxfs` argument list with the real definition.
fn check(args: &[String]) -> Result<(), String> {
    let argv = std::iter::once("boxfs".to_string()).chain(args.iter().map(|a| {
        PLACEHOLDERS
            .iter()
            .find(|(p, _)| p == a)
            .map_or_else(|| a.clone(), |(_, v)| v.to_string())
    }));
    match Cli::try_parse_from(argv) {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

/// Checks an fstab line (`SOURCE DIR fuse.boxfs OPTIONS …`) with the mount helper.
fn check_fstab(line: &str) -> Option<Result<(), String>> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() < 4 || fields[2] != "fuse.boxfs" || fields[0].starts_with('#') {
        return None;
    }
    let helper = HelperArgs::try_parse_from([HELPER_NAME, fields[0], fields[1], "-o", fields[3]])
        .map_err(|e| e.to_string());
    Some(helper.and_then(|h| translate(&h).map(|_| ())))
}

/// The commands of a Markdown file's code blocks, and its fstab lines.
fn markdown_commands(name: &str, text: &str) -> (Vec<(Found, Vec<String>)>, Vec<Found>) {
    let mut commands = Vec::new();
    let mut fstab = Vec::new();
    for (start, block) in code_blocks(text) {
        for (n, line) in logical_lines(&block) {
            let place = format!("{name}:{}", start + n);
            if check_fstab(&line).is_some() {
                fstab.push(Found { place, line });
                continue;
            }
            for variant in expand_optional(&line) {
                for args in boxfs_invocations(&variant) {
                    let found = Found {
                        place: place.clone(),
                        line: variant.clone(),
                    };
                    commands.push((found, args));
                }
            }
        }
    }
    (commands, fstab)
}

/// The commands a systemd unit runs (`Exec*=`, with its `-@+!` prefixes), and the `boxfs …`
/// commands quoted in its comments.
fn unit_commands(name: &str, text: &str) -> Vec<(Found, Vec<String>)> {
    let mut commands = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let place = format!("{name}:{}", n + 1);
        let mut candidates = Vec::new();
        if let Some((key, value)) = line.split_once('=') {
            if key.starts_with("Exec") && !line.starts_with('#') {
                candidates.push(value.trim_start_matches(['-', '@', '+', '!']).to_string());
            }
        }
        if line.starts_with('#') {
            candidates.extend(
                line.split('`')
                    .skip(1)
                    .step_by(2)
                    .filter(|quoted| quoted.starts_with("boxfs "))
                    .map(String::from),
            );
        }
        for candidate in candidates {
            for args in boxfs_invocations(&candidate) {
                let found = Found {
                    place: place.clone(),
                    line: candidate.clone(),
                };
                commands.push((found, args));
            }
        }
    }
    commands
}

fn read(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn readme_commands_parse() {
    let (commands, fstab) = markdown_commands("README.md", &read("README.md"));
    let failures: Vec<String> = commands
        .iter()
        .filter_map(|(found, args)| {
            check(args)
                .err()
                .map(|e| format!("{}: {}\n{e}", found.place, found.line))
        })
        .chain(
            fstab
                .iter()
                .filter_map(|found| match check_fstab(&found.line) {
                    Some(Err(e)) => Some(format!("{}: {}\n{e}", found.place, found.line)),
                    _ => None,
                }),
        )
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    // Enough of the README is seen for the check to mean something.
    let subcommands: std::collections::BTreeSet<&str> = commands
        .iter()
        .filter_map(|(_, args)| args.first().map(String::as_str))
        .collect();
    for expected in [
        "mount",
        "unmount",
        "login",
        "whoami",
        "config",
        "emulator",
        "completions",
    ] {
        assert!(
            subcommands.contains(expected),
            "no `boxfs {expected}` seen: {subcommands:?}"
        );
    }
    assert!(fstab.len() >= 2, "fstab examples seen: {fstab:?}");
}

#[test]
fn packaging_commands_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging");
    let mut units = 0;
    let mut failures = Vec::new();
    let mut exec_start_of_template = false;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "service") {
            continue;
        }
        units += 1;
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        for (found, args) in unit_commands(&name, &text) {
            if name == "boxfs@.service" && found.line.contains("boxfs mount --foreground %f") {
                exec_start_of_template = true;
            }
            if let Err(e) = check(&args) {
                failures.push(format!("{}: {}\n{e}", found.place, found.line));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(units >= 2, "units seen: {units}");
    assert!(
        exec_start_of_template,
        "the ExecStart of boxfs@.service was not checked"
    );
}

/// The check itself: a flag that does not exist, a bad value, a subcommand that does not
/// exist and a bad fstab option are all caught, in code blocks as in units.
#[test]
fn a_wrong_command_is_caught() {
    let readme = "text\n\n```sh\nboxfs mount ~/Box --token T   # fine\n\
                  mkdir -p ~/Box && boxfs mount ~/Box \\\n  --no-such-flag\n\
                  boxfs login --jwt c.json [--user ID | --enterprise]\n\
                  boxfs completions bash > /tmp/x 2>&1\n```\n\n```toml\nboxfs = 1\n```\n";
    let (commands, _) = markdown_commands("x.md", readme);
    let lines: Vec<(&str, bool)> = commands
        .iter()
        .map(|(f, args)| (f.place.as_str(), check(args).is_ok()))
        .collect();
    assert_eq!(
        lines,
        [
            ("x.md:4", true),
            ("x.md:5", false),
            ("x.md:7", true),
            ("x.md:7", true),
            ("x.md:7", true),
            ("x.md:8", true),
        ]
    );
    assert!(check(&[
        "mount".into(),
        "/x".into(),
        "--cache-size".into(),
        "lots".into()
    ])
    .is_err());
    assert!(check(&["mountt".into(), "/x".into()]).is_err());
    assert!(check(&["mount".into(), "--help".into()]).is_ok());
    let unit = "[Service]\nExecStart=-/usr/bin/boxfs mount --foregrund %f\n\
                # run `boxfs unmount %f` or `boxfs umount %f`\n";
    let checked: Vec<bool> = unit_commands("u.service", unit)
        .iter()
        .map(|(_, args)| check(args).is_ok())
        .collect();
    assert_eq!(checked, [false, true, false]);
    assert_eq!(
        check_fstab("work /m fuse.boxfs _netdev,ro 0 0"),
        Some(Ok(()))
    );
    assert!(matches!(
        check_fstab("work /m fuse.boxfs cache_szie=1 0 0"),
        Some(Err(_))
    ));
    assert_eq!(check_fstab("/dev/sda1 / ext4 defaults 0 1"), None);
}
