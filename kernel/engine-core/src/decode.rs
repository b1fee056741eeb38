//! Decoding and classifying a probed instruction (registration time only).
//!
//! The instruction is decoded once with iced-x86 and reduced to a [`Fixup`]:
//! what must be repaired after its copy ran in a slot instead of at its own
//! address. The trap path never decodes. Instructions that cannot be run out
//! of line are refused here with the reason.
use iced_x86::{Code, ConditionCode, Decoder, DecoderOptions, FlowControl, Instruction, Mnemonic, OpKind, Register};

/// The longest x86 instruction.
pub const MAX_INSN_LEN: usize = 15;

/// How to resume after the copy of the instruction ran in a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fixup {
    /// No control transfer: continue after the original instruction.
    Plain,
    /// `jmp rel8/rel32`.
    RelativeJump {
        /// The original target.
        target: u32,
    },
    /// `jcc rel8/rel32`; `condition` is the low nibble of the opcode.
    ConditionalJump {
        /// The original target.
        target: u32,
        /// The condition, as the low nibble of the opcode (`7x`, `0f 8x`).
        condition: u8,
    },
    /// `loop`, `loope`, `loopne`, `jecxz`: relative, rel8 only.
    LoopOrJecxz,
    /// `call rel32`: the pushed return address must name the original.
    RelativeCall {
        /// The original target.
        target: u32,
    },
    /// `call r/m32`: absolute target, pushed return address to repair.
    IndirectCall,
    /// `jmp r/m32`: absolute target, nothing to repair.
    IndirectJump,
    /// `ret`, `ret imm16`: absolute target, nothing to repair.
    Return,
    /// `pushfd`: the pushed TF/IF must be the original code's.
    PushFlags,
    /// `popfd`, `cli`: they decide IF themselves.
    InterruptFlagWriter,
    /// `sti`: emulated. Its interrupt shadow also holds back the single-step
    /// trap, which would then come one instruction late, inside the slot; so
    /// the slot steps a `nop` and the fix-up sets IF (as modern Linux does).
    EnableInterrupts,
    /// A `rep`-prefixed string instruction: traps once per iteration.
    RepeatedString,
}

impl Fixup {
    /// Whether EIP after the single-step is relative to the slot (and must be
    /// moved back to the original address), as opposed to absolute.
    pub const fn slot_relative(self) -> bool {
        !matches!(self, Fixup::IndirectCall | Fixup::IndirectJump | Fixup::Return)
    }

    /// Whether the instruction pushes a return address.
    pub const fn pushes_return_address(self) -> bool {
        matches!(self, Fixup::RelativeCall { .. } | Fixup::IndirectCall)
    }

    /// Whether the instruction can run "boosted": as a relocated copy
    /// followed by a jump back, with no debug trap.
    pub const fn boostable(self) -> bool {
        !matches!(self, Fixup::IndirectCall | Fixup::LoopOrJecxz | Fixup::InterruptFlagWriter | Fixup::EnableInterrupts)
    }
}

/// A decoded, accepted instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    /// The original bytes (only `length` are meaningful).
    pub bytes: [u8; MAX_INSN_LEN],
    /// Instruction length.
    pub length: usize,
    /// What to repair after running it out of line.
    pub fixup: Fixup,
    /// The mnemonic, for messages.
    pub mnemonic: Mnemonic,
}

