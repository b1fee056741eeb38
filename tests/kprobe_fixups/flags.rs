//! Fix-ups of `pushfd`, `cli`, `sti` and `popfd`.
//!
//! Why: single-stepping sets TF and the trap path owns IF, so the flags a
//! probed instruction pushes or sets must be repaired to what the code would
//! have seen unprobed.
use super::*;

/// PushFlags: `pushfd` then `pop eax` (flags set deterministically first).
#[unsafe(naked)]
unsafe extern "C" fn fx_pushfd(_arg: u32) -> u32 {
    naked_asm!(
        "mov ecx, 0x1234",
        "cmp ecx, 0x1234",
        note_esp!(),
        global!(fx_pushfd_at),
        "pushfd",
        global!(fx_pushfd_next),
        "pop eax",
        record!(),
        "ret",
        out = sym OUT,
        probe_esp = sym PROBE_ESP,
    );
}

/// InterruptFlagWriter: `cli`; EAX = EFLAGS right after it. The caller's
/// flags are restored before returning.
#[unsafe(naked)]
unsafe extern "C" fn fx_cli(_arg: u32) -> u32 {
    naked_asm!(
        "pushfd",
        "mov ecx, 0x1234",
        note_esp!(),
        global!(fx_cli_at),
        "cli",
        global!(fx_cli_next),
        "pushfd",
        "pop eax",
        "popfd",
        record!(),
        "ret",
        out = sym OUT,
        probe_esp = sym PROBE_ESP,
    );
}

/// EnableInterrupts: `sti` (emulated); EAX = EFLAGS right after it. The caller's
/// flags are restored before returning.
#[unsafe(naked)]
unsafe extern "C" fn fx_sti(_arg: u32) -> u32 {
    naked_asm!(
        "pushfd",
        "mov ecx, 0x1234",
        note_esp!(),
        global!(fx_sti_at),
        "sti",
        global!(fx_sti_next),
        "pushfd",
        "pop eax",
        "popfd",
        record!(),
        "ret",
        out = sym OUT,
        probe_esp = sym PROBE_ESP,
    );
}

/// InterruptFlagWriter: `popfd` of the current flags with IF and CF
/// toggled; EAX = EFLAGS right after it. The caller's flags are restored.
#[unsafe(naked)]
unsafe extern "C" fn fx_popfd(_arg: u32) -> u32 {
    naked_asm!(
        "pushfd",
        "stc",
        "pushfd",
        "xor dword ptr [esp], 0x201",
        note_esp!(),
        global!(fx_popfd_at),
        "popfd",
        global!(fx_popfd_next),
        "pushfd",
        "pop eax",
        "popfd",
        record!(),
        "ret",
        out = sym OUT,
        probe_esp = sym PROBE_ESP,
    );
}

fn pushfd(interrupts: bool, check: fn(&Snapshot, &SeenRegs, &[u32])) -> Case {
    Case {
        routine: fx_pushfd,
        inner: None,
        argument: 0,
        interrupts: Some(interrupts),
        at: || label!(fx_pushfd_at),
        fixup: || Fixup::PushFlags,
        boostable: true,
        continues: || next_of(label!(fx_pushfd_next)),
        esp_delta: -4,
        check,
    }
}

fn pushed_flags_are(result: &Snapshot, tops: &[u32], interrupt_flag: u32) {
    assert_eq!(result.eax & EFLAGS_TF, 0, "pushfd pushed TF");
    assert_eq!(result.eax & EFLAGS_IF, interrupt_flag, "pushfd pushed the wrong IF");
    assert_eq!(result.eax & 0x40, 0x40, "ZF of the cmp before pushfd");
    for top in tops {
        assert_eq!(*top, result.eax, "flags on the stack in the post-handler are not the repaired ones");
    }
}

#[test_case]
fn pushfd_with_interrupts_enabled() {
    check(&pushfd(true, |result, pre, tops| {
        pushed_flags_are(result, tops, EFLAGS_IF);
        if pre.esp != 0 {
            assert_eq!(pre.eflags & EFLAGS_IF, EFLAGS_IF, "IF in the pre-handler's flags");
        }
    }));
}

