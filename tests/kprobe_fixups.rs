//! Every fix-up class of the kprobes engine, with exact results.
//!
//! Why: the engine runs a probed instruction as a copy in a slot, at another
//! address, and then repairs what the move broke (EIP after relative jumps and
//! calls, the pushed return address of a call, the pushed TF/IF of `pushfd`,
//! IF after `cli`/`sti`/`popfd`, the per-iteration traps of `rep` strings).
//! Each case here is a small asm routine with its instruction of interest at a
//! global label. The routine runs unprobed, then with a single-stepped probe
//! (pre- and post-handler), then with a boosted one (pre-handler only), then
//! with both at once; every run must leave identical results, the handlers
//! must see the probe address before and the true continuation after (with
//! the interrupted ESP and the stack already repaired), hit counts must be
//! exact, and unregistering must restore the original bytes.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(probe_kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;
use core::arch::naked_asm;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use probe_kernel::arch::TrapOutcome;
use probe_kernel::arch::cpu::{self, EFLAGS_IF, EFLAGS_TF};
use probe_kernel::arch::x86::kprobes::Fixup;
use probe_kernel::arch::x86::trap::{HookKind, set_hook};
use probe_kernel::kprobes::{Kprobe, KprobeFlags, PreAction, PtRegs, can_probe, register_kprobe, unregister_kprobe};
use probe_kernel::testing::{leak, text_byte};

probe_kernel::test_kernel_main!();

/// EFLAGS.CF.
const EFLAGS_CF: u32 = 1 << 0;

// ---------------------------------------------------------------------------
// What a routine leaves behind
// ---------------------------------------------------------------------------

/// Written by every routine's epilogue: EAX, ECX, EDX, EFLAGS, then up to
/// four routine-specific words.
static OUT: [AtomicU32; 8] = [const { AtomicU32::new(0) }; 8];
/// ESP right before the probed instruction (every routine stores it there).
static PROBE_ESP: AtomicU32 = AtomicU32::new(0);

/// 64 source bytes then 64 destination bytes for the string instructions
/// (and a word to load for `mov eax, [ecx + 4]`).
#[repr(C, align(16))]
struct Scratch(UnsafeCell<[u8; 128]>);
// SAFETY: only the test's single task touches it, between runs or from the
// routine it calls.
unsafe impl Sync for Scratch {}
static SCRATCH: Scratch = Scratch(UnsafeCell::new([0; 128]));
const DESTINATION: usize = 64;

/// A memory operand for `call dword ptr [mem]`.
static CALL_SLOT: unsafe extern "C" fn() -> u32 = fx_callee;
/// A memory operand for `jmp dword ptr [mem]` (the routine fills it).
static JUMP_SLOT: AtomicU32 = AtomicU32::new(0);

/// Everything a run can change that the test can see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Snapshot {
    returned: u32,
    eax: u32,
    ecx: u32,
    edx: u32,
    eflags: u32,
    extra: [u32; 4],
    memory: [u8; 128],
}

fn scratch_address() -> usize {
    SCRATCH.0.get() as usize
}

fn reset_state() {
    for word in &OUT {
        word.store(0, Ordering::SeqCst);
    }
    PROBE_ESP.store(0, Ordering::SeqCst);
    JUMP_SLOT.store(0, Ordering::SeqCst);
    let pattern: [u8; 128] =
        core::array::from_fn(|i| if i < DESTINATION { (i as u8).wrapping_mul(7).wrapping_add(3) } else { 0 });
    // SAFETY: no routine is running; the buffer is ours.
    unsafe { core::ptr::write_volatile(SCRATCH.0.get(), pattern) };
}

fn snapshot(returned: u32) -> Snapshot {
    let word = |i: usize| OUT[i].load(Ordering::SeqCst);
    Snapshot {
        returned,
        eax: word(0),
        ecx: word(1),
        edx: word(2),
        eflags: word(3),
        extra: [word(4), word(5), word(6), word(7)],
        // SAFETY: the routine has returned; reading our own buffer.
        memory: unsafe { core::ptr::read_volatile(SCRATCH.0.get()) },
    }
}

// ---------------------------------------------------------------------------
// What the handlers saw
// ---------------------------------------------------------------------------

const HIT_RECORDS: usize = 8;
static PRE_HITS: AtomicUsize = AtomicUsize::new(0);
static POST_HITS: AtomicUsize = AtomicUsize::new(0);
static PRE_EIP: [AtomicU32; HIT_RECORDS] = [const { AtomicU32::new(0) }; HIT_RECORDS];
static POST_EIP: [AtomicU32; HIT_RECORDS] = [const { AtomicU32::new(0) }; HIT_RECORDS];
static POST_ESP: [AtomicU32; HIT_RECORDS] = [const { AtomicU32::new(0) }; HIT_RECORDS];
/// The word at the post-handler's ESP (a pushed return address or flags).
static POST_STACK_TOP: [AtomicU32; HIT_RECORDS] = [const { AtomicU32::new(0) }; HIT_RECORDS];
/// The registers of the first pre-handler call: eax ecx edx ebx esi edi ebp esp eip eflags.
static FIRST_PRE: [AtomicU32; 10] = [const { AtomicU32::new(0) }; 10];

fn pre(_probe: &Kprobe, regs: &mut PtRegs) -> PreAction {
    let hit = PRE_HITS.fetch_add(1, Ordering::SeqCst);
    if hit < HIT_RECORDS {
        PRE_EIP[hit].store(regs.eip, Ordering::SeqCst);
    }
    if hit == 0 {
        let words =
            [regs.eax, regs.ecx, regs.edx, regs.ebx, regs.esi, regs.edi, regs.ebp, regs.esp, regs.eip, regs.eflags];
        for (slot, value) in FIRST_PRE.iter().zip(words) {
            slot.store(value, Ordering::SeqCst);
        }
    }
    PreAction::Continue
}

fn post(_probe: &Kprobe, regs: &mut PtRegs) {
    let hit = POST_HITS.fetch_add(1, Ordering::SeqCst);
    if hit < HIT_RECORDS {
        POST_EIP[hit].store(regs.eip, Ordering::SeqCst);
        POST_ESP[hit].store(regs.esp, Ordering::SeqCst);
        // SAFETY: `esp` is the probed code's stack pointer; its top word is mapped.
        let top = unsafe { core::ptr::read_volatile(regs.esp as *const u32) };
        POST_STACK_TOP[hit].store(top, Ordering::SeqCst);
    }
}

fn reset_hits() {
    PRE_HITS.store(0, Ordering::SeqCst);
    POST_HITS.store(0, Ordering::SeqCst);
    for records in [&PRE_EIP, &POST_EIP, &POST_ESP, &POST_STACK_TOP] {
        for word in records {
            word.store(0, Ordering::SeqCst);
        }
    }
    for word in &FIRST_PRE {
        word.store(0, Ordering::SeqCst);
    }
}

/// The registers the first pre-handler call saw.
#[derive(Clone, Copy, Debug)]
struct SeenRegs {
    eax: u32,
    ecx: u32,
    edx: u32,
    esi: u32,
    edi: u32,
    esp: u32,
    eflags: u32,
}

fn first_pre_regs() -> SeenRegs {
    let word = |i: usize| FIRST_PRE[i].load(Ordering::SeqCst);
    SeenRegs { eax: word(0), ecx: word(1), edx: word(2), esi: word(4), edi: word(5), esp: word(7), eflags: word(9) }
}

fn records(words: &[AtomicU32; HIT_RECORDS], hits: usize) -> Vec<u32> {
    words.iter().take(hits.min(HIT_RECORDS)).map(|w| w.load(Ordering::SeqCst)).collect()
}

// ---------------------------------------------------------------------------
// Asm helpers
// ---------------------------------------------------------------------------

