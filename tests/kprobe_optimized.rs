//! Jump-optimized kprobes ("optprobes", Linux's `arch/x86/kernel/kprobes/opt.c`).
//!
//! Why: an optimized probe replaces whole instructions of live code with a
//! 5-byte `jmp` to a detour, which is safe only where nothing can reach the
//! displaced bytes any more and the detour runs them exactly as they ran in
//! place. So every condition of Linux's `can_optimize` is checked here with
//! a hand-built function that breaks exactly that one (a jump into the
//! range, an indirect jump, too little room before the function's end, an
//! instruction that cannot run relocated, bytes that do not decode), and
//! every reason an optimized probe must go back to `int3` (another probe in
//! its range, a post handler, a fault handler, a jprobe, the switch off, the
//! probe disabled) in both directions. A handler must not be able to tell
//! the two paths apart: it sees the same registers as at a breakpoint,
//! redirects, counts nested hits as misses, and kretprobe entries work the
//! same; a kretprobe with no entry handler takes a lean detour that builds
//! no frame, and must count every return and every miss as its breakpoint
//! does. Several probes may share a detour; past the detour slots, probes
//! stay on breakpoints. A differential over real image functions checks
//! that optimizing every optimizable instruction boundary changes neither
//! what the code computes nor any probe's hit count; on four CPUs, callers
//! on CPUs 1-3 must see every hit and every return while CPU 0 forces
//! optimize/unoptimize cycles.
//!
//! Every check is an exact count, value or byte. Each test sets the
//! optimization switch itself and leaves it on (its default, as in Linux),
//! and unregisters what it registered, so the tests run in any subset
//! (`cargo test --test kprobe_optimized -- NAME`).
//!
//! The four-CPU test needs four CPUs and says so (returning early) on fewer:
//! this kernel runs in both passes of `make test` (-smp 1 and -smp 4).
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(probe_kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

extern crate alloc;

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::arch::naked_asm;
use core::fmt::Write;
use core::hint::black_box;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use probe_kernel::arch::x86::paging;
use probe_kernel::kprobes::*;
use probe_kernel::memory::slots::DETOUR_COUNT;
use probe_kernel::symbols::{self, Symbol};
use probe_kernel::testing::{
    Fnv, entry_argument, function_bytes, instruction_boundaries, kernel_functions, leak, load, name_of, reset,
    text_byte, text_bytes,
};
use probe_kernel::{println, task, unwind};

probe_kernel::test_kernel_main!();

// ------------------------------------------------------------------ targets

/// The address of a global asm label.
macro_rules! label {
    ($name:ident) => {{
        unsafe extern "C" {
            static $name: u8;
        }
        &raw const $name as usize
    }};
}

/// Defines `extern "C" fn $name(a) -> a * 3 + 1` made of two 4-byte plain
/// instructions and `ret` (9 bytes): a jump at its entry displaces 8 bytes,
/// one at `$second` (offset 4) displaces `lea` and `ret` (5 bytes).
macro_rules! three_a_plus_one {
    ($name:ident, $second:literal) => {
        #[unsafe(naked)]
        #[unsafe(no_mangle)]
        extern "C" fn $name(a: u32) -> u32 {
            naked_asm!(
                "mov eax, [esp + 4]",
                concat!(".global ", $second),
                concat!($second, ":"),
                "lea eax, [eax + eax*2 + 1]",
                "ret",
            );
        }
    };
}

three_a_plus_one!(opt_target, "opt_target_second");
three_a_plus_one!(opt_ret_target, "opt_ret_target_second");
three_a_plus_one!(opt_smp_target, "opt_smp_target_second");
three_a_plus_one!(opt_smp_ret_target, "opt_smp_ret_target_second");

/// What the `three_a_plus_one!` targets compute.
fn three_a_plus_one(a: u32) -> u32 {
    a.wrapping_mul(3).wrapping_add(1)
}

/// Where a redirecting handler sends `opt_target`: `return 1000 + a`.
extern "C" fn replacement(a: u32) -> u32 {
    1000 + a
}

/// `return max(a + 1, 10)`: the `jb` goes back to offset 4, inside the 7
/// bytes (`mov`, `add`) a jump at the entry would displace.
#[unsafe(naked)]
#[unsafe(no_mangle)]
extern "C" fn opt_jump_into(a: u32) -> u32 {
    naked_asm!(
        "mov eax, [esp + 4]",
        "2:",
        "add eax, 1",
        "cmp eax, 10",
        ".global opt_jump_into_from",
        "opt_jump_into_from:",
        "jb 2b",
        "ret",
    );
}

/// `return a * 3 + 1` through `jmp ecx`: the entry's 8 bytes are plain, but
/// the function has an indirect jump, whose targets nobody knows.
#[unsafe(naked)]
#[unsafe(no_mangle)]
extern "C" fn opt_indirect(a: u32) -> u32 {
    naked_asm!(
        "mov eax, [esp + 4]",
        "lea eax, [eax + eax*2 + 1]",
        "mov ecx, offset opt_indirect_out",
        ".global opt_indirect_at",
        "opt_indirect_at:",
        "jmp ecx",
        ".global opt_indirect_out",
        "opt_indirect_out:",
        "ret",
    );
}

/// `return a + 7`; from `opt_short_tail_add` only 4 bytes are left.
#[unsafe(naked)]
#[unsafe(no_mangle)]
extern "C" fn opt_short_tail(a: u32) -> u32 {
    naked_asm!("mov eax, [esp + 4]", ".global opt_short_tail_add", "opt_short_tail_add:", "add eax, 7", "ret");
}

/// `return a == 1 ? 1000 : a + 6`: a `loop` (never boostable) is the
/// second displaced instruction; its target lies past the range.
#[unsafe(naked)]
#[unsafe(no_mangle)]
extern "C" fn opt_loop(a: u32) -> u32 {
    naked_asm!(
        "mov ecx, [esp + 4]",
        ".global opt_loop_at",
        "opt_loop_at:",
        "loop 2f",
        "mov eax, 1000",
        "ret",
        "2:",
        "lea eax, [ecx + 7]",
        "ret",
    );
}

/// `return a == 0 ? 100 : a + 1`: a `jecxz` is the second displaced instruction.
#[unsafe(naked)]
#[unsafe(no_mangle)]
extern "C" fn opt_jecxz(a: u32) -> u32 {
    naked_asm!(
        "mov ecx, [esp + 4]",
        ".global opt_jecxz_at",
        "opt_jecxz_at:",
        "jecxz 2f",
        "lea eax, [ecx + 1]",
        "ret",
        "2:",
        "mov eax, 100",
        "ret",
    );
}

/// `return 2 * a`: from `opt_popfd_probe` the jump would displace `mov` and `popfd`.
#[unsafe(naked)]
#[unsafe(no_mangle)]
extern "C" fn opt_popfd(a: u32) -> u32 {
    naked_asm!(
        "pushfd",
        ".global opt_popfd_probe",
        "opt_popfd_probe:",
        "mov eax, [esp + 8]",
        ".global opt_popfd_at",
        "opt_popfd_at:",
        "popfd",
        "add eax, eax",
        "ret",
    );
}

/// `return 5 * a`: from `opt_cli_probe` the jump would displace `mov` and `cli`.
#[unsafe(naked)]
#[unsafe(no_mangle)]
extern "C" fn opt_cli(a: u32) -> u32 {
    naked_asm!(
        "pushfd",
        ".global opt_cli_probe",
        "opt_cli_probe:",
        "mov eax, [esp + 8]",
        ".global opt_cli_at",
        "opt_cli_at:",
        "cli",
        "popfd",
        "lea eax, [eax + eax*4]",
        "ret",
    );
}

/// `return a + 2`: the first instruction is a 2-byte `jmp`, a control
/// transfer that would not be the last displaced instruction.
#[unsafe(naked)]
#[unsafe(no_mangle)]
extern "C" fn opt_jmp_first(a: u32) -> u32 {
    naked_asm!("jmp 2f", "nop", "nop", "nop", "2:", "mov eax, [esp + 4]", "add eax, 2", "ret");
}

/// `return a * 3 + 1`, followed by bytes that do not decode (never run):
/// the function's jumps cannot all be known.
#[unsafe(naked)]
#[unsafe(no_mangle)]
extern "C" fn opt_undecodable(a: u32) -> u32 {
    naked_asm!(
        "mov eax, [esp + 4]",
        "lea eax, [eax + eax*2 + 1]",
        "ret",
        ".global opt_undecodable_at",
        "opt_undecodable_at:",
        ".byte 0x0f, 0x04",
    );
}

/// Taking the addresses keeps every target in the image with the `extern "C"` convention.
#[used]
static TARGETS: [extern "C" fn(u32) -> u32; 13] = [
    opt_target,
    opt_ret_target,
    opt_smp_target,
    replacement,
    opt_jump_into,
    opt_indirect,
    opt_short_tail,
    opt_loop,
    opt_jecxz,
    opt_popfd,
    opt_cli,
    opt_jmp_first,
    opt_undecodable,
];

fn address_of(function: extern "C" fn(u32) -> u32) -> usize {
    function as *const () as usize
}

// ------------------------------------------------------------------ helpers

/// Sets the optimization switch and checks that it took.
fn optimization(on: bool) {
    set_optimization(on).expect("set_optimization");
    assert_eq!(optimization_enabled(), on);
}

fn is_optimized(probe: &Kprobe) -> bool {
    probe.flags().contains(KprobeFlags::OPTIMIZED)
}

/// Where the `jmp rel32` at `address` goes.
fn jump_target(address: usize) -> usize {
    let displacement = u32::from_le_bytes(text_bytes(address + 1, 4).try_into().unwrap());
    (address + 5).wrapping_add(displacement as usize)
}

/// `probe` at `address` is optimized: the flag, and a `jmp rel32` to a
/// detour outside the probed function.
fn assert_optimized(probe: &Kprobe, address: usize, what: &str) {
    assert!(is_optimized(probe), "{what}: not OPTIMIZED (flags {:?})", probe.flags());
    assert_eq!(text_byte(address), 0xe9, "{what}: no jmp rel32 at the probe");
    let function = symbols::lookup_address(address).expect("probed code is in a function");
    let function = function.address..function.address + function.size;
    assert!(!function.contains(&jump_target(address)), "{what}: the jump stays inside the probed function");
}

/// `probe` at `address` is armed as a breakpoint, not optimized, with the
/// rest of the original instructions (`original` from `address`) in place.
fn assert_int3(probe: &Kprobe, address: usize, original: &[u8], what: &str) {
    assert!(!is_optimized(probe), "{what}: OPTIMIZED (flags {:?})", probe.flags());
    assert_eq!(text_byte(address), 0xcc, "{what}: no int3 at the probe");
    assert_eq!(text_bytes(address + 1, original.len() - 1), original[1..], "{what}: bytes after the int3");
}

static HITS: AtomicUsize = AtomicUsize::new(0);
static OTHER_HITS: AtomicUsize = AtomicUsize::new(0);
static WRONG: AtomicUsize = AtomicUsize::new(0);

fn count_hit(_: &Kprobe, _: &mut PtRegs) -> PreAction {
    HITS.fetch_add(1, SeqCst);
    PreAction::Continue
}

fn count_other(_: &Kprobe, _: &mut PtRegs) -> PreAction {
    OTHER_HITS.fetch_add(1, SeqCst);
    PreAction::Continue
}

fn count_other_post(_: &Kprobe, _: &mut PtRegs) {
    OTHER_HITS.fetch_add(1, SeqCst);
}

/// Calls `function` with 0..calls and checks each result against `model`.
fn call_checked(function: extern "C" fn(u32) -> u32, model: fn(u32) -> u32, calls: u32) {
    for a in 0..calls {
        assert_eq!(function(a), model(a), "{}({a})", symbols::Describe(address_of(function)));
    }
}

const CALLS: u32 = 50;

// ------------------------------------- one probe: hits, registers, bytes

/// What the capturing handler saw at its last hit.
static SEEN: spin::Mutex<Option<PtRegs>> = spin::Mutex::new(None);
static SEEN_ARGUMENT: AtomicUsize = AtomicUsize::new(0);

fn capture(_: &Kprobe, regs: &mut PtRegs) -> PreAction {
    HITS.fetch_add(1, SeqCst);
    *SEEN.lock() = Some(*regs);
    SEEN_ARGUMENT.store(entry_argument(regs, 0) as usize, SeqCst);
    PreAction::Continue
}

static CAPTURING: Kprobe = Kprobe::new().symbol("opt_target", 0).pre_handler(capture);

/// EFLAGS bits the caller below sets before the call: CF, PF, AF, ZF, SF, OF.
const ARITHMETIC_FLAGS: u32 = 0x8d5;
const TF: u32 = 1 << 8;
const IF: u32 = 1 << 9;
const RF: u32 = 1 << 16;

/// The registers the caller below loads before calling `opt_target(7)`.
const KNOWN: [u32; 6] = [0x0a0a_0a0a, 0x0b0b_0b0b, 0x0c0c_0c0c, 0x0d0d_0d0d, 0x0e0e_0e0e, 0x0f0f_0f0f];

/// EBX, ECX, EDX, ESI, EDI and EFLAGS right after the call returned.
static AFTER_CALL: [AtomicUsize; 6] = [const { AtomicUsize::new(0) }; 6];

/// Calls `opt_target(7)` with EAX..EDI (not ESP, EBP) set to [`KNOWN`] and
/// the arithmetic flags set, so two hits from the same call site see the
/// same registers; stores what the caller has after the call in [`AFTER_CALL`].
#[unsafe(naked)]
extern "C" fn call_with_known_registers() -> u32 {
    naked_asm!(
        "push ebx",
        "push esi",
        "push edi",
        "push 7",
        "pushfd",
        "or dword ptr [esp], {flags}",
        "popfd",
        "mov eax, {eax}",
        "mov ebx, {ebx}",
        "mov ecx, {ecx}",
        "mov edx, {edx}",
        "mov esi, {esi}",
        "mov edi, {edi}",
        "call {target}",
        "pushfd",
        "pop dword ptr [{after} + 20]",
        "mov [{after}], ebx",
        "mov [{after} + 4], ecx",
        "mov [{after} + 8], edx",
        "mov [{after} + 12], esi",
        "mov [{after} + 16], edi",
        "add esp, 4",
        "pop edi",
        "pop esi",
        "pop ebx",
        "ret",
        flags = const ARITHMETIC_FLAGS,
        eax = const KNOWN[0],
        ebx = const KNOWN[1],
        ecx = const KNOWN[2],
        edx = const KNOWN[3],
        esi = const KNOWN[4],
        edi = const KNOWN[5],
        target = sym opt_target,
        after = sym AFTER_CALL,
    );
}

/// The registers a handler sees that must not depend on how the probe was
/// reached: every general register, ESP, EIP, and EFLAGS without TF and RF.
fn comparable(regs: &PtRegs) -> [u32; 10] {
    let r = regs;
    [r.eax, r.ebx, r.ecx, r.edx, r.esi, r.edi, r.ebp, r.esp, r.eip, r.eflags & !(TF | RF)]
}

/// A hit with known registers, with the optimization switch as given
/// (always from this one call site, so ESP and EBP are the same each time).
#[inline(never)]
fn hit_with_known_registers(optimized: bool) -> PtRegs {
    optimization(optimized);
    assert_eq!(is_optimized(&CAPTURING), optimized);
    *SEEN.lock() = None;
    assert_eq!(call_with_known_registers(), 22);
    let after: Vec<u32> = AFTER_CALL.iter().map(|v| load(v) as u32).collect();
    assert_eq!(after[..5], KNOWN[1..], "optimized: {optimized}: registers after the call");
    assert_eq!(after[5] & ARITHMETIC_FLAGS, ARITHMETIC_FLAGS, "optimized: {optimized}: flags after the call");
    assert_eq!(load(&SEEN_ARGUMENT), 7);
    SEEN.lock().take().expect("the handler ran")
}

#[test_case]
fn an_optimized_probe_hits_exactly_and_sees_what_a_breakpoint_sees() {
    optimization(true);
    let address = address_of(opt_target);
    let original = text_bytes(address, 9);
    assert_eq!(can_optimize(address as *const ()), Ok(8));
    reset(&[&HITS]);
    register_kprobe(&CAPTURING).unwrap();
    assert_optimized(&CAPTURING, address, "opt_target");
    call_checked(opt_target, three_a_plus_one, CALLS);
    assert_eq!((load(&HITS), CAPTURING.nmissed()), (CALLS as usize, 0));

    let seen: Vec<PtRegs> = [true, false].into_iter().map(hit_with_known_registers).collect();
    let (optimized, trapped) = (&seen[0], &seen[1]);
    assert_eq!(comparable(optimized), comparable(trapped), "optimized hit {optimized:x?}, int3 hit {trapped:x?}");
    assert_eq!(optimized.eip as usize, address);
    assert_eq!([optimized.eax, optimized.ebx, optimized.ecx, optimized.edx, optimized.esi, optimized.edi], KNOWN);
    assert_eq!(optimized.eflags & (ARITHMETIC_FLAGS | IF), ARITHMETIC_FLAGS | IF, "the probed code's flags");
    assert_int3(&CAPTURING, address, &original, "switch off");

    optimization(true);
    assert_optimized(&CAPTURING, address, "switch on again");
    unregister_kprobe(&CAPTURING).unwrap();
    assert_eq!(text_bytes(address, 9), original, "every original byte back");
    assert!(!is_optimized(&CAPTURING));
    assert_eq!(load(&HITS), CALLS as usize + 2);
}

// ----------------------------------------------------------- refusals

/// A function built to break one condition of `can_optimize`.
struct Refusal {
    what: &'static str,
    function: extern "C" fn(u32) -> u32,
    /// What the function computes.
    model: fn(u32) -> u32,
    /// Where the probe goes.
    at: usize,
    expected: OptimizeRefusal,
}

fn refusals() -> [Refusal; 9] {
    use OptimizeRefusal::*;
    [
        Refusal {
            what: "a jb into the range",
            function: opt_jump_into,
            model: |a| a.wrapping_add(1).max(10),
            at: address_of(opt_jump_into),
            expected: JumpIntoRange { from: label!(opt_jump_into_from) },
        },
        Refusal {
            what: "jmp ecx in the function",
            function: opt_indirect,
            model: three_a_plus_one,
            at: address_of(opt_indirect),
            expected: IndirectJump { at: label!(opt_indirect_at) },
        },
        Refusal {
            what: "4 bytes before the end",
            function: opt_short_tail,
            model: |a| a.wrapping_add(7),
            at: label!(opt_short_tail_add),
            expected: PastFunctionEnd,
        },
        Refusal {
            what: "loop displaced",
            function: opt_loop,
            model: |a| if a == 1 { 1000 } else { a.wrapping_add(6) },
            at: address_of(opt_loop),
            expected: Unrelocatable { at: label!(opt_loop_at) },
        },
        Refusal {
            what: "jecxz displaced",
            function: opt_jecxz,
            model: |a| if a == 0 { 100 } else { a + 1 },
            at: address_of(opt_jecxz),
            expected: Unrelocatable { at: label!(opt_jecxz_at) },
        },
        Refusal {
            what: "popfd displaced",
            function: opt_popfd,
            model: |a| a.wrapping_mul(2),
            at: label!(opt_popfd_probe),
            expected: Unrelocatable { at: label!(opt_popfd_at) },
        },
        Refusal {
            what: "cli displaced",
            function: opt_cli,
            model: |a| a.wrapping_mul(5),
            at: label!(opt_cli_probe),
            expected: Unrelocatable { at: label!(opt_cli_at) },
        },
        Refusal {
            what: "a jmp before the fifth byte",
            function: opt_jmp_first,
            model: |a| a + 2,
            at: address_of(opt_jmp_first),
            expected: Unrelocatable { at: address_of(opt_jmp_first) },
        },
        Refusal {
            what: "undecodable bytes in the function",
            function: opt_undecodable,
            model: three_a_plus_one,
            at: address_of(opt_undecodable),
            expected: Undecodable { at: label!(opt_undecodable_at) },
        },
    ]
}

/// `can_optimize` refuses `case` exactly, and a probe there stays a
/// breakpoint that hits once per call.
fn check_refusal(case: &Refusal) {
    let what = case.what;
    assert_eq!(can_optimize(case.at as *const ()), Err(case.expected), "{what}");
    let original = text_bytes(case.at, 5);
    let probe = leak(Kprobe::new().address(case.at as *const ()).pre_handler(count_hit));
    register_kprobe(probe).unwrap_or_else(|e| panic!("{what}: {e:?}"));
    assert_int3(probe, case.at, &original, what);
    reset(&[&HITS]);
    call_checked(case.function, case.model, CALLS);
    assert_eq!((load(&HITS), probe.nmissed()), (CALLS as usize, 0), "{what}: hits, misses");
    unregister_kprobe(probe).unwrap();
    assert_eq!(text_bytes(case.at, 5), original, "{what}: bytes restored");
}

#[test_case]
fn each_condition_of_can_optimize_refuses_with_its_own_reason() {
    optimization(true);
    for case in &refusals() {
        check_refusal(case);
    }
}

#[test_case]
fn the_same_functions_are_optimizable_where_the_condition_does_not_apply() {
    optimization(true);
    // Entries whose first five bytes are plain: displaced lengths.
    assert_eq!(can_optimize(address_of(opt_target) as *const ()), Ok(8));
    assert_eq!(can_optimize(label!(opt_target_second) as *const ()), Ok(5), "lea + ret: ret may come last");
    assert_eq!(can_optimize(address_of(opt_short_tail) as *const ()), Ok(7));
    assert_eq!(can_optimize(address_of(opt_popfd) as *const ()), Ok(5), "pushfd + mov");
    assert_eq!(can_optimize(address_of(opt_cli) as *const ()), Ok(5), "pushfd + mov");
    // What can_probe refuses, can_optimize refuses for that reason.
    assert_eq!(
        can_optimize((address_of(opt_target) + 1) as *const ()),
        Err(OptimizeRefusal::NotProbeable(KprobeError::NotInstructionBoundary))
    );
    assert_eq!(
        can_optimize(&HITS as *const AtomicUsize as *const ()),
        Err(OptimizeRefusal::NotProbeable(KprobeError::OutsideKernelText))
    );
    assert_eq!(
        can_optimize(probe_kernel::kprobes::trap::int3_handler as *const ()),
        Err(OptimizeRefusal::NotProbeable(KprobeError::Blacklisted))
    );
}

// ------------------------------------------ what takes optimization away

static FIRST: Kprobe = Kprobe::new().symbol("opt_target", 0).pre_handler(count_hit);
static IN_RANGE: Kprobe = Kprobe::new().symbol("opt_target", 4).pre_handler(count_other);

#[test_case]
fn a_probe_inside_the_range_unoptimizes_it_until_it_goes() {
    optimization(true);
    let address = address_of(opt_target);
    let second = label!(opt_target_second);
    let original = text_bytes(address, 9);
    reset(&[&HITS, &OTHER_HITS]);
    register_kprobe(&FIRST).unwrap();
    assert_optimized(&FIRST, address, "alone");

    register_kprobe(&IN_RANGE).unwrap();
    assert!(!is_optimized(&FIRST), "a probe at +4 lies in the first one's 8 bytes");
    assert_eq!(text_byte(address), 0xcc);
    assert_eq!(text_bytes(address + 1, 3), original[1..4]);
    // The second one's own range (lea, ret) holds no other probe.
    assert_optimized(&IN_RANGE, second, "the probe at +4");
    call_checked(opt_target, three_a_plus_one, CALLS);
    assert_eq!((load(&HITS), load(&OTHER_HITS)), (CALLS as usize, CALLS as usize));

    unregister_kprobe(&IN_RANGE).unwrap();
    assert_optimized(&FIRST, address, "the probe in its range gone");
    call_checked(opt_target, three_a_plus_one, CALLS);
    assert_eq!((load(&HITS), load(&OTHER_HITS)), (2 * CALLS as usize, CALLS as usize));
    assert_eq!((FIRST.nmissed(), IN_RANGE.nmissed()), (0, 0));
    unregister_kprobe(&FIRST).unwrap();
    assert_eq!(text_bytes(address, 9), original);
}

fn never_handles(_: &Kprobe, _: &mut PtRegs, _: u8) -> FaultAction {
    FaultAction::NotHandled
}

extern "C" fn jprobe_handler(a: u32) -> u32 {
    OTHER_HITS.fetch_add(1, SeqCst);
    black_box(a);
    jprobe_return()
}

static BASE: Kprobe = Kprobe::new().symbol("opt_target", 0).pre_handler(count_hit);
static WITH_POST: Kprobe = Kprobe::new().symbol("opt_target", 0).post_handler(count_other_post);
static WITH_FAULT: Kprobe = Kprobe::new().symbol("opt_target", 0).pre_handler(count_other).fault_handler(never_handles);
static JPROBE: Jprobe = Jprobe::new(jprobe_handler as *const ()).symbol("opt_target");

/// Registers what `add` registers next to [`BASE`] (optimized): both must
/// be breakpoints while it is there, with `BASE` and it hitting once per
/// call; after `remove`, `BASE` is optimized again.
fn falls_back_while(what: &str, add: impl Fn(), remove: impl Fn(), other: &Kprobe) {
    let address = address_of(opt_target);
    let original = text_bytes(address, 9);
    reset(&[&HITS, &OTHER_HITS]);
    register_kprobe(&BASE).unwrap();
    assert_optimized(&BASE, address, what);
    add();
    assert_int3(&BASE, address, &original[..8], what);
    assert!(!is_optimized(other), "{what}: the added probe is OPTIMIZED");
    call_checked(opt_target, three_a_plus_one, CALLS);
    assert_eq!((load(&HITS), load(&OTHER_HITS)), (CALLS as usize, CALLS as usize), "{what}: hits");
    remove();
    assert_optimized(&BASE, address, what);
    call_checked(opt_target, three_a_plus_one, CALLS);
    assert_eq!((load(&HITS), load(&OTHER_HITS)), (2 * CALLS as usize, CALLS as usize), "{what}: hits after");
    assert_eq!(BASE.nmissed(), 0);
    unregister_kprobe(&BASE).unwrap();
    assert_eq!(text_bytes(address, 9), original, "{what}: bytes restored");
}

#[test_case]
fn a_post_handler_fault_handler_or_jprobe_at_the_address_falls_back_to_int3() {
    optimization(true);
    let register = |probe: &'static Kprobe| move || register_kprobe(probe).unwrap();
    let unregister = |probe: &'static Kprobe| move || unregister_kprobe(probe).unwrap();
    falls_back_while("post handler", register(&WITH_POST), unregister(&WITH_POST), &WITH_POST);
    falls_back_while("fault handler", register(&WITH_FAULT), unregister(&WITH_FAULT), &WITH_FAULT);
    let add = || register_jprobe(&JPROBE).unwrap();
    falls_back_while("jprobe", add, || unregister_jprobe(&JPROBE).unwrap(), &JPROBE.kp);
}

/// `a * 3 + 1` in two 4-byte instructions and `ret`, then two spare bytes
/// no call reaches, which the test below rewrites behind the engine.
#[unsafe(naked)]
#[unsafe(no_mangle)]
extern "C" fn opt_rewritten(a: u32) -> u32 {
    naked_asm!("mov eax, [esp + 4]", "lea eax, [eax + eax*2 + 1]", "ret", "nop", "nop");
}

static REWRITTEN: Kprobe = Kprobe::new().symbol("opt_rewritten", 0).pre_handler(count_hit);

/// The host rewrites a function's text without telling the engine (as a
/// module loaded where another was would): the optimizer's cached walk of
/// the function is stale, and the next registration must see the new
/// bytes, not place a jump on the old facts. Here the spare bytes become a
/// `jmp` into the range a jump at the entry would displace.
#[test_case]
fn text_rewritten_behind_the_engine_is_seen_by_the_next_registration() {
    optimization(true);
    let address = address_of(opt_rewritten);
    let spare = address + 9;
    let original = text_bytes(address, 8);
    assert_eq!(text_bytes(spare, 2), [0x90, 0x90], "the spare bytes");
    assert_eq!(can_optimize(address as *const ()), Ok(8));
    register_kprobe(&REWRITTEN).unwrap();
    assert_optimized(&REWRITTEN, address, "before the rewrite");
    unregister_kprobe(&REWRITTEN).unwrap();
    // jmp rel8 from spare + 2 to address + 2: inside the 8 displaced bytes.
    let jump = [0xeb, (address + 2).wrapping_sub(spare + 2) as u8];
    // SAFETY: two bytes of a function no call reaches (after its `ret`),
    // and no probe is there.
    unsafe { probe_kernel::arch::x86::patch::text_poke(spare, &jump) }.unwrap();
    reset(&[&HITS]);
    register_kprobe(&REWRITTEN).unwrap();
    assert_int3(&REWRITTEN, address, &original, "after the rewrite");
    assert_eq!(opt_rewritten(black_box(4)), 13);
    assert_eq!(load(&HITS), 1);
    unregister_kprobe(&REWRITTEN).unwrap();
    let refused = Err(OptimizeRefusal::JumpIntoRange { from: spare });
    assert_eq!(can_optimize(address as *const ()), refused, "can_optimize after the rewrite");
    // SAFETY: as above; the original bytes back.
    unsafe { probe_kernel::arch::x86::patch::text_poke(spare, &[0x90, 0x90]) }.unwrap();
    assert_eq!(can_optimize(address as *const ()), Ok(8), "restored");
}

static SECOND: Kprobe = Kprobe::new().symbol("opt_target", 0).pre_handler(count_other);

/// A second plain probe at an optimized address keeps the jump: each
/// detour hit then goes through the generic dispatcher (the detour's record
/// says no single probe), which runs both; when the first goes, the
/// second runs alone from the detour, and never the first's handler.
#[test_case]
fn several_probes_share_a_detour_and_the_one_left_runs_alone() {
    optimization(true);
    let address = address_of(opt_target);
    let original = text_bytes(address, 9);
    reset(&[&HITS, &OTHER_HITS]);
    register_kprobe(&BASE).unwrap();
    register_kprobe(&SECOND).unwrap();
    assert_optimized(&BASE, address, "two probes");
    assert_optimized(&SECOND, address, "two probes");
    call_checked(opt_target, three_a_plus_one, CALLS);
    assert_eq!((load(&HITS), load(&OTHER_HITS)), (CALLS as usize, CALLS as usize), "both probes");
    unregister_kprobe(&BASE).unwrap();
    assert_optimized(&SECOND, address, "the second alone");
    call_checked(opt_target, three_a_plus_one, CALLS);
    assert_eq!((load(&HITS), load(&OTHER_HITS)), (CALLS as usize, 2 * CALLS as usize), "the second alone");
    assert_eq!((BASE.nmissed(), SECOND.nmissed()), (0, 0));
    unregister_kprobe(&SECOND).unwrap();
    assert_eq!(text_bytes(address, 9), original);
}

/// Five-byte instructions, more than there are detour slots: a probe on
/// each displaces exactly its own instruction. (One function: the
/// optimizer checks a function's bytes once per registration, not once per
/// probe, so thousands of probes in one function register in a second.)
#[unsafe(naked)]
#[unsafe(no_mangle)]
extern "C" fn opt_many() {
    naked_asm!(".rept {n}", "mov eax, 0x12345678", ".endr", "ret", n = const MANY);
}
const MANY: usize = DETOUR_COUNT + 128;

static MANY_HITS: [AtomicUsize; MANY] = [const { AtomicUsize::new(0) }; MANY];

fn count_many(_: &Kprobe, regs: &mut PtRegs) -> PreAction {
    MANY_HITS[(regs.eip as usize - opt_many as *const () as usize) / 5].fetch_add(1, SeqCst);
    PreAction::Continue
}

static MANY_PROBES: [Kprobe; MANY] = {
    let mut probes = [const { Kprobe::new() }; MANY];
    let mut i = 0;
    while i < MANY {
        probes[i] = Kprobe::new().symbol("opt_many", i * 5).pre_handler(count_many);
        i += 1;
    }
    probes
};

/// At most `DETOUR_COUNT` probes are jump-optimized at once: the rest stay
/// on their breakpoints, and every probe hits exactly once per call
/// either way. Unregistered, every detour slot is free again.
#[test_case]
fn probes_beyond_the_detour_slots_stay_on_breakpoints_and_all_hit() {
    optimization(true);
    assert_eq!(text_byte(opt_many as *const () as usize), 0xb8, "made of `mov eax, imm32`");
    let slots_before = probe_kernel::memory::slots::in_use_count();
    let probes: Vec<&'static Kprobe> = MANY_PROBES.iter().collect();
    register_kprobes(&probes).unwrap();
    let optimized = probes.iter().filter(|p| is_optimized(p)).count();
    assert_eq!(optimized, DETOUR_COUNT, "optimized probes");
    for hits in &MANY_HITS {
        hits.store(0, SeqCst);
    }
    for _ in 0..3 {
        black_box(opt_many as extern "C" fn())();
    }
    let wrong: Vec<usize> = (0..MANY).filter(|&i| load(&MANY_HITS[i]) != 3).collect();
    assert!(wrong.is_empty(), "{} probes did not hit exactly 3 times, the first number {}", wrong.len(), wrong[0]);
    assert_eq!(probes.iter().map(|p| p.nmissed()).sum::<usize>(), 0);
    unregister_kprobes(&probes);
    assert_eq!(probe_kernel::memory::slots::in_use_count(), slots_before, "slots back");
}

static SHORT: Kprobe = Kprobe::new().symbol("opt_short_tail", 0).pre_handler(count_other);
static NEVER: Kprobe = Kprobe::new().symbol("opt_indirect", 0).pre_handler(count_other);

/// Calls the three probed functions; returns (HITS, OTHER_HITS) gained.
fn hits_of_one_round() -> (usize, usize) {
    reset(&[&HITS, &OTHER_HITS]);
    call_checked(opt_target, three_a_plus_one, CALLS);
    call_checked(opt_short_tail, |a| a + 7, CALLS);
    call_checked(opt_indirect, three_a_plus_one, CALLS);
    (load(&HITS), load(&OTHER_HITS))
}

#[test_case]
fn the_switch_and_disabling_unoptimize_and_reoptimize_every_probe() {
    let (target, short, indirect) = (address_of(opt_target), address_of(opt_short_tail), address_of(opt_indirect));
    let originals = [text_bytes(target, 9), text_bytes(short, 8), text_bytes(indirect, 8)];
    let expected = (CALLS as usize, 2 * CALLS as usize);
    // Registered with the switch off: breakpoints until it goes on.
    optimization(false);
    register_kprobes(&[&BASE, &SHORT, &NEVER]).unwrap();
    assert_int3(&BASE, target, &originals[0], "registered while off");
    assert_int3(&SHORT, short, &originals[1], "registered while off");
    assert_eq!(hits_of_one_round(), expected);
    for round in 0..3 {
        optimization(true);
        assert_optimized(&BASE, target, "on");
        assert_optimized(&SHORT, short, "on");
        assert_int3(&NEVER, indirect, &originals[2], "never optimizable");
        assert_eq!(hits_of_one_round(), expected, "round {round}, on");
        optimization(false);
        assert_int3(&BASE, target, &originals[0], "off");
        assert_int3(&SHORT, short, &originals[1], "off");
        assert_eq!(hits_of_one_round(), expected, "round {round}, off");
    }
    optimization(true);
    // Disabled: no enabled probe, so the original bytes, all of them.
    disable_kprobe(&BASE).unwrap();
    assert!(!is_optimized(&BASE));
    assert_eq!(text_bytes(target, 9), originals[0], "disabled");
    assert_eq!(hits_of_one_round(), (0, 2 * CALLS as usize));
    enable_kprobe(&BASE).unwrap();
    assert_optimized(&BASE, target, "enabled again");
    assert_eq!(hits_of_one_round(), expected);
    assert_eq!((BASE.nmissed(), SHORT.nmissed(), NEVER.nmissed()), (0, 0, 0));
    unregister_kprobes(&[&BASE, &SHORT, &NEVER]);
    assert_eq!([text_bytes(target, 9), text_bytes(short, 8), text_bytes(indirect, 8)], originals);
}

static SWITCH_FROM_HANDLER: spin::Mutex<Option<Result<(), KprobeError>>> = spin::Mutex::new(None);

fn switching_pre(_: &Kprobe, _: &mut PtRegs) -> PreAction {
    *SWITCH_FROM_HANDLER.lock() = Some(set_optimization(false));
    PreAction::Continue
}

static SWITCHING: Kprobe = Kprobe::new().symbol("opt_target", 0).pre_handler(switching_pre);

#[test_case]
fn the_switch_is_refused_from_a_handler_and_with_interrupts_off() {
    optimization(true);
    register_kprobe(&SWITCHING).unwrap();
    assert!(is_optimized(&SWITCHING));
    assert_eq!(opt_target(1), 4);
    assert_eq!(SWITCH_FROM_HANDLER.lock().take(), Some(Err(KprobeError::InProbeHandler)));
    let refused = probe_kernel::arch::cpu::without_interrupts(|| set_optimization(false));
    assert_eq!(refused, Err(KprobeError::InterruptsDisabled));
    assert!(optimization_enabled() && is_optimized(&SWITCHING), "the refusals changed nothing");
    unregister_kprobe(&SWITCHING).unwrap();
}

// ------------------------------------------------- what handlers can do

fn redirecting_pre(_: &Kprobe, regs: &mut PtRegs) -> PreAction {
    HITS.fetch_add(1, SeqCst);
    regs.eip = replacement as *const () as u32;
    PreAction::Redirected
}

static REDIRECTING: Kprobe = Kprobe::new().symbol("opt_target", 0).pre_handler(redirecting_pre);

#[test_case]
fn an_optimized_handler_redirects_the_call() {
    optimization(true);
    reset(&[&HITS]);
    register_kprobe(&REDIRECTING).unwrap();
    assert_optimized(&REDIRECTING, address_of(opt_target), "redirecting");
    call_checked(opt_target, |a| 1000 + a, CALLS);
    assert_eq!((load(&HITS), REDIRECTING.nmissed()), (CALLS as usize, 0));
    unregister_kprobe(&REDIRECTING).unwrap();
    call_checked(opt_target, three_a_plus_one, 3);
}

fn recursing_pre(_: &Kprobe, _: &mut PtRegs) -> PreAction {
    HITS.fetch_add(1, SeqCst);
    if opt_target(2) != 7 {
        WRONG.fetch_add(1, SeqCst);
    }
    PreAction::Continue
}

static RECURSING: Kprobe = Kprobe::new().symbol("opt_target", 0).pre_handler(recursing_pre);

#[test_case]
fn a_handler_calling_the_probed_function_counts_one_miss_per_call() {
    optimization(true);
    reset(&[&HITS, &WRONG]);
    register_kprobe(&RECURSING).unwrap();
    assert_optimized(&RECURSING, address_of(opt_target), "recursing");
    call_checked(opt_target, three_a_plus_one, CALLS);
    assert_eq!(load(&HITS), CALLS as usize, "only the outer hits run the handler");
    assert_eq!(RECURSING.nmissed(), CALLS as usize, "one nested miss per call");
    assert_eq!(load(&WRONG), 0, "the nested calls ran the original code");
    unregister_kprobe(&RECURSING).unwrap();
}

fn remember_argument(ri: &mut KretprobeInstance, regs: &mut PtRegs) -> EntryAction {
    ri.store(entry_argument(regs, 0));
    EntryAction::Report
}

fn check_return(ri: &mut KretprobeInstance, regs: &mut PtRegs) {
    let a: u32 = ri.load();
    OTHER_HITS.fetch_add(1, SeqCst);
    if regs_return_value(regs) != three_a_plus_one(a) || regs.eip as usize != ri.ret_addr() {
        WRONG.fetch_add(1, SeqCst);
    }
}

static RETPROBE: Kretprobe =
    Kretprobe::new().symbol("opt_ret_target").entry_handler(remember_argument).handler(check_return).data_size(4);

#[test_case]
fn a_kretprobe_entry_is_optimized_and_reports_every_return() {
    optimization(true);
    let address = address_of(opt_ret_target);
    let original = text_bytes(address, 9);
    reset(&[&OTHER_HITS, &WRONG]);
    register_kretprobe(&RETPROBE).unwrap();
    assert_optimized(&RETPROBE.kp, address, "kretprobe entry");
    call_checked(opt_ret_target, three_a_plus_one, CALLS);
    assert_eq!(load(&OTHER_HITS), CALLS as usize, "every return reported");
    assert_eq!(load(&WRONG), 0, "every return value and address right");
    assert_eq!((RETPROBE.nmissed(), RETPROBE.kp.nmissed()), (0, 0));
    optimization(false);
    assert_int3(&RETPROBE.kp, address, &original, "switch off");
    call_checked(opt_ret_target, three_a_plus_one, CALLS);
    assert_eq!((load(&OTHER_HITS), load(&WRONG)), (2 * CALLS as usize, 0));
    optimization(true);
    assert_optimized(&RETPROBE.kp, address, "switch on again");
    unregister_kretprobe(&RETPROBE).unwrap();
    assert_eq!(text_bytes(address, 9), original);
}

/// Two traces a handler takes: from the probed registers, and of its own stack.
#[derive(Clone, Copy)]
struct Traces {
    from_regs: [usize; 8],
    from_regs_len: usize,
    walked: [usize; 32],
    walked_len: usize,
}

static TRACES: spin::Mutex<Option<Traces>> = spin::Mutex::new(None);

/// `opt_depth(n)` returns `n` after calling itself `n` levels deep; its
/// first two instructions (6 bytes) are what its entry's jump displaces.
#[unsafe(naked)]
#[unsafe(no_mangle)]
extern "C" fn opt_depth(n: u32) -> u32 {
    naked_asm!(
        "mov eax, [esp + 4]",
        "test eax, eax",
        "jz 2f",
        "dec eax",
        "push eax",
        "call {me}",
        "add esp, 4",
        "inc eax",
        "2:",
        "ret",
        me = sym opt_depth,
    );
}

static DEPTH_RETURNS: AtomicUsize = AtomicUsize::new(0);
static DEPTH_ENTRIES: AtomicUsize = AtomicUsize::new(0);

fn count_depth_return(_: &mut KretprobeInstance, regs: &mut PtRegs) {
    DEPTH_RETURNS.fetch_add(1, SeqCst);
    // `opt_depth` returns its argument, which the nested calls count down:
    // the outermost returns the most. Nothing to check but that it is small.
    if regs_return_value(regs) > 64 {
        WRONG.fetch_add(1, SeqCst);
    }
}

fn count_depth_entry(_: &mut KretprobeInstance, _: &mut PtRegs) -> EntryAction {
    DEPTH_ENTRIES.fetch_add(1, SeqCst);
    EntryAction::Report
}

fn call_depth_from_handler(_: &Kprobe, _: &mut PtRegs) -> PreAction {
    HITS.fetch_add(1, SeqCst);
    if opt_depth(black_box(0)) != 0 {
        WRONG.fetch_add(1, SeqCst);
    }
    PreAction::Continue
}

/// A kretprobe with no entry handler: its optimized entry is the lean
/// detour, which builds no frame.
static DEEP: Kretprobe = Kretprobe::new().symbol("opt_depth").handler(count_depth_return).maxactive(4);
/// The same address, with an entry handler: the full detour's kind.
static DEEP_WITH_ENTRY: Kretprobe =
    Kretprobe::new().symbol("opt_depth").entry_handler(count_depth_entry).handler(count_depth_return).maxactive(4);
static DEPTH_KPROBE: Kprobe = Kprobe::new().symbol("opt_depth", 0).pre_handler(count_hit);
static CALLS_DEPTH: Kprobe = Kprobe::new().symbol("opt_target", 0).pre_handler(call_depth_from_handler);

/// What one round of calls of `opt_depth` gave: returns reported, calls
/// not reported (`nmissed`: for want of an instance, or a busy CPU), and
/// of those the busy CPU's (the entry probe's own `nmissed`).
fn depth_round(kretprobe: &Kretprobe) -> (usize, usize, usize) {
    reset(&[&DEPTH_RETURNS, &HITS]);
    let (missed, busy) = (kretprobe.nmissed(), kretprobe.kp.nmissed());
    // Eleven nested calls: the outer four take the four instances.
    assert_eq!(opt_depth(black_box(10)), 10);
    // A hundred single calls: one instance each, given back.
    for _ in 0..100 {
        assert_eq!(opt_depth(black_box(0)), 0);
    }
    // From a handler (this CPU busy): a miss each, never reported.
    register_kprobe(&CALLS_DEPTH).unwrap();
    assert_eq!(opt_target(black_box(1)), 4);
    assert_eq!(opt_target(black_box(1)), 4);
    unregister_kprobe(&CALLS_DEPTH).unwrap();
    assert_eq!(load(&HITS), 2, "the calling probe hit");
    (load(&DEPTH_RETURNS), kretprobe.nmissed() - missed, kretprobe.kp.nmissed() - busy)
}

/// A kretprobe with no entry handler takes the lean detour when optimized
/// (the bench's `kretprobe_optimized`): its every entry, miss and return
/// must count as through its breakpoint. It also shares its address with
/// other probes, each time by way of the dispatcher, and falls back there
/// for a kretprobe with an entry handler left alone in it.
#[test_case]
fn a_lean_kretprobe_detour_counts_returns_and_misses_as_its_breakpoint_does() {
    reset(&[&WRONG]);
    let address = address_of(opt_depth);
    let original = text_bytes(address, 6);
    let mut rounds = Vec::new();
    for optimized in [false, true] {
        optimization(optimized);
        register_kretprobe(&DEEP).unwrap();
        assert_eq!(is_optimized(&DEEP.kp), optimized, "optimized: {optimized}");
        rounds.push(depth_round(&DEEP));
        unregister_kretprobe(&DEEP).unwrap();
        assert_eq!(text_bytes(address, 6), original);
    }
    // 4 + 100 returns; 7 nested entries found no instance and 2 a busy CPU.
    assert_eq!(rounds, [(104, 9, 2), (104, 9, 2)], "(returns, missed, busy): int3, then optimized");
    // Shared with a plain probe: both run, every time.
    optimization(true);
    register_kretprobe(&DEEP).unwrap();
    register_kprobe(&DEPTH_KPROBE).unwrap();
    assert_optimized(&DEPTH_KPROBE, address, "shared");
    reset(&[&DEPTH_RETURNS, &HITS]);
    assert_eq!(opt_depth(black_box(2)), 2);
    assert_eq!((load(&DEPTH_RETURNS), load(&HITS)), (3, 3), "shared: returns, kprobe hits");
    unregister_kprobe(&DEPTH_KPROBE).unwrap();
    assert_eq!(depth_round(&DEEP), (104, 9, 2), "alone again");
    // A kretprobe with an entry handler left alone in the lean detour.
    register_kretprobe(&DEEP_WITH_ENTRY).unwrap();
    unregister_kretprobe(&DEEP).unwrap();
    assert_optimized(&DEEP_WITH_ENTRY.kp, address, "with an entry handler");
    reset(&[&DEPTH_ENTRIES]);
    assert_eq!(depth_round(&DEEP_WITH_ENTRY), (104, 9, 2), "with an entry handler");
    assert_eq!(load(&DEPTH_ENTRIES), 104, "its entry handler ran for every instance taken");
    unregister_kretprobe(&DEEP_WITH_ENTRY).unwrap();
    assert_eq!(text_bytes(address, 6), original);
    assert_eq!(load(&WRONG), 0);
}

fn save_traces(_: &Kprobe, regs: &mut PtRegs) -> PreAction {
    let mut traces = Traces { from_regs: [0; 8], from_regs_len: 0, walked: [0; 32], walked_len: 0 };
    traces.from_regs_len = unwind::stack_trace_save_regs(regs, &mut traces.from_regs);
    traces.walked_len = unwind::stack_trace_save(&mut traces.walked);
    *TRACES.lock() = Some(traces);
    PreAction::Continue
}

static TRACING: Kprobe = Kprobe::new().symbol("opt_target", 0).pre_handler(save_traces);

#[inline(never)]
fn traced_caller() -> u32 {
    black_box(opt_target(black_box(4))) + 1
}

/// The traces of one hit, with the switch as given (one call site for both).
#[inline(never)]
fn traces_of_one_hit(optimized: bool) -> Traces {
    optimization(optimized);
    assert_eq!(is_optimized(&TRACING), optimized);
    assert_eq!(black_box(traced_caller()), 14);
    TRACES.lock().take().expect("the handler ran")
}

/// The walked trace from the probed function's caller on (the frames
/// above it are the handler's and its path's, which differ by design).
fn from_the_caller(traces: &Traces) -> Vec<&'static str> {
    let names: Vec<&str> = traces.walked[..traces.walked_len].iter().map(|&a| name_of(a)).collect();
    let caller = names.iter().position(|&n| n == "kprobe_optimized::traced_caller");
    names[caller.unwrap_or_else(|| panic!("the probed function's caller is missing: {names:?}"))..].to_vec()
}

