//! Trap plumbing: every exception reaches its hook or report with the right state.
//!
//! Why: the probe engine stands on it: int3 and single-step reach their
//! hooks with the right EIP and DR6; #UD, #GP, #DE and #PF arrive with the
//! right vector, error code, EIP (and CR2); text is read-only except through
//! `text_poke`; a trap handler can print while the interrupted code is
//! printing.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(probe_kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

use core::arch::naked_asm;
use core::sync::atomic::{AtomicU32, Ordering};
use probe_kernel::arch::x86::patch::{PatchError, text_poke};
use probe_kernel::arch::x86::trap::{HookKind, last_dr6, set_hook};
use probe_kernel::arch::{TrapFrame, TrapOutcome, cpu};
use probe_kernel::console;

probe_kernel::test_kernel_main!();

/// What the last hook saw.
static SEEN_VECTOR: AtomicU32 = AtomicU32::new(u32::MAX);
static SEEN_ERROR: AtomicU32 = AtomicU32::new(u32::MAX);
static SEEN_EIP: AtomicU32 = AtomicU32::new(0);
static SEEN_CR2: AtomicU32 = AtomicU32::new(0);
static SEEN_DR6: AtomicU32 = AtomicU32::new(0);
/// Where the exception hook resumes.
static RESUME_AT: AtomicU32 = AtomicU32::new(0);

fn record(frame: &TrapFrame) {
    SEEN_VECTOR.store(frame.vector, Ordering::SeqCst);
    SEEN_ERROR.store(frame.error_code, Ordering::SeqCst);
    SEEN_EIP.store(frame.eip, Ordering::SeqCst);
}

fn resume_hook(frame: &mut TrapFrame) -> TrapOutcome {
    record(frame);
    SEEN_CR2.store(cpu::cr2(), Ordering::SeqCst);
    frame.eip = RESUME_AT.load(Ordering::SeqCst);
    TrapOutcome::Handled
}

macro_rules! label {
    ($name:ident) => {{
        unsafe extern "C" {
            static $name: u8;
        }
        &raw const $name as u32
    }};
}

/// Runs `site` with the exception hook armed to resume at `resume`.
fn expect_exception(site: unsafe extern "C" fn(), resume: u32) {
    SEEN_VECTOR.store(u32::MAX, Ordering::SeqCst);
    RESUME_AT.store(resume, Ordering::SeqCst);
    set_hook(HookKind::Exception, Some(resume_hook));
    // SAFETY: each site is a small asm routine that faults once and is
    // resumed by the hook at its own resume label, which returns.
    unsafe { site() };
    set_hook(HookKind::Exception, None);
}

#[unsafe(naked)]
unsafe extern "C" fn int3_site() {
    naked_asm!(".global traps_int3_at", "traps_int3_at: int3", "ret");
}

fn breakpoint_hook(frame: &mut TrapFrame) -> TrapOutcome {
    record(frame);
    TrapOutcome::Handled
}

#[test_case]
fn int3_reaches_breakpoint_hook_with_eip_after_the_byte() {
    set_hook(HookKind::Breakpoint, Some(breakpoint_hook));
    // SAFETY: the hook handles the int3 and resumes after it.
    unsafe { int3_site() };
    set_hook(HookKind::Breakpoint, None);
    assert_eq!(SEEN_VECTOR.load(Ordering::SeqCst), 3);
    assert_eq!(SEEN_EIP.load(Ordering::SeqCst), label!(traps_int3_at) + 1);
}

#[unsafe(naked)]
unsafe extern "C" fn single_step_site() {
    naked_asm!(
        "pushfd",
        "or dword ptr [esp], 0x100", // TF
        "popfd",
        "nop", // the trap comes after this instruction
        ".global traps_step_after",
        "traps_step_after: ret",
    );
}

fn debug_hook(frame: &mut TrapFrame) -> TrapOutcome {
    record(frame);
    SEEN_DR6.store(last_dr6(), Ordering::SeqCst);
    frame.eflags &= !cpu::EFLAGS_TF;
    TrapOutcome::Handled
}

#[test_case]
fn single_step_reaches_debug_hook_with_eip_and_dr6() {
    set_hook(HookKind::Debug, Some(debug_hook));
    // SAFETY: the hook takes the one single-step trap and clears TF.
    unsafe { single_step_site() };
    set_hook(HookKind::Debug, None);
    assert_eq!(SEEN_VECTOR.load(Ordering::SeqCst), 1);
    assert_eq!(SEEN_EIP.load(Ordering::SeqCst), label!(traps_step_after));
    let dr6 = SEEN_DR6.load(Ordering::SeqCst);
    assert_eq!(dr6 & cpu::DR6_SINGLE_STEP, cpu::DR6_SINGLE_STEP, "DR6.BS not set: {dr6:#x}");
    assert_eq!(dr6 & 0xf, 0, "no hardware breakpoint fired: {dr6:#x}");
}