/// The address of a global asm label.
macro_rules! label {
    ($name:ident) => {{
        unsafe extern "C" {
            static $name: u8;
        }
        &raw const $name as usize
    }};
}

/// Declares a global label in a naked function's asm.
macro_rules! global {
    ($name:ident) => {
        concat!(".global ", stringify!($name), "\n", stringify!($name), ":")
    };
}

/// Stores ESP for the pre-handler check; placed right before the probed
/// instruction (it changes no flags).
macro_rules! note_esp {
    () => {
        "mov dword ptr [{probe_esp}], esp"
    };
}

/// Every routine's epilogue: EAX, ECX, EDX and EFLAGS into `OUT`.
macro_rules! record {
    () => {
        concat!(
            "mov dword ptr [{out}], eax\n",
            "mov dword ptr [{out} + 4], ecx\n",
            "mov dword ptr [{out} + 8], edx\n",
            "pushfd\n",
            "pop dword ptr [{out} + 12]",
        )
    };
}

type Routine = unsafe extern "C" fn(u32) -> u32;

// ---------------------------------------------------------------------------
// The routines (cdecl: one u32 argument at [esp + 4], result in EAX; EBX,
// ESI, EDI and EBP are preserved). Stack at entry:
//
//     esp + 4:  argument
//     esp:      return address
// ---------------------------------------------------------------------------

/// Plain: `add eax, ecx`.
#[unsafe(naked)]
unsafe extern "C" fn fx_plain_add(_arg: u32) -> u32 {
    naked_asm!(
        "mov eax, 0x1000",
        "mov ecx, 0x1234",
        "mov edx, 0x55",
        note_esp!(),
        global!(fx_plain_add_at),
        "add eax, ecx",
        global!(fx_plain_add_next),
        record!(),
        "ret",
        out = sym OUT,
        probe_esp = sym PROBE_ESP,
    );
}

/// Plain: `lea eax, [ecx + edx*4 + 8]`.
#[unsafe(naked)]
unsafe extern "C" fn fx_plain_lea(_arg: u32) -> u32 {
    naked_asm!(
        "mov ecx, 0x1234",
        "mov edx, 0x10",
        note_esp!(),
        global!(fx_plain_lea_at),
        "lea eax, [ecx + edx*4 + 8]",
        global!(fx_plain_lea_next),
        record!(),
        "ret",
        out = sym OUT,
        probe_esp = sym PROBE_ESP,
    );
}

/// Plain: a memory load, `mov eax, [ecx + 4]` from the scratch buffer.
#[unsafe(naked)]
unsafe extern "C" fn fx_plain_load(_arg: u32) -> u32 {
    naked_asm!(
        "lea ecx, [{scratch}]",
        note_esp!(),
        global!(fx_plain_load_at),
        "mov eax, dword ptr [ecx + 4]",
        global!(fx_plain_load_next),
        record!(),
        "ret",
        out = sym OUT,
        probe_esp = sym PROBE_ESP,
        scratch = sym SCRATCH,
    );
}

/// RelativeJump: `jmp rel8` over an instruction.
#[unsafe(naked)]
unsafe extern "C" fn fx_jmp8(_arg: u32) -> u32 {
    naked_asm!(
        "mov eax, 1",
        note_esp!(),
        global!(fx_jmp8_at),
        "jmp 2f",
        "mov eax, 0xdead",
        "2:",
        global!(fx_jmp8_target),
        "add eax, 2",
        record!(),
        "ret",
        out = sym OUT,
        probe_esp = sym PROBE_ESP,
    );
}

/// RelativeJump: `jmp rel32` (encoded by hand so it stays rel32).
#[unsafe(naked)]
unsafe extern "C" fn fx_jmp32(_arg: u32) -> u32 {
    naked_asm!(
        "mov eax, 1",
        note_esp!(),
        global!(fx_jmp32_at),
        ".byte 0xe9",
        ".long 2f - 3f",
        "3:",
        "mov eax, 0xdead",
        "2:",
        global!(fx_jmp32_target),
        "add eax, 2",
        record!(),
        "ret",
        out = sym OUT,
        probe_esp = sym PROBE_ESP,
    );
}

/// ConditionalJump, short: `je rel8`, taken when the argument is 0.
#[unsafe(naked)]
unsafe extern "C" fn fx_jcc8(_arg: u32) -> u32 {
    naked_asm!(
        "mov ecx, dword ptr [esp + 4]",
        "mov eax, 1",
        "cmp ecx, 0",
        note_esp!(),
        global!(fx_jcc8_at),
        "je 2f",
        global!(fx_jcc8_next),
        "mov eax, 10",
        "jmp 3f",
        "2:",
        global!(fx_jcc8_target),
        "mov eax, 20",
        "3:",
        record!(),
        "ret",
        out = sym OUT,
        probe_esp = sym PROBE_ESP,
    );
}

/// ConditionalJump, near: `je rel32` (encoded by hand), taken when the argument is 0.
#[unsafe(naked)]
unsafe extern "C" fn fx_jcc32(_arg: u32) -> u32 {
    naked_asm!(
        "mov ecx, dword ptr [esp + 4]",
        "mov eax, 1",
        "cmp ecx, 0",
        note_esp!(),
        global!(fx_jcc32_at),
        ".byte 0x0f, 0x84",
        ".long 2f - 4f",
        "4:",
        global!(fx_jcc32_next),
        "mov eax, 10",
        "jmp 3f",
        "2:",
        global!(fx_jcc32_target),
        "mov eax, 20",
        "3:",
        record!(),
        "ret",
        out = sym OUT,
        probe_esp = sym PROBE_ESP,
    );
}

/// LoopOrJecxz: `loop` back `argument` times (taken, ..., not taken).
#[unsafe(naked)]
unsafe extern "C" fn fx_loop(_arg: u32) -> u32 {
    naked_asm!(
        "mov ecx, dword ptr [esp + 4]",
        "xor eax, eax",
        "2:",
        global!(fx_loop_target),
        "add eax, 3",
        note_esp!(),
        global!(fx_loop_at),
        "loop 2b",
        global!(fx_loop_next),
        record!(),
        "ret",
        out = sym OUT,
        probe_esp = sym PROBE_ESP,
    );
}

/// LoopOrJecxz: `jecxz`, taken when the argument is 0.
#[unsafe(naked)]
unsafe extern "C" fn fx_jecxz(_arg: u32) -> u32 {
    naked_asm!(
        "mov ecx, dword ptr [esp + 4]",
        "mov eax, 1",
        note_esp!(),
        global!(fx_jecxz_at),
        "jecxz 2f",
        global!(fx_jecxz_next),
        "mov eax, 10",
        "2:",
        global!(fx_jecxz_target),
        "add eax, 5",
        record!(),
        "ret",
        out = sym OUT,
        probe_esp = sym PROBE_ESP,
    );
}

/// The callee of the call cases: returns the return address it finds at
/// [esp] in EAX, and in EDX how far below the caller's entry ESP (held in
/// EDX by the caller) its own ESP is.
#[unsafe(naked)]
unsafe extern "C" fn fx_callee() -> u32 {
    naked_asm!("mov eax, dword ptr [esp]", "sub edx, esp", "ret");
}

/// RelativeCall: `call rel32`.
#[unsafe(naked)]
unsafe extern "C" fn fx_call_rel(_arg: u32) -> u32 {
    naked_asm!(
        "mov edx, esp",
        "mov ecx, 0x1234",
        note_esp!(),
        global!(fx_call_rel_at),
        "call {callee}",
        global!(fx_call_rel_next),
        record!(),
        "ret",
        out = sym OUT,
        probe_esp = sym PROBE_ESP,
        callee = sym fx_callee,
    );
}

