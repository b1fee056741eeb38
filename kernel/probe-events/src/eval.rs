//! Evaluating fetch arguments when a probe hits.
//!
//! A [`FetchProgram`] is compiled from a definition at registration (task
//! context: it allocates, and resolves `@SYM`). At each hit,
//! [`FetchProgram::fetch`] writes the arguments into a record buffer the
//! caller provides, reading registers, memory and symbols through the
//! traits below. It does not allocate, lock or panic: a read that faults
//! stores 0 (a string stores nothing and shows as `(fault)`), and a record
//! too small for the fixed part is left alone.
//!
//! The record is Linux's: the common header (8 bytes), `__probe_ip` (or
//! `__probe_func` and `__probe_ret_ip` for a return probe), the arguments
//! packed in order, then the dynamic area where strings go, each located
//! by its argument's 32-bit `__data_loc` (length in the high 16 bits,
//! offset from the record's start in the low 16).
use alloc::vec::Vec;
use core::fmt::{self, Write};

use crate::command::{ProbeDefinition, SymbolResolver};
use crate::error::{CommandError, ErrorKind};
use crate::fetch::FetchOp;
use crate::num::kstrtol;
use crate::params::{EntrySource, Place};
use crate::register::Register;

/// Longest string an argument stores, with its NUL (Linux's `PATH_MAX`).
pub const MAX_STRING_SIZE: usize = 4096;

/// Bytes of one entry slot of a return probe's entry data: every value
/// saved at the entry (an argument, a parameter of up to 8 bytes) is kept
/// as a little-endian `u64`.
pub const ENTRY_SLOT_SIZE: usize = 8;

/// The registers saved at a probe hit, read by Linux register.
pub trait Regs {
    /// The value of `reg` (its index in Linux's `pt_regs` is `reg.index()`).
    fn get(&self, reg: Register) -> u32;
}

/// A memory read that faulted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault;

/// Memory reads that may fail without harm (the kernel's `nofault` copies).
pub trait Memory {
    /// Fills `buf` from kernel memory at `addr`, or reports a fault.
    fn read(&self, addr: u32, buf: &mut [u8]) -> Result<(), Fault>;

    /// Fills `buf` from user memory at `addr`. The default: no user space.
    fn read_user(&self, addr: u32, buf: &mut [u8]) -> Result<(), Fault> {
        let _ = (addr, buf);
        Err(Fault)
    }

    /// Copies the NUL-terminated kernel string at `addr` into `buf`,
    /// stopping after its NUL or when `buf` is full (then its last byte
    /// becomes a NUL). Returns the bytes stored, NUL included. The default
    /// reads a byte at a time.
    fn read_string(&self, addr: u32, buf: &mut [u8]) -> Result<usize, Fault> {
        copy_string(|a, b| self.read(a, b), addr, buf)
    }

    /// [`read_string`](Self::read_string) from user memory.
    fn read_user_string(&self, addr: u32, buf: &mut [u8]) -> Result<usize, Fault> {
        copy_string(|a, b| self.read_user(a, b), addr, buf)
    }
}

fn copy_string(read: impl Fn(u32, &mut [u8]) -> Result<(), Fault>, addr: u32, buf: &mut [u8]) -> Result<usize, Fault> {
    let len = buf.len();
    for (i, slot) in buf.iter_mut().enumerate() {
        if i + 1 == len {
            // Full: cut the string here.
            *slot = 0;
            return Ok(len);
        }
        let mut byte = [0u8];
        read(addr.wrapping_add(i as u32), &mut byte)?;
        *slot = byte[0];
        if byte[0] == 0 {
            return Ok(i + 1);
        }
    }
    Ok(0)
}

/// The symbol that contains an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SymbolInfo<'a> {
    /// The symbol's name.
    pub name: &'a str,
    /// The address's offset from the symbol's start.
    pub offset: u32,
    /// The symbol's size.
    pub size: u32,
}

