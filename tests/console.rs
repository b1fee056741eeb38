//! Test kernel: the console's line editor and the shell's command parser.
//!
//! Regression tests for issue 7: the console must never misread input
//! (overlong lines cut, invalid bytes dropped and their neighbours joined,
//! arrow keys inserted as text, unknown or extra words and offsets ignored)
//! and never leak memory on it (refused and removed probes were leaked).
//! Every expectation is exact: the line the editor gives, the bytes it
//! echoes, the shell's answer, the heap in use.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(probe_kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};
use probe_kernel::console::{self, LINE_MAX, LineEditor, LineError, LineEvent};
use probe_kernel::kprobes::{kretprobe_arena_used, site_count};
use probe_kernel::{memory, shell, symbols};

probe_kernel::test_kernel_main!();

/// 32 one-byte instructions and a `ret`: every offset up to 0x20 is an
/// instruction boundary, so offsets like 28 / 0x1c can be probed.
#[unsafe(naked)]
#[unsafe(no_mangle)]
pub extern "C" fn console_test_target() {
    core::arch::naked_asm!(".rept 32", "nop", ".endr", "ret");
}

/// A five-byte first instruction: offsets 1 to 4 lie inside it.
#[unsafe(naked)]
#[unsafe(no_mangle)]
pub extern "C" fn console_long_first() -> u32 {
    core::arch::naked_asm!("mov eax, 0x12345678", "ret");
}

/// Feeds `keys`; returns every event, the echo of them all, and the result.
fn edit(keys: &[u8]) -> (Vec<LineEvent>, Vec<u8>, Result<String, LineError>) {
    let mut buffer = [0u8; LINE_MAX];
    let mut editor = LineEditor::new(&mut buffer);
    let (mut events, mut echo) = (Vec::new(), Vec::new());
    for &key in keys {
        let event = editor.feed(key);
        editor.echo(event, |byte| echo.push(byte));
        events.push(event);
    }
    (events, echo, editor.result().map(String::from))
}

/// The line `keys` give (they must end it with CR or LF).
fn line_of(keys: &[u8]) -> Result<String, LineError> {
    let (events, _, result) = edit(keys);
    assert_eq!(events.last(), Some(&LineEvent::Done), "{keys:?} did not end the line");
    result
}

/// What the shell prints for one finished (or refused) line.
fn answer(line: Result<&str, LineError>) -> String {
    probe_kernel::testing::captured(|| shell::handle(line))
}

/// What the shell prints for `keys` typed as one line.
fn answer_to_keys(keys: &[u8]) -> String {
    let line = line_of(keys);
    answer(line.as_deref().map_err(|e| *e))
}

#[test_case]
fn printable_bytes_backspace_and_enter() {
    let (events, echo, result) = edit(b"ab\x7fc\x08d\r");
    assert_eq!(
        events,
        [
            LineEvent::Insert(b'a'),
            LineEvent::Insert(b'b'),
            LineEvent::Erase,
            LineEvent::Insert(b'c'),
            LineEvent::Erase,
            LineEvent::Insert(b'd'),
            LineEvent::Done
        ]
    );
    assert_eq!(echo, b"ab\x08 \x08c\x08 \x08d\n");
    assert_eq!(result, Ok(String::from("ad")));
    assert_eq!(edit(b"\x08\x7fx\n").0[..2], [LineEvent::Ignored, LineEvent::Ignored]);
}

#[test_case]
fn overlong_line_is_refused_whole() {
    let exact = [b'a'; LINE_MAX];
    let mut keys = Vec::from(exact);
    keys.push(b'\r');
    assert_eq!(line_of(&keys).map(|l| l.len()), Ok(LINE_MAX));
    // Issue 7: `kprobe ...checksum+0x` 100 zeros `1c` registered at +0x0.
    let mut keys = Vec::from(&b"kprobe probe_kernel::demo::checksum+0x"[..]);
    keys.extend([b'0'; 100]);
    keys.extend(b"1c\r");
    assert_eq!(line_of(&keys), Err(LineError::TooLong { max: LINE_MAX }));
    let sites = site_count();
    assert_eq!(answer_to_keys(&keys), "console: line too long (max 128 bytes)\n");
    assert_eq!(site_count(), sites);
    // Erasing afterwards does not repair it: the line is refused whole.
    keys.pop();
    keys.extend([0x7f; 20]);
    keys.push(b'\n');
    assert_eq!(line_of(&keys), Err(LineError::TooLong { max: LINE_MAX }));
}

#[test_case]
fn bytes_outside_printable_ascii_are_refused_with_their_column() {
    assert_eq!(line_of(b"remove 0\x001\r"), Err(LineError::InvalidByte { byte: 0, column: 9 }));
    assert_eq!(answer_to_keys(b"remove 0\x001\r"), "console: invalid byte 0x00 at column 9\n");
    assert_eq!(answer_to_keys(b"kprobe checks\xffum\r"), "console: invalid byte 0xff at column 14\n");
    assert_eq!(answer_to_keys(b"checks\xffum\r"), "console: invalid byte 0xff at column 7\n");
    assert_eq!(line_of(b"a\x0bb\n"), Err(LineError::InvalidByte { byte: 0x0b, column: 2 }));
    // The column is where the cursor was: after two lefts, column 2.
    assert_eq!(line_of(b"abc\x1b[D\x1b[D\x01\r"), Err(LineError::InvalidByte { byte: 1, column: 2 }));
    // The first problem is the one reported.
    assert_eq!(line_of(b"\x80\x81\r"), Err(LineError::InvalidByte { byte: 0x80, column: 1 }));
    // Nothing after the invalid byte is echoed.
    let (_, echo, _) = edit(b"ab\x02cd\r");
    assert_eq!(echo, b"ab\n");
}

#[test_case]
fn escape_sequences_are_keys_not_text() {
    // Issue 7: arrow keys inserted "[A" and "[D".
    assert_eq!(line_of(b"list\x1b[A\x1b[B\r"), Ok(String::from("list")));
    // Left twice, insert X; right once, insert Y.
    let (events, echo, result) = edit(b"ab\x1b[D\x1b[DX\x1b[CY\r");
    assert_eq!(result, Ok(String::from("XaYb")));
    assert_eq!(events.iter().filter(|e| matches!(e, LineEvent::Left(1))).count(), 2);
    assert_eq!(echo, b"ab\x08\x08Xab\x08\x08aYb\x08\n");
    // SS3 arrows, home, end, delete, ctrl-left; unknown keys and Alt+x do nothing.
    assert_eq!(line_of(b"bc\x1bOD\x1bODa\x1b[F!\r"), Ok(String::from("abc!")));
    assert_eq!(line_of(b"abc\x1b[H\x1b[3~\x1b[4~d\r"), Ok(String::from("bcd")));
    assert_eq!(line_of(b"abc\x1b[1;5D\x1b[1~\x1b[8~-\r"), Ok(String::from("abc-")));
    assert_eq!(line_of(b"ab\x1b[5~\x1b[200~\x1bx\x1b\x1b[Dc\r"), Ok(String::from("acb")));
    // Backspace in the middle redraws the tail.
    let (_, echo, result) = edit(b"abc\x1b[D\x7f\r");
    assert_eq!(result, Ok(String::from("ac")));
    assert_eq!(echo, b"abc\x08\x08c \x08\x08\n");
    // Delete at the end, left at the start, right at the end: nothing.
    let (events, _, _) = edit(b"\x1b[Da\x1b[C\x1b[3~\r");
    assert_eq!(events.iter().filter(|e| **e == LineEvent::Ignored).count(), 10);
    // A control byte ends a sequence and counts as itself; Enter still ends it.
    assert_eq!(line_of(b"a\x1b[1\x02\r"), Err(LineError::InvalidByte { byte: 2, column: 2 }));
    assert_eq!(line_of(b"ab\x1b[\r"), Ok(String::from("ab")));
}

