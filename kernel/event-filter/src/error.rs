//! Errnos and `error_log` entries, as Linux's tracing reports them.
//!
//! A refused write to a `filter` or `trigger` file has up to two results
//! in Linux: the errno that `write(2)` returns, and entries that
//! `tracing_log_err()` adds to tracefs's `error_log`, each naming where the
//! error was found (`event filter parse error`, `hist:kprobes:myprobe`),
//! the message, the command and a caret under the byte at fault.
use alloc::string::String;
use core::fmt;

/// The errno a refused write returns, as Linux returns it (negated).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Errno {
    /// `EPERM` (1): what Linux's filter parser returns for a stray `)` or
    /// an empty predicate (its internal `-1`).
    Perm,
    /// `ENOENT` (2): nothing to remove, a hist `:cont`/`:clear` of no
    /// trigger, or (from the filter parser) an unclosed `(`.
    NoEnt,
    /// `ESRCH` (3): the filter parser's unclosed quote.
    Srch,
    /// `ENOMEM` (12): a histogram table that could not be allocated.
    NoMem,
    /// `EEXIST` (17): the trigger exists already.
    Exist,
    /// `EINVAL` (22): the usual answer to a malformed command.
    Inval,
    /// `ERANGE` (34): a number too big for its field.
    Range,
}

impl Errno {
    /// The positive errno value (Linux returns its negation).
    pub const fn code(self) -> i32 {
        match self {
            Errno::Perm => 1,
            Errno::NoEnt => 2,
            Errno::Srch => 3,
            Errno::NoMem => 12,
            Errno::Exist => 17,
            Errno::Inval => 22,
            Errno::Range => 34,
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Errno::Perm => "EPERM",
            Errno::NoEnt => "ENOENT",
            Errno::Srch => "ESRCH",
            Errno::NoMem => "ENOMEM",
            Errno::Exist => "EEXIST",
            Errno::Inval => "EINVAL",
            Errno::Range => "ERANGE",
        };
        f.write_str(name)
    }
}

/// One `error_log` entry (Linux's `tracing_log_err()`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    location: String,
    message: &'static str,
    command: String,
    position: usize,
}

impl LogEntry {
    /// An entry logged at `location` (`event filter parse error`,
    /// `hist:GROUP:EVENT`) with Linux's `message`, for `command`, with the
    /// caret under byte `position` of the command.
    pub fn new(
        location: impl Into<String>,
        message: &'static str,
        command: impl Into<String>,
        position: usize,
    ) -> Self {
        LogEntry { location: location.into(), message, command: command.into(), position }
    }

    /// Where the error was logged from (Linux's `loc`).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Linux's message, byte for byte.
    pub fn message(&self) -> &'static str {
        self.message
    }

    /// The command the entry shows.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// The caret's column under the command.
    pub fn position(&self) -> usize {
        self.position
    }

    /// The entry as `error_log` prints it, `timestamp_ns` being the time
    /// it was logged:
    ///
    /// ```text
    /// [  123.456789] event filter parse error: error: Field not found
    ///   Command: foo == 1
    ///               ^
    /// ```
    ///
    /// Each line ends in a newline.
    pub fn error_log_entry(&self, timestamp_ns: u64) -> String {
        // The same format as every other tracing error (probe-events').
        probe_events::error_log_entry(timestamp_ns, &self.location, &self.message, &self.command, self.position)
    }
}

impl fmt::Display for LogEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message)
    }
}