/// Address-to-symbol lookup, for `symbol`/`symstr` and the trace line.
pub trait Symbolizer {
    /// The symbol containing `addr`, if any.
    fn symbolize(&self, addr: u32) -> Option<SymbolInfo<'_>>;

    /// Whether `addr` is the kretprobe trampoline (the trace shows a
    /// return there as `[unknown/kretprobe'd]`). The default: never.
    fn is_kretprobe_trampoline(&self, addr: u32) -> bool {
        let _ = addr;
        false
    }
}

/// Writes `addr` as Linux's `%pS` does: `name+0xOFF/0xSIZE`, or `0xADDR`
/// when no symbol contains it.
pub fn write_symbol(out: &mut impl Write, addr: u32, symbols: &(impl Symbolizer + ?Sized)) -> fmt::Result {
    match symbols.symbolize(addr) {
        Some(s) => write!(out, "{}+{:#x}/{:#x}", s.name, s.offset, s.size),
        None => write!(out, "{addr:#x}"),
    }
}

/// Where a function's arguments are at its entry (for `$argN`): the parser
/// does not decide it, the evaluator does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallingConvention {
    /// All arguments on the stack, the first just above the return address
    /// (this kernel's functions: `$argN` is `$stackN`).
    Stack,
    /// Linux's i386 `regparm(3)`: the first three in `eax`, `edx`, `ecx`,
    /// the rest on the stack above the return address.
    Regparm3,
}

impl CallingConvention {
    /// Argument `n` (0-based) at a function's entry. A stack read that
    /// faults gives 0.
    pub fn argument(self, n: u32, regs: &(impl Regs + ?Sized), memory: &(impl Memory + ?Sized)) -> u32 {
        match (self, n) {
            (CallingConvention::Stack, _) => stack_word(n.saturating_add(1), regs, memory),
            (CallingConvention::Regparm3, 0) => regs.get(Register::Ax),
            (CallingConvention::Regparm3, 1) => regs.get(Register::Dx),
            (CallingConvention::Regparm3, 2) => regs.get(Register::Cx),
            (CallingConvention::Regparm3, _) => stack_word(n - 2, regs, memory),
        }
    }
}

/// Word `n` of the stack (`$stackN`), 0 when it cannot be read.
fn stack_word(n: u32, regs: &(impl Regs + ?Sized), memory: &(impl Memory + ?Sized)) -> u32 {
    let addr = regs.get(Register::Sp).wrapping_add(n.wrapping_mul(4));
    read_word(memory, addr, false).unwrap_or(0)
}

fn read_word(memory: &(impl Memory + ?Sized), addr: u32, user: bool) -> Result<u32, Fault> {
    let mut bytes = [0u8; 4];
    if user {
        memory.read_user(addr, &mut bytes)?
    } else {
        memory.read(addr, &mut bytes)?
    }
    Ok(u32::from_le_bytes(bytes))
}

/// Everything an evaluation reads at one hit.
pub struct Hit<'a, R: ?Sized, M: ?Sized, S: ?Sized> {
    /// The registers at the hit (for a return probe, at the return).
    pub regs: &'a R,
    /// Memory reads.
    pub memory: &'a M,
    /// Symbols, for `symstr`.
    pub symbols: &'a S,
    /// The current task's name (`$comm`), up to its first NUL.
    pub comm: &'a [u8],
    /// For a return probe, the entry data the entry handler filled with
    /// [`FetchProgram::capture_entry`] (8 bytes per slot); empty otherwise.
    pub entry: &'a [u8],
    /// For a return probe, nanoseconds since the matching entry
    /// (`$duration`, this project's extension); 0 otherwise.
    pub duration_ns: u64,
}

