//! Probe events defined at the console: `kprobe_events`, `kprobe_profile`,
//! `error_log` and `events/GROUP/EVENT/{enable,format}`, as Linux's
//! `kernel/trace/trace_kprobe.c` behaves for their users.
//!
//! A definition is parsed (and refused, with Linux's message and caret in
//! `error_log`) by the `probe-events` crate; this module registers its
//! probe, disabled until the event's `enable` file says `1`, and unregisters
//! and frees it when the event is removed. Each probe counts its hits while
//! its event is enabled (`kprobe_profile`); recording them into the trace
//! buffer comes next. Everything here runs in task context (the console),
//! under one lock; the probes' handlers only touch their own counters.
use super::Errno;
use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use event_filter::{Context, EventFields, Filter, FilterFile, FilterUpdate, NamedHists, Triggers};
use probe_events::register::Register;
use probe_events::{
    CallingConvention, Command, CommandError, CommonFields, Fault, FetchProgram, Hit, Interface, Memory, Param,
    ParamClass, ParamLookup, Place, ProbeDefinition, ProbeError, ProbeLocation, Regs, SymbolInfo, SymbolResolver,
    Symbolizer,
};

use crate::kprobes::{
    EntryAction, Kprobe, KprobeError, Kretprobe, KretprobeInstance, PreAction, PtRegs, disable_kprobe,
    disable_kretprobe, enable_kprobe, enable_kretprobe, register_kprobe, register_kretprobe, unregister_kprobe,
    unregister_kretprobe,
};

/// A console event's kprobe, what its handler counts, and how it records.
#[repr(C)]
struct EventKprobe {
    kp: Kprobe,
    hits: AtomicUsize,
    enabled: AtomicBool,
    recorder: Recorder,
}

/// A console event's kretprobe, what its handler counts, and how it records.
#[repr(C)]
struct EventKretprobe {
    rp: Kretprobe,
    hits: AtomicUsize,
    enabled: AtomicBool,
    recorder: Recorder,
}

/// What a handler needs to record a hit: the event's id and its compiled
/// fetch arguments (built at definition, only read by handlers).
struct Recorder {
    id: u16,
    program: FetchProgram,
    /// The record's bytes: the fixed part, plus room for strings if any.
    len: usize,
    /// Whether an argument is `$duration` (only then is it computed).
    timed: bool,
    /// The event's filter while one is set (its `filter` file), else
    /// null: a hit is recorded only if its record matches. Published by
    /// the console ([`publish`]); handlers only read it.
    filter: AtomicPtr<Filter>,
    /// The event's triggers while any are set (its `trigger` file), else
    /// null: fired on every hit, after the record is made.
    triggers: AtomicPtr<Triggers>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        // The recorder goes with its event, after its probe was
        // unregistered: no handler can be using what is published.
        publish_unsynced(&self.filter, None);
        publish_unsynced(&self.triggers, None);
    }
}

/// Replaces what `slot` publishes to handlers (`None`: nothing), and frees
/// what it held once no handler can still be reading it: handlers run
/// with interrupts off, so after a sync of every CPU none is left that
/// loaded the old pointer. Task context.
fn publish<T>(slot: &AtomicPtr<T>, value: Option<T>) {
    replace(slot, value, crate::arch::x86::smp::sync_cpus);
}

/// [`publish`] where no handler can be running (the probe is gone): no
/// sync needed before the old value is freed.
fn publish_unsynced<T>(slot: &AtomicPtr<T>, value: Option<T>) {
    replace(slot, value, || {});
}

/// Swaps `value` into `slot`, then frees the old value after `quiesce`.
fn replace<T>(slot: &AtomicPtr<T>, value: Option<T>, quiesce: impl FnOnce()) {
    let new = value.map_or(core::ptr::null_mut(), |value| Box::into_raw(Box::new(value)));
    let old = slot.swap(new, Ordering::AcqRel);
    if !old.is_null() {
        quiesce();
        // SAFETY: `old` came from `Box::into_raw` here (every value a slot
        // holds does), the swap made this its only owner, and after
        // `quiesce` no handler holds it (see `publish` and
        // `publish_unsynced` for why each caller's `quiesce` suffices).
        drop(unsafe { Box::from_raw(old) });
    }
}

/// The type of the records a `stacktrace` trigger makes (Linux's
/// `TRACE_STACK`): below every dynamic event's id.
const STACK_TYPE: u16 = 12;
/// Return addresses a `stacktrace` record keeps.
const STACK_DEPTH: usize = 16;

/// The largest record the number path makes (on the handler's stack,
/// cleared whole: small enough to clear in a few stores).
const NUMBERS_MAX: usize = 48;
/// The record of a few arguments (the header and two or three words), the
/// common case, cleared in half the stores.
const NUMBERS_SMALL: usize = 24;

/// Room for an event's strings (`string`, `symstr`, `$comm`) in its record.
const STRING_ROOM: usize = 256;

impl Recorder {
    fn new(id: u16, program: FetchProgram, definition: &ProbeDefinition) -> Recorder {
        let strings = definition.args().iter().any(|arg| arg.fetch_type().is_string());
        let len = (program.fixed_size() + if strings { STRING_ROOM } else { 0 }).min(RECORD_MAX);
        Recorder {
            id,
            program,
            len,
            timed: definition.uses_duration(),
            filter: AtomicPtr::new(core::ptr::null_mut()),
            triggers: AtomicPtr::new(core::ptr::null_mut()),
        }
    }
}

/// Bytes of one record on the handler's stack: the header, the fixed
/// arguments and their strings (a longer record is cut, as a full ring
/// would cut it; the trace buffer takes at most about 1 KiB).
const RECORD_MAX: usize = 512;

impl Recorder {
    /// Records a hit (trap context: no lock, no allocation). `ip` is the
    /// probed address, or for a return the function, with `ret_ip` where
    /// it returns to.
    ///
    /// Inlined into the handlers: the common record (a few plain numbers)
    /// is made right there, with no call carrying every argument; the
    /// others go out of line.
    #[inline(always)]
    fn record(&self, regs: &PtRegs, ip: u32, ret_ip: u32, duration_ns: u64, entry: &[u8]) {
        let pid = crate::task::current_id() as u32;
        // Plain numbers (most events): straight-line steps that write every
        // byte of a small record, instead of the interpreter.
        if self.program.is_numbers_only() && self.program.fixed_size() <= NUMBERS_SMALL {
            return self.record_numbers::<NUMBERS_SMALL>(regs, pid, ip, ret_ip);
        }
        self.record_out_of_line(regs, pid, ip, ret_ip, duration_ns, entry);
    }

    /// The common fields of a record of this event, by `pid`.
    #[inline(always)]
    fn common(&self, pid: u32) -> CommonFields {
        CommonFields { type_id: self.id, flags: super::trace::IRQS_OFF, preempt_count: 0, pid: pid as i32 }
    }

