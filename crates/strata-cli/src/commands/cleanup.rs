//! `strata cleanup`: unmounts everything mounted from this home (as dockerd does at shutdown).

use anyhow::{Context, Result};
use strata::Driver;

use super::Outcome;

/// Unmounts everything of the home.
pub fn run(d: &Driver) -> Result<Outcome> {
    d.cleanup()
        .with_context(|| format!("clean up home {}", d.home().display()))?;
    Ok(Outcome::Ok)
}
