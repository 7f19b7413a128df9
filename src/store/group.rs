//! Group commit: the writes of many concurrent callers in one transaction.
//!
//! Each attempt's writes (its `sending` row, the provider's answer, its end)
//! are a short transaction, and most of a transaction's cost is its commit:
//! on SQLite a sync of the log to disk (`synchronous = FULL`) behind the
//! single writer, on PostgreSQL a WAL flush. A writer task takes every
//! write waiting when it becomes free, runs them one after another in one
//! transaction and commits once; each caller gets its own result only after
//! that commit, so a caller that sends a request once its write returns
//! still sends only what is on disk (promise 1).
//!
//! A write that fails makes the whole group fail: the group is rolled back
//! and each of its writes runs again alone, in its own transaction, so that
//! one bad write never fails the others and each caller sees its own error.
//! A write that must undo part of itself (a cap reached after the lead was
//! updated) does so within a savepoint of its own.
//!
//! Written here rather than taken from a crate: the grouping has to happen
//! inside the store, around the driver's own transaction type.

use super::{Result, StoreError};
use sqlx::{Database, Pool, Transaction};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Mutex};

/// Most writes one transaction carries: enough to share a commit among a
/// burst of calls, few enough that no caller waits long behind the others.
const MAX_GROUP: usize = 64;

pub(super) type Tx<DB> = Transaction<'static, DB>;
pub(super) type Fut<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// One caller's write, with its arguments and where its answer goes.
trait Job<DB: Database>: Send {
    /// Runs the write in `tx`, keeping its result until `finish`.
    fn run<'a>(&'a mut self, tx: &'a mut Tx<DB>) -> Fut<'a, ()>;
    /// The transaction that ran the write committed, or failed.
    fn finish(self: Box<Self>, committed: Result<()>);
}

/// A write's body: runs in the group's transaction, reading its arguments.
pub(super) type Body<DB, A, T> = for<'a> fn(&'a mut Tx<DB>, &'a A) -> Fut<'a, T>;

struct Typed<DB: Database, A, T> {
    args: A,
    body: Body<DB, A, T>,
    out: Option<T>,
    reply: oneshot::Sender<Result<T>>,
}

impl<DB: Database, A: Send + Sync, T: Send> Job<DB> for Typed<DB, A, T> {
    fn run<'a>(&'a mut self, tx: &'a mut Tx<DB>) -> Fut<'a, ()> {
        Box::pin(async move {
            let out = (self.body)(tx, &self.args).await?;
            self.out = Some(out);
            Ok(())
        })
    }

    fn finish(self: Box<Self>, committed: Result<()>) {
        let Typed { out, reply, .. } = *self;
        let result = committed.and_then(|()| {
            out.ok_or_else(|| StoreError::Corrupt {
                table: "transaction",
                why: "a grouped write committed without a result".into(),
            })
        });
        // The caller may have stopped waiting: its write stands all the same.
        let _ = reply.send(result);
    }
}

type Queue<DB> = Arc<Mutex<mpsc::UnboundedReceiver<Box<dyn Job<DB>>>>>;

/// The writers of one store. Dropped with the store: the writers finish
/// what is queued and stop.
pub(super) struct Group<DB: Database> {
    queue: mpsc::UnboundedSender<Box<dyn Job<DB>>>,
}

impl<DB: Database> Group<DB> {
    /// Starts `writers` writer tasks on `pool` (on the current runtime).
    pub fn start(pool: Pool<DB>, writers: usize) -> Self {
        let (queue, rx) = mpsc::unbounded_channel();
        let rx: Queue<DB> = Arc::new(Mutex::new(rx));
        for _ in 0..writers.max(1) {
            tokio::spawn(write_groups(pool.clone(), rx.clone()));
        }
        Group { queue }
    }

    /// Runs `body` with `args` in the next group's transaction and returns
    /// its result once that transaction committed.
    pub async fn write<A, T>(&self, args: A, body: Body<DB, A, T>) -> Result<T>
    where
        A: Send + Sync + 'static,
        T: Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Typed {
            args,
            body,
            out: None,
            reply,
        });
        self.queue.send(job).map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}

fn closed() -> StoreError {
    StoreError::Db(sqlx::Error::PoolClosed)
}

/// One writer: takes what is queued (up to `MAX_GROUP`), commits it as one
/// transaction, answers, and again.
async fn write_groups<DB: Database>(pool: Pool<DB>, queue: Queue<DB>) {
    loop {
        let mut group = Vec::new();
        {
            let mut rx = queue.lock().await;
            match rx.recv().await {
                Some(job) => group.push(job),
                None => return,
            }
            while group.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(job) => group.push(job),
                    Err(_) => break,
                }
            }
        }
        match commit(&pool, &mut group).await {
            Ok(()) => group.into_iter().for_each(|job| job.finish(Ok(()))),
            Err(e) if group.len() == 1 => {
                if let Some(job) = group.pop() {
                    job.finish(Err(e));
                }
            }
            Err(_) => {
                // Alone, each write gets its own result and its own error.
                for job in group {
                    let mut one = [job];
                    let result = commit(&pool, &mut one).await;
                    let [job] = one;
                    job.finish(result);
                }
            }
        }
    }
}

async fn commit<DB: Database>(pool: &Pool<DB>, group: &mut [Box<dyn Job<DB>>]) -> Result<()> {
    let mut tx = pool.begin().await?;
    for job in group.iter_mut() {
        job.run(&mut tx).await?;
    }
    tx.commit().await?;
    Ok(())
}
