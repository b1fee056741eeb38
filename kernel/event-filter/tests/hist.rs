//! Hist triggers: Linux's selftests (test.d/trigger/trigger-hist.tc,
//! trigger-hist-mod.tc, trigger-multihist.tc,
//! trigger-hist-syntax-errors.tc) with the exact `hist` file, the
//! modifiers' formats, sorting, pause/cont/clear, sizes and drops, and the
//! bpftrace-style log2 bars.
mod common;

use common::{Kernel, V, ctx, exit_event, fork, fork_event, kmalloc, kmalloc_event, record};
use event_filter::{Context, Errno, EventFields, NamedHists, Triggers};

fn add(triggers: &mut Triggers, event: &EventFields, command: &str) {
    triggers.write(command, event, &mut NamedHists::new()).unwrap_or_else(|e| panic!("{command}: {e:?}"));
}

/// The `hist` file of `triggers`.
fn hist(triggers: &Triggers) -> String {
    triggers.read_hist(&Kernel)
}

/// One trigger's `hist` block from its trigger line and entry lines.
fn block(trigger: &str, entries: &[String], hits: u64, dropped: u64) -> String {
    let mut out = format!("# event histogram\n#\n# trigger info: {trigger}\n#\n\n");
    for entry in entries {
        out.push_str(entry);
        out.push('\n');
    }
    out.push_str(&format!("\nTotals:\n    Hits: {hits}\n    Entries: {}\n    Dropped: {dropped}\n", entries.len()));
    out
}

/// Entries in the first hist trigger's table.
fn entries(triggers: &Triggers) -> usize {
    triggers.iter().find_map(|t| t.as_hist()).unwrap().table().snapshot().len()
}

/// Ten forks of children 200..209 from parent 100 ("bash").
fn ten_forks(triggers: &Triggers) {
    for child in 200..210 {
        triggers.fire(&fork("bash", 100, "sleep", child), &ctx("bash"));
    }
}

/// trigger-hist.tc: basic trigger.
#[test]
fn basic() {
    let mut triggers = Triggers::new();
    add(&mut triggers, &fork_event(), "hist:keys=parent_pid:vals=child_pid");
    ten_forks(&triggers);
    assert_eq!(
        hist(&triggers),
        "# event histogram\n\
         #\n\
         # trigger info: hist:keys=parent_pid:vals=hitcount,child_pid:sort=hitcount:size=2048 [active]\n\
         #\n\
         \n\
         { parent_pid:        100 } hitcount:         10  child_pid:       2045\n\
         \n\
         Totals:\n    Hits: 10\n    Entries: 1\n    Dropped: 0\n"
    );
    assert_eq!(triggers.read(), "hist:keys=parent_pid:vals=hitcount,child_pid:sort=hitcount:size=2048 [active]\n");
}

/// trigger-hist.tc: compound keys.
#[test]
fn compound_keys() {
    let mut triggers = Triggers::new();
    add(&mut triggers, &fork_event(), "hist:keys=parent_pid,child_pid");
    ten_forks(&triggers);
    triggers.fire(&fork("bash", 100, "sleep", 203), &ctx("bash"));
    let mut entries: Vec<String> = (200..210)
        .filter(|&c| c != 203)
        .map(|c| format!("{{ parent_pid:        100, child_pid:        {c} }} hitcount:          1"))
        .collect();
    entries.push("{ parent_pid:        100, child_pid:        203 } hitcount:          2".into());
    let trigger = "hist:keys=parent_pid,child_pid:vals=hitcount:sort=hitcount:size=2048 [active]";
    assert_eq!(hist(&triggers), block(trigger, &entries, 11, 0));
}

/// trigger-hist.tc: string key.
#[test]
fn string_key() {
    let mut triggers = Triggers::new();
    add(&mut triggers, &fork_event(), "hist:keys=parent_comm");
    ten_forks(&triggers);
    triggers.fire(&fork("a-much-longer-task-name", 7, "x", 8), &ctx("x"));
    let trigger = "hist:keys=parent_comm:vals=hitcount:sort=hitcount:size=2048 [active]";
    let entries = [
        "{ parent_comm: a-much-longer-task-name                            } hitcount:          1".to_string(),
        "{ parent_comm: bash                                               } hitcount:         10".to_string(),
    ];
    assert_eq!(hist(&triggers), block(trigger, &entries, 11, 0));
}

