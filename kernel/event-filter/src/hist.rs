//! Hist triggers: `hist:keys=...` on an event's `trigger` file, and what
//! its `hist` file shows (Linux's `Documentation/trace/histogram.rst`).
//!
//! ```text
//! hist:keys=K1[,K2,K3][:vals=V1[,V2]][:sort=S1[.descending|.ascending][,S2]]
//!     [:size=N][:name=NAME][:clock=global][:pause|:cont|:clear] [if FILTER]
//! ```
//!
//! Keys and values are event fields (the common ones included),
//! `common_cpu` (also `cpu`/`CPU`) and `common_timestamp`; `hitcount` is
//! always the first value. A field may carry one modifier: `.hex`, `.sym`,
//! `.sym-offset`, `.execname` (on `common_pid`: the task name saved when
//! the entry was made), `.log2`, `.buckets=N` or `.usecs` (on
//! `common_timestamp`). String fields may be keys. Up to three keys, two
//! values besides `hitcount` and two sort keys, as in Linux; the default
//! sort is `hitcount` ascending.
//!
//! Each trigger owns a preallocated [`Table`] (`size` entries, default
//! 2048); a named trigger shares its table with every trigger of that
//! name with the same keys, values and sort ([`NamedHists`]).
//!
//! # Output
//!
//! [`HistTrigger::write_hist`] prints Linux's format byte for byte
//! (`hist_trigger_show()`): the `# event histogram` header with the
//! trigger line, one line per entry such as
//! `{ common_pid:       1234 } hitcount:          5  len:        640`,
//! sorted by the sort keys (ties in key order, where Linux leaves them in
//! no particular order), then the totals. [`HistTrigger::write_log2_bars`]
//! is this crate's extension: for a single `.log2` key, bpftrace's bar
//! chart.
//!
//! # Where this differs from Linux
//!
//! - Expressions (`a+b`, `-(a)`, constants), variables (`x=field`,
//!   `$x`), actions (`onmatch`, `onmax`, `onchange`), `stacktrace` keys,
//!   `.syscall`, `.percent`, `.graph`, `nohitcount` and system.event.var
//!   references are not supported: they are refused with `EINVAL`
//!   (`.syscall` as an invalid modifier).
//! - String fields are refused as values (Linux sums their addresses),
//!   and `.log2`/`.buckets` on strings too.
//! - Values are those of a 64-bit kernel: signed fields sign-extend to 64
//!   bits (a 32-bit Linux keeps only the low word of 64-bit fields).
//! - Only the `global` clock is known; `clock=` naming another fails
//!   ("Couldn't set trace_clock") when the trigger uses timestamps.
use alloc::borrow::ToOwned;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::cmp::Ordering;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};

use probe_events::eval::{Symbolizer, write_symbol};

use crate::Context;
use crate::error::{Errno, LogEntry};
use crate::field::{EventFields, FieldKind};
use crate::filter::{Filter, MAX_FILTER_STR_VAL};
use crate::map::{BITS_DEFAULT, BITS_MAX, BITS_MIN, Table};
use crate::num::{ceil_log2, is_digit, kstrtoull, strip};
use crate::trigger::{TriggerError, parse_trigger_filter};

/// Keys per trigger (Linux's `TRACING_MAP_KEYS_MAX`).
pub const KEYS_MAX: usize = 3;
/// Values per trigger, hitcount included (Linux's `TRACING_MAP_VALS_MAX`).
pub const VALS_MAX: usize = 3;
/// Sort keys per trigger (Linux's `TRACING_MAP_SORT_KEYS_MAX`).
pub const SORT_KEYS_MAX: usize = 2;
/// Bytes of a whole key at most: Linux's `HIST_KEY_SIZE_MAX` on a 32-bit
/// kernel (a string and a 16-entry stack trace of 4-byte addresses).
pub const KEY_SIZE_MAX: usize = MAX_FILTER_STR_VAL + 16 * 4;
const KEY_WORDS_MAX: usize = KEY_SIZE_MAX / 8;
/// Width of bpftrace's bars.
const BAR_WIDTH: u64 = 52;