/// IndirectCall: `call eax`.
#[unsafe(naked)]
unsafe extern "C" fn fx_call_reg(_arg: u32) -> u32 {
    naked_asm!(
        "mov edx, esp",
        "lea eax, [{callee}]",
        note_esp!(),
        global!(fx_call_reg_at),
        "call eax",
        global!(fx_call_reg_next),
        record!(),
        "ret",
        out = sym OUT,
        probe_esp = sym PROBE_ESP,
        callee = sym fx_callee,
    );
}

/// IndirectCall: `call dword ptr [mem]`.
#[unsafe(naked)]
unsafe extern "C" fn fx_call_mem(_arg: u32) -> u32 {
    naked_asm!(
        "mov edx, esp",
        "xor eax, eax",
        note_esp!(),
        global!(fx_call_mem_at),
        "call dword ptr [{slot}]",
        global!(fx_call_mem_next),
        record!(),
        "ret",
        out = sym OUT,
        probe_esp = sym PROBE_ESP,
        slot = sym CALL_SLOT,
    );
}

/// RelativeJump backwards: `jmp rel8` to an earlier instruction.
#[unsafe(naked)]
unsafe extern "C" fn fx_jmp_back(_arg: u32) -> u32 {
    naked_asm!(
        "mov eax, 1",
        "jmp 3f",
        "2:",
        global!(fx_jmp_back_target),
        "add eax, 2",
        record!(),
        "ret",
        "3:",
        note_esp!(),
        global!(fx_jmp_back_at),
        "jmp 2b",
        "mov eax, 0xdead",
        "ret",
        out = sym OUT,
        probe_esp = sym PROBE_ESP,
    );
}

/// ConditionalJump backwards: `dec ecx; jnz rel8` counting the argument down
/// (taken, ..., not taken).
#[unsafe(naked)]
unsafe extern "C" fn fx_jcc_back(_arg: u32) -> u32 {
    naked_asm!(
        "mov ecx, dword ptr [esp + 4]",
        "xor eax, eax",
        "2:",
        global!(fx_jcc_back_target),
        "add eax, 5",
        "dec ecx",
        note_esp!(),
        global!(fx_jcc_back_at),
        "jnz 2b",
        global!(fx_jcc_back_next),
        record!(),
        "ret",
        out = sym OUT,
        probe_esp = sym PROBE_ESP,
    );
}

/// RelativeCall backwards: `call rel32` to a callee placed before the call,
/// in the same routine (same contract as [`fx_callee`]).
#[unsafe(naked)]
unsafe extern "C" fn fx_call_back(_arg: u32) -> u32 {
    naked_asm!(
        "jmp 3f",
        "2:",
        global!(fx_call_back_callee),
        "mov eax, dword ptr [esp]",
        "sub edx, esp",
        "ret",
        "3:",
        "mov edx, esp",
        note_esp!(),
        global!(fx_call_back_at),
        "call 2b",
        global!(fx_call_back_next),
        record!(),
        "ret",
        out = sym OUT,
        probe_esp = sym PROBE_ESP,
    );
}

/// IndirectJump: `jmp ecx`.
#[unsafe(naked)]
unsafe extern "C" fn fx_jmp_reg(_arg: u32) -> u32 {
    naked_asm!(
        "mov eax, 1",
        "lea ecx, [fx_jmp_reg_target]",
        note_esp!(),
        global!(fx_jmp_reg_at),
        "jmp ecx",
        "mov eax, 0xdead",
        "2:",
        global!(fx_jmp_reg_target),
        "add eax, 2",
        record!(),
        "ret",
        out = sym OUT,
        probe_esp = sym PROBE_ESP,
    );
}

/// IndirectJump: `jmp dword ptr [mem]`.
#[unsafe(naked)]
unsafe extern "C" fn fx_jmp_mem(_arg: u32) -> u32 {
    naked_asm!(
        "mov eax, 1",
        "lea ecx, [fx_jmp_mem_target]",
        "mov dword ptr [{slot}], ecx",
        note_esp!(),
        global!(fx_jmp_mem_at),
        "jmp dword ptr [{slot}]",
        "mov eax, 0xdead",
        "2:",
        global!(fx_jmp_mem_target),
        "add eax, 2",
        record!(),
        "ret",
        out = sym OUT,
        probe_esp = sym PROBE_ESP,
        slot = sym JUMP_SLOT,
    );
}

/// Return: the callee whose `ret` is probed.
#[unsafe(naked)]
unsafe extern "C" fn fx_ret_inner() -> u32 {
    naked_asm!(
        "mov eax, 0x600d",
        note_esp!(),
        global!(fx_ret_at),
        "ret",
        probe_esp = sym PROBE_ESP,
    );
}

/// Return: calls [`fx_ret_inner`]; EDX ends as the ESP difference (0).
#[unsafe(naked)]
unsafe extern "C" fn fx_ret(_arg: u32) -> u32 {
    naked_asm!(
        "mov edx, esp",
        "call {inner}",
        global!(fx_ret_back),
        "sub edx, esp",
        record!(),
        "ret",
        out = sym OUT,
        inner = sym fx_ret_inner,
    );
}

/// Return: a callee that reads two stacked arguments and ends with `ret 8`.
#[unsafe(naked)]
unsafe extern "C" fn fx_ret_imm_inner() -> u32 {
    naked_asm!(
        "mov eax, dword ptr [esp + 4]",
        "mov ecx, dword ptr [esp + 8]",
        note_esp!(),
        global!(fx_ret_imm_at),
        "ret 8",
        probe_esp = sym PROBE_ESP,
    );
}

/// Return: pushes two arguments and calls [`fx_ret_imm_inner`]; EDX ends as
/// the ESP difference (0: the callee popped its arguments).
#[unsafe(naked)]
unsafe extern "C" fn fx_ret_imm(_arg: u32) -> u32 {
    naked_asm!(
        "mov edx, esp",
        "push 0x11",
        "push 0x22",
        "call {inner}",
        global!(fx_ret_imm_back),
        "sub edx, esp",
        record!(),
        "ret",
        out = sym OUT,
        inner = sym fx_ret_imm_inner,
    );
}

/// PushFlags: `pushfd` then `pop eax` (flags set deterministically first).
#[unsafe(naked)]
unsafe extern "C" fn fx_pushfd(_arg: u32) -> u32 {
    naked_asm!(
        "mov ecx, 0x1234",
        "cmp ecx, 0x1234",
        note_esp!(),
        global!(fx_pushfd_at),
        "pushfd",
        global!(fx_pushfd_next),
        "pop eax",
        record!(),
        "ret",
        out = sym OUT,
        probe_esp = sym PROBE_ESP,
    );
}

/// InterruptFlagWriter: `cli`; EAX = EFLAGS right after it. The caller's
/// flags are restored before returning.
#[unsafe(naked)]
unsafe extern "C" fn fx_cli(_arg: u32) -> u32 {
    naked_asm!(
        "pushfd",
        "mov ecx, 0x1234",
        note_esp!(),
        global!(fx_cli_at),
        "cli",
        global!(fx_cli_next),
        "pushfd",
        "pop eax",
        "popfd",
        record!(),
        "ret",
        out = sym OUT,
        probe_esp = sym PROBE_ESP,
    );
}

/// EnableInterrupts: `sti` (emulated); EAX = EFLAGS right after it. The caller's
/// flags are restored before returning.
#[unsafe(naked)]
unsafe extern "C" fn fx_sti(_arg: u32) -> u32 {
    naked_asm!(
        "pushfd",
        "mov ecx, 0x1234",
        note_esp!(),
        global!(fx_sti_at),
        "sti",
        global!(fx_sti_next),
        "pushfd",
        "pop eax",
        "popfd",
        record!(),
        "ret",
        out = sym OUT,
        probe_esp = sym PROBE_ESP,
    );
}

