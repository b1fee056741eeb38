//! Fix-ups of `rep` string instructions.
//!
//! Why: a single-stepped `rep` traps once per iteration; the engine must
//! run every iteration once and report one hit.
use super::*;

/// RepeatedString: `rep movsb` of `argument` bytes from the scratch source
/// to its destination; EAX/EDX = final ESI/EDI.
#[unsafe(naked)]
unsafe extern "C" fn fx_rep_movsb(_arg: u32) -> u32 {
    naked_asm!(
        "push esi",
        "push edi",
        "lea esi, [{scratch}]",
        "lea edi, [{scratch} + {destination}]",
        "mov ecx, dword ptr [esp + 12]",
        note_esp!(),
        global!(fx_rep_movsb_at),
        "rep movsb",
        global!(fx_rep_movsb_next),
        "mov eax, esi",
        "mov edx, edi",
        "pop edi",
        "pop esi",
        record!(),
        "ret",
        out = sym OUT,
        probe_esp = sym PROBE_ESP,
        scratch = sym SCRATCH,
        destination = const DESTINATION,
    );
}

/// RepeatedString: `rep stosd` of `argument` dwords into the scratch
/// destination; EDX = final EDI.
#[unsafe(naked)]
pub(crate) unsafe extern "C" fn fx_rep_stosd(_arg: u32) -> u32 {
    naked_asm!(
        "push edi",
        "mov eax, 0xa5a55a5a",
        "lea edi, [{scratch} + {destination}]",
        "mov ecx, dword ptr [esp + 8]",
        note_esp!(),
        global!(fx_rep_stosd_at),
        "rep stosd",
        global!(fx_rep_stosd_next),
        "mov edx, edi",
        "pop edi",
        record!(),
        "ret",
        out = sym OUT,
        probe_esp = sym PROBE_ESP,
        scratch = sym SCRATCH,
        destination = const DESTINATION,
    );
}

const MOVSB_COUNT: u32 = 37;
const STOSD_COUNT: u32 = 9;

#[test_case]
fn rep_movsb_copies_every_byte() {
    check(&Case {
        routine: fx_rep_movsb,
        inner: None,
        argument: MOVSB_COUNT,
        interrupts: None,
        at: || label!(fx_rep_movsb_at),
        fixup: || Fixup::RepeatedString,
        boostable: true,
        continues: || next_of(label!(fx_rep_movsb_next)),
        esp_delta: 0,
        check: |result, pre, _| {
            let count = MOVSB_COUNT as usize;
            assert_eq!(result.ecx, 0, "ECX after rep movsb");
            assert_eq!(result.eax as usize, scratch_address() + count, "ESI after rep movsb");
            assert_eq!(result.edx as usize, scratch_address() + DESTINATION + count, "EDI after rep movsb");
            assert_eq!(result.memory[DESTINATION..DESTINATION + count], result.memory[..count], "bytes copied");
            assert!(result.memory[DESTINATION + count..].iter().all(|&b| b == 0), "bytes beyond the count written");
            if pre.esp != 0 {
                assert_eq!(pre.ecx, MOVSB_COUNT, "ECX in the pre-handler");
                assert_eq!(pre.esi as usize, scratch_address(), "ESI in the pre-handler");
                assert_eq!(pre.edi as usize, scratch_address() + DESTINATION, "EDI in the pre-handler");
            }
        },
    });
}

#[test_case]
fn rep_movsb_of_zero_bytes() {
    check(&Case {
        routine: fx_rep_movsb,
        inner: None,
        argument: 0,
        interrupts: None,
        at: || label!(fx_rep_movsb_at),
        fixup: || Fixup::RepeatedString,
        boostable: true,
        continues: || next_of(label!(fx_rep_movsb_next)),
        esp_delta: 0,
        check: |result, _, _| {
            assert_eq!(result.ecx, 0);
            assert_eq!(result.eax as usize, scratch_address(), "ESI moved");
            assert!(result.memory[DESTINATION..].iter().all(|&b| b == 0), "bytes written");
        },
    });
}

#[test_case]
fn rep_stosd_fills_every_dword() {
    check(&Case {
        routine: fx_rep_stosd,
        inner: None,
        argument: STOSD_COUNT,
        interrupts: None,
        at: || label!(fx_rep_stosd_at),
        fixup: || Fixup::RepeatedString,
        boostable: true,
        continues: || next_of(label!(fx_rep_stosd_next)),
        esp_delta: 0,
        check: |result, pre, _| {
            let bytes = STOSD_COUNT as usize * 4;
            assert_eq!((result.eax, result.ecx), (0xa5a5_5a5a, 0));
            assert_eq!(result.edx as usize, scratch_address() + DESTINATION + bytes, "EDI after rep stosd");
            for chunk in result.memory[DESTINATION..DESTINATION + bytes].chunks(4) {
                assert_eq!(chunk, 0xa5a5_5a5au32.to_le_bytes(), "dword stored");
            }
            assert!(result.memory[DESTINATION + bytes..].iter().all(|&b| b == 0), "bytes beyond the count written");
            if pre.esp != 0 {
                assert_eq!((pre.eax, pre.ecx), (0xa5a5_5a5a, STOSD_COUNT), "registers in the pre-handler");
            }
        },
    });
}
