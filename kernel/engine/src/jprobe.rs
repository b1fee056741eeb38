//! jprobes: a handler with the probed function's own signature, run at the
//! function's entry with its arguments in place (Linux ≤ 4.14).
//!
//! At the hit, the engine saves the registers and the top of the stack (the
//! arguments), and sends the CPU to the handler with the probed function's
//! stack: the handler's `extern "C"` parameters *are* the probed function's
//! arguments. The handler ends with [`jprobe_return`], which puts ESP back
//! and executes `int3`; the engine restores the saved stack and registers
//! and carries on with the probed instruction. Interrupts stay off while the
//! handler runs, and any probe it hits counts a miss.
use super::control::{self, JPROBE_STACK_COPY, TrapContext};
use super::error::KprobeError;
use super::handler;
use super::probe::{Kprobe, KprobeFlags, ProbeKind};
use super::registry;
use crate::arch::imp::BREAKPOINT_INSTRUCTION;
use crate::arch::imp::PtRegs;
use crate::arch::imp::TrapOutcome;
use crate::arch::imp::cpu::EFLAGS_IF;
use core::arch::naked_asm;
use core::sync::atomic::{AtomicUsize, Ordering};

/// A jump probe: `entry` is an `extern "C"` function with the probed
/// function's signature that ends by calling [`jprobe_return`].
///
/// ```ignore
/// use probe_kernel::kprobes::{jprobe_return, register_jprobe, Jprobe};
///
/// extern "C" fn seen(a: u32, b: u32) -> u32 {
///     probe_kernel::println!("work({a}, {b})");
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

/// The stack pointer `jprobe_return` restores (the probed function's ESP).
static SAVED_ESP: AtomicUsize = AtomicUsize::new(0);

/// Ends a jprobe handler: never returns to it; execution continues with the
/// probed function as if the handler had not run.
#[unsafe(naked)]
#[unsafe(link_section = ".kprobes.text")]
pub extern "C" fn jprobe_return() -> ! {
    naked_asm!(
        "mov esp, dword ptr [{saved}]", // 6 bytes: 8B 25 imm32
        "int3",
        "ud2",
        saved = sym SAVED_ESP,
    );
}

/// Offset of the `int3` in [`jprobe_return`] (checked at boot by [`check_layout`]).
const RETURN_BREAKPOINT_OFFSET: usize = 6;

#[unsafe(link_section = ".kprobes.text")]
fn return_breakpoint() -> usize {
    jprobe_return as *const () as usize + RETURN_BREAKPOINT_OFFSET
}

/// Checks that [`jprobe_return`]'s `int3` is where the trap path expects it.
pub(crate) fn check_layout() {
    // SAFETY: reads one byte of kernel text.
    let byte = unsafe { core::ptr::read_volatile(return_breakpoint() as *const u8) };
    assert_eq!(byte, BREAKPOINT_INSTRUCTION, "jprobe_return's int3 moved");
}

/// The jprobe's part of a hit: save state, go to the handler.
#[unsafe(link_section = ".kprobes.text")]
pub(crate) fn setjmp(cx: &mut TrapContext, probe: &'static Kprobe, regs: &mut PtRegs) {
    // SAFETY: registration stored the owning `&'static Jprobe`.
    let jprobe = unsafe { &*(probe.owner.load(Ordering::Acquire) as *const Jprobe) };
    let esp = regs.esp as usize;
    let stack_end = crate::host::stack_of(esp).map_or(esp + JPROBE_STACK_COPY, |s| s.end);
    let len = JPROBE_STACK_COPY.min(stack_end - esp);
    let saved = control::with(cx, |kcb| {
        let save = kcb.save_jprobe()?;
        save.regs = *regs;
        save.stack_len = len;
        // SAFETY: [esp, esp+len) is the live stack of the probed code.
        unsafe { core::ptr::copy_nonoverlapping(esp as *const u8, save.stack.as_mut_ptr(), len) };
        Ok(())
    });
    if let Err(error) = saved {
        control::illegal(error);
    }
    SAVED_ESP.store(esp, Ordering::SeqCst);
    regs.eip = jprobe.entry as u32;
    regs.eflags &= !EFLAGS_IF;
}

/// Whether an `int3` at `address` is `jprobe_return`'s.
#[unsafe(link_section = ".kprobes.text")]
pub(crate) fn is_return_breakpoint(address: usize) -> bool {
    address == return_breakpoint()
}

/// `jprobe_return`'s `int3`: restore the stack and registers saved at the
/// hit, then carry on with the probed instruction.
#[unsafe(link_section = ".kprobes.text")]
pub(crate) fn longjmp(cx: &mut TrapContext, regs: &mut PtRegs) -> TrapOutcome {
    let restored = control::with(cx, |kcb| {
        let (save, site) = kcb.take_jprobe()?;
        // SAFETY: restores the stack bytes saved at the hit; the current
        // trap frame lies below them (jprobe_return reset ESP first).
        unsafe { core::ptr::copy_nonoverlapping(save.stack.as_ptr(), save.regs.esp as *mut u8, save.stack_len) };
        *regs = save.regs;
        Some(site)
    });
    let Some(site) = restored else {
        return TrapOutcome::NotMine;
    };
    handler::run_instruction(cx, regs, site);
    TrapOutcome::Handled
}