macro_rules! error_kinds {
    ($($(#[$doc:meta])* $name:ident => $text:literal,)*) => {
        /// Every error Linux's hist trigger parser can log, in Linux's
        /// order (`err_text[]` in trace_events_hist.c), with its exact text.
        /// Most concern features this crate does not have (variables,
        /// actions, synthetic events) and are never raised here.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum HistErrorKind {
            $($(#[$doc])* $name,)*
        }

        impl HistErrorKind {
            /// Every kind, in Linux's order.
            pub const ALL: &'static [HistErrorKind] = &[$(HistErrorKind::$name,)*];

            /// The message Linux logs for this error, byte for byte.
            pub const fn text(self) -> &'static str {
                match self {
                    $(HistErrorKind::$name => $text,)*
                }
            }
        }
    };
}

error_kinds! {
    /// No error.
    None => "No error",
    /// A variable defined twice.
    DuplicateVar => "Variable already defined",
    /// An ambiguous variable name.
    VarNotUnique => "Variable name not unique, need to use fully qualified name (subsys.event.var) for variable",
    /// More than 16 variables.
    TooManyVars => "Too many variables defined",
    /// A variable assignment without `=`.
    MalformedAssignment => "Malformed assignment",
    /// A named trigger whose fields differ from the existing one's.
    NamedMismatch => "Named hist trigger doesn't match existing named trigger (includes variables)",
    /// The same trigger again.
    TriggerEexist => "Hist trigger already exists",
    /// `:cont` or `:clear` of no trigger.
    TriggerEnoentClear => "Can't clear or continue a nonexistent hist trigger",
    /// An unknown `clock=`.
    SetClockFail => "Couldn't set trace_clock",
    /// An unknown `.modifier`.
    BadFieldModifier => "Invalid field modifier",
    /// An expression nested too deep.
    TooManySubexpr => "Too many subexpressions (3 max)",
    /// Timestamps of different units in one expression.
    TimestampMismatch => "Timestamp units in expression don't match",
    /// Too many field variables.
    TooManyFieldVars => "Too many field variables defined",
    /// An unknown event.
    EventFileNotFound => "Event file not found",
    /// No histogram on the event named.
    HistNotFound => "Matching event histogram not found",
    /// A histogram for a field variable that could not be made.
    HistCreateFail => "Couldn't create histogram for field",
    /// An unknown synthetic event variable.
    SynthVarNotFound => "Couldn't find synthetic variable",
    /// An unknown synthetic event.
    SynthEventNotFound => "Couldn't find synthetic event",
    /// A parameter of the wrong type for the synthetic event.
    SynthTypeMismatch => "Param type doesn't match synthetic event field type",
    /// Too few or too many synthetic event parameters.
    SynthCountMismatch => "Param count doesn't match synthetic event field count",
    /// A field variable that does not parse.
    FieldVarParseFail => "Couldn't parse field variable",
    /// A variable that could not be made.
    VarCreateFindFail => "Couldn't create or find variable",
    /// `onmax(x)`/`onchange(x)` of something other than a variable.
    OnxNotVar => "For onmax(x) or onchange(x), x must be a variable",
    /// An unknown `onmax`/`onchange` variable.
    OnxVarNotFound => "Couldn't find onmax or onchange variable",
    /// An `onmax`/`onchange` variable that could not be made.
    OnxVarCreateFail => "Couldn't create onmax or onchange variable",
    /// A field variable that could not be made.
    FieldVarCreateFail => "Couldn't create field variable",
    /// Too many action parameters.
    TooManyParams => "Too many action params",
    /// An unknown action parameter.
    ParamNotFound => "Couldn't find param",
    /// A malformed action parameter.
    InvalidParam => "Invalid action param",
    /// An unknown action.
    ActionNotFound => "No action found",
    /// `save()` without parameters.
    NoSaveParams => "No params found for save()",
    /// Two `save()` actions.
    TooManySaveActions => "Can't have more than one save() action per hist",
    /// An action the handler does not take.
    ActionMismatch => "Handler doesn't support action",
    /// An action without its `)`.
    NoClosingParen => "No closing paren found",
    /// `onmatch(event)` without a subsystem.
    SubsysNotFound => "Missing subsystem",
    /// An unknown `onmatch` event.
    InvalidSubsysEvent => "Invalid subsystem or event name",
    /// A variable reference used as a key.
    InvalidRefKey => "Using variable references in keys not supported",
    /// An unknown `$variable`.
    VarNotFound => "Couldn't find variable",
    /// An unknown field.
    FieldNotFound => "Couldn't find field",
    /// `name=` with nothing after the `=`.
    EmptyAssignment => "Empty assignment",
    /// A sort modifier other than `.ascending`/`.descending`.
    InvalidSortModifier => "Invalid sort modifier",
    /// An empty sort field.
    EmptySortField => "Empty sort field",
    /// More than two sort fields.
    TooManySortFields => "Too many sort fields (Max = 2)",
    /// A sort field that is neither a key nor a value.
    InvalidSortField => "Sort field must be a key or a val",
    /// A string in an expression.
    InvalidStrOperand => "String type can not be an operand in expression",
    /// A malformed number.
    ExpectNumber => "Expecting numeric literal",
    /// `-(...)` inside an expression.
    UnaryMinusSubexpr => "Unary minus not supported in sub-expressions",
    /// A division by the constant 0.
    DivisionByZero => "Division by zero",
}

impl fmt::Display for HistErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

/// A field modifier (Linux's `HIST_FIELD_FL_*` display flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Modifier {
    /// None: decimal.
    None,
    /// `.hex`.
    Hex,
    /// `.sym`: the symbol's name.
    Sym,
    /// `.sym-offset`: `name+0xOFF/0xSIZE`.
    SymOffset,
    /// `.execname` (on `common_pid`): the task name.
    Execname,
    /// `.log2`: the key is `ceil(log2(value))`.
    Log2,
    /// `.buckets=N`: the key is the value rounded down to a multiple of N.
    Buckets(u64),
    /// `.usecs` (on `common_timestamp`): microseconds.
    Usecs,
}

impl Modifier {
    /// The modifier as Linux prints it after the field name.
    fn suffix(self) -> &'static str {
        match self {
            Modifier::None => "",
            Modifier::Hex => ".hex",
            Modifier::Sym => ".sym",
            Modifier::SymOffset => ".sym-offset",
            Modifier::Execname => ".execname",
            Modifier::Log2 => ".log2",
            Modifier::Buckets(_) => ".buckets",
            Modifier::Usecs => ".usecs",
        }
    }
}

/// Where a key or value comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Source {
    Number { offset: usize, size: usize, signed: bool },
    DynString { offset: usize },
    StaticString { offset: usize, size: usize },
    Cpu,
    Timestamp,
}

/// A key or value of a hist trigger.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct HistField {
    /// The name Linux shows (`hist_field_name()`).
    name: String,
    /// The event field's C type (for compatibility checks).
    c_type: String,
    /// The event field's size and sign (compared as Linux compares keys).
    size: usize,
    signed: bool,
    source: Source,
    modifier: Modifier,
    /// Keys: the first key word and how many.
    word: usize,
    words: usize,
}

impl HistField {
    /// Everything but the record offsets: what makes two triggers (on two
    /// events, for a named histogram) the same.
    fn shape(&self) -> (&str, &str, usize, bool, Modifier, usize, u8) {
        let kind = match self.source {
            Source::Number { .. } => 0,
            Source::DynString { .. } => 1,
            Source::StaticString { .. } => 2,
            Source::Cpu => 3,
            Source::Timestamp => 4,
        };
        (&self.name, &self.c_type, self.size, self.signed, self.modifier, self.words, kind)
    }

    fn is_string(&self) -> bool {
        matches!(self.source, Source::DynString { .. } | Source::StaticString { .. })
    }

    /// Bytes of record this field reads.
    fn record_len(&self) -> usize {
        match self.source {
            Source::Number { offset, size, .. } | Source::StaticString { offset, size } => offset + size,
            Source::DynString { offset } => offset + 4,
            Source::Cpu | Source::Timestamp => 0,
        }
    }

