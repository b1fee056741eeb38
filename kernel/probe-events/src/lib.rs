//! Dynamic probe events as Linux defines them, for i386: the commands
//! written to tracefs's `kprobe_events` and `dynamic_events`, what reading
//! those files and an event's `format` file shows, and the evaluation of
//! fetch arguments when a probe hits.
//!
//! Why a crate of its own: the kernel's tracefs console must accept the
//! same commands as Linux, refuse the same ones with the same message and
//! caret, and print definitions and trace records the same way, so that
//! Linux's documentation, habits and scripts carry over. That is a lot of
//! exact string handling, best tested on the host. Parsing allocates and
//! runs in task context; evaluation ([`eval`]) runs in probe handlers and
//! neither allocates, locks nor panics. Nothing here depends on the
//! kprobes engine: registers, memory and symbols come through traits.
//!
//! # Commands
//!
//! One command per line; a `#` starts a comment that runs to the end of
//! the line, and a blank line does nothing ([`write_lines`] splits a
//! write). A command is words separated by whitespace:
//!
//! ```text
//! p[:[GRP/][EVENT]] [MOD:]SYM[+OFFS]|MEMADDR [FETCHARG...]      kprobe
//! r[MAXACTIVE][:[GRP/][EVENT]] [MOD:]SYM[+0] [FETCHARG...]      kretprobe
//! p[:[GRP/][EVENT]] [MOD:]SYM[+0]%return [FETCHARG...]          kretprobe
//! f[:[GRP/][EVENT]] SYM[%return] [FETCHARG...]                  fprobe (dynamic_events)
//! -:[GRP/]EVENT [SYM [NAME=FETCHARG...]]                        remove
//! ```
//!
//! - The first word is the probe type, optionally followed by `:` and the
//!   event's name. The group defaults to `kprobes` (`fprobes` for `f`); a
//!   `.` may separate group and event instead of `/`. A group is a C
//!   identifier that may also contain `-`, an event a C identifier, each
//!   under 64 characters. `GRP/` alone keeps the generated event name.
//! - Without a name the event is called `p_SYM_OFFS` or `r_SYM_OFFS` (for
//!   an address `p_0xADDR`), or `SYM__entry`/`SYM__exit` for fprobes; in
//!   the generated name `:`, `.` and `*` become `_`.
//! - `MAXACTIVE` (1 to 4096) bounds a kretprobe's simultaneous instances.
//! - The second word is where the probe goes: a symbol, a symbol plus a
//!   byte offset, or an address. A return probe must be at a function's
//!   entry; `%return` turns a `p` (or an `f`) into one, and so does a
//!   `$retval` argument for an `f`.
//! - The removal's optional words must match the probe's location and
//!   then its arguments; an empty event name removes the whole group. In
//!   `dynamic_events` a removal may also be written `!TYPE:[GRP/]EVENT`.
//!
//! # Fetch arguments
//!
//! Each further word records one value at every hit, at most 128 of them:
//! `[NAME=]FETCHARG[:TYPE]`. An unnamed argument is called `argN` after
//! its position (1-based). The body after `NAME=` is at most 63 bytes.
//!
//! ```text
//! %REG            a register: ax bx cx dx si di bp sp ip flags cs ss ds es fs
//!                 gs orig_ax (and, as this project's extension, eax ebx ...)
//! @ADDR           the word at an address
//! @SYM[+|-OFFS]   the word at a symbol (resolved when the probe registers)
//! $stackN         the Nth word on the stack; $stack: the stack pointer
//! $argN           the Nth function argument (N >= 1), at a function's entry,
//!                 or in a return probe (saved at the entry)
//! $retval         the return value (return probes)
//! $comm           the current task's name (a string)
//! $duration       time since the function's entry, in ns (return probes;
//!                 this project's extension, default type u64)
//! NAME            the function's parameter NAME (at a function's entry, or
//!                 in a return probe, saved at the entry), typed from it;
//!                 `$arg*` is every parameter, and a bare `$argN[:TYPE]`
//!                 the Nth one by name, when the resolver knows them
//!                 (Linux's BTF arguments; see [`params`])
//! +|-[u]OFFS(FETCHARG)   the word at FETCHARG + OFFS; `u` reads user memory;
//!                 nests up to the 16-instruction limit
//! \IMM            an immediate number; \"TEXT" an immediate string
//! ```
//!
//! Types: `u8 u16 u32 u64 s8 s16 s32 s64 x8 x16 x32 x64 char string
//! ustring symstr symbol`, a bitfield `b<WIDTH>@<OFFSET>/<CONTAINER BITS>`,
//! and arrays `TYPE[N]` (N at most 64) of memory. The default is `x32`;
//! `$comm` and immediate strings are always `string`. A `string` reads the
//! NUL-terminated text at the address the argument computes, so the last
//! step must be a memory read (`string[N]` is an array of pointers);
//! `symstr` stores a value's `symbol+offset/size`.
//!
//! # Errors
//!
//! A refused command yields a [`CommandError`]: Linux's errno and its
//! `error_log` entries ([`ProbeError::error_log_entry`]), each with Linux's
//! message and caret position.
//!
//! # Modules
//!
//! - [`command`]: commands, [`ProbeDefinition`], [`Removal`], appending a
//!   probe to an existing event.
//! - [`fetch`]: fetch arguments and their instruction lists.
//! - [`types`], [`register`]: types and registers.
//! - [`show`]: the `kprobe_events` line (`Display`), the record layout,
//!   the `format` file.
//! - [`eval`]: compiling arguments and storing them at a hit.
//! - [`output`]: a record as the `trace` file shows it.
//! - [`error`]: errors and `error_log` entries.
//!
//! # Where this differs from Linux
//!
//! - `%pd`/`%pD` types (dentry and file names), uprobes, eprobes and
//!   tracepoint probes are not supported; the errors they give are those
//!   of a Linux built without them. So are parameters by name while the
//!   resolver knows none ([`ParamLookup::Unsupported`]).
//! - Parameters by name come from the resolver (the kernel's DWARF), not
//!   BTF: a parameter the debug information cannot place at the entry is
//!   refused by name ("This variable is not found at this probe point")
//!   and left out of `$arg*`; structure fields (`->`, `.`) are refused
//!   (no layouts), `$retval` keeps its `x32` type (no return types), and
//!   parameters that are not integers or pointers default to `x8`, `x16`
//!   or `x64` by size where Linux would cut them to `x32`.
//! - Addresses print unhashed (as Linux with `no_hash_pointers`).
//! - Input is UTF-8 text: only ASCII letters count in names and only ASCII
//!   whitespace separates words (Linux's ctype also takes Latin-1).
//! - A `::` in a symbol is part of the name (this kernel's symbols are
//!   Rust paths), not a `MOD:` separator.
//! - A probe is at a function's entry when its offset is 0; Linux asks
//!   its kprobes core, which also takes a `SYM+OFFS` that lands exactly on
//!   another function's start.
//! - An fprobe exit may save any number of `$argN` at the entry; Linux
//!   refuses more than its entry-data buffer holds.
//! - An `@SYM` that does not resolve refuses the probe when it is
//!   compiled; on an address probe Linux accepts it and never arms it.
//! - A failed string read stores an empty `__data_loc` (shown
//!   `(fault)`), where Linux may leave the reserved length; a failed
//!   number read stores 0; a `symstr` records its length like a `string`.
#![no_std]
#![deny(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;

pub mod command;
pub mod error;
pub mod eval;
pub mod fetch;
mod num;
pub mod output;
pub mod params;
pub mod register;
pub mod show;
pub mod types;

pub use command::{
    Command, Interface, ProbeDefinition, ProbeKind, ProbeLocation, Removal, SymbolResolver, WriteLines, parse_command,
    parse_command_bytes, write_lines,
};
pub use error::{CommandError, Errno, ErrorKind, ProbeError, error_log_entry};
pub use eval::{CallingConvention, CommonFields, Fault, FetchProgram, Hit, Memory, Regs, SymbolInfo, Symbolizer};
pub use fetch::{FetchArg, FetchOp};
pub use params::{EntrySource, Param, ParamClass, ParamLookup, Place};
pub use register::Register;
pub use types::{Bitfield, FetchType};
