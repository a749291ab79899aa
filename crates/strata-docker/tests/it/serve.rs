use strata_docker::{serve, Error, Limits, PluginConfig};

use crate::support::{post, serial, sigterm_self, start, wait_for_socket};

#[test]
fn serve_sigterm_stops_cleanly_and_removes_the_socket() {
    let _serial = serial();
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
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("strata-it.sock");
    let first = start(socket.clone());
    wait_for_socket(&socket);
    let err = serve(&PluginConfig {
        name: "strata-it".into(),
        socket: Some(socket.clone()),
        limits: Limits::default(),
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
        limits: Limits::default(),
    })
    .unwrap_err();
    assert!(matches!(err, Error::InvalidName { .. }), "{err}");
}
