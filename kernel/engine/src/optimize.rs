//! Jump-optimized probes (Linux's optprobes): deciding, installing and
//! removing the `jmp` to a probe's detour, and the detour's dispatcher.
//!
//! A probe site whose probes need nothing after the instruction (no post
//! or fault handler, no jprobe), at code that passes
//! `probe_engine_core::optimize::analyze`, with no other probe inside the
//! range the jump displaces, gets a detour (an instruction slot, see
//! `arch::x86::optprobe`) and has its first five bytes replaced by a jump
//! there. A hit then costs no exception at all.
//!
//! Installing and removing cross-modify code other CPUs may be running, so
//! both follow Linux's int3-guarded order (`text_poke_bp`), with the site's
//! breakpoint as the guard, and a sync of every CPU between steps:
//!
//! - **optimize:** the breakpoint is armed; publish the detour and mark the
//!   site optimized (from now on a breakpoint hit resumes in the detour's
//!   copy of the whole range, not in the one-instruction slot), sync; make
//!   sure no task or CPU may resume inside the range or the one-instruction
//!   slot (it would run into the jump's tail); write the tail, sync; write
//!   the `jmp` opcode over the breakpoint, sync.
//! - **unoptimize:** write the breakpoint over the opcode, sync; restore the
//!   tail, sync; mark the site unoptimized, sync; free the detour (as
//!   garbage while a task may resume in its copy).
//!
//! Every change of a site's probes first unoptimizes it if the change
//! could make it ineligible, and reconsiders it afterwards, so a post
//! handler or a probe inside the range appearing sends the site back to
//! int3, and its going re-optimizes it. [`set_optimization`] is Linux's
//! `debug.kprobes-optimization` switch.
use crate::arch::imp::optprobe;
use crate::control::{self, ControlBlock, Hit, TrapContext, transition};
use crate::error::KprobeError;
use crate::probe::{KprobeFlags, ProbeKind};
use crate::quiesce::text_poke_sync;
use crate::registry::{self, Guard, Site};
use crate::{PtRegs, handler};
use core::sync::atomic::{AtomicBool, Ordering};
use probe_engine_core::optimize::{Displaced, JUMP_LEN, OptimizeRefusal as CodeRefusal};

/// Whether probes are jump-optimized (Linux's `debug.kprobes-optimization`,
/// on by default as there).
static OPTIMIZATION: AtomicBool = AtomicBool::new(true);

/// A site's detour: its slot and what the jump displaced (registration
/// side; the trap path reads only the slot, `Site::detour_copy_entry`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Detour {
    /// The instruction slot holding the detour.
    pub slot: usize,
    /// The displaced instructions.
    pub displaced: Displaced,
}

/// Where the relocated copy of the displaced instructions starts in the
/// detour at `slot`.
#[unsafe(link_section = ".kprobes.text")]
#[inline(always)]
pub(crate) fn copy_entry(slot: usize) -> usize {
    slot + optprobe::DETOUR_COPY_OFFSET
}

/// Why a probe cannot be jump-optimized ([`can_optimize`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptimizeRefusal {
    /// No probe can go there at all.
    NotProbeable(KprobeError),
    /// The 5-byte jump would not fit inside the function.
    PastFunctionEnd,
    /// The displaced instruction at `at` cannot run in the detour (it could
    /// not be boosted, or it transfers control before the last).
    Unrelocatable {
        /// Its address.
        at: usize,
    },
    /// The direct jump or call at `from` targets the inside of the range.
    JumpIntoRange {
        /// The branch's address.
        from: usize,
    },
    /// The function has an indirect jump (a jump table) at `at`: its
    /// targets are unknown.
    IndirectJump {
        /// Its address.
        at: usize,
    },
    /// The instruction at `at` does not decode.
    Undecodable {
        /// Its address.
        at: usize,
    },
}

