//! Fix-ups of plain instructions: nothing to repair but EIP.
//!
//! Why: the baseline of every other family; an `add`, a `lea` and a memory load
//! run as a copy must leave exactly what they leave in place.
use super::*;

/// Plain: `add eax, ecx`.
#[unsafe(naked)]
pub(crate) unsafe extern "C" fn fx_plain_add(_arg: u32) -> u32 {
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
