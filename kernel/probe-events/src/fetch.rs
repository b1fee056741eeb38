//! Fetch arguments: `[NAME=]FETCHARG[:TYPE]`, parsed into Linux's
//! instruction list.
//!
//! Linux compiles each argument into at most 16 fetch instructions (the
//! last slot reserved for the end mark): one that loads a value (a
//! register, a stack slot, an immediate...), any dereferences, one that
//! stores the value in the record, and optionally a bitfield mask and an
//! array loop. This parser builds the same list, so the errors that depend
//! on its length ("Dereference is too much nested") appear for exactly the
//! same arguments, and evaluation follows the same steps.
use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::error::{Errno, ErrorKind};
use crate::num::{kstrtol, kstrtouint, kstrtoul};
use crate::params::{EntrySource, Param, ParamClass, ParamLookup, Place};
use crate::register::Register;
use crate::types::{Bitfield, FetchType};

/// Longest fetch argument body (after `NAME=`), in bytes.
pub const MAX_ARGSTR_LEN: usize = 63;
/// Longest argument name.
pub const MAX_ARG_NAME_LEN: usize = 32;
/// Largest array size (`TYPE[N]`).
pub const MAX_ARRAY_LEN: u32 = 64;
/// Largest N in `$stackN` and `$argN`: Linux's i386 kernel stack (8 KiB)
/// in `unsigned long`s.
pub const PARAM_MAX_STACK: u32 = 2048;
/// Linux's fetch program length; the last slot holds the end mark, so an
/// argument has at most 15 instructions.
pub const FETCH_INSN_MAX: usize = 16;

/// Field names no argument may take: the common fields and the probe's own.
pub const RESERVED_FIELD_NAMES: [&str; 8] = [
    "common_type",
    "common_flags",
    "common_preempt_count",
    "common_pid",
    "common_tgid",
    "__probe_ip",
    "__probe_ret_ip",
    "__probe_func",
];

/// One step of an argument's fetch program, Linux's `fetch_insn`.
///
/// The first instruction loads a value; dereferences follow; then exactly
/// one store; then an optional bitfield mask and an optional array loop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchOp {
    /// Load a register (`%REG`).
    Reg(Register),
    /// Load the Nth word of the stack (`$stackN`).
    Stack(u32),
    /// Load the stack pointer (`$stack`).
    StackPointer,
    /// Load the return value (`$retval`, return probes).
    Retval,
    /// Load an immediate (`\IMM`, or the address of `@ADDR` / `@SYM`).
    Imm(u32),
    /// Load the current task's name (`$comm`).
    Comm,
    /// Load the Nth function argument, 0-based (`$argN` at a function's
    /// entry); the calling convention is the evaluator's.
    Arg(u32),
    /// Load function argument `arg` (0-based) saved at the function's entry
    /// into entry slot `slot` (`$argN` in a return probe).
    EntryArg {
        /// The argument, 0-based.
        arg: u32,
        /// Where the entry handler saved it.
        slot: u32,
    },
    /// Load a function parameter named by the debug information (a bare
    /// `NAME`, `$arg*`, or `$argN` of a function whose parameters are
    /// known) at the function's entry: `size` bytes at `place`,
    /// zero-extended (Linux's `FETCH_OP_ARG` of a BTF argument).
    Param {
        /// Where it is at the entry.
        place: Place,
        /// Bytes loaded (at most 8).
        size: u8,
    },
    /// Load a parameter that a return probe's entry handler saved into
    /// entry slot `slot` (Linux's `FETCH_OP_EDATA`).
    EntryParam {
        /// Where it was at the entry.
        place: Place,
        /// Bytes saved (at most 8).
        size: u8,
        /// Where the entry handler saved it.
        slot: u32,
    },
    /// Load an immediate string (`\"...`).
    Data(Vec<u8>),
    /// A symbol still to resolve (`@SYM[+|-offs]`); the `Imm` after it
    /// receives the address. Linux resolves it at registration.
    Symbol(String),
    /// Load the time since the matching function entry in nanoseconds
    /// (`$duration`, return probes): this project's extension.
    Duration,
    /// Replace the value by the word at value + offset (`+OFFS(...)`).
    Deref(i32),
    /// The same from user memory (`+uOFFS(...)`).
    UserDeref(i32),
    /// Store the value itself, truncated to `size` bytes.
    StoreRaw {
        /// Bytes stored.
        size: u8,
    },
    /// Store `size` bytes read at value + offset.
    StoreMem {
        /// Added to the value to get the address.
        offset: i32,
        /// Bytes read and stored.
        size: u8,
    },
    /// Store `size` bytes read from user memory at value + offset.
    StoreUserMem {
        /// Added to the value to get the address.
        offset: i32,
        /// Bytes read and stored.
        size: u8,
    },
    /// Store the kernel string at value + offset in the dynamic area.
    StoreString {
        /// Added to the value to get the address.
        offset: i32,
    },
    /// Store the user string at value + offset in the dynamic area.
    StoreUserString {
        /// Added to the value to get the address.
        offset: i32,
    },
    /// Store the `symbol+offset/size` text of value + offset.
    StoreSymString {
        /// Added to the value.
        offset: i32,
    },
    /// Keep a bitfield of the stored value.
    Bitfield(Bitfield),
    /// Repeat the store for `N` consecutive elements.
    Array(u32),
}

