//! The host interface: what the engine needs from the kernel that embeds it.
//!
//! The engine knows nothing of its host's modules. A host implements
//! [`Host`] for a type of its own and binds it once, in the crate that
//! builds the kernel image, with [`host!`](crate::host): the macro defines
//! one symbol per operation, which the engine calls directly (no vtable, no
//! function pointer on the trap path), and the compiler checks the impl is
//! complete. A kernel that binds no host fails to link.
//!
//! Besides this trait, the host's trap entry must hand the engine its
//! breakpoint, debug and other exceptions (see the crate docs), and define
//! the global symbol `probe_engine_trap_return`: code that restores a
//! [`PtRegs`](crate::PtRegs) frame at ESP (honouring a changed `esp`) and
//! returns from it with `iretd` — the engine's own frames (the kretprobe
//! trampoline's, a detour's) leave through it when a handler moved ESP.
use core::ops::Range;

/// A function in the host's image, as the host's symbol table has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Symbol {
    /// Its name, as users spell it (e.g. `my_kernel::sched::spawn`).
    pub name: &'static str,
    /// Its first byte.
    pub address: usize,
    /// Its size in bytes.
    pub size: usize,
    /// For a lookup by address: the address's offset into the function.
    pub offset: usize,
}

/// Why a text patch was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchError {
    /// Some byte of the destination lies outside kernel text.
    OutsideText,
}

