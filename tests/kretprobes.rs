//! Test kernel: function-return probes (kretprobes), single task.
//!
//! Linux's `lib/tests/test_kprobes.c` kretprobe scenarios (entry + return
//! handler, a batch, a batch rolled back), stack traces and
//! `return_address` seen from a return handler and from a probed function,
//! `maxactive` under recursion (which calls get instances, how many miss),
//! entry handlers that skip calls, per-instance data of the largest size,
//! several probes of every kind on one function, the recursion guard, and
//! enable/disable. Every expectation is exact.
//!
//! Each test unregisters what it registered, so the tests are independent
//! and run in any subset (`cargo test --test kretprobes -- NAME`).
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(probe_kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

use core::hint::black_box;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering::SeqCst};
use probe_kernel::arch::x86::kprobes::trampoline;
use probe_kernel::kprobes::kretprobe::{active_instances, retired_pools};
use probe_kernel::kprobes::*;
use probe_kernel::testing::{caller_of, entry_argument, load, reset, stack_word, text_byte};
use probe_kernel::{symbols, task, unwind};

probe_kernel::test_kernel_main!();

// ---------------------------------------------------------------- helpers

/// A log of small values written by handlers (interrupts are off there).
struct Log<const N: usize> {
    items: [AtomicUsize; N],
    len: AtomicUsize,
}

impl<const N: usize> Log<N> {
    const fn new() -> Self {
        Log { items: [const { AtomicUsize::new(0) }; N], len: AtomicUsize::new(0) }
    }
    fn clear(&self) {
        self.len.store(0, SeqCst);
        for item in &self.items {
            item.store(0, SeqCst);
        }
    }
    fn push(&self, value: usize) {
        let index = self.len.fetch_add(1, SeqCst);
        if index < N {
            self.items[index].store(value, SeqCst);
        }
    }
    fn len(&self) -> usize {
        self.len.load(SeqCst)
    }
    /// The first `len` values (the log must not have overflowed).
    fn get(&self) -> ([usize; N], usize) {
        let len = self.len();
        assert!(len <= N, "log overflowed: {len} entries, room for {N}");
        let mut out = [0; N];
        for (slot, item) in out.iter_mut().zip(&self.items).take(len) {
            *slot = item.load(SeqCst);
        }
        (out, len)
    }
}

// ============================================================ 1. test_kprobes.c

#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn kr_target(value: u32) -> u32 {
    black_box(value) / 3 + 17
}

#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn kr_target2(value: u32) -> u32 {
    black_box(value).wrapping_mul(5) + 2
}

fn expected_target(value: u32) -> u32 {
    value / 3 + 17
}
fn expected_target2(value: u32) -> u32 {
    value.wrapping_mul(5) + 2
}

static ENTRY_CALLS: AtomicUsize = AtomicUsize::new(0);
static ENTRY_ARG: AtomicUsize = AtomicUsize::new(0);
static ENTRY_SLOT_OK: AtomicUsize = AtomicUsize::new(0);
static RET_CALLS: AtomicUsize = AtomicUsize::new(0);
static RET_VALUE: AtomicUsize = AtomicUsize::new(0);
static RET_ARG: AtomicUsize = AtomicUsize::new(0);
static RET_EIP: AtomicUsize = AtomicUsize::new(0);
static RET_RI_ADDR: AtomicUsize = AtomicUsize::new(0);
static RET_ESP: AtomicUsize = AtomicUsize::new(0);
static RET_SLOT: AtomicUsize = AtomicUsize::new(0);

fn test_entry(ri: &mut KretprobeInstance, regs: &mut PtRegs) -> EntryAction {
    ENTRY_CALLS.fetch_add(1, SeqCst);
    let esp = regs.esp as usize;
    // At the first instruction ESP points at the return address, and the
    // first cdecl argument is right above it.
    let arg = stack_word(esp + 4);
    let ok = stack_word(esp) == ri.ret_addr() && ri.stack_slot() == esp && ri.task() == task::current_id();
    ENTRY_SLOT_OK.fetch_add(ok as usize, SeqCst);
    ENTRY_ARG.store(arg, SeqCst);
    ri.store(arg as u32);
    EntryAction::Report
}

fn test_return(ri: &mut KretprobeInstance, regs: &mut PtRegs) {
    RET_CALLS.fetch_add(1, SeqCst);
    RET_VALUE.store(regs_return_value(regs) as usize, SeqCst);
    RET_ARG.store(ri.load::<u32>() as usize, SeqCst);
    RET_EIP.store(regs.eip as usize, SeqCst);
    RET_RI_ADDR.store(ri.ret_addr(), SeqCst);
    RET_ESP.store(regs.esp as usize, SeqCst);
    RET_SLOT.store(ri.stack_slot(), SeqCst);
}

static RP_TEST: Kretprobe =
    Kretprobe::new().symbol("kr_target").entry_handler(test_entry).handler(test_return).data_size(4);

const RAND1: u32 = 0x2f3a_81c5;

#[inline(never)]
#[test_case]
fn kretprobe_entry_and_return_handler() {
    reset(&[&ENTRY_CALLS, &ENTRY_SLOT_OK, &RET_CALLS, &RET_VALUE, &RET_ARG, &RET_EIP]);
    register_kretprobe(&RP_TEST).expect("register");
    assert!(RP_TEST.is_enabled());
    assert_eq!(RP_TEST.nmissed(), 0);
    let value = kr_target(black_box(RAND1));
    assert_eq!(value, expected_target(RAND1));
    assert_eq!(load(&ENTRY_CALLS), 1);
    assert_eq!(load(&ENTRY_ARG), RAND1 as usize, "entry handler saw the argument at [esp+4]");
    assert_eq!(load(&ENTRY_SLOT_OK), 1, "entry: [esp] is the return address, slot = esp, task = current");
    assert_eq!(load(&RET_CALLS), 1);
    assert_eq!(load(&RET_VALUE), expected_target(RAND1) as usize);
    assert_eq!(load(&RET_ARG), RAND1 as usize, "instance data carried the argument");
    // The handler sees the real return address in regs.eip, inside us.
    let eip = load(&RET_EIP);
    assert_eq!(eip, load(&RET_RI_ADDR));
    assert_eq!(caller_of(eip), "kretprobes::kretprobe_entry_and_return_handler");
    // After `ret`, ESP is just above the slot the return address was in.
    assert_eq!(load(&RET_ESP), load(&RET_SLOT) + 4);
    assert_eq!(RP_TEST.nmissed(), 0);
    assert_eq!(active_instances(task::current_id()), 0);
    unregister_kretprobe(&RP_TEST).expect("unregister");
    assert!(!RP_TEST.is_enabled());
    assert_eq!(kr_target(black_box(7)), expected_target(7));
    assert_eq!(load(&ENTRY_CALLS), 1, "no entry after unregistering");
    assert_eq!(load(&RET_CALLS), 1, "no return after unregistering");
    assert_eq!(unregister_kretprobe(&RP_TEST), Err(KprobeError::NotRegistered));
}

static BATCH_A_CALLS: AtomicUsize = AtomicUsize::new(0);
static BATCH_A_VALUE: AtomicUsize = AtomicUsize::new(0);
static BATCH_B_CALLS: AtomicUsize = AtomicUsize::new(0);
static BATCH_B_VALUE: AtomicUsize = AtomicUsize::new(0);

fn batch_a(_ri: &mut KretprobeInstance, regs: &mut PtRegs) {
    BATCH_A_CALLS.fetch_add(1, SeqCst);
    BATCH_A_VALUE.store(regs_return_value(regs) as usize, SeqCst);
}
fn batch_b(_ri: &mut KretprobeInstance, regs: &mut PtRegs) {
    BATCH_B_CALLS.fetch_add(1, SeqCst);
    BATCH_B_VALUE.store(regs_return_value(regs) as usize, SeqCst);
}

static RP_BATCH_A: Kretprobe = Kretprobe::new().symbol("kr_target").handler(batch_a);
static RP_BATCH_B: Kretprobe = Kretprobe::new().symbol("kr_target2").handler(batch_b);
static RP_BATCH_BAD: Kretprobe = Kretprobe::new().symbol("kr_no_such_function").handler(batch_b);

const RAND2: u32 = 0x0123_4567;

#[inline(never)]
#[test_case]
fn kretprobes_batch() {
    reset(&[&BATCH_A_CALLS, &BATCH_A_VALUE, &BATCH_B_CALLS, &BATCH_B_VALUE]);
    let sites = site_count();
    register_kretprobes(&[&RP_BATCH_A, &RP_BATCH_B]).expect("register batch");
    assert_eq!(site_count(), sites + 2);
    assert_eq!(kr_target(black_box(RAND1)), expected_target(RAND1));
    assert_eq!((load(&BATCH_A_CALLS), load(&BATCH_B_CALLS)), (1, 0));
    assert_eq!(load(&BATCH_A_VALUE), expected_target(RAND1) as usize);
    assert_eq!(kr_target2(black_box(RAND2)), expected_target2(RAND2));
    assert_eq!((load(&BATCH_A_CALLS), load(&BATCH_B_CALLS)), (1, 1));
    assert_eq!(load(&BATCH_B_VALUE), expected_target2(RAND2) as usize);
    assert_eq!((RP_BATCH_A.nmissed(), RP_BATCH_B.nmissed()), (0, 0));
    unregister_kretprobes(&[&RP_BATCH_A, &RP_BATCH_B]);
    assert_eq!(site_count(), sites);
    assert_eq!(kr_target(black_box(RAND1)), expected_target(RAND1));
    assert_eq!(kr_target2(black_box(RAND2)), expected_target2(RAND2));
    assert_eq!((load(&BATCH_A_CALLS), load(&BATCH_B_CALLS)), (1, 1));
}

