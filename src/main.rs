//! The `boxfs` binary: parses the command line and runs the subcommand.

use clap::Parser;

use boxfs::cli::{Cli, Command};

fn main() {
    tune_malloc();
    init_logging();
    // `mount.fuse.boxfs`, run by mount(8), has a command line of its own.
    if let Some(code) = boxfs::cli::mount_helper::run_if_invoked_as_helper() {
        std::process::exit(code);
    }
    // A background mount's daemon: its secret flags come through a pipe, not its argv.
    let argv = boxfs::daemon::secret_args::argv_with_received_secrets().unwrap_or_else(|message| {
        eprintln!("boxfs: {message}");
        std::process::exit(1);
    });
    let cli = Cli::parse_from(argv);
    // Before any thread starts: the mount helper may change user (setuid=).
    let offline = match &cli.command {
        Command::MountHelper(args) => std::process::exit(boxfs::cli::mount_helper::run(args)),
        Command::Completions(args) => Some(boxfs::cli::generate::print_completions(args)),
        Command::ManPages(args) => Some(boxfs::cli::generate::write_man_pages(args)),
        _ => None,
    };
    if let Some(result) = offline {
        exit_on_error(result);
        return;
    }
    // A background mount starts its daemon before any runtime exists, then waits for it.
    if let Command::Mount(args) = &cli.command {
        let foreground = args.runs_in_foreground().unwrap_or_else(|message| {
            eprintln!("boxfs: {message}");
            std::process::exit(1);
        });
        if !foreground {
            let argv: Vec<_> = std::env::args_os().skip(1).collect();
            if let Err(message) = boxfs::daemon::mount::spawn_daemon(argv, None) {
                eprintln!("boxfs: {message}");
                std::process::exit(1);
            }
            return;
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("boxfs: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    // Search has its own exit statuses: 1 for no match, 2 for errors.
    let command = match cli.command {
        Command::Search(args) => {
            let code = match runtime.block_on(boxfs::cli::search::run_search(args)) {
                Ok(true) => 0,
                Ok(false) => 1,
                Err(message) => {
                    eprintln!("boxfs: {message}");
                    2
                }
            };
            std::process::exit(code);
        }
        command => command,
    };
    let result = runtime.block_on(async {
        match command {
            Command::Emulator(args) => boxfs::cli::run_emulator(args).await,
            Command::Mount(args) => boxfs::cli::run_mount(args).await,
            Command::Unmount(args) => boxfs::cli::run_unmount(args),
            Command::Login(args) => boxfs::cli::run_login(args).await,
            Command::Logout(args) => boxfs::cli::run_logout(args).await,
            Command::Whoami(args) => boxfs::cli::run_whoami(args).await,
            Command::Config(args) => boxfs::cli::run_config(args),
            // Taken above for its exit statuses; kept here so the match stays exhaustive.
            Command::Search(args) => boxfs::cli::search::run_search(args).await.map(|_| ()),
            Command::Status(args) => boxfs::cli::status::run_status(args),
            Command::Pin(args) => boxfs::cli::pin::run_pin(args, true),
            Command::Unpin(args) => boxfs::cli::pin::run_pin(args, false),
            Command::Events(args) => boxfs::cli::events::run_events(args).await,
            // Run above, before the runtime started.
            Command::Completions(_) | Command::ManPages(_) | Command::MountHelper(_) => Ok(()),
        }
    });
    exit_on_error(result);
}

/// Exits 1 with the message on an error; returns otherwise.
fn exit_on_error(result: Result<(), String>) {
    if let Err(message) = result {
        eprintln!("boxfs: {message}");
        std::process::exit(1);
    }
}

/// Warnings and errors by default; `RUST_LOG` decides when set. By default fuser's own
/// failure to unmount is left out: once the mount was ended from outside (`boxfs unmount`,
/// `fusermount3 -u`) fuser tries again and fails with EINVAL every time.
fn init_logging() {
    if let Ok(spec) = std::env::var(env_logger::DEFAULT_FILTER_ENV) {
        env_logger::Builder::new()
            .parse_filters(&boxfs::cli::log_filter::widen_boxfs_directives(&spec))
            .init();
    } else {
        env_logger::Builder::new()
            .filter_level(log::LevelFilter::Warn)
            .filter_module("fuser::mnt", log::LevelFilter::Error)
            .init();
    }
}

/// Tunes glibc's malloc for a long-running daemon, before any thread starts.
///
/// - **Two arenas.** glibc gives each thread that allocates its own arena; the mount's
///   blocking threads (metadata store reads, content cache writes) would each keep one, with
///   the memory freed into it never returned.
/// - **A fixed mmap threshold of 4 MiB.** By default glibc raises the threshold to the size
///   of each large block freed (up to 32 MiB), so after the first big listing or store batch
///   the next ones (a 100,000-row batch, a grown hash table) come from the heap instead of a
///   mapping of their own, and small long-lived allocations made meanwhile pin that heap: the
///   daemon's resident size after listing 100,000 items read 82 MB in some runs and 95 to
///   102 MB in others. With the threshold fixed, blocks of 4 MiB and more are unmapped when
///   freed and every run reads 82 MB. Content moves in blocks of 1 MiB, which stay in the heap.
fn tune_malloc() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt before any thread starts, with valid options and values.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

/// Blocks this large or larger get a mapping of their own (see [`tune_malloc`]).
#[cfg(target_env = "gnu")]
const MMAP_THRESHOLD: libc::c_int = 4 << 20;