/// What the engine needs from its host kernel.
///
/// Implement it for a type of your own and bind it once, in the crate that
/// links the kernel image, with [`host!`](crate::host). Beyond these
/// functions the host's trap entry hands the engine its exceptions (see
/// [`trap`](crate::trap)) and defines the global symbol
/// `probe_engine_trap_return`: code that restores a
/// [`PtRegs`](crate::PtRegs) frame at ESP (honouring a changed `esp`) and
/// returns from it with `iretd`; the engine's own frames (the kretprobe
/// trampoline's, a detour's) leave through it when a handler moved ESP.
pub trait Host {
    /// Writes `bytes` at `address` in kernel text, however the host keeps
    /// text read-only, and serializes the calling CPU so its next fetch
    /// sees them. Other CPUs see them once the engine has called
    /// [`sync_cpus`](Host::sync_cpus), which it does after every change of
    /// text (Linux's `text_poke` then `text_poke_sync`).
    ///
    /// # Safety
    /// The engine passes byte sequences that leave every instruction any
    /// task or CPU may execute well formed: an `int3` over a first byte,
    /// the original byte back, or, while an `int3` that every CPU has seen
    /// guards an instruction's first byte (`text_poke_bp`), the rest of
    /// that instruction, then its new first byte. And once, from
    /// [`init`](crate::init) while the calling CPU is the only one online,
    /// whole instructions of the engine's own lanes (its queries of the CPU
    /// and task, on a `per_cpu_gs` host). The host must write exactly them.
    unsafe fn text_poke(address: usize, bytes: &[u8]) -> Result<(), PatchError>;
    /// The kernel's text: probes go only here.
    fn kernel_text() -> Range<usize>;
    /// The section holding the engine's and the host's trap path
    /// (`.kprobes.text`): never probed, and the roots of the blacklist.
    fn engine_text() -> Range<usize>;
    /// Executable, writable memory for instruction and detour slots, at
    /// least [`SLOT_MEMORY_SIZE`](crate::slots::SLOT_MEMORY_SIZE) bytes,
    /// aligned to [`DETOUR_SIZE`](crate::slots::DETOUR_SIZE), used by
    /// nothing else.
    fn slot_memory() -> Range<usize>;
    /// The running task's id, below [`MAX_TASKS`](crate::MAX_TASKS); callable
    /// from trap context. The kretprobe lanes call it from assembly, as
    /// [`current_cpu`](Host::current_cpu).
    fn current_task() -> usize;
    /// The CPU the caller runs on, below [`MAX_CPUS`](crate::MAX_CPUS);
    /// callable from trap context (it picks the CPU's control block). The
    /// engine asks with interrupts off, so the answer stays true meanwhile.
    /// Its fast lanes call it from assembly, through the C-ABI symbol
    /// [`host!`](crate::host) defines for it: keep it a leaf that touches
    /// only the caller-saved registers' worth of state (a load of a
    /// per-CPU variable is ideal, and with `host!`'s `per_cpu_gs` the
    /// lanes' call is that load alone).
    fn current_cpu() -> usize;
    /// How many CPUs run now: at least 1, at most
    /// [`MAX_CPUS`](crate::MAX_CPUS). Kretprobes without a `maxactive` get
    /// `max(10, 2 × online_cpus())` instances, as in Linux today.
    fn online_cpus() -> usize;
    /// Synchronizes every other online CPU with the caller: each one takes
    /// an interrupt (so it is outside every interrupts-off region, in
    /// particular outside the probe trap path, which runs with interrupts
    /// off from its trap to its `iretd`), executes a serializing
    /// instruction (so it fetches text written before the call afresh),
    /// records where that interrupt found it (the interrupted EIP, for
    /// [`task_may_resume_in`](Host::task_may_resume_in)), and acknowledges;
    /// returns when all have. With no other CPU online it returns at once.
    /// A CPU that is provably idle may be skipped instead, as RCU does: one
    /// halted outside every trap path since before the call, that can run
    /// again only through an interrupt entry which serializes (and marks it
    /// running, visibly to this call) before anything else.
    ///
    /// Called in task context with interrupts on (never from the trap
    /// path), with the engine's registration lock held: Linux's
    /// `text_poke_sync` and, for the trap path, `synchronize_rcu`. The
    /// engine calls it after every change of text, and before it reuses or
    /// hands back anything the trap path of another CPU may still be using
    /// (a probe site, an instruction slot, a kretprobe pool, the caller's
    /// probe).
    ///
    /// It is the engine's `text_poke_sync` too: there is no separate host
    /// function for that, since what cross-modified code needs (an
    /// interrupt and a serializing instruction on every other CPU) is part
    /// of this one, and recording where each CPU was costs nothing more.
    fn sync_cpus();
    /// Whether any task (the caller included, if it is in an interrupt
    /// handler) was interrupted with its EIP in `range` and will resume
    /// there, or the last [`sync_cpus`](Host::sync_cpus) found a CPU
    /// executing inside `range`. The engine asks right after a sync, before
    /// it reuses an instruction slot.
    fn task_may_resume_in(range: Range<usize>) -> bool;
    /// The kernel stack holding `address`, if any.
    fn stack_of(address: usize) -> Option<Range<usize>>;
    /// Lets other tasks run while the registration lock is taken.
    fn yield_now();
    /// The function called `name`.
    fn symbol_by_name(name: &str) -> Option<Symbol>;
    /// The function containing `address`.
    fn symbol_at(address: usize) -> Option<Symbol>;
    /// Visits every function of the image.
    fn for_each_symbol(visit: &mut dyn FnMut(Symbol));
    /// A monotonic timestamp (cycles, or any steady counter); callable from
    /// trap context. The engine stamps each kretprobe call's entry with it,
    /// from assembly too (the kretprobe entry lane), as
    /// [`current_cpu`](Host::current_cpu).
    fn timestamp() -> u64;
    /// Whether [`timestamp`](Host::timestamp) is the x86 time-stamp counter
    /// itself, as `rdtsc` reads it. Then [`init`](crate::init), while its
    /// CPU is the only one online, makes the assembly lanes' calls of it
    /// the instruction (`rdtsc` and a 3-byte no-op, the call's five bytes):
    /// the kretprobe entry's stamp then costs 2 instructions instead of 6.
    /// A host that says so must mean it: its entries are stamped with the
    /// counter, not with its `timestamp`.
    const TIMESTAMP_IS_RDTSC: bool = false;
    /// Host code outside `engine_text` that must never be probed (code that
    /// runs before the engine exists, or that the engine's copies call),
    /// by name.
    fn never_probe(name: &str) -> bool;
}

