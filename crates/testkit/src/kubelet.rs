//! A kubelet emulator for device-plugin tests.
//!
//! [`Kubelet`] serves the device-plugin `Registration` service on `<dir>/kubelet.sock` and records
//! every registration; [`Kubelet::restart`] behaves like a kubelet restart (it removes every socket
//! in the directory, its own included, then serves a fresh `kubelet.sock`). [`PluginClient`] talks
//! to a plugin's socket the way the kubelet does: GetDevicePluginOptions, ListAndWatch,
//! GetPreferredAllocation, Allocate and PreStartContainer.
//!
//! Everything is async (tokio); timeouts are explicit so a broken plugin fails a test instead of
//! hanging it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sriov_device_plugin::api::device_plugin_client::DevicePluginClient;
use sriov_device_plugin::api::registration_server::{
    Registration as RegistrationService, RegistrationServer,
};
use sriov_device_plugin::api::{
    AllocateRequest, AllocateResponse, ContainerAllocateRequest, ContainerAllocateResponse,
    ContainerPreferredAllocationRequest, Device, DevicePluginOptions, Empty, ListAndWatchResponse,
    PreStartContainerRequest, PreferredAllocationRequest, RegisterRequest,
};
use sriov_device_plugin::kubelet::{API_VERSION, KUBELET_SOCKET, uds_channel};
use tokio::net::UnixListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

/// The file the real kubelet keeps in the directory across restarts.
const CHECKPOINT: &str = "kubelet_internal_checkpoint";

/// What went wrong in the emulator or while talking to a plugin.
#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    /// A file-system operation failed.
    #[error("{op} {path}")]
    Io {
        /// What was done.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Connecting to a plugin socket failed.
    #[error("connect to plugin socket {path}")]
    Connect {
        /// The socket.
        path: PathBuf,
        /// The transport error.
        #[source]
        source: tonic::transport::Error,
    },
    /// A plugin call failed.
    #[error("{call} on plugin")]
    Call {
        /// The RPC.
        call: &'static str,
        /// The status.
        #[source]
        source: Status,
    },
    /// Nothing happened in time.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        after: Duration,
    },
    /// A ListAndWatch stream ended.
    #[error("ListAndWatch stream ended")]
    StreamEnded,
}

