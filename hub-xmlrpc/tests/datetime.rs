//! `DateTime`: the forms clients send, validation, formatting.

use hub_xmlrpc::DateTime;

fn dt(s: &str) -> DateTime {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

#[test]
fn accepted_forms() {
    let base = DateTime::new(1998, 7, 17, 14, 8, 55).expect("valid");
    assert_eq!(dt("19980717T14:08:55"), base);
    assert_eq!(dt("1998-07-17T14:08:55"), base);
    assert_eq!(dt("19980717T140855"), base);
    assert_eq!(dt("1998-07-17 14:08:55"), base);
    assert_eq!(dt("19980717T14:08:55Z").offset_minutes(), Some(0));
    assert_eq!(dt("19980717T14:08:55+02:00").offset_minutes(), Some(120));
    assert_eq!(dt("19980717T14:08:55-0530").offset_minutes(), Some(-330));
    assert_eq!(dt("19980717T14:08:55+02").offset_minutes(), Some(120));
    assert_eq!(dt("19980717T14:08:55.123456").nanosecond(), 123_456_000);
    assert_eq!(
        dt("2001-01-01T00:00:00.000+01:00").offset_minutes(),
        Some(60)
    ); // Apache ex:dateTime
}

#[test]
fn refused_forms() {
    for s in [
        "",
        "1998",
        "19980717",
        "19980717T14:08",
        "19981317T14:08:55",
        "19980230T14:08:55",
        "19980717T24:00:00",
        "19980717T14:60:00",
        "19980717X14:08:55",
        "19980717T14:08:55+25:00",
        "19980717T14:08:55.",
        "19980717T14:08:55 junk",
        "1998-0717T14:08:55",
        "19980717T14:0855",
    ] {
        assert!(s.parse::<DateTime>().is_err(), "{s:?} accepted");
    }
}

#[test]
fn leap_days() {
    assert!(DateTime::new(2024, 2, 29, 0, 0, 0).is_some());
    assert!(DateTime::new(2023, 2, 29, 0, 0, 0).is_none());
    assert!(DateTime::new(1900, 2, 29, 0, 0, 0).is_none());
    assert!(DateTime::new(2000, 2, 29, 0, 0, 0).is_some());
}

#[test]
fn formatting_round_trips() {
    for s in [
        "19980717T14:08:55",
        "19980717T14:08:55Z",
        "19980717T14:08:55+02:00",
        "19980717T14:08:55-05:30",
        "19980717T14:08:55.5",
        "00010101T00:00:00.000000001",
    ] {
        assert_eq!(dt(s).to_string(), s);
    }
    assert_eq!(
        dt("1998-07-17T14:08:55.120").to_string(),
        "19980717T14:08:55.12"
    );
}
