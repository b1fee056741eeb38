//! Trap entry and exit: naked stubs that save every register into one
//! [`TrapFrame`], the dispatcher, and the exception table.
//!
//! Everything here lives in `.kprobes.text`, the section probe registration
//! refuses: the engine cannot probe the code that runs it.
//!
//! Stack on entry to `trap_common` (kernel-mode trap: the CPU pushes no
//! ESP/SS, so the interrupted ESP is the address just above EFLAGS):
//!
//! ```text
//!   interrupted ESP ->  ...........      (caller's stack)
//!                       EFLAGS           \
//!                       CS                } pushed by the CPU
//!                       EIP              /
//!                       error code       pushed by the CPU, or 0 by the stub
//!           ESP ->      vector           pushed by the stub
//! ```
//!
//! `trap_common` then `pushad`s, which completes a `TrapFrame`; it stores the
//! interrupted ESP into the frame's `esp` slot (pushad's own copy is useless)
//! and calls `trap_dispatch` with a pointer to the frame. On the way out,
//! `trap_return` honours a handler's change of `esp` by moving the whole frame
//! so that the final `iretd` leaves ESP exactly where the handler asked.
use core::arch::naked_asm;
use core::mem::offset_of;
use core::sync::atomic::{AtomicUsize, Ordering};

/// Size of [`TrapFrame`]; the asm derives offsets from the type itself.
pub use probe_engine::FRAME_SIZE;
/// Every register of the interrupted code, as the trap stubs save it: the
/// probe engine's register frame, whose layout (checked at compile time by
/// the engine) is the contract between these stubs and the engine.
///
/// Handlers may change any field; the exit path writes them all back,
/// including `eip`, `eflags` and `esp` (the interrupted stack pointer).
pub use probe_engine::PtRegs as TrapFrame;
/// What a trap hook (or the engine) did with a trap.
pub use probe_engine::TrapOutcome;

/// Vector numbers with names.
pub mod vector {
    pub const DIVIDE_ERROR: u8 = 0;
    pub const DEBUG: u8 = 1;
    pub const BREAKPOINT: u8 = 3;
    pub const INVALID_OPCODE: u8 = 6;
    pub const DOUBLE_FAULT: u8 = 8;
    pub const GENERAL_PROTECTION: u8 = 13;
    pub const PAGE_FAULT: u8 = 14;
    /// First PIC IRQ after remapping.
    pub const IRQ_BASE: u8 = 32;
    /// Number of PIC IRQ lines.
    pub const IRQ_COUNT: u8 = 16;
}

/// What the SDM says of each exception vector.
#[derive(Clone, Copy, Debug)]
pub struct ExceptionInfo {
    pub mnemonic: &'static str,
    pub name: &'static str,
    pub has_error_code: bool,
}

const fn info(mnemonic: &'static str, name: &'static str, has_error_code: bool) -> ExceptionInfo {
    ExceptionInfo { mnemonic, name, has_error_code }
}

/// Exception metadata, indexed by vector.
pub static EXCEPTIONS: [ExceptionInfo; 32] = [
    info("#DE", "divide error", false),
    info("#DB", "debug", false),
    info("NMI", "non-maskable interrupt", false),
    info("#BP", "breakpoint", false),
    info("#OF", "overflow", false),
    info("#BR", "bound range exceeded", false),
    info("#UD", "invalid opcode", false),
    info("#NM", "device not available", false),
    info("#DF", "double fault", true),
    info("#CSO", "coprocessor segment overrun", false),
    info("#TS", "invalid TSS", true),
    info("#NP", "segment not present", true),
    info("#SS", "stack-segment fault", true),
    info("#GP", "general protection", true),
    info("#PF", "page fault", true),
    info("#15", "reserved", false),
    info("#MF", "x87 floating-point error", false),
    info("#AC", "alignment check", true),
    info("#MC", "machine check", false),
    info("#XM", "SIMD floating-point", false),
    info("#VE", "virtualization", false),
    info("#CP", "control protection", true),
    info("#22", "reserved", false),
    info("#23", "reserved", false),
    info("#24", "reserved", false),
    info("#25", "reserved", false),
    info("#26", "reserved", false),
    info("#27", "reserved", false),
    info("#HV", "hypervisor injection", false),
    info("#VC", "VMM communication", true),
    info("#SX", "security", true),
    info("#31", "reserved", false),
];

