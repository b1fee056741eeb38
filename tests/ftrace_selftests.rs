//! Test kernel: Linux's ftrace selftests for kprobe events
//! (`tools/testing/selftests/ftrace/test.d/kprobe/*.tc`), ported to drive
//! this kernel's console line by line, as the scripts drive a shell in
//! `/sys/kernel/tracing`.
//!
//! Each test is named after its script and keeps its steps and checks;
//! where a script greps loosely (`grep -q 'arg1=0x[[:xdigit:]]*'`), the
//! port checks the exact value the semantics demand. The probed functions
//! are this file's own (`extern "C"`, so `$stackN` and `$argN` are known).
//! `kprobe_syntax_errors.tc` is ported in the probe-events crate's host
//! tests (tests/syntax_errors.rs), where every caret is checked.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(probe_kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use probe_kernel::kprobes::site_count;
use probe_kernel::shell;

probe_kernel::test_kernel_main!();

/// The scripts' `$FUNCTION_FORK`: a function called on demand.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn selftest_fork(flags: u32, stack: u32) -> u32 {
    core::hint::black_box(flags).wrapping_mul(3).wrapping_add(stack)
}

/// A second function, for multiprobe events.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn selftest_exit(code: u32) -> u32 {
    core::hint::black_box(code) ^ 0x55
}

/// Taking the addresses pins the `extern "C"` convention (arguments on the
/// stack) even where LLVM could pick its own for direct calls.
#[used]
static PINNED: [extern "C" fn(u32, u32) -> u32; 1] = [selftest_fork];
#[used]
static PINNED_EXIT: [extern "C" fn(u32) -> u32; 1] = [selftest_exit];

/// What the shell prints for one line, run in `/sys/kernel/tracing`.
fn sh(line: &str) -> String {
    probe_kernel::testing::captured(|| {
        shell::execute("cd /sys/kernel/tracing");
        shell::execute(line);
    })
}

/// A line the script expects to succeed (no output).
fn ok(line: &str) {
    assert_eq!(sh(line), "", "{line}");
}

/// A line the script expects to fail (`! echo ...`): some error printed.
fn fails(line: &str) {
    let answer = sh(line);
    assert!(answer.contains("write error") || answer.starts_with("sh: "), "{line} did not fail: {answer:?}");
}

/// `test -d DIR`.
fn is_dir(path: &str) -> bool {
    sh(&format!("ls {path}")).lines().all(|line| !line.starts_with("ls: "))
        && !sh(&format!("cd {path}")).starts_with("cd: ")
}

/// The trace's event lines.
fn trace_lines() -> Vec<String> {
    sh("cat trace").lines().filter(|line| !line.starts_with('#')).map(String::from).collect()
}

/// `clear_trace` and `echo > kprobe_events`, the scripts' clean-up.
fn clean_up() {
    ok("echo 0 > events/enable");
    ok("echo > kprobe_events");
    ok("echo > trace");
    assert_eq!(site_count(), 0, "every probe went");
}

#[test_case]
fn kprobe_args() {
    ok("echo 'p:testprobe selftest_fork $stack $stack0 +0($stack)' > kprobe_events");
    assert!(sh("cat kprobe_events").contains("arg1=$stack arg2=$stack0 arg3=+0($stack)"));
    assert!(is_dir("events/kprobes/testprobe"));
    ok("echo 1 > events/kprobes/testprobe/enable");
    assert_eq!(selftest_fork(core::hint::black_box(7), 100), 121);
    let lines = trace_lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    assert!(line.contains("testprobe: (selftest_fork+0x0/"), "{line}");
    // arg2 ($stack0) and arg3 (+0($stack)) are the same word: the return
    // address; arg1 is where it lies.
    let value = |name: &str| {
        let start = line.find(&format!("{name}=0x")).expect(name) + name.len() + 3;
        let digits: String = line[start..].chars().take_while(char::is_ascii_hexdigit).collect();
        u32::from_str_radix(&digits, 16).expect("hex")
    };
    assert_eq!(value("arg2"), value("arg3"), "{line}");
    assert!(probe_kernel::symbols::lookup_address(value("arg2") as usize).is_some(), "a return address: {line}");
    assert!(value("arg1") != 0 && value("arg1") % 4 == 0, "{line}");
    ok("echo 0 > events/kprobes/testprobe/enable");
    ok("echo '-:testprobe' >> kprobe_events");
    assert!(!is_dir("events/kprobes/testprobe"));
    clean_up();
}

