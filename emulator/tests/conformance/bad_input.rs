//! Bad input gets a `Status` with the right code, never a panic or a dropped connection.

use serde_json::Value;

use crate::common::start;

async fn call(
    url: &str,
    method: reqwest::Method,
    path: &str,
    content_type: &str,
    body: &str,
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let resp = client
        .request(method, format!("{url}{path}"))
        .header("Content-Type", content_type)
        .body(body.to_string())
        .send()
        .await
        .expect("the server answers");
    let code = resp.status().as_u16();
    let body: Value = resp.json().await.expect("a JSON body");
    (code, body)
}

#[tokio::test]
async fn errors_are_status_objects_with_matching_codes() {
    let (emu, _client) = start().await;
    let url = emu.url();
    let cases: &[(reqwest::Method, &str, &str, &str, u16, &str)] = &[
        (
            reqwest::Method::POST,
            "/api/v1/namespaces/default/configmaps",
            "application/json",
            "{not json",
            400,
            "BadRequest",
        ),
        (
            reqwest::Method::POST,
            "/api/v1/namespaces/default/configmaps",
            "application/json",
            "[1,2]",
            400,
            "BadRequest",
        ),
        (
            reqwest::Method::GET,
            "/api/v1/namespaces/default/frobnicators",
            "application/json",
            "",
            404,
            "NotFound",
        ),
        (
            reqwest::Method::GET,
            "/apis/nope.example.com/v1/things",
            "application/json",
            "",
            404,
            "NotFound",
        ),
        (
            reqwest::Method::GET,
            "/api/v1/namespaces/default/configmaps/missing",
            "application/json",
            "",
            404,
            "NotFound",
        ),
        (
            reqwest::Method::POST,
            "/api/v1/namespaces/absent/configmaps",
            "application/json",
            r#"{"metadata":{"name":"a"}}"#,
            404,
            "NotFound",
        ),
        (
            reqwest::Method::POST,
            "/api/v1/namespaces/default/configmaps",
            "application/json",
            r#"{"metadata":{"name":"a","namespace":"other"}}"#,
            400,
            "BadRequest",
        ),
        (
            reqwest::Method::POST,
            "/api/v1/namespaces/default/configmaps",
            "text/plain",
            "hello",
            415,
            "UnsupportedMediaType",
        ),
        (
            reqwest::Method::GET,
            "/api/v1/pods?fieldSelector=spec.bogus%3Dx",
            "application/json",
            "",
            400,
            "BadRequest",
        ),
        (
            reqwest::Method::GET,
            "/api/v1/pods?labelSelector=a%20in%20b",
            "application/json",
            "",
            400,
            "BadRequest",
        ),
        (
            reqwest::Method::GET,
            "/api/v1/pods?limit=abc",
            "application/json",
            "",
            400,
            "BadRequest",
        ),
        (
            reqwest::Method::GET,
            "/api/v1/pods?limit=1&continue=garbage",
            "application/json",
            "",
            400,
            "BadRequest",
        ),
        (
            reqwest::Method::POST,
            "/api/v1/namespaces/default/configmaps",
            "application/json",
            r#"{"metadata":{}}"#,
            422,
            "Invalid",
        ),
    ];
    for (method, path, ct, body, code, reason) in cases {
        let (got, status) = call(&url, method.clone(), path, ct, body).await;
        assert_eq!(got, *code, "{method} {path}: {status}");
        assert_eq!(status["kind"], "Status", "{path}");
        assert_eq!(status["code"], *code, "{path}");
        assert_eq!(status["reason"], *reason, "{path}: {status}");
    }
    // An unsupported patch type on an existing object is 415.
    call(
        &url,
        reqwest::Method::POST,
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        r#"{"metadata":{"name":"p"}}"#,
    )
    .await;
    let (code, status) = call(
        &url,
        reqwest::Method::PATCH,
        "/api/v1/namespaces/default/configmaps/p",
        "application/x-weird",
        "{}",
    )
    .await;
    assert_eq!(
        (code, status["reason"].as_str()),
        (415, Some("UnsupportedMediaType"))
    );
    let (code, _) = call(
        &url,
        reqwest::Method::PATCH,
        "/api/v1/namespaces/default/configmaps/p",
        "application/merge-patch+json",
        "{oops",
    )
    .await;
    assert_eq!(code, 400);
    let (code, status) = call(
        &url,
        reqwest::Method::PATCH,
        "/api/v1/namespaces/default/configmaps/p",
        "application/json-patch+json",
        r#"[{"op":"test","path":"/data/x","value":"1"}]"#,
    )
    .await;
    assert_eq!(code, 422, "{status}");
}

#[tokio::test]
async fn bearer_token_is_enforced_when_set() {
    let config = stowage_emulator::EmulatorConfig {
        token: Some("s3cret".into()),
        ..Default::default()
    };
    let emu = stowage_emulator::Emulator::start(config)
        .await
        .expect("start");
    let client = reqwest::Client::new();
    let anon = client
        .get(format!("{}/api/v1/namespaces", emu.url()))
        .send()
        .await
        .expect("answer");
    assert_eq!(anon.status().as_u16(), 401);
    let ok = client
        .get(format!("{}/api/v1/namespaces", emu.url()))
        .bearer_auth("s3cret")
        .send()
        .await
        .expect("answer");
    assert_eq!(ok.status().as_u16(), 200);
    // The kubeconfig carries the token, so kube-rs authenticates with it.
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("kubeconfig");
    emu.write_kubeconfig(&path).expect("write");
    let kc = kube::config::Kubeconfig::read_from(&path).expect("parse");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("config");
    let client = kube::Client::try_from(cfg).expect("client");
    let version = client.apiserver_version().await.expect("authenticated");
    assert_eq!(version.major, "1");
}

#[tokio::test]
async fn injected_faults_answer_with_the_chosen_code() {
    let (emu, _client) = start().await;
    let client = reqwest::Client::new();
    let set = client
        .post(format!("{}/_emulator/faults", emu.url()))
        .body(r#"{"fail":{"verbs":["list"],"code":429,"seconds":30}}"#)
        .send()
        .await
        .expect("answer");
    assert_eq!(set.status().as_u16(), 200);
    let list = client
        .get(format!(
            "{}/api/v1/namespaces/default/configmaps",
            emu.url()
        ))
        .send()
        .await
        .expect("answer");
    assert_eq!(list.status().as_u16(), 429);
    assert!(list.headers().contains_key("retry-after"));
    let get = client
        .get(format!("{}/api/v1/namespaces/default", emu.url()))
        .send()
        .await
        .expect("answer");
    assert_eq!(get.status().as_u16(), 200, "other verbs are unaffected");
    let bad = client
        .post(format!("{}/_emulator/faults", emu.url()))
        .body(r#"{"fail":{"verbs":["list"],"code":404,"seconds":1}}"#)
        .send()
        .await
        .expect("answer");
    assert_eq!(bad.status().as_u16(), 400);
}
