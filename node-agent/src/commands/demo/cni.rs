//! The CNI part of the demo: the `sriov` plugin invoked in-process exactly as a container
//! runtime invokes the binary (the `CNI_*` environment, the network configuration on stdin, the
//! result on stdout), from a thread inside the node network namespace, on the VF the device
//! plugin allocated.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use sriov_cni::SriovPlugin;
use sriov_host::HostPaths;
use sriov_netlink::{Link, LinkId, Netns, OwnedNetns, open_route_socket_in, run_in_netns};

use super::heading;

/// Where Debian's `containernetworking-plugins` installs the reference plugins (`static` IPAM).
pub const CNI_BIN_DIR: &str = "/usr/lib/cni";
/// The pod's interface name.
pub const IFNAME: &str = "net1";
/// The pod's address (TEST-NET-1) and gateway.
pub const POD_ADDRESS: &str = "192.0.2.10/24";
const POD_GATEWAY: &str = "192.0.2.1";
/// Settings applied through the PF (`ip link set <pf> vf N ...`).
const VLAN: u16 = 100;
const POD_MAC: &str = "02:00:5e:00:53:0a";

/// What the CNI plugin is run with.
pub struct Cni {
    /// The node's network namespace (the runtime's "host" namespace).
    pub node: Netns,
    /// The simulated host.
    pub paths: HostPaths,
    /// The plugin's `stateDir` (journals).
    pub state_dir: PathBuf,
    /// The plugin's `deviceInfoDir`.
    pub devinfo_dir: PathBuf,
}

/// One plugin invocation's outcome.
pub struct Outcome {
    /// Exit status 0.
    pub ok: bool,
    /// What it wrote on stdout (the result or the error), if anything.
    pub output: Option<Value>,
    /// How long it took.
    pub millis: f64,
}

impl Cni {
    /// Whether the `static` IPAM plugin is installed.
    pub fn have_static_ipam() -> bool {
        Path::new(CNI_BIN_DIR).join("static").is_file()
    }

    /// The network configuration a NetworkAttachmentDefinition would carry, with Multus's
    /// `deviceID` filled in.
    pub fn conf(&self, device_id: &str, extra: Value) -> Value {
        let mut conf = json!({
            "cniVersion": "1.0.0",
            "name": "sriov-demo",
            "type": "sriov",
            "deviceID": device_id,
            "stateDir": self.state_dir,
            "deviceInfoDir": self.devinfo_dir,
        });
        if let (Some(c), Value::Object(e)) = (conf.as_object_mut(), extra) {
            c.extend(e);
        }
        conf
    }

    /// Runs `CNI_COMMAND=command` in the node namespace.
    pub fn invoke(
        &self,
        command: &str,
        container_id: &str,
        netns: &Path,
        conf: &Value,
    ) -> anyhow::Result<Outcome> {
        self.run(command, container_id, netns, conf, false)
    }

    /// [`Cni::invoke`] for a call expected to fail: the plugin's own error log is not shown
    /// (the demo prints the error result instead).
    pub fn invoke_expecting_failure(
        &self,
        command: &str,
        container_id: &str,
        netns: &Path,
        conf: &Value,
    ) -> anyhow::Result<Outcome> {
        self.run(command, container_id, netns, conf, true)
    }

    fn run(
        &self,
        command: &str,
        container_id: &str,
        netns: &Path,
        conf: &Value,
        quiet: bool,
    ) -> anyhow::Result<Outcome> {
        let env: Vec<(&str, OsString)> = vec![
            ("CNI_COMMAND", command.into()),
            ("CNI_CONTAINERID", container_id.into()),
            ("CNI_NETNS", netns.into()),
            ("CNI_IFNAME", IFNAME.into()),
            ("CNI_PATH", CNI_BIN_DIR.into()),
            ("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=demo".into()),
        ];
        let stdin = serde_json::to_vec(conf).context("encoding the network configuration")?;
        let plugin = SriovPlugin::with_paths(self.paths.clone());
        let t = Instant::now();
        let (code, stdout) = run_in_netns(&self.node, || {
            let lookup = |k: &str| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
            let mut out = Vec::new();
            let mut call = || cni_spec::run_with(&plugin, &lookup, &mut stdin.as_slice(), &mut out);
            // Only this thread's logging is replaced; the thread ends with the call.
            let code = if quiet {
                tracing::subscriber::with_default(
                    tracing::subscriber::NoSubscriber::default(),
                    call,
                )
            } else {
                call()
            };
            (code, out)
        })
        .with_context(|| format!("entering the node namespace for sriov {command}"))?;
        let millis = t.elapsed().as_secs_f64() * 1e3;
        let output = if stdout.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            Some(serde_json::from_slice(&stdout).with_context(|| {
                format!("sriov {command} wrote non-JSON: {}", String::from_utf8_lossy(&stdout))
            })?)
        };
        Ok(Outcome { ok: code == ExitCode::SUCCESS, output, millis })
    }
}

