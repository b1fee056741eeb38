//! The VGA text screen (80x25 at 0xB8000): a mirror of the console's output,
//! for a person at the machine.
//!
//! [`Terminal`] is the screen's logic, a small terminal over a grid of
//! cells: printable bytes with a deferred wrap at the last column (as a
//! VT100: a line of exactly 80 bytes and its newline take one row, not
//! two), `\n`, `\r`, `\t`, backspace that moves back across a wrap (so the
//! line editor's redraws, which put the cursor back with backspaces, work
//! on lines longer than a row), scrolling at the bottom, and the CSI
//! sequences a terminal program may send (cursor up, down, right, left and
//! position, erase in line and in display; others, colours for instance,
//! are consumed and ignored, never shown as text). It is pure: the grid is
//! a [`Cells`], so unit tests run it on a plain array. On the VGA, the
//! screen is a window on the 32 KiB of text memory that scrolls by moving
//! the CRT controller's start address, not by copying (see `Screen`).
//!
//! The console calls [`write_byte`] for every byte it sends while holding
//! its output lock, so one CPU at a time writes here; the whole terminal
//! state is one 64-bit atomic word, loaded and stored around each byte, so
//! even a fatal report that takes the lock from a CPU stopped in the middle
//! of a byte finds a consistent state (at worst one misplaced character),
//! and nothing here locks, allocates or waits. The hardware cursor follows
//! at the end of each line or echo ([`show_cursor`]), not per byte: it
//! costs four port writes.
//!
//! With no VGA (or one [`init`] does not recognise) every call is a no-op.
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use x86::io::{inb, outb};

/// Columns of the text screen.
pub const COLUMNS: usize = 80;
/// Rows of the text screen.
pub const ROWS: usize = 25;
/// Light grey on black: what the BIOS leaves and what every byte gets.
pub const ATTRIBUTE: u8 = 0x07;
/// A blank cell.
pub const BLANK: u16 = (ATTRIBUTE as u16) << 8 | b' ' as u16;
/// Columns between tab stops.
const TAB: usize = 8;

/// The text buffer's physical address (identity-mapped by paging).
const BUFFER: usize = 0xb8000;
/// Miscellaneous output register (read); bit 0 set: the CRT controller
/// answers at 0x3D4/0x3D5 (colour), as on every VGA in text mode 3.
const MISC_OUTPUT_READ: u16 = 0x3cc;
const CRTC_INDEX: u16 = 0x3d4;
const CRTC_DATA: u16 = 0x3d5;
const CRTC_START_HIGH: u8 = 0x0c;
const CRTC_START_LOW: u8 = 0x0d;
const CRTC_CURSOR_START: u8 = 0x0a;
const CRTC_CURSOR_END: u8 = 0x0b;
const CRTC_CURSOR_HIGH: u8 = 0x0e;
const CRTC_CURSOR_LOW: u8 = 0x0f;

/// A grid of `COLUMNS` x `ROWS` cells, each a character in its low byte and
/// an attribute in its high byte, indexed row by row.
pub trait Cells {
    /// The cell at `index` (< `COLUMNS * ROWS`).
    fn get(&self, index: usize) -> u16;
    /// Sets the cell at `index` (< `COLUMNS * ROWS`).
    fn set(&mut self, index: usize, cell: u16);
    /// Moves every row up by one and blanks the last.
    fn scroll(&mut self) {
        for index in 0..COLUMNS * (ROWS - 1) {
            self.set(index, self.get(index + COLUMNS));
        }
        for index in COLUMNS * (ROWS - 1)..COLUMNS * ROWS {
            self.set(index, BLANK);
        }
    }
}

impl Cells for [u16; COLUMNS * ROWS] {
    fn get(&self, index: usize) -> u16 {
        self[index]
    }
    fn set(&mut self, index: usize, cell: u16) {
        self[index] = cell;
    }
}

