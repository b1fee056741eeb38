//! The kprobes API as users rely on it.
//!
//! Why: Linux's test_kprobes scenarios, multiprobes, enable/disable,
//! re-registration, every refusal, jprobes, fault handlers, and hits from
//! several tasks and the timer interrupt are what probe users depend on.
//! Every check is an exact count or value.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(probe_kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

use core::arch::naked_asm;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering::SeqCst};
use probe_kernel::kprobes::*;
use probe_kernel::testing::{entry_argument, text_byte};

probe_kernel::test_kernel_main!();

// ---------------------------------------------------------------- targets

/// `return a * 3 + 1`, starting with a 4-byte instruction.
#[unsafe(naked)]
#[unsafe(no_mangle)]
extern "C" fn kp_target(a: u32) -> u32 {
    naked_asm!(
        "mov eax, [esp + 4]", // 4 bytes: the probed instruction
        ".global kp_target_next",
        "kp_target_next:",
        "lea eax, [eax + eax*2 + 1]",
        "ret",
    );
}

/// A second target for batch registration: `return a + 7`.
#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn kp_target2(a: u32) -> u32 {
    core::hint::black_box(a) + 7
}

/// Where a redirecting pre-handler sends `kp_target`: `return 1000 + a`.
extern "C" fn replacement(a: u32) -> u32 {
    1000 + a
}

/// A function whose first instruction is 5 bytes long (`mov eax, imm32`).
#[unsafe(naked)]
#[unsafe(no_mangle)]
extern "C" fn kp_long_first() -> u32 {
    naked_asm!("mov eax, 0x12345678", "ret");
}

/// 140 one-byte instructions: room for more probe sites than the table has.
#[unsafe(naked)]
#[unsafe(no_mangle)]
extern "C" fn kp_nop_sled() {
    naked_asm!(".rept {n}", "nop", ".endr", "ret", n = const MAX_SITES + 1);
}

macro_rules! refused_instruction {
    ($name:ident, $($insn:literal),*) => {
        #[unsafe(naked)]
        #[unsafe(no_mangle)]
        extern "C" fn $name() {
            naked_asm!($($insn,)* "ret");
        }
    };
}
refused_instruction!(kp_has_int3, "int3");
refused_instruction!(kp_has_int80, "int 0x80");
refused_instruction!(kp_has_into, "into");
refused_instruction!(kp_has_iret, "iretd");
refused_instruction!(kp_has_hlt, "hlt");
refused_instruction!(kp_has_ud2, "ud2");
refused_instruction!(kp_has_far_jmp, "ljmp 0x08, 0");
refused_instruction!(kp_has_far_call, "lcall 0x08, 0");
refused_instruction!(kp_has_mov_ss, "mov ss, ax");
refused_instruction!(kp_has_pop_ss, "pop ss");
refused_instruction!(kp_has_invalid, ".byte 0x0f, 0x04");

/// Keeps the never-called targets in the image (they are found by name).
#[used]
static KEEP: [extern "C" fn(); 12] = [
    kp_has_int3,
    kp_has_int80,
    kp_has_into,
    kp_has_iret,
    kp_has_hlt,
    kp_has_ud2,
    kp_has_far_jmp,
    kp_has_far_call,
    kp_has_mov_ss,
    kp_has_pop_ss,
    kp_has_invalid,
    kp_nop_sled,
];
#[used]
static KEEP_LONG_FIRST: extern "C" fn() -> u32 = kp_long_first;

fn label(address: extern "C" fn(u32) -> u32) -> usize {
    address as *const () as usize
}

fn next_label() -> usize {
    unsafe extern "C" {
        static kp_target_next: u8;
    }
    &raw const kp_target_next as usize
}

// ------------------------------------------------- test_kprobes.c: one probe

static PRE_HITS: AtomicU32 = AtomicU32::new(0);
static POST_HITS: AtomicU32 = AtomicU32::new(0);
static PRE_EIP: AtomicUsize = AtomicUsize::new(0);
static POST_EIP: AtomicUsize = AtomicUsize::new(0);
static PRE_ARG: AtomicU32 = AtomicU32::new(0);
static POST_EAX: AtomicU32 = AtomicU32::new(0);