    /// The field as the trigger line prints it (`hist_field_print()`).
    fn print(&self, out: &mut String) {
        match self.source {
            Source::Cpu => out.push_str("common_cpu"),
            _ => out.push_str(&self.name),
        }
        out.push_str(self.modifier.suffix());
        if let Modifier::Buckets(n) = self.modifier {
            let _ = write!(out, "={}", n as i64);
        }
    }

    /// The field's numeric value in `record` (record length checked by the
    /// caller), with the modifier's transformation.
    fn value(&self, record: &[u8], ctx: &Context<'_>) -> u64 {
        let raw = match self.source {
            Source::Number { offset, size, signed } => {
                let mut bytes = [0u8; 8];
                if let Some(src) = record.get(offset..offset + size) {
                    bytes[..size].copy_from_slice(src);
                }
                let value = u64::from_le_bytes(bytes);
                if signed && size < 8 {
                    let shift = 64 - 8 * size as u32;
                    (((value << shift) as i64) >> shift) as u64
                } else {
                    value
                }
            }
            Source::Cpu => u64::from(ctx.cpu),
            Source::Timestamp if self.modifier == Modifier::Usecs => ctx.timestamp_ns / 1000,
            Source::Timestamp => ctx.timestamp_ns,
            Source::DynString { .. } | Source::StaticString { .. } => 0,
        };
        match self.modifier {
            Modifier::Log2 => ceil_log2(raw),
            Modifier::Buckets(n) => raw / n * n,
            _ => raw,
        }
    }

    /// Writes the string key from `record` into `key` (Linux's
    /// `add_to_key()`: at most the key's size less one byte, stopping at a
    /// NUL).
    fn string_key(&self, record: &[u8], key: &mut [u64]) {
        let key_bytes = self.words * 8;
        let (bytes, limit): (&[u8], usize) = match self.source {
            Source::DynString { offset } => {
                let mut item = [0u8; 4];
                if let Some(src) = record.get(offset..offset + 4) {
                    item.copy_from_slice(src);
                }
                let item = u32::from_le_bytes(item) as usize;
                let start = item & 0xffff;
                let len = item >> 16;
                let bytes = record.get(start..).unwrap_or(&[]);
                (&bytes[..bytes.len().min(len)], len)
            }
            Source::StaticString { offset, size } => (record.get(offset..offset + size).unwrap_or(&[]), size),
            _ => (&[], 0),
        };
        let limit = limit.min(key_bytes.saturating_sub(1));
        let mut buf = [0u8; MAX_FILTER_STR_VAL];
        for (slot, &b) in buf.iter_mut().zip(bytes.iter().take(limit)) {
            if b == 0 {
                break;
            }
            *slot = b;
        }
        for (i, word) in key.iter_mut().skip(self.word).take(self.words).enumerate() {
            let mut chunk = [0u8; 8];
            if let Some(src) = buf.get(i * 8..i * 8 + 8) {
                chunk.copy_from_slice(src);
            }
            *word = u64::from_le_bytes(chunk);
        }
    }

    /// The key's string (up to its NUL) from a snapshot's key words.
    fn key_string(&self, key: &[u64]) -> Vec<u8> {
        let mut bytes: Vec<u8> = key.iter().skip(self.word).take(self.words).flat_map(|w| w.to_le_bytes()).collect();
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        bytes.truncate(end);
        bytes
    }

    /// Orders two entries by this key as Linux's key comparators do.
    fn compare_keys(&self, a: &[u64], b: &[u64]) -> Ordering {
        match self.source {
            Source::DynString { .. } | Source::StaticString { .. } => self.key_string(a).cmp(&self.key_string(b)),
            Source::Number { size, signed, .. } => {
                let (x, y) = (a.get(self.word).copied().unwrap_or(0), b.get(self.word).copied().unwrap_or(0));
                let shift = 64 - 8 * size.clamp(1, 8) as u32;
                if signed {
                    (((x << shift) as i64) >> shift).cmp(&(((y << shift) as i64) >> shift))
                } else {
                    (x << shift >> shift).cmp(&(y << shift >> shift))
                }
            }
            Source::Cpu | Source::Timestamp => a.get(self.word).cmp(&b.get(self.word)),
        }
    }
}

/// A sort key: index 0 is hitcount, then the values, then the keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct SortKey {
    idx: usize,
    descending: bool,
}

/// A parsed `hist:` command before it is registered.
pub(crate) struct HistRequest {
    pub(crate) spec: HistSpec,
    pub(crate) bits: u32,
    pub(crate) pause: bool,
    pub(crate) cont: bool,
    pub(crate) clear: bool,
    /// For error_log entries: `hist:GROUP:EVENT` and `hist:` + command.
    pub(crate) location: String,
    pub(crate) command: String,
}

/// What a `hist:` command says, before it has a table.
#[derive(Debug)]
pub(crate) struct HistSpec {
    name: Option<String>,
    keys: Vec<HistField>,
    vals: Vec<HistField>,
    sort: Vec<SortKey>,
    timestamps: bool,
    clock: String,
    filter: Option<Filter>,
    record_len: usize,
    key_words: usize,
    has_execname: bool,
}

/// A hist trigger on an event: what its command said, whether it is
/// paused, and its table (shared with the triggers of the same name).
#[derive(Debug)]
pub struct HistTrigger {
    spec: HistSpec,
    paused: AtomicBool,
    table: Arc<Table>,
    /// Keeps a named table registered while this trigger uses it.
    _named: Option<Arc<NamedTable>>,
}

/// Histograms shared by name (`name=`) across the events of one tracing
/// instance: the kernel keeps one and passes it to every trigger write.
/// It holds each name's table weakly: the table goes with its last
/// trigger.
#[derive(Debug, Default)]
pub struct NamedHists {
    tables: BTreeMap<String, Weak<NamedTable>>,
}

/// A named table with the trigger shape every user must have.
#[derive(Debug)]
pub(crate) struct NamedTable {
    table: Arc<Table>,
    keys: Vec<HistField>,
    vals: Vec<HistField>,
    sort: Vec<SortKey>,
}

