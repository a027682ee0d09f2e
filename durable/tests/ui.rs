//! Compile-time behaviour of `#[durable]`: what compiles, and the errors for what does not.
//!
//! `tests/ui/pass/*.rs` must compile (with `#![deny(warnings)]`: the expansion must not
//! warn in users' crates); `tests/ui/fail/*.rs` must fail with exactly the committed
//! `.stderr`. After an intended change to a message, regenerate with
//! `TRYBUILD=overwrite cargo test -p durable --test ui` and read the new `.stderr` files.

// Not with the AWS features on: trybuild builds its projects with this crate's features,
// which would compile the AWS SDK once more (eight minutes on two cores). ./scripts/test
// runs these tests on the default features.
#![cfg(not(any(feature = "lambda", feature = "dynamodb")))]

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