#[test_case]
fn pushfd_with_interrupts_disabled() {
    check(&pushfd(false, |result, pre, tops| {
        pushed_flags_are(result, tops, 0);
        if pre.esp != 0 {
            assert_eq!(pre.eflags & EFLAGS_IF, 0, "IF in the pre-handler's flags");
        }
    }));
}

fn flag_writer(
    routine: Routine,
    at: fn() -> usize,
    next: fn() -> Vec<usize>,
    esp_delta: i32,
    interrupts: bool,
    check: fn(&Snapshot, &SeenRegs, &[u32]),
) -> Case {
    Case {
        routine,
        inner: None,
        argument: 0,
        interrupts: Some(interrupts),
        at,
        fixup: if routine as *const () == fx_sti as *const () {
            || Fixup::EnableInterrupts
        } else {
            || Fixup::InterruptFlagWriter
        },
        boostable: false,
        continues: next,
        esp_delta,
        check,
    }
}

#[test_case]
fn cli_with_interrupts_enabled() {
    check(&flag_writer(
        fx_cli,
        || label!(fx_cli_at),
        || next_of(label!(fx_cli_next)),
        0,
        true,
        |result, pre, _| {
            assert_eq!(result.eax & (EFLAGS_IF | EFLAGS_TF), 0, "IF/TF after cli");
            if pre.esp != 0 {
                assert_eq!((pre.ecx, pre.eflags & EFLAGS_IF), (0x1234, EFLAGS_IF), "pre-handler registers");
            }
        },
    ));
}

#[test_case]
fn cli_with_interrupts_disabled() {
    check(&flag_writer(
        fx_cli,
        || label!(fx_cli_at),
        || next_of(label!(fx_cli_next)),
        0,
        false,
        |result, _, _| {
            assert_eq!(result.eax & (EFLAGS_IF | EFLAGS_TF), 0, "IF/TF after cli");
        },
    ));
}

#[test_case]
fn sti_with_interrupts_disabled() {
    check(&flag_writer(
        fx_sti,
        || label!(fx_sti_at),
        || next_of(label!(fx_sti_next)),
        0,
        false,
        |result, pre, _| {
            assert_eq!(result.eax & (EFLAGS_IF | EFLAGS_TF), EFLAGS_IF, "IF/TF after sti");
            if pre.esp != 0 {
                assert_eq!((pre.ecx, pre.eflags & EFLAGS_IF), (0x1234, 0), "pre-handler registers");
            }
        },
    ));
}

#[test_case]
fn sti_with_interrupts_enabled() {
    check(&flag_writer(
        fx_sti,
        || label!(fx_sti_at),
        || next_of(label!(fx_sti_next)),
        0,
        true,
        |result, _, _| {
            assert_eq!(result.eax & (EFLAGS_IF | EFLAGS_TF), EFLAGS_IF, "IF/TF after sti");
        },
    ));
}

#[test_case]
fn popfd_clearing_interrupts() {
    check(&flag_writer(
        fx_popfd,
        || label!(fx_popfd_at),
        || next_of(label!(fx_popfd_next)),
        4,
        true,
        |result, pre, _| {
            assert_eq!(result.eax & (EFLAGS_IF | EFLAGS_TF | EFLAGS_CF), 0, "IF/TF/CF after popfd");
            if pre.esp != 0 {
                // `xor` on the stacked flags cleared CF in the live ones.
                assert_eq!(pre.eflags & (EFLAGS_IF | EFLAGS_CF), EFLAGS_IF, "pre-handler flags");
            }
        },
    ));
}

#[test_case]
fn popfd_setting_interrupts() {
    check(&flag_writer(
        fx_popfd,
        || label!(fx_popfd_at),
        || next_of(label!(fx_popfd_next)),
        4,
        false,
        |result, pre, _| {
            assert_eq!(result.eax & (EFLAGS_IF | EFLAGS_TF | EFLAGS_CF), EFLAGS_IF, "IF/TF/CF after popfd");
            if pre.esp != 0 {
                assert_eq!(pre.eflags & (EFLAGS_IF | EFLAGS_CF), 0, "pre-handler flags");
            }
        },
    ));
}