/// Where the terminal is in an escape sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Escape {
    None,
    /// After ESC.
    Start,
    /// After `ESC [`: up to two numeric parameters; `count` of them begun.
    Csi {
        parameters: [u16; 2],
        count: u8,
    },
}

/// The terminal's whole state: the cursor and any escape sequence begun.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Terminal {
    row: u8,
    column: u8,
    /// The last column was just written: the next printable byte wraps
    /// first (the cursor is shown on the last column meanwhile).
    wrap_pending: bool,
    escape: Escape,
}

impl Default for Terminal {
    fn default() -> Self {
        Self::new()
    }
}

impl Terminal {
    /// The cursor at the top left, outside any escape sequence.
    pub const fn new() -> Self {
        Terminal { row: 0, column: 0, wrap_pending: false, escape: Escape::None }
    }

    /// The cursor's row and column (the last column while a wrap is pending).
    pub fn cursor(&self) -> (usize, usize) {
        (self.row as usize, self.column as usize)
    }

    /// Feeds one byte, updating `cells`.
    pub fn put(&mut self, byte: u8, cells: &mut impl Cells) {
        match self.escape {
            Escape::None => {}
            Escape::Start => {
                self.escape = match byte {
                    b'[' => Escape::Csi { parameters: [0, 0], count: 0 },
                    0x1b => Escape::Start,
                    _ => Escape::None, // ESC + one byte: a key or a mode, nothing to show
                };
                return;
            }
            Escape::Csi { mut parameters, mut count } => {
                match byte {
                    b'0'..=b'9' => {
                        let slot = usize::from(count.max(1) - 1);
                        if count == 0 {
                            count = 1;
                        }
                        if let Some(parameter) = parameters.get_mut(slot) {
                            *parameter = parameter.saturating_mul(10).saturating_add(u16::from(byte - b'0'));
                        }
                        self.escape = Escape::Csi { parameters, count };
                    }
                    b';' => self.escape = Escape::Csi { parameters, count: (count.max(1) + 1).min(3) },
                    0x20..=0x3f => {} // private markers and intermediates: kept out of the parameters
                    0x40..=0x7e => {
                        self.escape = Escape::None;
                        self.control_sequence(byte, parameters, cells);
                    }
                    _ => self.escape = Escape::None, // a control byte cancels the sequence
                }
                return;
            }
        }
        match byte {
            0x1b => self.escape = Escape::Start,
            b'\n' => self.new_line(cells),
            b'\r' => {
                self.column = 0;
                self.wrap_pending = false;
            }
            0x08 => self.back(),
            b'\t' => {
                if !self.wrap_pending {
                    let next = (self.column as usize / TAB + 1) * TAB;
                    self.column = next.min(COLUMNS - 1) as u8;
                }
            }
            0x00..=0x1f | 0x7f => {} // other controls (bell, ...) show nothing
            _ => self.print(byte, cells),
        }
    }

    fn index(&self) -> usize {
        self.row as usize * COLUMNS + self.column as usize
    }

    fn print(&mut self, byte: u8, cells: &mut impl Cells) {
        if self.wrap_pending {
            self.new_line(cells);
        }
        cells.set(self.index(), u16::from(ATTRIBUTE) << 8 | u16::from(byte));
        if self.column as usize == COLUMNS - 1 {
            self.wrap_pending = true;
        } else {
            self.column += 1;
        }
    }

    /// Backspace: one cell back, to the end of the previous row from the
    /// first column; undoes exactly one printed byte's advance.
    fn back(&mut self) {
        if self.wrap_pending {
            self.wrap_pending = false;
        } else if self.column > 0 {
            self.column -= 1;
        } else if self.row > 0 {
            self.row -= 1;
            self.column = (COLUMNS - 1) as u8;
        }
    }

    fn new_line(&mut self, cells: &mut impl Cells) {
        self.column = 0;
        self.wrap_pending = false;
        if self.row as usize == ROWS - 1 {
            cells.scroll();
        } else {
            self.row += 1;
        }
    }