    /// [`record`](Self::record) for every record but the smallest plain
    /// numbers.
    #[inline(never)]
    fn record_out_of_line(&self, regs: &PtRegs, pid: u32, ip: u32, ret_ip: u32, duration_ns: u64, entry: &[u8]) {
        // Larger plain-number records: the same steps, in a buffer that
        // holds them (cleared whole, a store per word).
        if self.program.is_numbers_only() && self.program.fixed_size() <= NUMBERS_MAX {
            return self.record_numbers::<NUMBERS_MAX>(regs, pid, ip, ret_ip);
        }
        // Only the record's own bytes are zeroed (a whole 512-byte buffer
        // cost more than the rest of the hit).
        let mut storage = [core::mem::MaybeUninit::<u8>::uninit(); RECORD_MAX];
        let prefix = &mut storage[..self.len];
        for byte in prefix.iter_mut() {
            byte.write(0);
        }
        // SAFETY: every byte of `prefix` was just initialized, and `u8` and
        // `MaybeUninit<u8>` have the same layout.
        let record = unsafe { &mut *(prefix as *mut [core::mem::MaybeUninit<u8>] as *mut [u8]) };
        self.program.write_header(record, &self.common(pid), ip, ret_ip);
        let hit = Hit {
            regs: &Registers(regs),
            memory: &KernelMemory,
            symbols: &KernelSymbolizer,
            comm: crate::task::saved_name(pid as usize).unwrap_or("").as_bytes(),
            entry,
            duration_ns,
        };
        let len = self.program.fetch(&hit, record);
        self.finish(regs, pid, &record[..len]);
    }

    /// [`record`](Self::record) for a numbers-only program whose record
    /// fits in `N` bytes.
    #[inline(always)]
    fn record_numbers<const N: usize>(&self, regs: &PtRegs, pid: u32, ip: u32, ret_ip: u32) {
        let mut record = [0u8; N];
        self.program.write_header(&mut record, &self.common(pid), ip, ret_ip);
        let len = self.program.fetch_numbers(&Registers(regs), &KernelMemory, &mut record);
        self.finish(regs, pid, &record[..len]);
    }

    /// A hit's record, made: into the trace if the filter (if any) lets
    /// it, then the triggers (if any) fire.
    #[inline(always)]
    fn finish(&self, regs: &PtRegs, pid: u32, record: &[u8]) {
        let (filter, triggers) = (self.filter.load(Ordering::Acquire), self.triggers.load(Ordering::Acquire));
        if filter.is_null() && triggers.is_null() {
            super::trace::record(self.id, pid, record);
            return;
        }
        self.finish_filtered(regs, pid, record, filter, triggers);
    }

    /// [`finish`](Self::finish) for an event with a filter or triggers:
    /// out of line, so that the common event's path carries none of it.
    #[cold]
    #[inline(never)]
    fn finish_filtered(&self, regs: &PtRegs, pid: u32, record: &[u8], filter: *mut Filter, triggers: *mut Triggers) {
        let ctx = Context {
            comm: crate::task::saved_name(pid as usize).unwrap_or("").as_bytes(),
            cpu: crate::arch::x86::percpu::cpu_id() as u32,
            timestamp_ns: crate::arch::x86::apic::tsc_to_ns(crate::arch::cpu::rdtsc()),
            tracing_on: super::trace::existing().is_some_and(|buffer| buffer.is_recording()),
        };
        // SAFETY: published by `publish`, which frees only after a sync of
        // every CPU, and this handler runs with interrupts off.
        if unsafe { filter.as_ref() }.is_none_or(|filter| filter.matches(record, &ctx)) {
            super::trace::record(self.id, pid, record);
        }
        // SAFETY: as for the filter. Triggers act after the record, as
        // Linux's conditional (post-call) triggers do.
        if let Some(triggers) = unsafe { triggers.as_ref() } {
            let actions = triggers.fire(record, &ctx);
            if actions.stacktrace {
                record_stack(regs, pid);
            }
            if let Some(buffer) = super::trace::existing() {
                if actions.trace_off {
                    buffer.set_recording(false);
                }
                if actions.trace_on {
                    buffer.set_recording(true);
                }
            }
        }
    }
}

/// A `stacktrace` trigger's record: the return addresses of the stack the
/// hit interrupted, innermost first (trap context: no allocation).
fn record_stack(regs: &PtRegs, pid: u32) {
    let mut frames = [0usize; STACK_DEPTH];
    let count = crate::unwind::stack_trace_save_regs(regs, &mut frames);
    let mut payload = [0u8; STACK_DEPTH * 4];
    for (bytes, &address) in payload.as_chunks_mut::<4>().0.iter_mut().zip(&frames[..count]) {
        bytes.copy_from_slice(&(address as u32).to_le_bytes());
    }
    super::trace::record(STACK_TYPE, pid, &payload[..count * 4]);
}

/// The trapped registers, by Linux's register names.
struct Registers<'a>(&'a PtRegs);

/// In [`WORD_OF`]: a segment register, which a kernel frame does not save
/// ([`segment`] reads it).
const SEGMENT: u8 = u8::MAX;

/// Where each register (indexed by its number) is in a [`PtRegs`]: the
/// index of its field as a `u32` word (each saved register's field is a
/// `u32`), or [`SEGMENT`].
const WORD_OF: [u8; Register::ALL.len()] = {
    use core::mem::offset_of;
    let saved = [
        (Register::Bx, offset_of!(PtRegs, ebx)),
        (Register::Cx, offset_of!(PtRegs, ecx)),
        (Register::Dx, offset_of!(PtRegs, edx)),
        (Register::Si, offset_of!(PtRegs, esi)),
        (Register::Di, offset_of!(PtRegs, edi)),
        (Register::Bp, offset_of!(PtRegs, ebp)),
        (Register::Ax, offset_of!(PtRegs, eax)),
        (Register::OrigAx, offset_of!(PtRegs, error_code)),
        (Register::Ip, offset_of!(PtRegs, eip)),
        (Register::Cs, offset_of!(PtRegs, cs)),
        (Register::Flags, offset_of!(PtRegs, eflags)),
        (Register::Sp, offset_of!(PtRegs, esp)),
    ];
    let mut table = [SEGMENT; Register::ALL.len()];
    let mut i = 0;
    while i < saved.len() {
        let (register, offset) = saved[i];
        assert!(offset % 4 == 0, "a u32 field of a repr(C) struct is 4-aligned");
        table[register as usize] = (offset / 4) as u8;
        i += 1;
    }
    table
};

/// The words a `PtRegs` spans: what a [`WORD_OF`] index stays below.
const PT_REGS_WORDS: usize = size_of::<PtRegs>() / 4;

