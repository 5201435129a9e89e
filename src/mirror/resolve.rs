//! Resolving wanted kinds against API discovery (pure): which are served and with what plural and
//! scope, which the cluster does not serve (yet), and what each `ResourceMirror` should report.

use std::collections::BTreeMap;

use crate::mirror::kind::KindSpec;
use crate::mirror::object::Processor;
use crate::mirror::registry::{KindRequest, Kinds, MirrorSource};

/// One resource of a discovery document (`APIResourceList`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredResource {
    /// Plural name, e.g. `pods`; subresources (`pods/status`) are left out.
    pub name: String,
    pub kind: String,
    pub namespaced: bool,
    pub verbs: Vec<String>,
}

/// What discovery said about one group/version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupVersion {
    Served(Vec<DiscoveredResource>),
    /// The API server answered 404: the group/version does not exist (e.g. no CRD yet).
    NotServed,
    /// Discovery failed for another reason, or was not asked yet.
    Unknown,
}

/// Converts a discovery document, dropping subresources.
pub fn discovered(
    list: &k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList,
) -> Vec<DiscoveredResource> {
    list.resources
        .iter()
        .filter(|r| !r.name.contains('/'))
        .map(|r| DiscoveredResource {
            name: r.name.clone(),
            kind: r.kind.clone(),
            namespaced: r.namespaced,
            verbs: r.verbs.clone(),
        })
        .collect()
}

/// How one wanted kind resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    Served(KindSpec),
    NotServed(String),
    Invalid(String),
    /// Discovery has not answered; try again later.
    Unknown,
}

/// Resolves one request against its group/version's discovery document. A plural or scope
/// given in the request wins over discovery.
pub fn resolve(request: &KindRequest, group_version: &GroupVersion) -> Resolved {
    let resources = match group_version {
        GroupVersion::Served(resources) => resources,
        GroupVersion::NotServed => {
            return Resolved::NotServed(format!(
                "the API server does not serve {}",
                request.api_version()
            ));
        }
        GroupVersion::Unknown => return Resolved::Unknown,
    };
    let Some(found) = resources.iter().find(|r| r.kind == request.kind) else {
        return Resolved::NotServed(format!(
            "the API server does not serve kind {} in {}",
            request.kind,
            request.api_version()
        ));
    };
    if !["list", "watch"]
        .iter()
        .all(|verb| found.verbs.iter().any(|v| v == verb))
    {
        return Resolved::Invalid(format!("{} cannot be listed and watched", request.id()));
    }
    let spec = request.to_spec(
        request.plural.clone().unwrap_or_else(|| found.name.clone()),
        request.namespaced.unwrap_or(found.namespaced),
    );
    match Processor::new(&spec) {
        Ok(_) => Resolved::Served(spec),
        Err(err) => Resolved::Invalid(crate::report::chain(&err)),
    }
}

/// What a `ResourceMirror` stands for right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MirrorOutcome {
    /// Its kind is mirrored (see the kind's health for how that goes).
    Active {
        kind: String,
    },
    NotServed {
        kind: String,
        reason: String,
    },
    Invalid {
        reason: String,
    },
    Disabled,
    /// Waiting for API discovery.
    Pending {
        kind: String,
    },
}

/// One `ResourceMirror` with its outcome, for the status writer.
#[derive(Debug, Clone, PartialEq)]
pub struct MirrorReport {
    pub generation: Option<i64>,
    pub outcome: MirrorOutcome,
    pub status: Option<crate::crd::ResourceMirrorStatus>,
}

/// A kind that is wanted but not served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotServed {
    pub id: String,
    pub plural: String,
    pub reason: String,
}

/// The registry's output: the mirrored kinds and everything worth reporting about the rest.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resolution {
    /// False until the first resolution (after `ResourceMirror`s were loaded or found missing).
    pub complete: bool,
    pub kinds: Kinds,
    pub not_served: Vec<NotServed>,
    /// Wanted kinds discovery has not answered for yet (ids).
    pub pending: Vec<String>,
    pub mirrors: BTreeMap<String, MirrorReport>,
}