/// InterruptFlagWriter: `popfd` of the current flags with IF and CF
/// toggled; EAX = EFLAGS right after it. The caller's flags are restored.
#[unsafe(naked)]
unsafe extern "C" fn fx_popfd(_arg: u32) -> u32 {
    naked_asm!(
        "pushfd",
        "stc",
        "pushfd",
        "xor dword ptr [esp], 0x201",
        note_esp!(),
        global!(fx_popfd_at),
        "popfd",
        global!(fx_popfd_next),
        "pushfd",
        "pop eax",
        "popfd",
        record!(),
        "ret",
        out = sym OUT,
        probe_esp = sym PROBE_ESP,
    );
}

/// RepeatedString: `rep movsb` of `argument` bytes from the scratch source
/// to its destination; EAX/EDX = final ESI/EDI.
#[unsafe(naked)]
unsafe extern "C" fn fx_rep_movsb(_arg: u32) -> u32 {
    naked_asm!(
        "push esi",
        "push edi",
        "lea esi, [{scratch}]",
        "lea edi, [{scratch} + {destination}]",
        "mov ecx, dword ptr [esp + 12]",
        note_esp!(),
        global!(fx_rep_movsb_at),
        "rep movsb",
        global!(fx_rep_movsb_next),
        "mov eax, esi",
        "mov edx, edi",
        "pop edi",
        "pop esi",
        record!(),
        "ret",
        out = sym OUT,
        probe_esp = sym PROBE_ESP,
        scratch = sym SCRATCH,
        destination = const DESTINATION,
    );
}

/// RepeatedString: `rep stosd` of `argument` dwords into the scratch
/// destination; EDX = final EDI.
#[unsafe(naked)]
unsafe extern "C" fn fx_rep_stosd(_arg: u32) -> u32 {
    naked_asm!(
        "push edi",
        "mov eax, 0xa5a55a5a",
        "lea edi, [{scratch} + {destination}]",
        "mov ecx, dword ptr [esp + 8]",
        note_esp!(),
        global!(fx_rep_stosd_at),
        "rep stosd",
        global!(fx_rep_stosd_next),
        "mov edx, edi",
        "pop edi",
        record!(),
        "ret",
        out = sym OUT,
        probe_esp = sym PROBE_ESP,
        scratch = sym SCRATCH,
        destination = const DESTINATION,
    );
}

/// ESP: `push esp`; EAX = the pushed value minus the ESP before the push (0).
#[unsafe(naked)]
unsafe extern "C" fn fx_push_esp(_arg: u32) -> u32 {
    naked_asm!(
        "mov ecx, esp",
        note_esp!(),
        global!(fx_push_esp_at),
        "push esp",
        global!(fx_push_esp_next),
        "pop eax",
        "sub eax, ecx",
        record!(),
        "ret",
        out = sym OUT,
        probe_esp = sym PROBE_ESP,
    );
}

/// ESP: `pop eax` of a pushed constant; EDX = ESP before the push minus ESP
/// after the pop (0).
#[unsafe(naked)]
unsafe extern "C" fn fx_pop(_arg: u32) -> u32 {
    naked_asm!(
        "mov edx, esp",
        "push 0x12345678",
        "xor eax, eax",
        note_esp!(),
        global!(fx_pop_at),
        "pop eax",
        global!(fx_pop_next),
        "sub edx, esp",
        record!(),
        "ret",
        out = sym OUT,
        probe_esp = sym PROBE_ESP,
    );
}

/// ESP: `mov eax, esp`; EAX = the copy minus ESP before (0).
#[unsafe(naked)]
unsafe extern "C" fn fx_mov_esp(_arg: u32) -> u32 {
    naked_asm!(
        "mov ecx, esp",
        note_esp!(),
        global!(fx_mov_esp_at),
        "mov eax, esp",
        global!(fx_mov_esp_next),
        "sub eax, ecx",
        record!(),
        "ret",
        out = sym OUT,
        probe_esp = sym PROBE_ESP,
    );
}

/// ESP: `mov eax, [esp + 4]`, the argument.
#[unsafe(naked)]
unsafe extern "C" fn fx_load_esp(_arg: u32) -> u32 {
    naked_asm!(
        "xor eax, eax",
        note_esp!(),
        global!(fx_load_esp_at),
        "mov eax, dword ptr [esp + 4]",
        global!(fx_load_esp_next),
        record!(),
        "ret",
        out = sym OUT,
        probe_esp = sym PROBE_ESP,
    );
}

// ---------------------------------------------------------------------------
// The harness
// ---------------------------------------------------------------------------

/// One probed instruction and what must hold around it.
struct Case {
    /// The naked function holding the instruction.
    routine: Routine,
    /// The naked function holding the probed instruction when it is not
    /// `routine` itself (a callee whose `ret` is probed).
    inner: Option<fn() -> usize>,
    argument: u32,
    /// Run with IF forced on or off (`None`: as the test runs, IF on).
    interrupts: Option<bool>,
    /// The probed instruction (a global label).
    at: fn() -> usize,
    /// What `can_probe` must classify it as.
    fixup: fn() -> Fixup,
    /// Whether a probe without post-handlers there must be boosted.
    boostable: bool,
    /// Where execution continues after each hit, in order (one per hit).
    continues: fn() -> Vec<usize>,
    /// ESP after the instruction minus ESP before it.
    esp_delta: i32,
    /// Exact expectations on a run's result, the registers of the first
    /// pre-handler call (all zero for the unprobed run, hence the
    /// `pre.esp != 0` guards) and the words at ESP seen by the post-handlers.
    check: fn(&Snapshot, &SeenRegs, &[u32]),
}

fn run(case: &Case) -> Snapshot {
    reset_state();
    let was_enabled = cpu::interrupts_enabled();
    match case.interrupts {
        Some(true) => cpu::enable_interrupts(),
        Some(false) => cpu::disable_interrupts(),
        None => {}
    }
    // SAFETY: each routine is a self-contained cdecl function that preserves
    // the callee-saved registers and touches only this file's statics.
    let returned = unsafe { (case.routine)(case.argument) };
    let after = cpu::interrupts_enabled();
    if was_enabled {
        cpu::enable_interrupts();
    } else {
        cpu::disable_interrupts();
    }
    if let Some(wanted) = case.interrupts {
        assert_eq!(after, wanted, "the routine changed IF for its caller");
    }
    snapshot(returned)
}

/// The probed instruction and the 15 bytes after it (inside this file's
/// routines or the next function, all kernel text).
fn code_bytes(address: usize) -> [u8; 16] {
    core::array::from_fn(|i| text_byte(address + i))
}

/// Checks the handlers' records after a run with `per_hit` pre-handler
/// calls per hit (one per probe at the address) and `posts` post-handlers.
fn check_hits(case: &Case, what: &str, result: &Snapshot, at: usize, per_hit: usize, posts: bool) {
    let continues = (case.continues)();
    let hits = continues.len();
    let probe_esp = PROBE_ESP.load(Ordering::SeqCst);
    let pre_hits = PRE_HITS.load(Ordering::SeqCst);
    assert_eq!(pre_hits, hits * per_hit, "{what}: pre-handler calls");
    for (hit, eip) in records(&PRE_EIP, pre_hits).into_iter().enumerate() {
        assert_eq!(eip as usize, at, "{what}: pre-handler {hit} saw EIP {eip:#x}, not the probe address {at:#x}");
    }
    let seen = first_pre_regs();
    assert_eq!(seen.esp, probe_esp, "{what}: pre-handler ESP");
    assert_eq!(seen.eflags & EFLAGS_TF, 0, "{what}: TF in the pre-handler's flags");
    let post_hits = POST_HITS.load(Ordering::SeqCst);
    if !posts {
        assert_eq!(post_hits, 0, "{what}: post-handler calls");
        (case.check)(result, &seen, &[]);
        return;
    }
    assert_eq!(post_hits, hits, "{what}: post-handler calls");
    let eips = records(&POST_EIP, post_hits);
    let wanted: Vec<u32> = continues.iter().map(|&a| a as u32).collect();
    assert_eq!(eips, wanted, "{what}: post-handler EIPs (where execution continues)");
    for (hit, esp) in records(&POST_ESP, post_hits).into_iter().enumerate() {
        let wanted = probe_esp.wrapping_add_signed(case.esp_delta);
        assert_eq!(esp, wanted, "{what}: post-handler {hit} ESP {esp:#x}, wanted {wanted:#x}");
    }
    (case.check)(result, &seen, &records(&POST_STACK_TOP, post_hits));
}

