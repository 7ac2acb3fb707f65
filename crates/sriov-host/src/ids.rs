//! Vendor and device names from the PCI ID database (`pci.ids`).
//!
//! Names are for display only; selection always uses numeric IDs. The system database is preferred
//! (`SRIOV_PCI_IDS`, then the hwdata/pciutils locations); when none is installed — a minimal
//! container — an embedded subset covering SR-IOV NIC vendors is used, so names work offline.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use crate::pci::PciId;

/// Environment variable naming a `pci.ids` file to use instead of the system one.
pub const PCI_IDS_ENV: &str = "SRIOV_PCI_IDS";

const SYSTEM_PATHS: &[&str] =
    &["/usr/share/hwdata/pci.ids", "/usr/share/misc/pci.ids", "/usr/share/pci.ids"];

static EMBEDDED: &str = include_str!("../data/pci-ids-nic.txt");

/// A loaded PCI ID database (kept as text; lookups scan it once per batch).
#[derive(Debug, Clone)]
pub struct PciIds {
    text: Cow<'static, str>,
    source: String,
}

/// Names resolved for a batch of IDs.
#[derive(Debug, Clone, Default)]
pub struct Names {
    vendors: HashMap<PciId, String>,
    devices: HashMap<(PciId, PciId), String>,
}

impl Names {
    /// The vendor's name, if known.
    pub fn vendor(&self, vendor: PciId) -> Option<&str> {
        self.vendors.get(&vendor).map(String::as_str)
    }
    /// The device's name, if known.
    pub fn device(&self, vendor: PciId, device: PciId) -> Option<&str> {
        self.devices.get(&(vendor, device)).map(String::as_str)
    }
}

impl PciIds {
    /// Loads the first readable database: `$SRIOV_PCI_IDS`, the system paths, then the embedded
    /// subset.
    pub fn load() -> Self {
        let env = std::env::var_os(PCI_IDS_ENV).map(PathBuf::from);
        let candidates = env.into_iter().chain(SYSTEM_PATHS.iter().map(PathBuf::from));
        for path in candidates {
            if let Ok(text) = std::fs::read_to_string(&path) {
                return Self { text: Cow::Owned(text), source: path.display().to_string() };
            }
        }
        Self::embedded()
    }

    /// The embedded subset only.
    pub fn embedded() -> Self {
        Self { text: Cow::Borrowed(EMBEDDED), source: "embedded".to_owned() }
    }

    /// Builds a database from text in `pci.ids` format.
    pub fn from_text(text: String) -> Self {
        Self { text: Cow::Owned(text), source: "inline".to_owned() }
    }

    /// Where the database came from (a path, or `embedded`).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Resolves names for a batch of (vendor, device) pairs. Each wanted vendor's block is found
    /// with a (vectorised) substring search and only that block is parsed: the full database is
    /// ~35k lines, a handful of which matter.
    pub fn lookup(&self, wanted: impl IntoIterator<Item = (PciId, PciId)>) -> Names {
        let wanted: HashSet<(PciId, PciId)> = wanted.into_iter().collect();
        let vendors: HashSet<PciId> = wanted.iter().map(|(v, _)| *v).collect();
        let text = &self.text[..];
        let mut names = Names::default();
        for vendor in vendors {
            // Only vendor lines start with four hex digits and two spaces (device lines start with
            // a tab, the device-class section at the end with `C `), so the first match is it.
            let needle = format!("\n{vendor}  ");
            let at = if text.starts_with(&needle[1..]) {
                Some(0)
            } else {
                memchr::memmem::find(text.as_bytes(), needle.as_bytes()).map(|i| i + 1)
            };
            let Some(at) = at else { continue };
            let mut lines = text[at..].lines();
            if let Some((_, name)) = lines.next().and_then(parse_entry) {
                names.vendors.insert(vendor, name.to_owned());
            }
            for line in lines {
                if line.starts_with('#') || line.is_empty() {
                    continue;
                }
                let Some(rest) = line.strip_prefix('\t') else { break };
                if rest.starts_with('\t') {
                    continue; // subsystem entry
                }
                if let Some((device, name)) = parse_entry(rest)
                    && wanted.contains(&(vendor, device))
                {
                    names.devices.insert((vendor, device), name.to_owned());
                }
            }
        }
        names
    }
}

fn parse_entry(line: &str) -> Option<(PciId, &str)> {
    let (id, name) = line.split_once("  ")?;
    if id.len() != 4 {
        return None;
    }
    Some((id.parse().ok()?, name.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_knows_the_simulated_models() {
        let ids = PciIds::embedded();
        let n = ids.lookup([
            (PciId(0x8086), PciId(0x1572)),
            (PciId(0x8086), PciId(0x154c)),
            (PciId(0x15b3), PciId(0x1018)),
            (PciId(0x8086), PciId(0x10ca)),
        ]);
        assert_eq!(n.vendor(PciId(0x8086)), Some("Intel Corporation"));
        assert_eq!(
            n.device(PciId(0x8086), PciId(0x1572)),
            Some("Ethernet Controller X710 for 10GbE SFP+")
        );
        assert_eq!(
            n.device(PciId(0x15b3), PciId(0x1018)),
            Some("MT27800 Family [ConnectX-5 Virtual Function]")
        );
        assert_eq!(n.device(PciId(0x8086), PciId(0x10ca)), Some("82576 Virtual Function"));
        // Not requested: not resolved.
        assert_eq!(n.device(PciId(0x8086), PciId(0x1592)), None);
    }

    #[test]
    fn parses_format_and_skips_subsystems_and_classes() {
        let text =
            "# c\n1234  Acme\n\tabcd  Widget\n\t\t1234 0001  Sub\nC 02  Network\n\t00  Ethernet\n";
        let n = PciIds::from_text(text.into())
            .lookup([(PciId(0x1234), PciId(0xabcd)), (PciId(0x1234), PciId(0x0001))]);
        assert_eq!(n.vendor(PciId(0x1234)), Some("Acme"));
        assert_eq!(n.device(PciId(0x1234), PciId(0xabcd)), Some("Widget"));
        assert_eq!(n.device(PciId(0x1234), PciId(0x0001)), None);
    }
}
