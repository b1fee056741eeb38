//! traceon, traceoff and stacktrace triggers: Linux's selftests
//! (test.d/trigger/trigger-traceonoff.tc, trigger-filter.tc,
//! trigger-stacktrace.tc), the `trigger` file's text, counts and firing.
mod common;

use common::{ctx, fork, fork_event};
use event_filter::{Actions, Context, Errno, NamedHists, TriggerKind, Triggers};

fn write(triggers: &mut Triggers, command: &str) -> Result<(), Errno> {
    triggers.write(command, &fork_event(), &mut NamedHists::new()).map_err(|e| e.errno())
}

fn on(tracing_on: bool) -> Context<'static> {
    Context { comm: b"bash", cpu: 0, timestamp_ns: 0, tracing_on }
}

const TRACE_OFF: Actions = Actions { trace_on: false, trace_off: true, stacktrace: false };
const TRACE_ON: Actions = Actions { trace_on: true, trace_off: false, stacktrace: false };
const STACKTRACE: Actions = Actions { trace_on: false, trace_off: false, stacktrace: true };
const NOTHING: Actions = Actions { trace_on: false, trace_off: false, stacktrace: false };

#[test]
fn no_triggers_lists_the_commands() {
    assert_eq!(Triggers::new().read(), "# Available triggers:\n# traceon traceoff stacktrace hist\n");
}

/// trigger-traceonoff.tc
#[test]
fn traceonoff_selftest() {
    let rec = fork("bash", 100, "bash", 101);
    let mut triggers = Triggers::new();
    write(&mut triggers, "traceoff\n").unwrap();
    assert_eq!(triggers.read(), "traceoff:unlimited\n");
    assert_eq!(triggers.fire(&rec, &on(true)), TRACE_OFF);
    write(&mut triggers, "!traceoff").unwrap();

    write(&mut triggers, "traceon").unwrap();
    assert_eq!(triggers.fire(&rec, &on(false)), TRACE_ON);
    write(&mut triggers, "!traceon").unwrap();
    assert!(triggers.is_empty());

    // Semantic errors.
    assert_eq!(write(&mut triggers, "traceoff:badparam"), Err(Errno::Inval));
    assert_eq!(write(&mut triggers, "traceoff+0"), Err(Errno::Inval));
    write(&mut triggers, "traceon").unwrap();
    assert_eq!(write(&mut triggers, "traceon"), Err(Errno::Exist));
    assert_eq!(write(&mut triggers, "traceoff"), Err(Errno::Exist));
    assert_eq!(triggers.read(), "traceon:unlimited\n");
}

/// trigger-filter.tc
#[test]
fn trigger_filter_selftest() {
    let mut triggers = Triggers::new();
    write(&mut triggers, "traceoff if child_pid == 0").unwrap();
    assert_eq!(triggers.read(), "traceoff:unlimited if child_pid == 0\n");
    // The forked child is not pid 0: tracing stays on.
    assert_eq!(triggers.fire(&fork("bash", 100, "bash", 101), &on(true)), NOTHING);
    assert_eq!(triggers.fire(&fork("bash", 100, "bash", 0), &on(true)), TRACE_OFF);
    write(&mut triggers, "!traceoff").unwrap();

    assert_eq!(write(&mut triggers, "traceoff if a"), Err(Errno::Inval));
    assert_eq!(write(&mut triggers, "traceoff if common_pid=0"), Err(Errno::Inval));
    assert_eq!(write(&mut triggers, "traceoff if common_pid==b"), Err(Errno::Inval));
    write(&mut triggers, "traceoff if common_pid == 0").unwrap();
    write(&mut triggers, "!traceoff").unwrap();
    assert_eq!(write(&mut triggers, "traceoff if common_pid == child_pid"), Err(Errno::Inval));
    for filter in
        ["common_pid <= 0", "common_pid >= 0", "parent_pid >= 0 && child_pid >= 0", "parent_pid >= 0 || child_pid >= 0"]
    {
        write(&mut triggers, &format!("traceoff if {filter}")).unwrap();
        assert_eq!(triggers.read(), format!("traceoff:unlimited if {filter}\n"));
        write(&mut triggers, "!traceoff").unwrap();
    }
    assert!(triggers.is_empty());
}

#[test]
fn filter_errors_are_logged_as_event_filter_errors() {
    let mut triggers = Triggers::new();
    let error = triggers.write("traceoff if common_pid=0", &fork_event(), &mut NamedHists::new()).unwrap_err();
    assert_eq!(error.errno(), Errno::Inval);
    assert_eq!(error.entries().len(), 1);
    assert_eq!(
        error.entries()[0].error_log_entry(1_000_001_000),
        "[    1.000001] event filter parse error: error: Invalid operator\n  Command: common_pid=0\n                      ^\n"
    );
    // Not `if`, or nothing after it: a bare EINVAL.
    for command in ["traceoff iff x == 1", "traceoff if", "traceoff:2 when x"] {
        let error = triggers.write(command, &fork_event(), &mut NamedHists::new()).unwrap_err();
        assert_eq!((error.errno(), error.entries().len()), (Errno::Inval, 0), "{command}");
    }
}