impl Regs for Registers<'_> {
    /// A table look-up and one load: inlined into a fetch, it reads only
    /// the register asked for (a `match` over the fields, inlined, became
    /// a load of every register up front).
    #[inline(always)]
    fn get(&self, reg: Register) -> u32 {
        match WORD_OF.get(reg as usize) {
            Some(&word) if usize::from(word) < PT_REGS_WORDS => {
                let words = (self.0 as *const PtRegs).cast::<u32>();
                // SAFETY: `word` came from `WORD_OF`: the `offset_of!` of one
                // of `PtRegs`'s `u32` fields over 4 (a multiple of 4, checked
                // as the table was built), so `words + word` is that field:
                // an initialized, aligned `u32` inside the `PtRegs` that
                // `self.0` borrows, read through that shared borrow.
                unsafe { words.add(usize::from(word)).read() }
            }
            _ => segment(reg),
        }
    }
}

/// A segment register of the probed code: the handler's own, since a
/// trap taken in the kernel changes none of them (no privilege change),
/// and neither does a detour or the kretprobe trampoline.
#[cold]
fn segment(reg: Register) -> u32 {
    use x86::segmentation as segments;
    let selector = match reg {
        Register::Es => segments::es(),
        Register::Fs => segments::fs(),
        Register::Gs => segments::gs(),
        Register::Ss => segments::ss(),
        _ => segments::ds(),
    };
    u32::from(selector.bits())
}

/// Kernel memory reads that cannot fault: every page of the range must be
/// present in the kernel's identity map (checked without a lock).
struct KernelMemory;

impl Memory for KernelMemory {
    #[inline]
    fn read(&self, addr: u32, buf: &mut [u8]) -> Result<(), Fault> {
        let start = addr as usize;
        // The common case, an aligned word (a stack slot, a field): it lies
        // in one page, so one check and one read.
        if let Ok(word) = <&mut [u8; 4]>::try_from(&mut *buf)
            && start % 4 == 0
        {
            if !crate::arch::x86::paging::is_present_ram(start) {
                return Err(Fault);
            }
            // SAFETY: as below, for the four bytes of an aligned word, all
            // in the page just checked.
            *word = unsafe { core::ptr::read_volatile(start as *const u32) }.to_le_bytes();
            return Ok(());
        }
        let end = start.checked_add(buf.len()).ok_or(Fault)?;
        let mut page = start & !0xfff;
        while page < end {
            if !crate::arch::x86::paging::is_present_ram(page) {
                return Err(Fault);
            }
            page += 0x1000;
        }
        for (i, byte) in buf.iter_mut().enumerate() {
            // SAFETY: every page of [start, end) is present (checked above)
            // and identity-mapped kernel memory; a volatile byte read of
            // memory another CPU may be writing yields some byte, which is
            // all a trace of it promises.
            *byte = unsafe { core::ptr::read_volatile((start + i) as *const u8) };
        }
        Ok(())
    }
}

/// Symbols for `symbol`/`symstr` arguments and the trace's addresses.
struct KernelSymbolizer;

impl Symbolizer for KernelSymbolizer {
    fn symbolize(&self, addr: u32) -> Option<SymbolInfo<'_>> {
        let symbol = crate::symbols::lookup_address(addr as usize)?;
        Some(SymbolInfo { name: symbol.name, offset: symbol.offset as u32, size: symbol.size as u32 })
    }

    fn is_kretprobe_trampoline(&self, addr: u32) -> bool {
        addr as usize == crate::arch::x86::kprobes::trampoline::address()
    }
}

