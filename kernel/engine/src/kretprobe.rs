//! Function-return probes (kretprobes), as Linux's i386 design has them —
//! without its 2005 limitations.
//!
//! Entry: a kprobe on the function's first instruction takes an instance
//! from the kretprobe's pool, saves the stacked return address in it, and
//! swaps in the trampoline's address (on i386 a kernel trap pushes no
//! ESP/SS, so the slot is exactly where the probed ESP points). With no free
//! instance the call runs normally and counts in `nmissed`.
//!
//! Return: the function's `ret` lands in the trampoline, which calls
//! `trampoline_dispatch`: it takes, from the current task's list of active
//! instances (newest first), every instance that replaced this very stack
//! slot — several kretprobes on one function share one trampoline pass — runs
//! their handlers newest first, and resumes at the real return address.
//!
//! The common entry and return (one kretprobe on the call, no entry
//! handler, an idle CPU) run in assembly lanes that do exactly what
//! `on_entry` and `trampoline_dispatch` do (`arch::imp::trampoline`);
//! everything else comes here.
//!
//! What the 2005 design lacked, and this one has:
//! - instances are matched by task *and* stack slot, so tasks, recursion
//!   and interrupts never cross;
//! - the unwinder and `return_address`
//!   see the real return address, not the trampoline;
//! - a kretprobe shares its function with kprobes, jprobes and other
//!   kretprobes;
//! - unregistering while calls are in flight is safe: they return normally,
//!   their handlers do not run, and the instance memory is reused only
//!   once they are back.
use super::control::{self, ControlBlock, TrapContext};
use super::error::KprobeError;
use super::instances::{self, KretprobeInstance, Pool};
use super::probe::{Kprobe, KprobeFlags, ProbeKind, check_handler_type, handler_value};
use super::quiesce::quiesce;
use super::registry;
use crate::MAX_TASKS;
use crate::arch::imp::{self as arch, PtRegs, trampoline};

/// A task id as the host hands them out.
pub type TaskId = usize;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

/// Most private bytes an instance can hold.
pub const MAX_DATA_SIZE: usize = 4096;
/// The floor of the default `maxactive` (Linux's `max(10, 2 * CPUs)`): what
/// a kretprobe without a `maxactive` gets on up to 5 online CPUs. The
/// default itself is computed when the kretprobe registers:
/// [`default_maxactive`].
pub const DEFAULT_MAXACTIVE: usize = 10;

/// `maxactive` when the user gives 0 or less, as Linux computes it today:
/// `max(10, 2 × online CPUs)` (`Host::online_cpus`, asked now).
pub fn default_maxactive() -> usize {
    DEFAULT_MAXACTIVE.max(2 * crate::host::online_cpus())
}

/// What an entry handler decides.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryAction {
    /// Report this call's return to the handler.
    Report,
    /// Do not report this call's return (Linux: entry handler returned non-zero).
    Skip,
}

/// A return handler: runs when the probed function returns, with
/// `regs.eax` the return value and `regs.eip` the real return address
/// (changing either changes the return). Any function (or closure that
/// captures nothing) of type `fn(&mut KretprobeInstance, &mut PtRegs)`,
/// given by name as a [`PreHandler`](crate::PreHandler).
pub trait ReturnHandler: Fn(&mut KretprobeInstance, &mut PtRegs) + Copy + 'static {}
impl<F: Fn(&mut KretprobeInstance, &mut PtRegs) + Copy + 'static> ReturnHandler for F {}

/// An entry handler: runs at the function's entry, before its return
/// address is replaced. Any function (or closure that captures nothing) of
/// type `fn(&mut KretprobeInstance, &mut PtRegs) -> EntryAction`, given by
/// name as a [`PreHandler`](crate::PreHandler).
pub trait EntryHandler: Fn(&mut KretprobeInstance, &mut PtRegs) -> EntryAction + Copy + 'static {}
impl<F: Fn(&mut KretprobeInstance, &mut PtRegs) -> EntryAction + Copy + 'static> EntryHandler for F {}

