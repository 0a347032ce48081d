//! Durable storage for queue and events-store messages, on redb.
//!
//! One writer thread owns all writes. Callers hand it batches of operations; it drains
//! every batch waiting at that moment into one redb transaction (group commit), commits
//! it with the durability the [`FsyncPolicy`] asks for, and only then answers the callers.
//! With [`FsyncPolicy::Always`] an acknowledged operation has been fsynced; concurrent
//! writers share the fsync, so throughput grows with load instead of falling.
//!
//! The in-memory broker state is authoritative while running. The store is what state is
//! rebuilt from at start-up ([`Store::visit`]) and, for queues, where message bodies live:
//! memory holds only an index and a take reads the bodies back ([`Store::get_many`]).

use super::config::FsyncPolicy;
use redb::{Database, Durability, ReadableTable, TableDefinition};
use std::path::Path;
use std::sync::{mpsc, Arc, Weak};
use std::thread::JoinHandle;
use std::time::Instant;
use tokio::sync::oneshot;

type Bytes = Vec<u8>;

/// The tables, one per kind of record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// Queue messages (including delayed ones), keyed by [`key`]`(queue, sequence)`.
    Queues,
    /// Events-store messages, keyed by [`key`]`(channel, sequence)`.
    Events,
    /// Small records: sequence high-water marks, durable cursors, channel registry.
    Meta,
}

impl Table {
    fn def(self) -> TableDefinition<'static, &'static [u8], &'static [u8]> {
        match self {
            Table::Queues => TableDefinition::new("queues"),
            Table::Events => TableDefinition::new("events"),
            Table::Meta => TableDefinition::new("meta"),
        }
    }
}

/// One write.
#[derive(Debug, Clone)]
pub enum Op {
    Put {
        table: Table,
        key: Bytes,
        value: Bytes,
    },
    Delete {
        table: Table,
        key: Bytes,
    },
    /// Deletes every key that starts with `prefix`.
    DeletePrefix {
        table: Table,
        prefix: Bytes,
    },
}

/// A storage failure; the broker reports it as "error during send message to queue" or
/// similar, and logs this text.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage error: {0}; check that the data directory is writable and not full")]
    Redb(#[from] redb::Error),
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("the store is closed (the broker is shutting down)")]
    Closed,
}

fn redb_err(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Redb(e.into())
}

/// A key for a named log: `u16 length | name | u64 sequence` (big-endian), so keys of one
/// name sort by sequence and never collide with another name's.
pub fn key(name: &str, seq: u64) -> Bytes {
    let mut k = prefix(name);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// The prefix shared by all keys of `name`.
pub fn prefix(name: &str) -> Bytes {
    let len = u16::try_from(name.len()).unwrap_or(u16::MAX);
    let mut k = Vec::with_capacity(2 + name.len() + 8);
    k.extend_from_slice(&len.to_be_bytes());
    k.extend_from_slice(name.as_bytes());
    k
}

/// Splits a [`key`] back into name and sequence.
pub fn split_key(k: &[u8]) -> Option<(String, u64)> {
    let len = usize::from(u16::from_be_bytes(k.get(..2)?.try_into().ok()?));
    let name = std::str::from_utf8(k.get(2..2 + len)?).ok()?.to_owned();
    let seq = u64::from_be_bytes(k.get(2 + len..)?.try_into().ok()?);
    Some((name, seq))
}

/// Runs on the writer thread once the transaction holding its job has committed (or
/// failed). It must be quick and must not wait for the store: the writer waits for it.
pub type AfterCommit = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// Who hears about a job's commit.
enum Done {
    Nobody,
    Reply(oneshot::Sender<Result<(), String>>),
    Call(AfterCommit),
}

impl Done {
    fn tell(self, result: &Result<(), String>) {
        match self {
            Done::Nobody => {}
            Done::Reply(tx) => {
                let _ = tx.send(result.clone());
            }
            Done::Call(f) => f(result.clone().map_err(corrupted)),
        }
    }
}

fn corrupted(text: String) -> StoreError {
    StoreError::Redb(redb::Error::Corrupted(text))
}

struct Job {
    ops: Vec<Op>,
    /// Asks the writer to exit after this batch (see [`Store::close`]).
    stop: bool,
    /// Told once the transaction holding `ops` has committed.
    done: Done,
}

/// redb's own page cache. Its default (1 GiB) fills with every page written or read, so a
/// deep queue's bodies would end up in the broker's RSS after all; reads past this cache
/// are served by the OS page cache, which the kernel can reclaim.
const CACHE_BYTES: usize = 32 * 1024 * 1024;

/// Handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    /// The writer thread holds the only strong reference, so the file (and its lock) is
    /// released as soon as the writer exits, however many handles are still around.
    db: Weak<Database>,
    /// Feeds the writer thread.
    jobs: mpsc::Sender<Job>,
    writer: Arc<parking_lot::Mutex<Option<JoinHandle<()>>>>,
}