/// A breakpoint the engine did not claim, inside an instruction slot: the
/// slot's `int3` filler after a stepped copy ran, so the single-step trap did
/// not come right after the copy. Fails the test with that diagnosis (the
/// default would only say "unexpected #BP").
fn stray_slot_breakpoint(frame: &mut PtRegs) -> TrapOutcome {
    let at = frame.eip as usize - 1;
    if probe_kernel::memory::slots::region().contains(&at) {
        panic!(
            "int3 filler of an instruction slot executed at {at:#x}: no single-step trap came right after the stepped copy, so it ran on"
        );
    }
    TrapOutcome::NotMine
}

fn check(case: &Case) {
    set_hook(HookKind::Breakpoint, Some(stray_slot_breakpoint));
    check_probed(case);
    set_hook(HookKind::Breakpoint, None);
}

fn check_probed(case: &Case) {
    let at = (case.at)();
    let routine = case.inner.map_or(case.routine as usize, |inner| inner());
    let function = probe_kernel::symbols::lookup_address(at).expect("probed label in no function");
    assert_eq!(
        function.address, routine,
        "{} (offset {:#x}) is not the routine containing the label",
        function.name, function.offset
    );
    assert!(function.offset == at - routine && at < routine + function.size);

    let fixup = (case.fixup)();
    assert_eq!(can_probe(at as *const ()), Ok(fixup));
    assert_eq!(fixup.boostable(), case.boostable, "{fixup:?}: the engine's boostability differs from the design");
    let original = code_bytes(at);

    let baseline = run(case);
    reset_hits();
    (case.check)(&baseline, &first_pre_regs(), &[]);
    let unprobed_esp = PROBE_ESP.load(Ordering::SeqCst);
    assert_ne!(unprobed_esp, 0, "the routine did not note ESP");

    // Single-stepped: pre- and post-handler.
    let stepped = leak(Kprobe::new().address(at as *const ()).pre_handler(pre).post_handler(post));
    register_kprobe(stepped).expect("single-step probe refused");
    assert!(!stepped.flags().contains(KprobeFlags::BOOSTED), "a probe with a post-handler is boosted");
    assert_eq!(code_bytes(at)[0], 0xcc, "breakpoint not armed");
    reset_hits();
    let result = run(case);
    assert_eq!(result, baseline, "single-stepped run differs from the unprobed run");
    check_hits(case, "single-step", &result, at, 1, true);
    assert_eq!(stepped.nmissed(), 0);
    unregister_kprobe(stepped).unwrap();
    assert_eq!(code_bytes(at), original, "bytes not restored after the single-step probe");

    // Boosted where the class allows: pre-handler only.
    let boosted = leak(Kprobe::new().address(at as *const ()).pre_handler(pre));
    register_kprobe(boosted).expect("pre-handler probe refused");
    assert_eq!(boosted.flags().contains(KprobeFlags::BOOSTED), case.boostable, "BOOSTED flag for {fixup:?}");
    reset_hits();
    let result = run(case);
    assert_eq!(result, baseline, "pre-handler-only run differs from the unprobed run");
    check_hits(case, "pre-handler only", &result, at, 1, false);
    assert_eq!(boosted.nmissed(), 0);

    // Both at one address: a post-handler anywhere at the address turns boosting off.
    let with_post = leak(Kprobe::new().address(at as *const ()).pre_handler(pre).post_handler(post));
    register_kprobe(with_post).expect("second probe at the address refused");
    assert!(!boosted.flags().contains(KprobeFlags::BOOSTED), "boosted while another probe has a post-handler");
    assert!(!with_post.flags().contains(KprobeFlags::BOOSTED), "a probe with a post-handler is boosted");
    reset_hits();
    let result = run(case);
    assert_eq!(result, baseline, "run with two probes differs from the unprobed run");
    check_hits(case, "two probes", &result, at, 2, true);
    unregister_kprobe(with_post).unwrap();
    assert_eq!(
        boosted.flags().contains(KprobeFlags::BOOSTED),
        case.boostable,
        "BOOSTED after the post-handler probe left"
    );
    assert_eq!(code_bytes(at)[0], 0xcc, "breakpoint disarmed while a probe remains");
    unregister_kprobe(boosted).unwrap();
    assert_eq!(code_bytes(at), original, "bytes not restored after the last probe");

    // And unprobed once more: nothing left behind.
    reset_hits();
    assert_eq!(run(case), baseline, "run after unregistering differs");
    assert_eq!(PRE_HITS.load(Ordering::SeqCst), 0);
}

fn next_of(address: usize) -> Vec<usize> {
    vec![address]
}

// ---------------------------------------------------------------------------
// Plain
// ---------------------------------------------------------------------------

#[test_case]
fn plain_add() {
    check(&Case {
        routine: fx_plain_add,
        inner: None,
        argument: 0,
        interrupts: None,
        at: || label!(fx_plain_add_at),
        fixup: || Fixup::Plain,
        boostable: true,
        continues: || next_of(label!(fx_plain_add_next)),
        esp_delta: 0,
        check: |result, pre, _| {
            assert_eq!(result.eax, 0x2234);
            if pre.esp != 0 {
                assert_eq!((pre.eax, pre.ecx, pre.edx), (0x1000, 0x1234, 0x55), "registers in the pre-handler");
            }
        },
    });
}

#[test_case]
fn plain_lea() {
    check(&Case {
        routine: fx_plain_lea,
        inner: None,
        argument: 0,
        interrupts: None,
        at: || label!(fx_plain_lea_at),
        fixup: || Fixup::Plain,
        boostable: true,
        continues: || next_of(label!(fx_plain_lea_next)),
        esp_delta: 0,
        check: |result, pre, _| {
            assert_eq!(result.eax, 0x1234 + 0x10 * 4 + 8);
            if pre.esp != 0 {
                assert_eq!((pre.ecx, pre.edx), (0x1234, 0x10), "registers in the pre-handler");
            }
        },
    });
}

#[test_case]
fn plain_memory_load() {
    check(&Case {
        routine: fx_plain_load,
        inner: None,
        argument: 0,
        interrupts: None,
        at: || label!(fx_plain_load_at),
        fixup: || Fixup::Plain,
        boostable: true,
        continues: || next_of(label!(fx_plain_load_next)),
        esp_delta: 0,
        check: |result, pre, _| {
            let bytes: [u8; 4] = core::array::from_fn(|i| result.memory[4 + i]);
            assert_eq!(result.eax, u32::from_le_bytes(bytes));
            if pre.esp != 0 {
                assert_eq!(pre.ecx as usize, scratch_address(), "ECX in the pre-handler");
            }
        },
    });
}

// ---------------------------------------------------------------------------
// RelativeJump, ConditionalJump, LoopOrJecxz
// ---------------------------------------------------------------------------

#[test_case]
fn relative_jump_rel8() {
    check(&Case {
        routine: fx_jmp8,
        inner: None,
        argument: 0,
        interrupts: None,
        at: || label!(fx_jmp8_at),
        fixup: || Fixup::RelativeJump { target: label!(fx_jmp8_target) as u32 },
        boostable: true,
        continues: || next_of(label!(fx_jmp8_target)),
        esp_delta: 0,
        check: |result, _, _| assert_eq!(result.eax, 3),
    });
    assert_eq!(code_bytes(label!(fx_jmp8_at))[0], 0xeb, "not assembled as jmp rel8");
}

