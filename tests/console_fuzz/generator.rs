//! The console fuzz campaign's line generator, which knows each line's right answer.
//!
//! A seeded xorshift PRNG and the shapes of line it makes, kept apart from
//! the checking loop (main.rs) so that each stays readable. The generator is its own oracle: it knows the usage text of every
//! command, which offsets of its target functions are instruction
//! boundaries (asked once of `can_probe`), and which shell probe numbers
//! are in use, so most lines have one exact right answer. It allocates
//! nothing: the campaign checks the heap to the byte.
use core::fmt::{self, Write};
use probe_kernel::console::LINE_MAX;
use probe_kernel::kprobes::can_probe;
use probe_kernel::shell::MAX_SHELL_PROBES;
use probe_kernel::symbols;

/// A fixed-capacity byte string (no heap).
pub struct Text<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> Text<N> {
    /// Empty.
    pub const fn new() -> Self {
        Text { bytes: [0; N], len: 0 }
    }
    /// Empties it.
    pub fn clear(&mut self) {
        self.len = 0;
    }
    /// Bytes held.
    pub fn len(&self) -> usize {
        self.len
    }
    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
    /// The bytes as text ("" if not UTF-8).
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(self.bytes()).unwrap_or("")
    }
    /// Appends bytes; panics when full (a generator bug, never input).
    pub fn extend(&mut self, bytes: &[u8]) {
        assert!(self.len + bytes.len() <= N, "fuzz buffer of {N} bytes full");
        self.bytes[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }
    /// Appends one byte.
    pub fn push(&mut self, byte: u8) {
        self.extend(&[byte]);
    }
}

impl<const N: usize> Write for Text<N> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        self.extend(text.as_bytes());
        Ok(())
    }
}

/// What the shell must answer to a generated line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Exactly the expected text.
    Exact,
    /// An error from the line's command word (the text depends on the engine).
    Error,
    /// Random bytes: whatever the editor made of them, answered as such.
    Random,
    /// A definition that succeeds: exactly the expected text.
    Defined,
    /// A remove that succeeds: exactly the expected text.
    Removed,
    /// `list`: this many probe lines.
    Listing(usize),
    /// Exactly what `help` printed at the start.
    Help,
}

/// A generated line: what to expect, and whether the editor must give
/// exactly the text the generator typed (then `line` holds it).
pub struct Case {
    /// The answer.
    pub expect: Expect,
    /// The editor's line is known (it is in `line`).
    pub known: bool,
}

/// Marsaglia's xorshift32.
struct Rng(u32);

