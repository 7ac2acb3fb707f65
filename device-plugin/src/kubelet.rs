//! Talking to the kubelet: gRPC over unix sockets, and registration.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint};

use crate::api::registration_client::RegistrationClient;
use crate::api::{DevicePluginOptions, RegisterRequest};

/// The API version this plugin implements.
pub const API_VERSION: &str = "v1beta1";

/// The kubelet's registration socket name inside the device-plugins directory.
pub const KUBELET_SOCKET: &str = "kubelet.sock";

/// The kubelet's default device-plugins directory.
pub const DEFAULT_KUBELET_DIR: &str = "/var/lib/kubelet/device-plugins";

/// How long one registration attempt may take.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(5);

/// A failed registration.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// The kubelet socket could not be reached.
    #[error("connect to kubelet at {path}")]
    Connect {
        /// The kubelet socket.
        path: PathBuf,
        /// The transport error.
        #[source]
        source: tonic::transport::Error,
    },
    /// The kubelet refused or failed the call.
    #[error("register {resource} with kubelet at {path}")]
    Call {
        /// The resource.
        resource: String,
        /// The kubelet socket.
        path: PathBuf,
        /// The gRPC status.
        #[source]
        source: tonic::Status,
    },
    /// The kubelet did not answer in time.
    #[error("register {resource} with kubelet at {path}: timed out after {REGISTER_TIMEOUT:?}")]
    Timeout {
        /// The resource.
        resource: String,
        /// The kubelet socket.
        path: PathBuf,
    },
}

/// A gRPC channel to a unix socket. The URI is a placeholder that tonic requires; the connector
/// ignores it and dials `path`.
pub async fn uds_channel(path: &Path) -> Result<Channel, tonic::transport::Error> {
    let path = path.to_owned();
    Endpoint::from_static("http://[::1]:50051")
        .connect_timeout(REGISTER_TIMEOUT)
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
        }))
        .await
}

/// The options every pool registers with.
pub fn plugin_options() -> DevicePluginOptions {
    DevicePluginOptions { pre_start_required: false, get_preferred_allocation_available: true }
}

/// Registers one pool: `endpoint` is its socket's file name in the device-plugins directory.
pub async fn register(
    kubelet_socket: &Path,
    endpoint: &str,
    resource: &str,
) -> Result<(), RegisterError> {
    let path = kubelet_socket.to_owned();
    let call = async {
        let channel = uds_channel(&path)
            .await
            .map_err(|source| RegisterError::Connect { path: path.clone(), source })?;
        RegistrationClient::new(channel)
            .register(RegisterRequest {
                version: API_VERSION.into(),
                endpoint: endpoint.into(),
                resource_name: resource.into(),
                options: Some(plugin_options()),
            })
            .await
            .map_err(|source| RegisterError::Call {
                resource: resource.into(),
                path: path.clone(),
                source,
            })?;
        Ok(())
    };
    tokio::time::timeout(REGISTER_TIMEOUT, call).await.unwrap_or_else(|_| {
        Err(RegisterError::Timeout { resource: resource.into(), path: kubelet_socket.to_owned() })
    })
}
