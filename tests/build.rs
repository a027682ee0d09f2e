//! A build without the `standins` feature names the test suites it leaves to
//! `./scripts/test` (`src/left_out.rs`). Cargo shows a build script's warnings again on
//! every later build that reuses its output, so the notice is in every such `cargo test`.

include!("src/left_out.rs");

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=src/left_out.rs");
    if std::env::var_os("CARGO_FEATURE_STANDINS").is_some() {
        return;
    }
    for line in notice() {
        println!("cargo::warning={line}");
    }
}