impl FetchOp {
    /// Whether this is a store instruction.
    pub fn is_store(&self) -> bool {
        matches!(
            self,
            FetchOp::StoreRaw { .. }
                | FetchOp::StoreMem { .. }
                | FetchOp::StoreUserMem { .. }
                | FetchOp::StoreString { .. }
                | FetchOp::StoreUserString { .. }
                | FetchOp::StoreSymString { .. }
        )
    }
}

/// One parsed fetch argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchArg {
    name: String,
    comm: String,
    ty: FetchType,
    count: u32,
    bitfield: Option<Bitfield>,
    ops: Vec<FetchOp>,
}

impl FetchArg {
    /// The argument's name: the `NAME=` given, else `argN` (N its 1-based
    /// position among the arguments).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The fetch argument as written after `NAME=` (Linux's `comm`), which
    /// is what `kprobe_events` shows.
    pub fn text(&self) -> &str {
        &self.comm
    }

    /// The stored type (a bitfield's container type).
    pub fn fetch_type(&self) -> FetchType {
        self.ty
    }

    /// The array size, 0 for a single value.
    pub fn array_len(&self) -> u32 {
        self.count
    }

    /// The bitfield, for a `b<width>@<offset>/<size>` type.
    pub fn bitfield(&self) -> Option<Bitfield> {
        self.bitfield
    }

    /// The fetch program, Linux's instruction list without its end mark.
    pub fn ops(&self) -> &[FetchOp] {
        &self.ops
    }

    /// Bytes the argument takes in the record's fixed part.
    pub fn size(&self) -> usize {
        self.ty.size() * self.count.max(1) as usize
    }

    /// Whether the argument stores strings in the record's dynamic area.
    pub fn is_dynamic(&self) -> bool {
        self.ty.is_string()
    }

    /// Whether the argument uses `$duration` (this project's extension).
    pub fn uses_duration(&self) -> bool {
        self.ops.iter().any(|op| matches!(op, FetchOp::Duration))
    }

    /// The field's type as the `format` file declares it (`u32`,
    /// `__data_loc char[]`, `u8[4]` for an array).
    pub fn field_type(&self) -> String {
        if self.count > 0 {
            format!("{}[{}]", self.ty.field_type(), self.count)
        } else {
            self.ty.field_type().to_owned()
        }
    }

    pub(crate) fn ops_mut(&mut self) -> &mut Vec<FetchOp> {
        &mut self.ops
    }
}

/// Where a fetch argument is evaluated, which decides the `$` variables it
/// may use (Linux's `TPARG_FL_*`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ArgFlags {
    /// A return probe (`$retval`).
    pub ret: bool,
    /// At a function's entry (`$argN` reads the live argument).
    pub fentry: bool,
    /// An fprobe: no `%REG`.
    pub fprobe: bool,
}

impl ArgFlags {
    /// At a function's entry and nowhere else.
    pub fn is_function_entry(self) -> bool {
        self.fentry && !self.ret
    }

    /// At a function's exit.
    pub fn is_function_return(self) -> bool {
        self.ret && !self.fentry
    }
}

/// A fetch argument's error: what, where in the argument, and the errno.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ArgError {
    pub kind: ErrorKind,
    pub offset: usize,
    pub errno: Errno,
}

fn fail<T>(kind: ErrorKind, offset: usize) -> Result<T, ArgError> {
    Err(ArgError { kind, offset, errno: Errno::Inval })
}

