//! Mounting and unmounting: everything between "the user typed `boxfs mount`" and "the
//! kernel sends requests to [`crate::fuse::FuseAdapter`]". It checks the credentials and the
//! mount point before anything is mounted (so mistakes are reported, not mounted), clears a
//! stale mount left by a killed daemon, starts the FUSE session, the kernel-invalidation
//! queue and the events task, and on SIGTERM/SIGINT or an external `fusermount3 -u` ends them
//! in order. SIGHUP drops the metadata cache ([`BoxFs::drop_metadata_cache`]).
//!
//! Background mode: `boxfs mount` without `--foreground` starts itself again as a detached
//! child (`--foreground` plus [`READY_ENV`]), relays the child's messages until the child says
//! the mount is ready, and exits 0 then (or with the child's error). The child then sends its
//! log to a file instead of the terminal that is about to go away. Flags that may carry a
//! secret reach the child through a pipe, never its command line ([`crate::daemon::secret_args`]),
//! and it inherits no other descriptor. Before anything touches the cache directory the
//! daemon claims it ([`CacheDir`]: one daemon per cache, and only a directory boxfs made).

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use crate::daemon::cache_dir::{self, CacheDir};
use crate::daemon::status::Account;
use crate::fs::kernel::{self, KernelQueue};
use crate::fs::pin::PinFile;
use crate::fs::read::content_cache::{ContentCache, DEFAULT_CHUNK_SIZE};
use crate::fs::store::{MetaStore, SavedState, StoreOwner};
use crate::fs::sync::events::{CatchUp, EventFollower, FollowerOptions};
use crate::fs::tree::attr::Identity;
use crate::fs::{BoxFs, FsOptions, Usage};
use crate::fuse::{FuseSession, SessionOptions};
use box_client::auth::DeveloperToken;
use box_client::endpoints::Endpoints;
use box_client::error::BoxError;
use box_client::events::StreamType;
use box_client::http::HttpOptions;
use box_client::types::User;
use box_client::{Client, PacerConfig};
use box_emulator::{Emulator, EmulatorConfig};

/// Set in the environment of the detached child of a background mount: it prints
/// `READY_LINE` on stdout once the mount serves, then moves its output to the log file.
pub const READY_ENV: &str = "BOXFS_MOUNT_READY_PIPE";
/// Set by the mount helper for the daemon it starts: the source mount(8) was given (the
/// profile, as /etc/fstab names it), shown as the mount's source so that `mount -a`, findmnt
/// and systemd recognise the fstab line as mounted. Otherwise the source is `boxfs`.
pub const SOURCE_ENV: &str = "BOXFS_MOUNT_SOURCE";
const READY_LINE: &str = "boxfs-mount-ready";

/// Where to find Box and how to authenticate.
#[derive(Debug, Clone)]
pub enum Backend {
    /// Box (or any server) through this client, with whatever credential it holds.
    Api(Client),
    /// An emulator in this process, with the demo tree.
    Emulator,
}

/// Everything `boxfs mount` was told.
#[derive(Debug, Clone)]
pub struct MountRequest {
    pub mountpoint: PathBuf,
    pub backend: Backend,
    pub as_user: Option<String>,
    pub fs: FsOptions,
    /// The cache directory ([`CacheDir`]): content in `content/`, held locked while mounted.
    pub cache_dir: PathBuf,
    pub cache_size: u64,
    pub allow_other: bool,
    pub log_file: Option<PathBuf>,
}

/// A mounted filesystem and what serves it.
pub struct Mounted {
    pub fs: Arc<BoxFs>,
    pub mountpoint: PathBuf,
    /// Who the mount is signed in as, and where.
    pub account: Account,
    session: Option<FuseSession>,
    /// The mount's Box client (As-User included): its session is lent to commands run
    /// against the mount through the control socket (`crate::daemon::control`).
    pub api: Client,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    emulator: Option<Emulator>,
    /// Listening since before the mount served (taken by `serve_until_unmounted`).
    signals: Option<StopSignals>,
    /// Held until the daemon is done with the cache (its uploads included).
    _cache: CacheDir,
}

