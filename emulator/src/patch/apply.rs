//! Server-side apply and `metadata.managedFields` bookkeeping, modelled on structured-merge-diff.
//!
//! Field sets use the real FieldsV1 encoding. List semantics (atomic, set, map keyed by fields) come
//! from [`super::schema`]; lists it does not know (custom resources, unknown paths) are atomic.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::{Conflict, PatchError, schema};

/// One server-side apply request.
#[derive(Debug, Clone, Copy)]
pub struct ApplyRequest<'a> {
    /// apiVersion of the object; the applied config must use the same one.
    pub api_version: &'a str,
    /// Kind of the object.
    pub kind: &'a str,
    /// The `fieldManager` query parameter.
    pub manager: &'a str,
    /// The `force` query parameter: take conflicting fields instead of failing.
    pub force: bool,
    /// `Some("status")` when applied to the status subresource.
    pub subresource: Option<&'a str>,
    /// RFC 3339 timestamp recorded in `managedFields[].time`.
    pub now: &'a str,
}

/// Server-side apply of `applied` (the user's partial config) onto `live` (`None` = create).
///
/// Returns the new full object with `metadata.managedFields` updated. System metadata
/// (uid, resourceVersion, generation, creationTimestamp, ...) is kept from `live`; the caller
/// sets new values.
pub fn apply(
    req: &ApplyRequest,
    live: Option<&Value>,
    applied: &Value,
) -> Result<Value, PatchError> {
    let Value::Object(applied_map) = applied else {
        return Err(PatchError::BadRequest(
            "apply patch must be a JSON object".into(),
        ));
    };
    if let Some(version) = applied_map.get("apiVersion").and_then(Value::as_str)
        && version != req.api_version
    {
        return Err(PatchError::BadRequest(format!(
            "Incorrect version specified in apply patch. Specified patch version: {version}, expected: {}",
            req.api_version
        )));
    }
    if applied
        .pointer("/metadata/managedFields")
        .is_some_and(|v| !v.is_null())
    {
        return Err(PatchError::BadRequest(
            "metadata.managedFields must be nil".into(),
        ));
    }

    let ctx = Ctx {
        api_version: req.api_version,
        kind: req.kind,
    };
    let config = if req.subresource == Some("status") {
        status_only(applied_map)
    } else {
        applied.clone()
    };
    let mut config_set = Set::default();
    collect(
        &ctx,
        &mut Cursor::default(),
        &config,
        Mode::Config,
        &mut config_set,
    )
    .map_err(|err| PatchError::Invalid(format!("failed to create typed patch object: {err}")))?;
    let mut nulls = Set::default();
    null_paths(&ctx, &mut Cursor::default(), &config, &mut nulls);

    let subresource = req.subresource.unwrap_or_default();
    let (base, mut entries) = match live {
        Some(obj) => {
            let mut base = obj.clone();
            let encoded = take_managed_fields(&mut base);
            let entries = encoded
                .and_then(|list| decode_entries(&list).ok())
                .unwrap_or_default();
            (base, entries)
        }
        None => (Value::Object(Map::new()), Vec::new()),
    };
    if live.is_some() && entries.is_empty() {
        // Objects written without field tracking: what they hold belongs to a synthetic updater,
        // so a first apply cannot silently overwrite it.
        let cmp = compare_objects(&ctx, &skeleton(&base), &base);
        let set = strip_ignored(&cmp.added.union(&cmp.modified));
        if !set.is_empty() {
            entries.push(Entry {
                manager: "before-first-apply".into(),
                operation: Operation::Update,
                api_version: req.api_version.into(),
                subresource: subresource.into(),
                time: Some(req.now.into()),
                set,
            });
        }
    }

    let me = Entry {
        manager: req.manager.into(),
        operation: Operation::Apply,
        api_version: req.api_version.into(),
        subresource: subresource.into(),
        time: Some(req.now.into()),
        set: Set::default(),
    };
    let previous = entries.iter().position(|e| e.same_owner(&me));
    let last_set = previous.map(|i| entries[i].set.clone()).unwrap_or_default();
    let mut managed = config_set.clone();
    for (i, entry) in entries.iter().enumerate() {
        if Some(i) != previous {
            managed = managed.union(&entry.set);
        }
    }

    let merged = merge(&ctx, &mut Cursor::default(), Some(&base), Some(&config))
        .unwrap_or_else(empty_object);
    let mut result = prune(&ctx, &merged, &managed, &last_set);
    if live.is_some() {
        restore_system_fields(&mut result, &base);
    }

    let cmp = compare_objects(&ctx, &base, &result);
    // A field removed by an explicit null is a change like any other; pruned fields are unowned.
    let changed = cmp
        .modified
        .union(&cmp.added)
        .union(&cmp.removed.under(&nulls));
    let mut conflicts = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        if Some(i) == previous {
            continue;
        }
        entry
            .set
            .intersection(&changed)
            .for_each_path(&mut Vec::new(), &mut |path| {
                conflicts.push(Conflict {
                    field: path_string(path),
                    manager: entry.manager.clone(),
                });
            });
    }
    if !conflicts.is_empty() && !req.force {
        return Err(PatchError::Conflict(conflicts));
    }
    for (i, entry) in entries.iter_mut().enumerate() {
        if Some(i) != previous {
            entry.set = entry.set.difference(&changed).difference(&cmp.removed);
        }
    }

    // Owning a field that an explicit null just removed makes no sense.
    let my_set = strip_ignored(&config_set.intersection(&object_set(&ctx, &result)));
    let object_changed = live.is_none() || !json_eq(&base, &result);
    match previous {
        Some(i) => {
            let entry = &mut entries[i];
            entry.set = my_set;
            entry.api_version = req.api_version.into();
            if object_changed || entry.time.is_none() {
                entry.time = Some(req.now.into());
            }
        }
        None => entries.push(Entry { set: my_set, ..me }),
    }
    entries.retain(|e| !e.set.is_empty());
    set_managed_fields(&mut result, entries);
    Ok(result)
}

/// Records a non-apply write (create, PUT, merge/JSON/strategic patch) by `manager` as an `Update`.
///
/// Fields whose value changed or appeared between `old` and `new` become owned by `manager` and are
/// taken from other managers; fields that disappeared leave every manager's set. `managedFields`
/// sent in `new` are honoured (an empty list, or one empty entry, resets them) except on
/// subresources. Returns `new` with `metadata.managedFields` updated.
pub fn record_update(
    api_version: &str,
    kind: &str,
    manager: &str,
    subresource: Option<&str>,
    now: &str,
    old: Option<&Value>,
    new: &Value,
) -> Value {
    let ctx = Ctx { api_version, kind };
    let mut result = new.clone();
    let sent = take_managed_fields(&mut result);
    let mut base = old.cloned();
    let live_entries = base
        .as_mut()
        .and_then(take_managed_fields)
        .and_then(|list| decode_entries(&list).ok())
        .unwrap_or_default();
    let mut entries = match sent {
        Some(list) if subresource.is_none() => {
            if is_reset(&list) {
                Vec::new()
            } else {
                match decode_entries(&list) {
                    Ok(decoded) if !decoded.is_empty() => decoded,
                    _ => live_entries,
                }
            }
        }
        _ => live_entries,
    };
    let base = base.unwrap_or_else(|| skeleton(&result));

    let cmp = compare_objects(&ctx, &base, &result);
    let changed = cmp.modified.union(&cmp.added);
    for entry in &mut entries {
        entry.set = entry.set.difference(&changed).difference(&cmp.removed);
    }
    let taken = strip_ignored(&changed);
    if !taken.is_empty() {
        let me = Entry {
            manager: manager.into(),
            operation: Operation::Update,
            api_version: api_version.into(),
            subresource: subresource.unwrap_or_default().into(),
            time: Some(now.into()),
            set: Set::default(),
        };
        match entries.iter_mut().find(|e| e.same_owner(&me)) {
            Some(entry) => {
                entry.set = entry.set.union(&taken);
                entry.time = me.time;
            }
            None => entries.push(Entry { set: taken, ..me }),
        }
    }
    entries.retain(|e| !e.set.is_empty());
    set_managed_fields(&mut result, entries);
    result
}

/// Removes `metadata.managedFields` from an object.
pub fn strip_managed_fields(obj: &mut Value) {
    take_managed_fields(obj);
}

// ---------------------------------------------------------------------------------------------
// Path elements and field sets (fieldpath.PathElement / fieldpath.Set).