/// Binds `$host`'s [`Host`] impl as the engine's host. Invoke it once, in
/// the crate that links the kernel image.
///
/// The assembly fast lanes ask the host for the current CPU and task
/// through C-ABI calls. A host that keeps both in its per-CPU area at
/// fixed offsets of the GS segment (on x86, as Linux's `this_cpu` reads do)
/// can say so, and those calls become a single load and a return:
///
/// ```ignore
/// // SAFETY: on every CPU, from before the engine's first hit, GS:[CPU]
/// // and GS:[TASK] hold what MyHost::current_cpu/current_task return.
/// probe_engine::host!(MyHost, unsafe per_cpu_gs: { cpu: CPU, task: TASK });
/// ```
///
/// That is a promise the compiler cannot check, hence the `unsafe`: the
/// lanes index the engine's per-CPU control blocks with the CPU read there,
/// unchecked. [`init`](crate::init) compares both reads with the methods
/// on the CPU that calls it, then, if that CPU is the only one online,
/// turns the lanes' calls into the loads themselves (`mov eax, gs:[n]`).
#[macro_export]
macro_rules! host {
    ($host:ty) => {
        $crate::host!(@common $host);
        const _: () = {
            use $crate::Host as _;
            // The C ABI: the engine's assembly fast lanes call these.
            #[unsafe(no_mangle)]
            extern "C" fn __probe_engine_lane_current_task() -> usize {
                <$host>::current_task()
            }
            #[unsafe(no_mangle)]
            extern "C" fn __probe_engine_lane_current_cpu() -> usize {
                <$host>::current_cpu()
            }
            #[unsafe(no_mangle)]
            fn __probe_engine_host_per_cpu_gs() -> Option<$crate::PerCpuGs> {
                None
            }
        };
    };
    ($host:ty, unsafe per_cpu_gs: { cpu: $cpu:expr, task: $task:expr $(,)? }) => {
        $crate::host!(@common $host);
        const _: () = {
            // The assembly fast lanes' calls: one GS-relative load each.
            #[unsafe(naked)]
            #[unsafe(no_mangle)]
            #[unsafe(link_section = ".kprobes.text")]
            extern "C" fn __probe_engine_lane_current_task() -> usize {
                core::arch::naked_asm!("mov eax, gs:[{offset}]", "ret", offset = const $task)
            }
            #[unsafe(naked)]
            #[unsafe(no_mangle)]
            #[unsafe(link_section = ".kprobes.text")]
            extern "C" fn __probe_engine_lane_current_cpu() -> usize {
                core::arch::naked_asm!("mov eax, gs:[{offset}]", "ret", offset = const $cpu)
            }
            #[unsafe(no_mangle)]
            fn __probe_engine_host_per_cpu_gs() -> Option<$crate::PerCpuGs> {
                Some($crate::PerCpuGs { cpu: $cpu, task: $task })
            }
        };
    };
    (@common $host:ty) => {
        const _: () = {
            use $crate::Host as _;
            #[unsafe(no_mangle)]
            unsafe fn __probe_engine_host_text_poke(address: usize, bytes: &[u8]) -> Result<(), $crate::PatchError> {
                // SAFETY: the engine's contract for this call is the Host
                // method's, passed on unchanged.
                unsafe { <$host>::text_poke(address, bytes) }
            }
            #[unsafe(no_mangle)]
            fn __probe_engine_host_kernel_text() -> core::ops::Range<usize> {
                <$host>::kernel_text()
            }
            #[unsafe(no_mangle)]
            fn __probe_engine_host_engine_text() -> core::ops::Range<usize> {
                <$host>::engine_text()
            }
            #[unsafe(no_mangle)]
            fn __probe_engine_host_slot_memory() -> core::ops::Range<usize> {
                <$host>::slot_memory()
            }
            #[unsafe(no_mangle)]
            fn __probe_engine_host_current_task() -> usize {
                <$host>::current_task()
            }
            #[unsafe(no_mangle)]
            fn __probe_engine_host_current_cpu() -> usize {
                <$host>::current_cpu()
            }
            #[unsafe(no_mangle)]
            fn __probe_engine_host_online_cpus() -> usize {
                <$host>::online_cpus()
            }
            #[unsafe(no_mangle)]
            fn __probe_engine_host_sync_cpus() {
                <$host>::sync_cpus()
            }
            #[unsafe(no_mangle)]
            fn __probe_engine_host_task_may_resume_in(range: core::ops::Range<usize>) -> bool {
                <$host>::task_may_resume_in(range)
            }
            #[unsafe(no_mangle)]
            fn __probe_engine_host_stack_of(address: usize) -> Option<core::ops::Range<usize>> {
                <$host>::stack_of(address)
            }
            #[unsafe(no_mangle)]
            fn __probe_engine_host_yield_now() {
                <$host>::yield_now()
            }
            #[unsafe(no_mangle)]
            fn __probe_engine_host_symbol_by_name(name: &str) -> Option<$crate::Symbol> {
                <$host>::symbol_by_name(name)
            }
            #[unsafe(no_mangle)]
            fn __probe_engine_host_symbol_at(address: usize) -> Option<$crate::Symbol> {
                <$host>::symbol_at(address)
            }
            #[unsafe(no_mangle)]
            fn __probe_engine_host_for_each_symbol(visit: &mut dyn FnMut($crate::Symbol)) {
                <$host>::for_each_symbol(visit)
            }
            // The C ABI: the kretprobe entry lane calls it from assembly.
            #[unsafe(no_mangle)]
            extern "C" fn __probe_engine_host_timestamp() -> u64 {
                <$host>::timestamp()
            }
            #[unsafe(no_mangle)]
            fn __probe_engine_host_timestamp_is_rdtsc() -> bool {
                <$host>::TIMESTAMP_IS_RDTSC
            }
            #[unsafe(no_mangle)]
            fn __probe_engine_host_never_probe(name: &str) -> bool {
                <$host>::never_probe(name)
            }
        };
    };
}

