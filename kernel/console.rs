//! Console output (`print!`/`println!`) over the serial port and the VGA
//! text screen, an output capture for tests, and line input with echo,
//! editing, history and completion.
//!
//! Output is line-buffered per task and written a whole line at a time
//! under one output lock, so lines from several CPUs never mix: a task's
//! `print!` pieces collect in its own buffer (with interrupts off while they
//! are appended) until a newline or a full buffer ([`LINE_BUFFER`] bytes)
//! sends them. The lock is per CPU re-entrant: a trap handler that prints
//! while its own CPU was printing nests its bytes into that output, as on
//! one CPU, instead of deadlocking; another CPU waits for the line to end.
//! A task that reads input, a capture that starts or ends, and a fatal
//! report send the pending partial line first ([`flush`]).
//!
//! Every byte sent goes to COM1 and, when boot found a VGA, to the text
//! screen (`arch::x86::vga`), under the same lock and in the same order;
//! the screen's cursor is moved when the lock is let go, once per line or
//! echo. Input comes from one queue, which COM1 and the PS/2 keyboard
//! (`arch::x86::ps2`, turned into the same bytes a terminal sends) fill.
use crate::arch::x86::{percpu, vga};
use crate::arch::{cpu, serial};
use crate::completion::Completion;
use crate::history::History;
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
/// While set, captured output is not sent to the port (see [`capture_begin_silent`]).
static SILENT: AtomicBool = AtomicBool::new(false);

/// Bytes of a task's pending line; a longer line is sent in pieces.
pub const LINE_BUFFER: usize = 256;

/// One task's pending line. Only the CPU running the task touches it, with
/// interrupts off (a nested trap on that CPU appends to it, as it would
/// print into the middle of the line on one CPU).
struct Line {
    len: AtomicUsize,
    bytes: [AtomicU8; LINE_BUFFER],
}

static LINES: [Line; crate::task::TASK_SLOTS] =
    [const { Line { len: AtomicUsize::new(0), bytes: [const { AtomicU8::new(0) }; LINE_BUFFER] } };
        crate::task::TASK_SLOTS];

/// The CPU writing to the port now (1 + its index), 0 if none.
static OUTPUT_OWNER: AtomicUsize = AtomicUsize::new(0);
/// Spins after which a fatal report takes the output lock anyway (the
/// holder may be a CPU that will never release it).
const FATAL_SPIN_LIMIT: usize = 50_000_000;

/// Set once a fatal report has begun (see [`fatal_begin`]).
static FATAL: AtomicBool = AtomicBool::new(false);

/// A fatal report begins on this CPU: from now on the output lock is taken
/// from a holder that does not let go within `FATAL_SPIN_LIMIT` spins
/// (it may have stopped for good), and the pending partial line is sent.
pub fn fatal_begin() {
    FATAL.store(true, Ordering::Relaxed);
    flush();
}

/// The output lock, held for one line. Re-entrant on its own CPU.
struct Output {
    release: bool,
}

impl Output {
    #[unsafe(link_section = ".kprobes.text")]
    fn acquire() -> Output {
        let me = percpu::cpu_id() + 1;
        if OUTPUT_OWNER.load(Ordering::Relaxed) == me {
            return Output { release: false }; // nested on our own CPU
        }
        let mut spins = 0usize;
        while OUTPUT_OWNER.compare_exchange_weak(0, me, Ordering::Acquire, Ordering::Relaxed).is_err() {
            spins += 1;
            if spins > FATAL_SPIN_LIMIT && FATAL.load(Ordering::Relaxed) {
                OUTPUT_OWNER.store(me, Ordering::Release);
                break;
            }
            core::hint::spin_loop();
        }
        Output { release: true }
    }
}

impl Drop for Output {
    #[unsafe(link_section = ".kprobes.text")]
    fn drop(&mut self) {
        if self.release {
            vga::show_cursor();
            OUTPUT_OWNER.store(0, Ordering::Release);
        }
    }
}

/// Sends one byte to the port and the screen (and to the capture, if one
/// is running).
#[unsafe(link_section = ".kprobes.text")]
fn emit(byte: u8) {
    if !SILENT.load(Ordering::Relaxed) {
        if byte == b'\n' {
            serial::write_byte(b'\r');
        }
        serial::write_byte(byte);
        vga::write_byte(byte);
    }
    if CAPTURING.load(Ordering::Relaxed) {
        let index = CAPTURE_LEN.fetch_add(1, Ordering::Relaxed);
        if index < CAPTURE_SIZE {
            CAPTURE[index].store(byte, Ordering::Relaxed);
        }
    }
}

