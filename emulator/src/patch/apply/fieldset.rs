//! Field paths and field sets (structured-merge-diff's `fieldpath.PathElement` / `fieldpath.Set`)
//! and their FieldsV1 encoding.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use serde_json::{Map, Value};

use super::value::{go_json, go_to_string, value_cmp};

/// One step of a field path; ordered like structured-merge-diff so FieldsV1 output matches.
#[derive(Debug, Clone)]
pub(super) enum Pe {
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
            Pe::Field(name) => {
                let mut key = String::with_capacity(name.len() + 2);
                key.push_str("f:");
                key.push_str(name);
                key
            }
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
    pub(super) fn display(&self) -> String {
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

pub(super) fn path_string(path: &[Pe]) -> String {
    path.iter().map(Pe::display).collect()
}

/// A set of field paths: `members` are paths ending here, `children` continue further.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Set {
    pub(super) members: BTreeSet<Pe>,
    pub(super) children: BTreeMap<Pe, Set>,
}

impl Set {
    pub(super) fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.values().all(Set::is_empty)
    }

    pub(super) fn insert(&mut self, path: &[Pe]) {
        match path {
            [] => {}
            [last] => {
                self.members.insert(last.clone());
            }
            [first, rest @ ..] => self.children.entry(first.clone()).or_default().insert(rest),
        }
    }

    pub(super) fn union(&self, other: &Set) -> Set {
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
    pub(super) fn difference(&self, other: &Set) -> Set {
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

    /// True when [`Set::difference`] with `other` would take anything from `self`: a member
    /// of both at the same place.
    pub(super) fn shares_members(&self, other: &Set) -> bool {
        self.members.iter().any(|pe| other.members.contains(pe))
            || self.children.iter().any(|(pe, child)| {
                other
                    .children
                    .get(pe)
                    .is_some_and(|theirs| child.shares_members(theirs))
            })
    }

    pub(super) fn intersection(&self, other: &Set) -> Set {
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
    pub(super) fn under(&self, prefixes: &Set) -> Set {
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
    pub(super) fn ensure_fields_are_members(&self, top: bool) -> Set {
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
    pub(super) fn for_each_path(&self, prefix: &mut Vec<Pe>, visit: &mut dyn FnMut(&[Pe])) {
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

    pub(super) fn to_fields_v1(&self) -> Map<String, Value> {
        let mut out = Map::new();
        self.write_fields_v1(&mut out);
        out
    }

    /// Adds this set's FieldsV1 keys to `out` (filled in place: every write re-encodes the
    /// entries it changes, and building each level as its own map cost a re-insert per key).
    fn write_fields_v1(&self, out: &mut Map<String, Value>) {
        let keys: BTreeSet<&Pe> = self.members.iter().chain(self.children.keys()).collect();
        for pe in keys {
            let mut inner = Map::new();
            if let Some(child) = self.children.get(pe).filter(|c| !c.is_empty()) {
                if self.members.contains(pe) {
                    inner.insert(".".into(), Value::Object(Map::new()));
                }
                child.write_fields_v1(&mut inner);
            }
            out.insert(pe.encode(), Value::Object(inner));
        }
    }

    pub(super) fn from_fields_v1(fields: &Map<String, Value>) -> Result<Set, String> {
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
pub(super) fn strip_ignored(set: &Set) -> Set {
    static IGNORED: LazyLock<Set> = LazyLock::new(|| {
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
        ignored
    });
    set.difference(&IGNORED)
}
