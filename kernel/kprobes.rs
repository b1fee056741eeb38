//! The kprobes engine as this kernel embeds it: the `probe_engine` crate's
//! API, and this kernel as its host.
//!
//! Everything a probe user calls (`register_kprobe`, `Kretprobe`, …) is the
//! engine's, re-exported here so kernel code and tests write
//! `probe_kernel::kprobes::…`. [`KernelHost`] is what the engine needs from
//! this kernel (text patching, slot memory, tasks, stacks, symbols); every
//! kernel image binds it through [`entry_point!`](crate::entry_point).
pub use probe_engine::*;

use core::ops::Range;

/// This kernel, as the engine's host.
pub struct KernelHost;

fn symbol(s: crate::symbols::Symbol) -> Symbol {
    Symbol { name: s.name, address: s.address, size: s.size, offset: s.offset }
}

impl Host for KernelHost {
    unsafe fn text_poke(address: usize, bytes: &[u8]) -> Result<(), PatchError> {
        // SAFETY: the engine keeps `text_poke`'s contract (Host::text_poke).
        unsafe { crate::arch::x86::patch::text_poke(address, bytes) }
    }

    fn kernel_text() -> Range<usize> {
        crate::arch::x86::paging::kernel_text()
    }

    fn engine_text() -> Range<usize> {
        crate::arch::x86::paging::kprobes_text()
    }

    fn slot_memory() -> Range<usize> {
        crate::memory::slots::memory()
    }

    #[inline(always)]
    fn current_task() -> usize {
        crate::task::current_id()
    }

    #[inline(always)]
    fn current_cpu() -> usize {
        crate::arch::x86::percpu::cpu_id()
    }

    fn online_cpus() -> usize {
        crate::arch::x86::smp::online_cpus()
    }

    /// Interrupts every other online CPU and waits until each has taken
    /// the interrupt (so it is outside every interrupts-off region, the
    /// probe trap path included), executed a serializing instruction,
    /// recorded the EIP the interrupt found it at (for
    /// [`task_may_resume_in`](Host::task_may_resume_in)) and acknowledged:
    /// `smp::sync_cpus`, an IPI to all but self. Nothing to do on one CPU
    /// (the caller's own `text_poke` serialized it).
    fn sync_cpus() {
        if crate::arch::x86::smp::online_cpus() == 1 {
            crate::arch::x86::patch::forget_pending();
            return;
        }
        crate::arch::x86::smp::sync_cpus();
        // QEMU's multi-threaded TCG can keep a stale translation of code
        // patched while another CPU translated it: see `retouch_after_sync`.
        crate::arch::x86::patch::retouch_after_sync();
    }

    fn task_may_resume_in(range: Range<usize>) -> bool {
        // Tasks switched out or interrupted inside `range`, and CPUs the
        // last sync round found executing there.
        crate::task::preempted_in(range)
    }

    fn stack_of(address: usize) -> Option<Range<usize>> {
        crate::task::stack_of_address(address)
    }

    fn yield_now() {
        crate::task::yield_now()
    }

    fn symbol_by_name(name: &str) -> Option<Symbol> {
        crate::symbols::lookup_name(name).map(symbol)
    }

    fn symbol_at(address: usize) -> Option<Symbol> {
        crate::symbols::lookup_address(address).map(symbol)
    }

    fn for_each_symbol(visit: &mut dyn FnMut(Symbol)) {
        crate::symbols::iter().map(symbol).for_each(visit)
    }

    #[inline(always)]
    fn timestamp() -> u64 {
        crate::arch::cpu::rdtsc()
    }
    const TIMESTAMP_IS_RDTSC: bool = true;

    fn never_probe(name: &str) -> bool {
        // Boot code, run before the engine exists.
        matches!(name, "_start" | "kernel_boot_entry")
    }
}

const _: () = assert!(crate::task::MAX_TASKS <= probe_engine::MAX_TASKS);