impl From<CodeRefusal> for OptimizeRefusal {
    fn from(refusal: CodeRefusal) -> Self {
        match refusal {
            CodeRefusal::PastFunctionEnd => OptimizeRefusal::PastFunctionEnd,
            CodeRefusal::Unrelocatable { at } => OptimizeRefusal::Unrelocatable { at },
            CodeRefusal::JumpIntoRange { from } => OptimizeRefusal::JumpIntoRange { from },
            CodeRefusal::IndirectJump { at } => OptimizeRefusal::IndirectJump { at },
            CodeRefusal::Undecodable { at } => OptimizeRefusal::Undecodable { at },
        }
    }
}

/// What the optimizer says of the code at `address` alone (not of the
/// probes there): the number of bytes a jump there displaces, or why it
/// cannot go there.
pub fn can_optimize(address: *const ()) -> Result<usize, OptimizeRefusal> {
    let probe = crate::Kprobe::new().address(address);
    let (address, function) = registry::resolve(&probe).map_err(OptimizeRefusal::NotProbeable)?;
    registry::can_probe(address as *const ()).map_err(OptimizeRefusal::NotProbeable)?;
    Ok(registry::analyze(address, function, None)?.length)
}

/// Whether probes are jump-optimized where they can be.
pub fn optimization_enabled() -> bool {
    OPTIMIZATION.load(Ordering::Acquire)
}

/// Turns jump optimization on or off (Linux's `debug.kprobes-optimization`
/// sysctl): on, every eligible registered probe is optimized before this
/// returns; off, every optimized one goes back to its breakpoint. Refused
/// like registration (from a handler, or with interrupts off).
pub fn set_optimization(enabled: bool) -> Result<(), KprobeError> {
    let registry = registry::lock()?;
    OPTIMIZATION.store(enabled, Ordering::Release);
    registry::each_site(|site| {
        if enabled {
            reconsider(&registry, site);
        } else {
            unoptimize(&registry, site);
        }
    });
    Ok(())
}

/// Whether `site`'s probes allow a jump (the code aside): the switch is
/// on, at least one probe is enabled, and every probe needs nothing after
/// the instruction: no post or fault handler, no jprobe.
fn probes_allow(site: &Site) -> bool {
    optimization_enabled() && site.probes().any(|probe| probe.is_enabled()) && site.probes().all(allows_jump)
}

/// Whether `probe` needs nothing after the instruction, so a jump may
/// stand at its address: a plain probe without post or fault handler, or a
/// kretprobe's entry (a jprobe needs its breakpoint).
fn allows_jump(probe: &crate::Kprobe) -> bool {
    match probe.kind {
        ProbeKind::Plain => probe.post_handler.is_none() && probe.fault_handler.is_none(),
        ProbeKind::Kretprobe => true,
        ProbeKind::Jprobe => false,
    }
}

/// The optimized site whose jump covers `address` (one at it, or one up
/// to four bytes before whose range reaches it), with its detour.
/// Registration side; nothing to look up while no site has a detour.
#[inline] // the no-detours test, in every original byte read registration makes
pub(crate) fn jump_covering(address: usize) -> Option<(&'static Site, Detour)> {
    if !registry::any_detours() {
        return None;
    }
    jump_covering_slow(address)
}

fn jump_covering_slow(address: usize) -> Option<(&'static Site, Detour)> {
    (address.saturating_sub(JUMP_LEN - 1)..=address).find_map(|start| {
        let site = registry::lookup(start)?;
        let detour = site.detour()?;
        detour.displaced.range().contains(&address).then_some((site, detour))
    })
}

