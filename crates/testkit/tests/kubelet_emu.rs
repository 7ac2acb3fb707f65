//! Black-box tests of the `kubelet-emu` binary against an in-process device plugin whose devices,
//! health and answers the test controls.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use sriov_device_plugin::api::device_plugin_server::{DevicePlugin, DevicePluginServer};
use sriov_device_plugin::api::{
    AllocateRequest, AllocateResponse, CdiDevice, ContainerAllocateResponse,
    ContainerPreferredAllocationResponse, Device, DevicePluginOptions, DeviceSpec, Empty,
    ListAndWatchResponse, Mount, NumaNode, PreStartContainerRequest, PreStartContainerResponse,
    PreferredAllocationRequest, PreferredAllocationResponse, TopologyInfo,
};
use sriov_device_plugin::kubelet::{KUBELET_SOCKET, register};
use tokio::net::UnixListener;
use tokio::sync::watch;
use tokio_stream::wrappers::{UnixListenerStream, WatchStream};
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

const BIN: &str = env!("CARGO_BIN_EXE_kubelet-emu");
const RESOURCE: &str = "example.com/vf";
const ENDPOINT: &str = "example.com_vf.sock";

/// A plugin that lists what `devices` holds, answers Allocate with the requested IDs in an env
/// var (and fixed mounts, device specs, annotations, CDI devices), refuses the ID `bad`, and
/// answers GetPreferredAllocation with the available IDs in reverse order, cut to the size.
#[derive(Clone)]
struct FakePlugin {
    devices: watch::Sender<Vec<Device>>,
}

fn dev(id: &str, healthy: bool, numa: Option<i64>) -> Device {
    Device {
        id: id.into(),
        health: if healthy { "Healthy" } else { "Unhealthy" }.into(),
        topology: numa.map(|n| TopologyInfo { nodes: vec![NumaNode { id: n }] }),
    }
}

type DeviceStream = Pin<Box<dyn Stream<Item = Result<ListAndWatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl DevicePlugin for FakePlugin {
    async fn get_device_plugin_options(
        &self,
        _: Request<Empty>,
    ) -> Result<Response<DevicePluginOptions>, Status> {
        Ok(Response::new(DevicePluginOptions {
            pre_start_required: true,
            get_preferred_allocation_available: true,
        }))
    }

    type ListAndWatchStream = DeviceStream;

    async fn list_and_watch(
        &self,
        _: Request<Empty>,
    ) -> Result<Response<Self::ListAndWatchStream>, Status> {
        let s = WatchStream::new(self.devices.subscribe())
            .map(|devices| Ok(ListAndWatchResponse { devices }));
        Ok(Response::new(Box::pin(s)))
    }

    async fn get_preferred_allocation(
        &self,
        r: Request<PreferredAllocationRequest>,
    ) -> Result<Response<PreferredAllocationResponse>, Status> {
        let container_responses = r
            .into_inner()
            .container_requests
            .into_iter()
            .map(|c| {
                let mut ids = c.must_include_device_i_ds.clone();
                ids.extend(
                    c.available_device_i_ds
                        .iter()
                        .rev()
                        .filter(|id| !c.must_include_device_i_ds.contains(id))
                        .cloned(),
                );
                ids.truncate(c.allocation_size as usize);
                ContainerPreferredAllocationResponse { device_i_ds: ids }
            })
            .collect();
        Ok(Response::new(PreferredAllocationResponse { container_responses }))
    }

    async fn allocate(
        &self,
        r: Request<AllocateRequest>,
    ) -> Result<Response<AllocateResponse>, Status> {
        let mut container_responses = Vec::new();
        for c in r.into_inner().container_requests {
            if let Some(bad) = c.devices_ids.iter().find(|id| *id == "bad") {
                return Err(Status::invalid_argument(format!("unknown device {bad}")));
            }
            container_responses.push(ContainerAllocateResponse {
                envs: [("FAKE_IDS".to_owned(), c.devices_ids.join(","))].into(),
                mounts: vec![Mount {
                    container_path: "/c".into(),
                    host_path: "/h".into(),
                    read_only: true,
                }],
                devices: vec![DeviceSpec {
                    container_path: "/dev/vfio/7".into(),
                    host_path: "/dev/vfio/7".into(),
                    permissions: "rw".into(),
                }],
                annotations: [("a".to_owned(), "b".to_owned())].into(),
                cdi_devices: vec![CdiDevice { name: "example.com/net=x".into() }],
            });
        }
        Ok(Response::new(AllocateResponse { container_responses }))
    }

    async fn pre_start_container(
        &self,
        _: Request<PreStartContainerRequest>,
    ) -> Result<Response<PreStartContainerResponse>, Status> {
        Ok(Response::new(PreStartContainerResponse {}))
    }
}