/// trigger-hist.tc: sort key, both ways.
#[test]
fn sort_keys() {
    let event = fork_event();
    for (sort, shown, order) in [
        ("child_pid.ascending", "child_pid", [201, 205, 209]),
        ("child_pid.descending", "child_pid.descending", [209, 205, 201]),
    ] {
        let mut triggers = Triggers::new();
        add(&mut triggers, &event, &format!("hist:keys=parent_pid,child_pid:sort={sort}"));
        for child in [205, 209, 201] {
            triggers.fire(&fork("bash", 100, "x", child), &ctx("bash"));
        }
        let trigger = format!("hist:keys=parent_pid,child_pid:vals=hitcount:sort={shown}:size=2048 [active]");
        let entries: Vec<String> = order
            .iter()
            .map(|c| format!("{{ parent_pid:        100, child_pid:        {c} }} hitcount:          1"))
            .collect();
        assert_eq!(hist(&triggers), block(&trigger, &entries, 3, 0));
    }
}

#[test]
fn sort_by_values_then_hitcount() {
    let event = kmalloc_event();
    let mut triggers = Triggers::new();
    add(&mut triggers, &event, "hist:key=call_site.hex:val=bytes_req,bytes_alloc:sort=bytes_alloc.descending,hitcount");
    for (site, req, alloc) in [(0x10, 8, 8), (0x20, 100, 128), (0x30, 4, 8), (0x30, 4, 8), (0x20, 1, 8)] {
        triggers.fire(&kmalloc(1, site, req, alloc), &ctx("t"));
    }
    let trigger = "hist:keys=call_site.hex:vals=hitcount,bytes_req,bytes_alloc:sort=bytes_alloc.descending,hitcount:size=2048 [active]";
    let entries = [
        "{ call_site: 20 } hitcount:          2  bytes_req:        101  bytes_alloc:        136".to_string(),
        "{ call_site: 10 } hitcount:          1  bytes_req:          8  bytes_alloc:          8".to_string(),
        "{ call_site: 30 } hitcount:          2  bytes_req:          8  bytes_alloc:         16".to_string(),
    ];
    // bytes_alloc descending: 136, 16, 8.
    let expected = block(trigger, &[entries[0].clone(), entries[2].clone(), entries[1].clone()], 5, 0);
    assert_eq!(hist(&triggers), expected);
}

/// trigger-hist-mod.tc: execname, hex, log2 (syscall is not supported).
#[test]
fn modifiers() {
    let event = kmalloc_event();
    let mut triggers = Triggers::new();
    add(&mut triggers, &event, "hist:keys=common_pid.execname");
    add(&mut triggers, &event, "hist:keys=common_pid.hex");
    add(&mut triggers, &event, "hist:keys=bytes_req.log2");
    add(&mut triggers, &event, "hist:keys=bytes_req.buckets=32:vals=bytes_alloc.hex");
    for (pid, comm, req) in [(1234, "bash", 96), (1234, "bash", 100), (0, "swapper/0", 3000)] {
        triggers.fire(&kmalloc(pid, 0, req, 4096), &ctx(comm));
    }
    let blocks = [
        block(
            "hist:keys=common_pid.execname:vals=hitcount:sort=hitcount:size=2048 [active]",
            &[
                "{ common_pid: <idle>          [         0] } hitcount:          1".into(),
                "{ common_pid: bash            [      1234] } hitcount:          2".into(),
            ],
            3,
            0,
        ),
        block(
            "hist:keys=common_pid.hex:vals=hitcount:sort=hitcount:size=2048 [active]",
            &["{ common_pid: 0 } hitcount:          1".into(), "{ common_pid: 4d2 } hitcount:          2".into()],
            3,
            0,
        ),
        block(
            "hist:keys=bytes_req.log2:vals=hitcount:sort=hitcount:size=2048 [active]",
            &["{ bytes_req: ~ 2^12 } hitcount:          1".into(), "{ bytes_req: ~ 2^7  } hitcount:          2".into()],
            3,
            0,
        ),
        block(
            "hist:keys=bytes_req.buckets=32:vals=hitcount,bytes_alloc.hex:sort=hitcount:size=2048 [active]",
            &[
                "{ bytes_req: ~ 2976-3007 } hitcount:          1  bytes_alloc:       1000".into(),
                "{ bytes_req: ~ 96-127 } hitcount:          2  bytes_alloc:       2000".into(),
            ],
            3,
            0,
        ),
    ];
    assert_eq!(hist(&triggers), blocks.join("\n\n"));
    let error = triggers.write("hist:keys=bytes_req.syscall", &event, &mut NamedHists::new()).unwrap_err();
    assert_eq!(error.errno(), Errno::Inval);
    assert_eq!(error.message(), Some("Invalid field modifier"));
    assert_eq!(error.entries()[0].position(), 20);
}

