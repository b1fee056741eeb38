//! Filters: Linux's own filter self-test data, operators and numbers,
//! strings and globs, the generic fields, the `filter` file, and the
//! errors (errno, `filter` file text, `error_log` entry) as Linux gives
//! them.
mod common;

use common::{V, ctx, fork, fork_event, kmalloc_event, record, test_event};
use event_filter::{Context, Errno, Filter, FilterErrorKind, FilterFile, FilterUpdate};

/// A record of Linux's `ftrace_test_filter` event with ints `a`..`h`.
fn abcd(values: [i32; 8]) -> Vec<u8> {
    let values: Vec<V> = values.iter().map(|&v| V::I32(v)).collect();
    record(1, &values)
}

/// Linux's `test_filter_data` (trace_events_filter.c, run at boot with
/// CONFIG_FTRACE_STARTUP_TEST): each filter with its records and whether
/// they match.
#[test]
fn linux_startup_test_data() {
    type Records = &'static [(bool, [i32; 8])];
    let cases: &[(&str, Records)] = &[
        (
            "a == 1 && b == 1 && c == 1 && d == 1 && e == 1 && f == 1 && g == 1 && h == 1",
            &[(true, [1, 1, 1, 1, 1, 1, 1, 1]), (false, [0, 1, 1, 1, 1, 1, 1, 1]), (false, [1, 1, 1, 1, 1, 1, 1, 0])],
        ),
        (
            "a == 1 || b == 1 || c == 1 || d == 1 || e == 1 || f == 1 || g == 1 || h == 1",
            &[(false, [0, 0, 0, 0, 0, 0, 0, 0]), (true, [0, 0, 0, 0, 0, 0, 0, 1]), (true, [1, 0, 0, 0, 0, 0, 0, 0])],
        ),
        (
            "(a == 1 || b == 1) && (c == 1 || d == 1) && (e == 1 || f == 1) && (g == 1 || h == 1)",
            &[
                (false, [0, 0, 1, 1, 1, 1, 1, 1]),
                (true, [0, 1, 0, 1, 0, 1, 0, 1]),
                (true, [1, 0, 1, 0, 0, 1, 0, 1]),
                (false, [1, 0, 1, 0, 0, 1, 0, 0]),
            ],
        ),
        (
            "(a == 1 && b == 1) || (c == 1 && d == 1) || (e == 1 && f == 1) || (g == 1 && h == 1)",
            &[(true, [1, 0, 1, 1, 1, 1, 1, 1]), (true, [0, 0, 0, 0, 0, 0, 1, 1]), (false, [0, 0, 0, 0, 0, 0, 0, 1])],
        ),
        (
            "(a == 1 && b == 1) && (c == 1 && d == 1) && (e == 1 && f == 1) || (g == 1 && h == 1)",
            &[(true, [1, 1, 1, 1, 1, 1, 0, 0]), (false, [0, 0, 0, 0, 0, 0, 0, 1]), (true, [1, 1, 1, 1, 1, 0, 1, 1])],
        ),
        (
            "((a == 1 || b == 1) || (c == 1 || d == 1) || (e == 1 || f == 1)) && (g == 1 || h == 1)",
            &[(true, [1, 1, 1, 1, 1, 1, 0, 1]), (false, [0, 0, 0, 0, 0, 0, 0, 0]), (true, [1, 1, 1, 1, 1, 0, 1, 1])],
        ),
        (
            "((((((((a == 1) && (b == 1)) || (c == 1)) && (d == 1)) || (e == 1)) && (f == 1)) || (g == 1)) && (h == 1))",
            &[(true, [1, 1, 1, 1, 1, 1, 1, 1]), (false, [0, 1, 0, 1, 0, 1, 0, 1]), (false, [1, 0, 1, 0, 1, 0, 1, 0])],
        ),
        (
            "((((((((a == 1) || (b == 1)) && (c == 1)) || (d == 1)) && (e == 1)) || (f == 1)) && (g == 1)) || (h == 1))",
            &[(true, [1, 1, 1, 1, 1, 1, 1, 1]), (true, [0, 1, 0, 1, 0, 1, 0, 1]), (true, [1, 0, 1, 0, 1, 0, 1, 0])],
        ),
    ];
    let event = test_event();
    for &(text, records) in cases {
        let filter = Filter::parse(text, &event).unwrap();
        for &(expected, values) in records {
            assert_eq!(filter.matches(&abcd(values), &ctx("t")), expected, "{text} on {values:?}");
        }
    }
}

