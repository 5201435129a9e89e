//! The etcd store (`storage.type: etcd`): the mirror as keys under `storage.etcd.prefix`
//! (`keys`), values the pruned object JSON (`codec`), batches written as transactions within
//! etcd's limits (`split`, `write`), reads by prefix range with filters applied to the decoded
//! objects (`read`, `query`), the change feed from etcd's watch (`feed`).
//!
//! The store revision is etcd's revision ([`RevisionModel::Shared`]): every change of one
//! transaction shares it, and writes of other mirrors sharing the cluster skip numbers.
//! Which keys exist, their resourceVersions, uids and last relist epoch are remembered per kind
//! (`index`), loaded from etcd at registration; this process is the only writer of its prefix.
//! etcd being down is an `Unavailable` answer on every call (the connection is made on first
//! use and re-made by the client after restarts), which the mirror's breaker and retries handle.

mod codec;
mod connect;
mod demand;
mod feed;
mod index;
pub mod keys;
mod query;
mod read;
mod recent;
pub mod split;
mod write;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use self::codec::Codec;
pub use self::connect::EtcdSettings;
use self::connect::{Connection, call};
use self::index::Index;
use self::keys::Layout;
use super::{
    Change, GroupBy, ListPage, ListQuery, MirrorObject, Revision, RevisionModel, Store, StoreError,
    WriteBatch, WriteOutcome,
};
use crate::mirror::kind::KindSpec;

/// The etcd store. Cheap to share as `Arc<dyn Store>`; must be created inside a Tokio runtime.
pub struct EtcdStore {
    conn: Arc<Connection>,
    layout: Layout,
    /// Registered kinds by key prefix (`{prefix}/{group}/{version}/{kind}/`).
    kinds: RwLock<HashMap<String, Arc<KindState>>>,
    /// The highest etcd revision this store has seen in an answer.
    known: AtomicU64,
    notify: Arc<watch::Sender<Revision>>,
    /// Recent changes under the prefix, kept by the follower for the change feed.
    recent: Arc<recent::Recent>,
    /// Whether anyone reads the feed (the follower runs only then).
    demand: Arc<demand::Demand>,
    follower: JoinHandle<()>,
}

/// One registered kind.
struct KindState {
    prefix: String,
    shape: RwLock<Arc<Shape>>,
    index: Mutex<Index>,
    /// Serialises writes and sweeps of the kind (held across etcd calls; readers never take it).
    writer: tokio::sync::Mutex<()>,
}

/// A kind's spec and the codec built from it, replaced together when the spec changes.
struct Shape {
    spec: KindSpec,
    codec: Codec,
}

impl KindState {
    fn shape(&self) -> Arc<Shape> {
        Arc::clone(&self.shape.read())
    }
}

impl EtcdStore {
    /// A store for `settings`. Does not contact etcd: the connection is made on first use, so
    /// etcd being down at start is an `Unavailable` answer, never an error here.
    pub fn new(settings: EtcdSettings) -> Self {
        let layout = Layout::new(&settings.prefix);
        let conn = Arc::new(Connection::new(settings));
        let (notify, _) = watch::channel(0);
        let notify = Arc::new(notify);
        let recent = Arc::new(recent::Recent::new());
        let demand = Arc::new(demand::Demand::default());
        let follower = tokio::spawn(feed::follow(feed::Follower {
            conn: Arc::clone(&conn),
            root: layout.root(),
            marker: layout.marker(),
            notify: Arc::clone(&notify),
            recent: Arc::clone(&recent),
            demand: Arc::clone(&demand),
        }));
        Self {
            conn,
            layout,
            kinds: RwLock::new(HashMap::new()),
            known: AtomicU64::new(0),
            notify,
            recent,
            demand,
            follower,
        }
    }

    /// Whether the follower watch is running (it does while the feed is read).
    pub fn is_following(&self) -> bool {
        self.recent.head().is_some()
    }

    /// How many change-feed answers came from the follower's recent events instead of a watch
    /// of their own (tests check that path is taken).
    pub fn feed_answers_from_memory(&self) -> u64 {
        self.recent.answered()
    }

    /// The key layout of this store (tests and tools read keys with it).
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    fn state(&self, kind: &KindSpec) -> Result<Arc<KindState>, StoreError> {
        self.kinds
            .read()
            .get(&self.layout.kind_prefix(kind))
            .cloned()
            .ok_or_else(|| StoreError::UnknownKind(kind.id()))
    }

