//! A fresh home per test, a runner for the real binary, and the leak check.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use strata_testkit::mounts_under;

/// A temporary home. Drop runs `strata cleanup` and fails the test if a mount under the home
/// is left.
pub struct Home {
    dir: tempfile::TempDir,
    scratch: tempfile::TempDir,
}

/// What a run of the binary gave.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Asserts exit 0 and returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(
            self.code, 0,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        &self.stdout
    }

    /// Asserts the exit code and returns stderr.
    #[track_caller]
    pub fn fails(&self, code: i32) -> &str {
        assert_eq!(
            self.code, code,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        &self.stderr
    }

    /// Stdout parsed as one JSON document.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.ok()).unwrap_or_else(|e| panic!("{e}: {:?}", self.stdout))
    }
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_strata")
}

impl Home {
    pub fn new() -> Home {
        let dir = tempfile::Builder::new()
            .prefix("strata-cli-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let scratch = tempfile::Builder::new()
            .prefix("strata-cli-scratch-")
            .tempdir_in("/var/tmp")
            .unwrap();
        Home { dir, scratch }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A path in a scratch directory beside (not inside) the home.
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.scratch.path().join(name)
    }

    /// `strata --home <home> ARGS...` with the given stdin bytes.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.arg("--home").arg(self.path()).args(args);
        c.env_remove("RUST_LOG");
        c
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.cmd(args).stdin(Stdio::null()).output().unwrap())
    }

    pub fn run_stdin(&self, args: &[&str], input: &[u8]) -> Run {
        use std::io::Write;
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let data = input.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&data);
        });
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        Run::from(out)
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let leaked = mounts_under(self.path());
        let _ = self.run(&["cleanup"]);
        for m in mounts_under(self.path()) {
            let _ = Command::new("umount").arg("-l").arg(&m).status();
        }
        if !leaked.is_empty() && !std::thread::panicking() {
            panic!("mounts leaked under the test home: {leaked:?}");
        }
    }
}
