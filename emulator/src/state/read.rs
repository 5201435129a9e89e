//! Reads: get, paged lists with consistent `continue` snapshots, exact-version lists rebuilt from
//! history, and the change feed that watches consume.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use super::{ChangeType, Inner, Objects, State, Stored};
use crate::resources::{ResourceType, StorageKey};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::ApiError;

/// A shared, already-filtered list result.
type Items = Arc<Vec<Arc<Stored>>>;
/// Changes for a watch and the resourceVersion they bring it to.
pub type Changes = (Vec<(ChangeType, Arc<Stored>)>, u64);

const SNAPSHOT_CAP: usize = 256;
const SNAPSHOT_TTL_SECS: u64 = 300;

/// Which objects a list or watch sees.
#[derive(Debug, Clone)]
pub struct Filter {
    pub namespace: Option<String>,
    pub label: LabelSelector,
    pub field: FieldSelector,
    /// Storage group/plural, so per-kind field rules (events' `source`, zero values) apply.
    pub storage: StorageKey,
}

impl Filter {
    pub fn matches(&self, s: &Stored) -> bool {
        if let Some(ns) = &self.namespace {
            let obj_ns = s
                .value
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if obj_ns != ns {
                return false;
            }
        }
        (self.label.is_empty() || self.label.matches(s.labels()))
            && (self.field.is_empty()
                || self
                    .field
                    .matches_for(&self.storage.group, &self.storage.plural, &s.value))
    }

    fn selects_all(&self) -> bool {
        self.label.is_empty() && self.field.is_empty()
    }
}

#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
}

/// One page of a list.
pub struct ListPage {
    pub items: Vec<Arc<Stored>>,
    pub rv: u64,
    pub continue_token: Option<String>,
    pub remaining: Option<usize>,
}

/// Where a watch starts: synthetic ADDED objects, then changes after `cursor`.
pub struct WatchStart {
    pub initial: Vec<Arc<Stored>>,
    pub cursor: u64,
}

/// Consistent list results kept for `continue` tokens.
#[derive(Default)]
pub struct Snapshots {
    entries: HashMap<u64, (u64, Items, Instant)>,
    order: VecDeque<u64>,
    next: u64,
}

impl Snapshots {
    fn store(&mut self, rv: u64, items: Arc<Vec<Arc<Stored>>>) -> u64 {
        let now = Instant::now();
        self.entries
            .retain(|_, (_, _, t)| now.duration_since(*t).as_secs() < SNAPSHOT_TTL_SECS);
        let entries = &self.entries;
        self.order.retain(|id| entries.contains_key(id));
        while self.order.len() >= SNAPSHOT_CAP {
            if let Some(id) = self.order.pop_front() {
                self.entries.remove(&id);
            }
        }
        self.next += 1;
        self.entries.insert(self.next, (rv, items, now));
        self.order.push_back(self.next);
        self.next
    }

    pub fn forget_before(&mut self, rv: u64) {
        self.entries.retain(|_, (r, _, _)| *r >= rv);
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    rv: u64,
    id: u64,
    offset: usize,
}

fn encode_token(t: &ContinueToken) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(t).unwrap_or_default())
}

fn decode_token(s: &str) -> Result<ContinueToken, ApiError> {
    URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| ApiError::bad_request("continue key is not valid: invalid continue token"))
}

fn expired_continue() -> ApiError {
    ApiError::expired(
        "The provided continue parameter is too old to display a consistent list result. You can start a new list \
         without the continue parameter.",
    )
}

pub fn too_old(rv: u64, oldest: u64) -> ApiError {
    ApiError::expired(format!("too old resource version: {rv} ({oldest})"))
}

fn parse_rv(s: &str) -> Result<u64, ApiError> {
    s.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "resourceVersion: Invalid value: \"{s}\": must be an integer"
        ))
    })
}

impl Inner {
    fn filtered(objects: Option<&Objects>, filter: &Filter) -> Vec<Arc<Stored>> {
        let Some(objects) = objects else {
            return Vec::new();
        };
        match &filter.namespace {
            Some(ns) => objects
                .range((ns.clone(), String::new())..)
                .take_while(|((n, _), _)| n == ns)
                .map(|(_, s)| s)
                .filter(|s| filter.matches(s))
                .cloned()
                .collect(),
            None => objects
                .values()
                .filter(|s| filter.matches(s))
                .cloned()
                .collect(),
        }
    }

    /// The objects of one storage key as they were at `rv`, rebuilt by undoing later changes.
    fn objects_at(&self, storage: &StorageKey, rv: u64) -> Result<Objects, ApiError> {
        if rv < self.compacted {
            return Err(too_old(rv, self.compacted + 1));
        }
        let mut objects = self.objects.get(storage).cloned().unwrap_or_default();
        for change in self.history.iter().rev().take_while(|c| c.rv > rv) {
            if &change.storage != storage {
                continue;
            }
            let key = (change.namespace.clone(), change.name.clone());
            match &change.prev {
                Some(prev) => objects.insert(key, prev.clone()),
                None => objects.remove(&key),
            };
        }
        Ok(objects)
    }

