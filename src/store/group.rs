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
use std::any::{Any, TypeId};
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
trait Job<DB: Database>: Send + Any {
    /// Runs the write in `tx`, keeping its result until `finish`.
    fn run<'a>(&'a mut self, tx: &'a mut Tx<DB>) -> Fut<'a, ()>;
    /// Writes of this kind run together, as one set (`Group::write_set`):
    /// the kind, or `None` for a write that runs alone.
    fn kind(&self) -> Option<(TypeId, usize)>;
    /// Runs this write and `alike` (writes of its kind) as one set.
    fn run_set<'a>(
        &'a mut self,
        alike: Vec<&'a mut Box<dyn Job<DB>>>,
        tx: &'a mut Tx<DB>,
    ) -> Fut<'a, ()>;
    fn as_any(&mut self) -> &mut dyn Any;
    /// The transaction that ran the write committed, or failed.
    fn finish(self: Box<Self>, committed: Result<()>);
}

/// A write's body: runs in the group's transaction, reading its arguments.
pub(super) type Body<DB, A, T> = for<'a> fn(&'a mut Tx<DB>, &'a A) -> Fut<'a, T>;

/// The body of a write run as a set: the arguments of every caller of the
/// group that asked for it, in the order they asked; one result each.
pub(super) type SetBody<DB, A, T> = for<'a> fn(&'a mut Tx<DB>, &'a [&'a A]) -> Fut<'a, Vec<T>>;

/// How a write runs: alone, or as a set with the others of its kind.
enum Runs<DB: Database, A, T> {
    Alone(Body<DB, A, T>),
    Together(SetBody<DB, A, T>),
}

/// One caller's write waiting in the queue.
struct Pending<DB: Database, A, T> {
    args: A,
    runs: Runs<DB, A, T>,
    out: Option<T>,
    reply: oneshot::Sender<Result<T>>,
}

impl<DB: Database, A: Send + Sync + 'static, T: Send + 'static> Job<DB> for Pending<DB, A, T> {
    fn run<'a>(&'a mut self, tx: &'a mut Tx<DB>) -> Fut<'a, ()> {
        match self.runs {
            Runs::Alone(body) => Box::pin(async move {
                self.out = Some(body(tx, &self.args).await?);
                Ok(())
            }),
            Runs::Together(_) => self.run_set(Vec::new(), tx),
        }
    }

    fn kind(&self) -> Option<(TypeId, usize)> {
        match self.runs {
            Runs::Alone(_) => None,
            // The body tells kinds apart; the type makes the downcast in
            // `run_set` sound.
            Runs::Together(body) => Some((TypeId::of::<Self>(), body as usize)),
        }
    }

    fn run_set<'a>(
        &'a mut self,
        alike: Vec<&'a mut Box<dyn Job<DB>>>,
        tx: &'a mut Tx<DB>,
    ) -> Fut<'a, ()> {
        Box::pin(async move {
            let corrupt = |why: String| StoreError::Corrupt {
                table: "transaction",
                why,
            };
            let Runs::Together(body) = self.runs else {
                return Err(corrupt("a write that runs alone was run as a set".into()));
            };
            let mut others = Vec::with_capacity(alike.len());
            for job in alike {
                others.push(job.as_any().downcast_mut::<Self>().ok_or_else(|| {
                    corrupt("writes of different kinds were run as one set".into())
                })?);
            }
            let outs = {
                let args: Vec<&A> = std::iter::once(&self.args)
                    .chain(others.iter().map(|o| &o.args))
                    .collect();
                body(tx, &args).await?
            };
            if outs.len() != others.len() + 1 {
                return Err(corrupt(format!(
                    "a set of {} writes gave {} results",
                    others.len() + 1,
                    outs.len()
                )));
            }
            let mut outs = outs.into_iter();
            self.out = outs.next();
            for (job, out) in others.into_iter().zip(outs) {
                job.out = Some(out);
            }
            Ok(())
        })
    }

    fn as_any(&mut self) -> &mut dyn Any {
        self
    }

    fn finish(self: Box<Self>, committed: Result<()>) {
        let Pending { out, reply, .. } = *self;
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
        self.queue(args, Runs::Alone(body)).await
    }

    /// Like `write`, but the group runs this write together with the
    /// others that name the same `body`, as one set: `body` gets all their
    /// arguments at once (a few statements for the lot instead of a few
    /// each). The writes of a group all wait at once, none answered before
    /// the commit, so running them in any order is as if each ran alone.
    pub async fn write_set<A, T>(&self, args: A, body: SetBody<DB, A, T>) -> Result<T>
    where
        A: Send + Sync + 'static,
        T: Send + 'static,
    {
        self.queue(args, Runs::Together(body)).await
    }

    async fn queue<A, T>(&self, args: A, runs: Runs<DB, A, T>) -> Result<T>
    where
        A: Send + Sync + 'static,
        T: Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Pending {
            args,
            runs,
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
    let mut ran = vec![false; group.len()];
    for i in 0..group.len() {
        if ran[i] {
            continue;
        }
        ran[i] = true;
        let (head, tail) = group.split_at_mut(i + 1);
        let job = &mut head[i];
        match job.kind() {
            None => job.run(&mut tx).await?,
            Some(kind) => {
                let mut alike = Vec::new();
                for (other, ran) in tail.iter_mut().zip(&mut ran[i + 1..]) {
                    if !*ran && other.kind() == Some(kind) {
                        *ran = true;
                        alike.push(other);
                    }
                }
                job.run_set(alike, &mut tx).await?;
            }
        }
    }
    tx.commit().await?;
    Ok(())
}

/// `items` cut into runs, in order, none holding the same key twice: the
/// rows one set-based statement can write, where a key written twice in
/// one statement would be written once, arbitrarily.
pub(super) fn distinct_runs<T, K: Eq + std::hash::Hash>(
    items: &[T],
    key: impl Fn(&T) -> K,
) -> Vec<&[T]> {
    let mut runs = Vec::new();
    let mut start = 0;
    let mut seen = std::collections::HashSet::new();
    for (i, item) in items.iter().enumerate() {
        if !seen.insert(key(item)) {
            runs.push(&items[start..i]);
            start = i;
            seen.clear();
            seen.insert(key(item));
        }
    }
    if start < items.len() {
        runs.push(&items[start..]);
    }
    runs
}

/// Rows a set-based statement binds for `n`: rounded up to a power of two
/// (the rest padded with NULLs, which match no row), so each such write has
/// a handful of statement texts to prepare rather than one per size.
pub(super) fn padded(n: usize) -> usize {
    n.next_power_of_two()
}

/// `VALUES ($1, …, $cols), …` with `rows` rows: the rows of a set-based
/// write, its columns named `column1`… on both backends.
pub(super) fn values(rows: usize, cols: usize) -> String {
    let mut sql = String::from("VALUES ");
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..cols {
            if c > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("${}", r * cols + c + 1));
        }
        sql.push(')');
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_split_where_a_key_repeats_and_keep_the_order() {
        let items = [1, 2, 3, 2, 4, 1, 1];
        let runs = distinct_runs(&items, |i| *i);
        assert_eq!(runs, vec![&[1, 2, 3][..], &[2, 4, 1][..], &[1][..]]);
        assert!(distinct_runs::<i32, i32>(&[], |i| *i).is_empty());
    }

    #[test]
    fn values_number_their_placeholders_row_by_row() {
        assert_eq!(values(2, 3), "VALUES ($1, $2, $3), ($4, $5, $6)");
        assert_eq!([padded(1), padded(3), padded(64)], [1, 4, 64]);
    }
}
