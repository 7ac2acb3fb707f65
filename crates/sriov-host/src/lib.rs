//! sriov-host (skeleton; filled by its issue).
