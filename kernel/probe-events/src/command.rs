//! Commands: one line written to `kprobe_events` or `dynamic_events`.
use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::error::{CommandError, Errno, ErrorKind, ProbeError};
use crate::fetch::{ArgFlags, ArgParser, FetchArg, MAX_ARGSTR_LEN, is_good_name, is_good_system_name};
use crate::num::{kstrtol, kstrtouint, kstrtoul, simple_strtoul};
use crate::params::{EntrySource, ParamLookup};

/// Longest event or group name plus its terminating NUL in Linux.
pub const MAX_EVENT_NAME_LEN: usize = 64;
/// Most fetch arguments a probe takes.
pub const MAX_TRACE_ARGS: usize = 128;
/// Largest kretprobe `MAXACTIVE`.
pub const KRETPROBE_MAXACTIVE_MAX: u32 = 4096;
/// Longest line a write may carry (Linux's 4096-byte buffer, less the
/// newline and the NUL).
pub const MAX_LINE_LEN: usize = 4094;
/// The group of kprobe events that name none.
pub const KPROBE_GROUP: &str = "kprobes";
/// The group of fprobe events that name none.
pub const FPROBE_GROUP: &str = "fprobes";

const KPROBE_SUBSYSTEM: &str = "trace_kprobe";
const FPROBE_SUBSYSTEM: &str = "trace_fprobe";

/// The file a command is written to, which decides the commands it takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interface {
    /// `kprobe_events`: `p`, `r` and `-:`.
    KprobeEvents,
    /// `dynamic_events`: also `f` (fprobes) and `!` removals.
    DynamicEvents,
}

/// Symbol lookups a definition needs while it is parsed and compiled.
/// Whether `SYM+offs` is on an instruction boundary is registration's
/// business, not the parser's.
pub trait SymbolResolver {
    /// The address of symbol `name`, if there is one.
    fn address_of(&self, name: &str) -> Option<usize>;

    /// How many symbols are called `name` (a probe on a name that is not
    /// unique is refused). The default counts [`address_of`](Self::address_of)'s answer.
    fn symbol_count(&self, name: &str) -> usize {
        usize::from(self.address_of(name).is_some())
    }

    /// Whether module `name` is loaded. A probe on `MOD:SYM` of a module
    /// that is not loaded is accepted unchecked, as in Linux (it would
    /// register when the module comes). The default: no modules.
    fn module_loaded(&self, name: &str) -> bool {
        let _ = name;
        false
    }

    /// The parameters of the function `symbol` names (as a definition
    /// writes it), with where each one is at the function's first
    /// instruction: what bare parameter names, `$arg*` and `$argN` read
    /// (Linux's BTF arguments). The default knows none
    /// ([`ParamLookup::Unsupported`]: Linux without BTF).
    fn function_params(&self, symbol: &str) -> ParamLookup<'_> {
        let _ = symbol;
        ParamLookup::Unsupported
    }
}

/// The kind of probe a definition creates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    /// `p`: a kprobe.
    Kprobe,
    /// `r`, or `p ...%return`: a kretprobe.
    Kretprobe,
    /// `f`: an fprobe on a function's entry.
    FunctionEntry,
    /// `f ...%return` (or with `$retval`): an fprobe on a function's exit.
    FunctionExit,
}

impl ProbeKind {
    /// Whether the event fires at a function's return.
    pub fn is_return(self) -> bool {
        matches!(self, ProbeKind::Kretprobe | ProbeKind::FunctionExit)
    }

    /// Whether it is an fprobe (`f`).
    pub fn is_fprobe(self) -> bool {
        matches!(self, ProbeKind::FunctionEntry | ProbeKind::FunctionExit)
    }
}

/// Where a probe is placed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeLocation {
    /// `[MOD:]SYM[+offs]`: `symbol` keeps a `MOD:` prefix.
    Symbol {
        /// The symbol as written, without `+offs` or `%return`.
        symbol: String,
        /// Bytes past the symbol (always 0 for fprobes).
        offset: u32,
    },
    /// `MEMADDR`: an absolute address (kprobes only).
    Address(u32),
}