impl Rng {
    fn next(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() as usize) % n
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Every command and its usage, as the shell must print it.
const USAGE: [(&str, &str); 12] = [
    ("help", "help"),
    ("syms", "syms PATTERN"),
    ("kprobe", "kprobe SYMBOL[+OFFSET] [verbose]"),
    ("kretprobe", "kretprobe SYMBOL [verbose]"),
    ("list", "list"),
    ("enable", "enable N"),
    ("disable", "disable N"),
    ("remove", "remove N"),
    ("demo", "demo"),
    ("tasks", "tasks"),
    ("ticks", "ticks"),
    ("exit", "exit"),
];

/// Whether `word` is a shell command.
pub fn is_command(word: &str) -> bool {
    USAGE.iter().any(|(name, _)| *name == word) || ["echo", "cat", "ls", "cd", "pwd"].contains(&word)
}

const LEFT: [&[u8]; 4] = [b"\x1b[D", b"\x1bOD", b"\x1b[1;5D", b"\x1b[1;2D"];
const RIGHT: [&[u8]; 3] = [b"\x1b[C", b"\x1bOC", b"\x1b[1;5C"];
const HOME: [&[u8]; 4] = [b"\x1b[H", b"\x1b[1~", b"\x1bOH", b"\x1b[7~"];
const END: [&[u8]; 4] = [b"\x1b[F", b"\x1b[4~", b"\x1bOF", b"\x1b[8~"];
const DELETE: &[u8] = b"\x1b[3~";
const IGNORED: [&[u8]; 11] = [
    b"\x1b[A",
    b"\x1b[B",
    b"\x1bOA",
    b"\x1b[5~",
    b"\x1b[6~",
    b"\x1b[15~",
    b"\x1bOP",
    b"\x1bx",
    b"\x1b[200~",
    b"\x1b[2~",
    b"\x1b\x1b[A",
];
const TERMINATORS: [&[u8]; 3] = [b"\r", b"\n", b"\r\n"];

/// A function the campaign defines probes on, and its probeable offsets.
struct Target {
    name: &'static str,
    address: usize,
    offsets: [u16; 64],
    count: usize,
    /// Offsets below this are all classified (the valid ones are listed).
    scanned: usize,
    size: usize,
    /// Never runs during the campaign, so `verbose` prints nothing.
    quiet: bool,
}

const TARGETS: [(&str, bool); 4] = [
    ("console_fuzz_target", true),
    ("probe_kernel::demo::checksum", true),
    ("probe_kernel::demo::slow_square", true),
    // On the shell's own path: its probes fire during the campaign.
    ("probe_kernel::symbols::lookup_name", false),
];

/// Makes the campaign's lines.
pub struct Generator {
    rng: Rng,
    targets: [Target; 4],
    live: [bool; MAX_SHELL_PROBES],
}

impl Generator {
    /// A generator for `seed` (0 is replaced: xorshift needs a non-zero state).
    pub fn new(seed: u32) -> Self {
        let targets = TARGETS.map(|(name, quiet)| {
            let symbol = symbols::lookup_name(name).expect("fuzz target in the symbol table");
            let mut target = Target {
                name,
                address: symbol.address,
                offsets: [0; 64],
                count: 0,
                scanned: 0,
                size: symbol.size,
                quiet,
            };
            while target.scanned < symbol.size && target.count < 64 {
                if can_probe((symbol.address + target.scanned) as *const ()).is_ok() {
                    target.offsets[target.count] = target.scanned as u16;
                    target.count += 1;
                }
                target.scanned += 1;
            }
            assert!(target.count > 0 && target.offsets[0] == 0, "{name}: its entry must be probeable");
            target
        });
        Generator { rng: Rng(if seed == 0 { 1 } else { seed }), targets, live: [false; MAX_SHELL_PROBES] }
    }

    /// Shell probe numbers the generator believes in use.
    pub fn live_slots(&self) -> impl Iterator<Item = usize> + use<> {
        let live = self.live;
        (0..MAX_SHELL_PROBES).filter(move |&n| live[n])
    }

    /// Makes one line: its keys (with terminator) in `keys`, the answer (or,
    /// if `known`, first the line the editor must give) in `answer`/`line`.
    pub fn line<const K: usize, const A: usize>(
        &mut self,
        keys: &mut Text<K>,
        line: &mut Text<256>,
        answer: &mut Text<A>,
    ) -> Case {
        let roll = self.rng.below(100);
        let case = match roll {
            0..20 => self.random_bytes(keys, answer),
            20..28 => self.overlong(keys, answer),
            28..38 => self.control_byte(keys, answer),
            _ => {
                // Printable lines, typed plainly or with editing keys.
                let expect = match roll {
                    38..64 => self.bad_arguments(line, answer),
                    64..79 => self.definition(line, answer),
                    79..91 => self.change(line, answer),
                    91..96 => self.blank(line),
                    96..99 => self.list(line),
                    _ => {
                        self.spaces(line, 0, 2);
                        line.extend(b"help");
                        self.spaces(line, 0, 2);
                        Expect::Help
                    }
                };
                if line.len() > LINE_MAX {
                    answer.clear();
                    let _ = writeln!(answer, "console: line too long (max {LINE_MAX} bytes)");
                    self.type_plain(line.bytes(), keys);
                    Case { expect: Expect::Exact, known: false }
                } else {
                    self.type_edited(line.bytes(), keys);
                    Case { expect, known: true }
                }
            }
        };
        // An empty line ends with CR: a lone LF after the CR that ended the
        // line before would be the second half of CR LF, and swallowed.
        let terminator = if keys.len() == 0 { b"\r" } else { *self.rng.pick(&TERMINATORS) };
        keys.extend(terminator);
        case
    }

