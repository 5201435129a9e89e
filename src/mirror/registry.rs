//! The registry: which kinds are mirrored right now. Built-in defaults, `.config.yaml`'s
//! `mirror.resources` and `ResourceMirror` objects are merged into one [`Kinds`] snapshot, published
//! through a `tokio::sync::watch` channel that the pipeline supervisor and the REST API follow.

use std::sync::Arc;

use crate::config::{MirrorConfig, MirrorResource};
use crate::crd::{ResourceMirrorSpec, ResourceMirrorStatus};
use crate::mirror::builtin;
use crate::mirror::kind::{ColumnSpec, KindSpec};

/// An immutable snapshot of the mirrored kinds. Each spec is shared, so a request resolving its
/// kind takes a reference instead of copying the spec's strings and columns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Kinds {
    specs: Vec<Arc<KindSpec>>,
}

impl Kinds {
    /// Later entries with the same [`KindSpec::id`] replace earlier ones.
    pub fn new(specs: impl IntoIterator<Item = KindSpec>) -> Self {
        let mut out: Vec<Arc<KindSpec>> = Vec::new();
        for spec in specs {
            match out.iter_mut().find(|s| s.id() == spec.id()) {
                Some(existing) => *existing = Arc::new(spec),
                None => out.push(Arc::new(spec)),
            }
        }
        Self { specs: out }
    }

    pub fn all(&self) -> impl ExactSizeIterator<Item = &KindSpec> {
        self.specs.iter().map(|spec| &**spec)
    }

    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    pub fn by_id(&self, id: &str) -> Option<&KindSpec> {
        self.specs.iter().find(|s| s.id() == id).map(|spec| &**spec)
    }

    /// Resolves the REST API's `{plural}`: a bare plural when only one kind has it (`pods`), or
    /// `plural.group` to disambiguate (`events.events.k8s.io`).
    pub fn by_plural(&self, plural: &str) -> Option<&Arc<KindSpec>> {
        let mut bare = self.specs.iter().filter(|s| s.plural == plural);
        if let (Some(only), None) = (bare.next(), bare.next()) {
            return Some(only);
        }
        self.specs
            .iter()
            .find(|s| !s.group.is_empty() && format!("{}.{}", s.plural, s.group) == plural)
            .or_else(|| {
                self.specs
                    .iter()
                    .find(|s| s.group.is_empty() && s.plural == plural)
            })
    }
}

/// Receiving side of the registry channel.
pub type KindsReceiver = tokio::sync::watch::Receiver<Arc<Kinds>>;

/// Where a wanted kind comes from; later sources override earlier ones for the same kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Builtin,
    Config,
    /// A `ResourceMirror`, by name.
    Mirror(String),
}

/// A kind someone wants mirrored, before API discovery fills in what it leaves out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindRequest {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: Option<String>,
    pub namespaced: Option<bool>,
    pub prune: Vec<String>,
    pub keep_secret_data: bool,
    pub columns: Vec<ColumnSpec>,
    pub origin: Origin,
}

impl KindRequest {
    pub fn from_spec(spec: KindSpec, origin: Origin) -> Self {
        Self {
            group: spec.group,
            version: spec.version,
            kind: spec.kind,
            plural: Some(spec.plural),
            namespaced: Some(spec.namespaced),
            prune: spec.prune,
            keep_secret_data: spec.keep_secret_data,
            columns: spec.columns,
            origin,
        }
    }

    pub fn from_config(resource: &MirrorResource) -> Self {
        Self {
            group: resource.group.clone(),
            version: resource.version.clone(),
            kind: resource.kind.clone(),
            plural: resource.plural.clone(),
            namespaced: resource.namespaced,
            prune: resource.prune.clone(),
            keep_secret_data: resource.keep_secret_data,
            columns: resource
                .columns
                .iter()
                .map(|c| ColumnSpec {
                    name: c.name.clone(),
                    path: c.path.clone(),
                    column_type: c.column_type,
                    index: c.index,
                })
                .collect(),
            origin: Origin::Config,
        }
    }

