//! meta-plugins (skeleton; filled by its issue).