/// A one-byte `nop`, classified (a filler for arrays of instructions).
pub const NOP_INSN: Insn = Insn {
    bytes: [0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    length: 1,
    fixup: Fixup::Plain,
    mnemonic: Mnemonic::Nop,
};

/// Why an instruction cannot be probed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The bytes do not decode.
    Invalid,
    /// The address falls inside an instruction.
    NotBoundary,
    /// The instruction cannot be run out of line; the text says why.
    Unsupported(&'static str),
}

/// Walks `code` (the function's original bytes, starting at `start`) to
/// `address`, which must be an instruction boundary, and classifies the
/// instruction there.
pub fn decode_at(code: &[u8], start: usize, address: usize) -> Result<Insn, Refusal> {
    let mut decoder = Decoder::with_ip(32, code, start as u64, DecoderOptions::NONE);
    let mut insn = Instruction::default();
    while decoder.can_decode() {
        decoder.decode_out(&mut insn);
        let ip = insn.ip() as usize;
        if ip == address {
            if insn.is_invalid() {
                return Err(Refusal::Invalid);
            }
            return classify(&insn, &code[ip - start..ip - start + insn.len()]);
        }
        if ip > address || insn.is_invalid() {
            break;
        }
        if ip + insn.len() > address {
            return Err(Refusal::NotBoundary);
        }
    }
    Err(Refusal::NotBoundary)
}

/// Decodes the instruction at `address` inside `function`, walking from the
/// function's start over its original bytes as `read_original` gives them
/// (armed breakpoints undone). Registration time only. It allocates
/// nothing: each instruction is decoded from a 15-byte window, so its cost
/// is the walk alone, whatever state the heap is in.
pub fn decode_in_function(
    address: usize,
    function: core::ops::Range<usize>,
    read_original: impl Fn(usize) -> u8,
) -> Result<Insn, Refusal> {
    let end = (address + MAX_INSN_LEN).min(function.end.max(address + 1));
    let mut ip = function.start;
    while ip < end {
        let mut window = [0u8; MAX_INSN_LEN];
        let available = (end - ip).min(MAX_INSN_LEN);
        for (offset, byte) in window[..available].iter_mut().enumerate() {
            *byte = read_original(ip + offset);
        }
        let mut decoder = Decoder::with_ip(32, &window[..available], ip as u64, DecoderOptions::NONE);
        let insn = decoder.decode();
        if ip == address {
            if insn.is_invalid() {
                return Err(Refusal::Invalid);
            }
            return classify(&insn, &window[..insn.len()]);
        }
        if insn.is_invalid() || ip + insn.len() > address {
            return Err(Refusal::NotBoundary);
        }
        ip += insn.len();
    }
    Err(Refusal::NotBoundary)
}

/// Where a function's instructions start, found by one walk from its start
/// over its original bytes: afterwards [`decode`](Self::decode) answers
/// what [`decode_in_function`] would for any address of the function with
/// one decode, instead of a walk from the start each time (registering a
/// probe deep inside a long function, or many probes in one, stays cheap).
/// A bitmap of `WORDS` × 32 bytes' worth, held inline (no allocation), so a
/// cache of these can be a static; longer functions are not walked.
/// Registration time only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstructionStarts<const WORDS: usize> {
    function: core::ops::Range<usize>,
    /// Bit `i`: an instruction starts at `function.start + i`.
    bits: [u32; WORDS],
    /// Bit `i`: a direct jump or call of the function targets
    /// `function.start + i` (for the jump optimizer).
    targets: [u32; WORDS],
    /// The first indirect jump of the function, if it has one.
    indirect_jump_at: Option<usize>,
    /// Where the walk met an undecodable instruction, if it did (it stops there).
    invalid_at: Option<usize>,
    /// [`checksum`] of the bytes walked (the whole function, if the walk
    /// completed), so a user of the facts can tell the text is unchanged.
    checksum: u32,
}

/// FNV-1a over `bytes`: what [`InstructionStarts`] remembers of the bytes
/// it walked.
pub fn checksum(bytes: impl IntoIterator<Item = u8>) -> u32 {
    bytes.into_iter().fold(0x811c_9dc5, |hash, byte| (hash ^ byte as u32).wrapping_mul(0x0100_0193))
}

impl<const WORDS: usize> InstructionStarts<WORDS> {
    /// The longest function (in bytes) a walk covers.
    pub const CAPACITY: usize = WORDS * 32;