/// Writes one byte to the console at once, unbuffered (line editing's echo).
#[unsafe(link_section = ".kprobes.text")]
pub fn write_byte(byte: u8) {
    cpu::without_interrupts(|| {
        let _output = Output::acquire();
        emit(byte);
    });
}

/// Sends a line's pending bytes.
#[unsafe(link_section = ".kprobes.text")]
fn send(line: &Line) {
    let _output = Output::acquire();
    let len = line.len.swap(0, Ordering::Relaxed);
    for byte in &line.bytes[..len] {
        emit(byte.load(Ordering::Relaxed));
    }
}

/// Sends the calling task's pending partial line, if any.
pub fn flush() {
    cpu::without_interrupts(|| send(&LINES[crate::task::current_id()]));
}

struct LineWriter(&'static Line);

impl Write for LineWriter {
    #[unsafe(link_section = ".kprobes.text")]
    fn write_str(&mut self, text: &str) -> fmt::Result {
        for byte in text.bytes() {
            let len = self.0.len.load(Ordering::Relaxed);
            self.0.bytes[len].store(byte, Ordering::Relaxed);
            self.0.len.store(len + 1, Ordering::Relaxed);
            if byte == b'\n' || len + 1 == LINE_BUFFER {
                send(self.0);
            }
        }
        Ok(())
    }
}

/// Implementation of [`print!`]; usable from any context.
pub fn print_fmt(args: fmt::Arguments) {
    cpu::without_interrupts(|| {
        let _ = LineWriter(&LINES[crate::task::current_id()]).write_fmt(args);
    });
}

/// Starts recording console output (discarding any earlier recording).
pub fn capture_begin() {
    flush();
    CAPTURE_LEN.store(0, Ordering::SeqCst);
    CAPTURING.store(true, Ordering::SeqCst);
}

/// Like [`capture_begin`], but what is printed until [`capture_end`] only
/// goes to the recording, not to the port (for tests that print a lot).
pub fn capture_begin_silent() {
    capture_begin();
    SILENT.store(true, Ordering::SeqCst);
}

/// Stops recording and copies what was printed into `buffer`; returns the
/// recorded bytes (at most 8 KiB are kept).
pub fn capture_end(buffer: &mut [u8]) -> &[u8] {
    flush();
    CAPTURING.store(false, Ordering::SeqCst);
    SILENT.store(false, Ordering::SeqCst);
    let len = CAPTURE_LEN.load(Ordering::SeqCst).min(CAPTURE_SIZE).min(buffer.len());
    for (slot, byte) in buffer.iter_mut().zip(CAPTURE.iter()).take(len) {
        *slot = byte.load(Ordering::Relaxed);
    }
    &buffer[..len]
}

/// Text formatted into a fixed buffer of `N` bytes, for places that must
/// not allocate (a fatal report) or need no heap (a padded column): what
/// does not fit is cut, at a character boundary.
pub struct FixedText<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> FixedText<N> {
    /// Empty text.
    pub const fn new() -> Self {
        FixedText { bytes: [0; N], len: 0 }
    }

    /// The text so far.
    pub fn as_str(&self) -> &str {
        // Only whole characters were copied in (see `write_str`).
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("")
    }
}

impl<const N: usize> Default for FixedText<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Write for FixedText<N> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut take = text.len().min(N - self.len);
        while !text.is_char_boundary(take) {
            take -= 1;
        }
        self.bytes[self.len..self.len + take].copy_from_slice(&text.as_bytes()[..take]);
        self.len += take;
        Ok(())
    }
}

/// Longest line the shell reads, in bytes.
pub const LINE_MAX: usize = 128;

/// Why a finished line was refused as a whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineError {
    /// More printable bytes were typed than the buffer holds.
    TooLong {
        /// The buffer's size.
        max: usize,
    },
    /// A byte that is neither printable ASCII nor an editing key.
    InvalidByte {
        /// The byte.
        byte: u8,
        /// Where it was typed: 1 + the cursor position at the time.
        column: usize,
    },
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match *self {
            LineError::TooLong { max } => write!(f, "line too long (max {max} bytes)"),
            LineError::InvalidByte { byte, column } => write!(f, "invalid byte {byte:#04x} at column {column}"),
        }
    }
}