/// The signals a serving daemon answers: SIGTERM and SIGINT unmount, SIGHUP drops the
/// metadata cache. A signal that arrives once these listen is kept until it is read.
struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn listen() -> Result<StopSignals, String> {
        use tokio::signal::unix::{signal, SignalKind};
        let listen = |kind| signal(kind).map_err(|e| format!("cannot listen for signals: {e}"));
        Ok(StopSignals {
            term: listen(SignalKind::terminate())?,
            int: listen(SignalKind::interrupt())?,
            hup: listen(SignalKind::hangup())?,
        })
    }
}

/// The source the mount shows: [`SOURCE_ENV`] when the mount helper set it to something a
/// mount option can carry, else `boxfs`.
fn mount_source() -> String {
    std::env::var(SOURCE_ENV)
        .ok()
        .filter(|s| !s.is_empty() && !s.contains([',', ' ', '\t', '\n', '\\']))
        .unwrap_or_else(|| "boxfs".into())
}

/// Checks the mount point: it must exist, be a directory and be empty. A stale FUSE mount
/// (its daemon was killed: "Transport endpoint is not connected") is cleared first.
fn check_mountpoint(path: &Path) -> Result<(), String> {
    match std::fs::metadata(path) {
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
            log::warn!(
                "{}: clearing a mount left behind by a daemon that died",
                path.display()
            );
            unmount_path(path, true)?;
        }
        _ => {}
    }
    let meta =
        std::fs::metadata(path).map_err(|e| format!("mount point {}: {e}", path.display()))?;
    if !meta.is_dir() {
        return Err(format!("mount point {} is not a directory", path.display()));
    }
    let mut entries =
        std::fs::read_dir(path).map_err(|e| format!("mount point {}: {e}", path.display()))?;
    if entries.next().is_some() {
        return Err(format!(
            "mount point {} is not empty (is something mounted there already?)",
            path.display()
        ));
    }
    Ok(())
}

/// Unmounts `path`: `fusermount3 -u` (what an unprivileged owner uses), else umount(2) when
/// we are root. `lazy` detaches even while files are open.
pub fn unmount_path(path: &Path, lazy: bool) -> Result<(), String> {
    let mut cmd = Command::new("fusermount3");
    cmd.arg(if lazy { "-uz" } else { "-u" }).arg(path);
    let fusermount = cmd.stderr(Stdio::piped()).output();
    match &fusermount {
        Ok(out) if out.status.success() => return Ok(()),
        _ => {}
    }
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| format!("{}: not a valid path", path.display()))?;
    let flags = if lazy { libc::MNT_DETACH } else { 0 };
    // SAFETY: a valid NUL-terminated path.
    if unsafe { libc::umount2(c_path.as_ptr(), flags) } == 0 {
        return Ok(());
    }
    let errno = std::io::Error::last_os_error();
    let detail = match fusermount {
        Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_string(),
        Err(e) => format!("fusermount3: {e} (install the fuse3 package)"),
    };
    if errno.raw_os_error() == Some(libc::EBUSY) {
        return Err(format!(
            "{} is busy: a program has a file or its working directory in it \
             (close it, or use `boxfs unmount --lazy`)",
            path.display()
        ));
    }
    Err(format!(
        "cannot unmount {}: {detail} / {errno}",
        path.display()
    ))
}

/// Drops what a mount of an earlier embedded emulator left in its part of the cache
/// directory (`cache_dir::box_dir`): that Box lived in its process only, and this one's ids
/// name other files.
fn forget_an_earlier_emulator(cache: &CacheDir) -> Result<(), String> {
    let dropped = cache.forget_an_earlier_emulator().map_err(|e| {
        format!(
            "cannot clear the cache directory {} of an earlier emulator's files: {e}",
            cache.path().display()
        )
    })?;
    if dropped > 0 {
        log::warn!(
            "{dropped} file(s) staged by an earlier run of the embedded emulator were dropped: \
             its Box lived in that run only"
        );
    }
    Ok(())
}

