//! The bounded change log: one entry per change, sharing the record the table stored, so keeping
//! a change never copies an object.

use std::collections::VecDeque;
use std::sync::Arc;

use super::record::Record;
use crate::store::{ChangeType, Revision};

/// One change as retained.
#[derive(Clone)]
pub(super) struct LogEntry {
    pub revision: Revision,
    pub kind: Arc<str>,
    pub change: ChangeType,
    pub record: Arc<Record>,
}

pub(super) struct ChangeLog {
    /// Last revision assigned.
    pub revision: Revision,
    /// Retained changes, oldest first, at most `history`.
    pub entries: VecDeque<LogEntry>,
    history: usize,
}

impl ChangeLog {
    pub fn new(history: usize) -> Self {
        Self {
            revision: 0,
            entries: VecDeque::with_capacity(history.min(1 << 16)),
            history,
        }
    }

    /// Assigns the next revision to a change and retains it, dropping the oldest beyond `history`.
    pub fn record(&mut self, kind: &Arc<str>, change: ChangeType, record: Arc<Record>) {
        self.revision += 1;
        if self.history == 0 {
            return;
        }
        if self.entries.len() == self.history {
            self.entries.pop_front();
        }
        self.entries.push_back(LogEntry {
            revision: self.revision,
            kind: Arc::clone(kind),
            change,
            record,
        });
    }

    /// The oldest revision a reader can still receive (one past the current one when none is kept).
    pub fn oldest(&self) -> Revision {
        self.entries
            .front()
            .map_or(self.revision + 1, |e| e.revision)
    }
}