#[test]
fn negation_distributes_over_parentheses() {
    let event = test_event();
    let cases: &[(&str, [i32; 8], bool)] = &[
        ("!(a == 1 && b == 1)", [1, 1, 0, 0, 0, 0, 0, 0], false),
        ("!(a == 1 && b == 1)", [1, 0, 0, 0, 0, 0, 0, 0], true),
        ("!(a == 1 || b == 1) && c == 1", [0, 0, 1, 0, 0, 0, 0, 0], true),
        ("!(a == 1 || b == 1) && c == 1", [0, 1, 1, 0, 0, 0, 0, 0], false),
        ("!!(a == 1)", [1, 0, 0, 0, 0, 0, 0, 0], true),
        ("a == 1 && !(!b == 1 || (c == 1 && !d == 1))", [1, 1, 1, 0, 0, 0, 0, 0], false),
        ("a == 1 && !(!b == 1 || (c == 1 && !d == 1))", [1, 1, 1, 1, 0, 0, 0, 0], true),
        ("a != 1 || b != 1", [1, 1, 0, 0, 0, 0, 0, 0], false),
    ];
    for &(text, values, expected) in cases {
        let filter = Filter::parse(text, &event).unwrap();
        assert_eq!(filter.matches(&abcd(values), &ctx("t")), expected, "{text} on {values:?}");
    }
}

#[test]
fn numbers_compare_with_the_fields_size_and_sign() {
    let event = kmalloc_event();
    // call_site, bytes_req, bytes_alloc, gfp_flags (u32), delta (s32), big (u64).
    let rec = |delta: i32, big: u64| {
        record(7, &[V::U32(0), V::U32(0xc010_0300), V::U32(96), V::U32(128), V::U32(0xd0), V::I32(delta), V::U64(big)])
    };
    let cases: &[(&str, i32, u64, bool)] = &[
        ("bytes_req == 96", 0, 0, true),
        ("bytes_req == 0x60", 0, 0, true),
        ("bytes_req == 0140", 0, 0, true),
        ("bytes_req != 96", 0, 0, false),
        ("bytes_req < 97 && bytes_req <= 96 && bytes_req > 95 && bytes_req >= 96", 0, 0, true),
        ("bytes_req < 96", 0, 0, false),
        ("gfp_flags & 0x10", 0, 0, true),
        ("gfp_flags & 0x20", 0, 0, false),
        ("call_site == 0xc0100300", 0, 0, true),
        ("call_site > 0x80000000", 0, 0, true),
        ("delta < 0", -5, 0, true),
        ("delta < -4", -5, 0, true),
        ("delta > -6 && delta == -5", -5, 0, true),
        ("delta > 0", -5, 0, false),
        ("delta & 1", -5, 0, true),
        ("big == 18446744073709551615", 0, u64::MAX, true),
        ("big > 0x8000000000000000", 0, u64::MAX, true),
        ("big == 4294967296", 0, 1 << 32, true),
        ("big == 0", 0, 1 << 32, false),
        // The value is cut to the field's size, as in Linux.
        ("bytes_req == 0x100000060", 0, 0, true),
        ("common_pid == 7 && common_type == 1 && common_flags == 0", 0, 0, true),
        ("common_preempt_count < 1", 0, 0, true),
    ];
    for &(text, delta, big, expected) in cases {
        let filter = Filter::parse(text, &event).unwrap();
        assert_eq!(filter.matches(&rec(delta, big), &ctx("t")), expected, "{text}");
    }
}

#[test]
fn strings_and_globs() {
    let event = fork_event();
    let rec = fork("bash", 100, "sleep", 200);
    let cases: &[(&str, bool)] = &[
        ("parent_comm == \"bash\"", true),
        ("parent_comm == 'bash'", true),
        ("parent_comm == \"bas\"", false),
        ("parent_comm == \"bashx\"", false),
        ("parent_comm != \"bash\"", false),
        ("parent_comm ~ \"*sh\"", true),
        ("parent_comm ~ \"ba*\"", true),
        ("parent_comm ~ \"*as*\"", true),
        ("parent_comm ~ \"*x*\"", false),
        ("parent_comm ~ \"b?sh\"", true),
        ("parent_comm ~ \"[ab]ash\"", true),
        ("parent_comm ~ \"[!b]ash\"", false),
        ("parent_comm ~ \"b*h\"", true),
        ("parent_comm ~ \"*\"", true),
        ("parent_comm ~ \"!ba*\"", false),
        ("parent_comm ~ \"!zz*\"", true),
        ("child_comm ~ \"*ee*\" && parent_comm == \"bash\"", true),
        // Unquoted words (this crate's extension, as older kernels).
        ("parent_comm == bash", true),
        ("parent_comm ~ ba*&&child_comm==sleep", true),
        ("(parent_comm != bash)", false),
    ];
    for &(text, expected) in cases {
        let filter = Filter::parse(text, &event).unwrap();
        assert_eq!(filter.matches(&rec, &ctx("t")), expected, "{text}");
    }
}