/// Opens the metadata store in `cache_dir` for `owner`; without one (it cannot be opened) the
/// mount works as if it never had one, with a warning.
async fn open_store(cache_dir: &Path, owner: StoreOwner) -> Option<(Arc<MetaStore>, SavedState)> {
    let dir = cache_dir.to_path_buf();
    match tokio::task::spawn_blocking(move || MetaStore::open(&dir, &owner)).await {
        Ok(Ok((store, state))) => Some((Arc::new(store), state)),
        Ok(Err(e)) => {
            log::warn!("{e}; metadata is not kept across mounts");
            None
        }
        Err(e) => {
            log::warn!("opening the metadata store: {e}");
            None
        }
    }
}

/// Raises the kernel's read-ahead for the new mount (its backing device starts at 128 KiB),
/// so sequential readers are asked for in large requests. Best effort: needs root.
fn raise_readahead(mountpoint: &Path) {
    let Ok(meta) = std::fs::metadata(mountpoint) else {
        return;
    };
    let dev = meta.dev();
    let path = format!(
        "/sys/class/bdi/{}:{}/read_ahead_kb",
        libc::major(dev),
        libc::minor(dev)
    );
    // 4 MiB: within the distance the reader tolerates reordered requests (read.rs), and
    // enough for four 1 MiB requests in flight.
    if let Err(e) = std::fs::write(&path, "4096") {
        log::debug!("cannot raise read-ahead ({path}): {e}");
    }
}

