//! The webhook's group-commit writers: every handler hands its callback to one bounded queue and waits; a writer
//! takes everything queued (up to [`MAX_BATCH`]), stores it in one transaction and answers each waiter. See the
//! `webhook` module docs for why. Knows the store, not HTTP.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt as _;
use store::{CallbackIngest, Ingested, Store, StoreError};
use tokio::sync::{mpsc, oneshot};

/// Most callbacks stored in one transaction.
pub const MAX_BATCH: usize = 512;
/// Callbacks waiting for the writer at most; a handler past that waits for room (see the module docs).
const QUEUE: usize = 4 * MAX_BATCH;

/// What a waiter is answered: whether its callback was stored or a repeat, or why the store could not take it.
pub(super) type Answer = Result<Ingested, Arc<StoreError>>;

/// One callback for the writer, and where to send the outcome.
#[derive(Debug)]
pub(super) struct Job {
    pub(super) ingest: CallbackIngest,
    pub(super) done: oneshot::Sender<Answer>,
}

/// The writers' shared queue: a writer holds the lock only while it takes a batch, not while it stores it.
type Queue = Arc<tokio::sync::Mutex<mpsc::Receiver<Job>>>;

/// Starts [`Store::write_concurrency`] writers on one queue; the task ends when all of them have.
pub(super) fn spawn_writer(
    store: Arc<dyn Store>,
) -> (mpsc::Sender<Job>, tokio::task::JoinHandle<()>) {
    let writers = store.write_concurrency();
    spawn_writers(writers, move |batch: Arc<[CallbackIngest]>| {
        let store = store.clone();
        async move { store.ingest_callbacks(&batch).await }
    })
}

/// Starts `writers` (at least one) [`write_batches`] loops on one queue, each storing its batches with `ingest`.
fn spawn_writers<F, Fut>(
    writers: usize,
    ingest: F,
) -> (mpsc::Sender<Job>, tokio::task::JoinHandle<()>)
where
    F: Fn(Arc<[CallbackIngest]>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Vec<Ingested>, StoreError>> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(QUEUE);
    let queue: Queue = Arc::new(tokio::sync::Mutex::new(rx));
    let writers = writers.max(1);
    let task = tokio::spawn(async move {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..writers {
            set.spawn(write_batches(queue.clone(), ingest.clone()));
        }
        while let Some(ended) = set.join_next().await {
            if let Err(e) = ended {
                tracing::error!(error = %e, "a callback writer failed");
            }
        }
    });
    (tx, task)
}

/// One writer's loop: waits for a callback, takes everything else already queued (up to [`MAX_BATCH`]), stores the
/// batch with `ingest` and answers each waiter with its own outcome. Ends when every sender is gone and the queue is
/// empty. Several writers may share the queue: each takes its own batches, so one batch waits for its commit while
/// the next is written.
///
/// A batch refused for any reason but [`StoreError::Unavailable`] (a constraint, a value the database cannot take)
/// is written again one callback at a time, so one bad callback does not fail the others delivered with it (they
/// would meet it again in the retry).
async fn write_batches<F, Fut>(queue: Queue, ingest: F)
where
    F: Fn(Arc<[CallbackIngest]>) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<Ingested>, StoreError>>,
{
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    loop {
        let taken = queue.lock().await.recv_many(&mut jobs, MAX_BATCH).await;
        if taken == 0 {
            break;
        }
        let (batch, waiters): (Vec<CallbackIngest>, Vec<_>) =
            jobs.drain(..).map(|j| (j.ingest, j.done)).unzip();
        let batch: Arc<[CallbackIngest]> = batch.into();
        match write_one_batch(&ingest, batch.clone()).await {
            Ok(ingested) => {
                tracing::debug!(batch.callbacks = batch.len(), "stored a batch of callbacks");
                // A store that answers fewer items than it was given stored them all or none: the transaction
                // committed, so the missing ones count as stored.
                for (i, done) in waiters.into_iter().enumerate() {
                    // A waiter that went away (client disconnected) needs no answer; its callback is stored anyway.
                    let _ = done.send(Ok(ingested.get(i).copied().unwrap_or(Ingested::Stored)));
                }
            }
            Err(e) if batch.len() > 1 && !matches!(e, StoreError::Unavailable(_)) => {
                tracing::warn!(
                    batch.callbacks = batch.len(),
                    error = %e,
                    "a batch of callbacks was refused: writing them one by one"
                );
                for (item, done) in batch.iter().zip(waiters) {
                    let one = write_one_batch(&ingest, Arc::from([item.clone()])).await;
                    let answer = match one {
                        Ok(ingested) => Ok(ingested.first().copied().unwrap_or(Ingested::Stored)),
                        Err(e) => {
                            tracing::warn!(
                                callback.request_id = item.record.request_id.as_deref().unwrap_or(""),
                                error = %e,
                                "the store refused a callback"
                            );
                            Err(Arc::new(e))
                        }
                    };
                    let _ = done.send(answer);
                }
            }
            Err(e) => {
                tracing::warn!(
                    batch.callbacks = batch.len(),
                    error = %e,
                    "the store could not take a batch of callbacks"
                );
                let e = Arc::new(e);
                for done in waiters {
                    let _ = done.send(Err(e.clone()));
                }
            }
        }
    }
}

