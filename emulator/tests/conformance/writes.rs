//! Write semantics (scenarios 5, 6, 7 and 10 of the spec, plus CRDs, Events and Leases).

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event as KEvent, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{Event as FEvent, finalizer};
use serde_json::json;

use crate::common::{config_map, create_namespace, is_status, start, within};

fn deployment(name: &str, replicas: i32) -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}}}
    })
}

/// 5. Applying the same status twice leaves resourceVersion unchanged and emits nothing.
#[tokio::test]
async fn identical_status_apply_is_a_no_op() {
    let (_emu, client) = start().await;
    let api: Api<Deployment> = Api::namespaced(client, "default");
    api.create(
        &PostParams::default(),
        &serde_json::from_value(deployment("web", 2)).expect("deploy"),
    )
    .await
    .expect("create");
    let status = json!({"apiVersion": "apps/v1", "kind": "Deployment", "status": {"replicas": 2, "readyReplicas": 2, "observedGeneration": 1}});
    let pp = PatchParams::apply("stowage-test");
    let first = api
        .patch_status("web", &pp, &Patch::Apply(&status))
        .await
        .expect("first apply");
    let rv = first.metadata.resource_version.clone().expect("rv");
    let mut stream = api
        .watch(&WatchParams::default(), &rv)
        .await
        .expect("watch")
        .boxed();
    let second = api
        .patch_status("web", &pp, &Patch::Apply(&status))
        .await
        .expect("second apply");
    assert_eq!(
        second.metadata.resource_version.as_deref(),
        Some(rv.as_str())
    );
    assert_eq!(
        second.metadata.generation, first.metadata.generation,
        "status writes never bump generation"
    );
    // The next event must be this marker, not something from the second apply.
    let marker = json!({"metadata": {"labels": {"marker": "yes"}}});
    api.patch("web", &PatchParams::default(), &Patch::Merge(&marker))
        .await
        .expect("marker");
    let ev = within(5, "the marker event", stream.try_next())
        .await
        .expect("ok")
        .expect("event");
    match ev {
        WatchEvent::Modified(d) => assert_eq!(
            d.metadata
                .labels
                .unwrap_or_default()
                .get("marker")
                .map(String::as_str),
            Some("yes")
        ),
        other => panic!("unexpected {other:?}"),
    }
}

/// Status subresource: create drops status, main writes keep it, status writes change only status.
#[tokio::test]
async fn status_subresource_is_separate() {
    let (_emu, client) = start().await;
    let api: Api<Deployment> = Api::namespaced(client, "default");
    let mut d = deployment("sub", 1);
    d["status"] = json!({"replicas": 9});
    let created = api
        .create(
            &PostParams::default(),
            &serde_json::from_value(d).expect("d"),
        )
        .await
        .expect("create");
    assert!(
        created.status.is_none_or(|s| s.replicas.is_none()),
        "create drops .status"
    );
    let with_status = api
        .patch_status(
            "sub",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 1}, "spec": {"replicas": 5}})),
        )
        .await
        .expect("status patch");
    assert_eq!(
        with_status.spec.as_ref().and_then(|s| s.replicas),
        Some(1),
        "status writes ignore spec"
    );
    assert_eq!(with_status.metadata.generation, Some(1));
    let scaled = api
        .patch(
            "sub",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}, "status": {"replicas": 7}})),
        )
        .await
        .expect("spec patch");
    assert_eq!(
        scaled.status.and_then(|s| s.replicas),
        Some(1),
        "main writes keep the old status"
    );
    assert_eq!(
        scaled.metadata.generation,
        Some(2),
        "spec change bumps generation"
    );
}