fn counting_pre(_probe: &Kprobe, regs: &mut PtRegs) -> PreAction {
    PRE_HITS.fetch_add(1, SeqCst);
    PRE_EIP.store(regs.eip as usize, SeqCst);
    PRE_ARG.store(entry_argument(regs, 0), SeqCst);
    PreAction::Continue
}

fn counting_post(_probe: &Kprobe, regs: &mut PtRegs) {
    POST_HITS.fetch_add(1, SeqCst);
    POST_EIP.store(regs.eip as usize, SeqCst);
    POST_EAX.store(regs.eax, SeqCst);
}

fn reset_counts() {
    for counter in [&PRE_HITS, &POST_HITS, &PRE_ARG, &POST_EAX] {
        counter.store(0, SeqCst);
    }
}

static ONE: Kprobe = Kprobe::new().symbol("kp_target", 0).pre_handler(counting_pre).post_handler(counting_post);

#[test_case]
fn one_probe_sees_eip_argument_and_result() {
    reset_counts();
    let original = text_byte(label(kp_target));
    register_kprobe(&ONE).unwrap();
    assert_eq!(ONE.addr(), Some(label(kp_target)));
    assert_eq!(text_byte(label(kp_target)), 0xcc);
    assert_eq!(kp_target(5), 16);
    assert_eq!(PRE_HITS.load(SeqCst), 1);
    assert_eq!(POST_HITS.load(SeqCst), 1);
    assert_eq!(PRE_EIP.load(SeqCst), label(kp_target), "pre sees the probed address");
    assert_eq!(PRE_ARG.load(SeqCst), 5);
    assert_eq!(POST_EIP.load(SeqCst), next_label(), "post sees the next instruction");
    assert_eq!(POST_EAX.load(SeqCst), 5, "post sees the probed instruction's effect");
    assert!(!ONE.flags().contains(KprobeFlags::BOOSTED), "a post handler needs the single-step");
    unregister_kprobe(&ONE).unwrap();
    assert_eq!(text_byte(label(kp_target)), original);
    assert!(ONE.flags().contains(KprobeFlags::GONE));
    assert_eq!(kp_target(5), 16);
    assert_eq!(PRE_HITS.load(SeqCst), 1, "no hits after unregistering");
}

// ------------------------------------------------ the lanes' host queries

#[test_case]
fn every_lane_query_is_a_gs_load_on_this_host() {
    // The kernel's host promises its CPU and task at GS offsets, and the
    // engine was initialized before the other CPUs started: all nine
    // queries (two #BP lanes, #DB, the optimized detour, the trampoline's
    // CPU and task, the kretprobe entry's task, the lean kretprobe entry's
    // CPU and task) were rewritten.
    assert_eq!(inlined_queries(), 9);
}

#[test_case]
fn the_kretprobe_entry_stamps_with_rdtsc_on_this_host() {
    // The kernel's timestamp is the time-stamp counter, and says so: both
    // kretprobe entry lanes read it in place of calling the host.
    assert_eq!(inlined_timestamps(), 2);
}

// ------------------------------------------------ handlers given as closures

// A handler may be a closure that captures nothing, as well as a function:
// the engine keeps a C-ABI adapter made for it, which the assembly lanes
// call directly (with a pre-handler alone the hit takes the boosted lane;
// with a post-handler too, the single-step lanes).
static CLOSURE_BOOSTED: Kprobe = Kprobe::new().symbol("kp_target", 0).pre_handler(|_: &Kprobe, regs: &mut PtRegs| {
    PRE_HITS.fetch_add(1, SeqCst);
    PRE_ARG.store(entry_argument(regs, 0), SeqCst);
    PreAction::Continue
});
static CLOSURE_STEPPED: Kprobe = Kprobe::new()
    .symbol("kp_target", 0)
    .pre_handler(|_: &Kprobe, regs: &mut PtRegs| {
        PRE_HITS.fetch_add(1, SeqCst);
        PRE_EIP.store(regs.eip as usize, SeqCst);
        PreAction::Continue
    })
    .post_handler(|_: &Kprobe, regs: &mut PtRegs| {
        POST_HITS.fetch_add(1, SeqCst);
        POST_EAX.store(regs.eax, SeqCst);
    });