/// Optimizes `site` if it is eligible and not optimized yet. Task
/// context, interrupts on, registration lock held. Staying with the
/// breakpoint is always correct, so every obstacle (no slot, a task
/// inside the range) just leaves the site as it is.
pub(crate) fn reconsider(registry: &Guard, site: &'static Site) {
    if site.detour_copy_entry().is_some() {
        // Still optimized (the change kept it eligible): a probe just
        // added there is optimized too.
        for probe in site.probes() {
            probe.set_flag(KprobeFlags::OPTIMIZED, true);
        }
        return;
    }
    if !site.is_armed() || !probes_allow(site) {
        return;
    }
    let address = site.address();
    // Another probe within the jump's five bytes rules it out whatever the
    // code (the cheap check first: a sled of probes never decodes).
    if (address + 1..address + JUMP_LEN).any(|byte| registry::lookup(byte).is_some()) {
        return;
    }
    let Ok(displaced) = registry::analyze(address, site.function(), Some(registry)) else { return };
    // No other probe may lie inside the range, and it may not overlap
    // another site's jump.
    let inside = address + 1..address + displaced.length;
    if inside.clone().any(|byte| registry::lookup(byte).is_some()) || jump_covering(address).is_some() {
        return;
    }
    let Some(slot) = registry::allocate_detour_slot() else { return };
    // A lone kretprobe with no entry handler gets the lean detour, which
    // builds no frame for its entry.
    let kind = match site.lone() {
        Some(probe) if registry::lean_eligible(probe) => optprobe::DetourKind::LeanKretprobe,
        _ => optprobe::DetourKind::Full,
    };
    let site_address = site as *const Site as usize;
    let (image, entry) = optprobe::detour_image(kind, site_address, registry::detour_record(slot), &displaced, slot);
    // SAFETY: the slot was just allocated to us; nobody executes it yet.
    unsafe { crate::slots::write(slot, &image) };
    registry::publish_detour(registry, site, Some((Detour { slot, displaced }, kind)));
    text_poke_sync();
    // Every breakpoint hit from now on resumes in the detour's copy, and no
    // jump leads into the range, so nothing new can get inside it. A task
    // or CPU that already was inside the range, or in the one-instruction
    // slot (whose jump back lands inside), would run into the tail: wait
    // until they have left (Linux's synchronize_rcu_tasks), letting them
    // run meanwhile.
    let mut rounds = 0;
    while registry::slot_in_use(inside.clone()) || registry::slot_in_use(site.arch().slot_range()) {
        rounds += 1;
        if rounds > LEAVE_RANGE_ROUNDS {
            // Stuck there (a task that sleeps inside, say): stay on the
            // breakpoint, which is always correct.
            registry::publish_detour(registry, site, None);
            text_poke_sync();
            crate::slots::free(slot, registry::slot_in_use);
            return;
        }
        crate::host::yield_now();
        text_poke_sync();
    }
    let jump = optprobe::jump(address, slot + entry);
    // SAFETY: the tail of the range, behind the armed breakpoint: no CPU
    // executes it (checked above, and only the breakpoint leads in).
    unsafe { crate::host::text_poke(address + 1, &jump[1..]) }.expect("probe address left kernel text");
    text_poke_sync();
    // SAFETY: the breakpoint becomes the jump's opcode; the tail is in place.
    unsafe { crate::host::text_poke(address, &jump[..1]) }.expect("probe address left kernel text");
    // No sync needed: a CPU that still fetches the breakpoint is sent to the
    // same detour copy; the next sync makes every CPU take the jump.
    for probe in site.probes() {
        probe.set_flag(KprobeFlags::OPTIMIZED, true);
    }
}

/// Sync rounds [`reconsider`] waits for tasks and CPUs to leave the range.
const LEAVE_RANGE_ROUNDS: usize = 100;

/// Puts `site` back to its breakpoint if it is optimized. Task context,
/// interrupts on, registration lock held.
pub(crate) fn unoptimize(registry: &Guard, site: &'static Site) {
    if let Some(slot) = unoptimize_unsynced(registry, site) {
        // No breakpoint hit is still on its way into the detour after this.
        text_poke_sync();
        crate::slots::free(slot, registry::slot_in_use);
    }
}