/// The common fields of a record's header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommonFields {
    /// The event's type number (its `ID`).
    pub type_id: u16,
    /// Trace flags (interrupts off, in an interrupt...).
    pub flags: u8,
    /// The preemption count.
    pub preempt_count: u8,
    /// The current task's id.
    pub pid: i32,
}

#[derive(Clone, Debug)]
struct CompiledArg {
    offset: usize,
    size: usize,
    ops: Vec<FetchOp>,
}

/// A definition's fetch arguments, compiled for evaluation at hits.
#[derive(Clone, Debug)]
pub struct FetchProgram {
    args: Vec<CompiledArg>,
    entry_args: Vec<EntrySource>,
    convention: CallingConvention,
    header_size: usize,
    fixed_size: usize,
    /// The same arguments as straight-line steps, when every one is a
    /// plain number ([`FetchProgram::fetch_numbers`]).
    numbers: Option<Vec<NumberArg>>,
}

/// An argument the number path fetches: one load, at most one memory
/// read, a store of its low `size` bytes.
#[derive(Clone, Copy, Debug)]
struct NumberArg {
    load: NumberLoad,
    /// `Some(offset)`: store `size` bytes read at the value + offset.
    read: Option<i32>,
    size: u8,
    offset: u16,
}

/// A number argument's load.
#[derive(Clone, Copy, Debug)]
enum NumberLoad {
    Reg(Register),
    Stack(u32),
    StackPointer,
    Retval,
    Imm(u32),
    Arg(u32),
    Param(Place, u8),
}

impl NumberArg {
    /// The argument as a number step, if it is one: a numeric load then
    /// `StoreRaw` or `StoreMem` of 1, 2, 4 or 8 bytes, with no dereference
    /// before it, no bitfield, no array.
    fn of(arg: &CompiledArg) -> Option<NumberArg> {
        let [load, store] = &arg.ops[..] else { return None };
        let load = match *load {
            FetchOp::Reg(reg) => NumberLoad::Reg(reg),
            FetchOp::Stack(n) => NumberLoad::Stack(n),
            FetchOp::StackPointer => NumberLoad::StackPointer,
            FetchOp::Retval => NumberLoad::Retval,
            FetchOp::Imm(value) => NumberLoad::Imm(value),
            FetchOp::Arg(n) => NumberLoad::Arg(n),
            FetchOp::Param { place, size } => NumberLoad::Param(place, size),
            _ => return None,
        };
        let (read, size) = match *store {
            FetchOp::StoreRaw { size } => (None, size),
            FetchOp::StoreMem { offset, size } => (Some(offset), size),
            _ => return None,
        };
        if !matches!(size, 1 | 2 | 4 | 8) || usize::from(size) != arg.size {
            return None;
        }
        Some(NumberArg { load, read, size, offset: u16::try_from(arg.offset).ok()? })
    }
}

/// A value loaded by an argument's first instruction: a number, or the
/// bytes of `$comm` or an immediate string (Linux loads their address).
#[derive(Clone, Copy)]
enum Value<'p> {
    Num(u64),
    Bytes(&'p [u8]),
}

impl Value<'_> {
    fn address(self) -> u32 {
        match self {
            Value::Num(n) => n as u32,
            Value::Bytes(_) => 0,
        }
    }
}

/// A stored string's place in the record: its `__data_loc`.
fn data_loc(len: usize, offset: usize) -> u32 {
    ((len as u32) << 16) | (offset as u32 & 0xffff)
}

fn put(record: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(slot) = record.get_mut(at..at + bytes.len()) {
        slot.copy_from_slice(bytes);
    }
}

/// Writes formatted text into a byte buffer, dropping what does not fit.
struct ByteWriter<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl Write for ByteWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if let Some(slot) = self.buf.get_mut(self.len) {
                *slot = b;
                self.len += 1;
            }
        }
        Ok(())
    }
}

/// Counts formatted text.
struct Counter(usize);

impl Write for Counter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0 += s.len();
        Ok(())
    }
}

