//! sriov-netlink (skeleton; filled by its issue).