/// What a key did to a line being edited. [`LineEditor::echo`] turns it
/// into the bytes that update the terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineEvent {
    /// Nothing visible: part of an escape sequence, a key with no effect
    /// here (up, down, backspace at the start), or anything typed after the
    /// line was spoilt (too long, invalid byte).
    Ignored,
    /// This byte was inserted at the cursor, which moved right past it.
    Insert(u8),
    /// Backspace: the byte before the cursor was removed.
    Erase,
    /// Delete: the byte under the cursor was removed.
    Delete,
    /// The cursor moved left by this many bytes.
    Left(usize),
    /// The cursor moved right by this many bytes.
    Right(usize),
    /// The line was spoilt by this key: from now on it is refused.
    Refused(LineError),
    /// Enter: the line is complete.
    Done,
    /// These many bytes went in before the cursor at once
    /// ([`LineEditor::insert`]: a completion).
    Inserted(usize),
    /// Up or down recalled a line from the history: it replaced the whole
    /// line, which had `old_len` bytes and the cursor at `old_cursor`; the
    /// cursor is now at the end.
    Replaced {
        /// The replaced line's length.
        old_len: usize,
        /// Where the cursor was in it.
        old_cursor: usize,
    },
    /// Tab: the caller may complete the word before the cursor (the line
    /// is unchanged).
    Complete,
    /// Ctrl+C: the line was dropped, spoilt or not; it reads as empty.
    Cancelled,
}

/// Where the editor is in an escape sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Escape {
    /// Not in one.
    None,
    /// After ESC.
    Start,
    /// After `ESC [`: parameter and intermediate bytes until a final byte;
    /// `parameter` is the first parameter's value, `more` says it ended.
    Csi { parameter: u32, more: bool },
    /// After `ESC O`: the next byte names the key.
    Ss3,
}

/// A key an escape sequence stands for.
#[derive(Clone, Copy)]
enum Key {
    Up,
    Down,
    Left,
    Right,
    Home,
    End,
    Delete,
    Other,
}

/// The editing logic of [`read_line`]: a pure state machine over received
/// bytes, separate from the port so it can be tested byte by byte.
///
/// Printable ASCII (0x20–0x7e) is inserted at the cursor; backspace (0x08)
/// and DEL (0x7f) erase before it; CR or LF ends the line (an LF right after
/// a CR is swallowed); ESC sequences (CSI `ESC [ … final`, SS3 `ESC O x`,
/// and ESC + one byte) are keys: left, right, home, end and delete edit, up
/// and down recall lines from the history (with [`with_history`]), every
/// other key is ignored. Tab asks the caller to complete
/// ([`LineEvent::Complete`], [`insert`]); Ctrl+C (0x03) drops the line.
/// Any other byte, or a byte beyond the buffer, spoils the line: the editor
/// keeps reading to the end of the line and then refuses it whole with a
/// [`LineError`].
///
/// [`with_history`]: Self::with_history
/// [`insert`]: Self::insert
pub struct LineEditor<'a> {
    buffer: &'a mut [u8],
    len: usize,
    cursor: usize,
    escape: Escape,
    after_cr: bool,
    error: Option<LineError>,
    history: Option<&'a mut History>,
}

impl<'a> LineEditor<'a> {
    /// An empty line that will hold at most `buffer.len()` bytes.
    pub fn new(buffer: &'a mut [u8]) -> Self {
        LineEditor { buffer, len: 0, cursor: 0, escape: Escape::None, after_cr: false, error: None, history: None }
    }

    /// Like [`new`](Self::new), with up and down browsing `history`, to
    /// which every line entered (and not refused) is added.
    pub fn with_history(buffer: &'a mut [u8], history: &'a mut History) -> Self {
        LineEditor { history: Some(history), ..Self::new(buffer) }
    }

    /// Starts a new, empty line (after [`LineEvent::Done`]). An LF that
    /// follows the CR which ended the previous line is still swallowed.
    pub fn clear(&mut self) {
        self.len = 0;
        self.cursor = 0;
        self.escape = Escape::None;
        self.error = None;
        if let Some(history) = self.history.as_deref_mut() {
            history.restart();
        }
    }

