//! Test kit for the meta-plugins: a realistic topology built from network namespaces, a CNI
//! runtime that chains plugin binaries like libcni, and TCP probes between namespaces.
//!
//! Topology (every namespace is the test's own, removed on drop even when a test fails):
//!
//! ```text
//!  switch (gateway 192.0.2.1, 2001:db8:1::1; "external" 203.0.113.1, 2001:db8:e::1 on lo)
//!    | sw0 ==== uplink   (the underlay parent standing in for the PF)
//!  node (192.0.2.10/24, 2001:db8:1::10/64; forwarding on)
//!    | toep ==== ep0
//!  endpoint (203.0.113.130/30, 2001:db8:f::2/64; service 198.51.100.10, 2001:db8:5::10 and
//!            overlay 198.51.100.200, 2001:db8:6::200 on lo; routed through the node)
//!  pod (empty; the plugins under test fill it)
//! ```
//!
//! Only TEST-NET addresses are used and traffic only flows between these namespaces.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use sriov_netlink::{Netns, OwnedNetns, run_in_netns};

/// Whether the test can run (root); prints the skip notice otherwise.
pub fn require_root() -> bool {
    let uid = std::fs::read_to_string("/proc/self/status").ok().and_then(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(2).map(str::to_owned))
    });
    if uid.as_deref() == Some("0") {
        true
    } else {
        println!("skipped: needs root");
        false
    }
}

/// A namespace of the topology.
pub struct Ns {
    pub owned: OwnedNetns,
}

impl Ns {
    pub fn new(role: &str) -> Ns {
        Ns { owned: OwnedNetns::create_unique(&format!("mp-{role}")).unwrap() }
    }

    pub fn name(&self) -> &str {
        self.owned.name()
    }

    pub fn path(&self) -> &Path {
        self.owned.path()
    }

    pub fn netns(&self) -> &Netns {
        self.owned.netns()
    }