impl NamedHists {
    /// No named histograms.
    pub fn new() -> Self {
        Self::default()
    }

    /// Names with a live table (without `name=`).
    pub fn names(&self) -> Vec<String> {
        let live = self.tables.iter().filter(|(_, w)| w.strong_count() > 0);
        live.map(|(n, _)| n.strip_prefix("name=").unwrap_or(n).to_string()).collect()
    }
}

/// Splits at the first of `seps` as C's `strsep()`: the piece before it,
/// leaving the rest (or `None` after the last piece).
pub(crate) fn strsep<'a>(rest: &mut Option<&'a str>, seps: &[char]) -> Option<&'a str> {
    let s = rest.take()?;
    match s.find(seps) {
        Some(at) => {
            *rest = Some(&s[at + 1..]);
            Some(&s[..at])
        }
        None => Some(s),
    }
}

/// Error reporting for one `hist:` command (Linux's `hist_err()`).
struct Reporter<'a> {
    location: &'a str,
    command: &'a str,
}

impl Reporter<'_> {
    /// Linux's `errpos()`: where `s` first occurs in the command, else 0.
    fn errpos(&self, s: &str) -> usize {
        self.command.find(s).unwrap_or(0)
    }

    fn entry(&self, kind: HistErrorKind, position: usize) -> LogEntry {
        LogEntry::new(self.location, kind.text(), self.command, position)
    }

    /// `EINVAL` with the entry for `kind` at the first occurrence of `at`.
    fn fail(&self, kind: HistErrorKind, at: &str) -> TriggerError {
        TriggerError::logged(Errno::Inval, self.entry(kind, self.errpos(at)))
    }
}

/// Separates `param_and_filter` into the trigger and its `if FILTER`
/// (Linux's loop in `event_hist_trigger_parse()`): `if` counts only with
/// a space or tab on both sides.
fn split_filter(param_and_filter: &str) -> Result<(&str, Option<&str>), Errno> {
    let bytes = param_and_filter.as_bytes();
    let len = bytes.len();
    let mut from = 0;
    loop {
        let Some(found) = param_and_filter[from..].find("if") else {
            return Ok((param_and_filter, None));
        };
        let at = from + found;
        if at == 0 {
            return Err(Errno::Inval);
        }
        if !matches!(bytes[at - 1], b' ' | b'\t') {
            from = at + 1;
            continue;
        }
        if at + 3 >= len {
            return Err(Errno::Inval);
        }
        if !matches!(bytes[at + 2], b' ' | b'\t') {
            from = at + 1;
            continue;
        }
        return Ok((strip(&param_and_filter[..at - 1]), Some(strip(&param_and_filter[at..]))));
    }
}

/// The `:`-separated attributes of a `hist:` command.
#[derive(Default)]
struct Attrs<'a> {
    keys: Option<&'a str>,
    vals: Option<&'a str>,
    sort: Option<&'a str>,
    name: Option<&'a str>,
    clock: Option<&'a str>,
    bits: Option<u32>,
    pause: bool,
    cont: bool,
    clear: bool,
}

/// `size=N`: the table's bits (N rounded up to a power of two, 128 to
/// 131072).
fn parse_map_size(s: &str) -> Result<u32, Errno> {
    let size = kstrtoull(s.as_bytes()).map_err(|e| match e {
        crate::num::NumError::Inval => Errno::Inval,
        crate::num::NumError::Range => Errno::Range,
    })?;
    let bits = ceil_log2(size);
    if size == 0 || bits < u64::from(BITS_MIN) || bits > u64::from(BITS_MAX) {
        return Err(Errno::Inval);
    }
    Ok(bits as u32)
}

/// Linux's `parse_hist_trigger_attrs()`.
fn parse_attrs<'a>(param: &'a str, report: &Reporter<'_>) -> Result<Attrs<'a>, TriggerError> {
    let mut attrs = Attrs::default();
    for s in param.split(':') {
        if let Some(eq) = s.find('=') {
            if s[eq + 1..].is_empty() {
                return Err(report.fail(HistErrorKind::EmptyAssignment, s));
            }
            if let Some(r) = s.strip_prefix("key=").or_else(|| s.strip_prefix("keys=")) {
                attrs.keys = Some(r);
            } else if let Some(r) =
                s.strip_prefix("val=").or_else(|| s.strip_prefix("vals=")).or_else(|| s.strip_prefix("values="))
            {
                attrs.vals = Some(r);
            } else if let Some(r) = s.strip_prefix("sort=") {
                attrs.sort = Some(r);
            } else if s.starts_with("name=") {
                attrs.name = Some(s);
            } else if let Some(r) = s.strip_prefix("clock=") {
                attrs.clock = Some(strip(r));
            } else if let Some(r) = s.strip_prefix("size=") {
                attrs.bits = Some(parse_map_size(r).map_err(TriggerError::silent)?);
            } else {
                // A variable definition: not supported.
                return Err(TriggerError::silent(Errno::Inval));
            }
        } else {
            match s {
                "pause" => attrs.pause = true,
                "cont" | "continue" => attrs.cont = true,
                "clear" => attrs.clear = true,
                // Actions (onmatch, onmax, onchange) are not supported.
                _ => return Err(TriggerError::silent(Errno::Inval)),
            }
        }
    }
    if attrs.keys.is_none() {
        return Err(TriggerError::silent(Errno::Inval));
    }
    Ok(attrs)
}

