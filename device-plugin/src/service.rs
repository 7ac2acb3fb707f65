//! The kubelet `DevicePlugin` gRPC service of one pool.
//!
//! The pool's current devices live in a [`tokio::sync::watch`] channel owned by the manager:
//! ListAndWatch streams subscribe to it, Allocate and GetPreferredAllocation read its latest value.
//! The manager only wakes the streams when the kubelet-visible list (IDs, health, NUMA) changes.

use std::path::PathBuf;
use std::sync::Arc;

use sriov_host::HostPaths;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::allocate::{self, AllocError, CdiMode};
use crate::api::device_plugin_server::DevicePlugin;
use crate::api::{
    AllocateRequest, AllocateResponse, ContainerPreferredAllocationResponse, Device,
    DevicePluginOptions, Empty, ListAndWatchResponse, NumaNode, PreStartContainerRequest,
    PreStartContainerResponse, PreferredAllocationRequest, PreferredAllocationResponse,
    TopologyInfo,
};
use crate::config::PoolConfig;
use crate::inventory::PoolDevices;
use crate::preferred::{self, Policy};

/// The kubelet's health strings.
pub const HEALTHY: &str = "Healthy";
/// The kubelet's health strings.
pub const UNHEALTHY: &str = "Unhealthy";

/// A pool's definition and devices, as published to its service.
#[derive(Debug, Clone)]
pub struct PoolState {
    /// The pool's (current) definition.
    pub config: Arc<PoolConfig>,
    /// The pool's devices.
    pub devices: Arc<PoolDevices>,
}

/// Settings shared by every pool's service.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    /// Host roots (device nodes are named under the device root).
    pub paths: HostPaths,
    /// Preferred-allocation policy.
    pub policy: Policy,
    /// How CDI is used.
    pub cdi: CdiMode,
    /// Where device-info files are written.
    pub devinfo_dir: PathBuf,
}

/// The devices as the kubelet sees them.
pub fn list_response(state: &PoolState) -> ListAndWatchResponse {
    let exclude = state.config.exclude_topology;
    let devices = state
        .devices
        .values()
        .map(|d| Device {
            id: d.id.to_string(),
            health: if d.healthy() { HEALTHY } else { UNHEALTHY }.to_owned(),
            topology: match d.numa_node {
                Some(n) if !exclude => {
                    Some(TopologyInfo { nodes: vec![NumaNode { id: i64::from(n) }] })
                }
                _ => None,
            },
        })
        .collect();
    ListAndWatchResponse { devices }
}

/// One pool's service.
#[derive(Debug, Clone)]
pub struct PoolService {
    state: watch::Receiver<PoolState>,
    settings: Arc<ServiceSettings>,
    stop: watch::Receiver<bool>,
}

impl PoolService {
    /// A service reading `state`; its ListAndWatch streams end when `stop` turns true.
    pub fn new(
        state: watch::Receiver<PoolState>,
        settings: Arc<ServiceSettings>,
        stop: watch::Receiver<bool>,
    ) -> Self {
        Self { state, settings, stop }
    }

    fn current(&self) -> PoolState {
        self.state.borrow().clone()
    }
}

fn alloc_status(e: AllocError) -> Status {
    match e {
        AllocError::BadId { .. } | AllocError::Unknown { .. } | AllocError::Empty { .. } => {
            Status::invalid_argument(e.to_string())
        }
        AllocError::Vanished { .. } => Status::failed_precondition(e.to_string()),
    }
}

/// Writes a file atomically (temp file in the same directory, then rename).
pub fn write_atomic(dir: &std::path::Path, name: &str, body: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, body)?;
    std::fs::rename(&tmp, dir.join(name))
}

#[tonic::async_trait]
impl DevicePlugin for PoolService {
    async fn get_device_plugin_options(
        &self,
        _: Request<Empty>,
    ) -> Result<Response<DevicePluginOptions>, Status> {
        Ok(Response::new(DevicePluginOptions {
            pre_start_required: false,
            get_preferred_allocation_available: true,
        }))
    }