impl FetchProgram {
    /// Compiles `def`'s arguments, resolving `@SYM[+|-offs]` through
    /// `symbols` (which Linux does at registration: a symbol that does not
    /// exist refuses the probe with "Invalid probed address or symbol", a
    /// malformed offset with "Failed to register probe event", both at the
    /// probed location). `convention` says where `$argN` are.
    pub fn compile(
        def: &ProbeDefinition,
        symbols: &impl SymbolResolver,
        convention: CallingConvention,
    ) -> Result<FetchProgram, CommandError> {
        let mut resolved = def.clone();
        for arg in resolved.args_mut() {
            let ops = arg.ops_mut();
            while let Some(at) = ops.iter().position(|op| matches!(op, FetchOp::Symbol(_))) {
                let FetchOp::Symbol(text) = ops.remove(at) else { break };
                let (name, offset) = match text.find(['+', '-']) {
                    Some(sign) => match kstrtol(&text.as_bytes()[sign..], 0) {
                        Ok(offset) => (&text[..sign], offset),
                        Err(_) => return Err(def.registration_error(ErrorKind::FailRegProbe)),
                    },
                    None => (text.as_str(), 0),
                };
                let Some(address) = symbols.address_of(name) else {
                    return Err(def.registration_error(ErrorKind::BadProbeAddr));
                };
                if let Some(FetchOp::Imm(value)) = ops.get_mut(at) {
                    *value = (address as u32).wrapping_add(offset as u32);
                }
            }
        }
        let offsets = resolved.arg_offsets();
        let args: Vec<CompiledArg> = resolved
            .args()
            .iter()
            .zip(offsets)
            .map(|(arg, offset)| CompiledArg { offset, size: arg.size(), ops: arg.ops().to_vec() })
            .collect();
        let numbers = args.iter().map(NumberArg::of).collect::<Option<Vec<_>>>();
        Ok(FetchProgram {
            args,
            entry_args: def.entry_args().to_vec(),
            convention,
            header_size: def.header_size(),
            fixed_size: def.fixed_size(),
            numbers,
        })
    }

    /// Whether every argument is a plain number (a register, a stack word,
    /// `$stack`, `$retval`, an immediate or `$argN`, stored as is or read
    /// through once, with no bitfield or array): then
    /// [`fetch_numbers`](Self::fetch_numbers) makes the record.
    pub fn is_numbers_only(&self) -> bool {
        self.numbers.is_some()
    }

    /// The record of a hit, for a program whose arguments are all plain
    /// numbers ([`is_numbers_only`](Self::is_numbers_only)): every byte of
    /// the fixed part written (the header by
    /// [`write_header`](Self::write_header) first, then each argument), so
    /// `record` needs no clearing. The same bytes as
    /// [`fetch`](Self::fetch), in straight-line steps instead of the
    /// general interpreter. Returns the record's length (`fixed_size`), or
    /// 0 if the program is not numbers-only or `record` is too short.
    #[inline(always)]
    pub fn fetch_numbers<R, M>(&self, regs: &R, memory: &M, record: &mut [u8]) -> usize
    where
        R: Regs + ?Sized,
        M: Memory + ?Sized,
    {
        let Some(numbers) = &self.numbers else { return 0 };
        if record.len() < self.fixed_size {
            return 0;
        }
        for arg in numbers {
            let value: u64 = match arg.load {
                NumberLoad::Reg(reg) => u64::from(regs.get(reg)),
                NumberLoad::Stack(n) => u64::from(stack_word(n, regs, memory)),
                NumberLoad::StackPointer => u64::from(regs.get(Register::Sp)),
                NumberLoad::Retval => u64::from(regs.get(Register::Ax)),
                NumberLoad::Imm(value) => u64::from(value),
                NumberLoad::Arg(n) => u64::from(self.convention.argument(n, regs, memory)),
                NumberLoad::Param(place, size) => place.read(size, regs, memory),
            };
            let at = usize::from(arg.offset);
            let slot = &mut record[at..at + usize::from(arg.size)];
            match arg.read {
                // The common size first: one store (through an array, which
                // the compiler cannot merge with the general arm below into
                // a call of `memcpy` with a run-time length).
                None if let Ok(word) = <&mut [u8; 4]>::try_from(&mut *slot) => {
                    *word = (value as u32).to_le_bytes();
                }
                None => slot.copy_from_slice(&value.to_le_bytes()[..slot.len()]),
                Some(offset) => {
                    if memory.read((value as u32).wrapping_add(offset as u32), slot).is_err() {
                        slot.fill(0);
                    }
                }
            }
        }
        self.fixed_size
    }

