//! `strata status`: what the driver probed, as Docker's Status pairs.

use anyhow::Result;
use serde::Serialize;
use strata::Driver;

use super::Outcome;
use crate::output::Output;

#[derive(Serialize)]
struct Status<'a> {
    home: &'a std::path::Path,
    driver: &'static str,
    status: Vec<(String, String)>,
}

/// Prints the home and the driver's status pairs.
pub fn run(d: &Driver, out: Output) -> Result<Outcome> {
    let s = Status {
        home: d.home(),
        driver: "overlay2",
        status: d.status(),
    };
    out.print(&s, |w| {
        writeln!(w, "Home: {}", s.home.display())?;
        writeln!(w, "Driver: {}", s.driver)?;
        for (k, v) in &s.status {
            writeln!(w, "{k}: {v}")?;
        }
        Ok(())
    })?;
    Ok(Outcome::Ok)
}
