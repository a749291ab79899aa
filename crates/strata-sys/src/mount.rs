//! Overlay mounts: the new mount API and legacy mount(2); unmount.

use std::fmt;
use std::io;

/// A failed mount, with the kernel's own log lines when the new API gave them.
#[derive(Debug)]
pub struct MountError {
    /// The syscall that failed.
    pub call: &'static str,
    /// The errno.
    pub source: io::Error,
    /// Lines the kernel logged for this mount context.
    pub kernel_log: Vec<String>,
}

impl fmt::Display for MountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.call, self.source)?;
        for l in &self.kernel_log {
            write!(f, "; kernel: {l}")?;
        }
        Ok(())
    }
}

impl std::error::Error for MountError {}
