//! Prefixed conditional jumps branch alike unprobed, single-stepped and boosted (issue 7, bug 3).
//!
//! Why: the boosted copy of a `jcc` is re-encoded as `0f 8x rel32`, and its
//! condition used to be read from a raw byte position that segment,
//! branch-hint, `bnd` (f2) and `rep` (f3) prefixes shift: 6 of 8 prefixed
//! variants branched wrongly when boosted. Here one arena function is
//! rewritten with each variant — no prefix, every single prefix and every
//! ordered pair of distinct prefixes, short and near forms, all 16
//! conditions — and run under all 32 combinations of CF, PF, ZF, SF and OF.
//! Each variant the decoder rejects must be refused by registration instead.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(probe_kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

extern crate alloc;

use alloc::vec::Vec;
use core::arch::naked_asm;
use core::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use probe_kernel::arch::cpu::EFLAGS_IF;
use probe_kernel::arch::x86::kprobes::Fixup;
use probe_kernel::arch::x86::kprobes::decode::decode_one;
use probe_kernel::arch::x86::patch::text_poke;
use probe_kernel::kprobes::{Kprobe, KprobeError, KprobeFlags, PreAction, PtRegs, register_kprobe, unregister_kprobe};
use probe_kernel::println;

probe_kernel::test_kernel_main!();

/// Loads EFLAGS from its argument, then runs the variant written at
/// `VARIANT_OFFSET` (a 58-byte hole of `nop`s until a test fills it).
#[unsafe(naked)]
#[unsafe(no_mangle)]
extern "C" fn jcc_arena(flags: u32) -> u32 {
    naked_asm!(
        "mov eax, [esp + 4]", // 4 bytes
        "push eax",           // 1 byte
        "popfd",              // 1 byte
        ".rept 58",
        "nop",
        ".endr",
        "ret",
    );
}

const VARIANT_OFFSET: usize = 6;
const HOLE: usize = 58;
/// Segment overrides (also branch hints), address size, `bnd`/`repne`, `rep`.
const PREFIXES: [u8; 9] = [0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0x67, 0xf2, 0xf3];
const CF: u32 = 1 << 0;
const PF: u32 = 1 << 2;
const ZF: u32 = 1 << 6;
const SF: u32 = 1 << 7;
const OF: u32 = 1 << 11;
/// Marks the taken path's result (EFLAGS bit 30 is always zero).
const TAKEN: u32 = 1 << 30;

/// `prefixes jcc → taken`, then the not-taken path (`pushfd; pop eax;
/// ret`), then the taken path (the same, marked with `TAKEN`).
fn variant(prefixes: &[u8], condition: u8, near: bool) -> Vec<u8> {
    let not_taken = [0x9c, 0x58, 0xc3];
    let taken = [0x9c, 0x58, 0x0d, 0x00, 0x00, 0x00, 0x40, 0xc3];
    let mut code = prefixes.to_vec();
    if near {
        code.extend([0x0f, 0x80 | condition]);
        code.extend((not_taken.len() as u32).to_le_bytes());
    } else {
        code.extend([0x70 | condition, not_taken.len() as u8]);
    }
    code.extend(not_taken);
    code.extend(taken);
    code.resize(HOLE, 0x90);
    code
}

fn flag_inputs() -> impl Iterator<Item = u32> {
    (0..32u32).map(|bits| {
        let pick = |bit: u32, flag: u32| if bits & bit != 0 { flag } else { 0 };
        0x2 | EFLAGS_IF | pick(1, CF) | pick(2, PF) | pick(4, ZF) | pick(8, SF) | pick(16, OF)
    })
}

fn run_all() -> [u32; 32] {
    let mut results = [0; 32];
    for (result, flags) in results.iter_mut().zip(flag_inputs()) {
        *result = jcc_arena(flags);
    }
    results
}