fn fail_errno<T>(kind: ErrorKind, offset: usize, errno: Errno) -> Result<T, ArgError> {
    Err(ArgError { kind, offset, errno })
}

/// Linux's check for event, group (without `-`) and argument names: a C
/// identifier. Only ASCII letters count.
pub fn is_good_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    match bytes.next() {
        Some(c) if c.is_ascii_alphabetic() || c == b'_' => {}
        _ => return false,
    }
    bytes.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// Linux's check for group names: a C identifier that may also contain `-`.
pub fn is_good_system_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    match bytes.next() {
        Some(c) if c.is_ascii_alphabetic() || c == b'_' || c == b'-' => {}
        _ => return false,
    }
    bytes.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
}

/// A parsed argument body: its type, array size, bitfield and program.
struct Body {
    ty: FetchType,
    count: u32,
    bitfield: Option<Bitfield>,
    ops: Vec<FetchOp>,
}

/// The state one argument's parse shares with its probe: where it runs,
/// the entry slots of a return probe's `$argN` and parameters (shared by
/// all arguments, one slot per distinct source), what the resolver knows
/// of the function's parameters, and the caret offset Linux tracks.
pub(crate) struct ArgParser<'a, 'p> {
    pub flags: ArgFlags,
    pub entry_args: &'a mut Vec<EntrySource>,
    params: &'a ParamLookup<'p>,
    /// The parameter the argument's value is, while no dereference has
    /// been applied to it (Linux's `ctx->last_type`): its type is the
    /// argument's default.
    last_param: Option<Param<'p>>,
    offset: usize,
}

impl<'a, 'p> ArgParser<'a, 'p> {
    pub fn new(flags: ArgFlags, entry_args: &'a mut Vec<EntrySource>, params: &'a ParamLookup<'p>) -> Self {
        ArgParser { flags, entry_args, params, last_param: None, offset: 0 }
    }

    /// The entry slot that saves `source`: an existing one, or a new one.
    fn entry_slot(&mut self, source: EntrySource) -> u32 {
        match self.entry_args.iter().position(|&s| s == source) {
            Some(slot) => slot as u32,
            None => {
                self.entry_args.push(source);
                (self.entry_args.len() - 1) as u32
            }
        }
    }

    /// Parses argument `index` (0-based) of a probe whose earlier arguments
    /// are `previous` (Linux's `traceprobe_parse_probe_arg`).
    pub fn parse(&mut self, text: &str, index: usize, previous: &[FetchArg]) -> Result<FetchArg, ArgError> {
        let (name, body, body_offset) = match text.find('=') {
            Some(eq) if eq > MAX_ARG_NAME_LEN => return fail(ErrorKind::ArgNameTooLong, 0),
            Some(0) => return fail(ErrorKind::NoArgName, 0),
            Some(eq) => (text[..eq].to_owned(), &text[eq + 1..], eq + 1),
            // With parameter information, a bare name names the argument
            // too (Linux's `generate_probe_arg_name` with BTF).
            None => match text.split(':').next() {
                Some(word) if is_good_name(word) && *self.params != ParamLookup::Unsupported => {
                    (word.to_owned(), text, 0)
                }
                _ => (format!("arg{}", index + 1), text, 0),
            },
        };
        if !is_good_name(&name) {
            return fail(ErrorKind::BadArgName, 0);
        }
        if RESERVED_FIELD_NAMES.contains(&name.as_str()) || previous.iter().any(|arg| arg.name == name) {
            return fail(ErrorKind::UsedArgName, 0);
        }
        self.offset = body_offset;
        let Body { ty, count, bitfield, ops } = self.parse_body(body)?;
        Ok(FetchArg { name, comm: body.to_owned(), ty, count, bitfield, ops })
    }

