//! Test kernel: the console's line editor and the shell's command parser.
//!
//! Regression tests for issue 7: the console must never misread input
//! (overlong lines cut, invalid bytes dropped and their neighbours joined,
//! arrow keys inserted as text).
//! Every expectation is exact: the line the editor gives, the bytes it
//! echoes, the shell's answer, the heap in use.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(probe_kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use probe_kernel::console::{self, LineEditor, LineError, LineEvent, LINE_MAX};
use probe_kernel::kprobes::site_count;
use probe_kernel::shell;

probe_kernel::test_kernel_main!();

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
    let mut buffer = [0u8; 4096];
    console::capture_begin_silent();
    shell::handle(line);
    String::from_utf8_lossy(console::capture_end(&mut buffer)).into_owned()
}

/// What the shell prints for `keys` typed as one line.
fn answer_to_keys(keys: &[u8]) -> String {
    let line = line_of(keys);
    answer(line.as_deref().map_err(|e| *e))
}

#[test_case]
fn printable_bytes_backspace_and_enter() {
    let (events, echo, result) = edit(b"ab\x7fc\x08d\r");
    assert_eq!(events, [LineEvent::Insert(b'a'), LineEvent::Insert(b'b'), LineEvent::Erase, LineEvent::Insert(b'c'),
        LineEvent::Erase, LineEvent::Insert(b'd'), LineEvent::Done]);
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
    assert_eq!(line_of(b"a\tb\n"), Err(LineError::InvalidByte { byte: 9, column: 2 }));
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
