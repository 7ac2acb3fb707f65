//! GetPreferredAllocation: which of the available devices the plugin would hand out.
//!
//! The answer is built in three steps:
//! 1. Every `must_include` device comes first, in the kubelet's order.
//! 2. The rest comes from one NUMA node when possible: the node of the first must-include device
//!    that has one, else a node with enough free devices. Under `pack` that is the node with the
//!    *fewest* free devices that still fits the request (keeping big nodes whole); under `spread`
//!    the node with the *most*. When no single node fits, devices from every node are used.
//! 3. Within the chosen devices, `pack` fills the PF with the fewest free VFs first (so PFs that
//!    are already busy fill up and untouched PFs stay free for large requests), taking VFs in index
//!    order; `spread` takes VFs round-robin from the PFs with the most free VFs first (one VF per PF
//!    before a second one from any PF). Ties break on PCI address, so answers are deterministic.
//!
//! Only healthy devices of the pool that the kubelet listed as available are chosen; unknown IDs in
//! the request are ignored (the kubelet decides, the preference is a hint).

use std::collections::{BTreeMap, BTreeSet};

use sriov_host::PciAddr;

use crate::inventory::{DeviceRecord, PoolDevices};

/// The allocation policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Policy {
    /// Fill busy PFs (and small NUMA nodes) first.
    #[default]
    Pack,
    /// Spread over PFs (and prefer the NUMA node with the most free devices).
    Spread,
}