    fn random_bytes<const K: usize, const A: usize>(&mut self, keys: &mut Text<K>, answer: &mut Text<A>) -> Case {
        let length = self.rng.below(200);
        let printable_mostly = self.rng.chance(50);
        for _ in 0..length {
            let byte = if printable_mostly && self.rng.chance(90) {
                0x20 + self.rng.below(95) as u8
            } else {
                self.rng.next() as u8
            };
            if byte != b'\r' && byte != b'\n' {
                keys.push(byte);
            }
        }
        answer.clear();
        Case { expect: Expect::Random, known: false }
    }

    fn overlong<const K: usize, const A: usize>(&mut self, keys: &mut Text<K>, answer: &mut Text<A>) -> Case {
        if self.rng.chance(30) {
            // Issue 7's line: an offset padded past the end of the buffer.
            keys.extend(b"kprobe probe_kernel::demo::checksum+0x");
            (0..100 + self.rng.below(100)).for_each(|_| keys.push(b'0'));
            keys.extend(b"1c");
        } else {
            let length = LINE_MAX + 1 + self.rng.below(300);
            (0..length).for_each(|_| keys.push(self.printable()));
        }
        // Editing after the overflow repairs nothing.
        if self.rng.chance(30) {
            (0..self.rng.below(200)).for_each(|_| keys.push(*self.rng.pick(&[0x7f, 0x08, 0x01, 0xff, b'x'])));
        }
        let _ = writeln!(answer, "console: line too long (max {LINE_MAX} bytes)");
        Case { expect: Expect::Exact, known: false }
    }

    fn control_byte<const K: usize, const A: usize>(&mut self, keys: &mut Text<K>, answer: &mut Text<A>) -> Case {
        let prefix = self.rng.below(LINE_MAX);
        let mut words = Text::<256>::new();
        self.command_like(&mut words);
        for i in 0..prefix {
            keys.push(words.bytes().get(i).copied().unwrap_or_else(|| self.printable()));
        }
        let byte = loop {
            let byte = if self.rng.chance(50) { self.rng.below(0x20) as u8 } else { 0x80 | self.rng.next() as u8 };
            // Keys, not invalid bytes: backspace, Enter, escape, Ctrl+C
            // (cancels the line) and Tab (completes).
            if ![0x03, 0x08, b'\t', b'\n', b'\r', 0x1b].contains(&byte) {
                break byte;
            }
        };
        keys.push(byte);
        for _ in 0..self.rng.below(60) {
            let next = if self.rng.chance(85) { self.printable() } else { self.rng.next() as u8 | 0x80 };
            keys.push(next);
        }
        let _ = writeln!(answer, "console: invalid byte {byte:#04x} at column {}", prefix + 1);
        Case { expect: Expect::Exact, known: false }
    }

    /// A command word and some plausible words after it.
    fn command_like(&mut self, out: &mut Text<256>) {
        out.extend(self.rng.pick(&USAGE).0.as_bytes());
        for _ in 0..self.rng.below(4) {
            out.push(b' ');
            self.junk_word(out, 12);
        }
    }

    fn printable(&mut self) -> u8 {
        0x20 + self.rng.below(95) as u8
    }

    /// 1..=max printable non-space bytes.
    /// A word of printable ASCII that the command line takes as it is:
    /// nothing `sh` quotes, escapes, redirects or refuses (the random lines
    /// exercise those, answered from `sh::parse`).
    fn junk_word(&mut self, out: &mut Text<256>, max: usize) {
        const SPECIAL: &[u8] = b"'\"\\<>|;&$`()";
        for _ in 0..1 + self.rng.below(max) {
            let byte = loop {
                let byte = 0x21 + self.rng.below(94) as u8;
                if !SPECIAL.contains(&byte) {
                    break byte;
                }
            };
            out.push(byte);
        }
    }

    fn spaces(&mut self, out: &mut Text<256>, min: usize, max: usize) {
        (0..min + self.rng.below(max - min + 1)).for_each(|_| out.push(b' '));
    }

