//! Watch semantics as kube-runtime depends on them (scenarios 1–4 and 8 of the spec).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde_json::json;
use stowage_emulator::EmulatorConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{config_map, labelled, start, start_with, within};

/// 1. A watcher whose history was trimmed relists (Event::Init again) after the in-band 410.
#[tokio::test]
async fn trimmed_history_makes_the_watcher_relist() {
    let (emu, client) = start_with(EmulatorConfig {
        history: 5,
        ..Default::default()
    })
    .await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let mut events = watcher(api.clone(), watcher::Config::default()).boxed();
    within(10, "initial InitDone", async {
        while let Some(ev) = events.try_next().await.expect("watch ok") {
            if matches!(ev, watcher::Event::InitDone) {
                break;
            }
        }
    })
    .await;
    // Keep the watcher away while more changes happen than the history holds.
    emu.faults()
        .fail(&["watch"], 500, Duration::from_millis(1500));
    emu.faults().drop_watches();
    for i in 0..20 {
        api.create(
            &PostParams::default(),
            &config_map(&format!("cm-{i}"), &[("i", "x")]),
        )
        .await
        .expect("create");
    }
    let saw_relist = within(15, "a second Event::Init", async {
        loop {
            match events.next().await {
                Some(Ok(watcher::Event::Init)) => return true,
                Some(_) => continue,
                None => return false,
            }
        }
    })
    .await;
    assert!(saw_relist, "the watcher must relist after a 410");
    let mut seen = 0;
    within(10, "the relist to deliver all objects", async {
        while let Some(ev) = events.try_next().await.transpose() {
            match ev {
                Ok(watcher::Event::InitApply(_)) => seen += 1,
                Ok(watcher::Event::InitDone) => break,
                _ => {}
            }
        }
    })
    .await;
    assert_eq!(seen, 20);
}

/// 2. A reflector on an empty kind reaches InitDone, with paged lists and with streaming lists.
#[tokio::test]
async fn reflector_on_empty_kind_becomes_ready() {
    let (_emu, client) = start().await;
    for streaming in [false, true] {
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-public");
        let (reader, writer) = reflector::store();
        let cfg = if streaming {
            watcher::Config::default().streaming_lists()
        } else {
            watcher::Config::default()
        };
        let stream = reflector(writer, watcher(api, cfg)).applied_objects();
        let task = tokio::spawn(stream.for_each(|_| async {}));
        within(
            10,
            "the reflector store to become ready",
            reader.wait_until_ready(),
        )
        .await
        .expect("ready");
        assert!(reader.state().is_empty());
        task.abort();
    }
}

