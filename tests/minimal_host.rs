//! The engine embedded by a different, minimal host passes Linux's
//! `test_kprobes.c` scenarios.
//!
//! Why: the engine is meant to be embedded in kernels other than this one,
//! through its `Host` trait alone. This kernel image binds `MinimalHost`
//! instead of the kernel's own host: one task (id 0, never preempted inside
//! a slot, nothing to yield to), the boot stack as its only stack, and the
//! image's symbol table and text patcher. It spawns no task. The scenarios
//! are `lib/tests/test_kprobes.c`'s: one kprobe, a batch, the two misses of
//! handlers that call the probed function, kretprobes with entry handlers,
//! a batch of them, a stack trace in a return handler; plus `maxactive`
//! misses and a jprobe. Every count is exact, and the engine is shown to
//! have asked this host, not the kernel's.
// run.sh: --smp=1
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(probe_kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

use core::hint::black_box;
use core::ops::Range;
use core::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use probe_kernel::kprobes::*;
use probe_kernel::testing::{entry_argument, name_of};

probe_kernel::test_kernel_main!(host = MinimalHost);

/// One task, no scheduler: the host a small kernel would write first.
struct MinimalHost;

/// How often the engine asked this host for the current task.
static CURRENT_TASK_CALLS: AtomicUsize = AtomicUsize::new(0);
/// How often the engine asked this host to synchronize the other CPUs.
static SYNC_CALLS: AtomicUsize = AtomicUsize::new(0);

fn symbol(s: probe_kernel::symbols::Symbol) -> Symbol {
    Symbol { name: s.name, address: s.address, size: s.size, offset: s.offset }
}

impl Host for MinimalHost {
    unsafe fn text_poke(address: usize, bytes: &[u8]) -> Result<(), PatchError> {
        // SAFETY: passed on under the engine's contract (Host::text_poke).
        unsafe { probe_kernel::arch::x86::patch::text_poke(address, bytes) }
    }
    fn kernel_text() -> Range<usize> {
        probe_kernel::arch::x86::paging::kernel_text()
    }
    fn engine_text() -> Range<usize> {
        probe_kernel::arch::x86::paging::kprobes_text()
    }
    fn slot_memory() -> Range<usize> {
        probe_kernel::memory::slots::memory()
    }
    fn current_task() -> usize {
        CURRENT_TASK_CALLS.fetch_add(1, SeqCst);
        0
    }
    fn current_cpu() -> usize {
        // The one thing no host can fake on SMP: which CPU's control block.
        probe_kernel::arch::x86::percpu::cpu_id()
    }
    fn online_cpus() -> usize {
        1 // this host's machine has one CPU (see the run.sh line above)
    }
    fn sync_cpus() {
        SYNC_CALLS.fetch_add(1, SeqCst); // no other CPU to interrupt
    }
    fn task_may_resume_in(_range: Range<usize>) -> bool {
        false // one task and one CPU, and registration never runs in interrupt context
    }
    fn stack_of(address: usize) -> Option<Range<usize>> {
        unsafe extern "C" {
            static boot_stack_bottom: u8;
            static boot_stack_top: u8;
        }
        let stack = (&raw const boot_stack_bottom as usize)..(&raw const boot_stack_top as usize);
        stack.contains(&address).then_some(stack)
    }
    fn yield_now() {
        core::hint::spin_loop(); // nobody else can hold the registry's lock
    }
    fn symbol_by_name(name: &str) -> Option<Symbol> {
        probe_kernel::symbols::lookup_name(name).map(symbol)
    }
    fn symbol_at(address: usize) -> Option<Symbol> {
        probe_kernel::symbols::lookup_address(address).map(symbol)
    }
    fn for_each_symbol(visit: &mut dyn FnMut(Symbol)) {
        probe_kernel::symbols::iter().map(symbol).for_each(visit)
    }
    fn timestamp() -> u64 {
        probe_kernel::arch::cpu::rdtsc()
    }
    fn never_probe(name: &str) -> bool {
        matches!(name, "_start" | "kernel_boot_entry")
    }
}

// ---------------------------------------------------------------- targets

#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn mh_target(value: u32) -> u32 {
    black_box(value) * 3 + 1
}

#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn mh_target2(value: u32) -> u32 {
    black_box(value) + 7
}

#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn mh_recurse(depth: u32) -> u32 {
    if depth == 0 { 0 } else { black_box(mh_recurse(depth - 1)) + 1 }
}

