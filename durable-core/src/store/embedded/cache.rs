//! The finished executions read back from disk lately, up to a size: a history read twice
//! (a report, then a replay check) is read from disk once.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::state::Data;

/// Least recently used first out, bounded in bytes.
pub(super) struct Cache {
    limit: u64,
    used: u64,
    tick: u64,
    /// By ARN: the record version the data belongs to, the data, when it was last used.
    entries: HashMap<Arc<str>, (u64, Arc<Data>, u64)>,
    /// By last use.
    order: BTreeMap<u64, Arc<str>>,
}

impl Cache {
    pub(super) fn new(limit: u64) -> Cache {
        Cache { limit, used: 0, tick: 0, entries: HashMap::new(), order: BTreeMap::new() }
    }

    /// The data of `arn` as of record `version`, if cached.
    pub(super) fn get(&mut self, arn: &str, version: u64) -> Option<Arc<Data>> {
        self.tick += 1;
        let tick = self.tick;
        let (v, data, used) = self.entries.get_mut(arn)?;
        if *v != version {
            return None;
        }
        let key = self.order.remove(used).expect("every entry is in the order");
        *used = tick;
        self.order.insert(tick, key);
        Some(data.clone())
    }

    /// Keeps `data` (the data of `arn` as of record `version`), evicting the least
    /// recently used entries beyond the limit (never this one).
    pub(super) fn put(&mut self, arn: Arc<str>, version: u64, data: Arc<Data>) {
        self.tick += 1;
        if let Some((_, old, used)) = self.entries.remove(&arn) {
            self.order.remove(&used);
            self.used = self.used.saturating_sub(old.bytes);
        }
        self.used += data.bytes;
        self.order.insert(self.tick, arn.clone());
        self.entries.insert(arn, (version, data, self.tick));
        while self.used > self.limit && self.entries.len() > 1 {
            let Some((_, oldest)) = self.order.pop_first() else { break };
            if let Some((_, gone, _)) = self.entries.remove(&oldest) {
                self.used = self.used.saturating_sub(gone.bytes);
            }
        }
    }

    /// What the cached data takes (an estimate).
    pub(super) fn bytes(&self) -> u64 {
        self.used
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(bytes: u64) -> Arc<Data> {
        Arc::new(Data { bytes, ..Data::default() })
    }

    #[test]
    fn evicts_the_least_recently_used_and_ignores_stale_versions() {
        let mut c = Cache::new(100);
        c.put("a".into(), 1, data(40));
        c.put("b".into(), 1, data(40));
        assert!(c.get("a", 1).is_some(), "a is now the most recent");
        c.put("c".into(), 1, data(40));
        assert!(c.get("b", 1).is_none(), "b was the least recently used");
        assert!(c.get("a", 1).is_some() && c.get("c", 1).is_some());
        assert!(c.get("a", 2).is_none(), "a newer record makes the entry stale");
        assert_eq!(c.bytes(), 80);
        c.put("big".into(), 1, data(500));
        assert!(c.get("big", 1).is_some(), "an entry over the limit alone stays until the next one");
        assert_eq!(c.bytes(), 500);
    }
}