/// [`unoptimize`] up to the last sync: returns the detour's slot, to be
/// freed after the caller's next sync of every CPU (unregistration's
/// quiesce), if the site was optimized.
pub(crate) fn unoptimize_unsynced(registry: &Guard, site: &'static Site) -> Option<usize> {
    let detour = site.detour()?;
    let address = site.address();
    // SAFETY: the jump's opcode becomes a breakpoint, whose hits resume in
    // the detour's copy while the site is marked optimized.
    unsafe { crate::host::text_poke(address, &[crate::arch::imp::BREAKPOINT_INSTRUCTION]) }
        .expect("probe address left kernel text");
    text_poke_sync();
    let mut tail = [0u8; JUMP_LEN - 1];
    for (i, byte) in tail.iter_mut().enumerate() {
        *byte = detour.displaced.original_byte(address + 1 + i).expect("the jump displaced its own bytes");
    }
    // SAFETY: behind the breakpoint; the original bytes come back.
    unsafe { crate::host::text_poke(address + 1, &tail) }.expect("probe address left kernel text");
    text_poke_sync();
    registry::publish_detour(registry, site, None);
    for probe in site.probes() {
        probe.set_flag(KprobeFlags::OPTIMIZED, false);
    }
    Some(detour.slot)
}

/// Before `probe` is added at `address`: unoptimizes the site whose jump
/// covers the address (jumps never overlap, so there is at most one),
/// unless it is the site at the address itself and `probe` keeps it
/// eligible ([`allows_jump`]).
pub(crate) fn before_adding(registry: &Guard, address: usize, probe: &crate::Kprobe) {
    if let Some((site, _)) = jump_covering(address)
        // The site's own jump stays if the new probe keeps it eligible.
        && !(site.address() == address && allows_jump(probe))
    {
        unoptimize(registry, site);
    }
}

/// Reconsiders every site whose jump could cover `address`, once a probe
/// there went away.
pub(crate) fn reconsider_around(registry: &Guard, address: usize) {
    if !optimization_enabled() {
        return;
    }
    for start in address.saturating_sub(JUMP_LEN - 1)..address {
        if let Some(site) = registry::lookup(start) {
            reconsider(registry, site);
        }
    }
}

/// An optimized hit the detour does not take itself (this CPU's block is
/// busy, or the detour's record is `optprobe::GONE`): called by the
/// detour's slow path (interrupts off) with the frame it built and the
/// detour's address. The same as a breakpoint hit, except that no
/// exception was taken and the displaced instructions resume in the
/// detour's copy.
#[unsafe(link_section = ".kprobes.text")]
pub(crate) extern "C" fn optimized_dispatch(regs: &mut PtRegs, detour: usize) {
    // SAFETY: the detour executed `cli` after saving the flags, and its
    // slow path is the engine's own trap entry.
    let mut cx = unsafe { TrapContext::enter() };
    let cx = &mut cx;
    let site = registry::detour_site(detour).expect("a detour runs only once published");
    let copy = copy_entry(detour);
    // This CPU may have jumped in before the site was unoptimized (it
    // stopped at the detour's first instruction, interrupts still on); the
    // detour's copy, kept while anyone may resume in it, then still runs
    // the displaced code. If the site still probes this address (it was
    // unoptimized because a post handler, a probe in its range or the
    // switch came, not because its probe went), the hit is a hit and runs
    // the handlers as any other: Linux's `optimized_callback` does too
    // unless the probe is disabled. A probe that is gone, or a site reused
    // for another address, runs none.
    if !site.has_detour(detour) && site.address() != regs.ip() {
        regs.set_ip(copy);
        return;
    }
    let lone = site.lone();
    match control::with(cx, |kcb| kcb.begin_hit(site, lone)) {
        Hit::Fresh => {}
        Hit::Reentry | Hit::InsideReentry => {
            site.count_miss();
            regs.set_ip(copy);
            return;
        }
    }
    if handler::run_pre_handlers(cx, regs, site, lone) {
        return; // redirected (the hit is finished)
    }
    regs.set_ip(copy);
    transition(cx, ControlBlock::finish);
}

/// Whether `address` is where a detour's slow path calls the dispatcher
/// (the unwinder continues through the frame there).
pub fn is_dispatcher_return_site(address: usize) -> bool {
    address == optprobe::dispatch_return_site() || crate::arch::imp::fastpath::is_fast_return_site(address)
}
