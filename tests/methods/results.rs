//! Results: values, nil, application faults with their own codes, async methods.

use hub::{Fault, RpcError, Value};

use crate::{call_positional, members};

#[test]
fn a_struct_result_keeps_member_order() {
    let owner = members([("id", 3.into()), ("name", "kojiadmin".into())]);
    let expected = members([
        ("id", 1.into()),
        ("nvr", "bash-5.2-1".into()),
        ("owner", owner.into()),
    ]);
    assert_eq!(
        call_positional("getBuild", vec![1.into()]),
        Ok(expected.into())
    );
}

#[test]
fn none_and_unit_answer_nil() {
    assert_eq!(call_positional("getBuild", vec![2.into()]), Ok(Value::Nil));
    assert_eq!(
        call_positional("deleteBuild", vec![2.into()]),
        Ok(Value::Nil)
    );
}

#[test]
fn application_errors_keep_their_fault_code() {
    assert_eq!(
        call_positional("getBuild", vec![2.into(), true.into()]),
        Err(RpcError::Fault(Fault::new(1000, "No such build: 2")))
    );
    assert_eq!(
        call_positional("getTaskResult", vec![3.into()]),
        Err(RpcError::Fault(Fault::new(1005, "task 3 failed")))
    );
    assert_eq!(
        call_positional("getTaskResult", vec![4.into()]),
        Ok(Value::from("task 4 ok"))
    );
}

#[test]
fn a_method_may_refuse_its_parameters_itself() {
    assert_eq!(
        call_positional("evenOnly", vec![3.into()]),
        Err(RpcError::InvalidParams("3 is odd".into()))
    );
    assert_eq!(call_positional("evenOnly", vec![4.into()]), Ok(2.into()));
}

#[test]
fn async_methods_decode_await_and_encode() {
    assert_eq!(
        call_positional("sum", vec![Value::Array(vec![1.5.into(), 2.5.into()])]),
        Ok(Value::Double(4.0))
    );
    let user = members([
        ("id", 3.into()),
        ("name", "kojiadmin".into()),
        ("admin", true.into()),
    ]);
    assert_eq!(
        call_positional("getUser", vec!["kojiadmin".into()]),
        Ok(user.into())
    );
    assert_eq!(
        call_positional("getUser", vec!["nobody".into()]),
        Ok(Value::Nil)
    );
}

#[test]
fn async_methods_get_the_context() {
    assert_eq!(
        call_positional("whatAmI", vec![]),
        Ok(Value::from("whatAmI #7"))
    );
}

#[test]
fn an_async_method_cannot_be_called_as_blocking() {
    let registry = crate::registry();
    let ctx = hub::Context::new("sum", None, Default::default(), 1, registry.clone());
    let sum = registry.get("sum").expect("registered");
    let result = sum.call_blocking(&ctx, hub::Params::default());
    assert!(
        matches!(&result, Err(RpcError::Fault(fault)) if fault.message.contains("is async")),
        "{result:?}"
    );
}

#[test]
fn a_blocking_method_can_be_called_as_a_future() {
    let registry = crate::registry();
    let ctx = std::sync::Arc::new(hub::Context::new(
        "hello",
        None,
        Default::default(),
        1,
        registry.clone(),
    ));
    let hello = registry.get("hello").expect("registered");
    let result = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime")
        .block_on(hello.call_async(ctx, hub::Params::default()));
    assert_eq!(result, Ok(Value::from("Hello World")));
}
