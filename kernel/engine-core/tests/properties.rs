//! Property tests of the engine's pure algorithms, on the host.
//!
//! Why: a relocated branch that lands one byte off, a condition read from
//! the wrong byte, or an index that loses a site after some history of
//! inserts and removes would each send a probed kernel somewhere wrong, and
//! only under inputs a hand-picked test kernel may never try. Here random
//! instructions are classified and relocated and decoded back with iced-x86,
//! and random index histories are checked against a plain map.
use iced_x86::{ConditionCode, Decoder, DecoderOptions, FlowControl, Instruction, Mnemonic};
use probe_engine_core::decode::{Fixup, decode_one};
use probe_engine_core::index::SiteIndex;
use probe_engine_core::relocate::relocate;
use proptest::prelude::*;
use std::collections::BTreeMap;

/// Prefixes a branch may carry without changing what it does in 32-bit code.
const HARMLESS_PREFIXES: [u8; 9] = [0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0x67, 0xf2, 0xf3];

fn decode_all(code: &[u8], ip: usize) -> Vec<Instruction> {
    let mut decoder = Decoder::with_ip(32, code, ip as u64, DecoderOptions::NONE);
    let mut out = Vec::new();
    while decoder.can_decode() {
        let insn = decoder.decode();
        if insn.is_invalid() {
            break;
        }
        out.push(insn);
    }
    out
}

/// A branch instruction: prefixes, then a short or near form with `rel`.
fn branch(prefixes: &[u8], kind: u8, condition: u8, rel: i32, near: bool) -> Vec<u8> {
    let mut code = prefixes.to_vec();
    match (kind, near) {
        (0, false) => code.extend([0xeb, rel as i8 as u8]),
        (0, true) => {
            code.push(0xe9);
            code.extend(rel.to_le_bytes());
        }
        (1, false) => code.extend([0x70 | condition, rel as i8 as u8]),
        (1, true) => {
            code.extend([0x0f, 0x80 | condition]);
            code.extend(rel.to_le_bytes());
        }
        _ => {
            code.push(0xe8);
            code.extend(rel.to_le_bytes());
        }
    }
    code
}

fn condition_of(code: ConditionCode) -> u8 {
    // iced numbers the conditions o, no, b, ae, … g from 1, in opcode order.
    code as u8 - 1
}