#[test_case]
fn cr_lf_ends_one_line_not_two() {
    let mut buffer = [0u8; LINE_MAX];
    let mut editor = LineEditor::new(&mut buffer);
    let mut lines = Vec::new();
    for &key in b"a\r\nb\n\nc\r\r" {
        if editor.feed(key) == LineEvent::Done {
            lines.push(String::from(editor.result().unwrap()));
            editor.clear();
        }
    }
    assert_eq!(lines, ["a", "b", "", "c", ""]);
}

#[test_case]
fn kretprobe_refuses_an_offset() {
    let sites = site_count();
    assert_eq!(
        answer(Ok("kretprobe probe_kernel::demo::checksum+12345")),
        "kretprobe: offset 0x3039 refused: a return probe goes on a function's entry (offset 0)\n"
    );
    assert_eq!(
        answer(Ok("kretprobe probe_kernel::demo::checksum+0x1")),
        "kretprobe: offset 0x1 refused: a return probe goes on a function's entry (offset 0)\n"
    );
    assert_eq!(site_count(), sites);
    assert_eq!(
        answer(Ok("kretprobe probe_kernel::demo::checksum+0")),
        "probe 0: kretprobe on probe_kernel::demo::checksum (maxactive 10)\n"
    );
    assert_eq!(answer(Ok("remove 0")), "probe 0 removed\n");
    assert_eq!(site_count(), sites);
}

#[test_case]
fn unknown_and_extra_words_are_refused() {
    let sites = site_count();
    let usage = "(usage: kprobe SYMBOL[+OFFSET] [verbose])";
    assert_eq!(
        answer(Ok("kprobe probe_kernel::demo::checksum verbos")),
        format!("kprobe: unexpected word \"verbos\" {usage}\n")
    );
    assert_eq!(
        answer(Ok("kprobe probe_kernel::demo::checksum verbose verbose x")),
        format!("kprobe: unexpected word \"verbose\" {usage}\nkprobe: unexpected word \"x\" {usage}\n")
    );
    assert_eq!(
        answer(Ok("kretprobe probe_kernel::demo::checksum 1")),
        "kretprobe: unexpected word \"1\" (usage: kretprobe SYMBOL [verbose])\n"
    );
    assert_eq!(answer(Ok("list all")), "list: unexpected word \"all\" (usage: list)\n");
    assert_eq!(answer(Ok("help me")), "help: unexpected word \"me\" (usage: help)\n");
    assert_eq!(answer(Ok("remove 0 1")), "remove: unexpected word \"1\" (usage: remove N)\n");
    assert_eq!(answer(Ok("demo now")), "demo: unexpected word \"now\" (usage: demo)\n");
    assert_eq!(answer(Ok("verbose")), "verbose: unknown command (try: help)\n");
    assert_eq!(answer(Ok("kprobe")), format!("kprobe: missing SYMBOL[+OFFSET] {usage}\n"));
    assert_eq!(answer(Ok("syms")), "syms: missing PATTERN (usage: syms PATTERN)\n");
    assert_eq!(answer(Ok("   ")), "");
    assert_eq!(site_count(), sites);
    // `verbose` in its place is fine.
    let listed = answer(Ok("kprobe probe_kernel::demo::checksum  verbose"));
    assert!(listed.starts_with("probe 0: kprobe at probe_kernel::demo::checksum+0x0 ("), "{listed}");
    assert_eq!(answer(Ok("remove 0")), "probe 0 removed\n");
}

#[test_case]
fn numbers_parse_strictly() {
    let target = symbols::lookup_name("console_test_target").expect("the naked target").address;
    core::hint::black_box(console_test_target as extern "C" fn());
    assert_eq!(answer(Ok("remove 1x")), "remove: bad probe number \"1x\" (a number from `list`)\n");
    assert_eq!(answer(Ok("enable +1")), "enable: bad probe number \"+1\" (a number from `list`)\n");
    assert_eq!(answer(Ok("disable 0x0")), "disable: bad probe number \"0x0\" (a number from `list`)\n");
    assert_eq!(answer(Ok("remove 4294967296")), "remove: probe number \"4294967296\" too large\n");
    assert_eq!(answer(Ok("remove 4294967295")), "remove: no probe 4294967295\n");
    assert_eq!(answer(Ok("kprobe console_test_target+1c")), "kprobe: bad offset \"1c\" (decimal or 0x-hex)\n");
    assert_eq!(answer(Ok("kprobe console_test_target+0x")), "kprobe: bad offset \"0x\" (decimal or 0x-hex)\n");
    assert_eq!(answer(Ok("kprobe console_test_target+")), "kprobe: bad offset \"\" (decimal or 0x-hex)\n");
    assert_eq!(answer(Ok("kprobe console_test_target+-1")), "kprobe: bad offset \"-1\" (decimal or 0x-hex)\n");
    assert_eq!(answer(Ok("kprobe console_test_target+0x100000000")), "kprobe: offset \"0x100000000\" too large\n");
    assert_eq!(answer(Ok("kprobe console_test_target+1+2")), "kprobe: bad offset \"1+2\" (decimal or 0x-hex)\n");
    assert_eq!(answer(Ok("kprobe no::such+0x1c")), "kprobe: no such symbol \"no::such\" (try: syms PATTERN)\n");
    assert_eq!(site_count(), 0);
    assert_eq!(
        answer(Ok("kprobe console_test_target+0x1c")),
        format!("probe 0: kprobe at console_test_target+0x1c ({:#x})\n", target + 0x1c)
    );
    assert_eq!(
        answer(Ok("kprobe console_test_target+28")),
        format!("probe 1: kprobe at console_test_target+0x1c ({:#x})\n", target + 0x1c)
    );
    assert_eq!(
        answer(Ok("kprobe console_test_target+0X1F")),
        format!("probe 2: kprobe at console_test_target+0x1f ({:#x})\n", target + 0x1f)
    );
    assert_eq!(site_count(), 2);
    assert_eq!(answer(Ok("remove 00")), "probe 0 removed\n");
    assert_eq!(answer(Ok("remove 1")), "probe 1 removed\n");
    assert_eq!(answer(Ok("remove 2")), "probe 2 removed\n");
    assert_eq!(site_count(), 0);
}

/// Runs `line` `times` times; every answer must start with `prefix`.
fn repeat(line: &str, times: usize, prefix: &[u8]) {
    let mut buffer = [0u8; 256];
    for _ in 0..times {
        console::capture_begin_silent();
        shell::execute(line);
        let answer = console::capture_end(&mut buffer);
        assert!(answer.starts_with(prefix), "{line}: {:?}", core::str::from_utf8(answer));
    }
}