#[test]
fn comm_and_cpu_come_from_the_context() {
    let event = fork_event();
    let rec = fork("bash", 100, "sleep", 200);
    let on = |cpu| Context { comm: b"kworker/0:1\0\0\0\0\0", cpu, timestamp_ns: 0, tracing_on: true };
    let cases: &[(&str, u32, bool)] = &[
        ("comm == \"kworker/0:1\"", 0, true),
        ("COMM ~ \"kworker*\"", 0, true),
        ("common_comm ~ \"*0:1\"", 0, true),
        ("comm == \"bash\"", 0, false),
        ("cpu == 1", 1, true),
        ("CPU >= 2", 1, false),
        ("cpu != 1 || comm ~ \"k*\"", 1, true),
        ("common_cpu < 3", 2, true),
        ("cpu & 1", 1, false),
    ];
    for &(text, cpu, expected) in cases {
        let filter = Filter::parse(text, &event).unwrap();
        assert_eq!(filter.matches(&rec, &on(cpu)), expected, "{text} on cpu {cpu}");
    }
}

#[test]
fn short_and_garbage_records_do_not_match() {
    let event = fork_event();
    let filter = Filter::parse("child_pid == 200", &event).unwrap();
    let rec = fork("bash", 100, "sleep", 200);
    assert!(filter.matches(&rec, &ctx("t")));
    assert!(!filter.matches(&rec[..27], &ctx("t")));
    assert!(!filter.matches(&[], &ctx("t")));
    // Too short for a field it reads: false, even where the predicate's
    // result would be inverted.
    let inverted = Filter::parse("!(child_pid == 5)", &event).unwrap();
    assert!(inverted.matches(&rec, &ctx("t")));
    assert!(!inverted.matches(&rec[..27], &ctx("t")));
    // A string location past the record: the string predicate is false.
    let strings = Filter::parse("parent_comm == \"bash\"", &event).unwrap();
    let mut bad = rec.clone();
    bad[12..16].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
    assert!(!strings.matches(&bad, &ctx("t")));
    let negated = Filter::parse("parent_comm != \"bash\"", &event).unwrap();
    assert!(!negated.matches(&bad, &ctx("t")));
}

/// One refused filter: errno, error, position, `filter` file, error_log.
fn refused(text: &str, errno: Errno, kind: Option<FilterErrorKind>, position: usize, file: &str, log: &str) {
    let error = Filter::parse(text, &fork_event()).unwrap_err();
    assert_eq!(error.errno(), errno, "{text}");
    assert_eq!(error.kind(), kind, "{text}");
    assert_eq!(error.position(), position, "{text}");
    assert_eq!(error.filter_file_text(), file, "{text}");
    assert_eq!(error.log_entry().error_log_entry(5_250_000_000), log, "{text}");
}

#[test]
fn errors_as_linux_reports_them() {
    use FilterErrorKind as K;
    refused(
        "foo == 1",
        Errno::Inval,
        Some(K::FieldNotFound),
        4,
        "foo == 1\n    ^\nparse_error: Field not found\n",
        "[    5.250000] event filter parse error: error: Field not found\n  Command: foo == 1\n               ^\n",
    );
    refused(
        "common_pid=0",
        Errno::Inval,
        Some(K::InvalidOp),
        11,
        "common_pid=0\n           ^\nparse_error: Invalid operator\n",
        "[    5.250000] event filter parse error: error: Invalid operator\n  Command: common_pid=0\n                      ^\n",
    );
    refused(
        "common_pid==b",
        Errno::Inval,
        Some(K::InvalidValue),
        13,
        "common_pid==b\n             ^\nparse_error: Invalid value (did you forget quotes)?\n",
        "[    5.250000] event filter parse error: error: Invalid value (did you forget quotes)?\n  Command: common_pid==b\n                        ^\n",
    );
    refused(
        "(common_pid == 1",
        Errno::NoEnt,
        Some(K::TooManyOpen),
        0,
        "(common_pid == 1\n^\nparse_error: Too many '('\n",
        "[    5.250000] event filter parse error: error: Too many '('\n  Command: (common_pid == 1\n           ^\n",
    );
    refused(
        "common_pid == 1)",
        Errno::Perm,
        Some(K::TooManyClose),
        15,
        "common_pid == 1)\n               ^\nparse_error: Too few '('\n",
        "[    5.250000] event filter parse error: error: Too few '('\n  Command: common_pid == 1)\n                          ^\n",
    );
    refused(
        "comm == \"bash",
        Errno::Srch,
        Some(K::MissingQuote),
        8,
        "comm == \"bash\n        ^\nparse_error: Missing matching quote\n",
        "[    5.250000] event filter parse error: error: Missing matching quote\n  Command: comm == \"bash\n                   ^\n",
    );
    refused(
        "()",
        Errno::Inval,
        None,
        0,
        "()\nError: (0)\n",
        "[    5.250000] event filter parse error: error: Error\n  Command: ()\n           ^\n",
    );
    refused(
        "!",
        Errno::Inval,
        Some(K::NoFilter),
        1,
        "!\n ^\nparse_error: No filter found\n",
        "[    5.250000] event filter parse error: error: No filter found\n  Command: !\n            ^\n",
    );
    refused(
        "== 1",
        Errno::Perm,
        None,
        0,
        "== 1\nError: (0)\n",
        "[    5.250000] event filter parse error: error: Error\n  Command: == 1\n           ^\n",
    );
}