/// A hook that tests (or a user's kernel) can place behind the probe engine.
pub type TrapHook = fn(&mut TrapFrame) -> TrapOutcome;

/// Hooks consulted after the probe engine and before the fatal default.
/// Stored as addresses so the trap path reads them without a lock.
static BREAKPOINT_HOOK: AtomicUsize = AtomicUsize::new(0);
static DEBUG_HOOK: AtomicUsize = AtomicUsize::new(0);
static EXCEPTION_HOOK: AtomicUsize = AtomicUsize::new(0);

/// Which hook slot to set.
#[derive(Clone, Copy, Debug)]
pub enum HookKind {
    /// `#BP` traps the probe engine did not claim.
    Breakpoint,
    /// `#DB` traps the probe engine did not claim (DR6 is in [`last_dr6`]).
    Debug,
    /// Any other exception the probe engine did not claim.
    Exception,
}

fn hook_slot(kind: HookKind) -> &'static AtomicUsize {
    match kind {
        HookKind::Breakpoint => &BREAKPOINT_HOOK,
        HookKind::Debug => &DEBUG_HOOK,
        HookKind::Exception => &EXCEPTION_HOOK,
    }
}

/// Installs (or with `None`, removes) the hook for `kind`.
pub fn set_hook(kind: HookKind, hook: Option<TrapHook>) {
    hook_slot(kind).store(hook.map_or(0, |f| f as usize), Ordering::SeqCst);
}

#[unsafe(link_section = ".kprobes.text")]
fn run_hook(kind: HookKind, frame: &mut TrapFrame) -> TrapOutcome {
    let address = hook_slot(kind).load(Ordering::SeqCst);
    if address == 0 {
        return TrapOutcome::NotMine;
    }
    // SAFETY: the slot only ever holds 0 or a `TrapHook` stored by `set_hook`.
    let hook: TrapHook = unsafe { core::mem::transmute::<usize, TrapHook>(address) };
    hook(frame)
}

static LAST_DR6: AtomicUsize = AtomicUsize::new(0);

/// DR6 as read at the most recent debug trap (it is cleared after reading).
pub fn last_dr6() -> u32 {
    LAST_DR6.load(Ordering::SeqCst) as u32
}

/// The Rust entry for every vector but `#BP` and `#DB` (which have entries
/// of their own, [`breakpoint_common`] and [`debug_common`]). Order follows
/// Linux's `do_int3`: the probe engine first, then installed hooks, then
/// the fatal report.
#[unsafe(link_section = ".kprobes.text")]
extern "C" fn trap_dispatch(frame: &mut TrapFrame) {
    use crate::kprobes::trap::{FaultOutcome, TrapContext};
    // Before anything else: a CPU woken from its idle halt is running again
    // (the sync round must not skip it from now on).
    super::percpu::leave_idle_halt();
    let vector = frame.vector as u8;
    match vector {
        // Their stubs enter through the dedicated entries; these arms keep
        // the dispatcher complete for any other way in.
        vector::BREAKPOINT => breakpoint_trap(frame),
        vector::DEBUG => debug_trap(frame),
        v if (vector::IRQ_BASE..vector::IRQ_BASE + vector::IRQ_COUNT).contains(&v) => {
            count_wakeup();
            super::irq::handle_irq(v - vector::IRQ_BASE, frame);
        }
        v if (super::apic::vector::TIMER..=super::apic::vector::SPURIOUS).contains(&v) => {
            if v != super::apic::vector::SYNC {
                count_wakeup();
            }
            super::smp::handle_apic_interrupt(v, frame);
        }
        _ => {
            let outcome = crate::kprobes::trap::fault_handler(
                // SAFETY: as for the breakpoint above.
                &mut unsafe { TrapContext::enter() },
                frame,
            );
            if let FaultOutcome::NotMine(probe_fault) = outcome {
                unhandled(HookKind::Exception, frame, probe_fault);
            }
        }
    }
}

