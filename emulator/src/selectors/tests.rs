//! Unit tests for label and field selectors.

use serde_json::{Map, Value, json};

use super::*;

fn labels(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("labels must be an object"),
    }
}

#[test]
fn label_selector_matching_table() {
    let l = labels(
        json!({"app": "web", "tier": "front", "example.com/team": "a", "n": "5", "empty": ""}),
    );
    let cases: &[(&str, bool)] = &[
        ("", true),
        ("   ", true),
        ("app=web", true),
        ("app==web", true),
        ("app = web", true),
        ("app=db", false),
        ("app!=db", true),
        ("app!=web", false),
        ("missing!=x", true),
        ("app in (web,db)", true),
        ("app in ( db , api )", false),
        ("app notin (db)", true),
        ("app notin (web)", false),
        ("missing notin (x)", true),
        ("missing in (x)", false),
        ("app", true),
        ("missing", false),
        ("!missing", true),
        ("! app", false),
        ("app=web,tier=front", true),
        ("app=web, tier=back", false),
        ("app=web,!missing,tier in (front)", true),
        ("example.com/team=a", true),
        ("empty=", true),
        ("empty in (,x)", true),
        ("app=", false),
        ("n>4", true),
        ("n>5", false),
        ("n<6", true),
        ("app>1", false),
        ("missing<100", false),
        ("app in (in,notin,web)", true),
    ];
    for (sel, want) in cases {
        let parsed = LabelSelector::parse(sel).unwrap_or_else(|e| panic!("{sel:?}: {e}"));
        assert_eq!(parsed.matches(Some(&l)), *want, "selector {sel:?}");
        // Labels held as strings (the memory store's label sets) give the same answers.
        let strings = |key: &str| l.get(key).and_then(Value::as_str);
        assert_eq!(parsed.matches_strings(strings), *want, "strings {sel:?}");
    }
}

#[test]
fn label_selector_without_labels() {
    let cases: &[(&str, bool)] = &[
        ("", true),
        ("a", false),
        ("!a", true),
        ("a!=b", true),
        ("a=b", false),
    ];
    for (sel, want) in cases {
        let parsed = LabelSelector::parse(sel).unwrap_or_else(|e| panic!("{sel:?}: {e}"));
        assert_eq!(parsed.matches(None), *want, "selector {sel:?}");
        assert_eq!(parsed.matches_strings(|_| None), *want, "strings {sel:?}");
    }
}

#[test]
fn label_selector_rejects_garbage() {
    let cases: &[(&str, &str)] = &[
        ("a in b", "found 'b', expected: '('"),
        ("=x", "found '=', expected: !, identifier"),
        ("a in (b", "found 'end of string', expected: ',' or ')'"),
        ("a in (b))", "found ')', expected: ',' or 'end of string'"),
        ("a in ()", "values set can't be empty"),
        ("a=b,", "expected: identifier after ','"),
        (",a=b", "found ','"),
        ("a b", "found 'b', expected: in, notin"),
        ("!a=b", "found '=', expected: ',' or 'end of string'"),
        ("a=(b)", "found '(', expected: identifier"),
        ("a=b c", "found 'c'"),
        ("a>x", "must be an integer"),
        ("-a=b", "invalid label key \"-a\""),
        ("/a=b", "prefix part must be non-empty"),
        ("Example.com/a=b", "invalid label key"),
        ("a/b/c=d", "invalid label key"),
        ("a=-b", "invalid label value \"-b\""),
        ("a in (ok,b@d)", "invalid label value \"b@d\""),
        ("in=b", "found 'in'"),
    ];
    for (sel, needle) in cases {
        match LabelSelector::parse(sel) {
            Ok(s) => panic!("{sel:?} parsed as {s:?}"),
            Err(e) => assert!(
                e.to_string().contains(needle),
                "{sel:?}: {e} lacks {needle:?}"
            ),
        }
    }
    let long = format!("a={}", "x".repeat(64));
    assert!(LabelSelector::parse(&long).is_err());
}