/// Linux's `parse_field()` (through `parse_expr()`/`parse_atom()`, for
/// the plain fields this crate takes): one key or value.
fn parse_field(s: &str, event: &EventFields, report: &Reporter<'_>, is_key: bool) -> Result<HistField, TriggerError> {
    // Expressions and constants are not supported.
    let without_sym_offset = s.replace("sym-offset", "");
    if without_sym_offset.contains(['+', '-', '*', '/']) {
        return Err(TriggerError::silent(Errno::Inval));
    }
    if s.as_bytes().first().is_some_and(|&c| is_digit(c)) {
        if kstrtoull(s.as_bytes()).is_err() {
            return Err(report.fail(HistErrorKind::ExpectNumber, s));
        }
        return Err(TriggerError::silent(Errno::Inval));
    }
    let (name, modifier_text) = match s.find('.') {
        Some(dot) => (&s[..dot], Some(&s[dot + 1..])),
        None => (s, None),
    };
    let mut modifier = Modifier::None;
    if let Some(m) = modifier_text {
        modifier = match m {
            "hex" => Modifier::Hex,
            "sym" => Modifier::Sym,
            "sym-offset" => Modifier::SymOffset,
            "execname" if name == "common_pid" => Modifier::Execname,
            "log2" => Modifier::Log2,
            "usecs" => Modifier::Usecs,
            _ if m.starts_with("bucket") => {
                let rest = &m[6..];
                let rest = rest.strip_prefix('s').unwrap_or(rest);
                let Some(number) = rest.strip_prefix('=') else {
                    return Err(report.fail(HistErrorKind::BadFieldModifier, rest));
                };
                match kstrtoull(number.as_bytes()) {
                    Ok(n) if n > 0 => Modifier::Buckets(n),
                    _ => return Err(report.fail(HistErrorKind::BadFieldModifier, number)),
                }
            }
            _ => return Err(report.fail(HistErrorKind::BadFieldModifier, m)),
        };
    }
    let mut entries = Vec::new();
    if let Some(variable) = name.strip_prefix('$') {
        // No variables exist: Linux logs both errors.
        entries.push(report.entry(HistErrorKind::VarNotFound, report.errpos(variable)));
    }
    let field = |name: &str, c_type: &str, size, signed, source| HistField {
        name: name.to_string(),
        c_type: c_type.to_string(),
        size,
        signed,
        source,
        modifier,
        word: 0,
        words: 1,
    };
    let parsed = match name {
        "common_timestamp" => field(name, "u64", 8, false, Source::Timestamp),
        "common_cpu" => field(name, "unsigned int", 4, false, Source::Cpu),
        _ => match event.find(name) {
            Some(f) if f.kind() == FieldKind::Cpu => field(f.name(), "unsigned int", 4, false, Source::Cpu),
            Some(f) if f.size() > 0 => {
                let source = match f.kind() {
                    FieldKind::DynString => Source::DynString { offset: f.offset() },
                    FieldKind::StaticString => Source::StaticString { offset: f.offset(), size: f.size() },
                    _ => {
                        if !matches!(f.size(), 1 | 2 | 4 | 8) {
                            // Linux has no reader for other sizes and
                            // reports the failure as ENOMEM.
                            return Err(TriggerError::silent(Errno::NoMem));
                        }
                        Source::Number { offset: f.offset(), size: f.size(), signed: f.is_signed() }
                    }
                };
                let mut parsed = field(f.name(), f.c_type(), f.size(), f.is_signed(), source);
                if parsed.is_string() {
                    if !is_key || matches!(modifier, Modifier::Log2 | Modifier::Buckets(_)) {
                        return Err(TriggerError::silent(Errno::Inval));
                    }
                    parsed.words = match source {
                        Source::StaticString { size, .. } => size.div_ceil(8),
                        _ => MAX_FILTER_STR_VAL / 8,
                    };
                }
                parsed
            }
            _ => {
                entries.push(report.entry(HistErrorKind::FieldNotFound, report.errpos(name)));
                return Err(TriggerError::with_entries(Errno::Inval, entries));
            }
        },
    };
    Ok(parsed)
}

/// Linux's `create_sort_keys()`.
fn parse_sort(
    sort: Option<&str>,
    vals: &[HistField],
    keys: &[HistField],
    report: &Reporter<'_>,
) -> Result<Vec<SortKey>, TriggerError> {
    let Some(sort) = sort else {
        return Ok(alloc::vec![SortKey { idx: 0, descending: false }]);
    };
    let mut out = Vec::new();
    let mut rest = Some(sort);
    for i in 0..SORT_KEYS_MAX {
        let Some(field_str) = strsep(&mut rest, &[',']) else {
            break;
        };
        if field_str.is_empty() {
            return Err(report.fail(HistErrorKind::EmptySortField, "sort="));
        }
        if i == SORT_KEYS_MAX - 1 && rest.is_some() {
            return Err(report.fail(HistErrorKind::TooManySortFields, "sort="));
        }
        let (name, modifier) = match field_str.find('.') {
            Some(dot) => (&field_str[..dot], Some(&field_str[dot + 1..])),
            None => (field_str, None),
        };
        if name.is_empty() {
            return Err(report.fail(HistErrorKind::EmptySortField, "sort="));
        }
        let descending = |modifier: Option<&str>| match modifier {
            None | Some("ascending") => Ok(false),
            Some("descending") => Ok(true),
            Some(m) => Err(report.fail(HistErrorKind::InvalidSortModifier, m)),
        };
        if name == "hitcount" {
            out.push(SortKey { idx: 0, descending: descending(modifier)? });
            continue;
        }
        let Some(idx) = vals.iter().chain(keys).position(|f| f.name == name) else {
            return Err(report.fail(HistErrorKind::InvalidSortField, name));
        };
        out.push(SortKey { idx: idx + 1, descending: descending(modifier)? });
    }
    Ok(out)
}

