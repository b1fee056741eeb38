//! Test kernel: the shell reading real serial input that waits at boot.
//!
//! `boot/run.sh` feeds `tests/console_input.input` to QEMU's serial port
//! before the kernel starts, as a pipe into `make run ARGS=shell` would. The
//! shell must read every byte of it: the first command whole (issue 7, bug
//! 9a: a FIFO reset at boot lost the first byte), an overlong line refused
//! whole, bytes outside printable ASCII refused with their column, an arrow
//! key as a cursor move, and every answer exactly as specified.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(probe_kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use probe_kernel::{console, memory, shell, symbols};

probe_kernel::test_kernel_main!();

/// What `help` prints, as `shell::execute` says it.
fn help_text() -> String {
    probe_kernel::testing::captured(|| shell::execute("help"))
}

/// The whole session the input file should give: prompts, echo, answers.
fn expected_session() -> String {
    let checksum = symbols::lookup_name("probe_kernel::demo::checksum").expect("checksum is linked").address;
    let zeros = "0".repeat(90); // of 100: the line is echoed up to its 128th byte
    let mut s = String::from("probe shell: type `help`\n");
    s += &format!("kprobes> help\n{}", help_text());
    s += &format!("kprobes> kprobe probe_kernel::demo::checksum+0x{zeros}\nconsole: line too long (max 128 bytes)\n");
    s += "kprobes> remove 0\nconsole: invalid byte 0x00 at column 9\n";
    s += "kprobes> kprobe probe_kernel::demo::checks\nconsole: invalid byte 0xff at column 34\n";
    s += "kprobes> kprobe probe_kernel::demo::checksum verbos\n";
    s += "kprobe: unexpected word \"verbos\" (usage: kprobe SYMBOL[+OFFSET] [verbose])\n";
    s += "kprobes> kretprobe probe_kernel::demo::checksum+12345\n";
    s += "kretprobe: offset 0x3039 refused: a return probe goes on a function's entry (offset 0)\n";
    s += &format!(
        "kprobes> kprobe probe_kernel::demo::checksum\nprobe 0: kprobe at probe_kernel::demo::checksum+0x0 ({checksum:#x})\n"
    );
    // "remove0", left arrow, space: the space goes in before the 0.
    s += "kprobes> remove0\x08 0\x08\nprobe 0 removed\n";
    s += "kprobes> remove 1x\nremove: bad probe number \"1x\" (a number from `list`)\n";
    s += "kprobes> list\n";
    s += "kprobes> exit\n";
    s
}

#[test_case]
fn shell_reads_the_waiting_input_exactly() {
    let heap_before = memory::heap_used();
    let expected = expected_session();
    let mut buffer = [0u8; 8192];
    console::capture_begin();
    shell::run();
    let session = String::from_utf8_lossy(console::capture_end(&mut buffer)).into_owned();
    // Name every line that differs, not just the first.
    let mut wrong = 0;
    for (number, (got, want)) in session.split('\n').zip(expected.split('\n')).enumerate() {
        if got != want {
            probe_kernel::println!("\nline {}: got  {:?}\n         want {:?}", number + 1, got, want);
            wrong += 1;
        }
    }
    assert_eq!(wrong, 0, "{wrong} lines differ");
    assert_eq!(session, expected);
    assert_eq!(probe_kernel::kprobes::site_count(), 0);
    drop((session, expected));
    assert_eq!(memory::heap_used(), heap_before);
}