#[test_case]
fn input_leaks_no_memory() {
    // No allocation of this test's own is live between the two readings.
    let heap = memory::heap_used();
    let arena = kretprobe_arena_used();
    // Issue 7: 31,795 refused `kprobe memcpy` lines exhausted the heap (60 B each).
    repeat("kprobe memcpy", 2000, b"kprobe: ");
    repeat("kprobe console_test_target+0x40", 500, b"kprobe: offset past");
    repeat("kretprobe probe_kernel::demo::checksum verbos", 500, b"kretprobe: ");
    assert_eq!(memory::heap_used(), heap);
    // 84 B per define/remove cycle.
    for _ in 0..300 {
        repeat("kprobe probe_kernel::demo::checksum", 1, b"probe 0: kprobe at ");
        repeat("kretprobe probe_kernel::demo::checksum", 1, b"probe 1: kretprobe on ");
        probe_kernel::demo::checksum(1);
        repeat("disable 1", 1, b"probe 1: disabled");
        repeat("remove 0", 1, b"probe 0 removed");
        repeat("remove 1", 1, b"probe 1 removed");
    }
    assert_eq!(memory::heap_used(), heap);
    assert_eq!(kretprobe_arena_used(), arena);
    assert_eq!(site_count(), 0);
    // A full table refuses, and that leaks nothing either.
    for number in 0..shell::MAX_SHELL_PROBES {
        repeat("kprobe probe_kernel::demo::checksum", 1, format!("probe {number}: ").as_bytes());
    }
    let full = memory::heap_used();
    repeat("kprobe probe_kernel::demo::checksum", 100, b"kprobe: all 16 shell probes in use");
    repeat("kretprobe probe_kernel::demo::checksum", 100, b"kretprobe: all 16 shell probes in use");
    assert_eq!(memory::heap_used(), full);
    for number in 0..shell::MAX_SHELL_PROBES {
        repeat(&format!("remove {number}"), 1, b"probe ");
    }
    assert_eq!(memory::heap_used(), heap);
    assert_eq!(site_count(), 0);
}

/// What the shell prints for `line` (as `answer`, for a well-formed line).
fn run(line: &str) -> String {
    answer(Ok(line))
}

#[test_case]
fn the_file_commands_read_the_tree_as_sh_would() {
    assert_eq!(run("cd /"), "");
    assert_eq!(run("pwd"), "/\n");
    assert_eq!(run("ls"), "proc  sys\n");
    assert_eq!(run("cd sys/kernel/debug/kprobes"), "");
    assert_eq!(run("pwd"), "/sys/kernel/debug/kprobes\n");
    assert_eq!(run("ls"), "blacklist  enabled  list\n");
    assert_eq!(run("ls list ../../../../proc"), "list\n../../../../proc:\nkallsyms\n");
    assert_eq!(run("cd list"), "cd: list: Not a directory\n");
    assert_eq!(run("cd nowhere"), "cd: nowhere: No such file or directory\n");
    assert_eq!(run("ls nowhere"), "ls: cannot access 'nowhere': No such file or directory\n");
    assert_eq!(run("cat nowhere"), "cat: nowhere: No such file or directory\n");
    assert_eq!(run("cat ."), "cat: .: Is a directory\n");
    assert_eq!(run("cd .."), "");
    assert_eq!(run("pwd"), "/sys/kernel/debug\n");
    assert_eq!(run("cd"), "");
    assert_eq!(run("pwd"), "/\n");
}

#[test_case]
fn echo_quotes_and_redirections_as_sh() {
    assert_eq!(run("echo 'a  b' \"c\\\"d\" e\\ f"), "a  b c\"d e f\n");
    assert_eq!(run("echo -n x"), "x");
    assert_eq!(run("echo 1 > /proc/kallsyms"), "sh: /proc/kallsyms: Permission denied\n");
    assert_eq!(run("echo 1 >> /nowhere"), "sh: /nowhere: No such file or directory\n");
    assert_eq!(run("echo 'unterminated"), "sh: unexpected end of line: no closing '\n");
    assert_eq!(
        run("cat /proc/kallsyms | head"),
        "sh: \"|\" is not supported here (no pipes, lists, variables or subshells); quote it to mean the character\n"
    );
    assert_eq!(run("list > x"), "list: output redirection is for echo and cat\n");
}

#[test_case]
fn the_kprobe_list_shows_every_registered_probe_as_linux_does() {
    let target = console_test_target as *const () as usize;
    run("kprobe console_test_target+4");
    let list = run("cat /sys/kernel/debug/kprobes/list");
    assert_eq!(list, format!("{:08x}  k  console_test_target+0x4    [OPTIMIZED][BOOSTED]\n", target + 4));
    run("disable 0");
    let list = run("cat /sys/kernel/debug/kprobes/list");
    assert_eq!(list, format!("{:08x}  k  console_test_target+0x4    [DISABLED]\n", target + 4));
    run("remove 0");
    assert_eq!(run("cat /sys/kernel/debug/kprobes/list"), "");
}

#[test_case]
fn the_blacklist_names_the_trap_path() {
    // Read directly: the whole file is more than the console capture holds.
    let blacklist = probe_kernel::tracefs::read("/sys/kernel/debug/kprobes/blacklist").expect("a file");
    let lines: Vec<&str> = blacklist.lines().collect();
    assert_eq!(lines.len(), probe_kernel::kprobes::blacklisted_functions().len());
    assert!(blacklist.contains("\tprobe_engine::handler::not_a_site\n"), "{}", &blacklist[..200.min(blacklist.len())]);
    for line in lines {
        let (range, _name) = line.split_once('\t').expect("RANGE\\tNAME");
        let (start, end) = range.split_once('-').expect("START-END");
        let parse = |s: &str| usize::from_str_radix(s.trim_start_matches("0x"), 16).expect("hex");
        assert!(parse(start) <= parse(end), "{line}");
    }
}

#[test_case]
fn kprobe_events_define_enable_count_and_remove_as_in_linux() {
    // The first round warms what the kernel allocates once (the engine's
    // and the symbol table's caches); the second must give every byte back.
    events_round();
    let heap = memory::heap_used();
    events_round();
    assert_eq!(memory::heap_used(), heap, "every event's memory went back");
}