impl ProbeLocation {
    /// The module a `MOD:SYM` names. A `::` (a Rust path in this kernel's
    /// symbol table) is part of the symbol, not a module separator.
    pub fn module(&self) -> Option<&str> {
        match self {
            ProbeLocation::Symbol { symbol, .. } => module_prefix(symbol),
            ProbeLocation::Address(_) => None,
        }
    }
}

/// The module part of `MOD:SYM`, unless the first `:` starts a `::`.
fn module_prefix(symbol: &str) -> Option<&str> {
    let colon = symbol.find(':')?;
    if symbol[colon + 1..].starts_with(':') { None } else { Some(&symbol[..colon]) }
}

/// A parsed probe definition (`p`, `r` or `f` command).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeDefinition {
    kind: ProbeKind,
    group: String,
    event: String,
    location: ProbeLocation,
    maxactive: u32,
    at_function_entry: bool,
    args: Vec<FetchArg>,
    entry_args: Vec<EntrySource>,
    words: Vec<String>,
}

impl ProbeDefinition {
    /// The kind of probe.
    pub fn kind(&self) -> ProbeKind {
        self.kind
    }

    /// The event's group (`kprobes` or `fprobes` unless named).
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The event's name (generated unless named).
    pub fn event(&self) -> &str {
        &self.event
    }

    /// Where the probe goes.
    pub fn location(&self) -> &ProbeLocation {
        &self.location
    }

    /// A kretprobe's `MAXACTIVE` (0: the default).
    pub fn maxactive(&self) -> u32 {
        self.maxactive
    }

    /// Whether the probe is at a function's entry (a symbol at offset 0, or
    /// an fprobe), where `$argN` reads the live arguments.
    pub fn at_function_entry(&self) -> bool {
        self.at_function_entry
    }

    /// The fetch arguments, in order.
    pub fn args(&self) -> &[FetchArg] {
        &self.args
    }

    /// For a return probe, what its `$argN` and parameters read, by entry
    /// slot: the entry handler saves each when the function is entered.
    pub fn entry_args(&self) -> &[EntrySource] {
        &self.entry_args
    }

    /// Whether an argument uses `$duration` (this project's extension),
    /// so the entry handler must note the time.
    pub fn uses_duration(&self) -> bool {
        self.args.iter().any(FetchArg::uses_duration)
    }

    /// The command's words, as Linux split it.
    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// Mutable arguments, for the compiler.
    pub(crate) fn args_mut(&mut self) -> &mut Vec<FetchArg> {
        &mut self.args
    }

