//! The log file of `log_options`, rotated by size, age and count, safe when many plugin
//! processes append at once.
//!
//! - Every event is one `write(2)` on an `O_APPEND` descriptor, so concurrent writers never
//!   tear each other's lines.
//! - Rotation happens under an exclusive `flock` on `<file>.lock`. The writer re-checks under
//!   the lock: if the path no longer names the file it has open, someone else rotated, and it
//!   just reopens; otherwise it renames the file to `<file>.<unix millis>-<n>` (the first free `n`), prunes
//!   rotated files beyond `log_max_count` or older than `log_max_age` days, and reopens.
//!   Processes still holding the old descriptor finish their few lines into the rotated file:
//!   nothing is lost.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing_subscriber::fmt::MakeWriter;

use crate::config::LogOptions;

/// A rotating, append-only log file shared by many processes.
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    lock_path: PathBuf,
    max_size: u64,
    max_age: Duration,
    max_count: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    file: File,
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().append(true).create(true).mode(0o600).open(path)
}

impl RotatingFile {
    /// Opens (creating the directory) and rotates first if the file is already too big.
    pub fn open(opts: &LogOptions) -> io::Result<RotatingFile> {
        if let Some(dir) = opts.file.parent() {
            fs::create_dir_all(dir)?;
        }
        let file = open_append(&opts.file)?;
        let mut name = opts.file.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        name.push(".lock");
        let rf = RotatingFile {
            lock_path: opts.file.with_file_name(name),
            path: opts.file.clone(),
            max_size: opts.max_size_bytes,
            max_age: Duration::from_secs(opts.max_age_days.saturating_mul(86_400)),
            max_count: opts.max_count,
            inner: Mutex::new(Inner { file }),
        };
        {
            let mut inner = rf.inner.lock().map_err(|_| io::Error::other("log writer poisoned"))?;
            rf.rotate_if_full(&mut inner)?;
        }
        Ok(rf)
    }

    /// Appends one event (a whole line) with a single write, rotating first if the file has
    /// reached the limit. The size comes from `fstat` of the open descriptor, so a writer
    /// whose file was rotated by another process notices at its next event.
    pub fn write_event(&self, event: &[u8]) -> io::Result<()> {
        let mut inner = self.inner.lock().map_err(|_| io::Error::other("log writer poisoned"))?;
        self.rotate_if_full(&mut inner)?;
        (&inner.file).write_all(event)
    }

    fn rotate_if_full(&self, inner: &mut Inner) -> io::Result<()> {
        if inner.file.metadata()?.len() < self.max_size {
            return Ok(());
        }
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&self.lock_path)?;
        lock.lock()?;
        let result = self.rotate_locked(inner);
        let _ = lock.unlock();
        result
    }

    fn rotate_locked(&self, inner: &mut Inner) -> io::Result<()> {
        let ours = inner.file.metadata()?;
        match fs::metadata(&self.path) {
            // Still our file and still too big: rotate it.
            Ok(m) if m.ino() == ours.ino() && m.dev() == ours.dev() && m.len() >= self.max_size => {
                let millis =
                    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
                // Under the lock, so the first free name stays free until the rename.
                let rotated = (0u32..)
                    .map(|n| {
                        let mut r = self.path.as_os_str().to_os_string();
                        r.push(format!(".{millis:013}-{n:06}"));
                        PathBuf::from(r)
                    })
                    .find(|p| !p.exists())
                    .ok_or_else(|| io::Error::other("no free rotated log name"))?;
                fs::rename(&self.path, rotated)?;
                self.prune()?;
            }
            // Still ours and not full (another writer's view was stale): keep writing.
            Ok(m) if m.ino() == ours.ino() && m.dev() == ours.dev() => return Ok(()),
            // Rotated (or removed) by someone else: reopen below.
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        inner.file = open_append(&self.path)?;
        Ok(())
    }

    /// Rotated files of this log, oldest first.
    pub fn rotated_files(&self) -> io::Result<Vec<PathBuf>> {
        let (Some(dir), Some(name)) =
            (self.path.parent(), self.path.file_name().and_then(|n| n.to_str()))
        else {
            return Ok(Vec::new());
        };
        let prefix = format!("{name}.");
        let mut out: Vec<(String, PathBuf)> = Vec::new();
        for e in fs::read_dir(dir)? {
            let e = e?;
            let fname = e.file_name();
            let Some(fname) = fname.to_str() else { continue };
            let Some(suffix) = fname.strip_prefix(&prefix) else { continue };
            let rotated = suffix.split_once('-').is_some_and(|(ms, pid)| {
                !ms.is_empty()
                    && ms.bytes().all(|b| b.is_ascii_digit())
                    && !pid.is_empty()
                    && pid.bytes().all(|b| b.is_ascii_digit())
            });
            if rotated {
                out.push((suffix.to_owned(), e.path()));
            }
        }
        out.sort();
        Ok(out.into_iter().map(|(_, p)| p).collect())
    }

    fn prune(&self) -> io::Result<()> {
        let files = self.rotated_files()?;
        let excess =
            if self.max_count == 0 { 0 } else { files.len().saturating_sub(self.max_count) };
        let now = SystemTime::now();
        for (i, f) in files.iter().enumerate() {
            let too_many = i < excess;
            let too_old = !self.max_age.is_zero()
                && fs::metadata(f)
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| now.duration_since(t).unwrap_or_default() > self.max_age);
            if too_many || too_old {
                match fs::remove_file(f) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }
}

/// Hands a per-event buffer to tracing; the buffer is written as one event when dropped.
#[derive(Debug, Clone)]
pub struct EventWriterFactory {
    file: Arc<RotatingFile>,
}

impl EventWriterFactory {
    /// A factory over a rotating file.
    pub fn new(file: Arc<RotatingFile>) -> EventWriterFactory {
        EventWriterFactory { file }
    }
}

/// One event's bytes.
#[derive(Debug)]
pub struct EventWriter {
    file: Arc<RotatingFile>,
    buf: Vec<u8>,
}

impl Write for EventWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            // A lost log line must never fail the plugin.
            let _ = self.file.write_event(&self.buf);
        }
    }
}

