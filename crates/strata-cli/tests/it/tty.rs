//! Terminal behaviour, run under `script(1)` for a pseudo-terminal: progress only on a
//! terminal, no tar written to one.

use std::process::Command;

use strata_image::Digest;

use crate::support::{bin, Home};
use strata_testkit::images::{docker_save, layer_tar, Entry as E};
use strata_testkit::require_root;

/// Runs `strata --home H ARGS` with a pseudo-terminal as stdin, stdout and stderr; returns the
/// exit code and everything the terminal showed.
fn on_tty(h: &Home, args: &str) -> (i32, String) {
    let cmd = format!("{} --home {} {args}", bin(), h.path().display());
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .expect("script(1) from util-linux");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn load_progress_shows_on_terminal_only_and_diff_refuses_terminal() {
    if !require_root("load_progress_shows_on_terminal_only_and_diff_refuses_terminal") {
        return;
    }
    let h = Home::new();
    let l0 = layer_tar(&[E::File("a", "1")]);
    let ids = vec![Digest::of(&l0)];
    let a = h.scratch("img.tar");
    docker_save(&a, &[l0], &ids, "test:1");

    let (code, screen) = on_tty(&h, &format!("load {}", a.display()));
    assert_eq!(code, 0, "{screen}");
    assert!(
        screen.contains(&format!("loaded {}", ids[0].hex())),
        "{screen}"
    );
    assert!(screen.contains("image 1 layer 1/1"), "{screen}");

    // Not a terminal: stdout has the id only, stderr stays empty.
    let r = h.run(&["load", a.to_str().unwrap()]);
    assert_eq!(r.ok(), format!("{}\n", ids[0].hex()));
    assert_eq!(r.stderr, "");

    let (code, screen) = on_tty(&h, &format!("diff {}", ids[0].hex()));
    assert_eq!(code, 2, "{screen}");
    assert!(
        screen.contains("refusing to write a tar to a terminal"),
        "{screen}"
    );
}
