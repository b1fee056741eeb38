//! The breakpoint fast lane: the common probe hit, in assembly.
//!
//! Most hits are the same: one enabled plain probe with a pre-handler (or
//! a kretprobe's entry) at a boosted (or jump-optimized) site, on a CPU that is handling no other
//! probe. For those, everything but the handler itself is a handful of
//! loads and stores, and Rust's prologues, bounds checks and enum copies
//! would double the cost (issue 10's anatomy of a hit). So the host's `#BP`
//! entry calls [`int3_fast`] first, with the frame built:
//!
//! 1. find the site in its home bucket of the index (a collision, or no
//!    site, returns to the host's generic path; an empty bucket's entry
//!    names the site table's sentinel, which matches no address);
//! 2. if the site's `fast` probe is set (see `registry::replan`), the site
//!    has a resume address, and this CPU's control block is idle: make the
//!    block run the probe (exactly the state the generic path would set),
//!    point EIP at the probed address, call the probe's entry routine
//!    (`Kprobe::entry`: its pre-handler's `fastcall` adapter, or a
//!    kretprobe's entry), resume in the copy unless the handler
//!    redirected, make the block idle, and leave through the host's trap
//!    exit;
//! 3. a single-step for a lone plain probe whose repair is simple (the
//!    site's `step_lane`): run its pre-handler as in 2, then set up the
//!    step (TF set, IF clear, EIP at the slot's copy) and the block's
//!    `SingleStep` state as the generic path would; [`debug_fast`], called
//!    by the host's `#DB` entry, then does the second half;
//! 4. any other hit at a site (a reentry, several probes, a jprobe, a
//!    single-step the lane does not take): the generic path's remainder,
//!    `int3_site_entry`, with the site already found.
//!
//! The lane changes the frame only once it has taken the hit, so the
//! host's generic path, when the lane returns to it, sees the trap as the
//! CPU made it. Interrupts are off throughout (the `#BP` gate), so the CPU
//! cannot change under the control block, as in the generic path. What
//! the lane reads from the site and the control block, and where, comes
//! from `registry::layout` and `control::layout`, checked at compile time.
//!
//! The handler is called `fastcall`, the frame in ECX, and
//! [`lane_handler_frame`] tells the unwinder where the frame lies from
//! those calls' return addresses; the generic remainder is called with the
//! frame as its first stack argument, as every dispatcher's
//! ([`is_fast_return_site`]).
use super::cpu::{self as cpu_bits, EFLAGS_IF, EFLAGS_TF};
use super::lane;
use super::regs::PtRegs;
use super::step::layout as step;
use crate::control::layout as cpu;
use crate::handler::int3_site_entry;
use crate::host::__probe_engine_lane_current_cpu;
use crate::probe::layout as probe;
use crate::registry::{INDEX, SITE_TABLE, layout as site};
use core::arch::naked_asm;
use core::mem::offset_of;

