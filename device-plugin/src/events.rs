//! Event sources feeding the manager: file-system watches (kubelet directory, config file),
//! kernel uevents, netlink link events and signals. Each source is a task or thread that turns its
//! notifications into [`Event`]s on one channel; none of them polls.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Duration;

use inotify::{Inotify, WatchMask};
use sriov_netlink::link::Link;
use sriov_netlink::uevent::{UeventAction, UeventError, UeventSocket};
use sriov_netlink::{LinkEventKind, LinkEvents, Netlink, OperState};
use tokio::sync::mpsc::UnboundedSender;
use tokio_stream::StreamExt;

/// Something the manager reacts to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// An entry of the kubelet directory was created (`true`) or removed (`false`).
    KubeletDir {
        /// The entry name.
        name: OsString,
        /// Created or removed.
        created: bool,
    },
    /// The config file (or the ConfigMap `..data` link it lives behind) changed.
    ConfigChanged,
    /// The host changed (a uevent, or events were lost): rescan.
    HostChanged(&'static str),
    /// A netlink link event: the link's state as the kernel just reported it.
    Link(LinkUpdate),
    /// SIGHUP: reload the config.
    Reload,
    /// SIGTERM or SIGINT: shut down.
    Shutdown,
}

/// A link's state from a netlink link event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkUpdate {
    /// Interface name.
    pub name: String,
    /// Carrier (`IFLA_CARRIER`, else `IFF_LOWER_UP`).
    pub carrier: bool,
    /// Operational state as sysfs `operstate` spells it (`up`, `down`, `lowerlayerdown`, ...).
    pub oper_state: &'static str,
    /// The link was deleted (or left this netns).
    pub removed: bool,
}

/// The state a link message reports (carrier from `IFLA_CARRIER`, else `IFF_LOWER_UP`).
fn link_update(link: &Link, removed: bool) -> LinkUpdate {
    LinkUpdate {
        name: link.name.clone(),
        carrier: link.carrier.unwrap_or_else(|| link.has_lower_up()),
        oper_state: oper_state_str(link.oper_state),
        removed,
    }
}

fn oper_state_str(s: OperState) -> &'static str {
    match s {
        OperState::Unknown | OperState::Other(_) => "unknown",
        OperState::NotPresent => "notpresent",
        OperState::Down => "down",
        OperState::LowerLayerDown => "lowerlayerdown",
        OperState::Testing => "testing",
        OperState::Dormant => "dormant",
        OperState::Up => "up",
    }
}

/// A failure to set up an event source.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// inotify could not be set up on a directory.
    #[error("watch directory {path}")]
    Inotify {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A signal handler could not be installed.
    #[error("install signal handler")]
    Signal(#[source] std::io::Error),
    /// The uevent socket could not be opened.
    #[error(transparent)]
    Uevent(#[from] UeventError),
    /// The link-event socket could not be opened.
    #[error("subscribe to link events")]
    Link(#[source] sriov_netlink::Error),
    /// A listener thread could not be started.
    #[error("start {name} thread")]
    Thread {
        /// The thread.
        name: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

fn watch_dir(dir: &Path, mask: WatchMask) -> Result<inotify::EventStream<[u8; 4096]>, WatchError> {
    let err = |source| WatchError::Inotify { path: dir.to_owned(), source };
    let inotify = Inotify::init().map_err(err)?;
    inotify.watches().add(dir, mask).map_err(err)?;
    inotify.into_event_stream([0u8; 4096]).map_err(err)
}

/// Watches the kubelet's device-plugins directory for created and removed entries (the kubelet
/// recreating `kubelet.sock`, or removing our sockets).
pub fn watch_kubelet_dir(dir: &Path, tx: UnboundedSender<Event>) -> Result<(), WatchError> {
    let mut stream = watch_dir(
        dir,
        WatchMask::CREATE | WatchMask::DELETE | WatchMask::MOVED_TO | WatchMask::MOVED_FROM,
    )?;
    let path = dir.to_owned();
    tokio::spawn(async move {
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(ev) => {
                    let Some(name) = ev.name else { continue };
                    let created = ev
                        .mask
                        .intersects(inotify::EventMask::CREATE | inotify::EventMask::MOVED_TO);
                    if tx.send(Event::KubeletDir { name, created }).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    tracing::error!(dir = %path.display(), error = %e, "kubelet directory watch failed")
                }
            }
        }
    });
    Ok(())
}

/// Watches the config file's directory. Editors and Kubernetes ConfigMap volumes replace files by
/// rename (`..data` is swapped atomically), so the directory is watched, not the file.
pub fn watch_config(file: &Path, tx: UnboundedSender<Event>) -> Result<(), WatchError> {
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = file.file_name().map(OsString::from).unwrap_or_default();
    let mut stream = watch_dir(
        &dir,
        WatchMask::CLOSE_WRITE
            | WatchMask::MOVED_TO
            | WatchMask::CREATE
            | WatchMask::DELETE
            | WatchMask::MOVED_FROM,
    )?;
    tokio::spawn(async move {
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(ev) => {
                    let relevant =
                        ev.name.as_deref().is_some_and(|n| n == name.as_os_str() || n == "..data");
                    if relevant && tx.send(Event::ConfigChanged).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    tracing::error!(dir = %dir.display(), error = %e, "config directory watch failed")
                }
            }
        }
    });
    Ok(())
}

/// Turns SIGHUP into [`Event::Reload`] and SIGTERM/SIGINT into [`Event::Shutdown`].
pub fn watch_signals(tx: UnboundedSender<Event>) -> Result<(), WatchError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup()).map_err(WatchError::Signal)?;
    let mut term = signal(SignalKind::terminate()).map_err(WatchError::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(WatchError::Signal)?;
    tokio::spawn(async move {
        loop {
            let ev = tokio::select! {
                _ = hup.recv() => Event::Reload,
                _ = term.recv() => Event::Shutdown,
                _ = int.recv() => Event::Shutdown,
            };
            if tx.send(ev).is_err() {
                break;
            }
        }
    });
    Ok(())
}

