//! The int3-guarded text patch: one instruction replaced while code runs it.
//!
//! Why: `text_poke_bp` is how a multi-byte instruction changes under other
//! CPUs (Linux's `alternative.c`); a call that lands on the half-written
//! instruction must run the new one, never a mix. On one CPU the mid-patch
//! states are held open with the observer hook and the function is called
//! there, deterministically; then a `mov eax, imm32` is toggled thousands
//! of times while tasks and the timer interrupt call it. Every value is
//! exact: each call returns one of the two immediates, each guard hit is
//! counted, the bytes end exactly as written, and no slot leaks.
// The toggling test's 12,000 sync rounds take about 45 s at -smp 4 alone,
// and 140 s when two other QEMUs share the two cores (as `make test`'s
// parallel passes do): past the default 120 s it read as a hang in CI.
// run.sh: --timeout=300
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(probe_kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

use core::arch::naked_asm;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use probe_kernel::kprobes::*;
use probe_kernel::testing::{text_byte, text_bytes};

probe_kernel::test_kernel_main!();

// ---------------------------------------------------------------- targets

/// `return 111`, its first instruction the 5-byte `mov eax, imm32` that
/// the tests rewrite.
#[unsafe(naked)]
#[unsafe(no_mangle)]
extern "C" fn tp_value() -> u32 {
    naked_asm!("mov eax, 111", "ret");
}

/// Where a patched-in `jmp` sends `tp_value`: `return 333`.
#[unsafe(naked)]
#[unsafe(no_mangle)]
extern "C" fn tp_elsewhere() -> u32 {
    naked_asm!("mov eax, 333", "ret");
}

/// `return 0`, its first instruction the 2-byte `xor eax, eax`.
#[unsafe(naked)]
#[unsafe(no_mangle)]
extern "C" fn tp_zero() -> u32 {
    naked_asm!("xor eax, eax", "ret");
}

/// `return 5`: `xor eax, eax` (2 bytes), then at `tp_pair_second` the
/// 5-byte `mov ecx, 5`: a jump-optimized probe on the entry displaces both.
#[unsafe(naked)]
#[unsafe(no_mangle)]
extern "C" fn tp_pair() -> u32 {
    naked_asm!("xor eax, eax", ".global tp_pair_second", "tp_pair_second:", "mov ecx, 5", "add eax, ecx", "ret");
}

/// Five one-byte `nop`s, then at `tp_nops_mov` a 5-byte `mov ecx, 7` that
/// a test turns into a `jmp` back into the `nop`s (and never calls it then).
#[unsafe(naked)]
#[unsafe(no_mangle)]
extern "C" fn tp_nops() -> u32 {
    naked_asm!(".rept 5", "nop", ".endr", ".global tp_nops_mov", "tp_nops_mov:", "mov ecx, 7", "mov eax, ecx", "ret");
}

#[used]
static KEEP: [extern "C" fn() -> u32; 5] = [tp_value, tp_elsewhere, tp_zero, tp_pair, tp_nops];

fn value_address() -> *const () {
    tp_value as *const ()
}

/// A target's first byte.
fn start(function: extern "C" fn() -> u32) -> usize {
    function as *const () as usize
}

/// `mov eax, imm32`.
fn mov_eax(value: u32) -> [u8; 5] {
    let [a, b, c, d] = value.to_le_bytes();
    [0xb8, a, b, c, d]
}

/// `jmp rel32` from `tp_value` to `tp_elsewhere`.
fn jump_elsewhere() -> [u8; 5] {
    let from = tp_value as *const () as u32 + 5;
    let [a, b, c, d] = (tp_elsewhere as *const () as u32).wrapping_sub(from).to_le_bytes();
    [0xe9, a, b, c, d]
}

fn restore() {
    text_poke_bp(value_address(), &mov_eax(111)).unwrap();
    assert_eq!(tp_value(), 111);
}

// ----------------------------------------------------------------- tests

#[test_case]
fn a_patch_replaces_the_instruction_exactly() {
    let (slots, hits) = (slots::in_use_count(), text_poke_bp_guard_hits());
    assert_eq!(text_bytes(start(tp_value), 6), [0xb8, 111, 0, 0, 0, 0xc3]);
    text_poke_bp(value_address(), &mov_eax(222)).unwrap();
    assert_eq!(text_bytes(start(tp_value), 6), [0xb8, 222, 0, 0, 0, 0xc3]);
    assert_eq!(tp_value(), 222);
    restore();
    assert_eq!(text_bytes(start(tp_value), 6), [0xb8, 111, 0, 0, 0, 0xc3]);
    assert_eq!(slots::in_use_count(), slots, "the out-of-line copy's slot went back");
    assert_eq!(text_poke_bp_guard_hits(), hits, "nothing ran into the guard");
}

static SEEN: [AtomicUsize; 2] = [const { AtomicUsize::new(0) }; 2];

#[test_case]
fn a_call_landing_on_the_guard_runs_the_new_instruction() {
    let hits = text_poke_bp_guard_hits();
    let address = start(tp_value);
    let mut stages = 0;
    text_poke_bp_observed(value_address(), &mov_eax(222), &mut |stage| {
        assert_eq!(text_byte(address), 0xcc, "the guard is in place at {stage:?}");
        let tail: &[u8] = if stage == TextPokeStage::Guarded { &[111, 0, 0, 0] } else { &[222, 0, 0, 0] };
        assert_eq!(text_bytes(address + 1, 4), tail, "at {stage:?}");
        SEEN[stages].store(tp_value() as usize, SeqCst);
        stages += 1;
    })
    .unwrap();
    assert_eq!(stages, 2);
    assert_eq!([SEEN[0].load(SeqCst), SEEN[1].load(SeqCst)], [222, 222], "both half-done states ran the new mov");
    assert_eq!(text_poke_bp_guard_hits(), hits + 2);
    assert_eq!(tp_value(), 222);
    restore();
}

#[test_case]
fn a_guarded_jump_goes_to_the_new_target() {
    let hits = text_poke_bp_guard_hits();
    let mut values = [0; 2];
    let mut stage = 0;
    text_poke_bp_observed(value_address(), &jump_elsewhere(), &mut |_| {
        values[stage] = tp_value();
        stage += 1;
    })
    .unwrap();
    assert_eq!(values, [333, 333], "the relocated jmp reached tp_elsewhere from the slot");
    assert_eq!(text_poke_bp_guard_hits(), hits + 2);
    assert_eq!(tp_value(), 333);
    assert_eq!(text_bytes(start(tp_value), 5), jump_elsewhere());
    // Back from the jmp to the mov, through the guard again.
    let mut back = [0; 2];
    let mut stage = 0;
    text_poke_bp_observed(value_address(), &mov_eax(111), &mut |_| {
        back[stage] = tp_value();
        stage += 1;
    })
    .unwrap();
    assert_eq!(back, [111, 111]);
    assert_eq!(tp_value(), 111);
}

static PROBE: Kprobe = Kprobe::new().symbol("tp_value", 0);
static PAIR_ENTRY: Kprobe = Kprobe::new().symbol("tp_pair", 0);
static NOPS_ENTRY: Kprobe = Kprobe::new().symbol("tp_nops", 0);

#[test_case]
fn a_patched_in_jump_is_seen_by_the_optimizer() {
    unsafe extern "C" {
        static tp_nops_mov: u8;
    }
    let mov = &raw const tp_nops_mov as usize;
    let entry = start(tp_nops);
    set_optimization(true).unwrap();
    // Registration walks the function (and caches what it learned).
    register_kprobe(&NOPS_ENTRY).unwrap();
    assert!(NOPS_ENTRY.flags().contains(KprobeFlags::OPTIMIZED));
    unregister_kprobe(&NOPS_ENTRY).unwrap();
    assert_eq!(tp_nops(), 7);
    // `jmp entry + 2`: a branch into the range a jump at the entry displaces.
    let rel = ((entry + 2) as i32 - (mov + 5) as i32).to_le_bytes();
    text_poke_bp(mov as *const (), &[0xe9, rel[0], rel[1], rel[2], rel[3]]).unwrap();
    assert_eq!(can_optimize(entry as *const ()), Err(OptimizeRefusal::JumpIntoRange { from: mov }));
    register_kprobe(&NOPS_ENTRY).unwrap();
    let optimized = NOPS_ENTRY.flags().contains(KprobeFlags::OPTIMIZED);
    unregister_kprobe(&NOPS_ENTRY).unwrap();
    text_poke_bp(mov as *const (), &[0xb9, 7, 0, 0, 0]).unwrap();
    assert!(!optimized, "optimized over a jump into its range: registration used a stale walk of the function");
    assert_eq!(tp_nops(), 7);
}

#[test_case]
fn an_instruction_under_an_optimized_probes_jump_is_refused() {
    unsafe extern "C" {
        static tp_pair_second: u8;
    }
    let second = &raw const tp_pair_second as *const ();
    let mov_ecx_6 = [0xb9, 6, 0, 0, 0];
    set_optimization(true).unwrap();
    register_kprobe(&PAIR_ENTRY).unwrap();
    assert!(PAIR_ENTRY.flags().contains(KprobeFlags::OPTIMIZED), "the entry probe's jump covers the mov");
    // No probe is registered at the mov itself: only the jump makes it busy.
    assert_eq!(text_poke_bp(second, &mov_ecx_6), Err(TextPokeError::ProbeSite));
    assert_eq!(tp_pair(), 5);
    unregister_kprobe(&PAIR_ENTRY).unwrap();
    assert_eq!(text_poke_bp(second, &mov_ecx_6), Ok(()));
    assert_eq!(tp_pair(), 6);
    assert_eq!(text_poke_bp(second, &[0xb9, 5, 0, 0, 0]), Ok(()));
}

#[test_case]
fn patches_the_engine_cannot_guard_are_refused_and_change_nothing() {
    let slots = slots::in_use_count();
    let value = start(tp_value);
    let zero = tp_zero as *const ();
    assert_eq!(text_poke_bp(value_address(), &[0x31, 0xc0]), Err(TextPokeError::LengthMismatch { old: 5, new: 2 }));
    assert_eq!(text_poke_bp(value_address(), &[0x90; 5]), Err(TextPokeError::NotOneInstruction { decoded: 1 }));
    assert_eq!(text_poke_bp(value_address(), &[0xb8, 1, 2]), Err(TextPokeError::NotOneInstruction { decoded: 0 }));
    // `call eax` pushes the slot's address from an out-of-line copy.
    assert!(matches!(text_poke_bp(zero, &[0xff, 0xd0]), Err(TextPokeError::NotRelocatable(_))));
    // Neither can a software interrupt (it would trap from the slot).
    assert_eq!(
        text_poke_bp(zero, &[0xcd, 0x80]),
        Err(TextPokeError::NotRelocatable("software interrupt: it would trap from the slot"))
    );
    assert_eq!(
        text_poke_bp((value + 1) as *const (), &[0, 0, 0, 0]),
        Err(TextPokeError::Address(KprobeError::NotInstructionBoundary))
    );
    let trap_path = probe_kernel::kprobes::trap::int3_handler as *const ();
    assert_eq!(text_poke_bp(trap_path, &[0x90]), Err(TextPokeError::Address(KprobeError::Blacklisted)));
    assert_eq!(text_poke_bp(core::ptr::null(), &[0x90]), Err(TextPokeError::Address(KprobeError::OutsideKernelText)));
    register_kprobe(&PROBE).unwrap();
    assert_eq!(text_poke_bp(value_address(), &mov_eax(222)), Err(TextPokeError::ProbeSite));
    unregister_kprobe(&PROBE).unwrap();
    assert_eq!(text_bytes(value, 6), [0xb8, 111, 0, 0, 0, 0xc3]);
    assert_eq!(text_bytes(start(tp_zero), 3), [0x31, 0xc0, 0xc3]);
    assert_eq!((tp_value(), tp_zero()), (111, 0));
    assert_eq!(slots::in_use_count(), slots);
}

// ------------------------------------- toggling under tasks and the timer

static STOP: AtomicBool = AtomicBool::new(false);
static BAD: AtomicUsize = AtomicUsize::new(0);
static TICK_CALLS: AtomicUsize = AtomicUsize::new(0);

fn check(value: u32) {
    if value != 111 && value != 222 {
        BAD.fetch_add(1, SeqCst);
    }
}

fn caller(_: usize) -> usize {
    let mut calls = 0;
    while !STOP.load(SeqCst) {
        check(tp_value());
        calls += 1;
    }
    calls
}

fn on_tick() {
    TICK_CALLS.fetch_add(1, SeqCst);
    check(tp_value());
}

/// Enough for millions of guard hits at -smp 4 (each toggle is three
/// syncs of every CPU), within the test pass's share of CI's ten minutes.
/// Even, so the last toggle leaves 111.
const TOGGLES: usize = 1500;

#[test_case]
fn toggling_while_tasks_and_the_timer_call_it_always_gives_one_of_the_two_values() {
    let slots = slots::in_use_count();
    STOP.store(false, SeqCst);
    BAD.store(0, SeqCst);
    TICK_CALLS.store(0, SeqCst);
    let hits = text_poke_bp_guard_hits();
    let tasks: [_; 3] = core::array::from_fn(|_| probe_kernel::task::spawn(caller, 0).unwrap());
    probe_kernel::task::set_tick_hook(Some(on_tick));
    for toggle in 0..TOGGLES {
        let value = if toggle % 2 == 0 { 222 } else { 111 };
        text_poke_bp(value_address(), &mov_eax(value)).unwrap();
        check(tp_value());
        if toggle % 64 == 0 {
            probe_kernel::task::yield_now();
        }
    }
    while TICK_CALLS.load(SeqCst) < 10 {
        probe_kernel::task::yield_now();
    }
    probe_kernel::task::set_tick_hook(None);
    STOP.store(true, SeqCst);
    let calls: [usize; 3] = tasks.map(probe_kernel::task::join);
    probe_kernel::println!(
        "  {TOGGLES} toggles; calls by task {calls:?}, {} by the timer; {} guard hits",
        TICK_CALLS.load(SeqCst),
        text_poke_bp_guard_hits() - hits
    );
    assert_eq!(BAD.load(SeqCst), 0, "every call returned 111 or 222");
    assert!(calls.iter().all(|&c| c > 0), "every task called it: {calls:?}");
    assert_eq!(text_bytes(start(tp_value), 6), [0xb8, 111, 0, 0, 0, 0xc3], "an even count of toggles ends on 111");
    // A task preempted inside an out-of-line copy kept its slot as garbage;
    // with the tasks gone, the next patch collects it.
    restore();
    assert_eq!(slots::in_use_count(), slots);
}