/// One step of a field path; ordered like structured-merge-diff so FieldsV1 output matches.
#[derive(Debug, Clone)]
enum Pe {
    Field(String),
    /// Key fields of an associative-list element, sorted by name.
    Key(Vec<(String, Value)>),
    /// A `set` list element.
    Value(Value),
    Index(usize),
}

impl Pe {
    fn rank(&self) -> u8 {
        match self {
            Pe::Field(_) => 0,
            Pe::Key(_) => 1,
            Pe::Value(_) => 2,
            Pe::Index(_) => 3,
        }
    }

    /// FieldsV1 key: `f:name`, `k:{"name":"x"}`, `v:"x"`, `i:0`.
    fn encode(&self) -> String {
        match self {
            Pe::Field(name) => format!("f:{name}"),
            Pe::Key(fields) => {
                let parts: Vec<String> = fields
                    .iter()
                    .map(|(name, value)| {
                        format!(
                            "{}:{}",
                            go_json(&Value::String(name.clone())),
                            go_json(value)
                        )
                    })
                    .collect();
                format!("k:{{{}}}", parts.join(","))
            }
            Pe::Value(value) => format!("v:{}", go_json(value)),
            Pe::Index(index) => format!("i:{index}"),
        }
    }

    fn decode(key: &str) -> Result<Pe, String> {
        if let Some(name) = key.strip_prefix("f:") {
            Ok(Pe::Field(name.into()))
        } else if let Some(json) = key.strip_prefix("k:") {
            let fields: Map<String, Value> =
                serde_json::from_str(json).map_err(|err| format!("invalid key {key:?}: {err}"))?;
            let mut fields: Vec<(String, Value)> = fields.into_iter().collect();
            fields.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(Pe::Key(fields))
        } else if let Some(json) = key.strip_prefix("v:") {
            serde_json::from_str(json)
                .map(Pe::Value)
                .map_err(|err| format!("invalid value {key:?}: {err}"))
        } else if let Some(index) = key.strip_prefix("i:") {
            index
                .parse()
                .map(Pe::Index)
                .map_err(|err| format!("invalid index {key:?}: {err}"))
        } else {
            Err(format!("unknown path element {key:?}"))
        }
    }

    /// Human form used in conflict messages: `.name`, `[name="x"]`, `[="x"]`, `[0]`.
    fn display(&self) -> String {
        match self {
            Pe::Field(name) => format!(".{name}"),
            Pe::Key(fields) => {
                let parts: Vec<String> = fields
                    .iter()
                    .map(|(name, value)| format!("{name}={}", go_to_string(value)))
                    .collect();
                format!("[{}]", parts.join(","))
            }
            Pe::Value(value) => format!("[={}]", go_to_string(value)),
            Pe::Index(index) => format!("[{index}]"),
        }
    }
}

impl Ord for Pe {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Pe::Field(a), Pe::Field(b)) => a.cmp(b),
            (Pe::Key(a), Pe::Key(b)) => {
                for ((a_name, a_value), (b_name, b_value)) in a.iter().zip(b) {
                    let ord = a_name.cmp(b_name).then_with(|| value_cmp(a_value, b_value));
                    if ord.is_ne() {
                        return ord;
                    }
                }
                a.len().cmp(&b.len())
            }
            (Pe::Value(a), Pe::Value(b)) => value_cmp(a, b),
            (Pe::Index(a), Pe::Index(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for Pe {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Pe {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Pe {}

fn path_string(path: &[Pe]) -> String {
    path.iter().map(Pe::display).collect()
}

/// A set of field paths: `members` are paths ending here, `children` continue further.
#[derive(Debug, Clone, Default, PartialEq)]
struct Set {
    members: BTreeSet<Pe>,
    children: BTreeMap<Pe, Set>,
}

impl Set {
    fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.values().all(Set::is_empty)
    }

    fn insert(&mut self, path: &[Pe]) {
        match path {
            [] => {}
            [last] => {
                self.members.insert(last.clone());
            }
            [first, rest @ ..] => self.children.entry(first.clone()).or_default().insert(rest),
        }
    }

    fn union(&self, other: &Set) -> Set {
        let mut out = self.clone();
        out.members.extend(other.members.iter().cloned());
        for (pe, child) in &other.children {
            let merged = match out.children.get(pe) {
                Some(mine) => mine.union(child),
                None => child.clone(),
            };
            out.children.insert(pe.clone(), merged);
        }
        out
    }

    /// Like structured-merge-diff: members are removed one by one, not with their subtrees.
    fn difference(&self, other: &Set) -> Set {
        let mut out = Set {
            members: self.members.difference(&other.members).cloned().collect(),
            ..Set::default()
        };
        for (pe, child) in &self.children {
            let rest = match other.children.get(pe) {
                Some(theirs) => child.difference(theirs),
                None => child.clone(),
            };
            if !rest.is_empty() {
                out.children.insert(pe.clone(), rest);
            }
        }
        out
    }

    fn intersection(&self, other: &Set) -> Set {
        let mut out = Set {
            members: self.members.intersection(&other.members).cloned().collect(),
            ..Set::default()
        };
        for (pe, child) in &self.children {
            if let Some(theirs) = other.children.get(pe) {
                let both = child.intersection(theirs);
                if !both.is_empty() {
                    out.children.insert(pe.clone(), both);
                }
            }
        }
        out
    }

    /// Members of `self` lying at or below a member of `prefixes`.
    fn under(&self, prefixes: &Set) -> Set {
        let mut out = Set {
            members: self
                .members
                .iter()
                .filter(|pe| prefixes.members.contains(*pe))
                .cloned()
                .collect(),
            ..Set::default()
        };
        for (pe, child) in &self.children {
            if prefixes.members.contains(pe) {
                out.children.insert(pe.clone(), child.clone());
            } else if let Some(sub) = prefixes.children.get(pe) {
                let below = child.under(sub);
                if !below.is_empty() {
                    out.children.insert(pe.clone(), below);
                }
            }
        }
        out
    }

    /// EnsureNamedFieldsAreMembers: a field with owned children counts as owned itself, so
    /// pruning it removes the whole subtree. `metadata` is exempt: it must never disappear.
    fn ensure_fields_are_members(&self, top: bool) -> Set {
        let mut out = Set {
            members: self.members.clone(),
            ..Set::default()
        };
        for (pe, child) in &self.children {
            if matches!(pe, Pe::Field(name) if !(top && name == "metadata")) {
                out.members.insert(pe.clone());
            }
            out.children
                .insert(pe.clone(), child.ensure_fields_are_members(false));
        }
        out
    }

    /// Visits every member path, members before children at each level (like `Set.Iterate`).
    fn for_each_path(&self, prefix: &mut Vec<Pe>, visit: &mut dyn FnMut(&[Pe])) {
        for pe in &self.members {
            prefix.push(pe.clone());
            visit(prefix);
            prefix.pop();
        }
        for (pe, child) in &self.children {
            prefix.push(pe.clone());
            child.for_each_path(prefix, visit);
            prefix.pop();
        }
    }

    fn to_fields_v1(&self) -> Map<String, Value> {
        let mut out = Map::new();
        let keys: BTreeSet<&Pe> = self.members.iter().chain(self.children.keys()).collect();
        for pe in keys {
            let mut inner = Map::new();
            if let Some(child) = self.children.get(pe).filter(|c| !c.is_empty()) {
                if self.members.contains(pe) {
                    inner.insert(".".into(), Value::Object(Map::new()));
                }
                inner.extend(child.to_fields_v1());
            }
            out.insert(pe.encode(), Value::Object(inner));
        }
        out
    }

    fn from_fields_v1(fields: &Map<String, Value>) -> Result<Set, String> {
        let mut set = Set::default();
        for (key, inner) in fields {
            if key == "." {
                continue;
            }
            let pe = Pe::decode(key)?;
            let Value::Object(inner) = inner else {
                return Err(format!("{key}: expected an object"));
            };
            if inner.is_empty() || inner.contains_key(".") {
                set.members.insert(pe.clone());
            }
            let child = Set::from_fields_v1(inner)?;
            if !child.is_empty() {
                set.children.insert(pe, child);
            }
        }
        Ok(set)
    }
}

/// Paths never tracked as owned (the API server's stripped metadata).
fn strip_ignored(set: &Set) -> Set {
    let mut ignored = Set::default();
    for field in ["apiVersion", "kind", "metadata"] {
        ignored.insert(&[Pe::Field(field.into())]);
    }
    for field in [
        "name",
        "namespace",
        "creationTimestamp",
        "selfLink",
        "uid",
        "clusterName",
        "generation",
        "managedFields",
        "resourceVersion",
    ] {
        ignored.insert(&[Pe::Field("metadata".into()), Pe::Field(field.into())]);
    }
    set.difference(&ignored)
}

// ---------------------------------------------------------------------------------------------
// Schema lookups and walking values.

struct Ctx<'a> {
    api_version: &'a str,
    kind: &'a str,
}

#[derive(Debug, Clone, PartialEq)]
enum ListKind {
    Atomic,
    Set,
    Map(Vec<String>),
}

impl Ctx<'_> {
    fn list_kind(&self, spath: &[String]) -> ListKind {
        let path: Vec<&str> = spath.iter().map(String::as_str).collect();
        let info = schema::field_info(self.api_version, self.kind, &path).or_else(|| {
            // ObjectMeta is the same for every kind; custom resources borrow it from a built-in one.
            if path.first() == Some(&"metadata") {
                schema::field_info("v1", "ConfigMap", &path)
            } else {
                None
            }
        });
        info.map_or(ListKind::Atomic, list_kind_of)
    }
}

/// How kube-openapi turns annotations into list semantics: list-type wins, then patch strategy.
fn list_kind_of(info: &schema::FieldInfo) -> ListKind {
    let merges = info
        .strategy
        .as_deref()
        .is_some_and(|s| s.split(',').any(|part| part.trim() == "merge"));
    match info.list_type.as_deref() {
        Some("map") => {
            let keys = if info.map_keys.is_empty() {
                info.merge_key.iter().cloned().collect()
            } else {
                info.map_keys.clone()
            };
            if keys.is_empty() {
                ListKind::Atomic
            } else {
                ListKind::Map(keys)
            }
        }
        Some("set") => ListKind::Set,
        Some(_) => ListKind::Atomic,
        None => match (&info.merge_key, merges) {
            (Some(key), true) => ListKind::Map(vec![key.clone()]),
            (None, true) => ListKind::Set,
            _ => ListKind::Atomic,
        },
    }
}

fn element_pe(kind: &ListKind, item: &Value) -> Result<Pe, String> {
    match kind {
        ListKind::Atomic => Err("atomic list elements have no identity".into()),
        ListKind::Set => match item {
            Value::Object(_) | Value::Array(_) => {
                Err("associative list without keys has an element that's a map type".into())
            }
            scalar => Ok(Pe::Value(scalar.clone())),
        },
        ListKind::Map(keys) => {
            let Value::Object(obj) = item else {
                return Err("associative list with keys may not have non-map elements".into());
            };
            let mut fields = Vec::with_capacity(keys.len());
            for key in keys {
                match obj.get(key) {
                    Some(value) if !value.is_null() => fields.push((key.clone(), value.clone())),
                    // The one key field with a schema default (ports); the server defaults it too.
                    _ if key == "protocol" => {
                        fields.push((key.clone(), Value::String("TCP".into())))
                    }
                    _ => {
                        return Err(format!(
                            "associative list with keys has an element that omits key field {key:?} \
                             (and doesn't have default value)"
                        ));
                    }
                }
            }
            fields.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(Pe::Key(fields))
        }
    }
}

fn list_pes(kind: &ListKind, items: &[Value]) -> Result<Vec<Pe>, String> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| element_pe(kind, item).map_err(|err| format!("element {i}: {err}")))
        .collect()
}

