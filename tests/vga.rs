//! Test kernel: the console's mirror on the VGA text screen, read back from
//! video memory at 0xB8000 and from the CRT controller's cursor registers.
//!
//! Why: a person at the machine reads the screen, not COM1; what the
//! console prints must be there, in order, scrolled as a terminal scrolls,
//! with the line editor's redraws (backspaces over wrapped rows) in place
//! and the cursor where the next key will go. Each test starts from a
//! blank screen: the harness's `name ... ` goes out first, then the screen
//! is cleared, and only this test's task prints.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(probe_kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

extern crate alloc;

use alloc::string::String;
use probe_kernel::arch::x86::vga::{self, ATTRIBUTE, COLUMNS, ROWS};
use probe_kernel::{console, print, println};

probe_kernel::test_kernel_main!();

/// Screen row `row` as video memory has it, trailing blanks cut.
fn row(row: usize) -> String {
    let text = vga::row_text(row);
    String::from(String::from_utf8_lossy(&text).trim_end())
}

/// A blank screen, the cursor at the top left, nothing pending.
fn fresh() {
    console::flush();
    vga::clear();
}

/// The terminal's cursor, after checking the CRT controller shows it there.
fn cursor() -> (usize, usize) {
    assert_eq!(vga::hardware_cursor(), vga::cursor(), "the hardware cursor lags");
    vga::cursor()
}

#[test_case]
fn boot_found_the_screen_and_cleared_it() {
    assert!(vga::is_present());
    fresh();
    assert!((0..ROWS).all(|n| row(n).is_empty()));
    assert_eq!(cursor(), (0, 0));
}

#[test_case]
fn printed_lines_are_in_video_memory() {
    fresh();
    println!("hello, screen");
    print!("partial");
    // Line-buffered as on COM1: the partial line is not sent yet.
    assert_eq!((row(0).as_str(), row(1).as_str()), ("hello, screen", ""));
    assert_eq!(cursor(), (1, 0));
    console::flush();
    assert_eq!(row(1), "partial");
    assert_eq!(vga::cell(0, 0), u16::from(ATTRIBUTE) << 8 | u16::from(b'h'));
    assert_eq!(vga::cell(1, 7), u16::from(ATTRIBUTE) << 8 | u16::from(b' '));
    assert_eq!(cursor(), (1, 7));
}

#[test_case]
fn the_screen_scrolls_with_the_output() {
    fresh();
    for number in 0..40 {
        println!("line {number}");
    }
    // 40 lines and the empty one after them on 25 rows: 16 scrolled off.
    for screen_row in 0..ROWS - 1 {
        assert_eq!(row(screen_row), alloc::format!("line {}", screen_row + 16));
    }
    assert_eq!(row(ROWS - 1), "");
    assert_eq!(cursor(), (ROWS - 1, 0));
    // The screen is a window on video memory, moved down a row per scroll.
    assert_eq!(vga::window_top(), 16);
    // One more line scrolls once more.
    println!("last");
    assert_eq!((row(0).as_str(), row(ROWS - 2).as_str()), ("line 17", "last"));
    assert_eq!(vga::window_top(), 17);
}

#[test_case]
fn scrolling_past_the_end_of_video_memory_starts_again_at_the_top() {
    fresh();
    for number in 0..500 {
        println!("line {number}");
    }
    // 476 scrolls; the 32 KiB hold 204 rows, so the window (25 rows) wraps
    // to the top after 179 moves, every 180th scroll: 476 = 2 * 180 + 116.
    assert_eq!(vga::window_top(), 116);
    for screen_row in 0..ROWS - 1 {
        assert_eq!(row(screen_row), alloc::format!("line {}", screen_row + 476));
    }
    assert_eq!(row(ROWS - 1), "");
    assert_eq!(cursor(), (ROWS - 1, 0));
}

#[test_case]
fn long_lines_wrap_and_a_line_of_exactly_80_takes_one_row() {
    fresh();
    println!("{}", "x".repeat(100));
    println!("{}", "y".repeat(COLUMNS));
    println!("end");
    assert_eq!(row(0), "x".repeat(COLUMNS));
    assert_eq!(row(1), "x".repeat(20));
    assert_eq!(row(2), "y".repeat(COLUMNS));
    assert_eq!(row(3), "end");
    assert_eq!(cursor(), (4, 0));
}

#[test_case]
fn the_line_editors_echo_edits_in_place_across_rows() {
    fresh();
    // The prompt and 75 typed bytes reach column 5 of the second row.
    print!("kprobes> ");
    console::flush();
    for _ in 0..75 {
        console::write_byte(b'a');
    }
    assert_eq!(cursor(), (1, 4));
    // What the editor echoes for: left 6 times, insert "Z" (the tail
    // redrawn, then backspaces back to the cursor), then backspace
    // (erasing "Z": the tail and a blank over its last cell, and back).
    let mut editor_buffer = [0u8; 128];
    let mut editor = console::LineEditor::new(&mut editor_buffer);
    let mut echo = alloc::vec::Vec::new();
    for &key in b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
        editor.feed(key);
    }
    for &key in b"\x1b[D\x1b[D\x1b[D\x1b[D\x1b[D\x1b[DZ\x7f" {
        let event = editor.feed(key);
        editor.echo(event, |byte| echo.push(byte));
    }
    for &byte in &echo {
        console::write_byte(byte);
    }
    // Six lefts from (1, 4) cross back to row 0, column 78; Z went in there
    // and was erased again: the screen shows the 75 bytes only.
    assert_eq!(row(0), alloc::format!("kprobes> {}", "a".repeat(COLUMNS - 9)));
    assert_eq!(row(1), "a".repeat(4));
    assert_eq!(cursor(), (0, 78));
    // Without the backspace, Z is on the screen where the cursor was.
    for &byte in b"Zaaaaaa\x08\x08\x08\x08\x08\x08" {
        console::write_byte(byte);
    }
    assert_eq!(vga::row_text(0)[78], b'Z');
    assert_eq!(row(1), "a".repeat(5));
    assert_eq!(cursor(), (0, 79));
}

#[test_case]
fn carriage_return_backspace_and_tab() {
    fresh();
    println!("abc\rX\x08\x08Y\tt");
    assert_eq!(row(0), "Ybc     t");
    assert_eq!(cursor(), (1, 0));
}

#[test_case]
fn escape_sequences_move_and_erase_and_never_show() {
    fresh();
    print!("abcdef\x1b[3D\x1b[K!\x1b[1;31mred\x1b[0m");
    console::flush();
    assert_eq!(row(0), "abc!red");
    assert_eq!(cursor(), (0, 7));
    print!("\x1b[2J\x1b[3;5Hhere");
    console::flush();
    assert_eq!((row(0).as_str(), row(2).as_str()), ("", "    here"));
    assert_eq!(cursor(), (2, 8));
}

#[test_case]
fn a_silent_capture_leaves_the_screen_alone() {
    fresh();
    console::capture_begin_silent();
    println!("only in the capture");
    let mut buffer = [0u8; 64];
    assert_eq!(console::capture_end(&mut buffer), b"only in the capture\n");
    assert_eq!(row(0), "");
    console::capture_begin();
    println!("on the screen too");
    console::capture_end(&mut buffer);
    assert_eq!(row(0), "on the screen too");
}