#[test_case]
fn relative_jump_rel32() {
    check(&Case {
        routine: fx_jmp32,
        inner: None,
        argument: 0,
        interrupts: None,
        at: || label!(fx_jmp32_at),
        fixup: || Fixup::RelativeJump { target: label!(fx_jmp32_target) as u32 },
        boostable: true,
        continues: || next_of(label!(fx_jmp32_target)),
        esp_delta: 0,
        check: |result, _, _| assert_eq!(result.eax, 3),
    });
}

fn jcc8(argument: u32, continues: fn() -> Vec<usize>, check: fn(&Snapshot, &SeenRegs, &[u32])) -> Case {
    Case {
        routine: fx_jcc8,
        inner: None,
        argument,
        interrupts: None,
        at: || label!(fx_jcc8_at),
        fixup: || Fixup::ConditionalJump { target: label!(fx_jcc8_target) as u32, condition: 0x4 },
        boostable: true,
        continues,
        esp_delta: 0,
        check,
    }
}

#[test_case]
fn conditional_jump_rel8_taken() {
    check(&jcc8(0, || next_of(label!(fx_jcc8_target)), |result, _, _| assert_eq!(result.eax, 20)));
    assert_eq!(code_bytes(label!(fx_jcc8_at))[0], 0x74, "not assembled as je rel8");
}

#[test_case]
fn conditional_jump_rel8_not_taken() {
    check(&jcc8(1, || next_of(label!(fx_jcc8_next)), |result, _, _| assert_eq!(result.eax, 10)));
}

fn jcc32(argument: u32, continues: fn() -> Vec<usize>, check: fn(&Snapshot, &SeenRegs, &[u32])) -> Case {
    Case {
        routine: fx_jcc32,
        inner: None,
        argument,
        interrupts: None,
        at: || label!(fx_jcc32_at),
        fixup: || Fixup::ConditionalJump { target: label!(fx_jcc32_target) as u32, condition: 0x4 },
        boostable: true,
        continues,
        esp_delta: 0,
        check,
    }
}

#[test_case]
fn conditional_jump_rel32_taken() {
    check(&jcc32(0, || next_of(label!(fx_jcc32_target)), |result, _, _| assert_eq!(result.eax, 20)));
}

#[test_case]
fn conditional_jump_rel32_not_taken() {
    check(&jcc32(7, || next_of(label!(fx_jcc32_next)), |result, _, _| assert_eq!(result.eax, 10)));
}

#[test_case]
fn loop_taken_then_not_taken() {
    check(&Case {
        routine: fx_loop,
        inner: None,
        argument: 3,
        interrupts: None,
        at: || label!(fx_loop_at),
        fixup: || Fixup::LoopOrJecxz,
        boostable: false,
        continues: || vec![label!(fx_loop_target), label!(fx_loop_target), label!(fx_loop_next)],
        esp_delta: 0,
        check: |result, pre, _| {
            assert_eq!((result.eax, result.ecx), (9, 0));
            if pre.esp != 0 {
                assert_eq!((pre.eax, pre.ecx), (3, 3), "registers in the first pre-handler");
            }
        },
    });
}

#[test_case]
fn jecxz_taken() {
    check(&Case {
        routine: fx_jecxz,
        inner: None,
        argument: 0,
        interrupts: None,
        at: || label!(fx_jecxz_at),
        fixup: || Fixup::LoopOrJecxz,
        boostable: false,
        continues: || next_of(label!(fx_jecxz_target)),
        esp_delta: 0,
        check: |result, _, _| assert_eq!(result.eax, 6),
    });
}

#[test_case]
fn jecxz_not_taken() {
    check(&Case {
        routine: fx_jecxz,
        inner: None,
        argument: 5,
        interrupts: None,
        at: || label!(fx_jecxz_at),
        fixup: || Fixup::LoopOrJecxz,
        boostable: false,
        continues: || next_of(label!(fx_jecxz_next)),
        esp_delta: 0,
        check: |result, pre, _| {
            assert_eq!(result.eax, 15);
            if pre.esp != 0 {
                assert_eq!(pre.ecx, 5, "ECX in the pre-handler");
            }
        },
    });
}

// ---------------------------------------------------------------------------
// Calls, indirect jumps, returns
// ---------------------------------------------------------------------------

/// The callee saw `return_address` at [esp] and its ESP 4 below the caller's entry ESP.
fn callee_saw(result: &Snapshot, return_address: usize, tops: &[u32]) {
    assert_eq!(result.eax as usize, return_address, "return address seen by the callee");
    assert_eq!(result.edx, 4, "callee's ESP relative to the caller's");
    for top in tops {
        assert_eq!(*top as usize, return_address, "return address on the stack in the post-handler");
    }
}

#[test_case]
fn relative_call() {
    check(&Case {
        routine: fx_call_rel,
        inner: None,
        argument: 0,
        interrupts: None,
        at: || label!(fx_call_rel_at),
        fixup: || Fixup::RelativeCall { target: fx_callee as *const () as usize as u32 },
        boostable: true,
        continues: || next_of(fx_callee as *const () as usize),
        esp_delta: -4,
        check: |result, pre, tops| {
            callee_saw(result, label!(fx_call_rel_next), tops);
            if pre.esp != 0 {
                assert_eq!(pre.ecx, 0x1234, "ECX in the pre-handler");
            }
        },
    });
}

#[test_case]
fn indirect_call_register() {
    check(&Case {
        routine: fx_call_reg,
        inner: None,
        argument: 0,
        interrupts: None,
        at: || label!(fx_call_reg_at),
        fixup: || Fixup::IndirectCall,
        boostable: false,
        continues: || next_of(fx_callee as *const () as usize),
        esp_delta: -4,
        check: |result, pre, tops| {
            callee_saw(result, label!(fx_call_reg_next), tops);
            if pre.esp != 0 {
                assert_eq!(pre.eax as usize, fx_callee as *const () as usize, "EAX in the pre-handler");
            }
        },
    });
}

#[test_case]
fn indirect_call_memory() {
    check(&Case {
        routine: fx_call_mem,
        inner: None,
        argument: 0,
        interrupts: None,
        at: || label!(fx_call_mem_at),
        fixup: || Fixup::IndirectCall,
        boostable: false,
        continues: || next_of(fx_callee as *const () as usize),
        esp_delta: -4,
        check: |result, _, tops| callee_saw(result, label!(fx_call_mem_next), tops),
    });
}

#[test_case]
fn indirect_jump_register() {
    check(&Case {
        routine: fx_jmp_reg,
        inner: None,
        argument: 0,
        interrupts: None,
        at: || label!(fx_jmp_reg_at),
        fixup: || Fixup::IndirectJump,
        boostable: true,
        continues: || next_of(label!(fx_jmp_reg_target)),
        esp_delta: 0,
        check: |result, pre, _| {
            assert_eq!(result.eax, 3);
            if pre.esp != 0 {
                assert_eq!(pre.ecx as usize, label!(fx_jmp_reg_target), "ECX in the pre-handler");
            }
        },
    });
}

#[test_case]
fn indirect_jump_memory() {
    check(&Case {
        routine: fx_jmp_mem,
        inner: None,
        argument: 0,
        interrupts: None,
        at: || label!(fx_jmp_mem_at),
        fixup: || Fixup::IndirectJump,
        boostable: true,
        continues: || next_of(label!(fx_jmp_mem_target)),
        esp_delta: 0,
        check: |result, _, _| assert_eq!(result.eax, 3),
    });
}

