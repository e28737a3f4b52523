//! Parameters: by position, by keyword, optional, and every way to get them wrong.

use hub::{Struct, Value};

use crate::{call, call_positional, invalid_params, members};

#[test]
fn positional_parameters() {
    let result = call_positional("listBuilds", vec!["bash".into(), 2.into()]);
    assert_eq!(result, Ok(Value::Array(vec![1.into(), 2.into()])));
}

#[test]
fn keyword_parameters() {
    let named = members([("package", "bash".into()), ("reverse", true.into())]);
    let result = call("listBuilds", vec![], Some(named));
    let expected: Vec<Value> = [5, 4, 3, 2, 1].into_iter().map(Value::from).collect();
    assert_eq!(result, Ok(Value::Array(expected)));
}

#[test]
fn positional_then_keyword_skipping_an_optional() {
    let named = members([("reverse", true.into())]);
    let result = call("listBuilds", vec!["bash".into()], Some(named));
    assert_eq!(
        result.ok().and_then(|v| v.as_array().map(<[Value]>::len)),
        Some(5)
    );
}

#[test]
fn trailing_optionals_may_be_omitted_or_nil() {
    let all: Vec<Value> = (1..=5).map(Value::from).collect();
    assert_eq!(
        call_positional("listBuilds", vec!["bash".into()]),
        Ok(Value::Array(all.clone()))
    );
    assert_eq!(
        call_positional("listBuilds", vec!["bash".into(), Value::Nil, Value::Nil]),
        Ok(Value::Array(all))
    );
}

#[test]
fn a_mistyped_parameter_names_its_position_name_and_expected_type() {
    let message = invalid_params(call_positional("getBuild", vec!["x".into()]));
    assert_eq!(
        message,
        r#"params[0]: expected int, found string "x" (parameter `build_id`)"#
    );
}

#[test]
fn a_mistyped_member_deep_in_a_struct_gives_its_path() {
    let owner = members([("id", 3.into()), ("name", 5.into())]);
    let build = members([
        ("id", 1.into()),
        ("nvr", "bash-5.2-1".into()),
        ("owner", owner.into()),
    ]);
    let message = invalid_params(call_positional("importBuild", vec![build.into()]));
    assert_eq!(
        message,
        "params[0].owner.name: expected string, found int 5 (parameter `build`)"
    );
}

#[test]
fn a_mistyped_keyword_parameter_is_named_by_keyword() {
    let named = members([("build_id", "x".into())]);
    let message = invalid_params(call("getBuild", vec![], Some(named)));
    assert_eq!(
        message,
        r#"build_id: expected int, found string "x" (keyword parameter `build_id`)"#
    );
}

#[test]
fn a_missing_required_parameter() {
    let message = invalid_params(call_positional("getBuild", vec![]));
    assert_eq!(message, "missing parameter `build_id` (params[0], int)");
}

#[test]
fn surplus_positional_parameters() {
    let message = invalid_params(call_positional(
        "getBuild",
        vec![1.into(), true.into(), 3.into()],
    ));
    assert_eq!(
        message,
        "expected at most 2 parameters (build_id: int, strict: boolean?), got 3"
    );
    let message = invalid_params(call_positional("hello", vec![1.into()]));
    assert_eq!(message, "expected at most 0 parameters (none), got 1");
}

#[test]
fn an_unknown_keyword() {
    let named = members([("verbose", true.into())]);
    let message = invalid_params(call("getBuild", vec![1.into()], Some(named)));
    assert_eq!(
        message,
        "unknown keyword argument `verbose` (parameters: build_id: int, strict: boolean?)"
    );
}

/// A fault names a few unknown keywords, each cut short, and the parameters once: a call
/// with thousands of them used to get a line each, the parameter list in every one.
#[test]
fn many_unknown_keywords_are_summed_up() {
    let mut named = Struct::new();
    named.insert("x".repeat(1000), Value::Nil);
    for i in 0..2_000 {
        named.insert(format!("k{i}"), Value::Nil);
    }
    let message = invalid_params(call("getBuild", vec![1.into()], Some(named)));
    assert_eq!(
        message,
        format!(
            "unknown keyword arguments `{}…`, `k0`, `k1` and 1998 more \
             (parameters: build_id: int, strict: boolean?)",
            "x".repeat(64)
        )
    );
}

#[test]
fn a_parameter_given_both_ways() {
    let named = members([("build_id", 2.into())]);
    let message = invalid_params(call("getBuild", vec![1.into()], Some(named)));
    assert_eq!(
        message,
        "parameter `build_id` given both by position (params[0]) and by keyword"
    );
}

#[test]
fn every_shape_problem_is_reported_at_once() {
    let named = members([("build_id", 2.into()), ("verbose", true.into())]);
    let message = invalid_params(call(
        "getBuild",
        vec![1.into(), true.into(), 3.into()],
        Some(named),
    ));
    assert_eq!(
        message,
        "expected at most 2 parameters (build_id: int, strict: boolean?), got 3; \
         parameter `build_id` given both by position (params[0]) and by keyword; \
         unknown keyword argument `verbose` (parameters: build_id: int, strict: boolean?)"
    );
}

#[test]
fn a_value_parameter_takes_anything() {
    let anything = Value::Struct(members([("a", Value::Array(vec![Value::Nil]))]));
    assert_eq!(
        call_positional("echo", vec![anything.clone()]),
        Ok(anything)
    );
}
