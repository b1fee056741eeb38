//! Event filters: an event's `filter` file and a trigger's `if FILTER`.
//!
//! A filter is a boolean expression over the event's fields, written as
//! Linux's (`Documentation/trace/events.rst`, section 5):
//!
//! ```text
//! FILTER  := TERM | FILTER && FILTER | FILTER || FILTER | !FILTER | (FILTER)
//! TERM    := FIELD OP VALUE
//! OP      := == != < <= > >= & ~
//! ```
//!
//! `&&` binds tighter than `||`. Numbers are decimal, `0x` hex or `0`
//! octal (`kstrtoull`, `kstrtoll` for signed fields; a leading `-`
//! reads a negative number) and compare with the field's size and sign;
//! `&` is true if any bit is set in both. String fields take `==`, `!=`
//! and `~` against a quoted string (`"..."` or `'...'`); `~` is a glob:
//! `*x`, `x*`, `*x*` and, with `?`, `[...]`, `\` or an inner `*`, Linux's
//! `glob_match()`; a leading `!` in a `~` pattern inverts it. The generic
//! fields `comm`/`COMM` (the current task's name) and `cpu`/`CPU` are
//! available on every event, as are the common header's fields.
//!
//! # Compilation and evaluation
//!
//! Parsing follows Linux's `predicate_parse()` step by step and produces
//! the same program: a list of predicates, each with the result that
//! makes it branch and the entry it branches to, short-circuiting as C
//! does. Evaluation ([`Filter::matches`]) walks that list forward once: it
//! neither allocates, locks nor panics, and any record (too short, or with
//! a string location pointing anywhere) gives an answer.
//!
//! # Errors
//!
//! A refused filter yields a [`FilterError`] with Linux's errno, message
//! and position: the `filter` file then shows the text, a caret and
//! `parse_error: MESSAGE` ([`FilterError::filter_file_text`]), and
//! `error_log` gets an `event filter parse error` entry
//! ([`FilterError::log_entry`]).
//!
//! # Where this differs from Linux
//!
//! - A string field also takes an unquoted word (`comm == bash`), as
//!   events.rst shows and older kernels took; Linux 4.17 and later refuse
//!   it ("Invalid value (did you forget quotes)?"), and still do for
//!   numeric fields.
//! - Strings end at their first NUL or at their field's end, and `comm`
//!   at its NUL: Linux compares `comm` and `char[N]` fields over their
//!   full size, so its `~ "*sh"` never matches them.
//! - CPU masks (`CPUS{...}`), `.function`, `.ustring` and function-event
//!   (`ip`) filters are not supported; the errors they give are those of
//!   an unknown field or value.
//! - A record shorter than the fields a filter reads does not match.
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write};

use crate::Context;
use crate::error::{Errno, LogEntry};
use crate::field::{EventField, EventFields, FieldKind};
use crate::glob::glob_match;
use crate::num::{c_str, is_alnum, is_digit, is_space, kstrtoll, kstrtoull, strip, strip_end};

/// Longest string operand (Linux's `MAX_FILTER_STR_VAL`), NUL included.
pub const MAX_FILTER_STR_VAL: usize = 256;
/// Bytes of a task name, NUL included (Linux's `TASK_COMM_LEN`).
pub const TASK_COMM_LEN: usize = 16;
/// Longest number operand, NUL included (Linux's `num_buf`).
const NUM_BUF: usize = 24;
/// Where filter errors are logged from.
pub const FILTER_ERROR_LOCATION: &str = "event filter parse error";