#[inline(never)]
#[test_case]
fn kretprobes_batch_rollback() {
    reset(&[&BATCH_A_CALLS, &BATCH_B_CALLS]);
    let sites = site_count();
    let arena = kretprobe_arena_used();
    assert_eq!(register_kretprobes(&[&RP_BATCH_A, &RP_BATCH_BAD]), Err(KprobeError::UnknownSymbol));
    // The first one was rolled back: not registered, no breakpoint, its
    // instance pool freed.
    assert!(!RP_BATCH_A.is_enabled());
    assert!(RP_BATCH_A.kp.flags().contains(KprobeFlags::GONE));
    assert_eq!(RP_BATCH_A.kp.addr(), None);
    assert_eq!(site_count(), sites);
    assert_eq!(retired_pools(), 0);
    assert_eq!(kretprobe_arena_used(), arena, "the rolled-back pool was freed");
    let symbol = symbols::lookup_name("kr_target").expect("kr_target in the symbol table");
    let mut first = [0u8; 1];
    original_bytes(symbol.address, &mut first);
    let live = text_byte(symbol.address);
    assert_eq!(live, first[0], "no breakpoint left at kr_target");
    assert_eq!(kr_target(black_box(RAND1)), expected_target(RAND1));
    assert_eq!(load(&BATCH_A_CALLS), 0, "calls are not reported after the rollback");
    assert_eq!(unregister_kretprobe(&RP_BATCH_A), Err(KprobeError::NotRegistered));
    // An invalid one first: nothing registered either.
    assert_eq!(register_kretprobes(&[&RP_BATCH_BAD, &RP_BATCH_B]), Err(KprobeError::UnknownSymbol));
    assert!(!RP_BATCH_B.is_enabled());
    assert_eq!(kr_target2(black_box(RAND2)), expected_target2(RAND2));
    assert_eq!(load(&BATCH_B_CALLS), 0);
    // The same probe twice: the second is refused and the first rolled back.
    assert_eq!(register_kretprobes(&[&RP_BATCH_A, &RP_BATCH_A]), Err(KprobeError::AlreadyRegistered));
    assert!(!RP_BATCH_A.is_enabled());
    assert_eq!(site_count(), sites);
    // Still registrable after all that.
    register_kretprobe(&RP_BATCH_A).expect("register after rollback");
    assert_eq!(kr_target(black_box(RAND1)), expected_target(RAND1));
    assert_eq!(load(&BATCH_A_CALLS), 1);
    unregister_kretprobe(&RP_BATCH_A).expect("unregister");
    assert_eq!(kretprobe_arena_used(), arena);
}

// ======================================================= 2. stack traces

const MAX_FRAMES: usize = 32;
static TRACE_A: Log<MAX_FRAMES> = Log::new();
static TRACE_B: Log<MAX_FRAMES> = Log::new();
static TRACE_BODY: Log<MAX_FRAMES> = Log::new();
static ST_CALLS_1: AtomicUsize = AtomicUsize::new(0);
static ST_CALLS_2: AtomicUsize = AtomicUsize::new(0);
static ST_RET_1: AtomicUsize = AtomicUsize::new(0);
static ST_RET_2: AtomicUsize = AtomicUsize::new(0);

#[inline(always)]
fn record_walk(log: &Log<MAX_FRAMES>) {
    log.clear();
    unwind::walk(probe_kernel::arch::cpu::frame_pointer(), |frame| log.push(frame.address));
}

#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn st_f2(value: u32) -> u32 {
    record_walk(&TRACE_BODY);
    black_box(value) ^ 0x55
}

#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn st_f1(value: u32) -> u32 {
    black_box(st_f2(black_box(value) + 1)) + 3
}

fn st_handler_1(ri: &mut KretprobeInstance, regs: &mut PtRegs) {
    ST_CALLS_1.fetch_add(1, SeqCst);
    ST_RET_1.store(ri.ret_addr(), SeqCst);
    assert_eq!(regs.eip as usize, ri.ret_addr());
    record_walk(&TRACE_A);
}

fn st_handler_2(ri: &mut KretprobeInstance, regs: &mut PtRegs) {
    ST_CALLS_2.fetch_add(1, SeqCst);
    ST_RET_2.store(ri.ret_addr(), SeqCst);
    assert_eq!(regs.eip as usize, ri.ret_addr());
    record_walk(&TRACE_B);
}

static RP_ST1: Kretprobe = Kretprobe::new().symbol("st_f1").handler(st_handler_1);
static RP_ST2: Kretprobe = Kretprobe::new().symbol("st_f2").handler(st_handler_2);
static TRACE_ENTRY: Log<MAX_FRAMES> = Log::new();
fn st_entry_2(_ri: &mut KretprobeInstance, _regs: &mut PtRegs) -> EntryAction {
    record_walk(&TRACE_ENTRY);
    EntryAction::Report
}
static RP_ST2_ENTRY: Kretprobe = Kretprobe::new().symbol("st_f2").entry_handler(st_entry_2);

/// Index of the first frame returning into `function`, checking that no
/// frame is the trampoline.
fn frame_into(log: &Log<MAX_FRAMES>, function: &str) -> Option<usize> {
    let (frames, len) = log.get();
    for &address in &frames[..len] {
        assert_ne!(address, trampoline::address(), "the trampoline shows in a stack trace");
    }
    frames[..len].iter().position(|&address| caller_of(address) == function)
}

fn print_log(what: &str, log: &Log<MAX_FRAMES>) {
    let (frames, len) = log.get();
    probe_kernel::println!("{what}:");
    for &address in &frames[..len] {
        probe_kernel::println!("  {address:#010x} {}", symbols::Describe(address));
    }
}

#[inline(never)]
#[test_case]
fn stacktrace_in_return_handler() {
    reset(&[&ST_CALLS_2, &ST_RET_2]);
    register_kretprobe(&RP_ST2).expect("register");
    let value = black_box(st_f2(black_box(40)));
    assert_eq!(value, 40 ^ 0x55);
    assert_eq!(load(&ST_CALLS_2), 1);
    let ret = load(&ST_RET_2);
    assert_eq!(caller_of(ret), "kretprobes::stacktrace_in_return_handler");
    let index = frame_into(&TRACE_B, "kretprobes::stacktrace_in_return_handler");
    if index.is_none() {
        print_log("walk in st_f2's return handler", &TRACE_B);
    }
    let index = index.expect("the probed function's real caller is in the handler's stack trace");
    assert_eq!(TRACE_B.get().0[index], ret, "the frame is the real return address");
    // And from inside the probed function, while its return is hijacked.
    let index = frame_into(&TRACE_BODY, "kretprobes::stacktrace_in_return_handler");
    assert_eq!(index, Some(0), "the first frame of a walk in st_f2 returns into its caller");
    assert_eq!(TRACE_BODY.get().0[0], ret);
    unregister_kretprobe(&RP_ST2).expect("unregister");
}

#[inline(never)]
#[test_case]
fn stacktrace_nested_return_handlers() {
    reset(&[&ST_CALLS_1, &ST_CALLS_2, &ST_RET_1, &ST_RET_2]);
    register_kretprobes(&[&RP_ST1, &RP_ST2]).expect("register");
    let value = black_box(st_f1(black_box(40)));
    assert_eq!(value, (41 ^ 0x55) + 3);
    assert_eq!((load(&ST_CALLS_1), load(&ST_CALLS_2)), (1, 1));
    assert_eq!(caller_of(load(&ST_RET_2)), "st_f1");
    assert_eq!(caller_of(load(&ST_RET_1)), "kretprobes::stacktrace_nested_return_handlers");
    // In f2's handler: f1, then f1's real caller, right after it.
    let f1 = frame_into(&TRACE_B, "st_f1");
    let outer = frame_into(&TRACE_B, "kretprobes::stacktrace_nested_return_handlers");
    if f1.is_none() || outer != f1.map(|i| i + 1) {
        print_log("walk in st_f2's return handler", &TRACE_B);
    }
    let f1 = f1.expect("f1 in f2's return-handler trace");
    assert_eq!(outer, Some(f1 + 1), "f1's real caller right after f1");
    let frames = TRACE_B.get().0;
    assert_eq!(frames[f1], load(&ST_RET_2));
    assert_eq!(frames[f1 + 1], load(&ST_RET_1));
    // In f1's handler: the test function.
    let index = frame_into(&TRACE_A, "kretprobes::stacktrace_nested_return_handlers");
    assert!(index.is_some(), "f1's caller in f1's return-handler trace");
    assert_eq!(frame_into(&TRACE_A, "st_f1"), None, "f1 has returned: its frame is gone");
    // Inside f2's body, both returns hijacked: f1 then the test function.
    assert_eq!(frame_into(&TRACE_BODY, "st_f1"), Some(0));
    assert_eq!(frame_into(&TRACE_BODY, "kretprobes::stacktrace_nested_return_handlers"), Some(1));
    unregister_kretprobes(&[&RP_ST1, &RP_ST2]);
}