    /// The subsystem that logs this probe's errors.
    pub fn subsystem(&self) -> &'static str {
        if self.kind.is_fprobe() { FPROBE_SUBSYSTEM } else { KPROBE_SUBSYSTEM }
    }

    /// An `error_log` entry for word `index`, byte `offset` of this
    /// definition's command.
    pub fn error_at(&self, kind: ErrorKind, index: usize, offset: usize) -> ProbeError {
        let words: Vec<&str> = self.words.iter().map(String::as_str).collect();
        ProbeError::new(kind, self.subsystem(), &words, index, offset)
    }

    /// The refusal Linux reports when registering this probe fails:
    /// `BadInsnBndry` (not an instruction boundary), `BadProbeAddr` (no
    /// such symbol) and `FailRegProbe` point at the probed location (word
    /// 1), `EventExist` at the event's name (word 0). The errno is
    /// Linux's for a kprobe (an fprobe's registration always fails with
    /// `EINVAL`).
    pub fn registration_error(&self, kind: ErrorKind) -> CommandError {
        let (index, errno) = match kind {
            ErrorKind::BadInsnBndry => (1, Errno::IlSeq),
            ErrorKind::BadProbeAddr => (1, Errno::NoEnt),
            ErrorKind::EventExist => (0, Errno::Exist),
            _ => (1, Errno::Inval),
        };
        let errno = if self.kind.is_fprobe() { Errno::Inval } else { errno };
        CommandError::logged(errno, self.error_at(kind, index, 0))
    }

    /// The text a removal's first match word is compared with (Linux's
    /// `match_command_head`): `0xADDR`, `SYM+OFFS` or `SYM`.
    fn head_text(&self) -> String {
        let text = match (&self.location, self.kind.is_fprobe()) {
            (ProbeLocation::Address(address), _) => format!("0x{address:08x}"),
            (ProbeLocation::Symbol { symbol, offset }, false) if *offset != 0 => format!("{symbol}+{offset}"),
            (ProbeLocation::Symbol { symbol, .. }, _) => symbol.clone(),
        };
        truncate(text, MAX_ARGSTR_LEN)
    }

    /// The symbol Linux compares when looking for the same probe: the
    /// symbol, or "unknown" for an address.
    fn probe_symbol(&self) -> (&str, u32) {
        match &self.location {
            ProbeLocation::Symbol { symbol, offset } => (symbol, *offset),
            ProbeLocation::Address(_) => ("unknown", 0),
        }
    }

    /// Whether this probe may join an existing event whose probes are
    /// `existing` (same group and name; a dynamic event may have several
    /// probes), as Linux decides: the same probe type, the same argument
    /// names, types and array sizes, and not the very same probe again.
    pub fn check_append(&self, existing: &[&ProbeDefinition]) -> Result<(), CommandError> {
        let Some(first) = existing.first() else {
            return Ok(());
        };
        let refuse = |kind, index| Err(CommandError::logged(Errno::Exist, self.error_at(kind, index, 0)));
        if self.kind.is_return() != first.kind.is_return() {
            return refuse(ErrorKind::DiffProbeType, 0);
        }
        // Linux's compare_arg_type: the first differing argument, 1-based,
        // or one past the shorter list; its word is that plus one.
        let (mine, theirs) = (&self.args, &first.args);
        let differs = if mine.len() != theirs.len() {
            Some(mine.len().min(theirs.len()) + 1)
        } else {
            mine.iter()
                .zip(theirs.iter())
                .position(|(a, b)| {
                    a.fetch_type() != b.fetch_type() || a.array_len() != b.array_len() || a.name() != b.name()
                })
                .map(|i| i + 1)
        };
        if let Some(n) = differs {
            return refuse(ErrorKind::DiffArgType, n + 1);
        }
        let same = existing.iter().any(|other| {
            other.probe_symbol() == self.probe_symbol()
                && other.args.iter().zip(self.args.iter()).all(|(a, b)| a.text() == b.text())
        });
        if same {
            return refuse(ErrorKind::SameProbe, 0);
        }
        Ok(())
    }
}

/// A removal (`-:[GRP/]EVENT [MATCH...]`, and in `dynamic_events` also
/// `!...:[GRP/]EVENT`). An empty event name matches every event of the
/// group; further words must match the probe's location and then its
/// arguments (`NAME=FETCHARG`) in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Removal {
    group: Option<String>,
    event: String,
    matches: Vec<String>,
    kprobes_only: bool,
}

impl Removal {
    /// The group named, if any.
    pub fn group(&self) -> Option<&str> {
        self.group.as_deref()
    }

    /// The event named (empty: all of the group).
    pub fn event(&self) -> &str {
        &self.event
    }

    /// The words after the name, which a probe must match.
    pub fn match_words(&self) -> &[String] {
        &self.matches
    }

    /// Whether the removal takes probe `def` (Linux's `match` of kprobe
    /// and fprobe events). A removal written to `kprobe_events` takes
    /// only kprobes.
    pub fn matches(&self, def: &ProbeDefinition) -> bool {
        if self.kprobes_only && def.kind.is_fprobe() {
            return false;
        }
        if !self.event.is_empty() && self.event != def.event {
            return false;
        }
        if self.group.as_ref().is_some_and(|g| *g != def.group) {
            return false;
        }
        let Some((head, rest)) = self.matches.split_first() else {
            return true;
        };
        if *head != def.head_text() || def.args.len() < rest.len() {
            return false;
        }
        rest.iter()
            .zip(def.args.iter())
            .all(|(word, arg)| *word == truncate(format!("{}={}", arg.name(), arg.text()), MAX_ARGSTR_LEN))
    }
}

