//! Any bytes: `parse_call` returns, never panics; what it accepts writes and reparses
//! to the same call.
#![no_main]

use hub_xmlrpc::{parse_call, write_call, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_size: 1 << 20,
        max_depth: 64,
    };
    if let Ok(mut call) = parse_call(data, &limits) {
        let mut out = Vec::new();
        write_call(&call, &mut out);
        let again = parse_call(&out, &Limits::UNLIMITED).expect("our own output parses");
        // NaN is not equal to itself; compare the written bytes instead.
        let mut out2 = Vec::new();
        write_call(&again, &mut out2);
        assert_eq!(out, out2);
        let _ = call.split_kwargs();
    }
});
