//! Many requests of one port call in flight together on the adapter's runtime: a bounded
//! number at once, driven by the calling thread (no thread per request), their outputs in
//! the order asked. Used by the DynamoDB adapter's commit pipeline and the S3 adapter's
//! `get_many` / `put_if_absent_many`.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

/// A task of [`run_bounded`].
pub(crate) type Task<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Runs `tasks` with at most `limit` (at least one) in flight on the current task; their
/// outputs in the order of `tasks`.
pub(crate) async fn run_bounded<T>(tasks: Vec<Task<'_, T>>, limit: usize) -> Vec<T> {
    let limit = limit.max(1);
    let n_tasks = tasks.len();
    let mut waiting = tasks.into_iter().enumerate();
    let mut running: Vec<(usize, Task<'_, T>)> = Vec::with_capacity(limit.min(n_tasks));
    let mut outputs: Vec<Option<T>> = (0..n_tasks).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        loop {
            while running.len() < limit {
                match waiting.next() {
                    Some(task) => running.push(task),
                    None => break,
                }
            }
            if running.is_empty() {
                return Poll::Ready(());
            }
            let mut finished_any = false;
            let mut at = 0;
            while at < running.len() {
                if let Poll::Ready(output) = running[at].1.as_mut().poll(cx) {
                    let (task_idx, _) = running.swap_remove(at);
                    outputs[task_idx] = Some(output);
                    finished_any = true;
                } else {
                    at += 1;
                }
            }
            // Started tasks were polled once (and registered the waker); new ones may start.
            if !finished_any {
                return Poll::Pending;
            }
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[test]
    fn bounded_tasks_overlap_up_to_the_limit_and_keep_their_order() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<Task<'_, usize>> = (0..20usize)
            .map(|task_idx| {
                let in_flight = Arc::clone(&in_flight);
                let peak = Arc::clone(&peak);
                Box::pin(async move {
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20 - task_idx as u64)).await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    task_idx
                }) as Task<'_, usize>
            })
            .collect();
        let started = std::time::Instant::now();
        let outputs = runtime.block_on(run_bounded(tasks, 4));
        assert_eq!(outputs, (0..20).collect::<Vec<_>>());
        assert_eq!(peak.load(Ordering::SeqCst), 4);
        assert!(
            started.elapsed() < Duration::from_millis(200),
            "{:?}",
            started.elapsed()
        );
    }
}