/// Subsystems whose uevents can change what the plugin advertises.
const UEVENT_SUBSYSTEMS: &[&str] =
    &["pci", "net", "infiniband", "infiniband_verbs", "infiniband_mad", "uio", "vfio"];

/// Back-off after a failed receive, so a broken socket cannot spin.
const RECV_ERROR_BACKOFF: Duration = Duration::from_secs(1);

/// How often a listener thread with nothing to read checks whether its receiver is gone.
const STOP_CHECK: Duration = Duration::from_millis(250);

/// Listens for kernel uevents (PCI add/remove/bind/unbind, net add/remove/move) on a thread of its
/// own, until the receiving end of `tx` is dropped. The socket is opened here so a failure is
/// reported to the caller.
pub fn listen_uevents(tx: UnboundedSender<Event>) -> Result<JoinHandle<()>, WatchError> {
    let mut sock = UeventSocket::open()?;
    std::thread::Builder::new()
        .name("uevents".into())
        .spawn(move || {
            loop {
                let ev = match sock.recv_timeout(STOP_CHECK) {
                    Ok(Some(ev)) => ev,
                    Ok(None) if tx.is_closed() => return,
                    Ok(None) => continue,
                    Err(e @ UeventError::Overrun(_)) => {
                        tracing::warn!(error = %e, "uevents lost; rescanning");
                        if tx.send(Event::HostChanged("uevent overrun")).is_err() {
                            return;
                        }
                        continue;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "uevent receive failed");
                        std::thread::sleep(RECV_ERROR_BACKOFF);
                        continue;
                    }
                };
                let relevant = ev.subsystem.as_deref().is_some_and(|s| UEVENT_SUBSYSTEMS.contains(&s))
                    && !matches!(ev.action, UeventAction::Online | UeventAction::Offline);
                if relevant {
                    tracing::debug!(action = ?ev.action, devpath = %ev.devpath, driver = ?ev.driver, "uevent");
                    if tx.send(Event::HostChanged("uevent")).is_err() {
                        return;
                    }
                }
            }
        })
        .map_err(|source| WatchError::Thread { name: "uevents", source })
}