fn events_round() {
    assert_eq!(run("cd /sys/kernel/tracing"), "");
    assert_eq!(run("echo 'p:myprobe console_test_target+4' > kprobe_events"), "");
    assert_eq!(run("echo 'r:myret console_test_target' >> kprobe_events"), "");
    assert_eq!(
        run("cat kprobe_events"),
        "p:kprobes/myprobe console_test_target+4\nr:kprobes/myret console_test_target\n"
    );
    assert_eq!(run("ls events/kprobes"), "enable  myprobe  myret\n");
    assert_eq!(run("ls events/kprobes/myprobe"), "enable  filter  format  hist  hist_bars  trigger\n");
    assert!(run("cat events/kprobes/myprobe/format").starts_with("name: myprobe\nID: "));
    assert_eq!(run("cat events/kprobes/myprobe/enable"), "0\n");
    // Defined but disabled: hits are not counted.
    console_test_target();
    assert_eq!(
        run("cat kprobe_profile"),
        format!("  {:<44} {:>15} {:>15}\n  {:<44} {:>15} {:>15}\n", "myprobe", 0, 0, "myret", 0, 0)
    );
    assert_eq!(run("echo 1 > events/kprobes/myprobe/enable"), "");
    assert_eq!(run("cat events/kprobes/enable"), "X\n");
    assert_eq!(run("echo 1 > events/kprobes/enable"), "");
    for _ in 0..3 {
        console_test_target();
    }
    assert_eq!(
        run("cat kprobe_profile"),
        format!("  {:<44} {:>15} {:>15}\n  {:<44} {:>15} {:>15}\n", "myprobe", 3, 0, "myret", 3, 0)
    );
    // Both show in the engine's list of every probe.
    let list = run("cat /sys/kernel/debug/kprobes/list");
    assert_eq!(list.lines().count(), 2, "{list}");
    // `>` is refused while an event is enabled, as Linux.
    assert_eq!(run("echo > kprobe_events"), "echo: write error: Device or resource busy\n");
    assert_eq!(run("echo 0 > events/kprobes/enable"), "");
    assert_eq!(run("echo '-:myprobe' >> kprobe_events"), "");
    assert_eq!(run("cat kprobe_events"), "r:kprobes/myret console_test_target\n");
    assert_eq!(run("echo > kprobe_events"), "");
    assert_eq!(run("cat kprobe_events"), "");
    assert_eq!(run("cat /sys/kernel/debug/kprobes/list"), "");
    assert_eq!(site_count(), 0);
    assert_eq!(run("cd /"), "");
}

#[test_case]
fn refused_definitions_land_in_error_log_with_linux_text_and_caret() {
    assert_eq!(run("echo > /sys/kernel/tracing/error_log"), "");
    assert_eq!(
        run("echo 'p:bad console_test_target %none' >> /sys/kernel/tracing/kprobe_events"),
        "echo: write error: Invalid argument\n"
    );
    let log = run("cat /sys/kernel/tracing/error_log");
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 3, "{log}");
    assert!(lines[0].ends_with("] trace_kprobe: error: Invalid register name"), "{log}");
    assert_eq!(lines[1], "  Command: p:bad console_test_target %none");
    // The caret sits under the bad argument.
    assert_eq!(lines[2].find('^'), lines[1].find("%none"), "{log}");
    assert_eq!(
        run("echo 'p:bad no_such_function_anywhere' >> /sys/kernel/tracing/kprobe_events"),
        "echo: write error: Invalid argument\n"
    );
    let log = run("cat /sys/kernel/tracing/error_log");
    assert!(
        log.contains("error: Invalid probed address or symbol\n  Command: p:bad no_such_function_anywhere\n"),
        "{log}"
    );
    assert_eq!(run("cat /sys/kernel/tracing/kprobe_events"), "");
    assert_eq!(run("echo > /sys/kernel/tracing/error_log"), "");
    assert_eq!(run("cat /sys/kernel/tracing/error_log"), "");
}

/// `eax = a; eax += 1; return`: a probe at +4 (the `inc`) sees the
/// argument in EAX.
#[unsafe(naked)]
#[unsafe(no_mangle)]
pub extern "C" fn trace_target(a: u32) -> u32 {
    core::arch::naked_asm!("mov eax, [esp + 4]", "inc eax", "ret");
}

/// A trace line with its (right-aligned) timestamp replaced by ` T` (it
/// is the TSC's, not repeatable without `-icount`).
fn untimed(line: &str) -> String {
    match line.find(": ").and_then(|colon| Some((line[..colon].rfind(' ')? + 1, colon))) {
        Some((start, colon)) if !line.starts_with('#') => {
            format!("{} T{}", line[..start].trim_end(), &line[colon..])
        }
        _ => String::from(line),
    }
}

// Never inlined into the harness's `Testable::run`, so the return
// events name this function as where `trace_target` returned to.
#[test_case]
#[inline(never)]
fn events_record_their_arguments_into_trace_and_trace_pipe() {
    let tracing = |file: &str| format!("/sys/kernel/tracing/{file}");
    // On CPU 0 throughout, so every line says [000].
    probe_kernel::task::set_affinity(Some(0));
    assert_eq!(run(&format!("echo 'p:myprobe trace_target+4 a=%ax c=$comm' > {}", tracing("kprobe_events"))), "");
    assert_eq!(run(&format!("echo 'r:myret trace_target ret=$retval' >> {}", tracing("kprobe_events"))), "");
    assert_eq!(run(&format!("echo > {}", tracing("trace"))), "");
    assert_eq!(run(&format!("echo 1 > {}", tracing("events/kprobes/enable"))), "");
    assert_eq!(trace_target(core::hint::black_box(42)), 43);
    assert_eq!(trace_target(core::hint::black_box(7)), 8);
    assert_eq!(run(&format!("echo 0 > {}", tracing("tracing_on"))), "");
    assert_eq!(trace_target(core::hint::black_box(1)), 2, "not recorded: tracing is off");
    assert_eq!(run(&format!("echo 1 > {}", tracing("tracing_on"))), "");
    assert_eq!(run(&format!("echo 0 > {}", tracing("events/kprobes/enable"))), "");
    let trace = run(&format!("cat {}", tracing("trace")));
    let lines: Vec<String> = trace.lines().map(untimed).collect();
    assert_eq!(lines[0], "# tracer: nop");
    let cpus = probe_kernel::arch::x86::smp::online_cpus();
    assert_eq!(lines[2], format!("# entries-in-buffer/entries-written: 4/4   #P:{cpus}"));
    let task = probe_kernel::task::current_id();
    let comm = format!("{:>16}-{task:<7}", probe_kernel::task::task_name(task).unwrap());
    // What precedes the return's offset: the line up to its `+0x`.
    let caller = |line: &str| {
        line.split(" <- ")
            .next()
            .and_then(|head| Some(String::from(&head[..head.rfind("+0x")? + 3])))
            .unwrap_or_default()
    };
    let events: Vec<&String> = lines.iter().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(events.len(), 4, "{trace}");
    assert_eq!(*events[0], format!("{comm} [000] d.... T: myprobe: (trace_target+0x4/0x6) a=0x2a c=\"boot\""));
    assert!(events[1].starts_with(&format!("{comm} [000] d.... T: myret: (")), "{trace}");
    assert!(events[1].ends_with(" <- trace_target) ret=0x2b"), "{trace}");
    assert_eq!(*events[2], format!("{comm} [000] d.... T: myprobe: (trace_target+0x4/0x6) a=0x7 c=\"boot\""));
    assert!(events[3].ends_with(" <- trace_target) ret=0x8"), "{trace}");
    // A return shows where it returned to: into this test.
    for event in [events[1], events[3]] {
        assert!(
            caller(event).ends_with("myret: (console::events_record_their_arguments_into_trace_and_trace_pipe+0x"),
            "{event}"
        );
    }
    // trace_pipe takes them out; the trace then holds none.
    let piped: Vec<String> = run(&format!("cat {}", tracing("trace_pipe"))).lines().map(untimed).collect();
    assert_eq!(piped.iter().collect::<Vec<_>>(), events);
    assert_eq!(run(&format!("cat {}", tracing("trace_pipe"))), "");
    let after = run(&format!("cat {}", tracing("trace")));
    // As Linux: read events leave both counts (entries-written is the
    // entries plus the overwritten).
    assert!(after.contains("# entries-in-buffer/entries-written: 0/0 "), "{after}");
    assert_eq!(run(&format!("echo > {}", tracing("kprobe_events"))), "");
    probe_kernel::task::set_affinity(None);
}

