//! Jump-optimized probes: the detour a probe's `jmp` leads to.
//!
//! An optimized probe's first five bytes are `jmp rel32` to a detour in an
//! instruction slot (Linux's `optprobe_template`, `arch/x86/kernel/kprobes/
//! opt.c`). The detour builds the same [`PtRegs`] frame a breakpoint trap
//! would, names its site, and enters the shared [`optprobe_entry`], which
//! runs the hit with interrupts off and leaves with `iretd` to the EIP the
//! hit chose, normally the detour's relocated copy of the displaced
//! instructions, which ends in a jump back after them. The frame is the
//! engine's own, so the fast lane restores it itself; a hit whose handler
//! moved ESP, and every hit of the generic dispatcher, leave through the
//! host's trap exit (`probe_engine_trap_return`), which moves the frame to
//! end at the new ESP.
//!
//! ```text
//!   detour + 0:  pushfd                  EFLAGS as the probed code had them
//!                cli                     (after pushfd: the frame keeps IF)
//!                push cs                 CS
//!                push <probe address>    EIP
//!                push <detour address>   error code  } the dispatcher reads them, then
//!                push <site address>     vector      } makes them a breakpoint's (0, 3)
//!                jmp optprobe_entry
//!   detour + 23: the displaced instructions, relocated, then jmp back
//! ```
//!
//! The frame names the detour as well as the site: interrupts are still
//! on at the detour's first instruction, so a CPU can stop there while the
//! site is unoptimized (and even reused); the dispatcher then runs this
//! detour's copy, which is kept as long as anyone may resume inside it.
//!
//! No trap is taken: an optimized hit costs a jump, the frame, the
//! handlers and an `iretd`, where a breakpoint costs two exceptions.
use super::lane;
use super::regs::PtRegs;
use crate::control::layout as cpu;
use crate::registry::layout as site;
use crate::slots::SLOT_SIZE;
use probe_engine_core::optimize::{Displaced, JUMP_LEN, MAX_DISPLACED_COPY};

/// The vector handlers see in an optimized hit's frame: a breakpoint's, as
/// the same probe hit through its `int3` would show.
pub const OPTIMIZED_HIT_VECTOR: u32 = 3;

/// Where the relocated copy starts inside a detour.
pub const DETOUR_COPY_OFFSET: usize = 23;
const _: () = assert!(DETOUR_COPY_OFFSET + MAX_DISPLACED_COPY <= SLOT_SIZE);

/// The frame builder every detour jumps to, with the top of the frame
/// (EFLAGS, CS, EIP, detour, site) pushed by the detour: the fast lane
/// (`fastpath`) for the common hit, else the generic dispatcher
/// (`optimize::optimized_dispatch`).
///
/// The lane takes the hit when the detour is still its site's, the site's
/// `fast` probe is set and this CPU's control block is idle: it makes the
/// frame a breakpoint's (vector 3, error code 0), runs the probe exactly as
/// the dispatcher would (the control block running it), and resumes in
/// this detour's copy unless the handler redirected. The frame changes
/// only once the lane has taken the hit. It leaves by restoring the frame
/// and `iretd`, unless a handler moved ESP: then through the host's trap
/// exit, which honours that.
///
/// # Safety
/// Never called: only reached by a detour's `jmp`, with the detour's
/// five pushes on the probed code's stack and interrupts off.
#[unsafe(naked)]
#[unsafe(link_section = ".kprobes.text")]
pub unsafe extern "C" fn optprobe_entry() {
    core::arch::naked_asm!(
        "pushad",
        "lea ecx, [esp + {size}]",
        "mov [esp + {esp}], ecx",
        "cld",
        // An idle CPU: its block in EBX, which the entry routine keeps.
        lane::idle_block_or!("ebx", "8f", "probe_engine_query_optprobe"),
        // The site (the address the engine wrote into this detour), whether
        // this detour is still its own, and the site's fast probe.
        "mov ecx, [esp + {vector}]",
        "mov eax, [esp + {error}]",
        "cmp eax, [ecx + {site_detour}]",
        "jne 8f",
        "mov edx, [ecx + {site_fast}]",
        "test edx, edx",
        "jz 8f",
        "lea esi, [eax + {copy_offset}]",
        // Taken: the block runs the probe, the frame reads as a breakpoint's.
        lane::run_probe!("ebx", "ecx", "edx"),
        "mov dword ptr [esp + {vector}], {breakpoint}",
        "mov dword ptr [esp + {error}], 0",
        "mov ecx, esp", // fastcall: the frame, and EDX the probe
        "call dword ptr [edx + {probe_entry}]",
        ".global probe_engine_fast_optprobe_return_site",
        "probe_engine_fast_optprobe_return_site:",
        "test al, al",
        "jnz 2f",
        "mov [esp + {eip}], esi",
        "2:",
        "mov byte ptr [ebx], {idle}",
        lane::restore_own_frame!(),
        // Every other hit: the generic dispatcher.
        "8:",
        "push esp",
        "call {dispatch}",
        ".global optprobe_dispatch_return_site",
        "optprobe_dispatch_return_site:",
        "add esp, 4",
        "jmp probe_engine_trap_return", // the host's trap exit (see `Host`)
        size = const super::regs::FRAME_SIZE,
        esp = const core::mem::offset_of!(PtRegs, esp),
        vector = const core::mem::offset_of!(PtRegs, vector),
        error = const core::mem::offset_of!(PtRegs, error_code),
        eip = const core::mem::offset_of!(PtRegs, eip),
        site_detour = const site::DETOUR_SLOT,
        site_fast = const site::FAST,
        copy_offset = const DETOUR_COPY_OFFSET,
        current_cpu = sym crate::host::__probe_engine_lane_current_cpu,
        state_bytes = sym crate::control::STATE_BYTES,
        idle = const cpu::IDLE,
        handlers = const cpu::HANDLERS,
        handlers_site = const cpu::HANDLERS_SITE,
        handlers_running = const cpu::HANDLERS_RUNNING,
        breakpoint = const OPTIMIZED_HIT_VECTOR,
        probe_entry = const crate::probe::layout::ENTRY,
        dispatch = sym crate::optimize::optimized_dispatch,
    );
}

