//! `strata containerd-snapshotter`: serves on a 0600 socket and stops cleanly on SIGTERM; and
//! `strata check [--repair]` on a snapshotter root reports and settles what a killed
//! snapshotter left unfinished.

use std::os::unix::fs::MetadataExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use strata_containerd::meta::{Journal, Meta};

use crate::support::{bin, root_or_skip, Home};

/// The server process; killed on drop unless it exited.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn containerd_snapshotter_serves_0600_and_check_repairs_its_root() {
    if !root_or_skip("containerd_snapshotter_serves_0600_and_check_repairs_its_root") {
        return;
    }
    let home = Home::new();
    let sock = home.scratch("ctrd.sock");
    let mut server = Server(
        Command::new(bin())
            .args(["containerd-snapshotter", "--root"])
            .arg(home.path())
            .arg("--socket")
            .arg(&sock)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !sock.exists() {
        assert!(Instant::now() < deadline, "no socket");
        assert!(server.0.try_wait().unwrap().is_none(), "exited early");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(std::fs::metadata(&sock).unwrap().mode() & 0o777, 0o600);
    // While it serves, check looks at the home and says why it skips the snapshots.
    let r = home.run(&["check"]);
    assert!(r.ok().contains("no problems found"));
    assert!(r.stderr.contains("in use"), "{}", r.stderr);
    // A second server on the same root refuses to start.
    let second = Command::new(bin())
        .args(["containerd-snapshotter", "--root"])
        .arg(home.path())
        .arg("--socket")
        .arg(home.scratch("other.sock"))
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&second.stderr).contains("in use"));
    let term = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = server.0.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(!sock.exists(), "the socket outlived the server");

    // What a snapshotter killed between its journal entry and the layer's creation leaves.
    let meta = Meta::open(home.path()).unwrap();
    let layer = meta
        .write(|tx| {
            let l = tx.next_layer()?;
            tx.journal(
                &l,
                &Journal::Creating {
                    key: "default/1/k".into(),
                },
            )?;
            Ok(l)
        })
        .unwrap();
    drop(meta);
    home.run(&["create", "--rw", &layer]).ok();
    let r = home.run(&["check"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stdout.contains("interrupted-snapshot-operation"),
        "{}",
        r.stdout
    );
    let r = home.run(&["--json", "check", "--repair"]);
    let v = r.json();
    assert_eq!(v["repaired_all"], true, "{v}");
    home.run(&["exists", &layer]).fails(1);
    assert!(home.run(&["check"]).ok().contains("no problems found"));

    // `ls` says which snapshot each layer belongs to.
    let s = strata_containerd::Snapshotter::open(home.path(), strata::Options::default()).unwrap();
    s.prepare("default/1/base", None, Default::default())
        .unwrap();
    s.commit("default/2/base", "default/1/base", Default::default(), None)
        .unwrap();
    s.view("default/3/v", Some("default/2/base"), Default::default())
        .unwrap();
    let layer = s.stat("default/2/base").unwrap().layer;
    let v = home.run(&["--json", "ls"]).json();
    assert_eq!(v["snapshots"][&layer], "default/2/base", "{v}");
    assert_eq!(v["snapshots"].as_object().unwrap().len(), 2, "{v}");
    assert!(home
        .run(&["ls"])
        .ok()
        .contains(&format!("{layer}\tdefault/2/base")));
    s.remove("default/3/v").unwrap();
    s.remove("default/2/base").unwrap();
    let v = home.run(&["--json", "ls"]).json();
    assert!(v.get("snapshots").is_none(), "{v}");
}
