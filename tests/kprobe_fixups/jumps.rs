//! Fix-ups of relative and conditional jumps, `loop` and `jecxz`.
//!
//! Why: a relative target computed at the slot is wrong; the engine must
//! resume at the target the original address implies, taken or not taken.
use super::*;

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
pub(crate) unsafe extern "C" fn fx_loop(_arg: u32) -> u32 {
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