    /// Wrong command lines with their exact answers (or "an error").
    fn bad_arguments<const A: usize>(&mut self, line: &mut Text<256>, answer: &mut Text<A>) -> Expect {
        let (command, usage) = *self.rng.pick(&USAGE);
        let argument = usage.split(' ').nth(1);
        self.spaces(line, 0, 2);
        match self.rng.below(10) {
            0 => {
                // An unknown command word.
                let start = line.len();
                self.junk_word(line, 12);
                if is_command(&line.as_str()[start..]) {
                    line.push(b'x');
                }
                let word = &line.as_str()[start..];
                let _ = writeln!(answer, "{word}: unknown command (try: help)");
                self.extra_words(line);
                Expect::Exact
            }
            1 if argument.is_some() => {
                let _ = write!(line, "{command}");
                self.spaces(line, 0, 3);
                let _ = writeln!(answer, "{command}: missing {} (usage: {usage})", argument.unwrap());
                Expect::Exact
            }
            1 | 2 => {
                // Extra words (after a throw-away argument if it takes one).
                let _ = write!(line, "{command}");
                if argument.is_some() {
                    line.push(b' ');
                    self.junk_word(line, 10);
                }
                for _ in 0..1 + self.rng.below(3) {
                    self.spaces(line, 1, 2);
                    let start = line.len();
                    self.junk_word(line, 10);
                    if &line.as_str()[start..] == "verbose" {
                        line.push(b'!');
                    }
                    let word = &line.as_str()[start..];
                    let _ = writeln!(answer, "{command}: unexpected word \"{word}\" (usage: {usage})");
                }
                Expect::Exact
            }
            3 => {
                let command = *self.rng.pick(&["remove", "enable", "disable"]);
                let _ = write!(line, "{command} ");
                let start = line.len();
                self.junk_word(line, 8);
                if line.as_str()[start..].bytes().all(|b| b.is_ascii_digit()) {
                    line.push(*self.rng.pick(b"x+-_"));
                }
                let token = &line.as_str()[start..];
                let _ = writeln!(answer, "{command}: bad probe number \"{token}\" (a number from `list`)");
                Expect::Exact
            }
            4 => {
                let command = *self.rng.pick(&["remove", "enable", "disable"]);
                let _ = write!(line, "{command} ");
                let mut value: u128 = 0;
                let start = line.len();
                for _ in 0..1 + self.rng.below(20) {
                    let digit = self.rng.below(10);
                    line.push(b'0' + digit as u8);
                    value = value * 10 + digit as u128;
                }
                let token = &line.as_str()[start..];
                if value > u32::MAX as u128 {
                    let _ = writeln!(answer, "{command}: probe number \"{token}\" too large");
                } else if (value as usize) < MAX_SHELL_PROBES && self.live[value as usize] {
                    line.push(b'x'); // live: make it malformed instead
                    let token = &line.as_str()[start..];
                    let _ = writeln!(answer, "{command}: bad probe number \"{token}\" (a number from `list`)");
                } else {
                    let _ = writeln!(answer, "{command}: no probe {value}");
                }
                Expect::Exact
            }
            5 | 6 => {
                // A symbol that does not exist (maybe with a good offset).
                let command = *self.rng.pick(&["kprobe", "kretprobe"]);
                let _ = write!(line, "{command} ");
                let start = line.len();
                loop {
                    self.junk_word(line, 20);
                    let name = &line.as_str()[start..];
                    if !name.contains('+') && symbols::lookup_name(name).is_none() {
                        break;
                    }
                    line.len = start;
                }
                let end = line.len();
                let name = &line.as_str()[start..end];
                let mut buffer = Text::<128>::new();
                let _ = writeln!(buffer, "{command}: no such symbol \"{name}\" (try: syms PATTERN)");
                answer.extend(buffer.bytes());
                if self.rng.chance(50) {
                    line.extend(self.rng.pick(&[&b"+28"[..], b"+0x1c", b"+0"]));
                }
                Expect::Exact
            }
            7 => {
                // A malformed or too large offset on any name.
                let command = *self.rng.pick(&["kprobe", "kretprobe"]);
                let target = self.rng.pick(&TARGETS).0;
                let _ = write!(line, "{command} {target}+");
                let start = line.len();
                if self.rng.chance(30) {
                    line.extend(self.rng.pick(&[
                        &b"0x100000000"[..],
                        b"4294967296",
                        b"0x0000fffffffff",
                        b"99999999999",
                    ]));
                    let token = &line.as_str()[start..];
                    let _ = writeln!(answer, "{command}: offset \"{token}\" too large");
                } else {
                    for _ in 0..self.rng.below(8) {
                        line.push(*self.rng.pick(b"0123456789abcdefxX+-g_"));
                    }
                    if offset_is_valid(&line.as_str()[start..]) {
                        line.push(b'g');
                    }
                    let token = &line.as_str()[start..];
                    let _ = writeln!(answer, "{command}: bad offset \"{token}\" (decimal or 0x-hex)");
                }
                Expect::Exact
            }
            8 => {
                // A return probe off its function's entry.
                let target = self.rng.pick(&TARGETS).0;
                let offset = 1 + self.rng.below(100_000);
                let _ = write!(line, "kretprobe {target}+");
                if self.rng.chance(50) {
                    let _ = write!(line, "{offset}");
                } else {
                    let _ = write!(line, "{offset:#x}");
                }
                let _ = writeln!(
                    answer,
                    "kretprobe: offset {offset:#x} refused: a return probe goes on a function's entry (offset 0)"
                );
                Expect::Exact
            }
            _ => {
                // A real function at an offset that is no instruction boundary.
                let index = self.rng.below(self.targets.len());
                let target = &self.targets[index];
                let offset = loop {
                    let offset = match self.rng.chance(20) {
                        true => target.size + self.rng.below(40),
                        false => self.rng.below(target.scanned),
                    };
                    if offset >= target.size || !target.offsets[..target.count].contains(&(offset as u16)) {
                        break offset;
                    }
                };
                let _ = write!(line, "kprobe {}+{offset}", target.name);
                Expect::Error
            }
        }
    }