/// Serves the fake plugin on `<dir>/<ENDPOINT>`.
fn serve_plugin(dir: &Path, plugin: FakePlugin) {
    let listener = UnixListener::bind(dir.join(ENDPOINT)).unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(DevicePluginServer::new(plugin))
            .serve_with_incoming(UnixListenerStream::new(listener)),
    );
}

/// Runs `kubelet-emu --dir DIR ARGS...` off the async threads.
async fn emu(dir: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("--dir").arg(dir).args(args);
    tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap()
}

/// The JSON lines of a successful run.
fn lines(o: &Output) -> Vec<Value> {
    assert!(
        o.status.success(),
        "kubelet-emu failed: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

struct Serve {
    child: Child,
}

impl Serve {
    async fn start(dir: &Path) -> Self {
        let child = Command::new(BIN)
            .arg("--dir")
            .arg(dir)
            .arg("serve")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let state = dir.join("kubelet-emu.json");
        for _ in 0..200 {
            if state.exists() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(state.exists() && dir.join(KUBELET_SOCKET).exists(), "serve did not start");
        Self { child }
    }

    fn signal(&self, sig: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        nix::sys::signal::kill(pid, sig).unwrap();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ids(v: &Value) -> Vec<&str> {
    v["devices"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drives_a_plugin_like_the_kubelet() {
    let tmp = tempfile::tempdir().unwrap();
    let dir: PathBuf = tmp.path().join("device-plugins");
    // A stale kubelet.sock from a crashed run is replaced.
    std::fs::create_dir_all(&dir).unwrap();
    drop(std::os::unix::net::UnixListener::bind(dir.join(KUBELET_SOCKET)).unwrap());
    let serve = Serve::start(&dir).await;

    // Nothing registered yet: a short wait for a registration fails and says what it waited for.
    let o = emu(&dir, &["--timeout", "300ms", "list", "-r", RESOURCE]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("example.com/vf to register"), "{}", stderr(&o));

    let (devices, _) = watch::channel(vec![
        dev("0000:01:10.0", true, Some(1)),
        dev("0000:01:10.2", true, None),
        dev("0000:01:10.4", false, Some(0)),
    ]);
    let plugin = FakePlugin { devices };
    serve_plugin(&dir, plugin.clone());
    register(&dir.join(KUBELET_SOCKET), ENDPOINT, RESOURCE).await.unwrap();

    let regs = lines(&emu(&dir, &["--wait-resources", "1", "registrations"]).await);
    assert_eq!(regs.len(), 1);
    assert_eq!(regs[0]["resource"], RESOURCE);
    assert_eq!(regs[0]["endpoint"], ENDPOINT);
    assert_eq!(regs[0]["version"], "v1beta1");
    assert_eq!((regs[0]["seq"].as_u64(), regs[0]["epoch"].as_u64()), (Some(0), Some(0)));
    assert_eq!(regs[0]["options"]["getPreferredAllocationAvailable"], true);

    let opts = lines(&emu(&dir, &["options", "-r", RESOURCE]).await);
    assert_eq!(opts[0]["preStartRequired"], true);

    // One snapshot: IDs in the plugin's order, health, NUMA nodes (null without topology).
    let t0 = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let snap = lines(&emu(&dir, &["list", "-r", RESOURCE]).await);
    let t = snap[0]["time"].as_f64().unwrap();
    assert!(t >= t0.as_secs_f64() && t < t0.as_secs_f64() + 60.0, "arrival time {t}");
    assert_eq!(snap.len(), 1);
    let s = &snap[0];
    assert_eq!(ids(s), ["0000:01:10.0", "0000:01:10.2", "0000:01:10.4"]);
    assert_eq!(
        (s["total"].as_u64(), s["healthy"].as_u64(), s["unhealthy"].as_u64()),
        (Some(3), Some(2), Some(1))
    );
    assert_eq!(s["devices"][0]["numaNodes"], serde_json::json!([1]));
    assert_eq!(s["devices"][1]["numaNodes"], Value::Null);
    assert_eq!(s["devices"][2]["health"], "Unhealthy");

    // The direct socket works without the state file's lookup.
    let sock = dir.join(ENDPOINT);
    let snap = lines(&emu(&dir, &["list", "--socket", sock.to_str().unwrap()]).await);
    assert_eq!(ids(&snap[0]), ids(s));

    // wait: blocks until a later snapshot holds, then prints that one.
    let waiter = tokio::spawn({
        let dir = dir.clone();
        async move {
            emu(
                &dir,
                &[
                    "--timeout",
                    "20s",
                    "wait",
                    "-r",
                    RESOURCE,
                    "--healthy",
                    "0",
                    "--unhealthy-ids",
                    "0000:01:10.0,0000:01:10.4",
                    "--absent",
                    "0000:01:10.2",
                ],
            )
            .await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // An intermediate state that holds only part of the condition.
    plugin.devices.send_replace(vec![
        dev("0000:01:10.0", false, Some(1)),
        dev("0000:01:10.2", true, None),
        dev("0000:01:10.4", false, Some(0)),
    ]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    plugin.devices.send_replace(vec![
        dev("0000:01:10.0", false, Some(1)),
        dev("0000:01:10.4", false, Some(0)),
    ]);
    let out = lines(&waiter.await.unwrap());
    assert_eq!(out.len(), 1);
    assert_eq!(ids(&out[0]), ["0000:01:10.0", "0000:01:10.4"]);
    assert!(out[0]["seq"].as_u64().unwrap() >= 1, "matched a later snapshot: {}", out[0]);

    // A condition that never holds: exit 1 naming the condition and the last snapshot.
    let o = emu(&dir, &["--timeout", "500ms", "wait", "-r", RESOURCE, "--count", "5", "--ids", ""])
        .await;
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("count=5 ids=[]") && e.contains("last snapshot") && e.contains("0000:01:10.4"),
        "{e}"
    );
    // No condition at all is a usage error.
    assert_eq!(emu(&dir, &["wait", "-r", RESOURCE]).await.status.code(), Some(2));

    // list --count 2 needs a second snapshot: it comes when the devices change.
    let lister = tokio::spawn({
        let dir = dir.clone();
        async move { emu(&dir, &["--timeout", "20s", "list", "-r", RESOURCE, "--count", "2"]).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    plugin.devices.send_replace(vec![dev("0000:01:10.0", true, Some(1))]);
    let two = lines(&lister.await.unwrap());
    assert_eq!(two.len(), 2);
    assert_eq!(ids(&two[1]), ["0000:01:10.0"]);
    assert_eq!(two[1]["seq"], 1);

    // Allocate: one argument per container; the response is printed field by field.
    let a = lines(
        &emu(&dir, &["allocate", "-r", RESOURCE, "0000:01:10.0,0000:01:10.4", "0000:01:10.2"])
            .await,
    );
    let c = &a[0]["containerResponses"];
    assert_eq!(c.as_array().unwrap().len(), 2);
    assert_eq!(c[0]["envs"]["FAKE_IDS"], "0000:01:10.0,0000:01:10.4");
    assert_eq!(c[1]["envs"]["FAKE_IDS"], "0000:01:10.2");
    assert_eq!(
        c[0]["mounts"][0],
        serde_json::json!({"containerPath":"/c","hostPath":"/h","readOnly":true})
    );
    assert_eq!(
        c[0]["devices"][0],
        serde_json::json!({"containerPath":"/dev/vfio/7","hostPath":"/dev/vfio/7","permissions":"rw"})
    );
    assert_eq!(c[0]["annotations"]["a"], "b");
    assert_eq!(c[0]["cdiDevices"], serde_json::json!(["example.com/net=x"]));
    // A refused Allocate: exit 1 with the gRPC code and message.
    let o = emu(&dir, &["allocate", "-r", RESOURCE, "bad"]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("InvalidArgument: unknown device bad"), "{}", stderr(&o));
    // The same ID twice in a container is caught before any call.
    assert_eq!(emu(&dir, &["allocate", "-r", RESOURCE, "x,x"]).await.status.code(), Some(2));

    // GetPreferredAllocation: explicit lists, and the default (Healthy devices listed now).
    plugin.devices.send_replace(vec![
        dev("0000:01:10.0", true, None),
        dev("0000:01:10.2", false, None),
        dev("0000:01:10.4", true, None),
    ]);
    let p = lines(
        &emu(
            &dir,
            &[
                "preferred",
                "-r",
                RESOURCE,
                "--available",
                "a,b,c",
                "--must-include",
                "b",
                "--size",
                "2",
            ],
        )
        .await,
    );
    assert_eq!(p[0]["deviceIds"], serde_json::json!(["b", "c"]));
    let p = lines(&emu(&dir, &["preferred", "-r", RESOURCE, "--size", "3"]).await);
    assert_eq!(p[0]["deviceIds"], serde_json::json!(["0000:01:10.4", "0000:01:10.0"]));

    // A kubelet restart: plugin sockets removed, epoch 1; the old registration no longer counts.
    let r = lines(&emu(&dir, &["restart"]).await);
    assert!(r.is_empty(), "nothing registered in the new epoch yet: {r:?}");
    assert!(!sock.exists(), "restart removes plugin sockets");
    assert!(dir.join(KUBELET_SOCKET).exists());
    let o = emu(&dir, &["--timeout", "300ms", "--wait-resources", "1", "registrations"]).await;
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stdout));
    serve_plugin(&dir, plugin.clone());
    register(&dir.join(KUBELET_SOCKET), ENDPOINT, RESOURCE).await.unwrap();
    let regs = lines(&emu(&dir, &["--wait-resources", "1", "registrations"]).await);
    assert_eq!((regs[0]["seq"].as_u64(), regs[0]["epoch"].as_u64()), (Some(1), Some(1)));
    assert_eq!(lines(&emu(&dir, &["registrations", "--all"]).await).len(), 2);
    assert_eq!(lines(&emu(&dir, &["registrations", "--all", "--after", "0"]).await).len(), 1);
    assert_eq!(ids(&lines(&emu(&dir, &["list", "-r", RESOURCE]).await)[0]).len(), 3);

    // SIGTERM: exit 0, kubelet.sock and the state file removed; registrations were printed.
    serve.signal(nix::sys::signal::Signal::SIGTERM);
    let mut serve = serve;
    let status = tokio::task::block_in_place(|| serve.child.wait().unwrap());
    assert!(status.success(), "serve exit status {status}");
    assert!(!dir.join(KUBELET_SOCKET).exists() && !dir.join("kubelet-emu.json").exists());
    let mut out = String::new();
    std::io::Read::read_to_string(serve.child.stdout.as_mut().unwrap(), &mut out).unwrap();
    let printed: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(printed.len(), 2);
    assert_eq!(printed[1]["epoch"], 1);
    let o = emu(&dir, &["--timeout", "200ms", "registrations"]).await;
    assert!(stderr(&o).contains("no `kubelet-emu serve` running"), "{}", stderr(&o));
}