#[test_case]
fn closures_that_capture_nothing_are_handlers() {
    reset_counts();
    register_kprobe(&CLOSURE_BOOSTED).unwrap();
    assert_eq!(kp_target(7), 22);
    assert_eq!(kp_target(7), 22);
    assert!(CLOSURE_BOOSTED.flags().contains(KprobeFlags::BOOSTED));
    assert_eq!((PRE_HITS.load(SeqCst), PRE_ARG.load(SeqCst)), (2, 7));
    unregister_kprobe(&CLOSURE_BOOSTED).unwrap();

    reset_counts();
    register_kprobe(&CLOSURE_STEPPED).unwrap();
    assert_eq!(kp_target(9), 28);
    unregister_kprobe(&CLOSURE_STEPPED).unwrap();
    assert_eq!((PRE_HITS.load(SeqCst), POST_HITS.load(SeqCst)), (1, 1));
    assert_eq!(PRE_EIP.load(SeqCst), label(kp_target));
    assert_eq!(POST_EAX.load(SeqCst), 9, "post sees the probed instruction's effect");
}

// ------------------------------------------------ test_kprobes.c: two probes

static BATCH_A: Kprobe = Kprobe::new().symbol("kp_target", 0).pre_handler(counting_pre);
static BATCH_B: Kprobe = Kprobe::new().symbol("kp_target2", 0).pre_handler(counting_pre);
static BATCH_BAD: Kprobe = Kprobe::new().symbol("no_such_function", 0).pre_handler(counting_pre);

#[test_case]
fn two_probes_registered_as_a_batch() {
    reset_counts();
    register_kprobes(&[&BATCH_A, &BATCH_B]).unwrap();
    assert_eq!(kp_target(1), 4);
    assert_eq!(kp_target2(1), 8);
    assert_eq!(PRE_HITS.load(SeqCst), 2);
    unregister_kprobes(&[&BATCH_A, &BATCH_B]);
    assert!(BATCH_A.flags().contains(KprobeFlags::GONE) && BATCH_B.flags().contains(KprobeFlags::GONE));
    assert_eq!(site_count(), 0);
}

#[test_case]
fn a_failing_batch_rolls_back_entirely() {
    reset_counts();
    let original = text_byte(label(kp_target));
    assert_eq!(register_kprobes(&[&BATCH_A, &BATCH_B, &BATCH_BAD]), Err(KprobeError::UnknownSymbol));
    assert!(BATCH_A.flags().contains(KprobeFlags::GONE));
    assert!(BATCH_B.flags().contains(KprobeFlags::GONE));
    assert_eq!(text_byte(label(kp_target)), original);
    assert_eq!(site_count(), 0);
    kp_target(1);
    kp_target2(1);
    assert_eq!(PRE_HITS.load(SeqCst), 0);
}

// ------------------------------------------ test_kprobes.c: recursion misses

fn recursing_pre(_probe: &Kprobe, _regs: &mut PtRegs) -> PreAction {
    PRE_HITS.fetch_add(1, SeqCst);
    assert_eq!(kp_target(2), 7, "the nested call runs normally");
    PreAction::Continue
}

fn recursing_post(_probe: &Kprobe, _regs: &mut PtRegs) {
    POST_HITS.fetch_add(1, SeqCst);
    assert_eq!(kp_target(3), 10);
}

static RECURSIVE: Kprobe = Kprobe::new().symbol("kp_target", 0).pre_handler(recursing_pre).post_handler(recursing_post);

#[test_case]
fn handlers_calling_the_probed_function_count_two_misses() {
    reset_counts();
    register_kprobe(&RECURSIVE).unwrap();
    assert_eq!(RECURSIVE.nmissed(), 0);
    assert_eq!(kp_target(4), 13);
    assert_eq!(PRE_HITS.load(SeqCst), 1);
    assert_eq!(POST_HITS.load(SeqCst), 1);
    assert_eq!(RECURSIVE.nmissed(), 2);
    unregister_kprobe(&RECURSIVE).unwrap();
}

// -------------------------------------------------------------- multiprobes

static ORDER: AtomicU32 = AtomicU32::new(0);

fn log(digit: u32) {
    let _ = ORDER.try_update(SeqCst, SeqCst, |order| Some(order * 10 + digit));
}