    /// Trailing junk words (they change nothing for an unknown command).
    fn extra_words(&mut self, line: &mut Text<256>) {
        for _ in 0..self.rng.below(3) {
            line.push(b' ');
            self.junk_word(line, 8);
        }
    }

    /// A definition of a real probe, or "all in use" when the table is full.
    fn definition<const A: usize>(&mut self, line: &mut Text<256>, answer: &mut Text<A>) -> Expect {
        let target = &self.targets[self.rng.below(self.targets.len())];
        let (name, address, quiet) = (target.name, target.address, target.quiet);
        let kretprobe = self.rng.chance(30);
        let offset = if kretprobe { 0 } else { target.offsets[self.rng.below(target.count)] as usize };
        let command = if kretprobe { "kretprobe" } else { "kprobe" };
        self.spaces(line, 0, 1);
        let _ = write!(line, "{command}");
        self.spaces(line, 1, 2);
        let _ = write!(line, "{name}");
        match self.rng.below(4) {
            0 if offset == 0 => {}
            0 | 1 => {
                let _ = write!(line, "+{offset}");
            }
            2 => {
                let _ = write!(line, "+{offset:#x}");
            }
            _ => {
                let _ = write!(line, "+0X{offset:X}");
            }
        }
        if quiet && self.rng.chance(30) {
            self.spaces(line, 1, 2);
            line.extend(b"verbose");
        }
        self.spaces(line, 0, 1);
        let Some(slot) = (0..MAX_SHELL_PROBES).find(|&n| !self.live[n]) else {
            let _ = writeln!(answer, "{command}: all {MAX_SHELL_PROBES} shell probes in use");
            return Expect::Exact;
        };
        if line.len() > LINE_MAX {
            return Expect::Exact; // refused as too long by the caller
        }
        self.live[slot] = true;
        if kretprobe {
            let _ = writeln!(answer, "probe {slot}: kretprobe on {name} (maxactive 10)");
        } else {
            let _ = writeln!(answer, "probe {slot}: kprobe at {name}+{offset:#x} ({:#x})", address + offset);
        }
        Expect::Defined
    }