/// 6. kube-runtime's finalizer(): add on a fresh object, delete → MODIFIED with deletionTimestamp,
/// cleanup → DELETED.
#[tokio::test]
async fn finalizer_helper_round_trip() {
    let (_emu, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let created = api
        .create(&PostParams::default(), &config_map("fin", &[]))
        .await
        .expect("create");
    let mut stream = api
        .watch(
            &WatchParams::default(),
            created.metadata.resource_version.as_deref().expect("rv"),
        )
        .await
        .expect("watch")
        .boxed();
    let reconcile = |ev: FEvent<ConfigMap>| async move {
        Ok::<_, std::io::Error>(match ev {
            FEvent::Apply(_) | FEvent::Cleanup(_) => Action::await_change(),
        })
    };
    finalizer(&api, "stowage.io/test", Arc::new(created), reconcile)
        .await
        .expect("finalizer added");
    let fresh = api.get("fin").await.expect("get");
    assert_eq!(
        fresh.metadata.finalizers.as_deref(),
        Some(&["stowage.io/test".to_string()][..])
    );
    api.delete("fin", &DeleteParams::default())
        .await
        .expect("delete");
    let deleting = within(5, "MODIFIED with deletionTimestamp", async {
        loop {
            if let Some(WatchEvent::Modified(cm)) = stream.try_next().await.expect("ok")
                && cm.metadata.deletion_timestamp.is_some()
            {
                return cm;
            }
        }
    })
    .await;
    let cleaned = std::sync::atomic::AtomicBool::new(false);
    finalizer(&api, "stowage.io/test", Arc::new(deleting), |ev| {
        if matches!(ev, FEvent::Cleanup(_)) {
            cleaned.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        async { Ok::<_, std::io::Error>(Action::await_change()) }
    })
    .await
    .expect("cleanup");
    assert!(cleaned.load(std::sync::atomic::Ordering::SeqCst));
    within(5, "DELETED", async {
        loop {
            if let Some(WatchEvent::Deleted(_)) = stream.try_next().await.expect("ok") {
                break;
            }
        }
    })
    .await;
    assert!(api.get_opt("fin").await.expect("get").is_none());
}

/// Adding a finalizer to an object that is being deleted is refused with 422.
#[tokio::test]
async fn no_new_finalizers_during_deletion() {
    let (_emu, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let mut cm = config_map("held", &[]);
    cm.metadata.finalizers = Some(vec!["a/b".into()]);
    api.create(&PostParams::default(), &cm)
        .await
        .expect("create");
    api.delete("held", &DeleteParams::default())
        .await
        .expect("delete marks it");
    let err = api
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["a/b", "c/d"]}})),
        )
        .await
        .expect_err("refused");
    assert!(is_status(&err, 422), "{err}");
    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("release");
    assert!(
        api.get_opt("held").await.expect("get").is_none(),
        "removing the last finalizer deletes it"
    );
}

