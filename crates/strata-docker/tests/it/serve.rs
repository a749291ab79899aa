use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use strata_docker::{serve, Error, PluginConfig};

/// Serialises the tests that send SIGTERM to this process.
static SIGNALS: Mutex<()> = Mutex::new(());

fn wait_for_socket(path: &Path) {
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

/// One POST on a fresh connection; returns the status line and the body.
fn post(path: &Path, method: &str, body: &str) -> (String, String) {
    let mut s = UnixStream::connect(path).unwrap();
    write!(
        s,
        "POST /{method} HTTP/1.1\r\nHost: plugin\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let mut status = String::new();
    r.read_line(&mut status).unwrap();
    let mut line = String::new();
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
    }
    let mut rest = String::new();
    r.read_to_string(&mut rest).unwrap();
    (status.trim_end().to_owned(), rest)
}

fn sigterm_self() {
    rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::TERM)
        .unwrap();
}

fn start(socket: PathBuf) -> thread::JoinHandle<Result<(), Error>> {
    let config = PluginConfig {
        name: "strata-it".into(),
        socket: Some(socket),
    };
    thread::spawn(move || serve(&config))
}

#[test]
fn serve_sigterm_stops_cleanly_and_removes_the_socket() {
    let _guard = SIGNALS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("run/strata-it.sock");
    let server = start(socket.clone());
    wait_for_socket(&socket);
    let (status, body) = post(&socket, "Plugin.Activate", "");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(body, r#"{"Implements":["GraphDriver"]}"#);
    // Before Init, store calls are refused with a protocol error, not a crash.
    let (status, body) = post(&socket, "GraphDriver.Exists", r#"{"ID":"x"}"#);
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(
        body.contains(r#""Err":"#) && body.contains("not initialised"),
        "{body}"
    );
    sigterm_self();
    server.join().unwrap().unwrap();
    assert!(!socket.exists(), "the socket outlived the plugin");
}

#[test]
fn serve_live_socket_is_refused_and_left_alone() {
    let _guard = SIGNALS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("strata-it.sock");
    let first = start(socket.clone());
    wait_for_socket(&socket);
    let err = serve(&PluginConfig {
        name: "strata-it".into(),
        socket: Some(socket.clone()),
    })
    .unwrap_err();
    assert!(matches!(err, Error::SocketInUse { .. }), "{err}");
    assert!(err.to_string().contains("in use"), "{err}");
    // The first plugin still answers.
    assert_eq!(post(&socket, "Plugin.Activate", "").0, "HTTP/1.1 200 OK");
    sigterm_self();
    first.join().unwrap().unwrap();
}

#[test]
fn serve_invalid_name_is_refused() {
    let err = serve(&PluginConfig {
        name: "../escape".into(),
        socket: None,
    })
    .unwrap_err();
    assert!(matches!(err, Error::InvalidName { .. }), "{err}");
}