#[inline(never)]
#[test_case]
fn stack_traces_from_an_optimized_handler_are_those_of_a_breakpoint() {
    register_kprobe(&TRACING).unwrap();
    let [optimized, trapped] = [true, false].map(traces_of_one_hit);
    optimization(true);
    unregister_kprobe(&TRACING).unwrap();
    // The two hits come from two call sites of `traces_of_one_hit` (the
    // map may be unrolled): addresses agree up to it, names all the way.
    let names = |t: &Traces| t.from_regs[..t.from_regs_len].iter().map(|&a| name_of(a)).collect::<Vec<_>>();
    assert_eq!(names(&optimized), names(&trapped), "stack_trace_save_regs");
    assert!(optimized.from_regs_len >= 3, "only {} entries", optimized.from_regs_len);
    assert_eq!(optimized.from_regs[..3], trapped.from_regs[..3], "stack_trace_save_regs");
    assert_eq!(optimized.from_regs[0], address_of(opt_target), "the probed EIP comes first");
    assert_eq!(name_of(optimized.from_regs[1]), "kprobe_optimized::traced_caller");
    let walked = from_the_caller(&optimized);
    assert_eq!(walked, from_the_caller(&trapped), "stack_trace_save from the handler");
    assert_eq!(walked.get(1).copied(), Some("kprobe_optimized::traces_of_one_hit"));
}

