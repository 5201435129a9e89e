//! Configuration loading: defaults, file, environment and flags in order, and readable rejections.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use figment::Jail;
use stowage::config::{Config, ConfigError, Overrides, StorageType};

/// Runs `check` in a fresh working directory with an isolated environment.
#[expect(
    clippy::result_large_err,
    reason = "figment's Jail fixes the closure's error type"
)]
fn jailed(check: impl FnOnce(&mut Jail) -> Result<(), String>) {
    Jail::expect_with(|jail| {
        jail.clear_env();
        check(jail).map_err(figment::Error::from)
    });
}

fn load(file: Option<&str>) -> Result<Config, ConfigError> {
    Config::load(file.map(Path::new), &Overrides::default())
}

/// The single problem of a rejected configuration, as printed.
fn rejection(result: Result<Config, ConfigError>) -> Result<String, String> {
    match result {
        Ok(config) => Err(format!("expected a rejection, got {config:?}")),
        Err(err) => Ok(err.to_string()),
    }
}

fn addr(text: &str) -> SocketAddr {
    text.parse().expect("test address")
}

#[test]
fn defaults_when_nothing_is_configured() {
    jailed(|_| {
        let config = load(None).map_err(|e| e.to_string())?;
        assert_eq!(config, Config::default());
        assert_eq!(config.storage.kind, StorageType::Memory);
        assert_eq!(config.storage.mysql.port, 3306);
        assert_eq!(config.storage.mysql.max_open_conns, 100);
        assert_eq!(config.storage.etcd.endpoints, ["http://localhost:2379"]);
        assert_eq!(config.storage.etcd.dial_timeout, Duration::from_secs(5));
        assert_eq!(config.server.listen, addr("0.0.0.0:8080"));
        Ok(())
    });
}

#[test]
fn config_yaml_in_the_working_directory_is_read() {
    jailed(|jail| {
        jail.create_file(
            ".config.yaml",
            "storage:\n  type: mysql\n  mysql:\n    host: db.internal\n",
        )
        .map_err(|e| e.to_string())?;
        let config = load(None).map_err(|e| e.to_string())?;
        assert_eq!(config.storage.kind, StorageType::Mysql);
        assert_eq!(config.storage.mysql.host, "db.internal");
        assert_eq!(
            config.storage.mysql.port, 3306,
            "unset keys keep their defaults"
        );
        Ok(())
    });
}

#[test]
fn explicit_file_is_read_instead_of_the_default() {
    jailed(|jail| {
        jail.create_file(".config.yaml", "storage: {type: mysql}\n")
            .map_err(|e| e.to_string())?;
        jail.create_file(
            "other.yaml",
            "storage:\n  type: etcd\n  etcd:\n    dial_timeout: 1m30s\n",
        )
        .map_err(|e| e.to_string())?;
        let config = load(Some("other.yaml")).map_err(|e| e.to_string())?;
        assert_eq!(config.storage.kind, StorageType::Etcd);
        assert_eq!(config.storage.etcd.dial_timeout, Duration::from_secs(90));
        Ok(())
    });
}

#[test]
fn environment_overrides_the_file() {
    jailed(|jail| {
        jail.create_file(
            ".config.yaml",
            "storage:\n  mysql:\n    port: 3306\n    user: app\n",
        )
        .map_err(|e| e.to_string())?;
        jail.set_env("STOWAGE_STORAGE__MYSQL__PORT", "3307");
        jail.set_env("STOWAGE_STORAGE__ETCD__DIAL_TIMEOUT", "250ms");
        let config = load(None).map_err(|e| e.to_string())?;
        assert_eq!(config.storage.mysql.port, 3307);
        assert_eq!(config.storage.mysql.user, "app");
        assert_eq!(config.storage.etcd.dial_timeout, Duration::from_millis(250));
        Ok(())
    });
}

#[test]
fn flags_override_environment_and_file() {
    jailed(|jail| {
        jail.create_file(".config.yaml", "server:\n  listen: 127.0.0.1:7000\n")
            .map_err(|e| e.to_string())?;
        jail.set_env("STOWAGE_SERVER__LISTEN", "127.0.0.1:7001");
        assert_eq!(
            load(None).map_err(|e| e.to_string())?.server.listen,
            addr("127.0.0.1:7001")
        );
        let flags = Overrides {
            listen: Some(addr("127.0.0.1:7002")),
        };
        let config = Config::load(None, &flags).map_err(|e| e.to_string())?;
        assert_eq!(config.server.listen, addr("127.0.0.1:7002"));
        Ok(())
    });
}

#[test]
fn flag_variables_are_not_mistaken_for_configuration_keys() {
    jailed(|jail| {
        jail.set_env("STOWAGE_LISTEN", "127.0.0.1:9999");
        jail.set_env("STOWAGE_LOG_FORMAT", "json");
        jail.set_env("STOWAGE_CONFIG", "elsewhere.yaml");
        assert_eq!(load(None).map_err(|e| e.to_string())?, Config::default());
        Ok(())
    });
}