/// An attachment made by ADD; DEL runs on drop unless [`Attachment::del`] did it.
pub struct Attachment<'a> {
    cni: &'a Cni,
    container_id: String,
    netns: PathBuf,
    conf: Value,
    live: bool,
}

impl Attachment<'_> {
    /// CNI DEL.
    pub fn del(mut self) -> anyhow::Result<Outcome> {
        self.live = false;
        self.cni.invoke("DEL", &self.container_id, &self.netns, &self.conf)
    }
}

impl Drop for Attachment<'_> {
    fn drop(&mut self) {
        if self.live {
            match self.cni.invoke("DEL", &self.container_id, &self.netns, &self.conf) {
                Ok(o) if o.ok => {}
                Ok(o) => tracing::warn!(output = ?o.output, "cleanup: sriov DEL failed"),
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "cleanup: sriov DEL failed"),
            }
        }
    }
}

fn oper(l: &Link) -> String {
    format!("{:?}", l.oper_state).to_lowercase()
}

fn mac(l: &Link) -> String {
    l.mac.map(|m| m.to_string()).unwrap_or_else(|| "-".to_owned())
}

/// A link in `ns`, `None` if there is no such link.
fn link_in(ns: &Netns, name: &str) -> anyhow::Result<Option<Link>> {
    let mut nl = open_route_socket_in(ns)
        .with_context(|| format!("netlink socket in {}", ns.path().display()))?;
    let links =
        nl.list_links().with_context(|| format!("listing links in {}", ns.path().display()))?;
    Ok(links.into_iter().find(|l| l.name == name))
}

fn print_pretty(v: &Value) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(v).context("formatting JSON")?;
    for line in text.lines() {
        println!("    {line}");
    }
    Ok(())
}

fn describe(o: &Outcome) -> String {
    match &o.output {
        Some(v) => format!(
            "error {}: {} ({})",
            v["code"],
            v["msg"].as_str().unwrap_or(""),
            v["details"].as_str().unwrap_or("")
        ),
        None => "failed without output".to_owned(),
    }
}

/// The VF as the node sees it before the pod gets it.
pub struct HomeVf {
    /// PCI address (the `deviceID`).
    pub pci: String,
    /// Its netdev name in the node.
    pub name: String,
}