    /// Bytes before the arguments: 12, or 16 for a return probe.
    pub fn header_size(&self) -> usize {
        self.header_size
    }

    /// Bytes of the record's fixed part (header and arguments).
    pub fn fixed_size(&self) -> usize {
        self.fixed_size
    }

    /// The calling convention `$argN` follows.
    pub fn convention(&self) -> CallingConvention {
        self.convention
    }

    /// How many entry slots a return probe's entry handler fills.
    pub fn entry_slots(&self) -> usize {
        self.entry_args.len()
    }

    /// Bytes of entry data a return probe's entry handler fills: 8 per
    /// slot ([`ENTRY_SLOT_SIZE`]).
    pub fn entry_data_size(&self) -> usize {
        self.entry_args.len() * ENTRY_SLOT_SIZE
    }

    /// At a return probe's function entry: saves what its `$argN` and
    /// parameters read into `data`, each slot's value as 8 little-endian
    /// bytes (a kretprobe instance's private data; what does not fit is
    /// left out, extra bytes are left alone). No allocation.
    pub fn capture_entry(&self, regs: &(impl Regs + ?Sized), memory: &(impl Memory + ?Sized), data: &mut [u8]) {
        let (slots, _) = data.as_chunks_mut::<ENTRY_SLOT_SIZE>();
        for (slot, &source) in slots.iter_mut().zip(&self.entry_args) {
            let value = match source {
                EntrySource::Arg(n) => u64::from(self.convention.argument(n, regs, memory)),
                EntrySource::Param { place, size } => place.read(size, regs, memory),
            };
            *slot = value.to_le_bytes();
        }
    }

    /// Writes the header: the common fields, then `ip` as `__probe_ip`, or
    /// for a return probe `ip` as `__probe_func` (the function) and
    /// `ret_ip` as `__probe_ret_ip` (where it returns to). Does nothing if
    /// `record` is shorter than the header.
    pub fn write_header(&self, record: &mut [u8], common: &CommonFields, ip: u32, ret_ip: u32) {
        if record.len() < self.header_size {
            return;
        }
        put(record, 0, &common.type_id.to_le_bytes());
        put(record, 2, &[common.flags, common.preempt_count]);
        put(record, 4, &common.pid.to_le_bytes());
        put(record, 8, &ip.to_le_bytes());
        if self.header_size > 12 {
            put(record, 12, &ret_ip.to_le_bytes());
        }
    }