/// A walk in an entry handler: the probed function's first instruction,
/// then its caller (whose own return is hijacked), then the test.
#[inline(never)]
#[test_case]
fn stacktrace_in_entry_handler() {
    reset(&[&ST_CALLS_1, &ST_RET_1]);
    TRACE_ENTRY.clear();
    register_kretprobes(&[&RP_ST1, &RP_ST2_ENTRY]).expect("register");
    assert_eq!(black_box(st_f1(black_box(1))), (2 ^ 0x55) + 3);
    assert_eq!(load(&ST_CALLS_1), 1);
    let (frames, len) = TRACE_ENTRY.get();
    let f2 = symbols::lookup_name("st_f2").expect("st_f2").address;
    let at = frames[..len].iter().position(|&a| a == f2);
    if at.is_none() {
        print_log("walk in st_f2's entry handler", &TRACE_ENTRY);
    }
    let at = at.expect("the probed instruction (st_f2's entry) in the entry handler's trace");
    assert_eq!(frame_into(&TRACE_ENTRY, "st_f1"), Some(at + 1));
    assert_eq!(frame_into(&TRACE_ENTRY, "kretprobes::stacktrace_in_entry_handler"), Some(at + 2));
    assert_eq!(frames[at + 2], load(&ST_RET_1));
    unregister_kretprobes(&[&RP_ST1, &RP_ST2_ENTRY]);
}

// ============================ stack traces from traps inside the trampoline

/// A known layout: the `ret` is at offset 10.
#[unsafe(naked)]
#[unsafe(no_mangle)]
extern "C" fn kr_naked_ret(value: u32) -> u32 {
    core::arch::naked_asm!(
        "push ebp",         // 55
        "mov ebp, esp",     // 89 e5
        "mov eax, [ebp+8]", // 8b 45 08
        "add eax, 5",       // 83 c0 05
        "pop ebp",          // 5d
        "ret",              // c3, offset 10
    )
}
const NAKED_RET_OFFSET: usize = 10;

static NAKED_REPORTS: AtomicUsize = AtomicUsize::new(0);
static NAKED_VALUE: AtomicUsize = AtomicUsize::new(0);
static NAKED_RET: AtomicUsize = AtomicUsize::new(0);
fn naked_return(ri: &mut KretprobeInstance, regs: &mut PtRegs) {
    NAKED_REPORTS.fetch_add(1, SeqCst);
    NAKED_VALUE.store(regs_return_value(regs) as usize, SeqCst);
    NAKED_RET.store(ri.ret_addr(), SeqCst);
}
static RP_NAKED: Kretprobe = Kretprobe::new().symbol("kr_naked_ret").handler(naked_return);

static POST_EIP: AtomicUsize = AtomicUsize::new(0);
static POST_CALLS: AtomicUsize = AtomicUsize::new(0);
static STEP_INTO_TRAMPOLINE: AtomicBool = AtomicBool::new(false);
static TRACE_POST: Log<MAX_FRAMES> = Log::new();

/// Runs right after the `ret` was single-stepped: the CPU is at the
/// trampoline's first instruction (the trap frame's EIP).
fn ret_post(_p: &Kprobe, regs: &mut PtRegs) {
    POST_CALLS.fetch_add(1, SeqCst);
    POST_EIP.store(regs.eip as usize, SeqCst);
    record_walk(&TRACE_POST);
    if STEP_INTO_TRAMPOLINE.load(SeqCst) {
        regs.eflags |= probe_kernel::arch::cpu::EFLAGS_TF;
    }
}
static KP_NAKED_RET: Kprobe = Kprobe::new().symbol("kr_naked_ret", NAKED_RET_OFFSET).post_handler(ret_post);

/// Whether a walk holds `real` and never the trampoline's address.
fn walk_is_truthful(real: usize) -> bool {
    let mut found = false;
    let mut trampoline_seen = false;
    unwind::walk(probe_kernel::arch::cpu::frame_pointer(), |frame| {
        found |= frame.address == real;
        trampoline_seen |= frame.address == trampoline::address();
    });
    found && !trampoline_seen
}

static STEPS: AtomicUsize = AtomicUsize::new(0);
static STEPS_TRUTHFUL: AtomicUsize = AtomicUsize::new(0);
static STEPS_OUTSIDE: AtomicUsize = AtomicUsize::new(0);
static STEP_EXPECTED_RET: AtomicUsize = AtomicUsize::new(0);

/// Single-steps the trampoline up to its call into the dispatcher, walking
/// the stack at every instruction (as a sampling profiler's interrupt would).
fn step_hook(frame: &mut PtRegs) -> probe_kernel::arch::TrapOutcome {
    use probe_kernel::arch::x86::trap::last_dr6;
    if last_dr6() & probe_kernel::arch::cpu::DR6_SINGLE_STEP == 0 {
        return probe_kernel::arch::TrapOutcome::NotMine;
    }
    let eip = frame.eip as usize;
    if (trampoline::address()..trampoline::dispatch_return_site()).contains(&eip) {
        STEPS.fetch_add(1, SeqCst);
        if walk_is_truthful(STEP_EXPECTED_RET.load(SeqCst)) {
            STEPS_TRUTHFUL.fetch_add(1, SeqCst);
        }
    } else {
        // The dispatcher's first instruction, then the caller's (the
        // trampoline's saved EFLAGS had TF set): stop stepping.
        STEPS_OUTSIDE.fetch_add(1, SeqCst);
        frame.eflags &= !probe_kernel::arch::cpu::EFLAGS_TF;
    }
    probe_kernel::arch::TrapOutcome::Handled
}

#[inline(never)]
fn naked_caller(value: u32) -> u32 {
    black_box(kr_naked_ret(black_box(value)))
}

#[inline(never)]
#[test_case]
fn stacktrace_from_trap_at_trampoline_entry() {
    let symbol = symbols::lookup_name("kr_naked_ret").expect("kr_naked_ret");
    let mut byte = [0u8; 1];
    original_bytes(symbol.address + NAKED_RET_OFFSET, &mut byte);
    assert_eq!(byte[0], 0xc3, "the ret of kr_naked_ret");
    reset(&[&NAKED_REPORTS, &POST_CALLS, &POST_EIP]);
    STEP_INTO_TRAMPOLINE.store(false, SeqCst);
    register_kretprobe(&RP_NAKED).expect("register kretprobe");
    register_kprobe(&KP_NAKED_RET).expect("register kprobe on the ret");
    assert_eq!(naked_caller(black_box(10)), 15);
    assert_eq!(load(&POST_CALLS), 1);
    assert_eq!(load(&NAKED_REPORTS), 1);
    assert_eq!(load(&NAKED_VALUE), 15);
    let real = load(&NAKED_RET);
    assert_eq!(caller_of(real), "kretprobes::naked_caller");
    // The premise: the trap came right at the trampoline's entry.
    assert_eq!(load(&POST_EIP), trampoline::address());
    let (frames, len) = TRACE_POST.get();
    let truthful = frames[..len].contains(&real) && !frames[..len].contains(&trampoline::address());
    if !truthful {
        print_log("walk in the post handler of the ret", &TRACE_POST);
    }
    assert!(truthful, "a trap at the trampoline's entry: the walk shows the real return address, not the trampoline");
    unregister_kprobe(&KP_NAKED_RET).expect("unregister kprobe");
    unregister_kretprobe(&RP_NAKED).expect("unregister kretprobe");
}

#[inline(never)]
#[test_case]
fn stacktrace_from_traps_inside_trampoline() {
    use probe_kernel::arch::x86::trap::{HookKind, set_hook};
    reset(&[&NAKED_REPORTS, &POST_CALLS, &STEPS, &STEPS_TRUTHFUL, &STEPS_OUTSIDE]);
    register_kretprobe(&RP_NAKED).expect("register kretprobe");
    register_kprobe(&KP_NAKED_RET).expect("register kprobe on the ret");
    // The real return address of the call below, learnt from a first call.
    assert_eq!(naked_caller(black_box(1)), 6);
    STEP_EXPECTED_RET.store(load(&NAKED_RET), SeqCst);
    STEP_INTO_TRAMPOLINE.store(true, SeqCst);
    set_hook(HookKind::Debug, Some(step_hook));
    assert_eq!(naked_caller(black_box(2)), 7);
    set_hook(HookKind::Debug, None);
    STEP_INTO_TRAMPOLINE.store(false, SeqCst);
    assert_eq!(load(&NAKED_RET), STEP_EXPECTED_RET.load(SeqCst), "same call site");
    assert_eq!(load(&NAKED_REPORTS), 2);
    assert_eq!(load(&NAKED_VALUE), 7);
    assert_eq!(load(&STEPS_OUTSIDE), 2, "stepping ended in the dispatcher and once more in the caller");
    assert!(load(&STEPS) > 0);
    assert_eq!(load(&STEPS_TRUTHFUL), load(&STEPS), "every walk from inside the trampoline is truthful");
    unregister_kprobe(&KP_NAKED_RET).expect("unregister kprobe");
    unregister_kretprobe(&RP_NAKED).expect("unregister kretprobe");
}

// =================================================== 3. return_address

static RA_SEEN: AtomicUsize = AtomicUsize::new(0);
static RA_SEEN_1: AtomicUsize = AtomicUsize::new(0);
static RA_HANDLER_CALLS: AtomicUsize = AtomicUsize::new(0);
static RA_HANDLER_RET: AtomicUsize = AtomicUsize::new(0);