    /// Linux's `traceprobe_parse_probe_arg_body`: the length limits, the
    /// type, the fetch program and its store.
    fn parse_body(&mut self, body: &str) -> Result<Body, ArgError> {
        if body.len() > MAX_ARGSTR_LEN {
            return fail_errno(ErrorKind::ArgTooLong, self.offset, Errno::TooBig);
        }
        if body.is_empty() {
            return fail(ErrorKind::NoArgBody, self.offset);
        }

        // The type: after the first ':', with an optional "[N]".
        let colon = body.find(':');
        let arg = &body[..colon.unwrap_or(body.len())];
        let type_start = colon.map_or(0, |c| c + 1);
        let mut count = 0;
        let mut type_name = None;
        if let Some(c) = colon {
            let spec = &body[c + 1..];
            match spec.find('[') {
                Some(open) => {
                    let number_start = type_start + open + 1;
                    let inner = &spec[open + 1..];
                    let Some(close) = inner.find(']') else {
                        return fail(ErrorKind::ArrayNoClose, self.offset + body.len());
                    };
                    if close + 1 != inner.len() {
                        return fail(ErrorKind::BadArraySuffix, self.offset + number_start + close + 1);
                    }
                    count = match kstrtouint(&inner.as_bytes()[..close], 0) {
                        Ok(n) if n > 0 => n,
                        _ => return fail(ErrorKind::BadArrayNum, self.offset + number_start),
                    };
                    if count > MAX_ARRAY_LEN {
                        return fail(ErrorKind::ArrayTooBig, self.offset + number_start);
                    }
                    type_name = Some(&spec[..open]);
                }
                None => type_name = Some(spec),
            }
        }

        let ty = if arg == "$comm" || arg == "$COMM" || arg.starts_with("\\\"") {
            // Only a plain string: these are addresses of data, not values.
            if count > 0 || type_name.is_some_and(|t| t != "string") {
                return fail(ErrorKind::NeedStringType, self.offset + type_start);
            }
            FetchType::String
        } else if arg == "$duration" && type_name.is_none() {
            // The extension's default: nanoseconds need 64 bits.
            FetchType::U64
        } else {
            match FetchType::lookup(type_name) {
                Some(ty) => ty,
                None => return fail(ErrorKind::BadType, self.offset + type_start),
            }
        };

        let mut ops = Vec::new();
        self.last_param = None;
        self.parse_fetch(arg, &mut ops)?;
        // A parameter's own type, unless one is given (Linux: "Update
        // storing type if BTF is available").
        let mut ty = ty;
        if let Some(param) = self.last_param {
            match type_name {
                None => ty = param.default_type(),
                Some(name) if name.contains("string") => self.prepare_string(&param, name, &mut ops)?,
                Some(_) => {}
            }
        }
        let bitfield = self.finalize(&mut ops, ty, count, type_name, type_start)?;
        Ok(Body { ty, count, bitfield, ops })
    }

    /// Linux's `check_prepare_btf_string_fetch`: a `string` of a
    /// parameter that points to characters reads the text it points to
    /// (a dereference for the string store to take); other parameters
    /// are no strings.
    fn prepare_string(&self, param: &Param, type_name: &str, ops: &mut Vec<FetchOp>) -> Result<(), ArgError> {
        if param.class != ParamClass::CharPointer {
            return fail(ErrorKind::BadType4str, self.offset);
        }
        if ops.len() >= FETCH_INSN_MAX - 1 {
            return fail_errno(ErrorKind::TooManyOps, self.offset, Errno::TooBig);
        }
        ops.push(if type_name.starts_with('u') { FetchOp::UserDeref(0) } else { FetchOp::Deref(0) });
        Ok(())
    }

    /// Appends an instruction after the first, unless the program is full
    /// (Linux's `++code == end`).
    fn push_next(&self, ops: &mut Vec<FetchOp>, op: FetchOp, errno: Errno) -> Result<(), ArgError> {
        if ops.len() >= FETCH_INSN_MAX - 1 {
            return fail_errno(ErrorKind::TooManyOps, self.offset, errno);
        }
        ops.push(op);
        Ok(())
    }

