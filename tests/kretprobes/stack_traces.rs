//! Stack traces and `return_address` while a kretprobe is active.
//!
//! Why: the trampoline replaces a stacked return address, and a backtrace
//! (from a handler, from a probed function, from a trap inside the
//! trampoline itself) must still show the real callers.
use super::*;

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
    assert_eq!(caller_of(ret), "kretprobes::stack_traces::stacktrace_in_return_handler");
    let index = frame_into(&TRACE_B, "kretprobes::stack_traces::stacktrace_in_return_handler");
    if index.is_none() {
        print_log("walk in st_f2's return handler", &TRACE_B);
    }
    let index = index.expect("the probed function's real caller is in the handler's stack trace");
    assert_eq!(TRACE_B.get().0[index], ret, "the frame is the real return address");
    // And from inside the probed function, while its return is hijacked.
    let index = frame_into(&TRACE_BODY, "kretprobes::stack_traces::stacktrace_in_return_handler");
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
    assert_eq!(caller_of(load(&ST_RET_1)), "kretprobes::stack_traces::stacktrace_nested_return_handlers");
    // In f2's handler: f1, then f1's real caller, right after it.
    let f1 = frame_into(&TRACE_B, "st_f1");
    let outer = frame_into(&TRACE_B, "kretprobes::stack_traces::stacktrace_nested_return_handlers");
    if f1.is_none() || outer != f1.map(|i| i + 1) {
        print_log("walk in st_f2's return handler", &TRACE_B);
    }
    let f1 = f1.expect("f1 in f2's return-handler trace");
    assert_eq!(outer, Some(f1 + 1), "f1's real caller right after f1");
    let frames = TRACE_B.get().0;
    assert_eq!(frames[f1], load(&ST_RET_2));
    assert_eq!(frames[f1 + 1], load(&ST_RET_1));
    // In f1's handler: the test function.
    let index = frame_into(&TRACE_A, "kretprobes::stack_traces::stacktrace_nested_return_handlers");
    assert!(index.is_some(), "f1's caller in f1's return-handler trace");
    assert_eq!(frame_into(&TRACE_A, "st_f1"), None, "f1 has returned: its frame is gone");
    // Inside f2's body, both returns hijacked: f1 then the test function.
    assert_eq!(frame_into(&TRACE_BODY, "st_f1"), Some(0));
    assert_eq!(frame_into(&TRACE_BODY, "kretprobes::stack_traces::stacktrace_nested_return_handlers"), Some(1));
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
    assert_eq!(frame_into(&TRACE_ENTRY, "kretprobes::stack_traces::stacktrace_in_entry_handler"), Some(at + 2));
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
    assert_eq!(caller_of(real), "kretprobes::stack_traces::naked_caller");
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
    assert_eq!(caller_of(plain_1), "kretprobes::stack_traces::return_address_inside_probed_function");
    assert_eq!(seen[1], seen[0], "return_address(0/1) with ra_target probed");
    assert_eq!(seen[2], seen[0], "return_address(0/1) with both probed");
    assert_ne!(seen[1].0, trampoline::address());
    // 1 (round 1) + 2 (round 2) reports; the last one is ra_middle's.
    assert_eq!(load(&RA_HANDLER_CALLS), 3);
    assert_eq!(load(&RA_HANDLER_RET), plain_1);
}
