//! Driver for `scripts/bench-archive`: runs one strata-archive operation so the script can time
//! it (and its peak RSS) against GNU tar or the naive computation in the same run.
//!
//! Usage: `archive_bench apply TAR DIR | export DIR OUT | changes UPPER LOWER... | naive NEW OLD`

use std::path::{Path, PathBuf};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let t = Instant::now();
    let what = match args.first().map(String::as_str) {
        Some("apply") if args.len() == 3 => {
            let f = std::fs::File::open(&args[1])?;
            let s = strata_archive::apply(f, Path::new(&args[2]), &Default::default())?;
            format!("{} entries, {} bytes", s.entries, s.bytes)
        }
        Some("export") if args.len() == 3 => {
            let f = std::fs::File::create(&args[2])?;
            strata_archive::export(Path::new(&args[1]), f, &Default::default())?;
            "exported".to_string()
        }
        Some("changes") if args.len() >= 3 => {
            let lowers: Vec<PathBuf> = args[2..].iter().map(PathBuf::from).collect();
            let c = strata_archive::changes(Path::new(&args[1]), &lowers, Default::default())?;
            format!("{} changes", c.len())
        }
        Some("naive") if args.len() == 3 => {
            let c = strata_archive::changes_naive(Path::new(&args[1]), Some(Path::new(&args[2])))?;
            format!("{} changes", c.len())
        }
        _ => return Err("usage: archive_bench apply TAR DIR | export DIR OUT | changes UPPER LOWER... | naive NEW OLD".into()),
    };
    eprintln!("{what} in {:.3}s", t.elapsed().as_secs_f64());
    Ok(())
}