#[test_case]
fn kprobe_args_comm_and_types() {
    ok(
        "echo 'p:testprobe selftest_fork comm=$comm u=$arg1:u8 s=$arg2:s32 x=$arg1:x16 b=$arg2:b4@4/32' > kprobe_events",
    );
    ok("echo 1 > events/kprobes/testprobe/enable");
    selftest_fork(core::hint::black_box(0x1ff), 0xffff_fff3);
    let task = probe_kernel::task::task_name(probe_kernel::task::current_id()).unwrap();
    let lines = trace_lines();
    assert!(lines[0].ends_with(&format!(" comm=\"{task}\" u=255 s=-13 x=0x1ff b=15")), "{lines:?}");
    clean_up();
}

#[test_case]
fn kretprobe_args() {
    ok("echo 'r:testprobe2 selftest_fork $retval' > kprobe_events");
    assert!(sh("cat kprobe_events").contains("testprobe2"));
    assert!(is_dir("events/kprobes/testprobe2"));
    ok("echo 1 > events/kprobes/testprobe2/enable");
    assert_eq!(selftest_fork(core::hint::black_box(5), 1), 16);
    let lines = trace_lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains(" <- selftest_fork) arg1=0x10"), "{lines:?}");
    ok("echo 0 > events/kprobes/testprobe2/enable");
    ok("echo '-:testprobe2' >> kprobe_events");
    assert!(!is_dir("events/kprobes/testprobe2"));
    clean_up();
}

#[test_case]
fn kretprobe_return_suffix() {
    ok("echo 'p:myevent selftest_fork%return' > kprobe_events");
    assert_eq!(sh("cat kprobe_events"), "r:kprobes/myevent selftest_fork\n");
    fails("echo 'p:myevent2 selftest_fork+1%return' >> kprobe_events");
    clean_up();
}

#[test_case]
fn kretprobe_maxactive() {
    ok("echo > kprobe_events");
    fails("echo 'a:myprobeaccept selftest_fork' > kprobe_events");
    fails("echo 'r1000000:myprobeaccept selftest_fork' > kprobe_events");
    fails("echo 'r10fuzz:myprobeaccept selftest_fork' > kprobe_events");
    ok("echo 'r:myprobeaccept selftest_fork' > kprobe_events");
    assert!(sh("cat kprobe_events").contains("myprobeaccept"));
    assert!(is_dir("events/kprobes/myprobeaccept"));
    ok("echo '-:myprobeaccept' >> kprobe_events");
    ok("echo 'r10:myprobeaccept selftest_fork' > kprobe_events");
    assert_eq!(sh("cat kprobe_events"), "r10:kprobes/myprobeaccept selftest_fork\n");
    assert!(is_dir("events/kprobes/myprobeaccept"));
    ok("echo '-:myprobeaccept' >> kprobe_events");
    ok("echo 'r selftest_fork' > kprobe_events");
    assert!(sh("cat kprobe_events").contains("selftest_fork"));
    ok("echo > kprobe_events");
    ok("echo 'r10 selftest_fork' > kprobe_events");
    assert_eq!(sh("cat kprobe_events"), "r10:kprobes/r_selftest_fork_0 selftest_fork\n");
    clean_up();
}

#[test_case]
fn probepoint() {
    let function = probe_kernel::symbols::lookup_name("selftest_fork").expect("symbol");
    // The next function in kallsyms, as the script's `grep -A1`.
    let next = probe_kernel::symbols::iter()
        .filter(|symbol| symbol.address > function.address)
        .min_by_key(|symbol| symbol.address)
        .expect("a next symbol");
    let previous = probe_kernel::symbols::iter()
        .filter(|symbol| symbol.address < function.address)
        .max_by_key(|symbol| symbol.address)
        .expect("a previous symbol");
    ok("echo 'p:testprobe selftest_fork' > kprobe_events");
    ok(&format!("echo 'p:testprobe {:#x}' > kprobe_events", function.address));
    ok(&format!("echo 'p:testprobe selftest_fork+{}' > kprobe_events", next.address - function.address));
    fails(&format!("echo 'p:testprobe selftest_fork-{}' > kprobe_events", function.address - previous.address));
    // The overflowed offset to the previous symbol (a huge positive one).
    fails(&format!(
        "echo 'p:testprobe selftest_fork+{:#x}' > kprobe_events",
        previous.address.wrapping_sub(function.address) as u32
    ));
    clean_up();
}

#[test_case]
fn profile() {
    assert!(!sh("cat kprobe_profile").contains("myevent"));
    ok("echo 'p:myevent selftest_fork' > kprobe_events");
    let line = |profile: String| profile.lines().find(|l| l.contains("myevent")).map(String::from);
    let numbers = |line: String| -> Vec<u64> { line.split_whitespace().skip(1).map(|n| n.parse().unwrap()).collect() };
    assert_eq!(numbers(line(sh("cat kprobe_profile")).expect("listed")), [0, 0]);
    ok("echo 1 > events/kprobes/myevent/enable");
    for _ in 0..3 {
        selftest_fork(core::hint::black_box(1), 2);
    }
    assert_eq!(numbers(line(sh("cat kprobe_profile")).expect("listed")), [3, 0]);
    ok("echo 0 > events/kprobes/myevent/enable");
    ok("echo > kprobe_events");
    assert!(!sh("cat kprobe_profile").contains("myevent"));
    clean_up();
}