/// The probe behind an event.
enum Probe {
    Kprobe(&'static EventKprobe),
    Kretprobe(&'static EventKretprobe),
}

impl Probe {
    fn hits(&self) -> usize {
        match self {
            Probe::Kprobe(p) => p.hits.load(Ordering::Relaxed),
            Probe::Kretprobe(p) => p.hits.load(Ordering::Relaxed),
        }
    }

    fn misses(&self) -> usize {
        match self {
            Probe::Kprobe(p) => p.kp.nmissed(),
            Probe::Kretprobe(p) => p.rp.nmissed(),
        }
    }

    fn enabled(&self) -> bool {
        match self {
            Probe::Kprobe(p) => p.enabled.load(Ordering::Relaxed),
            Probe::Kretprobe(p) => p.enabled.load(Ordering::Relaxed),
        }
    }

    /// Arms or disarms the probe (the event's `enable`).
    fn set_enabled(&self, on: bool) -> Result<(), KprobeError> {
        match (self, on) {
            (Probe::Kprobe(p), true) => {
                enable_kprobe(&p.kp)?;
                p.enabled.store(true, Ordering::Relaxed);
            }
            (Probe::Kprobe(p), false) => {
                p.enabled.store(false, Ordering::Relaxed);
                disable_kprobe(&p.kp)?;
            }
            (Probe::Kretprobe(p), true) => {
                enable_kretprobe(&p.rp)?;
                p.enabled.store(true, Ordering::Relaxed);
            }
            (Probe::Kretprobe(p), false) => {
                p.enabled.store(false, Ordering::Relaxed);
                disable_kretprobe(&p.rp)?;
            }
        }
        Ok(())
    }

    /// Unregisters and frees the probe.
    fn remove(self) {
        match self {
            Probe::Kprobe(p) => {
                let _ = unregister_kprobe(&p.kp);
                // SAFETY: made by `Box::leak` in `register`, unregistered
                // just now (no trap path uses it once that returns), and no
                // other reference remains (the event that held it is gone).
                drop(unsafe { Box::from_raw(p as *const EventKprobe as *mut EventKprobe) });
            }
            Probe::Kretprobe(p) => {
                let _ = unregister_kretprobe(&p.rp);
                // SAFETY: as above; calls still in flight reach the
                // kretprobe only through their pool's owner pointer, which
                // unregistration cleared.
                drop(unsafe { Box::from_raw(p as *const EventKretprobe as *mut EventKretprobe) });
            }
        }
    }
}

fn count_hit(probe: &Kprobe, regs: &mut PtRegs) -> PreAction {
    // SAFETY: installed only on the `kp` field, the first field of a
    // `repr(C)` `EventKprobe`.
    let event = unsafe { &*(probe as *const Kprobe as *const EventKprobe) };
    if event.enabled.load(Ordering::Relaxed) {
        event.hits.fetch_add(1, Ordering::Relaxed);
        event.recorder.record(regs, regs.eip, 0, 0, &[]);
    }
    PreAction::Continue
}

/// A return event's entry: saves what its `$argN` and parameters read
/// into the instance's private data, for the return to record.
fn capture_entry(instance: &mut KretprobeInstance, regs: &mut PtRegs) -> EntryAction {
    let Some(rp) = instance.kretprobe() else { return EntryAction::Report };
    // SAFETY: installed only on the `rp` field, the first field of a
    // `repr(C)` `EventKretprobe`.
    let event = unsafe { &*(rp as *const Kretprobe as *const EventKretprobe) };
    event.recorder.program.capture_entry(&Registers(regs), &KernelMemory, instance.data());
    EntryAction::Report
}

fn count_return(instance: &mut KretprobeInstance, regs: &mut PtRegs) {
    let Some(rp) = instance.kretprobe() else { return };
    // SAFETY: installed only on the `rp` field, the first field of a
    // `repr(C)` `EventKretprobe`.
    let event = unsafe { &*(rp as *const Kretprobe as *const EventKretprobe) };
    if event.enabled.load(Ordering::Relaxed) {
        event.hits.fetch_add(1, Ordering::Relaxed);
        let function = rp.kp.addr().unwrap_or(0) as u32;
        let duration = match event.recorder.timed {
            true => {
                crate::arch::x86::apic::tsc_to_ns(crate::arch::cpu::rdtsc().saturating_sub(instance.entry_timestamp()))
            }
            false => 0,
        };
        event.recorder.record(regs, function, regs.eip, duration, instance.data());
    }
}

/// One defined event.
struct Event {
    definition: ProbeDefinition,
    probe: Probe,
    /// The event's id in its `format` file.
    id: u32,
    /// Its fields, for filters and triggers.
    fields: EventFields,
    /// Its `filter` file (what reads show; the handler's copy is published
    /// in the recorder).
    filter: FilterFile,
    /// Its triggers (the handler's copy, published in the recorder, shares
    /// their counts and tables).
    triggers: Triggers,
}

impl Event {
    fn recorder(&self) -> &Recorder {
        probe_recorder(&self.probe)
    }
}

/// The recorder of a probe's hits.
fn probe_recorder(probe: &Probe) -> &Recorder {
    match probe {
        Probe::Kprobe(p) => &p.recorder,
        Probe::Kretprobe(p) => &p.recorder,
    }
}

/// Every defined event, in definition order, and the `error_log`.
struct Events {
    events: Vec<Event>,
    next_id: u32,
    errors: VecDeque<String>,
    /// Histograms shared by name (`hist:name=...`) across events.
    named: Option<NamedHists>,
}

/// Linux keeps the last 8 errors (`TRACING_LOG_ERRS_MAX`).
const ERROR_LOG_ENTRIES: usize = 8;
/// Ids of dynamic events start above the kernel's static ones, as in Linux.
const FIRST_EVENT_ID: u32 = 1500;

static EVENTS: spin::Mutex<Events> =
    spin::Mutex::new(Events { events: Vec::new(), next_id: FIRST_EVENT_ID, errors: VecDeque::new(), named: None });

/// Symbol names as a user types them: a full Rust path, or any suffix of
/// one that starts at a `::` and names one function only.
pub struct KernelSymbols;

impl KernelSymbols {
    /// The functions whose name is `name` or ends in `::name`.
    pub fn matches(name: &str) -> impl Iterator<Item = crate::symbols::Symbol> + '_ {
        crate::symbols::iter().filter(move |symbol| {
            symbol.name == name || symbol.name.strip_suffix(name).is_some_and(|head| head.ends_with("::"))
        })
    }
}

impl SymbolResolver for KernelSymbols {
    fn address_of(&self, name: &str) -> Option<usize> {
        if let Some(symbol) = crate::symbols::lookup_name(name) {
            return Some(symbol.address);
        }
        let mut matches = Self::matches(name);
        match (matches.next(), matches.next()) {
            (Some(symbol), None) => Some(symbol.address),
            _ => None,
        }
    }

    fn symbol_count(&self, name: &str) -> usize {
        if crate::symbols::lookup_name(name).is_some() {
            return 1;
        }
        Self::matches(name).count()
    }

    /// From the parameter table the post-link tool wrote from DWARF
    /// (`crate::symbols::params_of`): each parameter's place at the entry.
    fn function_params(&self, symbol: &str) -> ParamLookup<'_> {
        if crate::symbols::params_table().is_err() {
            return ParamLookup::Unsupported;
        }
        let Some(params) = self.address_of(symbol).and_then(crate::symbols::params_of) else {
            return ParamLookup::NoEntry;
        };
        ParamLookup::Params(params.iter().map(|param| probe_param(&param)).collect())
    }
}