    /// Knows no function yet.
    pub const fn empty() -> Self {
        InstructionStarts {
            function: 0..0,
            bits: [0; WORDS],
            targets: [0; WORDS],
            indirect_jump_at: None,
            invalid_at: None,
            checksum: 0,
        }
    }

    /// Walks `function` once, decoding each instruction from a window of at
    /// most 15 bytes that ends at the function's end, as
    /// [`decode_in_function`] does. Refuses (returns `false`, knowing no
    /// function) one longer than [`CAPACITY`](Self::CAPACITY) bytes.
    pub fn walk(&mut self, function: core::ops::Range<usize>, read_original: impl Fn(usize) -> u8) -> bool {
        self.function = 0..0;
        self.invalid_at = None;
        self.indirect_jump_at = None;
        if function.len() > Self::CAPACITY {
            return false;
        }
        self.bits[..function.len().div_ceil(32)].fill(0);
        self.targets[..function.len().div_ceil(32)].fill(0);
        let mut sum = checksum([]);
        let mut ip = function.start;
        while ip < function.end {
            let mut window = [0u8; MAX_INSN_LEN];
            let available = (function.end - ip).min(MAX_INSN_LEN);
            for (offset, byte) in window[..available].iter_mut().enumerate() {
                *byte = read_original(ip + offset);
            }
            let insn = Decoder::with_ip(32, &window[..available], ip as u64, DecoderOptions::NONE).decode();
            if insn.is_invalid() {
                self.invalid_at = Some(ip);
                break;
            }
            let offset = ip - function.start;
            self.bits[offset / 32] |= 1 << (offset % 32);
            sum = window[..insn.len()].iter().fold(sum, |hash, &byte| (hash ^ byte as u32).wrapping_mul(0x0100_0193));
            match insn.flow_control() {
                FlowControl::IndirectBranch => {
                    self.indirect_jump_at.get_or_insert(ip);
                }
                FlowControl::UnconditionalBranch | FlowControl::ConditionalBranch | FlowControl::Call => {
                    let target = insn.near_branch_target() as usize;
                    if function.contains(&target) {
                        let offset = target - function.start;
                        self.targets[offset / 32] |= 1 << (offset % 32);
                    }
                }
                _ => {}
            }
            ip += insn.len();
        }
        self.checksum = sum;
        self.function = function;
        true
    }

    /// The function walked (empty before a walk).
    pub fn function(&self) -> core::ops::Range<usize> {
        self.function.clone()
    }

    /// Whether a decodable instruction starts at `address`.
    pub fn is_start(&self, address: usize) -> bool {
        self.function.contains(&address) && {
            let offset = address - self.function.start;
            self.bits[offset / 32] & (1 << (offset % 32)) != 0
        }
    }

    /// Whether a direct jump or call of the function targets an address in
    /// `range` (inside the function walked).
    pub fn targets_inside(&self, range: core::ops::Range<usize>) -> bool {
        range.filter(|address| self.function.contains(address)).any(|address| {
            let offset = address - self.function.start;
            self.targets[offset / 32] & (1 << (offset % 32)) != 0
        })
    }

    /// The first indirect jump of the function walked, if it has one.
    pub fn indirect_jump(&self) -> Option<usize> {
        self.indirect_jump_at
    }

    /// Whether the walk decoded the whole function.
    pub fn complete(&self) -> bool {
        self.invalid_at.is_none()
    }

    /// [`checksum`] of the function's bytes as walked, if the walk
    /// decoded all of them (the cheap test that the text is unchanged).
    pub fn checksum(&self) -> Option<u32> {
        self.complete().then_some(self.checksum)
    }

    /// What [`decode_in_function`] says of `address` in the function walked.
    pub fn decode(&self, address: usize, read_original: impl Fn(usize) -> u8) -> Result<Insn, Refusal> {
        if self.invalid_at == Some(address) {
            return Err(Refusal::Invalid);
        }
        if !self.is_start(address) {
            return Err(Refusal::NotBoundary);
        }
        let mut window = [0u8; MAX_INSN_LEN];
        let available = (self.function.end - address).min(MAX_INSN_LEN);
        for (offset, byte) in window[..available].iter_mut().enumerate() {
            *byte = read_original(address + offset);
        }
        decode_one(&window[..available], address)
    }
}