/// The `#BP` fast lane (see the module docs).
///
/// Contract with the host's `#BP` entry: `call` it with ESP at a complete
/// [`PtRegs`] of the trap above the return address, EBP still the
/// interrupted code's, DF clear. It returns (EAX, EBX, ECX, EDX, ESI, EDI
/// clobbered, the frame untouched) only if the host must handle the trap
/// itself (`int3_handler`, then its own hooks); otherwise it leaves
/// through `probe_engine_trap_return` with the frame as the hit left it.
///
/// # Safety
/// Only for the host's `#BP` entry, as above, with interrupts off.
#[unsafe(naked)]
#[unsafe(link_section = ".kprobes.text")]
pub unsafe extern "C" fn int3_fast() {
    naked_asm!(
        // The address of the int3, unless it guards a text patch.
        "mov eax, [esp + 4 + {eip}]",
        "dec eax",
        "cmp eax, dword ptr [{guarded}]",
        "je 9f",
        // The site in the address's home bucket (entries are number + 1).
        "imul ecx, eax, {multiplier}",
        "shr ecx, {shift}",
        "movzx ecx, word ptr [{index} + {buckets} + ecx * 2]",
        "imul ebx, ecx, {site_size}", // an empty bucket: the table's sentinel
        "lea ebx, [ebx + {site_table}]",
        "cmp eax, [ebx + {site_address}]",
        "jne 9f",
        // A site. The lane's kind of hit: a fast probe and a resume
        // address (read in the order `replan` writes them backwards)...
        "mov edi, [ebx + {site_fast}]",
        "test edi, edi",
        "jz 6f",
        "mov esi, [ebx + {site_resume}]",
        "test esi, esi",
        "jz 7f",
        // ...on an idle CPU (the call clobbers EAX, ECX, EDX only).
        lane::take_idle_block_or!("eax", "7f", "probe_engine_query_int3_fast"),
        // Taken: the block runs the probe; handlers see the probed address.
        lane::run_probe!("eax", "ebx", "edi"),
        "mov ebx, eax",
        "dec dword ptr [esp + 4 + {eip}]",
        "lea ecx, [esp + 4]", // fastcall: the frame, the probe
        "mov edx, edi",
        "call dword ptr [edi + {probe_entry}]",
        ".global probe_engine_fast_pre_return_site",
        "probe_engine_fast_pre_return_site:",
        // Redirected: EIP is the handler's. Else the copy runs the instruction.
        "test al, al",
        "jnz 2f",
        "mov [esp + 4 + {eip}], esi",
        "2:",
        "mov byte ptr [ebx], {idle}",
        "add esp, 4",
        "jmp probe_engine_trap_return",
        // No fast probe. A single-step for a lone plain probe with a simple
        // repair (see `debug_fast` for its second half; `step_lane` is set
        // only for sites that single-step)...
        "6:",
        "mov edi, [ebx + {site_step_lane}]",
        "test edi, edi",
        "jz 7f",
        "mov esi, [ebx + {site_lone}]",
        "test esi, esi",
        "jz 7f",
        // ...on an idle CPU.
        lane::take_idle_block_or!("eax", "7f", "probe_engine_query_int3_step"),
        // Taken: the block runs the probe; its pre-handler, if any, runs.
        lane::run_probe!("eax", "ebx", "esi"),
        "mov ebx, eax",
        "dec dword ptr [esp + 4 + {eip}]",
        "mov eax, [esi + {pre_handler}]",
        "test eax, eax",
        "jz 5f",
        "lea ecx, [esp + 4]",
        "mov edx, esi",
        "call eax",
        ".global probe_engine_fast_step_pre_return_site",
        "probe_engine_fast_step_pre_return_site:",
        "test al, al",
        "jnz 2b", // redirected: no step
        // The step (`setup_single_step`, `begin_step`): the block keeps TF
        // and IF, the copy runs alone with TF set and IF clear.
        "5:",
        "mov eax, [esp + 4 + {eflags}]",
        "mov [ebx + {step_flags}], eax", // (only TF and IF are read back)
        "mov byte ptr [ebx], {single_step}",
        "or eax, {tf}",
        "and eax, {not_if}",
        "mov [esp + 4 + {eflags}], eax",
        "mov eax, [edi + {arch_slot}]",
        "mov [esp + 4 + {eip}], eax",
        "add esp, 4",
        "jmp probe_engine_trap_return",
        // Any other hit at the site: the generic remainder.
        "7:",
        "push ebx",
        "lea eax, [esp + 8]",
        "push eax",
        "call {site_entry}",
        ".global probe_engine_fast_site_return_site",
        "probe_engine_fast_site_return_site:",
        "add esp, 8",
        "test al, al",
        "jz 9f",
        "add esp, 4",
        "jmp probe_engine_trap_return",
        // Not the lane's: back to the host's generic path.
        "9:",
        "ret",
        eip = const offset_of!(PtRegs, eip),
        guarded = sym super::text_poke_bp::GUARDED,
        multiplier = const site::HASH_MULTIPLIER,
        shift = const site::HASH_SHIFT,
        index = sym INDEX,
        buckets = const site::BUCKETS_OFFSET,
        site_size = const site::SITE_SIZE,
        site_table = sym SITE_TABLE,
        site_address = const site::ADDRESS,
        site_fast = const site::FAST,
        site_resume = const site::RESUME,
        current_cpu = sym __probe_engine_lane_current_cpu,
        state_bytes = sym crate::control::STATE_BYTES,
        idle = const cpu::IDLE,
        handlers_site = const cpu::HANDLERS_SITE,
        handlers_running = const cpu::HANDLERS_RUNNING,
        probe_entry = const crate::probe::layout::ENTRY,
        site_entry = sym int3_site_entry,
        site_step_lane = const site::STEP_LANE,
        site_lone = const site::LONE,
        pre_handler = const probe::PRE_HANDLER,
        eflags = const offset_of!(PtRegs, eflags),
        tf = const EFLAGS_TF,
        not_if = const !EFLAGS_IF,
        step_flags = const cpu::STEP_FLAGS,
        single_step = const cpu::SINGLE_STEP,
        arch_slot = const step::SLOT,
    );
}