impl MountRequest {
    /// Mounts and returns once the kernel can send requests.
    pub async fn mount(self) -> Result<Mounted, String> {
        let mountpoint = std::path::absolute(&self.mountpoint)
            .map_err(|e| format!("mount point {}: {e}", self.mountpoint.display()))?;
        check_mountpoint(&mountpoint)?;
        // Before anything reads or cleans the cache or the staged files: one daemon each.
        let cache_dir = self.cache_dir.clone();
        let claimed = tokio::task::spawn_blocking(move || CacheDir::claim(&cache_dir))
            .await
            .map_err(|e| e.to_string())??;
        if self.is_embedded_emulator() {
            forget_an_earlier_emulator(&claimed)?;
        }
        let (client, emulator, me) = self.client().await?;
        let me = match me {
            Ok(me) => me,
            Err(why) => self.offline_user(&why).await?,
        };
        // The sign-in's user object carries the quota, unless the mount acts as another
        // user (whose quota it is not) or started offline.
        let signed_in_usage = Usage::of_user(&me).filter(|_| self.as_user.is_none());
        let account = Account {
            login: me.login,
            name: me.name,
            user_id: me.id,
            api_url: box_client::secret::redact_url(&client.endpoints().api),
            as_user: self.as_user.clone(),
            root_folder_id: self.fs.root_folder_id.clone(),
        };
        let client = match &self.as_user {
            Some(id) => client.as_user(id),
            None => client,
        };
        let box_dir = cache_dir::box_dir(&self.cache_dir, self.is_embedded_emulator());
        let content_dir = box_dir.join(cache_dir::CONTENT);
        // The pinned files' content is kept from the start, whatever the bound.
        let pins = PinFile::in_dir(&box_dir);
        let saved_pins = pins.load();
        let cache = ContentCache::open_keeping(
            &content_dir,
            self.cache_size,
            DEFAULT_CHUNK_SIZE,
            saved_pins.held_files.clone(),
        )
        .map_err(|e| format!("content cache {}: {e}", content_dir.display()))?;
        let (queue, invalidations) = KernelQueue::new();
        let api = client.clone();
        let mut fs = BoxFs::new(
            Arc::new(client),
            self.fs.clone(),
            Some(Arc::new(cache)),
            queue,
        );
        // The embedded emulator's Box lives only as long as this process: nothing to keep.
        let saved = match &self.backend {
            Backend::Emulator => None,
            Backend::Api(_) => {
                let owner = StoreOwner {
                    user_id: self
                        .as_user
                        .clone()
                        .unwrap_or_else(|| account.user_id.clone()),
                    root_folder_id: self.fs.root_folder_id.clone(),
                };
                open_store(&self.cache_dir, owner).await
            }
        };
        let mut saved_position = None;
        if let Some((store, state)) = saved {
            log::info!(
                "metadata store {}: {} item(s){}",
                store.path().display(),
                state.items,
                if state.position.is_some() {
                    ", catching up"
                } else {
                    ""
                }
            );
            saved_position = state.position;
            if !fs.is_offline() {
                let (login, name) = (account.login.clone(), account.name.clone());
                let named = store.clone();
                let _ = tokio::task::spawn_blocking(move || named.set_account_names(&login, &name))
                    .await;
            }
            fs = fs.with_store(store);
        }
        let fs = Arc::new(fs);
        if let Some(usage) = signed_in_usage {
            fs.remember_quota(usage);
        }
        fs.restore_pins(pins, saved_pins);
        let mut follower = EventFollower::with_options(
            fs.client().clone(),
            fs.table().clone(),
            fs.content_cache().cloned(),
            Arc::new(fs.kernel_queue().clone()),
            fs.health().clone(),
            FollowerOptions {
                own_changes: Some(fs.own_changes().clone()),
                ..FollowerOptions::default()
            },
        );
        // Events are followed from before the first request is served, so nothing that
        // happens after the mount started is missed; with a store, from where it was saved,
        // so that what changed while nothing was mounted is applied first.
        let position = match saved_position {
            // Box out of reach: the store answers as it is, and the follower reads the
            // events since its position once Box is back.
            Some((saved, _)) if fs.is_offline() => {
                log::warn!("Box cannot be reached: mounted offline from the metadata store");
                saved
            }
            Some((saved, saved_at)) => match follower.catch_up(&saved, saved_at).await {
                Ok(outcome) => {
                    match &outcome {
                        CatchUp::Current { events, .. } => {
                            log::info!("caught up with {events} event(s) since the last mount");
                            // Every change until now is applied: the stored listings are
                            // current.
                            fs.health().mark_healthy(None);
                        }
                        CatchUp::Lost { why, .. } => {
                            log::warn!("{why}: every folder is listed from Box again when visited")
                        }
                    }
                    outcome.position().to_string()
                }
                // What was applied before Box went away stays; the rest comes with the
                // follower, from the saved position, once Box is back.
                Err(BoxError::Unreachable(why)) => {
                    log::warn!("Box went out of reach while catching up ({why}): offline");
                    saved
                }
                Err(e) => return Err(format!("cannot read the event stream: {e}")),
            },
            None => {
                let position = fs
                    .client()
                    .latest_stream_position(StreamType::All)
                    .await
                    .map_err(|e| format!("cannot read the event stream: {e}"))?;
                fs.table()
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .note_stream_position(&position);
                position
            }
        };
        fs.init().await.map_err(|e| {
            format!(
                "cannot reach the Box folder {}: {}",
                self.fs.root_folder_id,
                e.message()
            )
        })?;

        // Before the mount serves: a SIGTERM right after it is ready (`systemctl stop`)
        // must unmount, not kill the daemon with the mount left behind.
        let signals = StopSignals::listen()?;
        let (session, notifier) = crate::fuse::session::start(
            fs.clone(),
            &mountpoint,
            SessionOptions {
                source: mount_source(),
                read_only: self.fs.identity.read_only,
                allow_other: self.allow_other,
            },
        )
        .await?;
        fs.write_store().await;
        let recovered = fs.recover_staged();
        if recovered > 0 {
            log::info!("{recovered} file(s) staged by an earlier run are being uploaded");
        }
        let tasks = vec![
            kernel::spawn_drain(invalidations, notifier),
            follower.spawn(position),
            fs.spawn_uploader(),
            fs.spawn_store_writer(),
            fs.spawn_pin_worker(),
            fs.spawn_reachability_probe(),
        ];
        let mp = mountpoint.clone();
        let _ = tokio::task::spawn_blocking(move || raise_readahead(&mp)).await;
        log::info!("mounted Box on {}", mountpoint.display());
        Ok(Mounted {
            fs,
            mountpoint,
            account,
            session: Some(session),
            api,
            tasks,
            emulator,
            signals: Some(signals),
            _cache: claimed,
        })
    }