/// Chooses `size` devices from `available`, honouring `must_include`.
pub fn preferred(
    devices: &PoolDevices,
    available: &[String],
    must_include: &[String],
    size: usize,
    policy: Policy,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(size);
    let mut taken = BTreeSet::new();
    for id in must_include {
        if out.len() == size {
            break;
        }
        if taken.insert(id.clone()) {
            out.push(id.clone());
        }
    }
    if out.len() >= size {
        return out;
    }
    let need = size - out.len();

    let free: Vec<&DeviceRecord> = available
        .iter()
        .filter(|id| !taken.contains(*id))
        .filter_map(|id| id.parse::<PciAddr>().ok())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter_map(|a| devices.get(&a))
        .filter(|d| d.healthy())
        .collect();

    let mut by_node: BTreeMap<Option<u32>, Vec<&DeviceRecord>> = BTreeMap::new();
    for d in &free {
        by_node.entry(d.numa_node).or_default().push(d);
    }
    let must_node = must_include
        .iter()
        .filter_map(|id| id.parse::<PciAddr>().ok())
        .filter_map(|a| devices.get(&a))
        .find_map(|d| d.numa_node);
    let node_fits = |n: &Option<u32>| by_node.get(n).is_some_and(|v| v.len() >= need);
    let chosen_node = match must_node {
        Some(n) if node_fits(&Some(n)) => Some(Some(n)),
        _ => {
            let fitting = by_node.iter().filter(|(n, v)| n.is_some() && v.len() >= need);
            match policy {
                Policy::Pack => fitting.min_by_key(|(n, v)| (v.len(), **n)).map(|(n, _)| *n),
                Policy::Spread => {
                    fitting.max_by_key(|(n, v)| (v.len(), std::cmp::Reverse(**n))).map(|(n, _)| *n)
                }
            }
            .or_else(|| node_fits(&None).then_some(None))
        }
    };
    let pool: Vec<&DeviceRecord> = match chosen_node {
        Some(n) => by_node.remove(&n).unwrap_or_default(),
        None => free,
    };

    let mut by_pf: BTreeMap<PciAddr, Vec<&DeviceRecord>> = BTreeMap::new();
    for d in pool {
        by_pf.entry(d.pf).or_default().push(d);
    }
    for vfs in by_pf.values_mut() {
        vfs.sort_by_key(|d| (d.vf_index, d.id));
    }
    let mut pfs: Vec<(PciAddr, Vec<&DeviceRecord>)> = by_pf.into_iter().collect();
    match policy {
        Policy::Pack => {
            pfs.sort_by_key(|(pf, v)| (v.len(), *pf));
            for d in pfs.iter().flat_map(|(_, v)| v.iter()).take(need) {
                out.push(d.id.to_string());
            }
        }
        Policy::Spread => {
            pfs.sort_by_key(|(pf, v)| (std::cmp::Reverse(v.len()), *pf));
            let mut round = 0;
            while out.len() < size {
                let mut any = false;
                for (_, v) in &pfs {
                    if let Some(d) = v.get(round) {
                        any = true;
                        out.push(d.id.to_string());
                        if out.len() == size {
                            break;
                        }
                    }
                }
                if !any {
                    break;
                }
                round += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use pretty_assertions::assert_eq;

    use super::*;
    use crate::inventory::tests::{config, host, pf};
    use crate::inventory::{UnhealthyReason, compute};

    fn pool() -> PoolDevices {
        // PF 3b: 4 VFs on NUMA 0; PF 5e: 2 VFs on NUMA 0; PF 86: 3 VFs on NUMA 1.
        let scan = host(vec![
            pf(0x3b, "ens1f0", 4, "iavf", Some(0)),
            pf(0x5e, "ens2f0", 2, "iavf", Some(0)),
            pf(0x86, "ens3f0", 3, "iavf", Some(1)),
        ]);
        let cfg = config(r#"{"resourceList":[{"resourceName":"net"}]}"#);
        compute(&scan, &cfg.pools, &[], Instant::now(), Duration::ZERO).remove(0)
    }

    fn all(p: &PoolDevices) -> Vec<String> {
        p.keys().map(ToString::to_string).collect()
    }

    #[test]
    fn pack_prefers_smallest_fitting_node_then_fullest_pf() {
        let p = pool();
        // 2 devices: NUMA 1 has 3 free, NUMA 0 has 6: pack picks NUMA 1.
        assert_eq!(preferred(&p, &all(&p), &[], 2, Policy::Pack), ["0000:86:02.0", "0000:86:02.1"]);
        // 4 devices: only NUMA 0 fits; PF 5e (2 free) fills before PF 3b (4 free).
        assert_eq!(
            preferred(&p, &all(&p), &[], 4, Policy::Pack),
            ["0000:5e:02.0", "0000:5e:02.1", "0000:3b:02.0", "0000:3b:02.1"]
        );
    }

    #[test]
    fn spread_prefers_biggest_node_and_round_robins_pfs() {
        let p = pool();
        assert_eq!(
            preferred(&p, &all(&p), &[], 3, Policy::Spread),
            ["0000:3b:02.0", "0000:5e:02.0", "0000:3b:02.1"]
        );
    }

    #[test]
    fn must_include_first_and_its_node_wins() {
        let p = pool();
        let got = preferred(&p, &all(&p), &["0000:3b:02.3".into()], 3, Policy::Pack);
        assert_eq!(
            got,
            ["0000:3b:02.3", "0000:5e:02.0", "0000:5e:02.1"],
            "stays on NUMA 0 with the must-include"
        );
        let only_must = preferred(
            &p,
            &all(&p),
            &["0000:86:02.2".into(), "0000:3b:02.0".into()],
            2,
            Policy::Pack,
        );
        assert_eq!(only_must, ["0000:86:02.2", "0000:3b:02.0"]);
    }

    #[test]
    fn falls_back_across_nodes_and_skips_unhealthy_and_unavailable() {
        let mut p = pool();
        let sick: PciAddr = "0000:5e:02.0".parse().unwrap();
        if let Some(d) = p.get_mut(&sick) {
            d.unhealthy = Some(UnhealthyReason::PfLinkDown);
        }
        // 7 needed; 8 healthy in total across nodes; one available ID is unknown to the pool.
        let mut avail = all(&p);
        avail.retain(|a| a != "0000:3b:02.0");
        avail.push("0000:ff:02.0".into());
        let got = preferred(&p, &avail, &[], 7, Policy::Pack);
        assert_eq!(got.len(), 7);
        assert!(
            !got.contains(&"0000:5e:02.0".to_string())
                && !got.contains(&"0000:3b:02.0".to_string())
        );
        assert!(!got.contains(&"0000:ff:02.0".to_string()));
        // Fewer healthy devices than asked: return what there is.
        assert_eq!(preferred(&p, &avail, &[], 20, Policy::Spread).len(), 7);
    }
}
