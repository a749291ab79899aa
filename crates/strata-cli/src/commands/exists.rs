//! `strata exists ID`: the answer is the exit code (0 yes, 1 no); `--json` also prints it.

use anyhow::Result;
use serde::Serialize;
use strata::{Driver, LayerId};

use super::Outcome;
use crate::output::Output;

#[derive(Serialize)]
struct Exists<'a> {
    id: &'a str,
    exists: bool,
}

/// Answers whether the layer exists.
pub fn run(d: &Driver, id: &LayerId, out: Output) -> Result<Outcome> {
    let exists = d.exists(id);
    out.print(
        &Exists {
            id: id.as_str(),
            exists,
        },
        |_| Ok(()),
    )?;
    Ok(if exists { Outcome::Ok } else { Outcome::No })
}
