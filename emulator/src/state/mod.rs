//! The emulator's storage: every object, one global resourceVersion counter, and the change history
//! that watches resume from. All writes go through [`Inner::commit`], which bumps the counter,
//! records the change and wakes watchers.

mod crd;
mod defaults;
mod delete;
mod read;
mod update;
mod write;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use parking_lot::RwLock;
use serde_json::Value;

use crate::patch::apply::Managed;
use crate::resources::{Registry, ResourceType, StorageKey};
use crate::status::ApiError;

pub use delete::{DeleteOptions, DeleteOutcome};
pub use read::{Filter, ListQuery};
pub use write::{PatchKind, WriteOptions, view};

/// One stored object version with its serialised form, shared by lists, gets and watch events.
#[derive(Debug)]
pub struct Stored {
    pub value: Value,
    pub json: Bytes,
    pub rv: u64,
    /// Its decoded managedFields: set by the write that recorded them, else decoded when a
    /// write first needs them.
    managed: OnceLock<Arc<Managed>>,
}

impl Stored {
    fn new(value: Value, rv: u64) -> Arc<Self> {
        let json = Bytes::from(serde_json::to_vec(&value).unwrap_or_default());
        Arc::new(Self {
            value,
            json,
            rv,
            managed: OnceLock::new(),
        })
    }

    /// The decoded managedFields of this version.
    fn managed(&self) -> &Managed {
        self.managed
            .get_or_init(|| Arc::new(Managed::decode(&self.value)))
    }

    /// Keeps the entries the write of this version recorded (they are what `value` holds).
    fn recorded(&self, managed: Option<Managed>) {
        if let Some(managed) = managed {
            let _ = self.managed.set(Arc::new(managed));
        }
    }

    pub fn labels(&self) -> Option<&serde_json::Map<String, Value>> {
        self.value
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeType {
    Added,
    Modified,
    Deleted,
}

/// One entry of the change history.
#[derive(Debug)]
pub struct Change {
    pub rv: u64,
    pub storage: StorageKey,
    pub namespace: String,
    pub name: String,
    pub kind: ChangeType,
    /// The new state (for deletions: the last state, stamped with the deletion's resourceVersion).
    pub obj: Arc<Stored>,
    /// The state before this change, used by selector transitions and exact-version lists.
    pub prev: Option<Arc<Stored>>,
}

type ObjectKey = (String, String);
type Objects = BTreeMap<ObjectKey, Arc<Stored>>;

pub struct Inner {
    rv: u64,
    registry: Registry,
    objects: HashMap<StorageKey, Objects>,
    history: VecDeque<Arc<Change>>,
    /// Highest resourceVersion whose change was dropped from history.
    compacted: u64,
    history_cap: usize,
    /// owner uid → dependents, for garbage collection on delete.
    owners: HashMap<String, BTreeSet<(StorageKey, String, String)>>,
}

pub struct State {
    inner: RwLock<Inner>,
    snapshots: parking_lot::Mutex<read::Snapshots>,
    notify: tokio::sync::watch::Sender<u64>,
}

impl State {
    pub fn new(history_cap: usize) -> Self {
        let mut inner = Inner {
            rv: 0,
            registry: Registry::builtin(),
            objects: HashMap::new(),
            history: VecDeque::new(),
            compacted: 0,
            history_cap: history_cap.max(1),
            owners: HashMap::new(),
        };
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let rt = inner
                .registry
                .get("", "v1", "namespaces")
                .expect("namespaces are built in");
            let obj = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            let _ = inner.create(&rt, None, obj, &WriteOptions::system());
        }
        let (notify, _) = tokio::sync::watch::channel(inner.rv);
        Self {
            inner: RwLock::new(inner),
            snapshots: Default::default(),
            notify,
        }
    }

    pub fn current_rv(&self) -> u64 {
        self.inner.read().rv
    }

    pub fn object_count(&self) -> usize {
        self.inner.read().objects.values().map(BTreeMap::len).sum()
    }

    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.notify.subscribe()
    }

    pub fn compact(&self, keep: usize) {
        let mut inner = self.inner.write();
        while inner.history.len() > keep {
            if let Some(c) = inner.history.pop_front() {
                inner.compacted = c.rv;
            }
        }
        // A continue token from before the compaction can no longer be honoured.
        self.snapshots.lock().forget_before(inner.compacted);
    }

    pub fn resolve(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.inner.read().registry.get(group, version, plural)
    }

