//! The soak's books: which probe is where, its state, and the counts that must balance.
//!
//! Why: the accounting (handler runs + nmissed = calls made while registered
//! and enabled) is the soak's verdict; keeping its tables in one place is what
//! lets every caller, handler and control step update the same books.
use super::*;

pub(crate) const WORKERS: usize = 4;
/// Calls each worker makes (spread over the five targets).
pub(crate) const CALLS_PER_WORKER: usize = 2_000_000;
/// The `who` of calls made by the timer hook.
pub(crate) const HOOK: u32 = WORKERS as u32;

/// The probes, one per target function.
pub(crate) const KP_STEP: usize = 0;
pub(crate) const KP_BOOST: usize = 1;
pub(crate) const KRET: usize = 2;
pub(crate) const KRET_ONE: usize = 3;
pub(crate) const JP: usize = 4;
/// A kprobe, a kretprobe and a jprobe sharing one function (one site).
pub(crate) const SH_KP: usize = 5;
pub(crate) const SH_KRET: usize = 6;
pub(crate) const SH_JP: usize = 7;
pub(crate) const PROBES: usize = 8;
pub(crate) const NAMES: [&str; PROBES] = [
    "kprobe (stepped)",
    "kprobe (boosted)",
    "kretprobe",
    "kretprobe (maxactive 1)",
    "jprobe",
    "shared: kprobe",
    "shared: kretprobe",
    "shared: jprobe",
];
/// The target functions: one per probe, and one (`SHARED`) for three.
pub(crate) const SHARED: usize = 5;
pub(crate) const TARGETS: usize = 6;
pub(crate) const TARGET_PROBES: [&[usize]; TARGETS] =
    [&[KP_STEP], &[KP_BOOST], &[KRET], &[KRET_ONE], &[JP], &[SH_KP, SH_KRET, SH_JP]];
/// Probes whose window closes when the call returns (a kretprobe that may
/// not be changed while its calls are in flight); the others close it at
/// the entry hit.
pub(crate) const LATE: [bool; PROBES] = [false, false, false, true, false, false, true, false];
/// Mixed into each target's second argument, so handlers can check both.
pub(crate) const MAGIC: [u32; TARGETS] = [0x5a5a_0001, 0x3c3c_0002, 0x6969_0003, 0x0f0f_0004, 0x7e7e_0005, 0x1234_0006];

pub(crate) const UNREGISTERED: u8 = 0;
pub(crate) const ENABLED: u8 = 1;
pub(crate) const DISABLED: u8 = 2;

