//! The plugin socket under careless and hostile clients: relative or switching homes, the
//! umask, clients that stall mid-request, idle and half-open connections by the hundred.
//! Each test failed before the fix it covers (issue 10, "The plugin socket").

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use strata_docker::Limits;
use strata_testkit::{mounts_under, require_root};

use crate::support::{
    apply_diff, eventually, json_path, open_fds, post, serial, tar, tar_header, Running, HANG,
};

fn init_body(home: &Path) -> String {
    format!(r#"{{"Home":{},"Opts":null}}"#, json_path(home))
}

fn ok(reply: (String, String)) -> String {
    assert_eq!(reply.0, "HTTP/1.1 200 OK", "{}", reply.1);
    assert!(!reply.1.contains(r#""Err""#), "{}", reply.1);
    reply.1
}

fn err(reply: (String, String)) -> String {
    assert_eq!(reply.0, "HTTP/1.1 200 OK", "{}", reply.1);
    let v: serde_json::Value = serde_json::from_str(&reply.1).unwrap();
    v["Err"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error reply: {}", reply.1))
        .to_owned()
}

/// A directory for homes on a disk filesystem (overlay upper dirs cannot live on every
/// tmpfs). Dropping it detaches whatever is still mounted beneath it, so a failing test leaves
/// no mount behind; a passing test asserts itself that nothing was left.
struct VarTmp(Option<tempfile::TempDir>);

impl VarTmp {
    fn path(&self) -> &Path {
        self.0.as_ref().unwrap().path()
    }
}

impl Drop for VarTmp {
    fn drop(&mut self) {
        let dir = self.0.take().unwrap();
        let mut left = mounts_under(dir.path());
        left.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for m in left {
            let _ = rustix::mount::unmount(&m, rustix::mount::UnmountFlags::DETACH);
        }
        let _ = dir.close();
    }
}

fn var_tmp() -> VarTmp {
    VarTmp(Some(
        tempfile::Builder::new()
            .prefix("strata-docker-it-")
            .tempdir_in("/var/tmp")
            .unwrap(),
    ))
}

fn short(header: f64, body: f64, max_connections: usize) -> Limits {
    Limits {
        header_timeout: Duration::from_secs_f64(header),
        body_timeout: Duration::from_secs_f64(body),
        max_connections,
    }
}

#[test]
fn init_relative_home_is_refused_and_nothing_is_created() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let plugin = Running::start(dir.path().join("p.sock"), Limits::default());
    let relative = "strata-it-relative-home/h";
    let e = err(post(
        &plugin.socket,
        "GraphDriver.Init",
        &format!(r#"{{"Home":"{relative}"}}"#),
    ));
    assert!(e.contains("not an absolute path"), "{e}");
    assert!(!Path::new("strata-it-relative-home").exists());
    // Still waiting for a usable Init; nothing was saved.
    assert!(
        err(post(&plugin.socket, "GraphDriver.Exists", r#"{"ID":"x"}"#))
            .contains("not initialised")
    );
    assert!(!dir.path().join("p.sock.strata-init").exists());
    plugin.stop().unwrap();
}

#[test]
fn reinit_with_another_home_is_refused_while_a_layer_is_mounted_and_switches_when_none_is() {
    if !require_root("reinit_with_another_home_is_refused_while_a_layer_is_mounted") {
        return;
    }
    let _serial = serial();
    let dir = var_tmp();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let plugin = Running::start(dir.path().join("p.sock"), Limits::default());
    let s = &plugin.socket;
    ok(post(s, "GraphDriver.Init", &init_body(&a)));
    ok(post(s, "GraphDriver.Create", r#"{"ID":"lower"}"#));
    // A layer with a parent is an overlay mount once got (a base layer is its bare diff).
    ok(post(
        s,
        "GraphDriver.CreateReadWrite",
        r#"{"ID":"upper","Parent":"lower"}"#,
    ));
    ok(post(s, "GraphDriver.Get", r#"{"ID":"upper"}"#));

    let e = err(post(s, "GraphDriver.Init", &init_body(&b)));
    assert!(e.contains("mounted") && e.contains("upper"), "{e}");
    assert!(!b.exists(), "a refused Init created its home");
    // Still serving home a; the same home again is fine (dockerd restarted).
    assert_eq!(
        ok(post(s, "GraphDriver.Exists", r#"{"ID":"lower"}"#)),
        r#"{"Exists":true}"#
    );
    ok(post(s, "GraphDriver.Init", &init_body(&a)));
    assert_eq!(
        ok(post(s, "GraphDriver.Exists", r#"{"ID":"lower"}"#)),
        r#"{"Exists":true}"#
    );

    // Nothing mounted: the Init switches homes.
    ok(post(s, "GraphDriver.Put", r#"{"ID":"upper"}"#));
    ok(post(s, "GraphDriver.Init", &init_body(&b)));
    assert_eq!(
        ok(post(s, "GraphDriver.Exists", r#"{"ID":"lower"}"#)),
        r#"{"Exists":false}"#
    );
    let saved = fs::read_to_string(dir.path().join("p.sock.strata-init")).unwrap();
    assert!(saved.contains(&b.display().to_string()), "{saved}");
    ok(post(s, "GraphDriver.Cleanup", ""));
    plugin.stop().unwrap();
    assert_eq!(mounts_under(dir.path()), Vec::<std::path::PathBuf>::new());
}

/// Sets the umask for the life of the guard.
struct Umask(rustix::fs::Mode);

impl Umask {
    fn set(mask: u32) -> Umask {
        Umask(rustix::process::umask(rustix::fs::Mode::from_raw_mode(
            mask,
        )))
    }
}

impl Drop for Umask {
    fn drop(&mut self) {
        rustix::process::umask(self.0);
    }
}

#[test]
fn socket_and_saved_init_are_0600_under_umask_000() {
    if !require_root("socket_and_saved_init_are_0600_under_umask_000") {
        return;
    }
    let _serial = serial();
    let dir = var_tmp();
    let _umask = Umask::set(0);
    let socket = dir.path().join("run/plugins/p.sock");
    let plugin = Running::start(socket.clone(), Limits::default());
    let meta = fs::symlink_metadata(&socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600, "socket");
    let run = fs::metadata(dir.path().join("run")).unwrap();
    assert_eq!(run.permissions().mode() & 0o7777, 0o755, "socket directory");
    ok(post(
        &socket,
        "GraphDriver.Init",
        &init_body(&dir.path().join("home")),
    ));
    let saved = fs::metadata(dir.path().join("run/plugins/p.sock.strata-init")).unwrap();
    assert_eq!(saved.permissions().mode() & 0o7777, 0o600, "saved Init");
    ok(post(&socket, "GraphDriver.Cleanup", ""));
    plugin.stop().unwrap();
}

#[test]
fn stalled_apply_diff_times_out_leaves_the_layer_as_before_and_others_are_served_meanwhile() {
    if !require_root("stalled_apply_diff_times_out_leaves_the_layer_as_before") {
        return;
    }
    let _serial = serial();
    let dir = var_tmp();
    let home = dir.path().join("home");
    let plugin = Running::start(dir.path().join("p.sock"), short(30.0, 1.0, 16));
    let s = &plugin.socket;
    ok(post(s, "GraphDriver.Init", &init_body(&home)));
    ok(post(s, "GraphDriver.Create", r#"{"ID":"stalled"}"#));

    // A client sends the head and half of a tar entry, then stops sending (and stays connected).
    let mut stalling = UnixStream::connect(s).unwrap();
    let header = tar_header("partial", 4096);
    write!(
        stalling,
        "POST /GraphDriver.ApplyDiff?id=stalled&parent= HTTP/1.1\r\nHost: plugin\r\n\
         Transfer-Encoding: chunked\r\n\r\n{:x}\r\n",
        512 + 1000
    )
    .unwrap();
    stalling.write_all(&header).unwrap();
    stalling.write_all(&[b'x'; 1000]).unwrap();
    stalling.write_all(b"\r\n").unwrap();

    // Other clients are served while it stalls.
    ok(post(s, "GraphDriver.Create", r#"{"ID":"other"}"#));
    ok(apply_diff(s, "other", &tar(&[("done", b"ok")])));
    assert_eq!(
        ok(post(s, "GraphDriver.Exists", r#"{"ID":"stalled"}"#)),
        r#"{"Exists":true}"#
    );

    // After the body timeout it gets an error, or at least loses its connection.
    stalling.set_read_timeout(Some(HANG)).unwrap();
    let mut reply = String::new();
    let _ = stalling.read_to_string(&mut reply);
    assert!(
        reply.starts_with("HTTP/1.1 200 OK") && reply.contains(r#"{"Err":"#),
        "{reply}"
    );
    assert!(reply.contains("the client sent no data for 1s"), "{reply}");

    // The layer is as before (nothing applied) and its lock is free: a full ApplyDiff works.
    let diff = home.join("stalled/diff");
    assert_eq!(
        fs::read_dir(&diff).unwrap().count(),
        0,
        "partial apply left"
    );
    ok(apply_diff(
        s,
        "stalled",
        &tar(&[("complete", b"all of it")]),
    ));
    assert_eq!(fs::read(diff.join("complete")).unwrap(), b"all of it");
    assert!(!diff.join("partial").exists());
    ok(post(s, "GraphDriver.Cleanup", ""));
    plugin.stop().unwrap();
}

#[test]
fn abandoned_apply_diff_cut_at_an_entry_boundary_is_not_applied() {
    if !require_root("abandoned_apply_diff_cut_at_an_entry_boundary_is_not_applied") {
        return;
    }
    let _serial = serial();
    let dir = var_tmp();
    let home = dir.path().join("home");
    let plugin = Running::start(dir.path().join("p.sock"), Limits::default());
    let s = &plugin.socket;
    ok(post(s, "GraphDriver.Init", &init_body(&home)));
    ok(post(s, "GraphDriver.Create", r#"{"ID":"cut"}"#));
    // One whole entry of a longer tar, then the client stops sending: a stream that ends at an
    // entry boundary can be a valid (end-block-less) tar, so only the body's framing tells
    // that it is cut. (Half-closed, so the client still reads the answer.)
    let whole = tar(&[("first", b"1"), ("second", b"2")]);
    let first_entry = &whole[..1024];
    let mut c = UnixStream::connect(s).unwrap();
    write!(
        c,
        "POST /GraphDriver.ApplyDiff?id=cut&parent= HTTP/1.1\r\nHost: plugin\r\n\
         Content-Length: {}\r\n\r\n",
        whole.len()
    )
    .unwrap();
    c.write_all(first_entry).unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let mut reply = String::new();
    c.set_read_timeout(Some(HANG)).unwrap();
    let _ = c.read_to_string(&mut reply);
    assert!(reply.contains(r#"{"Err":"apply to layer cut: "#), "{reply}");
    drop(c);
    // The store lets go of the layer (a full ApplyDiff gets its lock) and nothing of the cut
    // request is in it.
    ok(apply_diff(s, "cut", &tar(&[("complete", b"yes")])));
    let diff = home.join("cut/diff");
    let names: Vec<_> = fs::read_dir(&diff)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("complete")]);
    ok(post(s, "GraphDriver.Cleanup", ""));
    plugin.stop().unwrap();
}

#[test]
fn idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let plugin = Running::start(dir.path().join("p.sock"), short(0.5, 30.0, 16));
    let mut c = UnixStream::connect(&plugin.socket).unwrap();
    c.write_all(b"POST /Plugin.Activate HTTP/1.1\r\nHost: plugin\r\nContent-Length: 0\r\n\r\n")
        .unwrap();
    c.set_read_timeout(Some(HANG)).unwrap();
    // The reply, then end of file once the kept-alive connection has idled out.
    let mut all = Vec::new();
    c.read_to_end(&mut all).unwrap();
    let all = String::from_utf8(all).unwrap();
    assert!(all.starts_with("HTTP/1.1 200 OK"), "{all}");
    assert!(all.ends_with(r#"{"Implements":["GraphDriver"]}"#), "{all}");
    plugin.stop().unwrap();
}

#[test]
fn half_open_connections_are_capped_and_closed_new_clients_are_served_fds_come_back() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let cap = 16;
    let plugin = Running::start(dir.path().join("p.sock"), short(0.25, 30.0, cap));
    let socket = plugin.socket.clone();
    // Let the runtime settle (threads, signal pipe) before counting.
    post(&socket, "Plugin.Activate", "");
    let baseline = open_fds();

    // Many clients that send half a request head and then nothing.
    let many = 300;
    let flood: Vec<UnixStream> = (0..many)
        .map(|_| {
            let mut c = UnixStream::connect(&socket).unwrap();
            c.write_all(b"POST /Plugin.Activate HTTP/1.1\r\nHost: pl")
                .unwrap();
            c
        })
        .collect();
    // The plugin holds at most `cap` of them (plus a few descriptors of its own).
    let held = open_fds().saturating_sub(baseline + many);
    assert!(held <= cap + 4, "the plugin holds {held} descriptors");

    // A new client is served while the flood is still connected.
    assert_eq!(post(&socket, "Plugin.Activate", "").0, "HTTP/1.1 200 OK");
    // Every half-open connection is closed on the plugin's side: only ours remain.
    eventually("the plugin closes every half-open connection", || {
        open_fds() <= baseline + many + 2
    });
    for mut c in flood.iter().take(5) {
        let mut buf = [0u8; 64];
        c.set_read_timeout(Some(HANG)).unwrap();
        assert_eq!(c.read(&mut buf).unwrap_or(0), 0, "closed without a reply");
    }
    drop(flood);
    eventually("descriptors come back", || open_fds() <= baseline + 2);
    assert_eq!(post(&socket, "Plugin.Activate", "").0, "HTTP/1.1 200 OK");
    plugin.stop().unwrap();
}

/// Set in the child process that runs the EMFILE scenario (its descriptor limit is lowered,
/// which must not touch the other tests).
const EMFILE_CHILD: &str = "STRATA_IT_EMFILE_CHILD";

#[test]
fn accept_failing_with_emfile_backs_off_and_the_waiting_client_is_served_afterwards() {
    if std::env::var_os(EMFILE_CHILD).is_some() {
        emfile_scenario();
        return;
    }
    let _serial = serial();
    // The scenario runs alone in a child copy of this test binary, which waits for it (every
    // wait in the scenario is bounded, so the child ends).
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "hostile::accept_failing_with_emfile_backs_off_and_the_waiting_client_is_served_afterwards",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(EMFILE_CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}\n{stdout}\n{stderr}", out.status);
    assert!(stdout.contains("1 passed"), "{stdout}");
}

/// Runs in the child: exhausts the descriptors so that `accept` fails with EMFILE while a
/// client waits, then frees them. The plugin logs the failure, does not spin (a few retries
/// with growing pauses, not thousands), and serves the client once it can.
fn emfile_scenario() {
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::fmt::MakeWriter;

    #[derive(Clone)]
    struct Log(Arc<Mutex<Vec<u8>>>);
    impl Write for Log {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl<'a> MakeWriter<'a> for Log {
        type Writer = Log;
        fn make_writer(&'a self) -> Log {
            self.clone()
        }
    }
    let log = Log(Arc::new(Mutex::new(Vec::new())));
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(log.clone())
        .init();
    let accept_failures = || {
        String::from_utf8_lossy(&log.0.lock().unwrap())
            .matches("accept failed")
            .count()
    };

    let dir = tempfile::tempdir().unwrap();
    let plugin = Running::start(dir.path().join("p.sock"), Limits::default());
    assert_eq!(
        post(&plugin.socket, "Plugin.Activate", "").0,
        "HTTP/1.1 200 OK"
    );

    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let before = getrlimit(Resource::Nofile);
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(open_fds() as u64 + 16),
            maximum: before.maximum,
        },
    )
    .unwrap();
    // Take every descriptor but one, which the client's socket gets.
    let mut filler = Vec::new();
    while let Ok(f) = fs::File::open("/dev/null") {
        filler.push(f);
    }
    filler.pop();
    let mut client = UnixStream::connect(&plugin.socket).unwrap();
    client
        .write_all(b"POST /Plugin.Activate HTTP/1.1\r\nHost: p\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .unwrap();
    eventually("accept fails with EMFILE", || accept_failures() > 0);
    std::thread::sleep(Duration::from_millis(1500));
    let failures = accept_failures();
    drop(filler);
    setrlimit(Resource::Nofile, before).unwrap();
    let (status, body) = crate::support::read_response(client);
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(body, r#"{"Implements":["GraphDriver"]}"#);
    // Pauses of 10 ms doubling to 1 s: about eight tries in 1.5 s. A loop that does not back
    // off retries as fast as the kernel answers, hundreds of thousands of times.
    assert!(
        (1..=50).contains(&failures),
        "{failures} accept failures while descriptors were exhausted"
    );
    plugin.stop().unwrap();
}