/// Parses a `hist:` command's text after `hist:` (Linux's
/// `event_hist_trigger_parse()` up to the registration).
pub(crate) fn parse(param_and_filter: Option<&str>, event: &EventFields) -> Result<HistRequest, TriggerError> {
    let location = format!("hist:{}:{}", event.system(), event.event());
    let Some(param_and_filter) = param_and_filter else {
        return Err(TriggerError::silent(Errno::Inval));
    };
    let command = format!("hist:{param_and_filter}");
    let report = Reporter { location: &location, command: &command };
    let (param, filter_text) = split_filter(param_and_filter).map_err(TriggerError::silent)?;
    let attrs = parse_attrs(param, &report)?;

    let mut vals = Vec::new();
    if let Some(vals_str) = attrs.vals {
        let mut rest = Some(vals_str);
        let (mut i, mut j) = (0, 1);
        while i < VALS_MAX && j < VALS_MAX {
            let Some(field_str) = strsep(&mut rest, &[',']) else {
                break;
            };
            i += 1;
            if field_str == "hitcount" {
                continue;
            }
            vals.push(parse_field(field_str, event, &report, false)?);
            j += 1;
        }
        if rest.is_some_and(|r| r != "hitcount") {
            return Err(TriggerError::silent(Errno::Inval));
        }
    }

    let mut keys = Vec::new();
    let mut rest = attrs.keys;
    let mut words = 0;
    for _ in 0..KEYS_MAX {
        let Some(field_str) = strsep(&mut rest, &[',']) else {
            break;
        };
        let mut key = parse_field(field_str, event, &report, true)?;
        key.word = words;
        words += key.words;
        if words * 8 > KEY_SIZE_MAX {
            return Err(TriggerError::silent(Errno::Inval));
        }
        keys.push(key);
    }
    if rest.is_some() {
        return Err(TriggerError::silent(Errno::Inval));
    }

    let sort = parse_sort(attrs.sort, &vals, &keys, &report)?;
    let timestamps = keys.iter().chain(&vals).any(|f| f.source == Source::Timestamp);
    let clock = attrs.clock.unwrap_or("global");
    if timestamps && clock != "global" {
        return Err(report.fail(HistErrorKind::SetClockFail, clock));
    }
    let filter = match filter_text {
        Some(text) => Some(parse_trigger_filter(text, event)?),
        None => None,
    };
    let record_len = keys.iter().chain(&vals).map(HistField::record_len).max().unwrap_or(0);
    let has_execname = keys.iter().any(|k| k.modifier == Modifier::Execname);
    let bits = attrs.bits.unwrap_or(BITS_DEFAULT);
    let spec = HistSpec {
        name: attrs.name.map(str::to_owned),
        keys,
        vals,
        sort,
        timestamps,
        clock: clock.to_owned(),
        filter,
        record_len,
        key_words: words,
        has_execname,
    };
    Ok(HistRequest { spec, bits, pause: attrs.pause, cont: attrs.cont, clear: attrs.clear, location, command })
}

/// Pads `bytes` (shown lossily) with spaces to `width` bytes, as `%-Ns`.
fn push_padded(out: &mut String, bytes: &[u8], width: usize) {
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        if !chunk.invalid().is_empty() {
            out.push(char::REPLACEMENT_CHARACTER);
        }
    }
    for _ in bytes.len()..width {
        out.push(' ');
    }
}

/// A log2 bucket bound as bpftrace labels it: `512`, `1K`, `64M`.
fn power_label(power: u64) -> String {
    let decade = (power / 10) as usize;
    let suffix = ["", "K", "M", "G", "T", "P", "E"].get(decade).copied().unwrap_or("?");
    format!("{}{suffix}", 1u64 << (power - 10 * decade as u64))
}

impl HistSpec {
    /// Whether two triggers are the same for `!hist:...`, a duplicate, or
    /// `:pause`/`:cont`/`:clear` (Linux's `hist_trigger_match()`; the
    /// table size does not count).
    pub(crate) fn matches(&self, other: &HistSpec, ignore_filter: bool) -> bool {
        self.name == other.name
            && self.same_shape(&other.keys, &other.vals, &other.sort)
            && (ignore_filter || self.filter_text() == other.filter_text())
    }

    fn same_shape(&self, keys: &[HistField], vals: &[HistField], sort: &[SortKey]) -> bool {
        self.keys.len() == keys.len()
            && self.vals.len() == vals.len()
            && self.keys.iter().zip(keys).all(|(a, b)| a.shape() == b.shape())
            && self.vals.iter().zip(vals).all(|(a, b)| a.shape() == b.shape())
            && self.sort == sort
    }

    /// A table for the trigger: a new one of `2^bits` entries, or the
    /// named one (`NamedMismatch` if the shapes differ).
    pub(crate) fn make_table(
        &self,
        bits: u32,
        named: &mut NamedHists,
    ) -> Result<(Arc<Table>, Option<Arc<NamedTable>>), AttachError> {
        if let Some(existing) = self.name.as_ref().and_then(|name| named.tables.get(name)).and_then(Weak::upgrade) {
            if !self.same_shape(&existing.keys, &existing.vals, &existing.sort) {
                return Err(AttachError::NamedMismatch);
            }
            return Ok((existing.table.clone(), Some(existing)));
        }
        let n_sums = 1 + self.vals.len();
        let table = Arc::new(Table::new(bits, self.key_words, n_sums, self.has_execname).map_err(AttachError::Errno)?);
        let mut shared = None;
        if let Some(name) = &self.name {
            let entry = Arc::new(NamedTable {
                table: table.clone(),
                keys: self.keys.clone(),
                vals: self.vals.clone(),
                sort: self.sort.clone(),
            });
            named.tables.retain(|_, table| table.strong_count() > 0);
            named.tables.insert(name.clone(), Arc::downgrade(&entry));
            shared = Some(entry);
        }
        Ok((table, shared))
    }

    /// Whether a named table of this trigger's name exists and has another
    /// shape.
    pub(crate) fn named_mismatch(&self, named: &NamedHists) -> bool {
        let Some(name) = &self.name else {
            return false;
        };
        match named.tables.get(name).and_then(Weak::upgrade) {
            Some(existing) => !self.same_shape(&existing.keys, &existing.vals, &existing.sort),
            None => false,
        }
    }

    /// The trigger's `if` filter text, if any.
    pub(crate) fn filter_text(&self) -> Option<&str> {
        self.filter.as_ref().map(Filter::text)
    }

    /// The `name=NAME` attribute, if any.
    pub(crate) fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
}

impl HistTrigger {
    /// A registered trigger: `spec` with its `table`.
    pub(crate) fn new(spec: HistSpec, table: Arc<Table>, named: Option<Arc<NamedTable>>, paused: bool) -> Self {
        HistTrigger { spec, paused: AtomicBool::new(paused), table, _named: named }
    }

