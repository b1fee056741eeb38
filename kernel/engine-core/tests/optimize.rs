//! The jump optimizer's analysis (`optimize::analyze`), on the host.
//!
//! Why: `analyze` answers the whole-function questions (branch targets
//! inside the range, indirect jumps) two ways: from a walk of the function
//! the registry already made, or by decoding the function itself. If the
//! two ever disagree, a probe is optimized over a jump target (the jump
//! would land in the middle of the `jmp`) or refused for nothing; random
//! functions of plain instructions, short and near branches to anywhere,
//! indirect jumps and returns must be accepted (with the same displaced
//! length) or refused alike at every instruction boundary, and each
//! refusal must name the right address.
use iced_x86::{Decoder, DecoderOptions};
use probe_engine_core::decode::InstructionStarts;
use probe_engine_core::optimize::{Facts, JUMP_LEN, OptimizeRefusal, analyze};
use proptest::prelude::*;

const BASE: usize = 0x10_0000;
type Walk = InstructionStarts<64>;

/// Plain instructions of several lengths (mov, lea, add, push, nop, imm32).
const PLAIN: &[&[u8]] = &[
    &[0x8b, 0x44, 0x24, 0x04],
    &[0x8d, 0x44, 0x40, 0x01],
    &[0x83, 0xc0, 0x01],
    &[0x55],
    &[0x90],
    &[0x89, 0xe5],
    &[0xb8, 0x78, 0x56, 0x34, 0x12],
    &[0x0f, 0xb6, 0xc0],
];

/// One instruction of a random function.
#[derive(Clone, Debug)]
enum Piece {
    Plain(usize),
    /// `jcc rel8` (or `jmp rel8` for condition 16) to the piece `target`.
    Short(u8, usize),
    /// `jmp rel32` / `call rel32` to a byte offset (any byte, boundary or not).
    Near(bool, usize),
    /// `jmp ecx`.
    Indirect,
    Ret,
}

fn piece() -> impl Strategy<Value = Piece> {
    prop_oneof![
        8 => (0..PLAIN.len()).prop_map(Piece::Plain),
        2 => (0u8..17, 0usize..40).prop_map(|(c, t)| Piece::Short(c, t)),
        1 => (any::<bool>(), 0usize..120).prop_map(|(call, t)| Piece::Near(call, t)),
        1 => Just(Piece::Indirect),
        1 => Just(Piece::Ret),
    ]
}

fn length(piece: &Piece) -> usize {
    match piece {
        Piece::Plain(i) => PLAIN[*i].len(),
        Piece::Short(..) | Piece::Indirect => 2,
        Piece::Near(..) => 5,
        Piece::Ret => 1,
    }
}

/// Assembles the pieces at BASE (short branches aim at a piece's start,
/// near ones at a byte offset; out-of-range short branches become nops).
fn assemble(pieces: &[Piece]) -> Vec<u8> {
    let starts: Vec<usize> = pieces.iter().scan(0, |at, p| Some(std::mem::replace(at, *at + length(p)))).collect();
    let mut code = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        let next = starts[i] + length(piece);
        match piece {
            Piece::Plain(p) => code.extend_from_slice(PLAIN[*p]),
            Piece::Short(condition, target) => {
                let target = starts[*target % starts.len()] as isize;
                match i8::try_from(target - next as isize) {
                    Ok(rel) if *condition == 16 => code.extend([0xeb, rel as u8]),
                    Ok(rel) => code.extend([0x70 | condition, rel as u8]),
                    Err(_) => code.extend([0x90, 0x90]),
                }
            }
            Piece::Near(call, target) => {
                code.push(if *call { 0xe8 } else { 0xe9 });
                code.extend(((*target as isize - next as isize) as i32).to_le_bytes());
            }
            Piece::Indirect => code.extend([0xff, 0xe1]),
            Piece::Ret => code.push(0xc3),
        }
    }
    code
}

