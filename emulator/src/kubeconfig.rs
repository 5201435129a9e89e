//! The kubeconfig file that points kube-rs and kubectl at an emulator.

/// Renders a kubeconfig with one cluster, user and context named `stowage-sandbox`.
pub fn render(server: &str, token: Option<&str>) -> String {
    let user = match token {
        Some(t) => format!("    token: {t}\n"),
        None => "    {}\n".to_string(),
    };
    let user = if token.is_some() {
        format!("  user:\n{user}")
    } else {
        "  user: {}\n".to_string()
    };
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: stowage-sandbox\n  cluster:\n    server: {server}\n\
         contexts:\n- name: stowage-sandbox\n  context:\n    cluster: stowage-sandbox\n    user: stowage-sandbox\n    namespace: default\n\
         current-context: stowage-sandbox\nusers:\n- name: stowage-sandbox\n{user}preferences: {{}}\n"
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn renders_token_only_when_set() {
        let plain = super::render("http://127.0.0.1:1", None);
        assert!(plain.contains("server: http://127.0.0.1:1"));
        assert!(plain.contains("user: {}"));
        let with = super::render("http://127.0.0.1:1", Some("s3cret"));
        assert!(with.contains("token: s3cret"));
    }
}