#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn ra_target(value: u32) -> u32 {
    RA_SEEN.store(unwind::return_address(0).unwrap_or(0), SeqCst);
    RA_SEEN_1.store(unwind::return_address(1).unwrap_or(0), SeqCst);
    black_box(value) + 1
}

#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn ra_middle(value: u32) -> u32 {
    black_box(ra_target(black_box(value))) * 2
}

fn ra_handler(ri: &mut KretprobeInstance, _regs: &mut PtRegs) {
    RA_HANDLER_CALLS.fetch_add(1, SeqCst);
    RA_HANDLER_RET.store(ri.ret_addr(), SeqCst);
}

static RP_RA: Kretprobe = Kretprobe::new().symbol("ra_target").handler(ra_handler);
static RP_RA_MIDDLE: Kretprobe = Kretprobe::new().symbol("ra_middle").handler(ra_handler);

#[inline(never)]
#[test_case]
fn return_address_inside_probed_function() {
    reset(&[&RA_HANDLER_CALLS]);
    let mut seen = [(0usize, 0usize); 3];
    // The same call site three times: unprobed, probed, both levels probed.
    for (round, out) in seen.iter_mut().enumerate() {
        match round {
            1 => register_kretprobe(&RP_RA).expect("register"),
            2 => register_kretprobe(&RP_RA_MIDDLE).expect("register middle"),
            _ => {}
        }
        assert_eq!(black_box(ra_middle(black_box(10))), 22);
        *out = (load(&RA_SEEN), load(&RA_SEEN_1));
    }
    unregister_kretprobes(&[&RP_RA, &RP_RA_MIDDLE]);
    let (plain, plain_1) = seen[0];
    assert_eq!(caller_of(plain), "ra_middle");
    assert_eq!(caller_of(plain_1), "kretprobes::return_address_inside_probed_function");
    assert_eq!(seen[1], seen[0], "return_address(0/1) with ra_target probed");
    assert_eq!(seen[2], seen[0], "return_address(0/1) with both probed");
    assert_ne!(seen[1].0, trampoline::address());
    // 1 (round 1) + 2 (round 2) reports; the last one is ra_middle's.
    assert_eq!(load(&RA_HANDLER_CALLS), 3);
    assert_eq!(load(&RA_HANDLER_RET), plain_1);
}

// ========================================================= 4. recursion

/// 1 + 2 + ... + n, one call per level.
#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn kr_recurse(n: u32) -> u32 {
    if n <= 1 {
        return black_box(1);
    }
    black_box(kr_recurse(black_box(n - 1))) + n
}

static REC_ENTRIES: Log<16> = Log::new();
static REC_REPORTS: Log<16> = Log::new();
static REC_BAD_VALUES: AtomicUsize = AtomicUsize::new(0);

fn rec_entry(ri: &mut KretprobeInstance, regs: &mut PtRegs) -> EntryAction {
    let depth = entry_argument(regs, 0);
    REC_ENTRIES.push(depth as usize);
    ri.store(depth);
    EntryAction::Report
}

fn rec_return(ri: &mut KretprobeInstance, regs: &mut PtRegs) {
    let depth: u32 = ri.load();
    REC_REPORTS.push(depth as usize);
    if regs_return_value(regs) != depth * (depth + 1) / 2 {
        REC_BAD_VALUES.fetch_add(1, SeqCst);
    }
}

static RP_REC3: Kretprobe =
    Kretprobe::new().symbol("kr_recurse").entry_handler(rec_entry).handler(rec_return).data_size(4).maxactive(3);

fn recurse_and_check(rp: &'static Kretprobe, depth: u32, instances: usize) {
    REC_ENTRIES.clear();
    REC_REPORTS.clear();
    REC_BAD_VALUES.store(0, SeqCst);
    register_kretprobe(rp).expect("register");
    assert_eq!(kr_recurse(black_box(depth)), depth * (depth + 1) / 2);
    let (entries, n_entries) = REC_ENTRIES.get();
    let (reports, n_reports) = REC_REPORTS.get();
    assert_eq!(n_entries, instances, "entry handler runs only for calls that got an instance");
    assert_eq!(n_reports, instances);
    assert_eq!(rp.nmissed(), depth as usize - instances);
    // The outermost calls got the instances: depths depth, depth-1, ...
    for i in 0..instances {
        assert_eq!(entries[i], depth as usize - i, "entry #{i}");
        // Innermost of them returns first.
        assert_eq!(reports[i], depth as usize - instances + 1 + i, "report #{i}");
    }
    assert_eq!(load(&REC_BAD_VALUES), 0, "every reported call had the right return value");
    assert_eq!(active_instances(task::current_id()), 0);
    // A second round: all instances came back.
    REC_REPORTS.clear();
    assert_eq!(kr_recurse(black_box(depth)), depth * (depth + 1) / 2);
    assert_eq!(REC_REPORTS.len(), instances);
    assert_eq!(rp.nmissed(), 2 * (depth as usize - instances));
    unregister_kretprobe(rp).expect("unregister");
    assert_eq!(retired_pools(), 0, "no instance was still out");
}

#[test_case]
fn recursion_maxactive_3_depth_8() {
    assert_eq!(RP_REC3.effective_maxactive(), 3);
    recurse_and_check(&RP_REC3, 8, 3);
}

static TWO_A_REPORTS: AtomicUsize = AtomicUsize::new(0);
static TWO_A_BAD: AtomicUsize = AtomicUsize::new(0);
fn two_a_return(ri: &mut KretprobeInstance, regs: &mut PtRegs) {
    let depth: u32 = ri.load();
    TWO_A_REPORTS.fetch_add(1, SeqCst);
    if regs_return_value(regs) != depth * (depth + 1) / 2 {
        TWO_A_BAD.fetch_add(1, SeqCst);
    }
}
static RP_REC1: Kretprobe =
    Kretprobe::new().symbol("kr_recurse").entry_handler(rec_entry).handler(two_a_return).data_size(4).maxactive(1);

/// Two kretprobes on one recursive function with different `maxactive`:
/// at some depths only one of them swapped the return address.
#[test_case]
fn recursion_two_kretprobes_different_maxactive() {
    REC_ENTRIES.clear();
    REC_REPORTS.clear();
    reset(&[&REC_BAD_VALUES, &TWO_A_REPORTS, &TWO_A_BAD]);
    register_kretprobes(&[&RP_REC1, &RP_REC3]).expect("register");
    assert_eq!(kr_recurse(black_box(6)), 21);
    assert_eq!(load(&TWO_A_REPORTS), 1);
    assert_eq!(RP_REC1.nmissed(), 5);
    let (reports, n) = REC_REPORTS.get();
    assert_eq!(&reports[..n], &[4, 5, 6]);
    assert_eq!(RP_REC3.nmissed(), 3);
    assert_eq!((load(&REC_BAD_VALUES), load(&TWO_A_BAD)), (0, 0));
    unregister_kretprobes(&[&RP_REC1, &RP_REC3]);
    assert_eq!(retired_pools(), 0);
}

// ==================================================== 5. entry handler skip

static SKIP_ENTRIES: AtomicUsize = AtomicUsize::new(0);
static SKIP_REPORTS: Log<16> = Log::new();
static SKIP_BAD: AtomicUsize = AtomicUsize::new(0);

#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn kr_parity(value: u32) -> u32 {
    black_box(value) * 3 + 1
}

fn skip_entry(ri: &mut KretprobeInstance, regs: &mut PtRegs) -> EntryAction {
    SKIP_ENTRIES.fetch_add(1, SeqCst);
    let arg = entry_argument(regs, 0);
    ri.store(arg);
    if arg % 2 == 1 { EntryAction::Skip } else { EntryAction::Report }
}

fn skip_return(ri: &mut KretprobeInstance, regs: &mut PtRegs) {
    let arg: u32 = ri.load();
    SKIP_REPORTS.push(arg as usize);
    if regs_return_value(regs) != arg * 3 + 1 {
        SKIP_BAD.fetch_add(1, SeqCst);
    }
}

// maxactive 1: a skipped call must give its instance back at once.
static RP_SKIP: Kretprobe =
    Kretprobe::new().symbol("kr_parity").entry_handler(skip_entry).handler(skip_return).data_size(4).maxactive(1);

#[test_case]
fn entry_handler_skips_odd_calls() {
    reset(&[&SKIP_ENTRIES, &SKIP_BAD]);
    SKIP_REPORTS.clear();
    register_kretprobe(&RP_SKIP).expect("register");
    for arg in 0..10 {
        assert_eq!(kr_parity(black_box(arg)), arg * 3 + 1);
    }
    assert_eq!(load(&SKIP_ENTRIES), 10);
    let (reports, n) = SKIP_REPORTS.get();
    assert_eq!(&reports[..n], &[0, 2, 4, 6, 8]);
    assert_eq!(load(&SKIP_BAD), 0);
    assert_eq!(RP_SKIP.nmissed(), 0, "skipped calls are not misses");
    assert_eq!(active_instances(task::current_id()), 0);
    unregister_kretprobe(&RP_SKIP).expect("unregister");
    assert_eq!(retired_pools(), 0);
}

// ========================================================= 6. instance data

#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn kr_data_recurse(n: u32) -> u32 {
    if n == 0 {
        return black_box(0);
    }
    black_box(kr_data_recurse(black_box(n - 1))) + 2
}

