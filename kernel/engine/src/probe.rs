//! The probe type users declare: [`Kprobe`], its handlers and its flags.
//!
//! A `Kprobe` is built with `const` methods so it can live in a `static`
//! (probes must outlive their registration), and every field the engine
//! changes is atomic, so the trap path reads it without locks.
use crate::arch::imp::PtRegs;
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicUsize, Ordering};

/// What a pre-handler asks for.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreAction {
    /// Run the probed instruction as usual (Linux: return 0).
    Continue,
    /// The handler set `regs.eip` itself: skip the probed instruction, run
    /// no further handlers at this address, resume at `regs.eip`
    /// (Linux: return non-zero).
    Redirected,
}

/// What a fault handler did with a fault.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultAction {
    /// The handler repaired `regs`; resume there.
    Handled,
    /// Not handled: the fault is reported (naming the probe) as fatal.
    NotHandled,
}

/// A pre-handler: runs before the probed instruction, with `regs.eip` the
/// probe address. Any function (or closure that captures nothing) of type
/// `fn(&Kprobe, &mut PtRegs) -> PreAction` is one.
///
/// Every handler (pre, post, fault, jprobe, kretprobe) runs in trap context
/// with interrupts off: it must not sleep, yield, allocate, or take a lock
/// that the interrupted code may hold. It may print (the console takes no
/// lock) and may call probed code: those hits count as misses.
///
/// A handler is given by name, not as a `fn` pointer: the builder keeps a
/// `fastcall` adapter made for that one function (see [`Kprobe::pre_handler`]),
/// which the engine's assembly calls directly, with the handler inlined
/// into it where the compiler sees fit. A value that is not zero-sized (a
/// `fn` pointer, a closure that captures) is refused at compile time.
pub trait PreHandler: Fn(&Kprobe, &mut PtRegs) -> PreAction + Copy + 'static {}
impl<F: Fn(&Kprobe, &mut PtRegs) -> PreAction + Copy + 'static> PreHandler for F {}

/// A post-handler: runs after the probed instruction, with `regs.eip`
/// where execution goes on. Given by name, as a [`PreHandler`].
pub trait PostHandler: Fn(&Kprobe, &mut PtRegs) + Copy + 'static {}
impl<F: Fn(&Kprobe, &mut PtRegs) + Copy + 'static> PostHandler for F {}

/// A fault handler: runs when a handler of this probe, or its out-of-line
/// step, faults; `trap` is the exception vector. Given by name, as a
/// [`PreHandler`].
pub trait FaultHandler: Fn(&Kprobe, &mut PtRegs, u8) -> FaultAction + Copy + 'static {}
impl<F: Fn(&Kprobe, &mut PtRegs, u8) -> FaultAction + Copy + 'static> FaultHandler for F {}

/// A pre-handler as the engine keeps and calls it: `fastcall` (the frame
/// in ECX, the probe in EDX), returning whether the handler redirected
/// the hit. The fast lanes call it from assembly with no stack arguments
/// to push or pop, and assume nothing of Rust's own ABI.
pub(crate) type RawPreHandler = extern "fastcall" fn(&mut PtRegs, &Kprobe) -> bool;
/// A post-handler as the engine keeps and calls it (see [`RawPreHandler`]).
pub(crate) type RawPostHandler = extern "fastcall" fn(&mut PtRegs, &Kprobe);
/// A fault handler as the engine keeps and calls it (only from Rust).
pub(crate) type RawFaultHandler = fn(&Kprobe, &mut PtRegs, u8) -> FaultAction;

/// Refuses, at compile time, a handler type that is not zero-sized (see
/// [`PreHandler`]): the adapters make its value out of nothing.
pub(crate) const fn check_handler_type<F>() {
    const {
        assert!(
            core::mem::size_of::<F>() == 0,
            "a probe handler is given by name (a fn item or a closure that captures nothing), not as a fn pointer"
        )
    }
}

/// The value of a handler type a builder was given (see
/// [`check_handler_type`]), for its adapter to call.
#[inline(always)]
pub(crate) fn handler_value<F: Copy + 'static>() -> F {
    check_handler_type::<F>();
    // SAFETY: `F` is zero-sized (checked above at compile time), so its
    // values have no bytes: a value made from no bytes is bit for bit a
    // copy of any other. One exists: only a builder instantiates an adapter
    // for `F`, and it was handed a value of `F` (so `F` is inhabited). And
    // `F: Copy` lets any number of copies of that value exist, so making
    // one here breaks no invariant of `F` (a zero-sized token that must
    // stay unique could not be `Copy`).
    unsafe { core::mem::zeroed() }
}

