//! Per-CPU data: one [`PerCpu`] block per CPU, reached through GS.
//!
//! Each CPU's GDT has a data segment whose base is that CPU's block
//! ([`gdt::PER_CPU`](super::gdt::PER_CPU)), loaded into GS once when the CPU
//! starts and never changed (this kernel runs only ring 0 and never touches
//! GS otherwise). So the CPU's id and its running task are one GS-relative
//! load from any context, trap handlers and the double-fault task included
//! (Linux i386 does the same with `%fs` and its `this_cpu_read`). No search,
//! no lock, no APIC access.
//!
//! A task that can be preempted can also migrate: what [`cpu_id`] returns
//! stays true only while interrupts are off (as with Linux's
//! `smp_processor_id()` under preemption).
use core::arch::asm;
use core::mem::offset_of;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// CPUs this kernel can run: every table sized per CPU uses it.
pub const MAX_CPUS: usize = 8;

/// Where this CPU's index is in its GS segment (for the probe engine's
/// assembly lanes: `host!`'s `per_cpu_gs`).
pub const CPU_OFFSET: usize = offset_of!(PerCpu, cpu);
/// Where the running task's id is in the GS segment (as [`CPU_OFFSET`]).
pub const TASK_OFFSET: usize = offset_of!(PerCpu, current_task);

/// One CPU's own data.
#[repr(C, align(64))] // a cache line each: CPUs never share one
pub struct PerCpu {
    /// This CPU's index (0 = the boot CPU), below [`MAX_CPUS`].
    cpu: usize,
    /// The task running on this CPU (its id in the task table).
    current_task: AtomicUsize,
    /// The task that ran before the last context switch on this CPU; the
    /// task switched to finishes that switch (see `task::scheduler`).
    pub previous_task: AtomicUsize,
    /// Where the last cross-CPU synchronisation interrupt found this CPU
    /// (its interrupted EIP), 0 if none since.
    pub sync_eip: AtomicUsize,
    /// Interrupts this CPU took that may have made work for it (every
    /// device and local APIC interrupt but the sync round's): the idle loop
    /// looks for a task to run only when this moved.
    pub wakeups: AtomicUsize,
    /// Halted in the idle loop ([`idle_halt`]): set by the CPU itself right
    /// before its `sti; hlt`, cleared (with a full barrier, then a
    /// serializing instruction) by the interrupt entry that wakes it, before
    /// any handler runs. A sync round skips such a CPU (see `smp`).
    pub idle_halted: AtomicBool,
}

struct Blocks([PerCpu; MAX_CPUS]);

// SAFETY: `cpu` is written once per block before its CPU starts and read
// only after; every other field is atomic.
unsafe impl Sync for Blocks {}

static BLOCKS: Blocks = Blocks(
    [const {
        PerCpu {
            cpu: 0,
            current_task: AtomicUsize::new(0),
            previous_task: AtomicUsize::new(0),
            sync_eip: AtomicUsize::new(0),
            wakeups: AtomicUsize::new(0),
            idle_halted: AtomicBool::new(false),
        }
    }; MAX_CPUS],
);

/// The address of CPU `cpu`'s block (the base of its GS segment).
pub fn block_address(cpu: usize) -> usize {
    &BLOCKS.0[cpu] as *const PerCpu as usize
}

/// Fills CPU `cpu`'s block before the CPU starts.
///
/// # Safety
/// Call once per CPU, before that CPU loads its GDT, while no CPU reads the
/// block (boot, or the starting CPU's set-up by the boot CPU).
pub unsafe fn init_block(cpu: usize, task: usize) {
    let block = &BLOCKS.0[cpu] as *const PerCpu as *mut PerCpu;
    // SAFETY: the caller guarantees nobody reads the block yet; a raw write
    // of the plain field, the atomics written through shared references.
    unsafe { (*block).cpu = cpu };
    BLOCKS.0[cpu].current_task.store(task, Ordering::Relaxed);
    BLOCKS.0[cpu].previous_task.store(task, Ordering::Relaxed);
}

/// CPU `cpu`'s block, for code acting on behalf of another CPU (the sync
/// protocol, listings).
pub fn block(cpu: usize) -> &'static PerCpu {
    &BLOCKS.0[cpu]
}

/// The calling CPU's block.
#[inline(always)]
pub fn this_cpu() -> &'static PerCpu {
    &BLOCKS.0[cpu_id()]
}

/// The calling CPU's index: one GS-relative load.
#[inline(always)]
pub fn cpu_id() -> usize {
    let cpu: usize;
    // SAFETY: GS is this CPU's per-CPU segment from its start on (set by
    // `gdt::init` before any Rust code that could call this runs, except
    // boot code before that, which never does); the field is inside the
    // segment's limit.
    unsafe {
        asm!("mov {}, gs:[{offset}]", out(reg) cpu, offset = const offset_of!(PerCpu, cpu),
             options(nostack, readonly, preserves_flags))
    };
    cpu
}

/// The task running on the calling CPU: one GS-relative load.
#[inline(always)]
pub fn current_task() -> usize {
    let task: usize;
    // SAFETY: as in `cpu_id`; an aligned 32-bit load is atomic.
    unsafe {
        asm!("mov {}, gs:[{offset}]", out(reg) task, offset = const offset_of!(PerCpu, current_task),
             options(nostack, readonly, preserves_flags))
    };
    task
}

/// Makes `task` the calling CPU's running task (the scheduler, with
/// interrupts off, right before switching to it).
#[inline(always)]
pub fn set_current_task(task: usize) {
    this_cpu().current_task.store(task, Ordering::Relaxed);
}

/// The task running on CPU `cpu` now (for listings: it may change at once).
pub fn current_task_of(cpu: usize) -> usize {
    BLOCKS.0[cpu].current_task.load(Ordering::Relaxed)
}

/// Halts this CPU in its idle loop until an interrupt, marked as halted
/// meanwhile (`PerCpu::idle_halted`). Call with interrupts off; returns
/// with them off, after the interrupt's handler ran.
///
/// In `.kprobes.text` (no probe can be placed here): between the mark and
/// the `hlt` this CPU must run nothing a sync round could need to wait for,
/// and `sti`'s interrupt shadow keeps even an interrupt out of that gap.
/// Never inlined: inlined into the (probeable) idle loop, the gap would
/// leave the section with it.
#[unsafe(link_section = ".kprobes.text")]
#[inline(never)]
pub fn idle_halt() {
    let this = this_cpu();
    this.idle_halted.store(true, Ordering::SeqCst);
    super::cpu::wait_for_interrupt(); // sti; hlt; cli
    leave_idle_halt();
}

/// The first thing every interrupt entry does: if the interrupt woke this
/// CPU from [`idle_halt`], it is no longer halted, visibly to every other
/// CPU before this one runs anything else (a sequentially consistent
/// store: `xchg`, a full barrier), and it executes a serializing
/// instruction, so text another CPU changed while it was halted is fetched
/// afresh (what the sync round's handler would have done).
#[unsafe(link_section = ".kprobes.text")]
#[inline(always)]
pub fn leave_idle_halt() {
    let this = this_cpu();
    if this.idle_halted.load(Ordering::Relaxed) {
        this.idle_halted.store(false, Ordering::SeqCst);
        super::cpu::serialize();
    }
}