/// A parameter of the kernel's table as the probe-events crate takes it.
pub fn probe_param(param: &ksyms_table::params::Param<'static>) -> Param<'static> {
    use ksyms_table::params::{Class, Location, Reg};
    let place = match param.location {
        Location::Register(reg) => Some(Place::Register(match reg {
            Reg::Eax => Register::Ax,
            Reg::Ecx => Register::Cx,
            Reg::Edx => Register::Dx,
            Reg::Ebx => Register::Bx,
            Reg::Esp => Register::Sp,
            Reg::Ebp => Register::Bp,
            Reg::Esi => Register::Si,
            Reg::Edi => Register::Di,
        })),
        Location::Stack(offset) => Some(Place::Stack(offset)),
        Location::Unavailable(_) => None,
    };
    let class = match param.class {
        Class::Signed => ParamClass::Signed,
        Class::Unsigned => ParamClass::Unsigned,
        Class::Pointer => ParamClass::Pointer,
        Class::CharPointer => ParamClass::CharPointer,
        Class::Float => ParamClass::Float,
        Class::Other => ParamClass::Other,
    };
    Param { name: param.name, type_name: param.type_name, size: param.size, place, class }
}

/// What a probe at the entry of `function` (a full path or a unique
/// `::`-suffix) can fetch by name, as `perf probe -V FUNCTION` lists a
/// function's variables: the parameters readable at the entry in
/// declaration order (`TYPE<TAB>NAME`), then those that are not, marked
/// `[INV]` (perf's mark for a variable without a location there) with
/// the reason. `Err` holds the console's answer when there is no list.
pub fn available_args(function: &str) -> Result<String, String> {
    let address = match KernelSymbols::address_of(&KernelSymbols, function) {
        Some(address) => address,
        None => {
            let candidates: Vec<&str> = KernelSymbols::matches(function).map(|symbol| symbol.name).take(8).collect();
            return Err(if candidates.len() > 1 {
                alloc::format!("\"{function}\" is not unique; it could be: {}", candidates.join(", "))
            } else {
                alloc::format!("no function \"{function}\"")
            });
        }
    };
    let name = crate::symbols::lookup_address(address).map_or(function, |symbol| symbol.name);
    if let Err(reason) = crate::symbols::params_table() {
        return Err(alloc::format!("no parameter table in this image ({reason})"));
    }
    let Some(params) = crate::symbols::params_of(address) else {
        return Err(alloc::format!("no parameter information for {name}"));
    };
    let mut out = alloc::format!("Available variables at {name}\n\t@<{name}+0>\n");
    let mut listed = false;
    for param in params.iter().filter(|p| !p.name.is_empty() && probe_param(p).place.is_some()) {
        let _ = writeln!(out, "\t\t{}\t{}", param.type_name, param.name);
        listed = true;
    }
    for param in params.iter() {
        let why = match param.location {
            _ if param.name.is_empty() => "unnamed",
            ksyms_table::params::Location::Unavailable(why) => why.reason(),
            _ => continue,
        };
        let name = if param.name.is_empty() { "_" } else { param.name };
        let _ = writeln!(out, "\t\t[INV]\t{}\t{name}\t({why})", param.type_name);
        listed = true;
    }
    if !listed {
        out.push_str("\t\t(No matched variables)\n");
    }
    Ok(out)
}

/// The time an `error_log` entry carries: ns since boot, at the tick.
fn now_ns() -> u64 {
    crate::task::ticks() * (1_000_000_000 / crate::arch::x86::pit::HZ as u64)
}

impl Events {
    fn log(&mut self, error: &CommandError) {
        for entry in error.entries() {
            self.log_entry(entry);
        }
    }

    fn log_entry(&mut self, entry: &ProbeError) {
        self.log_text(entry.error_log_entry(now_ns()));
    }

    /// Logs a filter's or trigger's error (the `event-filter` crate's
    /// entries, in the same `error_log` format).
    fn log_filter_entry(&mut self, entry: &event_filter::LogEntry) {
        self.log_text(entry.error_log_entry(now_ns()));
    }

    /// Keeps an `error_log` entry, dropping the oldest past Linux's count.
    fn log_text(&mut self, text: String) {
        if self.errors.len() == ERROR_LOG_ENTRIES {
            self.errors.pop_front();
        }
        self.errors.push_back(text);
    }

    /// Runs one command line written to `kprobe_events`.
    fn command(&mut self, line: &str, interface: Interface) -> Result<(), Errno> {
        match probe_events::parse_command(line, interface, &KernelSymbols) {
            Ok(Command::Empty) => Ok(()),
            Ok(Command::Create(definition)) => self.create(definition),
            Ok(Command::Remove(removal)) => {
                // `kprobe_events` removes only kprobe events, as in Linux.
                let visible = |def: &ProbeDefinition| interface == Interface::DynamicEvents || !def.kind().is_fprobe();
                let matching: Vec<usize> = (0..self.events.len())
                    .filter(|&i| visible(&self.events[i].definition) && removal.matches(&self.events[i].definition))
                    .collect();
                if matching.is_empty() {
                    return Err(Errno::NoEntry);
                }
                if matching.iter().any(|&i| self.events[i].probe.enabled()) {
                    return Err(Errno::Busy);
                }
                for i in matching.into_iter().rev() {
                    self.events.remove(i).probe.remove();
                }
                Ok(())
            }
            Err(error) => {
                self.log(&error);
                match error.kind() {
                    Some(probe_events::ErrorKind::NonUniqSymbol) => hint_candidates(line),
                    Some(probe_events::ErrorKind::BadProbeAddr) => hint_nearest(line),
                    _ => {}
                }
                Err(errno(error.errno()))
            }
        }
    }

    fn create(&mut self, definition: ProbeDefinition) -> Result<(), Errno> {
        let same_name: Vec<&ProbeDefinition> = self
            .events
            .iter()
            .filter(|e| e.definition.group() == definition.group() && e.definition.event() == definition.event())
            .map(|e| &e.definition)
            .collect();
        // Linux's multiprobe events: a definition with an existing event's
        // name (and the same arguments) adds a probe to that event.
        let appending_to = if same_name.is_empty() {
            None
        } else {
            if let Err(error) = definition.check_append(&same_name) {
                self.log(&error);
                return Err(errno(error.errno()));
            }
            self.events
                .iter()
                .position(|e| e.definition.group() == definition.group() && e.definition.event() == definition.event())
        };
        let address = match definition.location() {
            ProbeLocation::Address(address) => *address as usize,
            ProbeLocation::Symbol { symbol, offset } => match KernelSymbols.address_of(symbol) {
                Some(base) => base + *offset as usize,
                None => return self.refuse(&definition, probe_events::ErrorKind::BadProbeAddr),
            },
        };
        let program = match FetchProgram::compile(&definition, &KernelSymbols, CallingConvention::Stack) {
            Ok(program) => program,
            Err(error) => {
                self.log(&error);
                return Err(errno(error.errno()));
            }
        };
        let id = appending_to.map_or(self.next_id, |first| self.events[first].id);
        let recorder = Recorder::new(id as u16, program, &definition);
        let probe = match register(&definition, address, recorder) {
            Ok(probe) => probe,
            Err(error) => {
                let kind = match error {
                    KprobeError::NotInstructionBoundary => probe_events::ErrorKind::BadInsnBndry,
                    KprobeError::UnknownSymbol | KprobeError::OutsideKernelText | KprobeError::NotInFunction => {
                        probe_events::ErrorKind::BadProbeAddr
                    }
                    _ => probe_events::ErrorKind::FailRegProbe,
                };
                return self.refuse(&definition, kind);
            }
        };
        let Some(first) = appending_to else {
            self.next_id += 1;
            let fields = EventFields::from_definition(&definition);
            self.events.push(Event {
                definition,
                probe,
                id,
                fields,
                filter: FilterFile::new(),
                triggers: Triggers::new(),
            });
            return Ok(());
        };
        // The new probe shares the event's filter, triggers (their counts
        // and tables) and state, as one event in Linux.
        let event = &self.events[first];
        let (fields, filter, triggers) = (event.fields.clone(), event.filter.clone(), event.triggers.clone());
        let enabled = event.probe.enabled();
        publish(&probe_recorder(&probe).filter, filter.filter().cloned());
        publish(&probe_recorder(&probe).triggers, (!triggers.is_empty()).then(|| triggers.clone()));
        if enabled && probe.set_enabled(true).is_err() {
            probe.remove();
            return Err(Errno::Invalid);
        }
        let at = self.events.iter().rposition(|e| e.id == id).map_or(self.events.len(), |last| last + 1);
        self.events.insert(at, Event { definition, probe, id, fields, filter, triggers });
        Ok(())
    }

    fn refuse(&mut self, definition: &ProbeDefinition, kind: probe_events::ErrorKind) -> Result<(), Errno> {
        let error = definition.registration_error(kind);
        self.log(&error);
        Err(errno(error.errno()))
    }
}

/// Registers `definition`'s probe at `address`, disabled (its event's
/// `enable` arms it).
fn register(definition: &ProbeDefinition, address: usize, recorder: Recorder) -> Result<Probe, KprobeError> {
    let at = address as *const ();
    if definition.kind().is_return() {
        let maxactive = definition.maxactive() as i32;
        let mut rp = Kretprobe::new().address(at).handler(count_return).maxactive(maxactive);
        // `$argN` and parameters are read at the entry, kept in the
        // instance until the return.
        let entry_data = recorder.program.entry_data_size();
        if entry_data > 0 {
            rp = rp.entry_handler(capture_entry).data_size(entry_data);
        }
        let event: &'static EventKretprobe = Box::leak(Box::new(EventKretprobe {
            rp,
            hits: AtomicUsize::new(0),
            enabled: AtomicBool::new(false),
            recorder,
        }));
        if let Err(error) = register_kretprobe(&event.rp).and_then(|()| disable_kretprobe(&event.rp)) {
            let _ = unregister_kretprobe(&event.rp);
            // SAFETY: leaked just above and unregistered (or never
            // registered): nothing refers to it.
            drop(unsafe { Box::from_raw(event as *const EventKretprobe as *mut EventKretprobe) });
            return Err(error);
        }
        Ok(Probe::Kretprobe(event))
    } else {
        let event: &'static EventKprobe = Box::leak(Box::new(EventKprobe {
            kp: Kprobe::new().address(at).pre_handler(count_hit),
            hits: AtomicUsize::new(0),
            enabled: AtomicBool::new(false),
            recorder,
        }));
        if let Err(error) = register_kprobe(&event.kp).and_then(|()| disable_kprobe(&event.kp)) {
            let _ = unregister_kprobe(&event.kp);
            // SAFETY: as above.
            drop(unsafe { Box::from_raw(event as *const EventKprobe as *mut EventKprobe) });
            return Err(error);
        }
        Ok(Probe::Kprobe(event))
    }
}