unsafe extern "C" {
    /// The current CPU, for the assembly fast lanes (`arch::imp::fastpath`):
    /// it clobbers only EAX, ECX and EDX, and returns the CPU in EAX.
    pub(crate) fn __probe_engine_lane_current_cpu() -> usize;
    /// The current task, for the kretprobe lanes, as
    /// `__probe_engine_lane_current_cpu`: the task in EAX.
    pub(crate) fn __probe_engine_lane_current_task() -> usize;
    /// Called from assembly as well (the kretprobe entry lane): the
    /// timestamp in EDX:EAX, ECX clobbered.
    pub(crate) fn __probe_engine_host_timestamp() -> u64;
}

unsafe extern "Rust" {
    fn __probe_engine_host_text_poke(address: usize, bytes: &[u8]) -> Result<(), PatchError>;
    fn __probe_engine_host_kernel_text() -> Range<usize>;
    fn __probe_engine_host_engine_text() -> Range<usize>;
    fn __probe_engine_host_slot_memory() -> Range<usize>;
    fn __probe_engine_host_current_task() -> usize;
    fn __probe_engine_host_current_cpu() -> usize;
    fn __probe_engine_host_online_cpus() -> usize;
    fn __probe_engine_host_sync_cpus();
    fn __probe_engine_host_task_may_resume_in(range: Range<usize>) -> bool;
    fn __probe_engine_host_stack_of(address: usize) -> Option<Range<usize>>;
    fn __probe_engine_host_yield_now();
    fn __probe_engine_host_symbol_by_name(name: &str) -> Option<Symbol>;
    fn __probe_engine_host_symbol_at(address: usize) -> Option<Symbol>;
    fn __probe_engine_host_for_each_symbol(visit: &mut dyn FnMut(Symbol));
    fn __probe_engine_host_timestamp_is_rdtsc() -> bool;
    fn __probe_engine_host_never_probe(name: &str) -> bool;
    fn __probe_engine_host_per_cpu_gs() -> Option<PerCpuGs>;
}

/// Where a `per_cpu_gs` host keeps the current CPU and task: offsets in
/// its GS segment (what `host!(…, unsafe per_cpu_gs: { cpu, task })` was
/// given).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PerCpuGs {
    /// `GS:[cpu]` holds [`Host::current_cpu`].
    pub cpu: usize,
    /// `GS:[task]` holds [`Host::current_task`].
    pub task: usize,
}

/// The host's GS promise, if it made one (see [`host!`](crate::host)).
pub(crate) fn per_cpu_gs() -> Option<PerCpuGs> {
    // SAFETY: `host!` defines the symbol with exactly this signature.
    unsafe { __probe_engine_host_per_cpu_gs() }
}