// ------------------------------------- every optimizable boundary of real code

/// Deterministic work through formatting, sorting, collections, strings and
/// 64-bit division; returns a hash of everything it computed.
#[inline(never)]
fn workload() -> u64 {
    let mut hash = Fnv::new();
    let mut text = String::new();
    for (i, value) in [0u32, 7, 42, 65_535, 0xdead_beef, u32::MAX].into_iter().enumerate() {
        let signed = value as i32 - 100;
        let _ = write!(text, "{value} {value:x} {value:#010X} {value:o} {value:b} {signed:+} {i:>6}|");
    }
    let _ = write!(text, "{:?} {:?} {:#?}", "a\"b\n\tc\u{7f}é", Some((1u8, -2i16)), [Some(3u32), None]);
    hash.bytes(text.as_bytes());

    let mut numbers: Vec<u32> = (0..300u32).map(|i| i.wrapping_mul(2_654_435_761) % 1000).collect();
    numbers.sort_unstable();
    numbers.dedup();
    let mut words: Vec<String> = numbers.iter().take(60).map(|n| format!("w{:03}", n % 97)).collect();
    words.sort();
    words.dedup();
    hash.bytes(words.concat().as_bytes());

    let mut map: BTreeMap<u32, String> = BTreeMap::new();
    for &n in &numbers {
        map.insert(n, format!("{n}"));
    }
    for n in (0..1000).step_by(7) {
        map.remove(&n);
    }
    for (key, value) in map.range(100..700) {
        hash.number(*key as u64);
        hash.bytes(value.as_bytes());
    }

    let haystack = "the quick brown fox jumps over the lazy dog; the end";
    hash.number(haystack.find("lazy").unwrap_or(0) as u64);
    hash.number(haystack.matches("the").count() as u64);
    for number in ["17", "-3", "4294967295", "x1"] {
        hash.number(number.parse::<i64>().map_or(u64::MAX, |n| n as u64));
    }
    for divisor in [3u64, 1_000_007, 1 << 33] {
        let dividend = black_box(0xfedc_ba98_7654_3210u64 ^ divisor);
        hash.number((dividend / divisor) ^ (dividend % divisor));
    }
    hash.0
}