/// Cuts `text` to at most `max` bytes (Linux's snprintf into a fixed
/// buffer), at a character boundary.
fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// A parsed command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// A blank line (or only a comment): nothing to do.
    Empty,
    /// Create a probe event, or add a probe to an existing one.
    Create(ProbeDefinition),
    /// Remove matching probe events.
    Remove(Removal),
}

/// Linux's `isspace` for ASCII (its Latin-1 no-break space is not one here:
/// input is UTF-8).
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Splits a command into words at whitespace, as Linux's `argv_split`.
pub fn split_words(line: &str) -> Vec<&str> {
    line.split(|c: char| c.is_ascii() && is_space(c as u8)).filter(|w| !w.is_empty()).collect()
}

/// The lines of a write, as Linux's `trace_parse_run_command` sees them:
/// split at newlines, each cut at its first `#` (a comment runs to the end
/// of the line). Run them in order and stop at the first refusal, as Linux
/// does. A line longer than [`MAX_LINE_LEN`] (one byte more for a last
/// line without its newline) comes as a refusal (`EINVAL`, nothing logged)
/// when it is reached: the lines before it have run.
pub fn write_lines(buffer: &str) -> WriteLines<'_> {
    WriteLines { rest: Some(buffer) }
}

/// The iterator of [`write_lines`].
#[derive(Clone, Debug)]
pub struct WriteLines<'a> {
    rest: Option<&'a str>,
}

impl<'a> Iterator for WriteLines<'a> {
    type Item = Result<&'a str, CommandError>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.rest?;
        let (line, limit) = match rest.find('\n') {
            Some(newline) => {
                self.rest = Some(&rest[newline + 1..]);
                (&rest[..newline], MAX_LINE_LEN)
            }
            None => {
                self.rest = None;
                if rest.is_empty() {
                    return None;
                }
                (rest, MAX_LINE_LEN + 1)
            }
        };
        if line.len() > limit {
            self.rest = None;
            return Some(Err(CommandError::silent(Errno::Inval)));
        }
        Some(Ok(line.find('#').map_or(line, |hash| &line[..hash])))
    }
}

/// Parses one command (a line of a write, comment already cut; see
/// [`write_lines`]) written to `interface`.
pub fn parse_command(line: &str, interface: Interface, symbols: &impl SymbolResolver) -> Result<Command, CommandError> {
    // Linux looks at the raw first byte: " -:x" is not a removal.
    let first = line.as_bytes().first().copied();
    if first == Some(b'-') || (interface == Interface::DynamicEvents && first == Some(b'!')) {
        return parse_removal(line, interface).map(Command::Remove);
    }
    let words = split_words(line);
    let Some(head) = words.first() else {
        return Ok(Command::Empty);
    };
    match head.as_bytes()[0] {
        b'p' | b'r' => parse_kprobe(&words, symbols).map(Command::Create),
        b'f' if interface == Interface::DynamicEvents => parse_fprobe(&words, symbols).map(Command::Create),
        // Not a command of these files (uprobes, eprobes, synthetic events
        // and tracepoint probes are not supported).
        _ => Err(CommandError::silent(Errno::Inval)),
    }
}

/// Parses bytes as a command: a line that is not UTF-8 is refused with a
/// bare `EINVAL`.
pub fn parse_command_bytes(
    line: &[u8],
    interface: Interface,
    symbols: &impl SymbolResolver,
) -> Result<Command, CommandError> {
    match core::str::from_utf8(line) {
        Ok(text) => parse_command(text, interface, symbols),
        Err(_) => Err(CommandError::silent(Errno::Inval)),
    }
}

