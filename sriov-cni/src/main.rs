//! `sriov`: the SR-IOV CNI plugin binary (all logic is in the `sriov_cni` library).

fn main() -> std::process::ExitCode {
    cni_spec::run(&sriov_cni::SriovPlugin::default())
}
