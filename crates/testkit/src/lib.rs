//! sriov-testkit (skeleton; filled by its issue).