/// What `regs_target` saw just before its probed instruction.
static REGS_SP: AtomicU32 = AtomicU32::new(0);
static REGS_FLAGS: AtomicU32 = AtomicU32::new(0);
static REGS_CS: AtomicU32 = AtomicU32::new(0);
/// Its DS, ES, FS, GS and SS, in that order.
static REGS_SEGMENTS: [AtomicU32; 5] = [const { AtomicU32::new(0) }; 5];

/// Gives every general register a value of its own, notes ESP, EFLAGS and
/// the segment registers, then reaches `regs_target_probe` (a `nop`, with
/// five relocatable bytes from it: optimizable).
#[unsafe(naked)]
#[unsafe(no_mangle)]
pub extern "C" fn regs_target() {
    core::arch::naked_asm!(
        "push ebp",
        "push ebx",
        "push esi",
        "push edi",
        "mov eax, 0xa0a0a0a0",
        "mov ebx, 0xb0b0b0b0",
        "mov ecx, 0xc0c0c0c0",
        "mov edx, 0xd0d0d0d0",
        "mov esi, 0x51515151",
        "mov edi, 0xd1d1d1d1",
        "mov ebp, 0xb9b9b9b9",
        "mov [{sp}], esp",
        "pushfd",
        "pop dword ptr [{flags}]",
        "mov [{cs}], cs",
        "mov [{segments}], ds",
        "mov [{segments} + 4], es",
        "mov [{segments} + 8], fs",
        "mov [{segments} + 12], gs",
        "mov [{segments} + 16], ss",
        ".global regs_target_probe",
        "regs_target_probe:",
        "nop",
        "pop edi",
        "pop esi",
        "pop ebx",
        "pop ebp",
        "ret",
        sp = sym REGS_SP,
        flags = sym REGS_FLAGS,
        cs = sym REGS_CS,
        segments = sym REGS_SEGMENTS,
    );
}

/// Every register name of `kprobe_events` fetches that register of the
/// probed code, through each way a record is made (a few numbers, up to
/// 48 bytes of numbers, the interpreter) and both lanes (int3 and jump
/// optimized).
#[test_case]
fn every_register_fetches_its_own_value() {
    let tracing = |file: &str| format!("/sys/kernel/tracing/{file}");
    unsafe extern "C" {
        static regs_target_probe: u8;
    }
    let probe = &raw const regs_target_probe as usize;
    let offset = probe - regs_target as *const () as usize;
    let size = symbols::lookup_name("regs_target").unwrap().size;
    let events = [
        ("few", "ax=%ax bx=%bx sp=%sp"),
        ("mid", "ax=%ax bx=%bx cx=%cx dx=%dx si=%si di=%di bp=%bp ip=%ip"),
        (
            "all",
            "ax=%ax bx=%bx cx=%cx dx=%dx si=%si di=%di bp=%bp sp=%sp ip=%ip flags=%flags cs=%cs \
             orig_ax=%orig_ax ds=%ds es=%es fs=%fs gs=%gs ss=%ss",
        ),
    ];
    probe_kernel::task::set_affinity(Some(0));
    for optimized in [false, true] {
        probe_kernel::kprobes::set_optimization(optimized).unwrap();
        assert_eq!(run(&format!("echo > {}", tracing("trace"))), "");
        for (name, args) in events {
            let define = format!("echo 'p:{name} regs_target+{offset} {args}' >> {}", tracing("kprobe_events"));
            assert_eq!(run(&define), "", "{define}");
        }
        assert_eq!(run(&format!("echo 1 > {}", tracing("events/kprobes/enable"))), "");
        let list = run("cat /sys/kernel/debug/kprobes/list");
        assert_eq!(list.contains("[OPTIMIZED]"), optimized, "{list}");
        regs_target();
        assert_eq!(run(&format!("echo 0 > {}", tracing("events/kprobes/enable"))), "");
        let value = |name: &str| -> u32 {
            match name {
                "ax" => 0xa0a0_a0a0,
                "bx" => 0xb0b0_b0b0,
                "cx" => 0xc0c0_c0c0,
                "dx" => 0xd0d0_d0d0,
                "si" => 0x5151_5151,
                "di" => 0xd1d1_d1d1,
                "bp" => 0xb9b9_b9b9,
                "sp" => REGS_SP.load(Ordering::SeqCst),
                "ip" => probe as u32,
                "flags" => REGS_FLAGS.load(Ordering::SeqCst),
                "cs" => REGS_CS.load(Ordering::SeqCst) & 0xffff,
                // A breakpoint has no error code.
                "orig_ax" => 0,
                segment => {
                    let index = ["ds", "es", "fs", "gs", "ss"].iter().position(|s| *s == segment).unwrap();
                    REGS_SEGMENTS[index].load(Ordering::SeqCst) & 0xffff
                }
            }
        };
        let trace = run(&format!("cat {}", tracing("trace")));
        let got: Vec<&str> =
            trace.lines().filter(|l| !l.starts_with('#')).map(|l| &l[l.find(": ").unwrap() + 2..]).collect();
        let expected: Vec<String> = events
            .iter()
            .map(|(name, args)| {
                let fields: Vec<String> = args
                    .split(' ')
                    .map(|arg| {
                        let field = &arg[..arg.find('=').unwrap()];
                        format!("{field}={:#x}", value(field))
                    })
                    .collect();
                format!("{name}: (regs_target+{offset:#x}/{size:#x}) {}", fields.join(" "))
            })
            .collect();
        assert_eq!(got, expected, "optimized: {optimized}");
        assert_eq!(run(&format!("echo > {}", tracing("kprobe_events"))), "");
    }
    probe_kernel::kprobes::set_optimization(true).unwrap();
    probe_kernel::task::set_affinity(None);
}