/// Position while walking: schema path (field names only) and field path.
#[derive(Default)]
struct Cursor {
    spath: Vec<String>,
    path: Vec<Pe>,
}

impl Cursor {
    fn push_field(&mut self, name: &str) {
        self.spath.push(name.into());
        self.path.push(Pe::Field(name.into()));
    }

    fn pop_field(&mut self) {
        self.spath.pop();
        self.path.pop();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// ToFieldSet of an applied config: strict, nested maps are not members themselves.
    Config,
    /// Every node of a stored object is a member; unidentifiable lists count as atomic.
    Object,
}

fn collect(
    ctx: &Ctx,
    cur: &mut Cursor,
    value: &Value,
    mode: Mode,
    out: &mut Set,
) -> Result<(), String> {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                if mode == Mode::Object && child.is_null() {
                    continue;
                }
                cur.push_field(key);
                let res = collect(ctx, cur, child, mode, out);
                let empty_map = child.as_object().is_some_and(Map::is_empty);
                if mode == Mode::Object || child.is_null() || empty_map {
                    out.insert(&cur.path);
                }
                cur.pop_field();
                res?;
            }
            Ok(())
        }
        Value::Array(items) => {
            let kind = ctx.list_kind(&cur.spath);
            if kind == ListKind::Atomic {
                out.insert(&cur.path);
                return Ok(());
            }
            let pes = match list_pes(&kind, items) {
                Ok(pes) => pes,
                Err(err) if mode == Mode::Config => {
                    return Err(format!("{}: {err}", path_string(&cur.path)));
                }
                Err(_) => {
                    out.insert(&cur.path);
                    return Ok(());
                }
            };
            let mut counts: BTreeMap<&Pe, usize> = BTreeMap::new();
            for pe in &pes {
                *counts.entry(pe).or_default() += 1;
            }
            if mode == Mode::Config
                && let Some((pe, _)) = counts.iter().find(|(_, n)| **n > 1)
            {
                return Err(format!(
                    "{}: duplicate entries for key {}",
                    path_string(&cur.path),
                    pe.display()
                ));
            }
            for (pe, item) in pes.iter().zip(items) {
                cur.path.push(pe.clone());
                // Duplicated elements are owned as a whole (only stored objects can have them).
                let res = if counts.get(pe).is_some_and(|n| *n > 1) {
                    Ok(())
                } else {
                    collect(ctx, cur, item, mode, out)
                };
                out.insert(&cur.path);
                cur.path.pop();
                res?;
            }
            Ok(())
        }
        _ => {
            out.insert(&cur.path);
            Ok(())
        }
    }
}

/// Every path present in a stored object.
fn object_set(ctx: &Ctx, value: &Value) -> Set {
    let mut out = Set::default();
    add_subtree(ctx, &mut Cursor::default(), value, &mut out);
    out
}

fn add_subtree(ctx: &Ctx, cur: &mut Cursor, value: &Value, out: &mut Set) {
    // Object mode reports unidentifiable lists as atomic instead of failing.
    let _ = collect(ctx, cur, value, Mode::Object, out);
}