proptest! {
    /// Every relocated jmp, jcc and call, with any harmless prefixes and any
    /// displacement, decodes back to the same target and condition, and
    /// continues at the original next instruction.
    #[test]
    fn relocated_branches_keep_their_target_and_condition(
        address in 0x0010_0000usize..0x0800_0000,
        base in 0x0020_0000usize..0x0800_0000,
        prefixes in proptest::collection::vec(proptest::sample::select(&HARMLESS_PREFIXES[..]), 0..3),
        kind in 0u8..3,
        condition in 0u8..16,
        rel in any::<i32>(),
        near in any::<bool>(),
    ) {
        let near = near || kind == 2; // call has no short form
        let rel = if near { rel } else { rel as i8 as i32 };
        let prefixes = if kind == 2 { &prefixes[..0] } else { &prefixes[..] };
        let code = branch(prefixes, kind, condition, rel, near);
        let insn = decode_one(&code, address).expect("a harmless-prefixed branch is accepted");
        let next = address + code.len();
        let target = (next as u32).wrapping_add(rel as u32) as usize;
        let copy = relocate(&insn, address, base);
        let decoded = decode_all(&copy.bytes[..copy.len], base);
        match insn.fixup {
            Fixup::RelativeJump { target: t } => {
                prop_assert_eq!(kind, 0);
                prop_assert_eq!(t as usize, target);
                prop_assert_eq!(decoded.len(), 1);
                prop_assert_eq!(decoded[0].mnemonic(), Mnemonic::Jmp);
                prop_assert_eq!(decoded[0].near_branch_target() as u32, target as u32);
            }
            Fixup::ConditionalJump { target: t, condition: c } => {
                prop_assert_eq!(kind, 1);
                prop_assert_eq!((t as usize, c), (target, condition));
                prop_assert_eq!(decoded.len(), 2);
                prop_assert_eq!(decoded[0].flow_control(), FlowControl::ConditionalBranch);
                prop_assert_eq!(condition_of(decoded[0].condition_code()), condition);
                prop_assert_eq!(decoded[0].near_branch_target() as u32, target as u32);
                prop_assert_eq!(decoded[1].mnemonic(), Mnemonic::Jmp);
                prop_assert_eq!(decoded[1].near_branch_target() as u32, next as u32);
            }
            Fixup::RelativeCall { target: t } => {
                prop_assert_eq!(kind, 2);
                prop_assert_eq!(t as usize, target);
                prop_assert_eq!(decoded.len(), 2);
                prop_assert_eq!(decoded[0].mnemonic(), Mnemonic::Push);
                prop_assert_eq!(decoded[0].immediate32(), next as u32, "the pushed return address is the original's");
                prop_assert_eq!(decoded[1].mnemonic(), Mnemonic::Jmp);
                prop_assert_eq!(decoded[1].near_branch_target() as u32, target as u32);
            }
            other => prop_assert!(false, "unexpected fix-up {:?}", other),
        }
    }

    /// Any bytes: classification never panics; an accepted instruction that
    /// is not a relative branch is copied unchanged and followed by a jump
    /// to the next original instruction.
    #[test]
    fn any_bytes_classify_without_panicking(
        bytes in proptest::collection::vec(any::<u8>(), 15),
        address in 0x0010_0000usize..0x0800_0000,
        base in 0x0020_0000usize..0x0800_0000,
    ) {
        if let Ok(insn) = decode_one(&bytes, address) {
            prop_assert!(insn.length >= 1 && insn.length <= 15);
            prop_assert_eq!(&insn.bytes[..insn.length], &bytes[..insn.length]);
            let copy = relocate(&insn, address, base);
            if !matches!(insn.fixup, Fixup::RelativeJump { .. } | Fixup::ConditionalJump { .. } | Fixup::RelativeCall { .. }) {
                prop_assert_eq!(&copy.bytes[..insn.length], &bytes[..insn.length]);
                let back = decode_all(&copy.bytes[insn.length..copy.len], base + insn.length);
                prop_assert_eq!(back.len(), 1);
                prop_assert_eq!(back[0].near_branch_target() as usize, address + insn.length);
            }
        }
    }

    /// Random histories of inserts and removes: the index finds exactly the
    /// live sites, by their addresses, and holds no tombstones.
    #[test]
    fn the_index_matches_a_map_under_any_history(
        steps in proptest::collection::vec((0usize..24, 0x0010_0000usize..0x0010_4000), 1..400),
    ) {
        const SITES: usize = 24;
        let index: SiteIndex<64> = SiteIndex::new();
        let mut addresses = [0usize; SITES];
        let mut live: BTreeMap<usize, usize> = BTreeMap::new(); // address -> site
        for (site, address) in steps {
            if addresses[site] != 0 {
                let old = addresses[site];
                index.remove(site, |s| addresses[s]);
                live.remove(&old);
                addresses[site] = 0;
            } else if let std::collections::btree_map::Entry::Vacant(entry) = live.entry(address) {
                addresses[site] = address;
                index.insert(site, address);
                entry.insert(site);
            }
            prop_assert_eq!(index.occupancy(), live.len());
            for (&address, &site) in &live {
                prop_assert_eq!(index.lookup(address, |s| addresses[s]), Some(site));
            }
        }
        for address in (0x0010_0000usize..0x0010_4000).step_by(61) {
            prop_assert_eq!(index.lookup(address, |s| addresses[s]), live.get(&address).copied());
        }
    }
}

#[test]
fn every_condition_nibble_survives_classification() {
    for condition in 0..16u8 {
        for code in [vec![0x70 | condition, 0x10], vec![0x0f, 0x80 | condition, 0x10, 0, 0, 0]] {
            let insn = decode_one(&code, 0x10_0000).unwrap();
            assert!(matches!(insn.fixup, Fixup::ConditionalJump { condition: c, .. } if c == condition), "{code:x?}");
        }
    }
}