fn pattern(seed: u32, index: usize) -> u8 {
    (seed.wrapping_mul(0x9e37_79b1) as usize ^ index.wrapping_mul(31) ^ (index >> 8)) as u8
}

static DATA_ENTRIES: AtomicUsize = AtomicUsize::new(0);
static DATA_REPORTS: AtomicUsize = AtomicUsize::new(0);
static DATA_BAD_LEN: AtomicUsize = AtomicUsize::new(0);
static DATA_BAD_BYTES: AtomicUsize = AtomicUsize::new(0);
static DATA_BAD_VALUE: AtomicUsize = AtomicUsize::new(0);

fn data_entry(ri: &mut KretprobeInstance, regs: &mut PtRegs) -> EntryAction {
    DATA_ENTRIES.fetch_add(1, SeqCst);
    let arg = entry_argument(regs, 0);
    let data = ri.data();
    if data.len() != MAX_DATA_SIZE {
        DATA_BAD_LEN.fetch_add(1, SeqCst);
    }
    for (index, byte) in data.iter_mut().enumerate() {
        *byte = pattern(arg, index);
    }
    EntryAction::Report
}

fn data_return(ri: &mut KretprobeInstance, regs: &mut PtRegs) {
    DATA_REPORTS.fetch_add(1, SeqCst);
    let data = ri.data();
    if data.len() != MAX_DATA_SIZE {
        DATA_BAD_LEN.fetch_add(1, SeqCst);
    }
    // The seed is the call's argument; its return value is 2 * arg.
    let arg = regs_return_value(regs) / 2;
    let bad = data.iter().enumerate().filter(|&(index, &byte)| byte != pattern(arg, index)).count();
    DATA_BAD_BYTES.fetch_add(bad, SeqCst);
    if regs_return_value(regs) % 2 != 0 {
        DATA_BAD_VALUE.fetch_add(1, SeqCst);
    }
}

static RP_DATA: Kretprobe = Kretprobe::new()
    .symbol("kr_data_recurse")
    .entry_handler(data_entry)
    .handler(data_return)
    .data_size(MAX_DATA_SIZE)
    .maxactive(5);
static RP_DATA_TOO_BIG: Kretprobe =
    Kretprobe::new().symbol("kr_data_recurse").handler(data_return).data_size(MAX_DATA_SIZE + 1);

#[test_case]
fn data_round_trip_max_size() {
    reset(&[&DATA_ENTRIES, &DATA_REPORTS, &DATA_BAD_LEN, &DATA_BAD_BYTES, &DATA_BAD_VALUE]);
    assert_eq!(MAX_DATA_SIZE, 4096);
    let sites = site_count();
    let arena = kretprobe_arena_used();
    assert_eq!(register_kretprobe(&RP_DATA_TOO_BIG), Err(KprobeError::DataTooLarge { max: 4096 }));
    assert!(!RP_DATA_TOO_BIG.is_enabled());
    assert_eq!(site_count(), sites);
    assert_eq!(kretprobe_arena_used(), arena);
    register_kretprobe(&RP_DATA).expect("register with 4096 bytes of data");
    assert!(kretprobe_arena_used() >= arena + 5 * 4096, "5 instances of 4096 bytes");
    // Five nested live instances, each with its own 4096 bytes.
    assert_eq!(kr_data_recurse(black_box(4)), 8);
    assert_eq!(load(&DATA_ENTRIES), 5);
    assert_eq!(load(&DATA_REPORTS), 5);
    // And again, reusing the instances with other seeds.
    assert_eq!(kr_data_recurse(black_box(2)), 4);
    assert_eq!(load(&DATA_REPORTS), 8);
    assert_eq!(load(&DATA_BAD_LEN), 0);
    assert_eq!(load(&DATA_BAD_BYTES), 0, "every byte of every instance's data survived");
    assert_eq!(load(&DATA_BAD_VALUE), 0);
    assert_eq!(RP_DATA.nmissed(), 0);
    unregister_kretprobe(&RP_DATA).expect("unregister");
    assert_eq!(kretprobe_arena_used(), arena);
}

// ===================================================== 7. default maxactive

static RP_MAX0: Kretprobe =
    Kretprobe::new().symbol("kr_recurse").entry_handler(rec_entry).handler(rec_return).data_size(4).maxactive(0);
static RP_MAXNEG: Kretprobe =
    Kretprobe::new().symbol("kr_recurse").entry_handler(rec_entry).handler(rec_return).data_size(4).maxactive(-5);
static RP_MAXUNSET: Kretprobe = Kretprobe::new().symbol("kr_recurse").handler(rec_return);

#[test_case]
fn default_maxactive() {
    assert_eq!(DEFAULT_MAXACTIVE, 10);
    assert_eq!(RP_MAX0.effective_maxactive(), DEFAULT_MAXACTIVE);
    assert_eq!(RP_MAXNEG.effective_maxactive(), DEFAULT_MAXACTIVE);
    assert_eq!(RP_MAXUNSET.effective_maxactive(), DEFAULT_MAXACTIVE);
    recurse_and_check(&RP_MAX0, 12, 10);
    recurse_and_check(&RP_MAXNEG, 12, 10);
}

// ========================================== 9. several probes on one function

#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn kr_multi(a: u32, b: u32) -> u32 {
    black_box(a) ^ black_box(b).rotate_left(7)
}

fn expected_multi(a: u32, b: u32) -> u32 {
    a ^ b.rotate_left(7)
}

static MULTI_LOG: Log<64> = Log::new();
static MULTI_VALUES: [AtomicUsize; 3] = [const { AtomicUsize::new(0) }; 3];

fn multi_handler(which: usize, regs: &PtRegs) {
    MULTI_LOG.push(which);
    MULTI_VALUES[which - 1].store(regs_return_value(regs) as usize, SeqCst);
}
fn multi_1(_ri: &mut KretprobeInstance, regs: &mut PtRegs) {
    multi_handler(1, regs)
}
fn multi_2(_ri: &mut KretprobeInstance, regs: &mut PtRegs) {
    multi_handler(2, regs)
}
fn multi_3(_ri: &mut KretprobeInstance, regs: &mut PtRegs) {
    multi_handler(3, regs)
}

static RP_MULTI_1: Kretprobe = Kretprobe::new().symbol("kr_multi").handler(multi_1);
static RP_MULTI_2: Kretprobe = Kretprobe::new().symbol("kr_multi").handler(multi_2);
static RP_MULTI_3: Kretprobe = Kretprobe::new().symbol("kr_multi").handler(multi_3);

fn multi_values() -> [usize; 3] {
    [0, 1, 2].map(|i| MULTI_VALUES[i].load(SeqCst))
}

#[inline(never)]
#[test_case]
fn three_kretprobes_on_one_function() {
    MULTI_LOG.clear();
    let sites = site_count();
    register_kretprobe(&RP_MULTI_1).expect("register 1");
    register_kretprobe(&RP_MULTI_2).expect("register 2");
    register_kretprobe(&RP_MULTI_3).expect("register 3");
    assert_eq!(site_count(), sites + 1, "one site for all three");
    for (round, (a, b)) in [(1u32, 2u32), (0xdead_beef, 0x1234_5678), (77, 0)].into_iter().enumerate() {
        assert_eq!(kr_multi(black_box(a), black_box(b)), expected_multi(a, b));
        let e = expected_multi(a, b) as usize;
        assert_eq!(multi_values(), [e, e, e], "round {round}");
        assert_eq!(MULTI_LOG.len(), 3 * (round + 1), "each reports exactly once per call");
    }
    // Return handlers run newest instance first.
    let (log, n) = MULTI_LOG.get();
    assert_eq!(&log[..n], &[3, 2, 1, 3, 2, 1, 3, 2, 1]);
    assert_eq!(active_instances(task::current_id()), 0);
    // Without the middle one.
    unregister_kretprobe(&RP_MULTI_2).expect("unregister 2");
    MULTI_LOG.clear();
    assert_eq!(kr_multi(black_box(5), black_box(6)), expected_multi(5, 6));
    let (log, n) = MULTI_LOG.get();
    assert_eq!(&log[..n], &[3, 1]);
    for rp in [&RP_MULTI_1, &RP_MULTI_2, &RP_MULTI_3] {
        assert_eq!(rp.nmissed(), 0);
    }
    unregister_kretprobes(&[&RP_MULTI_1, &RP_MULTI_3]);
    assert_eq!(site_count(), sites);
    assert_eq!(retired_pools(), 0);
}

static KP_PRE_CALLS: AtomicUsize = AtomicUsize::new(0);
static KP_POST_CALLS: AtomicUsize = AtomicUsize::new(0);
static KP_ARGS: [AtomicUsize; 2] = [const { AtomicUsize::new(0) }; 2];

fn multi_pre(_p: &Kprobe, regs: &mut PtRegs) -> PreAction {
    KP_PRE_CALLS.fetch_add(1, SeqCst);
    let esp = regs.esp as usize;
    KP_ARGS[0].store(stack_word(esp + 4), SeqCst);
    KP_ARGS[1].store(stack_word(esp + 8), SeqCst);
    PreAction::Continue
}
fn multi_post(_p: &Kprobe, _regs: &mut PtRegs) {
    KP_POST_CALLS.fetch_add(1, SeqCst);
}