fn parse_removal(line: &str, interface: Interface) -> Result<Removal, CommandError> {
    let invalid = || CommandError::silent(Errno::Inval);
    let words = split_words(line);
    let head = *words.first().ok_or_else(invalid)?;
    let name = if let Some(rest) = head.strip_prefix('-') {
        rest.strip_prefix(':').ok_or_else(invalid)?
    } else {
        &head[head.find(':').ok_or_else(invalid)? + 1..]
    };
    let (group, event) = match name.find('/') {
        Some(slash) => (Some(name[..slash].to_owned()), &name[slash + 1..]),
        None => (None, name),
    };
    if group.is_none() && event.is_empty() {
        return Err(invalid());
    }
    Ok(Removal {
        group,
        event: event.to_owned(),
        matches: words[1..].iter().map(|w| (*w).to_owned()).collect(),
        kprobes_only: interface == Interface::KprobeEvents,
    })
}

/// An `error_log` refusal of word `index` at `offset`.
fn logged(subsystem: &'static str, words: &[&str], kind: ErrorKind, index: usize, offset: usize) -> CommandError {
    CommandError::logged(Errno::Inval, ProbeError::new(kind, subsystem, words, index, offset))
}

/// A group and an event name, each if named.
type EventName<'a> = (Option<&'a str>, Option<&'a str>);

/// Linux's `traceprobe_parse_event_name` of `text` (which starts at byte
/// `base` of word 0): the group (if named) and the event (if named).
fn parse_event_name(text: &str, base: usize) -> Result<EventName<'_>, (ErrorKind, usize)> {
    let slash = text.find('/').or_else(|| text.find('.'));
    let mut offset = base;
    let mut event = text;
    let mut group = None;
    if let Some(slash) = slash {
        if slash == 0 {
            return Err((ErrorKind::NoGroupName, offset));
        }
        if slash + 1 > MAX_EVENT_NAME_LEN {
            return Err((ErrorKind::GroupTooLong, offset));
        }
        if !is_good_system_name(&text[..slash]) {
            return Err((ErrorKind::BadGroupName, offset));
        }
        group = Some(&text[..slash]);
        event = &text[slash + 1..];
        offset += slash + 1;
    }
    if event.is_empty() {
        return if slash.is_some() { Ok((group, None)) } else { Err((ErrorKind::NoEventName, offset)) };
    }
    if event.len() >= MAX_EVENT_NAME_LEN {
        return Err((ErrorKind::EventTooLong, offset));
    }
    if !is_good_name(event) {
        return Err((ErrorKind::BadEventName, offset));
    }
    Ok((group, Some(event)))
}

/// A generated event name: cut to Linux's buffer and with `:`, `.` and `*`
/// after the first character replaced by `_` (Linux's
/// `sanitize_event_name`; other characters are kept, as in Linux).
pub fn sanitize_event_name(name: String) -> String {
    let name = truncate(name, MAX_EVENT_NAME_LEN - 1);
    name.char_indices().map(|(i, c)| if i > 0 && matches!(c, ':' | '.' | '*') { '_' } else { c }).collect()
}

