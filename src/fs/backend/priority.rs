//! Which calls to Box a process is waiting on. Box allows an account about 1,000 calls a
//! minute, and the client's pacer lets calls that someone waits for (a lookup, a listing,
//! a read, a close that uploads) go ahead of background work. The filesystem marks its
//! background work — listing folders ahead of a walk, write-back uploads, following the
//! event stream — by running it inside [`in_background`]; every call made to Box from
//! within (through [`super::BoxApi`] for a [`box_client::Client`]) then has background
//! priority. Everything else is foreground. The mark belongs to the task: work spawned from
//! background work must carry it on with [`spawn_keeping_priority`].

use std::future::Future;

use box_client::Priority;

tokio::task_local! {
    static BACKGROUND: ();
}

/// Runs `work` with background priority at the pacer.
pub async fn in_background<F: Future>(work: F) -> F::Output {
    BACKGROUND.scope((), work).await
}

/// The priority of calls made by the current task.
pub fn current() -> Priority {
    if BACKGROUND.try_with(|_| ()).is_ok() {
        Priority::Background
    } else {
        Priority::Foreground
    }
}

/// `tokio::spawn`, with the spawned task keeping the current task's priority.
pub fn spawn_keeping_priority<F>(work: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match current() {
        Priority::Background => tokio::spawn(in_background(work)),
        Priority::Foreground => tokio::spawn(work),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn background_work_and_what_it_spawns_have_background_priority() {
        assert_eq!(current(), Priority::Foreground);
        let inner = in_background(async {
            assert_eq!(current(), Priority::Background);
            let kept = spawn_keeping_priority(async { current() }).await.unwrap();
            let plain = tokio::spawn(async { current() }).await.unwrap();
            (kept, plain)
        })
        .await;
        assert_eq!(inner, (Priority::Background, Priority::Foreground));
        assert_eq!(current(), Priority::Foreground);
    }
}