    /// Feeds one received byte.
    pub fn feed(&mut self, byte: u8) -> LineEvent {
        let after_cr = core::mem::replace(&mut self.after_cr, false);
        match self.escape {
            Escape::None => {}
            Escape::Start => match byte {
                b'[' => return self.escape_to(Escape::Csi { parameter: 0, more: false }),
                b'O' => return self.escape_to(Escape::Ss3),
                0x1b => return LineEvent::Ignored,
                0x20..=0x7e => return self.finish_escape(Key::Other),
                _ => self.escape = Escape::None, // a control byte ends it and counts as itself
            },
            Escape::Csi { parameter, more } => match byte {
                b'0'..=b'9' if !more => {
                    let parameter = parameter.saturating_mul(10).saturating_add(u32::from(byte - b'0'));
                    return self.escape_to(Escape::Csi { parameter, more });
                }
                // Further parameters and intermediate bytes.
                0x20..=0x3f => return self.escape_to(Escape::Csi { parameter, more: true }),
                0x40..=0x7e => return self.finish_escape(csi_key(byte, parameter)),
                _ => self.escape = Escape::None,
            },
            Escape::Ss3 => match byte {
                0x20..=0x7e => return self.finish_escape(csi_key(byte, 0)),
                _ => self.escape = Escape::None,
            },
        }
        match byte {
            b'\n' if after_cr => LineEvent::Ignored,
            b'\r' | b'\n' => {
                self.after_cr = byte == b'\r';
                if let (Some(history), None) = (self.history.as_deref_mut(), self.error) {
                    history.push(&self.buffer[..self.len]);
                }
                LineEvent::Done
            }
            0x1b => self.escape_to(Escape::Start),
            0x03 => {
                self.clear();
                LineEvent::Cancelled
            }
            _ if self.error.is_some() => LineEvent::Ignored,
            b'\t' => LineEvent::Complete,
            0x08 | 0x7f if self.cursor > 0 => {
                self.cursor -= 1;
                self.remove_at_cursor();
                LineEvent::Erase
            }
            0x08 | 0x7f => LineEvent::Ignored,
            0x20..=0x7e if self.len == self.buffer.len() => self.refuse(LineError::TooLong { max: self.buffer.len() }),
            0x20..=0x7e => {
                self.buffer.copy_within(self.cursor..self.len, self.cursor + 1);
                self.buffer[self.cursor] = byte;
                self.len += 1;
                self.cursor += 1;
                LineEvent::Insert(byte)
            }
            _ => self.refuse(LineError::InvalidByte { byte, column: self.cursor + 1 }),
        }
    }

    fn escape_to(&mut self, state: Escape) -> LineEvent {
        self.escape = state;
        LineEvent::Ignored
    }

    fn refuse(&mut self, error: LineError) -> LineEvent {
        self.error = Some(error);
        LineEvent::Refused(error)
    }

    fn remove_at_cursor(&mut self) {
        self.buffer.copy_within(self.cursor + 1..self.len, self.cursor);
        self.len -= 1;
    }

    /// Inserts `text` at the cursor, all of it or (when it does not fit,
    /// is not printable ASCII, or the line is spoilt) nothing: a completion.
    pub fn insert(&mut self, text: &[u8]) -> LineEvent {
        let fits = self.len + text.len() <= self.buffer.len();
        if text.is_empty() || !fits || self.error.is_some() || !text.iter().all(|byte| (0x20..=0x7e).contains(byte)) {
            return LineEvent::Ignored;
        }
        self.buffer.copy_within(self.cursor..self.len, self.cursor + text.len());
        self.buffer[self.cursor..self.cursor + text.len()].copy_from_slice(text);
        self.len += text.len();
        self.cursor += text.len();
        LineEvent::Inserted(text.len())
    }

    /// Up (`older`) or down: replaces the line with the history's previous
    /// or next one (cut to the buffer), the cursor at its end.
    fn recall(&mut self, older: bool) -> LineEvent {
        let LineEditor { buffer, len, cursor, history: Some(history), .. } = self else { return LineEvent::Ignored };
        let line = if older { history.older(&buffer[..*len]) } else { history.newer() };
        let Some(line) = line else { return LineEvent::Ignored };
        let (old_len, old_cursor) = (*len, *cursor);
        let new_len = line.len().min(buffer.len());
        buffer[..new_len].copy_from_slice(&line[..new_len]);
        (*len, *cursor) = (new_len, new_len);
        LineEvent::Replaced { old_len, old_cursor }
    }

