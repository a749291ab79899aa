//! The server as a process: SIGTERM stops it cleanly, a restart serves at once with nothing
//! lost, several instances run side by side, and one root cannot be served twice.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use strata_testkit::{mounts_under, require_root, TempHome};

use crate::common::{Client, ServerProcess};

/// Not a test: the server process the other tests start (this binary re-executed).
#[test]
#[ignore = "the server process of the process and crash tests, started by them"]
fn child_server() {
    let (Ok(root), Ok(socket)) = (
        std::env::var("STRATA_CTRD_CHILD_ROOT"),
        std::env::var("STRATA_CTRD_CHILD_SOCKET"),
    ) else {
        return;
    };
    if let Err(e) = strata_containerd::serve(&strata_containerd::Config {
        root: PathBuf::from(root),
        socket: PathBuf::from(socket),
        options: strata::Options::default(),
    }) {
        panic!("serve: {e}");
    }
}

#[test]
fn process_sigterm_stops_cleanly_and_restart_serves_at_once() {
    if !require_root("process_sigterm_stops_cleanly_and_restart_serves_at_once") {
        return;
    }
    let home = TempHome::new();
    let socket = home.outside().join("run/ctrd.sock");
    // A umask that would leave the socket open to everyone.
    let old = rustix::process::umask(rustix::fs::Mode::empty());
    let mut server = ServerProcess::start(home.home(), &socket);
    rustix::process::umask(old);
    assert_eq!(std::fs::metadata(&socket).unwrap().mode() & 0o777, 0o600);
    let mut c = Client::connect(&socket).unwrap();
    c.prepare("a", "").unwrap();
    c.commit("b", "a").unwrap();
    c.prepare("c", "b").unwrap();
    let t0 = std::time::Instant::now();
    let st = server.terminate();
    eprintln!("SIGTERM with a connected client took {:?}", t0.elapsed());
    assert!(st.success(), "{st}");
    assert!(!socket.exists(), "the socket outlived the server");
    assert!(mounts_under(home.home()).is_empty());
    // Restart: the socket answers when it appears; nothing was lost.
    let _server = ServerProcess::start(home.home(), &socket);
    let mut c = Client::connect(&socket).unwrap();
    assert_eq!(c.names(&[]), ["b", "c"]);
    c.remove("c").unwrap();
    c.remove("b").unwrap();
}

#[test]
fn process_instances_side_by_side_and_one_root_once() {
    if !require_root("process_instances_side_by_side_and_one_root_once") {
        return;
    }
    let h1 = TempHome::new();
    let h2 = TempHome::new();
    let s1 = h1.outside().join("one.sock");
    let s2 = h2.outside().join("two.sock");
    let _p1 = ServerProcess::start(h1.home(), &s1);
    let _p2 = ServerProcess::start(h2.home(), &s2);
    let mut c1 = Client::connect(&s1).unwrap();
    let mut c2 = Client::connect(&s2).unwrap();
    c1.prepare("same", "").unwrap();
    c2.prepare("same", "").unwrap();
    c2.prepare("only-two", "").unwrap();
    assert_eq!(c1.names(&[]), ["same"]);
    assert_eq!(c2.names(&[]), ["only-two", "same"]);
    // A second server on the first root refuses to start, and leaves the first serving.
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "process::child_server",
            "--ignored",
            "--nocapture",
        ])
        .env("STRATA_CTRD_CHILD_ROOT", h1.home())
        .env("STRATA_CTRD_CHILD_SOCKET", h1.outside().join("three.sock"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("in use"), "{text}");
    assert_eq!(c1.names(&[]), ["same"]);
    // A second server on a live socket refuses too.
    let h3 = TempHome::new();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "process::child_server",
            "--ignored",
            "--nocapture",
        ])
        .env("STRATA_CTRD_CHILD_ROOT", h3.home())
        .env("STRATA_CTRD_CHILD_SOCKET", &s1)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(c1.names(&[]), ["same"]);
}