/// The console's errno for the crate's.
fn errno(errno: probe_events::Errno) -> Errno {
    match errno {
        probe_events::Errno::NoEnt => Errno::NoEntry,
        probe_events::Errno::TooBig => Errno::TooBig,
        probe_events::Errno::NoMem => Errno::NoMemory,
        probe_events::Errno::Exist => Errno::Exists,
        probe_events::Errno::Inval => Errno::Invalid,
        probe_events::Errno::IlSeq => Errno::IllegalSequence,
        probe_events::Errno::OpNotSupp => Errno::NotSupported,
    }
}

/// An ambiguous name was refused (Linux's "The symbol is not unique"):
/// says on the console which functions it could mean, so the user can
/// pick one by a longer suffix.
fn hint_candidates(line: &str) {
    let Some(name) = line.split_ascii_whitespace().nth(1) else { return };
    let name = name.split(['+', '%']).next().unwrap_or(name);
    let candidates: Vec<&str> = KernelSymbols::matches(name).map(|symbol| symbol.name).take(8).collect();
    if candidates.len() > 1 {
        crate::println!("\"{name}\" could be: {}", candidates.join(", "));
    }
}

/// An unknown name was refused ("Invalid probed address or symbol"): says
/// on the console which functions it may have meant, the nearest by edit
/// distance, so a typo costs one look instead of a search of kallsyms.
fn hint_nearest(line: &str) {
    let Some(name) = line.split_ascii_whitespace().nth(1) else { return };
    let name = name.split(['+', '%']).next().unwrap_or(name);
    if name.is_empty()
        || name.starts_with(|c: char| c.is_ascii_digit())
        || KernelSymbols::matches(name).next().is_some()
    {
        return; // an address, or a name that exists (the offset was bad)
    }
    let nearest = nearest_names(name, crate::symbols::iter().map(|symbol| symbol.name));
    if !nearest.is_empty() {
        crate::println!("no function \"{name}\"; did you mean: {}?", nearest.join(", "));
    }
}

/// How many suggestions [`nearest_names`] makes at most.
const SUGGESTIONS: usize = 3;

/// The names among `names` closest to `typed`, best first (ties in the
/// order given), at most `SUGGESTIONS` (3): a name's distance is the edit
/// distance from `typed` to its last path component or, if `typed` has
/// `::` in it, to as many trailing components as `typed` has. Only names
/// within a third of `typed`'s length (at least 1, at most 3 edits) count.
pub fn nearest_names<'a>(typed: &str, names: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let components = typed.split("::").count();
    let limit = (typed.len() / 3).clamp(1, 3);
    let mut best: Vec<(usize, &'a str)> = Vec::new();
    for name in names {
        let tail = match name.rmatch_indices("::").nth(components - 1) {
            Some((at, _)) => &name[at + 2..],
            None => name,
        };
        let distance = edit_distance(typed, tail);
        if distance > limit {
            continue;
        }
        let at = best.iter().position(|&(d, _)| d > distance).unwrap_or(best.len());
        if at < SUGGESTIONS && !best.iter().any(|&(_, n)| n == name) {
            best.insert(at, (distance, name));
            best.truncate(SUGGESTIONS);
        }
    }
    best.into_iter().map(|(_, name)| name).collect()
}

/// Edit distance over bytes (names are ASCII): insertions, deletions,
/// substitutions and swaps of two neighbours (the commonest typo) cost 1
/// each (the optimal string alignment distance).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut before: Vec<usize> = Vec::new(); // row i - 2
    let mut previous: Vec<usize> = (0..=b.len()).collect(); // row i - 1
    for i in 1..=a.len() {
        let mut row = alloc::vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            row[j] = (previous[j] + 1).min(row[j - 1] + 1).min(previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                row[j] = row[j].min(before[j - 2] + 1);
            }
        }
        before = core::mem::replace(&mut previous, row);
    }
    previous[b.len()]
}

/// `kprobe_events`, read: every kprobe event (`p` and `r`) as Linux shows it.
pub fn read_kprobe_events(out: &mut String) {
    for event in EVENTS.lock().events.iter().filter(|event| !event.definition.kind().is_fprobe()) {
        let _ = writeln!(out, "{}", event.definition);
    }
}

/// `dynamic_events`, read: every dynamic event, kprobe and fprobe ones.
pub fn read_dynamic_events(out: &mut String) {
    for event in &EVENTS.lock().events {
        let _ = writeln!(out, "{}", event.definition);
    }
}

/// `kprobe_events`, written: `>` first removes every kprobe event (refused
/// while one is enabled, as Linux), then each line is one command; the
/// first refused line stops the write (those before it took effect).
pub fn write_kprobe_events(data: &str, append: bool) -> Result<(), Errno> {
    write_events(data, append, Interface::KprobeEvents)
}

/// `dynamic_events`, written: as `kprobe_events`, with fprobe events
/// (`f SYM`, `f SYM%return`: a function's entry or return) as well; `>`
/// clears every dynamic event.
pub fn write_dynamic_events(data: &str, append: bool) -> Result<(), Errno> {
    write_events(data, append, Interface::DynamicEvents)
}