    /// The API client, and the in-process emulator when one was asked for. Checks the
    /// credentials with `GET /users/me` so that a bad token fails the mount command.
    async fn client(&self) -> Result<(Client, Option<Emulator>, Result<User, String>), String> {
        let (client, emulator) = match &self.backend {
            Backend::Emulator => {
                let emulator = Emulator::start(EmulatorConfig {
                    demo: true,
                    ..EmulatorConfig::default()
                })
                .await
                .map_err(|e| format!("cannot start the emulator: {e}"))?;
                let endpoints =
                    Endpoints::from_base(emulator.base_url()).map_err(|e| e.to_string())?;
                let token = emulator.info.developer_token.clone();
                eprintln!(
                    "boxfs: serving the demo account from an emulator at {} (developer token {})",
                    emulator.base_url(),
                    token
                );
                // The embedded emulator enforces no rate limits: nothing to pace. It is on
                // this machine: never through a proxy the environment names.
                let http = HttpOptions::new()
                    .direct()
                    .build()
                    .map_err(|e| e.to_string())?;
                let client = Client::builder(Arc::new(DeveloperToken::new(token)), endpoints)
                    .http(http)
                    .pacing(PacerConfig::unlimited())
                    .build()
                    .map_err(|e| e.to_string())?;
                (client, Some(emulator))
            }
            // A mount keeps serving when Box is out of reach (`crate::fs::offline`).
            Backend::Api(client) => (client.detecting_offline(), None),
        };
        match client.me().await {
            Ok(me) => {
                log::info!("signed in to Box as {}", me.login);
                Ok((client, emulator, Ok(me)))
            }
            Err(BoxError::Unreachable(why)) if emulator.is_none() => Ok((client, None, Err(why))),
            Err(e) => Err(crate::config::http::failure("cannot sign in to Box", &e)),
        }
    }

    /// Whether this mounts the emulator it starts itself (`--emulator`).
    fn is_embedded_emulator(&self) -> bool {
        matches!(self.backend, Backend::Emulator)
    }

    /// The account a mount started while Box is out of reach (`why`) acts as: the one its
    /// metadata store was kept for, if the store holds this root folder and a position.
    async fn offline_user(&self, why: &str) -> Result<User, String> {
        let dir = self.cache_dir.clone();
        let peek = tokio::task::spawn_blocking(move || MetaStore::peek(&dir))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("cannot reach Box ({why}), and {e}"))?;
        let usable = peek.filter(|p| {
            p.owner.root_folder_id == self.fs.root_folder_id
                && self.as_user.as_ref().is_none_or(|u| *u == p.owner.user_id)
        });
        let Some(peek) = usable else {
            return Err(format!(
                "cannot reach Box ({why}), and {} holds no metadata of folder {} to mount \
                 offline from: mount once while Box can be reached",
                self.cache_dir.display(),
                self.fs.root_folder_id
            ));
        };
        log::warn!("cannot reach Box ({why}): mounting offline from the metadata store");
        Ok(User {
            id: peek.owner.user_id,
            login: peek.login.unwrap_or_default(),
            name: peek.name.unwrap_or_default(),
            ..User::default()
        })
    }
}