/// Resolves every request. A kind whose discovery is [`GroupVersion::Unknown`] keeps the spec it
/// had in `previous`, so a discovery hiccup never stops a running kind.
pub fn resolution(
    requests: &[KindRequest],
    mirrors: &[MirrorSource],
    lookup: impl Fn(&str) -> GroupVersion,
    previous: &Kinds,
) -> Resolution {
    let mut served = Vec::new();
    let mut not_served = Vec::new();
    let mut pending = Vec::new();
    let mut outcomes: BTreeMap<String, Resolved> = BTreeMap::new();
    for request in requests {
        let id = request.id();
        let resolved = match resolve(request, &lookup(&request.api_version())) {
            Resolved::Unknown => previous
                .by_id(&id)
                .cloned()
                .map_or(Resolved::Unknown, Resolved::Served),
            other => other,
        };
        match &resolved {
            Resolved::Served(spec) => served.push(spec.clone()),
            Resolved::NotServed(reason) => not_served.push(NotServed {
                id: id.clone(),
                plural: request.plural.clone().unwrap_or_default(),
                reason: reason.clone(),
            }),
            Resolved::Unknown => pending.push(id.clone()),
            Resolved::Invalid(_) => {}
        }
        outcomes.insert(id, resolved);
    }
    let mirrors = mirrors
        .iter()
        .map(|m| {
            let outcome = match &m.spec {
                Err(reason) => MirrorOutcome::Invalid {
                    reason: format!("invalid spec: {reason}"),
                },
                Ok(spec) if !spec.enabled => MirrorOutcome::Disabled,
                Ok(spec) => {
                    let kind = KindRequest::from_mirror(&m.name, spec).id();
                    match outcomes.get(&kind) {
                        Some(Resolved::Served(_)) => MirrorOutcome::Active { kind },
                        Some(Resolved::NotServed(reason)) => MirrorOutcome::NotServed {
                            kind,
                            reason: reason.clone(),
                        },
                        Some(Resolved::Invalid(reason)) => MirrorOutcome::Invalid {
                            reason: reason.clone(),
                        },
                        // A disabled mirror of the same kind switched it off.
                        None => MirrorOutcome::Disabled,
                        Some(Resolved::Unknown) => MirrorOutcome::Pending { kind },
                    }
                }
            };
            (
                m.name.clone(),
                MirrorReport {
                    generation: m.generation,
                    outcome,
                    status: m.status.clone(),
                },
            )
        })
        .collect();
    Resolution {
        complete: true,
        kinds: Kinds::new(served),
        not_served,
        pending,
        mirrors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::ResourceMirrorSpec;
    use crate::mirror::registry::Origin;

    fn request(group: &str, kind: &str, plural: Option<&str>) -> KindRequest {
        KindRequest {
            group: group.into(),
            version: "v1".into(),
            kind: kind.into(),
            plural: plural.map(Into::into),
            namespaced: None,
            prune: vec![],
            keep_secret_data: false,
            columns: vec![],
            origin: Origin::Config,
        }
    }

    fn resource(name: &str, kind: &str, namespaced: bool, verbs: &[&str]) -> DiscoveredResource {
        DiscoveredResource {
            name: name.into(),
            kind: kind.into(),
            namespaced,
            verbs: verbs.iter().map(|v| v.to_string()).collect(),
        }
    }

    fn served(resources: Vec<DiscoveredResource>) -> GroupVersion {
        GroupVersion::Served(resources)
    }

    #[test]
    fn resolves_plural_and_scope_from_discovery() {
        let widgets = served(vec![resource(
            "widgets",
            "Widget",
            false,
            &["get", "list", "watch"],
        )]);
        let cases = [
            (
                "discovered",
                request("example.com", "Widget", None),
                &widgets,
                Some(("widgets", false)),
            ),
            (
                "given plural wins",
                request("example.com", "Widget", Some("wdgts")),
                &widgets,
                Some(("wdgts", false)),
            ),
            (
                "kind missing",
                request("example.com", "Gadget", None),
                &widgets,
                None,
            ),
            (
                "group missing",
                request("example.com", "Widget", None),
                &GroupVersion::NotServed,
                None,
            ),
        ];
        for (name, request, gv, want) in cases {
            let got = match resolve(&request, gv) {
                Resolved::Served(spec) => Some((spec.plural, spec.namespaced)),
                _ => None,
            };
            assert_eq!(got.as_ref().map(|(p, n)| (p.as_str(), *n)), want, "{name}");
        }
    }

    #[test]
    fn reports_why_a_kind_is_not_mirrored() {
        let gv = served(vec![resource("tokens", "Token", true, &["create"])]);
        assert_eq!(
            resolve(&request("a.io", "Token", None), &gv),
            Resolved::Invalid("a.io/v1/Token cannot be listed and watched".into())
        );
        assert_eq!(
            resolve(&request("a.io", "Widget", None), &GroupVersion::NotServed),
            Resolved::NotServed("the API server does not serve a.io/v1".into())
        );
        let mut bad = request("a.io", "Token", None);
        bad.prune = vec!["..".into()];
        let gv = served(vec![resource("tokens", "Token", true, &["list", "watch"])]);
        assert!(matches!(resolve(&bad, &gv), Resolved::Invalid(_)));
        assert_eq!(
            resolve(&request("a.io", "Token", None), &GroupVersion::Unknown),
            Resolved::Unknown
        );
    }

    #[test]
    fn unknown_discovery_keeps_running_kinds() {
        let requests = [request("example.com", "Widget", None)];
        let known = |_: &str| {
            served(vec![resource(
                "widgets",
                "Widget",
                true,
                &["list", "watch"],
            )])
        };
        let first = resolution(&requests, &[], known, &Kinds::default());
        assert_eq!(first.kinds.all().len(), 1);
        let again = resolution(&requests, &[], |_| GroupVersion::Unknown, &first.kinds);
        assert_eq!(again.kinds, first.kinds);
        let cold = resolution(&requests, &[], |_| GroupVersion::Unknown, &Kinds::default());
        assert!(cold.kinds.is_empty() && cold.not_served.is_empty());
        assert_eq!(cold.pending, ["example.com/v1/Widget"]);
    }

    #[test]
    fn mirrors_get_an_outcome_each() {
        let spec = |kind: &str, enabled: bool| ResourceMirrorSpec {
            group: "example.com".into(),
            version: "v1".into(),
            kind: kind.into(),
            plural: None,
            namespaced: None,
            prune: vec![],
            keep_secret_data: false,
            columns: vec![],
            enabled,
        };
        let source = |name: &str, spec| MirrorSource {
            name: name.into(),
            generation: Some(2),
            spec,
            status: None,
        };
        let mirrors = vec![
            source("widgets", Ok(spec("Widget", true))),
            source("gadgets", Ok(spec("Gadget", true))),
            source("off", Ok(spec("Thing", false))),
            source("broken", Err("missing field `kind`".into())),
        ];
        let requests: Vec<KindRequest> = mirrors
            .iter()
            .filter_map(|m| {
                m.spec
                    .as_ref()
                    .ok()
                    .filter(|s| s.enabled)
                    .map(|s| KindRequest::from_mirror(&m.name, s))
            })
            .collect();
        let lookup = |_: &str| {
            served(vec![resource(
                "widgets",
                "Widget",
                true,
                &["list", "watch"],
            )])
        };
        let out = resolution(&requests, &mirrors, lookup, &Kinds::default());
        let outcome = |name: &str| out.mirrors.get(name).map(|r| r.outcome.clone());
        assert_eq!(
            outcome("widgets"),
            Some(MirrorOutcome::Active {
                kind: "example.com/v1/Widget".into()
            })
        );
        assert!(matches!(
            outcome("gadgets"),
            Some(MirrorOutcome::NotServed { .. })
        ));
        assert_eq!(outcome("off"), Some(MirrorOutcome::Disabled));
        assert!(matches!(
            outcome("broken"),
            Some(MirrorOutcome::Invalid { .. })
        ));
        assert_eq!(
            out.not_served
                .iter()
                .map(|n| n.id.as_str())
                .collect::<Vec<_>>(),
            ["example.com/v1/Gadget"]
        );
        assert_eq!(
            out.mirrors.get("widgets").and_then(|r| r.generation),
            Some(2)
        );
    }
}