fn first_pre(_p: &Kprobe, _r: &mut PtRegs) -> PreAction {
    log(1);
    PreAction::Continue
}
fn second_pre(_p: &Kprobe, _r: &mut PtRegs) -> PreAction {
    log(2);
    PreAction::Continue
}
fn third_pre(_p: &Kprobe, _r: &mut PtRegs) -> PreAction {
    log(3);
    PreAction::Continue
}
fn redirecting_pre(_p: &Kprobe, regs: &mut PtRegs) -> PreAction {
    log(9);
    regs.eip = replacement as *const () as u32;
    PreAction::Redirected
}
fn second_post(_p: &Kprobe, _r: &mut PtRegs) {
    log(5);
}

static MULTI_1: Kprobe = Kprobe::new().symbol("kp_target", 0).pre_handler(first_pre);
static MULTI_2: Kprobe = Kprobe::new().symbol("kp_target", 0).pre_handler(second_pre).post_handler(second_post);
static MULTI_3: Kprobe = Kprobe::new().symbol("kp_target", 0).pre_handler(third_pre);
static MULTI_REDIRECT: Kprobe = Kprobe::new().symbol("kp_target", 0).pre_handler(redirecting_pre);

#[test_case]
fn multiprobes_run_in_registration_order_and_share_one_breakpoint() {
    ORDER.store(0, SeqCst);
    let original = text_byte(label(kp_target));
    register_kprobe(&MULTI_1).unwrap();
    register_kprobe(&MULTI_2).unwrap();
    register_kprobe(&MULTI_3).unwrap();
    assert_eq!(site_count(), 1);
    assert_eq!(kp_target(2), 7);
    assert_eq!(ORDER.load(SeqCst), 1235, "pre 1, 2, 3, then post 2");

    // Removing one of several leaves the others (and the breakpoint).
    unregister_kprobe(&MULTI_2).unwrap();
    assert!(MULTI_1.flags().contains(KprobeFlags::BOOSTED), "no post handler left: boosted");
    // And jump-optimized again: one jump for both.
    assert!(MULTI_1.flags().contains(KprobeFlags::OPTIMIZED) && MULTI_3.flags().contains(KprobeFlags::OPTIMIZED));
    assert_eq!(text_byte(label(kp_target)), 0xe9);
    ORDER.store(0, SeqCst);
    assert_eq!(kp_target(2), 7);
    assert_eq!(ORDER.load(SeqCst), 13);

    unregister_kprobe(&MULTI_1).unwrap();
    unregister_kprobe(&MULTI_3).unwrap();
    assert_eq!(text_byte(label(kp_target)), original, "original byte back after all left");
    assert_eq!(site_count(), 0);
}

#[test_case]
fn a_redirecting_pre_handler_stops_the_rest_and_skips_the_instruction() {
    ORDER.store(0, SeqCst);
    register_kprobes(&[&MULTI_1, &MULTI_REDIRECT, &MULTI_3]).unwrap();
    assert_eq!(kp_target(5), 1005, "ran the replacement instead");
    assert_eq!(ORDER.load(SeqCst), 19, "probe 3 did not run");
    unregister_kprobes(&[&MULTI_1, &MULTI_REDIRECT, &MULTI_3]);
    assert_eq!(kp_target(5), 16);
}

fn calls_target_pre(_p: &Kprobe, _r: &mut PtRegs) -> PreAction {
    kp_target2(0);
    PreAction::Continue
}
static MISS_OUTER: Kprobe = Kprobe::new().symbol("kp_target", 0).pre_handler(calls_target_pre);
static MISS_A: Kprobe = Kprobe::new().symbol("kp_target2", 0).pre_handler(first_pre);
static MISS_B: Kprobe = Kprobe::new().symbol("kp_target2", 0).pre_handler(second_pre);

#[test_case]
fn a_miss_counts_for_every_probe_at_the_address() {
    ORDER.store(0, SeqCst);
    register_kprobes(&[&MISS_OUTER, &MISS_A, &MISS_B]).unwrap();
    assert_eq!(kp_target(1), 4);
    assert_eq!(MISS_A.nmissed(), 1);
    assert_eq!(MISS_B.nmissed(), 1);
    assert_eq!(MISS_OUTER.nmissed(), 0);
    assert_eq!(ORDER.load(SeqCst), 0, "no handler ran for the reentrant hit");
    assert_eq!(kp_target2(1), 8);
    assert_eq!(ORDER.load(SeqCst), 12, "a direct hit runs both");
    unregister_kprobes(&[&MISS_OUTER, &MISS_A, &MISS_B]);
}