/// Name fragments of the functions the workload runs (none is on the trap
/// or timer path, so only the workload calls them while probes are armed).
const PATTERNS: &[&str] = &[
    "core::fmt::",
    "alloc::raw_vec::",
    "alloc::vec::",
    "alloc::string::",
    "alloc::collections::",
    "alloc::fmt::",
    "alloc::str::",
    "core::str::",
    "core::slice::sort::",
    "core::num::",
    "__udivdi3",
    "__umoddi3",
    "compiler_builtins::int::",
];
/// Never targeted: the engine's Debug impls, and this kernel's own code.
const EXCLUDE: &[&str] = &["kprobes::", "kprobe_optimized::", "testing::"];
/// Targets at most this big (bigger ones make each registration decode far).
const MAX_TARGET_SIZE: usize = 0x600;
/// How many called functions become targets, at most per pattern and in all.
const PER_PATTERN: usize = 4;
const MAX_TARGETS: usize = 32;
/// The least number of optimized boundaries the differential accepts.
const MIN_OPTIMIZED: usize = 100;

/// A probe with its own hit counter (the handler finds it from the probe).
#[repr(C)]
struct Counted {
    probe: Kprobe,
    hits: AtomicUsize,
    /// `hits` when the workload ended (read without allocating: the
    /// allocator's callers may be probed).
    seen: AtomicUsize,
}