    pub(crate) fn spec(&self) -> &HistSpec {
        &self.spec
    }

    /// The trigger's `if` filter text, if any.
    pub fn filter_text(&self) -> Option<&str> {
        self.spec.filter_text()
    }

    /// Whether the trigger is paused (`:pause`).
    pub fn is_paused(&self) -> bool {
        self.paused.load(AtomicOrdering::Relaxed)
    }

    pub(crate) fn set_paused(&self, paused: bool) {
        self.paused.store(paused, AtomicOrdering::Relaxed);
    }

    /// Empties the histogram (`:clear`).
    pub fn clear(&self) {
        self.table.clear();
    }

    /// The trigger's table.
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// Counts `record` into the histogram unless the trigger is paused or
    /// its filter refuses the record. For the trap path: no allocation,
    /// lock or panic.
    pub fn fire(&self, record: &[u8], ctx: &Context<'_>) {
        if self.is_paused() {
            return;
        }
        if self.spec.filter.as_ref().is_some_and(|filter| !filter.matches(record, ctx)) {
            return;
        }
        if record.len() < self.spec.record_len {
            return;
        }
        let mut key = [0u64; KEY_WORDS_MAX];
        let mut pid = None;
        for field in &self.spec.keys {
            if field.is_string() {
                field.string_key(record, &mut key);
            } else if let Some(word) = key.get_mut(field.word) {
                *word = field.value(record, ctx);
                if field.modifier == Modifier::Execname {
                    pid = Some(*word);
                }
            }
        }
        let mut sums = [1u64; VALS_MAX];
        for (sum, field) in sums.iter_mut().skip(1).zip(&self.spec.vals) {
            *sum = field.value(record, ctx);
        }
        // Linux saves "<idle>" for pid 0.
        let comm: &[u8] = if pid == Some(0) { b"<idle>" } else { ctx.comm };
        let key = key.get(..self.spec.key_words).unwrap_or(&[]);
        self.table.update(key, &sums[..1 + self.spec.vals.len()], comm);
    }