// ------------------------------------------------- enable, disable, again

static TOGGLED: Kprobe = Kprobe::new().symbol("kp_target", 0).pre_handler(counting_pre);

#[test_case]
fn disable_enable_and_register_again() {
    reset_counts();
    let original = text_byte(label(kp_target));
    register_kprobe(&TOGGLED).unwrap();
    disable_kprobe(&TOGGLED).unwrap();
    assert!(TOGGLED.flags().contains(KprobeFlags::DISABLED));
    assert_eq!(text_byte(label(kp_target)), original, "no enabled probe: disarmed");
    assert_eq!(kp_target(1), 4);
    assert_eq!(PRE_HITS.load(SeqCst), 0);
    enable_kprobe(&TOGGLED).unwrap();
    assert!(!TOGGLED.flags().contains(KprobeFlags::DISABLED));
    assert_eq!(kp_target(1), 4);
    assert_eq!(PRE_HITS.load(SeqCst), 1);
    unregister_kprobe(&TOGGLED).unwrap();
    assert_eq!(enable_kprobe(&TOGGLED), Err(KprobeError::NotRegistered));
    for round in 0..3 {
        register_kprobe(&TOGGLED).unwrap();
        assert_eq!(kp_target(1), 4);
        unregister_kprobe(&TOGGLED).unwrap();
        assert_eq!(PRE_HITS.load(SeqCst), 2 + round);
        assert_eq!(text_byte(label(kp_target)), original);
    }
}

// ---------------------------------------------------------------- refusals

fn refused(probe: &'static Kprobe, expected: KprobeError) {
    let sites = site_count();
    assert_eq!(register_kprobe(probe), Err(expected));
    assert!(probe.flags().contains(KprobeFlags::GONE), "a refused probe stays unregistered");
    assert_eq!(site_count(), sites, "a refusal changes nothing");
}

static NO_LOCATION: Kprobe = Kprobe::new().pre_handler(counting_pre);
static BOTH: Kprobe = Kprobe::new().address(kp_target as *const ()).symbol("kp_target", 0);
static UNKNOWN: Kprobe = Kprobe::new().symbol("no_such_function", 0);
static PAST_END: Kprobe = Kprobe::new().symbol("kp_target", 100);
static DATA_ADDRESS: Kprobe = Kprobe::new().address(&PRE_HITS as *const AtomicU32 as *const ());
static MID_INSTRUCTION: Kprobe = Kprobe::new().symbol("kp_long_first", 1);
static ENGINE: Kprobe = Kprobe::new().address(probe_kernel::kprobes::trap::int3_handler as *const ());
static TRAP_ENTRY: Kprobe = Kprobe::new().address(probe_kernel::arch::x86::trap::trap_common as *const ());
static BUILTIN: Kprobe = Kprobe::new().symbol("memcpy", 0);

#[test_case]
fn each_bad_location_is_refused_with_its_own_error() {
    refused(&NO_LOCATION, KprobeError::NoLocation);
    refused(&BOTH, KprobeError::AddressAndSymbol);
    refused(&UNKNOWN, KprobeError::UnknownSymbol);
    assert!(matches!(register_kprobe(&PAST_END), Err(KprobeError::OffsetPastFunction { .. })));
    refused(&DATA_ADDRESS, KprobeError::OutsideKernelText);
    refused(&MID_INSTRUCTION, KprobeError::NotInstructionBoundary);
    refused(&ENGINE, KprobeError::Blacklisted);
    refused(&TRAP_ENTRY, KprobeError::Blacklisted);
    refused(&BUILTIN, KprobeError::Blacklisted);
}

macro_rules! unsupported {
    ($($name:literal),*) => {{
        static PROBES: [Kprobe; [$($name),*].len()] = [$(Kprobe::new().symbol($name, 0)),*];
        for (probe, name) in PROBES.iter().zip([$($name),*]) {
            let sites = site_count();
            let result = register_kprobe(probe);
            assert!(matches!(result, Err(KprobeError::UnsupportedInstruction(_))), "{name}: {result:?}");
            assert_eq!(site_count(), sites);
        }
    }};
}