extern "fastcall" fn pre_adapter<F: PreHandler>(regs: &mut PtRegs, probe: &Kprobe) -> bool {
    handler_value::<F>()(probe, regs) == PreAction::Redirected
}

extern "fastcall" fn post_adapter<F: PostHandler>(regs: &mut PtRegs, probe: &Kprobe) {
    handler_value::<F>()(probe, regs)
}

fn fault_adapter<F: FaultHandler>(probe: &Kprobe, regs: &mut PtRegs, trap: u8) -> FaultAction {
    handler_value::<F>()(probe, regs, trap)
}

/// The lane entry of a plain probe without a pre-handler (never fast, so
/// never called by a lane): nothing to run, no redirect.
extern "fastcall" fn no_pre_handler(_regs: &mut PtRegs, _probe: &'static Kprobe) -> bool {
    false
}

bitflags::bitflags! {
    /// A probe's state, as Linux's `KPROBE_FLAG_*`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct KprobeFlags: u32 {
        /// Not registered (never, or no longer).
        const GONE = 1 << 0;
        /// Registered but disabled: its handlers do not run.
        const DISABLED = 1 << 1;
        /// Its address runs the boosted copy (no single-step trap).
        const BOOSTED = 1 << 2;
        /// Jump-optimized: its address holds a `jmp` to a detour instead of
        /// a breakpoint (see `set_optimization`).
        const OPTIMIZED = 1 << 3;
    }
}

/// What the engine does at this probe's hits (set by the constructors of
/// plain probes, jprobes and kretprobes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ProbeKind {
    Plain,
    Jprobe,
    Kretprobe,
}

/// Where a probe goes, as the user said it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Location {
    Unset,
    Address(*const ()),
    Symbol(&'static str, usize),
    /// Both an address and a symbol were given (refused at registration).
    Both,
}

/// A breakpoint probe on one kernel instruction.
///
/// ```ignore
/// use probe_engine::{Kprobe, PreAction, PtRegs, register_kprobe};
///
/// fn before(probe: &Kprobe, regs: &mut PtRegs) -> PreAction {
///     my_kernel::println!("hit {:#x}, eax={:#x}", regs.eip, regs.eax);
///     PreAction::Continue
/// }
///
/// static PROBE: Kprobe = Kprobe::new().symbol("my_crate::work", 0).pre_handler(before);
///
/// register_kprobe(&PROBE).expect("probe refused");
/// ```
pub struct Kprobe {
    location: Location,
    pub(crate) pre_handler: Option<RawPreHandler>,
    pub(crate) post_handler: Option<RawPostHandler>,
    pub(crate) fault_handler: Option<RawFaultHandler>,
    pub(crate) kind: ProbeKind,
    /// The resolved address while registered, else 0.
    pub(crate) address: AtomicUsize,
    pub(crate) missed: AtomicUsize,
    pub(crate) flag_bits: AtomicU32,
    /// Next probe at the same address (registration order).
    pub(crate) next: AtomicPtr<Kprobe>,
    /// The jprobe or kretprobe this probe belongs to (set at registration).
    pub(crate) owner: AtomicPtr<()>,
    /// What the assembly fast lanes call for a hit that is nothing but this
    /// probe's entry work (`registry::Site::fast`): its pre-handler's
    /// adapter itself, or a kretprobe's entry. Set by the builders.
    pub(crate) entry: EntryLane,
}