/// 7. Server-side apply: create-on-apply, field removal, conflict, force.
#[tokio::test]
async fn server_side_apply_semantics() {
    let (_emu, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let a = PatchParams::apply("manager-a");
    let v1 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa", "labels": {"x": "1", "y": "2"}}, "data": {"k": "1", "j": "2"}});
    let created = api
        .patch("ssa", &a, &Patch::Apply(&v1))
        .await
        .expect("create on apply");
    assert_eq!(
        created
            .data
            .as_ref()
            .and_then(|d| d.get("k"))
            .map(String::as_str),
        Some("1")
    );
    assert!(
        created
            .metadata
            .managed_fields
            .as_ref()
            .is_some_and(|m| m.iter().any(|e| e.manager.as_deref() == Some("manager-a")))
    );

    let v2 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa", "labels": {"x": "1"}}, "data": {"k": "1"}});
    let shrunk = api
        .patch("ssa", &a, &Patch::Apply(&v2))
        .await
        .expect("re-apply");
    assert!(
        shrunk.data.as_ref().is_some_and(|d| !d.contains_key("j")),
        "a field the manager stopped sending is removed"
    );
    assert!(
        shrunk
            .metadata
            .labels
            .as_ref()
            .is_some_and(|l| !l.contains_key("y"))
    );

    // A second manager applying an identical value shares ownership, so the field outlives
    // the first manager dropping it.
    let c = PatchParams::apply("manager-c");
    let shared = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa", "labels": {"x": "1"}}});
    let co_owned = api
        .patch("ssa", &c, &Patch::Apply(&shared))
        .await
        .expect("shared apply");
    assert_ne!(
        co_owned.metadata.resource_version, shrunk.metadata.resource_version,
        "ownership change is persisted"
    );
    let a_without_label = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"k": "1"}});
    let kept = api
        .patch("ssa", &a, &Patch::Apply(&a_without_label))
        .await
        .expect("apply");
    assert_eq!(
        kept.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("x"))
            .map(String::as_str),
        Some("1")
    );
    let again = api
        .patch("ssa", &a, &Patch::Apply(&a_without_label))
        .await
        .expect("identical apply");
    assert_eq!(
        again.metadata.resource_version, kept.metadata.resource_version,
        "identical apply is a no-op"
    );

    let b = PatchParams::apply("manager-b");
    let clash = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"k": "other"}});
    let err = api
        .patch("ssa", &b, &Patch::Apply(&clash))
        .await
        .expect_err("conflict");
    assert!(is_status(&err, 409), "{err}");
    let forced = api
        .patch("ssa", &b.clone().force(), &Patch::Apply(&clash))
        .await
        .expect("force");
    assert_eq!(
        forced
            .data
            .as_ref()
            .and_then(|d| d.get("k"))
            .map(String::as_str),
        Some("other")
    );
    // manager-a lost data.k, so dropping it from a's config no longer removes it.
    let a_only_labels = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa", "labels": {"x": "1"}}});
    let after = api
        .patch("ssa", &a, &Patch::Apply(&a_only_labels))
        .await
        .expect("apply");
    assert_eq!(
        after
            .data
            .as_ref()
            .and_then(|d| d.get("k"))
            .map(String::as_str),
        Some("other")
    );
}

/// 10. Same name in two namespaces lists twice; a second create is AlreadyExists.
#[tokio::test]
async fn same_name_in_two_namespaces() {
    let (_emu, client) = start().await;
    create_namespace(&client, "team-a").await;
    create_namespace(&client, "team-b").await;
    for ns in ["team-a", "team-b"] {
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
        api.create(&PostParams::default(), &config_map("shared", &[]))
            .await
            .expect("create");
    }
    let all: Api<ConfigMap> = Api::all(client.clone());
    let names: Vec<_> = all
        .list(&Default::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .filter(|c| c.metadata.name.as_deref() == Some("shared"))
        .map(|c| c.metadata.namespace.unwrap_or_default())
        .collect();
    assert_eq!(names, vec!["team-a", "team-b"]);
    let api: Api<ConfigMap> = Api::namespaced(client, "team-a");
    let err = api
        .create(&PostParams::default(), &config_map("shared", &[]))
        .await
        .expect_err("duplicate");
    assert!(
        matches!(&err, kube::Error::Api(s) if s.is_already_exists()),
        "{err}"
    );
}

/// CRDs publish their kinds at once; custom resources get status subresources; deleting the CRD
/// deletes its objects.
#[tokio::test]
async fn crd_lifecycle() {
    let (_emu, client) = start().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    });
    let created = crds
        .create(
            &PostParams::default(),
            &serde_json::from_value(crd).expect("crd"),
        )
        .await
        .expect("create crd");
    let conditions = created
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default();
    assert!(
        conditions
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
    );

    let discovery = kube::Discovery::new(client.clone())
        .run()
        .await
        .expect("discovery");
    let (ar, caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("example.com", "v1", "Widget"))
        .expect("published");
    assert!(caps.subresources.iter().any(|(s, _)| s.plural == "status"));
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &ar);
    let w: DynamicObject =
        serde_json::from_value(json!({"apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w1"}, "spec": {"size": 1}, "status": {"ready": true}}))
        .expect("w");
    let w = api
        .create(&PostParams::default(), &w)
        .await
        .expect("create widget");
    assert!(
        w.data.get("status").is_none(),
        "create drops status of a CR with a status subresource"
    );
    let err = api
        .patch(
            "w1",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"size": 2}})),
        )
        .await
        .expect_err("415");
    assert!(is_status(&err, 415), "{err}");
    let wrong_kind: DynamicObject = serde_json::from_value(
        json!({"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"}}),
    )
    .expect("g");
    assert!(is_status(
        &api.create(&PostParams::default(), &wrong_kind)
            .await
            .expect_err("kind mismatch"),
        400
    ));
    crds.delete("widgets.example.com", &DeleteParams::default())
        .await
        .expect("delete crd");
    let gone = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("example.com", "v1", "Widget"),
        "widgets",
    );
    let api: Api<DynamicObject> = Api::namespaced_with(client, "default", &gone);
    assert!(is_status(&api.get("w1").await.expect_err("gone"), 404));
}

