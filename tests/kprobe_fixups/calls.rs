//! Fix-ups of calls, indirect jumps and returns.
//!
//! Why: a call run from a slot pushes the slot's return address; the engine
//! must repair it to the original continuation, and leave indirect jumps and
//! returns (whose targets are absolute) going where they went.
use super::*;

/// A memory operand for `call dword ptr [mem]`.
static CALL_SLOT: unsafe extern "C" fn() -> u32 = fx_callee;

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
pub(crate) unsafe extern "C" fn fx_ret_imm_inner() -> u32 {
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

/// The callee saw `return_address` at [esp] and its ESP 4 below the caller's entry ESP.
pub(crate) fn callee_saw(result: &Snapshot, return_address: usize, tops: &[u32]) {
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
