//! Event triggers: an event's `trigger` file (Linux's
//! `Documentation/trace/events.rst`, section 6).
//!
//! ```text
//! traceon[:COUNT] [if FILTER]       turn tracing on (if it is off)
//! traceoff[:COUNT] [if FILTER]      turn tracing off (if it is on)
//! stacktrace[:COUNT] [if FILTER]    record a stack trace
//! hist:...                          a histogram (see the hist module)
//! !COMMAND...                       remove the trigger
//! ```
//!
//! One command per write; surrounding whitespace does not count. A
//! `COUNT` lets the trigger act that many times (`traceon`/`traceoff`
//! count only the times they change the tracing state, as in Linux).
//! `traceon` and `traceoff` are one kind of trigger: an event has at most
//! one of them, and at most one `stacktrace`; `!traceon` removes either.
//! An event may have any number of different hist triggers.
//!
//! # Reading
//!
//! [`Triggers::read`] shows the triggers as Linux's `trigger` file does
//! (`traceon:unlimited`, `traceoff:count=3 if pid == 1`,
//! `hist:keys=...:vals=hitcount:sort=hitcount:size=2048 [active]`), newest
//! simple trigger first and hist triggers after them in the order they
//! were made, or the available commands when there is none.
//! [`Triggers::read_hist`] is the `hist` file.
//!
//! # Firing
//!
//! [`Triggers::fire`] is the trap-path step: each trigger whose filter
//! takes the record counts down and reports its action ([`Actions`]);
//! hist triggers count the record into their table. It neither
//! allocates, locks nor panics. Linux runs filterless `traceon`/`traceoff`
//! before the event is written and the others after; a kernel that wants
//! that order calls `fire` before committing the record and drops it if
//! tracing went off.
//!
//! # Updating
//!
//! [`Triggers::write`] takes `&mut self`. A kernel that fires triggers from
//! other CPUs while the console writes clones the set (cheap: the
//! triggers are shared through `Arc`, counts and tables included), writes
//! the clone and publishes it the way it publishes other trap-path data.
//!
//! # Where this differs from Linux
//!
//! - Removing a trigger that is not there fails with `ENOENT`; Linux's
//!   `unregister_trigger()` ignores it and the write succeeds.
//! - `snapshot`, `enable_event`, `disable_event`, `enable_hist` and
//!   `disable_hist` are not supported (`EINVAL`, as an unknown command).
//! - Counts are 64-bit (`COUNT` up to 2^64-1, 2^64-1 meaning unlimited),
//!   as `unsigned long` on a 64-bit kernel.
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicI64, Ordering};

use probe_events::eval::Symbolizer;

use crate::Context;
use crate::error::{Errno, LogEntry};
use crate::field::EventFields;
use crate::filter::Filter;
use crate::hist::{self, AttachError, HistErrorKind, HistTrigger, NamedHists};
use crate::num::{NumError, c_str, is_digit, kstrtoull, skip_spaces, strip};

/// Longest write the file takes, less one (Linux's `PAGE_SIZE`).
const PAGE_SIZE: usize = 4096;
/// What an event without triggers shows.
const AVAILABLE: &str = "# Available triggers:\n# traceon traceoff stacktrace hist\n";

/// A refused trigger write: the errno and the `error_log` entries Linux
/// adds for it (none for most refusals, an `event filter parse error` for
/// a bad filter, a `hist:GROUP:EVENT` entry for most hist errors).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TriggerError {
    errno: Errno,
    entries: Vec<LogEntry>,
}

impl TriggerError {
    /// A refusal that logs nothing.
    pub fn silent(errno: Errno) -> Self {
        TriggerError { errno, entries: Vec::new() }
    }

    /// A refusal that logs `entry`.
    pub fn logged(errno: Errno, entry: LogEntry) -> Self {
        TriggerError { errno, entries: alloc::vec![entry] }
    }

    /// A refusal that logs `entries`, oldest first.
    pub fn with_entries(errno: Errno, entries: Vec<LogEntry>) -> Self {
        TriggerError { errno, entries }
    }

    /// The errno `write(2)` returns.
    pub fn errno(&self) -> Errno {
        self.errno
    }

    /// The `error_log` entries, oldest first (possibly none).
    pub fn entries(&self) -> &[LogEntry] {
        &self.entries
    }