    /// `ESC [ parameters final`.
    fn control_sequence(&mut self, last: u8, parameters: [u16; 2], cells: &mut impl Cells) {
        // A missing or zero count means one.
        let count = usize::from(parameters[0].max(1));
        let (row, column) = (self.row as usize, self.column as usize);
        match last {
            b'A' => self.move_to(row.saturating_sub(count), column),
            b'B' => self.move_to((row + count).min(ROWS - 1), column),
            b'C' => self.move_to(row, (column + count).min(COLUMNS - 1)),
            b'D' => self.move_to(row, column.saturating_sub(count)),
            b'H' | b'f' => {
                let row = usize::from(parameters[0].max(1)) - 1;
                let column = usize::from(parameters[1].max(1)) - 1;
                self.move_to(row.min(ROWS - 1), column.min(COLUMNS - 1));
            }
            b'K' => {
                let line = row * COLUMNS;
                let range = match parameters[0] {
                    0 => line + column..line + COLUMNS,
                    1 => line..line + column + 1,
                    _ => line..line + COLUMNS,
                };
                range.for_each(|index| cells.set(index, BLANK));
            }
            b'J' => {
                let here = self.index();
                let range = match parameters[0] {
                    0 => here..COLUMNS * ROWS,
                    1 => 0..here + 1,
                    _ => 0..COLUMNS * ROWS,
                };
                range.for_each(|index| cells.set(index, BLANK));
            }
            _ => {} // colours (m) and the rest: nothing to show
        }
    }

    fn move_to(&mut self, row: usize, column: usize) {
        self.row = row as u8;
        self.column = column as u8;
        self.wrap_pending = false;
    }

    /// The state as one word, for [`STATE`].
    fn to_bits(self) -> u64 {
        let (kind, parameters, count) = match self.escape {
            Escape::None => (0u64, [0, 0], 0),
            Escape::Start => (1, [0, 0], 0),
            Escape::Csi { parameters, count } => (2, parameters, count),
        };
        u64::from(self.row)
            | u64::from(self.column) << 8
            | u64::from(self.wrap_pending) << 16
            | kind << 17
            | u64::from(count & 0x1f) << 19
            | u64::from(parameters[0]) << 24
            | u64::from(parameters[1]) << 40
    }

    /// The inverse of [`to_bits`](Self::to_bits); out-of-range fields are
    /// clamped, so any word gives a terminal that indexes inside the grid.
    fn from_bits(bits: u64) -> Self {
        let escape = match (bits >> 17) & 3 {
            0 => Escape::None,
            1 => Escape::Start,
            _ => Escape::Csi {
                parameters: [(bits >> 24) as u16, (bits >> 40) as u16],
                count: ((bits >> 19) & 0x1f) as u8,
            },
        };
        Terminal {
            row: ((bits & 0xff) as u8).min(ROWS as u8 - 1),
            column: (((bits >> 8) & 0xff) as u8).min(COLUMNS as u8 - 1),
            wrap_pending: (bits >> 16) & 1 != 0,
            escape,
        }
    }
}

/// Rows of video memory the CPU sees at 0xB8000 (32 KiB, 16,384 cells):
/// the screen shows [`ROWS`] of them, from the row the CRT controller's
/// start address names.
const MEMORY_ROWS: usize = 0x8000 / 2 / COLUMNS;

/// Reads the cell at `offset` (in cells) of the 32 KiB at 0xB8000.
fn read_cell(offset: usize) -> u16 {
    // SAFETY: the offset is clamped into the 32 KiB text window, which
    // paging maps (identity, first 128 MiB) and nothing in the kernel owns.
    unsafe { core::ptr::read_volatile((BUFFER as *const u16).add(offset.min(MEMORY_ROWS * COLUMNS - 1))) }
}

