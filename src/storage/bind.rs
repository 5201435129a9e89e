//! Placeholder: filled in by the storage controller work.