impl Counted {
    fn leak(address: usize) -> &'static Counted {
        let probe = Kprobe::new().address(address as *const ()).pre_handler(count_own);
        leak(Counted { probe, hits: AtomicUsize::new(0), seen: AtomicUsize::new(0) })
    }
}

fn count_own(probe: &Kprobe, _: &mut PtRegs) -> PreAction {
    // SAFETY: `count_own` is only set on the `probe` field of a `Counted`
    // (see `Counted::leak`), which is `repr(C)` with `probe` first, so the
    // probe's address is the `Counted`'s.
    let counted = unsafe { &*(probe as *const Kprobe as *const Counted) };
    counted.hits.fetch_add(1, SeqCst);
    PreAction::Continue
}

/// One run of the workload with `probes` registered: the hash, each
/// probe's hits, whether each was optimized, and the misses.
struct Run {
    hash: u64,
    hits: Vec<usize>,
    optimized: Vec<bool>,
    missed: usize,
}

fn probed_run(probes: &[&'static Counted], optimized: bool) -> Run {
    let kprobes: Vec<&'static Kprobe> = probes.iter().map(|c| &c.probe).collect();
    optimization(optimized);
    register_kprobes(&kprobes).unwrap_or_else(|e| panic!("{} probes refused: {e:?}", probes.len()));
    let flags: Vec<bool> = kprobes.iter().map(|p| is_optimized(p)).collect();
    for counted in probes {
        counted.hits.store(0, SeqCst);
    }
    let hash = workload();
    for counted in probes {
        counted.seen.store(load(&counted.hits), SeqCst);
    }
    let hits = probes.iter().map(|c| load(&c.seen)).collect();
    let missed = kprobes.iter().map(|p| p.nmissed()).sum();
    unregister_kprobes(&kprobes);
    optimization(true);
    Run { hash, hits, optimized: flags, missed }
}

fn is_candidate(function: &Symbol) -> bool {
    PATTERNS.iter().any(|p| function.name.contains(p))
        && !EXCLUDE.iter().any(|e| function.name.contains(e))
        && !paging::kprobes_text().contains(&function.address)
        && function.size <= MAX_TARGET_SIZE
        && can_probe(function.address as *const ()).is_ok()
}

fn pattern_of(name: &str) -> &'static str {
    PATTERNS.iter().find(|p| name.contains(**p)).copied().unwrap_or("")
}