/// Writes the cell at `offset` (in cells) of the 32 KiB at 0xB8000.
fn write_cell(offset: usize, cell: u16) {
    // SAFETY: as in `read_cell`; device memory no Rust object lives in, so
    // writing it aliases nothing.
    unsafe { core::ptr::write_volatile((BUFFER as *mut u16).add(offset.min(MEMORY_ROWS * COLUMNS - 1)), cell) }
}

/// The screen: the [`ROWS`] rows of video memory from `top` on.
///
/// Scrolling moves the window down a row (the CRT controller's start
/// address follows in [`show_cursor`]) and blanks the row that comes into
/// view: 80 writes, where copying the screen up costs 4,000 (two accesses
/// per byte, on emulated VGAs each a trip to the device model: a scroll
/// cost ten times a line's serial output). At the end of video memory the
/// last 24 rows are copied to the top once, every 180 lines.
struct Screen {
    top: usize,
}

impl Cells for Screen {
    #[inline(always)]
    fn get(&self, index: usize) -> u16 {
        read_cell(self.top * COLUMNS + index)
    }
    #[inline(always)]
    fn set(&mut self, index: usize, cell: u16) {
        write_cell(self.top * COLUMNS + index, cell)
    }
    fn scroll(&mut self) {
        if self.top + ROWS < MEMORY_ROWS {
            self.top += 1;
        } else {
            for index in 0..COLUMNS * (ROWS - 1) {
                write_cell(index, self.get(index + COLUMNS));
            }
            self.top = 0;
        }
        for index in COLUMNS * (ROWS - 1)..COLUMNS * ROWS {
            self.set(index, BLANK);
        }
    }
}

/// Whether [`init`] found a VGA in colour text mode.
static PRESENT: AtomicBool = AtomicBool::new(false);
/// The screen's [`Terminal`], as [`Terminal::to_bits`] packs it, and in
/// bits 56–63 the window's first row of video memory.
static STATE: AtomicU64 = AtomicU64::new(0);
const TOP_SHIFT: u32 = 56;

/// The terminal and the screen's window, from [`STATE`].
fn load() -> (Terminal, Screen) {
    let bits = STATE.load(Ordering::Relaxed);
    let top = ((bits >> TOP_SHIFT) as usize).min(MEMORY_ROWS - ROWS);
    (Terminal::from_bits(bits & ((1 << TOP_SHIFT) - 1)), Screen { top })
}

fn store(terminal: Terminal, screen: &Screen) {
    STATE.store(terminal.to_bits() | (screen.top as u64) << TOP_SHIFT, Ordering::Relaxed);
}

fn crtc_read(register: u8) -> u8 {
    // SAFETY: selecting a CRT controller register and reading it has no
    // memory effects; on a machine without a VGA nothing decodes these
    // ports (the read gives 0xFF).
    unsafe {
        outb(CRTC_INDEX, register);
        inb(CRTC_DATA)
    }
}

fn crtc_write(register: u8, value: u8) {
    // SAFETY: as in `crtc_read`; the registers written (start address,
    // cursor shape and position) only change which text memory is shown
    // and where the cursor is drawn, never memory the kernel uses.
    unsafe {
        outb(CRTC_INDEX, register);
        outb(CRTC_DATA, value);
    }
}

/// Looks for a VGA in colour text mode: the miscellaneous output register
/// says the CRT controller is at 0x3D4 and one of its registers keeps what
/// is written to it (with nothing there, a port reads 0xFF). If found,
/// clears the screen, shows an underline cursor at the top left and
/// returns true; from then on [`write_byte`] draws. Call once at boot.
pub fn init() -> bool {
    // SAFETY: reading the VGA's miscellaneous output register has no
    // effects; on a machine without one the port reads as 0xFF.
    let misc = unsafe { inb(MISC_OUTPUT_READ) };
    if misc == 0xff || misc & 1 == 0 {
        return false;
    }
    let saved = crtc_read(CRTC_CURSOR_LOW);
    let echoes = [0x5a, 0xa5].iter().all(|&probe| {
        crtc_write(CRTC_CURSOR_LOW, probe);
        crtc_read(CRTC_CURSOR_LOW) == probe
    });
    crtc_write(CRTC_CURSOR_LOW, saved);
    if !echoes {
        return false;
    }
    clear_screen();
    // Cursor on scan lines 14-15 of the 16-line cell, enabled (bit 5 clear).
    crtc_write(CRTC_CURSOR_START, (crtc_read(CRTC_CURSOR_START) & 0xc0) | 14);
    crtc_write(CRTC_CURSOR_END, (crtc_read(CRTC_CURSOR_END) & 0xe0) | 15);
    PRESENT.store(true, Ordering::Release);
    show_cursor();
    true
}

