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

/// Runs before the probed instruction. `regs.eip` is the probe address.
///
/// Every handler (pre, post, fault, jprobe, kretprobe) runs in trap context
/// with interrupts off: it must not sleep, yield, allocate, or take a lock
/// that the interrupted code may hold. It may print (the console takes no
/// lock) and may call probed code: those hits count as misses.
pub type PreHandler = fn(&Kprobe, &mut PtRegs) -> PreAction;
/// Runs after the probed instruction. `regs.eip` is where execution goes on.
pub type PostHandler = fn(&Kprobe, &mut PtRegs);
/// Runs when a handler of this probe, or its out-of-line step, faults.
/// `trap` is the exception vector.
pub type FaultHandler = fn(&Kprobe, &mut PtRegs, trap: u8) -> FaultAction;

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
    pub(crate) pre_handler: Option<PreHandler>,
    pub(crate) post_handler: Option<PostHandler>,
    pub(crate) fault_handler: Option<FaultHandler>,
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
    /// probe's entry work (`registry::Site::fast`): its pre-handler, or a
    /// kretprobe's entry. Set by the constructors with the kind.
    pub(crate) entry: EntryLane,
}

/// The C-ABI routine a fast lane calls with the frame and the probe (see
/// `Kprobe::entry`); returns whether a pre-handler redirected the hit.
pub(crate) type EntryLane = unsafe extern "C" fn(&mut PtRegs, &'static Kprobe) -> bool;

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
    const _: () = assert!(size_of::<Option<super::PreHandler>>() == 4 && size_of::<Option<super::PostHandler>>() == 4);
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
            entry: crate::handler::call_pre_handler,
        }
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

    /// Sets the handler run before the probed instruction.
    pub const fn pre_handler(mut self, handler: PreHandler) -> Self {
        self.pre_handler = Some(handler);
        self
    }

    /// Sets the handler run after the probed instruction (such a probe is
    /// never boosted: the post handler needs the single-step trap).
    pub const fn post_handler(mut self, handler: PostHandler) -> Self {
        self.post_handler = Some(handler);
        self
    }

    /// Sets the handler for faults in this probe's handlers or step.
    pub const fn fault_handler(mut self, handler: FaultHandler) -> Self {
        self.fault_handler = Some(handler);
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