/// The functions the workload calls (by an entry-probe census), up to
/// [`PER_PATTERN`] per pattern and [`MAX_TARGETS`] in all, in address order.
fn called_functions(baseline: u64) -> Vec<Symbol> {
    let candidates: Vec<Symbol> = kernel_functions().into_iter().filter(is_candidate).collect();
    let census: Vec<&'static Counted> = candidates.iter().map(|f| Counted::leak(f.address)).collect();
    let mut calls = Vec::new();
    for chunk in census.chunks(MAX_SITES) {
        let run = probed_run(chunk, true);
        assert_eq!((run.hash, run.missed), (baseline, 0), "the entry census changed the workload or missed");
        calls.extend(run.hits);
    }
    let mut targets: Vec<Symbol> = Vec::new();
    for (function, _) in candidates.iter().zip(&calls).filter(|(_, calls)| **calls > 0) {
        let pattern = pattern_of(function.name);
        let same_pattern = targets.iter().filter(|t| pattern_of(t.name) == pattern).count();
        if targets.len() < MAX_TARGETS && same_pattern < PER_PATTERN {
            targets.push(*function);
        }
    }
    targets
}

/// An optimizable instruction boundary: its address, displaced length and probe.
#[derive(Clone, Copy)]
struct Boundary {
    address: usize,
    length: usize,
    probe: &'static Counted,
}