#[unsafe(naked)]
unsafe extern "C" fn invalid_opcode_site() {
    naked_asm!(".global traps_ud_at", "traps_ud_at: ud2", ".global traps_ud_resume", "traps_ud_resume: ret");
}

#[test_case]
fn invalid_opcode_is_vector_6_at_the_ud2() {
    expect_exception(invalid_opcode_site, label!(traps_ud_resume));
    assert_eq!(SEEN_VECTOR.load(Ordering::SeqCst), 6);
    assert_eq!(SEEN_ERROR.load(Ordering::SeqCst), 0);
    assert_eq!(SEEN_EIP.load(Ordering::SeqCst), label!(traps_ud_at));
}

#[unsafe(naked)]
unsafe extern "C" fn general_protection_site() {
    naked_asm!(
        "mov eax, 0x0ff8", // selector far beyond the GDT's limit
        ".global traps_gp_at",
        "traps_gp_at: mov ds, ax",
        ".global traps_gp_resume",
        "traps_gp_resume: ret",
    );
}

#[test_case]
fn general_protection_carries_the_selector_as_error_code() {
    expect_exception(general_protection_site, label!(traps_gp_resume));
    assert_eq!(SEEN_VECTOR.load(Ordering::SeqCst), 13);
    assert_eq!(SEEN_ERROR.load(Ordering::SeqCst), 0x0ff8);
    assert_eq!(SEEN_EIP.load(Ordering::SeqCst), label!(traps_gp_at));
}

#[unsafe(naked)]
unsafe extern "C" fn divide_error_site() {
    naked_asm!(
        "push ebx",
        "xor edx, edx",
        "mov eax, 1",
        "xor ebx, ebx",
        ".global traps_de_at",
        "traps_de_at: div ebx",
        ".global traps_de_resume",
        "traps_de_resume: pop ebx",
        "ret",
    );
}

#[test_case]
fn divide_error_is_vector_0_at_the_div() {
    expect_exception(divide_error_site, label!(traps_de_resume));
    assert_eq!(SEEN_VECTOR.load(Ordering::SeqCst), 0);
    assert_eq!(SEEN_ERROR.load(Ordering::SeqCst), 0);
    assert_eq!(SEEN_EIP.load(Ordering::SeqCst), label!(traps_de_at));
}

#[unsafe(naked)]
unsafe extern "C" fn page_fault_read_site() {
    naked_asm!(
        ".global traps_pf_at",
        "traps_pf_at: mov eax, dword ptr [0x123]", // page 0 is never mapped
        ".global traps_pf_resume",
        "traps_pf_resume: ret",
    );
}

#[test_case]
fn page_fault_reports_cr2_and_not_present_read() {
    expect_exception(page_fault_read_site, label!(traps_pf_resume));
    assert_eq!(SEEN_VECTOR.load(Ordering::SeqCst), 14);
    assert_eq!(SEEN_ERROR.load(Ordering::SeqCst), 0, "not present, read, supervisor");
    assert_eq!(SEEN_EIP.load(Ordering::SeqCst), label!(traps_pf_at));
    assert_eq!(SEEN_CR2.load(Ordering::SeqCst), 0x123);
}

#[unsafe(naked)]
unsafe extern "C" fn write_text_site() {
    naked_asm!(
        "lea ecx, [{target}]",
        ".global traps_text_write_at",
        "traps_text_write_at: mov byte ptr [ecx], 0x90",
        ".global traps_text_write_resume",
        "traps_text_write_resume: ret",
        target = sym patch_target,
    );
}

#[test_case]
fn writing_kernel_text_faults_as_a_protection_violation() {
    expect_exception(write_text_site, label!(traps_text_write_resume));
    assert_eq!(SEEN_VECTOR.load(Ordering::SeqCst), 14);
    assert_eq!(SEEN_ERROR.load(Ordering::SeqCst), 3, "present + write, supervisor");
    assert_eq!(SEEN_EIP.load(Ordering::SeqCst), label!(traps_text_write_at));
    assert_eq!(SEEN_CR2.load(Ordering::SeqCst), patch_target as *const () as usize as u32);
    // SAFETY: plain call of an asm function returning a constant.
    assert_eq!(unsafe { patch_target() }, 1, "the faulting write changed nothing");
}

