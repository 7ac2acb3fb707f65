//! Logging for short-lived plugin processes.
//!
//! Logs go to stderr or are appended to a file, never to stdout (which carries only the
//! result). Writes are blocking (no background thread that could lose the tail when the
//! process exits) and every event is handed to the kernel in a single `write(2)` on a file
//! opened with `O_APPEND`, so many plugin processes can share one log file without tearing
//! each other's lines: on Linux an `O_APPEND` write to a regular file is positioned and
//! performed under the inode lock, atomically with respect to other writers.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;

/// A log level, named as sriov-cni names them, plus `trace`.
///
/// tracing has no panic level: `panic` keeps only errors (panics themselves are printed by
/// the runtime's panic hook to stderr).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// Only the most severe messages (treated like `error`).
    Panic,
    /// Errors.
    Error,
    /// Warnings and errors.
    Warning,
    /// Informational messages and above (default).
    #[default]
    Info,
    /// Debug messages and above.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    /// The level's name.
    pub const fn as_str(self) -> &'static str {
        match self {
            LogLevel::Panic => "panic",
            LogLevel::Error => "error",
            LogLevel::Warning => "warning",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }

    /// The tracing filter for this level.
    pub fn filter(self) -> LevelFilter {
        match self {
            LogLevel::Panic | LogLevel::Error => LevelFilter::ERROR,
            LogLevel::Warning => LevelFilter::WARN,
            LogLevel::Info => LevelFilter::INFO,
            LogLevel::Debug => LevelFilter::DEBUG,
            LogLevel::Trace => LevelFilter::TRACE,
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown log level name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid log level {0:?}: expected panic, error, warning, info, debug or trace")]
pub struct InvalidLogLevel(pub String);

impl FromStr for LogLevel {
    type Err = InvalidLogLevel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "panic" => Ok(LogLevel::Panic),
            "error" => Ok(LogLevel::Error),
            "warning" | "warn" => Ok(LogLevel::Warning),
            "info" => Ok(LogLevel::Info),
            "debug" => Ok(LogLevel::Debug),
            "trace" => Ok(LogLevel::Trace),
            _ => Err(InvalidLogLevel(s.to_owned())),
        }
    }
}

impl Serialize for LogLevel {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for LogLevel {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Where and how much a plugin logs; returned by [`crate::Plugin::logging`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogSettings {
    /// The level.
    pub level: LogLevel,
    /// Append to this file instead of writing to stderr.
    pub file: Option<PathBuf>,
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// The log file could not be opened for appending.
    #[error("cannot open log file {path}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A global subscriber is already installed in this process.
    #[error("a global tracing subscriber is already installed")]
    AlreadyInitialized,
}

/// Installs the process-wide tracing subscriber: `level`, to `file` (appended, created with
/// mode 0600) or to stderr.
pub fn init_logging(level: LogLevel, file: Option<&Path>) -> Result<(), LoggingError> {
    let sink = match file {
        Some(path) => Sink::File(Arc::new(open_append(path)?)),
        None => Sink::Stderr,
    };
    tracing_subscriber::fmt()
        .with_max_level(level.filter())
        .with_ansi(false)
        .with_target(false)
        .with_writer(LineWriterFactory { sink })
        .try_init()
        .map_err(|_| LoggingError::AlreadyInitialized)
}

/// Opens `path` for appending (`O_APPEND | O_CREAT`, mode 0600, close-on-exec).
pub fn open_append(path: &Path) -> Result<File, LoggingError> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| LoggingError::Open { path: path.to_owned(), source })
}

#[derive(Debug, Clone)]
enum Sink {
    File(Arc<File>),
    Stderr,
}

/// Hands out one [`LineWriter`] per event.
#[derive(Debug, Clone)]
pub struct LineWriterFactory {
    sink: Sink,
}

impl LineWriterFactory {
    /// A factory appending to `file` (which should be opened with [`open_append`]).
    pub fn file(file: File) -> LineWriterFactory {
        LineWriterFactory { sink: Sink::File(Arc::new(file)) }
    }
}

impl<'a> MakeWriter<'a> for LineWriterFactory {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter { sink: self.sink.clone(), buf: Vec::with_capacity(256) }
    }
}

/// Collects one event and writes it with a single `write_all` when dropped.
#[derive(Debug)]
pub struct LineWriter {
    sink: Sink,
    buf: Vec<u8>,
}

impl Write for LineWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        // Logging must never fail the plugin; a lost log line is the lesser evil.
        let _ = match &self.sink {
            Sink::File(f) => (&**f).write_all(&self.buf),
            Sink::Stderr => io::stderr().lock().write_all(&self.buf),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_names() {
        for (s, l) in [
            ("panic", LogLevel::Panic),
            ("error", LogLevel::Error),
            ("warning", LogLevel::Warning),
            ("warn", LogLevel::Warning),
            ("INFO", LogLevel::Info),
            ("debug", LogLevel::Debug),
            ("trace", LogLevel::Trace),
        ] {
            assert_eq!(s.parse::<LogLevel>(), Ok(l));
        }
        assert!("verbose".parse::<LogLevel>().is_err());
        assert_eq!(LogLevel::default(), LogLevel::Info);
        assert_eq!(LogLevel::Panic.filter(), LevelFilter::ERROR);
        assert_eq!(LogLevel::Warning.filter(), LevelFilter::WARN);
        assert_eq!(serde_json::from_str::<LogLevel>("\"debug\"").unwrap(), LogLevel::Debug);
        assert_eq!(serde_json::to_string(&LogLevel::Warning).unwrap(), "\"warning\"");
    }

    #[test]
    fn one_event_is_one_append_even_when_written_in_pieces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let factory = LineWriterFactory::file(open_append(&path).unwrap());
        std::thread::scope(|s| {
            for t in 0..8 {
                let factory = &factory;
                s.spawn(move || {
                    for i in 0..500 {
                        let mut w = factory.make_writer();
                        // Several small writes per event, as a formatter does.
                        write!(w, "thread={t} ").unwrap();
                        write!(w, "event={i} ").unwrap();
                        writeln!(w, "{}", "x".repeat(200)).unwrap();
                    }
                });
            }
        });
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 8 * 500);
        for l in lines {
            let parts: Vec<&str> = l.split(' ').collect();
            assert_eq!(parts.len(), 3, "torn line: {l:?}");
            assert!(parts[0].starts_with("thread=") && parts[1].starts_with("event="), "{l:?}");
            assert_eq!(parts[2].len(), 200, "{l:?}");
        }
    }

    #[test]
    fn open_append_creates_private_file_and_appends() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plugin.log");
        std::fs::write(&path, "old\n").unwrap();
        {
            let f = LineWriterFactory::file(open_append(&path).unwrap());
            let mut w = f.make_writer();
            w.write_all(b"new\n").unwrap();
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old\nnew\n");
        let fresh = dir.path().join("fresh.log");
        drop(open_append(&fresh).unwrap());
        assert_eq!(std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777, 0o600);
        let err = open_append(&dir.path().join("missing/dir/x.log")).unwrap_err();
        assert!(err.to_string().contains("missing/dir/x.log"), "{err}");
    }
}