fn boundaries(code: &[u8]) -> Vec<usize> {
    let mut decoder = Decoder::with_ip(32, code, BASE as u64, DecoderOptions::NONE);
    let mut out = Vec::new();
    while decoder.can_decode() {
        let insn = decoder.decode();
        out.push(insn.ip() as usize);
    }
    out
}

/// `analyze` at `address` of `code`, with the walk's facts or without.
fn analyzed(code: &[u8], address: usize, with_walk: bool) -> Result<usize, OptimizeRefusal> {
    let function = BASE..BASE + code.len();
    let read = |a: usize| code[a - BASE];
    let mut walk = Walk::empty();
    assert!(walk.walk(function.clone(), read));
    let facts = with_walk.then_some(Facts(&walk));
    analyze(address, function, facts, read).map(|displaced| displaced.length)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_walk_and_the_full_decode_agree_everywhere(pieces in prop::collection::vec(piece(), 2..30)) {
        let code = assemble(&pieces);
        for address in boundaries(&code) {
            let fast = analyzed(&code, address, true);
            let slow = analyzed(&code, address, false);
            // The same verdict, length or reason, with or without the walk:
            // a function with several faults is refused for the first.
            prop_assert_eq!(fast, slow, "at +{:#x} of {:02x?}", address - BASE, code);
            if let Ok(length) = fast {
                prop_assert!(length >= JUMP_LEN && address + length <= BASE + code.len());
            }
        }
    }
}

/// Each refusal, with its address, on hand-assembled functions.
#[test]
fn each_refusal_names_its_address() {
    use OptimizeRefusal::*;
    // mov eax,[esp+4]; add eax,1; cmp eax,10; jb -8 (to +4); ret
    let jump_into = [0x8b, 0x44, 0x24, 0x04, 0x83, 0xc0, 0x01, 0x83, 0xf8, 0x0a, 0x72, 0xf8, 0xc3];
    // mov; lea; jmp ecx; ret
    let indirect = [0x8b, 0x44, 0x24, 0x04, 0x8d, 0x44, 0x40, 0x01, 0xff, 0xe1, 0xc3];
    // mov ecx,[esp+4]; loop +1; ret; ret
    let looping = [0x8b, 0x4c, 0x24, 0x04, 0xe2, 0x01, 0xc3, 0xc3];
    // jmp +3; nop x3; mov; ret
    let jump_first = [0xeb, 0x03, 0x90, 0x90, 0x90, 0x8b, 0x44, 0x24, 0x04, 0xc3];
    // mov; lea; ret; (invalid) 0f 04
    let undecodable = [0x8b, 0x44, 0x24, 0x04, 0x8d, 0x44, 0x40, 0x01, 0xc3, 0x0f, 0x04];
    for with_walk in [true, false] {
        assert_eq!(analyzed(&jump_into, BASE, with_walk), Err(JumpIntoRange { from: BASE + 10 }));
        assert_eq!(analyzed(&jump_into, BASE + 4, with_walk), Ok(6), "a jump to the probe itself is fine");
        assert_eq!(analyzed(&indirect, BASE, with_walk), Err(IndirectJump { at: BASE + 8 }));
        assert_eq!(analyzed(&looping, BASE, with_walk), Err(Unrelocatable { at: BASE + 4 }));
        assert_eq!(analyzed(&jump_first, BASE, with_walk), Err(Unrelocatable { at: BASE }));
        assert_eq!(analyzed(&jump_first, BASE + 5, with_walk), Ok(5), "mov + ret: exactly five bytes left");
        assert_eq!(analyzed(&looping, BASE + 6, with_walk), Err(PastFunctionEnd));
        assert_eq!(analyzed(&undecodable[..9], BASE, with_walk), Ok(8));
    }
    assert_eq!(analyzed(&undecodable, BASE, false), Err(Undecodable { at: BASE + 9 }));
}