fn optimizable_boundaries(targets: &[Symbol]) -> Vec<Boundary> {
    let mut out = Vec::new();
    for function in targets {
        let bytes = function_bytes(function);
        let instructions = instruction_boundaries(function, &bytes)
            .unwrap_or_else(|offset| panic!("{}+{offset:#x} does not decode", function.name));
        for (address, _) in instructions {
            if let Ok(length) = can_optimize(address as *const ()) {
                assert!(length >= 5, "{}: displaced length {length}", symbols::Describe(address));
                out.push(Boundary { address, length, probe: Counted::leak(address) });
            }
        }
    }
    out
}

/// Splits boundaries (in address order) into rounds in which no probe lies
/// in another's displaced range, so every probe of a round is optimizable
/// at once: each goes to the first round whose last range ends at or before it.
fn rounds_without_overlap(boundaries: &[Boundary]) -> Vec<Vec<Boundary>> {
    let mut rounds: Vec<Vec<Boundary>> = Vec::new();
    for &boundary in boundaries {
        let fits = |round: &&mut Vec<Boundary>| round.last().is_some_and(|l| l.address + l.length <= boundary.address);
        match rounds.iter_mut().find(fits) {
            Some(round) => round.push(boundary),
            None => rounds.push(alloc::vec![boundary]),
        }
    }
    rounds
}

/// One round: the same probes optimized and as breakpoints must give the
/// baseline's hash, the same hits each, and no misses. Returns the hits.
fn differential_round(round: &[Boundary], baseline: u64) -> usize {
    let probes: Vec<&'static Counted> = round.iter().map(|b| b.probe).collect();
    let jumps = probed_run(&probes, true);
    let traps = probed_run(&probes, false);
    for (i, boundary) in round.iter().enumerate() {
        let at = symbols::Describe(boundary.address);
        assert!(jumps.optimized[i], "{at}: not optimized although can_optimize and alone in its range");
        assert!(!traps.optimized[i], "{at}: optimized with the switch off");
        assert_eq!(jumps.hits[i], traps.hits[i], "{at}: hits optimized vs int3");
    }
    assert_eq!((jumps.hash, traps.hash), (baseline, baseline), "a round changed what the workload computes");
    assert_eq!((jumps.missed, traps.missed), (0, 0), "a round missed hits");
    jumps.hits.iter().sum()
}

#[test_case]
fn optimizing_every_optimizable_boundary_of_real_functions_changes_nothing() {
    optimization(true);
    let baseline = workload();
    assert_eq!(workload(), baseline, "the workload is not deterministic");
    let targets = called_functions(baseline);
    let originals: Vec<Vec<u8>> = targets.iter().map(function_bytes).collect();
    let boundaries = optimizable_boundaries(&targets);
    let rounds = rounds_without_overlap(&boundaries);
    let hits: usize = rounds.iter().map(|round| differential_round(round, baseline)).sum();
    for (function, original) in targets.iter().zip(&originals) {
        assert_eq!(&function_bytes(function), original, "{}: bytes not restored", function.name);
    }
    let executed = count_executed(&boundaries, baseline);
    println!();
    println!(
        "  {} functions, {} optimizable boundaries ({executed} executed) in {} rounds, {hits} hits each way",
        targets.len(),
        boundaries.len(),
        rounds.len()
    );
    assert!(boundaries.len() > MIN_OPTIMIZED, "only {} optimizable boundaries", boundaries.len());
    assert!(executed * 4 > boundaries.len(), "the workload ran few optimized boundaries: {executed}");
}

/// How many of the boundaries the workload runs (one int3 probe each, in
/// batches, so nothing is optimized and every boundary is probed at once).
fn count_executed(boundaries: &[Boundary], baseline: u64) -> usize {
    let probes: Vec<&'static Counted> = boundaries.iter().map(|b| b.probe).collect();
    let mut executed = 0;
    for chunk in probes.chunks(MAX_SITES) {
        let run = probed_run(chunk, false);
        assert_eq!(run.hash, baseline);
        executed += run.hits.iter().filter(|&&h| h > 0).count();
    }
    executed
}

// ------------------------------------------- a detour the site just lost

three_a_plus_one!(opt_stale_target, "opt_stale_target_second");

static STALE_HITS: AtomicUsize = AtomicUsize::new(0);

fn stale_hit(_: &Kprobe, _: &mut PtRegs) -> PreAction {
    STALE_HITS.fetch_add(1, SeqCst);
    PreAction::Continue
}

static STALE: Kprobe = Kprobe::new().symbol("opt_stale_target", 0).pre_handler(stale_hit);

/// A CPU that jumped into the detour and was interrupted at its first
/// instruction (by the very sync IPI of an unoptimization, most often)
/// goes on in the detour after the site has dropped it. The probe is still
/// registered, so that call is a hit like any other: its handler runs. The
/// test is that CPU: it unoptimizes the probe (the switch off), then calls
/// the detour it had, whose slot is free but not yet reused.
#[test_case]
fn a_call_in_a_detour_the_site_just_dropped_is_still_a_hit() {
    optimization(true);
    STALE_HITS.store(0, SeqCst);
    register_kprobe(&STALE).unwrap();
    let address = address_of(opt_stale_target);
    assert_optimized(&STALE, address, "stale");
    let detour = jump_target(address);
    optimization(false);
    assert!(!is_optimized(&STALE), "unoptimized by the switch");
    // SAFETY: the detour's code is still in its slot (freed by the
    // unoptimization, reused by no allocation since), and a detour is
    // entered as its function is: by a call, with the arguments stacked.
    let through_detour: extern "C" fn(u32) -> u32 = unsafe { core::mem::transmute(detour) };
    assert_eq!(through_detour(black_box(5)), three_a_plus_one(5), "the displaced code ran");
    assert_eq!((STALE_HITS.load(SeqCst), STALE.nmissed()), (1, 0), "the handler ran: a hit, not lost");
    // And the function itself, now a breakpoint probe.
    assert_eq!(opt_stale_target(black_box(5)), three_a_plus_one(5));
    assert_eq!(STALE_HITS.load(SeqCst), 2);
    unregister_kprobe(&STALE).unwrap();
    optimization(true);
}

// ------------------------------------------------------------ four CPUs

const SMP_CPUS: usize = 4;
/// Optimize/unoptimize cycles CPU 0 runs while CPUs 1-3 call.
const SMP_CYCLES: usize = 60;
/// The least calls each caller must make meanwhile.
const SMP_MIN_CALLS: usize = 1_000;

static SMP_HITS: AtomicUsize = AtomicUsize::new(0);
static SMP_POST_HITS: AtomicUsize = AtomicUsize::new(0);
static SMP_IN_RANGE_HITS: AtomicUsize = AtomicUsize::new(0);
static SMP_WRONG: AtomicUsize = AtomicUsize::new(0);
static SMP_STARTED: AtomicUsize = AtomicUsize::new(0);
static SMP_STOP: AtomicBool = AtomicBool::new(false);

fn smp_hit(_: &Kprobe, _: &mut PtRegs) -> PreAction {
    SMP_HITS.fetch_add(1, SeqCst);
    PreAction::Continue
}

fn smp_post(_: &Kprobe, _: &mut PtRegs) {
    SMP_POST_HITS.fetch_add(1, SeqCst);
}

fn smp_in_range(_: &Kprobe, _: &mut PtRegs) -> PreAction {
    SMP_IN_RANGE_HITS.fetch_add(1, SeqCst);
    PreAction::Continue
}

/// Registered the whole time: every call is one hit or one miss.
static SMP_PRE: Kprobe = Kprobe::new().symbol("opt_smp_target", 0).pre_handler(smp_hit);
/// Registered and unregistered by CPU 0: its post handler forces `int3`.
static SMP_POSTED: Kprobe = Kprobe::new().symbol("opt_smp_target", 0).post_handler(smp_post);
/// Registered and unregistered by CPU 0: it lies inside SMP_PRE's range.
static SMP_IN_RANGE: Kprobe = Kprobe::new().symbol("opt_smp_target", 4).pre_handler(smp_in_range);

/// CPU `cpu` (1-3): calls `target` until CPU 0 is done; returns how many
/// calls it made (wrong results go to SMP_WRONG).
fn calls_of(target: extern "C" fn(u32) -> u32, cpu: usize) -> usize {
    SMP_STARTED.fetch_add(1, SeqCst);
    let mut calls = 0;
    while !SMP_STOP.load(SeqCst) {
        let x = (cpu << 24 | calls) as u32;
        if target(x) != three_a_plus_one(x) {
            SMP_WRONG.fetch_add(1, SeqCst);
        }
        calls += 1;
    }
    calls
}

/// Runs `caller` on CPUs 1-3 while this CPU (0) runs `churn`, and returns
/// how many calls each made.
fn while_cpus_call(caller: fn(usize) -> usize, churn: impl FnOnce()) -> Vec<usize> {
    reset(&[&SMP_STARTED]);
    SMP_STOP.store(false, SeqCst);
    let ids: Vec<usize> = (1..SMP_CPUS).map(|c| task::spawn_on(c, "caller", caller, c).expect("spawn")).collect();
    while load(&SMP_STARTED) < SMP_CPUS - 1 {
        task::yield_now();
    }
    churn();
    SMP_STOP.store(true, SeqCst);
    ids.into_iter().map(task::join).collect()
}

