//! Compile-time behaviour of `#[rpc_method]`: every `fail/*.rs` case must be
//! refused with the error in its `.stderr` (spans on the offending token), and
//! every `pass/*.rs` case must compile and run.
//!
//! Regenerate the expected output with `TRYBUILD=overwrite cargo test -p ui-tests`,
//! then read every changed `.stderr`: each must still say something useful.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}