    /// Linux's `parse_probe_arg`: the load (and dereference) instructions
    /// of `arg`, which starts at the tracked offset.
    fn parse_fetch(&mut self, arg: &str, ops: &mut Vec<FetchOp>) -> Result<(), ArgError> {
        let bytes = arg.as_bytes();
        match bytes.first() {
            Some(b'$') => self.parse_variable(arg, ops),
            Some(b'%') => {
                if self.flags.fprobe {
                    return fail(ErrorKind::BadVar, self.offset);
                }
                match Register::from_name(&arg[1..]) {
                    Some(register) => {
                        ops.push(FetchOp::Reg(register));
                        Ok(())
                    }
                    None => fail(ErrorKind::BadRegName, self.offset),
                }
            }
            Some(b'@') => {
                match bytes.get(1) {
                    Some(c) if c.is_ascii_digit() => match kstrtoul(&bytes[1..], 0) {
                        Ok(address) => ops.push(FetchOp::Imm(address)),
                        Err(_) => return fail(ErrorKind::BadMemAddr, self.offset),
                    },
                    // A file offset: uprobes only.
                    Some(b'+') => return fail(ErrorKind::FileOnKprobe, self.offset),
                    _ => {
                        ops.push(FetchOp::Symbol(arg[1..].to_owned()));
                        self.push_next(ops, FetchOp::Imm(0), Errno::Inval)?;
                    }
                }
                self.push_next(ops, FetchOp::Deref(0), Errno::Inval)
            }
            Some(b'+' | b'-') => self.parse_deref(arg, ops),
            Some(b'\\') => self.parse_immediate(arg, ops),
            Some(c) if c.is_ascii_alphabetic() || *c == b'_' => self.parse_param(arg, ops),
            _ => fail(ErrorKind::BadFetchArg, self.offset),
        }
    }

    /// A parameter by name (Linux's `parse_btf_arg`), at a function's
    /// entry or exit only.
    fn parse_param(&mut self, arg: &str, ops: &mut Vec<FetchOp>) -> Result<(), ArgError> {
        if !self.flags.is_function_entry() && !self.flags.is_function_return() {
            return fail(ErrorKind::NosupBtfarg, self.offset);
        }
        let params = match self.params {
            ParamLookup::Unsupported => return fail_errno(ErrorKind::NosupBtfarg, self.offset, Errno::OpNotSupp),
            ParamLookup::NoEntry => None,
            ParamLookup::Params(params) => Some(params),
        };
        // `NAME->FIELD` or `NAME.FIELD` (Linux's `split_next_field`).
        let (name, field) = match arg.find(['.', '-']) {
            Some(at) if arg[at..].starts_with("->") => (&arg[..at], Some(at + 2)),
            Some(at) if arg.as_bytes()[at] == b'.' => {
                return fail_errno(ErrorKind::NosupDatArg, self.offset + at, Errno::OpNotSupp);
            }
            Some(at) => return fail(ErrorKind::BadHyphen, self.offset + at),
            None => (arg, None),
        };
        let params = match params {
            Some(params) if !params.is_empty() => params,
            _ => return fail_errno(ErrorKind::NoBtfEntry, self.offset, Errno::NoEnt),
        };
        let Some(param) = params.iter().find(|p| !p.name.is_empty() && p.name == name).copied() else {
            return fail_errno(ErrorKind::NoBtfarg, self.offset, Errno::NoEnt);
        };
        if let Some(field) = field {
            // No structure layouts: a pointer's fields are not found.
            return match param.class {
                ParamClass::Pointer | ParamClass::CharPointer => {
                    fail_errno(ErrorKind::NoBtfField, self.offset + field, Errno::NoEnt)
                }
                _ => fail(ErrorKind::NoPtrStrct, self.offset + field),
            };
        }
        // Known, but not where a probe at the entry can read it.
        let Some(place) = param.place else {
            return fail_errno(ErrorKind::NoBtfarg, self.offset, Errno::NoEnt);
        };
        let size = param.load_size();
        if self.flags.is_function_entry() {
            ops.push(FetchOp::Param { place, size });
        } else {
            let slot = self.entry_slot(EntrySource::Param { place, size });
            ops.push(FetchOp::EntryParam { place, size, slot });
        }
        self.last_param = Some(param);
        Ok(())
    }

