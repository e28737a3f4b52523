//! The classic XML-RPC validator suite (`validator1.*`), as typed `#[rpc_method]`s.
//!
//! ```text
//! cargo run --example validator -- [--listen ADDR]... [--config PATH]
//! ```
//!
//! The eight methods of the suite that checked XML-RPC implementations against each other:
//! each takes well-known shapes of data and answers something computed from them, so a
//! client can check both directions of its encoding.

mod common;

use std::process::ExitCode;

use hub::{rpc_method, DateTime, Fault, Struct, Value};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// The members every stooge struct of the suite carries.
#[derive(Debug, Deserialize)]
struct Stooges {
    moe: i32,
    larry: i32,
    curly: i32,
}

impl Stooges {
    fn sum(&self) -> i64 {
        i64::from(self.moe) + i64::from(self.larry) + i64::from(self.curly)
    }
}

/// An element of `arrayOfStructsTest`'s array: only `curly` matters.
#[derive(Debug, Deserialize)]
struct Curly {
    curly: i32,
}

/// Takes an array of structs, each with at least a `curly` member (int); answers the sum of
/// all the `curly` members.
#[rpc_method(name = "validator1.arrayOfStructsTest")]
fn array_of_structs_test(structs: Vec<Curly>) -> i64 {
    structs.iter().map(|s| i64::from(s.curly)).sum()
}

/// How many of each XML-special character a string holds.
#[derive(Debug, Default, Serialize)]
#[allow(non_snake_case)]
struct EntityCounts {
    ctLeftAngleBrackets: u32,
    ctRightAngleBrackets: u32,
    ctAmpersands: u32,
    ctApostrophes: u32,
    ctQuotes: u32,
}

/// Takes a string of characters that need escaping in XML; answers a struct counting its
/// `<` (ctLeftAngleBrackets), `>` (ctRightAngleBrackets), `&` (ctAmpersands), `'`
/// (ctApostrophes) and `"` (ctQuotes).
#[rpc_method(name = "validator1.countTheEntities")]
fn count_the_entities(text: String) -> EntityCounts {
    let mut counts = EntityCounts::default();
    for c in text.chars() {
        match c {
            '<' => counts.ctLeftAngleBrackets += 1,
            '>' => counts.ctRightAngleBrackets += 1,
            '&' => counts.ctAmpersands += 1,
            '\'' => counts.ctApostrophes += 1,
            '"' => counts.ctQuotes += 1,
            _ => {}
        }
    }
    counts
}

/// Takes a struct with three int members, `moe`, `larry` and `curly`; answers their sum.
#[rpc_method(name = "validator1.easyStructTest")]
fn easy_struct_test(stooges: Stooges) -> i64 {
    stooges.sum()
}

/// Takes a struct; answers it unchanged.
#[rpc_method(name = "validator1.echoStructTest")]
fn echo_struct_test(value: Struct) -> Struct {
    value
}

/// Takes six parameters, an int, a boolean, a string, a double, a dateTime and a base64;
/// answers an array holding all six, in order.
#[rpc_method(name = "validator1.manyTypesTest")]
fn many_types_test(
    number: i32,
    boolean: bool,
    string: String,
    double: f64,
    date_time: DateTime,
    base64: ByteBuf,
) -> Vec<Value> {
    vec![
        Value::from(number),
        Value::Bool(boolean),
        Value::String(string),
        Value::Double(double),
        Value::DateTime(date_time),
        Value::Base64(base64.into_vec()),
    ]
}

/// Takes an array of strings (the suite sends 100 to 200); answers the first and the last
/// concatenated.
#[rpc_method(name = "validator1.moderateSizeArrayCheck")]
fn moderate_size_array_check(strings: Vec<String>) -> Result<String, Fault> {
    match (strings.first(), strings.last()) {
        (Some(first), Some(last)) => Ok(format!("{first}{last}")),
        _ => Err(Fault::new(
            -32602,
            "moderateSizeArrayCheck: the array is empty",
        )),
    }
}

/// A calendar struct: years, holding months, holding days, holding stooges.
#[derive(Debug, Deserialize)]
struct Calendar {
    #[serde(rename = "2000")]
    year_2000: Year2000,
}

#[derive(Debug, Deserialize)]
struct Year2000 {
    #[serde(rename = "04")]
    april: April2000,
}

#[derive(Debug, Deserialize)]
struct April2000 {
    #[serde(rename = "01")]
    first: Stooges,
}

/// Takes a calendar struct (members named for years, holding months, holding days: `"2000"`,
/// `"04"`, `"01"`); answers the sum of `moe`, `larry` and `curly` on April 1st, 2000.
#[rpc_method(name = "validator1.nestedStructTest")]
fn nested_struct_test(calendar: Calendar) -> i64 {
    calendar.year_2000.april.first.sum()
}

/// What `simpleStructReturnTest` answers.
#[derive(Debug, Serialize)]
struct Multiples {
    times10: i64,
    times100: i64,
    times1000: i64,
}

/// Takes an int; answers a struct with it multiplied by 10 (`times10`), 100 (`times100`)
/// and 1000 (`times1000`).
#[rpc_method(name = "validator1.simpleStructReturnTest")]
fn simple_struct_return_test(number: i32) -> Multiples {
    let n = i64::from(number);
    Multiples {
        times10: n * 10,
        times100: n * 100,
        times1000: n * 1000,
    }
}

fn parse_args() -> Result<common::ServerArgs, String> {
    let mut args = common::ServerArgs::default();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        if args.take(&flag, &mut value)? {
            continue;
        }
        match flag.as_str() {
            "-h" | "--help" => {
                return Err("usage: validator [--listen ADDR] [--config PATH]".into())
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(args)
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    common::serve(args.builder(args.config()?)?)
}

fn main() -> ExitCode {
    common::main("validator", run)
}