/// Whether the screen is in use ([`init`] found a VGA).
pub fn is_present() -> bool {
    PRESENT.load(Ordering::Acquire)
}

fn clear_screen() {
    let mut screen = Screen { top: 0 };
    (0..COLUMNS * ROWS).for_each(|index| screen.set(index, BLANK));
    store(Terminal::new(), &screen);
}

/// Blanks the screen and puts the cursor at the top left (tests start from
/// a known screen with it). The caller holds the console's output lock, or
/// nothing else prints.
pub fn clear() {
    if is_present() {
        clear_screen();
        show_cursor();
    }
}

/// Draws one byte the console sent. The caller holds the console's output
/// lock (one CPU at a time).
#[unsafe(link_section = ".kprobes.text")]
pub fn write_byte(byte: u8) {
    if !PRESENT.load(Ordering::Relaxed) {
        return;
    }
    let (mut terminal, mut screen) = load();
    terminal.put(byte, &mut screen);
    store(terminal, &screen);
}

/// Shows the screen's window and moves the hardware cursor to the
/// terminal's cursor.
#[unsafe(link_section = ".kprobes.text")]
pub fn show_cursor() {
    if !PRESENT.load(Ordering::Relaxed) {
        return;
    }
    let (terminal, screen) = load();
    let (row, column) = terminal.cursor();
    let start = (screen.top * COLUMNS) as u16;
    let position = start + (row * COLUMNS + column) as u16;
    crtc_write(CRTC_START_HIGH, (start >> 8) as u8);
    crtc_write(CRTC_START_LOW, start as u8);
    crtc_write(CRTC_CURSOR_HIGH, (position >> 8) as u8);
    crtc_write(CRTC_CURSOR_LOW, position as u8);
}

/// The terminal's cursor (row, column).
pub fn cursor() -> (usize, usize) {
    load().0.cursor()
}

/// The CRT controller's start address: the cell of video memory it shows
/// at the top left.
fn displayed_start() -> usize {
    usize::from(crtc_read(CRTC_START_HIGH)) << 8 | usize::from(crtc_read(CRTC_START_LOW))
}

/// Where the hardware cursor is on the screen (row, column), as the CRT
/// controller says: its cursor location against its start address.
pub fn hardware_cursor() -> (usize, usize) {
    let position = usize::from(crtc_read(CRTC_CURSOR_HIGH)) << 8 | usize::from(crtc_read(CRTC_CURSOR_LOW));
    let relative = position.wrapping_sub(displayed_start());
    (relative / COLUMNS, relative % COLUMNS)
}

/// The characters of screen row `row` (< [`ROWS`]) as they are displayed:
/// read back from video memory at 0xB8000, from where the CRT controller's
/// start address says the screen begins; attributes dropped.
pub fn row_text(row: usize) -> [u8; COLUMNS] {
    let mut text = [0u8; COLUMNS];
    for (column, byte) in text.iter_mut().enumerate() {
        *byte = cell(row, column) as u8;
    }
    text
}

/// The cell (character and attribute) displayed at `row`, `column`, read
/// from video memory.
pub fn cell(row: usize, column: usize) -> u16 {
    read_cell(displayed_start() + row.min(ROWS - 1) * COLUMNS + column.min(COLUMNS - 1))
}