impl Mounted {
    /// Serves until the mount is unmounted from outside (`boxfs unmount`, `fusermount3 -u`)
    /// or SIGTERM/SIGINT arrives, which unmount it here. SIGHUP drops the metadata cache.
    pub async fn serve_until_unmounted(mut self) -> Result<(), String> {
        let session = self.session.take().expect("mounted");
        let mut join = tokio::task::spawn_blocking(move || session.join());
        let StopSignals {
            mut term,
            mut int,
            mut hup,
        } = match self.signals.take() {
            Some(signals) => signals,
            None => StopSignals::listen()?,
        };
        let ended = loop {
            tokio::select! {
                r = &mut join => break Some(r),
                _ = term.recv() => break None,
                _ = int.recv() => break None,
                _ = hup.recv() => {
                    let sent = self.fs.drop_metadata_cache();
                    log::info!(
                        "SIGHUP: metadata cache dropped ({sent} kernel invalidations); \
                         the next access asks Box"
                    );
                }
            }
        };
        let result = match ended {
            Some(r) => r,
            None => {
                log::info!("signal received: unmounting {}", self.mountpoint.display());
                let mp = self.mountpoint.clone();
                let lazy_needed = tokio::task::spawn_blocking(move || unmount_path(&mp, false))
                    .await
                    .map_err(|e| e.to_string())?;
                if let Err(e) = lazy_needed {
                    log::warn!("{e}; detaching it instead");
                    let mp = self.mountpoint.clone();
                    let _ = tokio::task::spawn_blocking(move || unmount_path(&mp, true)).await;
                }
                join.await
            }
        };
        self.finish().await;
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("the FUSE session ended with an error: {e}")),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Unmounts (tests and embedders).
    pub async fn unmount(mut self) -> Result<(), String> {
        if let Some(session) = self.session.take() {
            tokio::task::spawn_blocking(move || session.unmount_and_join())
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
        }
        self.finish().await;
        Ok(())
    }

    /// After the kernel's session ended: uploads what is still staged (a second SIGTERM
    /// or SIGINT stops that; the rest stays staged for the next mount), then stops the
    /// tasks.
    async fn finish(&mut self) {
        use tokio::signal::unix::{signal, SignalKind};
        let pending = self.fs.pending_uploads();
        if pending > 0 {
            log::info!("{pending} upload(s) pending: finishing them before exiting");
            let term = signal(SignalKind::terminate());
            let int = signal(SignalKind::interrupt());
            let stop = async {
                match (term, int) {
                    (Ok(mut t), Ok(mut i)) => {
                        tokio::select! {
                            _ = t.recv() => {}
                            _ = i.recv() => {}
                        }
                    }
                    _ => std::future::pending().await,
                }
            };
            tokio::select! {
                failed = self.fs.finish_uploads() => {
                    if failed > 0 {
                        log::error!(
                            "{failed} file(s) could not be uploaded; they stay staged and \
                             are uploaded at the next mount"
                        );
                    }
                }
                _ = stop => log::warn!(
                    "interrupted: {} pending upload(s) stay staged for the next mount",
                    self.fs.pending_uploads()
                ),
            }
        }
        for t in self.tasks.drain(..) {
            t.abort();
        }
        // What the last second changed, and the stream position it is current to.
        self.fs.write_store().await;
        if let Some(emulator) = self.emulator.take() {
            emulator.stop().await;
        }
    }
}

