//! `CommandToken`: the access token comes from an external program (a secrets manager, a
//! company token service, a script) that prints one on standard output — what Box's Python
//! SDK calls `RemoteOAuth2`. The token is cached and the program run again when Box refuses
//! the token (401) or when the cached one is older than a configurable age.
//!
//! The program is run directly (argv, no shell), with no standard input, under a time
//! limit. Its failure is a `BoxError::Auth` carrying the first lines of its standard error;
//! the token itself is never logged.

use std::process::Stdio;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::Authenticator;
use crate::error::{BoxError, BoxResult};
use crate::secret::Secret;

/// How long the program may run.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Lines of the program's standard error kept in an error.
const STDERR_LINES: usize = 5;
const STDERR_LINE_CHARS: usize = 300;

pub struct CommandToken {
    argv: Vec<String>,
    max_age: Option<Duration>,
    timeout: Duration,
    /// The cached token and when the program printed it. Holding the async lock is the
    /// single flight: concurrent refreshes wait for one run.
    cached: tokio::sync::Mutex<Option<(Secret, Instant)>>,
}

impl std::fmt::Debug for CommandToken {
    /// The arguments may carry secrets of their own: only the program is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandToken")
            .field("program", &self.program())
            .field("args", &self.argv.len().saturating_sub(1))
            .field("max_age", &self.max_age)
            .finish()
    }
}

fn first_lines(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<String> = text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .take(STDERR_LINES)
        .map(|l| l.chars().take(STDERR_LINE_CHARS).collect())
        .collect();
    if lines.is_empty() {
        "(nothing on standard error)".into()
    } else {
        lines.join(" | ")
    }
}

impl CommandToken {
    /// `argv[0]` is the program (looked up in `PATH` when it has no slash); the rest are
    /// its arguments.
    pub fn new<I, S>(argv: I) -> BoxResult<CommandToken>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let argv: Vec<String> = argv.into_iter().map(Into::into).collect();
        if argv.first().is_none_or(|p| p.is_empty()) {
            return Err(BoxError::Config("the token command is empty".into()));
        }
        Ok(CommandToken {
            argv,
            max_age: None,
            timeout: DEFAULT_COMMAND_TIMEOUT,
            cached: tokio::sync::Mutex::new(None),
        })
    }

    /// Run the program again once the cached token is this old (default: only after a 401).
    pub fn with_max_age(mut self, max_age: Duration) -> CommandToken {
        self.max_age = Some(max_age);
        self
    }

    /// How long the program may run before it is killed and the call fails.
    pub fn with_timeout(mut self, timeout: Duration) -> CommandToken {
        self.timeout = timeout;
        self
    }

    fn program(&self) -> &str {
        self.argv.first().map(String::as_str).unwrap_or("")
    }

    fn fresh(&self, at: Instant) -> bool {
        self.max_age.is_none_or(|age| at.elapsed() < age)
    }

    fn fail(&self, why: String) -> BoxError {
        BoxError::Auth(format!("token command '{}' {why}", self.program()))
    }

    /// Runs the program and returns the token it printed.
    async fn run(&self) -> BoxResult<Secret> {
        let mut cmd = tokio::process::Command::new(self.program());
        cmd.args(&self.argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .map_err(|e| self.fail(format!("could not be started: {e}")))?;
        let output = match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Ok(Ok(output)) => output,
            Ok(Err(e)) => return Err(self.fail(format!("failed: {e}"))),
            // Dropping the child (kill_on_drop) ends it.
            Err(_) => {
                return Err(self.fail(format!(
                    "did not finish within {} s",
                    self.timeout.as_secs()
                )))
            }
        };
        if !output.status.success() {
            return Err(self.fail(format!(
                "failed ({}): {}",
                output.status,
                first_lines(&output.stderr)
            )));
        }
        let Ok(stdout) = String::from_utf8(output.stdout) else {
            return Err(self.fail("printed something that is not text".into()));
        };
        let token = stdout.lines().map(str::trim).find(|l| !l.is_empty());
        match token {
            Some(t) if !t.chars().any(char::is_whitespace) => {
                log::debug!("token command '{}' gave a new token", self.program());
                Ok(Secret::new(t))
            }
            Some(_) => Err(self.fail("printed a line with spaces instead of a token".into())),
            None => Err(self.fail(format!("printed no token: {}", first_lines(&output.stderr)))),
        }
    }
}

#[async_trait]
impl Authenticator for CommandToken {
    async fn access_token(&self) -> BoxResult<Secret> {
        let mut cached = self.cached.lock().await;
        if let Some((token, at)) = cached.as_ref() {
            if self.fresh(*at) {
                return Ok(token.clone());
            }
        }
        let token = self.run().await?;
        *cached = Some((token.clone(), Instant::now()));
        Ok(token)
    }

    async fn refresh(&self, rejected: &Secret) -> BoxResult<Secret> {
        let mut cached = self.cached.lock().await;
        // Another caller already ran the program since this token was handed out.
        if let Some((token, at)) = cached.as_ref() {
            if token != rejected && self.fresh(*at) {
                return Ok(token.clone());
            }
        }
        let token = self.run().await?;
        *cached = Some((token.clone(), Instant::now()));
        Ok(token)
    }
}
