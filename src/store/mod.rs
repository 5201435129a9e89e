//! The store contract every backend (memory, MySQL, etcd) implements, shaped for batches: the
//! pipeline writes batches of upserts and deletes; the REST API reads pages, counts and the change
//! feed. Each stored object keeps its source `resourceVersion`; the store keeps its own strictly
//! increasing revision, which the change feed resumes from.

pub mod conformance;
pub mod etcd;
pub mod memory;
pub mod mysql;
pub mod object_json;
pub mod sort;

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use stowage_emulator::selectors::LabelSelector;

use crate::mirror::kind::KindSpec;
use crate::store::object_json::ObjectJson;

/// The store's own change counter (not a Kubernetes resourceVersion).
pub type Revision = u64;

/// One mirrored object as stored: the pruned, redacted object plus what queries need.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MirrorObject {
    /// Empty for cluster-scoped kinds.
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// The source object's `metadata.resourceVersion`.
    pub resource_version: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// `metadata.creationTimestamp` (RFC 3339), when set.
    pub created_at: Option<String>,
    /// Values of the kind's typed columns, by column name (`null` when the path is absent).
    pub columns: BTreeMap<String, Value>,
    /// The whole pruned object.
    pub object: ObjectJson,
}

/// One write of a batch.
// Nearly every op is an upsert, so boxing the object would only add an allocation per write.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum WriteOp {
    /// Insert or replace. An object whose `resource_version` equals the stored one changes nothing
    /// (no new revision) but is still marked as seen in the batch's epoch.
    Upsert(MirrorObject),
    /// Remove; unknown objects are ignored.
    Delete { namespace: String, name: String },
}

/// A batch of writes for one kind, applied atomically where the backend can.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteBatch {
    pub ops: Vec<WriteOp>,
    /// Relist generation: every upserted object is marked with it, and [`Store::sweep`] removes
    /// objects of older epochs after a (re)list.
    pub epoch: u64,
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteOutcome {
    /// Store revision after the batch (unchanged when nothing changed).
    pub revision: Revision,
    /// Operations that changed something.
    pub changed: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ChangeType {
    Added,
    Modified,
    Deleted,
}

/// One entry of the change feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub revision: Revision,
    /// [`KindSpec::id`] of the object's kind.
    pub kind: String,
    #[serde(rename = "type")]
    pub change: ChangeType,
    /// The new state; for deletions the last stored state.
    pub object: MirrorObject,
}

/// How a list is ordered.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SortField {
    /// Namespace, then name (the default).
    #[default]
    Name,
    CreatedAt,
    /// A typed column of the kind.
    Column(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sort {
    pub field: SortField,
    pub descending: bool,
}

/// Where a keyset page starts: strictly after this position in the sort order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    /// The sort field's value of the last item returned (`null` for the default sort).
    pub value: Value,
    pub namespace: String,
    pub name: String,
}

/// A filtered, sorted, paged read of one kind.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub namespace: Option<String>,
    /// Case-insensitive substring of the name.
    pub search: Option<String>,
    pub labels: Option<LabelSelector>,
    /// Equality filters on typed columns; values compare as their string form
    /// (`"true"`, `"3"`, `"Running"`).
    pub columns: Vec<(String, String)>,
    pub sort: Sort,
    pub limit: usize,
    /// Items to skip (page-based paging); ignored when `after` is set.
    pub offset: usize,
    /// Keyset paging: continue after this cursor.
    pub after: Option<Cursor>,
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq)]
pub struct ListPage {
    pub items: Vec<MirrorObject>,
    /// Matching objects in all pages.
    pub total: usize,
    /// Cursor of the last item when more items follow.
    pub next: Option<Cursor>,
}

/// One page of a list as serialised objects, each item one compact JSON document: what a caller
/// that only passes objects on (the REST list) needs, without decoding and re-encoding them.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPage {
    pub items: Vec<Bytes>,
    /// Matching objects in all pages.
    pub total: usize,
    /// Cursor of the last item when more items follow.
    pub next: Option<Cursor>,
}