/// Linux's `traceprobe_expand_meta_args`: the checks of `$arg` words
/// (`$argN` needs a function's entry or exit, `$arg*` may come once), then,
/// if the function's parameters are known, `$arg*` becomes every parameter
/// by name and a bare `$argN[:TYPE]` the Nth parameter's name (with the
/// type). Returns the fetch arguments to parse and the entries logged
/// without failing (`$arg*` with no parameters to expand: it then fails as
/// a variable, as in Linux).
///
/// Unlike Linux, `$arg*` leaves out the parameters that cannot be read at
/// the function's entry (optimized out, split, too large), which Linux's
/// BTF never has; naming one is refused.
fn expand_meta_args(
    subsystem: &'static str,
    words: &[&str],
    flags: ArgFlags,
    params: &ParamLookup,
) -> Result<(Vec<String>, Vec<ProbeError>), CommandError> {
    let mut star = None;
    let mut last_index = None;
    let mut found = false;
    for (i, word) in words.iter().enumerate().skip(2) {
        if !word.starts_with("$arg") {
            continue;
        }
        last_index = Some(i);
        if !flags.is_function_entry() && !flags.is_function_return() {
            return Err(logged(subsystem, words, ErrorKind::NofentryArgs, i, 0));
        }
        match word.as_bytes().get(4) {
            Some(c) if c.is_ascii_digit() => {}
            Some(b'*') if star.is_some() => return Err(logged(subsystem, words, ErrorKind::DoubleArgs, i, 0)),
            Some(b'*') => star = Some(i),
            _ => return Err(logged(subsystem, words, ErrorKind::BadVar, i, 0)),
        }
        found = true;
    }
    let texts = || words[2..].iter().map(|w| String::from(*w)).collect();
    let known = match params {
        ParamLookup::Params(known) if found && !known.is_empty() => known,
        _ => {
            let mut warnings = Vec::new();
            if let (Some(_), Some(index)) = (star, last_index) {
                // Logged, but Linux carries on; `$arg*` then fails as a variable.
                warnings.push(ProbeError::new(ErrorKind::NosupBtfarg, subsystem, words, index, 0));
            }
            return Ok((texts(), warnings));
        }
    };
    let refuse =
        |kind, index, errno| Err(CommandError::logged(errno, ProbeError::new(kind, subsystem, words, index, 0)));
    let mut expanded = Vec::new();
    for (i, word) in words.iter().enumerate().skip(2) {
        if star == Some(i) {
            for param in known.iter().filter(|p| p.place.is_some()) {
                if param.name.is_empty() {
                    return refuse(ErrorKind::NoBtfEntry, i, Errno::NoEnt);
                }
                expanded.push(String::from(param.name));
            }
            continue;
        }
        let Some(rest) = word.strip_prefix("$arg") else {
            expanded.push(String::from(*word));
            continue;
        };
        let (n, digits) = simple_strtoul(rest.as_bytes(), 10);
        let suffix = &rest[digits..];
        if !(suffix.is_empty() || suffix.starts_with(':')) {
            return refuse(ErrorKind::BadVar, i, Errno::NoEnt);
        }
        if n == 0 {
            // Linux would read before its parameter array; `$arg0` stays
            // an (invalid) argument number.
            expanded.push(String::from(*word));
            continue;
        }
        match known.get(n as usize - 1) {
            None => return refuse(ErrorKind::NoBtfarg, i, Errno::NoEnt),
            Some(param) if param.name.is_empty() => return refuse(ErrorKind::NoBtfEntry, i, Errno::NoEnt),
            Some(param) => expanded.push(alloc::format!("{}{suffix}", param.name)),
        }
    }
    Ok((expanded, Vec::new()))
}

/// Parses the fetch arguments (words 2 on) of a probe on `symbol` (for
/// its parameters; `None` for an address). Errors point into `words` at
/// the argument's index after `$arg*` expanded, as Linux's do.
fn parse_args(
    subsystem: &'static str,
    words: &[&str],
    flags: ArgFlags,
    symbol: Option<&str>,
    symbols: &impl SymbolResolver,
) -> Result<(Vec<FetchArg>, Vec<EntrySource>), CommandError> {
    let params = match symbol {
        Some(symbol) if flags.is_function_entry() || flags.is_function_return() => symbols.function_params(symbol),
        _ => ParamLookup::Unsupported,
    };
    let (texts, warnings) = expand_meta_args(subsystem, words, flags, &params)?;
    if texts.len() > MAX_TRACE_ARGS {
        let mut entries = warnings;
        entries.push(ProbeError::new(ErrorKind::TooManyArgs, subsystem, words, 2, 0));
        return Err(CommandError::with_entries(Errno::TooBig, entries));
    }
    let mut entry_args = Vec::new();
    let mut args: Vec<FetchArg> = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        let mut parser = ArgParser::new(flags, &mut entry_args, &params);
        match parser.parse(text, i, &args) {
            Ok(arg) => args.push(arg),
            Err(e) => {
                let mut entries = warnings;
                entries.push(ProbeError::new(e.kind, subsystem, words, i + 2, e.offset));
                return Err(CommandError::with_entries(e.errno, entries));
            }
        }
    }
    Ok((args, entry_args))
}

