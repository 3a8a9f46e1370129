//! Shell completions and manual pages, generated from the command-line definition itself
//! ([`crate::cli::Cli`]) so that they never disagree with the binary: `boxfs completions
//! SHELL` prints a completion script, and the hidden `boxfs man-pages DIR` writes `boxfs.1`,
//! one `boxfs-SUBCOMMAND.1` per subcommand and `mount.fuse.boxfs.8` (the packaging scripts
//! run it).

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use crate::cli::mount_helper::{self, HelperArgs};
use crate::cli::Cli;

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    #[arg(value_name = "SHELL")]
    pub shell: Shell,
}

#[derive(Debug, Args)]
pub struct ManPagesArgs {
    /// The directory to write the pages to (created if missing).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

/// Runs `boxfs completions SHELL`: the script on standard output.
pub fn print_completions(args: &CompletionsArgs) -> Result<(), String> {
    // Into memory first: clap_complete panics when its writer fails (a closed pipe).
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "boxfs", &mut script);
    let mut out = std::io::stdout().lock();
    match out.write_all(&script).and_then(|()| out.flush()) {
        // `boxfs completions bash | head`: the reader had enough.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(format!("cannot write the completions: {e}")),
        Ok(()) => Ok(()),
    }
}

/// Runs `boxfs man-pages DIR`: writes the pages and prints their paths.
pub fn write_man_pages(args: &ManPagesArgs) -> Result<(), String> {
    for page in man_pages(&args.dir)? {
        println!("{}", page.display());
    }
    Ok(())
}

/// Writes every manual page into `dir`; returns their paths.
pub fn man_pages(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let failed = |e: std::io::Error| format!("cannot write manual pages to {}: {e}", dir.display());
    std::fs::create_dir_all(dir).map_err(failed)?;
    clap_mangen::generate_to(Cli::command(), dir).map_err(failed)?;
    let main_page = dir.join("boxfs.1");
    let mut text = std::fs::read(&main_page).map_err(failed)?;
    text.extend_from_slice(MAIN_PAGE_TAIL.as_bytes());
    std::fs::write(&main_page, text).map_err(failed)?;
    let helper = dir.join(format!("{}.8", mount_helper::HELPER_NAME));
    std::fs::write(&helper, helper_page().map_err(failed)?).map_err(failed)?;
    let mut pages: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(failed)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "1" || e == "8"))
        .collect();
    pages.sort();
    Ok(pages)
}

/// What `boxfs(1)` says beyond the subcommands: files, environment, related pages.
const MAIN_PAGE_TAIL: &str = r#".SH FILES
.TP
\fI~/.config/boxfs/config.toml\fR
The configuration file: top\-level keys, and \fB[profiles.\fR\fINAME\fR\fB]\fR tables
(\fB\-\-config\fR, \fBBOXFS_CONFIG\fR).
.TP
\fI~/.local/share/boxfs/tokens.json\fR
The tokens \fBboxfs login\fR stored (mode 0600).
.TP
\fI~/.cache/boxfs/mounts/\fR\fIMOUNTPOINT\fR\fI/\fR
A mount's content cache, the files staged for upload, and the log of a background mount.
.TP
\fI/usr/lib/systemd/user/boxfs@.service\fR
Mounts at login: \fBsystemctl \-\-user enable \-\-now boxfs@$(systemd\-escape \-\-path ~/Box)\fR.
.SH ENVIRONMENT
Every flag of \fBmount\fR and \fBlogin\fR is also a variable \fBBOXFS_\fR\fIKEY\fR
(\fBBOXFS_PROFILE\fR, \fBBOXFS_CACHE_SIZE\fR, ...); a flag beats the environment, which beats
the profile, which beats the file's top level. \fBRUST_LOG\fR=boxfs=debug logs more.
.SH "SEE ALSO"
\fBmount.fuse.boxfs\fR(8), \fBfusermount3\fR(1), \fBfuse\fR(8), \fBsystemd.unit\fR(5)
"#;