macro_rules! error_kinds {
    ($($(#[$doc:meta])* $name:ident => $text:literal,)*) => {
        /// Every error Linux's filter parser can report, in Linux's order
        /// (`err_text[]` in trace_events_filter.c), with its exact text.
        /// Some exist only so the list is whole: this crate never raises
        /// the CPU-mask, function and subsystem ones.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum FilterErrorKind {
            $($(#[$doc])* $name,)*
        }

        impl FilterErrorKind {
            /// Every kind, in Linux's order.
            pub const ALL: &'static [FilterErrorKind] = &[$(FilterErrorKind::$name,)*];

            /// The message Linux shows for this error, byte for byte.
            pub const fn text(self) -> &'static str {
                match self {
                    $(FilterErrorKind::$name => $text,)*
                }
            }
        }
    };
}

error_kinds! {
    /// No error.
    None => "No error",
    /// No operator after a field name.
    InvalidOp => "Invalid operator",
    /// A `(` without its `)`.
    TooManyOpen => "Too many '('",
    /// A `)` without its `(`.
    TooManyClose => "Too few '('",
    /// A quote without its closing quote.
    MissingQuote => "Missing matching quote",
    /// `CPUS` without `{`.
    MissingBraceOpen => "Missing '{'",
    /// `CPUS{` without `}`.
    MissingBraceClose => "Missing '}'",
    /// A string of 256 bytes or more, or a number of 24 or more.
    OperandTooLong => "Operand too long",
    /// A number compared with a string field.
    ExpectString => "Expecting string field",
    /// A string compared with a numeric field.
    ExpectDigit => "Expecting numeric field",
    /// An operator the field's type does not take (`<` on a string, `~` on
    /// a number).
    IllegalFieldOp => "Illegal operation for field type",
    /// No field of that name.
    FieldNotFound => "Field not found",
    /// A malformed or out-of-range number.
    IllegalIntval => "Illegal integer value",
    /// A subsystem filter no event could take.
    BadSubsysFilter => "Couldn't find or set field in one of a subsystem's events",
    /// Something other than `&&`, `||` or `)` after a term.
    TooManyPreds => "Too many terms in predicate expression",
    /// A meaningless filter.
    InvalidFilter => "Meaningless filter expression",
    /// A malformed CPU list.
    InvalidCpulist => "Invalid cpulist",
    /// A function event filter on a field other than `ip`.
    IpFieldOnly => "Only 'ip' field is supported for function trace",
    /// A value that is neither a number nor a quoted string.
    InvalidValue => "Invalid value (did you forget quotes)?",
    /// No function of that name.
    NoFunction => "Function not found",
    /// An error without a message of its own.
    Errno => "Error",
    /// Nothing to filter on (a lone `!`).
    NoFilter => "No filter found",
}

impl fmt::Display for FilterErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

/// A refused filter: the errno Linux returns, the error (if the parser
/// named one) and where it is, and the filter's text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterError {
    errno: Errno,
    error: Option<(FilterErrorKind, usize)>,
    text: String,
}

impl FilterError {
    fn new(errno: Errno, error: Option<(FilterErrorKind, usize)>, text: &str) -> Self {
        FilterError { errno, error, text: text.into() }
    }

    /// The errno `write(2)` returns.
    pub fn errno(&self) -> Errno {
        self.errno
    }

    /// The error the parser reported, or `None` where Linux reports only an
    /// errno (its `Error: (0)`, logged as "Error").
    pub fn kind(&self) -> Option<FilterErrorKind> {
        self.error.map(|(kind, _)| kind)
    }

    /// The error's byte position in the filter text as Linux computes it
    /// (for some errors one past the byte at fault, as in Linux); 0 when
    /// there is no parse error.
    pub fn position(&self) -> usize {
        self.error.map_or(0, |(_, position)| position)
    }

    /// The filter text as written (without trailing whitespace).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// What the `filter` file shows after the refusal, every line ending
    /// in a newline (Linux's `append_filter_err()`):
    ///
    /// ```text
    /// foo == 1
    ///    ^
    /// parse_error: Field not found
    /// ```
    ///
    /// or, without a parse error, the text and `Error: (0)`.
    pub fn filter_file_text(&self) -> String {
        let mut out = String::from(self.text.as_str());
        match self.error {
            Some((kind, position)) => {
                out.push('\n');
                for _ in 0..position.min(self.text.len()) {
                    out.push(' ');
                }
                // Writing to a String cannot fail.
                let _ = write!(out, "^\nparse_error: {}\n", kind.text());
            }
            None => out.push_str("\nError: (0)\n"),
        }
        out
    }

    /// The `error_log` entry Linux adds for the refusal.
    pub fn log_entry(&self) -> LogEntry {
        let (kind, position) = self.error.unwrap_or((FilterErrorKind::Errno, 0));
        LogEntry::new(FILTER_ERROR_LOCATION, kind.text(), self.text.as_str(), position)
    }
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind() {
            Some(kind) => f.write_str(kind.text()),
            None => write!(f, "filter refused ({})", self.errno),
        }
    }
}