    /// Acts on the key a complete escape sequence stands for.
    fn finish_escape(&mut self, key: Key) -> LineEvent {
        self.escape = Escape::None;
        if self.error.is_some() {
            return LineEvent::Ignored;
        }
        let moved = match key {
            Key::Up | Key::Down => return self.recall(matches!(key, Key::Up)),
            Key::Left if self.cursor > 0 => 1,
            Key::Home => self.cursor,
            Key::Right if self.cursor < self.len => 1,
            Key::End => self.len - self.cursor,
            Key::Delete if self.cursor < self.len => {
                self.remove_at_cursor();
                return LineEvent::Delete;
            }
            _ => return LineEvent::Ignored,
        };
        match key {
            _ if moved == 0 => LineEvent::Ignored,
            Key::Left | Key::Home => {
                self.cursor -= moved;
                LineEvent::Left(moved)
            }
            _ => {
                self.cursor += moved;
                LineEvent::Right(moved)
            }
        }
    }

    /// Writes to `out` the bytes that show `event` (just returned by
    /// [`feed`](Self::feed)) on a terminal: the changed tail of the line is
    /// redrawn and the cursor put back with backspaces, so no terminal
    /// escape sequences are needed.
    pub fn echo(&self, event: LineEvent, mut out: impl FnMut(u8)) {
        let tail = &self.buffer[self.cursor..self.len];
        let back = |out: &mut dyn FnMut(u8), count: usize| (0..count).for_each(|_| out(0x08));
        match event {
            LineEvent::Insert(byte) => {
                out(byte);
                tail.iter().copied().for_each(&mut out);
                back(&mut out, tail.len());
            }
            LineEvent::Erase | LineEvent::Delete => {
                if event == LineEvent::Erase {
                    out(0x08);
                }
                tail.iter().copied().for_each(&mut out);
                out(b' ');
                back(&mut out, tail.len() + 1);
            }
            LineEvent::Left(count) => back(&mut out, count),
            LineEvent::Right(count) => self.buffer[self.cursor - count..self.cursor].iter().copied().for_each(out),
            LineEvent::Inserted(count) => {
                self.buffer[self.cursor - count..self.cursor].iter().copied().for_each(&mut out);
                tail.iter().copied().for_each(&mut out);
                back(&mut out, tail.len());
            }
            LineEvent::Replaced { old_len, old_cursor } => {
                // Back to the start, the new line over the old, blanks
                // over what is left of the old, and back to the new end.
                back(&mut out, old_cursor);
                self.buffer[..self.len].iter().copied().for_each(&mut out);
                let leftover = old_len.saturating_sub(self.len);
                (0..leftover).for_each(|_| out(b' '));
                back(&mut out, leftover);
            }
            LineEvent::Done => out(b'\n'),
            LineEvent::Cancelled => b"^C\n".iter().copied().for_each(out),
            LineEvent::Ignored | LineEvent::Refused(_) | LineEvent::Complete => {}
        }
    }

    /// The cursor's position (0 = before the first byte).
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// The line so far (only printable ASCII is ever stored).
    pub fn line(&self) -> &str {
        core::str::from_utf8(&self.buffer[..self.len]).unwrap_or("")
    }

    /// The finished line, or why it is refused.
    pub fn result(&self) -> Result<&str, LineError> {
        match self.error {
            Some(error) => Err(error),
            None => Ok(self.line()),
        }
    }

    /// Consumes the editor, returning the line (or why it is refused) with
    /// the buffer's lifetime.
    pub fn into_line(self) -> Result<&'a str, LineError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        Ok(core::str::from_utf8(&self.buffer[..self.len]).unwrap_or(""))
    }
}

/// The key of a CSI sequence with final byte `last` and first parameter
/// `parameter` (also used for SS3, whose parameter is 0).
fn csi_key(last: u8, parameter: u32) -> Key {
    match (last, parameter) {
        (b'A', _) => Key::Up,
        (b'B', _) => Key::Down,
        (b'D', _) => Key::Left,
        (b'C', _) => Key::Right,
        (b'H', _) | (b'~', 1 | 7) => Key::Home,
        (b'F', _) | (b'~', 4 | 8) => Key::End,
        (b'~', 3) => Key::Delete,
        _ => Key::Other,
    }
}