#[test_case]
fn dynamic_events_take_fprobe_events_and_ambiguous_names_list_their_candidates() {
    let tracing = |file: &str| format!("/sys/kernel/tracing/{file}");
    assert_eq!(run(&format!("echo > {}", tracing("trace"))), "");
    assert_eq!(run(&format!("echo 'f:fent demo::checksum s=$arg1' >> {}", tracing("dynamic_events"))), "");
    assert_eq!(run(&format!("echo 'f:fret demo::checksum%return r=$retval' >> {}", tracing("dynamic_events"))), "");
    assert_eq!(run(&format!("echo 'p:kp trace_target' >> {}", tracing("kprobe_events"))), "");
    assert_eq!(
        run(&format!("cat {}", tracing("dynamic_events"))),
        "f:fprobes/fent demo::checksum s=$arg1\nf:fprobes/fret demo::checksum%return r=$retval\np:kprobes/kp trace_target\n"
    );
    // kprobe_events shows, and `>` clears, only kprobe events.
    assert_eq!(run(&format!("cat {}", tracing("kprobe_events"))), "p:kprobes/kp trace_target\n");
    assert_eq!(run(&format!("echo > {}", tracing("kprobe_events"))), "");
    assert_eq!(run(&format!("echo 1 > {}", tracing("events/fprobes/enable"))), "");
    assert_eq!(probe_kernel::demo::checksum(core::hint::black_box(9)), probe_kernel::demo::checksum(9));
    assert_eq!(run(&format!("echo 0 > {}", tracing("events/fprobes/enable"))), "");
    let trace = run(&format!("cat {}", tracing("trace")));
    let entries = trace.lines().filter(|l| l.contains(" fent: (probe_kernel::demo::checksum+0x0/0x2a) s=0x9")).count();
    let returns = trace.lines().filter(|l| l.contains(" <- probe_kernel::demo::checksum) r=0x")).count();
    // Two calls above (the checked one and its expected value), both traced.
    assert_eq!((entries, returns), (2, 2), "{trace}");
    assert_eq!(run(&format!("echo > {}", tracing("dynamic_events"))), "");
    assert_eq!(run(&format!("cat {}", tracing("dynamic_events"))), "");
    // `checksum` alone names several functions: refused, with the candidates.
    let answer = run(&format!("echo 'p checksum' >> {}", tracing("kprobe_events")));
    let (hint, error) = answer.split_once('\n').expect("two lines");
    assert!(hint.starts_with("\"checksum\" could be: ") && hint.contains("probe_kernel::demo::checksum"), "{answer}");
    assert_eq!(error, "echo: write error: Invalid argument\n");
}

/// The byte at `console_test_target` now: its original `nop`, or the
/// breakpoint (or jump) of an armed probe.
fn target_byte() -> u8 {
    probe_kernel::testing::text_byte(console_test_target as *const () as usize)
}

/// An event's hit count from `kprobe_profile`.
fn hits(event: &str) -> u64 {
    let profile = run("cat /sys/kernel/tracing/kprobe_profile");
    let line = profile.lines().find(|line| line.split_whitespace().next() == Some(event)).expect("event listed");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test_case]
fn debug_kprobes_enabled_disarms_and_rearms_every_probe_keeping_their_state() {
    let tracing = |file: &str| format!("/sys/kernel/tracing/{file}");
    let enabled = "/sys/kernel/debug/kprobes/enabled";
    assert_eq!(run(&format!("cat {enabled}")), "1\n");
    assert_eq!(run(&format!("echo 'p:armed console_test_target' > {}", tracing("kprobe_events"))), "");
    assert_eq!(run(&format!("echo 'p:idle console_test_target+4' >> {}", tracing("kprobe_events"))), "");
    assert_eq!(run(&format!("echo 1 > {}", tracing("events/kprobes/armed/enable"))), "");
    assert_ne!(target_byte(), 0x90, "armed");
    console_test_target();
    assert_eq!((hits("armed"), hits("idle")), (1, 0));
    // Disarmed: the original byte, no hits, every probe still listed.
    assert_eq!(run(&format!("echo 0 > {enabled}")), "");
    assert_eq!(run(&format!("cat {enabled}")), "0\n");
    assert_eq!(target_byte(), 0x90);
    console_test_target();
    assert_eq!(hits("armed"), 1);
    assert_eq!(run("cat /sys/kernel/debug/kprobes/list").lines().count(), 2);
    // Enabling an event meanwhile arms nothing yet.
    assert_eq!(run(&format!("echo 1 > {}", tracing("events/kprobes/idle/enable"))), "");
    console_test_target();
    assert_eq!((hits("armed"), hits("idle")), (1, 0));
    // Armed again: both enabled probes hit, each once per call.
    assert_eq!(run(&format!("echo 1 > {enabled}")), "");
    assert_ne!(target_byte(), 0x90);
    console_test_target();
    assert_eq!((hits("armed"), hits("idle")), (2, 1));
    // A disabled probe stays disabled through a re-arm.
    assert_eq!(run(&format!("echo 0 > {}", tracing("events/kprobes/idle/enable"))), "");
    assert_eq!(run(&format!("echo N > {enabled}")), "");
    assert_eq!(run(&format!("echo Y > {enabled}")), "");
    console_test_target();
    assert_eq!((hits("armed"), hits("idle")), (3, 1));
    assert_eq!(run(&format!("echo maybe > {enabled}")), "echo: write error: Invalid argument\n");
    assert_eq!(run(&format!("echo 0 > {}", tracing("events/kprobes/enable"))), "");
    assert_eq!(run(&format!("echo > {}", tracing("kprobe_events"))), "");
    assert_eq!(target_byte(), 0x90);
    assert_eq!(site_count(), 0);
}

#[test_case]
fn buffer_size_kb_and_overwrite_shape_the_ring() {
    let tracing = |file: &str| format!("/sys/kernel/tracing/{file}");
    probe_kernel::task::set_affinity(Some(0));
    assert_eq!(run(&format!("cat {}", tracing("buffer_size_kb"))), "16\n");
    assert_eq!(run(&format!("echo 1 > {}", tracing("buffer_size_kb"))), "");
    assert_eq!(run(&format!("cat {}", tracing("buffer_size_kb"))), "1\n");
    for bad in ["0", "100000", "lots"] {
        assert_eq!(
            run(&format!("echo {bad} > {}", tracing("buffer_size_kb"))),
            "echo: write error: Invalid argument\n"
        );
    }
    assert_eq!(run(&format!("echo 'p:sized trace_target+4 a=%ax' > {}", tracing("kprobe_events"))), "");
    assert_eq!(run(&format!("echo > {}", tracing("trace"))), "");
    assert_eq!(run(&format!("echo 1 > {}", tracing("events/kprobes/sized/enable"))), "");
    // 1 KiB holds fewer than 200 records: overwrite keeps the newest.
    assert_eq!(run(&format!("cat {}", tracing("options/overwrite"))), "1\n");
    for value in 0..200 {
        trace_target(core::hint::black_box(value));
    }
    let kept: Vec<String> = run(&format!("cat {}", tracing("trace_pipe"))).lines().map(String::from).collect();
    assert!(!kept.is_empty() && kept.len() < 200, "{}", kept.len());
    assert!(kept.last().unwrap().ends_with(" a=0xc7"), "the newest (199) is kept");
    // Stop mode keeps the oldest and drops what does not fit.
    assert_eq!(run(&format!("echo 0 > {}", tracing("options/overwrite"))), "");
    for value in 0..200 {
        trace_target(core::hint::black_box(value));
    }
    let stopped: Vec<String> = run(&format!("cat {}", tracing("trace_pipe"))).lines().map(String::from).collect();
    assert!(stopped[0].ends_with(" a=0x0"), "the oldest (0) is kept: {}", stopped[0]);
    // Overwriting frees a batch (a sixteenth of the 256-word ring) beyond
    // the record once it must claim: it keeps the newest records, all of
    // them in a row, at most a batch fewer than stop mode fills the ring
    // with.
    let record_words = 256 / stopped.len();
    let batch = probe_kernel::tracefs::trace::overwrite_batch(256).div_ceil(record_words);
    assert!(kept.len() <= stopped.len() && kept.len() + batch >= stopped.len(), "{} {}", kept.len(), stopped.len());
    for (line, value) in kept.iter().zip(200 - kept.len()..) {
        assert!(line.ends_with(&format!(" a={value:#x}")), "newest in a row: {line} for {value}");
    }
    assert_eq!(run(&format!("echo 1 > {}", tracing("options/overwrite"))), "");
    assert_eq!(run(&format!("echo 2 > {}", tracing("options/overwrite"))), "echo: write error: Invalid argument\n");
    assert_eq!(run(&format!("echo 0 > {}", tracing("events/kprobes/sized/enable"))), "");
    assert_eq!(run(&format!("echo > {}", tracing("kprobe_events"))), "");
    assert_eq!(run(&format!("echo 16 > {}", tracing("buffer_size_kb"))), "");
    probe_kernel::task::set_affinity(None);
}