/// `boxfs mount` without `--foreground`: starts the daemon as a detached child and returns
/// when it is ready (exit 0) or has failed (its message, exit 1). Flags that may carry a
/// secret reach the child through a pipe, not its command line ([`crate::daemon::secret_args`]).
/// `env`, when given, is the child's whole environment (a mount helper that changed user).
/// The child inherits no descriptor but its standard ones and that pipe.
pub fn spawn_daemon(
    args: Vec<OsString>,
    env: Option<Vec<(OsString, OsString)>>,
) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the boxfs binary: {e}"))?;
    let (public, secret) = crate::daemon::secret_args::split(args);
    let pipe = match secret.is_empty() {
        true => None,
        false => Some(
            crate::daemon::secret_args::SecretPipe::new(&secret)
                .map_err(|e| format!("cannot start the mount daemon: {e}"))?,
        ),
    };
    let mut cmd = Command::new(exe);
    if let Some(env) = env {
        cmd.env_clear().envs(env);
    }
    cmd.args(public)
        .arg("--foreground")
        .env(READY_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    use std::os::fd::AsRawFd;
    let keep = pipe.as_ref().map(|p| p.read.as_raw_fd());
    if let Some(fd) = keep {
        cmd.env(crate::daemon::secret_args::SECRETS_FD_ENV, fd.to_string());
    }
    // SAFETY: only async-signal-safe calls (setsid, close_range or fcntl) between fork and
    // exec. setsid: the child leaves our session and terminal so it survives the shell that
    // started it. Every descriptor above 2 that mount(8), a shell or root's session left open
    // is closed at exec, except the pipe of secret flags.
    unsafe {
        cmd.pre_exec(move || {
            libc::setsid();
            close_inherited_descriptors();
            if let Some(fd) = keep {
                if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start the mount daemon: {e}"))?;
    if let Some(pipe) = pipe {
        pipe.send()
            .map_err(|e| format!("cannot pass the secret flags to the mount daemon: {e}"))?;
    }
    let stdout = child.stdout.take().expect("piped");
    for line in BufReader::new(stdout).lines() {
        match line {
            Ok(l) if l.trim() == READY_LINE => return Ok(()),
            Ok(l) => println!("{l}"),
            Err(_) => break,
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    Err(format!(
        "the mount daemon exited ({status}) before the mount was ready"
    ))
}

/// Marks every descriptor above 2 close-on-exec (between fork and exec: no allocation).
/// close_range(2) does it in one call; kernels before 5.11 lack the flag, so then each
/// descriptor up to the limit is marked.
fn close_inherited_descriptors() {
    // SAFETY: plain system calls on descriptor numbers; none is closed before exec.
    unsafe {
        if libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        ) == 0
        {
            return;
        }
        let limit = match libc::sysconf(libc::_SC_OPEN_MAX) {
            n if n > 0 => n.min(1 << 20) as i32,
            _ => 1024,
        };
        for fd in 3..limit {
            libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        }
    }
}

/// In the daemon child: tell the waiting parent the mount is ready, then send our output to
/// the log file (or nowhere), since the parent's terminal is going away.
/// Under systemd (`Type=notify`), tells it the mount is ready as well.
pub fn report_ready(log_file: Option<&Path>) {
    crate::daemon::sd_notify::notify("READY=1");
    if std::env::var_os(READY_ENV).is_none() {
        return;
    }
    let mut out = std::io::stdout();
    let _ = writeln!(out, "{READY_LINE}");
    let _ = out.flush();
    let target = log_file
        .and_then(|p| {
            if let Some(dir) = p.parent() {
                let _ = crate::private_fs::create_dirs_private(dir);
            }
            // Private whatever the umask: the log names files and folders.
            crate::private_fs::open_private_append(p).ok()
        })
        .or_else(|| {
            std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/null")
                .ok()
        });
    if let Some(f) = target {
        use std::os::fd::AsRawFd;
        // SAFETY: dup2 onto the standard descriptors; `f` stays open until after the calls.
        unsafe {
            libc::dup2(f.as_raw_fd(), 1);
            libc::dup2(f.as_raw_fd(), 2);
        }
    }
}

/// For the CLI: the identity options with defaults from the calling user.
pub fn identity(
    uid: Option<u32>,
    gid: Option<u32>,
    umask: Option<u32>,
    read_only: bool,
) -> Identity {
    let d = Identity::default();
    Identity {
        uid: uid.unwrap_or(d.uid),
        gid: gid.unwrap_or(d.gid),
        umask: umask.unwrap_or(d.umask),
        read_only,
    }
}
