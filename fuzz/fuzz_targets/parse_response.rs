//! Any bytes: `parse_response` returns, never panics; what it accepts writes and
//! reparses to the same response.
#![no_main]

use hub_xmlrpc::{parse_response, write_fault, write_response, Limits, MethodResponse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_size: 1 << 20,
        max_depth: 64,
    };
    if let Ok(r) = parse_response(data, &limits) {
        let mut out = Vec::new();
        match &r {
            MethodResponse::Success(v) => write_response(v, &mut out),
            MethodResponse::Fault(f) => write_fault(f, &mut out),
        }
        let again = parse_response(&out, &Limits::UNLIMITED).expect("our own output parses");
        let mut out2 = Vec::new();
        match &again {
            MethodResponse::Success(v) => write_response(v, &mut out2),
            MethodResponse::Fault(f) => write_fault(f, &mut out2),
        }
        assert_eq!(out, out2);
    }
});