/// 3. Under a concurrent writer the reflector ends equal to the server; MODIFIED counts are exact.
#[tokio::test]
async fn reflector_matches_server_under_concurrent_writes() {
    let (_emu, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let (reader, writer) = reflector::store();
    let task = tokio::spawn(
        reflector(writer, watcher(api.clone(), watcher::Config::default())).for_each(|_| async {}),
    );
    within(10, "reflector ready", reader.wait_until_ready())
        .await
        .expect("ready");

    let start_rv = api
        .list(&Default::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv");
    let raw = api
        .watch(&WatchParams::default(), &start_rv)
        .await
        .expect("raw watch")
        .boxed();
    let counter = tokio::spawn(async move {
        let mut modified = 0u32;
        let mut raw = raw;
        while let Some(ev) = raw.next().await {
            match ev {
                Ok(WatchEvent::Modified(cm)) if cm.metadata.name.as_deref() == Some("done") => {
                    break;
                }
                Ok(WatchEvent::Modified(_)) => modified += 1,
                Ok(WatchEvent::Added(cm)) if cm.metadata.name.as_deref() == Some("done") => break,
                Ok(_) => {}
                Err(e) => panic!("watch error {e}"),
            }
        }
        modified
    });

    let mut updates = 0u32;
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let api = api.clone();
            tokio::spawn(async move {
                let mut updates = 0u32;
                for i in 0..25 {
                    let name = format!("w{w}-{i}");
                    api.create(&PostParams::default(), &config_map(&name, &[("v", "0")]))
                        .await
                        .expect("create");
                    for v in 1..=3 {
                        let patch = json!({"data": {"v": v.to_string()}});
                        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                            .await
                            .expect("patch");
                        updates += 1;
                    }
                    if i % 3 == 0 {
                        api.delete(&name, &DeleteParams::default())
                            .await
                            .expect("delete");
                    }
                }
                updates
            })
        })
        .collect();
    for w in writers {
        updates += w.await.expect("writer");
    }
    api.create(&PostParams::default(), &config_map("done", &[]))
        .await
        .expect("marker");
    let modified = within(20, "the raw watch to see the marker", counter)
        .await
        .expect("counter");
    assert_eq!(modified, updates, "one MODIFIED per effective update");

    let server: BTreeMap<String, Option<BTreeMap<String, String>>> = api
        .list(&Default::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .map(|cm| (cm.metadata.name.unwrap_or_default(), cm.data))
        .collect();
    within(10, "the reflector to converge", async {
        loop {
            let local: BTreeMap<String, Option<BTreeMap<String, String>>> = reader
                .state()
                .iter()
                .map(|cm| {
                    (
                        cm.metadata.name.clone().unwrap_or_default(),
                        cm.data.clone(),
                    )
                })
                .collect();
            if local == server {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    task.abort();
}

/// 4a. After a reconnect a deletion is not delivered twice.
#[tokio::test]
async fn no_duplicate_delete_after_reconnect() {
    let (emu, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let mut events = watcher(api.clone(), watcher::Config::default()).boxed();
    within(10, "InitDone", async {
        while let Some(ev) = events.try_next().await.expect("ok") {
            if matches!(ev, watcher::Event::InitDone) {
                break;
            }
        }
    })
    .await;
    api.create(&PostParams::default(), &config_map("gone", &[]))
        .await
        .expect("create");
    api.delete("gone", &DeleteParams::default())
        .await
        .expect("delete");
    let mut deletes = 0;
    within(10, "the delete event", async {
        while let Some(ev) = events.try_next().await.expect("ok") {
            if matches!(ev, watcher::Event::Delete(_)) {
                deletes += 1;
                break;
            }
        }
    })
    .await;
    emu.faults().drop_watches();
    api.create(&PostParams::default(), &config_map("after", &[]))
        .await
        .expect("create");
    within(10, "the object created after the reconnect", async {
        while let Some(ev) = events.try_next().await.expect("ok") {
            match ev {
                watcher::Event::Delete(_) => deletes += 1,
                watcher::Event::Apply(cm) if cm.metadata.name.as_deref() == Some("after") => break,
                _ => {}
            }
        }
    })
    .await;
    assert_eq!(deletes, 1);
}

/// 4b. A relabelled object leaves a label-filtered reflector.
#[tokio::test]
async fn relabelled_object_leaves_filtered_reflector() {
    let (_emu, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let (reader, writer) = reflector::store();
    let cfg = watcher::Config::default().labels("app=web");
    let task = tokio::spawn(reflector(writer, watcher(api.clone(), cfg)).for_each(|_| async {}));
    within(10, "ready", reader.wait_until_ready())
        .await
        .expect("ready");
    api.create(
        &PostParams::default(),
        &labelled(config_map("x", &[]), &[("app", "web")]),
    )
    .await
    .expect("create");
    within(10, "x to enter the store", async {
        while reader.state().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let patch = json!({"metadata": {"labels": {"app": "db"}}});
    api.patch("x", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("relabel");
    within(10, "x to leave the store", async {
        while !reader.state().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    task.abort();
}

/// 8. Over a raw socket a watch delivers its first event within 100 ms and ends at timeoutSeconds.
#[tokio::test]
async fn raw_watch_is_prompt_and_times_out() {
    let (emu, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let rv = emu.resource_version();
    let mut sock = tokio::net::TcpStream::connect(emu.addr())
        .await
        .expect("connect");
    let req = format!(
        "GET /api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}&timeoutSeconds=2 HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\n\r\n"
    );
    sock.write_all(req.as_bytes()).await.expect("write");
    let mut buf = vec![0u8; 65536];
    let mut got = Vec::new();
    // Headers arrive at once, before any event.
    within(2, "response headers", async {
        while !String::from_utf8_lossy(&got).contains("\r\n\r\n") {
            let n = sock.read(&mut buf).await.expect("read");
            assert!(n > 0, "connection closed early");
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    let head = String::from_utf8_lossy(&got).to_string();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    got.clear();
    let opened = Instant::now();
    let created = Instant::now();
    api.create(&PostParams::default(), &config_map("prompt", &[]))
        .await
        .expect("create");
    within(2, "the ADDED event", async {
        while !String::from_utf8_lossy(&got).contains("\"ADDED\"") {
            let n = sock.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed before the event");
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    let lag = created.elapsed();
    assert!(lag < Duration::from_millis(100), "first event took {lag:?}");
    let text = String::from_utf8_lossy(&got).to_string();
    let line = text
        .lines()
        .find(|l| l.contains("\"ADDED\""))
        .expect("event line");
    let ev: serde_json::Value =
        serde_json::from_str(line).expect("one compact JSON object per line");
    assert_eq!(ev["object"]["metadata"]["name"], "prompt");
    within(5, "the stream to end at timeoutSeconds", async {
        loop {
            let n = sock.read(&mut buf).await.expect("read");
            got.extend_from_slice(&buf[..n]);
            if n == 0 || String::from_utf8_lossy(&got).contains("\r\n0\r\n\r\n") {
                break;
            }
        }
    })
    .await;
    let ended = opened.elapsed();
    assert!(
        ended >= Duration::from_millis(1800),
        "ended too early: {ended:?}"
    );
}

/// Streaming lists end the initial events with a BOOKMARK annotated `k8s.io/initial-events-end`.
#[tokio::test]
async fn streaming_list_marks_initial_events_end() {
    let (_emu, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    for i in 0..3 {
        api.create(&PostParams::default(), &config_map(&format!("s{i}"), &[]))
            .await
            .expect("create");
    }
    let wp = WatchParams::streaming_lists();
    let mut stream = api.watch(&wp, "0").await.expect("watch").boxed();
    let mut added = 0;
    within(5, "the initial-events-end bookmark", async {
        while let Some(ev) = stream.try_next().await.expect("ok") {
            match ev {
                WatchEvent::Added(_) => added += 1,
                WatchEvent::Bookmark(bm) => {
                    assert_eq!(
                        bm.metadata
                            .annotations
                            .get("k8s.io/initial-events-end")
                            .map(String::as_str),
                        Some("true")
                    );
                    break;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    })
    .await;
    assert_eq!(added, 3);
}
