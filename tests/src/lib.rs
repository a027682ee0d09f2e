//! Workspace-level integration tests of durable. The tests live in `tests/`; the programs
//! they drive as child processes live in `src/bin/`; the AWS conformance harness lives in
//! [`conformance`], and its run through AWS's own emulator in [`emulator`]. [`left_out`]
//! lists the suites a build without features leaves to `./scripts/test`.

pub mod conformance;
pub mod emulator;
pub mod faults;
pub mod journal_crash;
/// The suites a build without features leaves to `./scripts/test`, which the build script
/// names (the file is also the build script's, so it carries no inner doc comment).
pub mod left_out;
pub mod versions;