/// Listens for netlink link events (carrier, operstate, netdevs appearing or leaving) on a thread
/// of its own, until the receiving end of `tx` is dropped.
pub fn listen_links(tx: UnboundedSender<Event>) -> Result<JoinHandle<()>, WatchError> {
    let mut events = LinkEvents::open().map_err(WatchError::Link)?;
    std::thread::Builder::new()
        .name("link-events".into())
        .spawn(move || {
            loop {
                match events.next_event_timeout(STOP_CHECK) {
                    Ok(None) if tx.is_closed() => return,
                    Ok(None) => {}
                    Ok(Some(ev)) => {
                        tracing::debug!(kind = ?ev.kind, ifname = ev.name(), carrier = ev.carrier(), "link event");
                        if tx.send(Event::Link(link_update(&ev.link, ev.kind == LinkEventKind::Del))).is_err() {
                            return;
                        }
                    }
                    Err(e) if e.errno() == Some(libc::ENOBUFS) => {
                        // A burst (a PF's carrier change flips every VF netdev too) overflowed the
                        // socket: re-read every link's state with one dump, so a PF carrier
                        // change is not left waiting for a full rescan; then rescan anyway.
                        tracing::warn!(error = %e, "link events lost; re-reading link states");
                        match Netlink::open().and_then(|mut nl| nl.list_links()) {
                            Ok(links) => {
                                for l in &links {
                                    if tx.send(Event::Link(link_update(l, false))).is_err() {
                                        return;
                                    }
                                }
                            }
                            Err(e) => tracing::error!(error = %e, "cannot dump links"),
                        }
                        if tx.send(Event::HostChanged("link event overrun")).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "link event receive failed");
                        std::thread::sleep(RECV_ERROR_BACKOFF);
                    }
                }
            }
        })
        .map_err(|source| WatchError::Thread { name: "link-events", source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// Waits up to 5 s for a thread to end.
    fn ends(h: &JoinHandle<()>) -> bool {
        let t = Instant::now();
        while !h.is_finished() && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        h.is_finished()
    }

    /// The listener threads end once nobody receives their events (a plugin stopped inside a
    /// longer-lived process must not leave them, and their sockets, behind). Root: they listen
    /// inside a private network namespace, never the host's.
    #[test]
    fn listener_threads_stop_when_the_receiver_is_dropped() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let ns = sriov_netlink::OwnedNetns::create_unique("dp-listeners").unwrap();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let (uevents, links) = sriov_netlink::run_in_netns(ns.netns(), || {
            (listen_uevents(tx.clone()).unwrap(), listen_links(tx.clone()).unwrap())
        })
        .unwrap();
        std::thread::sleep(STOP_CHECK * 2);
        assert!(!uevents.is_finished() && !links.is_finished(), "listeners run while wanted");
        drop(rx);
        assert!(ends(&uevents), "uevent listener still running");
        assert!(ends(&links), "link listener still running");
    }

    #[test]
    fn link_updates_take_carrier_from_the_message_or_lower_up() {
        let mut l = Link {
            name: "ens1f0".into(),
            oper_state: OperState::LowerLayerDown,
            ..Link::default()
        };
        assert_eq!(
            link_update(&l, false),
            LinkUpdate {
                name: "ens1f0".into(),
                carrier: false,
                oper_state: "lowerlayerdown",
                removed: false
            }
        );
        l.flags = sriov_netlink::link::iff::LOWER_UP;
        assert!(link_update(&l, false).carrier);
        l.carrier = Some(false);
        assert!(!link_update(&l, true).carrier && link_update(&l, true).removed);
    }

    #[test]
    fn oper_states_spell_like_sysfs() {
        assert_eq!(oper_state_str(OperState::LowerLayerDown), "lowerlayerdown");
        assert_eq!(oper_state_str(OperState::Up), "up");
        assert_eq!(oper_state_str(OperState::Other(9)), "unknown");
    }

    #[tokio::test]
    async fn kubelet_dir_watch_reports_creates_and_removes() {
        let dir = std::env::temp_dir().join(format!("dp-events-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        watch_kubelet_dir(&dir, tx).unwrap();
        std::fs::write(dir.join("kubelet.sock"), "").unwrap();
        std::fs::remove_file(dir.join("kubelet.sock")).unwrap();
        let next = async |rx: &mut tokio::sync::mpsc::UnboundedReceiver<Event>| {
            tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap()
        };
        assert_eq!(
            next(&mut rx).await,
            Event::KubeletDir { name: "kubelet.sock".into(), created: true }
        );
        assert_eq!(
            next(&mut rx).await,
            Event::KubeletDir { name: "kubelet.sock".into(), created: false }
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn config_watch_sees_rename_over_and_configmap_swaps_only() {
        let dir = std::env::temp_dir().join(format!("dp-config-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("config.json");
        std::fs::write(&file, "{}").unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        watch_config(&file, tx).unwrap();
        std::fs::write(dir.join("unrelated"), "x").unwrap();
        std::fs::write(dir.join("new.tmp"), "{}").unwrap();
        std::fs::rename(dir.join("new.tmp"), &file).unwrap();
        let ev = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
        assert_eq!(ev, Event::ConfigChanged);
        // Only events for the file itself (or `..data`) count.
        while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(100), rx.recv()).await {
            assert_eq!(ev, Event::ConfigChanged);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