static KP_MULTI_BOOSTED: Kprobe = Kprobe::new().symbol("kr_multi", 0).pre_handler(multi_pre);
static KP_MULTI_STEPPED: Kprobe = Kprobe::new().symbol("kr_multi", 0).pre_handler(multi_pre).post_handler(multi_post);

#[inline(never)]
#[test_case]
fn kprobe_and_kretprobe_on_one_function() {
    for (variant, kp) in [&KP_MULTI_BOOSTED, &KP_MULTI_STEPPED].into_iter().enumerate() {
        for kprobe_first in [true, false] {
            MULTI_LOG.clear();
            reset(&[&KP_PRE_CALLS, &KP_POST_CALLS]);
            if kprobe_first {
                register_kprobe(kp).expect("register kprobe");
                register_kretprobe(&RP_MULTI_1).expect("register kretprobe");
            } else {
                register_kretprobe(&RP_MULTI_1).expect("register kretprobe");
                register_kprobe(kp).expect("register kprobe");
            }
            assert_eq!(kp.flags().contains(KprobeFlags::BOOSTED), variant == 0);
            for round in 1..=3u32 {
                let (a, b) = (round * 1000 + 1, round * 77);
                assert_eq!(kr_multi(black_box(a), black_box(b)), expected_multi(a, b));
                assert_eq!(load(&KP_PRE_CALLS), round as usize);
                assert_eq!(load(&KP_POST_CALLS), if variant == 1 { round as usize } else { 0 });
                assert_eq!([load(&KP_ARGS[0]), load(&KP_ARGS[1])], [a as usize, b as usize]);
                assert_eq!(MULTI_LOG.len(), round as usize);
                assert_eq!(multi_values()[0], expected_multi(a, b) as usize);
            }
            assert_eq!((kp.nmissed(), RP_MULTI_1.nmissed()), (0, 0));
            unregister_kprobe(kp).expect("unregister kprobe");
            // The kretprobe alone still works.
            assert_eq!(kr_multi(black_box(9), black_box(9)), expected_multi(9, 9));
            assert_eq!(MULTI_LOG.len(), 4);
            assert_eq!(load(&KP_PRE_CALLS), 3);
            unregister_kretprobe(&RP_MULTI_1).expect("unregister kretprobe");
        }
    }
}

static JP_CALLS: AtomicUsize = AtomicUsize::new(0);
static JP_ARGS: [AtomicU32; 2] = [const { AtomicU32::new(0) }; 2];

extern "C" fn jp_multi(a: u32, b: u32) -> u32 {
    JP_CALLS.fetch_add(1, SeqCst);
    JP_ARGS[0].store(a, SeqCst);
    JP_ARGS[1].store(b, SeqCst);
    jprobe_return()
}

static JP_MULTI: Jprobe = Jprobe::new(jp_multi as *const ()).symbol("kr_multi");

#[inline(never)]
#[test_case]
fn jprobe_and_kretprobe_on_one_function() {
    for jprobe_first in [true, false] {
        MULTI_LOG.clear();
        reset(&[&JP_CALLS, &KP_PRE_CALLS]);
        if jprobe_first {
            register_jprobe(&JP_MULTI).expect("register jprobe");
            register_kretprobe(&RP_MULTI_2).expect("register kretprobe");
        } else {
            register_kretprobe(&RP_MULTI_2).expect("register kretprobe");
            register_jprobe(&JP_MULTI).expect("register jprobe");
        }
        for round in 1..=3u32 {
            let (a, b) = (round * 31 + 5, 0xf000_0000 | round);
            assert_eq!(kr_multi(black_box(a), black_box(b)), expected_multi(a, b));
            assert_eq!(load(&JP_CALLS), round as usize);
            assert_eq!([JP_ARGS[0].load(SeqCst), JP_ARGS[1].load(SeqCst)], [a, b], "jprobe saw the arguments");
            assert_eq!(MULTI_LOG.len(), round as usize);
            assert_eq!(multi_values()[1], expected_multi(a, b) as usize);
        }
        // All four kinds together: kprobe, jprobe, two kretprobes.
        register_kprobe(&KP_MULTI_BOOSTED).expect("register kprobe");
        register_kretprobe(&RP_MULTI_3).expect("register second kretprobe");
        MULTI_LOG.clear();
        assert_eq!(kr_multi(black_box(3), black_box(4)), expected_multi(3, 4));
        assert_eq!(load(&JP_CALLS), 4);
        assert_eq!(load(&KP_PRE_CALLS), 1);
        let (log, n) = MULTI_LOG.get();
        assert_eq!(&log[..n], &[3, 2]);
        let e = expected_multi(3, 4) as usize;
        assert_eq!(multi_values()[1..], [e, e]);
        assert_eq!((JP_MULTI.kp.nmissed(), RP_MULTI_2.nmissed(), RP_MULTI_3.nmissed()), (0, 0, 0));
        unregister_kprobe(&KP_MULTI_BOOSTED).expect("unregister kprobe");
        unregister_kretprobe(&RP_MULTI_3).expect("unregister");
        unregister_jprobe(&JP_MULTI).expect("unregister jprobe");
        unregister_kretprobe(&RP_MULTI_2).expect("unregister kretprobe");
        assert_eq!(kr_multi(black_box(3), black_box(4)), expected_multi(3, 4));
        assert_eq!(load(&JP_CALLS), 4);
        assert_eq!(MULTI_LOG.len(), 2);
    }
}

// ====================================================== 12. recursion guard

#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn kr_self(value: u32) -> u32 {
    black_box(value) + 100
}

static SELF_CALLS: AtomicUsize = AtomicUsize::new(0);
static SELF_BAD: AtomicUsize = AtomicUsize::new(0);
static SELF_ENTRY_CALLS: AtomicUsize = AtomicUsize::new(0);

fn self_return(_ri: &mut KretprobeInstance, regs: &mut PtRegs) {
    SELF_CALLS.fetch_add(1, SeqCst);
    let value = regs_return_value(regs);
    // The probed function, from its own return handler.
    if kr_self(black_box(value)) != value + 100 {
        SELF_BAD.fetch_add(1, SeqCst);
    }
}

fn self_entry(_ri: &mut KretprobeInstance, regs: &mut PtRegs) -> EntryAction {
    SELF_ENTRY_CALLS.fetch_add(1, SeqCst);
    let arg = entry_argument(regs, 0);
    if kr_self(black_box(arg)) != arg + 100 {
        SELF_BAD.fetch_add(1, SeqCst);
    }
    EntryAction::Report
}

static RP_SELF: Kretprobe = Kretprobe::new().symbol("kr_self").handler(self_return);
static RP_SELF_BOTH: Kretprobe = Kretprobe::new().symbol("kr_self").entry_handler(self_entry).handler(self_return);

#[test_case]
fn handler_calls_probed_function() {
    reset(&[&SELF_CALLS, &SELF_BAD, &SELF_ENTRY_CALLS]);
    register_kretprobe(&RP_SELF).expect("register");
    for round in 1..=3u32 {
        assert_eq!(kr_self(black_box(round)), round + 100);
        assert_eq!(load(&SELF_CALLS), round as usize, "the nested call is not reported");
        assert_eq!(RP_SELF.nmissed(), round as usize, "one miss per outer call");
    }
    assert_eq!(load(&SELF_BAD), 0);
    assert_eq!(active_instances(task::current_id()), 0);
    unregister_kretprobe(&RP_SELF).expect("unregister");
    // From both handlers: two misses per call.
    reset(&[&SELF_CALLS]);
    register_kretprobe(&RP_SELF_BOTH).expect("register");
    for round in 1..=3u32 {
        assert_eq!(kr_self(black_box(round)), round + 100);
        assert_eq!(load(&SELF_ENTRY_CALLS), round as usize);
        assert_eq!(load(&SELF_CALLS), round as usize);
        assert_eq!(RP_SELF_BOTH.nmissed(), 2 * round as usize);
    }
    assert_eq!(load(&SELF_BAD), 0);
    unregister_kretprobe(&RP_SELF_BOTH).expect("unregister");
}

#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn kr_helper(value: u32) -> u32 {
    black_box(value) * 7
}

#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn kr_outer(value: u32) -> u32 {
    black_box(value) + 1
}

static OUTER_CALLS: AtomicUsize = AtomicUsize::new(0);
static HELPER_CALLS: AtomicUsize = AtomicUsize::new(0);
static HELPER_BAD: AtomicUsize = AtomicUsize::new(0);
static LOOKUP_CALLS: AtomicUsize = AtomicUsize::new(0);
static LOOKUP_FOUND: AtomicBool = AtomicBool::new(false);

fn outer_return(_ri: &mut KretprobeInstance, regs: &mut PtRegs) {
    OUTER_CALLS.fetch_add(1, SeqCst);
    let value = regs_return_value(regs);
    if kr_helper(black_box(value)) != value * 7 {
        HELPER_BAD.fetch_add(1, SeqCst);
    }
}
fn helper_return(_ri: &mut KretprobeInstance, _regs: &mut PtRegs) {
    HELPER_CALLS.fetch_add(1, SeqCst);
}
fn lookup_return(_ri: &mut KretprobeInstance, _regs: &mut PtRegs) {
    LOOKUP_CALLS.fetch_add(1, SeqCst);
}
fn outer_lookup_return(ri: &mut KretprobeInstance, _regs: &mut PtRegs) {
    OUTER_CALLS.fetch_add(1, SeqCst);
    // A kernel function with a kretprobe of its own, from a handler.
    let found = symbols::lookup_address(ri.ret_addr() - 1)
        .is_some_and(|s| s.name == "kretprobes::probed_function_called_by_handler");
    LOOKUP_FOUND.store(found, SeqCst);
}