#[test_case]
fn instructions_that_cannot_run_out_of_line_are_refused() {
    unsupported!(
        "kp_has_int3",
        "kp_has_int80",
        "kp_has_into",
        "kp_has_iret",
        "kp_has_hlt",
        "kp_has_ud2",
        "kp_has_far_jmp",
        "kp_has_far_call",
        "kp_has_mov_ss",
        "kp_has_pop_ss"
    );
    static INVALID: Kprobe = Kprobe::new().symbol("kp_has_invalid", 0);
    refused(&INVALID, KprobeError::InvalidInstruction);
}

static TWICE: Kprobe = Kprobe::new().symbol("kp_target", 0);

#[test_case]
fn double_registration_and_unregistered_probes() {
    register_kprobe(&TWICE).unwrap();
    assert_eq!(register_kprobe(&TWICE), Err(KprobeError::AlreadyRegistered));
    assert_eq!(site_count(), 1);
    unregister_kprobe(&TWICE).unwrap();
    assert_eq!(unregister_kprobe(&TWICE), Err(KprobeError::NotRegistered));
    assert_eq!(disable_kprobe(&TWICE), Err(KprobeError::NotRegistered));
}

static SLED: [Kprobe; MAX_SITES + 1] = {
    let mut probes = [const { Kprobe::new() }; MAX_SITES + 1];
    let mut i = 0;
    while i <= MAX_SITES {
        probes[i] = Kprobe::new().symbol("kp_nop_sled", i);
        i += 1;
    }
    probes
};

#[test_case]
fn the_site_table_fills_up_with_a_typed_error() {
    for probe in &SLED[..MAX_SITES] {
        register_kprobe(probe).unwrap();
    }
    assert_eq!(site_count(), MAX_SITES);
    assert_eq!(register_kprobe(&SLED[MAX_SITES]), Err(KprobeError::TableFull("probe sites")));
    kp_nop_sled();
    for probe in &SLED[..MAX_SITES] {
        unregister_kprobe(probe).unwrap();
    }
    assert_eq!(site_count(), 0);
    register_kprobe(&SLED[MAX_SITES]).unwrap();
    unregister_kprobe(&SLED[MAX_SITES]).unwrap();
}

static INNER: Kprobe = Kprobe::new().symbol("kp_target2", 0);
static REGISTER_RESULT: AtomicUsize = AtomicUsize::new(0);

fn registering_pre(_p: &Kprobe, _r: &mut PtRegs) -> PreAction {
    let refused = register_kprobe(&INNER) == Err(KprobeError::InProbeHandler);
    REGISTER_RESULT.store(refused as usize + 1, SeqCst);
    PreAction::Continue
}
static REGISTERING: Kprobe = Kprobe::new().symbol("kp_target", 0).pre_handler(registering_pre);

#[test_case]
fn registration_from_a_handler_is_refused() {
    register_kprobe(&REGISTERING).unwrap();
    kp_target(0);
    unregister_kprobe(&REGISTERING).unwrap();
    assert_eq!(REGISTER_RESULT.load(SeqCst), 2);
    assert!(INNER.flags().contains(KprobeFlags::GONE));
}

// ------------------------------------------------------------------ jprobes

#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn kp_jtarget(a: u32, b: u32, c: u32) -> u32 {
    core::hint::black_box(a) * 100 + b * 10 + c
}

static JARGS: AtomicU32 = AtomicU32::new(0);

extern "C" fn jhandler(mut a: u32, b: u32, c: u32) -> u32 {
    JARGS.store(a * 100 + b * 10 + c, SeqCst);
    a = core::hint::black_box(9); // clobbering an argument slot must not leak
    core::hint::black_box(a);
    jprobe_return()
}

static JP: Jprobe = Jprobe::new(jhandler as *const ()).symbol("kp_jtarget");
static JP2: Jprobe = Jprobe::new(jhandler as *const ()).symbol("kp_jtarget");
static JP_MID: Jprobe = Jprobe::new(jhandler as *const ()).address(kp_target_next_address());

const fn kp_target_next_address() -> *const () {
    (kp_target as *const ()).wrapping_byte_add(4)
}

