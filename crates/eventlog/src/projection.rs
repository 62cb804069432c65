use std::collections::BTreeMap;

use crate::RecordedEvent;
use crate::keys;

/// A read model folded from events. `apply` must be a pure function of the event and what the
/// projection already holds, so that replaying the log rebuilds exactly the live projection.
pub trait Projection: Send + Sync {
    /// A short name that namespaces the projection's keys.
    fn name(&self) -> &'static str;

    /// The version of what `apply` writes. Raise it when that changes shape: a log whose
    /// projections were built by another version rebuilds them from its events when opened.
    fn version(&self) -> u32 {
        1
    }

    /// Folds one event. An error here is a bug (an event the projection cannot read) and fails
    /// the append that carried it.
    fn apply(&self, event: &RecordedEvent, writer: &mut ProjectionWriter<'_>) -> Result<(), String>;
}

/// A projection's view of its own keys while an append is being applied: reads see the writes
/// of earlier events in the same batch.
pub struct ProjectionWriter<'a> {
    name: &'static str,
    tree: &'a sled::Tree,
    overlay: &'a mut BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl<'a> ProjectionWriter<'a> {
    pub(crate) fn new(
        name: &'static str,
        tree: &'a sled::Tree,
        overlay: &'a mut BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    ) -> Self {
        Self { name, tree, overlay }
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, String> {
        let full = keys::projection(self.name, key);
        if let Some(pending) = self.overlay.get(&full) {
            return Ok(pending.clone());
        }
        self.tree.get(full).map(|v| v.map(|v| v.to_vec())).map_err(|e| e.to_string())
    }

    pub fn put(&mut self, key: &[u8], value: Vec<u8>) {
        self.overlay.insert(keys::projection(self.name, key), Some(value));
    }

    pub fn remove(&mut self, key: &[u8]) {
        self.overlay.insert(keys::projection(self.name, key), None);
    }
}