impl Store {
    /// Opens (or creates) `dir/broker.redb` and starts the writer thread.
    pub fn open(dir: &Path, policy: FsyncPolicy) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::DataDir {
            path: dir.display().to_string(),
            source,
        })?;
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(dir.join("broker.redb"))
            .map_err(redb_err)?;
        let db = Arc::new(db);
        let wtx = db.begin_write().map_err(redb_err)?;
        for table in [Table::Queues, Table::Events, Table::Meta] {
            wtx.open_table(table.def()).map_err(redb_err)?;
        }
        wtx.commit().map_err(redb_err)?;
        let (jobs, rx) = mpsc::channel();
        let weak = Arc::downgrade(&db);
        let writer_db = db;
        let writer = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || Writer::new(writer_db, policy).run(rx))
            .map_err(|source| StoreError::DataDir {
                path: dir.display().to_string(),
                source,
            })?;
        Ok(Self {
            db: weak,
            jobs,
            writer: Arc::new(parking_lot::Mutex::new(Some(writer))),
        })
    }

    /// Writes `ops` atomically. The write is queued before this returns, so writes made in
    /// one order while holding a lock reach the store in that order; the future resolves
    /// once they are committed per the fsync policy.
    pub fn commit(
        &self,
        ops: Vec<Op>,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let queued = self
            .jobs
            .send(Job {
                ops,
                done: Done::Reply(tx),
                stop: false,
            })
            .map_err(|_| StoreError::Closed);
        async move {
            queued?;
            match rx.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(text)) => Err(corrupted(text)),
                Err(_) => Err(StoreError::Closed),
            }
        }
    }

    /// Queues `ops` like [`Store::commit`] and calls `then` on the writer thread once they
    /// are committed, for callers that cannot await but must not act before the write is
    /// readable. If the store is closed, `then` is dropped uncalled.
    pub fn commit_then(&self, ops: Vec<Op>, then: AfterCommit) {
        let job = Job {
            ops,
            done: Done::Call(then),
            stop: false,
        };
        if self.jobs.send(job).is_err() {
            tracing::warn!("store closed; a write and what waited on it were dropped");
        }
    }

    /// Queues `ops` behind every earlier write without waiting for the commit. For writes
    /// whose loss in a crash is harmless (acks: the message would be redelivered).
    pub fn commit_detached(&self, ops: Vec<Op>) {
        if self
            .jobs
            .send(Job {
                ops,
                done: Done::Nobody,
                stop: false,
            })
            .is_err()
        {
            tracing::warn!("store closed; a detached write was dropped");
        }
    }

    /// Every record of `table` whose key starts with `prefix`, in key order. Used at start-up.
    pub fn scan(&self, table: Table, prefix: &[u8]) -> Result<Vec<(Bytes, Bytes)>, StoreError> {
        let mut out = Vec::new();
        self.visit(table, prefix, |k, v| out.push((k.to_vec(), v.to_vec())))?;
        Ok(out)
    }

    /// Shows `f` every record of `table` whose key starts with `prefix`, in key order,
    /// without collecting them: a start-up over a million stored bodies stays small.
    pub fn visit(
        &self,
        table: Table,
        prefix: &[u8],
        mut f: impl FnMut(&[u8], &[u8]),
    ) -> Result<(), StoreError> {
        let db = self.db.upgrade().ok_or(StoreError::Closed)?;
        let rtx = db.begin_read().map_err(redb_err)?;
        let t = rtx.open_table(table.def()).map_err(redb_err)?;
        for item in t.range(prefix..).map_err(redb_err)? {
            let (k, v) = item.map_err(redb_err)?;
            if !k.value().starts_with(prefix) {
                break;
            }
            f(k.value(), v.value());
        }
        Ok(())
    }

    /// Reads several records in one read transaction: one snapshot and one transaction's
    /// cost for a whole batch. Positional; `None` where a key is absent.
    pub fn get_many(
        &self,
        table: Table,
        keys: impl IntoIterator<Item = Bytes>,
    ) -> Result<Vec<Option<Bytes>>, StoreError> {
        let db = self.db.upgrade().ok_or(StoreError::Closed)?;
        let rtx = db.begin_read().map_err(redb_err)?;
        let t = rtx.open_table(table.def()).map_err(redb_err)?;
        keys.into_iter()
            .map(|k| {
                Ok(t.get(k.as_slice())
                    .map_err(redb_err)?
                    .map(|v| v.value().to_vec()))
            })
            .collect()
    }

    /// Reads one record.
    pub fn get(&self, table: Table, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        let db = self.db.upgrade().ok_or(StoreError::Closed)?;
        let rtx = db.begin_read().map_err(redb_err)?;
        let t = rtx.open_table(table.def()).map_err(redb_err)?;
        Ok(t.get(key).map_err(redb_err)?.map(|v| v.value().to_vec()))
    }

    /// Waits until every write queued so far is durable on disk.
    pub async fn sync(&self) -> Result<(), StoreError> {
        self.commit(Vec::new()).await
    }

    /// Commits everything queued so far durably, stops the writer and releases the file,
    /// so a new broker can open the same data directory at once. Later writes fail with
    /// [`StoreError::Closed`].
    pub fn close(&self) {
        let _ = self.jobs.send(Job {
            ops: Vec::new(),
            done: Done::Nobody,
            stop: true,
        });
        let writer = self.writer.lock().take();
        if let Some(handle) = writer {
            if handle.join().is_err() {
                tracing::error!("store writer thread panicked");
            }
        }
    }
}

