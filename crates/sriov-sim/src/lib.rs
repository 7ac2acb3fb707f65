//! sriov-sim (skeleton; filled by its issue).