#[test]
fn error_kinds_and_positions() {
    use FilterErrorKind as K;
    let event = fork_event();
    let long_string = format!("parent_comm == \"{}\"", "x".repeat(256));
    let cases: &[(&str, Errno, FilterErrorKind, usize)] = &[
        ("common_pid < \"x\"", Errno::Inval, K::IllegalFieldOp, 14),
        ("parent_comm < bash", Errno::Inval, K::IllegalFieldOp, 15),
        ("parent_comm == 5", Errno::Inval, K::ExpectString, 16),
        ("common_pid == \"5\"", Errno::Inval, K::ExpectDigit, 15),
        ("common_pid ~ 5", Errno::Inval, K::IllegalFieldOp, 14),
        ("common_pid == 12x", Errno::Inval, K::IllegalIntval, 15),
        ("child_pid == 9223372036854775808", Errno::Inval, K::IllegalIntval, 14),
        ("common_pid == 123456789012345678901234", Errno::Inval, K::OperandTooLong, 39),
        (&long_string, Errno::Inval, K::OperandTooLong, 273),
        ("common_pid == 1 common_pid == 2", Errno::Perm, K::TooManyPreds, 16),
        ("common_pid == 1 & common_pid == 2", Errno::Perm, K::TooManyPreds, 16),
        ("a && b == 1", Errno::Inval, K::FieldNotFound, 2),
        ("common_pid && 1", Errno::Inval, K::InvalidValue, 13),
        ("common_pid == child_pid", Errno::Inval, K::InvalidValue, 15),
    ];
    for &(text, errno, kind, position) in cases {
        let error = Filter::parse(text, &event).unwrap_err();
        assert_eq!((error.errno(), error.kind(), error.position()), (errno, Some(kind), position), "{text}");
    }
    assert_eq!(FilterErrorKind::ALL.len(), 22);
    assert_eq!(FilterErrorKind::ALL[14].text(), "Too many terms in predicate expression");
}

#[test]
fn linux_accepts_a_dangling_operator() {
    // predicate_parse() stops at the end of the text after an `&&`.
    let filter = Filter::parse("common_pid == 100 &&", &fork_event()).unwrap();
    assert!(filter.matches(&fork("bash", 100, "x", 1), &ctx("t")));
    assert!(!filter.matches(&fork("bash", 101, "x", 1), &ctx("t")));
}

#[test]
fn the_filter_file() {
    let event = fork_event();
    let mut file = FilterFile::new();
    assert_eq!(file.read(), "none\n");
    let update = file.write("  parent_pid  ==  100 \n", &event).unwrap();
    assert!(matches!(update, FilterUpdate::Set(ref f) if f.text() == "  parent_pid  ==  100"));
    assert_eq!(file.read(), "  parent_pid  ==  100\n");
    assert!(file.filter().unwrap().matches(&fork("bash", 100, "x", 1), &ctx("t")));
    // A refused filter leaves the event unfiltered and shows the error.
    let error = file.write("parent_pid == \n", &event).unwrap_err();
    assert_eq!(error.errno(), Errno::Inval);
    assert_eq!(file.read(), "parent_pid ==\n             ^\nparse_error: Invalid value (did you forget quotes)?\n\n");
    assert!(file.filter().is_none());
    file.write("child_pid > 5", &event).unwrap();
    assert_eq!(file.write(" 0 \n", &event).unwrap(), FilterUpdate::Cleared);
    assert_eq!(file.read(), "none\n");
    assert!(file.filter().is_none());
    // An empty write is an empty filter: refused without a parse error.
    let error = file.write("\n", &event).unwrap_err();
    assert_eq!(error.errno(), Errno::Inval);
    assert_eq!(file.read(), "\nError: (0)\n\n");
}