/// What the branch must do, from the SDM's condition table.
fn expected_taken(condition: u8, flags: u32) -> bool {
    let (cf, pf, zf, sf, of) = (flags & CF != 0, flags & PF != 0, flags & ZF != 0, flags & SF != 0, flags & OF != 0);
    let base = match condition >> 1 {
        0 => of,
        1 => cf,
        2 => zf,
        3 => cf || zf,
        4 => sf,
        5 => pf,
        6 => sf != of,
        _ => zf || sf != of,
    };
    base != (condition & 1 != 0)
}

static HITS: AtomicUsize = AtomicUsize::new(0);

fn count(_p: &Kprobe, _r: &mut PtRegs) -> PreAction {
    HITS.fetch_add(1, SeqCst);
    PreAction::Continue
}
fn post(_p: &Kprobe, _r: &mut PtRegs) {}

static BOOSTED: Kprobe = Kprobe::new().symbol("jcc_arena", VARIANT_OFFSET).pre_handler(count);
static STEPPED: Kprobe = Kprobe::new().symbol("jcc_arena", VARIANT_OFFSET).pre_handler(count).post_handler(post);

fn prefix_combinations() -> Vec<Vec<u8>> {
    let mut all = alloc::vec![Vec::new()];
    all.extend(PREFIXES.iter().map(|&p| alloc::vec![p]));
    for &first in &PREFIXES {
        all.extend(PREFIXES.iter().filter(|&&second| second != first).map(|&second| alloc::vec![first, second]));
    }
    all
}

fn arena_address() -> usize {
    jcc_arena as *const () as usize + VARIANT_OFFSET
}

#[test_case]
fn every_accepted_prefixed_jcc_branches_alike_unprobed_stepped_and_boosted() {
    let (mut variants, mut refused, mut runs) = (0, 0, 0);
    for prefixes in prefix_combinations() {
        for near in [false, true] {
            for condition in 0..16u8 {
                let code = variant(&prefixes, condition, near);
                // SAFETY: no probe is armed in the arena and nothing else
                // runs it; the new bytes are a whole, valid instruction sequence.
                unsafe { text_poke(arena_address(), &code) }.unwrap();
                let accepted = matches!(decode_one(&code, arena_address()), Ok(insn) if matches!(insn.fixup, Fixup::ConditionalJump { .. }));
                if !accepted {
                    assert!(register_kprobe(&BOOSTED).is_err(), "{prefixes:x?} {condition:x} near={near}: refused");
                    refused += 1;
                    continue;
                }
                let unprobed = run_all();
                for (result, flags) in unprobed.iter().zip(flag_inputs()) {
                    let taken = result & TAKEN != 0;
                    assert_eq!(
                        taken,
                        expected_taken(condition, flags),
                        "{prefixes:x?} {condition:x} near={near} unprobed"
                    );
                    assert_eq!(result & !TAKEN & 0x8d5, flags & 0x8d5, "flags reach the paths intact");
                }
                for (probe, boosted) in [(&BOOSTED, true), (&STEPPED, false)] {
                    HITS.store(0, SeqCst);
                    register_kprobe(probe).unwrap();
                    assert_eq!(probe.flags().contains(KprobeFlags::BOOSTED), boosted);
                    let probed = run_all();
                    unregister_kprobe(probe).unwrap();
                    assert_eq!(probed, unprobed, "{prefixes:x?} jcc {condition:x} near={near} boosted={boosted}");
                    assert_eq!(HITS.load(SeqCst), 32);
                    runs += 32;
                }
                variants += 1;
            }
        }
    }
    println!("\n  {variants} prefixed jcc variants accepted and identical in {runs} probed runs; {refused} refused");
    assert_eq!(variants + refused, prefix_combinations().len() * 32);
    assert!(variants >= 82 * 32 - refused && variants > 2000);
}

#[test_case]
fn an_operand_size_prefix_on_a_jcc_is_refused() {
    for near in [false, true] {
        let code = variant(&[0x66], 0x4, near);
        // SAFETY: as above.
        unsafe { text_poke(arena_address(), &code) }.unwrap();
        assert_eq!(
            register_kprobe(&BOOSTED),
            Err(KprobeError::UnsupportedInstruction("16-bit operand-size branch truncates EIP"))
        );
    }
}