/// Counts an interrupt that may make work for this CPU (see
/// `PerCpu::wakeups`; interrupts are off, so the CPU is ours throughout).
#[unsafe(link_section = ".kprobes.text")]
fn count_wakeup() {
    super::percpu::this_cpu().wakeups.fetch_add(1, Ordering::Relaxed);
}

/// A trap the probe engine did not claim: the installed hook, else the
/// fatal report. Out of line, so the probe hit path stays short.
#[cold]
#[inline(never)]
#[unsafe(link_section = ".kprobes.text")]
fn unhandled(hook: HookKind, frame: &mut TrapFrame, probe_fault: Option<crate::kprobes::trap::ProbeFault>) {
    if run_hook(hook, frame) == TrapOutcome::NotMine {
        crate::fatal::exception(frame, probe_fault);
    }
}

/// Common body of every stub: completes the frame, calls the dispatcher,
/// and falls into [`trap_return`].
///
/// # Safety
/// Never called: only jumped to by an entry stub, with the CPU's exception
/// frame, an error code and the vector on the stack as drawn above.
#[unsafe(naked)]
#[unsafe(link_section = ".kprobes.text")]
pub unsafe extern "C" fn trap_common() {
    naked_asm!(
        "pushad",
        "lea ecx, [esp + {size}]",    // interrupted ESP
        "mov [esp + {esp}], ecx",
        "cld",
        "mov eax, esp",
        "push eax",                   // &mut TrapFrame
        "call {dispatch}",
        ".global trap_common_return_site",
        "trap_common_return_site:",
        "add esp, 4",
        "jmp {exit}",
        size = const FRAME_SIZE,
        esp = const offset_of!(TrapFrame, esp),
        dispatch = sym trap_dispatch,
        exit = sym trap_return,
    );
}

