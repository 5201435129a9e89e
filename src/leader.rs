//! Placeholder: Lease-based leader election, filled in by the storage controller work.
