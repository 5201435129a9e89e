//! Renders `charts/stowage` the way `helm template` does, without helm: values.yaml deep-merged
//! with a values file, `.Values`, `.Release`, `.Chart` given to each template under `templates/`
//! (gtmpl plus the Helm functions in `funcs`), the output split into YAML documents.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use gtmpl_value::Value;

use super::funcs::{HELM_FUNCS, from_serde};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn chart_dir() -> PathBuf {
    repo().join("charts/stowage")
}

/// One rendered manifest: the template it came from and the parsed document.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub template: String,
    pub doc: serde_yaml::Value,
}

impl Manifest {
    pub fn kind(&self) -> &str {
        self.doc["kind"].as_str().unwrap_or("")
    }
    pub fn name(&self) -> &str {
        self.doc["metadata"]["name"].as_str().unwrap_or("")
    }
}

/// What `helm template` would produce: manifests and the NOTES.txt text.
#[derive(Debug)]
pub struct Rendered {
    pub manifests: Vec<Manifest>,
    pub notes: String,
}

impl Rendered {
    pub fn find(&self, kind: &str, name: &str) -> Option<&Manifest> {
        self.manifests
            .iter()
            .find(|m| m.kind() == kind && m.name() == name)
    }

    pub fn kinds(&self) -> Vec<String> {
        self.manifests.iter().map(|m| m.kind().to_owned()).collect()
    }

    /// All manifests as one multi-document YAML stream.
    pub fn to_yaml(&self) -> String {
        self.manifests
            .iter()
            .map(|m| {
                let doc = serde_yaml::to_string(&m.doc).expect("YAML");
                format!("---\n# Source: stowage/{}\n{doc}", m.template)
            })
            .collect()
    }
}

/// Release settings (`helm install NAME --namespace NS`).
pub struct Release<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    /// `.Release.Service`: "Helm" under helm; the plain manifests in deploy/ use another value.
    pub service: &'a str,
}

pub const RELEASE: Release<'static> = Release {
    name: "stowage",
    namespace: "stowage",
    service: "Helm",
};

/// Helm's value merge: maps merge key by key, anything else is replaced by the override.
pub fn merge(base: &mut serde_yaml::Value, over: &serde_yaml::Value) {
    match (base, over) {
        (serde_yaml::Value::Mapping(base), serde_yaml::Value::Mapping(over)) => {
            for (key, value) in over {
                match base.get_mut(key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        base.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (base, over) => *base = over.clone(),
    }
}

pub fn read_yaml(path: &Path) -> serde_yaml::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|err| panic!("read {}: {err}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|err| panic!("parse {}: {err}", path.display()))
}

/// The chart's values.yaml merged with each YAML text of `overrides`, in order.
pub fn values(overrides: &[&str]) -> serde_yaml::Value {
    let mut values = read_yaml(&chart_dir().join("values.yaml"));
    for text in overrides {
        let over: serde_yaml::Value = serde_yaml::from_str(text).expect("override values");
        merge(&mut values, &over);
    }
    values
}

/// Renders every template of the chart with `values`; panics naming the template that fails.
pub fn render(values: &serde_yaml::Value, release: &Release) -> Rendered {
    let chart = read_yaml(&chart_dir().join("Chart.yaml"));
    let mut chart_value = HashMap::new();
    for (from, to) in [
        ("name", "Name"),
        ("version", "Version"),
        ("appVersion", "AppVersion"),
    ] {
        chart_value.insert(to.to_owned(), from_serde(&chart[from]));
    }
    let mut release_value = HashMap::new();
    release_value.insert("Name".to_owned(), Value::from(release.name.to_owned()));
    release_value.insert(
        "Namespace".to_owned(),
        Value::from(release.namespace.to_owned()),
    );
    release_value.insert(
        "Service".to_owned(),
        Value::from(release.service.to_owned()),
    );
    release_value.insert("IsInstall".to_owned(), Value::from(true));
    let mut root = HashMap::new();
    root.insert("Values".to_owned(), from_serde(values));
    root.insert("Chart".to_owned(), Value::Map(chart_value));
    root.insert("Release".to_owned(), Value::Map(release_value));
    let root = Value::Map(root);

    let mut manifests = Vec::new();
    let mut notes = String::new();
    for path in template_files() {
        let rel = path
            .strip_prefix(chart_dir())
            .expect("inside the chart")
            .display()
            .to_string();
        let text = std::fs::read_to_string(&path).expect("read template");
        let out = render_text(&text, &root).unwrap_or_else(|err| panic!("{rel}: {err}"));
        assert!(
            !out.contains("<no value>"),
            "{rel} printed a value that does not exist (a typo in .Values?):\n{out}"
        );
        if rel.ends_with("NOTES.txt") {
            notes = out;
            continue;
        }
        for (index, part) in split_documents(&out).into_iter().enumerate() {
            let doc: serde_yaml::Value = serde_yaml::from_str(&part).unwrap_or_else(|err| {
                panic!("{rel} document {index} is not valid YAML: {err}\n{part}")
            });
            if !doc.is_null() {
                manifests.push(Manifest {
                    template: rel.clone(),
                    doc,
                });
            }
        }
    }
    Rendered { manifests, notes }
}

/// One template text rendered with the Helm functions.
pub fn render_text(text: &str, root: &Value) -> Result<String, String> {
    let mut template = gtmpl::Template::default();
    template.add_funcs(HELM_FUNCS);
    template.parse(text).map_err(|err| err.to_string())?;
    template
        .render(&gtmpl::Context::from(root.clone()))
        .map_err(|err| err.to_string())
}

/// `templates/**` files in name order; `_*` helpers are not rendered on their own (as in Helm).
fn template_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![chart_dir().join("templates")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read templates/") {
            let path = entry.expect("entry").path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.is_dir() {
                dirs.push(path);
            } else if !name.starts_with('_') && (name.ends_with(".yaml") || name.ends_with(".txt"))
            {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Splits a rendered template on `---` lines, as Helm does.
pub fn split_documents(text: &str) -> Vec<String> {
    let mut docs = vec![String::new()];
    for line in text.lines() {
        if line.trim_end() == "---" {
            docs.push(String::new());
        } else {
            let current = docs.last_mut().expect("one document");
            current.push_str(line);
            current.push('\n');
        }
    }
    docs.into_iter().filter(|d| !d.trim().is_empty()).collect()
}