impl JsonPage {
    /// Serialises the objects of a decoded page.
    pub fn encode(page: ListPage) -> Result<Self, StoreError> {
        let items = page
            .items
            .iter()
            .map(|item| {
                serde_json::to_vec(&item.object)
                    .map(Bytes::from)
                    .map_err(|e| StoreError::Unavailable {
                        message: format!("object {}/{} does not encode", item.namespace, item.name),
                        source: Some(e.into()),
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            items,
            total: page.total,
            next: page.next,
        })
    }

    /// Appends the items to `out` as the members of a JSON array (separated by commas, without
    /// the brackets) and keeps the rest. The room `out` had to spare is still spare afterwards.
    pub fn write_items(self, out: &mut Vec<u8>) -> PageSummary {
        reserve_beyond_spare(out, self.items.iter().map(|item| item.len() + 1).sum());
        for (i, item) in self.items.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(item);
        }
        PageSummary {
            count: self.items.len(),
            total: self.total,
            next: self.next,
        }
    }
}

/// Reserves `items` bytes in `out` on top of the room it has to spare, which the caller keeps
/// for what it writes after the items (so that never moves them again).
pub fn reserve_beyond_spare(out: &mut Vec<u8>, items: usize) {
    out.reserve(out.capacity() - out.len() + items);
}

/// A page whose items were written out by [`Store::revision_and_write_list_json`]: everything
/// about it but the items.
#[derive(Debug, Clone, PartialEq)]
pub struct PageSummary {
    /// Items written.
    pub count: usize,
    /// Matching objects in all pages.
    pub total: usize,
    /// Cursor of the last item when more items follow.
    pub next: Option<Cursor>,
}

/// Failures of a store; `category()` is the metrics label and tells retry policy apart.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend cannot be reached or failed transiently; the write can be retried.
    #[error("store backend unavailable: {message}")]
    Unavailable {
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The requested revision is older than the retained change history.
    #[error("revision {requested} is no longer retained (oldest available: {oldest}); relist")]
    Expired {
        requested: Revision,
        oldest: Revision,
    },
    /// The kind was never registered with this store.
    #[error("kind {0} is not registered")]
    UnknownKind(String),
    /// A column or sort field the kind does not define.
    #[error("kind {kind} has no column {column}")]
    UnknownColumn { kind: String, column: String },
    /// One object was refused (e.g. larger than the backend accepts); the rest of the batch applied.
    #[error("object {namespace}/{name} rejected: {reason}")]
    Rejected {
        namespace: String,
        name: String,
        reason: String,
    },
}

impl StoreError {
    pub fn category(&self) -> &'static str {
        match self {
            Self::Unavailable { .. } => "unavailable",
            Self::Expired { .. } => "expired",
            Self::UnknownKind(_) => "unknown_kind",
            Self::UnknownColumn { .. } => "unknown_column",
            Self::Rejected { .. } => "rejected",
        }
    }

    /// Whether retrying the same call later can succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// How a backend numbers its changes; the conformance suite checks the strongest guarantees
/// each model allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RevisionModel {
    /// One revision per change: consecutive within a batch, no gaps (memory, MySQL).
    #[default]
    PerChange,
    /// The backend's own revision (etcd's): the changes of one transaction share a revision, a
    /// batch may take several transactions, and numbers are skipped by other writers of the same
    /// cluster. Revisions still strictly increase from transaction to transaction, a batch's
    /// changes are in operation order, and [`Store::changes`] never splits a revision (so resuming
    /// from the last revision returned has no gap and no duplicate).
    Shared,
}

/// What to group counts by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupBy {
    Namespace,
    Column(String),
}