// The engine's side of the binding. SAFETY (every call below): `host!`
// defines each symbol with exactly the declared signature, from the host's
// `Host` impl; only `text_poke` has a contract of its own.

/// See [`Host::text_poke`].
///
/// # Safety
/// As [`Host::text_poke`].
pub(crate) unsafe fn text_poke(address: usize, bytes: &[u8]) -> Result<(), PatchError> {
    // SAFETY: see the comment above; the caller keeps `Host::text_poke`'s contract.
    unsafe { __probe_engine_host_text_poke(address, bytes) }
}
pub(crate) fn kernel_text() -> Range<usize> {
    // SAFETY: see the comment above.
    unsafe { __probe_engine_host_kernel_text() }
}
pub(crate) fn engine_text() -> Range<usize> {
    // SAFETY: see the comment above.
    unsafe { __probe_engine_host_engine_text() }
}
pub(crate) fn slot_memory() -> Range<usize> {
    // SAFETY: see the comment above.
    unsafe { __probe_engine_host_slot_memory() }
}
#[unsafe(link_section = ".kprobes.text")]
#[inline(always)]
pub(crate) fn current_task() -> usize {
    // SAFETY: see the comment above.
    unsafe { __probe_engine_host_current_task() }
}
#[unsafe(link_section = ".kprobes.text")]
#[inline(always)]
pub(crate) fn current_cpu() -> usize {
    // SAFETY: see the comment above.
    unsafe { __probe_engine_host_current_cpu() }
}
pub(crate) fn online_cpus() -> usize {
    // SAFETY: see the comment above.
    unsafe { __probe_engine_host_online_cpus() }.clamp(1, crate::MAX_CPUS)
}
/// See [`Host::sync_cpus`]. Task context, interrupts on; the engine calls
/// it only through `quiesce`.
pub(crate) fn sync_cpus() {
    debug_assert!(crate::arch::imp::cpu::interrupts_enabled(), "sync_cpus with interrupts off");
    // SAFETY: see the comment above.
    unsafe { __probe_engine_host_sync_cpus() }
}
pub(crate) fn task_may_resume_in(range: Range<usize>) -> bool {
    // SAFETY: see the comment above.
    unsafe { __probe_engine_host_task_may_resume_in(range) }
}
#[unsafe(link_section = ".kprobes.text")]
#[inline(always)]
pub(crate) fn stack_of(address: usize) -> Option<Range<usize>> {
    // SAFETY: see the comment above.
    unsafe { __probe_engine_host_stack_of(address) }
}
pub(crate) fn yield_now() {
    // SAFETY: see the comment above.
    unsafe { __probe_engine_host_yield_now() }
}
pub(crate) fn symbol_by_name(name: &str) -> Option<Symbol> {
    // SAFETY: see the comment above.
    unsafe { __probe_engine_host_symbol_by_name(name) }
}
pub(crate) fn symbol_at(address: usize) -> Option<Symbol> {
    // SAFETY: see the comment above.
    unsafe { __probe_engine_host_symbol_at(address) }
}
pub(crate) fn for_each_symbol(visit: &mut dyn FnMut(Symbol)) {
    // SAFETY: see the comment above.
    unsafe { __probe_engine_host_for_each_symbol(visit) }
}
#[unsafe(link_section = ".kprobes.text")]
#[inline(always)]
pub(crate) fn timestamp() -> u64 {
    // SAFETY: see the comment above.
    unsafe { __probe_engine_host_timestamp() }
}
pub(crate) fn timestamp_is_rdtsc() -> bool {
    // SAFETY: see the comment above.
    unsafe { __probe_engine_host_timestamp_is_rdtsc() }
}
pub(crate) fn never_probe(name: &str) -> bool {
    // SAFETY: see the comment above.
    unsafe { __probe_engine_host_never_probe(name) }
}

/// `name+0xoff/0xsize` for an address, from the host's symbols.
pub(crate) struct Describe(pub usize);

impl core::fmt::Display for Describe {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        match symbol_at(self.0) {
            Some(symbol) => write!(f, "{}+{:#x}/{:#x}", symbol.name, symbol.offset, symbol.size),
            None => write!(f, "?"),
        }
    }
}