/// The writer thread's state.
struct Writer {
    db: Arc<Database>,
    policy: FsyncPolicy,
    /// When the last fsynced commit happened (interval policy only).
    last_sync: Instant,
    /// Whether commits were made since `last_sync` that are not yet fsynced.
    dirty: bool,
}

/// How many operations one transaction takes at most, to bound commit latency.
const MAX_OPS_PER_COMMIT: usize = 20_000;

impl Writer {
    fn new(db: Arc<Database>, policy: FsyncPolicy) -> Self {
        Self {
            db,
            policy,
            last_sync: Instant::now(),
            dirty: false,
        }
    }

    fn run(mut self, rx: mpsc::Receiver<Job>) {
        loop {
            let first = match self.next_job(&rx) {
                Ok(Some(job)) => job,
                Ok(None) => continue,
                Err(()) => break,
            };
            let mut batch = vec![first];
            let mut ops = batch[0].ops.len();
            while ops < MAX_OPS_PER_COMMIT {
                match rx.try_recv() {
                    Ok(job) => {
                        ops += job.ops.len();
                        batch.push(job);
                    }
                    Err(_) => break,
                }
            }
            let result = self.write(&batch).map_err(|e| e.to_string());
            if let Err(text) = &result {
                tracing::error!("store commit failed: {text}");
            }
            let stop = batch.iter().any(|job| job.stop);
            for job in batch {
                job.done.tell(&result);
            }
            if stop {
                break;
            }
        }
        if self.dirty {
            if let Err(e) = self.write(&[]) {
                tracing::error!("final store sync failed: {e}");
            }
        }
    }

