//! `crds/` must hold exactly what the Rust types generate; regenerate with `make crds`.

use std::collections::BTreeSet;
use std::path::Path;

#[test]
fn committed_crds_match_the_types() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let hint = "crds/ is out of date with src/crd.rs; run `make crds` \
                (or `cargo run -- crd --output-dir crds`) and commit the result";
    let mut expected = BTreeSet::new();
    for definition in stowage::crd::all() {
        let name = stowage::crd::file_name(&definition);
        let generated = stowage::crd::render(&definition).expect("render CRD");
        let committed = std::fs::read(dir.join(&name)).unwrap_or_default();
        assert!(
            committed == generated.as_bytes(),
            "crds/{name} differs from the generated CRD: {hint}"
        );
        expected.insert(name);
    }
    let committed: BTreeSet<String> = std::fs::read_dir(&dir)
        .expect("read crds/")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".yaml") || name.ends_with(".yml"))
        .collect();
    let stale: Vec<_> = committed.difference(&expected).collect();
    assert!(
        stale.is_empty(),
        "crds/ holds files no type generates ({stale:?}): {hint}"
    );
}