    /// The newest entry's message, if any.
    pub fn message(&self) -> Option<&'static str> {
        self.entries.last().map(LogEntry::message)
    }
}

impl fmt::Display for TriggerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.message() {
            Some(message) => f.write_str(message),
            None => write!(f, "trigger refused ({})", self.errno),
        }
    }
}

/// The kind of a trigger.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TriggerKind {
    /// `traceon`.
    TraceOn,
    /// `traceoff`.
    TraceOff,
    /// `stacktrace`.
    Stacktrace,
    /// `hist`.
    Hist,
}

impl TriggerKind {
    /// The command's name.
    pub fn name(self) -> &'static str {
        match self {
            TriggerKind::TraceOn => "traceon",
            TriggerKind::TraceOff => "traceoff",
            TriggerKind::Stacktrace => "stacktrace",
            TriggerKind::Hist => "hist",
        }
    }

    /// Linux's trigger type: `traceon` and `traceoff` share one.
    fn group(self) -> u8 {
        match self {
            TriggerKind::TraceOn | TriggerKind::TraceOff => 0,
            TriggerKind::Stacktrace => 1,
            TriggerKind::Hist => 2,
        }
    }
}

#[derive(Debug)]
enum Body {
    Simple { kind: TriggerKind, count: AtomicI64, filter: Option<Filter> },
    Hist(HistTrigger),
}

/// One trigger of an event.
#[derive(Debug)]
pub struct Trigger {
    body: Body,
}

/// Takes one from a count: false if it is 0; -1 is unlimited.
fn take(count: &AtomicI64) -> bool {
    count
        .try_update(Ordering::Relaxed, Ordering::Relaxed, |c| match c {
            0 => None,
            -1 => Some(-1),
            c => Some(c.wrapping_sub(1)),
        })
        .is_ok()
}

impl Trigger {
    /// The trigger's kind.
    pub fn kind(&self) -> TriggerKind {
        match &self.body {
            Body::Simple { kind, .. } => *kind,
            Body::Hist(_) => TriggerKind::Hist,
        }
    }

    /// What is left of the count (-1: unlimited); `None` for hist
    /// triggers.
    pub fn count(&self) -> Option<i64> {
        match &self.body {
            Body::Simple { count, .. } => Some(count.load(Ordering::Relaxed)),
            Body::Hist(_) => None,
        }
    }

    /// The trigger's filter text, if it has one.
    pub fn filter_text(&self) -> Option<&str> {
        match &self.body {
            Body::Simple { filter, .. } => filter.as_ref().map(Filter::text),
            Body::Hist(hist) => hist.filter_text(),
        }
    }

    /// The hist trigger, if this is one.
    pub fn as_hist(&self) -> Option<&HistTrigger> {
        match &self.body {
            Body::Hist(hist) => Some(hist),
            Body::Simple { .. } => None,
        }
    }

    /// The trigger's line in the `trigger` file, ending in a newline
    /// (`traceon:unlimited`, `stacktrace:count=2 if pid == 1`).
    pub fn line(&self) -> String {
        match &self.body {
            Body::Simple { kind, count, filter } => {
                let mut out = String::from(kind.name());
                let count = count.load(Ordering::Relaxed);
                // Writing to a String cannot fail.
                let _ = if count == -1 { write!(out, ":unlimited") } else { write!(out, ":count={count}") };
                if let Some(filter) = filter {
                    let _ = write!(out, " if {}", filter.text());
                }
                out.push('\n');
                out
            }
            Body::Hist(hist) => hist.trigger_line(),
        }
    }
}

/// The actions the triggers that fired ask for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Actions {
    /// Turn tracing on (`traceon`).
    pub trace_on: bool,
    /// Turn tracing off (`traceoff`).
    pub trace_off: bool,
    /// Record a stack trace (`stacktrace`).
    pub stacktrace: bool,
}

