//! Storage control: reconciles PersistentVolumeClaims against Stowage's hostPath and NFS
//! provisioners and validates Longhorn classes. Separate from the mirror: it shares only the
//! Kubernetes client, the metrics registry and the HTTP server with it.
//!
//! Deciding and doing are apart: `bind`, `class`, `expand`, `pattern` and `quantity` are pure
//! functions without I/O, `volume_index` the binder's pure index of candidate volumes; `provision` (helper pods, NFS directories) and `controller` sit at the
//! edges and talk to the API server and the filesystem.

pub mod bind;
pub mod class;
pub mod controller;
pub mod expand;
pub mod metrics;
pub mod pattern;
pub mod provision;
pub mod quantity;
pub mod volume_index;
