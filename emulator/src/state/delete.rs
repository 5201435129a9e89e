//! Deletes: preconditions, dry runs, finalizers (deletionTimestamp first, removal once the last
//! finalizer goes), and cascades to dependents, a namespace's contents and a CRD's objects.

use std::sync::Arc;

use serde_json::{Value, json};

use super::write::{finalizers, meta_str, now, view};
use super::{Inner, Stored};
use crate::resources::{ResourceType, StorageKey};
use crate::status::ApiError;

#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub dry_run: bool,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    /// `Orphan`, `Background` or `Foreground`.
    pub propagation: Option<String>,
}

pub enum DeleteOutcome {
    /// The object is gone; its last state.
    Deleted(Value),
    /// Finalizers hold it; deletionTimestamp is set.
    Pending(Value),
}

impl Inner {
    pub fn delete(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<DeleteOutcome, ApiError> {
        let old = self.existing(rt, ns, name)?;
        let uid = meta_str(&old.value, "uid").unwrap_or_default();
        if let Some(want) = opts.precondition_uid.as_deref().filter(|u| *u != uid) {
            return Err(ApiError::conflict(
                &rt.group,
                &rt.plural,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {want}, UID in object meta: {uid}"
                ),
            ));
        }
        if let Some(want) = opts
            .precondition_rv
            .as_deref()
            .filter(|r| *r != old.rv.to_string())
        {
            return Err(ApiError::conflict(
                &rt.group,
                &rt.plural,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {}",
                    old.rv
                ),
            ));
        }
        if opts.dry_run {
            return Ok(if finalizers(&old.value).is_empty() {
                DeleteOutcome::Deleted(view(rt, &old.value))
            } else {
                DeleteOutcome::Pending(view(rt, &old.value))
            });
        }
        if opts.propagation.as_deref() == Some("Orphan") {
            self.orphan_dependents(uid);
        }
        match self.delete_one(&rt.storage, ns, name) {
            Some((value, true)) => Ok(DeleteOutcome::Deleted(view(rt, &value))),
            Some((value, false)) => Ok(DeleteOutcome::Pending(view(rt, &value))),
            None => Err(ApiError::not_found(&rt.group, &rt.plural, name)),
        }
    }

    pub fn delete_collection(
        &mut self,
        rt: &ResourceType,
        filter: &super::Filter,
        opts: &DeleteOptions,
    ) -> Result<Vec<Value>, ApiError> {
        let targets: Vec<(String, String)> = self
            .objects
            .get(&rt.storage)
            .map(|objs| {
                objs.iter()
                    .filter(|(_, s)| filter.matches(s))
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default();
        let mut out = Vec::new();
        for (ns, name) in targets {
            match self.delete(rt, &ns, &name, opts)? {
                DeleteOutcome::Deleted(v) | DeleteOutcome::Pending(v) => out.push(v),
            }
        }
        Ok(out)
    }

    /// Deletes or marks one object; returns its last state and whether it is gone.
    fn delete_one(&mut self, storage: &StorageKey, ns: &str, name: &str) -> Option<(Value, bool)> {
        let old = self.get_stored(storage, ns, name)?;
        if finalizers(&old.value).is_empty() {
            let last = self.remove(storage, ns, name, &old);
            return Some((last, true));
        }
        if old.value.pointer("/metadata/deletionTimestamp").is_some() {
            return Some((old.value.clone(), false));
        }
        let mut new = old.value.clone();
        new["metadata"]["deletionTimestamp"] = Value::String(now());
        new["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        let generation = new
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        new["metadata"]["generation"] = json!(generation + 1);
        let stored = self.commit(storage, ns, name, Some(new));
        Some((stored.value.clone(), false))
    }

    /// Removes an object for good and cascades: dependents by owner uid, a namespace's contents,
    /// a CRD's custom resources.
    pub(super) fn remove(
        &mut self,
        storage: &StorageKey,
        ns: &str,
        name: &str,
        old: &Arc<Stored>,
    ) -> Value {
        let deleted = self.commit(storage, ns, name, None);
        let uid = meta_str(&old.value, "uid").unwrap_or_default().to_string();
        let mut work: Vec<(StorageKey, String, String)> = self
            .owners
            .get(&uid)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        if storage.group.is_empty() && storage.plural == "namespaces" {
            for (key, objs) in &self.objects {
                work.extend(
                    objs.keys()
                        .filter(|(n, _)| n == name)
                        .map(|(n, o)| (key.clone(), n.clone(), o.clone())),
                );
            }
        }
        if storage.group == "apiextensions.k8s.io"
            && storage.plural == "customresourcedefinitions"
            && let Some((plural, group)) = name.split_once('.')
        {
            let key = StorageKey {
                group: group.into(),
                plural: plural.into(),
            };
            if let Some(objs) = self.objects.get(&key) {
                work.extend(
                    objs.keys()
                        .map(|(n, o)| (key.clone(), n.clone(), o.clone())),
                );
            }
            self.registry.remove(group, plural);
        }
        for (key, dns, dname) in work {
            let _ = self.delete_one(&key, &dns, &dname);
        }
        deleted.value.clone()
    }

    fn orphan_dependents(&mut self, owner_uid: &str) {
        let dependents: Vec<_> = self
            .owners
            .get(owner_uid)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        for (key, ns, name) in dependents {
            let Some(obj) = self.get_stored(&key, &ns, &name) else {
                continue;
            };
            let mut new = obj.value.clone();
            if let Some(refs) = new
                .pointer_mut("/metadata/ownerReferences")
                .and_then(Value::as_array_mut)
            {
                refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(owner_uid));
                if refs.is_empty()
                    && let Some(m) = new["metadata"].as_object_mut()
                {
                    m.remove("ownerReferences");
                }
            }
            self.commit(&key, &ns, &name, Some(new));
        }
    }
}
