//! Two functions declaring one XML-RPC name compile, but the registry refuses
//! them at startup with an error naming both declarations.

mod first {
    #[hub::rpc_method(name = "getThing")]
    pub fn get_thing() -> i32 {
        1
    }
}

mod second {
    #[hub::rpc_method(name = "getThing")]
    pub fn get_thing_too() -> i32 {
        2
    }
}

fn main() {
    let error = hub::Registry::from_inventory().expect_err("the name is taken twice");
    let [duplicate] = error.duplicates() else {
        panic!("one duplicated name: {error}");
    };
    assert_eq!(duplicate.name, "getThing");
    let lines: Vec<u32> = duplicate.origins.iter().map(|origin| origin.line).collect();
    assert_eq!(lines, [6, 13]);
    let message = error.to_string();
    assert!(message.starts_with("method `getThing` is defined 2 times: at "), "{message}");
    assert!(message.contains("duplicate_names_refused_at_startup.rs:6 and at "), "{message}");
    assert!(message.ends_with("duplicate_names_refused_at_startup.rs:13"), "{message}");
}
