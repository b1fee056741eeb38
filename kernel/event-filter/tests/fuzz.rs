//! Property tests: no input string panics a parser; no record (any bytes)
//! panics a filter or a trigger; compiled filters agree with a plain
//! recursive evaluator of the same expression; globs agree with a plain
//! matcher.
mod common;

use common::{fork_event, kmalloc_event, test_event};
use event_filter::glob::glob_match;
use event_filter::{Context, Filter, FilterFile, NamedHists, Triggers};
use proptest::prelude::*;

fn any_ctx() -> impl Strategy<Value = (Vec<u8>, u32, u64, bool)> {
    (prop::collection::vec(any::<u8>(), 0..20), 0u32..8, any::<u64>(), any::<bool>())
}

/// Pieces of filter expressions, so random strings often get far.
fn filter_text() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "parent_pid",
        "child_pid",
        "parent_comm",
        "child_comm",
        "common_pid",
        "comm",
        "cpu",
        "CPU",
        "__probe_ip",
        "nosuch",
        "==",
        "!=",
        "<",
        "<=",
        ">",
        ">=",
        "&",
        "~",
        "&&",
        "||",
        "!",
        "(",
        ")",
        " ",
        "0",
        "1",
        "-1",
        "0x1f",
        "017",
        "99999999999999999999",
        "\"bash\"",
        "'b*'",
        "\"*sh*\"",
        "\"[a-c]?*\"",
        "\"",
        "'",
        "bash",
        "\\",
        "=",
        "|",
        "\t",
        "\n",
        "\0",
    ]);
    prop::collection::vec(piece, 0..14).prop_map(|pieces| pieces.concat())
}

/// Pieces of trigger commands.
fn trigger_text() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "traceon",
        "traceoff",
        "stacktrace",
        "hist",
        "!",
        ":",
        "keys=",
        "key=",
        "vals=",
        "values=",
        "sort=",
        "size=",
        "name=",
        "clock=",
        "pause",
        "cont",
        "clear",
        "call_site",
        "bytes_req",
        "bytes_alloc",
        "common_pid",
        "cpu",
        "common_timestamp",
        "comm",
        "delta",
        "big",
        ".hex",
        ".sym",
        ".sym-offset",
        ".execname",
        ".log2",
        ".buckets=16",
        ".usecs",
        ".descending",
        ".ascending",
        ",",
        "hitcount",
        "128",
        "2048",
        "3",
        " if ",
        "if",
        "bytes_req > 10",
        "==",
        "&&",
        " ",
        "\t",
        "=",
        "x",
        "$x",
        "+",
        "-",
        "0",
    ]);
    let start =
        prop::sample::select(vec!["hist:keys=", "hist:", "!hist:keys=", "traceon", "traceoff:", "stacktrace", ""]);
    (start, prop::collection::vec(piece, 0..12)).prop_map(|(start, pieces)| format!("{start}{}", pieces.concat()))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

    #[test]
    fn filters_never_panic(
        text in prop_oneof![filter_text(), any::<String>()],
        record in prop::collection::vec(any::<u8>(), 0..64),
        (comm, cpu, ts, on) in any_ctx(),
    ) {
        let event = fork_event();
        let ctx = Context { comm: &comm, cpu, timestamp_ns: ts, tracing_on: on };
        match Filter::parse(&text, &event) {
            Ok(filter) => {
                let _ = filter.matches(&record, &ctx);
            }
            Err(error) => {
                let _ = error.filter_file_text();
                let _ = error.log_entry().error_log_entry(ts);
            }
        }
        let mut file = FilterFile::new();
        let _ = file.write(&text, &event);
        let _ = file.read();
    }

    #[test]
    fn triggers_never_panic(
        commands in prop::collection::vec(prop_oneof![trigger_text(), any::<String>()], 1..6),
        records in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..48), 1..8),
        (comm, cpu, ts, on) in any_ctx(),
    ) {
        let event = kmalloc_event();
        let mut named = NamedHists::new();
        let mut triggers = Triggers::new();
        for command in &commands {
            if let Err(error) = triggers.write(command, &event, &mut named) {
                for entry in error.entries() {
                    let _ = entry.error_log_entry(ts);
                }
            }
        }
        let ctx = Context { comm: &comm, cpu, timestamp_ns: ts, tracing_on: on };
        for record in &records {
            let _ = triggers.fire(record, &ctx);
        }
        let _ = triggers.read();
        let _ = triggers.read_hist(&common::Kernel);
        for hist in triggers.iter().filter_map(|t| t.as_hist()) {
            let mut bars = String::new();
            let _ = hist.write_log2_bars(&mut bars);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// Every kind of predicate and hist key, on any bytes.
    #[test]
    fn any_record_evaluates(
        record in prop::collection::vec(any::<u8>(), 0..64),
        (comm, cpu, ts, on) in any_ctx(),
    ) {
        let ctx = Context { comm: &comm, cpu, timestamp_ns: ts, tracing_on: on };
        let fork = fork_event();
        for text in [
            "parent_comm == \"bash\" || child_comm ~ \"*sh\" || parent_comm ~ \"b[a-z]?*h\"",
            "!(parent_comm ~ \"ba*\") && child_comm != 'x' && comm ~ \"*k*\"",
            "parent_pid < -1 || child_pid & 0x10 || __probe_ip >= 0xc0000000 || cpu == 1",
            "common_type == 1 && common_flags & 1 && common_preempt_count < 2 && common_pid != 0",
        ] {
            let _ = Filter::parse(text, &fork).unwrap().matches(&record, &ctx);
        }
        let mut triggers = Triggers::new();
        let mut named = NamedHists::new();
        for command in [
            "hist:keys=parent_comm,child_pid.sym-offset,common_pid.execname:vals=child_pid,parent_pid.hex",
            "hist:keys=child_comm.hex,parent_pid.sym",
            "hist:keys=child_pid.log2:vals=__probe_ip if child_comm ~ \"*\"",
            "hist:keys=parent_pid.buckets=7,cpu,common_timestamp.usecs",
            "stacktrace:3 if parent_pid > 0",
            "traceon",
        ] {
            triggers.write(command, &fork, &mut named).unwrap();
        }
        let _ = triggers.fire(&record, &ctx);
        let _ = triggers.read_hist(&common::Kernel);
    }
}

/// A boolean expression over the test event's ints `a`..`h`.
#[derive(Clone, Debug)]
enum Expr {
    Pred(usize, &'static str, i32),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

fn expr() -> impl Strategy<Value = Expr> {
    let ops = prop::sample::select(vec!["==", "!=", "<", "<=", ">", ">=", "&"]);
    let leaf = (0usize..8, ops, -3i32..4).prop_map(|(field, op, value)| Expr::Pred(field, op, value));
    leaf.prop_recursive(5, 24, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|e| Expr::Not(Box::new(e))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Expr::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner).prop_map(|(a, b)| Expr::Or(Box::new(a), Box::new(b))),
        ]
    })
}