#[test]
fn a_sixteen_bit_branch_is_refused() {
    for code in [vec![0x66, 0xeb, 0x10], vec![0x66, 0x74, 0x10], vec![0x66, 0xe8, 0x10, 0x00], vec![0x66, 0xc3]] {
        assert!(decode_one(&code, 0x10_0000).is_err(), "{code:x?}");
    }
}

proptest! {
    /// The windowed walk of `decode_in_function` agrees with decoding the
    /// whole function at once, at every address of random code.
    #[test]
    fn decoding_in_a_function_agrees_with_one_pass(
        code in proptest::collection::vec(any::<u8>(), 1..120),
        start in 0x0010_0000usize..0x0800_0000,
    ) {
        use probe_engine_core::decode::{decode_at, decode_in_function};
        let function = start..start + code.len();
        for address in function.clone() {
            let end = (address + 15).min(function.end);
            let one_pass = decode_at(&code[..end - start], start, address);
            let windowed = decode_in_function(address, function.clone(), |a| code[a - start]);
            prop_assert_eq!(windowed, one_pass, "at offset {}", address - start);
        }
    }

    /// One walk of a function's instruction starts answers every address
    /// exactly as the walk from the start that `decode_in_function` makes.
    #[test]
    fn instruction_starts_agree_with_decoding_in_the_function(
        code in proptest::collection::vec(any::<u8>(), 1..160),
        start in 0x0010_0000usize..0x0800_0000,
    ) {
        use probe_engine_core::decode::{InstructionStarts, decode_in_function};
        let function = start..start + code.len();
        let read = |a: usize| code[a - start];
        let mut starts = InstructionStarts::<8>::empty();
        prop_assert!(starts.walk(function.clone(), read));
        for address in function.clone() {
            let walked = decode_in_function(address, function.clone(), read);
            prop_assert_eq!(starts.decode(address, read), walked, "at offset {}", address - start);
        }
        // Too long a function is refused, and answers nothing.
        let mut short = InstructionStarts::<1>::empty();
        prop_assert_eq!(short.walk(function.clone(), read), code.len() <= 32);
    }
}

/// Addresses whose home bucket in a `SiteIndex<16>` is the same: one long
/// probe run, so every removal shifts entries back.
fn colliding_addresses(count: usize) -> Vec<usize> {
    let home = SiteIndex::<16>::bucket(0x10_0000);
    (0x10_0000..).step_by(4).filter(|&a| SiteIndex::<16>::bucket(a) == home).take(count).collect()
}

#[test]
fn a_lookup_overtaken_by_a_removal_on_another_cpu_still_finds_its_site() {
    use std::cell::Cell;
    // One probe run: sites 0..4 in buckets home..home+4. A lookup of site 4
    // is comparing site 3 (bucket home+3) when another CPU removes site 0:
    // every entry shifts back one bucket, site 4 into home+3, which the
    // lookup has just read, and home+4 empties. The lookup's next bucket
    // is empty: one walk would miss site 4, indexed all along.
    let addresses = colliding_addresses(5);
    let index = SiteIndex::<16>::new();
    let removed = Cell::new(false);
    for (site, &address) in addresses.iter().enumerate() {
        index.insert(site, address);
    }
    let address_of = |site: usize| if removed.get() && site == 0 { 0 } else { addresses[site] };
    let compared = std::cell::RefCell::new(Vec::new());
    let found = index.lookup(addresses[4], |site| {
        compared.borrow_mut().push(site);
        if site == 3 && !removed.get() {
            // "Another CPU", between this lookup's bucket reads.
            index.remove(0, |s| addresses[s]);
            removed.set(true);
        }
        address_of(site)
    });
    assert_eq!(found, Some(4), "the overtaken lookup looked again");
    assert_eq!(*compared.borrow(), [0, 1, 2, 3, 1, 2, 3, 4], "a miss, then a second walk over the shifted run");
    assert_eq!(index.lookup(addresses[4], address_of), Some(4));
    assert_eq!(index.lookup(addresses[0], address_of), None);
    assert_eq!(index.occupancy(), 4);
}