/// A comparison operator (Linux's `ops[]`, in matching order: `<=` before
/// `<`, `>=` before `>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Op {
    Glob,
    Ne,
    Eq,
    Le,
    Lt,
    Ge,
    Gt,
    Band,
}

const OPS: [(Op, &str); 8] = [
    (Op::Glob, "~"),
    (Op::Ne, "!="),
    (Op::Eq, "=="),
    (Op::Le, "<="),
    (Op::Lt, "<"),
    (Op::Ge, ">="),
    (Op::Gt, ">"),
    (Op::Band, "&"),
];

/// How a string pattern matches (Linux's `regex_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum MatchKind {
    Full,
    Front,
    Middle,
    End,
    Glob,
}

/// Where a string predicate's string is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum StrSource {
    Dyn { offset: usize },
    Static { offset: usize, size: usize },
    Comm,
}

/// One predicate of a compiled filter.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Pred {
    /// Always false (a number of a size Linux has no comparison for).
    Nop,
    /// `==`/`!=` on the field's bytes.
    Eq { offset: usize, size: usize, val: u64, not: bool },
    /// `<`, `<=`, `>`, `>=`, `&` with the field's size and sign.
    Cmp { offset: usize, size: usize, signed: bool, op: Op, val: u64 },
    /// A comparison of the current CPU.
    Cpu { op: Op, val: i32 },
    /// A string match.
    Str { source: StrSource, kind: MatchKind, pattern: Vec<u8>, not: bool },
}