    /// Bytes the strings of this hit need in the dynamic area (Linux's
    /// `__get_data_size`), for callers that size the record first.
    pub fn dynamic_size<R, M, S>(&self, hit: &Hit<'_, R, M, S>) -> usize
    where
        R: Regs + ?Sized,
        M: Memory + ?Sized,
        S: Symbolizer + ?Sized,
    {
        let mut total = 0;
        for arg in &self.args {
            self.walk_strings(arg, hit, |value, op| {
                total += match string_source(value, op) {
                    Some(Source::Bytes(bytes)) => bytes.len() + 1,
                    Some(Source::Kernel(addr)) => string_len(hit.memory, addr, false).unwrap_or(0),
                    Some(Source::User(addr)) => string_len(hit.memory, addr, true).unwrap_or(0),
                    Some(Source::Symbol(addr)) => {
                        let mut count = Counter(0);
                        let _ = write_symbol(&mut count, addr, hit.symbols);
                        count.0 + 1
                    }
                    None => 0,
                };
            });
        }
        total
    }

    /// Stores the arguments of this hit into `record` (Linux's
    /// `store_trace_args`): each in its fixed slot, strings in the dynamic
    /// area after the fixed part, as far as `record` reaches. The header is
    /// [`write_header`](Self::write_header)'s. Returns the bytes of the
    /// record in use (fixed part and strings), or 0 without writing when
    /// `record` is shorter than the fixed part.
    pub fn fetch<R, M, S>(&self, hit: &Hit<'_, R, M, S>, record: &mut [u8]) -> usize
    where
        R: Regs + ?Sized,
        M: Memory + ?Sized,
        S: Symbolizer + ?Sized,
    {
        if record.len() < self.fixed_size {
            return 0;
        }
        let mut cursor = self.fixed_size;
        for arg in &self.args {
            if let Some(slot) = record.get_mut(arg.offset..arg.offset + arg.size) {
                slot.fill(0);
            }
            self.store_arg(arg, hit, record, &mut cursor);
        }
        cursor
    }

    /// The first instruction's value.
    fn load<'p, R, M, S>(&'p self, op: &'p FetchOp, hit: &Hit<'p, R, M, S>) -> Value<'p>
    where
        R: Regs + ?Sized,
        M: Memory + ?Sized,
        S: Symbolizer + ?Sized,
    {
        let num = |v: u32| Value::Num(u64::from(v));
        match op {
            FetchOp::Reg(reg) => num(hit.regs.get(*reg)),
            FetchOp::Stack(n) => num(stack_word(*n, hit.regs, hit.memory)),
            FetchOp::StackPointer => num(hit.regs.get(Register::Sp)),
            FetchOp::Retval => num(hit.regs.get(Register::Ax)),
            FetchOp::Imm(v) => num(*v),
            FetchOp::Arg(n) => num(self.convention.argument(*n, hit.regs, hit.memory)),
            FetchOp::Param { place, size } => Value::Num(place.read(*size, hit.regs, hit.memory)),
            FetchOp::EntryArg { slot, .. } | FetchOp::EntryParam { slot, .. } => {
                let (slots, _) = hit.entry.as_chunks::<ENTRY_SLOT_SIZE>();
                Value::Num(slots.get(*slot as usize).map_or(0, |bytes| u64::from_le_bytes(*bytes)))
            }
            FetchOp::Comm => Value::Bytes(until_nul(hit.comm)),
            FetchOp::Data(bytes) => Value::Bytes(bytes),
            FetchOp::Duration => Value::Num(hit.duration_ns),
            _ => Value::Num(0),
        }
    }

    /// Runs the load and the dereferences: the value before the last
    /// dereference, the value, and the index of the store instruction.
    /// `None` if a dereference faulted.
    fn prepare<'p, R, M, S>(&'p self, ops: &'p [FetchOp], hit: &Hit<'p, R, M, S>) -> Option<(u32, Value<'p>, usize)>
    where
        R: Regs + ?Sized,
        M: Memory + ?Sized,
        S: Symbolizer + ?Sized,
    {
        let first = ops.first()?;
        let mut value = self.load(first, hit);
        let mut before = value.address();
        let mut at = 1;
        while let Some(op) = ops.get(at) {
            let (offset, user) = match op {
                FetchOp::Deref(o) => (*o, false),
                FetchOp::UserDeref(o) => (*o, true),
                _ => break,
            };
            before = value.address();
            value = Value::Num(u64::from(read_word(hit.memory, before.wrapping_add(offset as u32), user).ok()?));
            at += 1;
        }
        Some((before, value, at))
    }

    /// Calls `each` with the value and store instruction of every string
    /// element of `arg` (none for numbers); an element whose pointer
    /// faults is passed as `None`.
    fn walk_strings<'p, R, M, S>(
        &'p self,
        arg: &'p CompiledArg,
        hit: &Hit<'p, R, M, S>,
        mut each: impl FnMut(Option<Value<'p>>, &'p FetchOp),
    ) where
        R: Regs + ?Sized,
        M: Memory + ?Sized,
        S: Symbolizer + ?Sized,
    {
        let ops = &arg.ops;
        let Some(store) = ops.iter().find(|op| op.is_store()) else { return };
        if !matches!(
            store,
            FetchOp::StoreString { .. } | FetchOp::StoreUserString { .. } | FetchOp::StoreSymString { .. }
        ) {
            return;
        }
        let count = array_count(ops);
        let Some((mut before, mut value, at)) = self.prepare(ops, hit) else {
            for _ in 0..count {
                each(None, store);
            }
            return;
        };
        let mut ok = true;
        for element in 0..count {
            if element > 0 {
                // The next pointer of a string array: the last dereference
                // again, one pointer further.
                match at.checked_sub(1).and_then(|i| ops.get(i)) {
                    Some(FetchOp::Deref(o) | FetchOp::UserDeref(o)) if ok => {
                        let user = matches!(ops[at - 1], FetchOp::UserDeref(_));
                        before = before.wrapping_add(4);
                        match read_word(hit.memory, before.wrapping_add(*o as u32), user) {
                            Ok(v) => value = Value::Num(u64::from(v)),
                            Err(_) => ok = false,
                        }
                    }
                    _ => ok = false,
                }
            }
            each(ok.then_some(value), store);
        }
    }

