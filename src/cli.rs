//! The `stowage` command line: argument parsing (every flag also from `STOWAGE_*`) and dispatch.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, ConfigError, Overrides};
use crate::crd::{self, CrdError};
use crate::operator::{self, OperatorError};
use crate::sandbox::{self, EmulatorOptions, SandboxError};
use crate::server::{self, ServerError};
use crate::shutdown::Shutdown;
use crate::telemetry::{self, LogFormat, TelemetryError};

/// Stowage mirrors Kubernetes objects into pluggable stores and manages hostPath/NFS storage.
#[derive(Debug, Parser)]
#[command(name = "stowage", version, propagate_version = true)]
pub struct Cli {
    /// Log line format (logs go to stderr; filter with RUST_LOG, default `info`).
    #[arg(long, global = true, value_enum, env = "STOWAGE_LOG_FORMAT", default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the operator against the cluster (in-cluster config or the current kubeconfig).
    Run(RunArgs),
    /// Start only the in-process Kubernetes API emulator and write a kubeconfig for it.
    Emulator(EmulatorArgs),
    /// Start a seeded emulator and run the operator against it, for trying Stowage locally.
    Sandbox(SandboxArgs),
    /// Print every CRD Stowage defines as multi-document YAML.
    Crd(CrdArgs),
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
}

/// `--config`, shared by the commands that read configuration.
#[derive(Debug, Args)]
pub struct ConfigFile {
    /// Configuration file [default: .config.yaml in the working directory, when present].
    #[arg(long, value_name = "PATH", env = "STOWAGE_CONFIG")]
    pub config: Option<PathBuf>,
}

/// Arguments of `stowage run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub config: ConfigFile,
    /// Address of Stowage's HTTP server [default: server.listen from the configuration, 0.0.0.0:8080].
    #[arg(long, value_name = "ADDR", env = "STOWAGE_LISTEN")]
    pub listen: Option<SocketAddr>,
}

/// Arguments of `stowage emulator`.
#[derive(Debug, Args)]
pub struct EmulatorArgs {
    /// Address of the emulated API server; port 0 picks a free port.
    #[arg(
        long,
        value_name = "ADDR",
        env = "STOWAGE_LISTEN",
        default_value = "127.0.0.1:0"
    )]
    pub listen: SocketAddr,
    /// Where to write a kubeconfig pointing at the emulator.
    #[arg(
        long,
        value_name = "PATH",
        env = "STOWAGE_KUBECONFIG",
        default_value = "./sandbox.kubeconfig"
    )]
    pub kubeconfig: PathBuf,
    /// Change events kept for watches that resume from a resourceVersion.
    #[arg(
        long,
        value_name = "N",
        env = "STOWAGE_HISTORY",
        default_value_t = 10_000
    )]
    pub history: usize,
    /// Require `Authorization: Bearer TOKEN` on every request (written into the kubeconfig).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "STOWAGE_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
}

/// Arguments of `stowage sandbox`.
#[derive(Debug, Args)]
pub struct SandboxArgs {
    #[command(flatten)]
    pub config: ConfigFile,
    /// Where to write a kubeconfig pointing at the sandbox's emulator.
    #[arg(
        long,
        value_name = "PATH",
        env = "STOWAGE_KUBECONFIG",
        default_value = "./sandbox.kubeconfig"
    )]
    pub kubeconfig: PathBuf,
    /// Address of Stowage's HTTP server (overrides server.listen).
    #[arg(
        long,
        value_name = "ADDR",
        env = "STOWAGE_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    pub listen: SocketAddr,
}

/// Arguments of `stowage crd`.
#[derive(Debug, Args)]
pub struct CrdArgs {
    /// Write one file per CRD (`<kind>.yaml`) into this directory instead of printing.
    #[arg(long, value_name = "DIR", env = "STOWAGE_CRD_OUTPUT_DIR")]
    pub output_dir: Option<PathBuf>,
}

/// `stowage config ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration (file, then environment, then flags) with passwords redacted.
    Print(ConfigPrintArgs),
}

