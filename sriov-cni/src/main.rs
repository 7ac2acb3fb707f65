//! sriov (skeleton; filled by its issue).
fn main() {}
