//! Errors, as Linux reports them in the tracefs `error_log`.
//!
//! A refused command has two results in Linux: the errno that `write(2)`
//! returns, and (for most refusals) an entry in `error_log` that names the
//! problem and points a caret at the byte it found it in. [`CommandError`]
//! carries both; each [`ProbeError`] is one `error_log` entry.
//!
//! The caret's position is computed the way Linux computes it: the command
//! is split into words at whitespace, the error names a word (its *index*)
//! and a byte offset inside it, and the position is the offset plus the
//! length of the words before it, each followed by one space. The command
//! shown under the message is the words joined by single spaces, so runs
//! of whitespace in the written line do not move the caret.
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

macro_rules! error_kinds {
    ($($(#[$doc:meta])* $name:ident => $text:literal,)*) => {
        /// Every error Linux's probe events can log, with its exact text
        /// (`Display`). The variants follow Linux's list and names; those
        /// of uprobes, eprobes, tracepoint probes and BTF arguments exist
        /// so a caller can report them, though this crate's parser never
        /// raises them.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ErrorKind {
            $($(#[$doc])* $name,)*
        }

        impl ErrorKind {
            /// Every kind, in Linux's order.
            pub const ALL: &'static [ErrorKind] = &[$(ErrorKind::$name,)*];

            /// The message Linux logs for this error, byte for byte.
            pub const fn text(self) -> &'static str {
                match self {
                    $(ErrorKind::$name => $text,)*
                }
            }
        }
    };
}

error_kinds! {
    /// A uprobe's file does not exist.
    FileNotFound => "Failed to find the given file",
    /// A uprobe's file is not a regular file.
    NoRegularFile => "Not a regular file",
    /// A uprobe's reference counter offset is malformed.
    BadRefcnt => "Invalid reference counter offset",
    /// A uprobe's reference counter lacks its closing parenthesis.
    RefcntOpenBrace => "Reference counter brace is not closed",
    /// Something follows a uprobe's reference counter.
    BadRefcntSuffix => "Reference counter has wrong suffix",
    /// A uprobe's offset is malformed.
    BadUprobeOffs => "Invalid uprobe offset",
    /// A maxactive number on something other than a return probe.
    BadMaxactType => "Maxactive is only for function exit",
    /// A malformed or zero maxactive number.
    BadMaxact => "Invalid maxactive number",
    /// A maxactive number above 4096.
    MaxactTooBig => "Maxactive is too big",
    /// The probed symbol does not exist, or `SYM+offs` is malformed.
    BadProbeAddr => "Invalid probed address or symbol",
    /// The probed symbol names more than one address.
    NonUniqSymbol => "The symbol is not unique",
    /// A return probe not at a function's entry.
    BadRetprobe => "Retprobe address must be an function entry",
    /// A tracepoint probe names no tracepoint.
    NoTracepoint => "Tracepoint is not found",
    /// A tracepoint name with a character outside `[A-Za-z0-9_]`.
    BadTpName => "Invalid character in tracepoint name",
    /// A `%` suffix other than `%return` on the probed symbol.
    BadAddrSuffix => "Invalid probed address suffix",
    /// `GRP/` with an empty group.
    NoGroupName => "Group name is not specified",
    /// A group name of 64 characters or more.
    GroupTooLong => "Group name is too long",
    /// A group name that is not an identifier (dashes allowed).
    BadGroupName => "Group name must follow the same rules as C identifiers",
    /// `p:` with an empty event name.
    NoEventName => "Event name is not specified",
    /// An event name of 64 characters or more.
    EventTooLong => "Event name is too long",
    /// An event name that is not a C identifier.
    BadEventName => "Event name must follow the same rules as C identifiers",
    /// The group/event name belongs to another kind of event.
    EventExist => "Given group/event name is already used by another event",
    /// `$retval` on a probe that is not a return probe.
    RetvalOnProbe => "$retval is not available on probe",
    /// `$retval` of a function that returns nothing (BTF).
    NoRetval => "This function returns 'void' type",
    /// `$stackN` beyond the kernel stack's size.
    BadStackNum => "Invalid stack number",
    /// `$argN` with N zero or beyond the kernel stack's size.
    BadArgNum => "Invalid argument number",
    /// An unknown `$` variable (Linux's message keeps its misspelling).
    BadVar => "Invalid $-valiable specified",
    /// An unknown register name after `%`.
    BadRegName => "Invalid register name",
    /// A malformed `@ADDR`.
    BadMemAddr => "Invalid memory address",
    /// A malformed `\IMM`.
    BadImm => "Invalid immediate value",
    /// An immediate string without its closing quote.
    ImmstrNoClose => "String is not closed with '\"'",
    /// `@+OFFS` (a file offset) on a kernel probe.
    FileOnKprobe => "File offset is not available with kprobe",
    /// A malformed file offset.
    BadFileOffs => "Invalid file offset value",
    /// `@SYM` on a uprobe.
    SymOnUprobe => "Symbol is not available with uprobe",
    /// More dereferences than the 16-instruction fetch program holds.
    TooManyOps => "Dereference is too much nested",
    /// `+OFFS` without `(`.
    DerefNeedBrace => "Dereference needs a brace",
    /// A malformed dereference offset.
    BadDerefOffs => "Invalid dereference offset",
    /// A dereference without `)`.
    DerefOpenBrace => "Dereference brace is not closed",
    /// A dereference of `$comm` or an immediate string.
    CommCantDeref => "$comm can not be dereferenced",
    /// A fetch argument of no known form.
    BadFetchArg => "Invalid fetch argument",
    /// `TYPE[N` without `]`.
    ArrayNoClose => "Array is not closed",
    /// Characters after `TYPE[N]`.
    BadArraySuffix => "Array has wrong suffix",
    /// A malformed or zero array size.
    BadArrayNum => "Invalid array size",
    /// An array size above 64.
    ArrayTooBig => "Array number is too big",
    /// An unknown type name.
    BadType => "Unknown type is specified",
    /// A string type (or an array) on something that is not memory.
    BadString => "String accepts only memory argument",
    /// `symstr` on an immediate, `$comm`, `$stack` or user memory.
    BadSymstring => "Symbol String doesn't accept data/userdata",
    /// A malformed or oversized bitfield type.
    BadBitfield => "Invalid bitfield",
    /// An argument name longer than 32 characters.
    ArgNameTooLong => "Argument name is too long",
    /// `=FETCHARG` with an empty name.
    NoArgName => "Argument name is not specified",
    /// An argument name that is not a C identifier.
    BadArgName => "Argument name must follow the same rules as C identifiers",
    /// An argument name used twice, or reserved.
    UsedArgName => "This argument name is already used",
    /// A fetch argument longer than 63 characters.
    ArgTooLong => "Argument expression is too long",
    /// `NAME=` with nothing after it.
    NoArgBody => "No argument expression",
    /// `SYM+offs` is not on an instruction boundary (registration).
    BadInsnBndry => "Probe point is not an instruction boundary",
    /// Registration failed for another reason.
    FailRegProbe => "Failed to register probe event",
    /// Appending to an event of the other probe type (entry vs return).
    DiffProbeType => "Probe type is different from existing probe",
    /// Appending with arguments that differ from the event's.
    DiffArgType => "Argument type or name is different from existing probe",
    /// Appending a probe the event already has.
    SameProbe => "There is already the exact same probe event",
    /// An eprobe without its attached group and event.
    NoEventInfo => "This requires both group and event name to attach",
    /// An eprobe attached to no event.
    BadAttachEvent => "Attached event does not exist",
    /// An eprobe argument that is no field of the attached event.
    BadAttachArg => "Attached event does not have this field",
    /// An eprobe `if` without a filter.
    NoEpFilter => "No filter rule after 'if'",
    /// A BTF argument (a bare name, `$arg*`) without BTF.
    NosupBtfarg => "BTF is not available or not supported",
    /// A BTF variable that the probed function does not have.
    NoBtfarg => "This variable is not found at this probe point",
    /// No BTF for the probed function.
    NoBtfEntry => "No BTF entry for this probe point",
    /// `$arg*` with a name, type or dereference.
    BadVarArgs => "$arg* must be an independent parameter without name etc.",
    /// `$arg*`/`$argN` away from a function's entry or exit.
    NofentryArgs => "$arg* can be used only on function entry or exit",
    /// `$arg*` twice.
    DoubleArgs => "$arg* can be used only once in the parameters",
    /// `$arg*` expands past the argument buffer.
    Args2long => "$arg* failed because the argument list is too long",
    /// `$argN` beyond the function's parameters (BTF).
    Argidx2big => "$argN index is too big",
    /// `->` on something that is not a pointer to a structure (BTF).
    NoPtrStrct => "This is not a pointer to union/structure.",
    /// A `.field` of a structure passed by value (BTF).
    NosupDatArg => "Non pointer structure/union argument is not supported.",
    /// A lone `-` in a BTF field path.
    BadHyphen => "Failed to parse single hyphen. Forgot '>'?",
    /// An unknown BTF field.
    NoBtfField => "This field is not found.",
    /// Unreadable BTF type information.
    BadBtfTid => "Failed to get BTF type info.",
    /// A string type on a BTF value that is no character array or pointer.
    BadType4str => "This type does not fit for string.",
    /// `$comm` or an immediate string with a type other than `string`.
    NeedStringType => "$comm and immediate-string only accepts string type",
    /// More than 128 arguments.
    TooManyArgs => "Too many arguments are specified",
    /// Too many `$argN` saved at entry for an exit probe.
    TooManyEargs => "Too many entry arguments specified",
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

/// The errno a refused command returns from `write(2)`, as Linux returns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Errno {
    /// `ENOENT` (2): nothing to remove, or nothing at the probed address.
    NoEnt,
    /// `E2BIG` (7): an argument or argument list too long.
    TooBig,
    /// `ENOMEM` (12).
    NoMem,
    /// `EEXIST` (17): the event exists in a form the command conflicts with.
    Exist,
    /// `EINVAL` (22): the usual answer to a malformed command.
    Inval,
    /// `EILSEQ` (84): not an instruction boundary.
    IlSeq,
    /// `EOPNOTSUPP` (95): a BTF feature without BTF.
    OpNotSupp,
}

impl Errno {
    /// The positive errno value (Linux returns its negation).
    pub const fn code(self) -> i32 {
        match self {
            Errno::NoEnt => 2,
            Errno::TooBig => 7,
            Errno::NoMem => 12,
            Errno::Exist => 17,
            Errno::Inval => 22,
            Errno::IlSeq => 84,
            Errno::OpNotSupp => 95,
        }
    }
}

/// One `error_log` entry: what went wrong and where in the command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeError {
    kind: ErrorKind,
    subsystem: &'static str,
    command: String,
    index: usize,
    offset: usize,
    position: usize,
}

impl ProbeError {
    /// An error in word `index` of `words` at byte `offset` of that word,
    /// logged by `subsystem` (`trace_kprobe` or `trace_fprobe`). An index
    /// past the last word puts the caret one column after the end of the
    /// command plus a space, as Linux does.
    pub fn new(kind: ErrorKind, subsystem: &'static str, words: &[&str], index: usize, offset: usize) -> Self {
        let mut command = String::new();
        let mut start = 0;
        let mut position = None;
        for (i, word) in words.iter().enumerate() {
            if i == index {
                position = Some(start + offset);
            }
            if i > 0 {
                command.push(' ');
            }
            command.push_str(word);
            start += word.len() + 1;
        }
        // Past the last word: Linux's length includes the terminating NUL.
        let position = position.unwrap_or(start);
        ProbeError { kind, subsystem, command, index, offset, position }
    }

    /// The kind of error (its `Display` is Linux's message).
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The logging subsystem, `trace_kprobe` or `trace_fprobe`.
    pub fn subsystem(&self) -> &'static str {
        self.subsystem
    }

    /// The command as Linux shows it: its words joined by single spaces.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// The word the error is in (0 is the probe type and name).
    pub fn index(&self) -> usize {
        self.index
    }

    /// The byte offset inside that word.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The caret's column under [`command`](Self::command).
    pub fn position(&self) -> usize {
        self.position
    }

    /// The entry as `error_log` prints it, `timestamp_ns` being the time
    /// the error was logged (Linux's trace clock):
    ///
    /// ```text
    /// [  123.456789] trace_kprobe: error: Invalid register name
    ///   Command: p vfs_read %none_reg
    ///                       ^
    /// ```
    ///
    /// Each line ends in a newline.
    pub fn error_log_entry(&self, timestamp_ns: u64) -> String {
        error_log_entry(timestamp_ns, self.subsystem, &self.kind, &self.command, self.position)
    }
}

