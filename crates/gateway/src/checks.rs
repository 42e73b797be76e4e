//! The threads that check passwords.
//!
//! An argon2 check with the default cost allocates about 19 MiB. On tokio's blocking pool
//! a check may run on any of its threads, and an allocator keeps memory per thread (glibc's
//! arenas, mimalloc's heaps): after a flood of logons every blocking thread could hold one.
//! A fixed few threads of their own bound both the checks run at once and the memory kept
//! after them to [`Config::max_password_checks`](crate::Config::max_password_checks) times
//! that. The threads end when the server's state is dropped.

use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};

use tracing::warn;

type Job = Box<dyn FnOnce() + Send>;

/// A fixed pool of password-check threads, first come first served.
#[derive(Debug)]
pub(crate) struct PasswordChecks {
    jobs: mpsc::Sender<Job>,
}

impl PasswordChecks {
    /// Starts `threads` threads (at least one).
    pub(crate) fn new(threads: usize) -> PasswordChecks {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..threads.max(1) {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name("bibgate-password".into())
                .spawn(move || {
                    loop {
                        let job = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(error) = spawned {
                warn!(%error, "could not start a password check thread");
            }
        }
        PasswordChecks { jobs }
    }

    /// Runs `check` on one of the threads and returns its result.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        check: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, String> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(check());
        });
        self.jobs
            .send(job)
            .map_err(|_| "no password check thread is running".to_string())?;
        result
            .await
            .map_err(|_| "a password check ended without a result".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn checks_run_on_the_pool_threads() {
        let checks = PasswordChecks::new(2);
        let name = checks
            .run(|| std::thread::current().name().map(str::to_string))
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("bibgate-password"));
        assert_eq!(checks.run(|| 6 * 7).await.unwrap(), 42);
    }
}