/// Each probe's state, as the control task last left it.
pub(crate) static STATE: [AtomicU8; PROBES] = [const { AtomicU8::new(UNREGISTERED) }; PROBES];
/// Set while the control task changes a probe: no new call may start.
pub(crate) static TRANSITION: [AtomicBool; PROBES] = [const { AtomicBool::new(false) }; PROBES];
/// Announced task calls whose entry hit has not happened yet.
pub(crate) static ENTERING: [AtomicUsize; PROBES] = [const { AtomicUsize::new(0) }; PROBES];
/// Bumped when an unregistration has returned.
pub(crate) static GENERATION: [AtomicUsize; PROBES] = [const { AtomicUsize::new(0) }; PROBES];
/// Bumped just before an unregistration begins. A kretprobe call that
/// returns with this past the `GENERATION` it started at overlapped an
/// unregistration: its return may go unreported (orphaned). Counting from
/// the start matters with several CPUs: unregistering waits for the other
/// CPUs in a sync round, and the calls that run meanwhile on this CPU
/// return after the kretprobe is gone but before the call has returned.
pub(crate) static UNREGISTERS_BEGUN: [AtomicUsize; PROBES] = [const { AtomicUsize::new(0) }; PROBES];
/// Calls started while the probe was registered and enabled.
pub(crate) static EXPECTED: [AtomicUsize; PROBES] = [const { AtomicUsize::new(0) }; PROBES];
/// Of those, kretprobe calls whose registration ended before they returned.
pub(crate) static ORPHANED: [AtomicUsize; PROBES] = [const { AtomicUsize::new(0) }; PROBES];
/// Handler runs: pre handler, return handler, jprobe handler.
pub(crate) static HANDLED: [AtomicUsize; PROBES] = [const { AtomicUsize::new(0) }; PROBES];
/// `nmissed` summed over the registrations that ended.
pub(crate) static MISSED: [AtomicUsize; PROBES] = [const { AtomicUsize::new(0) }; PROBES];
/// Post-handler runs of the stepped kprobe and of the shared one.
pub(crate) static POSTS: AtomicUsize = AtomicUsize::new(0);
pub(crate) static SHARED_POSTS: AtomicUsize = AtomicUsize::new(0);
/// Calls made, per worker and (last) by the hook.
pub(crate) static CALLS: [AtomicUsize; WORKERS + 1] = [const { AtomicUsize::new(0) }; WORKERS + 1];
/// Wrong arguments or return values seen anywhere, and the first one.
pub(crate) static BAD: AtomicUsize = AtomicUsize::new(0);
pub(crate) static FIRST_BAD: AtomicU32 = AtomicU32::new(0);
/// Set by the boosted kprobe's handler when it ended a worker's window.
pub(crate) static RELEASED: [AtomicBool; WORKERS] = [const { AtomicBool::new(false) }; WORKERS];
/// The kretprobe's `UNREGISTERS_BEGUN` as `soak_kret` saw it just before returning.
pub(crate) static RETURN_GENERATION: [AtomicUsize; WORKERS] = [const { AtomicUsize::new(0) }; WORKERS];
/// Set by the kretprobe's return handler for the worker whose call it
/// reported (cleared by the caller before each call).
pub(crate) static REPORTED: [AtomicBool; WORKERS] = [const { AtomicBool::new(false) }; WORKERS];
pub(crate) static HOOK_ON: AtomicBool = AtomicBool::new(false);
pub(crate) static WORKERS_DONE: AtomicUsize = AtomicUsize::new(0);
/// Control-task operations done: register, unregister, enable, disable.
pub(crate) static OPS: [AtomicUsize; 4] = [const { AtomicUsize::new(0) }; 4];
/// Unregistrations of the kretprobe while one of its calls was in flight.
pub(crate) static IN_FLIGHT_UNREGISTERS: AtomicUsize = AtomicUsize::new(0);
pub(crate) static KRET_INSIDE: AtomicUsize = AtomicUsize::new(0);

pub(crate) fn bad(code: u32) {
    if BAD.fetch_add(1, SeqCst) == 0 {
        FIRST_BAD.store(code, SeqCst);
    }
}

/// What target `target` returns for `(a, b)`.
pub(crate) fn expected_return(target: usize, a: u32, b: u32) -> u32 {
    match target {
        KP_STEP => a.wrapping_mul(3) ^ b,
        KP_BOOST => a.wrapping_add(b).rotate_left(7),
        KRET => a.wrapping_mul(7).wrapping_add(b),
        KRET_ONE => a.wrapping_sub(b) ^ 0x55,
        JP => a ^ b.wrapping_mul(5),
        _ => a.rotate_right(3).wrapping_add(b ^ 0x77),
    }
}

/// The arguments of call `i` by `who` to target `target`.
pub(crate) fn arguments(target: usize, who: u32, i: usize) -> (u32, u32) {
    let a = who << 20 | (i as u32 & 0xf_ffff);
    (a, a ^ MAGIC[target])
}

/// Whether `(a, b, who)` are arguments some caller passes to `target`.
pub(crate) fn plausible(target: usize, a: u32, b: u32, who: u32) -> bool {
    who <= HOOK && a >> 20 == who && b == a ^ MAGIC[target]
}

/// A task call's entry hit is done (the window opened by the caller closes).
pub(crate) fn passed(probe: usize, who: u32) {
    if who < HOOK {
        ENTERING[probe].fetch_sub(1, SeqCst);
    }
}
