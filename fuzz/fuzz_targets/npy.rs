//! NumPy `.npy` volumes from arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let _ = xray_projector::io::parse_npy(std::path::Path::new("fuzz.npy"), bytes);
});