#[test]
fn symbols() {
    let event = kmalloc_event();
    let mut triggers = Triggers::new();
    add(&mut triggers, &event, "hist:keys=call_site.sym");
    add(&mut triggers, &event, "hist:keys=call_site.sym-offset:vals=bytes_req");
    for site in [0xc10f_4d20, 0xc10f_4d24, 0x1234_5678] {
        triggers.fire(&kmalloc(1, site, 10, 16), &ctx("t"));
    }
    triggers.fire(&kmalloc(1, 0xc10f_4d24, 10, 16), &ctx("t"));
    let sym = block(
        "hist:keys=call_site.sym:vals=hitcount:sort=hitcount:size=2048 [active]",
        &[
            format!("{{ call_site: [12345678] 0x12345678{} }} hitcount:          1", " ".repeat(35)),
            format!("{{ call_site: [c10f4d20] checksum{} }} hitcount:          1", " ".repeat(37)),
            format!("{{ call_site: [c10f4d24] checksum{} }} hitcount:          2", " ".repeat(37)),
        ],
        4,
        0,
    );
    let offset = block(
        "hist:keys=call_site.sym-offset:vals=hitcount,bytes_req:sort=hitcount:size=2048 [active]",
        &[
            format!(
                "{{ call_site: [12345678] 0x12345678{} }} hitcount:          1  bytes_req:         10",
                " ".repeat(45)
            ),
            format!(
                "{{ call_site: [c10f4d20] checksum+0x0/0x40{} }} hitcount:          1  bytes_req:         10",
                " ".repeat(38)
            ),
            format!(
                "{{ call_site: [c10f4d24] checksum+0x4/0x40{} }} hitcount:          2  bytes_req:         20",
                " ".repeat(38)
            ),
        ],
        4,
        0,
    );
    assert_eq!(hist(&triggers), format!("{sym}\n\n{offset}"));
}

/// trigger-multihist.tc: two triggers on one event, and a named
/// histogram shared by two events.
#[test]
fn multiple_and_named() {
    let fork_ev = fork_event();
    let exit_ev = exit_event();
    let mut named = NamedHists::new();
    let mut triggers = Triggers::new();
    triggers.write("hist:keys=parent_pid:vals=child_pid", &fork_ev, &mut named).unwrap();
    triggers.write("hist:keys=parent_comm:vals=child_pid", &fork_ev, &mut named).unwrap();
    ten_forks(&triggers);
    let first = block(
        "hist:keys=parent_pid:vals=hitcount,child_pid:sort=hitcount:size=2048 [active]",
        &["{ parent_pid:        100 } hitcount:         10  child_pid:       2045".into()],
        10,
        0,
    );
    let second = block(
        "hist:keys=parent_comm:vals=hitcount,child_pid:sort=hitcount:size=2048 [active]",
        &[format!("{{ parent_comm: bash{} }} hitcount:         10  child_pid:       2045", " ".repeat(46))],
        10,
        0,
    );
    assert_eq!(hist(&triggers), format!("{first}\n\n{second}"));

    let mut forks = Triggers::new();
    let mut exits = Triggers::new();
    forks.write("hist:name=test_hist:keys=common_pid", &fork_ev, &mut named).unwrap();
    exits.write("hist:name=test_hist:keys=common_pid", &exit_ev, &mut named).unwrap();
    assert_eq!(named.names(), ["test_hist"]);
    ten_forks(&forks);
    exits.fire(&record(300, &[V::U32(0), V::Str("sleep"), V::I32(300)]), &ctx("sleep"));
    let shared = block(
        "hist:name=test_hist:keys=common_pid:vals=hitcount:sort=hitcount:size=2048 [active]",
        &[
            "{ common_pid:        300 } hitcount:          1".into(),
            "{ common_pid:        100 } hitcount:         10".into(),
        ],
        11,
        0,
    );
    assert_eq!(hist(&forks), shared);
    assert_eq!(hist(&exits), shared);
    // Another shape under the same name is refused.
    let error = exits.write("hist:name=test_hist:keys=pid", &exit_ev, &mut named).unwrap_err();
    assert_eq!(error.errno(), Errno::Inval);
    assert_eq!(
        error.entries()[0].error_log_entry(0),
        "[    0.000000] hist:sched:exit: error: Named hist trigger doesn't match existing named trigger (includes variables)\n  Command: hist:name=test_hist:keys=pid\n                ^\n"
    );
    // The table goes with its last trigger.
    drop(forks);
    drop(exits);
    assert!(named.names().is_empty());
}