/// Arguments of `stowage config print`.
#[derive(Debug, Args)]
pub struct ConfigPrintArgs {
    #[command(flatten)]
    pub config: ConfigFile,
    /// Show the effect of `--listen` as `stowage run` would apply it.
    #[arg(long, value_name = "ADDR", env = "STOWAGE_LISTEN")]
    pub listen: Option<SocketAddr>,
}

/// Errors that end a `stowage` command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(ConfigError),
    #[error("cannot set up logging")]
    Telemetry {
        #[source]
        source: TelemetryError,
    },
    #[error("cannot start the async runtime")]
    Runtime {
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot find Kubernetes credentials (tried in-cluster configuration and the current kubeconfig)"
    )]
    KubeClient {
        #[source]
        source: kube::Error,
    },
    #[error("cannot start Stowage's HTTP server")]
    Listen {
        #[source]
        source: ServerError,
    },
    #[error(transparent)]
    Operator(OperatorError),
    #[error(transparent)]
    Sandbox(SandboxError),
    #[error(transparent)]
    Crd(CrdError),
    #[error("cannot write {}", path.display())]
    WriteFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write to stdout")]
    Stdout {
        #[source]
        source: std::io::Error,
    },
}

/// Parses the command line, runs the command, and reports any error on stderr.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match execute(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let _ = writeln!(
                std::io::stderr(),
                "error: {}",
                crate::report::multiline(&err)
            );
            ExitCode::FAILURE
        }
    }
}

/// Runs a parsed command line.
pub fn execute(cli: Cli) -> Result<(), Error> {
    telemetry::init(cli.log_format).map_err(|source| Error::Telemetry { source })?;
    match cli.command {
        Command::Run(args) => {
            let config = load(&args.config, args.listen)?;
            block_on(run(config))
        }
        Command::Emulator(args) => {
            let options = EmulatorOptions {
                listen: args.listen,
                kubeconfig: args.kubeconfig,
                history: args.history,
                token: args.token,
            };
            block_on(async {
                sandbox::run_emulator(options, Shutdown::on_signals())
                    .await
                    .map_err(Error::Sandbox)
            })
        }
        Command::Sandbox(args) => {
            let config = load(&args.config, Some(args.listen))?;
            block_on(async {
                sandbox::run_sandbox(&config, &args.kubeconfig, Shutdown::on_signals())
                    .await
                    .map_err(Error::Sandbox)
            })
        }
        Command::Crd(CrdArgs {
            output_dir: Some(dir),
        }) => write_crds(&dir),
        Command::Crd(CrdArgs { output_dir: None }) => {
            print(&crd::render_all().map_err(Error::Crd)?)
        }
        Command::Config(ConfigCommand::Print(args)) => {
            let config = load(&args.config, args.listen)?;
            print(&config.to_redacted_yaml().map_err(Error::Config)?)
        }
    }
}

fn load(file: &ConfigFile, listen: Option<SocketAddr>) -> Result<Config, Error> {
    Config::load(file.config.as_deref(), &Overrides { listen }).map_err(Error::Config)
}

async fn run(config: Config) -> Result<(), Error> {
    let client = kube::Client::try_default()
        .await
        .map_err(|source| Error::KubeClient { source })?;
    let listener = server::bind(config.server.listen)
        .await
        .map_err(|source| Error::Listen { source })?;
    operator::run(client, &config, listener, Shutdown::on_signals())
        .await
        .map_err(Error::Operator)
}

fn block_on<F: Future<Output = Result<(), Error>>>(work: F) -> Result<(), Error> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::Runtime { source })?
        .block_on(work)
}

fn write_crds(dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|source| Error::WriteFile {
        path: dir.to_owned(),
        source,
    })?;
    for definition in crd::all() {
        let path = dir.join(crd::file_name(&definition));
        let text = crd::render(&definition).map_err(Error::Crd)?;
        std::fs::write(&path, text).map_err(|source| Error::WriteFile {
            path: path.clone(),
            source,
        })?;
        tracing::info!(path = %path.display(), "wrote CRD");
    }
    Ok(())
}

/// Writes command output; a reader that went away (`| head`) is not an error.
fn print(text: &str) -> Result<(), Error> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Error::Stdout { source: err })
        }
        _ => Ok(()),
    }
}
