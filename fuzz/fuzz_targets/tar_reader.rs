//! The tar reader on arbitrary bytes (every header form: V7, USTAR, GNU long names and sparse,
//! PAX): no panic, every entry hands out exactly the data it announces, and a cleanly read
//! archive written again by strata's writer reads back to the same entries.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = strata_archive::fuzzing::tar_roundtrip(data);
});
