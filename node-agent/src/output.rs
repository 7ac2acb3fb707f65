//! Inventory output: kubectl-style table, JSON and YAML.

use std::io::{self, Write};

use sriov_host::{Host, Netdev};

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

const HEADER: [&str; 11] =
    ["PCI ADDRESS", "KIND", "VF", "NETDEV", "DRIVER", "ID", "NUMA", "IOMMU", "VFS", "LINK", "MAC"];

/// One row per PF followed by one row per VF.
pub fn table(host: &Host, out: &mut impl Write) -> io::Result<()> {
    let mut rows: Vec<[String; 11]> = Vec::with_capacity(1 + host.vfs().count() + host.pfs.len());
    rows.push(HEADER.map(str::to_owned));
    for pf in &host.pfs {
        rows.push([
            pf.pci_address.to_string(),
            "PF".to_owned(),
            "-".to_owned(),
            dash(pf.netdev.as_deref()),
            dash(pf.pci.driver.as_deref()),
            format!("{}:{}", dash(pf.pci.vendor_id), dash(pf.pci.device_id)),
            dash(pf.pci.numa_node),
            dash(pf.pci.iommu_group),
            format!("{}/{}", pf.num_vfs, pf.total_vfs),
            link_state(pf.link.as_ref()),
            dash(pf.link.as_ref().and_then(|l| l.mac.as_deref())),
        ]);
        for vf in &pf.vfs {
            let netdev = match (&vf.netdev, vf.netdev_status) {
                (Some(n), _) => n.clone(),
                (None, sriov_host::NetdevStatus::NotInNamespace) => "<other netns>".to_owned(),
                (None, sriov_host::NetdevStatus::Userspace) => "<userspace>".to_owned(),
                (None, _) => "-".to_owned(),
            };
            rows.push([
                vf.pci_address.to_string(),
                "VF".to_owned(),
                vf.vf_index.to_string(),
                netdev,
                dash(vf.pci.driver.as_deref()),
                format!("{}:{}", dash(vf.pci.vendor_id), dash(vf.pci.device_id)),
                dash(vf.pci.numa_node),
                dash(vf.pci.iommu_group),
                "-".to_owned(),
                link_state(vf.link.as_ref()),
                dash(vf.link.as_ref().and_then(|l| l.mac.as_deref())),
            ]);
        }
    }
    aligned(&rows, out)
}

/// Writes rows as kubectl does: each column as wide as its widest cell, two spaces between
/// columns, the last column unpadded.
fn aligned<const N: usize>(rows: &[[String; N]], out: &mut impl Write) -> io::Result<()> {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut line = String::new();
    for row in rows {
        line.clear();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            line.push_str(cell);
            if i + 1 < N {
                let pad = w - cell.chars().count() + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        line.push('\n');
        out.write_all(line.as_bytes())?;
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_on_the_widest_cell_and_the_last_is_unpadded() {
        let rows = [
            ["A".to_owned(), "BB".to_owned(), "C".to_owned()],
            ["long-cell".to_owned(), "é".to_owned(), "last".to_owned()],
        ];
        let mut out = Vec::new();
        aligned(&rows, &mut out).unwrap_or_else(|e| panic!("{e}"));
        let text = String::from_utf8(out).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(text, "A          BB  C\nlong-cell  é   last\n");
    }
}