#[test_case]
fn an_unknown_name_suggests_the_nearest_functions() {
    let answer = run("echo 'p:typo demo::chekcsum' > /sys/kernel/tracing/kprobe_events");
    let mut lines = answer.lines();
    let hint = lines.next().unwrap_or_default();
    assert!(hint.starts_with("no function \"demo::chekcsum\"; did you mean: probe_kernel::demo::checksum"), "{answer}");
    assert_eq!(lines.next(), Some("echo: write error: Invalid argument"));
    // An existing name with a bad offset (inside an instruction) gets no
    // suggestion.
    core::hint::black_box(console_long_first as extern "C" fn() -> u32);
    assert_eq!(
        run("echo 'p:typo console_long_first+2' > /sys/kernel/tracing/kprobe_events"),
        "echo: write error: Invalid or incomplete multibyte or wide character\n"
    );
    assert_eq!(run("cat /sys/kernel/tracing/kprobe_events"), "");
}

// Never inlined, so the stack trace's frame after this test's is the
// harness's.
#[test_case]
#[inline(never)]
fn filters_triggers_and_histograms_as_linux() {
    let tracing = |file: &str| format!("/sys/kernel/tracing/{file}");
    let event = |file: &str| format!("/sys/kernel/tracing/events/kprobes/filt/{file}");
    probe_kernel::task::set_affinity(Some(0));
    assert_eq!(run(&format!("echo 'p:filt trace_target+4 a=%ax' > {}", tracing("kprobe_events"))), "");
    assert_eq!(run("ls /sys/kernel/tracing/events/kprobes/filt"), "enable  filter  format  hist  hist_bars  trigger\n");
    assert_eq!(run(&format!("cat {}", event("filter"))), "none\n");
    assert_eq!(run(&format!("echo 'a > 5 && a < 9' > {}", event("filter"))), "");
    assert_eq!(run(&format!("cat {}", event("filter"))), "a > 5 && a < 9\n");
    // A refused filter changes nothing and says why in error_log.
    assert_eq!(run(&format!("echo > {}", tracing("error_log"))), "");
    assert_eq!(run(&format!("echo 'nosuch == 1' > {}", event("filter"))), "echo: write error: Invalid argument\n");
    // As Linux, the file then shows the refused text with its error; the
    // filter in force stays the one before (checked by the records below).
    assert_eq!(run(&format!("cat {}", event("filter"))), "nosuch == 1\n       ^\nparse_error: Field not found\n\n");
    let log = run(&format!("cat {}", tracing("error_log")));
    assert!(log.contains("Field not found"), "{log}");
    assert_eq!(run(&format!("echo 'hist:keys=a' > {}", event("trigger"))), "");
    assert_eq!(run(&format!("echo 'traceoff if a == 10' >> {}", event("trigger"))), "");
    assert_eq!(run(&format!("echo > {}", tracing("trace"))), "");
    assert_eq!(run(&format!("echo 1 > {}", event("enable"))), "");
    for value in 0..12 {
        trace_target(core::hint::black_box(value));
    }
    // The filter let 6, 7 and 8 into the trace; every hit counted.
    let trace = run(&format!("cat {}", tracing("trace")));
    let recorded: Vec<&str> = trace.lines().filter(|line| !line.starts_with('#')).collect();
    assert_eq!(recorded.len(), 3, "{trace}");
    for (line, value) in recorded.iter().zip(["0x6", "0x7", "0x8"]) {
        assert!(line.ends_with(&format!(" a={value}")), "{line}");
    }
    assert_eq!(hits("filt"), 12);
    // The histogram saw every hit (the filter is the recording's, not the
    // triggers'), one entry per value.
    let hist = run(&format!("cat {}", event("hist")));
    assert!(
        hist.starts_with(
            "# event histogram\n#\n# trigger info: hist:keys=a:vals=hitcount:sort=hitcount:size=2048 [active]\n"
        ),
        "{hist}"
    );
    assert!(hist.contains("\nTotals:\n    Hits: 12\n    Entries: 12\n    Dropped: 0\n"), "{hist}");
    // traceoff fired at a == 10: tracing is off.
    assert_eq!(run(&format!("cat {}", tracing("tracing_on"))), "0\n");
    assert_eq!(run(&format!("echo 1 > {}", tracing("tracing_on"))), "");
    assert_eq!(
        run(&format!("cat {}", event("trigger"))),
        "traceoff:unlimited if a == 10\nhist:keys=a:vals=hitcount:sort=hitcount:size=2048 [active]\n"
    );
    // A stack trace where a == 7, after its record.
    assert_eq!(run(&format!("echo '!traceoff if a == 10' >> {}", event("trigger"))), "");
    assert_eq!(run(&format!("echo 'stacktrace if a == 7' >> {}", event("trigger"))), "");
    assert_eq!(run(&format!("echo > {}", tracing("trace"))), "");
    trace_target(core::hint::black_box(7));
    let trace = run(&format!("cat {}", tracing("trace")));
    let lines: Vec<&str> = trace.lines().filter(|line| !line.starts_with('#')).collect();
    assert!(lines[0].ends_with(" a=0x7"), "{trace}");
    assert!(lines[1].ends_with(": <stack trace>"), "{trace}");
    // From the probed instruction out, through the frame chain (the
    // naked target has no frame of its own: its caller's, this test's,
    // is skipped, and the next is in the harness: `run_tests`, or
    // `Testable::run` where the compiler keeps that wrapper's frame).
    assert_eq!(lines[2], " => trace_target+0x4/0x6", "{trace}");
    assert!(
        lines[3].starts_with(" => probe_kernel::testing::run_tests+0x")
            || lines[3].starts_with(
                " => <console::filters_triggers_and_histograms_as_linux as probe_kernel::testing::Testable>::run+0x"
            ),
        "{trace}"
    );
    // Removing a trigger that is not there: ENOENT; clearing the filter.
    assert_eq!(
        run(&format!("echo '!traceon' >> {}", event("trigger"))),
        "echo: write error: No such file or directory\n"
    );
    assert_eq!(run(&format!("echo 0 > {}", event("filter"))), "");
    assert_eq!(run(&format!("cat {}", event("filter"))), "none\n");
    assert_eq!(run(&format!("echo 0 > {}", event("enable"))), "");
    assert_eq!(run(&format!("echo > {}", tracing("kprobe_events"))), "");
    probe_kernel::task::set_affinity(None);
}

