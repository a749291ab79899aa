//! Compression sniffing and the gzip/zstd decoders (strata-image) on arbitrary bytes: no panic,
//! the kind follows the magic bytes, plain input passes through unchanged, and a decoder gives
//! its input back afterwards. Output is read up to a cap (a small input can announce gigabytes).
#![no_main]

use std::io::{BufReader, Read};

use libfuzzer_sys::fuzz_target;
use strata_image::compression::{decompress, detect, Compression};

const CAP: u64 = 16 << 20;

fuzz_target!(|data: &[u8]| {
    let sniffed = detect(&mut &data[..]);
    let Ok((kind, mut d)) = decompress(BufReader::with_capacity(4096, data)) else {
        assert!(sniffed.is_err() || data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]));
        return;
    };
    assert_eq!(kind, sniffed.expect("decompress agreed"));
    match kind {
        Compression::Gzip => assert!(data.starts_with(&[0x1f, 0x8b])),
        Compression::Zstd => assert!(data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])),
        Compression::None => {}
    }
    let mut out = Vec::new();
    let read = (&mut d).take(CAP).read_to_end(&mut out);
    if kind == Compression::None {
        assert_eq!(out, data, "plain input passes through");
    }
    if read.is_ok() {
        // The input, after what the decoder consumed, is still usable.
        let mut rest = Vec::new();
        let _ = d.into_inner().read_to_end(&mut rest);
        assert!(rest.len() <= data.len());
    }
});