/// Reads `size` (1 to 8) bytes at `offset`, little-endian.
fn read_uint(record: &[u8], offset: usize, size: usize) -> Option<u64> {
    let bytes = record.get(offset..offset.checked_add(size)?)?;
    Some(bytes.iter().rev().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
}

/// `value`'s low `size` bytes, sign-extended from the top one.
fn sign_extend(value: u64, size: usize) -> i64 {
    let shift = 64 - 8 * size as u32;
    ((value << shift) as i64) >> shift
}

/// `value` cut to `size` bytes.
fn truncate(value: u64, size: usize) -> u64 {
    if size >= 8 { value } else { value & ((1u64 << (8 * size)) - 1) }
}

/// The string a predicate reads: up to its first NUL, or `None` if it lies
/// outside the record.
fn string_at<'a>(source: StrSource, record: &'a [u8], ctx: &Context<'a>) -> Option<&'a [u8]> {
    let bytes = match source {
        StrSource::Dyn { offset } => {
            let item = read_uint(record, offset, 4)?;
            let start = (item & 0xffff) as usize;
            let len = (item >> 16) as usize;
            record.get(start..start + len)?
        }
        StrSource::Static { offset, size } => record.get(offset..offset.checked_add(size)?)?,
        StrSource::Comm => &ctx.comm[..ctx.comm.len().min(TASK_COMM_LEN)],
    };
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    Some(&bytes[..end])
}

impl Pred {
    /// The bytes of the record this predicate reads, from offset 0.
    fn record_len(&self) -> usize {
        match *self {
            Pred::Eq { offset, size, .. } | Pred::Cmp { offset, size, .. } => offset + size,
            Pred::Str { source: StrSource::Dyn { offset }, .. } => offset + 4,
            Pred::Str { source: StrSource::Static { offset, size }, .. } => offset + size,
            Pred::Nop | Pred::Cpu { .. } | Pred::Str { source: StrSource::Comm, .. } => 0,
        }
    }

    fn eval(&self, record: &[u8], ctx: &Context<'_>) -> bool {
        match *self {
            Pred::Nop => false,
            Pred::Eq { offset, size, val, not } => match read_uint(record, offset, size) {
                Some(raw) => (raw == truncate(val, size)) != not,
                None => false,
            },
            Pred::Cmp { offset, size, signed, op, val } => {
                let Some(raw) = read_uint(record, offset, size) else {
                    return false;
                };
                let val = truncate(val, size);
                if op == Op::Band {
                    return raw & val != 0;
                }
                let order = if signed { sign_extend(raw, size).cmp(&sign_extend(val, size)) } else { raw.cmp(&val) };
                match op {
                    Op::Lt => order.is_lt(),
                    Op::Le => order.is_le(),
                    Op::Gt => order.is_gt(),
                    Op::Ge => order.is_ge(),
                    _ => false,
                }
            }
            Pred::Cpu { op, val } => {
                let cpu = ctx.cpu as i32;
                match op {
                    Op::Eq => cpu == val,
                    Op::Ne => cpu != val,
                    Op::Lt => cpu < val,
                    Op::Le => cpu <= val,
                    Op::Gt => cpu > val,
                    Op::Ge => cpu >= val,
                    Op::Glob | Op::Band => false,
                }
            }
            Pred::Str { source, kind, ref pattern, not } => {
                let Some(string) = string_at(source, record, ctx) else {
                    return false;
                };
                let pattern = pattern.as_slice();
                let matched = match kind {
                    MatchKind::Full => string == pattern,
                    MatchKind::Front => string.starts_with(pattern),
                    MatchKind::Middle => pattern.is_empty() || string.windows(pattern.len()).any(|w| w == pattern),
                    MatchKind::End => string.ends_with(pattern),
                    MatchKind::Glob => glob_match(pattern, string),
                };
                matched != not
            }
        }
    }
}

/// One entry of the program: evaluate `pred`; if the result is `when`,
/// continue after entry `target` (past the end: true at `len`, false at
/// `len + 1`), else with the next entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Entry {
    pred: Pred,
    when: bool,
    target: usize,
}

/// A compiled filter.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Filter {
    text: String,
    prog: Vec<Entry>,
    record_len: usize,
}

impl Filter {
    /// Compiles `text` against the event's fields as Linux's
    /// `create_filter()` does. The text is taken up to its first NUL;
    /// whitespace is significant only inside quotes.
    pub fn parse(text: &str, fields: &EventFields) -> Result<Filter, FilterError> {
        let text = c_str(text);
        let s = text.as_bytes();
        let (nr_parens, nr_preds) =
            calc_stack(s).map_err(|(errno, kind, index)| FilterError::new(errno, Some((kind, index)), text))?;
        if nr_preds == 0 {
            return Err(FilterError::new(Errno::Inval, None, text));
        }
        let prog = predicate_parse(s, nr_parens, nr_preds, fields)
            .map_err(|(errno, error)| FilterError::new(errno, error, text))?;
        let record_len = prog.iter().map(|e| e.pred.record_len()).max().unwrap_or(0);
        Ok(Filter { text: text.into(), prog, record_len })
    }

    /// The filter's text as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Bytes of record the filter reads: shorter records never match.
    pub fn record_len(&self) -> usize {
        self.record_len
    }

