//! Registration and reads: a kind's index loaded by a prefix range, single gets, and prefix ranges
//! read in key-ordered pages at one revision (so a list never mixes two states of the store).

use std::sync::Arc;

use etcd_client::{DeleteOptions, GetOptions, Txn, TxnOp};
use parking_lot::{Mutex, RwLock};
use tracing::warn;

use super::codec::Codec;
use super::connect::call;
use super::index::{Entry, Index};
use super::keys::prefix_end;
use super::{EtcdStore, KindState, Shape};
use crate::mirror::kind::KindSpec;
use crate::store::{MirrorObject, Revision, StoreError};

/// Keys per range request.
const RANGE_PAGE: i64 = 2000;

impl EtcdStore {
    pub(super) async fn register_kind(&self, kind: &KindSpec) -> Result<(), StoreError> {
        let codec = Codec::new(kind).map_err(|error| StoreError::Rejected {
            namespace: String::new(),
            name: kind.id(),
            reason: error.to_string(),
        })?;
        let shape = Arc::new(Shape {
            spec: kind.clone(),
            codec,
        });
        let prefix = self.layout.kind_prefix(kind);
        if let Some(state) = self.kinds.read().get(&prefix) {
            // Columns are derived on read, so a changed spec needs no rewrite.
            *state.shape.write() = shape;
            return Ok(());
        }
        let fresh = Arc::new(KindState {
            prefix: prefix.clone(),
            shape: RwLock::new(shape),
            index: Mutex::new(Index::default()),
            writer: tokio::sync::Mutex::new(()),
        });
        let mut index = Index::default();
        for (key, object) in self.range_raw(&fresh, &prefix).await? {
            let entry = match object {
                Some(o) => Entry {
                    resource_version: o.resource_version,
                    uid: o.uid,
                    epoch: 0,
                },
                // Kept so the next sweep removes it.
                None => Entry {
                    resource_version: String::new(),
                    uid: String::new(),
                    epoch: 0,
                },
            };
            index.insert(key, entry);
        }
        *fresh.index.lock() = index;
        // A concurrent registration of the same kind may have won; keep the first.
        self.kinds.write().entry(prefix).or_insert(fresh);
        Ok(())
    }

    pub(super) async fn unregister_kind(&self, kind: &KindSpec) -> Result<(), StoreError> {
        let Ok(state) = self.state(kind) else {
            return Ok(());
        };
        let _writer = state.writer.lock().await;
        let mut kv = self.conn.clients().await?.kv;
        let options = DeleteOptions::new().with_range(prefix_end(&state.prefix));
        let txn = Txn::new().and_then([
            TxnOp::delete(state.prefix.as_str(), Some(options)),
            TxnOp::put(self.layout.marker(), "", None),
        ]);
        let response = call("deleting a kind", kv.txn(txn)).await?;
        if let Some(header) = response.header() {
            self.saw(header.revision() as Revision);
        }
        self.kinds.write().remove(&state.prefix);
        state.index.lock().removed = true;
        Ok(())
    }

    pub(super) async fn get_key(
        &self,
        state: &KindState,
        key: &str,
    ) -> Result<Option<MirrorObject>, StoreError> {
        let mut kv = self.conn.clients().await?.kv;
        let response = call("reading an object", kv.get(key, None)).await?;
        let Some(found) = response.kvs().first() else {
            return Ok(None);
        };
        Ok(decode(state, key, found.value()))
    }

    /// The objects of a kind, or of one namespace of it.
    pub(super) async fn range(
        &self,
        state: &KindState,
        namespace: Option<&str>,
    ) -> Result<Vec<MirrorObject>, StoreError> {
        let spec = state.shape().spec.clone();
        let prefix = self.layout.scope_prefix(&spec, namespace);
        let objects = self.range_raw(state, &prefix).await?;
        Ok(objects.into_iter().filter_map(|(_, o)| o).collect())
    }

    /// Every key under `prefix` in key order with its decoded object (`None` when undecodable),
    /// read in pages at the first page's revision.
    async fn range_raw(
        &self,
        state: &KindState,
        prefix: &str,
    ) -> Result<Vec<(String, Option<MirrorObject>)>, StoreError> {
        let mut kv = self.conn.clients().await?.kv;
        let end = prefix_end(prefix);
        let mut from = prefix.as_bytes().to_vec();
        let mut at = 0;
        let mut out = Vec::new();
        loop {
            let mut options = GetOptions::new()
                .with_range(end.clone())
                .with_limit(RANGE_PAGE);
            if at > 0 {
                options = options.with_revision(at);
            }
            let mut response = call("reading a range", kv.get(from.clone(), Some(options))).await?;
            if at == 0 {
                at = response.header().map_or(0, |h| h.revision());
                self.saw(at as Revision);
            }
            let more = response.more();
            let kvs = response.take_kvs();
            let Some(last) = kvs.last() else {
                break;
            };
            // The next page starts right after the last key.
            from = last.key().to_vec();
            from.push(0);
            for pair in kvs {
                let Ok(key) = pair.key_str() else {
                    continue;
                };
                let object = decode(state, key, pair.value());
                out.push((key.to_owned(), object));
            }
            if !more {
                break;
            }
        }
        Ok(out)
    }

    pub(super) async fn count_keys(&self, state: &KindState) -> Result<usize, StoreError> {
        let mut kv = self.conn.clients().await?.kv;
        let options = GetOptions::new()
            .with_range(prefix_end(&state.prefix))
            .with_count_only();
        let response = call(
            "counting a kind",
            kv.get(state.prefix.as_str(), Some(options)),
        )
        .await?;
        Ok(usize::try_from(response.count()).unwrap_or(usize::MAX))
    }
}

/// One stored value; an undecodable one is logged and skipped, so it cannot hide its neighbours.
fn decode(state: &KindState, key: &str, value: &[u8]) -> Option<MirrorObject> {
    match state.shape().codec.decode(value) {
        Ok(object) => Some(object),
        Err(error) => {
            warn!(key, %error, "skipping an undecodable value");
            None
        }
    }
}
