//! Fix-ups of jumps and calls to targets before the probed instruction.
//!
//! Why: the slot lies above the kernel text, so a relative target before the
//! probed instruction lands below the slot after the step: a sign error in
//! the repair shows only with backward targets.
use super::*;
use calls::callee_saw;

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
/// in the same routine (same contract as `calls::fx_callee`).
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
