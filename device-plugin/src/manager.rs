//! The manager: one task that owns the pools, their gRPC servers and registrations, and reacts to
//! events.
//!
//! - **Inventory.** A scan (on a blocking thread) yields one host snapshot; selection and health are
//!   computed in memory and published to each pool's watch channel. Scans are triggered by kernel
//!   uevents and link events (coalesced over `debounce`), by the optional periodic safety-net
//!   rescan, and by the end of a departed device's grace period (recomputed without a rescan). At
//!   most one scan runs at a time; triggers during a scan cause exactly one more.
//! - **Kubelet.** Each pool serves on `<kubelet dir>/<prefix>_<name>.sock` and registers through
//!   `kubelet.sock`. An inotify watch on the directory sees the kubelet restart (it removes the
//!   plugin sockets and recreates `kubelet.sock`): missing sockets are re-bound and every pool
//!   re-registers at once.
//! - **Config.** SIGHUP or a change of the config file reloads it. Pools whose resource name stays
//!   keep their socket and streams (a changed definition only changes the device list); new pools
//!   start and register; removed pools send an empty device list, then stop and remove their
//!   socket. A config that fails to load is logged and the last good one stays in force.
//! - **Shutdown.** SIGTERM/SIGINT stop every server and remove the sockets, CDI specs and
//!   device-info files the plugin wrote.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sriov_host::{DiscoverError, HostPaths};
use tokio::net::UnixListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::UnixListenerStream;

use crate::allocate::{self, CdiMode};
use crate::api::device_plugin_server::DevicePluginServer;
use crate::config::{Config, ConfigError, PoolConfig};
use crate::events::{self, Event, LinkUpdate, WatchError};
use crate::inventory::{self, PoolDevices, Scan};
use crate::kubelet::{self, KUBELET_SOCKET};
use crate::preferred::Policy;
use crate::service::{self, PoolService, PoolState, ServiceSettings};

/// Everything the plugin is run with.
#[derive(Debug, Clone)]
pub struct Options {
    /// The config file.
    pub config_file: PathBuf,
    /// Prefix for pools without `resourcePrefix`.
    pub resource_prefix: String,
    /// Host roots.
    pub paths: HostPaths,
    /// The kubelet's device-plugins directory.
    pub kubelet_dir: PathBuf,
    /// CDI use.
    pub cdi: CdiMode,
    /// Where CDI specs are written.
    pub cdi_dir: PathBuf,
    /// Where device-info files are written.
    pub devinfo_dir: PathBuf,
    /// Preferred-allocation policy.
    pub policy: Policy,
    /// Safety-net rescan interval; zero disables it.
    pub rescan_interval: Duration,
    /// How long a departed device stays listed as Unhealthy.
    pub removal_grace: Duration,
    /// How long host events are coalesced before a rescan.
    pub debounce: Duration,
    /// Listen to kernel uevents.
    pub uevents: bool,
    /// Listen to netlink link events.
    pub link_events: bool,
}