    /// The registered kind a key belongs to.
    fn kind_of_key(&self, key: &str) -> Option<Arc<KindState>> {
        let (group, version, kind) = self.layout.kind_of(key)?;
        let prefix = format!("{}{group}/{version}/{kind}/", self.layout.root());
        self.kinds.read().get(&prefix).cloned()
    }

    /// Notes a revision etcd answered with.
    fn saw(&self, revision: Revision) {
        self.known.fetch_max(revision, Ordering::Relaxed);
    }

    /// etcd's current revision (one cheap read of a single key).
    async fn current_revision(&self) -> Result<Revision, StoreError> {
        let mut kv = self.conn.clients().await?.kv;
        let response = call("reading the revision", kv.get(self.layout.root(), None)).await?;
        let revision = response.header().map_or(0, |h| h.revision() as Revision);
        self.saw(revision);
        Ok(revision)
    }
}

impl Drop for EtcdStore {
    fn drop(&mut self) {
        self.follower.abort();
    }
}

#[async_trait::async_trait]
impl Store for EtcdStore {
    fn backend(&self) -> &'static str {
        "etcd"
    }

    fn revision_model(&self) -> RevisionModel {
        RevisionModel::Shared
    }

    async fn register(&self, kind: &KindSpec) -> Result<(), StoreError> {
        self.register_kind(kind).await
    }

    /// Deletes the kind's keys in one request. Unknown kinds are ignored (idempotent); the
    /// deletions are not reported by the change feed (the kind is gone).
    async fn unregister(&self, kind: &KindSpec) -> Result<(), StoreError> {
        self.unregister_kind(kind).await
    }

    async fn write(&self, kind: &KindSpec, batch: WriteBatch) -> Result<WriteOutcome, StoreError> {
        self.write_batch(kind, batch).await
    }

    async fn sweep(&self, kind: &KindSpec, epoch: u64) -> Result<usize, StoreError> {
        self.sweep_stale(kind, epoch).await
    }

    async fn get(
        &self,
        kind: &KindSpec,
        namespace: &str,
        name: &str,
    ) -> Result<Option<MirrorObject>, StoreError> {
        let state = self.state(kind)?;
        let key = self.layout.object_key(kind, namespace, name);
        self.get_key(&state, &key).await
    }

    async fn get_by_uid(
        &self,
        kind: &KindSpec,
        uid: &str,
    ) -> Result<Option<MirrorObject>, StoreError> {
        let state = self.state(kind)?;
        let key = state.index.lock().key_of_uid(uid).map(str::to_owned);
        let Some(key) = key else {
            return Ok(None);
        };
        let found = self.get_key(&state, &key).await?;
        Ok(found.filter(|o| o.uid == uid))
    }

    async fn list(&self, kind: &KindSpec, query: &ListQuery) -> Result<ListPage, StoreError> {
        let state = self.state(kind)?;
        let shape = state.shape();
        // Fail on unknown columns before reading everything.
        query::check_columns(&shape.spec, query)?;
        let objects = self.range(&state, query.namespace.as_deref()).await?;
        query::page(&shape.spec, objects, query)
    }

    async fn count(&self, kind: &KindSpec) -> Result<usize, StoreError> {
        let state = self.state(kind)?;
        self.count_keys(&state).await
    }

    async fn group_count(
        &self,
        kind: &KindSpec,
        by: &GroupBy,
    ) -> Result<BTreeMap<String, usize>, StoreError> {
        let state = self.state(kind)?;
        let spec = state.shape().spec.clone();
        if let GroupBy::Column(column) = by {
            // Fail before reading everything.
            query::group_count(&spec, std::iter::empty(), &GroupBy::Column(column.clone()))?;
        }
        let objects = self.range(&state, None).await?;
        query::group_count(&spec, objects.iter(), by)
    }

    async fn column_sums(
        &self,
        kind: &KindSpec,
        columns: &[String],
    ) -> Result<BTreeMap<String, i64>, StoreError> {
        let state = self.state(kind)?;
        let spec = state.shape().spec.clone();
        query::column_sums(&spec, std::iter::empty(), columns)?;
        let objects = self.range(&state, None).await?;
        query::column_sums(&spec, objects.iter(), columns)
    }

    async fn changes(
        &self,
        kind: Option<&KindSpec>,
        since: Revision,
        limit: usize,
    ) -> Result<Vec<Change>, StoreError> {
        self.feed(kind, since, limit).await
    }

    async fn revision(&self) -> Result<Revision, StoreError> {
        self.current_revision().await
    }

    fn subscribe(&self) -> watch::Receiver<Revision> {
        let receiver = self.notify.subscribe();
        self.demand.touch();
        receiver
    }
}