/// `mount.fuse.boxfs(8)`: the helper's own flags as clap renders them, then the mount
/// options, examples and related pages written here.
fn helper_page() -> std::io::Result<Vec<u8>> {
    let man = clap_mangen::Man::new(HelperArgs::command()).section("8");
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    page.extend(without_preamble(|w| man.render_name_section(w))?);
    // mount(8)'s calling convention, which clap's rendering of short options loses.
    page.extend_from_slice(
        br".SH SYNOPSIS
\fBmount.fuse.boxfs\fR \fIPROFILE\fR \fIDIR\fR [\fB\-sfnv\fR] [\fB\-N\fR \fINAMESPACE\fR] [\fB\-o\fR \fIOPTIONS\fR] [\fB\-t\fR \fBfuse.boxfs\fR]
",
    );
    page.extend(without_preamble(|w| man.render_description_section(w))?);
    page.extend(without_preamble(|w| man.render_options_section(w))?);
    page.extend_from_slice(b".SH \"MOUNT OPTIONS\"\n");
    for (option, help) in mount_helper::options_manual() {
        page.extend_from_slice(
            format!(".TP\n\\fB{}\\fR\n{}\n", roff(&option), roff(&help)).as_bytes(),
        );
    }
    page.extend_from_slice(
        format!(
            ".PP\nOptions not listed are refused (exit status 1) unless \\fB\\-s\\fR is given. \
             Other settings (credentials, the API URL) come from the profile of the \
             configuration file; see \\fBboxfs\\-login\\fR(1).\n\
             .SH EXIT STATUS\n0 when the mount serves, 1 for bad usage or options, 32 when \
             the mount failed.\n\
             .SH EXAMPLES\n.nf\n{}\n.fi\n\
             .SH \"SEE ALSO\"\n\\fBboxfs\\fR(1), \\fBboxfs\\-mount\\fR(1), \\fBmount\\fR(8), \
             \\fBfstab\\fR(5), \\fBsystemd.mount\\fR(5), \\fBfuse\\fR(8)\n",
            roff(
                "mount -t fuse.boxfs work /home/me/Box -o ro,setuid=me\n\
                 # /etc/fstab: mounted on first access, as user me, once the network is up\n\
                 work  /home/me/Box  fuse.boxfs  _netdev,noauto,x-systemd.automount,setuid=me  0 0"
            )
        )
        .as_bytes(),
    );
    Ok(page)
}

/// A part of a page as clap_mangen renders it, without the string definitions it puts at the
/// top of each part (the title's copy is enough).
fn without_preamble(
    render: impl Fn(&mut Vec<u8>) -> std::io::Result<()>,
) -> std::io::Result<Vec<u8>> {
    let mut text = Vec::new();
    render(&mut text)?;
    let text = String::from_utf8_lossy(&text);
    let body: String = text
        .split_inclusive('\n')
        .skip_while(|line| line.starts_with(".ie \\n(.g") || line.starts_with(".el .ds Aq"))
        .collect();
    Ok(body.into_bytes())
}

/// Escapes text for roff: backslashes and hyphens, and a leading dot or quote.
fn roff(text: &str) -> String {
    text.lines()
        .map(|line| {
            let escaped = line.replace('\\', "\\e").replace('-', "\\-");
            if escaped.starts_with('.') || escaped.starts_with('\'') {
                format!("\\&{escaped}")
            } else {
                escaped
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_for_boxfs_its_subcommands_and_the_helper() {
        let dir = tempfile::tempdir().unwrap();
        let pages = man_pages(dir.path()).unwrap();
        let names: Vec<String> = pages
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        for expected in [
            "boxfs.1",
            "boxfs-mount.1",
            "boxfs-unmount.1",
            "boxfs-completions.1",
            "mount.fuse.boxfs.8",
        ] {
            assert!(
                names.iter().any(|n| n == expected),
                "{expected} in {names:?}"
            );
        }
        assert!(!names
            .iter()
            .any(|n| n.contains("man-pages") || n.contains("mount-helper")));
        let mount = std::fs::read_to_string(dir.path().join("boxfs-mount.1")).unwrap();
        assert!(mount.contains("write\\-back"), "{mount}");
        let main = std::fs::read_to_string(dir.path().join("boxfs.1")).unwrap();
        assert!(
            main.contains(".SH FILES") && main.contains("mount.fuse.boxfs"),
            "{main}"
        );
        let helper = std::fs::read_to_string(dir.path().join("mount.fuse.boxfs.8")).unwrap();
        assert!(helper.contains("\n.TH mount.fuse.boxfs 8"), "{helper}");
        assert_eq!(helper.matches(".ds Aq").count(), 2, "{helper}");
        assert!(helper.contains("cache_size=BYTES") && helper.contains("x\\-systemd.automount"));
    }

    #[test]
    fn roff_escapes_what_roff_would_read_as_requests() {
        assert_eq!(roff(".x a-b\\c\n'q"), "\\&.x a\\-b\\ec\n\\&'q");
    }
}