/// One error_log entry of a refused `hist:` command on kmem/kmalloc.
fn hist_error(command: &str, errno: Errno, message: &str, position: usize) {
    let mut triggers = Triggers::new();
    let error = triggers.write(command, &kmalloc_event(), &mut NamedHists::new()).unwrap_err();
    assert_eq!(error.errno(), errno, "{command}");
    assert_eq!(error.entries().len(), 1, "{command}");
    let expected = format!(
        "[   12.000345] hist:kmem:kmalloc: error: {message}\n  Command: {command}\n{}^\n",
        " ".repeat(11 + position)
    );
    assert_eq!(error.entries()[0].error_log_entry(12_000_345_678), expected, "{command}");
    assert!(triggers.is_empty());
}

/// trigger-hist-syntax-errors.tc, and more of Linux's hist errors.
#[test]
fn syntax_errors() {
    let inval = Errno::Inval;
    hist_error(
        "hist:keys=common_pid:vals=bytes_req:sort=common_pid,junk",
        inval,
        "Sort field must be a key or a val",
        52,
    );
    hist_error("hist:keys=common_pid:vals=bytes_req:sort=", inval, "Empty assignment", 36);
    hist_error("hist:keys=common_pid:vals=bytes_req:sort=common_pid,", inval, "Empty sort field", 36);
    hist_error("hist:keys=common_pid:vals=bytes_req:sort=common_pid.junk", inval, "Invalid sort modifier", 52);
    hist_error(
        "hist:keys=common_pid:vals=bytes_req,bytes_alloc:sort=common_pid,bytes_req,bytes_alloc",
        inval,
        "Too many sort fields (Max = 2)",
        48,
    );
    hist_error("hist:keys=nosuch", inval, "Couldn't find field", 10);
    hist_error("hist:keys=comm", inval, "Couldn't find field", 10);
    hist_error("hist:keys=bytes_req:vals=nosuch", inval, "Couldn't find field", 25);
    hist_error("hist:keys=bytes_req.bogus", inval, "Invalid field modifier", 20);
    hist_error("hist:keys=bytes_req.execname", inval, "Invalid field modifier", 20);
    hist_error("hist:keys=bytes_req.buckets=0", inval, "Invalid field modifier", 28);
    hist_error("hist:keys=bytes_req.bucketz", inval, "Invalid field modifier", 26);
    hist_error("hist:keys=12z", inval, "Expecting numeric literal", 10);
    hist_error("hist:keys=common_timestamp:clock=mono", inval, "Couldn't set trace_clock", 33);
}

#[test]
fn refusals_without_log_entries() {
    let event = kmalloc_event();
    for (command, errno) in [
        ("hist", Errno::Inval),
        ("hist:vals=bytes_req", Errno::Inval),
        ("hist:keys=call_site,call_site,call_site,call_site", Errno::Inval),
        ("hist:keys=call_site,bytes_req,bytes_alloc,gfp_flags", Errno::Inval),
        ("hist:keys=call_site:vals=bytes_req,bytes_alloc,gfp_flags", Errno::Inval),
        ("hist:keys=call_site:size=64", Errno::Inval),
        ("hist:keys=call_site:size=262144", Errno::Inval),
        ("hist:keys=call_site:size=99999999999999999999", Errno::Range),
        ("hist:keys=call_site:onmax($x).save(a)", Errno::Inval),
        ("hist:keys=call_site:x=bytes_req", Errno::Inval),
        ("hist:keys=bytes_req+bytes_alloc", Errno::Inval),
        ("hist:keys=call_site if", Errno::Inval),
        ("hist:keys=call_site:bogus", Errno::Inval),
    ] {
        let error = Triggers::new().write(command, &event, &mut NamedHists::new()).unwrap_err();
        assert_eq!((error.errno(), error.entries().len()), (errno, 0), "{command}");
    }
}