/// One `ingest` call. A panic in the store must not end the writer (every later callback would get 503 until a
/// restart): it becomes an error for this batch.
async fn write_one_batch<F, Fut>(
    ingest: &F,
    batch: Arc<[CallbackIngest]>,
) -> Result<Vec<Ingested>, StoreError>
where
    F: Fn(Arc<[CallbackIngest]>) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<Ingested>, StoreError>>,
{
    AssertUnwindSafe(ingest(batch))
        .catch_unwind()
        .await
        .unwrap_or_else(|_| {
            Err(StoreError::Unavailable(
                "the store panicked while writing callbacks".into(),
            ))
        })
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use chrono::DateTime;
    use store::CallbackRecord;

    use super::*;

    fn job(n: i64) -> (Job, oneshot::Receiver<Answer>) {
        let (done, answer) = oneshot::channel();
        let record = CallbackRecord {
            kind: "task".into(),
            body: format!("{{\"n\":{n}}}"),
            verified: true,
            received_at: DateTime::from_timestamp(1_800_000_000 + n, 0).unwrap(),
            request_id: Some(format!("r{n}")),
        };
        let job = Job {
            ingest: CallbackIngest {
                record,
                facts: None,
                task_status: None,
            },
            done,
        };
        (job, answer)
    }

    /// Queues `n` jobs before the writer starts, runs it until the queue closes, and returns the batches it wrote
    /// (as request IDs) and the answers.
    async fn drive(n: i64, fail: bool) -> (Vec<Vec<String>>, Vec<Answer>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let mut answers = Vec::new();
        for i in 0..n {
            let (j, a) = job(i);
            tx.send(j).await.unwrap();
            answers.push(a);
        }
        drop(tx);
        let batches = Mutex::new(Vec::new());
        write_batches(
            Arc::new(tokio::sync::Mutex::new(rx)),
            |batch: Arc<[CallbackIngest]>| {
                batches.lock().unwrap().push(
                    batch
                        .iter()
                        .map(|i| i.record.request_id.clone().unwrap())
                        .collect(),
                );
                let n = batch.len();
                async move {
                    if fail {
                        Err(StoreError::Unavailable("connection refused".into()))
                    } else {
                        Ok(vec![Ingested::Stored; n])
                    }
                }
            },
        )
        .await;
        let mut out = Vec::new();
        for a in answers {
            out.push(a.await.expect("every waiter is answered"));
        }
        (batches.into_inner().unwrap(), out)
    }

    #[tokio::test]
    async fn with_two_writers_a_second_batch_is_written_while_the_first_waits_for_its_commit() {
        // Each batch's store call waits until two are in progress at once: a lone writer would never get there.
        let both = Arc::new(tokio::sync::Barrier::new(2));
        let (tx, writers) = spawn_writers(2, move |_batch: Arc<[CallbackIngest]>| {
            let both = both.clone();
            async move {
                both.wait().await;
                Ok(vec![Ingested::Stored])
            }
        });
        let (first, first_answer) = job(1);
        tx.send(first).await.unwrap();
        // The first batch is taken (and waits) before the second callback arrives.
        while tx.capacity() < QUEUE {
            tokio::task::yield_now().await;
        }
        let (second, second_answer) = job(2);
        tx.send(second).await.unwrap();
        let answers = tokio::time::timeout(std::time::Duration::from_secs(30), async {
            (first_answer.await, second_answer.await)
        })
        .await
        .expect("two batches were in progress at once");
        assert!(matches!(
            answers,
            (Ok(Ok(Ingested::Stored)), Ok(Ok(Ingested::Stored)))
        ));
        drop(tx);
        writers.await.unwrap();
    }

    #[tokio::test]
    async fn writes_every_queued_callback_in_one_batch_and_answers_each() {
        let (batches, answers) = drive(5, false).await;
        assert_eq!(batches, vec![vec!["r0", "r1", "r2", "r3", "r4"]]);
        assert_eq!(answers.len(), 5);
        assert!(answers.iter().all(Result::is_ok));
    }

    #[tokio::test]
    async fn splits_a_long_queue_into_batches_of_at_most_max_batch_in_arrival_order() {
        let (batches, answers) = drive(MAX_BATCH as i64 + 3, false).await;
        assert_eq!(
            batches.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![MAX_BATCH, 3]
        );
        assert_eq!(
            batches[1],
            vec![
                format!("r{MAX_BATCH}"),
                format!("r{}", MAX_BATCH + 1),
                format!("r{}", MAX_BATCH + 2)
            ]
        );
        assert!(answers.iter().all(Result::is_ok));
    }

    #[tokio::test]
    async fn answers_every_waiter_of_a_failed_batch_with_the_error() {
        let (batches, answers) = drive(3, true).await;
        assert_eq!(batches.len(), 1);
        assert_eq!(answers.len(), 3);
        assert!(answers.iter().all(|a| matches!(
            a.as_ref().map_err(|e| e.as_ref()),
            Err(StoreError::Unavailable(_))
        )));
    }

    #[tokio::test]
    async fn writer_answers_503_and_keeps_going_when_the_store_panics() {
        let (tx, rx) = mpsc::channel(QUEUE);
        let (first, first_answer) = job(0);
        tx.send(first).await.unwrap();
        let calls = Mutex::new(0);
        let writer = write_batches(
            Arc::new(tokio::sync::Mutex::new(rx)),
            |_batch: Arc<[CallbackIngest]>| {
                let n = {
                    let mut calls = calls.lock().unwrap();
                    *calls += 1;
                    *calls
                };
                async move {
                    if n == 1 {
                        panic!("a bug in the store");
                    }
                    Ok(vec![Ingested::Stored])
                }
            },
        );
        let feed = async {
            assert!(
                first_answer.await.unwrap().is_err(),
                "the panicked batch gets 503"
            );
            let (second, second_answer) = job(1);
            tx.send(second).await.unwrap();
            drop(tx);
            second_answer.await.unwrap()
        };
        let ((), second) = tokio::join!(writer, feed);
        assert!(second.is_ok(), "the writer still stores later callbacks");
    }

    #[tokio::test]
    async fn a_refused_batch_is_written_one_by_one_so_only_the_bad_callback_fails() {
        let (tx, rx) = mpsc::channel(QUEUE);
        let mut answers = Vec::new();
        for i in 0..3 {
            let (j, a) = job(i);
            tx.send(j).await.unwrap();
            answers.push(a);
        }
        drop(tx);
        let sizes = Mutex::new(Vec::new());
        write_batches(
            Arc::new(tokio::sync::Mutex::new(rx)),
            |batch: Arc<[CallbackIngest]>| {
                sizes.lock().unwrap().push(batch.len());
                let poisoned = batch
                    .iter()
                    .any(|i| i.record.request_id.as_deref() == Some("r1"));
                async move {
                    if poisoned {
                        Err(StoreError::Invalid(
                            "a value the database cannot take".into(),
                        ))
                    } else {
                        Ok(vec![Ingested::Stored])
                    }
                }
            },
        )
        .await;
        assert_eq!(*sizes.lock().unwrap(), vec![3, 1, 1, 1]);
        let mut outcomes = Vec::new();
        for a in answers {
            outcomes.push(a.await.unwrap().is_ok());
        }
        assert_eq!(outcomes, vec![true, false, true]);
    }

    #[tokio::test]
    async fn writer_keeps_going_when_a_waiter_has_gone() {
        let (tx, rx) = mpsc::channel(QUEUE);
        let (gone, answer) = job(0);
        drop(answer);
        tx.send(gone).await.unwrap();
        let (kept, answer) = job(1);
        tx.send(kept).await.unwrap();
        drop(tx);
        let writes = Mutex::new(0);
        write_batches(
            Arc::new(tokio::sync::Mutex::new(rx)),
            |batch: Arc<[CallbackIngest]>| {
                let n = batch.len();
                *writes.lock().unwrap() += n;
                async move { Ok(vec![Ingested::Stored; n]) }
            },
        )
        .await;
        assert_eq!(
            *writes.lock().unwrap(),
            2,
            "the abandoned callback is stored too"
        );
        assert!(answer.await.unwrap().is_ok());
    }
}