/// The return address of [`optprobe_entry`]'s call to the dispatcher: the
/// unwinder continues through the frame below it.
pub fn dispatch_return_site() -> usize {
    unsafe extern "C" {
        static optprobe_dispatch_return_site: u8;
    }
    &raw const optprobe_dispatch_return_site as usize
}

/// The site address and detour address an optimized hit's frame carries,
/// taken out of it (the frame then reads as a breakpoint's).
#[unsafe(link_section = ".kprobes.text")]
#[inline(always)]
pub fn take_site_and_detour(regs: &mut PtRegs) -> (usize, usize) {
    let taken = (regs.vector as usize, regs.error_code as usize);
    regs.vector = OPTIMIZED_HIT_VECTOR;
    regs.error_code = 0;
    taken
}

/// The detour for the probe at `displaced.address`, whose site is at
/// `site_address`, to be placed at `base`.
pub fn detour_image(site_address: usize, displaced: &Displaced, base: usize) -> [u8; SLOT_SIZE] {
    let mut image = [0xcc; SLOT_SIZE];
    let entry = optprobe_entry as *const () as usize;
    let mut code = [0u8; DETOUR_COPY_OFFSET];
    code[0] = 0x9c; // pushfd
    code[1] = 0xfa; // cli
    code[2] = 0x0e; // push cs
    code[3] = 0x68; // push imm32
    code[4..8].copy_from_slice(&(displaced.address as u32).to_le_bytes());
    code[8] = 0x68; // push imm32
    code[9..13].copy_from_slice(&(base as u32).to_le_bytes());
    code[13] = 0x68; // push imm32
    code[14..18].copy_from_slice(&(site_address as u32).to_le_bytes());
    code[18..23].copy_from_slice(&jump(base + 18, entry));
    image[..DETOUR_COPY_OFFSET].copy_from_slice(&code);
    let (copy, len) = displaced.relocated(base + DETOUR_COPY_OFFSET);
    image[DETOUR_COPY_OFFSET..DETOUR_COPY_OFFSET + len].copy_from_slice(&copy[..len]);
    image
}

/// `jmp rel32` placed at `at`, to `target`.
pub fn jump(at: usize, target: usize) -> [u8; JUMP_LEN] {
    let mut bytes = [0xe9, 0, 0, 0, 0];
    bytes[1..].copy_from_slice(&(target.wrapping_sub(at + JUMP_LEN) as u32).to_le_bytes());
    bytes
}