/// One optimize/unoptimize cycle of CPU 0, of the kind `cycle % 3` picks;
/// returns whether the permanent probe is optimized again after it.
fn churn_cycle(cycle: usize) -> bool {
    match cycle % 3 {
        0 => {
            register_kprobe(&SMP_POSTED).unwrap();
            assert!(!is_optimized(&SMP_PRE), "a post handler at the address");
            unregister_kprobe(&SMP_POSTED).unwrap();
        }
        1 => {
            optimization(false);
            assert!(!is_optimized(&SMP_PRE), "switch off");
            optimization(true);
        }
        _ => {
            register_kprobe(&SMP_IN_RANGE).unwrap();
            assert!(!is_optimized(&SMP_PRE), "a probe in the range");
            unregister_kprobe(&SMP_IN_RANGE).unwrap();
        }
    }
    is_optimized(&SMP_PRE)
}

#[test_case]
fn three_cpus_call_an_optimized_probe_while_cpu0_unoptimizes_and_reoptimizes_it() {
    let online = probe_kernel::arch::x86::smp::online_cpus();
    if online < SMP_CPUS {
        println!("(needs {SMP_CPUS} CPUs, {online} online: skipped; runs in the -smp 4 pass) ");
        return;
    }
    optimization(true);
    reset(&[&SMP_HITS, &SMP_POST_HITS, &SMP_IN_RANGE_HITS, &SMP_WRONG]);
    register_kprobe(&SMP_PRE).unwrap();
    assert_optimized(&SMP_PRE, address_of(opt_smp_target), "smp");
    // Optimization is synchronous: after each cycle the probe is optimized
    // again, whatever the callers are doing (checked last, after the counts).
    let mut not_reoptimized = Vec::new();
    let calls = while_cpus_call(
        |cpu| calls_of(opt_smp_target, cpu),
        || not_reoptimized = (0..SMP_CYCLES).filter(|&cycle| !churn_cycle(cycle)).collect(),
    );
    let total: usize = calls.iter().sum();
    let (hits, missed, posts) = (load(&SMP_HITS), SMP_PRE.nmissed(), load(&SMP_POST_HITS));
    let in_range = load(&SMP_IN_RANGE_HITS);
    println!();
    println!(
        "  {SMP_CYCLES} cycles on CPU 0; calls {calls:?}: {hits} hits + {missed} missed; {posts} post, {in_range} in-range hits"
    );
    assert_eq!(load(&SMP_WRONG), 0, "a call returned a wrong value");
    assert_eq!(hits + missed, total, "hits + misses = calls");
    assert!(posts <= total && in_range <= total, "more hits of the churned probes than calls");
    assert!(calls.iter().all(|&c| c >= SMP_MIN_CALLS), "a caller made fewer than {SMP_MIN_CALLS} calls");
    assert!(
        not_reoptimized.is_empty(),
        "{} of {SMP_CYCLES} cycles left the eligible probe unoptimized (cycles {:?}...)",
        not_reoptimized.len(),
        &not_reoptimized[..not_reoptimized.len().min(12)]
    );
    unregister_kprobe(&SMP_PRE).unwrap();
}

static SMP_RETURNS: AtomicUsize = AtomicUsize::new(0);
static SMP_SHARED_HITS: AtomicUsize = AtomicUsize::new(0);

fn smp_return(_: &mut KretprobeInstance, regs: &mut PtRegs) {
    SMP_RETURNS.fetch_add(1, SeqCst);
    // Every caller passes `cpu << 24 | calls`, so 3a+1 never wraps to 0.
    if regs_return_value(regs) == 0 {
        SMP_WRONG.fetch_add(1, SeqCst);
    }
}

fn smp_shared(_: &Kprobe, _: &mut PtRegs) -> PreAction {
    SMP_SHARED_HITS.fetch_add(1, SeqCst);
    PreAction::Continue
}

/// A kretprobe with no entry handler (its optimized entry the lean detour),
/// registered the whole time, with instances enough for three callers.
static SMP_RET: Kretprobe = Kretprobe::new().symbol("opt_smp_ret_target").handler(smp_return).maxactive(16);
/// Registered and unregistered by CPU 0: the address shared, still optimized.
static SMP_SHARED: Kprobe = Kprobe::new().symbol("opt_smp_ret_target", 0).pre_handler(smp_shared);

/// The lean kretprobe detour under cross-modification: while CPUs 1-3 call
/// the function, CPU 0 switches optimization off and on (the detour
/// removed and a new one installed) and shares the address with a plain
/// probe and takes it away (the detour's record switching to `GONE` and
/// back). Every call's return is reported, none is missed.
#[test_case]
fn three_cpus_return_through_a_lean_kretprobe_while_cpu0_changes_its_detour() {
    let online = probe_kernel::arch::x86::smp::online_cpus();
    if online < SMP_CPUS {
        println!("(needs {SMP_CPUS} CPUs, {online} online: skipped; runs in the -smp 4 pass) ");
        return;
    }
    optimization(true);
    reset(&[&SMP_RETURNS, &SMP_SHARED_HITS, &SMP_WRONG]);
    register_kretprobe(&SMP_RET).unwrap();
    assert_optimized(&SMP_RET.kp, address_of(opt_smp_ret_target), "smp kretprobe");
    let mut not_optimized = Vec::new();
    let calls = while_cpus_call(
        |cpu| calls_of(opt_smp_ret_target, cpu),
        || {
            for cycle in 0..SMP_CYCLES {
                if cycle % 2 == 0 {
                    optimization(false);
                    optimization(true);
                } else {
                    register_kprobe(&SMP_SHARED).unwrap();
                    unregister_kprobe(&SMP_SHARED).unwrap();
                }
                if !is_optimized(&SMP_RET.kp) {
                    not_optimized.push(cycle);
                }
            }
        },
    );
    let total: usize = calls.iter().sum();
    let (returns, missed) = (load(&SMP_RETURNS), SMP_RET.nmissed());
    println!();
    println!("  {SMP_CYCLES} cycles on CPU 0; calls {calls:?}: {returns} returns reported, {missed} missed");
    assert_eq!(load(&SMP_WRONG), 0, "a call or a return value went wrong");
    assert_eq!((returns, missed), (total, 0), "(returns, missed) for {total} calls");
    assert!(calls.iter().all(|&c| c >= SMP_MIN_CALLS), "a caller made fewer than {SMP_MIN_CALLS} calls");
    assert!(not_optimized.is_empty(), "cycles {not_optimized:?} left the kretprobe unoptimized");
    unregister_kretprobe(&SMP_RET).unwrap();
}

/// Pushes two words, then (at `opt_esp_target_probe`, a 5-byte `mov`: an
/// optimizable site) loads EAX and returns: to its caller only if a
/// handler took the two words off by raising ESP.
#[unsafe(naked)]
#[unsafe(no_mangle)]
extern "C" fn opt_esp_target() -> u32 {
    naked_asm!(
        "push 0x1111",
        "push 0x2222",
        ".global opt_esp_target_probe",
        "opt_esp_target_probe:",
        "mov eax, 0x600d",
        "ret",
    );
}

/// Calls `target` with a word pushed that it does not pop, and returns
/// what it returned: to its own caller only if the kretprobe's return
/// handler took that word off by raising ESP.
#[unsafe(naked)]
extern "C" fn call_leaving_a_word(target: extern "C" fn() -> u32) -> u32 {
    naked_asm!("mov eax, [esp + 4]", "push 0x3333", "call eax", "ret");
}

/// The kretprobe's target: returns 0x7e7.
#[unsafe(naked)]
#[unsafe(no_mangle)]
extern "C" fn opt_esp_ret_target() -> u32 {
    naked_asm!("mov eax, 0x7e7", "nop", "nop", "nop", "ret");
}

#[used]
static ESP_TARGETS: [extern "C" fn() -> u32; 2] = [opt_esp_target, opt_esp_ret_target];

fn raise_esp(_: &Kprobe, regs: &mut PtRegs) -> PreAction {
    HITS.fetch_add(1, SeqCst);
    regs.esp += 8;
    PreAction::Continue
}

fn raise_esp_on_return(_: &mut KretprobeInstance, regs: &mut PtRegs) {
    OTHER_HITS.fetch_add(1, SeqCst);
    regs.esp += 4;
}

static RAISING: Kprobe = Kprobe::new().symbol("opt_esp_target", 10).pre_handler(raise_esp);
static RAISING_ON_RETURN: Kretprobe = Kretprobe::new().symbol("opt_esp_ret_target").handler(raise_esp_on_return);

/// A handler that moves ESP (and returns 0) is honoured by every lane that
/// restores a frame itself: the detour's (optimized) and the `#BP` one
/// (boosted), and the trampoline's for a return handler. Each target
/// returns to its caller only if ESP moved; an unprobed call would not.
#[test_case]
fn a_handler_that_moves_esp_is_honoured_by_every_lane() {
    reset(&[&HITS, &OTHER_HITS]);
    assert_eq!(text_byte(label!(opt_esp_target_probe)), 0xb8, "the probe is at the mov");
    for optimized in [true, false] {
        optimization(optimized);
        register_kprobe(&RAISING).unwrap();
        assert_eq!(is_optimized(&RAISING), optimized);
        for _ in 0..CALLS {
            assert_eq!(black_box(opt_esp_target)(), 0x600d);
        }
        unregister_kprobe(&RAISING).unwrap();
        register_kretprobe(&RAISING_ON_RETURN).unwrap();
        assert_eq!(is_optimized(&RAISING_ON_RETURN.kp), optimized);
        for _ in 0..CALLS {
            assert_eq!(call_leaving_a_word(black_box(opt_esp_ret_target)), 0x7e7);
        }
        unregister_kretprobe(&RAISING_ON_RETURN).unwrap();
    }
    assert_eq!((load(&HITS), load(&OTHER_HITS)), (2 * CALLS as usize, 2 * CALLS as usize));
    assert_eq!((RAISING.nmissed(), RAISING_ON_RETURN.nmissed()), (0, 0));
    optimization(true);
}