    /// `ip -n <ns> <args>`; panics with the output on failure.
    pub fn ip(&self, args: &str) -> String {
        let out = Command::new("ip")
            .arg("-n")
            .arg(self.name())
            .args(args.split_whitespace())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ip -n {} {args}: {}",
            self.name(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `ip -n <ns> <args>`, returning whether it succeeded.
    pub fn try_ip(&self, args: &str) -> bool {
        Command::new("ip")
            .arg("-n")
            .arg(self.name())
            .args(args.split_whitespace())
            .output()
            .unwrap()
            .status
            .success()
    }

    /// `ip -j -n <ns> <args>` parsed.
    pub fn ip_json(&self, args: &str) -> Value {
        let out = self.ip(&format!("-j {args}"));
        if out.trim().is_empty() { json!([]) } else { serde_json::from_str(&out).unwrap() }
    }

    pub fn sysctl(&self, key: &str, value: &str) {
        sriov_netlink::write_sysctl_in(self.netns(), key, value).unwrap();
    }

    pub fn read_sysctl(&self, key: &str) -> String {
        sriov_netlink::read_sysctl_in(self.netns(), key).unwrap()
    }

    /// Packets received and sent by an interface.
    /// Packets this namespace forwarded so far (IPv4 `ForwDatagrams` + IPv6
    /// `Ip6OutForwDatagrams`): routed through it, as opposed to housekeeping traffic
    /// (router solicitations, MLD reports) that merely arrives on an interface.
    pub fn forwarded(&self) -> u64 {
        let out = Command::new("ip")
            .args(["netns", "exec", self.name(), "cat", "/proc/net/snmp", "/proc/net/snmp6"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        let mut total = 0;
        while let Some(line) = lines.next() {
            if line.starts_with("Ip: Forwarding") {
                // Header line, then the values line.
                let names: Vec<&str> = line.split_whitespace().collect();
                let values: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
                let i = names.iter().position(|n| *n == "ForwDatagrams").unwrap();
                total += values[i].parse::<u64>().unwrap();
            } else if let Some(v) = line.strip_prefix("Ip6OutForwDatagrams") {
                total += v.trim().parse::<u64>().unwrap();
            }
        }
        total
    }

    pub fn packets(&self, ifname: &str) -> (u64, u64) {
        let v = self.ip_json(&format!("-s link show dev {ifname}"));
        let s = &v[0]["stats64"];
        (s["rx"]["packets"].as_u64().unwrap(), s["tx"]["packets"].as_u64().unwrap())
    }

    /// Route lines of a table (`ip route show table <t>`), both families; empty for a
    /// table that does not exist.
    pub fn routes(&self, table: &str) -> String {
        let mut out = String::new();
        for fam in ["-4", "-6"] {
            let o = Command::new("ip")
                .args(["-n", self.name(), fam, "route", "show", "table", table])
                .output()
                .unwrap();
            out.push_str(&String::from_utf8_lossy(&o.stdout));
        }
        out
    }

    pub fn has_link(&self, name: &str) -> bool {
        self.try_ip(&format!("link show dev {name}"))
    }

    fn no_dad(&self) {
        self.sysctl("net/ipv6/conf/all/accept_dad", "0");
        self.sysctl("net/ipv6/conf/default/accept_dad", "0");
    }
}

pub const NODE_V4: &str = "192.0.2.10";
pub const NODE_V6: &str = "2001:db8:1::10";
pub const GW_V4: &str = "192.0.2.1";
pub const GW_V6: &str = "2001:db8:1::1";
pub const EXTERNAL_V4: &str = "203.0.113.1";
pub const EXTERNAL_V6: &str = "2001:db8:e::1";
pub const SERVICE_V4: &str = "198.51.100.10";
pub const SERVICE_V6: &str = "2001:db8:5::10";
pub const OVERLAY_V4: &str = "198.51.100.200";
pub const OVERLAY_V6: &str = "2001:db8:6::200";
/// Second underlay (second PF stand-in).
pub const NODE2_V4: &str = "203.0.113.66";
pub const GW2_V4: &str = "203.0.113.65";

/// The namespaces plus a private directory for state and logs.
pub struct Topology {
    pub node: Ns,
    pub switch: Ns,
    pub endpoint: Ns,
    pub pod: Ns,
    pub dir: tempfile::TempDir,
}

impl Topology {
    pub fn build() -> Topology {
        let t = Topology {
            node: Ns::new("node"),
            switch: Ns::new("sw"),
            endpoint: Ns::new("ep"),
            pod: Ns::new("pod"),
            dir: tempfile::tempdir().unwrap(),
        };
        for ns in [&t.node, &t.switch, &t.endpoint, &t.pod] {
            ns.no_dad();
            ns.ip("link set lo up");
        }
        // Underlay: node uplink <-> switch.
        t.node.ip(&format!("link add uplink type veth peer name sw0 netns {}", t.switch.name()));
        t.node.ip("link set uplink up");
        t.node.ip(&format!("addr add {NODE_V4}/24 dev uplink"));
        t.node.ip(&format!("addr add {NODE_V6}/64 dev uplink nodad"));
        t.node.ip(&format!("route add default via {GW_V4}"));
        t.node.ip(&format!("-6 route add default via {GW_V6}"));
        t.switch.ip("link set sw0 up");
        t.switch.ip(&format!("addr add {GW_V4}/24 dev sw0"));
        t.switch.ip(&format!("addr add {GW_V6}/64 dev sw0 nodad"));
        t.switch.ip(&format!("addr add {EXTERNAL_V4}/32 dev lo"));
        t.switch.ip(&format!("addr add {EXTERNAL_V6}/128 dev lo"));
        // Endpoint behind the node.
        t.node.ip(&format!("link add toep type veth peer name ep0 netns {}", t.endpoint.name()));
        t.node.ip("link set toep up");
        t.node.ip("addr add 203.0.113.129/30 dev toep");
        t.node.ip("addr add 2001:db8:f::1/64 dev toep nodad");
        t.endpoint.ip("link set ep0 up");
        t.endpoint.ip("addr add 203.0.113.130/30 dev ep0");
        t.endpoint.ip("addr add 2001:db8:f::2/64 dev ep0 nodad");
        for a in [SERVICE_V4, OVERLAY_V4] {
            t.endpoint.ip(&format!("addr add {a}/32 dev lo"));
        }
        for a in [SERVICE_V6, OVERLAY_V6] {
            t.endpoint.ip(&format!("addr add {a}/128 dev lo"));
        }
        t.endpoint.ip("route add default via 203.0.113.129");
        t.endpoint.ip("-6 route add default via 2001:db8:f::1");
        t.node.ip("route add 198.51.100.0/24 via 203.0.113.130");
        t.node.ip("-6 route add 2001:db8:5::/112 via 2001:db8:f::2");
        t.node.ip("-6 route add 2001:db8:6::/64 via 2001:db8:f::2");
        t.node.sysctl("net/ipv4/ip_forward", "1");
        t.node.sysctl("net/ipv6/conf/all/forwarding", "1");
        t
    }

    /// A second underlay parent (`uplink2`, 203.0.113.64/26) to the switch.
    pub fn add_second_uplink(&self) {
        self.node
            .ip(&format!("link add uplink2 type veth peer name sw1 netns {}", self.switch.name()));
        self.node.ip("link set uplink2 up");
        self.node.ip(&format!("addr add {NODE2_V4}/26 dev uplink2"));
        self.switch.ip("link set sw1 up");
        self.switch.ip(&format!("addr add {GW2_V4}/26 dev sw1"));
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn log_file(&self, name: &str) -> PathBuf {
        self.dir.path().join("log").join(name)
    }

    /// `log_options` + `state_dir` for a plugin of ours.
    pub fn ours(&self, plugin: &str, keys: Value) -> Value {
        let mut v = json!({
            "type": plugin,
            "log_options": {"log_level": "debug", "log_file": self.log_file(&format!("{plugin}.log"))},
            "state_dir": self.state_dir(),
        });
        merge(&mut v, keys);
        v
    }

    /// The number of attachment records on disk (not counting the node-wide indexes under
    /// `.node-global`).
    pub fn records(&self) -> usize {
        walk(&self.state_dir())
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .filter(|p| !p.components().any(|c| c.as_os_str() == ".node-global"))
            .count()
    }

    /// The number of node-wide index files.
    pub fn node_indexes(&self) -> usize {
        walk(&self.state_dir().join(".node-global")).len()
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

pub fn merge(base: &mut Value, extra: Value) {
    if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
        for (k, v) in e {
            b.insert(k, v);
        }
    }
}

/// Hijack subnets of the topology.
pub fn hijack_keys() -> Value {
    json!({
        "service_hijack_subnet": ["198.51.100.0/25", "2001:db8:5::/112"],
        "overlay_hijack_subnet": ["198.51.100.128/25", "2001:db8:6::/64"],
    })
}

/// Debian's plugins.
pub const DEBIAN_CNI: &str = "/usr/lib/cni";

pub fn our_bin(name: &str) -> PathBuf {
    match name {
        "veth" => PathBuf::from(env!("CARGO_BIN_EXE_veth")),
        "router" => PathBuf::from(env!("CARGO_BIN_EXE_router")),
        // The suite's sriov plugin, built by its own package next to ours.
        "sriov" => PathBuf::from(env!("CARGO_BIN_EXE_veth")).with_file_name("sriov"),
        other => Path::new(DEBIAN_CNI).join(other),
    }
}

/// What a plugin printed and how it exited.
#[derive(Debug)]
pub struct Outcome {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or(Value::Null)
    }

    pub fn code(&self) -> Option<u64> {
        self.json()["code"].as_u64()
    }

    #[track_caller]
    pub fn expect_ok(&self, what: &str) -> Value {
        assert!(self.ok, "{what} failed: stdout={} stderr={}", self.stdout, self.stderr);
        self.json()
    }
}

/// Runs one plugin binary in the node netns, as a runtime would.
pub fn exec_plugin(
    node: &Ns,
    bin: &Path,
    command: &str,
    cid: &str,
    netns: Option<&Path>,
    ifname: &str,
    config: &Value,
) -> Outcome {
    exec_plugin_env(node, bin, command, cid, netns, ifname, config, &[])
}

/// [`exec_plugin`] with extra environment variables.
#[allow(clippy::too_many_arguments)]
pub fn exec_plugin_env(
    node: &Ns,
    bin: &Path,
    command: &str,
    cid: &str,
    netns: Option<&Path>,
    ifname: &str,
    config: &Value,
    env: &[(String, String)],
) -> Outcome {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net={}", node.path().display()))
        .arg(bin)
        .env_clear()
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", cid)
        .env("CNI_IFNAME", ifname)
        .env("CNI_PATH", format!("{}:{}", DEBIAN_CNI, our_bin("veth").parent().unwrap().display()))
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(n) = netns {
        cmd.env("CNI_NETNS", n);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    child.stdin.take().unwrap().write_all(config.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    Outcome {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A configuration list run like libcni: ADD in order feeding `prevResult`, DEL in reverse
/// with the final result, CHECK in order with the final result.
pub struct Chain {
    pub name: String,
    pub version: String,
    pub plugins: Vec<Value>,
    /// Extra environment for every plugin (e.g. the simulated sysfs root for `sriov`).
    pub env: Vec<(String, String)>,
}

impl Chain {
    pub fn new(name: &str, version: &str, plugins: Vec<Value>) -> Chain {
        Chain { name: name.into(), version: version.into(), plugins, env: Vec::new() }
    }

    fn conf(&self, plugin: &Value, prev: Option<&Value>) -> Value {
        let mut c = plugin.clone();
        merge(&mut c, json!({"cniVersion": self.version, "name": self.name}));
        if let Some(p) = prev {
            merge(&mut c, json!({"prevResult": p}));
        }
        c
    }

    fn bin(plugin: &Value) -> PathBuf {
        our_bin(plugin["type"].as_str().unwrap())
    }

    /// ADD; returns the final result or the first failure.
    pub fn add(&self, node: &Ns, cid: &str, netns: &Path, ifname: &str) -> Result<Value, Outcome> {
        self.add_with(node, cid, netns, ifname, |_| {})
    }

    /// ADD with `between(i)` called after plugin `i` succeeded (to emulate what another
    /// plugin of the list would have done).
    pub fn add_with(
        &self,
        node: &Ns,
        cid: &str,
        netns: &Path,
        ifname: &str,
        between: impl Fn(usize),
    ) -> Result<Value, Outcome> {
        let mut prev: Option<Value> = None;
        for (i, p) in self.plugins.iter().enumerate() {
            if i > 0 {
                between(i - 1);
            }
            let out = exec_plugin_env(
                node,
                &Self::bin(p),
                "ADD",
                cid,
                Some(netns),
                ifname,
                &self.conf(p, prev.as_ref()),
                &self.env,
            );
            if !out.ok {
                return Err(out);
            }
            prev = Some(out.json());
        }
        Ok(prev.unwrap_or(Value::Null))
    }

    #[track_caller]
    pub fn add_ok(&self, node: &Ns, cid: &str, netns: &Path, ifname: &str) -> Value {
        match self.add(node, cid, netns, ifname) {
            Ok(v) => v,
            Err(o) => panic!("ADD {cid}/{ifname} failed: stdout={} stderr={}", o.stdout, o.stderr),
        }
    }

    /// DEL of every plugin in reverse; returns the outcomes.
    pub fn del(
        &self,
        node: &Ns,
        cid: &str,
        netns: Option<&Path>,
        ifname: &str,
        result: Option<&Value>,
    ) -> Vec<Outcome> {
        self.plugins
            .iter()
            .rev()
            .map(|p| {
                let conf = self.conf(p, result);
                exec_plugin_env(node, &Self::bin(p), "DEL", cid, netns, ifname, &conf, &self.env)
            })
            .collect()
    }

    #[track_caller]
    pub fn del_ok(
        &self,
        node: &Ns,
        cid: &str,
        netns: Option<&Path>,
        ifname: &str,
        result: Option<&Value>,
    ) {
        for o in self.del(node, cid, netns, ifname, result) {
            o.expect_ok("DEL");
        }
    }

    /// CHECK of every plugin; the first failure, if any.
    pub fn check(
        &self,
        node: &Ns,
        cid: &str,
        netns: &Path,
        ifname: &str,
        result: &Value,
    ) -> Result<(), Outcome> {
        for p in &self.plugins {
            let out = exec_plugin_env(
                node,
                &Self::bin(p),
                "CHECK",
                cid,
                Some(netns),
                ifname,
                &self.conf(p, Some(result)),
                &self.env,
            );
            if !out.ok {
                return Err(out);
            }
        }
        Ok(())
    }

    /// GC of one plugin of the list with the given valid attachments.
    pub fn gc(&self, node: &Ns, plugin_index: usize, valid: &[(&str, &str)]) -> Outcome {
        let p = &self.plugins[plugin_index];
        let mut c = self.conf(p, None);
        // GC exists from 1.1.0 on (Debian's 1.1.1 plugins stop at 1.0.0, so lists run at
        // 1.0.0 and only our plugin gets the GC call).
        merge(&mut c, json!({"cniVersion": "1.1.0"}));
        let list: Vec<Value> =
            valid.iter().map(|(c, i)| json!({"containerID": c, "ifname": i})).collect();
        merge(&mut c, json!({"cni.dev/valid-attachments": list}));
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", node.path().display()))
            .arg(Self::bin(p))
            .env_clear()
            .env("CNI_COMMAND", "GC")
            .env("CNI_PATH", DEBIAN_CNI)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        child.stdin.take().unwrap().write_all(c.to_string().as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        Outcome {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// macvlan on `master` with static IPAM (addresses with gateways; `routes` as given).
pub fn macvlan(master: &str, addresses: &[(&str, &str)], routes: &[&str]) -> Value {
    let addrs: Vec<Value> =
        addresses.iter().map(|(a, g)| json!({"address": a, "gateway": g})).collect();
    let routes: Vec<Value> = routes.iter().map(|d| json!({"dst": d})).collect();
    json!({"type": "macvlan", "master": master, "mode": "bridge", "ipam": {"type": "static", "addresses": addrs, "routes": routes}})
}

/// ptp with static IPAM, standing in for the default CNI (eth0 198.51.100.140, 2001:db8:6::140).
pub fn ptp_overlay() -> Value {
    json!({"type": "ptp", "ipMasq": false, "ipam": {"type": "static",
        "addresses": [{"address": "198.51.100.140/25", "gateway": "198.51.100.129"},
                      {"address": "2001:db8:6::140/64", "gateway": "2001:db8:6::1"}],
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]}})
}

const PROBE_TIMEOUT: Duration = Duration::from_millis(700);

/// A TCP connection from `from` to `dst:port` served in `to`. Returns the client address
/// the server saw, or why it failed.
pub fn tcp(from: &Ns, to: &Ns, dst: &str, port: u16) -> Result<IpAddr, String> {
    let dst: IpAddr = dst.parse().unwrap();
    let addr = SocketAddr::new(dst, port);
    let listener = run_in_netns(to.netns(), move || TcpListener::bind(addr))
        .unwrap()
        .map_err(|e| format!("bind {addr} in {}: {e}", to.name()))?;
    let server = std::thread::spawn(move || listener.accept().map(|(_, peer)| peer.ip()));
    let client =
        run_in_netns(from.netns(), move || TcpStream::connect_timeout(&addr, PROBE_TIMEOUT))
            .unwrap();
    match client {
        Ok(stream) => {
            drop(stream);
            server.join().unwrap().map_err(|e| e.to_string())
        }
        Err(e) => {
            // Unblock the accept with a local connection, then report.
            let _ =
                run_in_netns(to.netns(), move || TcpStream::connect_timeout(&addr, PROBE_TIMEOUT));
            let _ = server.join();
            Err(format!("connect {addr} from {}: {e}", from.name()))
        }
    }
}

/// A UDP round trip from `from` (optionally bound to `src`) to `dst:port` served in `to`.
/// Returns the source address the server saw.
pub fn udp(from: &Ns, to: &Ns, src: Option<&str>, dst: &str, port: u16) -> Result<IpAddr, String> {
    use std::net::UdpSocket;
    let dst: IpAddr = dst.parse().unwrap();
    let addr = SocketAddr::new(dst, port);
    let server = run_in_netns(to.netns(), move || UdpSocket::bind(addr))
        .unwrap()
        .map_err(|e| format!("bind {addr}: {e}"))?;
    server.set_read_timeout(Some(PROBE_TIMEOUT)).unwrap();
    let echo = std::thread::spawn(move || -> Result<IpAddr, String> {
        let mut buf = [0u8; 64];
        let (n, peer) = server.recv_from(&mut buf).map_err(|e| format!("server recv: {e}"))?;
        server.send_to(&buf[..n], peer).map_err(|e| format!("server send: {e}"))?;
        Ok(peer.ip())
    });
    let local: SocketAddr = match src {
        Some(s) => SocketAddr::new(s.parse().unwrap(), 0),
        None if dst.is_ipv4() => "0.0.0.0:0".parse().unwrap(),
        None => "[::]:0".parse().unwrap(),
    };
    let client = run_in_netns(from.netns(), move || -> std::io::Result<()> {
        let c = UdpSocket::bind(local)?;
        c.set_read_timeout(Some(PROBE_TIMEOUT))?;
        c.send_to(b"ping", addr)?;
        let mut buf = [0u8; 64];
        c.recv_from(&mut buf)?;
        Ok(())
    })
    .unwrap();
    let seen = echo.join().unwrap();
    client.map_err(|e| format!("udp {addr} from {} ({src:?}): {e}", from.name()))?;
    seen
}

/// Asserts a TCP connection works and returns the source address the server saw.
#[track_caller]
pub fn tcp_ok(from: &Ns, to: &Ns, dst: &str) -> IpAddr {
    tcp(from, to, dst, 8080).unwrap_or_else(|e| panic!("expected a connection: {e}"))
}

/// Asserts a TCP connection fails.
#[track_caller]
pub fn tcp_fails(from: &Ns, to: &Ns, dst: &str) {
    if let Ok(src) = tcp(from, to, dst, 8081) {
        panic!(
            "expected {dst} to be unreachable from {}, but it answered (source {src})",
            from.name()
        );
    }
}

/// Waits (bounded) for an asynchronous kernel cleanup, e.g. a destroyed netns taking its
/// veth peers along.
#[track_caller]
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Ensures a namespace of the topology is neither the test process's own netns nor (when
/// readable) PID 1's.
pub fn assert_not_root_netns(ns: &Ns) {
    let own = Netns::current().unwrap();
    assert!(!ns.netns().same_as(&own).unwrap(), "{} is the test's own netns", ns.name());
    if let Ok(init) = Netns::init() {
        assert!(!ns.netns().same_as(&init).unwrap(), "{} is PID 1's netns", ns.name());
    }
}