/// How a symbol relates to a function's entry (Linux's
/// `kprobe_on_func_entry`).
enum EntryCheck {
    /// The symbol is not known (a module not loaded yet).
    Unknown,
    /// At the entry.
    Entry,
    /// Past the entry.
    Inside,
}

/// `p[:[GRP/][EVENT]] [MOD:]SYM[+offs]|MEMADDR [FETCHARGS]` and
/// `r[MAXACTIVE][:[GRP/][EVENT]] [MOD:]SYM[+0] [FETCHARGS]`
/// (Linux's `trace_kprobe_create_internal`).
fn parse_kprobe(words: &[&str], symbols: &impl SymbolResolver) -> Result<ProbeDefinition, CommandError> {
    let sub = KPROBE_SUBSYSTEM;
    let head = words[0];
    let mut is_return = head.starts_with('r');
    if words.len() < 2 {
        return Err(CommandError::silent(Errno::Inval));
    }
    // Anything between the type letter and ':' other than a maxactive
    // number is ignored, as in Linux.
    let event_start = head[1..].find(':').map(|colon| colon + 2);

    let mut maxactive = 0;
    if head.as_bytes().get(1).is_some_and(u8::is_ascii_digit) {
        if !is_return {
            return Err(logged(sub, words, ErrorKind::BadMaxactType, 0, 1));
        }
        let len = event_start.map_or(head.len() - 1, |start| start - 2);
        if len > MAX_EVENT_NAME_LEN - 1 {
            return Err(logged(sub, words, ErrorKind::BadMaxact, 0, 1));
        }
        maxactive = match kstrtouint(&head.as_bytes()[1..1 + len], 0) {
            Ok(n) if n > 0 => n,
            _ => return Err(logged(sub, words, ErrorKind::BadMaxact, 0, 1)),
        };
        if maxactive > KRETPROBE_MAXACTIVE_MAX {
            return Err(logged(sub, words, ErrorKind::MaxactTooBig, 0, 1));
        }
    }

    let mut flags = ArgFlags::default();
    let location = match kstrtoul(words[1].as_bytes(), 0) {
        Ok(address) => ProbeLocation::Address(address),
        Err(_) => {
            let text = words[1];
            if text.contains('/') && text.contains(':') {
                // A uprobe's PATH:OFFSET.
                return Err(CommandError::silent(Errno::Inval));
            }
            let mut symbol = text;
            if let Some(percent) = text.find('%') {
                if &text[percent..] != "%return" {
                    return Err(logged(sub, words, ErrorKind::BadAddrSuffix, 1, percent));
                }
                symbol = &text[..percent];
                is_return = true;
            }
            let (symbol, offset) = match symbol.find(['+', '-']) {
                Some(sign) => match kstrtol(&symbol.as_bytes()[sign..], 0) {
                    Ok(offset) if offset >= 0 => (&symbol[..sign], offset as u32),
                    _ => return Err(logged(sub, words, ErrorKind::BadProbeAddr, 1, 0)),
                },
                None => (symbol, 0),
            };
            let entry = match module_prefix(symbol) {
                Some(module) if !symbols.module_loaded(module) => EntryCheck::Unknown,
                _ => match symbols.symbol_count(symbol) {
                    0 => return Err(logged(sub, words, ErrorKind::BadProbeAddr, 1, 0)),
                    1 if offset == 0 => EntryCheck::Entry,
                    1 => EntryCheck::Inside,
                    _ => return Err(logged(sub, words, ErrorKind::NonUniqSymbol, 1, 0)),
                },
            };
            flags.ret = is_return;
            match entry {
                EntryCheck::Entry if !is_return => flags.fentry = true,
                EntryCheck::Inside if is_return => return Err(logged(sub, words, ErrorKind::BadRetprobe, 1, 0)),
                _ => {}
            }
            ProbeLocation::Symbol { symbol: symbol.to_owned(), offset }
        }
    };

    let (group, event) = match event_start {
        Some(start) => {
            parse_event_name(&head[start..], start).map_err(|(kind, offset)| logged(sub, words, kind, 0, offset))?
        }
        None => (None, None),
    };
    let kind_letter = if is_return { 'r' } else { 'p' };
    let event = match event {
        Some(event) => event.to_owned(),
        None => sanitize_event_name(match &location {
            ProbeLocation::Symbol { symbol, offset } => format!("{kind_letter}_{symbol}_{offset}"),
            ProbeLocation::Address(address) => format!("{kind_letter}_0x{address:08x}"),
        }),
    };

    let symbol = match &location {
        ProbeLocation::Symbol { symbol, .. } => Some(symbol.as_str()),
        ProbeLocation::Address(_) => None,
    };
    let (args, entry_args) = parse_args(sub, words, flags, symbol, symbols)?;
    Ok(ProbeDefinition {
        kind: if is_return { ProbeKind::Kretprobe } else { ProbeKind::Kprobe },
        group: group.unwrap_or(KPROBE_GROUP).to_owned(),
        event,
        location,
        maxactive,
        at_function_entry: flags.fentry,
        args,
        entry_args,
        words: words.iter().map(|w| (*w).to_owned()).collect(),
    })
}