#[test_case]
fn return_plain() {
    check(&Case {
        routine: fx_ret,
        inner: Some(|| fx_ret_inner as *const () as usize),
        argument: 0,
        interrupts: None,
        at: || label!(fx_ret_at),
        fixup: || Fixup::Return,
        boostable: true,
        continues: || next_of(label!(fx_ret_back)),
        esp_delta: 4,
        check: |result, pre, _| {
            assert_eq!((result.eax, result.edx), (0x600d, 0));
            if pre.esp != 0 {
                assert_eq!(pre.eax, 0x600d, "EAX in the pre-handler");
            }
        },
    });
    assert_eq!(
        probe_kernel::symbols::lookup_address(label!(fx_ret_at)).unwrap().address,
        fx_ret_inner as *const () as usize
    );
}

#[test_case]
fn return_imm16() {
    check(&Case {
        routine: fx_ret_imm,
        inner: Some(|| fx_ret_imm_inner as *const () as usize),
        argument: 0,
        interrupts: None,
        at: || label!(fx_ret_imm_at),
        fixup: || Fixup::Return,
        boostable: true,
        continues: || next_of(label!(fx_ret_imm_back)),
        esp_delta: 12,
        check: |result, pre, _| {
            assert_eq!((result.eax, result.ecx, result.edx), (0x22, 0x11, 0));
            if pre.esp != 0 {
                assert_eq!((pre.eax, pre.ecx), (0x22, 0x11), "registers in the pre-handler");
            }
        },
    });
}

// ---------------------------------------------------------------------------
// Backward targets: the slot lies above the kernel text, so a relative
// target before the probed instruction lands below the slot after the step.
// ---------------------------------------------------------------------------

#[test_case]
fn relative_jump_backward() {
    check(&Case {
        routine: fx_jmp_back,
        inner: None,
        argument: 0,
        interrupts: None,
        at: || label!(fx_jmp_back_at),
        fixup: || Fixup::RelativeJump { target: label!(fx_jmp_back_target) as u32 },
        boostable: true,
        continues: || next_of(label!(fx_jmp_back_target)),
        esp_delta: 0,
        check: |result, _, _| assert_eq!(result.eax, 3),
    });
    assert_eq!(code_bytes(label!(fx_jmp_back_at))[0], 0xeb, "not assembled as jmp rel8");
}

#[test_case]
fn conditional_jump_backward_taken_then_not_taken() {
    check(&Case {
        routine: fx_jcc_back,
        inner: None,
        argument: 3,
        interrupts: None,
        at: || label!(fx_jcc_back_at),
        fixup: || Fixup::ConditionalJump { target: label!(fx_jcc_back_target) as u32, condition: 0x5 },
        boostable: true,
        continues: || vec![label!(fx_jcc_back_target), label!(fx_jcc_back_target), label!(fx_jcc_back_next)],
        esp_delta: 0,
        check: |result, pre, _| {
            assert_eq!((result.eax, result.ecx), (15, 0));
            if pre.esp != 0 {
                assert_eq!((pre.eax, pre.ecx), (5, 2), "registers in the first pre-handler");
            }
        },
    });
}

#[test_case]
fn relative_call_backward() {
    check(&Case {
        routine: fx_call_back,
        inner: None,
        argument: 0,
        interrupts: None,
        at: || label!(fx_call_back_at),
        fixup: || Fixup::RelativeCall { target: label!(fx_call_back_callee) as u32 },
        boostable: true,
        continues: || next_of(label!(fx_call_back_callee)),
        esp_delta: -4,
        check: |result, _, tops| callee_saw(result, label!(fx_call_back_next), tops),
    });
}

// ---------------------------------------------------------------------------
// Flags: pushfd, cli, sti, popfd
// ---------------------------------------------------------------------------

fn pushfd(interrupts: bool, check: fn(&Snapshot, &SeenRegs, &[u32])) -> Case {
    Case {
        routine: fx_pushfd,
        inner: None,
        argument: 0,
        interrupts: Some(interrupts),
        at: || label!(fx_pushfd_at),
        fixup: || Fixup::PushFlags,
        boostable: true,
        continues: || next_of(label!(fx_pushfd_next)),
        esp_delta: -4,
        check,
    }
}

fn pushed_flags_are(result: &Snapshot, tops: &[u32], interrupt_flag: u32) {
    assert_eq!(result.eax & EFLAGS_TF, 0, "pushfd pushed TF");
    assert_eq!(result.eax & EFLAGS_IF, interrupt_flag, "pushfd pushed the wrong IF");
    assert_eq!(result.eax & 0x40, 0x40, "ZF of the cmp before pushfd");
    for top in tops {
        assert_eq!(*top, result.eax, "flags on the stack in the post-handler are not the repaired ones");
    }
}

#[test_case]
fn pushfd_with_interrupts_enabled() {
    check(&pushfd(true, |result, pre, tops| {
        pushed_flags_are(result, tops, EFLAGS_IF);
        if pre.esp != 0 {
            assert_eq!(pre.eflags & EFLAGS_IF, EFLAGS_IF, "IF in the pre-handler's flags");
        }
    }));
}

#[test_case]
fn pushfd_with_interrupts_disabled() {
    check(&pushfd(false, |result, pre, tops| {
        pushed_flags_are(result, tops, 0);
        if pre.esp != 0 {
            assert_eq!(pre.eflags & EFLAGS_IF, 0, "IF in the pre-handler's flags");
        }
    }));
}

fn flag_writer(
    routine: Routine,
    at: fn() -> usize,
    next: fn() -> Vec<usize>,
    esp_delta: i32,
    interrupts: bool,
    check: fn(&Snapshot, &SeenRegs, &[u32]),
) -> Case {
    Case {
        routine,
        inner: None,
        argument: 0,
        interrupts: Some(interrupts),
        at,
        fixup: if routine as *const () == fx_sti as *const () {
            || Fixup::EnableInterrupts
        } else {
            || Fixup::InterruptFlagWriter
        },
        boostable: false,
        continues: next,
        esp_delta,
        check,
    }
}

#[test_case]
fn cli_with_interrupts_enabled() {
    check(&flag_writer(
        fx_cli,
        || label!(fx_cli_at),
        || next_of(label!(fx_cli_next)),
        0,
        true,
        |result, pre, _| {
            assert_eq!(result.eax & (EFLAGS_IF | EFLAGS_TF), 0, "IF/TF after cli");
            if pre.esp != 0 {
                assert_eq!((pre.ecx, pre.eflags & EFLAGS_IF), (0x1234, EFLAGS_IF), "pre-handler registers");
            }
        },
    ));
}

#[test_case]
fn cli_with_interrupts_disabled() {
    check(&flag_writer(
        fx_cli,
        || label!(fx_cli_at),
        || next_of(label!(fx_cli_next)),
        0,
        false,
        |result, _, _| {
            assert_eq!(result.eax & (EFLAGS_IF | EFLAGS_TF), 0, "IF/TF after cli");
        },
    ));
}

#[test_case]
fn sti_with_interrupts_disabled() {
    check(&flag_writer(
        fx_sti,
        || label!(fx_sti_at),
        || next_of(label!(fx_sti_next)),
        0,
        false,
        |result, pre, _| {
            assert_eq!(result.eax & (EFLAGS_IF | EFLAGS_TF), EFLAGS_IF, "IF/TF after sti");
            if pre.esp != 0 {
                assert_eq!((pre.ecx, pre.eflags & EFLAGS_IF), (0x1234, 0), "pre-handler registers");
            }
        },
    ));
}

#[test_case]
fn sti_with_interrupts_enabled() {
    check(&flag_writer(
        fx_sti,
        || label!(fx_sti_at),
        || next_of(label!(fx_sti_next)),
        0,
        true,
        |result, _, _| {
            assert_eq!(result.eax & (EFLAGS_IF | EFLAGS_TF), EFLAGS_IF, "IF/TF after sti");
        },
    ));
}

