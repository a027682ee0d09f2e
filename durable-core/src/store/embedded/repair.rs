//! Looking at a store's folder without writing to it ([`EmbeddedStore::verify`]), and
//! copying what is readable out of a damaged one ([`EmbeddedStore::salvage`]).

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::files::Files;
use super::format::FileRef;
use super::journal::{archive_path, segment_path};
use super::recover::{Mode, Recovered, recover};
use super::state::Data;
use super::{EmbeddedStore, lock};
use crate::model::ExecutionStatus;
use crate::store::{NewExecution, Store, StoreError, StoreResult};

/// What [`EmbeddedStore::verify`] found in a store's folder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// The folder.
    pub dir: PathBuf,
    /// The live journal segments: number, length, last group.
    pub segments: Vec<(u64, u64, u64)>,
    /// The archive files: number and length.
    pub archives: Vec<(u64, u64)>,
    /// Executions readable (up to the damage, if there is damage).
    pub executions: usize,
    /// Of which running.
    pub running: usize,
    /// Operations read back.
    pub operations: u64,
    /// History events read back.
    pub events: u64,
    /// The torn tail opening the store would cut off (never acknowledged).
    pub torn_tail: Option<String>,
    /// Files opening the store would remove (provably holding nothing acknowledged).
    pub leftovers: Vec<String>,
    /// What is wrong: each item names a file and an offset. Empty when the store is intact.
    pub problems: Vec<String>,
}

impl VerifyReport {
    /// Whether the store opens with everything it acknowledged.
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "embedded store in {}", self.dir.display())?;
        for (n, len, group) in &self.segments {
            writeln!(f, "  segment {n}: {len} bytes, last group {group}")?;
        }
        for (n, len) in &self.archives {
            writeln!(f, "  archive file {n}: {len} bytes")?;
        }
        writeln!(
            f,
            "  {} executions ({} running), {} operations, {} events read back",
            self.executions, self.running, self.operations, self.events
        )?;
        if let Some(t) = &self.torn_tail {
            writeln!(f, "  torn tail (never acknowledged; opening cuts it off): {t}")?;
        }
        for l in &self.leftovers {
            writeln!(f, "  leftover (opening removes it): {l}")?;
        }
        if self.problems.is_empty() {
            writeln!(f, "intact")
        } else {
            for p in &self.problems {
                writeln!(f, "  DAMAGE: {p}")?;
            }
            writeln!(
                f,
                "damaged: the store does not open; `durable store salvage` copies what is readable into a new store"
            )
        }
    }
}

/// What [`EmbeddedStore::salvage`] copied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SalvageReport {
    /// Executions copied whole (as far as the readable journal goes).
    pub copied: usize,
    /// Executions not copied, with why (their data could not be read back).
    pub lost: Vec<(String, String)>,
    /// Where reading stopped, and why (nothing after it was copied).
    pub stopped: Option<String>,
}

impl fmt::Display for SalvageReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "copied {} executions", self.copied)?;
        if let Some(s) = &self.stopped {
            writeln!(f, "reading stopped at {s}: nothing after it was copied")?;
        }
        for (arn, why) in &self.lost {
            writeln!(f, "not copied: {arn}: {why}")?;
        }
        Ok(())
    }
}

/// The files of a recovered folder, opened for reading.
fn files_of(dir: &Path, recovered: &Recovered) -> StoreResult<Files> {
    let files = Files::new(dir);
    let open = |path: PathBuf| {
        File::open(&path).map(Arc::new).map_err(|e| StoreError::Backend {
            message: format!("opening {}: {e}", path.display()),
            retryable: false,
            source: Some(Box::new(e)),
        })
    };
    for s in &recovered.segments {
        files.add(FileRef::Journal(s.segment), open(segment_path(dir, s.segment))?);
    }
    for &n in &recovered.archives {
        files.add(FileRef::Archive(n), open(archive_path(dir, n))?);
    }
    Ok(files)
}

impl EmbeddedStore {
    /// Checks the store in `dir` without opening it for writing and without changing
    /// anything: recovers it as opening would, and reads every execution's operations and
    /// events back. Fails only if the folder cannot be read at all or the store is open
    /// (its `LOCK` is held); damage is in the report.
    pub fn verify(dir: impl AsRef<Path>) -> StoreResult<VerifyReport> {
        let dir = dir.as_ref();
        let _lock = lock(dir, false)?;
        let mut report = VerifyReport { dir: dir.to_owned(), ..VerifyReport::default() };
        let recovered = match recover(dir, Mode::Strict) {
            Ok(r) => r,
            Err(StoreError::Corrupt(why)) => {
                report.problems.push(why);
                let r = recover(dir, Mode::Salvage)?;
                if let Some(s) = &r.stopped {
                    report.problems.push(format!("readable up to {s}"));
                }
                r
            }
            Err(e) => return Err(e),
        };
        report.segments = recovered.segments.iter().map(|s| (s.segment, s.len, s.group)).collect();
        report.archives = recovered
            .archives
            .iter()
            .map(|&n| (n, std::fs::metadata(archive_path(dir, n)).map_or(0, |m| m.len())))
            .collect();
        report.torn_tail = recovered
            .torn
            .as_ref()
            .map(|t| format!("{} from offset {} ({})", segment_path(dir, t.segment).display(), t.at, t.why));
        report.leftovers = recovered.leftovers.iter().map(|(p, why)| format!("{}: {why}", p.display())).collect();
        let files = files_of(dir, &recovered)?;
        for (arn, exec) in &recovered.state.executions {
            report.executions += 1;
            let counted = |r: &mut VerifyReport, d: &Data| {
                r.operations += d.ops.len() as u64;
                r.events += d.events.len() as u64;
            };
            match &exec.data {
                Some(d) => {
                    report.running += usize::from(exec.record.status == ExecutionStatus::Running);
                    counted(&mut report, d);
                }
                None => match files.load(arn, &exec.stored) {
                    Ok(d) => counted(&mut report, &d),
                    Err(e) => report.problems.push(e.to_string()),
                },
            }
        }
        Ok(report)
    }

    /// Copies everything readable in the store in `dir`, up to its first damage, into a new
    /// store in `to` (which must not hold a store yet). The damaged store is not changed.
    /// Executions whose data cannot be read back are left out and listed; nothing written
    /// after the first damage of the journal is copied. Only on explicit request: a damaged
    /// store never opens by itself with less than it acknowledged.
    pub async fn salvage(dir: impl AsRef<Path>, to: impl AsRef<Path>) -> StoreResult<SalvageReport> {
        let dir = dir.as_ref();
        let _lock = lock(dir, false)?;
        let recovered = recover(dir, Mode::Salvage)?;
        let files = files_of(dir, &recovered)?;
        let dest = EmbeddedStore::open(to.as_ref())?;
        if !dest.read().executions.is_empty() {
            return Err(StoreError::AlreadyExists(format!(
                "{} already holds a store: salvage into a new folder",
                to.as_ref().display()
            )));
        }
        let mut report = SalvageReport { stopped: recovered.stopped.clone(), ..SalvageReport::default() };
        for (arn, exec) in recovered.state.executions {
            let data = match exec.data {
                Some(d) => d,
                None => match files.load(&arn, &exec.stored) {
                    Ok(d) => d,
                    Err(e) => {
                        report.lost.push((arn.to_string(), e.to_string()));
                        continue;
                    }
                },
            };
            let operations = data.ops.into_values().collect();
            dest.create_execution(NewExecution { record: exec.record, operations, events: data.events }).await?;
            report.copied += 1;
        }
        Ok(report)
    }
}