/// trigger-stacktrace.tc
#[test]
fn stacktrace_selftest() {
    let mut triggers = Triggers::new();
    write(&mut triggers, "stacktrace").unwrap();
    assert_eq!(triggers.fire(&fork("bash", 1, "bash", 2), &on(true)), STACKTRACE);
    write(&mut triggers, "!stacktrace").unwrap();
    assert_eq!(write(&mut triggers, "stacktrace:foo"), Err(Errno::Inval));
    write(&mut triggers, "stacktrace").unwrap();
    assert_eq!(write(&mut triggers, "stacktrace"), Err(Errno::Exist));
}

#[test]
fn counts_run_down() {
    let rec = fork("bash", 1, "bash", 2);
    let mut triggers = Triggers::new();
    write(&mut triggers, "traceoff:2").unwrap();
    assert_eq!(triggers.read(), "traceoff:count=2\n");
    // traceoff counts only when it turns tracing off.
    assert_eq!(triggers.fire(&rec, &on(false)), NOTHING);
    assert_eq!(triggers.read(), "traceoff:count=2\n");
    assert_eq!(triggers.fire(&rec, &on(true)), TRACE_OFF);
    assert_eq!(triggers.fire(&rec, &on(true)), TRACE_OFF);
    assert_eq!(triggers.fire(&rec, &on(true)), NOTHING);
    assert_eq!(triggers.read(), "traceoff:count=0\n");

    let mut triggers = Triggers::new();
    write(&mut triggers, "stacktrace:3 if parent_pid == 1").unwrap();
    assert_eq!(triggers.read(), "stacktrace:count=3 if parent_pid == 1\n");
    assert_eq!(triggers.fire(&fork("bash", 5, "x", 6), &on(true)), NOTHING);
    assert_eq!(triggers.iter().next().unwrap().count(), Some(3));
    for _ in 0..3 {
        assert_eq!(triggers.fire(&rec, &on(false)), STACKTRACE);
    }
    assert_eq!(triggers.fire(&rec, &on(false)), NOTHING);
    assert_eq!(triggers.read(), "stacktrace:count=0 if parent_pid == 1\n");

    // The count is a kstrtoul number; the rest after a ':' is ignored.
    let mut triggers = Triggers::new();
    write(&mut triggers, "traceon:0x10:junk").unwrap();
    assert_eq!(triggers.read(), "traceon:count=16\n");
    assert_eq!(write(&mut Triggers::new(), "traceon:99999999999999999999"), Err(Errno::Range));
    // 2^64-1 is Linux's -1: unlimited.
    let mut triggers = Triggers::new();
    write(&mut triggers, "traceon:18446744073709551615").unwrap();
    assert_eq!(triggers.read(), "traceon:unlimited\n");
}

#[test]
fn listing_order_and_removal() {
    let mut triggers = Triggers::new();
    write(&mut triggers, "traceon if parent_pid > 10").unwrap();
    write(&mut triggers, "stacktrace:5").unwrap();
    write(&mut triggers, "hist:keys=parent_pid").unwrap();
    // Simple triggers go first, newest first (Linux's list_add_rcu); hist
    // triggers after them.
    assert_eq!(
        triggers.read(),
        "stacktrace:count=5\ntraceon:unlimited if parent_pid > 10\nhist:keys=parent_pid:vals=hitcount:sort=hitcount:size=2048 [active]\n"
    );
    let kinds: Vec<TriggerKind> = triggers.iter().map(|t| t.kind()).collect();
    assert_eq!(kinds, [TriggerKind::Stacktrace, TriggerKind::TraceOn, TriggerKind::Hist]);
    // `!traceoff` removes the traceon: they are one kind of trigger, and
    // a removal's count and filter do not matter.
    write(&mut triggers, "!traceoff:3 if nonsense").unwrap();
    assert_eq!(write(&mut triggers, "!traceon"), Err(Errno::NoEnt));
    write(&mut triggers, "  !stacktrace  ").unwrap();
    assert_eq!(triggers.len(), 1);
    // Unknown or unsupported commands.
    for command in ["", "!", "snapshot", "enable_event:sched:fork", "bogus", "hist"] {
        assert_eq!(write(&mut triggers, command), Err(Errno::Inval), "{command:?}");
    }
    assert_eq!(write(&mut triggers, &"x".repeat(4096)), Err(Errno::Inval));
}

#[test]
fn every_trigger_fires_on_one_event() {
    let mut triggers = Triggers::new();
    write(&mut triggers, "traceon").unwrap();
    write(&mut triggers, "stacktrace if child_comm ~ \"sl*\"").unwrap();
    write(&mut triggers, "hist:keys=child_comm").unwrap();
    let both = Actions { trace_on: true, trace_off: false, stacktrace: true };
    assert_eq!(triggers.fire(&fork("bash", 1, "sleep", 2), &on(false)), both);
    assert_eq!(triggers.fire(&fork("bash", 1, "cat", 3), &on(false)), TRACE_ON);
    assert_eq!(triggers.fire(&fork("bash", 1, "sleep", 4), &on(true)), STACKTRACE);
    let hist = triggers.iter().find_map(|t| t.as_hist()).unwrap();
    assert_eq!((hist.table().hits(), hist.table().snapshot().len()), (3, 2));
    // A clone shares counts and tables.
    let copy = triggers.clone();
    copy.fire(&fork("bash", 1, "cat", 5), &ctx("bash"));
    assert_eq!(hist.table().hits(), 4);
}
