//! A witness as the leader reads it: UTF-8 text, parsed strictly, then executed against the state
//! tree with the default parameters. Nothing may panic; every error is one line; a witness that
//! parses reads back the same after a round trip through its JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prover::batch::parse_batches;
use prover::execute::execute;
use prover::params::Params;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let batches = match parse_batches(text) {
        Ok(batches) => batches,
        Err(e) => {
            let line = e.to_string();
            assert!(!line.contains('\n'), "a parse error spans lines: {line:?}");
            return;
        }
    };
    let again = parse_batches(&serde_json::to_string(&batches).unwrap()).expect("a parsed witness reads back");
    assert_eq!(again, batches);
    let params = Params::default();
    for batch in &batches {
        if let Err(e) = execute(batch, &params) {
            let line = e.to_string();
            assert!(!line.contains('\n'), "an execution error spans lines: {line:?}");
        }
    }
});
