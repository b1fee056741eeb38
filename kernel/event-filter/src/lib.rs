//! Linux's trace event filters, triggers and hist triggers for i386: what
//! the tracing console's `events/GROUP/EVENT/{filter,trigger,hist}` files
//! accept, refuse and show, and the steps the probe handlers run per
//! event.
//!
//! Why a crate of its own: the console must take the same expressions and
//! commands as Linux, refuse the same ones with the same errno, message
//! and caret, and print the same bytes, so that Linux's documentation,
//! habits and scripts carry over; that is a lot of exact string handling,
//! best tested on the host. And the per-event steps run in probe handlers
//! on any CPU, where they must neither allocate, lock nor panic: that is
//! easiest to check where threads and fuzzers are at hand.
//!
//! # Records
//!
//! A record is a `&[u8]` in Linux's layout from offset 0: the common
//! header (`common_type` u16 at 0, `common_flags` u8 at 2,
//! `common_preempt_count` u8 at 3, `common_pid` i32 at 4), then the
//! event's fields as probe-events lays them out, strings as `__data_loc
//! char[]` (a `u32`: offset in the record in the low 16 bits, length with
//! the NUL in the high 16). The fields come from probe-events
//! ([`EventFields::from_definition`]); a [`Context`] brings what the record
//! lacks (the task's name, the CPU, the time, whether tracing is on).
//!
//! # Files and steps
//!
//! | file / step | type | calls |
//! | --- | --- | --- |
//! | `filter` | [`FilterFile`] | [`FilterFile::write`], [`FilterFile::read`] |
//! | `trigger` | [`Triggers`] | [`Triggers::write`], [`Triggers::read`] |
//! | `hist` | [`Triggers`] | [`Triggers::read_hist`], [`HistTrigger::write_log2_bars`] |
//! | event hits | [`Filter`], [`Triggers`] | [`Filter::matches`], [`Triggers::fire`] |
//!
//! Errors carry Linux's errno and `error_log` entries ([`LogEntry`]).
//!
//! # Modules
//!
//! - [`filter`]: filter expressions, compiled to Linux's branch program.
//! - [`trigger`]: `traceon`, `traceoff`, `stacktrace`, removal, firing.
//! - [`hist`]: hist triggers and the `hist` file.
//! - [`map`]: the preallocated lock-free histogram table.
//! - [`field`]: the fields an expression may name.
//! - [`glob`]: Linux's `glob_match()`.
//! - [`error`]: errnos and `error_log` entries.
//!
//! Each module's documentation ends with where it differs from Linux.
#![no_std]
#![deny(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;

pub mod error;
pub mod field;
pub mod filter;
pub mod glob;
pub mod hist;
pub mod map;
mod num;
pub mod trigger;

pub use error::{Errno, LogEntry};
pub use field::{EventField, EventFields, FieldKind};
pub use filter::{Filter, FilterError, FilterErrorKind, FilterFile, FilterUpdate};
pub use hist::{HistErrorKind, HistTrigger, Modifier, NamedHists};
pub use map::Table;
pub use probe_events::eval::{SymbolInfo, Symbolizer};
pub use trigger::{Actions, Trigger, TriggerError, TriggerKind, Triggers};

/// What an event's record does not hold: the context it fired in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Context<'a> {
    /// The current task's name (`comm`), up to 16 bytes, NUL-terminated
    /// or not: filters' `comm`, and `.execname` keys' saved name.
    pub comm: &'a [u8],
    /// The CPU the event fires on: filters' `cpu`, `common_cpu` keys.
    pub cpu: u32,
    /// The event's time in ns: `common_timestamp` keys and values.
    pub timestamp_ns: u64,
    /// Whether tracing is on now (`tracing_on`): `traceon` acts only when
    /// it is off, `traceoff` only when it is on.
    pub tracing_on: bool,
}