/// `mov eax, 1; ret` — the immediate is the byte at offset 1.
#[unsafe(naked)]
unsafe extern "C" fn patch_target() -> u32 {
    naked_asm!("mov eax, 1", "ret");
}

#[test_case]
fn text_poke_round_trips() {
    let immediate = patch_target as *const () as usize + 1;
    // SAFETY: replaces the immediate of `mov eax, imm32` (same instruction
    // boundaries); nobody else executes this function.
    unsafe { text_poke(immediate, &[2]).unwrap() };
    // SAFETY: as above.
    assert_eq!(unsafe { patch_target() }, 2);
    // SAFETY: restores the original byte.
    unsafe { text_poke(immediate, &[1]).unwrap() };
    // SAFETY: as above.
    assert_eq!(unsafe { patch_target() }, 1);
    // SAFETY: refused before anything is written.
    assert_eq!(unsafe { text_poke(0x10, &[0]) }, Err(PatchError::OutsideText));
    let text_end = probe_kernel::arch::x86::paging::kernel_text().end;
    // SAFETY: refused: the range crosses the end of text.
    assert_eq!(unsafe { text_poke(text_end - 1, &[0, 0]) }, Err(PatchError::OutsideText));
}

struct PrintsAroundInt3;

impl core::fmt::Display for PrintsAroundInt3 {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        f.write_str("outer-begin ")?;
        // SAFETY: the breakpoint hook handles this int3 and resumes after it.
        unsafe { core::arch::asm!("int3") };
        f.write_str("outer-end")
    }
}

fn printing_hook(_frame: &mut TrapFrame) -> TrapOutcome {
    probe_kernel::print!("[inner]");
    TrapOutcome::Handled
}

#[test_case]
fn trap_handler_prints_while_interrupted_code_prints() {
    set_hook(HookKind::Breakpoint, Some(printing_hook));
    console::capture_begin();
    probe_kernel::println!("{}", PrintsAroundInt3);
    let mut buffer = [0u8; 128];
    let captured = console::capture_end(&mut buffer);
    set_hook(HookKind::Breakpoint, None);
    assert_eq!(core::str::from_utf8(captured).unwrap(), "outer-begin [inner]outer-end\n");
}

#[unsafe(naked)]
unsafe extern "C" fn raise_esp_site() -> u32 {
    naked_asm!(
        "push 0x1111",
        "push 0x2222",
        "int3", // the hook raises ESP by 8: both pushes are gone
        "mov eax, 0x600d",
        "ret", // returns to the caller only if ESP really moved
    );
}

fn raise_esp_hook(frame: &mut TrapFrame) -> TrapOutcome {
    frame.esp += 8;
    TrapOutcome::Handled
}

#[test_case]
fn a_handler_can_raise_the_interrupted_esp() {
    set_hook(HookKind::Breakpoint, Some(raise_esp_hook));
    // SAFETY: the hook drops exactly the two words the site pushed.
    let value = unsafe { raise_esp_site() };
    set_hook(HookKind::Breakpoint, None);
    assert_eq!(value, 0x600d);
}

#[unsafe(naked)]
unsafe extern "C" fn lower_esp_site() -> u32 {
    naked_asm!(
        "int3",    // the hook lowers ESP by 4 and fills the new top word
        "pop eax", // the word the hook left there
        "ret",
    );
}

fn lower_esp_hook(frame: &mut TrapFrame) -> TrapOutcome {
    // The new top of stack lies inside this very frame (its EFLAGS slot):
    // the exit path moves the frame below the new ESP, and the word at the
    // new ESP is what the frame's EFLAGS field held.
    frame.esp -= 4;
    frame.ebx = frame.eflags; // the value the caller expects to pop
    TrapOutcome::Handled
}

#[unsafe(naked)]
unsafe extern "C" fn lower_esp_caller() -> u64 {
    naked_asm!(
        "push ebx",
        "xor ebx, ebx",
        "call {site}",
        "mov edx, ebx",  // EDX: what the hook predicted, EAX: what was popped
        "pop ebx",
        "ret",
        site = sym lower_esp_site,
    );
}

#[test_case]
fn a_handler_can_lower_the_interrupted_esp() {
    set_hook(HookKind::Breakpoint, Some(lower_esp_hook));
    // SAFETY: the hook lowers ESP by one word, which the site pops again.
    let both = unsafe { lower_esp_caller() };
    set_hook(HookKind::Breakpoint, None);
    let (popped, predicted) = (both as u32, (both >> 32) as u32);
    assert_eq!(popped, predicted, "the word at the new ESP is the frame's EFLAGS");
    assert_ne!(predicted, 0);
}
