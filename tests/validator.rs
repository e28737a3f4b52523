//! The validator example, run as a process, checked the way the classic XML-RPC validator
//! checked servers: Python's `xmlrpc.client` sends randomized inputs to each `validator1.*`
//! method and compares the answer with what it computes itself.

mod support;

/// `sys.argv[1]` is the URL, `sys.argv[2]` the seed; prints `ok` when every check passed.
const SCRIPT: &str = r#"
import datetime, random, string, sys
import xmlrpc.client as x

url, seed = sys.argv[1], int(sys.argv[2])
rng = random.Random(seed)
p = x.ServerProxy(url, allow_none=True, use_builtin_types=True)
v = p.validator1
ITER = 20

def i4():
    return rng.choice([rng.randint(-1000, 1000), rng.randint(-2**31, 2**31 - 1)])

def text(n=None, alphabet=string.printable + "<>&'\"<>&'\"héllo✓🦀"):
    n = rng.randint(0, 40) if n is None else n
    # XML cannot carry \r (it becomes \n) nor most control characters
    return "".join(rng.choice(alphabet) for _ in range(n)).replace("\r", "").replace("\x0b", "").replace("\x0c", "")

def stooges():
    return {"moe": i4(), "larry": i4(), "curly": i4()}

def check(what, got, want):
    assert got == want and type(got) is type(want), f"seed {seed}: {what}: want {want!r}, got {got!r}"

for i in range(ITER):
    # arrayOfStructsTest: the sum of every curly, other members ignored
    structs = [dict(stooges(), **{text(5, string.ascii_letters): text()}) for _ in range(rng.randint(0, 30))]
    check("arrayOfStructsTest", v.arrayOfStructsTest(structs), sum(s["curly"] for s in structs))

    # countTheEntities
    s = text(rng.randint(0, 300))
    want = {"ctLeftAngleBrackets": s.count("<"), "ctRightAngleBrackets": s.count(">"),
            "ctAmpersands": s.count("&"), "ctApostrophes": s.count("'"), "ctQuotes": s.count('"')}
    check(f"countTheEntities({s!r})", v.countTheEntities(s), want)

    # easyStructTest
    st = stooges()
    check("easyStructTest", v.easyStructTest(st), st["moe"] + st["larry"] + st["curly"])

    # echoStructTest: any struct, nested, comes back equal
    def value(depth):
        kind = rng.randrange(9 if depth < 3 else 7)
        return [i4, lambda: rng.random() > 0.5, text, lambda: rng.uniform(-1e9, 1e9),
                lambda: datetime.datetime(rng.randint(1, 9999), rng.randint(1, 12), rng.randint(1, 28),
                                          rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59)),
                lambda: rng.randbytes(rng.randint(0, 50)), lambda: None,
                lambda: [value(depth + 1) for _ in range(rng.randint(0, 4))],
                lambda: {text(rng.randint(1, 8)): value(depth + 1) for _ in range(rng.randint(0, 4))}][kind]()
    st = {text(rng.randint(1, 10)): value(0) for _ in range(rng.randint(0, 10))}
    check("echoStructTest", v.echoStructTest(st), st)

    # manyTypesTest: all six back, in order
    args = [i4(), rng.random() > 0.5, text(), rng.uniform(-1e300, 1e300),
            datetime.datetime(rng.randint(1900, 2100), rng.randint(1, 12), rng.randint(1, 28),
                              rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59)),
            rng.randbytes(rng.randint(0, 100))]
    got = v.manyTypesTest(*args)
    check("manyTypesTest", got, args)
    for a, b in zip(got, args):
        assert type(a) is type(b), f"seed {seed}: manyTypesTest: {a!r} is not a {type(b)}"

    # moderateSizeArrayCheck: first and last concatenated
    arr = [text() for _ in range(rng.randint(100, 200))]
    check("moderateSizeArrayCheck", v.moderateSizeArrayCheck(arr), arr[0] + arr[-1])

    # nestedStructTest: a calendar; moe + larry + curly on 2000-04-01
    cal = {}
    for year in rng.sample(range(1995, 2005), 4) + [2000]:
        months = cal.setdefault(str(year), {})
        for month in rng.sample(range(1, 13), 3) + [4]:
            days = months.setdefault("%02d" % month, {})
            for day in rng.sample(range(1, 29), 3) + [1]:
                days["%02d" % day] = stooges()
    day = cal["2000"]["04"]["01"]
    check("nestedStructTest", v.nestedStructTest(cal), day["moe"] + day["larry"] + day["curly"])

    # simpleStructReturnTest
    n = i4()
    check("simpleStructReturnTest", v.simpleStructReturnTest(n),
          {"times10": n * 10, "times100": n * 100, "times1000": n * 1000})

# malformed input is an invalid-params fault, not a crash
for call in [lambda: v.easyStructTest({"moe": 1}), lambda: v.nestedStructTest({"2000": {}}),
             lambda: v.moderateSizeArrayCheck([]), lambda: v.simpleStructReturnTest("x"),
             lambda: v.manyTypesTest(1, True, "s", 1.5, datetime.datetime(2000, 1, 1))]:
    try:
        call()
        raise AssertionError("no fault")
    except x.Fault as f:
        assert f.faultCode == -32602, f

# every method is described
names = p.system.listMethods()
for m in ["arrayOfStructsTest", "countTheEntities", "easyStructTest", "echoStructTest",
          "manyTypesTest", "moderateSizeArrayCheck", "nestedStructTest", "simpleStructReturnTest"]:
    assert "validator1." + m in names, names
    assert p.system.methodHelp("validator1." + m), m
assert p.system.methodSignature("validator1.manyTypesTest") == [
    ["array", "int", "boolean", "string", "double", "dateTime.iso8601", "base64"]], \
    p.system.methodSignature("validator1.manyTypesTest")
print("ok")
"#;

#[test]
fn python_validates_the_validator_with_random_inputs() {
    let server = support::serve("validator", &[]);
    // A fresh seed each run (printed on failure), plus fixed ones that always run.
    let fresh = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    for seed in [1, 2, fresh] {
        let ran = support::python(SCRIPT, &[&server.url(), &seed.to_string()]);
        assert_eq!(
            ran.ok().trim(),
            "ok",
            "seed {seed}: {ran}\n--- server stderr\n{}",
            server.stderr()
        );
    }
}