/// Spins for about `n` iterations: a function whose cost is known.
#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn timed_work(n: u32) -> u32 {
    let mut sum = 0u32;
    for i in 0..n {
        sum = core::hint::black_box(sum.wrapping_add(i));
    }
    sum
}

#[test_case]
fn a_duration_histogram_of_a_function_draws_log2_bars() {
    let tracing = |file: &str| format!("/sys/kernel/tracing/{file}");
    let event = |file: &str| format!("/sys/kernel/tracing/events/kprobes/lat/{file}");
    assert_eq!(run(&format!("echo 'r:lat timed_work d=$duration' > {}", tracing("kprobe_events"))), "");
    assert_eq!(run(&format!("echo 'hist:keys=d.log2' > {}", event("trigger"))), "");
    assert_eq!(run(&format!("echo 1 > {}", event("enable"))), "");
    for _ in 0..10 {
        timed_work(core::hint::black_box(100));
    }
    timed_work(core::hint::black_box(100_000));
    let hist = run(&format!("cat {}", event("hist")));
    assert!(hist.contains("\nTotals:\n    Hits: 11\n"), "{hist}");
    let bars = run(&format!("cat {}", event("hist_bars")));
    let rows: Vec<&str> = bars.lines().filter(|line| line.contains('|')).collect();
    // The ten short calls share a bucket or two; the long one is far above.
    let counts: u64 = rows
        .iter()
        .map(|row| row.split('|').next().unwrap().split_whitespace().last().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(counts, 11, "{bars}");
    assert!(rows.iter().any(|row| row.contains('@')), "{bars}");
    assert_eq!(run(&format!("echo 0 > {}", event("enable"))), "");
    assert_eq!(run(&format!("echo '!hist:keys=d.log2' >> {}", event("trigger"))), "");
    assert_eq!(run(&format!("echo > {}", tracing("kprobe_events"))), "");
}

/// `do_sys_open` of kprobetrace.rst's examples, as i386 passes it there:
/// `dfd`, `filename` and `flags` in EAX, EDX and ECX, `mode` on the stack.
/// Returns -2 (`-ENOENT`), as the documented trace's first call does.
#[unsafe(naked)]
#[unsafe(no_mangle)]
pub extern "C" fn rst_open() {
    core::arch::naked_asm!("mov eax, -2", "ret");
}

/// Calls [`rst_open`] with the documented trace's first arguments (never
/// inlined: the return events name it as where `rst_open` returned to).
#[inline(never)]
fn call_rst_open(dfd: u32, filename: u32, flags: u32, mode: u32) -> u32 {
    let result: u32;
    // SAFETY: `rst_open` changes only EAX and returns; the pushed word is
    // popped after the call; ECX and EDX are declared clobbered.
    unsafe {
        core::arch::asm!(
            "push {mode}",
            "call {open}",
            "add esp, 4",
            mode = in(reg) mode,
            open = sym rst_open,
            inout("eax") dfd => result,
            inout("edx") filename => _,
            inout("ecx") flags => _,
        );
    }
    result
}

#[test_case]
fn the_kprobetrace_rst_usage_examples_work_as_written() {
    let tracing = |file: &str| format!("/sys/kernel/tracing/{file}");
    probe_kernel::task::set_affinity(Some(0));
    assert_eq!(
        run(&format!(
            "echo 'p:myprobe rst_open dfd=%ax filename=%dx flags=%cx mode=+4($stack)' > {}",
            tracing("kprobe_events")
        )),
        ""
    );
    assert_eq!(run(&format!("echo 'r:myretprobe rst_open $retval' >> {}", tracing("kprobe_events"))), "");
    let format = run(&format!("cat {}", tracing("events/kprobes/myprobe/format")));
    assert!(format.starts_with("name: myprobe\nID: "), "{format}");
    for (field, offset) in [("dfd", 12), ("filename", 16), ("flags", 20), ("mode", 24)] {
        assert!(
            format.contains(&format!("\tfield:u32 {field};\toffset:{offset};\tsize:4;\tsigned:0;\n")),
            "{field}: {format}"
        );
    }
    assert!(
        format.ends_with(
            "print fmt: \"(%lx) dfd=0x%x filename=0x%x flags=0x%x mode=0x%x\", REC->__probe_ip, REC->dfd, \
             REC->filename, REC->flags, REC->mode\n"
        ),
        "{format}"
    );
    assert_eq!(run(&format!("echo 1 > {}", tracing("events/kprobes/myprobe/enable"))), "");
    assert_eq!(run(&format!("echo 1 > {}", tracing("events/kprobes/myretprobe/enable"))), "");
    assert_eq!(run(&format!("echo > {}", tracing("trace"))), "");
    assert_eq!(run(&format!("echo 1 > {}", tracing("tracing_on"))), "");
    assert_eq!(call_rst_open(3, 0x7fff_d1ec, 0x8000, 0), -2i32 as u32);
    assert_eq!(call_rst_open(0xffff_ff9c, 0x0040_413c, 0x8000, 0x1b6), -2i32 as u32);
    assert_eq!(run(&format!("echo 0 > {}", tracing("tracing_on"))), "");
    call_rst_open(1, 2, 3, 4);
    let trace = run(&format!("cat {}", tracing("trace")));
    let lines: Vec<String> = trace.lines().filter(|line| !line.starts_with('#')).map(untimed).collect();
    assert_eq!(lines.len(), 4, "{trace}");
    assert!(
        lines[0].ends_with(": myprobe: (rst_open+0x0/0x6) dfd=0x3 filename=0x7fffd1ec flags=0x8000 mode=0x0"),
        "{trace}"
    );
    assert!(lines[1].ends_with(" <- rst_open) arg1=0xfffffffe"), "{trace}");
    assert!(lines[1].contains(": myretprobe: (console::call_rst_open+0x"), "{trace}");
    assert!(
        lines[2].ends_with(": myprobe: (rst_open+0x0/0x6) dfd=0xffffff9c filename=0x40413c flags=0x8000 mode=0x1b6"),
        "{trace}"
    );
    assert!(lines[3].ends_with(" <- rst_open) arg1=0xfffffffe"), "{trace}");
    assert_eq!(run(&format!("echo 1 > {}", tracing("tracing_on"))), "");
    // "echo -:myprobe >> kprobe_events clears probe points selectively."
    assert_eq!(run(&format!("echo 0 > {}", tracing("events/kprobes/enable"))), "");
    assert_eq!(run(&format!("echo -:myprobe >> {}", tracing("kprobe_events"))), "");
    assert_eq!(run(&format!("cat {}", tracing("kprobe_events"))), "r:kprobes/myretprobe rst_open arg1=$retval\n");
    assert_eq!(run(&format!("echo > {}", tracing("kprobe_events"))), "");
    assert_eq!(site_count(), 0);
    probe_kernel::task::set_affinity(None);
}
