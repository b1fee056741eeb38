//! Console output (`print!`/`println!`) over the serial port, an output
//! capture for tests, and line input with echo and backspace.
//!
//! Output takes no lock: a line is written with interrupts off (so tasks do
//! not interleave mid-line) and a trap handler that prints while interrupted
//! code was printing simply interleaves its bytes. Nothing can deadlock.
use crate::arch::{cpu, serial};
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};

/// Prints to the serial console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::print_fmt(format_args!($($arg)*)) };
}

/// Prints to the serial console, with a newline.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::console::print_fmt(format_args!("{}\n", format_args!($($arg)*))) };
}

const CAPTURE_SIZE: usize = 8192;
static CAPTURE: [AtomicU8; CAPTURE_SIZE] = [const { AtomicU8::new(0) }; CAPTURE_SIZE];
static CAPTURE_LEN: AtomicUsize = AtomicUsize::new(0);
static CAPTURING: AtomicBool = AtomicBool::new(false);

/// Writes one byte to the console (and to the capture, if one is running).
#[unsafe(link_section = ".kprobes.text")]
pub fn write_byte(byte: u8) {
    if byte == b'\n' {
        serial::write_byte(b'\r');
    }
    serial::write_byte(byte);
    if CAPTURING.load(Ordering::Relaxed) {
        let index = CAPTURE_LEN.fetch_add(1, Ordering::Relaxed);
        if index < CAPTURE_SIZE {
            CAPTURE[index].store(byte, Ordering::Relaxed);
        }
    }
}

struct Console;

impl Write for Console {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        text.bytes().for_each(write_byte);
        Ok(())
    }
}

/// Implementation of [`print!`]; usable from any context.
pub fn print_fmt(args: fmt::Arguments) {
    cpu::without_interrupts(|| {
        let _ = Console.write_fmt(args);
    });
}

/// Starts recording console output (discarding any earlier recording).
pub fn capture_begin() {
    CAPTURE_LEN.store(0, Ordering::SeqCst);
    CAPTURING.store(true, Ordering::SeqCst);
}

/// Stops recording and copies what was printed into `buffer`; returns the
/// recorded bytes (at most 8 KiB are kept).
pub fn capture_end(buffer: &mut [u8]) -> &[u8] {
    CAPTURING.store(false, Ordering::SeqCst);
    let len = CAPTURE_LEN.load(Ordering::SeqCst).min(CAPTURE_SIZE).min(buffer.len());
    for (slot, byte) in buffer.iter_mut().zip(CAPTURE.iter()).take(len) {
        *slot = byte.load(Ordering::Relaxed);
    }
    &buffer[..len]
}

/// What a key does to a line being edited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineEvent {
    /// Nothing visible (line full, or backspace at the start).
    Ignored,
    /// A character was added; echo it.
    Echo(u8),
    /// The last character was removed; erase it on screen.
    Erase,
    /// Enter: the line is complete.
    Done,
}

/// The editing logic of [`read_line`], separate from the port so it can be tested.
pub struct LineEditor<'a> {
    buffer: &'a mut [u8],
    len: usize,
}

impl<'a> LineEditor<'a> {
    /// An empty line that will hold at most `buffer.len()` bytes.
    pub fn new(buffer: &'a mut [u8]) -> Self {
        LineEditor { buffer, len: 0 }
    }

    /// Feeds one received byte.
    pub fn feed(&mut self, byte: u8) -> LineEvent {
        match byte {
            b'\r' | b'\n' => LineEvent::Done,
            0x08 | 0x7f if self.len > 0 => {
                self.len -= 1;
                LineEvent::Erase
            }
            0x20..=0x7e if self.len < self.buffer.len() => {
                self.buffer[self.len] = byte;
                self.len += 1;
                LineEvent::Echo(byte)
            }
            _ => LineEvent::Ignored,
        }
    }

    /// The line so far (non-printable bytes are never stored).
    pub fn line(&self) -> &str {
        core::str::from_utf8(&self.buffer[..self.len]).unwrap_or("")
    }

    /// Consumes the editor, returning the line with the buffer's lifetime.
    pub fn into_line(self) -> &'a str {
        core::str::from_utf8(&self.buffer[..self.len]).unwrap_or("")
    }
}

/// Reads one line from the serial port, echoing as the user types and
/// handling backspace. Waits (halting between interrupts) for input.
pub fn read_line(buffer: &mut [u8]) -> &str {
    let mut editor = LineEditor::new(buffer);
    loop {
        let Some(byte) = serial::try_read_byte() else {
            if cpu::interrupts_enabled() {
                crate::task::yield_now();
            }
            continue;
        };
        match editor.feed(byte) {
            LineEvent::Echo(byte) => write_byte(byte),
            LineEvent::Erase => b"\x08 \x08".iter().copied().for_each(write_byte),
            LineEvent::Done => {
                write_byte(b'\n');
                return editor.into_line();
            }
            LineEvent::Ignored => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test_case]
    fn line_editor_echoes_erases_and_finishes() {
        let mut buffer = [0u8; 8];
        let mut editor = LineEditor::new(&mut buffer);
        assert_eq!(editor.feed(b'a'), LineEvent::Echo(b'a'));
        assert_eq!(editor.feed(b'b'), LineEvent::Echo(b'b'));
        assert_eq!(editor.feed(0x7f), LineEvent::Erase);
        assert_eq!(editor.feed(b'c'), LineEvent::Echo(b'c'));
        assert_eq!(editor.feed(0x01), LineEvent::Ignored);
        assert_eq!(editor.line(), "ac");
        assert_eq!(editor.feed(b'\r'), LineEvent::Done);
    }

    #[test_case]
    fn line_editor_ignores_backspace_at_start_and_overflow() {
        let mut buffer = [0u8; 2];
        let mut editor = LineEditor::new(&mut buffer);
        assert_eq!(editor.feed(0x08), LineEvent::Ignored);
        editor.feed(b'x');
        editor.feed(b'y');
        assert_eq!(editor.feed(b'z'), LineEvent::Ignored);
        assert_eq!(editor.into_line(), "xy");
    }

    #[test_case]
    fn read_line_takes_serial_input_with_backspace() {
        // The UART's loopback receives what we send: type "pro<BS>be\r".
        let mut received = [0u8; 32];
        let mut count = 0;
        serial::set_loopback(true);
        for &byte in b"pro\x7fbe\r" {
            serial::write_byte(byte);
        }
        // Read back exactly what was typed, before any echo can loop back.
        while count < 7 {
            if let Some(byte) = serial::try_read_byte() {
                received[count] = byte;
                count += 1;
            }
        }
        serial::set_loopback(false);
        let mut buffer = [0u8; 16];
        let mut editor = LineEditor::new(&mut buffer);
        let mut done = false;
        for &byte in &received[..count] {
            done |= editor.feed(byte) == LineEvent::Done;
        }
        assert!(done);
        assert_eq!(editor.line(), "prbe");
    }

    #[test_case]
    fn capture_records_printed_bytes() {
        capture_begin();
        crate::print!("abc{}", 42);
        let mut buffer = [0u8; 16];
        assert_eq!(capture_end(&mut buffer), b"abc42");
    }
}
