//! Kubelet emulator (device-plugin Registration server and plugin client). Being written.