#[test]
fn label_selector_is_empty() {
    assert!(
        LabelSelector::parse("")
            .map(|s| s.is_empty())
            .unwrap_or(false)
    );
    assert!(
        !LabelSelector::parse("a")
            .map(|s| s.is_empty())
            .unwrap_or(true)
    );
}

#[test]
fn field_selector_parse_and_match_table() {
    let pod = json!({
        "metadata": {"name": "p1", "namespace": "ns"},
        "spec": {"nodeName": "n1", "hostNetwork": true},
        "status": {"phase": "Running"}
    });
    let allowed = supported_fields("", "pods");
    let cases: &[(&str, bool)] = &[
        ("", true),
        ("metadata.name=p1", true),
        ("metadata.name==p1", true),
        ("metadata.name!=p1", false),
        ("metadata.name=p2", false),
        ("metadata.namespace=ns,status.phase=Running", true),
        ("metadata.namespace=ns,status.phase!=Running", false),
        ("spec.nodeName=n1", true),
        ("spec.nodeName=", false),
        ("status.podIP=", true),
        ("status.podIP!=", false),
        ("spec.hostNetwork=true", true),
        ("spec.hostNetwork!=false", true),
        (" metadata.name = p1 ", true),
        ("metadata.name=p1,", true),
    ];
    for (sel, want) in cases {
        let parsed = FieldSelector::parse(sel, allowed).unwrap_or_else(|e| panic!("{sel:?}: {e}"));
        assert_eq!(parsed.matches(&pod), *want, "selector {sel:?}");
        assert_eq!(
            parsed.matches_for("", "pods", &pod),
            *want,
            "selector {sel:?} via matches_for"
        );
    }
}

#[test]
fn field_selector_escapes() {
    let obj = json!({"metadata": {"name": "a,b=c\\d"}});
    let sel =
        FieldSelector::parse("metadata.name=a\\,b\\=c\\\\d", &[]).unwrap_or_else(|e| panic!("{e}"));
    assert!(sel.matches(&obj));
    let cases: &[(&str, &str)] = &[
        ("metadata.name=a\\x", "invalid escape sequence: \\x"),
        ("metadata.name=a\\", "invalid escape sequence"),
        ("metadata.name=a=b", "unescaped character '='"),
    ];
    for (sel, needle) in cases {
        match FieldSelector::parse(sel, &[]) {
            Ok(s) => panic!("{sel:?} parsed as {s:?}"),
            Err(e) => assert!(
                e.to_string().contains(needle),
                "{sel:?}: {e} lacks {needle:?}"
            ),
        }
    }
}

#[test]
fn field_selector_rejects_unsupported_and_malformed() {
    let cases: &[(&str, &[&str], SelectorError)] = &[
        (
            "spec.foo=x",
            &[],
            SelectorError::UnsupportedField("spec.foo".into()),
        ),
        (
            "status.phase=Running",
            &[],
            SelectorError::UnsupportedField("status.phase".into()),
        ),
        (
            "metadata.name",
            &[],
            SelectorError::InvalidFieldTerm {
                selector: "metadata.name".into(),
                term: "metadata.name".into(),
            },
        ),
        (
            "=x",
            &[],
            SelectorError::InvalidFieldTerm {
                selector: "=x".into(),
                term: "=x".into(),
            },
        ),
    ];
    for (sel, allowed, want) in cases {
        assert_eq!(
            FieldSelector::parse(sel, allowed).as_ref(),
            Err(want),
            "selector {sel:?}"
        );
    }
    assert_eq!(
        SelectorError::UnsupportedField("spec.foo".into()).to_string(),
        "field label not supported: spec.foo"
    );
}