    /// The next job; `Ok(None)` when an interval tick passed (after syncing if needed),
    /// `Err` when every sender is gone.
    fn next_job(&mut self, rx: &mpsc::Receiver<Job>) -> Result<Option<Job>, ()> {
        let FsyncPolicy::Interval(every) = self.policy else {
            return rx.recv().map(Some).map_err(|_| ());
        };
        let wait = every.saturating_sub(self.last_sync.elapsed());
        match rx.recv_timeout(wait) {
            Ok(job) => Ok(Some(job)),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if self.dirty {
                    if let Err(e) = self.write(&[]) {
                        tracing::error!("periodic store sync failed: {e}");
                    }
                } else {
                    self.last_sync = Instant::now();
                }
                Ok(None)
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(()),
        }
    }

    fn durability(&self) -> Durability {
        match self.policy {
            FsyncPolicy::Always => Durability::Immediate,
            FsyncPolicy::Interval(every) if self.last_sync.elapsed() >= every => {
                Durability::Immediate
            }
            FsyncPolicy::Interval(_) => Durability::None,
        }
    }

    fn write(&mut self, batch: &[Job]) -> Result<(), StoreError> {
        let mut wtx = self.db.begin_write().map_err(redb_err)?;
        let durability = self.durability();
        wtx.set_durability(durability);
        {
            let mut tables = [
                wtx.open_table(Table::Queues.def()).map_err(redb_err)?,
                wtx.open_table(Table::Events.def()).map_err(redb_err)?,
                wtx.open_table(Table::Meta.def()).map_err(redb_err)?,
            ];
            for op in batch.iter().flat_map(|job| &job.ops) {
                apply(&mut tables, op)?;
            }
        }
        wtx.commit().map_err(redb_err)?;
        if matches!(durability, Durability::Immediate) {
            self.last_sync = Instant::now();
            self.dirty = false;
        } else {
            self.dirty = true;
        }
        Ok(())
    }
}

type OpenTable<'t> = redb::Table<'t, &'static [u8], &'static [u8]>;

fn apply(tables: &mut [OpenTable<'_>; 3], op: &Op) -> Result<(), StoreError> {
    let table = |t: Table| match t {
        Table::Queues => 0,
        Table::Events => 1,
        Table::Meta => 2,
    };
    match op {
        Op::Put {
            table: t,
            key,
            value,
        } => {
            tables[table(*t)]
                .insert(key.as_slice(), value.as_slice())
                .map_err(redb_err)?;
        }
        Op::Delete { table: t, key } => {
            tables[table(*t)].remove(key.as_slice()).map_err(redb_err)?;
        }
        Op::DeletePrefix { table: t, prefix } => {
            let t = &mut tables[table(*t)];
            let keys: Vec<Bytes> = t
                .range(prefix.as_slice()..)
                .map_err(redb_err)?
                .map_while(|item| item.ok())
                .map(|(k, _)| k.value().to_vec())
                .take_while(|k| k.starts_with(prefix))
                .collect();
            for k in keys {
                t.remove(k.as_slice()).map_err(redb_err)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_sequence_within_a_name() {
        assert!(key("q", 2) < key("q", 10));
        assert!(!key("qq", 1).starts_with(&prefix("q")));
        assert_eq!(split_key(&key("a.b", 7)), Some(("a.b".to_owned(), 7)));
    }

    #[tokio::test]
    async fn committed_writes_survive_reopen() -> Result<(), StoreError> {
        let dir = tempfile::tempdir().map_err(|source| StoreError::DataDir {
            path: "tmp".into(),
            source,
        })?;
        let store = Store::open(dir.path(), FsyncPolicy::Always)?;
        let put = |seq| Op::Put {
            table: Table::Queues,
            key: key("q", seq),
            value: vec![seq as u8],
        };
        store.commit(vec![put(1), put(2), put(3)]).await?;
        store
            .commit(vec![Op::Delete {
                table: Table::Queues,
                key: key("q", 2),
            }])
            .await?;
        store.close();
        let store = Store::open(dir.path(), FsyncPolicy::Always)?;
        let rows = store.scan(Table::Queues, &prefix("q"))?;
        assert_eq!(
            rows.iter().map(|(_, v)| v[0]).collect::<Vec<_>>(),
            vec![1, 3]
        );
        store
            .commit(vec![Op::DeletePrefix {
                table: Table::Queues,
                prefix: prefix("q"),
            }])
            .await?;
        assert!(store.scan(Table::Queues, &prefix("q"))?.is_empty());
        Ok(())
    }
}