impl Expr {
    fn precedence(&self) -> u8 {
        match self {
            Expr::Or(..) => 1,
            Expr::And(..) => 2,
            Expr::Not(_) | Expr::Pred(..) => 3,
        }
    }

    /// The expression as filter text: parentheses where precedence needs
    /// them, and (by `extra`) some where it does not.
    fn print(&self, parent: u8, extra: &mut impl Iterator<Item = bool>, out: &mut String) {
        let parens = self.precedence() < parent || extra.next().unwrap_or(false);
        if parens {
            out.push('(');
        }
        match self {
            Expr::Pred(field, op, value) => out.push_str(&format!("{} {op} {value}", (b'a' + *field as u8) as char)),
            Expr::Not(e) => {
                out.push('!');
                e.print(3, extra, out);
            }
            Expr::And(a, b) => {
                a.print(2, extra, out);
                out.push_str(" && ");
                b.print(3, extra, out);
            }
            Expr::Or(a, b) => {
                a.print(1, extra, out);
                out.push_str(" || ");
                b.print(2, extra, out);
            }
        }
        if parens {
            out.push(')');
        }
    }

    fn eval(&self, values: &[i32; 8]) -> bool {
        match self {
            Expr::Pred(field, op, value) => {
                let x = values[*field];
                match *op {
                    "==" => x == *value,
                    "!=" => x != *value,
                    "<" => x < *value,
                    "<=" => x <= *value,
                    ">" => x > *value,
                    ">=" => x >= *value,
                    _ => x & *value != 0,
                }
            }
            Expr::Not(e) => !e.eval(values),
            Expr::And(a, b) => a.eval(values) && b.eval(values),
            Expr::Or(a, b) => a.eval(values) || b.eval(values),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Linux's branch program computes what the expression says.
    #[test]
    fn compiled_filters_agree_with_the_expression(
        e in expr(),
        extra in prop::collection::vec(0u8..4, 64),
        records in prop::collection::vec(prop::array::uniform8(-3i32..4), 1..12),
    ) {
        let mut text = String::new();
        e.print(0, &mut extra.iter().map(|&b| b == 0), &mut text);
        let filter = Filter::parse(&text, &test_event()).unwrap();
        for values in &records {
            let bytes = common::record(1, &values.map(common::V::I32));
            let ctx = Context { comm: b"", cpu: 0, timestamp_ns: 0, tracing_on: true };
            prop_assert_eq!(filter.matches(&bytes, &ctx), e.eval(values), "{} on {:?}", text, values);
        }
    }

    /// Globs of `*`, `?` and literals agree with a plain backtracking
    /// matcher.
    #[test]
    fn globs_agree_with_a_plain_matcher(
        pattern in "[ab*?]{0,8}",
        string in "[ab]{0,10}",
    ) {
        fn plain(p: &[u8], s: &[u8]) -> bool {
            match p.split_first() {
                None => s.is_empty(),
                Some((b'*', rest)) => (0..=s.len()).any(|i| plain(rest, &s[i..])),
                Some((b'?', rest)) => !s.is_empty() && plain(rest, &s[1..]),
                Some((&c, rest)) => s.first() == Some(&c) && plain(rest, &s[1..]),
            }
        }
        prop_assert_eq!(glob_match(pattern.as_bytes(), string.as_bytes()), plain(pattern.as_bytes(), string.as_bytes()));
    }
}