    /// `$retval`, `$stack`, `$stackN`, `$comm`, `$argN`, `$duration`.
    fn parse_variable(&mut self, arg: &str, ops: &mut Vec<FetchOp>) -> Result<(), ArgError> {
        let name = &arg[1..];
        let op = if name.starts_with("retval") {
            // A prefix, as in Linux: "$retval_x" is $retval too.
            if !self.flags.ret {
                return fail(ErrorKind::RetvalOnProbe, self.offset);
            }
            FetchOp::Retval
        } else if let Some(rest) = name.strip_prefix("stack") {
            match rest.as_bytes().first() {
                None => FetchOp::StackPointer,
                Some(c) if c.is_ascii_digit() => match kstrtoul(rest.as_bytes(), 10) {
                    Ok(n) if n > PARAM_MAX_STACK => return fail(ErrorKind::BadStackNum, self.offset),
                    Ok(n) => FetchOp::Stack(n),
                    Err(_) => return fail(ErrorKind::BadVar, self.offset),
                },
                Some(_) => return fail(ErrorKind::BadVar, self.offset),
            }
        } else if name == "comm" || name == "COMM" {
            FetchOp::Comm
        } else if let Some(rest) = name.strip_prefix("arg") {
            // `$arg*` left for the argument parser: not a word of its own
            // (`NAME=$arg*`, `+0($arg*)`). Without parameter information
            // it is an unknown variable, as in Linux without BTF.
            if rest == "*" && *self.params != ParamLookup::Unsupported {
                return fail(ErrorKind::BadVarArgs, self.offset);
            }
            let n = match kstrtoul(rest.as_bytes(), 10) {
                Ok(n) => n,
                Err(_) => return fail(ErrorKind::BadVar, self.offset),
            };
            if n == 0 || n > PARAM_MAX_STACK {
                return fail(ErrorKind::BadArgNum, self.offset);
            }
            let arg = n - 1;
            if self.flags.is_function_entry() {
                FetchOp::Arg(arg)
            } else if self.flags.is_function_return() {
                // Saved by the entry handler; one slot per argument.
                let slot = self.entry_slot(EntrySource::Arg(arg));
                FetchOp::EntryArg { arg, slot }
            } else {
                return fail(ErrorKind::NofentryArgs, self.offset);
            }
        } else if name == "duration" && self.flags.ret {
            FetchOp::Duration
        } else {
            return fail(ErrorKind::BadVar, self.offset);
        };
        ops.push(op);
        Ok(())
    }

    /// `+|-[u]OFFS(FETCHARG)`.
    fn parse_deref(&mut self, arg: &str, ops: &mut Vec<FetchOp>) -> Result<(), ArgError> {
        let bytes = arg.as_bytes();
        let sign = bytes[0];
        let user = bytes.get(1) == Some(&b'u');
        // Linux drops the 'u' by moving the sign over it, then skips a '+'
        // (kstrtol refuses it); `start` is where its cursor ends up.
        let digits = 1 + usize::from(user);
        let start = if sign == b'+' { digits } else { digits - 1 };
        let Some(open) = arg.find('(') else {
            return fail(ErrorKind::DerefNeedBrace, self.offset);
        };
        let mut number: Vec<u8> = Vec::new();
        if sign == b'-' {
            number.push(b'-');
        }
        number.extend_from_slice(bytes.get(digits..open).unwrap_or(&[]));
        let Ok(offset) = kstrtol(&number, 0) else {
            return fail(ErrorKind::BadDerefOffs, self.offset);
        };
        // The character under Linux's cursor: the sign it moved, or the
        // first character after a skipped '+'.
        let first = if sign == b'-' { b'-' } else { bytes.get(start).copied().unwrap_or(0) };
        // Linux's arithmetic, including its one-column slip for "+u"/"-u".
        self.offset += open + 1 - start.min(open + 1) + usize::from(first != b'-');

        let rest = &arg[open + 1..];
        let Some(close) = rest.rfind(')') else {
            return fail(ErrorKind::DerefOpenBrace, self.offset + rest.len());
        };
        let inner = &rest[..close];
        let saved = self.offset;
        self.parse_fetch(inner, ops)?;
        self.offset = saved;
        // What it points to is no longer the parameter (Linux resets
        // `last_type`).
        self.last_param = None;
        if matches!(ops.last(), Some(FetchOp::Comm | FetchOp::Data(_))) {
            return fail(ErrorKind::CommCantDeref, self.offset);
        }
        let op = if user { FetchOp::UserDeref(offset) } else { FetchOp::Deref(offset) };
        self.push_next(ops, op, Errno::Inval)
    }