/// A trigger's `if FILTER` (Linux's `set_trigger_filter()`): the word
/// `if`, one space or tab, then a filter for the event.
pub(crate) fn parse_trigger_filter(text: &str, event: &EventFields) -> Result<Filter, TriggerError> {
    let (word, rest) = match text.find([' ', '\t']) {
        Some(at) => (&text[..at], Some(&text[at + 1..])),
        None => (text, None),
    };
    let (true, Some(rest)) = (word == "if", rest) else {
        return Err(TriggerError::silent(Errno::Inval));
    };
    Filter::parse(rest, event).map_err(|e| TriggerError::logged(e.errno(), e.log_entry()))
}

/// An event's triggers: its `trigger` and `hist` files and the trap-path
/// step. Cloning shares the triggers (see the module documentation).
#[derive(Clone, Debug, Default)]
pub struct Triggers {
    list: Vec<Arc<Trigger>>,
}

impl Triggers {
    /// No triggers.
    pub fn new() -> Self {
        Self::default()
    }

    /// The triggers, in the order the `trigger` file lists them.
    pub fn iter(&self) -> impl Iterator<Item = &Trigger> {
        self.list.iter().map(|t| &**t)
    }

    /// Whether there is no trigger.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// How many triggers there are.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Writes one command to the `trigger` file (Linux's
    /// `event_trigger_regex_write()`): adds, updates or removes a trigger.
    /// `event` is the event's description, `named` the tracing instance's
    /// named histograms. On error nothing changes.
    pub fn write(&mut self, data: &str, event: &EventFields, named: &mut NamedHists) -> Result<(), TriggerError> {
        if data.len() >= PAGE_SIZE {
            return Err(TriggerError::silent(Errno::Inval));
        }
        let buff = strip(c_str(data));
        let (command, next) = match buff.find([':', ' ', '\t']) {
            Some(at) => (&buff[..at], Some(skip_spaces(&buff[at + 1..])).filter(|n| !n.is_empty())),
            None => (buff, None),
        };
        let (remove, command) = match command.strip_prefix('!') {
            Some(command) => (true, command),
            None => (false, command),
        };
        match command {
            "traceon" => self.write_simple(TriggerKind::TraceOn, remove, next, event),
            "traceoff" => self.write_simple(TriggerKind::TraceOff, remove, next, event),
            "stacktrace" => self.write_simple(TriggerKind::Stacktrace, remove, next, event),
            "hist" => self.write_hist(remove, next, event, named),
            _ => Err(TriggerError::silent(Errno::Inval)),
        }
    }

    fn write_simple(
        &mut self,
        kind: TriggerKind,
        remove: bool,
        next: Option<&str>,
        event: &EventFields,
    ) -> Result<(), TriggerError> {
        let same = |t: &Arc<Trigger>| t.kind().group() == kind.group();
        if remove {
            let Some(at) = self.list.iter().position(same) else {
                return Err(TriggerError::silent(Errno::NoEnt));
            };
            self.list.remove(at);
            return Ok(());
        }
        // Linux's event_trigger_separate_filter(): a leading digit starts
        // the count, anything else is the filter.
        let (param, filter_text) = match next {
            Some(next) if next.as_bytes().first().is_some_and(|&c| is_digit(c)) => match next.find([' ', '\t']) {
                Some(at) => (Some(&next[..at]), Some(skip_spaces(&next[at + 1..])).filter(|f| !f.is_empty())),
                None => (Some(next), None),
            },
            Some(next) => (None, Some(next)),
            None => (None, None),
        };
        let count = match param {
            Some(param) => {
                let number = param.split(':').next().unwrap_or("");
                if number.is_empty() {
                    return Err(TriggerError::silent(Errno::Inval));
                }
                let count = kstrtoull(number.as_bytes()).map_err(|e| {
                    TriggerError::silent(match e {
                        NumError::Inval => Errno::Inval,
                        NumError::Range => Errno::Range,
                    })
                })?;
                count as i64
            }
            None => -1,
        };
        let filter = match filter_text {
            Some(text) => Some(parse_trigger_filter(text, event)?),
            None => None,
        };
        if self.list.iter().any(same) {
            return Err(TriggerError::silent(Errno::Exist));
        }
        let trigger = Trigger { body: Body::Simple { kind, count: AtomicI64::new(count), filter } };
        self.list.insert(0, Arc::new(trigger));
        Ok(())
    }

    fn find_hist(&self, spec: &hist::HistSpec) -> Option<usize> {
        self.list.iter().position(|t| t.as_hist().is_some_and(|h| h.spec().matches(spec, false)))
    }