#[test]
fn filters_pause_continue_clear_and_removal() {
    let event = fork_event();
    let mut named = NamedHists::new();
    let mut triggers = Triggers::new();
    triggers.write("hist:keys=child_comm:size=200 if parent_pid == 100", &event, &mut named).unwrap();
    let line = "hist:keys=child_comm:vals=hitcount:sort=hitcount:size=256 if parent_pid == 100";
    assert_eq!(triggers.read(), format!("{line} [active]\n"));
    triggers.fire(&fork("bash", 100, "a", 1), &ctx("bash"));
    triggers.fire(&fork("bash", 101, "b", 2), &ctx("bash"));
    assert_eq!(entries(&triggers), 1);

    // Pause: the same trigger (size apart) is updated, not added.
    triggers.write("hist:keys=child_comm:pause if parent_pid == 100", &event, &mut named).unwrap();
    assert_eq!(triggers.read(), format!("{line} [paused]\n"));
    triggers.fire(&fork("bash", 100, "c", 3), &ctx("bash"));
    assert_eq!(entries(&triggers), 1);
    triggers.write("hist:keys=child_comm:cont if parent_pid == 100", &event, &mut named).unwrap();
    triggers.fire(&fork("bash", 100, "c", 3), &ctx("bash"));
    assert_eq!(entries(&triggers), 2);
    triggers.write("hist:keys=child_comm:clear if parent_pid == 100", &event, &mut named).unwrap();
    assert_eq!(entries(&triggers), 0);
    assert_eq!(triggers.read(), format!("{line} [active]\n"));

    // A duplicate, and :cont of a trigger that does not exist.
    let error = triggers.write("hist:keys=child_comm if parent_pid == 100", &event, &mut named).unwrap_err();
    assert_eq!((error.errno(), error.message()), (Errno::Exist, Some("Hist trigger already exists")));
    assert_eq!(error.entries()[0].position(), 0);
    let error = triggers.write("hist:keys=child_comm:cont", &event, &mut named).unwrap_err();
    assert_eq!(
        (error.errno(), error.message()),
        (Errno::NoEnt, Some("Can't clear or continue a nonexistent hist trigger"))
    );
    // Without the filter it is another trigger.
    triggers.write("hist:keys=child_comm:pause", &event, &mut named).unwrap();
    assert_eq!(
        triggers.read(),
        format!("{line} [active]\nhist:keys=child_comm:vals=hitcount:sort=hitcount:size=2048 [paused]\n")
    );
    triggers.write("!hist:keys=child_comm if parent_pid == 100", &event, &mut named).unwrap();
    assert_eq!(triggers.read(), "hist:keys=child_comm:vals=hitcount:sort=hitcount:size=2048 [paused]\n");
    let error = triggers.write("!hist:keys=child_comm:vals=child_pid", &event, &mut named).unwrap_err();
    assert_eq!(error.errno(), Errno::NoEnt);
    triggers.write("!hist:keys=child_comm", &event, &mut named).unwrap();
    assert!(triggers.is_empty());
    // An empty hist file without hist triggers.
    assert_eq!(hist(&triggers), "");
}

#[test]
fn a_full_table_drops() {
    let mut triggers = Triggers::new();
    add(&mut triggers, &fork_event(), "hist:keys=child_pid:size=128");
    for child in 0..200 {
        triggers.fire(&fork("bash", 1, "x", child), &ctx("bash"));
    }
    triggers.fire(&fork("bash", 1, "x", 0), &ctx("bash"));
    let out = hist(&triggers);
    assert!(out.ends_with("\nTotals:\n    Hits: 129\n    Entries: 128\n    Dropped: 72\n"), "{out}");
    assert_eq!(out.lines().filter(|l| l.starts_with("{ child_pid:")).count(), 128);
    assert!(out.contains("{ child_pid:          0 } hitcount:          2\n"));
}