/// The contract of every backend. Implementations are shared across tasks (`Arc<dyn Store>`).
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Short backend name for logs, metrics and `/api/v1/status`: `memory`, `mysql`, `etcd`.
    fn backend(&self) -> &'static str;

    /// How revisions are assigned to changes ([`RevisionModel::PerChange`] unless overridden).
    fn revision_model(&self) -> RevisionModel {
        RevisionModel::PerChange
    }

    /// Whether `write` can fail and then succeed when retried (a remote backend going away), so
    /// the pipeline keeps a copy of each batch for the retry. A backend that fails only when it
    /// lost the kind (which resyncs it anyway) answers false and saves the deep copy.
    fn transient_write_failures(&self) -> bool {
        true
    }

    /// Prepares storage for a kind (tables, prefixes). Idempotent; a changed spec (new columns)
    /// is applied without losing objects.
    async fn register(&self, kind: &KindSpec) -> Result<(), StoreError>;

    /// Removes a kind and everything stored for it.
    async fn unregister(&self, kind: &KindSpec) -> Result<(), StoreError>;

    /// Applies a batch of writes for one kind.
    async fn write(&self, kind: &KindSpec, batch: WriteBatch) -> Result<WriteOutcome, StoreError>;

    /// Removes objects of `kind` not upserted in `epoch` or later (objects that vanished during a
    /// relist). Returns how many were removed; each removal is a `Deleted` change.
    async fn sweep(&self, kind: &KindSpec, epoch: u64) -> Result<usize, StoreError>;

    async fn get(
        &self,
        kind: &KindSpec,
        namespace: &str,
        name: &str,
    ) -> Result<Option<MirrorObject>, StoreError>;

    async fn get_by_uid(
        &self,
        kind: &KindSpec,
        uid: &str,
    ) -> Result<Option<MirrorObject>, StoreError>;

    async fn list(&self, kind: &KindSpec, query: &ListQuery) -> Result<ListPage, StoreError>;

    /// [`Store::list`] with the objects serialised. Backends that keep objects serialised
    /// override it to hand their bytes over as they are.
    async fn list_json(&self, kind: &KindSpec, query: &ListQuery) -> Result<JsonPage, StoreError> {
        JsonPage::encode(self.list(kind, query).await?)
    }

    /// [`Store::revision`], then [`Store::list_json`]: what a REST list page answers. Backends
    /// whose every read is a round trip to a server override it to send both over one
    /// connection.
    async fn revision_and_list_json(
        &self,
        kind: &KindSpec,
        query: &ListQuery,
    ) -> Result<(Revision, JsonPage), StoreError> {
        let revision = self.revision().await?;
        Ok((revision, self.list_json(kind, query).await?))
    }

    /// [`Store::revision_and_list_json`] with the items appended to `out` as the members of a
    /// JSON array (see [`JsonPage::write_items`]): the REST list writes its answer around them.
    /// The room `out` has to spare when called is still spare after the items.
    /// The memory store overrides it to copy each object once, straight from where it is kept.
    async fn revision_and_write_list_json(
        &self,
        kind: &KindSpec,
        query: &ListQuery,
        out: &mut Vec<u8>,
    ) -> Result<(Revision, PageSummary), StoreError> {
        let (revision, page) = self.revision_and_list_json(kind, query).await?;
        Ok((revision, page.write_items(out)))
    }

    async fn count(&self, kind: &KindSpec) -> Result<usize, StoreError>;

    /// Object counts grouped by namespace or by a column's string value.
    async fn group_count(
        &self,
        kind: &KindSpec,
        by: &GroupBy,
    ) -> Result<BTreeMap<String, usize>, StoreError>;

    /// Sums of integer columns over all objects of a kind (missing values count as 0).
    async fn column_sums(
        &self,
        kind: &KindSpec,
        columns: &[String],
    ) -> Result<BTreeMap<String, i64>, StoreError>;

    /// Changes with revision greater than `since`, oldest first, at most `limit`, optionally for
    /// one kind only. `Expired` when `since` is older than the retained history. Under
    /// [`RevisionModel::Shared`] the answer ends with a whole revision, which may take it past
    /// `limit`.
    async fn changes(
        &self,
        kind: Option<&KindSpec>,
        since: Revision,
        limit: usize,
    ) -> Result<Vec<Change>, StoreError>;

    /// Current revision.
    async fn revision(&self) -> Result<Revision, StoreError>;

    /// Wakes when the revision moves (the change feed waits on it).
    fn subscribe(&self) -> tokio::sync::watch::Receiver<Revision>;
}