/// ADD, the pod's view, DEL, the node's view; then the PF-side VF settings that the simulated
/// PF refuses, leaving everything as it was.
pub fn show(
    cni: &Cni,
    pod: &OwnedNetns,
    vf: &HomeVf,
    host_view: &dyn Fn() -> anyhow::Result<String>,
) -> anyhow::Result<()> {
    let before = link_in(&cni.node, &vf.name)?
        .with_context(|| format!("{} is not in the node namespace", vf.name))?;
    let static_ipam = Cni::have_static_ipam();
    let extra = if static_ipam {
        json!({"ipam": {"type": "static",
                        "addresses": [{"address": POD_ADDRESS, "gateway": POD_GATEWAY}],
                        "routes": [{"dst": "203.0.113.0/24"}]}})
    } else {
        json!({})
    };
    let conf = cni.conf(&vf.pci, extra);
    let ipam_note = if static_ipam {
        format!("static IPAM {POD_ADDRESS} from {CNI_BIN_DIR}/static")
    } else {
        format!(
            "no IPAM: {CNI_BIN_DIR}/static is not installed (apt-get install containernetworking-plugins)"
        )
    };
    heading(&format!(
        "CNI ADD: sriov moves VF {} ({}) into pod netns {} as {IFNAME}; {ipam_note}",
        vf.pci,
        vf.name,
        pod.name()
    ));
    println!("  network configuration (stdin): {conf}");
    let container_id = "demo-pod";
    let add = cni.invoke("ADD", container_id, pod.path(), &conf)?;
    if !add.ok {
        bail!("sriov ADD failed: {}", describe(&add));
    }
    let attachment = Attachment {
        cni,
        container_id: container_id.to_owned(),
        netns: pod.path().to_owned(),
        conf: conf.clone(),
        live: true,
    };
    println!("  result (stdout, {:.1} ms):", add.millis);
    print_pretty(add.output.as_ref().unwrap_or(&Value::Null))?;

    let in_pod = link_in(pod, IFNAME)?.with_context(|| format!("no {IFNAME} in {}", pod.name()))?;
    let mut nl = open_route_socket_in(pod)
        .with_context(|| format!("netlink socket in {}", pod.path().display()))?;
    let addrs = nl
        .list_addresses(Some(LinkId::Index(in_pod.index)), None)
        .with_context(|| format!("listing addresses of {IFNAME} in {}", pod.name()))?;
    let addrs: Vec<String> =
        addrs.iter().filter(|a| a.scope == 0).map(|a| a.prefix.to_string()).collect();
    println!(
        "  in the pod: {} (ifindex {}), MAC {}, {}, addresses: {}",
        in_pod.name,
        in_pod.index,
        mac(&in_pod),
        oper(&in_pod),
        if addrs.is_empty() { "none".to_owned() } else { addrs.join(" ") }
    );
    if static_ipam && !addrs.iter().any(|a| a == POD_ADDRESS) {
        bail!("{IFNAME} in {} does not have {POD_ADDRESS}", pod.name());
    }
    if link_in(&cni.node, &vf.name)?.is_some() {
        bail!("{} is still in the node namespace after ADD", vf.name);
    }
    println!("  in the node: {} is gone; inventory shows {}", vf.name, host_view()?);

    heading("CNI DEL: sriov returns the VF to the node exactly as it found it");
    let del = attachment.del()?;
    if !del.ok {
        bail!("sriov DEL failed: {}", describe(&del));
    }
    let after = link_in(&cni.node, &vf.name)?
        .with_context(|| format!("{} did not come back to the node namespace", vf.name))?;
    println!(
        "  DEL in {:.1} ms; in the node: {} MAC {} MTU {} (before ADD: {} MAC {} MTU {})",
        del.millis,
        after.name,
        mac(&after),
        after.mtu.unwrap_or(0),
        before.name,
        mac(&before),
        before.mtu.unwrap_or(0)
    );
    if (after.mac, after.mtu) != (before.mac, before.mtu) {
        bail!("{} came back changed", vf.name);
    }
    if link_in(pod, IFNAME)?.is_some() {
        bail!("{IFNAME} is still in {} after DEL", pod.name());
    }
    println!("  in the pod: no {IFNAME}; inventory shows {}", host_view()?);

    heading(&format!(
        "CNI ADD with VF settings applied through the PF (vlan {VLAN}, mac {POD_MAC})"
    ));
    let conf = cni.conf(&vf.pci, json!({"vlan": VLAN, "mac": POD_MAC}));
    println!("  network configuration: {conf}");
    let refused = cni.invoke_expecting_failure("ADD", "demo-pod-vlan", pod.path(), &conf)?;
    if refused.ok {
        // A PF that does VF settings: a real NIC. Undo it like any attachment.
        println!("  applied in {:.1} ms", refused.millis);
        let a = Attachment {
            cni,
            container_id: "demo-pod-vlan".to_owned(),
            netns: pod.path().to_owned(),
            conf,
            live: true,
        };
        let del = a.del()?;
        if !del.ok {
            bail!("sriov DEL failed: {}", describe(&del));
        }
        return Ok(());
    }
    println!("  refused in {:.1} ms: {}", refused.millis, describe(&refused));
    // A runtime always follows a failed ADD with DEL; the plugin has already undone everything.
    let del = cni.invoke("DEL", "demo-pod-vlan", pod.path(), &conf)?;
    if !del.ok {
        bail!("sriov DEL after the refused ADD failed: {}", describe(&del));
    }
    println!(
        "  expected here: the simulated PFs are veths, which have no VFs to configure \
         (IFLA_VFINFO_LIST); on a real PF the kernel applies them"
    );
    let still = link_in(&cni.node, &vf.name)?
        .with_context(|| format!("{} left the node namespace after a refused ADD", vf.name))?;
    if (still.mac, still.mtu) != (before.mac, before.mtu) || link_in(pod, IFNAME)?.is_some() {
        bail!("the refused ADD changed {}", vf.name);
    }
    println!(
        "  nothing changed: {} still in the node with MAC {}, no {IFNAME} in the pod",
        still.name,
        mac(&still)
    );
    Ok(())
}