#[test]
fn field_selector_zero_values_and_aliases() {
    let node = json!({"metadata": {"name": "n"}, "spec": {}});
    let job = json!({"metadata": {"name": "j"}, "status": {"succeeded": 2}});
    let rs = json!({"metadata": {"name": "r"}, "status": {}});
    let pod = json!({"metadata": {"name": "p"}, "spec": {}});
    let core_event = json!({
        "metadata": {"name": "e"},
        "involvedObject": {"kind": "Pod", "name": "p"},
        "source": {"component": "kubelet"},
        "reportingComponent": "kubelet-rc",
        "type": "Warning"
    });
    let v1_event = json!({
        "metadata": {"name": "e"},
        "regarding": {"kind": "Pod", "name": "p"},
        "reportingController": "ctrl",
        "type": "Normal"
    });
    let cases: &[(&str, &str, &Value, &str, bool)] = &[
        ("", "nodes", &node, "spec.unschedulable=false", true),
        ("", "nodes", &node, "spec.unschedulable=true", false),
        ("", "pods", &pod, "spec.hostNetwork=false", true),
        ("batch", "jobs", &job, "status.successful=2", true),
        ("apps", "replicasets", &rs, "status.replicas=0", true),
        ("", "events", &core_event, "source=kubelet", true),
        (
            "",
            "events",
            &core_event,
            "reportingComponent=kubelet-rc",
            true,
        ),
        (
            "",
            "events",
            &core_event,
            "involvedObject.kind=Pod,type=Warning",
            true,
        ),
        (
            "events.k8s.io",
            "events",
            &v1_event,
            "involvedObject.kind=Pod",
            true,
        ),
        (
            "events.k8s.io",
            "events",
            &v1_event,
            "involvedObject.name=q",
            false,
        ),
        (
            "events.k8s.io",
            "events",
            &v1_event,
            "reportingComponent=ctrl",
            true,
        ),
        ("events.k8s.io", "events", &v1_event, "source=ctrl", true),
        (
            "events.k8s.io",
            "events",
            &v1_event,
            "involvedObject.uid=",
            true,
        ),
        (
            "events.k8s.io",
            "events",
            &v1_event,
            "type=Normal,reason=",
            true,
        ),
    ];
    for (group, plural, obj, sel, want) in cases {
        let parsed = FieldSelector::parse(sel, supported_fields(group, plural))
            .unwrap_or_else(|e| panic!("{group}/{plural} {sel:?}: {e}"));
        assert_eq!(
            parsed.matches_for(group, plural, obj),
            *want,
            "{group}/{plural} {sel:?}"
        );
    }
}

#[test]
fn field_selector_matches_with_resolver() {
    let sel = FieldSelector::parse("a=1,b!=2", &["a", "b"]).unwrap_or_else(|e| panic!("{e}"));
    assert!(sel.matches_with(|f| (f == "a").then(|| "1".to_string())));
    assert!(!sel.matches_with(|f| Some(if f == "a" { "1" } else { "2" }.to_string())));
}

#[test]
fn supported_fields_table() {
    let cases: &[(&str, &str, Option<&str>, usize)] = &[
        ("", "pods", Some("status.podIP"), 8),
        ("", "events", Some("involvedObject.uid"), 11),
        ("events.k8s.io", "events", Some("source"), 11),
        ("", "secrets", Some("type"), 1),
        ("", "nodes", Some("spec.unschedulable"), 1),
        ("", "namespaces", Some("status.phase"), 1),
        ("apps", "replicasets", Some("status.replicas"), 1),
        ("batch", "jobs", Some("status.successful"), 1),
        ("", "services", Some("spec.type"), 2),
        ("", "persistentvolumeclaims", None, 0),
        ("", "persistentvolumes", None, 0),
        ("apps", "deployments", None, 0),
        ("", "replicasets", None, 0),
    ];
    for (group, plural, contains, len) in cases {
        let fields = supported_fields(group, plural);
        assert_eq!(fields.len(), *len, "{group}/{plural}");
        if let Some(f) = contains {
            assert!(fields.contains(f), "{group}/{plural} lacks {f}");
        }
    }
}