    /// The trigger's line in the `trigger` file and the `hist` header
    /// (Linux's `event_hist_trigger_print()`), ending in a newline:
    /// `hist:keys=pid:vals=hitcount,len:sort=hitcount:size=2048 [active]`.
    pub fn trigger_line(&self) -> String {
        let mut out = String::from("hist:");
        if let Some(name) = &self.spec.name {
            out.push_str(name);
            out.push(':');
        }
        out.push_str("keys=");
        for (i, key) in self.spec.keys.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            key.print(&mut out);
        }
        out.push_str(":vals=hitcount");
        for val in &self.spec.vals {
            out.push(',');
            val.print(&mut out);
        }
        out.push_str(":sort=");
        for (i, sort) in self.spec.sort.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            match sort.idx {
                0 => out.push_str("hitcount"),
                idx => {
                    if let Some(field) = self.spec.vals.iter().chain(&self.spec.keys).nth(idx - 1) {
                        field.print(&mut out);
                    }
                }
            }
            if sort.descending {
                out.push_str(".descending");
            }
        }
        let _ = write!(out, ":size={}", self.table.capacity());
        if self.spec.timestamps {
            let _ = write!(out, ":clock={}", self.spec.clock);
        }
        if let Some(filter) = self.filter_text() {
            let _ = write!(out, " if {filter}");
        }
        out.push_str(if self.is_paused() { " [paused]" } else { " [active]" });
        out.push('\n');
        out
    }

    fn sort_order(&self, sort: SortKey, a: &crate::map::Snapshot, b: &crate::map::Snapshot) -> Ordering {
        let order = if sort.idx <= self.spec.vals.len() {
            a.sums.get(sort.idx).cmp(&b.sums.get(sort.idx))
        } else {
            match self.spec.keys.get(sort.idx - 1 - self.spec.vals.len()) {
                Some(key) => key.compare_keys(&a.key, &b.key),
                None => Ordering::Equal,
            }
        };
        if sort.descending { order.reverse() } else { order }
    }

    /// The entries in output order: by the sort keys, ties by the keys.
    fn sorted_entries(&self) -> Vec<crate::map::Snapshot> {
        let mut entries = self.table.snapshot();
        entries.sort_by(|a, b| {
            let mut order = Ordering::Equal;
            for &sort in &self.spec.sort {
                order = order.then_with(|| self.sort_order(sort, a, b));
            }
            for key in &self.spec.keys {
                order = order.then_with(|| key.compare_keys(&a.key, &b.key));
            }
            order
        });
        entries
    }

    /// Writes one entry's key (Linux's `hist_trigger_print_key()`).
    fn write_key(&self, out: &mut String, entry: &crate::map::Snapshot, symbols: &(impl Symbolizer + ?Sized)) {
        out.push_str("{ ");
        for (i, field) in self.spec.keys.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            let uval = entry.key.get(field.word).copied().unwrap_or(0);
            let name = &field.name;
            let _ = match field.modifier {
                Modifier::Hex => write!(out, "{name}: {uval:x}"),
                Modifier::Sym | Modifier::SymOffset => {
                    let mut symbol = String::new();
                    match u32::try_from(uval) {
                        Ok(addr) if field.modifier == Modifier::SymOffset => {
                            let _ = write_symbol(&mut symbol, addr, symbols);
                        }
                        Ok(addr) => match symbols.symbolize(addr) {
                            Some(info) => symbol.push_str(info.name),
                            None => {
                                let _ = write!(symbol, "{uval:#x}");
                            }
                        },
                        Err(_) => {
                            let _ = write!(symbol, "{uval:#x}");
                        }
                    }
                    let _ = write!(out, "{name}: [{uval:x}] ");
                    let width = if field.modifier == Modifier::Sym { 45 } else { 55 };
                    push_padded(out, symbol.as_bytes(), width);
                    Ok(())
                }
                Modifier::Execname => {
                    let end = entry.comm.iter().position(|&b| b == 0).unwrap_or(entry.comm.len());
                    let _ = write!(out, "{name}: ");
                    push_padded(out, &entry.comm[..end], 16);
                    write!(out, "[{uval:10}]")
                }
                Modifier::Log2 => {
                    let _ = write!(out, "{name}: ~ 2^");
                    push_padded(out, uval.to_string().as_bytes(), 2);
                    Ok(())
                }
                Modifier::Buckets(n) => write!(out, "{name}: ~ {uval}-{}", uval.wrapping_add(n).wrapping_sub(1)),
                _ if field.is_string() => {
                    let _ = write!(out, "{name}: ");
                    push_padded(out, &field.key_string(&entry.key), 50);
                    Ok(())
                }
                _ => write!(out, "{name}: {uval:10}"),
            };
        }
        out.push_str(" }");
    }

    /// Writes the trigger's part of the `hist` file (Linux's
    /// `hist_trigger_show()` without the blank lines that separate two
    /// triggers): header, entries, totals. `symbols` names addresses for
    /// `.sym` and `.sym-offset` keys.
    pub fn write_hist(&self, out: &mut String, symbols: &(impl Symbolizer + ?Sized)) {
        out.push_str("# event histogram\n#\n# trigger info: ");
        out.push_str(&self.trigger_line());
        out.push_str("#\n\n");
        let entries = self.sorted_entries();
        for entry in &entries {
            self.write_key(out, entry, symbols);
            let _ = write!(out, " hitcount: {:10}", entry.sums.first().copied().unwrap_or(0));
            for (field, sum) in self.spec.vals.iter().zip(entry.sums.iter().skip(1)) {
                let _ = if field.modifier == Modifier::Hex {
                    write!(out, "  {}: {sum:10x}", field.name)
                } else {
                    write!(out, "  {}: {sum:10}", field.name)
                };
            }
            out.push('\n');
        }
        let _ = write!(
            out,
            "\nTotals:\n    Hits: {}\n    Entries: {}\n    Dropped: {}\n",
            self.table.hits(),
            entries.len(),
            self.table.drops()
        );
    }

    /// This crate's extension: for a histogram whose only key is `.log2`,
    /// writes bpftrace's bar chart of the hitcounts (its
    /// `print_log2_hist` layout: the bucket left-aligned in 16 columns,
    /// the count right-aligned in 8, then a bar of up to 52 `@` scaled to
    /// the largest count), one line per bucket from the smallest to the
    /// largest present, empty buckets included. Returns false (writing
    /// nothing) for other histograms.
    ///
    /// Linux's `.log2` key `k` counts the values `v` with
    /// `2^(k-1) < v <= 2^k` (it rounds up, bpftrace rounds down), so the
    /// buckets read `[0, 1]`, `(1, 2]`, `(2, 4]`, ..., `(512, 1K]`: the
    /// bounds are bpftrace's, the brackets say which end is in.
    pub fn write_log2_bars(&self, out: &mut String) -> bool {
        if self.spec.keys.len() != 1 || self.spec.keys[0].modifier != Modifier::Log2 {
            return false;
        }
        let mut counts = BTreeMap::new();
        for entry in self.table.snapshot() {
            let bucket = entry.key.first().copied().unwrap_or(0);
            *counts.entry(bucket).or_insert(0u64) += entry.sums.first().copied().unwrap_or(0);
        }
        let (Some(&min), Some(&max)) = (counts.keys().next(), counts.keys().next_back()) else {
            return true;
        };
        let top = counts.values().copied().max().unwrap_or(0).max(1);
        for bucket in min..=max.min(64) {
            let count = counts.get(&bucket).copied().unwrap_or(0);
            let label = if bucket == 0 {
                String::from("[0, 1]")
            } else {
                format!("({}, {}]", power_label(bucket - 1), power_label(bucket))
            };
            let bar = (u128::from(count) * u128::from(BAR_WIDTH) / u128::from(top)) as usize;
            let _ = writeln!(out, "{label:<16}{count:>8} |{:<52}|", "@".repeat(bar));
        }
        true
    }
}

/// Why a trigger could not get its table.
#[derive(Debug)]
pub(crate) enum AttachError {
    NamedMismatch,
    Errno(Errno),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_split_needs_spaces_around_if() {
        assert_eq!(split_filter("keys=a if b == 1"), Ok(("keys=a", Some("if b == 1"))));
        assert_eq!(split_filter("keys=diff"), Ok(("keys=diff", None)));
        assert_eq!(split_filter("keys=a\tif\tb == 1"), Ok(("keys=a", Some("if\tb == 1"))));
        assert_eq!(split_filter("if a"), Err(Errno::Inval));
        assert_eq!(split_filter("keys=a if"), Err(Errno::Inval));
        assert_eq!(split_filter("keys=a if b"), Ok(("keys=a", Some("if b"))));
        assert_eq!(split_filter("keys=a if "), Err(Errno::Inval));
        assert_eq!(split_filter("keys=a ifb == 1"), Ok(("keys=a ifb == 1", None)));
    }

    #[test]
    fn sizes_round_up_to_powers_of_two() {
        assert_eq!(parse_map_size("2048"), Ok(11));
        assert_eq!(parse_map_size("129"), Ok(8));
        assert_eq!(parse_map_size("128"), Ok(7));
        assert_eq!(parse_map_size("0x20000"), Ok(17));
        assert_eq!(parse_map_size("127"), Ok(7));
        assert_eq!(parse_map_size("64"), Err(Errno::Inval));
        assert_eq!(parse_map_size("131073"), Err(Errno::Inval));
        assert_eq!(parse_map_size("0"), Err(Errno::Inval));
        assert_eq!(parse_map_size("x"), Err(Errno::Inval));
        assert_eq!(parse_map_size("99999999999999999999"), Err(Errno::Range));
    }

    #[test]
    fn bar_labels_use_binary_suffixes() {
        assert_eq!(power_label(0), "1");
        assert_eq!(power_label(9), "512");
        assert_eq!(power_label(10), "1K");
        assert_eq!(power_label(26), "64M");
        assert_eq!(power_label(64), "16E");
    }
}
