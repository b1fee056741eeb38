//! Fix-ups of instructions with ESP as an operand.
//!
//! Why: the copy runs on the interrupted stack; `push esp`, `pop`, and moves
//! from ESP must see and leave the ESP the code would have had unprobed.
use super::*;

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
