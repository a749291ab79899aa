//! What the integration tests share: a plugin served by `serve` in this process (stopped with a
//! real SIGTERM, also when a test fails), raw HTTP/1.1 over its socket, and one lock that runs
//! the tests one at a time (signals are process-wide, and some tests count this process's file
//! descriptors or change its umask).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use strata_docker::{serve, Error, Limits, PluginConfig};

static SERIAL: Mutex<()> = Mutex::new(());

/// Runs the calling test alone among the tests that take this lock.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Longest wait for any single reply: a hang fails the test instead of blocking it.
pub const HANG: Duration = Duration::from_secs(60);

pub fn wait_for_socket(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while UnixStream::connect(path).is_err() {
        assert!(
            Instant::now() < deadline,
            "{} never answered",
            path.display()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Reads a response: the status line and the body (the connection must close after it).
pub fn read_response(s: UnixStream) -> (String, String) {
    s.set_read_timeout(Some(HANG)).unwrap();
    let mut r = BufReader::new(s);
    let mut status = String::new();
    r.read_line(&mut status).unwrap();
    let mut line = String::new();
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
    }
    let mut rest = String::new();
    r.read_to_string(&mut rest).unwrap();
    (status.trim_end().to_owned(), rest)
}

/// One POST on a fresh connection; returns the status line and the body.
pub fn post(path: &Path, method: &str, body: &str) -> (String, String) {
    let mut s = UnixStream::connect(path).unwrap();
    write!(
        s,
        "POST /{method} HTTP/1.1\r\nHost: plugin\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    read_response(s)
}

/// `ApplyDiff` of a whole tar on a fresh connection.
pub fn apply_diff(path: &Path, id: &str, tar: &[u8]) -> (String, String) {
    let mut s = UnixStream::connect(path).unwrap();
    write!(
        s,
        "POST /GraphDriver.ApplyDiff?id={id}&parent= HTTP/1.1\r\nHost: plugin\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        tar.len()
    )
    .unwrap();
    s.write_all(tar).unwrap();
    read_response(s)
}

pub fn sigterm_self() {
    rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::TERM)
        .unwrap();
}

pub fn start(socket: PathBuf) -> thread::JoinHandle<Result<(), Error>> {
    start_with(socket, Limits::default())
}

pub fn start_with(socket: PathBuf, limits: Limits) -> thread::JoinHandle<Result<(), Error>> {
    let config = PluginConfig {
        name: "strata-it".into(),
        socket: Some(socket),
        limits,
    };
    thread::spawn(move || serve(&config))
}

/// A plugin served in this process; stopped (SIGTERM) when dropped, even by a failing test.
pub struct Running {
    pub socket: PathBuf,
    server: Option<thread::JoinHandle<Result<(), Error>>>,
}

impl Running {
    pub fn start(socket: PathBuf, limits: Limits) -> Running {
        let server = start_with(socket.clone(), limits);
        wait_for_socket(&socket);
        Running {
            socket,
            server: Some(server),
        }
    }

    /// Stops the plugin and returns what `serve` returned.
    pub fn stop(mut self) -> Result<(), Error> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> Result<(), Error> {
        let Some(server) = self.server.take() else {
            return Ok(());
        };
        if !server.is_finished() {
            sigterm_self();
        }
        server.join().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop_inner();
    }
}

/// A ustar archive of regular files (name, content), with its end-of-archive blocks.
pub fn tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in files {
        out.extend_from_slice(&tar_header(name, data.len()));
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

/// One ustar header of a regular file, mode 0644, owned by root.
pub fn tar_header(name: &str, size: usize) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    let octal = |h: &mut [u8; 512], at: usize, len: usize, v: u64| {
        let s = format!("{v:0w$o}\0", w = len - 1);
        h[at..at + len].copy_from_slice(s.as_bytes());
    };
    octal(&mut h, 100, 8, 0o644);
    octal(&mut h, 108, 8, 0);
    octal(&mut h, 116, 8, 0);
    octal(&mut h, 124, 12, size as u64);
    octal(&mut h, 136, 12, 0);
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    h
}

/// The open file descriptors of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Waits until `cond` holds (polling), or fails with `what` after `HANG`.
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + HANG;
    while !cond() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        thread::sleep(Duration::from_millis(50));
    }
}

/// The JSON string of a path.
pub fn json_path(p: &Path) -> String {
    serde_json::to_string(&p.display().to_string()).unwrap()
}