#[test]
fn numeric_looking_secrets_from_the_environment_stay_strings() {
    jailed(|jail| {
        jail.set_env("STOWAGE_STORAGE__MYSQL__PASSWORD", "12345");
        jail.set_env("STOWAGE_STORAGE__ETCD__USERNAME", "true");
        let config = load(None).map_err(|e| e.to_string())?;
        assert_eq!(config.storage.mysql.password, "12345");
        assert_eq!(config.storage.etcd.username, "true");
        Ok(())
    });
}

#[test]
fn unknown_key_is_rejected_with_its_path() {
    jailed(|jail| {
        jail.create_file("c.yaml", "storage:\n  mysql:\n    hots: db\n")
            .map_err(|e| e.to_string())?;
        let message = rejection(load(Some("c.yaml")))?;
        assert!(
            message.contains("storage.mysql.hots: unknown key; allowed keys: host, port"),
            "{message}"
        );
        assert!(message.contains("c.yaml"), "names the file: {message}");
        Ok(())
    });
}

#[test]
fn unknown_environment_key_names_the_variable() {
    jailed(|jail| {
        jail.set_env("STOWAGE_STORAGE__MYSQL__PROT", "3307");
        let message = rejection(load(None))?;
        assert!(
            message.contains("storage.mysql.prot: unknown key"),
            "{message}"
        );
        assert!(
            message.contains("STOWAGE_STORAGE__MYSQL__PROT"),
            "{message}"
        );
        Ok(())
    });
}

#[test]
fn wrong_type_names_the_key_and_the_expectation() {
    jailed(|jail| {
        jail.create_file("c.yaml", "storage:\n  mysql:\n    port: lots\n")
            .map_err(|e| e.to_string())?;
        let message = rejection(load(Some("c.yaml")))?;
        assert!(
            message.contains("storage.mysql.port: expected an integer"),
            "{message}"
        );
        jail.set_env("STOWAGE_STORAGE__MYSQL__MAX_OPEN_CONNS", "many");
        let message = rejection(load(None))?;
        assert!(
            message.contains("storage.mysql.max_open_conns: expected an integer"),
            "{message}"
        );
        assert!(
            message.contains("environment variable STOWAGE_STORAGE__MYSQL__MAX_OPEN_CONNS"),
            "{message}"
        );
        Ok(())
    });
}

#[test]
fn out_of_range_port_is_rejected() {
    jailed(|jail| {
        jail.create_file("c.yaml", "storage:\n  mysql:\n    port: 70000\n")
            .map_err(|e| e.to_string())?;
        let message = rejection(load(Some("c.yaml")))?;
        assert!(
            message.contains("storage.mysql.port: must be between 1 and 65535"),
            "{message}"
        );
        Ok(())
    });
}

#[test]
fn bad_duration_is_rejected() {
    jailed(|jail| {
        jail.create_file("c.yaml", "storage:\n  etcd:\n    dial_timeout: soon\n")
            .map_err(|e| e.to_string())?;
        let message = rejection(load(Some("c.yaml")))?;
        assert!(
            message.contains("storage.etcd.dial_timeout: invalid duration \"soon\""),
            "{message}"
        );
        assert!(
            message.contains("\"5s\""),
            "shows the expected form: {message}"
        );
        Ok(())
    });
}

#[test]
fn bad_storage_type_lists_the_allowed_values() {
    jailed(|jail| {
        jail.create_file("c.yaml", "storage:\n  type: postgres\n")
            .map_err(|e| e.to_string())?;
        let message = rejection(load(Some("c.yaml")))?;
        assert!(
            message.contains("storage.type: unknown value \"postgres\""),
            "{message}"
        );
        assert!(message.contains("memory, mysql, etcd"), "{message}");
        Ok(())
    });
}

#[test]
fn bad_listen_address_is_rejected() {
    jailed(|jail| {
        jail.set_env("STOWAGE_SERVER__LISTEN", "localhost");
        let message = rejection(load(None))?;
        assert!(
            message.contains("server.listen: invalid address \"localhost\""),
            "{message}"
        );
        Ok(())
    });
}

#[test]
fn relations_between_keys_are_checked() {
    jailed(|jail| {
        let yaml = "storage:\n  mysql:\n    max_idle_conns: 200\n  etcd:\n    endpoints: []\n";
        jail.create_file("c.yaml", yaml)
            .map_err(|e| e.to_string())?;
        let err = load(Some("c.yaml")).err().ok_or("expected a rejection")?;
        let problems: Vec<String> = err.problems().iter().map(ToString::to_string).collect();
        assert_eq!(
            problems,
            [
                "storage.mysql.max_idle_conns: must not exceed max_open_conns (100)",
                "storage.etcd.endpoints: must not be empty",
            ]
        );
        Ok(())
    });
}

#[test]
fn missing_explicit_file_is_named() {
    jailed(|_| {
        let message = rejection(load(Some("nowhere/stowage.yaml")))?;
        assert_eq!(
            message,
            "configuration file nowhere/stowage.yaml does not exist"
        );
        Ok(())
    });
}

