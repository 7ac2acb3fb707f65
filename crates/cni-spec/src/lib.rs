//! cni-spec (skeleton; filled by its issue).