#[test_case]
fn popfd_clearing_interrupts() {
    check(&flag_writer(
        fx_popfd,
        || label!(fx_popfd_at),
        || next_of(label!(fx_popfd_next)),
        4,
        true,
        |result, pre, _| {
            assert_eq!(result.eax & (EFLAGS_IF | EFLAGS_TF | EFLAGS_CF), 0, "IF/TF/CF after popfd");
            if pre.esp != 0 {
                // `xor` on the stacked flags cleared CF in the live ones.
                assert_eq!(pre.eflags & (EFLAGS_IF | EFLAGS_CF), EFLAGS_IF, "pre-handler flags");
            }
        },
    ));
}

#[test_case]
fn popfd_setting_interrupts() {
    check(&flag_writer(
        fx_popfd,
        || label!(fx_popfd_at),
        || next_of(label!(fx_popfd_next)),
        4,
        false,
        |result, pre, _| {
            assert_eq!(result.eax & (EFLAGS_IF | EFLAGS_TF | EFLAGS_CF), EFLAGS_IF, "IF/TF/CF after popfd");
            if pre.esp != 0 {
                assert_eq!(pre.eflags & (EFLAGS_IF | EFLAGS_CF), 0, "pre-handler flags");
            }
        },
    ));
}

// ---------------------------------------------------------------------------
// rep strings
// ---------------------------------------------------------------------------

const MOVSB_COUNT: u32 = 37;
const STOSD_COUNT: u32 = 9;

#[test_case]
fn rep_movsb_copies_every_byte() {
    check(&Case {
        routine: fx_rep_movsb,
        inner: None,
        argument: MOVSB_COUNT,
        interrupts: None,
        at: || label!(fx_rep_movsb_at),
        fixup: || Fixup::RepeatedString,
        boostable: true,
        continues: || next_of(label!(fx_rep_movsb_next)),
        esp_delta: 0,
        check: |result, pre, _| {
            let count = MOVSB_COUNT as usize;
            assert_eq!(result.ecx, 0, "ECX after rep movsb");
            assert_eq!(result.eax as usize, scratch_address() + count, "ESI after rep movsb");
            assert_eq!(result.edx as usize, scratch_address() + DESTINATION + count, "EDI after rep movsb");
            assert_eq!(result.memory[DESTINATION..DESTINATION + count], result.memory[..count], "bytes copied");
            assert!(result.memory[DESTINATION + count..].iter().all(|&b| b == 0), "bytes beyond the count written");
            if pre.esp != 0 {
                assert_eq!(pre.ecx, MOVSB_COUNT, "ECX in the pre-handler");
                assert_eq!(pre.esi as usize, scratch_address(), "ESI in the pre-handler");
                assert_eq!(pre.edi as usize, scratch_address() + DESTINATION, "EDI in the pre-handler");
            }
        },
    });
}

#[test_case]
fn rep_movsb_of_zero_bytes() {
    check(&Case {
        routine: fx_rep_movsb,
        inner: None,
        argument: 0,
        interrupts: None,
        at: || label!(fx_rep_movsb_at),
        fixup: || Fixup::RepeatedString,
        boostable: true,
        continues: || next_of(label!(fx_rep_movsb_next)),
        esp_delta: 0,
        check: |result, _, _| {
            assert_eq!(result.ecx, 0);
            assert_eq!(result.eax as usize, scratch_address(), "ESI moved");
            assert!(result.memory[DESTINATION..].iter().all(|&b| b == 0), "bytes written");
        },
    });
}

#[test_case]
fn rep_stosd_fills_every_dword() {
    check(&Case {
        routine: fx_rep_stosd,
        inner: None,
        argument: STOSD_COUNT,
        interrupts: None,
        at: || label!(fx_rep_stosd_at),
        fixup: || Fixup::RepeatedString,
        boostable: true,
        continues: || next_of(label!(fx_rep_stosd_next)),
        esp_delta: 0,
        check: |result, pre, _| {
            let bytes = STOSD_COUNT as usize * 4;
            assert_eq!((result.eax, result.ecx), (0xa5a5_5a5a, 0));
            assert_eq!(result.edx as usize, scratch_address() + DESTINATION + bytes, "EDI after rep stosd");
            for chunk in result.memory[DESTINATION..DESTINATION + bytes].chunks(4) {
                assert_eq!(chunk, 0xa5a5_5a5au32.to_le_bytes(), "dword stored");
            }
            assert!(result.memory[DESTINATION + bytes..].iter().all(|&b| b == 0), "bytes beyond the count written");
            if pre.esp != 0 {
                assert_eq!((pre.eax, pre.ecx), (0xa5a5_5a5a, STOSD_COUNT), "registers in the pre-handler");
            }
        },
    });
}

// ---------------------------------------------------------------------------
// ESP as an operand
// ---------------------------------------------------------------------------

#[test_case]
fn push_esp() {
    check(&Case {
        routine: fx_push_esp,
        inner: None,
        argument: 0,
        interrupts: None,
        at: || label!(fx_push_esp_at),
        fixup: || Fixup::Plain,
        boostable: true,
        continues: || next_of(label!(fx_push_esp_next)),
        esp_delta: -4,
        check: |result, pre, tops| {
            assert_eq!(result.eax, 0, "push esp pushed something else than ESP before the push");
            for top in tops {
                assert_eq!(*top, pre.esp, "value pushed, in the post-handler");
            }
        },
    });
}

#[test_case]
fn pop_eax() {
    check(&Case {
        routine: fx_pop,
        inner: None,
        argument: 0,
        interrupts: None,
        at: || label!(fx_pop_at),
        fixup: || Fixup::Plain,
        boostable: true,
        continues: || next_of(label!(fx_pop_next)),
        esp_delta: 4,
        check: |result, pre, _| {
            assert_eq!((result.eax, result.edx), (0x1234_5678, 0));
            if pre.esp != 0 {
                assert_eq!(pre.eax, 0, "EAX in the pre-handler");
            }
        },
    });
}

#[test_case]
fn mov_eax_esp() {
    check(&Case {
        routine: fx_mov_esp,
        inner: None,
        argument: 0,
        interrupts: None,
        at: || label!(fx_mov_esp_at),
        fixup: || Fixup::Plain,
        boostable: true,
        continues: || next_of(label!(fx_mov_esp_next)),
        esp_delta: 0,
        check: |result, _, _| assert_eq!(result.eax, 0, "mov eax, esp copied something else"),
    });
}

#[test_case]
fn mov_eax_from_stack() {
    check(&Case {
        routine: fx_load_esp,
        inner: None,
        argument: 0xcafe_babe,
        interrupts: None,
        at: || label!(fx_load_esp_at),
        fixup: || Fixup::Plain,
        boostable: true,
        continues: || next_of(label!(fx_load_esp_next)),
        esp_delta: 0,
        check: |result, _, _| assert_eq!(result.eax, 0xcafe_babe),
    });
}

#[test_case]
fn every_routine_is_its_own_function_in_the_symbol_table() {
    let cases = [
        (label!(fx_plain_add_at), fx_plain_add as *const () as usize, "kprobe_fixups::fx_plain_add"),
        (label!(fx_loop_at), fx_loop as *const () as usize, "kprobe_fixups::fx_loop"),
        (label!(fx_ret_imm_at), fx_ret_imm_inner as *const () as usize, "kprobe_fixups::fx_ret_imm_inner"),
        (label!(fx_rep_stosd_at), fx_rep_stosd as *const () as usize, "kprobe_fixups::fx_rep_stosd"),
    ];
    for (at, routine, name) in cases {
        let function = probe_kernel::symbols::lookup_address(at).expect("label in no function");
        assert_eq!((function.address, function.name), (routine, name));
        assert_eq!(function.offset, at - routine);
        // The label itself is still found by name.
        let label = probe_kernel::symbols::iter().find(|s| s.address == at && s.name.starts_with("fx_"));
        assert!(label.is_some(), "label at {at:#x} not in the table");
    }
}
