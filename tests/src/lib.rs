//! Workspace-level integration tests of durable. The tests live in `tests/`; the programs
//! they drive as child processes live in `src/bin/`; the AWS conformance harness lives in
//! [`conformance`], and its run through AWS's own emulator in [`emulator`].

pub mod conformance;
pub mod emulator;
pub mod faults;
pub mod versions;
