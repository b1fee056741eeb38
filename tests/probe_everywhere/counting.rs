//! Probes with their own hit counters, and a probed run of the workload.
//!
//! Why: every test compares hits per probe (alone, all at once, against the
//! calls made), so each probe carries its counters and the run that
//! registers, runs and unregisters a batch is written once.
use super::*;

/// A probe with its own hit counters (the handlers find them from the probe).
#[repr(C)]
pub(crate) struct Counted {
    pub(crate) probe: Kprobe,
    pub(crate) pre: AtomicUsize,
    pub(crate) post: AtomicUsize,
    /// `pre` and `post` as they were when the workload ended.
    pub(crate) seen: (AtomicUsize, AtomicUsize),
}

impl Counted {
    pub(crate) fn leak(address: usize, with_post: bool) -> &'static Counted {
        let probe = Kprobe::new().address(address as *const ()).pre_handler(count_pre);
        let probe = if with_post { probe.post_handler(count_post) } else { probe };
        let zero = || AtomicUsize::new(0);
        leak(Counted { probe, pre: zero(), post: zero(), seen: (zero(), zero()) })
    }

    pub(crate) fn pre(&self) -> usize {
        self.seen.0.load(Ordering::Relaxed)
    }

    pub(crate) fn post(&self) -> usize {
        self.seen.1.load(Ordering::Relaxed)
    }
}

pub(crate) fn counted(probe: &Kprobe) -> &Counted {
    // SAFETY: these handlers are only ever set on the `probe` field of a
    // `Counted` (see `Counted::leak`), which is `repr(C)` with `probe` first,
    // so the probe's address is the `Counted`'s and the cast stays in bounds.
    unsafe { &*(probe as *const Kprobe as *const Counted) }
}

/// The task whose hits count, or `ALL_TASKS` (see [`probed_run`]).
static COUNTED_TASK: AtomicUsize = AtomicUsize::new(ALL_TASKS);
const ALL_TASKS: usize = usize::MAX;

/// Whether a hit now is one the run counts.
fn counts() -> bool {
    let only = COUNTED_TASK.load(Ordering::Relaxed);
    only == ALL_TASKS || only == task::current_id()
}

pub(crate) fn count_pre(probe: &Kprobe, _regs: &mut PtRegs) -> PreAction {
    if counts() {
        counted(probe).pre.fetch_add(1, Ordering::Relaxed);
    }
    PreAction::Continue
}

pub(crate) fn count_post(probe: &Kprobe, _regs: &mut PtRegs) {
    if counts() {
        counted(probe).post.fetch_add(1, Ordering::Relaxed);
    }
}

/// What a probed run of the workload gave.
pub(crate) struct Run {
    pub(crate) hash: u64,
    /// Flags of each probe while registered.
    pub(crate) flags: Vec<KprobeFlags>,
    /// Sum of `nmissed` over the probes.
    pub(crate) missed: usize,
}

/// Registers `probes` as one batch, runs the workload, unregisters them.
/// Counters are zeroed after registration and read before unregistration,
/// and only hits in the workload's own task count: with several CPUs, the
/// others' schedulers run some of the same functions
/// (`task::table::state`) while the probes are in.
pub(crate) fn probed_run(probes: &[&'static Counted]) -> Run {
    COUNTED_TASK.store(task::current_id(), Ordering::Relaxed);
    let run = probed_run_of(probes, workload);
    COUNTED_TASK.store(ALL_TASKS, Ordering::Relaxed);
    run
}

/// [`probed_run`] with another workload, counting hits in every task (the
/// workload may spawn tasks of its own).
pub(crate) fn probed_run_of(probes: &[&'static Counted], workload: fn() -> u64) -> Run {
    let kprobes: Vec<&'static Kprobe> = probes.iter().map(|c| &c.probe).collect();
    if let Err(error) = register_kprobes(&kprobes) {
        panic!(
            "batch of {} probes refused: {error:?} (first at {})",
            probes.len(),
            symbols::Describe(probes[0].probe.addr().unwrap_or(0))
        );
    }
    let flags: Vec<KprobeFlags> = kprobes.iter().map(|p| p.flags()).collect();
    for counted in probes {
        counted.pre.store(0, Ordering::Relaxed);
        counted.post.store(0, Ordering::Relaxed);
    }
    let hash = workload();
    for counted in probes {
        counted.seen.0.store(counted.pre.load(Ordering::Relaxed), Ordering::Relaxed);
        counted.seen.1.store(counted.post.load(Ordering::Relaxed), Ordering::Relaxed);
    }
    let missed = kprobes.iter().map(|p| p.nmissed()).sum();
    unregister_kprobes(&kprobes);
    assert_eq!(site_count(), 0, "sites left after unregistering the batch");
    Run { hash, flags, missed }
}
