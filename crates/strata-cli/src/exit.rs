//! Exit codes, and the one place that maps an error to its code. Scripts rely on these numbers;
//! they are documented in docs/cli.md and must not change.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Success.
pub const OK: u8 = 0;
/// A negative answer, not a failure: `exists` says no, `check` found problems (or, with
/// `--repair`, some remain unrepaired).
pub const NO: u8 = 1;
/// Usage error: bad command line, invalid layer id, unknown or malformed option.
pub const USAGE: u8 = 2;
/// A named layer, parent layer or input file does not exist.
pub const NOT_FOUND: u8 = 3;
/// Any other failure (I/O, mount, unsupported host, corrupt input, digest mismatch, ...).
pub const FAILURE: u8 = 4;

/// A usage error found after parsing (e.g. a tar would go to a terminal).
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// An input file named on the command line does not exist.
#[derive(Debug)]
pub struct MissingInput(pub PathBuf);

impl fmt::Display for MissingInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: no such file or directory", self.0.display())
    }
}

impl std::error::Error for MissingInput {}

/// The store's error, whether it sits in the chain directly or boxed by `strata-image`.
fn as_store_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a strata::Error> {
    e.downcast_ref::<strata::Error>()
        .or_else(|| e.downcast_ref::<Box<strata::Error>>().map(|b| &**b))
}

/// The exit code for `err`: the first cause in the chain that has a meaning decides.
pub fn code_of(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.is::<UsageError>() {
            return USAGE;
        }
        if cause.is::<MissingInput>() {
            return NOT_FOUND;
        }
        if let Some(e) = as_store_error(cause) {
            if e.is_not_found() {
                return NOT_FOUND;
            }
            if e.is_invalid_input() && !matches!(e, strata::Error::LayerExists { .. }) {
                return USAGE;
            }
            return FAILURE;
        }
    }
    FAILURE
}

/// Whether the failure is a closed stdout (`strata ls | head -1`): not an error for a CLI.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn code_of_not_found_in_chain_is_3() {
        let e = Err::<(), _>(strata::Error::LayerNotFound { id: "x".into() })
            .context("mount layer x")
            .unwrap_err();
        assert_eq!(code_of(&e), NOT_FOUND);
    }

    #[test]
    fn code_of_invalid_option_is_usage_but_exists_is_failure() {
        let e = anyhow::Error::new(strata::Error::InvalidOption {
            option: "x".into(),
            reason: "r".into(),
        });
        assert_eq!(code_of(&e), USAGE);
        let e = anyhow::Error::new(strata::Error::LayerExists { id: "x".into() });
        assert_eq!(code_of(&e), FAILURE);
    }

    #[test]
    fn code_of_boxed_store_error_is_seen() {
        let e = anyhow::Error::new(strata_image::Error::Store {
            op: "create",
            layer: "x".into(),
            source: Box::new(strata::Error::ParentNotFound {
                id: "x".into(),
                parent: "p".into(),
            }),
        });
        assert_eq!(code_of(&e), NOT_FOUND);
    }

    #[test]
    fn is_broken_pipe_finds_io_error_under_context() {
        let e = Err::<(), _>(io::Error::from(io::ErrorKind::BrokenPipe))
            .context("write to stdout")
            .unwrap_err();
        assert!(is_broken_pipe(&e));
        assert!(!is_broken_pipe(&anyhow::anyhow!("other")));
        assert_eq!(code_of(&anyhow::anyhow!("other")), FAILURE);
    }
}
