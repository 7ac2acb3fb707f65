//! The `router` CNI meta-plugin; see the `meta_plugins` crate docs.

fn main() -> std::process::ExitCode {
    meta_plugins::ops::main(meta_plugins::config::Flavor::Router)
}
