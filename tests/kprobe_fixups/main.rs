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
use probe_kernel::testing::{armed_opcode, leak, stack_word, text_byte};

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
        let top = stack_word(regs.esp as usize) as u32;
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
// The cases, one module per family of fix-ups. Each holds its routines and
// their tests. A routine is cdecl: one u32 argument at [esp + 4], result in
// EAX; EBX, ESI, EDI and EBP are preserved. Stack at entry:
//
//     esp + 4:  argument
//     esp:      return address
// ---------------------------------------------------------------------------

mod backward;
mod calls;
mod esp_operand;
mod flags;
mod jumps;
mod plain;
mod rep_strings;

mod harness;

use harness::*;

#[test_case]
fn every_routine_is_its_own_function_in_the_symbol_table() {
    let cases = [
        (label!(fx_plain_add_at), plain::fx_plain_add as *const () as usize, "kprobe_fixups::plain::fx_plain_add"),
        (label!(fx_loop_at), jumps::fx_loop as *const () as usize, "kprobe_fixups::jumps::fx_loop"),
        (
            label!(fx_ret_imm_at),
            calls::fx_ret_imm_inner as *const () as usize,
            "kprobe_fixups::calls::fx_ret_imm_inner",
        ),
        (
            label!(fx_rep_stosd_at),
            rep_strings::fx_rep_stosd as *const () as usize,
            "kprobe_fixups::rep_strings::fx_rep_stosd",
        ),
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
