//! A store URL as `--store` and `--circuit-cache` take it, read without opening anything. Nothing
//! may panic, every error is one line, and an S3 URL's prefix never escapes its bucket.
#![no_main]

use common::store::{Location, StoreArgs};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(url) = std::str::from_utf8(data) else { return };
    match Location::parse(url, &StoreArgs::default()) {
        Ok(Location::S3(options)) => {
            assert!(!options.bucket.is_empty());
            assert!(!options.prefix.split('/').any(|s| s == ".." || s == "."), "{options:?}");
        }
        Ok(_) => {}
        Err(e) => {
            let line = e.to_string();
            assert!(!line.contains('\n'), "a store URL error spans lines: {line:?}");
        }
    }
});