/// A dedicated trap entry, its vector's IDT entry itself: the error code
/// and vector, `trap_common`'s frame, then a direct call of `$handler` (no
/// dispatch on the vector), then [`trap_return`]. For the two vectors
/// every probe hit takes.
macro_rules! dedicated_entry {
    ($(#[$doc:meta])* $name:ident, $vector:expr, $return_site:literal, $handler:ident $(, fast: $fast:path)?) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// Never called: only entered by the CPU through the IDT, with its
        /// exception frame (no error code) on the stack.
        #[unsafe(naked)]
        #[unsafe(link_section = ".kprobes.text")]
        pub unsafe extern "C" fn $name() {
            naked_asm!(
                "push 0",                     // error code (neither vector has one)
                "push {vector}",
                "pushad",
                "lea ecx, [esp + {size}]",    // interrupted ESP
                "mov [esp + {esp}], ecx",
                "cld",
                $(dedicated_entry!(@call_fast $fast),)? // returns only if it left the trap to us
                "push esp",                   // &mut TrapFrame
                "call {handler}",
                concat!(".global ", $return_site),
                concat!($return_site, ":"),
                "add esp, 4",
                "jmp {exit}",
                size = const FRAME_SIZE,
                esp = const offset_of!(TrapFrame, esp),
                handler = sym $handler,
                exit = sym trap_return,
                vector = const $vector,
                $(fast = sym $fast,)?
            );
        }
    };
    (@call_fast $fast:path) => {
        "call {fast}"
    };
}

dedicated_entry!(
    /// The `#BP` entry: the probe engine's fast lane for the common hit,
    /// else straight to its `int3` handler.
    breakpoint_common,
    vector::BREAKPOINT,
    "breakpoint_return_site",
    breakpoint_trap,
    fast: crate::kprobes::trap::int3_fast
);
dedicated_entry!(
    /// The `#DB` entry: the probe engine's fast lane for the second half of
    /// a common single-step, else DR6 and its debug handler.
    debug_common,
    vector::DEBUG,
    "debug_return_site",
    debug_trap,
    fast: crate::kprobes::trap::debug_fast
);

/// `#BP`, from [`breakpoint_common`]: the engine, then hooks and the report.
#[unsafe(link_section = ".kprobes.text")]
extern "C" fn breakpoint_trap(frame: &mut TrapFrame) {
    use crate::kprobes::trap::TrapContext;
    // SAFETY: exceptions enter through interrupt gates (IF = 0) and this is
    // the trap entry, in `.kprobes.text`; the token lives only for the call.
    if crate::kprobes::trap::int3_handler(&mut unsafe { TrapContext::enter() }, frame) == TrapOutcome::NotMine {
        unhandled(HookKind::Breakpoint, frame, None);
    }
}

/// `#DB`, from [`debug_common`]: DR6 read and cleared, then the engine,
/// hooks and the report.
#[unsafe(link_section = ".kprobes.text")]
extern "C" fn debug_trap(frame: &mut TrapFrame) {
    use crate::kprobes::trap::TrapContext;
    let dr6 = super::cpu::dr6();
    super::cpu::clear_dr6();
    LAST_DR6.store(dr6 as usize, Ordering::SeqCst);
    // SAFETY: as in `breakpoint_trap`.
    if crate::kprobes::trap::debug_handler(&mut unsafe { TrapContext::enter() }, frame, dr6) == TrapOutcome::NotMine {
        unhandled(HookKind::Debug, frame, None);
    }
}

/// Restores a [`TrapFrame`] at ESP and returns to it with `iretd`.
///
/// Also the exit of the kretprobe trampoline, which builds the same frame.
/// If the handler changed `esp`, the frame is first moved (memmove semantics)
/// so that it ends where the new ESP begins.
///
/// # Safety
/// Never called: only jumped to with ESP at a complete [`TrapFrame`] whose
/// fields are the state to resume.
#[unsafe(naked)]
#[unsafe(link_section = ".kprobes.text")]
pub unsafe extern "C" fn trap_return() {
    naked_asm!(
        ".global probe_engine_trap_return", // the engine's trampoline leaves here too
        "probe_engine_trap_return:",
        "lea ecx, [esp + {size}]",
        "cmp [esp + {esp}], ecx",
        "jne 3f",
        "2:",
        "popad",
        "add esp, 8",                 // vector, error code
        "iretd",
        "3:",                          // move the frame to end at the new ESP
        "mov eax, [esp + {esp}]",
        "sub eax, {size}",
        "mov esi, esp",
        "mov edi, eax",
        "mov ecx, {words}",
        "cmp edi, esi",
        "jb 4f",
        "lea esi, [esi + {size} - 4]", // moving up: copy from the top down
        "lea edi, [edi + {size} - 4]",
        "std",
        "rep movsd",
        "cld",
        "jmp 5f",
        "4:",
        "rep movsd",
        "5:",
        "mov esp, eax",
        "jmp 2b",
        size = const FRAME_SIZE,
        words = const FRAME_SIZE / 4,
        esp = const offset_of!(TrapFrame, esp),
    );
}

macro_rules! trap_stubs {
    ($( $name:ident = $vector:literal $(, $error:ident)? $(=> $common:ident)? ;)*) => {
        $( trap_stubs!(@one $name, $vector, [$($error)?], [$($common)?]); )*

        /// Entry stubs in vector order (0–63), for the IDT: a dedicated
        /// entry is its vector's stub itself.
        pub static STUBS: [unsafe extern "C" fn(); 64] = [$(trap_stubs!(@entry $name $(, $common)?)),*];
    };
    (@entry $name:ident) => { $name };
    (@entry $name:ident, $common:ident) => { $common };
    (@one $name:ident, $vector:literal, [$($error:ident)?], []) => {
        trap_stubs!(@emit $name, $vector, [$($error)?], trap_common);
    };
    // A dedicated entry pushes the error code and vector itself.
    (@one $name:ident, $vector:literal, [$($error:ident)?], [$common:ident]) => {};
    (@emit $name:ident, $vector:literal, [$($error:ident)?], $common:ident) => {
        #[unsafe(naked)]
        #[unsafe(link_section = ".kprobes.text")]
        unsafe extern "C" fn $name() {
            naked_asm!(
                trap_stubs!(@push_error $($error)?),
                "push {vector}",
                "jmp {common}",
                vector = const $vector,
                common = sym $common,
            );
        }
    };
    (@push_error error) => { "" };
    (@push_error) => { "push 0" };
}

trap_stubs! {
    stub_0 = 0; stub_1 = 1 => debug_common; stub_2 = 2; stub_3 = 3 => breakpoint_common; stub_4 = 4; stub_5 = 5;
    stub_6 = 6; stub_7 = 7; stub_8 = 8, error; stub_9 = 9; stub_10 = 10, error;
    stub_11 = 11, error; stub_12 = 12, error; stub_13 = 13, error; stub_14 = 14, error;
    stub_15 = 15; stub_16 = 16; stub_17 = 17, error; stub_18 = 18; stub_19 = 19;
    stub_20 = 20; stub_21 = 21, error; stub_22 = 22; stub_23 = 23; stub_24 = 24;
    stub_25 = 25; stub_26 = 26; stub_27 = 27; stub_28 = 28; stub_29 = 29, error;
    stub_30 = 30, error; stub_31 = 31;
    stub_32 = 32; stub_33 = 33; stub_34 = 34; stub_35 = 35; stub_36 = 36; stub_37 = 37;
    stub_38 = 38; stub_39 = 39; stub_40 = 40; stub_41 = 41; stub_42 = 42; stub_43 = 43;
    stub_44 = 44; stub_45 = 45; stub_46 = 46; stub_47 = 47;
    stub_48 = 48; stub_49 = 49; stub_50 = 50; stub_51 = 51; stub_52 = 52; stub_53 = 53;
    stub_54 = 54; stub_55 = 55; stub_56 = 56; stub_57 = 57; stub_58 = 58; stub_59 = 59;
    stub_60 = 60; stub_61 = 61; stub_62 = 62; stub_63 = 63;
}

/// The return address inside `trap_common` of its call to the dispatcher:
/// the unwinder recognises it and continues through the saved [`TrapFrame`].
pub fn dispatcher_return_site() -> usize {
    unsafe extern "C" {
        static trap_common_return_site: u8;
    }
    &raw const trap_common_return_site as usize
}

/// Whether `address` is the return address of a trap entry's call into
/// Rust (`trap_common`'s, or the dedicated `#BP` and `#DB` entries'), with
/// a [`TrapFrame`] above it.
pub fn is_dispatcher_return_site(address: usize) -> bool {
    unsafe extern "C" {
        static breakpoint_return_site: u8;
        static debug_return_site: u8;
    }
    address == dispatcher_return_site()
        || address == &raw const breakpoint_return_site as usize
        || address == &raw const debug_return_site as usize
}

/// The double-fault task's entry. The CPU switched tasks (new stack, state
/// of the faulting code saved in the main TSS) and pushed an error code.
///
/// # Safety
/// Never called: the CPU enters it through the double-fault task gate.
#[unsafe(naked)]
#[unsafe(link_section = ".kprobes.text")]
pub unsafe extern "C" fn double_fault_task_entry() -> ! {
    naked_asm!(
        "xor ebp, ebp",
        "call {report}",             // the error code is its stack argument
        "2: hlt",
        "jmp 2b",
        report = sym crate::fatal::double_fault,
    );
}