/// The `fastcall` routine a fast lane calls with the frame (ECX) and the
/// probe (EDX) (see `Kprobe::entry`); returns whether a pre-handler
/// redirected the hit. The lanes keep nothing across the call but EBX,
/// ESI and the stack, so a routine in assembly need preserve no other
/// register (`kretprobe_entry` does not); Rust adapters keep them all.
pub(crate) type EntryLane = unsafe extern "fastcall" fn(&mut PtRegs, &'static Kprobe) -> bool;

/// Where the assembly finds a probe's fields (checked by `offset_of!`).
pub(crate) mod layout {
    use super::Kprobe;
    use core::mem::{offset_of, size_of};
    /// `Kprobe::entry`.
    pub const ENTRY: usize = offset_of!(Kprobe, entry);
    /// `Kprobe::owner`: for a kretprobe's entry probe, the `Kretprobe`.
    pub const OWNER: usize = offset_of!(Kprobe, owner);
    /// `Kprobe::pre_handler` (`None` is 0: a `fn` is never null).
    pub const PRE_HANDLER: usize = offset_of!(Kprobe, pre_handler);
    /// `Kprobe::post_handler` (`None` is 0).
    pub const POST_HANDLER: usize = offset_of!(Kprobe, post_handler);
    const _: () =
        assert!(size_of::<Option<super::RawPreHandler>>() == 4 && size_of::<Option<super::RawPostHandler>>() == 4);
}

// SAFETY: the only non-Sync field is the `*const ()` of `Location::Address`,
// a code address that is never dereferenced as data; everything mutable is atomic.
unsafe impl Sync for Kprobe {}

impl Kprobe {
    /// A probe with no location and no handlers yet.
    pub const fn new() -> Self {
        Kprobe {
            location: Location::Unset,
            pre_handler: None,
            post_handler: None,
            fault_handler: None,
            kind: ProbeKind::Plain,
            address: AtomicUsize::new(0),
            missed: AtomicUsize::new(0),
            flag_bits: AtomicU32::new(KprobeFlags::GONE.bits()),
            next: AtomicPtr::new(core::ptr::null_mut()),
            owner: AtomicPtr::new(core::ptr::null_mut()),
            entry: no_pre_handler,
        }
    }

    /// The engine's own sentinel probes: a probe whose entry routine is
    /// `entry` (see `arch::imp::optprobe::GONE`).
    pub(crate) const fn with_entry(mut self, entry: EntryLane) -> Self {
        self.entry = entry;
        self
    }

    /// Probes the instruction at `address` (e.g. `my_function as *const ()`).
    pub const fn address(mut self, address: *const ()) -> Self {
        self.location = match self.location {
            Location::Unset | Location::Address(_) => Location::Address(address),
            Location::Symbol(..) | Location::Both => Location::Both,
        };
        self
    }

    /// Probes the instruction `offset` bytes into the function `name`
    /// (a path as the symbol table spells it, e.g. `my_kernel::sched::spawn`).
    pub const fn symbol(mut self, name: &'static str, offset: usize) -> Self {
        self.location = match self.location {
            Location::Unset | Location::Symbol(..) => Location::Symbol(name, offset),
            Location::Address(_) | Location::Both => Location::Both,
        };
        self
    }

    /// Sets the handler run before the probed instruction: a function (or
    /// a closure that captures nothing), given by name (see [`PreHandler`]).
    pub const fn pre_handler<F: PreHandler>(mut self, handler: F) -> Self {
        check_handler_type::<F>();
        let _ = handler; // zero-sized and `Copy`: nothing to keep or drop
        self.pre_handler = Some(pre_adapter::<F>);
        if let ProbeKind::Plain = self.kind {
            self.entry = pre_adapter::<F>;
        }
        self
    }

    /// Sets the handler run after the probed instruction (such a probe is
    /// never boosted: the post handler needs the single-step trap).
    pub const fn post_handler<F: PostHandler>(mut self, handler: F) -> Self {
        check_handler_type::<F>();
        let _ = handler; // zero-sized and `Copy`: nothing to keep or drop
        self.post_handler = Some(post_adapter::<F>);
        self
    }

    /// Sets the handler for faults in this probe's handlers or step.
    pub const fn fault_handler<F: FaultHandler>(mut self, handler: F) -> Self {
        check_handler_type::<F>();
        let _ = handler; // zero-sized and `Copy`: nothing to keep or drop
        self.fault_handler = Some(fault_adapter::<F>);
        self
    }

    pub(crate) const fn with_kind(mut self, kind: ProbeKind) -> Self {
        self.kind = kind;
        if let ProbeKind::Kretprobe = kind {
            self.entry = crate::arch::imp::trampoline::kretprobe_entry;
        }
        self
    }

    pub(crate) fn location(&self) -> Location {
        self.location
    }

    /// The probed address while registered.
    pub fn addr(&self) -> Option<usize> {
        match self.address.load(Ordering::Acquire) {
            0 => None,
            address => Some(address),
        }
    }

    /// How many hits ran no handlers because another probe's handler or
    /// step was in progress (Linux's `nmissed`).
    pub fn nmissed(&self) -> usize {
        self.missed.load(Ordering::Relaxed)
    }

    /// The probe's flags.
    pub fn flags(&self) -> KprobeFlags {
        KprobeFlags::from_bits_truncate(self.flag_bits.load(Ordering::Acquire))
    }

    /// Whether the probe is registered and enabled.
    pub fn is_enabled(&self) -> bool {
        !self.flags().intersects(KprobeFlags::GONE | KprobeFlags::DISABLED)
    }

    pub(crate) fn set_flag(&self, flag: KprobeFlags, on: bool) {
        if on {
            self.flag_bits.fetch_or(flag.bits(), Ordering::AcqRel);
        } else {
            self.flag_bits.fetch_and(!flag.bits(), Ordering::AcqRel);
        }
    }
}

impl Default for Kprobe {
    fn default() -> Self {
        Self::new()
    }
}