fn write_events(data: &str, append: bool, interface: Interface) -> Result<(), Errno> {
    let mut events = EVENTS.lock();
    if !append {
        // `kprobe_events` clears its own kind; `dynamic_events` every kind.
        let cleared = |event: &Event| interface == Interface::DynamicEvents || !event.definition.kind().is_fprobe();
        if events.events.iter().any(|e| cleared(e) && e.probe.enabled()) {
            return Err(Errno::Busy);
        }
        let (gone, kept): (Vec<Event>, Vec<Event>) = core::mem::take(&mut events.events).into_iter().partition(cleared);
        events.events = kept;
        for event in gone {
            event.probe.remove();
        }
    }
    for line in probe_events::write_lines(data) {
        match line {
            Ok(line) => events.command(line, interface)?,
            Err(error) => {
                events.log(&error);
                return Err(errno(error.errno()));
            }
        }
    }
    Ok(())
}

/// `kprobe_profile`: per event, its hits and misses, in Linux's columns.
pub fn read_kprobe_profile(out: &mut String) {
    for event in &EVENTS.lock().events {
        let _ =
            writeln!(out, "  {:<44} {:>15} {:>15}", event.definition.event(), event.probe.hits(), event.probe.misses());
    }
}

/// `error_log`, read: the last errors, oldest first.
pub fn read_error_log(out: &mut String) {
    for entry in &EVENTS.lock().errors {
        out.push_str(entry);
    }
}

/// `error_log`, written with `>`: clears it (as Linux; `>>` changes nothing).
pub fn write_error_log(_data: &str, append: bool) -> Result<(), Errno> {
    if !append {
        EVENTS.lock().errors.clear();
    }
    Ok(())
}

/// The event files: `events/GROUP/EVENT/{enable,format}` and
/// `events/GROUP/enable`, as paths below `/sys/kernel/tracing/`.
pub fn paths() -> Vec<String> {
    let events = EVENTS.lock();
    let mut paths = Vec::new();
    for (i, event) in events.events.iter().enumerate() {
        // A multiprobe event's later probes share its directory.
        if events.events[..i].iter().any(|earlier| earlier.id == event.id) {
            continue;
        }
        let (group, name) = (event.definition.group(), event.definition.event());
        for file in EVENT_FILES {
            paths.push(alloc::format!("events/{group}/{name}/{file}"));
        }
        let group_enable = alloc::format!("events/{group}/enable");
        if !paths.contains(&group_enable) {
            paths.push(group_enable);
        }
    }
    paths
}

/// The files of each event's directory: Linux's, and `hist_bars` (the
/// log2 histograms drawn as bpftrace draws them: beyond Linux).
const EVENT_FILES: [&str; 6] = ["enable", "filter", "format", "hist", "hist_bars", "trigger"];

/// What an event file is: `(group, event, file)` of one event's, or a
/// group's `enable`.
pub enum EventFile<'a> {
    /// `events/GROUP/EVENT/FILE`, FILE one of `EVENT_FILES`.
    Event(&'a str, &'a str, &'a str),
    /// `events/GROUP/enable`.
    GroupEnable(&'a str),
}

/// `path` (below `/sys/kernel/tracing/`) as an event file, if it names one
/// of an existing event.
pub fn event_file(path: &str) -> Option<EventFile<'_>> {
    if !paths().iter().any(|p| p == path) {
        return None;
    }
    match path.strip_prefix("events/")?.split('/').collect::<Vec<_>>()[..] {
        [group, "enable"] => Some(EventFile::GroupEnable(group)),
        [group, event, file] => Some(EventFile::Event(group, event, file)),
        _ => None,
    }
}

impl EventFile<'_> {
    /// The events the file is about: its event, or its group's.
    fn selects(&self, event: &Event) -> bool {
        let (group, name) = match *self {
            EventFile::Event(group, name, _) => (group, Some(name)),
            EventFile::GroupEnable(group) => (group, None),
        };
        event.definition.group() == group && name.is_none_or(|name| event.definition.event() == name)
    }

    /// The file's name within its directory.
    fn name(&self) -> &str {
        match *self {
            EventFile::Event(_, _, file) => file,
            EventFile::GroupEnable(_) => "enable",
        }
    }
}

/// Reads an event file.
pub fn read_event_file(file: &EventFile, out: &mut String) {
    let events = EVENTS.lock();
    let mut selected = events.events.iter().filter(|event| file.selects(event));
    match file.name() {
        "format" => {
            if let Some(event) = selected.next() {
                out.push_str(&event.definition.format_file(event.id));
            }
        }
        "filter" => {
            if let Some(event) = selected.next() {
                out.push_str(&event.filter.read());
            }
        }
        "trigger" => {
            if let Some(event) = selected.next() {
                out.push_str(&event.triggers.read());
            }
        }
        "hist" => {
            if let Some(event) = selected.next() {
                out.push_str(&event.triggers.read_hist(&KernelSymbolizer));
            }
        }
        "hist_bars" => {
            if let Some(event) = selected.next() {
                for hist in event.triggers.iter().filter_map(|trigger| trigger.as_hist()) {
                    if hist.write_log2_bars(out) {
                        out.push('\n');
                    }
                }
            }
        }
        _ => out.push_str(enable_state(selected)),
    }
}

/// The state of some events as an `enable` file shows it: Linux's `0` or
/// `1` when all agree, `X` when they differ.
fn enable_state<'e>(events: impl Iterator<Item = &'e Event>) -> &'static str {
    let (mut on, mut off) = (false, false);
    for event in events {
        if event.probe.enabled() { on = true } else { off = true }
    }
    match (on, off) {
        (true, true) => "X\n",
        (true, false) => "1\n",
        (false, _) => "0\n",
    }
}

/// An `enable` file written: `1` (or `0`) enables (disables) every one of
/// `events` not so yet.
fn set_enabled<'e>(events: impl Iterator<Item = &'e Event>, data: &str) -> Result<(), Errno> {
    let on = super::parse_switch(data)?;
    // The trace buffer exists before any handler may record (they never
    // allocate it themselves).
    super::trace::buffer();
    for event in events.filter(|event| event.probe.enabled() != on) {
        event.probe.set_enabled(on).map_err(|_| Errno::Invalid)?;
    }
    Ok(())
}

/// Writes an event file: `enable` (`0` or `1`), `filter` (a filter, or
/// `0` to clear it) or `trigger` (a trigger to add, `!trigger` to remove
/// one). `format` and the histograms are read-only.
pub fn write_event_file(file: &EventFile, data: &str) -> Result<(), Errno> {
    match file.name() {
        "filter" => return write_filter(file, data),
        "trigger" => return write_trigger(file, data),
        "enable" => {}
        _ => return Err(Errno::PermissionDenied),
    }
    let events = EVENTS.lock();
    set_enabled(events.events.iter().filter(|event| file.selects(event)), data)
}

/// `events/enable`: every event's state, `0`, `1` or `X` (mixed).
pub fn read_all_enable(out: &mut String) {
    out.push_str(enable_state(EVENTS.lock().events.iter()));
}

