//! sriov-agent (skeleton; filled by its issue).
fn main() {}