    pub fn with_registry<T>(&self, f: impl FnOnce(&Registry) -> T) -> T {
        f(&self.inner.read().registry)
    }

    /// Runs a write against the state and wakes watchers if it changed anything.
    pub fn write<T>(
        &self,
        f: impl FnOnce(&mut Inner) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let (out, rv) = {
            let mut inner = self.inner.write();
            let before = inner.rv;
            let out = f(&mut inner);
            (out, (inner.rv != before).then_some(inner.rv))
        };
        if let Some(rv) = rv {
            self.notify.send_replace(rv);
        }
        out
    }

    pub fn read<T>(&self, f: impl FnOnce(&Inner) -> T) -> T {
        f(&self.inner.read())
    }

    /// Inserts a seed object as a controller would have left it: status is kept.
    pub fn seed(&self, object: Value) -> Result<Value, ApiError> {
        let api_version = object
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let kind = object
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), api_version.clone()),
        };
        let rt = self
            .with_registry(|r| r.by_kind(&group, &kind))
            .filter(|rt| rt.version == version)
            .ok_or_else(|| {
                ApiError::bad_request(format!("no resource serves {api_version} {kind}"))
            })?;
        let ns = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(str::to_string);
        let mut opts = WriteOptions::system();
        opts.seeding = true;
        self.write(|inner| inner.create(&rt, ns.as_deref(), object, &opts))
    }
}

impl Inner {
    pub fn rv(&self) -> u64 {
        self.rv
    }

    fn objects(&self, key: &StorageKey) -> Option<&Objects> {
        self.objects.get(key)
    }

    fn get_stored(&self, key: &StorageKey, ns: &str, name: &str) -> Option<Arc<Stored>> {
        self.objects
            .get(key)?
            .get(&(ns.to_string(), name.to_string()))
            .cloned()
    }

    /// Records one change: bumps the resourceVersion, stores or removes the object, appends history.
    fn commit(
        &mut self,
        storage: &StorageKey,
        ns: &str,
        name: &str,
        new: Option<Value>,
    ) -> Arc<Stored> {
        self.rv += 1;
        let rv = self.rv;
        let key = (ns.to_string(), name.to_string());
        let objects = self.objects.entry(storage.clone()).or_default();
        let prev = objects.get(&key).cloned();
        let (kind, stored) = match new {
            Some(mut value) => {
                value["metadata"]["resourceVersion"] = Value::String(rv.to_string());
                let stored = Stored::new(value, rv);
                objects.insert(key, stored.clone());
                (
                    if prev.is_some() {
                        ChangeType::Modified
                    } else {
                        ChangeType::Added
                    },
                    stored,
                )
            }
            None => {
                objects.remove(&key);
                let mut last = prev
                    .as_ref()
                    .map(|p| p.value.clone())
                    .unwrap_or(Value::Null);
                if last.is_object() {
                    last["metadata"]["resourceVersion"] = Value::String(rv.to_string());
                }
                (ChangeType::Deleted, Stored::new(last, rv))
            }
        };
        self.index_owners(
            storage,
            ns,
            name,
            prev.as_deref().map(|p| &p.value),
            (kind != ChangeType::Deleted).then_some(&stored.value),
        );
        self.history.push_back(Arc::new(Change {
            rv,
            storage: storage.clone(),
            namespace: ns.to_string(),
            name: name.to_string(),
            kind,
            obj: stored.clone(),
            prev,
        }));
        while self.history.len() > self.history_cap {
            if let Some(c) = self.history.pop_front() {
                self.compacted = c.rv;
            }
        }
        stored
    }

    fn index_owners(
        &mut self,
        storage: &StorageKey,
        ns: &str,
        name: &str,
        old: Option<&Value>,
        new: Option<&Value>,
    ) {
        let uids = |v: Option<&Value>| -> BTreeSet<String> {
            v.and_then(|v| write::meta_field(v, "ownerReferences"))
                .and_then(Value::as_array)
                .map(|refs| {
                    refs.iter()
                        .filter_map(|r| r.get("uid").and_then(Value::as_str).map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let (old, new) = (uids(old), uids(new));
        if old == new {
            return;
        }
        let entry = (storage.clone(), ns.to_string(), name.to_string());
        for uid in old.difference(&new) {
            if let Some(set) = self.owners.get_mut(uid) {
                set.remove(&entry);
                if set.is_empty() {
                    self.owners.remove(uid);
                }
            }
        }
        for uid in new.difference(&old) {
            self.owners
                .entry(uid.clone())
                .or_default()
                .insert(entry.clone());
        }
    }
}
