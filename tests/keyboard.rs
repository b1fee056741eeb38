//! Test kernel: the shell driven from the PS/2 keyboard, with keys a real
//! keyboard sends: `boot/run.sh` types `tests/keyboard.keys` through QEMU's
//! monitor (`sendkey`) once this kernel says it is ready, and the keyboard
//! interrupt turns the scancodes into the console's input.
//!
//! Why: the keyboard is how a person at the machine uses the console; this
//! is the whole path (controller, IRQ 1 through the I/O APIC or the PIC,
//! scancode set 1, the key sequences, the shared input queue) with the
//! line editor's history and Tab completion on top. The session must come
//! out byte for byte: every echo, bell, listing and answer.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(probe_kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use probe_kernel::arch::x86::{irq, ps2, serial, smp};
use probe_kernel::{console, memory, println, shell, symbols};

probe_kernel::test_kernel_main!();

/// Keys `tests/keyboard.keys` presses that send something.
const KEYS: u32 = 221;

#[test_case]
fn the_keyboard_is_set_up_on_irq_1() {
    assert!(ps2::is_ready());
    assert_eq!(ps2::keys_queued(), 0);
    // Routed: enabling it again on CPU 0 changes nothing and succeeds.
    assert_eq!(irq::enable(ps2::IRQ, 0), Ok(()));
}

/// `count` backspaces.
fn back(count: usize) -> String {
    "\x08".repeat(count)
}

/// The line editor's redraw when up or down replaces a line of `old`
/// bytes (the cursor at its end) by `new`.
fn replace(old: &str, new: &str) -> String {
    let leftover = old.len().saturating_sub(new.len());
    format!("{}{new}{}{}", back(old.len()), " ".repeat(leftover), back(leftover))
}

/// The session the keys give: prompts, echo, bells, listings, answers.
fn expected_session() -> String {
    let checksum = symbols::lookup_name("probe_kernel::demo::checksum").expect("checksum is linked").address;
    let prompt = "kprobes> ";
    let event = "echo 'p:kb demo::checksum ' >> kprobe_events";
    let tracing = "buffer_size_kb  dynamic_events  error_log  events  kprobe_events  kprobe_profile  options  trace  trace_pipe  tracing_on\n";
    let mut s = String::from("probe shell: type `help`\n");
    // pw, Tab: "d ".
    s += &format!("{prompt}pwd \n/\n");
    s += &format!("{prompt}cd /sys/kernel/tracing/\n");
    // Tab rings, Tab lists and shows the line again; e, Tab completes.
    s += &format!("{prompt}cat kprobe_\x07\nkprobe_events   kprobe_profile\n{prompt}cat kprobe_events \n");
    s += &format!("{prompt}{event}\n");
    s += &format!("{prompt}cat kprobe_events\np:kprobes/kb demo::checksum\n");
    // ls, up, up, down, down, Enter.
    s += &format!("{prompt}ls");
    s += &replace("ls", "cat kprobe_events");
    s += &replace("cat kprobe_events", event);
    s += &replace(event, "cat kprobe_events");
    s += &replace("cat kprobe_events", "ls");
    s += &format!("\n{tracing}");
    // Up gives "ls"; " /pr", Tab: "oc/"; then up, up: "ls" again.
    s += &format!("{prompt}ls /proc/\nkallsyms\n");
    s += &format!("{prompt}ls /proc/{}\n{tracing}", replace("ls /proc/", "ls"));
    // xkprobe probe_kernel::demo::checks, Home (34 left), Delete, End,
    // Tab, verbosx, Backspace, e.
    let typed = "kprobe probe_kernel::demo::checks";
    s += &format!(
        "{prompt}x{typed}{}{typed} {}{typed}um verbosx\x08 \x08e\n",
        back(typed.len() + 1),
        back(typed.len() + 1)
    );
    s += &format!("probe 0: kprobe at probe_kernel::demo::checksum+0x0 ({checksum:#x})\n");
    s += &format!("{prompt}remove 0\nprobe 0 removed\n");
    // remve 0, 4 left, o (and the tail redrawn), 2 right, Ctrl+C.
    s += &format!("{prompt}remve 0{}ove 0{}ve^C\n", back(4), back(4));
    s += &format!("{prompt}echo -:kb >> kprobe_events\n");
    s += &format!("{prompt}exit \n");
    s
}

/// Defines and removes a probe event once, so that the event table's own
/// storage has grown before the heap is measured, and makes the working
/// directory a `cd /` (a string on the heap, as after the session's `cd`).
fn warm_up() {
    let mut buffer = [0u8; 256];
    console::capture_begin_silent();
    shell::execute("echo 'p:warm probe_kernel::demo::checksum' >> /sys/kernel/tracing/kprobe_events");
    shell::execute("echo -:warm >> /sys/kernel/tracing/kprobe_events");
    shell::execute("cd /");
    assert_eq!(console::capture_end(&mut buffer), b"");
}

#[test_case]
fn typed_keys_drive_the_shell_with_history_and_completion() {
    warm_up();
    let heap_before = memory::heap_used();
    let serial_before = serial::bytes_taken_by_interrupt();
    let irqs_before = irq::count(ps2::IRQ, 0);
    let expected = expected_session();
    // boot/sendkeys.sh starts typing when it sees this line.
    println!("keyboard test: type now");
    let mut buffer = [0u8; 8192];
    console::capture_begin();
    shell::run();
    let session = String::from_utf8_lossy(console::capture_end(&mut buffer)).into_owned();
    let mut wrong = 0;
    for (number, (got, want)) in session.split('\n').zip(expected.split('\n')).enumerate() {
        if got != want {
            println!("\nline {}: got  {:?}\n         want {:?}", number + 1, got, want);
            wrong += 1;
        }
    }
    assert_eq!(wrong, 0, "{wrong} lines differ");
    assert_eq!(session, expected);
    // Every key came from the keyboard, by its interrupt on CPU 0 (a key
    // raises at least one for its press and one for its release).
    assert_eq!(ps2::keys_queued(), KEYS);
    assert_eq!(ps2::keys_dropped(), 0);
    assert_eq!(serial::bytes_taken_by_interrupt(), serial_before);
    assert!(irq::count(ps2::IRQ, 0) - irqs_before >= 2 * KEYS, "{} interrupts", irq::count(ps2::IRQ, 0));
    assert!((1..smp::online_cpus()).all(|cpu| irq::count(ps2::IRQ, cpu) == 0));
    assert_eq!(probe_kernel::kprobes::site_count(), 0);
    drop((session, expected));
    shell::execute("cd /");
    assert_eq!(memory::heap_used(), heap_before);
}
