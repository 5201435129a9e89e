//! The `stowage` binary: parses the command line and runs it (see `stowage::cli`).
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    stowage::cli::main()
}