    pub fn from_mirror(name: &str, spec: &ResourceMirrorSpec) -> Self {
        Self {
            group: spec.group.clone(),
            version: spec.version.clone(),
            kind: spec.kind.clone(),
            plural: spec.plural.clone(),
            namespaced: spec.namespaced,
            prune: spec.prune.clone(),
            keep_secret_data: spec.keep_secret_data,
            columns: spec.columns.clone(),
            origin: Origin::Mirror(name.to_owned()),
        }
    }

    /// Same as [`KindSpec::id`]: `core/v1/Pod`.
    pub fn id(&self) -> String {
        let group = if self.group.is_empty() {
            "core"
        } else {
            self.group.as_str()
        };
        format!("{group}/{}/{}", self.version, self.kind)
    }

    /// `v1` or `apps/v1`: the discovery document that lists this kind.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The spec once plural and scope are known.
    pub fn to_spec(&self, plural: String, namespaced: bool) -> KindSpec {
        KindSpec {
            group: self.group.clone(),
            version: self.version.clone(),
            kind: self.kind.clone(),
            plural,
            namespaced,
            prune: self.prune.clone(),
            keep_secret_data: self.keep_secret_data,
            columns: self.columns.clone(),
        }
    }
}

/// A `ResourceMirror` as the registry sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct MirrorSource {
    pub name: String,
    pub generation: Option<i64>,
    /// The spec, or why it could not be decoded.
    pub spec: Result<ResourceMirrorSpec, String>,
    /// The status currently stored on the object.
    pub status: Option<ResourceMirrorStatus>,
}

