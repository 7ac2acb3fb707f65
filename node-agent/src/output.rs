//! Inventory output: kubectl-style table, JSON and YAML.

use std::io::{self, Write};

use sriov_host::{Host, Netdev};
use tabwriter::TabWriter;

fn dash<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".to_owned())
}

fn link_state(l: Option<&Netdev>) -> String {
    match l {
        None => "-".to_owned(),
        Some(l) => match (l.oper_state.as_deref(), l.speed_mbps) {
            (Some(s), Some(sp)) => format!("{s} {sp}Mb/s"),
            (Some(s), None) => s.to_owned(),
            (None, _) => "-".to_owned(),
        },
    }
}

/// One row per PF followed by one row per VF.
pub fn table(host: &Host, out: &mut impl Write) -> io::Result<()> {
    let mut tw = TabWriter::new(out).padding(2);
    writeln!(tw, "PCI ADDRESS\tKIND\tVF\tNETDEV\tDRIVER\tID\tNUMA\tIOMMU\tVFS\tLINK\tMAC")?;
    for pf in &host.pfs {
        writeln!(
            tw,
            "{}\tPF\t-\t{}\t{}\t{}:{}\t{}\t{}\t{}/{}\t{}\t{}",
            pf.pci_address,
            dash(pf.netdev.as_deref()),
            dash(pf.pci.driver.as_deref()),
            dash(pf.pci.vendor_id),
            dash(pf.pci.device_id),
            dash(pf.pci.numa_node),
            dash(pf.pci.iommu_group),
            pf.num_vfs,
            pf.total_vfs,
            link_state(pf.link.as_ref()),
            dash(pf.link.as_ref().and_then(|l| l.mac.as_deref())),
        )?;
        for vf in &pf.vfs {
            let netdev = match (&vf.netdev, vf.netdev_status) {
                (Some(n), _) => n.clone(),
                (None, sriov_host::NetdevStatus::NotInNamespace) => "<other netns>".to_owned(),
                (None, sriov_host::NetdevStatus::Userspace) => "<userspace>".to_owned(),
                (None, _) => "-".to_owned(),
            };
            writeln!(
                tw,
                "{}\tVF\t{}\t{}\t{}\t{}:{}\t{}\t{}\t-\t{}\t{}",
                vf.pci_address,
                vf.vf_index,
                netdev,
                dash(vf.pci.driver.as_deref()),
                dash(vf.pci.vendor_id),
                dash(vf.pci.device_id),
                dash(vf.pci.numa_node),
                dash(vf.pci.iommu_group),
                link_state(vf.link.as_ref()),
                dash(vf.link.as_ref().and_then(|l| l.mac.as_deref())),
            )?;
        }
    }
    tw.flush()
}

/// Pretty JSON, schemaVersion 1.
pub fn json(host: &Host, out: &mut impl Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, host)?;
    writeln!(out)
}

/// YAML, same schema as JSON.
pub fn yaml(host: &Host, out: &mut impl Write) -> io::Result<()> {
    let s = serde_yaml_ng::to_string(host).map_err(io::Error::other)?;
    out.write_all(s.as_bytes())
}