/// Paths the applied config sets to null (removal requests).
fn null_paths(ctx: &Ctx, cur: &mut Cursor, value: &Value, out: &mut Set) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                cur.push_field(key);
                if child.is_null() {
                    out.insert(&cur.path);
                } else {
                    null_paths(ctx, cur, child, out);
                }
                cur.pop_field();
            }
        }
        Value::Array(items) => {
            let kind = ctx.list_kind(&cur.spath);
            if kind == ListKind::Atomic {
                return;
            }
            let Ok(pes) = list_pes(&kind, items) else {
                return;
            };
            for (pe, item) in pes.into_iter().zip(items) {
                cur.path.push(pe);
                null_paths(ctx, cur, item, out);
                cur.path.pop();
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Compare, merge and remove (typed.Compare / Merge / RemoveItems).

#[derive(Debug, Default)]
struct Comparison {
    modified: Set,
    added: Set,
    removed: Set,
}

fn compare_objects(ctx: &Ctx, lhs: &Value, rhs: &Value) -> Comparison {
    let mut out = Comparison::default();
    compare(ctx, &mut Cursor::default(), Some(lhs), Some(rhs), &mut out);
    out
}

/// Nulls count as absent: stored objects never keep them.
fn compare(
    ctx: &Ctx,
    cur: &mut Cursor,
    lhs: Option<&Value>,
    rhs: Option<&Value>,
    out: &mut Comparison,
) {
    let lhs = lhs.filter(|v| !v.is_null());
    let rhs = rhs.filter(|v| !v.is_null());
    match (lhs, rhs) {
        (None, None) => {}
        (None, Some(r)) => {
            out.added.insert(&cur.path);
            add_subtree(ctx, cur, r, &mut out.added);
        }
        (Some(l), None) => {
            out.removed.insert(&cur.path);
            add_subtree(ctx, cur, l, &mut out.removed);
        }
        (Some(Value::Object(l)), Some(Value::Object(r))) => {
            for (key, l_value) in l {
                cur.push_field(key);
                compare(ctx, cur, Some(l_value), r.get(key), out);
                cur.pop_field();
            }
            for (key, r_value) in r {
                if !l.contains_key(key) {
                    cur.push_field(key);
                    compare(ctx, cur, None, Some(r_value), out);
                    cur.pop_field();
                }
            }
        }
        (Some(Value::Array(l)), Some(Value::Array(r))) => compare_lists(ctx, cur, l, r, out),
        (Some(l), Some(r)) if is_scalar(l) && is_scalar(r) => {
            if !json_eq(l, r) {
                out.modified.insert(&cur.path);
            }
        }
        (Some(l), Some(r)) => {
            // Type changed: the old subtree goes, the new one arrives.
            add_subtree(ctx, cur, l, &mut out.removed);
            add_subtree(ctx, cur, r, &mut out.added);
            out.modified.insert(&cur.path);
        }
    }
}

fn compare_lists(ctx: &Ctx, cur: &mut Cursor, l: &[Value], r: &[Value], out: &mut Comparison) {
    let kind = ctx.list_kind(&cur.spath);
    let granular = kind != ListKind::Atomic && !(l.is_empty() && r.is_empty());
    let pes = if granular {
        list_pes(&kind, l).ok().zip(list_pes(&kind, r).ok())
    } else {
        None
    };
    let Some((l_pes, r_pes)) = pes else {
        if !json_eq_slices(l, r) {
            out.modified.insert(&cur.path);
        }
        return;
    };

    let mut order: Vec<&Pe> = Vec::new();
    let mut l_items: BTreeMap<&Pe, Vec<&Value>> = BTreeMap::new();
    for (pe, item) in l_pes.iter().zip(l) {
        let slot = l_items.entry(pe).or_default();
        if slot.is_empty() {
            order.push(pe);
        }
        slot.push(item);
    }
    let mut r_items: BTreeMap<&Pe, Vec<&Value>> = BTreeMap::new();
    for (pe, item) in r_pes.iter().zip(r) {
        if !l_items.contains_key(pe) && !r_items.contains_key(pe) {
            order.push(pe);
        }
        r_items.entry(pe).or_default().push(item);
    }

    for pe in order {
        let ls = l_items.get(pe).map_or(&[][..], Vec::as_slice);
        let rs = r_items.get(pe).map_or(&[][..], Vec::as_slice);
        cur.path.push(pe.clone());
        match (ls.len(), rs.len()) {
            (0..=1, 0..=1) => compare(ctx, cur, ls.first().copied(), rs.first().copied(), out),
            // Duplicated keys on both sides: compared as an atomic run.
            (2.., 2..) => {
                if ls.len() != rs.len() || ls.iter().zip(rs).any(|(a, b)| !json_eq(a, b)) {
                    out.modified.insert(&cur.path);
                }
            }
            (2.., _) => {
                compare(ctx, cur, None, rs.first().copied(), out);
                out.removed.insert(&cur.path);
            }
            _ => {
                compare(ctx, cur, ls.first().copied(), None, out);
                out.added.insert(&cur.path);
            }
        }
        cur.path.pop();
    }
}

/// Merges the applied config into the live object. `None` means "field absent"; nulls in the
/// config remove fields, and a granular map or list that merges to nothing disappears.
fn merge(ctx: &Ctx, cur: &mut Cursor, lhs: Option<&Value>, rhs: Option<&Value>) -> Option<Value> {
    let Some(rhs) = rhs else { return lhs.cloned() };
    let lhs = lhs.filter(|v| !v.is_null());
    match rhs {
        Value::Null => None,
        Value::Object(r) => {
            let empty = Map::new();
            let l = match lhs {
                Some(Value::Object(map)) => map,
                _ => &empty,
            };
            if l.is_empty() && r.is_empty() {
                return Some(Value::Object(Map::new()));
            }
            let mut out = Map::new();
            for (key, l_value) in l {
                cur.push_field(key);
                if let Some(v) = merge(ctx, cur, Some(l_value), r.get(key)) {
                    out.insert(key.clone(), v);
                }
                cur.pop_field();
            }
            for (key, r_value) in r {
                if l.contains_key(key) {
                    continue;
                }
                cur.push_field(key);
                if let Some(v) = merge(ctx, cur, None, Some(r_value)) {
                    out.insert(key.clone(), v);
                }
                cur.pop_field();
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        Value::Array(r) => {
            let empty = Vec::new();
            let l = match lhs {
                Some(Value::Array(items)) => items,
                _ => &empty,
            };
            let kind = ctx.list_kind(&cur.spath);
            if kind == ListKind::Atomic || (l.is_empty() && r.is_empty()) {
                return Some(rhs.clone());
            }
            merge_lists(ctx, cur, &kind, l, r).map(Value::Array)
        }
        scalar => Some(scalar.clone()),
    }
}

/// structured-merge-diff's list merge: applied order wins for shared elements, live-only elements
/// keep their place, new elements land where the config puts them.
fn merge_lists(
    ctx: &Ctx,
    cur: &mut Cursor,
    kind: &ListKind,
    l: &[Value],
    r: &[Value],
) -> Option<Vec<Value>> {
    let Ok(r_pes) = list_pes(kind, r) else {
        return Some(r.to_vec());
    };
    let l_pes = list_pes(kind, l).unwrap_or_default();
    // A live list whose elements cannot be identified is replaced.
    let l: &[Value] = if l_pes.len() == l.len() { l } else { &[] };

    // First index of each live key, or None when the key is duplicated.
    let mut observed_l: BTreeMap<&Pe, Option<usize>> = BTreeMap::new();
    for (i, pe) in l_pes.iter().enumerate().take(l.len()) {
        observed_l
            .entry(pe)
            .and_modify(|slot| *slot = None)
            .or_insert(Some(i));
    }
    let observed_r: BTreeSet<&Pe> = r_pes.iter().collect();
    let mut shared = r_pes.iter().filter(|pe| observed_l.contains_key(pe));
    let mut next_shared = shared.next();
    let mut merged_r: BTreeSet<&Pe> = BTreeSet::new();
    let mut out = Vec::with_capacity(l.len().max(r.len()));

    let item = |cur: &mut Cursor,
                out: &mut Vec<Value>,
                pe: &Pe,
                lhs: Option<&Value>,
                rhs: Option<&Value>| {
        cur.path.push(pe.clone());
        if let Some(v) = merge(ctx, cur, lhs, rhs) {
            out.push(v);
        }
        cur.path.pop();
    };
    let live_of = |observed: &BTreeMap<&Pe, Option<usize>>, pe: &Pe| {
        observed.get(pe).copied().flatten().and_then(|i| l.get(i))
    };

    let (l_len, r_len) = (l.len(), r_pes.len());
    let (mut li, mut ri) = (0, 0);
    while li < l_len || ri < r_len {
        if li < l_len && ri < r_len {
            let pe = &l_pes[li];
            if *pe == r_pes[ri] {
                merged_r.insert(pe);
                item(cur, &mut out, pe, live_of(&observed_l, pe), Some(&r[ri]));
                li += 1;
                ri += 1;
                next_shared = shared.next();
                continue;
            }
            if observed_r.contains(pe) && next_shared.is_some_and(|s| s != pe) {
                // Shared element, but not the next one in applied order.
                li += 1;
                continue;
            }
        }
        if li < l_len {
            let pe = &l_pes[li];
            if !observed_r.contains(pe) {
                item(cur, &mut out, pe, Some(&l[li]), None);
                li += 1;
                continue;
            } else if merged_r.contains(pe) {
                li += 1;
            }
        }
        if ri < r_len {
            let pe = &r_pes[ri];
            merged_r.insert(pe);
            item(cur, &mut out, pe, live_of(&observed_l, pe), Some(&r[ri]));
            ri += 1;
            if next_shared.is_some_and(|s| s == pe) {
                next_shared = shared.next();
            }
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Removes the member paths of `set` (with their subtrees). Maps and lists emptied by the
/// removal disappear.
fn remove_items(ctx: &Ctx, cur: &mut Cursor, value: &Value, set: &Set) -> Option<Value> {
    match value {
        Value::Object(map) if !map.is_empty() => {
            let mut out = Map::new();
            for (key, child) in map {
                let pe = Pe::Field(key.clone());
                if set.members.contains(&pe) {
                    continue;
                }
                match set.children.get(&pe) {
                    Some(sub) if !sub.is_empty() => {
                        cur.push_field(key);
                        if let Some(v) = remove_items(ctx, cur, child, sub) {
                            out.insert(key.clone(), v);
                        }
                        cur.pop_field();
                    }
                    _ => {
                        out.insert(key.clone(), child.clone());
                    }
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        Value::Array(items) if !items.is_empty() => {
            let kind = ctx.list_kind(&cur.spath);
            if kind == ListKind::Atomic {
                return Some(value.clone());
            }
            let Ok(pes) = list_pes(&kind, items) else {
                return Some(value.clone());
            };
            let mut out = Vec::with_capacity(items.len());
            for (pe, item) in pes.into_iter().zip(items) {
                if set.members.contains(&pe) {
                    continue;
                }
                match set.children.get(&pe) {
                    Some(sub) if !sub.is_empty() => {
                        cur.path.push(pe);
                        if let Some(v) = remove_items(ctx, cur, item, sub) {
                            out.push(v);
                        }
                        cur.path.pop();
                    }
                    _ => out.push(item.clone()),
                }
            }
            (!out.is_empty()).then_some(Value::Array(out))
        }
        _ => Some(value.clone()),
    }
}

fn remove_from_root(ctx: &Ctx, value: &Value, set: &Set) -> Value {
    if set.is_empty() {
        return value.clone();
    }
    remove_items(ctx, &mut Cursor::default(), value, set).unwrap_or_else(empty_object)
}

/// Updater.prune: drops what the applier applied last time and no longer applies, unless some
/// manager (including the applier's new config) still owns it.
fn prune(ctx: &Ctx, merged: &Value, managed: &Set, last: &Set) -> Value {
    if last.is_empty() {
        return merged.clone();
    }
    let last = last.ensure_fields_are_members(true);
    let managed = managed.ensure_fields_are_members(true);
    let merged_set = object_set(ctx, merged);

    let pruned = remove_from_root(ctx, merged, &last);
    // Add back everything still owned by someone.
    let kept = object_set(ctx, &pruned).union(&managed);
    let pruned = remove_from_root(ctx, merged, &merged_set.difference(&kept));
    // Add back dangling items: only what the applier itself had is removed.
    let gone = merged_set
        .difference(&object_set(ctx, &pruned))
        .intersection(&last);
    remove_from_root(ctx, merged, &gone)
}

// ---------------------------------------------------------------------------------------------
// managedFields entries.

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Operation {
    Apply,
    Update,
}

#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    operation: Operation,
    api_version: String,
    subresource: String,
    time: Option<String>,
    set: Set,
}

impl Entry {
    /// The API server's manager identity: appliers are keyed without their apiVersion.
    fn same_owner(&self, other: &Entry) -> bool {
        self.manager == other.manager
            && self.operation == other.operation
            && self.subresource == other.subresource
            && (self.operation == Operation::Apply || self.api_version == other.api_version)
    }

    fn to_json(&self) -> Value {
        let mut out = Map::new();
        if !self.manager.is_empty() {
            out.insert("manager".into(), Value::String(self.manager.clone()));
        }
        let operation = match self.operation {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        };
        out.insert("operation".into(), Value::String(operation.into()));
        if !self.api_version.is_empty() {
            out.insert("apiVersion".into(), Value::String(self.api_version.clone()));
        }
        if let Some(time) = &self.time {
            out.insert("time".into(), Value::String(time.clone()));
        }
        out.insert("fieldsType".into(), Value::String("FieldsV1".into()));
        out.insert("fieldsV1".into(), Value::Object(self.set.to_fields_v1()));
        if !self.subresource.is_empty() {
            out.insert(
                "subresource".into(),
                Value::String(self.subresource.clone()),
            );
        }
        Value::Object(out)
    }

    fn sort_key(&self) -> (Operation, i64, &str, &str, &str) {
        let seconds = self
            .time
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map_or(0, |t| t.timestamp());
        (
            self.operation,
            seconds,
            &self.manager,
            &self.api_version,
            &self.subresource,
        )
    }
}

/// Decodes `metadata.managedFields`; like the API server, one bad entry invalidates the list.
fn decode_entries(list: &Value) -> Result<Vec<Entry>, String> {
    let Value::Array(items) = list else {
        return Err("managedFields must be a list".into());
    };
    let mut entries: Vec<Entry> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let text = |key: &str| {
            item.get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let operation = match text("operation").as_str() {
            "Apply" => Operation::Apply,
            "Update" => Operation::Update,
            _ => return Err("operation must be `Apply` or `Update`".into()),
        };
        let api_version = text("apiVersion");
        if api_version.is_empty() {
            return Err("apiVersion must not be empty".into());
        }
        match text("fieldsType").as_str() {
            "FieldsV1" => {}
            "" => return Err(format!("missing fieldsType in managed fields entry {i}")),
            other => {
                return Err(format!(
                    "invalid fieldsType {other:?} in managed fields entry {i}"
                ));
            }
        }
        let set = match item.get("fieldsV1") {
            None | Some(Value::Null) => Set::default(),
            Some(Value::Object(fields)) => Set::from_fields_v1(fields)?,
            Some(_) => return Err(format!("invalid fieldsV1 in managed fields entry {i}")),
        };
        let entry = Entry {
            manager: text("manager"),
            operation,
            api_version,
            subresource: text("subresource"),
            time: item.get("time").and_then(Value::as_str).map(str::to_string),
            set,
        };
        // Same identity twice: the later entry wins, as when decoding into a map.
        match entries.iter().position(|e| e.same_owner(&entry)) {
            Some(at) => entries[at] = entry,
            None => entries.push(entry),
        }
    }
    Ok(entries)
}

/// `[]` or `[{}]` in a write means "clear managedFields".
fn is_reset(list: &Value) -> bool {
    match list {
        Value::Array(items) => match items.as_slice() {
            [] => true,
            [only] => only
                .as_object()
                .is_some_and(|m| m.values().all(|v| v.is_null() || v == "")),
            _ => false,
        },
        _ => false,
    }
}

fn take_managed_fields(obj: &mut Value) -> Option<Value> {
    obj.get_mut("metadata")?
        .as_object_mut()?
        .shift_remove("managedFields")
}

/// Writes entries in the API server's order: Apply before Update, then by time and manager.
fn set_managed_fields(obj: &mut Value, mut entries: Vec<Entry>) {
    entries.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    let Some(root) = obj.as_object_mut() else {
        return;
    };
    let meta = root.entry("metadata").or_insert_with(empty_object);
    let Some(meta) = meta.as_object_mut() else {
        return;
    };
    if entries.is_empty() {
        meta.shift_remove("managedFields");
    } else {
        meta.insert(
            "managedFields".into(),
            Value::Array(entries.iter().map(Entry::to_json).collect()),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Object helpers.

fn empty_object() -> Value {
    Value::Object(Map::new())
}

/// The "empty object" a create is compared against: top-level structs exist, nothing else.
fn skeleton(obj: &Value) -> Value {
    let mut out = Map::new();
    out.insert("metadata".into(), empty_object());
    for key in ["spec", "status"] {
        if obj.get(key).is_some_and(Value::is_object) {
            out.insert(key.into(), empty_object());
        }
    }
    Value::Object(out)
}

/// What an apply to `/status` may change: the status, plus the identity needed to merge.
fn status_only(applied: &Map<String, Value>) -> Value {
    let mut out = Map::new();
    for key in ["apiVersion", "kind"] {
        if let Some(v) = applied.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    if let Some(Value::Object(meta)) = applied.get("metadata") {
        let mut identity = Map::new();
        for key in ["name", "namespace"] {
            if let Some(v) = meta.get(key) {
                identity.insert(key.into(), v.clone());
            }
        }
        out.insert("metadata".into(), Value::Object(identity));
    }
    if let Some(status) = applied.get("status") {
        out.insert("status".into(), status.clone());
    }
    Value::Object(out)
}

/// Server-owned metadata an apply cannot change.
const SYSTEM_METADATA: [&str; 7] = [
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

fn restore_system_fields(result: &mut Value, live: &Value) {
    let live_meta = live.get("metadata").and_then(Value::as_object);
    let Some(meta) = result.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    for key in SYSTEM_METADATA {
        match live_meta.and_then(|m| m.get(key)) {
            Some(v) => {
                meta.insert(key.into(), v.clone());
            }
            None => {
                meta.shift_remove(key);
            }
        }
    }
}

fn is_scalar(v: &Value) -> bool {
    !matches!(v, Value::Object(_) | Value::Array(_))
}

/// Equality as the API server sees it: numbers by value, maps regardless of key order.
fn json_eq(a: &Value, b: &Value) -> bool {
    value_cmp(a, b).is_eq()
}

fn json_eq_slices(a: &[Value], b: &[Value]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| json_eq(x, y))
}

/// value.Compare: numbers < strings < bools < lists < maps < null; ints and floats numerically.
fn value_cmp(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Number(_) => 0,
            Value::String(_) => 1,
            Value::Bool(_) => 2,
            Value::Array(_) => 3,
            Value::Object(_) => 4,
            Value::Null => 5,
        }
    }
    fn int(n: &serde_json::Number) -> i128 {
        n.as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
            .unwrap_or_default()
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if x.is_f64() || y.is_f64() {
                let (x, y) = (
                    x.as_f64().unwrap_or_default(),
                    y.as_f64().unwrap_or_default(),
                );
                x.partial_cmp(&y).unwrap_or(Ordering::Equal)
            } else {
                int(x).cmp(&int(y))
            }
        }
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (p, q) in x.iter().zip(y) {
                let ord = value_cmp(p, q);
                if ord.is_ne() {
                    return ord;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(x), Value::Object(y)) => {
            let mut xs: Vec<(&String, &Value)> = x.iter().collect();
            let mut ys: Vec<(&String, &Value)> = y.iter().collect();
            xs.sort_by(|p, q| p.0.cmp(q.0));
            ys.sort_by(|p, q| p.0.cmp(q.0));
            for ((xk, xv), (yk, yv)) in xs.iter().zip(&ys) {
                let ord = xk.cmp(yk).then_with(|| value_cmp(xv, yv));
                if ord.is_ne() {
                    return ord;
                }
            }
            xs.len().cmp(&ys.len())
        }
        _ => rank(a).cmp(&rank(b)),
    }
}

/// Compact JSON escaped like Go's encoder (`<`, `>`, `&`, U+2028, U+2029), as FieldsV1 keys are.
fn go_json(value: &Value) -> String {
    let plain = serde_json::to_string(value).unwrap_or_else(|_| "null".into());
    let mut out = String::with_capacity(plain.len());
    for c in plain.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// value.ToString, used in conflict paths.
fn go_to_string(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::String(s) => go_json(&Value::String(s.clone())),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(go_to_string).collect::<Vec<_>>().join(",")
        ),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| format!("{k}={}", go_to_string(v)))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const T1: &str = "2024-05-01T10:00:00Z";
    const T2: &str = "2024-05-01T11:00:00Z";
    const T3: &str = "2024-05-01T12:00:00Z";

    fn req<'a>(
        api_version: &'a str,
        kind: &'a str,
        manager: &'a str,
        now: &'a str,
    ) -> ApplyRequest<'a> {
        ApplyRequest {
            api_version,
            kind,
            manager,
            force: false,
            subresource: None,
            now,
        }
    }

    fn deploy<'a>(manager: &'a str, now: &'a str) -> ApplyRequest<'a> {
        req("apps/v1", "Deployment", manager, now)
    }

    fn deployment(replicas: i64, labels: Value, containers: &[(&str, &str)]) -> Value {
        let containers: Vec<Value> = containers
            .iter()
            .map(|(name, image)| json!({"name": name, "image": image}))
            .collect();
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": labels},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": containers}
                }
            }
        })
    }

    fn configmap(data: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "namespace": "default"}, "data": data})
    }

    fn widget(spec: Value) -> Value {
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "default"}, "spec": spec})
    }

    fn entries(obj: &Value) -> Vec<Value> {
        obj.pointer("/metadata/managedFields")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    }

    fn entry(obj: &Value, manager: &str, operation: &str) -> Option<Value> {
        entries(obj)
            .into_iter()
            .find(|e| e["manager"] == manager && e["operation"] == operation)
    }

    /// Whether `manager`'s entry owns the FieldsV1 path `keys`.
    fn owns(obj: &Value, manager: &str, operation: &str, keys: &[&str]) -> bool {
        let Some(entry) = entry(obj, manager, operation) else {
            return false;
        };
        let mut node = &entry["fieldsV1"];
        for key in keys {
            match node.get(*key) {
                Some(next) => node = next,
                None => return false,
            }
        }
        true
    }

    fn without_managed(obj: &Value) -> Value {
        let mut obj = obj.clone();
        strip_managed_fields(&mut obj);
        obj
    }

    fn ok(result: Result<Value, PatchError>) -> Value {
        match result {
            Ok(v) => v,
            Err(err) => panic!("apply failed: {err}"),
        }
    }

    const CONTAINERS: [&str; 6] = [
        "f:spec",
        "f:template",
        "f:spec",
        "f:containers",
        "k:{\"name\":\"app\"}",
        "f:image",
    ];

    #[test]
    fn create_on_apply() {
        let cases = [
            (
                "apps/v1",
                "Deployment",
                deployment(2, json!({"app": "web"}), &[("app", "nginx:1")]),
                json!({
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {
                        "f:replicas": {},
                        "f:selector": {"f:matchLabels": {"f:app": {}}},
                        "f:template": {
                            "f:metadata": {"f:labels": {"f:app": {}}},
                            "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:name": {}}}}
                        }
                    }
                }),
            ),
            (
                "v1",
                "ConfigMap",
                configmap(json!({"a": "1", "b": "2"})),
                json!({"f:data": {"f:a": {}, "f:b": {}}}),
            ),
            (
                "example.com/v1",
                "Widget",
                widget(json!({"size": 3, "tags": ["a", "b"], "nested": {"x": 1}})),
                json!({"f:spec": {"f:size": {}, "f:tags": {}, "f:nested": {"f:x": {}}}}),
            ),
        ];
        for (api_version, kind, applied, fields) in cases {
            let out = ok(apply(&req(api_version, kind, "mgr", T1), None, &applied));
            assert_eq!(without_managed(&out), applied, "{kind}");
            assert_eq!(
                entries(&out),
                vec![json!({
                    "manager": "mgr", "operation": "Apply", "apiVersion": api_version, "time": T1,
                    "fieldsType": "FieldsV1", "fieldsV1": fields
                })],
                "{kind}"
            );
        }
    }

    #[test]
    fn reapply_identical_is_a_no_op() {
        let cases = [
            (
                "apps/v1",
                "Deployment",
                deployment(
                    2,
                    json!({"app": "web"}),
                    &[("app", "nginx:1"), ("side", "busybox")],
                ),
            ),
            ("v1", "ConfigMap", configmap(json!({"a": "1"}))),
            (
                "example.com/v1",
                "Widget",
                widget(json!({"size": 3, "tags": ["a"]})),
            ),
        ];
        for (api_version, kind, applied) in cases {
            let first = ok(apply(&req(api_version, kind, "mgr", T1), None, &applied));
            let second = ok(apply(
                &req(api_version, kind, "mgr", T2),
                Some(&first),
                &applied,
            ));
            assert_eq!(second.to_string(), first.to_string(), "{kind}");
        }
    }

    #[test]
    fn fields_the_manager_stops_applying_are_removed() {
        let cases = [
            (
                "label",
                "apps/v1",
                "Deployment",
                deployment(1, json!({"app": "web", "tier": "fe"}), &[("app", "nginx")]),
                deployment(1, json!({"app": "web"}), &[("app", "nginx")]),
                "/metadata/labels/tier",
            ),
            (
                "container",
                "apps/v1",
                "Deployment",
                deployment(
                    1,
                    json!({"app": "web"}),
                    &[("app", "nginx"), ("sidecar", "envoy")],
                ),
                deployment(1, json!({"app": "web"}), &[("app", "nginx")]),
                "/spec/template/spec/containers/1",
            ),
            (
                "data key",
                "v1",
                "ConfigMap",
                configmap(json!({"a": "1", "b": "2"})),
                configmap(json!({"a": "1"})),
                "/data/b",
            ),
            (
                "custom field",
                "example.com/v1",
                "Widget",
                widget(json!({"size": 3, "color": "red"})),
                widget(json!({"size": 3})),
                "/spec/color",
            ),
        ];
        for (name, api_version, kind, first, second, gone) in cases {
            let live = ok(apply(&req(api_version, kind, "mgr", T1), None, &first));
            let out = ok(apply(
                &req(api_version, kind, "mgr", T2),
                Some(&live),
                &second,
            ));
            assert_eq!(out.pointer(gone), None, "{name}");
            assert_eq!(without_managed(&out), second, "{name}");
            assert_eq!(
                entry(&out, "mgr", "Apply").map(|e| e["time"].clone()),
                Some(json!(T2)),
                "{name}"
            );
        }

        // Dropping the last label drops the emptied map, and the container's key leaves FieldsV1.
        let live = ok(apply(
            &deploy("mgr", T1),
            None,
            &deployment(1, json!({"app": "web"}), &[("app", "x"), ("b", "y")]),
        ));
        let mut second = deployment(1, json!({}), &[("app", "x")]);
        if let Some(meta) = second
            .pointer_mut("/metadata")
            .and_then(Value::as_object_mut)
        {
            meta.remove("labels");
        }
        let out = ok(apply(&deploy("mgr", T2), Some(&live), &second));
        assert_eq!(out.pointer("/metadata/labels"), None);
        assert!(!owns(
            &out,
            "mgr",
            "Apply",
            &[
                "f:spec",
                "f:template",
                "f:spec",
                "f:containers",
                "k:{\"name\":\"b\"}"
            ]
        ));
    }

    #[test]
    fn fields_shared_with_another_manager_are_kept() {
        let both = deployment(
            1,
            json!({"app": "web", "tier": "fe"}),
            &[("app", "nginx"), ("sidecar", "envoy")],
        );
        let live = ok(apply(&deploy("a", T1), None, &both));
        // b applies the same label value and the same sidecar: shared ownership, no conflict.
        let mut b_config = deployment(1, json!({"tier": "fe"}), &[("sidecar", "envoy")]);
        if let Some(spec) = b_config.pointer_mut("/spec").and_then(Value::as_object_mut) {
            spec.remove("replicas");
            spec.remove("selector");
        }
        let live = ok(apply(&deploy("b", T2), Some(&live), &b_config));
        assert!(owns(
            &live,
            "a",
            "Apply",
            &["f:metadata", "f:labels", "f:tier"]
        ));
        assert!(owns(
            &live,
            "b",
            "Apply",
            &["f:metadata", "f:labels", "f:tier"]
        ));

        let out = ok(apply(
            &deploy("a", T3),
            Some(&live),
            &deployment(1, json!({"app": "web"}), &[("app", "nginx")]),
        ));
        assert_eq!(out.pointer("/metadata/labels/tier"), Some(&json!("fe")));
        let names: Vec<&Value> = out["spec"]["template"]["spec"]["containers"]
            .as_array()
            .map(|c| c.iter().map(|c| &c["name"]).collect())
            .unwrap_or_default();
        assert_eq!(names, [&json!("app"), &json!("sidecar")]);
        assert!(!owns(
            &out,
            "a",
            "Apply",
            &["f:metadata", "f:labels", "f:tier"]
        ));
        assert!(owns(
            &out,
            "b",
            "Apply",
            &["f:metadata", "f:labels", "f:tier"]
        ));
        assert!(!owns(
            &out,
            "a",
            "Apply",
            &[
                "f:spec",
                "f:template",
                "f:spec",
                "f:containers",
                "k:{\"name\":\"sidecar\"}"
            ]
        ));
        assert!(owns(
            &out,
            "b",
            "Apply",
            &[
                "f:spec",
                "f:template",
                "f:spec",
                "f:containers",
                "k:{\"name\":\"sidecar\"}",
                "."
            ]
        ));
    }

    #[test]
    fn conflicts_between_appliers() {
        let live = ok(apply(
            &deploy("a", T1),
            None,
            &deployment(1, json!({"app": "web"}), &[("app", "nginx:1")]),
        ));
        let replicas = ["f:spec", "f:replicas"];
        // (replicas, image, force, expected conflicts)
        let cases: [(i64, &str, bool, Vec<Conflict>); 4] = [
            (
                2,
                "nginx:1",
                false,
                vec![Conflict {
                    field: ".spec.replicas".into(),
                    manager: "a".into(),
                }],
            ),
            (
                2,
                "nginx:2",
                false,
                vec![
                    Conflict {
                        field: ".spec.replicas".into(),
                        manager: "a".into(),
                    },
                    Conflict {
                        field: ".spec.template.spec.containers[name=\"app\"].image".into(),
                        manager: "a".into(),
                    },
                ],
            ),
            (1, "nginx:1", false, vec![]),
            (2, "nginx:1", true, vec![]),
        ];
        for (value, image, force, expected) in cases {
            let config = deployment(value, json!({"app": "web"}), &[("app", image)]);
            let request = ApplyRequest {
                force,
                ..deploy("b", T2)
            };
            match apply(&request, Some(&live), &config) {
                Err(PatchError::Conflict(conflicts)) => {
                    assert_eq!(conflicts, expected, "{value} {image}")
                }
                Err(err) => panic!("unexpected error {err}"),
                Ok(out) => {
                    assert!(expected.is_empty(), "{value} {image}: expected a conflict");
                    assert_eq!(out["spec"]["replicas"], json!(value));
                    assert!(owns(&out, "b", "Apply", &replicas));
                    // Same value: shared. Forced: moved to b, the rest of a's fields stay with a.
                    assert_eq!(
                        owns(&out, "a", "Apply", &replicas),
                        !force,
                        "{value} force={force}"
                    );
                    assert!(owns(&out, "a", "Apply", &CONTAINERS));
                }
            }
        }
    }

    #[test]
    fn conflicts_with_an_update_manager() {
        let created = deployment(1, json!({"app": "web"}), &[("app", "nginx:1")]);
        let live = record_update(
            "apps/v1",
            "Deployment",
            "kubectl-create",
            None,
            T1,
            None,
            &created,
        );
        assert!(owns(
            &live,
            "kubectl-create",
            "Update",
            &["f:spec", "f:replicas"]
        ));

        let err = apply(
            &deploy("ssa", T2),
            Some(&live),
            &deployment(3, json!({"app": "web"}), &[("app", "nginx:1")]),
        );
        assert_eq!(
            err,
            Err(PatchError::Conflict(vec![Conflict {
                field: ".spec.replicas".into(),
                manager: "kubectl-create".into()
            }]))
        );

        let forced = ApplyRequest {
            force: true,
            ..deploy("ssa", T2)
        };
        let out = ok(apply(
            &forced,
            Some(&live),
            &deployment(3, json!({"app": "web"}), &[("app", "nginx:1")]),
        ));
        assert_eq!(out["spec"]["replicas"], json!(3));
        assert!(!owns(
            &out,
            "kubectl-create",
            "Update",
            &["f:spec", "f:replicas"]
        ));
        assert!(owns(&out, "kubectl-create", "Update", &CONTAINERS));
        // Apply entries sort before Update entries, like the API server writes them.
        let order: Vec<Value> = entries(&out)
            .iter()
            .map(|e| e["operation"].clone())
            .collect();
        assert_eq!(order, [json!("Apply"), json!("Update")]);
    }

    #[test]
    fn objects_without_managed_fields_belong_to_before_first_apply() {
        let live = deployment(1, json!({"app": "web"}), &[("app", "nginx:1")]);
        let err = apply(
            &deploy("ssa", T2),
            Some(&live),
            &deployment(5, json!({"app": "web"}), &[("app", "nginx:1")]),
        );
        assert_eq!(
            err,
            Err(PatchError::Conflict(vec![Conflict {
                field: ".spec.replicas".into(),
                manager: "before-first-apply".into()
            }]))
        );
    }

    #[test]
    fn record_update_takes_changed_fields() {
        let live = ok(apply(
            &deploy("a", T1),
            None,
            &deployment(1, json!({"app": "web", "tier": "fe"}), &[("app", "nginx")]),
        ));

        let scaled = {
            let mut obj = live.clone();
            obj["spec"]["replicas"] = json!(4);
            obj
        };
        let out = record_update(
            "apps/v1",
            "Deployment",
            "hpa",
            None,
            T2,
            Some(&live),
            &scaled,
        );
        assert_eq!(out["spec"]["replicas"], json!(4));
        let hpa = entry(&out, "hpa", "Update");
        assert_eq!(
            hpa.as_ref().map(|e| e["fieldsV1"].clone()),
            Some(json!({"f:spec": {"f:replicas": {}}}))
        );
        assert_eq!(hpa.map(|e| e["time"].clone()), Some(json!(T2)));
        assert!(!owns(&out, "a", "Apply", &["f:spec", "f:replicas"]));
        assert!(owns(&out, "a", "Apply", &CONTAINERS));
        assert_eq!(
            entry(&out, "a", "Apply").map(|e| e["time"].clone()),
            Some(json!(T1))
        );

        // A removed field leaves every set; an identical write records nothing.
        let mut edited = out.clone();
        if let Some(labels) = edited
            .pointer_mut("/metadata/labels")
            .and_then(Value::as_object_mut)
        {
            labels.remove("tier");
        }
        let out = record_update(
            "apps/v1",
            "Deployment",
            "editor",
            None,
            T3,
            Some(&out),
            &edited,
        );
        assert!(!owns(
            &out,
            "a",
            "Apply",
            &["f:metadata", "f:labels", "f:tier"]
        ));
        assert!(entry(&out, "editor", "Update").is_none());
        let again = record_update(
            "apps/v1",
            "Deployment",
            "editor",
            None,
            T3,
            Some(&out),
            &out,
        );
        assert_eq!(again, out);

        // Create: new maps and list elements are owned with their "." marker.
        let cm = record_update(
            "v1",
            "ConfigMap",
            "kubectl-create",
            None,
            T1,
            None,
            &configmap(json!({"k": "v"})),
        );
        assert_eq!(
            entry(&cm, "kubectl-create", "Update").map(|e| e["fieldsV1"].clone()),
            Some(json!({"f:data": {".": {}, "f:k": {}}}))
        );

        // managedFields: [] in a write resets tracking to just this write's changes.
        let mut reset = cm.clone();
        reset["metadata"]["managedFields"] = json!([]);
        let out = record_update(
            "v1",
            "ConfigMap",
            "kubectl-edit",
            None,
            T2,
            Some(&cm),
            &reset,
        );
        assert_eq!(out.pointer("/metadata/managedFields"), None);
    }

    #[test]
    fn status_apply_leaves_spec_alone() {
        let live = ok(apply(
            &deploy("a", T1),
            None,
            &deployment(2, json!({"app": "web"}), &[("app", "nginx")]),
        ));
        let status = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": {"hijack": "yes"}},
            "spec": {"replicas": 99},
            "status": {"readyReplicas": 2, "conditions": [{"type": "Available", "status": "True"}]}
        });
        let request = ApplyRequest {
            subresource: Some("status"),
            ..deploy("ctrl", T2)
        };
        let out = ok(apply(&request, Some(&live), &status));
        assert_eq!(out["spec"], live["spec"]);
        assert_eq!(out["metadata"]["labels"], live["metadata"]["labels"]);
        assert_eq!(out["status"], status["status"]);
        let ctrl = entry(&out, "ctrl", "Apply");
        assert_eq!(
            ctrl.as_ref().map(|e| e["subresource"].clone()),
            Some(json!("status"))
        );
        assert_eq!(
            ctrl.map(|e| e["fieldsV1"].clone()),
            Some(json!({"f:status": {
                "f:conditions": {"k:{\"type\":\"Available\"}": {".": {}, "f:status": {}, "f:type": {}}},
                "f:readyReplicas": {}
            }}))
        );
        assert_eq!(entry(&out, "a", "Apply"), entry(&live, "a", "Apply"));

        // The main-resource applier does not own status, so its next apply keeps it.
        let again = ok(apply(
            &deploy("a", T3),
            Some(&out),
            &deployment(2, json!({"app": "web"}), &[("app", "nginx")]),
        ));
        assert_eq!(again["status"], status["status"]);
    }

    #[test]
    fn fields_v1_encoding_is_literal() {
        let mut config = deployment(1, json!({"app": "web"}), &[("app", "nginx")]);
        config["spec"]["template"]["spec"]["containers"][0]["ports"] =
            json!([{"containerPort": 80}]);
        let out = ok(apply(&deploy("mgr", T1), None, &config));
        let fields = entry(&out, "mgr", "Apply")
            .map(|e| e["fieldsV1"].to_string())
            .unwrap_or_default();
        assert!(
            fields.contains(
                r#""f:containers":{"k:{\"name\":\"app\"}":{".":{},"f:image":{},"f:name":{},"f:ports":{"k:{\"containerPort\":80,\"protocol\":\"TCP\"}":{".":{},"f:containerPort":{}}}}}"#
            ),
            "{fields}"
        );
        assert!(
            fields.starts_with(
                r#"{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:replicas":{}"#
            ),
            "{fields}"
        );
    }

    #[test]
    fn fields_v1_round_trips() {
        let fields = json!({
            "f:metadata": {"f:finalizers": {".": {}, "v:\"a\"": {}}, "f:labels": {".": {}, "f:x": {}}},
            "f:spec": {"f:ports": {"k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:port": {}}}, "f:list": {"i:0": {}}}
        });
        let set = Set::from_fields_v1(fields.as_object().unwrap_or(&Map::new()));
        let set = set.unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(Value::Object(set.to_fields_v1()), fields);
        assert!(
            Set::from_fields_v1(json!({"x:1": {}}).as_object().unwrap_or(&Map::new())).is_err()
        );
    }

    #[test]
    fn null_removes_a_field() {
        let live = ok(apply(
            &deploy("a", T1),
            None,
            &deployment(2, json!({"app": "web"}), &[("app", "nginx")]),
        ));
        let mut config = deployment(2, json!({"app": "web"}), &[("app", "nginx")]);
        config["spec"]["replicas"] = Value::Null;
        let out = ok(apply(&deploy("a", T2), Some(&live), &config));
        assert_eq!(out.pointer("/spec/replicas"), None);
        assert!(!owns(&out, "a", "Apply", &["f:spec", "f:replicas"]));

        // Removing a field someone else owns is a conflict.
        let shared = ok(apply(
            &deploy("b", T2),
            Some(&live),
            &deployment(2, json!({"app": "web"}), &[("app", "nginx")]),
        ));
        assert_eq!(
            apply(&deploy("a", T3), Some(&shared), &config),
            Err(PatchError::Conflict(vec![Conflict {
                field: ".spec.replicas".into(),
                manager: "b".into()
            }]))
        );
    }

    #[test]
    fn new_list_elements_land_where_the_config_puts_them() {
        let live = ok(apply(
            &deploy("a", T1),
            None,
            &deployment(1, json!({"app": "web"}), &[("a", "1"), ("b", "1")]),
        ));
        let out = ok(apply(
            &deploy("a", T2),
            Some(&live),
            &deployment(
                1,
                json!({"app": "web"}),
                &[("a", "1"), ("x", "1"), ("b", "1")],
            ),
        ));
        let names: Vec<Value> = out["spec"]["template"]["spec"]["containers"]
            .as_array()
            .map(|c| c.iter().map(|c| c["name"].clone()).collect())
            .unwrap_or_default();
        assert_eq!(names, [json!("a"), json!("x"), json!("b")]);

        // Another applier's new container goes after the live ones.
        let mut extra = deployment(1, json!({}), &[("z", "1")]);
        extra["metadata"]
            .as_object_mut()
            .map(|m| m.remove("labels"));
        extra["spec"].as_object_mut().map(|s| s.remove("selector"));
        extra["spec"].as_object_mut().map(|s| s.remove("replicas"));
        let out = ok(apply(&deploy("b", T3), Some(&out), &extra));
        let names: Vec<Value> = out["spec"]["template"]["spec"]["containers"]
            .as_array()
            .map(|c| c.iter().map(|c| c["name"].clone()).collect())
            .unwrap_or_default();
        assert_eq!(names, [json!("a"), json!("x"), json!("b"), json!("z")]);
    }

    #[test]
    fn malformed_apply_requests() {
        let mut with_managed = configmap(json!({}));
        with_managed["metadata"]["managedFields"] = json!([]);
        let mut wrong_version = configmap(json!({}));
        wrong_version["apiVersion"] = json!("v2");
        let nameless = deployment(1, json!({}), &[]);
        let mut nameless = nameless;
        nameless["spec"]["template"]["spec"]["containers"] = json!([{"image": "x"}]);
        let mut duplicate = deployment(1, json!({}), &[("app", "a"), ("app", "b")]);
        duplicate["kind"] = json!("Deployment");

        let cases = [
            ("v1", "ConfigMap", with_managed, "BadRequest"),
            ("v1", "ConfigMap", wrong_version, "BadRequest"),
            (
                "v1",
                "ConfigMap",
                json!(["not", "an", "object"]),
                "BadRequest",
            ),
            ("apps/v1", "Deployment", nameless, "Invalid"),
            ("apps/v1", "Deployment", duplicate, "Invalid"),
        ];
        for (api_version, kind, applied, expected) in cases {
            let got = match apply(&req(api_version, kind, "m", T1), None, &applied) {
                Err(PatchError::BadRequest(_)) => "BadRequest",
                Err(PatchError::Invalid(_)) => "Invalid",
                other => panic!("{applied}: unexpected {other:?}"),
            };
            assert_eq!(got, expected, "{applied}");
        }
    }
}