/// The `#DB` fast lane: the second half of a single-step the `#BP` lane
/// (or the generic path) began for a site with a `step_lane`.
///
/// Contract with the host's `#DB` entry, as [`int3_fast`]'s with `#BP`:
/// `call` it with ESP at a complete [`PtRegs`] of the trap above the return
/// address, EBP still the interrupted code's, DF clear, DR6 not yet read.
/// It returns (EAX, EBX, ECX, EDX, ESI, EDI clobbered, the frame and DR6
/// untouched) unless the trap is the single-step it takes: DR6 says
/// single-step, this CPU's control block is stepping a site whose
/// `step_lane` is set, and the site still has a lone probe. Then it
/// clears DR6 (as the host's path would), applies the site's repair (the
/// EIP delta, TF and IF back, `StepPlan`), runs the probe's post-handler if
/// it has one (the block running it), makes the block idle and leaves
/// through `probe_engine_trap_return`.
///
/// # Safety
/// Only for the host's `#DB` entry, as above, with interrupts off.
#[unsafe(naked)]
#[unsafe(link_section = ".kprobes.text")]
pub unsafe extern "C" fn debug_fast() {
    naked_asm!(
        "mov eax, dr6",
        "test eax, {dr6_bs}",
        "jz 9f",
        lane::query!("current_cpu", "probe_engine_query_debug_fast"),
        "mov ebx, [{state_bytes} + eax * 4]",
        "cmp byte ptr [ebx], {single_step}",
        "jne 9f",
        "mov ecx, [ebx + {step_site}]",
        "mov edi, [ecx + {site_step_lane}]",
        "test edi, edi",
        "jz 9f",
        "mov esi, [ecx + {site_lone}]",
        "test esi, esi",
        "jz 9f",
        // Taken.
        "xor eax, eax",
        "mov dr6, eax",
        // The repair (`resume_after_single_step`, simple plans only).
        "mov eax, [edi + {eip_delta}]",
        "add [esp + 4 + {eip}], eax",
        // EFLAGS: the restored bits as the step state kept them, the rest
        // as the step left them ((kept ^ now) & restored ^ now), then the
        // bits the plan sets.
        "mov eax, [ebx + {step_flags}]",
        "xor eax, [esp + 4 + {eflags}]",
        "and eax, [edi + {restored}]",
        "xor eax, [esp + 4 + {eflags}]",
        "or eax, [edi + {set}]",
        "mov [esp + 4 + {eflags}], eax",
        // `end_step`, then the post-handler if there is one (`run`, as the
        // generic path), then `finish`.
        "mov eax, [esi + {post_handler}]",
        "test eax, eax",
        "jz 3f",
        "mov byte ptr [ebx], {handlers}",
        "mov [ebx + {handlers_running}], esi",
        "lea ecx, [esp + 4]",
        "mov edx, esi",
        "call eax",
        ".global probe_engine_fast_step_post_return_site",
        "probe_engine_fast_step_post_return_site:",
        "3:",
        "mov byte ptr [ebx], {idle}",
        "add esp, 4",
        "jmp probe_engine_trap_return",
        // Not the lane's: back to the host's generic path.
        "9:",
        "ret",
        dr6_bs = const cpu_bits::DR6_SINGLE_STEP,
        current_cpu = sym __probe_engine_lane_current_cpu,
        state_bytes = sym crate::control::STATE_BYTES,
        single_step = const cpu::SINGLE_STEP,
        step_site = const cpu::STEP_SITE,
        site_step_lane = const site::STEP_LANE,
        site_lone = const site::LONE,
        eip_delta = const step::EIP_DELTA,
        eip = const offset_of!(PtRegs, eip),
        restored = const step::RESTORED_FLAGS,
        step_flags = const cpu::STEP_FLAGS,
        eflags = const offset_of!(PtRegs, eflags),
        set = const step::SET_FLAGS,
        post_handler = const probe::POST_HANDLER,
        handlers = const cpu::HANDLERS,
        handlers_running = const cpu::HANDLERS_RUNNING,
        idle = const cpu::IDLE,
    );
}

/// Whether `address` is the return address of the `#BP` lane's call of
/// the generic remainder (`int3_site_entry`), whose first argument is the
/// trap frame (for the unwinder, as the dispatchers' return sites).
pub fn is_fast_return_site(address: usize) -> bool {
    unsafe extern "C" {
        static probe_engine_fast_site_return_site: u8;
    }
    address == &raw const probe_engine_fast_site_return_site as usize
}

/// For the unwinder: if `address` is the return address of a lane's call
/// of a handler (or a probe's entry routine), where that lane's trap frame
/// lies, as an offset from the caller's stack pointer at the call (the
/// callee's frame pointer + 8). The calls are `fastcall`, with the frame in
/// ECX, so no stack argument points at it.
pub fn lane_handler_frame(address: usize) -> Option<usize> {
    unsafe extern "C" {
        static probe_engine_fast_pre_return_site: u8;
        static probe_engine_fast_step_pre_return_site: u8;
        static probe_engine_fast_step_post_return_site: u8;
        static kretprobe_fast_return_site: u8;
    }
    // The `#BP` and `#DB` lanes run under the host's call (its return
    // address sits on the frame); the detours and the trampoline lane do not.
    let sites = [
        (&raw const probe_engine_fast_pre_return_site, 4),
        (&raw const probe_engine_fast_step_pre_return_site, 4),
        (&raw const probe_engine_fast_step_post_return_site, 4),
        (&raw const kretprobe_fast_return_site, 0),
    ];
    if super::optprobe::is_detour_return_site(address) {
        return Some(0);
    }
    sites.iter().find(|(site, _)| *site as usize == address).map(|&(_, offset)| offset)
}