impl<'a> MakeWriter<'a> for EventWriterFactory {
    type Writer = EventWriter;

    fn make_writer(&'a self) -> EventWriter {
        EventWriter { file: Arc::clone(&self.file), buf: Vec::with_capacity(256) }
    }
}

/// Installs the process-wide subscriber writing JSON lines to the rotating file; falls back
/// to stderr when the file cannot be opened. Returns whether the file is used.
pub fn init(opts: &LogOptions) -> bool {
    match RotatingFile::open(opts) {
        Ok(f) => {
            let _ = tracing_subscriber::fmt()
                .json()
                .with_current_span(true)
                .with_span_list(false)
                .with_max_level(opts.level.filter())
                .with_writer(EventWriterFactory::new(Arc::new(f)))
                .try_init();
            true
        }
        Err(e) => {
            let _ = tracing_subscriber::fmt()
                .with_ansi(false)
                .with_max_level(opts.level.filter())
                .with_writer(io::stderr)
                .try_init();
            tracing::warn!(file = %opts.file.display(), error = %e, "cannot open log file; logging to stderr");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cni_spec::LogLevel;

    fn opts(dir: &Path, max_size: u64, max_count: usize, max_age_days: u64) -> LogOptions {
        LogOptions {
            level: LogLevel::Debug,
            file: dir.join("logs/veth.log"),
            max_size_bytes: max_size,
            max_age_days,
            max_count,
        }
    }

    fn all_lines(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for e in fs::read_dir(dir.join("logs")).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "lock") {
                continue;
            }
            out.extend(fs::read_to_string(&p).unwrap().lines().map(str::to_owned));
        }
        out
    }

    /// Eight independent writers (each with its own descriptors and lock, like separate
    /// processes) share one file that rotates every few KB: no line is lost or torn.
    #[test]
    fn concurrent_writers_lose_and_tear_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let o = opts(dir.path(), 4096, 0, 0);
        std::thread::scope(|s| {
            for t in 0..8 {
                let o = o.clone();
                s.spawn(move || {
                    let f = RotatingFile::open(&o).unwrap();
                    for i in 0..400 {
                        let line = format!("writer={t} event={i:04} {}\n", "x".repeat(60));
                        f.write_event(line.as_bytes()).unwrap();
                    }
                });
            }
        });
        let lines = all_lines(dir.path());
        assert_eq!(lines.len(), 8 * 400);
        for l in &lines {
            let parts: Vec<&str> = l.split(' ').collect();
            assert_eq!(parts.len(), 3, "torn: {l:?}");
            assert_eq!(parts[2].len(), 60, "torn: {l:?}");
        }
        let mut seen: Vec<&String> = lines.iter().collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 8 * 400, "duplicates");
        let f = RotatingFile::open(&o).unwrap();
        let rotated = f.rotated_files().unwrap();
        assert!(rotated.len() >= 8 * 400 * 80 / 4096 / 2, "rotated {} times", rotated.len());
        // No rotated file grew far beyond the limit (a few concurrent lines at most).
        for r in &rotated {
            let len = fs::metadata(r).unwrap().len();
            assert!(len < 4096 + 8 * 100, "{} is {len} bytes", r.display());
        }
    }

    #[test]
    fn count_limit_prunes_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let o = opts(dir.path(), 100, 2, 0);
        let f = RotatingFile::open(&o).unwrap();
        for i in 0..10 {
            f.write_event(format!("{i:03} {}\n", "y".repeat(120)).as_bytes()).unwrap();
            // Distinct millisecond stamps keep the order observable.
            std::thread::sleep(Duration::from_millis(2));
        }
        let rotated = f.rotated_files().unwrap();
        assert_eq!(rotated.len(), 2);
        assert!(fs::read_to_string(&rotated[0]).unwrap().starts_with("007 "));
        assert!(fs::read_to_string(&rotated[1]).unwrap().starts_with("008 "));
        assert!(
            fs::read_to_string(&o.file).unwrap().starts_with("009 "),
            "the live file has the last event"
        );
    }

    #[test]
    fn age_limit_prunes_old_files_and_big_files_rotate_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let o = opts(dir.path(), 1000, 0, 1);
        fs::create_dir_all(dir.path().join("logs")).unwrap();
        let old = dir.path().join("logs/veth.log.0000000000001-000000");
        fs::write(&old, "ancient\n").unwrap();
        let two_days = SystemTime::now() - Duration::from_secs(2 * 86_400);
        File::options().write(true).open(&old).unwrap().set_modified(two_days).unwrap();
        let unrelated = dir.path().join("logs/veth.log.keep");
        fs::write(&unrelated, "not ours\n").unwrap();
        fs::write(&o.file, "z".repeat(2000)).unwrap();
        let f = RotatingFile::open(&o).unwrap();
        assert!(!old.exists(), "older than log_max_age");
        assert!(unrelated.exists(), "only rotated names are pruned");
        assert_eq!(f.rotated_files().unwrap().len(), 1, "the oversized file was rotated at open");
        assert_eq!(fs::metadata(&o.file).unwrap().len(), 0);
    }
}