    fn store_arg<R, M, S>(&self, arg: &CompiledArg, hit: &Hit<'_, R, M, S>, record: &mut [u8], cursor: &mut usize)
    where
        R: Regs + ?Sized,
        M: Memory + ?Sized,
        S: Symbolizer + ?Sized,
    {
        let ops = &arg.ops;
        let Some(store) = ops.iter().find(|op| op.is_store()) else { return };
        match store {
            FetchOp::StoreRaw { size } => {
                if let Some((_, value, _)) = self.prepare(ops, hit) {
                    let raw = match value {
                        Value::Num(n) => n,
                        Value::Bytes(_) => 0,
                    };
                    put(record, arg.offset, &raw.to_le_bytes()[..usize::from(*size).min(8)]);
                    apply_bitfield(ops, record, arg.offset);
                }
            }
            FetchOp::StoreMem { offset, size } | FetchOp::StoreUserMem { offset, size } => {
                let user = matches!(store, FetchOp::StoreUserMem { .. });
                let Some((_, value, _)) = self.prepare(ops, hit) else { return };
                let size = usize::from(*size);
                let base = value.address().wrapping_add(*offset as u32);
                for element in 0..array_count(ops) {
                    let at = arg.offset + element * size;
                    let Some(slot) = record.get_mut(at..at + size) else { return };
                    let addr = base.wrapping_add((element * size) as u32);
                    let read = if user { hit.memory.read_user(addr, slot) } else { hit.memory.read(addr, slot) };
                    if read.is_err() {
                        slot.fill(0);
                    }
                    apply_bitfield(ops, record, at);
                }
            }
            _ => {
                let mut element = 0;
                self.walk_strings(arg, hit, |value, op| {
                    let slot = arg.offset + 4 * element;
                    element += 1;
                    let start = *cursor;
                    let stored = store_string(value, op, hit, record, start);
                    put(record, slot, &data_loc(stored, start).to_le_bytes());
                    *cursor += stored;
                });
            }
        }
    }
}

/// Where a string element comes from.
enum Source<'p> {
    Bytes(&'p [u8]),
    Kernel(u32),
    User(u32),
    Symbol(u32),
}

fn string_source<'p>(value: Option<Value<'p>>, op: &FetchOp) -> Option<Source<'p>> {
    let value = value?;
    let (offset, source): (i32, fn(u32) -> Source<'p>) = match op {
        FetchOp::StoreString { offset } => (*offset, Source::Kernel),
        FetchOp::StoreUserString { offset } => (*offset, Source::User),
        FetchOp::StoreSymString { offset } => (*offset, Source::Symbol),
        _ => return None,
    };
    Some(match value {
        Value::Bytes(bytes) => Source::Bytes(bytes),
        Value::Num(n) => source((n as u32).wrapping_add(offset as u32)),
    })
}