    /// Whether `record` (the event's whole record, common header included)
    /// passes the filter, with `ctx` for `comm` and `cpu`. Never
    /// allocates, locks or panics, whatever the bytes.
    pub fn matches(&self, record: &[u8], ctx: &Context<'_>) -> bool {
        if record.len() < self.record_len {
            return false;
        }
        let len = self.prog.len();
        let mut i = 0;
        while let Some(entry) = self.prog.get(i) {
            if entry.pred.eval(record, ctx) == entry.when {
                // Targets always lie ahead (checked at compile time).
                i = entry.target;
            }
            i += 1;
        }
        i == len
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A `!` that negates (not the start of `!=` or `!~`), given the byte
/// after it.
fn is_not(next: u8) -> bool {
    !matches!(next, b'=' | b'~')
}

/// Linux's `calc_stack()`: checks quotes and parentheses and counts
/// (over-estimates) the predicates; `(max depth, predicates)` or the error
/// with its position.
fn calc_stack(s: &[u8]) -> Result<(usize, usize), (Errno, FilterErrorKind, usize)> {
    let mut is_pred = false;
    let mut nr_preds = 0;
    let mut open = 1usize;
    let mut last_quote = 0;
    let mut max_open = 1;
    let mut quote = 0u8;
    let mut i = 0;
    while let Some(&c) = s.get(i) {
        i += 1;
        if is_space(c) {
            continue;
        }
        if quote != 0 {
            if c == quote {
                quote = 0;
            }
            continue;
        }
        match c {
            b'\'' | b'"' => {
                quote = c;
                last_quote = i - 1;
            }
            b'|' | b'&' if s.get(i) == Some(&c) => {
                is_pred = false;
                continue;
            }
            b'(' => {
                is_pred = false;
                open += 1;
                max_open = max_open.max(open);
                continue;
            }
            b')' => {
                is_pred = false;
                if open == 1 {
                    return Err((Errno::Perm, FilterErrorKind::TooManyClose, i - 1));
                }
                open -= 1;
                continue;
            }
            _ => {}
        }
        if !is_pred {
            nr_preds += 1;
            is_pred = true;
        }
    }
    if quote != 0 {
        return Err((Errno::Srch, FilterErrorKind::MissingQuote, last_quote));
    }
    if open != 1 {
        // Find the bad '(' as Linux does: backwards, never looking at
        // the first byte.
        let mut level = open;
        let mut quote = 0u8;
        let mut i = s.len() - 1;
        while i > 0 {
            let c = s[i];
            if quote != 0 {
                if c == quote {
                    quote = 0;
                }
            } else {
                match c {
                    b'(' => {
                        if level == open {
                            return Err((Errno::NoEnt, FilterErrorKind::TooManyOpen, i));
                        }
                        level -= 1;
                    }
                    b')' => level += 1,
                    b'\'' | b'"' => quote = c,
                    _ => {}
                }
            }
            i -= 1;
        }
        return Err((Errno::NoEnt, FilterErrorKind::TooManyOpen, 0));
    }
    Ok((max_open, nr_preds))
}

/// A parse failure: the errno and the parse error, if Linux records one.
type Failure = (Errno, Option<(FilterErrorKind, usize)>);

const INVERT: u8 = 1;
const PROCESS_AND: u8 = 2;
const PROCESS_OR: u8 = 4;

/// Linux's `update_preds()` on the first-pass program.
fn update_preds(targets: &mut [isize], whens: &mut [bool], n: usize, when: bool) -> Result<(), Failure> {
    let t = usize::try_from(targets[n]).map_err(|_| (Errno::Inval, None))?;
    let s = targets[t];
    whens[t] = when;
    targets[t] = n as isize;
    targets[n] = s;
    Ok(())
}

/// Linux's `predicate_parse()`: the three passes that turn the text into
/// a forward-branching program.
fn predicate_parse(s: &[u8], nr_parens: usize, nr_preds: usize, fields: &EventFields) -> Result<Vec<Entry>, Failure> {
    let nr_preds = nr_preds + 2;
    let at = |i: usize| s.get(i).copied().unwrap_or(0);
    let mut stack: Vec<u8> = alloc::vec![0];
    let mut preds: Vec<Pred> = Vec::new();
    let mut targets: Vec<isize> = Vec::new();
    let mut whens: Vec<bool> = Vec::new();
    let mut inverts: Vec<bool> = Vec::new();
    let mut invert = false;
    let mut ret = Errno::NoMem;
    let mut ptr = 0usize;
    'first: while at(ptr) != 0 {
        let next = ptr;
        ptr += 1;
        let c = at(next);
        if is_space(c) {
            continue;
        }
        match c {
            b'(' => {
                if stack.len() - 1 > nr_parens {
                    return Err((Errno::Inval, None));
                }
                stack.push(u8::from(invert));
                continue;
            }
            b'!' if is_not(at(next + 1)) => {
                invert = !invert;
                continue;
            }
            _ => {}
        }
        let n = preds.len();
        if n >= nr_preds {
            return Err((ret, Some((FilterErrorKind::TooManyPreds, next))));
        }
        let (len, pred) = parse_pred(s, next, ptr, fields)?;
        inverts.push(invert);
        targets.push(n as isize - 1);
        whens.push(false);
        preds.push(pred);
        ptr = next + len;
        ret = Errno::Perm;
        loop {
            let next = ptr;
            ptr += 1;
            let c = at(next);
            if is_space(c) {
                continue;
            }
            match c {
                b')' | 0 => {}
                b'&' | b'|' if at(next + 1) == c => ptr += 1,
                _ => return Err((Errno::Perm, Some((FilterErrorKind::TooManyPreds, next)))),
            }
            let top = stack.len() - 1;
            invert = stack[top] & INVERT != 0;
            let last = preds.len() - 1;
            if stack[top] & PROCESS_AND != 0 {
                update_preds(&mut targets, &mut whens, last, invert)?;
                stack[top] &= !PROCESS_AND;
            }
            if c == b'&' {
                stack[top] |= PROCESS_AND;
                break;
            }
            if stack[top] & PROCESS_OR != 0 {
                update_preds(&mut targets, &mut whens, last, !invert)?;
                stack[top] &= !PROCESS_OR;
            }
            if c == b'|' {
                stack[top] |= PROCESS_OR;
                break;
            }
            if c == 0 {
                break 'first;
            }
            if top == 0 {
                return Err((Errno::Perm, Some((FilterErrorKind::TooManyClose, ptr))));
            }
            stack.pop();
        }
    }
    if stack.len() != 1 {
        return Err((ret, Some((FilterErrorKind::TooManyOpen, ptr))));
    }
    let n = preds.len();
    if n == 0 {
        return Err((Errno::Inval, Some((FilterErrorKind::NoFilter, ptr))));
    }
    // The last entry branches to FALSE (entry n + 1, after n) when false.
    targets[n - 1] = n as isize;
    whens[n - 1] = false;
    // Second pass: a branch to an entry that branches on the same result
    // goes straight to that entry's target. TRUE (entry n) branches on
    // false to 1, as in Linux.
    for i in (0..n.saturating_sub(1)).rev() {
        let target = usize::try_from(targets[i]).map_err(|_| (Errno::Inval, None))?;
        let (target_when, target_target) = match target.cmp(&n) {
            core::cmp::Ordering::Less => (whens[target], targets[target]),
            core::cmp::Ordering::Equal => (false, 1),
            core::cmp::Ordering::Greater => return Err((Errno::Inval, None)),
        };
        if whens[i] == target_when {
            targets[i] = target_target;
        }
    }
    // Third pass: fold the inversions into the branch conditions; every
    // branch must go forward (and stay within TRUE/FALSE).
    let mut prog = Vec::with_capacity(n);
    for (i, pred) in preds.into_iter().enumerate() {
        let target = usize::try_from(targets[i]).map_err(|_| (Errno::Inval, None))?;
        if target <= i || target > n {
            return Err((Errno::Inval, None));
        }
        prog.push(Entry { pred, when: inverts[i] != whens[i], target });
    }
    Ok(prog)
}

/// Linux's `filter_parse_regex()` for `~`: the match kind, the pattern to
/// match and whether a leading `!` inverts it.
fn parse_glob(pattern: &[u8]) -> (MatchKind, &[u8], bool) {
    let (not, buff) = match pattern.strip_prefix(b"!") {
        Some(rest) => (true, rest),
        None => (false, pattern),
    };
    // Linux's MATCH_INDEX (for function indexes): a full match.
    if buff.first().is_some_and(|&c| is_digit(c)) {
        return (MatchKind::Full, buff, not);
    }
    let mut kind = MatchKind::Full;
    let mut buff = buff;
    let len = buff.len();
    for i in 0..len {
        match buff[i] {
            b'*' if i == 0 => kind = MatchKind::End,
            b'*' if i == len - 1 => {
                kind = if kind == MatchKind::End { MatchKind::Middle } else { MatchKind::Front };
                buff = &buff[..i];
                break;
            }
            b'*' | b'[' | b'?' | b'\\' => return (MatchKind::Glob, buff, not),
            _ => {}
        }
    }
    let search = buff.strip_prefix(b"*").unwrap_or(buff);
    (kind, search, not)
}

/// A string predicate on `field` for `op` (`==`, `!=` or `~`) with the
/// operand `value`.
fn string_pred(field: &EventField, op: Op, value: &[u8]) -> Pred {
    let (kind, pattern, not) = if op == Op::Glob { parse_glob(value) } else { (MatchKind::Full, value, op == Op::Ne) };
    let source = match field.kind() {
        FieldKind::DynString => StrSource::Dyn { offset: field.offset() },
        FieldKind::StaticString => StrSource::Static { offset: field.offset(), size: field.size() },
        _ => StrSource::Comm,
    };
    Pred::Str { source, kind, pattern: pattern.to_vec(), not }
}

/// A numeric predicate on `field` (Linux's `select_comparison_fn()`).
fn number_pred(field: &EventField, op: Op, val: u64) -> Pred {
    let (offset, size) = (field.offset(), field.size());
    if !matches!(size, 1 | 2 | 4 | 8) {
        return Pred::Nop;
    }
    match op {
        Op::Eq | Op::Ne => Pred::Eq { offset, size, val, not: op == Op::Ne },
        Op::Glob => Pred::Nop,
        _ => Pred::Cmp { offset, size, signed: field.is_signed(), op, val },
    }
}

/// Linux's `parse_pred()`: the predicate at `s[start..]`, its length, or
/// the failure. Positions in errors are `pos` (one past `start`, as in
/// Linux) plus the offset inside the predicate.
fn parse_pred(s: &[u8], start: usize, pos: usize, fields: &EventFields) -> Result<(usize, Pred), Failure> {
    let text = &s[start..];
    let at = |i: usize| text.get(i).copied().unwrap_or(0);
    let fail = |kind: FilterErrorKind, at: usize| Err((Errno::Inval, Some((kind, pos + at))));
    let mut i = 0;
    while is_space(at(i)) {
        i += 1;
    }
    let name_start = i;
    while is_alnum(at(i)) || at(i) == b'_' {
        i += 1;
    }
    if i == name_start {
        // Linux returns -1 without a parse error.
        return Err((Errno::Perm, None));
    }
    // The name is ASCII, so always UTF-8.
    let name = core::str::from_utf8(&text[name_start..i]).unwrap_or("");
    let Some(field) = fields.find(name) else {
        return fail(FilterErrorKind::FieldNotFound, i);
    };
    while is_space(at(i)) {
        i += 1;
    }
    let rest = text.get(i..).unwrap_or(&[]);
    let Some(&(op, op_text)) = OPS.iter().find(|(_, t)| rest.starts_with(t.as_bytes())) else {
        return fail(FilterErrorKind::InvalidOp, i);
    };
    i += op_text.len();
    while is_space(at(i)) {
        i += 1;
    }
    let value_start = i;
    let c = at(i);
    if c == b'\'' || c == b'"' {
        if !matches!(op, Op::Ne | Op::Glob | Op::Eq) {
            return fail(FilterErrorKind::IllegalFieldOp, i);
        }
        if !field.is_string() {
            return fail(FilterErrorKind::ExpectDigit, i);
        }
        i += 1;
        while at(i) != 0 && at(i) != c {
            i += 1;
        }
        if at(i) == 0 {
            return fail(FilterErrorKind::MissingQuote, i);
        }
        if i - (value_start + 1) >= MAX_FILTER_STR_VAL {
            return fail(FilterErrorKind::OperandTooLong, i);
        }
        let pred = string_pred(field, op, &text[value_start + 1..i]);
        Ok((i + 1, pred))
    } else if is_digit(c) || c == b'-' {
        if field.is_string() {
            return fail(FilterErrorKind::ExpectString, i);
        }
        if op == Op::Glob {
            return fail(FilterErrorKind::IllegalFieldOp, i);
        }
        if c == b'-' {
            i += 1;
        }
        while is_alnum(at(i)) {
            i += 1;
        }
        if i - value_start >= NUM_BUF {
            return fail(FilterErrorKind::OperandTooLong, i);
        }
        let number = &text[value_start..i];
        let value = if field.is_signed() { kstrtoll(number).map(|v| v as u64) } else { kstrtoull(number) };
        let Ok(value) = value else {
            return fail(FilterErrorKind::IllegalIntval, value_start);
        };
        let pred = if field.kind() == FieldKind::Cpu {
            Pred::Cpu { op, val: value as i32 }
        } else {
            number_pred(field, op, value)
        };
        Ok((i, pred))
    } else if field.is_string() && c != 0 && !matches!(c, b')' | b'&' | b'|') {
        // This crate's extension: an unquoted word for a string field.
        if !matches!(op, Op::Ne | Op::Glob | Op::Eq) {
            return fail(FilterErrorKind::IllegalFieldOp, i);
        }
        while at(i) != 0 && !is_space(at(i)) && !matches!(at(i), b')' | b'&' | b'|') {
            i += 1;
        }
        if i - value_start >= MAX_FILTER_STR_VAL {
            return fail(FilterErrorKind::OperandTooLong, i);
        }
        Ok((i, string_pred(field, op, &text[value_start..i])))
    } else {
        fail(FilterErrorKind::InvalidValue, i)
    }
}

/// What writing to an event's `filter` file did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FilterUpdate {
    /// `0` was written: the event is no longer filtered.
    Cleared,
    /// The event is now filtered by this filter.
    Set(Filter),
}