static RP_OUTER: Kretprobe = Kretprobe::new().symbol("kr_outer").handler(outer_return);
static RP_OUTER_LOOKUP: Kretprobe = Kretprobe::new().symbol("kr_outer").handler(outer_lookup_return);
static RP_HELPER: Kretprobe = Kretprobe::new().symbol("kr_helper").handler(helper_return);
static RP_LOOKUP: Kretprobe = Kretprobe::new().symbol("probe_kernel::symbols::lookup_address").handler(lookup_return);

#[inline(never)]
#[test_case]
fn probed_function_called_by_handler() {
    reset(&[&OUTER_CALLS, &HELPER_CALLS, &HELPER_BAD, &LOOKUP_CALLS]);
    register_kretprobes(&[&RP_OUTER, &RP_HELPER]).expect("register");
    for round in 1..=2u32 {
        assert_eq!(kr_outer(black_box(round)), round + 1);
    }
    assert_eq!(load(&OUTER_CALLS), 2);
    assert_eq!(load(&HELPER_CALLS), 0, "calls from a handler are not reported");
    assert_eq!(RP_HELPER.nmissed(), 2);
    assert_eq!(RP_OUTER.nmissed(), 0);
    assert_eq!(load(&HELPER_BAD), 0);
    // Outside handlers the helper reports as usual.
    assert_eq!(kr_helper(black_box(3)), 21);
    assert_eq!(load(&HELPER_CALLS), 1);
    assert_eq!(RP_HELPER.nmissed(), 2);
    unregister_kretprobes(&[&RP_OUTER, &RP_HELPER]);

    // A kernel function (the symbol table lookup) called from a handler.
    register_kretprobes(&[&RP_OUTER_LOOKUP, &RP_LOOKUP]).expect("register lookup probes");
    LOOKUP_FOUND.store(false, SeqCst);
    reset(&[&OUTER_CALLS]);
    assert_eq!(kr_outer(black_box(8)), 9);
    assert_eq!(load(&OUTER_CALLS), 1);
    assert!(LOOKUP_FOUND.load(SeqCst), "lookup_address still works under its probe");
    assert_eq!(load(&LOOKUP_CALLS), 0);
    assert_eq!(RP_LOOKUP.nmissed(), 1);
    let here = kr_helper as *const () as usize;
    assert_eq!(symbols::lookup_address(here + 1).map(|s| s.name), Some("kr_helper"));
    assert_eq!(load(&LOOKUP_CALLS), 1);
    assert_eq!(RP_LOOKUP.nmissed(), 1);
    unregister_kretprobes(&[&RP_OUTER_LOOKUP, &RP_LOOKUP]);
    assert_eq!(retired_pools(), 0);
}

// ========================================= callee-popped arguments (ret imm16)

/// Returned through a hidden pointer that the callee pops: `ret 4`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Quad {
    a: u32,
    b: u32,
    c: u32,
    d: u32,
}

fn quad(value: u32, depth: u32) -> Quad {
    Quad { a: value, b: value ^ 0xffff, c: depth, d: value.wrapping_mul(3) }
}

#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn kr_quad(value: u32, depth: u32) -> Quad {
    if depth == 0 {
        return black_box(quad(value, 0));
    }
    let inner = black_box(kr_quad(black_box(value), black_box(depth - 1)));
    Quad { c: inner.c + 1, ..inner }
}

static QUAD_ENTRIES: Log<16> = Log::new();
static QUAD_REPORTS: Log<16> = Log::new();
static QUAD_BAD: AtomicUsize = AtomicUsize::new(0);

fn quad_entry(ri: &mut KretprobeInstance, regs: &mut PtRegs) -> EntryAction {
    // [esp] return address, [esp+4] the hidden result pointer, then the arguments.
    let esp = regs.esp as usize;
    let (value, depth) = (stack_word(esp + 8) as u32, stack_word(esp + 12) as u32);
    QUAD_ENTRIES.push(depth as usize);
    ri.store([value, depth]);
    EntryAction::Report
}

fn quad_return(ri: &mut KretprobeInstance, regs: &mut PtRegs) {
    let [value, depth]: [u32; 2] = ri.load();
    QUAD_REPORTS.push(depth as usize);
    // EAX holds the result pointer; `ret 4` popped it, so ESP is 8 above the slot.
    // SAFETY: the caller's result slot, just written by the probed function.
    let result = unsafe { core::ptr::read(regs.eax as *const Quad) };
    if result != quad(value, depth) || regs.esp as usize != ri.stack_slot() + 8 || regs.eip as usize != ri.ret_addr() {
        QUAD_BAD.fetch_add(1, SeqCst);
    }
}

static RP_QUAD: Kretprobe =
    Kretprobe::new().symbol("kr_quad").entry_handler(quad_entry).handler(quad_return).data_size(8).maxactive(3);

/// Whether the function `name` contains a `ret 4` (C2 04 00).
fn has_ret_4(name: &str) -> bool {
    let symbol = symbols::lookup_name(name).expect("symbol");
    let mut code = [0u8; 512];
    let len = symbol.size.min(code.len());
    original_bytes(symbol.address, &mut code[..len]);
    code[..len].windows(3).any(|w| w == [0xc2, 0x04, 0x00])
}

#[inline(never)]
#[test_case]
fn function_that_pops_its_arguments() {
    assert!(has_ret_4("kr_quad"), "kr_quad returns with `ret 4` (the premise of this test)");
    QUAD_ENTRIES.clear();
    QUAD_REPORTS.clear();
    QUAD_BAD.store(0, SeqCst);
    register_kretprobe(&RP_QUAD).expect("register");
    assert_eq!(kr_quad(black_box(77), black_box(0)), quad(77, 0));
    assert_eq!(QUAD_REPORTS.len(), 1);
    // Recursion: the three outermost of five calls report, innermost first.
    assert_eq!(kr_quad(black_box(5), black_box(4)), quad(5, 4));
    let (entries, n) = QUAD_ENTRIES.get();
    assert_eq!(&entries[..n], &[0, 4, 3, 2]);
    let (reports, n) = QUAD_REPORTS.get();
    assert_eq!(&reports[..n], &[0, 2, 3, 4]);
    assert_eq!(RP_QUAD.nmissed(), 2);
    assert_eq!(load(&QUAD_BAD), 0);
    assert_eq!(active_instances(task::current_id()), 0);
    unregister_kretprobe(&RP_QUAD).expect("unregister");
    assert_eq!(retired_pools(), 0);
}

// ================================================================ tail call

#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn kr_tail_target(value: u32) -> u32 {
    black_box(value).wrapping_mul(9) + 1
}

/// Jumps to `kr_tail_target` with the caller's return address still in
/// place: the target's entry finds the trampoline in the slot.
#[unsafe(naked)]
#[unsafe(no_mangle)]
extern "C" fn kr_tail(value: u32) -> u32 {
    core::arch::naked_asm!(
        "push ebp",
        "mov ebp, esp",
        "pop ebp",
        "jmp {target}",
        target = sym kr_tail_target,
    )
}

static TAIL_LOG: Log<16> = Log::new();
static TAIL_BAD: AtomicUsize = AtomicUsize::new(0);
static TAIL_RET: AtomicUsize = AtomicUsize::new(0);
fn tail_check(which: usize, ri: &KretprobeInstance, regs: &PtRegs) {
    TAIL_LOG.push(which);
    TAIL_RET.store(ri.ret_addr(), SeqCst);
    if regs_return_value(regs) != TAIL_EXPECT.load(SeqCst) as u32 || regs.eip as usize != ri.ret_addr() {
        TAIL_BAD.fetch_add(1, SeqCst);
    }
}
static TAIL_EXPECT: AtomicUsize = AtomicUsize::new(0);
fn tail_return(ri: &mut KretprobeInstance, regs: &mut PtRegs) {
    tail_check(1, ri, regs)
}
fn tail_target_return(ri: &mut KretprobeInstance, regs: &mut PtRegs) {
    tail_check(2, ri, regs)
}
static RP_TAIL: Kretprobe = Kretprobe::new().symbol("kr_tail").handler(tail_return);
static RP_TAIL_TARGET: Kretprobe = Kretprobe::new().symbol("kr_tail_target").handler(tail_target_return);

#[inline(never)]
#[test_case]
fn tail_call_between_probed_functions() {
    TAIL_LOG.clear();
    TAIL_BAD.store(0, SeqCst);
    register_kretprobes(&[&RP_TAIL, &RP_TAIL_TARGET]).expect("register");
    for value in [3u32, 1000] {
        TAIL_EXPECT.store((value * 9 + 1) as usize, SeqCst);
        assert_eq!(kr_tail(black_box(value)), value * 9 + 1);
    }
    // One return, two calls: both report, the target (newest) first.
    let (log, n) = TAIL_LOG.get();
    assert_eq!(&log[..n], &[2, 1, 2, 1]);
    assert_eq!(caller_of(load(&TAIL_RET)), "kretprobes::tail_call_between_probed_functions");
    TAIL_EXPECT.store(37, SeqCst);
    assert_eq!(kr_tail_target(black_box(4)), 37);
    assert_eq!(TAIL_LOG.len(), 5);
    assert_eq!(load(&TAIL_BAD), 0);
    assert_eq!((RP_TAIL.nmissed(), RP_TAIL_TARGET.nmissed()), (0, 0));
    assert_eq!(active_instances(task::current_id()), 0);
    unregister_kretprobes(&[&RP_TAIL, &RP_TAIL_TARGET]);
    assert_eq!(retired_pools(), 0);
}