#[test_case]
fn a_jprobe_sees_the_arguments_and_leaves_them_intact() {
    JARGS.store(0, SeqCst);
    register_jprobe(&JP).unwrap();
    assert_eq!(kp_jtarget(1, 2, 3), 123);
    assert_eq!(JARGS.load(SeqCst), 123);
    assert_eq!(kp_jtarget(4, 5, 6), 456);
    assert_eq!(JARGS.load(SeqCst), 456);
    assert_eq!(register_jprobe(&JP2), Err(KprobeError::JprobeExists));
    unregister_jprobe(&JP).unwrap();
    assert_eq!(kp_jtarget(7, 8, 9), 789);
    assert_eq!(JARGS.load(SeqCst), 456);
    assert_eq!(register_jprobe(&JP_MID), Err(KprobeError::NotFunctionEntry));
}

static JP_WITH_KPROBE: Kprobe =
    Kprobe::new().symbol("kp_jtarget", 0).pre_handler(counting_pre).post_handler(counting_post);

#[test_case]
fn a_jprobe_shares_its_address_with_a_kprobe() {
    reset_counts();
    register_jprobe(&JP).unwrap();
    register_kprobe(&JP_WITH_KPROBE).unwrap();
    assert_eq!(kp_jtarget(3, 2, 1), 321);
    assert_eq!(JARGS.load(SeqCst), 321);
    assert_eq!((PRE_HITS.load(SeqCst), POST_HITS.load(SeqCst)), (1, 1));
    unregister_jprobe(&JP).unwrap();
    unregister_kprobe(&JP_WITH_KPROBE).unwrap();
}

// ----------------------------------------------------------- fault handlers

/// Reads `[ecx]`; a fault handler may resume at `kp_fault_resume`.
#[unsafe(naked)]
#[unsafe(no_mangle)]
extern "C" fn kp_read(address: u32) -> u32 {
    naked_asm!("mov ecx, [esp + 4]", "mov eax, [ecx]", ".global kp_fault_resume", "kp_fault_resume:", "ret",);
}

static FAULTS: AtomicU32 = AtomicU32::new(0);
static FAULT_TRAP: AtomicU32 = AtomicU32::new(0);

fn faulting_pre(_p: &Kprobe, _r: &mut PtRegs) -> PreAction {
    kp_read(0x123);
    PreAction::Continue
}

fn fixing_fault(_p: &Kprobe, regs: &mut PtRegs, trap: u8) -> FaultAction {
    unsafe extern "C" {
        static kp_fault_resume: u8;
    }
    FAULTS.fetch_add(1, SeqCst);
    FAULT_TRAP.store(trap as u32, SeqCst);
    regs.eax = 0xdead;
    regs.eip = &raw const kp_fault_resume as u32;
    FaultAction::Handled
}

static FAULTY: Kprobe = Kprobe::new().symbol("kp_target", 0).pre_handler(faulting_pre).fault_handler(fixing_fault);

#[test_case]
fn a_fault_in_a_handler_goes_to_the_fault_handler() {
    register_kprobe(&FAULTY).unwrap();
    assert_eq!(kp_target(2), 7);
    assert_eq!(FAULTS.load(SeqCst), 1);
    assert_eq!(FAULT_TRAP.load(SeqCst), 14);
    unregister_kprobe(&FAULTY).unwrap();
}

// ----------------------------------------------- tasks and timer interrupt

static TASK_PROBE: Kprobe = Kprobe::new().symbol("kp_target2", 0).pre_handler(counting_pre);

fn worker(rounds: usize) -> usize {
    let mut sum = 0;
    for i in 0..rounds {
        sum += kp_target2(i as u32) as usize;
        if i % 8 == 0 {
            probe_kernel::task::yield_now();
        }
    }
    sum
}

#[test_case]
fn hits_from_several_tasks_are_counted_exactly() {
    reset_counts();
    register_kprobe(&TASK_PROBE).unwrap();
    let ids: [_; 3] = core::array::from_fn(|_| probe_kernel::task::spawn(worker, 200).unwrap());
    let expected: usize = (0..200).map(|i| i + 7).sum();
    for id in ids {
        assert_eq!(probe_kernel::task::join(id), expected);
    }
    assert_eq!(PRE_HITS.load(SeqCst), 600);
    assert_eq!(TASK_PROBE.nmissed(), 0);
    unregister_kprobe(&TASK_PROBE).unwrap();
}

static TICK_CALLS: AtomicU32 = AtomicU32::new(0);

fn on_tick() {
    if TICK_CALLS.load(SeqCst) < 20 {
        TICK_CALLS.fetch_add(1, SeqCst);
        assert_eq!(kp_target2(1), 8);
    }
}