    /// Changes after `cursor` for one storage key, translated for a filtered watch.
    pub fn changes_after(
        &self,
        storage: &StorageKey,
        cursor: u64,
        filter: &Filter,
    ) -> Result<Changes, ApiError> {
        if cursor < self.compacted {
            return Err(too_old(cursor, self.compacted + 1));
        }
        let start = self.history.partition_point(|c| c.rv <= cursor);
        let mut out = Vec::new();
        for change in self.history.iter().skip(start) {
            if &change.storage != storage {
                continue;
            }
            let now = change.kind != ChangeType::Deleted && filter.matches(&change.obj);
            let before = match change.kind {
                ChangeType::Added => false,
                ChangeType::Modified => change.prev.as_ref().is_some_and(|p| filter.matches(p)),
                ChangeType::Deleted => filter.matches(&change.obj),
            };
            let kind = match (before, now) {
                (true, true) => ChangeType::Modified,
                (false, true) => ChangeType::Added,
                (true, false) => ChangeType::Deleted,
                (false, false) => continue,
            };
            out.push((kind, change.obj.clone()));
        }
        Ok((out, self.rv))
    }
}

impl State {
    pub fn get(&self, rt: &ResourceType, ns: &str, name: &str) -> Result<Arc<Stored>, ApiError> {
        self.read(|inner| inner.get_stored(&rt.storage, ns, name))
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))
    }

    pub fn list(
        &self,
        rt: &ResourceType,
        filter: &Filter,
        q: &ListQuery,
    ) -> Result<ListPage, ApiError> {
        let (rv, items, offset) = if let Some(token) =
            q.continue_token.as_deref().filter(|t| !t.is_empty())
        {
            let t = decode_token(token)?;
            let compacted = self.read(|inner| inner.compacted);
            let snapshot = self
                .snapshots
                .lock()
                .entries
                .get(&t.id)
                .map(|(rv, items, _)| (*rv, items.clone()));
            match snapshot {
                Some((rv, items)) if rv == t.rv && rv >= compacted => (rv, items, t.offset),
                _ => return Err(expired_continue()),
            }
        } else {
            let exact = q.resource_version_match.as_deref() == Some("Exact");
            if let Some(m) = q
                .resource_version_match
                .as_deref()
                .filter(|m| !m.is_empty())
            {
                if m != "Exact" && m != "NotOlderThan" {
                    return Err(ApiError::bad_request(format!(
                        "resourceVersionMatch: Unsupported value: \"{m}\": supported values: \"Exact\", \"NotOlderThan\""
                    )));
                }
                if q.resource_version.as_deref().unwrap_or_default().is_empty() {
                    return Err(ApiError::bad_request(
                        "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
                    ));
                }
            }
            let wanted = q
                .resource_version
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(parse_rv)
                .transpose()?;
            self.read(|inner| -> Result<_, ApiError> {
                let items = match wanted {
                    Some(rv) if exact && rv != inner.rv => {
                        let objects = inner.objects_at(&rt.storage, rv)?;
                        (rv, Inner::filtered(Some(&objects), filter))
                    }
                    _ => (
                        inner.rv,
                        Inner::filtered(inner.objects(&rt.storage), filter),
                    ),
                };
                Ok(items)
            })
            .map(|(rv, items)| (rv, Arc::new(items), 0))?
        };
        let limit = q.limit.filter(|l| *l > 0);
        let end = limit.map_or(items.len(), |l| (offset + l).min(items.len()));
        let page: Vec<Arc<Stored>> = items
            .get(offset..end)
            .map(<[_]>::to_vec)
            .unwrap_or_default();
        let continue_token = (end < items.len()).then(|| {
            let id = match q
                .continue_token
                .as_deref()
                .filter(|t| !t.is_empty())
                .and_then(|t| decode_token(t).ok())
            {
                Some(t) => t.id,
                None => self.snapshots.lock().store(rv, items.clone()),
            };
            encode_token(&ContinueToken {
                rv,
                id,
                offset: end,
            })
        });
        let remaining = continue_token
            .as_ref()
            .filter(|_| filter.selects_all())
            .map(|_| items.len() - end);
        Ok(ListPage {
            items: page,
            rv,
            continue_token,
            remaining,
        })
    }

    pub fn watch_start(
        &self,
        rt: &ResourceType,
        filter: &Filter,
        resource_version: Option<&str>,
        send_initial_events: bool,
    ) -> Result<WatchStart, ApiError> {
        let rv = resource_version
            .filter(|s| !s.is_empty() && *s != "0")
            .map(parse_rv)
            .transpose()?;
        self.read(|inner| match (rv, send_initial_events) {
            (Some(rv), false) => {
                if rv < inner.compacted {
                    Err(too_old(rv, inner.compacted + 1))
                } else {
                    Ok(WatchStart {
                        initial: Vec::new(),
                        cursor: rv,
                    })
                }
            }
            _ => Ok(WatchStart {
                initial: Inner::filtered(inner.objects(&rt.storage), filter),
                cursor: inner.rv,
            }),
        })
    }
}