/// What `error_log` prints before a command; the caret line is indented
/// by its length.
const COMMAND_PREFIX: &str = "  Command: ";

/// One entry of tracefs's `error_log` (Linux's `tracing_log_err` format),
/// for every kind of error the tracing files log (probe definitions here,
/// filters and triggers in the `event-filter` crate): the time, where the
/// error came from, its message, the command, and a caret under byte
/// `position` of the command. Each line ends in a newline.
pub fn error_log_entry(
    timestamp_ns: u64,
    location: &str,
    message: &dyn fmt::Display,
    command: &str,
    position: usize,
) -> String {
    use core::fmt::Write;
    let mut out = String::new();
    let seconds = timestamp_ns / 1_000_000_000;
    let micros = (timestamp_ns % 1_000_000_000) / 1000;
    // Writing to a String cannot fail.
    let _ = write!(out, "[{seconds:5}.{micros:06}] {location}: error: {message}\n{COMMAND_PREFIX}{command}\n");
    for _ in 0..COMMAND_PREFIX.len() + position {
        out.push(' ');
    }
    out.push_str("^\n");
    out
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.text())
    }
}

/// A refused command: the errno Linux returns and the `error_log` entries
/// it writes, oldest first. Most refusals log one entry; a few log none
/// (an unknown command, a malformed removal: a bare `EINVAL`) and one logs
/// two (`$arg*` without BTF: the missing BTF, then the bad variable).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandError {
    errno: Errno,
    entries: Vec<ProbeError>,
}

impl CommandError {
    /// A refusal that logs nothing.
    pub fn silent(errno: Errno) -> Self {
        CommandError { errno, entries: Vec::new() }
    }

    /// A refusal that logs `entry`.
    pub fn logged(errno: Errno, entry: ProbeError) -> Self {
        CommandError { errno, entries: alloc::vec![entry] }
    }

    /// A refusal that logs `entries`, oldest first.
    pub fn with_entries(errno: Errno, entries: Vec<ProbeError>) -> Self {
        CommandError { errno, entries }
    }

    /// The errno `write(2)` returns.
    pub fn errno(&self) -> Errno {
        self.errno
    }

    /// The `error_log` entries, oldest first (possibly none).
    pub fn entries(&self) -> &[ProbeError] {
        &self.entries
    }

    /// The newest entry: the one the user sees last.
    pub fn last(&self) -> Option<&ProbeError> {
        self.entries.last()
    }

    /// The kind of the newest entry.
    pub fn kind(&self) -> Option<ErrorKind> {
        self.last().map(ProbeError::kind)
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.last() {
            Some(entry) => fmt::Display::fmt(entry, f),
            None => write!(f, "command refused (errno {})", self.errno.code()),
        }
    }
}