/// Every wanted kind, merged: built-ins (unless `builtin` is off, minus `exclude`), then
/// `mirror.resources`, then enabled `ResourceMirror`s by name; a later entry for the same kind
/// replaces an earlier one, and a disabled `ResourceMirror` switches its kind off entirely.
pub fn wanted(config: &MirrorConfig, mirrors: &[MirrorSource]) -> Vec<KindRequest> {
    let builtins = builtin::kinds()
        .into_iter()
        .filter(|_| config.builtin)
        .filter(|spec| !config.exclude.contains(&spec.kind))
        .map(|spec| KindRequest::from_spec(spec, Origin::Builtin));
    let configured = config.resources.iter().map(KindRequest::from_config);
    let mut sorted: Vec<&MirrorSource> = mirrors.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let enabled = sorted.iter().filter_map(|m| {
        m.spec
            .as_ref()
            .ok()
            .filter(|s| s.enabled)
            .map(|s| KindRequest::from_mirror(&m.name, s))
    });
    let disabled: Vec<String> = sorted
        .iter()
        .filter_map(|m| m.spec.as_ref().ok().filter(|s| !s.enabled))
        .map(|s| KindRequest::from_mirror("", s).id())
        .collect();
    let mut out: Vec<KindRequest> = Vec::new();
    for request in builtins.chain(configured).chain(enabled) {
        match out.iter_mut().find(|r| r.id() == request.id()) {
            Some(existing) => *existing = request,
            None => out.push(request),
        }
    }
    out.retain(|r| !disabled.contains(&r.id()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ColumnConfig, MirrorResource};

    fn mirror(name: &str, group: &str, kind: &str, enabled: bool) -> MirrorSource {
        MirrorSource {
            name: name.into(),
            generation: Some(1),
            spec: Ok(ResourceMirrorSpec {
                group: group.into(),
                version: "v1".into(),
                kind: kind.into(),
                plural: None,
                namespaced: None,
                prune: vec![],
                keep_secret_data: false,
                columns: vec![],
                enabled,
            }),
            status: None,
        }
    }

    fn ids(requests: &[KindRequest]) -> Vec<String> {
        requests.iter().map(KindRequest::id).collect()
    }

    #[test]
    fn builtins_can_be_excluded_or_switched_off() {
        let all = wanted(&MirrorConfig::default(), &[]);
        assert_eq!(all.len(), builtin::kinds().len());
        let config = MirrorConfig {
            exclude: vec!["Event".into(), "Node".into()],
            ..MirrorConfig::default()
        };
        let some = ids(&wanted(&config, &[]));
        assert!(!some.contains(&"core/v1/Event".to_string()));
        assert!(!some.contains(&"core/v1/Node".to_string()));
        assert_eq!(some.len(), builtin::kinds().len() - 2);
        let none = MirrorConfig {
            builtin: false,
            ..MirrorConfig::default()
        };
        assert!(wanted(&none, &[]).is_empty());
    }

    #[test]
    fn later_sources_override_earlier_ones() {
        let config = MirrorConfig {
            builtin: true,
            resources: vec![MirrorResource {
                group: String::new(),
                version: "v1".into(),
                kind: "Pod".into(),
                plural: None,
                namespaced: None,
                prune: vec![".status".into()],
                keep_secret_data: false,
                columns: vec![ColumnConfig {
                    name: "ip".into(),
                    path: ".status.podIP".into(),
                    column_type: crate::crd::ColumnType::String,
                    index: true,
                }],
            }],
            ..MirrorConfig::default()
        };
        let requests = wanted(&config, &[]);
        let pod = requests.iter().find(|r| r.id() == "core/v1/Pod");
        assert_eq!(
            pod.map(|p| (&p.origin, p.columns.len(), p.plural.clone())),
            Some((&Origin::Config, 1, None))
        );
        let position = requests.iter().position(|r| r.id() == "core/v1/Pod");
        assert_eq!(position, Some(2), "an override keeps the kind's place");

        let mirrors = [mirror("b", "", "Pod", true), mirror("a", "", "Pod", true)];
        let requests = wanted(&config, &mirrors);
        let pod = requests
            .iter()
            .find(|r| r.id() == "core/v1/Pod")
            .map(|p| p.origin.clone());
        assert_eq!(
            pod,
            Some(Origin::Mirror("b".into())),
            "ResourceMirrors apply in name order"
        );
    }

    #[test]
    fn mirrors_add_kinds_and_disabled_ones_remove_them() {
        let config = MirrorConfig {
            builtin: false,
            ..MirrorConfig::default()
        };
        let mut broken = mirror("broken", "x.io", "Gadget", true);
        broken.spec = Err("missing field `version`".into());
        let mirrors = [
            mirror("widgets", "example.com", "Widget", true),
            mirror("pods-off", "", "Pod", false),
            broken,
        ];
        assert_eq!(ids(&wanted(&config, &mirrors)), ["example.com/v1/Widget"]);
        let with_builtins = ids(&wanted(&MirrorConfig::default(), &mirrors));
        assert!(
            !with_builtins.contains(&"core/v1/Pod".to_string()),
            "enabled: false switches a built-in off"
        );
        assert!(with_builtins.contains(&"example.com/v1/Widget".to_string()));
    }

    #[test]
    fn plurals_resolve_bare_or_qualified() {
        let spec = |group: &str, kind: &str, plural: &str| {
            KindRequest {
                plural: Some(plural.into()),
                namespaced: Some(true),
                ..KindRequest::from_mirror(
                    "",
                    &ResourceMirrorSpec {
                        group: group.into(),
                        version: "v1".into(),
                        kind: kind.into(),
                        plural: None,
                        namespaced: None,
                        prune: vec![],
                        keep_secret_data: false,
                        columns: vec![],
                        enabled: true,
                    },
                )
            }
            .to_spec(plural.into(), true)
        };
        let kinds = Kinds::new([
            spec("", "Event", "events"),
            spec("events.k8s.io", "Event", "events"),
            spec("", "Pod", "pods"),
        ]);
        assert_eq!(
            kinds.by_plural("pods").map(|spec| spec.id()),
            Some("core/v1/Pod".into())
        );
        assert_eq!(
            kinds
                .by_plural("events.events.k8s.io")
                .map(|spec| spec.id()),
            Some("events.k8s.io/v1/Event".into())
        );
        assert_eq!(
            kinds.by_plural("events").map(|spec| spec.id()),
            Some("core/v1/Event".into())
        );
    }
}