#[test_case]
fn kprobe_eventname() {
    ok("echo 'p selftest_fork' > kprobe_events");
    assert!(is_dir("events/kprobes/p_selftest_fork_0"));
    ok("echo 'p:event1 selftest_fork' > kprobe_events");
    assert!(is_dir("events/kprobes/event1"));
    ok("echo 'p:kprobes2/event2 selftest_fork' > kprobe_events");
    assert!(is_dir("events/kprobes2/event2"));
    // A Rust path's `::` becomes `__` in a generated name, as the
    // script's dot functions' `.` becomes `_`.
    ok("echo 'p probe_kernel::demo::checksum' > kprobe_events");
    assert!(is_dir("events/kprobes/p_probe_kernel__demo__checksum_0"));
    clean_up();
}

#[test_case]
fn kprobe_multiprobe() {
    let def1 = "p:kprobes/testevent selftest_fork";
    let def2 = "p:kprobes/testevent selftest_exit";
    ok(&format!("echo '{def1}' >> kprobe_events"));
    ok(&format!("echo '{def2}' >> kprobe_events"));
    assert_eq!(sh("cat kprobe_events"), format!("{def1}\n{def2}\n"));
    // One event, two probes: both record it.
    ok("echo 1 > events/kprobes/testevent/enable");
    selftest_fork(1, 2);
    selftest_exit(3);
    let lines = trace_lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].contains("testevent: (selftest_fork+0x0/"), "{lines:?}");
    assert!(lines[1].contains("testevent: (selftest_exit+0x0/"), "{lines:?}");
    ok("echo 0 > events/kprobes/testevent/enable");
    // Removing the event by name removes both.
    ok("echo '-:kprobes/testevent' >> kprobe_events");
    assert_eq!(sh("cat kprobe_events"), "");
    // Removing just one.
    ok(&format!("echo '{def1}' >> kprobe_events"));
    ok(&format!("echo '{def2}' >> kprobe_events"));
    ok("echo '-:kprobes/testevent selftest_fork' >> kprobe_events");
    assert_eq!(sh("cat kprobe_events"), format!("{def2}\n"));
    // Appending a different type must fail.
    fails(&format!("echo '{def1} $stack' >> kprobe_events"));
    clean_up();
}

#[test_case]
fn busy_check() {
    ok("echo 'p:myevent selftest_fork' > kprobe_events");
    ok("echo 1 > events/kprobes/myevent/enable");
    assert_eq!(sh("echo > kprobe_events"), "echo: write error: Device or resource busy\n");
    ok("echo 0 > events/kprobes/myevent/enable");
    clean_up();
}

#[test_case]
fn add_and_remove() {
    ok("echo 'p:myevent selftest_fork' > kprobe_events");
    assert!(sh("cat kprobe_events").contains("myevent"));
    assert!(is_dir("events/kprobes/myevent"));
    ok("echo > kprobe_events");
    assert!(!is_dir("events/kprobes/myevent"));
    clean_up();
}

#[test_case]
fn multiple_kprobes() {
    // Probes on the first 256 text symbols of /proc/kallsyms that take one
    // (a refused one is skipped, as the script's `||:` does), among the
    // names a line can carry (as its `grep -v .*\\..*` drops dotted ones:
    // letters, digits, `_` and Rust's `::` here). The symbols and the
    // files are read from the table and the tree directly: their text is
    // longer than a test's capture of console output.
    let read = |path: &str| probe_kernel::tracefs::read(path).expect(path);
    let typable = |name: &&str| name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
    let mut added = 0;
    for name in probe_kernel::symbols::iter().map(|symbol| symbol.name).filter(typable) {
        if added == 256 {
            break;
        }
        if sh(&format!("echo 'p {name}' >> kprobe_events")).is_empty() {
            added += 1;
        }
    }
    assert_eq!(added, 256);
    assert_eq!(read("/sys/kernel/tracing/kprobe_events").lines().count(), 256);
    assert_eq!(read("/sys/kernel/debug/kprobes/list").lines().count(), 256);
    assert_eq!(site_count(), 256);
    ok("echo 1 > events/kprobes/enable");
    assert_eq!(sh("cat events/kprobes/enable"), "1\n");
    ok("echo 0 > events/kprobes/enable");
    ok("echo > kprobe_events");
    assert_eq!(site_count(), 0);
}