    type ListAndWatchStream = ReceiverStream<Result<ListAndWatchResponse, Status>>;

    async fn list_and_watch(
        &self,
        _: Request<Empty>,
    ) -> Result<Response<Self::ListAndWatchStream>, Status> {
        let (tx, rx) = mpsc::channel(4);
        let mut state = self.state.clone();
        let mut stop = self.stop.clone();
        let resource = self.current().config.resource_name();
        tokio::spawn(async move {
            tracing::debug!(%resource, "ListAndWatch stream opened");
            loop {
                let resp = list_response(&state.borrow_and_update());
                if tx.send(Ok(resp)).await.is_err() {
                    break;
                }
                let stopping = tokio::select! {
                    biased;
                    changed = state.changed() => {
                        if changed.is_err() {
                            break;
                        }
                        false
                    }
                    _ = tx.closed() => break,
                    _ = stop.wait_for(|s| *s) => true,
                };
                if stopping {
                    // Deliver a last update (the empty list of a removed pool) before ending.
                    if state.has_changed().unwrap_or(false) {
                        let last = list_response(&state.borrow_and_update());
                        let _ = tx.send(Ok(last)).await;
                    }
                    break;
                }
            }
            tracing::debug!(%resource, "ListAndWatch stream closed");
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn get_preferred_allocation(
        &self,
        request: Request<PreferredAllocationRequest>,
    ) -> Result<Response<PreferredAllocationResponse>, Status> {
        let st = self.current();
        let mut out = PreferredAllocationResponse::default();
        for req in request.into_inner().container_requests {
            let size = usize::try_from(req.allocation_size).map_err(|_| {
                Status::invalid_argument(format!(
                    "allocation size {} is negative",
                    req.allocation_size
                ))
            })?;
            if req.must_include_device_i_ds.len() > size {
                return Err(Status::invalid_argument(format!(
                    "{} must-include devices exceed the allocation size {size}",
                    req.must_include_device_i_ds.len()
                )));
            }
            let ids = preferred::preferred(
                &st.devices,
                &req.available_device_i_ds,
                &req.must_include_device_i_ds,
                size,
                self.settings.policy,
            );
            tracing::debug!(resource = %st.config.resource_name(), ?ids, "preferred allocation");
            out.container_responses.push(ContainerPreferredAllocationResponse { device_i_ds: ids });
        }
        Ok(Response::new(out))
    }

    async fn allocate(
        &self,
        request: Request<AllocateRequest>,
    ) -> Result<Response<AllocateResponse>, Status> {
        let st = self.current();
        let resource = st.config.resource_name();
        let mut out = AllocateResponse::default();
        for req in request.into_inner().container_requests {
            let span = tracing::info_span!("allocate", %resource, devices = ?req.devices_ids);
            let _guard = span.enter();
            let a = allocate::allocate(
                &st.config,
                &st.devices,
                &req.devices_ids,
                &self.settings.paths,
                self.settings.cdi,
            )
            .map_err(|e| {
                tracing::warn!(error = %e, "allocate refused");
                alloc_status(e)
            })?;
            for (name, body) in &a.device_info {
                write_atomic(&self.settings.devinfo_dir, name, body).map_err(|e| {
                    let path = self.settings.devinfo_dir.join(name);
                    tracing::error!(path = %path.display(), error = %e, "cannot write device-info file");
                    Status::internal(format!("write device-info file {}: {e}", path.display()))
                })?;
            }
            tracing::info!("allocated");
            out.container_responses.push(a.response);
        }
        Ok(Response::new(out))
    }

    async fn pre_start_container(
        &self,
        _: Request<PreStartContainerRequest>,
    ) -> Result<Response<PreStartContainerResponse>, Status> {
        Ok(Response::new(PreStartContainerResponse {}))
    }
}