/// Whether output is being captured (a test reads it, not a person).
pub fn capturing() -> bool {
    CAPTURING.load(Ordering::SeqCst)
}

/// A key typed at the console (COM1 or the keyboard), if one is waiting
/// (it is taken).
pub fn take_key() -> Option<u8> {
    serial::try_read_byte()
}

/// Reads one line from the console's input (COM1 and the keyboard) into
/// `editor` (cleared first), echoing as the user types and editing as
/// [`LineEditor`] does; Tab only rings the bell. Waits (yielding to other
/// tasks when interrupts are on) for input. A spoilt line is read to its end and
/// returned as the error; Ctrl+C gives an empty line. Reuse one editor for
/// successive lines, so that the LF of a CR LF pair ends no empty line.
pub fn read_line<'e>(editor: &'e mut LineEditor<'_>) -> Result<&'e str, LineError> {
    read_line_completing(editor, "", |_, _| Completion::default())
}

/// [`read_line`] with Tab completion, as bash does it: `complete` is
/// asked what the word before the cursor may become; one candidate is
/// completed, several are completed as far as they agree, and a second Tab
/// in a row lists them, then shows `prompt` and the line again. A Tab that
/// can do nothing rings the bell.
pub fn read_line_completing<'e>(
    editor: &'e mut LineEditor<'_>,
    prompt: &str,
    mut complete: impl FnMut(&str, usize) -> Completion,
) -> Result<&'e str, LineError> {
    flush();
    editor.clear();
    let mut tabs_in_a_row = 0;
    loop {
        let Some(byte) = serial::try_read_byte() else {
            if cpu::interrupts_enabled() {
                crate::task::yield_now();
            }
            continue;
        };
        let event = editor.feed(byte);
        match event {
            LineEvent::Complete => {
                tabs_in_a_row += 1;
                let completion = complete(editor.line(), editor.cursor());
                tab(editor, prompt, completion, tabs_in_a_row > 1);
            }
            LineEvent::Ignored => {}
            _ => tabs_in_a_row = 0,
        }
        editor.echo(event, write_byte);
        if matches!(event, LineEvent::Done | LineEvent::Cancelled) {
            return editor.result();
        }
    }
}

/// What Tab does with `completion`; `again` for the second Tab in a row.
fn tab(editor: &mut LineEditor<'_>, prompt: &str, completion: Completion, again: bool) {
    let event = editor.insert(completion.insert.as_bytes());
    if event != LineEvent::Ignored {
        editor.echo(event, write_byte);
        return;
    }
    if !(again && completion.total > 1) {
        write_byte(0x07); // the bell: nothing to add
        return;
    }
    // The candidates in columns, sorted down each column as `ls` sorts.
    let shown = &completion.candidates;
    let width = shown.iter().map(|name| name.len()).max().unwrap_or(0) + 2;
    let columns = (vga::COLUMNS / width).max(1);
    let rows = shown.len().div_ceil(columns);
    crate::println!();
    for row in 0..rows {
        let mut line = alloc::string::String::new();
        for name in shown.iter().skip(row).step_by(rows) {
            let _ = write!(line, "{name:width$}");
        }
        crate::println!("{}", line.trim_end());
    }
    if completion.total > shown.len() {
        crate::println!("... and {} more (type more of the name)", completion.total - shown.len());
    }
    crate::print!("{prompt}{}", editor.line());
    flush();
    (editor.cursor()..editor.line().len()).for_each(|_| write_byte(0x08));
}

#[cfg(test)]
mod tests {
    use super::*;

    // The line editor's own tests are in tests/console.rs.

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
        assert_eq!(editor.result(), Ok("prbe"));
    }

    #[test_case]
    fn capture_records_printed_bytes() {
        capture_begin();
        crate::print!("abc{}", 42);
        let mut buffer = [0u8; 16];
        assert_eq!(capture_end(&mut buffer), b"abc42");
    }

    #[test_case]
    fn silent_capture_records_and_ends() {
        capture_begin_silent();
        crate::print!("quiet {}", 7);
        let mut buffer = [0u8; 16];
        assert_eq!(capture_end(&mut buffer), b"quiet 7");
        assert!(!SILENT.load(Ordering::SeqCst));
    }
}
