//! `strata docker-plugin`: answers the plugin handshake on its socket and stops cleanly on
//! SIGTERM, removing the socket.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::bin;
use strata_testkit::require_root;

#[test]
fn docker_plugin_activates_on_socket_and_stops_on_sigterm() {
    if !require_root("docker_plugin_activates_on_socket_and_stops_on_sigterm") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("strata-test.sock");
    let mut child = Command::new(bin())
        .args(["docker-plugin", "--name", "strata-test", "--socket"])
        .arg(&sock)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the socket to appear (bounded: the test fails rather than hangs).
    let deadline = Instant::now() + Duration::from_secs(30);
    while !sock.exists() {
        assert!(
            Instant::now() < deadline,
            "the plugin never created its socket"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the plugin exited early"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut s = UnixStream::connect(&sock).unwrap();
    s.write_all(
        b"POST /Plugin.Activate HTTP/1.1\r\nHost: plugin\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("GraphDriver"), "{reply}");

    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    assert!(!sock.exists(), "the socket is removed on stop");
}

#[test]
fn docker_plugin_without_name_is_usage_error() {
    let out = Command::new(bin()).arg("docker-plugin").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