/// kube-runtime's recorder posts events.k8s.io Events; they are readable as core v1 Events too.
#[tokio::test]
async fn recorder_events_are_served_in_both_apis() {
    let (_emu, client) = start().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}})).expect("pod");
    let pod = pods
        .create(&PostParams::default(), &pod)
        .await
        .expect("pod");
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "stowage-test".into(),
            instance: None,
        },
    );
    let obj_ref = kube::Resource::object_ref(&pod, &());
    let ev = KEvent {
        type_: EventType::Warning,
        reason: "Testing".into(),
        note: Some("first".into()),
        action: "Test".into(),
        secondary: None,
    };
    recorder.publish(&ev, &obj_ref).await.expect("publish");
    recorder
        .publish(&ev, &obj_ref)
        .await
        .expect("publish again (series)");
    let core: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), "default");
    let list = core
        .list(&kube::api::ListParams::default().fields("involvedObject.name=p"))
        .await
        .expect("core list");
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].reason.as_deref(), Some("Testing"));
    let new: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client, "default");
    let items = new
        .list(&Default::default())
        .await
        .expect("events.k8s.io list")
        .items;
    assert_eq!(items.len(), 1);
    assert!(items[0].event_time.is_some());
    assert!(
        items[0].series.as_ref().is_some_and(|s| s.count >= 2),
        "repeat merges into series"
    );
}

/// Leases keep MicroTime exactly, refuse stale PUTs, and strategic-merge null deletes a field.
#[tokio::test]
async fn leases_behave_like_the_real_server() {
    let (_emu, client) = start().await;
    let api: Api<Lease> = Api::namespaced(client, "default");
    let lease: Lease = serde_json::from_value(json!({"metadata": {"name": "leader"},
        "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15, "renewTime": "2025-01-02T03:04:05.123456Z"}}))
    .expect("lease");
    let created = api
        .create(&PostParams::default(), &lease)
        .await
        .expect("create");
    let raw = serde_json::to_value(&created).expect("json");
    assert_eq!(raw["spec"]["renewTime"], "2025-01-02T03:04:05.123456Z");
    let mut stale = created.clone();
    api.patch(
        "leader",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"holderIdentity": "b"}})),
    )
    .await
    .expect("patch");
    stale.spec.as_mut().expect("spec").holder_identity = Some("c".into());
    assert!(is_status(
        &api.replace("leader", &PostParams::default(), &stale)
            .await
            .expect_err("stale"),
        409
    ));
    let mut no_rv = created.clone();
    no_rv.metadata.resource_version = None;
    assert!(is_status(
        &api.replace("leader", &PostParams::default(), &no_rv)
            .await
            .expect_err("no rv"),
        422
    ));
    let cleared = api
        .patch(
            "leader",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"holderIdentity": null}})),
        )
        .await
        .expect("strategic");
    assert!(cleared.spec.and_then(|s| s.holder_identity).is_none());
}

