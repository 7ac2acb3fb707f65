//! sriov-device-plugin (skeleton; filled by its issue).
fn main() {}