// ====================================================== 13. enable/disable

#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn kr_toggle(value: u32) -> u32 {
    black_box(value) * 11
}

static TOGGLE_CALLS: AtomicUsize = AtomicUsize::new(0);
static TOGGLE_VALUE: AtomicUsize = AtomicUsize::new(0);
fn toggle_return(_ri: &mut KretprobeInstance, regs: &mut PtRegs) {
    TOGGLE_CALLS.fetch_add(1, SeqCst);
    TOGGLE_VALUE.store(regs_return_value(regs) as usize, SeqCst);
}
static RP_TOGGLE: Kretprobe = Kretprobe::new().symbol("kr_toggle").handler(toggle_return);

#[test_case]
fn enable_disable() {
    reset(&[&TOGGLE_CALLS, &TOGGLE_VALUE]);
    assert_eq!(disable_kretprobe(&RP_TOGGLE), Err(KprobeError::NotRegistered));
    register_kretprobe(&RP_TOGGLE).expect("register");
    assert_eq!(kr_toggle(black_box(1)), 11);
    assert_eq!(load(&TOGGLE_CALLS), 1);
    disable_kretprobe(&RP_TOGGLE).expect("disable");
    assert!(!RP_TOGGLE.is_enabled());
    assert!(RP_TOGGLE.kp.flags().contains(KprobeFlags::DISABLED));
    for value in 2..5 {
        assert_eq!(kr_toggle(black_box(value)), value * 11);
    }
    assert_eq!(load(&TOGGLE_CALLS), 1, "disabled: not reported");
    assert_eq!(RP_TOGGLE.nmissed(), 0, "disabled calls are not misses");
    enable_kretprobe(&RP_TOGGLE).expect("enable");
    assert!(RP_TOGGLE.is_enabled());
    assert_eq!(kr_toggle(black_box(6)), 66);
    assert_eq!(load(&TOGGLE_CALLS), 2);
    assert_eq!(load(&TOGGLE_VALUE), 66);
    unregister_kretprobe(&RP_TOGGLE).expect("unregister");
    assert_eq!(enable_kretprobe(&RP_TOGGLE), Err(KprobeError::NotRegistered));
}

/// What the probed function does to its own probe while it runs.
static INFLIGHT_ACTION: AtomicUsize = AtomicUsize::new(0);
static INFLIGHT_RETIRED: AtomicUsize = AtomicUsize::new(usize::MAX);
const ACTION_NONE: usize = 0;
const ACTION_DISABLE: usize = 1;
const ACTION_UNREGISTER: usize = 2;
const ACTION_REREGISTER: usize = 3;
static RP_INFLIGHT: Kretprobe = Kretprobe::new().symbol("kr_inflight").handler(toggle_return);

#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn kr_inflight(value: u32) -> u32 {
    match INFLIGHT_ACTION.load(SeqCst) {
        ACTION_DISABLE => disable_kretprobe(&RP_INFLIGHT).expect("disable in flight"),
        ACTION_UNREGISTER => {
            unregister_kretprobe(&RP_INFLIGHT).expect("unregister in flight");
            INFLIGHT_RETIRED.store(retired_pools(), SeqCst);
        }
        ACTION_REREGISTER => {
            unregister_kretprobe(&RP_INFLIGHT).expect("unregister in flight");
            register_kretprobe(&RP_INFLIGHT).expect("register again in flight");
            INFLIGHT_RETIRED.store(retired_pools(), SeqCst);
        }
        _ => {}
    }
    // The return still goes to the real caller.
    INFLIGHT_RETIRED_RA.store(unwind::return_address(0).unwrap_or(0), SeqCst);
    black_box(value) + 5
}
static INFLIGHT_RETIRED_RA: AtomicUsize = AtomicUsize::new(0);

#[inline(never)]
#[test_case]
fn disable_and_unregister_in_flight() {
    reset(&[&TOGGLE_CALLS, &TOGGLE_VALUE]);
    register_kretprobe(&RP_INFLIGHT).expect("register");
    // Disabled while in flight: that call still reports (Linux: the
    // instance is already taken), the next one does not.
    INFLIGHT_ACTION.store(ACTION_DISABLE, SeqCst);
    assert_eq!(kr_inflight(black_box(1)), 6);
    assert_eq!(load(&TOGGLE_CALLS), 1);
    assert_eq!(load(&TOGGLE_VALUE), 6);
    INFLIGHT_ACTION.store(ACTION_NONE, SeqCst);
    assert_eq!(kr_inflight(black_box(2)), 7);
    assert_eq!(load(&TOGGLE_CALLS), 1);
    enable_kretprobe(&RP_INFLIGHT).expect("enable");
    // Unregistered while in flight: the call returns right, no report.
    INFLIGHT_ACTION.store(ACTION_UNREGISTER, SeqCst);
    assert_eq!(kr_inflight(black_box(3)), 8);
    INFLIGHT_ACTION.store(ACTION_NONE, SeqCst);
    assert_eq!(load(&TOGGLE_CALLS), 1, "no report after unregistering in flight");
    assert_eq!(INFLIGHT_RETIRED.load(SeqCst), 1, "the pool waits for the call in flight");
    assert_eq!(caller_of(load(&INFLIGHT_RETIRED_RA)), "kretprobes::disable_and_unregister_in_flight");
    assert_eq!(retired_pools(), 1, "freed only at the next registration");
    assert_eq!(active_instances(task::current_id()), 0);
    register_kretprobe(&RP_INFLIGHT).expect("register again");
    assert_eq!(retired_pools(), 0);
    assert_eq!(kr_inflight(black_box(4)), 9);
    assert_eq!(load(&TOGGLE_CALLS), 2);
    assert_eq!(load(&TOGGLE_VALUE), 9);
    // Unregistered and registered again while in flight: the call in flight
    // belongs to the old registration and reports to neither.
    INFLIGHT_ACTION.store(ACTION_REREGISTER, SeqCst);
    assert_eq!(kr_inflight(black_box(5)), 10);
    INFLIGHT_ACTION.store(ACTION_NONE, SeqCst);
    assert_eq!(INFLIGHT_RETIRED.load(SeqCst), 1, "the old pool waits for its call");
    assert_eq!(load(&TOGGLE_CALLS), 2, "the old call is not reported by the new registration");
    assert_eq!(retired_pools(), 1);
    assert_eq!(kr_inflight(black_box(6)), 11);
    assert_eq!(load(&TOGGLE_CALLS), 3, "the new registration reports new calls");
    assert_eq!(RP_INFLIGHT.nmissed(), 0);
    unregister_kretprobe(&RP_INFLIGHT).expect("unregister");
    assert_eq!(retired_pools(), 0, "both pools freed");
}

// ================================================== the handler's changes

static MODIFY_CALLS: AtomicUsize = AtomicUsize::new(0);
fn modify_return(_ri: &mut KretprobeInstance, regs: &mut PtRegs) {
    MODIFY_CALLS.fetch_add(1, SeqCst);
    regs.eax = regs.eax.wrapping_add(1000);
}
static RP_MODIFY: Kretprobe = Kretprobe::new().symbol("kr_toggle").handler(modify_return);

#[test_case]
fn handler_changes_return_value() {
    reset(&[&MODIFY_CALLS]);
    register_kretprobe(&RP_MODIFY).expect("register");
    assert_eq!(kr_toggle(black_box(2)), 1022);
    assert_eq!(MODIFY_CALLS.load(SeqCst), 1);
    unregister_kretprobe(&RP_MODIFY).expect("unregister");
    assert_eq!(kr_toggle(black_box(2)), 22);
}

// ======================================================== refusals

static RP_NOWHERE: Kretprobe = Kretprobe::new().handler(toggle_return);
static RP_HUGE_POOL: Kretprobe =
    Kretprobe::new().symbol("kr_toggle").handler(toggle_return).maxactive(1 << 20).data_size(4096);
static RP_HUGE_COUNT: Kretprobe = Kretprobe::new().symbol("kr_toggle").handler(toggle_return).maxactive(i32::MAX);

#[test_case]
fn registration_refusals() {
    assert_eq!(register_kretprobe(&RP_NOWHERE), Err(KprobeError::NoLocation));
    let sites = site_count();
    let arena = kretprobe_arena_used();
    // More instances than the pool arena holds: refused, nothing changed.
    for rp in [&RP_HUGE_POOL, &RP_HUGE_COUNT] {
        assert_eq!(register_kretprobe(rp), Err(KprobeError::TableFull("kretprobe instance memory")));
        assert!(!rp.is_enabled());
    }
    assert_eq!(site_count(), sites);
    assert_eq!(kretprobe_arena_used(), arena);
    register_kretprobe(&RP_TOGGLE).expect("register");
    assert_eq!(register_kretprobe(&RP_TOGGLE), Err(KprobeError::AlreadyRegistered));
    unregister_kretprobe(&RP_TOGGLE).expect("unregister");
    assert_eq!(retired_pools(), 0);
}