    fn write_hist(
        &mut self,
        remove: bool,
        next: Option<&str>,
        event: &EventFields,
        named: &mut NamedHists,
    ) -> Result<(), TriggerError> {
        let request = hist::parse(next, event)?;
        let entry = |kind: HistErrorKind, position: usize| {
            LogEntry::new(request.location.as_str(), kind.text(), request.command.as_str(), position)
        };
        if remove {
            let Some(at) = self.find_hist(&request.spec) else {
                return Err(TriggerError::silent(Errno::NoEnt));
            };
            self.list.remove(at);
            return Ok(());
        }
        let mismatch = request.spec.named_mismatch(named);
        // Linux's existing_hist_update_only(): :pause, :cont and :clear act
        // on the matching trigger if there is one.
        let update = request.pause || request.cont || request.clear;
        let existing = self.find_hist(&request.spec).and_then(|at| self.list[at].as_hist());
        if let (true, false, Some(hist)) = (update, mismatch, existing) {
            if request.pause {
                hist.set_paused(true);
            } else if request.cont {
                hist.set_paused(false);
            } else {
                hist.clear();
            }
            return Ok(());
        }
        if mismatch {
            let name = request.spec.name().unwrap_or("");
            let position = request.command.find(name).unwrap_or(0);
            return Err(TriggerError::logged(Errno::Inval, entry(HistErrorKind::NamedMismatch, position)));
        }
        if self.find_hist(&request.spec).is_some() {
            return Err(TriggerError::logged(Errno::Exist, entry(HistErrorKind::TriggerEexist, 0)));
        }
        if request.cont || request.clear {
            return Err(TriggerError::logged(Errno::NoEnt, entry(HistErrorKind::TriggerEnoentClear, 0)));
        }
        let (table, shared) = request.spec.make_table(request.bits, named).map_err(|e| match e {
            AttachError::NamedMismatch => TriggerError::logged(Errno::Inval, entry(HistErrorKind::NamedMismatch, 0)),
            AttachError::Errno(errno) => TriggerError::silent(errno),
        })?;
        let trigger = HistTrigger::new(request.spec, table, shared, request.pause);
        self.list.push(Arc::new(Trigger { body: Body::Hist(trigger) }));
        Ok(())
    }

    /// What reading the `trigger` file shows (Linux's `trigger_show()`).
    pub fn read(&self) -> String {
        if self.list.is_empty() {
            return String::from(AVAILABLE);
        }
        self.list.iter().map(|t| t.line()).collect()
    }

    /// What reading the `hist` file shows: each hist trigger's histogram,
    /// separated by blank lines (Linux's `hist_show()`); empty without hist
    /// triggers. `symbols` names addresses for `.sym` keys.
    pub fn read_hist(&self, symbols: &(impl Symbolizer + ?Sized)) -> String {
        let mut out = String::new();
        for (n, hist) in self.list.iter().filter_map(|t| t.as_hist()).enumerate() {
            if n > 0 {
                out.push_str("\n\n");
            }
            hist.write_hist(&mut out, symbols);
        }
        out
    }

    /// The trap-path step for one event: runs every trigger whose filter
    /// takes `record` (the whole record, common header included) and
    /// returns the actions asked for; hist triggers count the record.
    /// `ctx.tracing_on` decides whether `traceon`/`traceoff` act (and
    /// count down). No allocation, lock or panic, whatever the record.
    pub fn fire(&self, record: &[u8], ctx: &Context<'_>) -> Actions {
        let mut actions = Actions::default();
        for trigger in &self.list {
            match &trigger.body {
                Body::Simple { kind, count, filter } => {
                    if filter.as_ref().is_some_and(|f| !f.matches(record, ctx)) {
                        continue;
                    }
                    match kind {
                        TriggerKind::TraceOn if !ctx.tracing_on && take(count) => actions.trace_on = true,
                        TriggerKind::TraceOff if ctx.tracing_on && take(count) => actions.trace_off = true,
                        TriggerKind::Stacktrace if take(count) => actions.stacktrace = true,
                        _ => {}
                    }
                }
                Body::Hist(hist) => hist.fire(record, ctx),
            }
        }
        actions
    }
}