    /// `\IMM` and `\"STRING"`.
    fn parse_immediate(&mut self, arg: &str, ops: &mut Vec<FetchOp>) -> Result<(), ArgError> {
        let bytes = arg.as_bytes();
        if bytes.get(1) == Some(&b'"') {
            let text = &bytes[2..];
            // Linux checks the byte before the end; for `\"` alone that is
            // the opening quote, so the string is empty.
            let data = match text.last() {
                None => Vec::new(),
                Some(b'"') => text[..text.len() - 1].to_vec(),
                Some(_) => return fail(ErrorKind::ImmstrNoClose, self.offset + 2 + text.len()),
            };
            ops.push(FetchOp::Data(data));
            return Ok(());
        }
        let text = &bytes[1..];
        let value = match text.first() {
            Some(c) if c.is_ascii_digit() => kstrtoul(text, 0).ok(),
            Some(b'-') => kstrtol(text, 0).ok().map(|v| v as u32),
            Some(b'+') => kstrtol(&text[1..], 0).ok().map(|v| v as u32),
            _ => None,
        };
        match value {
            Some(v) => {
                ops.push(FetchOp::Imm(v));
                Ok(())
            }
            None => fail(ErrorKind::BadImm, self.offset + 1),
        }
    }

    /// Linux's `finalize_fetch_insn`: the store, bitfield and array
    /// instructions, and the checks that tie them to the load.
    fn finalize(
        &self,
        ops: &mut Vec<FetchOp>,
        ty: FetchType,
        count: u32,
        type_name: Option<&str>,
        type_start: usize,
    ) -> Result<Option<Bitfield>, ArgError> {
        let type_offset = self.offset + type_start;
        let last = ops.last().cloned();
        if ty.is_string() {
            if ty == FetchType::SymStr {
                if !matches!(
                    last,
                    Some(
                        FetchOp::Reg(_)
                            | FetchOp::Stack(_)
                            | FetchOp::Retval
                            | FetchOp::Arg(_)
                            | FetchOp::Param { .. }
                            | FetchOp::Deref(_)
                    )
                ) {
                    return fail(ErrorKind::BadSymstring, type_offset);
                }
            } else if !matches!(
                last,
                Some(FetchOp::Deref(_) | FetchOp::UserDeref(_) | FetchOp::Imm(_) | FetchOp::Comm | FetchOp::Data(_))
            ) {
                return fail(ErrorKind::BadString, type_offset);
            }
            // The store takes the place of a final dereference (reading the
            // string at its address), unless the value is the address
            // itself, a symbol's text is wanted, or an array of pointers.
            let replace = !(ty == FetchType::SymStr
                || matches!(last, Some(FetchOp::Imm(_) | FetchOp::Comm | FetchOp::Data(_)))
                || count > 0);
            let (offset, user_deref) = if replace {
                match ops.pop() {
                    Some(FetchOp::Deref(o)) => (o, false),
                    Some(FetchOp::UserDeref(o)) => (o, true),
                    // Unreachable: the checks above leave only dereferences.
                    Some(other) => {
                        ops.push(other);
                        (0, false)
                    }
                    None => (0, false),
                }
            } else {
                if ops.len() >= FETCH_INSN_MAX - 1 {
                    return fail(ErrorKind::TooManyOps, self.offset);
                }
                (0, false)
            };
            let store = if ty == FetchType::UString || user_deref {
                FetchOp::StoreUserString { offset }
            } else if ty == FetchType::SymStr {
                FetchOp::StoreSymString { offset }
            } else {
                FetchOp::StoreString { offset }
            };
            ops.push(store);
        } else {
            let size = ty.size() as u8;
            match last {
                Some(FetchOp::Deref(offset)) => {
                    ops.pop();
                    ops.push(FetchOp::StoreMem { offset, size });
                }
                Some(FetchOp::UserDeref(offset)) => {
                    ops.pop();
                    ops.push(FetchOp::StoreUserMem { offset, size });
                }
                _ => self.push_next(ops, FetchOp::StoreRaw { size }, Errno::TooBig)?,
            }
        }
        let store = ops.last().cloned();

        let mut bitfield = None;
        if let Some(spec) = type_name.filter(|t| t.starts_with('b')) {
            let field = Bitfield::parse(spec, ty);
            match field {
                Some(field) if ops.len() < FETCH_INSN_MAX - 1 => {
                    ops.push(FetchOp::Bitfield(field));
                    bitfield = Some(field);
                }
                _ => return fail(ErrorKind::BadBitfield, type_offset),
            }
        }

        if count > 0 {
            if !matches!(
                store,
                Some(FetchOp::StoreMem { .. } | FetchOp::StoreString { .. } | FetchOp::StoreUserString { .. })
            ) {
                return fail(ErrorKind::BadString, type_offset);
            }
            self.push_next(ops, FetchOp::Array(count), Errno::TooBig)?;
        }
        Ok(bitfield)
    }
}
