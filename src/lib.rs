//! Stowage: a Kubernetes operator that mirrors cluster state into pluggable stores and manages
//! hostPath/NFS storage. `main.rs` only calls [`cli::main`]; everything else lives here.
#![forbid(unsafe_code)]

/// Every binary that links Stowage (the operator, its tests and benchmarks) allocates through
/// mimalloc: objects are decoded on one worker thread and freed on another, and glibc's malloc
/// and free took a third of a sync's instructions (docs/benchmarks.md, "Mirror sync").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod api;
pub mod cache;
pub mod cli;
pub mod config;
pub mod crd;
pub mod leader;
pub mod metrics;
pub mod mirror;
pub mod operator;
pub mod report;
pub mod sandbox;
pub mod server;
pub mod shutdown;
pub mod storage;
pub mod store;
pub mod telemetry;