#[test]
fn yaml_syntax_errors_name_the_file() {
    jailed(|jail| {
        jail.create_file("c.yaml", "storage:\n  mysql: [\n")
            .map_err(|e| e.to_string())?;
        let message = rejection(load(Some("c.yaml")))?;
        assert!(message.contains("c.yaml"), "{message}");
        Ok(())
    });
}

#[test]
fn print_redacts_passwords() {
    jailed(|jail| {
        jail.set_env("STOWAGE_STORAGE__MYSQL__PASSWORD", "hunter2");
        let config = load(None).map_err(|e| e.to_string())?;
        assert_eq!(
            config.storage.mysql.password, "hunter2",
            "the loaded value is untouched"
        );
        let yaml = config.to_redacted_yaml().map_err(|e| e.to_string())?;
        assert!(!yaml.contains("hunter2"), "{yaml}");
        assert!(yaml.contains("password: '***'"), "{yaml}");
        assert!(
            yaml.contains("password: ''"),
            "empty passwords stay empty: {yaml}"
        );
        assert!(yaml.contains("dial_timeout: 5s"), "{yaml}");
        Ok(())
    });
}

#[test]
fn printed_configuration_loads_back_unchanged() {
    jailed(|jail| {
        jail.set_env("STOWAGE_STORAGE__TYPE", "etcd");
        jail.set_env("STOWAGE_STORAGE__ETCD__DIAL_TIMEOUT", "1m 30s");
        let config = load(None).map_err(|e| e.to_string())?;
        let yaml = config.to_redacted_yaml().map_err(|e| e.to_string())?;
        jail.clear_env();
        jail.create_file("printed.yaml", &yaml)
            .map_err(|e| e.to_string())?;
        assert_eq!(
            load(Some("printed.yaml")).map_err(|e| e.to_string())?,
            config
        );
        Ok(())
    });
}

#[test]
fn committed_example_documents_the_defaults() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join(".config.example.yaml");
    jailed(|_| {
        let config =
            Config::load(Some(&example), &Overrides::default()).map_err(|e| e.to_string())?;
        assert_eq!(
            config,
            Config::default(),
            ".config.example.yaml must list the defaults"
        );
        Ok(())
    });
}

#[test]
fn storage_controller_defaults_and_overrides() {
    jailed(|jail| {
        let config = load(None).map_err(|e| e.to_string())?;
        assert!(!config.storage.binder, "provisioner mode by default");
        assert!(config.storage.controller.enabled);
        assert_eq!(config.storage.controller.namespace, "stowage");
        assert_eq!(config.storage.controller.lease_name, "stowage-storage");
        assert_eq!(
            config.storage.controller.lease_duration,
            Duration::from_secs(15)
        );
        assert_eq!(
            config.storage.hostpath.default_paths,
            [Path::new("/var/lib/stowage/volumes")]
        );
        assert_eq!(config.storage.nfs.mount_path, None);

        jail.create_file(
            ".config.yaml",
            "storage:\n  binder: true\n  controller:\n    helper_timeout: 30s\n  hostpath:\n    \
             node_paths:\n      gpu-1: []\n      big-1: [/mnt/disk1, /mnt/disk2]\n  nfs:\n    \
             mount_path: /exports\n",
        )
        .map_err(|e| e.to_string())?;
        jail.set_env("STOWAGE_STORAGE__CONTROLLER__LEASE_NAME", "other-lease");
        let config = load(None).map_err(|e| e.to_string())?;
        assert!(config.storage.binder);
        assert_eq!(
            config.storage.controller.helper_timeout,
            Duration::from_secs(30)
        );
        assert_eq!(config.storage.controller.lease_name, "other-lease");
        assert_eq!(config.storage.hostpath.node_paths["gpu-1"].len(), 0);
        assert_eq!(
            config.storage.hostpath.node_paths["big-1"],
            [Path::new("/mnt/disk1"), Path::new("/mnt/disk2")]
        );
        assert_eq!(
            config.storage.nfs.mount_path.as_deref(),
            Some(Path::new("/exports"))
        );
        Ok(())
    });
}

#[test]
fn storage_controller_problems_name_their_keys() {
    jailed(|jail| {
        jail.create_file(
            ".config.yaml",
            "storage:\n  controller:\n    lease_duration: 5s\n    renew_deadline: 5s\n    \
             namespace: My_NS\n  hostpath:\n    default_paths: [volumes]\n  nfs:\n    \
             mount_path: exports\n",
        )
        .map_err(|e| e.to_string())?;
        let message = rejection(load(None))?;
        for expected in [
            "storage.controller.namespace: \"My_NS\" must be a namespace name",
            "storage.controller.renew_deadline: must be below lease_duration (5s)",
            "storage.hostpath.default_paths[0]: volumes must be an absolute path",
            "storage.nfs.mount_path: exports must be an absolute path",
        ] {
            assert!(message.contains(expected), "{expected} in {message}");
        }
        Ok(())
    });
}