/// A return handler as the engine keeps and calls it: `fastcall`, the
/// frame in ECX and the instance in EDX, so the trampoline's assembly lane
/// calls it directly.
pub(crate) type RawReturnHandler = extern "fastcall" fn(&mut PtRegs, &mut KretprobeInstance);
/// An entry handler as the engine keeps and calls it (only from Rust).
pub(crate) type RawEntryHandler = fn(&mut KretprobeInstance, &mut PtRegs) -> EntryAction;

extern "fastcall" fn return_adapter<F: ReturnHandler>(regs: &mut PtRegs, instance: &mut KretprobeInstance) {
    handler_value::<F>()(instance, regs)
}

fn entry_adapter<F: EntryHandler>(instance: &mut KretprobeInstance, regs: &mut PtRegs) -> EntryAction {
    handler_value::<F>()(instance, regs)
}

/// A function-return probe.
///
/// ```ignore
/// use probe_engine::{register_kretprobe, regs_return_value, Kretprobe,
///     KretprobeInstance, PtRegs, EntryAction};
///
/// fn entry(ri: &mut KretprobeInstance, _regs: &mut PtRegs) -> EntryAction {
///     ri.store(my_kernel::timestamp());
///     EntryAction::Report
/// }
/// fn returned(ri: &mut KretprobeInstance, regs: &mut PtRegs) {
///     let start: u64 = ri.load();
///     my_kernel::println!("returned {} after {} cycles", regs_return_value(regs),
///         my_kernel::timestamp() - start);
/// }
///
/// static RP: Kretprobe = Kretprobe::new().symbol("my_crate::work")
///     .entry_handler(entry).handler(returned).data_size(8).maxactive(20);
/// register_kretprobe(&RP).expect("kretprobe refused");
/// ```
#[repr(C)] // `kp` first: the assembly lanes use a Kretprobe's address as its entry probe's
pub struct Kretprobe {
    /// The entry probe (on the function's first instruction).
    pub kp: Kprobe,
    handler: Option<RawReturnHandler>,
    entry_handler: Option<RawEntryHandler>,
    data_size: usize,
    maxactive: i32,
    missed: AtomicUsize,
    pool: AtomicPtr<Pool>,
}

