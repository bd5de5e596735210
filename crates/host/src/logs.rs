//! Where component output and host messages go, as with `spin up`.
//!
//! Each component's stdout and stderr are appended to
//! `<state dir>/logs/<component>_stdout.txt` / `_stderr.txt` and, unless the host runs
//! quiet, echoed to the host's stderr (both streams, as Spin does). Without a state
//! directory both streams go straight to stderr. Host messages (start-up, request lines,
//! denials, traps) go to stderr too.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// Log routing shared by every instance of an application.
#[derive(Clone)]
pub struct Logger {
    inner: Arc<LoggerInner>,
}

struct LoggerInner {
    dir: Option<PathBuf>,
    echo: bool,
    files: Mutex<HashMap<String, Option<Arc<File>>>>,
}

#[derive(Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}

impl Logger {
    /// Logs into `dir` (created on first use) when given; echoes to the terminal when `echo`.
    pub fn new(dir: Option<PathBuf>, echo: bool) -> Logger {
        Logger {
            inner: Arc::new(LoggerInner {
                dir,
                echo,
                files: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// A message from the host itself.
    pub fn host(&self, message: &str) {
        eprintln!("{message}");
    }

    /// The log directory, if any.
    pub fn dir(&self) -> Option<&PathBuf> {
        self.inner.dir.as_ref()
    }

    fn file(&self, component: &str, stream: Stream) -> Option<Arc<File>> {
        let dir = self.inner.dir.as_ref()?;
        let name = match stream {
            Stream::Stdout => format!("{component}_stdout.txt"),
            Stream::Stderr => format!("{component}_stderr.txt"),
        };
        let mut files = self.inner.files.lock().ok()?;
        files
            .entry(name.clone())
            .or_insert_with(|| {
                std::fs::create_dir_all(dir).ok()?;
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.join(&name))
                    .ok()
                    .map(Arc::new)
            })
            .clone()
    }

    /// The stdout stream for a component instance.
    pub fn stdout_for(&self, component: &str) -> ComponentOutput {
        ComponentOutput {
            file: self.file(component, Stream::Stdout),
            echo: self.inner.echo,
        }
    }

    /// The stderr stream for a component instance.
    pub fn stderr_for(&self, component: &str) -> ComponentOutput {
        ComponentOutput {
            file: self.file(component, Stream::Stderr),
            echo: self.inner.echo,
        }
    }
}

/// One component stream: written to its log file and, optionally, the terminal.
#[derive(Clone)]
pub struct ComponentOutput {
    file: Option<Arc<File>>,
    echo: bool,
}

impl ComponentOutput {
    fn write_all(&self, buf: &[u8]) -> std::io::Result<()> {
        if let Some(file) = &self.file {
            (&**file).write_all(buf)?;
        }
        if self.echo || self.file.is_none() {
            // Terminal echo is best effort: a closed terminal must not fail the guest.
            let _ = std::io::stderr().write_all(buf);
        }
        Ok(())
    }
}

impl IsTerminal for ComponentOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for ComponentOutput {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl tokio::io::AsyncWrite for ComponentOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(self.write_all(buf).map(|()| buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
