//! The MySQL/MariaDB store (`storage.type: mysql`): one typed table per kind, each pipeline batch
//! one transaction of multi-row `INSERT … ON DUPLICATE KEY UPDATE`, soft deletes purged after
//! `storage.mysql.purge_after`, and the change feed in a `stowage_changes` table.
//!
//! Revisions come from the database: every write transaction first locks the single row of
//! `stowage_meta` (`SELECT … FOR UPDATE`), numbers its changes after the revision it holds and
//! stores the new one. Writers are therefore serialised and commit in revision order, so a feed
//! reader never sees revision N+1 before N, and a rolled-back batch leaves no gap (an
//! auto-increment counter would do both).
//!
//! The pool connects lazily: a database that is down at start makes calls fail with
//! [`StoreError::Unavailable`] naming the reason (shown in `/api/v1/status`), and the pipeline's
//! registration backoff and the breaker retry until it is back.
//!
//! Modules: `schema` (DDL and migrations, pure), `plan` (what a batch does, pure), `query` (read
//! statements, pure), `encode` (rows ⇄ objects), `sql` (binding, quoting, errors), `tables`
//! (register, migrate, purge), `write` (batches, sweeps), `pipeline` (insert-only batches with
//! encoding overlapped), `feed` (change records, lean ones read from the rows, retention), `read`
//! (lists, counts).

mod encode;
mod feed;
mod pipeline;
mod plan;
mod query;
mod read;
mod schema;
mod sql;
mod tables;
mod write;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use sqlx::Connection;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use tokio::sync::{OnceCell, watch};
use tracing::{info, warn};

use super::{
    Change, GroupBy, JsonPage, ListPage, ListQuery, MirrorObject, Revision, Store, StoreError,
    WriteBatch, WriteOutcome,
};
use crate::config::MysqlConfig;
use crate::mirror::kind::KindSpec;

/// How to reach the database and how much to keep.
#[derive(Debug, Clone)]
pub struct MysqlOptions {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub database: String,
    pub max_open_conns: u32,
    pub max_idle_conns: u32,
    /// Soft-deleted rows older than this are purged.
    pub purge_after: Duration,
    /// Changes retained for the feed (`mirror.history`).
    pub history: usize,
}

impl MysqlOptions {
    pub fn from_config(config: &MysqlConfig, history: usize) -> Self {
        Self {
            host: config.host.clone(),
            port: config.port,
            user: config.user.clone(),
            password: config.password.clone(),
            database: config.database.clone(),
            max_open_conns: config.max_open_conns,
            max_idle_conns: config.max_idle_conns,
            purge_after: config.purge_after,
            history,
        }
    }
}

/// One registered kind: its spec as the table was last migrated to.
struct Table {
    spec: KindSpec,
    name: String,
    last_purge: Mutex<Instant>,
    /// The last batch found none of its keys stored (see `plan::insert_only`).
    all_new: AtomicBool,
}

/// The MySQL store. Cheap to share as `Arc<dyn Store>`.
pub struct MysqlStore {
    pool: MySqlPool,
    options: MysqlOptions,
    tables: RwLock<HashMap<String, Arc<Table>>>,
    /// The store's own tables exist and `max_statement_bytes` is known.
    ready: OnceCell<Limits>,
    notify: watch::Sender<Revision>,
    /// The change feed's background retention deletes (see `feed::Trim`).
    trim: Arc<feed::Trim>,
}

/// What the server accepts, read once.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// Bytes one statement may carry (half of `max_allowed_packet`, leaving room for escaping).
    statement_bytes: usize,
}

/// Bound on waiting for a pooled connection, so calls fail fast while the database is down.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// A pooled connection idle at least this long is pinged before it is used (the server may
/// have gone away meanwhile).
const RECHECK_IDLE: Duration = Duration::from_secs(1);

impl MysqlStore {
    /// A store whose pool connects on first use (nothing is contacted here).
    pub fn new(options: MysqlOptions) -> Self {
        let mut connect = MySqlConnectOptions::new()
            .host(&options.host)
            .port(options.port)
            .username(&options.user)
            .database(&options.database)
            .charset("utf8mb4");
        // An empty password would still be sent (and refused by a password-less account).
        if !options.password.is_empty() {
            connect = connect.password(&options.password);
        }
        let pool = MySqlPoolOptions::new()
            .max_connections(options.max_open_conns.max(1))
            .min_connections(options.max_idle_conns.min(options.max_open_conns))
            .idle_timeout(Duration::from_secs(300))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // sqlx pings every connection it takes back (closing a broken one) and by default
            // again when it hands one out: a round trip per statement. A connection released
            // moments ago answered that ping, so only one idle for a while is checked again.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= RECHECK_IDLE {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            })
            .connect_lazy_with(connect);
        let (notify, _) = watch::channel(0);
        Self {
            pool,
            options,
            tables: RwLock::new(HashMap::new()),
            ready: OnceCell::new(),
            notify,
            trim: Arc::default(),
        }
    }