/// Stores one string element at `start` of the record: the bytes stored
/// (NUL included), 0 on a fault or when there is no room.
fn store_string<R, M, S>(
    value: Option<Value<'_>>,
    op: &FetchOp,
    hit: &Hit<'_, R, M, S>,
    record: &mut [u8],
    start: usize,
) -> usize
where
    R: Regs + ?Sized,
    M: Memory + ?Sized,
    S: Symbolizer + ?Sized,
{
    // The offset must fit the __data_loc's 16 bits.
    if start > 0xffff {
        return 0;
    }
    let end = record.len().min(start + MAX_STRING_SIZE);
    let Some(buf) = record.get_mut(start..end) else { return 0 };
    if buf.is_empty() {
        return 0;
    }
    match string_source(value, op) {
        Some(Source::Bytes(bytes)) => {
            let len = bytes.len().min(buf.len() - 1);
            buf[..len].copy_from_slice(&bytes[..len]);
            buf[len] = 0;
            len + 1
        }
        Some(Source::Kernel(addr)) => hit.memory.read_string(addr, buf).unwrap_or(0),
        Some(Source::User(addr)) => hit.memory.read_user_string(addr, buf).unwrap_or(0),
        Some(Source::Symbol(addr)) => {
            let room = buf.len() - 1;
            let mut writer = ByteWriter { buf: &mut buf[..room], len: 0 };
            let _ = write_symbol(&mut writer, addr, hit.symbols);
            let len = writer.len;
            buf[len] = 0;
            len + 1
        }
        None => 0,
    }
}

/// The length (NUL included, at most [`MAX_STRING_SIZE`]) of the string at
/// `addr`.
fn string_len(memory: &(impl Memory + ?Sized), addr: u32, user: bool) -> Result<usize, Fault> {
    for len in 1..=MAX_STRING_SIZE {
        let mut byte = [0u8];
        let at = addr.wrapping_add(len as u32 - 1);
        if user {
            memory.read_user(at, &mut byte)?
        } else {
            memory.read(at, &mut byte)?
        }
        if byte[0] == 0 {
            return Ok(len);
        }
    }
    Ok(MAX_STRING_SIZE)
}

fn until_nul(bytes: &[u8]) -> &[u8] {
    match bytes.iter().position(|&b| b == 0) {
        Some(end) => &bytes[..end],
        None => bytes,
    }
}

fn array_count(ops: &[FetchOp]) -> usize {
    match ops.last() {
        Some(FetchOp::Array(n)) => *n as usize,
        _ => 1,
    }
}

/// Applies the argument's bitfield (if any) to the value stored at `at`.
fn apply_bitfield(ops: &[FetchOp], record: &mut [u8], at: usize) {
    let Some(FetchOp::Bitfield(field)) = ops.iter().find(|op| matches!(op, FetchOp::Bitfield(_))) else {
        return;
    };
    let size = usize::from(field.container);
    let Some(slot) = record.get_mut(at..at + size) else { return };
    let mut bytes = [0u8; 8];
    bytes[..size].copy_from_slice(slot);
    let value = field.apply(u64::from_le_bytes(bytes));
    slot.copy_from_slice(&value.to_le_bytes()[..size]);
}
