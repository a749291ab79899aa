//! Apply of arbitrary bytes into a directory (as root): nothing beside the directory changes,
//! and whatever applied exports, re-applies and re-exports to the same bytes. The whiteout
//! format follows the input's length, so one corpus covers all three.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use strata_archive::WhiteoutFormat;

/// `STRATA_FUZZ_DIR` (scripts/fuzz sets it) or a directory under the system temp dir; fixed,
/// so seeds can hold absolute symlinks that name it.
fn sandbox() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = std::env::var_os("STRATA_FUZZ_DIR")
            .map_or_else(|| std::env::temp_dir().join("strata-fuzz"), PathBuf::from);
        let dir = base.join("apply");
        strata_archive::fuzzing::apply_sandbox(&dir);
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let whiteouts = match data.len() % 3 {
        0 => WhiteoutFormat::Overlay,
        1 => WhiteoutFormat::OverlayUserXattr,
        _ => WhiteoutFormat::Delete,
    };
    strata_archive::fuzzing::apply_contained(data, sandbox(), whiteouts);
});