/// The first row of video memory the screen shows now (tests: scrolling
/// moves it; it wraps to 0 at the end of video memory).
pub fn window_top() -> usize {
    displayed_start() / COLUMNS
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The terminal after `bytes` on a blank grid, and the grid's rows with
    /// trailing blanks cut.
    fn run(bytes: &[u8]) -> (Terminal, alloc::vec::Vec<alloc::string::String>) {
        let mut cells = [BLANK; COLUMNS * ROWS];
        let mut terminal = Terminal::new();
        for &byte in bytes {
            terminal.put(byte, &mut cells);
        }
        let rows = cells
            .chunks(COLUMNS)
            .map(|row| {
                let text: alloc::string::String = row.iter().map(|&cell| cell as u8 as char).collect();
                alloc::string::String::from(text.trim_end())
            })
            .collect();
        (terminal, rows)
    }

    #[test_case]
    fn terminal_prints_wraps_late_and_backs_up_across_rows() {
        let (terminal, rows) = run(b"ab\rc\n\tx");
        assert_eq!((&rows[0][..], &rows[1][..]), ("cb", "        x"));
        assert_eq!(terminal.cursor(), (1, 9));
        // 80 bytes and a newline: one row, not two.
        let mut line = [b'='; COLUMNS + 1];
        line[COLUMNS] = b'\n';
        let (terminal, _) = run(&line);
        assert_eq!(terminal.cursor(), (1, 0));
        // 81 bytes wrap; two backspaces go back to column 79 of row 0.
        let (terminal, rows) = run(&[b'-'; COLUMNS + 1]);
        assert_eq!((terminal.cursor(), rows[1].len()), ((1, 1), 1));
        let mut bytes = alloc::vec![b'-'; COLUMNS + 1];
        bytes.extend_from_slice(b"\x08\x08Z");
        let (terminal, rows) = run(&bytes);
        assert_eq!((terminal.cursor(), rows[0].as_bytes()[COLUMNS - 1], &rows[1][..]), ((0, 79), b'Z', "-"));
    }

    #[test_case]
    fn terminal_runs_csi_sequences_and_hides_unknown_ones() {
        let (terminal, rows) = run(b"abcdef\x1b[3D\x1b[K!\x1b[31mred\x1b[0m\x1b[?25l");
        assert_eq!((&rows[0][..], terminal.cursor()), ("abc!red", (0, 7)));
        let (terminal, rows) = run(b"one\ntwo\x1b[1;2Hx\x1b[2C\x1b[By");
        assert_eq!((&rows[0][..], &rows[1][..], terminal.cursor()), ("oxe", "two y", (1, 5)));
        let (_, rows) = run(b"gone\nkept\x1b[2J");
        assert!(rows.iter().all(|row| row.is_empty()));
        // ESC + one byte (Alt+x) and a sequence cut short by a control byte.
        let (_, rows) = run(b"\x1bxa\x1b[1\x07b");
        assert_eq!(&rows[0][..], "ab");
    }

    #[test_case]
    fn terminal_scrolls_at_the_bottom() {
        let mut bytes = alloc::vec::Vec::new();
        for line in 0..30 {
            bytes.extend_from_slice(alloc::format!("line {line}\n").as_bytes());
        }
        let (terminal, rows) = run(&bytes);
        assert_eq!((&rows[0][..], &rows[23][..], &rows[24][..]), ("line 6", "line 29", ""));
        assert_eq!(terminal.cursor(), (24, 0));
    }

    #[test_case]
    fn terminal_state_packs_into_one_word() {
        let mut cells = [BLANK; COLUMNS * ROWS];
        let mut terminal = Terminal::new();
        for &byte in b"ab\n\x1b[12;34" {
            terminal.put(byte, &mut cells);
        }
        assert_eq!(Terminal::from_bits(terminal.to_bits()), terminal);
        assert_eq!(Terminal::from_bits(u64::MAX).cursor(), (ROWS - 1, COLUMNS - 1));
    }
}
