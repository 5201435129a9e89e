//! Writes: a batch becomes puts and deletes (unchanged upserts and unknown deletes write
//! nothing), cut into transactions within etcd's limits and applied in order; the sweep deletes
//! the keys of objects not seen in the relist's epoch. An object too large for one request is
//! refused alone; the rest of its batch is applied.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::Ordering;

use etcd_client::{Txn, TxnOp};
use futures::StreamExt;
use futures::stream::FuturesUnordered;

use super::connect::call;
use super::index::Entry;
use super::keys::invalid_segment;
use super::split::{self, Limits, Sized};
use super::{EtcdStore, KindState};
use crate::mirror::kind::KindSpec;
use crate::store::{Revision, StoreError, WriteBatch, WriteOp, WriteOutcome};

/// Transactions of one batch sent together when their keys are disjoint: enough to keep etcd
/// busy while the answer of the previous one travels back.
const IN_FLIGHT: usize = 4;

/// One operation that changes etcd.
struct Planned {
    key: String,
    /// The value to put and the key's facts afterwards; `None` deletes.
    put: Option<(Vec<u8>, Entry)>,
}

/// What a batch does, decided before any I/O.
#[derive(Default)]
struct Plan {
    ops: Vec<Planned>,
    /// Keys whose unchanged upsert only marks them seen in the epoch.
    seen: Vec<String>,
    /// The first refused object (`Rejected` after the rest is applied).
    rejected: Option<StoreError>,
    epoch: u64,
}

impl EtcdStore {
    pub(super) async fn write_batch(
        &self,
        kind: &KindSpec,
        batch: WriteBatch,
    ) -> Result<WriteOutcome, StoreError> {
        let state = self.state(kind)?;
        let _writer = state.writer.lock().await;
        let mut plan = self.plan(&state, batch)?;
        let changed = plan.ops.len();
        let revision = self.apply(&state, std::mem::take(&mut plan.ops)).await?;
        {
            let mut index = state.index.lock();
            for key in &plan.seen {
                index.mark(key, plan.epoch);
            }
        }
        let outcome = WriteOutcome {
            revision: revision.unwrap_or_else(|| self.known.load(Ordering::Relaxed)),
            changed,
        };
        if let Some(revision) = revision {
            super::feed::publish(&self.notify, revision);
        }
        match plan.rejected {
            Some(rejected) => Err(rejected),
            None => Ok(outcome),
        }
    }

    /// Decides each operation against the index and the batch's earlier operations.
    fn plan(&self, state: &KindState, batch: WriteBatch) -> Result<Plan, StoreError> {
        let shape = state.shape();
        let limits = self.conn.settings().limits;
        let index = state.index.lock();
        if index.removed {
            return Err(StoreError::UnknownKind(shape.spec.id()));
        }
        // The batch's own effect on keys it touched: `Some(resourceVersion)` or deleted.
        let mut touched: HashMap<String, Option<String>> = HashMap::new();
        let mut plan = Plan::default();
        for op in batch.ops {
            match op {
                WriteOp::Upsert(object) => {
                    if let Some(reason) = invalid_segment(&object.namespace, &object.name) {
                        plan.reject(&object.namespace, &object.name, reason.to_owned());
                        continue;
                    }
                    let key = self
                        .layout
                        .object_key(&shape.spec, &object.namespace, &object.name);
                    let current = match touched.get(&key) {
                        Some(state) => state.clone(),
                        None => index.get(&key).map(|e| e.resource_version.clone()),
                    };
                    if current.as_deref() == Some(object.resource_version.as_str()) {
                        plan.seen.push(key);
                        continue;
                    }
                    let value = shape.codec.encode(&object);
                    if !limits.fits(&key, value.len()) {
                        let reason = format!(
                            "{} bytes is more than etcd accepts in one request ({} bytes, storage.etcd.max_request_bytes)",
                            value.len(),
                            limits.max_request_bytes
                        );
                        plan.reject(&object.namespace, &object.name, reason);
                        continue;
                    }
                    touched.insert(key.clone(), Some(object.resource_version.clone()));
                    let entry = Entry {
                        resource_version: object.resource_version,
                        uid: object.uid,
                        epoch: batch.epoch,
                    };
                    plan.ops.push(Planned {
                        key,
                        put: Some((value, entry)),
                    });
                }
                WriteOp::Delete { namespace, name } => {
                    let key = self.layout.object_key(&shape.spec, &namespace, &name);
                    let exists = match touched.get(&key) {
                        Some(state) => state.is_some(),
                        None => index.get(&key).is_some(),
                    };
                    if exists {
                        touched.insert(key.clone(), None);
                        plan.ops.push(Planned { key, put: None });
                    }
                }
            }
        }
        plan.epoch = batch.epoch;
        Ok(plan)
    }