#[test_case]
fn hits_from_the_timer_interrupt_are_counted_exactly() {
    reset_counts();
    TICK_CALLS.store(0, SeqCst);
    register_kprobe(&TASK_PROBE).unwrap();
    probe_kernel::task::set_tick_hook(Some(on_tick));
    while TICK_CALLS.load(SeqCst) < 20 {
        probe_kernel::task::sleep(1);
    }
    probe_kernel::task::set_tick_hook(None);
    unregister_kprobe(&TASK_PROBE).unwrap();
    assert_eq!(PRE_HITS.load(SeqCst), 20);
    assert_eq!(TASK_PROBE.nmissed(), 0);
}

// ------------------------------------------- the fast lanes (issue 10)
//
// A lone probe with a pre-handler at a boosted or jump-optimized site is
// taken by an assembly fast lane (`arch::imp::fastpath`, and the detour's
// entry). It must keep every rule of the generic path: the handler sees
// the probed address and a breakpoint's frame, runs in probe context, a
// hit from inside it is a counted miss, and a redirect is honoured.

static LANE_SEEN: AtomicUsize = AtomicUsize::new(0);
static LANE_VECTOR: AtomicU32 = AtomicU32::new(0);
static LANE_ERROR: AtomicU32 = AtomicU32::new(0);
static LANE_CONTEXT: AtomicU32 = AtomicU32::new(0);
static LANE_NESTED: AtomicU32 = AtomicU32::new(0);

fn lane_pre(_probe: &Kprobe, regs: &mut PtRegs) -> PreAction {
    PRE_HITS.fetch_add(1, SeqCst);
    LANE_SEEN.store(regs.eip as usize, SeqCst);
    LANE_VECTOR.store(regs.vector, SeqCst);
    LANE_ERROR.store(regs.error_code, SeqCst);
    LANE_CONTEXT.store(in_probe_context() as u32, SeqCst);
    // A hit from inside the handler: a miss, the call itself runs normally.
    LANE_NESTED.store(kp_target(2), SeqCst);
    if entry_argument(regs, 0) == 99 {
        regs.eip = replacement as *const () as u32;
        return PreAction::Redirected;
    }
    PreAction::Continue
}

static LANE: Kprobe = Kprobe::new().symbol("kp_target", 0).pre_handler(lane_pre);

/// One round of the lane's rules with `LANE` registered as `flag` says.
fn lane_round(flag: KprobeFlags) {
    reset_counts();
    register_kprobe(&LANE).unwrap();
    assert!(LANE.flags().contains(flag), "{:?}", LANE.flags());
    assert_eq!(kp_target(4), 13);
    assert_eq!(PRE_HITS.load(SeqCst), 1, "the handler ran once");
    assert_eq!(LANE_SEEN.load(SeqCst), label(kp_target), "EIP is the probed address");
    assert_eq!((LANE_VECTOR.load(SeqCst), LANE_ERROR.load(SeqCst)), (3, 0), "a breakpoint's frame");
    assert_eq!(LANE_CONTEXT.load(SeqCst), 1, "in probe context");
    assert_eq!(LANE_NESTED.load(SeqCst), 7, "the nested call ran normally");
    assert_eq!(LANE.nmissed(), 1, "the nested hit was a miss");
    // Redirected: the replacement runs instead.
    assert_eq!(kp_target(99), 1099);
    assert_eq!(PRE_HITS.load(SeqCst), 2);
    assert_eq!(LANE.nmissed(), 2);
    // And the lane leaves the CPU idle: a plain call hits again.
    assert_eq!(kp_target(5), 16);
    assert_eq!(PRE_HITS.load(SeqCst), 3);
    unregister_kprobe(&LANE).unwrap();
    assert_eq!(kp_target(5), 16);
    assert_eq!(PRE_HITS.load(SeqCst), 3);
}

#[test_case]
fn the_int3_fast_lane_keeps_the_generic_rules() {
    set_optimization(false).unwrap();
    lane_round(KprobeFlags::BOOSTED);
    set_optimization(true).unwrap();
}

#[test_case]
fn the_optimized_fast_lane_keeps_the_generic_rules() {
    set_optimization(true).unwrap();
    lane_round(KprobeFlags::OPTIMIZED);
}