/// `f[:[GRP/][EVENT]] [MOD:]SYM[%return] [FETCHARGS]` (Linux's
/// `trace_fprobe_create_internal`). A `$retval` argument makes it an exit
/// probe without `%return`.
fn parse_fprobe(words: &[&str], symbols: &impl SymbolResolver) -> Result<ProbeDefinition, CommandError> {
    let sub = FPROBE_SUBSYSTEM;
    let head = words[0];
    if words.len() < 2 {
        return Err(CommandError::silent(Errno::Inval));
    }
    let mut event_text = None;
    if head.len() > 1 {
        if head.as_bytes()[1] != b':' {
            return Err(logged(sub, words, ErrorKind::BadMaxact, 0, 1));
        }
        event_text = Some(&head[2..]);
    }

    let text = words[1];
    let mut is_return = false;
    let symbol = match text.find('%') {
        Some(percent) if &text[percent..] == "%return" => {
            is_return = true;
            &text[..percent]
        }
        Some(percent) => return Err(logged(sub, words, ErrorKind::BadAddrSuffix, 1, percent)),
        None => text,
    };
    if !is_return {
        // The first "$retval" of each argument, not followed by a name
        // character, makes an exit probe.
        is_return = words[2..].iter().any(|word| {
            word.find("$retval")
                .is_some_and(|at| !word.as_bytes().get(at + 7).is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_'))
        });
    }

    let (group, event) = match event_text {
        Some(text) => parse_event_name(text, 2).map_err(|(kind, offset)| logged(sub, words, kind, 0, offset))?,
        None => (None, None),
    };
    let event = match event {
        Some(event) => event.to_owned(),
        None => sanitize_event_name(format!("{symbol}__{}", if is_return { "exit" } else { "entry" })),
    };

    let flags = ArgFlags { ret: is_return, fentry: !is_return, fprobe: true };
    let (args, entry_args) = parse_args(sub, words, flags, Some(symbol), symbols)?;

    // Registration finds the function (Linux reports it after the
    // arguments, as registration comes after them).
    let known = match module_prefix(symbol) {
        Some(module) if !symbols.module_loaded(module) => true,
        _ => symbols.symbol_count(symbol) > 0,
    };
    if !known {
        return Err(logged(sub, words, ErrorKind::BadProbeAddr, 1, 0));
    }

    Ok(ProbeDefinition {
        kind: if is_return { ProbeKind::FunctionExit } else { ProbeKind::FunctionEntry },
        group: group.unwrap_or(FPROBE_GROUP).to_owned(),
        event,
        location: ProbeLocation::Symbol { symbol: symbol.to_owned(), offset: 0 },
        maxactive: 0,
        at_function_entry: !is_return,
        args,
        entry_args,
        words: words.iter().map(|w| (*w).to_owned()).collect(),
    })
}