#[inline(never)]
fn mh_caller() -> u32 {
    black_box(mh_target2(black_box(5))) + 1
}

// ------------------------------------------------------------- kprobes

static PRE: AtomicUsize = AtomicUsize::new(0);
static POST: AtomicUsize = AtomicUsize::new(0);
static PRE_EIP: AtomicUsize = AtomicUsize::new(0);
static POST_EIP: AtomicUsize = AtomicUsize::new(0);

fn pre(_p: &Kprobe, regs: &mut PtRegs) -> PreAction {
    PRE.fetch_add(1, SeqCst);
    PRE_EIP.store(regs.ip(), SeqCst);
    PreAction::Continue
}

fn post(_p: &Kprobe, regs: &mut PtRegs) {
    POST.fetch_add(1, SeqCst);
    POST_EIP.store(regs.ip(), SeqCst);
}

static KP: Kprobe = Kprobe::new().symbol("mh_target", 0).pre_handler(pre).post_handler(post);
static KP2: Kprobe = Kprobe::new().symbol("mh_target2", 0).pre_handler(pre).post_handler(post);

fn reset() {
    for counter in [&PRE, &POST, &REPORTS, &ENTRIES] {
        counter.store(0, SeqCst);
    }
}

#[test_case]
fn lanes_ask_this_host_by_calls() {
    // This host made no GS promise: its lanes keep calling it.
    assert_eq!(inlined_queries(), 0);
    // Nor did it say its timestamp is the counter (though it is): the
    // kretprobe entry keeps calling it.
    assert_eq!(inlined_timestamps(), 0);
}

#[test_case]
fn test_kprobe() {
    reset();
    let syncs = SYNC_CALLS.load(SeqCst);
    register_kprobe(&KP).unwrap();
    assert_eq!(SYNC_CALLS.load(SeqCst), syncs + 1, "arming synchronized the other CPUs before returning");
    assert_eq!(mh_target(4), 13);
    unregister_kprobe(&KP).unwrap();
    assert_eq!(SYNC_CALLS.load(SeqCst), syncs + 2, "unregistration synchronized once: disarm, then free");
    assert_eq!((PRE.load(SeqCst), POST.load(SeqCst)), (1, 1));
    assert_eq!(PRE_EIP.load(SeqCst), mh_target as *const () as usize);
    assert_ne!(POST_EIP.load(SeqCst), PRE_EIP.load(SeqCst), "the post handler sees where execution goes on");
    assert_eq!(site_count(), 0);
}

#[test_case]
fn test_kprobes() {
    reset();
    register_kprobes(&[&KP, &KP2]).unwrap();
    assert_eq!(mh_target(1) + mh_target2(1), 4 + 8);
    unregister_kprobes(&[&KP, &KP2]);
    assert_eq!((PRE.load(SeqCst), POST.load(SeqCst)), (2, 2));
    assert_eq!(site_count(), 0);
}

fn recursing_pre(_p: &Kprobe, _regs: &mut PtRegs) -> PreAction {
    mh_target2(1);
    PreAction::Continue
}

fn recursing_post(_p: &Kprobe, _regs: &mut PtRegs) {
    mh_target2(2);
}

static MISSING: Kprobe = Kprobe::new().symbol("mh_target2", 0).pre_handler(recursing_pre).post_handler(recursing_post);

#[test_case]
fn test_kprobe_missed() {
    register_kprobe(&MISSING).unwrap();
    assert_eq!(mh_target2(3), 10);
    assert_eq!(MISSING.nmissed(), 2, "both handlers call the probed function");
    unregister_kprobe(&MISSING).unwrap();
}

// ----------------------------------------------------------- kretprobes

static REPORTS: AtomicUsize = AtomicUsize::new(0);
static ENTRIES: AtomicUsize = AtomicUsize::new(0);
static LAST_RETURN: AtomicUsize = AtomicUsize::new(0);

fn entry(ri: &mut KretprobeInstance, regs: &mut PtRegs) -> EntryAction {
    ENTRIES.fetch_add(1, SeqCst);
    assert_eq!(regs.argument(0), Some(entry_argument(regs, 0)));
    ri.store(entry_argument(regs, 0));
    EntryAction::Report
}

static ELAPSED: AtomicUsize = AtomicUsize::new(0);