/// `events/enable`, written: `1` enables every event, `0` disables them
/// all (the selftests' first and last step).
pub fn write_all_enable(data: &str, _append: bool) -> Result<(), Errno> {
    set_enabled(EVENTS.lock().events.iter(), data)
}

/// An event's `filter`, written: parsed against its fields, then
/// published to its handler (or cleared by `0`). A refused filter changes
/// nothing and is logged in `error_log` with Linux's text and caret.
fn write_filter(file: &EventFile, data: &str) -> Result<(), Errno> {
    let mut guard = EVENTS.lock();
    let events = &mut *guard;
    let Some(event) = events.events.iter_mut().find(|event| file.selects(event)) else { return Err(Errno::NoEntry) };
    let mut next = event.filter.clone();
    let update = next.write(data, &event.fields);
    // Every probe of the event (a multiprobe event has several) takes the
    // file's new text, refused or not, as Linux's one event file shows it.
    for event in events.events.iter_mut().filter(|event| file.selects(event)) {
        event.filter = next.clone();
        match &update {
            Ok(FilterUpdate::Cleared) => publish(&event.recorder().filter, None),
            Ok(FilterUpdate::Set(filter)) => publish(&event.recorder().filter, Some(filter.clone())),
            Err(_) => {}
        }
    }
    if let Err(error) = update {
        events.log_filter_entry(&error.log_entry());
        return Err(filter_errno(error.errno()));
    }
    Ok(())
}

/// An event's `trigger`, written: the command applied to a copy of its
/// triggers, which then replaces the handler's (the copy shares counts
/// and histogram tables). A refused command changes nothing.
fn write_trigger(file: &EventFile, data: &str) -> Result<(), Errno> {
    // The trace buffer exists before a trigger may act on it.
    super::trace::buffer();
    let mut guard = EVENTS.lock();
    let events = &mut *guard;
    let named = events.named.get_or_insert_with(NamedHists::new);
    let Some(event) = events.events.iter_mut().find(|event| file.selects(event)) else { return Err(Errno::NoEntry) };
    let mut next = event.triggers.clone();
    if let Err(error) = next.write(data, &event.fields, named) {
        let errno = filter_errno(error.errno());
        for entry in error.entries() {
            events.log_filter_entry(entry);
        }
        return Err(errno);
    }
    // Every probe of the event fires the same triggers (clones share their
    // counts and histogram tables).
    for event in events.events.iter_mut().filter(|event| file.selects(event)) {
        event.triggers = next.clone();
        publish(&event.recorder().triggers, (!next.is_empty()).then(|| next.clone()));
    }
    Ok(())
}

/// The console's errno for the `event-filter` crate's.
fn filter_errno(errno: event_filter::Errno) -> Errno {
    match errno {
        event_filter::Errno::Perm => Errno::NotPermitted,
        event_filter::Errno::NoEnt => Errno::NoEntry,
        event_filter::Errno::Srch => Errno::NoSuchProcess,
        event_filter::Errno::NoMem => Errno::NoMemory,
        event_filter::Errno::Exist => Errno::Exists,
        event_filter::Errno::Inval => Errno::Invalid,
        event_filter::Errno::Range => Errno::OutOfRange,
    }
}

/// Writes the record of event `type_id` as the trace line shows it after
/// the task, CPU and time columns (task context).
/// `fatal`: from a fatal report, which must not wait for the events' lock
/// (if the crashed code held it, the record prints as its type alone).
pub fn format_record(type_id: u16, record: &[u8], out: &mut impl Write, fatal: bool) {
    let events = if fatal {
        match EVENTS.try_lock() {
            Some(events) => events,
            None => {
                let _ = write!(out, "event type {type_id} (event definitions busy)");
                return;
            }
        }
    } else {
        EVENTS.lock()
    };
    if type_id == STACK_TYPE {
        let _ = out.write_str("<stack trace>");
        for address in record.as_chunks::<4>().0.iter().map(|bytes| u32::from_le_bytes(*bytes)) {
            let _ = out.write_str("\n => ");
            let _ = probe_events::eval::write_symbol(out, address, &KernelSymbolizer);
        }
        return;
    }
    match events.events.iter().find(|e| e.id as u16 == type_id) {
        Some(event) => {
            let _ = event.definition.format_event(record, &KernelSymbolizer, out);
        }
        // Removed since: its definition is gone, as ftrace prints then.
        None => {
            let _ = write!(out, "Unknown event type {type_id}");
        }
    }
}

/// Linux's `kprobe_event=` boot parameter: events separated by `;`, the
/// words of each by `,` (`p:myprobe,demo::checksum,%ax;r,demo::checksum`),
/// each defined as a `kprobe_events` line and, as in Linux, enabled. A
/// refused event is reported (its `error_log` entry printed) and the rest
/// go on. Returns how many events were defined.
pub fn boot_events(parameter: &str) -> usize {
    let mut defined = 0;
    for event in parameter.split(';').filter(|event| !event.is_empty()) {
        let line = event.replace(',', " ");
        let errors_before = EVENTS.lock().errors.len();
        if let Err(error) = write_kprobe_events(&line, true) {
            crate::println!("kprobe_event: \"{line}\" refused: {error}");
            let events = EVENTS.lock();
            for entry in events.errors.iter().skip(errors_before) {
                crate::print!("{entry}");
            }
            continue;
        }
        defined += 1;
    }
    super::trace::buffer();
    let events = EVENTS.lock();
    for event in &events.events {
        if let Err(error) = event.probe.set_enabled(true) {
            crate::println!("kprobe_event: {} not enabled: {error}", event.definition.event());
        }
    }
    defined
}

#[cfg(test)]
mod tests {
    use super::{edit_distance, nearest_names};

    #[test_case]
    fn edit_distance_counts_insertions_deletions_and_substitutions() {
        assert_eq!(edit_distance("checksum", "checksum"), 0);
        assert_eq!(edit_distance("chksum", "checksum"), 2);
        assert_eq!(edit_distance("checksun", "checksum"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("spwan", "spawn"), 1, "a swap of neighbours is one edit");
    }

    #[test_case]
    fn a_typo_suggests_the_nearest_functions_best_first() {
        let names = ["demo::checksum", "demo::check_sum", "net::checks", "sched::spawn", "x::chksum"];
        assert_eq!(
            nearest_names("checksun", names.iter().copied()),
            ["demo::checksum", "demo::check_sum", "net::checks"]
        );
        assert_eq!(nearest_names("spwan", names.iter().copied()), ["sched::spawn"]);
        // With a path, as many trailing components are compared.
        assert_eq!(nearest_names("demo::checksun", names.iter().copied()), ["demo::checksum", "demo::check_sum"]);
        // Nothing near: no suggestion.
        assert!(nearest_names("zzzzzzzz", names.iter().copied()).is_empty());
    }
}