#[test]
fn cpu_and_timestamp_keys() {
    let event = fork_event();
    let mut triggers = Triggers::new();
    add(&mut triggers, &event, "hist:keys=cpu:vals=common_timestamp.usecs");
    add(&mut triggers, &event, "hist:keys=common_cpu,common_timestamp");
    let rec = fork("bash", 1, "x", 2);
    for (cpu, ts) in [(1, 5_000), (1, 7_999), (3, 1_000_000)] {
        triggers.fire(&rec, &Context { comm: b"bash", cpu, timestamp_ns: ts, tracing_on: true });
    }
    let first = block(
        "hist:keys=common_cpu:vals=hitcount,common_timestamp.usecs:sort=hitcount:size=2048:clock=global [active]",
        &[
            "{ cpu:          3 } hitcount:          1  common_timestamp:       1000".into(),
            "{ cpu:          1 } hitcount:          2  common_timestamp:         12".into(),
        ],
        3,
        0,
    );
    let second = block(
        "hist:keys=common_cpu,common_timestamp:vals=hitcount:sort=hitcount:size=2048:clock=global [active]",
        &[
            "{ common_cpu:          1, common_timestamp:       5000 } hitcount:          1".into(),
            "{ common_cpu:          1, common_timestamp:       7999 } hitcount:          1".into(),
            "{ common_cpu:          3, common_timestamp:    1000000 } hitcount:          1".into(),
        ],
        3,
        0,
    );
    assert_eq!(hist(&triggers), format!("{first}\n\n{second}"));
}

#[test]
fn signed_keys_sort_as_signed() {
    let event = kmalloc_event();
    let mut triggers = Triggers::new();
    add(&mut triggers, &event, "hist:keys=delta:sort=delta");
    for delta in [5, -3, 0] {
        let rec = record(1, &[V::U32(0), V::U32(0), V::U32(0), V::U32(0), V::U32(0), V::I32(delta), V::U64(0)]);
        triggers.fire(&rec, &ctx("t"));
    }
    let entries = [
        "{ delta: 18446744073709551613 } hitcount:          1".to_string(),
        "{ delta:          0 } hitcount:          1".to_string(),
        "{ delta:          5 } hitcount:          1".to_string(),
    ];
    assert_eq!(hist(&triggers), block("hist:keys=delta:vals=hitcount:sort=delta:size=2048 [active]", &entries, 3, 0));
}

/// This crate's extension: bpftrace's bars for a single `.log2` key.
#[test]
fn log2_bars() {
    let event = kmalloc_event();
    let mut triggers = Triggers::new();
    add(&mut triggers, &event, "hist:keys=bytes_req.log2");
    add(&mut triggers, &event, "hist:keys=bytes_req");
    let values = [1, 0, 3, 4, 4, 3, 100, 100, 100, 100, 65, 128, 128, 127, 2000];
    for v in values {
        triggers.fire(&kmalloc(1, 0, v, 0), &ctx("t"));
    }
    let mut hists = triggers.iter().filter_map(|t| t.as_hist());
    let log2 = hists.next().unwrap();
    let mut out = String::new();
    assert!(log2.write_log2_bars(&mut out));
    let bar = |n: usize| format!("|{}{}|", "@".repeat(n), " ".repeat(52 - n));
    let expected = [
        format!("[0, 1]                 2 {}", bar(13)),
        format!("(1, 2]                 0 {}", bar(0)),
        format!("(2, 4]                 4 {}", bar(26)),
        format!("(4, 8]                 0 {}", bar(0)),
        format!("(8, 16]                0 {}", bar(0)),
        format!("(16, 32]               0 {}", bar(0)),
        format!("(32, 64]               0 {}", bar(0)),
        format!("(64, 128]              8 {}", bar(52)),
        format!("(128, 256]             0 {}", bar(0)),
        format!("(256, 512]             0 {}", bar(0)),
        format!("(512, 1K]              0 {}", bar(0)),
        format!("(1K, 2K]               1 {}", bar(6)),
    ];
    assert_eq!(out, expected.iter().map(|l| format!("{l}\n")).collect::<String>());
    let mut other = String::new();
    assert!(!hists.next().unwrap().write_log2_bars(&mut other));
    assert_eq!(other, "");
}