    /// Creates the store's own tables and reads the server's limits (once; retried by the next
    /// call after a failure).
    async fn limits(&self) -> Result<Limits, StoreError> {
        self.ready
            .get_or_try_init(|| tables::init(&self.pool, &self.options.database))
            .await
            .copied()
    }

    /// Checks the database is reachable and prepares the store's own tables.
    pub async fn connect(&self) -> Result<(), StoreError> {
        self.limits().await.map(|_| ())
    }

    /// [`connect`](Self::connect) until it succeeds, logging why each attempt failed, with
    /// exponential backoff (0.5 s to 30 s). Meanwhile every call fails with the same reason.
    pub async fn connect_with_backoff(self: Arc<Self>) {
        let mut pause = Duration::from_millis(500);
        loop {
            match self.connect().await {
                Ok(()) => {
                    info!(host = %self.options.host, database = %self.options.database,
                        "connected to MySQL");
                    return;
                }
                Err(error) => {
                    warn!(error = %crate::report::chain(&error), retry_in = ?pause,
                        "MySQL is not available yet");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    fn table(&self, kind: &KindSpec) -> Result<Arc<Table>, StoreError> {
        let id = kind.id();
        self.tables
            .read()
            .get(&id)
            .cloned()
            .ok_or(StoreError::UnknownKind(id))
    }

    fn error(&self, kind: Option<&KindSpec>, what: &str, error: sqlx::Error) -> StoreError {
        let id = kind.map(KindSpec::id);
        sql::store_error(id.as_deref(), what, &self.options.database, error)
    }

    /// After a write transaction that stored `revision` committed: feed readers are woken and,
    /// when due, records beyond the retention are deleted in the background (`feed::Trim`).
    fn committed(&self, revision: Revision) {
        self.publish(revision);
        feed::trim_if_due(self, revision);
    }

    fn publish(&self, revision: Revision) {
        self.notify.send_if_modified(|current| {
            let moved = revision > *current;
            if moved {
                *current = revision;
            }
            moved
        });
    }

    /// Removes soft-deleted rows of `kind` older than the purge age now.
    pub async fn purge(&self, kind: &KindSpec) -> Result<u64, StoreError> {
        let table = self.table(kind)?;
        tables::purge(self, &table).await
    }

    /// The pool, for tests and benchmarks that look at the tables directly.
    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }
}

#[async_trait::async_trait]
impl Store for MysqlStore {
    fn backend(&self) -> &'static str {
        "mysql"
    }

    async fn register(&self, kind: &KindSpec) -> Result<(), StoreError> {
        tables::register(self, kind).await
    }

    /// Drops the kind's table; unknown kinds are ignored. No `Deleted` changes are recorded.
    async fn unregister(&self, kind: &KindSpec) -> Result<(), StoreError> {
        tables::unregister(self, kind).await
    }

    async fn write(&self, kind: &KindSpec, batch: WriteBatch) -> Result<WriteOutcome, StoreError> {
        write::write(self, kind, batch).await
    }

    async fn sweep(&self, kind: &KindSpec, epoch: u64) -> Result<usize, StoreError> {
        write::sweep(self, kind, epoch).await
    }

    async fn get(
        &self,
        kind: &KindSpec,
        namespace: &str,
        name: &str,
    ) -> Result<Option<MirrorObject>, StoreError> {
        read::get(self, kind, namespace, name).await
    }

    async fn get_by_uid(
        &self,
        kind: &KindSpec,
        uid: &str,
    ) -> Result<Option<MirrorObject>, StoreError> {
        read::get_by_uid(self, kind, uid).await
    }

    async fn list(&self, kind: &KindSpec, query: &ListQuery) -> Result<ListPage, StoreError> {
        read::list(self, kind, query).await
    }

    async fn list_json(&self, kind: &KindSpec, query: &ListQuery) -> Result<JsonPage, StoreError> {
        read::list_json(self, kind, query).await
    }

    async fn revision_and_list_json(
        &self,
        kind: &KindSpec,
        query: &ListQuery,
    ) -> Result<(Revision, JsonPage), StoreError> {
        let (revision, page) = read::revision_and_list_json(self, kind, query).await?;
        self.publish(revision);
        Ok((revision, page))
    }

    async fn count(&self, kind: &KindSpec) -> Result<usize, StoreError> {
        read::count(self, kind).await
    }

    async fn group_count(
        &self,
        kind: &KindSpec,
        by: &GroupBy,
    ) -> Result<BTreeMap<String, usize>, StoreError> {
        read::group_count(self, kind, by).await
    }

    async fn column_sums(
        &self,
        kind: &KindSpec,
        columns: &[String],
    ) -> Result<BTreeMap<String, i64>, StoreError> {
        read::column_sums(self, kind, columns).await
    }

    async fn changes(
        &self,
        kind: Option<&KindSpec>,
        since: Revision,
        limit: usize,
    ) -> Result<Vec<Change>, StoreError> {
        feed::changes(self, kind, since, limit).await
    }

    async fn revision(&self) -> Result<Revision, StoreError> {
        let revision = read::revision(self).await?;
        self.publish(revision);
        Ok(revision)
    }

    fn subscribe(&self) -> watch::Receiver<Revision> {
        self.notify.subscribe()
    }
}