    /// remove, enable or disable, mostly of a probe in use.
    fn change<const A: usize>(&mut self, line: &mut Text<256>, answer: &mut Text<A>) -> Expect {
        let command = *self.rng.pick(&["remove", "remove", "remove", "enable", "disable"]);
        let live: usize = self.live.iter().filter(|&&l| l).count();
        let number = if live > 0 && self.rng.chance(80) {
            self.live_slots().nth(self.rng.below(live)).unwrap()
        } else {
            self.rng.below(MAX_SHELL_PROBES + 8)
        };
        let _ = write!(line, "{command}");
        self.spaces(line, 1, 3);
        if self.rng.chance(10) {
            line.push(b'0');
        }
        let _ = write!(line, "{number}");
        if !(number < MAX_SHELL_PROBES && self.live[number]) {
            let _ = writeln!(answer, "{command}: no probe {number}");
            return Expect::Exact;
        }
        if command == "remove" {
            self.live[number] = false;
            let _ = writeln!(answer, "probe {number} removed");
            return Expect::Removed;
        }
        let _ = writeln!(answer, "probe {number}: {command}d");
        Expect::Exact
    }

    /// Spaces only: the shell answers nothing.
    fn blank(&mut self, line: &mut Text<256>) -> Expect {
        self.spaces(line, 0, 6);
        Expect::Exact
    }

    fn list(&mut self, line: &mut Text<256>) -> Expect {
        self.spaces(line, 0, 2);
        line.extend(b"list");
        self.spaces(line, 0, 2);
        Expect::Listing(self.live.iter().filter(|&&l| l).count())
    }

    fn type_plain<const K: usize>(&mut self, text: &[u8], keys: &mut Text<K>) {
        keys.extend(text);
    }

    /// Types `text` so that the editor ends with exactly it: plainly, or
    /// its bytes in random order with cursor moves (arrows, home, end in
    /// every encoding), typos erased with backspace or delete, and keys
    /// that do nothing.
    fn type_edited<const K: usize>(&mut self, text: &[u8], keys: &mut Text<K>) {
        let n = text.len();
        if n > 40 || self.rng.chance(50) {
            return self.type_plain(text, keys);
        }
        let mut present = [false; 40];
        let (mut cursor, mut len) = (0, 0);
        for _ in 0..n {
            let mut i = self.rng.below(n);
            while present[i] {
                i = (i + 1) % n;
            }
            let to = present[..i].iter().filter(|&&p| p).count();
            self.move_cursor(cursor, to, len, keys);
            if self.rng.chance(10) {
                keys.push(self.printable());
                if self.rng.chance(50) {
                    keys.push(*self.rng.pick(&[0x08, 0x7f]));
                } else {
                    keys.extend(self.rng.pick(&LEFT));
                    keys.extend(DELETE);
                }
            }
            if self.rng.chance(8) {
                keys.extend(self.rng.pick(&IGNORED));
            }
            keys.push(text[i]);
            present[i] = true;
            cursor = to + 1;
            len += 1;
        }
        if self.rng.chance(20) {
            keys.extend(self.rng.pick(&HOME));
        }
    }

    fn move_cursor<const K: usize>(&mut self, from: usize, to: usize, len: usize, keys: &mut Text<K>) {
        if from == to {
            return;
        }
        let (mut at, step_left) = match self.rng.below(3) {
            0 => {
                keys.extend(self.rng.pick(&HOME));
                (0, false)
            }
            1 => {
                keys.extend(self.rng.pick(&END));
                (len, true)
            }
            _ => (from, to < from),
        };
        while at != to {
            if step_left && at > to {
                keys.extend(self.rng.pick(&LEFT));
                at -= 1;
            } else if at < to {
                keys.extend(self.rng.pick(&RIGHT));
                at += 1;
            } else {
                keys.extend(self.rng.pick(&LEFT));
                at -= 1;
            }
        }
    }
}

/// Whether the shell would take `text` as an offset: decimal digits, or
/// `0x`/`0X` and hex digits.
fn offset_is_valid(text: &str) -> bool {
    let hex = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X"));
    match hex {
        Some(digits) => !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_hexdigit()),
        None => !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()),
    }
}