    /// Applies the operations, one transaction per [`split::split`] range, updating the index
    /// after each. When no key repeats, up to [`IN_FLIGHT`] transactions are sent together (etcd
    /// then commits them in one raft round); otherwise they run one after another, in order.
    /// After a failure no further transaction is sent; the ones already sent are awaited so the
    /// index holds exactly what was applied. The highest revision, `None` when nothing was
    /// written.
    async fn apply(
        &self,
        state: &KindState,
        mut ops: Vec<Planned>,
    ) -> Result<Option<Revision>, StoreError> {
        let mut limits: Limits = self.conn.settings().limits;
        // Every transaction also puts the revision marker.
        limits.max_ops = limits.max_ops.saturating_sub(1).max(1);
        let marker = self.layout.marker();
        limits.max_request_bytes = limits
            .max_request_bytes
            .saturating_sub(Limits::cost(&marker, 0));
        if ops.is_empty() {
            return Ok(None);
        }
        let sized: Vec<Sized> = ops
            .iter()
            .map(|op| Sized {
                key: &op.key,
                cost: Limits::cost(&op.key, op.put.as_ref().map_or(0, |(v, _)| v.len())),
            })
            .collect();
        let ranges = split::split(&sized, limits);
        let in_flight = if split::distinct(&sized) {
            IN_FLIGHT
        } else {
            1
        };
        drop(sized);
        let kv = self.conn.clients().await?.kv;
        // The values go into the requests (a batch's values are most of its bytes); the keys
        // and entries stay for the index.
        let txns: Vec<(Range<usize>, Vec<TxnOp>)> = ranges
            .into_iter()
            .map(|range| {
                let mut txn_ops: Vec<TxnOp> = ops[range.clone()]
                    .iter_mut()
                    .map(|op| match op.put.as_mut() {
                        Some((value, _)) => {
                            TxnOp::put(op.key.as_str(), std::mem::take(value), None)
                        }
                        None => TxnOp::delete(op.key.as_str(), None),
                    })
                    .collect();
                txn_ops.push(TxnOp::put(marker.as_str(), "", None));
                (range, txn_ops)
            })
            .collect();
        let mut requests = txns.into_iter().map(|(range, txn_ops)| {
            let mut kv = kv.clone();
            async move {
                let sent = call("writing a batch", kv.txn(Txn::new().and_then(txn_ops))).await;
                (range, sent)
            }
        });
        let mut sent = FuturesUnordered::new();
        let mut revision = None;
        let mut failed = None;
        loop {
            while failed.is_none() && sent.len() < in_flight {
                match requests.next() {
                    Some(request) => sent.push(request),
                    None => break,
                }
            }
            let Some((range, answer)) = sent.next().await else {
                break;
            };
            let response = match answer {
                Ok(response) => response,
                Err(error) => {
                    failed.get_or_insert(error);
                    continue;
                }
            };
            let at = response.header().map_or(0, |h| h.revision() as Revision);
            self.saw(at);
            revision = revision.max(Some(at));
            let mut index = state.index.lock();
            for op in &mut ops[range] {
                let key = std::mem::take(&mut op.key);
                match op.put.take() {
                    Some((_, entry)) => index.insert(key, entry),
                    None => index.remove(&key),
                }
            }
        }
        match failed {
            Some(error) => Err(error),
            None => Ok(revision),
        }
    }

    pub(super) async fn sweep_stale(
        &self,
        kind: &KindSpec,
        epoch: u64,
    ) -> Result<usize, StoreError> {
        let state = self.state(kind)?;
        let _writer = state.writer.lock().await;
        let stale = {
            let index = state.index.lock();
            if index.removed {
                return Err(StoreError::UnknownKind(kind.id()));
            }
            index.stale(epoch)
        };
        let ops: Vec<Planned> = stale
            .into_iter()
            .map(|key| Planned { key, put: None })
            .collect();
        let deleted = ops.len();
        if let Some(revision) = self.apply(&state, ops).await? {
            super::feed::publish(&self.notify, revision);
        }
        Ok(deleted)
    }
}

impl Plan {
    fn reject(&mut self, namespace: &str, name: &str, reason: String) {
        self.rejected.get_or_insert(StoreError::Rejected {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            reason,
        });
    }
}