/// Why the plugin stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The config could not be loaded at start.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The host could not be read at start.
    #[error("read the host's PCI devices")]
    Discover(#[source] DiscoverError),
    /// An event source could not be set up.
    #[error(transparent)]
    Watch(#[from] WatchError),
    /// A directory could not be created or a socket bound.
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
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> RunError + 'a {
    move |source| RunError::Io { op, path: path.to_owned(), source }
}

/// The socket file name of a pool.
pub fn socket_name(pool: &PoolConfig) -> String {
    format!("{}_{}.sock", pool.prefix, pool.name)
}

struct Server {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

struct Pool {
    config: Arc<PoolConfig>,
    state: watch::Sender<PoolState>,
    server: Option<Server>,
    register: Option<JoinHandle<()>>,
    last_cdi: Option<Vec<u8>>,
}

/// How long a stopping server may take to finish its streams.
const STOP_TIMEOUT: Duration = Duration::from_secs(2);
/// Retry delay after a failed scan.
const SCAN_RETRY: Duration = Duration::from_millis(500);

struct Manager {
    opts: Options,
    settings: Arc<ServiceSettings>,
    config_bytes: Vec<u8>,
    pools: Vec<Pool>,
    last_scan: Option<Arc<Scan>>,
    scan_running: bool,
    scan_dirty: bool,
    scan_tx: mpsc::UnboundedSender<(Instant, Result<Scan, DiscoverError>)>,
    /// PF link states from link events, newer than what some scan may have read.
    link_overrides: HashMap<String, (LinkUpdate, Instant)>,
    scan_at: Option<tokio::time::Instant>,
    expiry_at: Option<tokio::time::Instant>,
}

/// Runs the plugin until SIGTERM/SIGINT.
pub async fn run(opts: Options) -> Result<(), RunError> {
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    events::watch_signals(ev_tx.clone())?;
    run_with_events(opts, ev_tx, ev_rx).await
}

/// Runs the plugin with an external event channel (signals are the caller's business); returns
/// after an [`Event::Shutdown`].
pub async fn run_with_events(
    opts: Options,
    ev_tx: mpsc::UnboundedSender<Event>,
    mut ev_rx: mpsc::UnboundedReceiver<Event>,
) -> Result<(), RunError> {
    let started = Instant::now();
    let config_bytes = std::fs::read(&opts.config_file)
        .map_err(|source| ConfigError::Read { path: opts.config_file.clone(), source })?;
    let config = Config::parse(&config_bytes, &opts.config_file, &opts.resource_prefix)?;
    for dir in [&opts.kubelet_dir, &opts.devinfo_dir] {
        std::fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
    }
    if opts.cdi != CdiMode::Off {
        std::fs::create_dir_all(&opts.cdi_dir)
            .map_err(io_err("create directory", &opts.cdi_dir))?;
        remove_matching(&opts.cdi_dir, allocate::CDI_SPEC_PREFIX, "");
    }

    // Watches first, so nothing that happens while we start is missed.
    events::watch_kubelet_dir(&opts.kubelet_dir, ev_tx.clone())?;
    events::watch_config(&opts.config_file, ev_tx.clone())?;
    if opts.uevents {
        events::listen_uevents(ev_tx.clone())?;
    }
    if opts.link_events {
        events::listen_links(ev_tx.clone())?;
    }

    let paths = opts.paths.clone();
    let first = tokio::task::spawn_blocking(move || inventory::scan(&paths)).await;
    let (scan_tx, mut scan_rx) = mpsc::unbounded_channel();
    let settings = Arc::new(ServiceSettings {
        paths: opts.paths.clone(),
        policy: opts.policy,
        cdi: opts.cdi,
        devinfo_dir: opts.devinfo_dir.clone(),
    });
    let mut m = Manager {
        opts,
        settings,
        config_bytes,
        pools: Vec::new(),
        last_scan: None,
        scan_running: false,
        scan_dirty: false,
        scan_tx,
        scan_at: None,
        expiry_at: None,
        link_overrides: HashMap::new(),
    };
    match first {
        Ok(Ok(scan)) => m.last_scan = Some(Arc::new(scan)),
        Ok(Err(e @ DiscoverError::NoPciBus { .. })) => return Err(RunError::Discover(e)),
        Ok(Err(e)) => {
            tracing::warn!(error = %chain(&e), "first scan failed; retrying");
            m.scan_at = Some(tokio::time::Instant::now() + SCAN_RETRY);
        }
        Err(e) => tracing::error!(error = %e, "first scan panicked; retrying"),
    }
    for pool in &config.pools {
        m.add_pool(pool.clone());
    }
    m.publish();
    for i in 0..m.pools.len() {
        m.start_server(i)?;
    }
    m.register_all();
    tracing::info!(
        pools = m.pools.len(),
        devices = m.pools.iter().map(|p| p.state.borrow().devices.len()).sum::<usize>(),
        elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
        "device plugin started"
    );

    let mut rescan = (!m.opts.rescan_interval.is_zero()).then(|| {
        let period = m.opts.rescan_interval;
        let mut i = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        i
    });
    loop {
        let scan_at = m.scan_at;
        let expiry_at = m.expiry_at;
        tokio::select! {
            ev = ev_rx.recv() => {
                let Some(ev) = ev else { break };
                if m.handle(ev).await {
                    break;
                }
            }
            Some((started, result)) = scan_rx.recv() => m.scan_done(started, result),
            _ = sleep_until(scan_at) => {
                m.scan_at = None;
                m.request_scan();
            }
            _ = sleep_until(expiry_at) => {
                m.expiry_at = None;
                m.publish();
            }
            _ = tick(&mut rescan) => m.request_scan(),
        }
    }
    m.shutdown().await;
    Ok(())
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn tick(i: &mut Option<tokio::time::Interval>) {
    match i {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// An error with its sources, `a: b: c`.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Removes the files in `dir` whose names start with `prefix` and end with `suffix`.
fn remove_matching(dir: &Path, prefix: &str, suffix: &str) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for entry in rd.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(prefix)
            && name.ends_with(suffix)
            && let Err(e) = std::fs::remove_file(entry.path())
        {
            tracing::warn!(path = %entry.path().display(), error = %e, "cannot remove file");
        }
    }
}

fn remove_if_exists(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(path = %path.display(), error = %e, "cannot remove file"),
    }
}

impl Manager {
    fn socket_path(&self, pool: &PoolConfig) -> PathBuf {
        self.opts.kubelet_dir.join(socket_name(pool))
    }

    fn kubelet_socket(&self) -> PathBuf {
        self.opts.kubelet_dir.join(KUBELET_SOCKET)
    }

    fn add_pool(&mut self, config: PoolConfig) {
        // Stale files of an earlier run (the Go plugin does the same).
        remove_matching(
            &self.opts.devinfo_dir,
            &allocate::device_info_file_prefix(&config),
            "-device.json",
        );
        let config = Arc::new(config);
        let (state, _) = watch::channel(PoolState {
            config: Arc::clone(&config),
            devices: Arc::new(PoolDevices::new()),
        });
        self.pools.push(Pool { config, state, server: None, register: None, last_cdi: None });
    }

    fn start_server(&mut self, i: usize) -> Result<(), RunError> {
        let path = self.socket_path(&self.pools[i].config);
        remove_if_exists(&path);
        let listener =
            UnixListener::bind(&path).map_err(io_err("bind device-plugin socket", &path))?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let pool = &mut self.pools[i];
        let svc =
            PoolService::new(pool.state.subscribe(), Arc::clone(&self.settings), stop_rx.clone());
        let resource = pool.config.resource_name();
        let task = tokio::spawn(async move {
            let mut stop = stop_rx;
            let served = tonic::transport::Server::builder()
                .add_service(DevicePluginServer::new(svc))
                .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!(%resource, error = %chain(&e), "device-plugin server failed");
            }
        });
        if let Some(old) = pool.server.replace(Server { stop: stop_tx, task }) {
            tokio::spawn(stop_server(old));
        }
        tracing::info!(resource = %pool.config.resource_name(), socket = %path.display(), "serving");
        Ok(())
    }

    fn register(&mut self, i: usize) {
        let kubelet = self.kubelet_socket();
        let pool = &mut self.pools[i];
        if let Some(old) = pool.register.take() {
            old.abort();
        }
        let endpoint = socket_name(&pool.config);
        let resource = pool.config.resource_name();
        pool.register = Some(tokio::spawn(async move {
            let mut delay = Duration::from_millis(50);
            for attempt in 1..=8 {
                if !kubelet.exists() {
                    tracing::info!(%resource, "kubelet socket absent; registering when it appears");
                    return;
                }
                match kubelet::register(&kubelet, &endpoint, &resource).await {
                    Ok(()) => {
                        tracing::info!(%resource, %endpoint, "registered with kubelet");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(%resource, attempt, error = %chain(&e), "registration failed")
                    }
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            tracing::error!(%resource, "registration failed repeatedly; retrying when the kubelet restarts");
        }));
    }

    fn register_all(&mut self) {
        for i in 0..self.pools.len() {
            self.register(i);
        }
    }

    /// Handles one event; `true` means shut down.
    async fn handle(&mut self, ev: Event) -> bool {
        match ev {
            Event::Shutdown => {
                tracing::info!("shutting down");
                return true;
            }
            Event::Reload => self.reload("SIGHUP").await,
            Event::ConfigChanged => self.reload("config file changed").await,
            Event::HostChanged(why) => {
                tracing::trace!(why, "host changed");
                self.schedule_scan();
            }
            Event::Link(update) => self.link_event(update),
            Event::KubeletDir { name, created } => {
                self.kubelet_dir_event(&name.to_string_lossy(), created)
            }
        }
        false
    }

    fn kubelet_dir_event(&mut self, name: &str, created: bool) {
        if name == KUBELET_SOCKET {
            if created {
                tracing::info!("kubelet (re)started; re-registering every pool");
                for i in 0..self.pools.len() {
                    if !self.socket_path(&self.pools[i].config).exists()
                        && let Err(e) = self.start_server(i)
                    {
                        tracing::error!(error = %chain(&e), "cannot re-create device-plugin socket");
                    }
                }
                self.register_all();
            } else {
                tracing::info!("kubelet socket removed");
            }
            return;
        }
        if created {
            return;
        }
        let Some(i) = self.pools.iter().position(|p| socket_name(&p.config) == name) else {
            return;
        };
        // The event may be stale: a kubelet restart already re-created the socket.
        if self.socket_path(&self.pools[i].config).exists() {
            return;
        }
        tracing::info!(resource = %self.pools[i].config.resource_name(), "socket removed; serving again");
        match self.start_server(i) {
            Ok(()) => {
                if self.kubelet_socket().exists() {
                    self.register(i);
                }
            }
            Err(e) => tracing::error!(error = %chain(&e), "cannot re-create device-plugin socket"),
        }
    }

    fn schedule_scan(&mut self) {
        if self.scan_at.is_none() {
            self.scan_at = Some(tokio::time::Instant::now() + self.opts.debounce);
        }
    }

    /// A link event. For a PF netdev, its carrier and operstate are applied to the last snapshot
    /// at once (the event is the kernel's newest word on them), so health flips without waiting
    /// for a rescan; the change is also kept as an override on top of any scan that started
    /// before it. Every link event (VF netdevs appearing, moving, vanishing) also schedules a
    /// rescan.
    fn link_event(&mut self, update: LinkUpdate) {
        self.schedule_scan();
        let Some(scan) = self.last_scan.as_mut() else { return };
        if update.removed
            || !scan.host.pfs.iter().any(|pf| pf.netdev.as_deref() == Some(update.name.as_str()))
        {
            return;
        }
        if apply_link(Arc::make_mut(scan), &update) {
            tracing::debug!(pf = %update.name, carrier = update.carrier, oper_state = update.oper_state, "pf link changed");
            self.link_overrides.insert(update.name.clone(), (update, Instant::now()));
            self.publish();
        }
    }

    fn request_scan(&mut self) {
        if self.scan_running {
            self.scan_dirty = true;
            return;
        }
        self.scan_running = true;
        let paths = self.opts.paths.clone();
        let tx = self.scan_tx.clone();
        tokio::task::spawn_blocking(move || {
            let t = Instant::now();
            let r = inventory::scan(&paths);
            tracing::debug!(elapsed_ms = t.elapsed().as_secs_f64() * 1e3, ok = r.is_ok(), "scan");
            let _ = tx.send((t, r));
        });
    }

    fn scan_done(&mut self, started: Instant, result: Result<Scan, DiscoverError>) {
        self.scan_running = false;
        match result {
            Ok(mut scan) => {
                // Link events newer than the start of this scan win over what it read.
                self.link_overrides.retain(|_, (_, at)| *at > started);
                for (update, _) in self.link_overrides.values() {
                    apply_link(&mut scan, update);
                }
                self.last_scan = Some(Arc::new(scan));
                self.publish();
            }
            Err(e) => {
                // A tree changing under the reader (VFs being created) can look malformed for a
                // moment; try again shortly.
                tracing::warn!(error = %chain(&e), "scan failed; retrying");
                if self.scan_at.is_none() {
                    self.scan_at = Some(tokio::time::Instant::now() + SCAN_RETRY);
                }
            }
        }
        if self.scan_dirty {
            self.scan_dirty = false;
            self.request_scan();
        }
    }

    /// Recomputes every pool from the last scan and publishes what changed.
    fn publish(&mut self) {
        let Some(scan) = self.last_scan.clone() else { return };
        let configs: Vec<PoolConfig> = self.pools.iter().map(|p| (*p.config).clone()).collect();
        let prev: Vec<Arc<PoolDevices>> =
            self.pools.iter().map(|p| Arc::clone(&p.state.borrow().devices)).collect();
        let prev_refs: Vec<Option<&PoolDevices>> = prev.iter().map(|p| Some(&**p)).collect();
        let grace = self.opts.removal_grace;
        let computed = inventory::compute(&scan, &configs, &prev_refs, Instant::now(), grace);
        let cdi = self.opts.cdi;
        for (pool, devices) in self.pools.iter_mut().zip(computed) {
            let devices = Arc::new(devices);
            let config = Arc::clone(&pool.config);
            let mut summary = None;
            pool.state.send_if_modified(|st| {
                let new = PoolState { config: Arc::clone(&config), devices: Arc::clone(&devices) };
                let changed = service::list_response(st) != service::list_response(&new);
                if changed {
                    let unhealthy = devices.values().filter(|d| !d.healthy()).count();
                    summary = Some((devices.len(), unhealthy));
                }
                *st = new;
                changed
            });
            if let Some((total, unhealthy)) = summary {
                tracing::info!(resource = %config.resource_name(), total, unhealthy, "device list changed");
                for d in devices.values().filter(|d| !d.healthy()) {
                    tracing::debug!(device = %d.id, reason = d.unhealthy.map(|r| r.as_str()), "unhealthy");
                }
            }
            if cdi != CdiMode::Off {
                let spec = allocate::cdi_spec(&config, &devices, &self.settings.paths);
                let body = serde_json::to_vec_pretty(&spec).unwrap_or_default();
                if pool.last_cdi.as_ref() != Some(&body) {
                    let name = allocate::cdi_spec_file_name(&config);
                    match service::write_atomic(&self.opts.cdi_dir, &name, &body) {
                        Ok(()) => pool.last_cdi = Some(body),
                        Err(e) => {
                            tracing::error!(path = %self.opts.cdi_dir.join(&name).display(), error = %e, "cannot write CDI spec")
                        }
                    }
                }
            }
        }
        let lists: Vec<Arc<PoolDevices>> =
            self.pools.iter().map(|p| Arc::clone(&p.state.borrow().devices)).collect();
        self.expiry_at = inventory::next_expiry(lists.iter().map(|d| &**d), grace)
            .map(|t| tokio::time::Instant::from_std(t + Duration::from_millis(1)));
    }

    async fn reload(&mut self, why: &str) {
        let bytes = match std::fs::read(&self.opts.config_file) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(path = %self.opts.config_file.display(), error = %e, why, "cannot read config; keeping the last good one");
                return;
            }
        };
        if bytes == self.config_bytes {
            tracing::debug!(why, "config unchanged");
            return;
        }
        let config = match Config::parse(&bytes, &self.opts.config_file, &self.opts.resource_prefix)
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %chain(&e), why, "invalid config; keeping the last good one");
                return;
            }
        };
        self.config_bytes = bytes;
        let mut old: HashMap<String, Pool> =
            self.pools.drain(..).map(|p| (p.config.resource_name(), p)).collect();
        let mut added = Vec::new();
        for pc in config.pools {
            match old.remove(&pc.resource_name()) {
                Some(mut p) => {
                    if *p.config != pc {
                        tracing::info!(resource = %pc.resource_name(), "pool definition changed");
                    }
                    p.config = Arc::new(pc);
                    self.pools.push(p);
                }
                None => {
                    tracing::info!(resource = %pc.resource_name(), "pool added");
                    self.add_pool(pc);
                    added.push(self.pools.len() - 1);
                }
            }
        }
        for (resource, pool) in old {
            tracing::info!(%resource, "pool removed: advertising no devices, then stopping");
            self.retire(pool).await;
        }
        self.publish();
        for i in added {
            match self.start_server(i) {
                Ok(()) => self.register(i),
                Err(e) => tracing::error!(error = %chain(&e), "cannot start added pool"),
            }
        }
        tracing::info!(why, pools = self.pools.len(), "config reloaded");
    }

    /// Advertises an empty list, then stops the pool's server and removes its files.
    async fn retire(&mut self, mut pool: Pool) {
        if let Some(r) = pool.register.take() {
            r.abort();
        }
        pool.state.send_modify(|st| st.devices = Arc::new(PoolDevices::new()));
        if let Some(s) = pool.server.take() {
            stop_server(s).await;
        }
        self.remove_pool_files(&pool.config);
    }

    fn remove_pool_files(&self, config: &PoolConfig) {
        remove_if_exists(&self.socket_path(config));
        remove_matching(
            &self.opts.devinfo_dir,
            &allocate::device_info_file_prefix(config),
            "-device.json",
        );
        if self.opts.cdi != CdiMode::Off {
            remove_if_exists(&self.opts.cdi_dir.join(allocate::cdi_spec_file_name(config)));
        }
    }

    async fn shutdown(&mut self) {
        let pools: Vec<Pool> = self.pools.drain(..).collect();
        let mut stops = Vec::new();
        for mut p in pools {
            if let Some(r) = p.register.take() {
                r.abort();
            }
            if let Some(s) = p.server.take() {
                stops.push(tokio::spawn(stop_server(s)));
            }
            self.remove_pool_files(&p.config);
        }
        for s in stops {
            let _ = s.await;
        }
        tracing::info!("stopped; sockets and files removed");
    }
}

/// Applies a link event to the PF netdev it names; `false` when nothing changed.
fn apply_link(scan: &mut Scan, update: &LinkUpdate) -> bool {
    let mut changed = false;
    for pf in
        scan.host.pfs.iter_mut().filter(|pf| pf.netdev.as_deref() == Some(update.name.as_str()))
    {
        if let Some(link) = pf.link.as_mut() {
            let oper = Some(update.oper_state.to_owned());
            if link.carrier != Some(update.carrier) || link.oper_state != oper {
                link.carrier = Some(update.carrier);
                link.oper_state = oper;
                changed = true;
            }
        }
    }
    changed
}

async fn stop_server(server: Server) {
    let _ = server.stop.send(true);
    let mut task = server.task;
    if tokio::time::timeout(STOP_TIMEOUT, &mut task).await.is_err() {
        tracing::warn!("device-plugin server did not stop in time; aborting it");
        task.abort();
    }
}
