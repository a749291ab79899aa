//! The plugin's request decoding (strata-docker's public `wire` API) on arbitrary bytes: the
//! JSON bodies of Init and the per-layer calls, and ApplyDiff's query string. No panic, and
//! what decodes re-encodes to a body that decodes to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_docker::wire::{parse_body, ApplyDiffQuery, InitRequest, LayerRequest};

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = parse_body::<InitRequest>(data) {
        let again = serde_json::to_vec(&r).expect("encode");
        assert_eq!(parse_body::<InitRequest>(&again).expect("re-decode"), r);
    }
    if let Ok(r) = parse_body::<LayerRequest>(data) {
        let again = serde_json::to_vec(&r).expect("encode");
        assert_eq!(parse_body::<LayerRequest>(&again).expect("re-decode"), r);
    }
    if let Ok(q) = std::str::from_utf8(data) {
        let _ = ApplyDiffQuery::parse(q);
    }
});