/// Decodes a lone instruction at the start of `code` (placed at `address`).
pub fn decode_one(code: &[u8], address: usize) -> Result<Insn, Refusal> {
    decode_at(code, address, address)
}

/// Whether a branch runs with a 16-bit operand size, which truncates EIP
/// (read from the decoded instruction, whatever prefixes come first).
fn truncates_eip(insn: &Instruction) -> bool {
    (insn.op_count() > 0 && insn.op0_kind() == OpKind::NearBranch16)
        || matches!(insn.code(), Code::Retnw | Code::Retnw_imm16 | Code::Call_rm16 | Code::Jmp_rm16)
}

/// The condition of a `jcc`, as the low nibble of its opcode (`0f 8x`,
/// `7x`): taken from the decoded condition, never from byte positions, so
/// segment, branch-hint, `bnd` and `rep` prefixes cannot shift it.
fn condition_nibble(insn: &Instruction) -> u8 {
    match insn.condition_code() {
        ConditionCode::o => 0x0,
        ConditionCode::no => 0x1,
        ConditionCode::b => 0x2,
        ConditionCode::ae => 0x3,
        ConditionCode::e => 0x4,
        ConditionCode::ne => 0x5,
        ConditionCode::be => 0x6,
        ConditionCode::a => 0x7,
        ConditionCode::s => 0x8,
        ConditionCode::ns => 0x9,
        ConditionCode::p => 0xa,
        ConditionCode::np => 0xb,
        ConditionCode::l => 0xc,
        ConditionCode::ge => 0xd,
        ConditionCode::le => 0xe,
        ConditionCode::g => 0xf,
        ConditionCode::None => unreachable!("a jcc always has a condition"),
    }
}

fn classify(insn: &Instruction, bytes: &[u8]) -> Result<Insn, Refusal> {
    use Refusal::Unsupported;
    let code = insn.code();
    let mnemonic = insn.mnemonic();
    match mnemonic {
        Mnemonic::Int3 | Mnemonic::Int | Mnemonic::Into | Mnemonic::Int1 => {
            return Err(Unsupported("software interrupt: it would trap from the slot"));
        }
        Mnemonic::Iret | Mnemonic::Iretd => {
            return Err(Unsupported("iret changes privilege state and cannot be stepped out of line"));
        }
        Mnemonic::Hlt => return Err(Unsupported("hlt would stop the CPU inside the single-step")),
        Mnemonic::Retf => return Err(Unsupported("far return")),
        Mnemonic::Ud0 | Mnemonic::Ud1 | Mnemonic::Ud2 => return Err(Unsupported("undefined opcode by design")),
        Mnemonic::Sysenter | Mnemonic::Sysexit | Mnemonic::Syscall | Mnemonic::Sysret => {
            return Err(Unsupported("system call instructions change privilege level"));
        }
        Mnemonic::Lss => return Err(Unsupported("loading SS inhibits the single-step trap")),
        _ => {}
    }
    if code.is_jmp_far() || code.is_jmp_far_indirect() || code.is_call_far() || code.is_call_far_indirect() {
        return Err(Unsupported("far jump or call"));
    }
    let writes_ss = (mnemonic == Mnemonic::Mov || mnemonic == Mnemonic::Pop)
        && insn.op_count() > 0
        && insn.op_kind(0) == OpKind::Register
        && insn.op_register(0) == Register::SS;
    if writes_ss {
        return Err(Unsupported("loading SS inhibits the single-step trap"));
    }
    match insn.flow_control() {
        FlowControl::Interrupt | FlowControl::Exception => return Err(Unsupported("raises an exception by design")),
        FlowControl::XbeginXabortXend => return Err(Unsupported("transactional memory")),
        _ => {}
    }
    let is_branch = insn.flow_control() != FlowControl::Next;
    if is_branch && truncates_eip(insn) {
        return Err(Unsupported("16-bit operand-size branch truncates EIP"));
    }

    let target = insn.near_branch_target() as u32;
    let fixup = if code.is_jmp_short_or_near() {
        Fixup::RelativeJump { target }
    } else if code.is_jcc_short_or_near() {
        Fixup::ConditionalJump { target, condition: condition_nibble(insn) }
    } else if code.is_loop() || code.is_loopcc() || code.is_jcx_short() {
        Fixup::LoopOrJecxz
    } else if code.is_call_near() {
        Fixup::RelativeCall { target }
    } else if code.is_call_near_indirect() {
        Fixup::IndirectCall
    } else if code.is_jmp_near_indirect() {
        Fixup::IndirectJump
    } else if mnemonic == Mnemonic::Ret {
        Fixup::Return
    } else if code == Code::Pushfw {
        return Err(Unsupported("16-bit pushf: the flags fix-up assumes a 32-bit push"));
    } else if code == Code::Pushfd {
        Fixup::PushFlags
    } else if mnemonic == Mnemonic::Sti {
        Fixup::EnableInterrupts
    } else if matches!(mnemonic, Mnemonic::Popf | Mnemonic::Popfd | Mnemonic::Cli) {
        Fixup::InterruptFlagWriter
    } else if code.is_string_instruction()
        && (insn.has_rep_prefix() || insn.has_repe_prefix() || insn.has_repne_prefix())
    {
        Fixup::RepeatedString
    } else if is_branch {
        return Err(Unsupported("control transfer the engine does not know how to relocate"));
    } else {
        Fixup::Plain
    };
    let mut copy = [0u8; MAX_INSN_LEN];
    copy[..bytes.len()].copy_from_slice(bytes);
    Ok(Insn { bytes: copy, length: bytes.len(), fixup, mnemonic })
}