impl Kretprobe {
    /// A return probe with no location or handlers yet; `maxactive` 0 (the default).
    pub const fn new() -> Self {
        Kretprobe {
            kp: Kprobe::new().with_kind(ProbeKind::Kretprobe),
            handler: None,
            entry_handler: None,
            data_size: 0,
            maxactive: 0,
            missed: AtomicUsize::new(0),
            pool: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// On the function called `name` (offset 0: return probes go on entries).
    pub const fn symbol(mut self, name: &'static str) -> Self {
        self.kp = self.kp.symbol(name, 0);
        self
    }

    /// On the function at `address`.
    pub const fn address(mut self, address: *const ()) -> Self {
        self.kp = self.kp.address(address);
        self
    }

    /// Sets the return handler (a function given by name, see [`ReturnHandler`]).
    pub const fn handler<F: ReturnHandler>(mut self, handler: F) -> Self {
        check_handler_type::<F>();
        let _ = handler; // zero-sized and `Copy`: nothing to keep or drop
        self.handler = Some(return_adapter::<F>);
        self
    }

    /// Sets the entry handler (a function given by name, see [`EntryHandler`]).
    pub const fn entry_handler<F: EntryHandler>(mut self, handler: F) -> Self {
        check_handler_type::<F>();
        let _ = handler; // zero-sized and `Copy`: nothing to keep or drop
        self.entry_handler = Some(entry_adapter::<F>);
        // The assembly entry leaves entry handlers to the Rust one.
        self.kp.entry = crate::handler::call_kretprobe_entry;
        self
    }

    /// Private bytes per instance (at most [`MAX_DATA_SIZE`]).
    pub const fn data_size(mut self, bytes: usize) -> Self {
        self.data_size = bytes;
        self
    }

    /// How many calls may be active at once; 0 or less means
    /// [`default_maxactive`] (computed at registration).
    pub const fn maxactive(mut self, count: i32) -> Self {
        self.maxactive = count;
        self
    }

    /// The number of instances registration allocates (now): `maxactive`,
    /// or [`default_maxactive`] for 0 or less.
    pub fn effective_maxactive(&self) -> usize {
        if self.maxactive <= 0 { default_maxactive() } else { self.maxactive as usize }
    }

    /// Calls whose return was not reported for lack of a free instance, or
    /// because the entry probe hit while another probe was being handled.
    pub fn nmissed(&self) -> usize {
        self.missed.load(Ordering::Relaxed) + self.kp.nmissed()
    }

    /// Whether registered and enabled.
    pub fn is_enabled(&self) -> bool {
        self.kp.is_enabled()
    }
}

impl Default for Kretprobe {
    fn default() -> Self {
        Self::new()
    }
}

/// Registers a return probe: allocates its `maxactive` instances, then its
/// entry probe, all under the registration lock (so two tasks registering
/// the same kretprobe cannot both get past the checks). On error nothing
/// changed.
pub fn register_kretprobe(rp: &'static Kretprobe) -> Result<(), KprobeError> {
    let registry = registry::lock()?;
    register_locked(&registry, rp)
}

fn register_locked(registry: &registry::Guard, rp: &'static Kretprobe) -> Result<(), KprobeError> {
    if rp.data_size > MAX_DATA_SIZE {
        return Err(KprobeError::DataTooLarge { max: MAX_DATA_SIZE });
    }
    if !rp.kp.flags().contains(KprobeFlags::GONE) {
        return Err(KprobeError::AlreadyRegistered);
    }
    registry::resolve(&rp.kp)?;
    let pool = instances::create(rp, rp.effective_maxactive(), rp.data_size)
        .ok_or(KprobeError::TableFull("kretprobe instance memory"))?;
    rp.kp.owner.store(rp as *const Kretprobe as *mut (), Ordering::Release);
    rp.pool.store(pool, Ordering::Release);
    // Reset before the entry probe is armed: a hit may come right after.
    rp.missed.store(0, Ordering::Relaxed);
    if let Err(error) = registry::register_locked(registry, &rp.kp) {
        rp.pool.store(ptr::null_mut(), Ordering::Release);
        instances::retire(quiesce(pool));
        return Err(error);
    }
    Ok(())
}

/// Unregisters a return probe. Calls in flight return normally to their
/// callers without running the handler. When it returns, no CPU is still
/// handling the entry probe, so `rp` may be registered again.
pub fn unregister_kretprobe(rp: &'static Kretprobe) -> Result<(), KprobeError> {
    let registry = registry::lock()?;
    let detached = detach_locked(&registry, rp)?;
    finish(&registry, quiesce(detached));
    Ok(())
}

/// The unpublished parts of a kretprobe: its entry probe and its pool.
type DetachedKretprobe = (registry::Detached, *mut Pool);

/// Unpublishes `rp`: its entry probe leaves its site, and its pool can no
/// longer be found by a new call (see `quiesce`).
fn detach_locked(registry: &registry::Guard, rp: &'static Kretprobe) -> Result<DetachedKretprobe, KprobeError> {
    let detached = registry::detach_locked(registry, &rp.kp)?;
    Ok((detached, rp.pool.swap(ptr::null_mut(), Ordering::AcqRel)))
}

/// After the sync: no CPU is between loading the pool and taking from it,
/// or still handling the entry probe; the site is freed, the pool retired.
fn finish(registry: &registry::Guard, detached: crate::quiesce::Quiesced<DetachedKretprobe>) {
    let (site, pool) = detached.split();
    registry::Detached::finish(registry, site);
    if !pool.is_null() {
        instances::retire(pool);
    }
}

fn unregister_locked(registry: &registry::Guard, rp: &'static Kretprobe) -> Result<(), KprobeError> {
    finish(registry, quiesce(detach_locked(registry, rp)?));
    Ok(())
}

/// Registers every return probe or none.
pub fn register_kretprobes(rps: &[&'static Kretprobe]) -> Result<(), KprobeError> {
    let registry = registry::lock()?;
    registry::register_all(
        rps,
        |rp| register_locked(&registry, rp),
        |rp| {
            let _ = unregister_locked(&registry, rp);
        },
    )
}

/// Unregisters every registered return probe in `rps`, with one sync of
/// every CPU for the whole batch.
pub fn unregister_kretprobes(rps: &[&'static Kretprobe]) {
    let Ok(registry) = registry::lock() else { return };
    let detached: alloc::vec::Vec<DetachedKretprobe> =
        rps.iter().filter_map(|rp| detach_locked(&registry, rp).ok()).collect();
    quiesce(detached).each().for_each(|detached| finish(&registry, detached));
}

/// Enables a disabled return probe (new calls are tracked again).
pub fn enable_kretprobe(rp: &'static Kretprobe) -> Result<(), KprobeError> {
    registry::enable_kprobe(&rp.kp)
}

/// Disables a return probe: new calls are not tracked; calls already in
/// flight still report.
pub fn disable_kretprobe(rp: &'static Kretprobe) -> Result<(), KprobeError> {
    registry::disable_kprobe(&rp.kp)
}

/// The return value in a return handler's registers.
pub fn regs_return_value(regs: &PtRegs) -> u32 {
    regs.return_value() as u32
}

/// Each task's active instances, newest first. Changed only with a
/// [`TrapContext`] (interrupts off), or by the trampoline's assembly lane
/// (interrupts off, the same rules).
pub(crate) static ACTIVE: [AtomicPtr<KretprobeInstance>; MAX_TASKS] =
    [const { AtomicPtr::new(ptr::null_mut()) }; MAX_TASKS];

/// Walks a list of active instances, newest first, as raw pointers: no
/// reference to an instance outlives the step that uses it, so the walk
/// never hands out two aliasing `&mut`. Each `next` is read before the
/// instance is yielded, so the caller may unlink it and put it back.
struct ActiveList {
    next: *mut KretprobeInstance,
}

impl Iterator for ActiveList {
    type Item = NonNull<KretprobeInstance>;
    #[unsafe(link_section = ".kprobes.text")]
    fn next(&mut self) -> Option<Self::Item> {
        let instance = NonNull::new(self.next)?;
        // SAFETY: list nodes are live instances (unlinked before they are
        // put back); reading one field through the raw pointer makes no reference.
        self.next = unsafe { (*instance.as_ptr()).next };
        Some(instance)
    }
}

/// `task`'s active instances, newest first (none for an unknown task).
#[unsafe(link_section = ".kprobes.text")]
fn active(_cx: &TrapContext, task: TaskId) -> ActiveList {
    ActiveList { next: ACTIVE.get(task).map_or(ptr::null_mut(), |head| head.load(Ordering::Acquire)) }
}

/// `task`'s newest active instance.
#[unsafe(link_section = ".kprobes.text")]
#[inline(always)]
fn newest(_cx: &TrapContext, task: TaskId) -> Option<NonNull<KretprobeInstance>> {
    NonNull::new(ACTIVE.get(task)?.load(Ordering::Acquire))
}

/// A field of an active instance, read through its pointer.
#[unsafe(link_section = ".kprobes.text")]
#[inline(always)]
fn slot_of(instance: NonNull<KretprobeInstance>) -> usize {
    // SAFETY: `instance` comes from an active list (a live instance).
    unsafe { (*instance.as_ptr()).stack_slot }
}

/// The newest active instance of `task` that replaced `slot`.
#[unsafe(link_section = ".kprobes.text")]
fn find(cx: &TrapContext, task: TaskId, slot: usize) -> Option<NonNull<KretprobeInstance>> {
    active(cx, task).find(|&instance| slot_of(instance) == slot)
}

/// The real return address `instance` saved.
#[unsafe(link_section = ".kprobes.text")]
fn return_address_of(instance: NonNull<KretprobeInstance>) -> usize {
    // SAFETY: as in `slot_of`.
    unsafe { (*instance.as_ptr()).return_address }
}

/// Removes `instance` from `task`'s active list.
#[unsafe(link_section = ".kprobes.text")]
fn unlink(cx: &mut TrapContext, task: TaskId, instance: NonNull<KretprobeInstance>) {
    let target = instance.as_ptr();
    // SAFETY: `instance` is on `task`'s list; the token gives this code the
    // lists to itself, and no reference to any node is live.
    let after = unsafe { (*target).next };
    let head = &ACTIVE[task];
    if ptr::eq(head.load(Ordering::Acquire), target) {
        head.store(after, Ordering::Release);
    } else if let Some(previous) = active(cx, task).find(|node| {
        // SAFETY: as above.
        ptr::eq(unsafe { (*node.as_ptr()).next }, target)
    }) {
        // SAFETY: as above.
        unsafe { (*previous.as_ptr()).next = after };
    }
    // SAFETY: as above.
    unsafe { (*target).next = ptr::null_mut() };
}

/// The entry probe's part of a hit (called by the trap path with the
/// function's registers; interrupts off).
#[unsafe(link_section = ".kprobes.text")]
pub(crate) fn on_entry(cx: &mut TrapContext, probe: &'static Kprobe, regs: &mut PtRegs) {
    // SAFETY: registration stored the owning `&'static Kretprobe` before the
    // entry probe could be armed (a plain kprobe can never be registered as
    // one: `register_kprobe` refuses other kinds).
    let rp = unsafe { &*(probe.owner.load(Ordering::Acquire) as *const Kretprobe) };
    let pool = rp.pool.load(Ordering::Acquire);
    let Some(instance) = (!pool.is_null()).then(|| instances::get(cx, pool)).flatten() else {
        rp.missed.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let task = crate::host::current_task();
    let slot = arch::return_slot(regs);
    // SAFETY: at a function's first instruction ESP points at the return address.
    let stacked = unsafe { ptr::read(slot as *const usize) };
    let return_address = if stacked == trampoline::address() {
        // Another kretprobe on this function already swapped this call.
        find(cx, task, slot).map_or(stacked, return_address_of)
    } else {
        stacked
    };
    {
        // SAFETY: the instance was just taken from its pool: nothing else
        // refers to it until it is linked below.
        let instance = unsafe { &mut *instance.as_ptr() };
        instance.return_address = return_address;
        instance.stack_slot = slot;
        instance.task = task;
        instance.entry_time = crate::host::timestamp();
        if let Some(entry) = rp.entry_handler
            && entry(instance, regs) == EntryAction::Skip
        {
            instances::put(cx, NonNull::from(instance));
            return;
        }
        instance.next = ACTIVE[task].load(Ordering::Acquire);
    }
    // SAFETY: as above; the slot now sends the return to the trampoline.
    unsafe { ptr::write(slot as *mut usize, trampoline::address()) };
    ACTIVE[task].store(instance.as_ptr(), Ordering::Release);
}

/// The newest instance of the call that just returned into the trampoline
/// with `regs`. A plain `ret` leaves the stack just above the replaced slot
/// (`arch::returned_slot`), but a callee that pops its own arguments (on
/// i386 `ret imm16`, such as for the hidden struct-return pointer) leaves it
/// up to `arch::MAX_CALLEE_POP` bytes higher: then the returning call is the
/// task's newest instance below.
#[unsafe(link_section = ".kprobes.text")]
fn returning_instance(cx: &TrapContext, task: TaskId, regs: &PtRegs) -> Option<NonNull<KretprobeInstance>> {
    let plain = arch::returned_slot(regs);
    if let Some(instance) = find(cx, task, plain) {
        return Some(instance);
    }
    active(cx, task).find(|&instance| slot_of(instance) < plain && plain - slot_of(instance) <= arch::MAX_CALLEE_POP)
}

/// Called by the trampoline (interrupts off) with the frame it built.
#[unsafe(link_section = ".kprobes.text")]
pub(crate) extern "C" fn trampoline_dispatch(regs: &mut PtRegs) {
    // SAFETY: the trampoline runs with interrupts off (it executed `cli`
    // after saving the flags) and is the engine's own trap entry.
    let mut cx = unsafe { TrapContext::enter() };
    let cx = &mut cx;
    let task = crate::host::current_task();
    // Returns come in the order of their calls, so the returning call is
    // almost always the task's newest instance: then it and any others of
    // the same call (several kretprobes on one function) are popped off
    // the head, with no search ([`pop_returning`]).
    if let Some(head) = newest(cx, task)
        && slot_of(head) == arch::returned_slot(regs)
    {
        pop_returning(cx, task, head, regs);
        return;
    }
    let Some(first) = returning_instance(cx, task, regs) else {
        let mut listed = [(0, 0); 8];
        let count = active(cx, task).enumerate().fold(0, |_, (n, i)| {
            if let Some(entry) = listed.get_mut(n) {
                *entry = (slot_of(i), return_address_of(i));
            }
            n + 1
        });
        lost_return(regs, task, &listed[..count.min(listed.len())], count);
    };
    // Probe hits from here on (handlers, or functions this code calls)
    // are reentries: they count misses instead of recursing.
    control::transition(cx, ControlBlock::begin_return_handlers);
    let slot = slot_of(first);
    // Handlers and unwinders see the real return address from the start.
    regs.set_ip(return_address_of(first));
    while let Some(instance) = find(cx, task, slot) {
        unlink(cx, task, instance);
        // SAFETY: unlinked above, so this is the only reference to the
        // instance until it goes back to its pool.
        report(cx, unsafe { &mut *instance.as_ptr() }, regs);
        instances::put(cx, instance);
    }
    control::transition(cx, ControlBlock::end_return_handlers);
}

/// The common return: `head`, the newest instance of `task`, is the
/// returning call's. Pops it and every instance after it with the same
/// slot (those are the other kretprobes of the same call, linked by the
/// same entry hit, newest first), running their handlers in that order.
/// An instance of that slot deeper in the list would be a call that never
/// returned and whose stack was reused, which the kernel cannot do (no
/// `longjmp`; a task's list dies with it), so no search follows.
#[unsafe(link_section = ".kprobes.text")]
#[inline(always)]
fn pop_returning(cx: &mut TrapContext, task: TaskId, head: NonNull<KretprobeInstance>, regs: &mut PtRegs) {
    control::transition(cx, ControlBlock::begin_return_handlers);
    let slot = slot_of(head);
    regs.set_ip(return_address_of(head));
    let mut next = Some(head);
    while let Some(instance) = next.filter(|&instance| slot_of(instance) == slot) {
        // SAFETY: `instance` heads the task's list (the token gives this
        // code the lists to itself); unlinking it makes this the only
        // reference until it goes back to its pool.
        let instance_ref = unsafe { &mut *instance.as_ptr() };
        next = NonNull::new(instance_ref.next);
        ACTIVE[task].store(instance_ref.next, Ordering::Release);
        instance_ref.next = ptr::null_mut();
        report(cx, instance_ref, regs);
        instances::put(cx, instance);
    }
    control::transition(cx, ControlBlock::end_return_handlers);
}

/// Where the trampoline's assembly lane finds what it reads of a
/// kretprobe and of the task lists.
pub(crate) mod layout {
    use super::Kretprobe;
    use core::mem::offset_of;
    // `Kretprobe::kp`, what the control block names as running, is at the
    // Kretprobe's own address: the lanes use one for the other.
    const _: () = assert!(offset_of!(Kretprobe, kp) == 0);
    /// `Kretprobe::handler`, the return handler (`None` is 0).
    pub const HANDLER: usize = offset_of!(Kretprobe, handler);
    /// `Kretprobe::pool`: null while unregistered.
    pub const POOL: usize = offset_of!(Kretprobe, pool);
    /// Entries of `ACTIVE` (a task id at or above it has no list).
    pub const TASKS: usize = crate::MAX_TASKS;
}

/// Runs the return handler of `instance`'s kretprobe, if it has one (it
/// has none once unregistered).
#[unsafe(link_section = ".kprobes.text")]
#[inline(always)]
fn report(cx: &mut TrapContext, instance: &mut KretprobeInstance, regs: &mut PtRegs) {
    if let Some(rp) = instance.kretprobe()
        && let Some(handler) = rp.handler
    {
        control::transition(cx, |kcb| kcb.run(&rp.kp));
        handler(regs, instance);
    }
}

/// The trampoline was entered by a return that no active instance of the
/// current task accounts for: the engine's bookkeeping was broken (for
/// example by code that rewrote a return slot behind its back). Stops the
/// run with a report of what is known: the task, the return slot, and the
/// first few of the task's `count` active instances (slot, real return).
#[cold]
#[inline(never)]
#[unsafe(link_section = ".kprobes.text")]
fn lost_return(regs: &PtRegs, task: TaskId, listed: &[(usize, usize)], count: usize) -> ! {
    struct Instances<'a>(&'a [(usize, usize)], usize);
    impl core::fmt::Display for Instances<'_> {
        fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
            write!(f, "the task has {} active kretprobe instances", self.1)?;
            for (slot, return_address) in self.0 {
                write!(
                    f,
                    "\n    slot {slot:#010x} -> {return_address:#010x} {}",
                    crate::host::Describe(return_address - 1)
                )?;
            }
            if self.1 > self.0.len() {
                write!(f, "\n    ... and {} more", self.1 - self.0.len())?;
            }
            Ok(())
        }
    }
    panic!(
        "kretprobe trampoline at {:#010x} entered by a return that no active instance accounts for\n  \
         task {task} returned from the call whose return slot was {:#010x}; its real return address is unknown\n  {}",
        trampoline::address(),
        arch::returned_slot(regs),
        Instances(listed, count)
    )
}

/// Runs `f` with a token for reading the instance lists from outside the
/// trap path (the unwinder, task exit, tests): interrupts off meanwhile.
#[unsafe(link_section = ".kprobes.text")]
fn with_lists<R>(f: impl FnOnce(&mut TrapContext) -> R) -> R {
    crate::arch::imp::cpu::without_interrupts(|| {
        // SAFETY: interrupts are off for the whole of `f`; this is engine
        // code in `.kprobes.text`, and `f` only walks or edits the lists.
        let mut cx = unsafe { TrapContext::enter() };
        f(&mut cx)
    })
}

/// The real return address for a stack slot holding the trampoline's
/// address (for the unwinder); other values are returned unchanged.
#[unsafe(link_section = ".kprobes.text")]
pub fn resolve_return_address(slot: usize, value: usize) -> usize {
    if value != trampoline::address() {
        return value;
    }
    with_lists(|cx| find(cx, crate::host::current_task(), slot).map_or(value, return_address_of))
}

/// For the unwinder: the real return address of the call that a trap caught
/// inside the trampoline before its dispatcher ran (`ip` between the
/// trampoline's entry and its call to the dispatcher, `sp` the interrupted
/// stack pointer, `frame_at` the trap frame's own address). That call's
/// instance is still active: the newest one of this task whose slot lies
/// between the trap frame (calls made by the trap's own handlers have slots
/// below it) and what the trampoline can have pushed so far above `sp`.
/// `None` if `ip` is elsewhere or no instance matches.
#[unsafe(link_section = ".kprobes.text")]
pub fn resolve_trampoline_trap(ip: usize, sp: usize, frame_at: usize) -> Option<usize> {
    if !(trampoline::address()..trampoline::dispatch_return_site()).contains(&ip) {
        return None;
    }
    let highest = trampoline::pushed_before_dispatch(sp);
    with_lists(|cx| {
        active(cx, crate::host::current_task())
            .find(|&instance| slot_of(instance) > frame_at && slot_of(instance) < highest)
            .map(return_address_of)
    })
}

/// Whether `address` is where the trampoline's call to the dispatcher
/// returns (the unwinder continues through the trampoline's frame).
pub fn is_dispatcher_return_site(address: usize) -> bool {
    address == trampoline::dispatch_return_site()
}

/// A task exited: its active instances go back to their pools.
#[unsafe(link_section = ".kprobes.text")]
pub fn task_exited(task: TaskId) {
    if task >= MAX_TASKS {
        return;
    }
    with_lists(|cx| {
        let list = ActiveList { next: ACTIVE[task].swap(ptr::null_mut(), Ordering::AcqRel) };
        list.for_each(|instance| instances::put(cx, instance));
    });
}

/// Active instances of `task` (for tests and the shell).
pub fn active_instances(task: TaskId) -> usize {
    with_lists(|cx| active(cx, task).count())
}

/// Kretprobe pools unregistered but still waiting for in-flight calls.
pub fn retired_pools() -> usize {
    instances::retired_pools()
}
