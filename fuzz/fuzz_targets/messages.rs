//! Message bodies as workers and the leader take them off the broker: a task, a result, a trace
//! context. Decoding never panics, and what decodes encodes back to a body that decodes the same.
#![no_main]

use common::protocol::{decode, encode};
use common::telemetry::TraceContext;
use common::{Task, TaskResult};
use libfuzzer_sys::fuzz_target;

fn round_trip<T>(data: &[u8])
where
    T: serde::Serialize + for<'de> serde::Deserialize<'de> + PartialEq + std::fmt::Debug,
{
    if let Ok(message) = decode::<T>(data) {
        assert_eq!(decode::<T>(&encode(&message)).expect("an encoded message decodes"), message);
    }
}

fuzz_target!(|data: &[u8]| {
    round_trip::<Task>(data);
    round_trip::<TaskResult>(data);
    round_trip::<TraceContext>(data);
});
