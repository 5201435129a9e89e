//! Conformance suite: the emulator driven by the real kube-rs client, kube-runtime and kubectl over HTTP.

mod bad_input;
mod common;
mod kubectl;
mod watches;
mod writes;
