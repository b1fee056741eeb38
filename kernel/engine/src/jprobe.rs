//! jprobes: a handler with the probed function's own signature, run at the
//! function's entry with its arguments in place (Linux ≤ 4.14).
//!
//! At the hit, the architecture saves the registers and the top of the
//! stack (the arguments) in the control block's save area and sends the CPU
//! to the handler with the probed function's stack: the handler's
//! `extern "C"` parameters *are* the probed function's arguments. The
//! handler ends with [`jprobe_return`]; there the saved stack and registers
//! come back and the probed instruction runs. Interrupts stay off while the
//! handler runs, and any probe it hits counts a miss.
use super::control::{self, TrapContext};
use super::error::KprobeError;
use super::handler;
use super::probe::{Kprobe, KprobeFlags, ProbeKind};
use super::registry;
use crate::arch::imp::PtRegs;
use crate::arch::imp::jprobe as arch;
pub use crate::arch::imp::jprobe::jprobe_return;
use core::sync::atomic::Ordering;

/// A jump probe: `entry` is an `extern "C"` function with the probed
/// function's signature that ends by calling [`jprobe_return`].
///
/// ```ignore
/// use probe_engine::{jprobe_return, register_jprobe, Jprobe};
///
/// extern "C" fn seen(a: u32, b: u32) -> u32 {
///     my_kernel::println!("work({a}, {b})");
///     jprobe_return()
/// }
///
/// static JP: Jprobe = Jprobe::new(seen as *const ()).symbol("my_crate::work");
/// register_jprobe(&JP).expect("jprobe refused");
/// ```
pub struct Jprobe {
    /// The underlying breakpoint probe (on the function's first instruction).
    pub kp: Kprobe,
    entry: *const (),
}

// SAFETY: `entry` is a code address, never dereferenced as data.
unsafe impl Sync for Jprobe {}

impl Jprobe {
    /// A jprobe whose handler is `entry`.
    pub const fn new(entry: *const ()) -> Self {
        Jprobe { kp: Kprobe::new().with_kind(ProbeKind::Jprobe), entry }
    }

    /// On the function called `name`.
    pub const fn symbol(mut self, name: &'static str) -> Self {
        self.kp = self.kp.symbol(name, 0);
        self
    }

    /// On the function at `address`.
    pub const fn address(mut self, address: *const ()) -> Self {
        self.kp = self.kp.address(address);
        self
    }
}

/// Registers a jprobe (at most one per function).
pub fn register_jprobe(jprobe: &'static Jprobe) -> Result<(), KprobeError> {
    let registry = registry::lock()?;
    if jprobe.kp.flags().contains(KprobeFlags::GONE) {
        // Linked before the probe can be armed; never changed while registered.
        jprobe.kp.owner.store(jprobe as *const Jprobe as *mut (), Ordering::Release);
    }
    registry::register_locked(&registry, &jprobe.kp)
}

/// Unregisters a jprobe.
pub fn unregister_jprobe(jprobe: &'static Jprobe) -> Result<(), KprobeError> {
    let registry = registry::lock()?;
    registry::unregister_locked(&registry, &jprobe.kp)
}

/// The jprobe's part of a hit: save state, go to the handler.
#[unsafe(link_section = ".kprobes.text")]
pub(crate) fn setjmp(cx: &mut TrapContext, probe: &'static Kprobe, regs: &mut PtRegs) {
    // SAFETY: registration stored the owning `&'static Jprobe`.
    let jprobe = unsafe { &*(probe.owner.load(Ordering::Acquire) as *const Jprobe) };
    let stack_end = crate::host::stack_of(regs.sp()).map(|stack| stack.end);
    control::transition(cx, |kcb| {
        arch::enter_handler(regs, jprobe.entry as usize, kcb.save_jprobe()?, stack_end);
        Ok(())
    });
}

/// `jprobe_return`'s frame (built by `jprobe_return_entry` with interrupts
/// off): restore the stack and registers saved at the hit into it, then
/// carry on with the probed instruction.
#[unsafe(link_section = ".kprobes.text")]
pub(crate) extern "C" fn longjmp_dispatch(regs: &mut PtRegs) {
    // SAFETY: `jprobe_return_entry` executed `cli` after saving the flags,
    // and is the engine's own entry.
    let mut cx = unsafe { TrapContext::enter() };
    let cx = &mut cx;
    let restored = control::with(cx, |kcb| {
        let (save, site) = kcb.take_jprobe()?;
        arch::leave_handler(regs, save);
        Some(site)
    });
    let Some(site) = restored else {
        no_jprobe_in_progress();
    };
    handler::run_instruction(cx, regs, site);
}

/// `jprobe_return` was called with no jprobe hit in progress on this CPU:
/// from code that is not a jprobe handler, or twice. There is no state to
/// go back to, so the run stops with a report that says so.
#[cold]
#[inline(never)]
#[unsafe(link_section = ".kprobes.text")]
fn no_jprobe_in_progress() -> ! {
    panic!("jprobe_return called with no jprobe hit in progress on this CPU (not from a jprobe handler?)")
}