fn returned(ri: &mut KretprobeInstance, regs: &mut PtRegs) {
    ELAPSED.store(probe_kernel::arch::cpu::rdtsc().saturating_sub(ri.entry_timestamp()) as usize, SeqCst);
    let argument: u32 = ri.load();
    assert_eq!(regs.return_value() as u32, argument * 3 + 1, "mh_target({argument})");
    REPORTS.fetch_add(1, SeqCst);
    LAST_RETURN.store(regs.return_value(), SeqCst);
}

fn returned2(_ri: &mut KretprobeInstance, regs: &mut PtRegs) {
    REPORTS.fetch_add(1, SeqCst);
    LAST_RETURN.store(regs.return_value(), SeqCst);
}

static RP: Kretprobe = Kretprobe::new().symbol("mh_target").entry_handler(entry).handler(returned).data_size(4);
static RP2: Kretprobe = Kretprobe::new().symbol("mh_target2").handler(returned2);

#[test_case]
fn test_kretprobe() {
    reset();
    let asked = CURRENT_TASK_CALLS.load(SeqCst);
    register_kretprobe(&RP).unwrap();
    assert_eq!(mh_target(6), 19);
    unregister_kretprobe(&RP).unwrap();
    assert_eq!((ENTRIES.load(SeqCst), REPORTS.load(SeqCst)), (1, 1));
    assert_eq!(LAST_RETURN.load(SeqCst), 19);
    let elapsed = ELAPSED.load(SeqCst);
    assert!(elapsed > 0 && elapsed < 10_000_000, "the entry was stamped with this host's timestamp: {elapsed}");
    assert!(CURRENT_TASK_CALLS.load(SeqCst) > asked, "the engine asked this host for the current task");
}

#[test_case]
fn test_kretprobes() {
    reset();
    register_kretprobes(&[&RP, &RP2]).unwrap();
    assert_eq!(mh_target(2) + mh_target2(2), 7 + 9);
    unregister_kretprobes(&[&RP, &RP2]);
    assert_eq!(REPORTS.load(SeqCst), 2);
    assert_eq!(kretprobe::retired_pools(), 0);
}

static TRACE: [AtomicUsize; 4] = [const { AtomicUsize::new(0) }; 4];

fn trace_in_return(_ri: &mut KretprobeInstance, _regs: &mut PtRegs) {
    let mut store = [0; 4];
    let count = probe_kernel::unwind::stack_trace_save(&mut store);
    for (slot, address) in TRACE.iter().zip(&store[..count]) {
        slot.store(*address, SeqCst);
    }
}

static TRACED: Kretprobe = Kretprobe::new().symbol("mh_target2").handler(trace_in_return);

#[test_case]
fn test_stacktrace_on_kretprobe() {
    register_kretprobe(&TRACED).unwrap();
    assert_eq!(black_box(mh_caller()), 13);
    unregister_kretprobe(&TRACED).unwrap();
    let names: [&str; 4] = core::array::from_fn(|i| name_of(TRACE[i].load(SeqCst)));
    assert!(names.contains(&"minimal_host::mh_caller"), "the real caller is on the trace: {names:?}");
    let trampoline = probe_kernel::arch::x86::kprobes::trampoline::address();
    assert!(TRACE.iter().all(|t| t.load(SeqCst) != trampoline), "no trampoline on the trace");
}

static SHALLOW: Kretprobe = Kretprobe::new().symbol("mh_recurse").handler(returned2).maxactive(3);

#[test_case]
fn maxactive_bounds_the_reported_returns() {
    reset();
    register_kretprobe(&SHALLOW).unwrap();
    assert_eq!(mh_recurse(7), 7);
    unregister_kretprobe(&SHALLOW).unwrap();
    assert_eq!(REPORTS.load(SeqCst), 3, "the three outermost of eight calls");
    assert_eq!(SHALLOW.nmissed(), 5);
}

// --------------------------------------------------------------- jprobe

static JPROBE_ARGUMENT: AtomicUsize = AtomicUsize::new(0);

extern "C" fn seen(value: u32) -> u32 {
    JPROBE_ARGUMENT.store(value as usize, SeqCst);
    jprobe_return()
}

static JP: Jprobe = Jprobe::new(seen as *const ()).symbol("mh_target");

#[test_case]
fn a_jprobe_sees_the_argument() {
    register_jprobe(&JP).unwrap();
    assert_eq!(mh_target(11), 34);
    unregister_jprobe(&JP).unwrap();
    assert_eq!(JPROBE_ARGUMENT.load(SeqCst), 11);
}