/// An event's `filter` file: what reading it shows and the filter the
/// trap path applies.
///
/// Writing replaces the filter ([`FilterFile::write`]); a refused filter
/// leaves the event unfiltered and the file showing the error, as in
/// Linux. The kernel publishes [`FilterFile::filter`] to the probe
/// handlers its own way (the filter is immutable once built).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FilterFile {
    shown: Option<String>,
    filter: Option<Filter>,
}

impl FilterFile {
    /// An event without a filter (`none`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes `data` to the file (Linux's `apply_event_filter()`): `0`
    /// (with any surrounding whitespace) removes the filter; anything else
    /// is compiled, its trailing whitespace dropped. On error the event is
    /// left unfiltered and the file shows the error.
    pub fn write(&mut self, data: &str, fields: &EventFields) -> Result<FilterUpdate, FilterError> {
        let data = strip_end(c_str(data));
        if strip(data) == "0" {
            self.shown = None;
            self.filter = None;
            return Ok(FilterUpdate::Cleared);
        }
        match Filter::parse(data, fields) {
            Ok(filter) => {
                self.shown = Some(data.into());
                self.filter = Some(filter.clone());
                Ok(FilterUpdate::Set(filter))
            }
            Err(error) => {
                self.shown = Some(error.filter_file_text());
                self.filter = None;
                Err(error)
            }
        }
    }

    /// What reading the file shows: `none`, the filter's text, or the last
    /// error (Linux's `print_event_filter()`), ending in a newline.
    pub fn read(&self) -> String {
        match &self.shown {
            Some(text) => {
                let mut out = text.clone();
                out.push('\n');
                out
            }
            None => String::from("none\n"),
        }
    }

    /// The filter in force, if any.
    pub fn filter(&self) -> Option<&Filter> {
        self.filter.as_ref()
    }
}
