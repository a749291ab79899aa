//! Integration tests of the public entry point: `serve` in this process, driven over its socket
//! with raw HTTP/1.1 and stopped with a real SIGTERM. One test binary; signals are process-wide,
//! so the tests that signal run one after another under a lock (`support::serial`).

// Test helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

mod hostile;
mod serve;
mod support;