/// Background deletion removes dependents; Orphan strips their owner references.
#[tokio::test]
async fn propagation_policies() {
    let (_emu, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    for (owner, policy) in [
        ("owner-bg", DeleteParams::background()),
        ("owner-or", DeleteParams::orphan()),
    ] {
        let o = api
            .create(&PostParams::default(), &config_map(owner, &[]))
            .await
            .expect("owner");
        let mut dep = config_map(&format!("{owner}-dep"), &[]);
        dep.metadata.owner_references = Some(vec![
            k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                name: owner.into(),
                uid: o.metadata.uid.clone().expect("uid"),
                ..Default::default()
            },
        ]);
        api.create(&PostParams::default(), &dep)
            .await
            .expect("dependent");
        api.delete(owner, &policy).await.expect("delete owner");
    }
    assert!(
        api.get_opt("owner-bg-dep").await.expect("get").is_none(),
        "background deletes dependents"
    );
    let orphan = api.get("owner-or-dep").await.expect("orphan kept");
    assert!(
        orphan
            .metadata
            .owner_references
            .unwrap_or_default()
            .is_empty()
    );
    // dryRun and preconditions
    api.create(&PostParams::default(), &config_map("keep", &[]))
        .await
        .expect("create");
    let dry = DeleteParams {
        dry_run: true,
        ..Default::default()
    };
    api.delete("keep", &dry).await.expect("dry run");
    assert!(api.get_opt("keep").await.expect("get").is_some());
    let wrong = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: Some("nope".into()),
            resource_version: None,
        }),
        ..Default::default()
    };
    assert!(is_status(
        &api.delete("keep", &wrong).await.expect_err("precondition"),
        409
    ));
    tokio::time::sleep(Duration::from_millis(1)).await;
}

/// generateName appends five characters; list pages share one resourceVersion.
#[tokio::test]
async fn generate_name_and_paging() {
    let (_emu, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let mut cm = config_map("", &[]);
    cm.metadata.name = None;
    cm.metadata.generate_name = Some("gen-".into());
    let made = api
        .create(&PostParams::default(), &cm)
        .await
        .expect("create");
    let name = made.metadata.name.expect("name");
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");
    for i in 0..7 {
        api.create(&PostParams::default(), &config_map(&format!("p{i}"), &[]))
            .await
            .expect("create");
    }
    let lp = kube::api::ListParams::default().limit(3);
    let first = api.list(&lp).await.expect("page 1");
    let rv = first.metadata.resource_version.clone();
    api.create(&PostParams::default(), &config_map("late", &[]))
        .await
        .expect("create during paging");
    let mut names: Vec<String> = first
        .items
        .iter()
        .filter_map(|c| c.metadata.name.clone())
        .collect();
    let mut token = first.metadata.continue_;
    while let Some(t) = token.filter(|t| !t.is_empty()) {
        let page = api
            .list(&lp.clone().continue_token(&t))
            .await
            .expect("page");
        assert_eq!(
            page.metadata.resource_version, rv,
            "every page shares the first page's resourceVersion"
        );
        names.extend(page.items.iter().filter_map(|c| c.metadata.name.clone()));
        token = page.metadata.continue_;
    }
    assert_eq!(
        names.len(),
        8,
        "the object created mid-paging is not in this list: {names:?}"
    );
    assert!(!names.contains(&"late".to_string()));
}

/// A list or watch stream from `all` namespaces sees every namespace's objects.
#[tokio::test]
async fn all_namespace_watch() {
    let (_emu, client) = start().await;
    create_namespace(&client, "other").await;
    let all: Api<ConfigMap> = Api::all(client.clone());
    let mut stream = all
        .watch(&WatchParams::default(), "0")
        .await
        .expect("watch")
        .boxed();
    let other: Api<ConfigMap> = Api::namespaced(client, "other");
    other
        .create(&PostParams::default(), &config_map("o", &[]))
        .await
        .expect("create");
    let ev = within(5, "an event from another namespace", stream.next())
        .await
        .expect("event")
        .expect("ok");
    assert!(
        matches!(ev, WatchEvent::Added(cm) if cm.metadata.namespace.as_deref() == Some("other"))
    );
}