impl KubeletError {
    /// The gRPC status of a failed call, if that is what this is.
    pub fn status(&self) -> Option<&Status> {
        match self {
            Self::Call { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// One recorded registration.
#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    /// API version the plugin sent.
    pub version: String,
    /// Socket file name relative to the kubelet directory.
    pub endpoint: String,
    /// Resource name.
    pub resource_name: String,
    /// Options the plugin sent.
    pub options: Option<DevicePluginOptions>,
    /// When it arrived.
    pub at: Instant,
    /// Which incarnation of the kubelet received it (0 at start, +1 per [`Kubelet::restart`]).
    pub epoch: u64,
}

#[derive(Debug, Default)]
struct Shared {
    registrations: Mutex<Vec<Registration>>,
    epoch: Mutex<u64>,
}

#[derive(Debug, Clone)]
struct RegistrationHandler {
    shared: Arc<Shared>,
    notify: watch::Sender<usize>,
}

#[tonic::async_trait]
impl RegistrationService for RegistrationHandler {
    async fn register(&self, request: Request<RegisterRequest>) -> Result<Response<Empty>, Status> {
        let r = request.into_inner();
        if r.version != API_VERSION {
            return Err(Status::invalid_argument(format!(
                "unsupported device plugin API version {:?}",
                r.version
            )));
        }
        if r.resource_name.split_once('/').is_none_or(|(p, n)| p.is_empty() || n.is_empty()) {
            return Err(Status::invalid_argument(format!(
                "invalid resource name {:?}",
                r.resource_name
            )));
        }
        let epoch = *self.shared.epoch.lock().unwrap_or_else(|e| e.into_inner());
        let reg = Registration {
            version: r.version,
            endpoint: r.endpoint,
            resource_name: r.resource_name,
            options: r.options,
            at: Instant::now(),
            epoch,
        };
        let n = {
            let mut regs = self.shared.registrations.lock().unwrap_or_else(|e| e.into_inner());
            regs.push(reg);
            regs.len()
        };
        self.notify.send_replace(n);
        Ok(Response::new(Empty {}))
    }
}

/// The emulated kubelet.
#[derive(Debug)]
pub struct Kubelet {
    dir: PathBuf,
    shared: Arc<Shared>,
    notify: watch::Sender<usize>,
    server: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
    keep: Vec<std::ffi::OsString>,
}

impl Kubelet {
    /// Creates `dir` if needed and serves `<dir>/kubelet.sock`.
    pub async fn start(dir: impl Into<PathBuf>) -> Result<Self, KubeletError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|source| KubeletError::Io {
            op: "create",
            path: dir.clone(),
            source,
        })?;
        let (notify, _) = watch::channel(0);
        let mut k = Self { dir, shared: Arc::default(), notify, server: None, keep: Vec::new() };
        k.serve()?;
        Ok(k)
    }

    fn serve(&mut self) -> Result<(), KubeletError> {
        let path = self.socket();
        let listener = UnixListener::bind(&path).map_err(|source| KubeletError::Io {
            op: "bind",
            path,
            source,
        })?;
        let handler =
            RegistrationHandler { shared: Arc::clone(&self.shared), notify: self.notify.clone() };
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(RegistrationServer::new(handler))
                .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async {
                    let _ = stop_rx.await;
                })
                .await;
        });
        self.server = Some((stop_tx, task));
        Ok(())
    }

    /// The device-plugins directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `<dir>/kubelet.sock`.
    pub fn socket(&self) -> PathBuf {
        self.dir.join(KUBELET_SOCKET)
    }

    /// Keeps the file `name` in the directory across [`Kubelet::restart`] (as the checkpoint is
    /// kept), e.g. a state file of the tool running the emulator.
    pub fn keep_on_restart(&mut self, name: impl Into<std::ffi::OsString>) {
        self.keep.push(name.into());
    }

    /// A receiver that changes whenever a registration arrives; its value is the number of
    /// registrations received so far (all epochs).
    pub fn subscribe(&self) -> watch::Receiver<usize> {
        self.notify.subscribe()
    }

    /// The current incarnation (0 at start, +1 per restart).
    pub fn epoch(&self) -> u64 {
        *self.shared.epoch.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every registration received so far, in order.
    pub fn registrations(&self) -> Vec<Registration> {
        self.shared.registrations.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits until a registration for `resource` arrives in the current epoch (or already has).
    pub async fn wait_registration(
        &self,
        resource: &str,
        timeout: Duration,
    ) -> Result<Registration, KubeletError> {
        let epoch = self.epoch();
        let mut rx = self.notify.subscribe();
        let find = |k: &Self| {
            k.registrations()
                .into_iter()
                .rev()
                .find(|r| r.resource_name == resource && r.epoch == epoch)
        };
        let wait = async {
            loop {
                if let Some(r) = find(self) {
                    return Ok(r);
                }
                if rx.changed().await.is_err() {
                    return Err(KubeletError::StreamEnded);
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.unwrap_or_else(|_| {
            Err(KubeletError::Timeout {
                what: format!("registration of {resource} (epoch {epoch})"),
                after: timeout,
            })
        })
    }

    /// Waits until `n` distinct resources have registered in the current epoch; returns them
    /// sorted by resource name.
    pub async fn wait_registrations(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<Registration>, KubeletError> {
        let epoch = self.epoch();
        let mut rx = self.notify.subscribe();
        let collect = |k: &Self| {
            let mut by_name = std::collections::BTreeMap::new();
            for r in k.registrations().into_iter().filter(|r| r.epoch == epoch) {
                by_name.insert(r.resource_name.clone(), r);
            }
            by_name.into_values().collect::<Vec<_>>()
        };
        let wait = async {
            loop {
                let got = collect(self);
                if got.len() >= n {
                    return Ok(got);
                }
                if rx.changed().await.is_err() {
                    return Err(KubeletError::StreamEnded);
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.unwrap_or_else(|_| {
            Err(KubeletError::Timeout {
                what: format!("{n} registrations (epoch {epoch})"),
                after: timeout,
            })
        })
    }

    /// Stops serving and removes `kubelet.sock` (a kubelet going down).
    pub async fn stop(&mut self) {
        if let Some((stop, task)) = self.server.take() {
            let _ = stop.send(());
            let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
        }
        let _ = std::fs::remove_file(self.socket());
    }

    /// Restarts like the real kubelet: stop, remove everything in the directory except the
    /// checkpoint and the files named with [`Kubelet::keep_on_restart`] (plugin sockets included), then serve a fresh `kubelet.sock` in a new epoch.
    pub async fn restart(&mut self) -> Result<(), KubeletError> {
        self.stop().await;
        let rd = std::fs::read_dir(&self.dir).map_err(|source| KubeletError::Io {
            op: "list",
            path: self.dir.clone(),
            source,
        })?;
        for entry in rd.flatten() {
            let name = entry.file_name();
            if name == CHECKPOINT || self.keep.contains(&name) {
                continue;
            }
            let path = entry.path();
            std::fs::remove_file(&path).map_err(|source| KubeletError::Io {
                op: "remove",
                path,
                source,
            })?;
        }
        *self.shared.epoch.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.serve()
    }

    /// Connects to the plugin socket a registration named.
    pub async fn connect(&self, reg: &Registration) -> Result<PluginClient, KubeletError> {
        PluginClient::connect(&self.dir.join(&reg.endpoint)).await
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        if let Some((stop, task)) = self.server.take() {
            let _ = stop.send(());
            task.abort();
        }
    }
}

/// A client for one plugin socket, as the kubelet uses it.
#[derive(Debug, Clone)]
pub struct PluginClient {
    client: DevicePluginClient<Channel>,
}

fn call(name: &'static str) -> impl FnOnce(Status) -> KubeletError {
    move |source| KubeletError::Call { call: name, source }
}

impl PluginClient {
    /// Connects to a plugin socket.
    pub async fn connect(socket: &Path) -> Result<Self, KubeletError> {
        let channel = uds_channel(socket)
            .await
            .map_err(|source| KubeletError::Connect { path: socket.to_owned(), source })?;
        Ok(Self { client: DevicePluginClient::new(channel) })
    }

    /// GetDevicePluginOptions.
    pub async fn options(&mut self) -> Result<DevicePluginOptions, KubeletError> {
        Ok(self
            .client
            .get_device_plugin_options(Empty {})
            .await
            .map_err(call("GetDevicePluginOptions"))?
            .into_inner())
    }

    /// Opens a ListAndWatch stream.
    pub async fn list_and_watch(&mut self) -> Result<DeviceStream, KubeletError> {
        let s =
            self.client.list_and_watch(Empty {}).await.map_err(call("ListAndWatch"))?.into_inner();
        Ok(DeviceStream { inner: s })
    }

    /// Allocate for one container.
    pub async fn allocate(
        &mut self,
        ids: &[&str],
    ) -> Result<ContainerAllocateResponse, KubeletError> {
        let mut r = self.allocate_containers(&[ids]).await?;
        r.container_responses.pop().ok_or_else(|| KubeletError::Call {
            call: "Allocate",
            source: Status::internal("plugin returned no container response"),
        })
    }

    /// Allocate for several containers in one request.
    pub async fn allocate_containers(
        &mut self,
        containers: &[&[&str]],
    ) -> Result<AllocateResponse, KubeletError> {
        let req = AllocateRequest {
            container_requests: containers
                .iter()
                .map(|ids| ContainerAllocateRequest {
                    devices_ids: ids.iter().map(|s| (*s).to_owned()).collect(),
                })
                .collect(),
        };
        Ok(self.client.allocate(req).await.map_err(call("Allocate"))?.into_inner())
    }

    /// GetPreferredAllocation for one container.
    pub async fn preferred(
        &mut self,
        available: &[String],
        must_include: &[String],
        size: i32,
    ) -> Result<Vec<String>, KubeletError> {
        let req = PreferredAllocationRequest {
            container_requests: vec![ContainerPreferredAllocationRequest {
                available_device_i_ds: available.to_vec(),
                must_include_device_i_ds: must_include.to_vec(),
                allocation_size: size,
            }],
        };
        let mut r = self
            .client
            .get_preferred_allocation(req)
            .await
            .map_err(call("GetPreferredAllocation"))?
            .into_inner();
        Ok(r.container_responses.pop().map(|c| c.device_i_ds).unwrap_or_default())
    }

    /// PreStartContainer.
    pub async fn pre_start(&mut self, ids: &[&str]) -> Result<(), KubeletError> {
        let req =
            PreStartContainerRequest { devices_ids: ids.iter().map(|s| (*s).to_owned()).collect() };
        self.client.pre_start_container(req).await.map_err(call("PreStartContainer"))?;
        Ok(())
    }
}

/// A ListAndWatch stream.
#[derive(Debug)]
pub struct DeviceStream {
    inner: tonic::Streaming<ListAndWatchResponse>,
}

impl DeviceStream {
    /// The next device list, waiting at most `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Result<Vec<Device>, KubeletError> {
        match tokio::time::timeout(timeout, self.inner.message()).await {
            Err(_) => {
                Err(KubeletError::Timeout { what: "a ListAndWatch update".into(), after: timeout })
            }
            Ok(Err(source)) => Err(KubeletError::Call { call: "ListAndWatch", source }),
            Ok(Ok(None)) => Err(KubeletError::StreamEnded),
            Ok(Ok(Some(r))) => Ok(r.devices),
        }
    }

    /// Reads updates until one satisfies `pred`, within `timeout` overall.
    pub async fn wait_for(
        &mut self,
        timeout: Duration,
        mut pred: impl FnMut(&[Device]) -> bool,
    ) -> Result<Vec<Device>, KubeletError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last = None;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Ok(d) if pred(&d) => return Ok(d),
                Ok(d) => last = Some(d),
                Err(KubeletError::Timeout { .. }) => {
                    return Err(KubeletError::Timeout {
                        what: format!("a matching ListAndWatch update (last seen: {last:?})"),
                        after: timeout,
                    });
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether the stream ends (the plugin stopped) within `timeout`, draining updates meanwhile.
    pub async fn ends_within(&mut self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Ok(_) => {}
                Err(KubeletError::Timeout { .. }) => return false,
                Err(_) => return true,
            }
        }
    }
}

/// Device IDs with their health (`("0000:3b:02.0", "Healthy")`), sorted by ID.
pub fn health_of(devices: &[Device]) -> Vec<(String, String)> {
    let mut v: Vec<_> = devices.iter().map(|d| (d.id.clone(), d.health.clone())).collect();
    v.sort();
    v
}

/// The NUMA node IDs of a device's topology (empty when none was sent).
pub fn numa_of(device: &Device) -> Vec<i64> {
    device.topology.as_ref().map(|t| t.nodes.iter().map(|n| n.id).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_registrations_and_restarts_like_the_kubelet() {
        let tmp = std::env::temp_dir().join(format!("testkit-kubelet-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let mut k = Kubelet::start(&tmp).await.unwrap();
        let channel = uds_channel(&k.socket()).await.unwrap();
        let mut client =
            sriov_device_plugin::api::registration_client::RegistrationClient::new(channel);
        let req = |v: &str, name: &str| RegisterRequest {
            version: v.into(),
            endpoint: "x.sock".into(),
            resource_name: name.into(),
            options: None,
        };
        let e = client.register(req("v1alpha", "example.com/a")).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(client.register(req(API_VERSION, "noslash")).await.is_err());
        client.register(req(API_VERSION, "example.com/a")).await.unwrap();
        let r = k.wait_registration("example.com/a", Duration::from_secs(2)).await.unwrap();
        assert_eq!((r.endpoint.as_str(), r.epoch), ("x.sock", 0));
        assert_eq!(k.registrations().len(), 1);

        std::fs::write(tmp.join("x.sock"), "").unwrap();
        std::fs::write(tmp.join(CHECKPOINT), "{}").unwrap();
        std::fs::write(tmp.join("state.json"), "{}").unwrap();
        k.keep_on_restart("state.json");
        let mut rx = k.subscribe();
        k.restart().await.unwrap();
        assert!(!tmp.join("x.sock").exists(), "restart removes plugin sockets");
        assert!(tmp.join("state.json").exists(), "restart keeps files it was told to keep");
        assert!(tmp.join(CHECKPOINT).exists() && k.socket().exists());
        assert_eq!(k.epoch(), 1);
        assert!(
            k.wait_registration("example.com/a", Duration::from_millis(100)).await.is_err(),
            "old epoch does not count"
        );
        let channel = uds_channel(&k.socket()).await.unwrap();
        let mut client =
            sriov_device_plugin::api::registration_client::RegistrationClient::new(channel);
        client.register(req(API_VERSION, "example.com/a")).await.unwrap();
        assert_eq!(
            k.wait_registration("example.com/a", Duration::from_secs(2)).await.unwrap().epoch,
            1
        );
        tokio::time::timeout(Duration::from_secs(2), rx.changed()).await.unwrap().unwrap();
        assert_eq!(*rx.borrow(), 2, "subscribers see the registration count");
        k.stop().await;
        assert!(!k.socket().exists());
        let _ = std::fs::remove_dir_all(&tmp);
    }
}