/// Decodes one instruction at boot so iced-x86 builds its tables on the
/// heap then, never first on a registration made from a constrained context.
pub fn warm_up() {
    let _ = decode_one(&[0x55, 0x89, 0xe5], 0x100000);
}

/// What a function's code says about where control can go from it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FunctionFlow {
    /// Targets of its direct calls and jumps that lie outside the function.
    pub external_targets: alloc::vec::Vec<usize>,
    /// Whether control can leave it other than by calling: a `ret` or
    /// `iret`, a jump out of the function, or an indirect jump. A function
    /// without any of these never returns (a panic, a fatal report, a
    /// halt loop).
    pub can_return: bool,
}

/// Scans every instruction of a function (`code`, placed at `start`) for
/// its direct branch targets outside it and whether it can return.
/// Registration time only: it allocates.
pub fn function_flow(code: &[u8], start: usize) -> FunctionFlow {
    let end = start + code.len();
    let mut flow = FunctionFlow::default();
    let mut decoder = Decoder::with_ip(32, code, start as u64, DecoderOptions::NONE);
    let mut insn = Instruction::default();
    while decoder.can_decode() {
        decoder.decode_out(&mut insn);
        let external = |target: u64| !(start..end).contains(&(target as usize));
        match insn.flow_control() {
            FlowControl::Return | FlowControl::IndirectBranch => flow.can_return = true,
            FlowControl::Interrupt if matches!(insn.mnemonic(), Mnemonic::Iret | Mnemonic::Iretd) => {
                flow.can_return = true
            }
            FlowControl::UnconditionalBranch | FlowControl::ConditionalBranch
                if external(insn.near_branch_target()) =>
            {
                flow.can_return = true;
                flow.external_targets.push(insn.near_branch_target() as usize);
            }
            FlowControl::Call if external(insn.near_branch_target()) => {
                flow.external_targets.push(insn.near_branch_target() as usize);
            }
            _ => {}
        }
    }
    flow
}
