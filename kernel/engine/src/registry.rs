//! The registry: probe sites (one per probed address), their probe lists,
//! and registration, unregistration, enabling and disabling.
//!
//! A site is the aggregate of every probe at one address (Linux's
//! "aggr_kprobe"): one breakpoint, one instruction slot, a list of probes in
//! registration order (a jprobe always last). Sites live in a static table
//! with an open-addressing index, so the trap path finds a site in O(1)
//! with a few atomic loads and no lock.
//!
//! Writers (registration) are serialized by a lock the trap path never
//! takes, and publish with release stores in an order that keeps every state
//! a nested trap or another CPU could observe consistent: a site is filled
//! before it is indexed, a probe is linked before the breakpoint is armed,
//! and the breakpoint is removed before the site is unindexed. Every change
//! of text is followed by a sync of every CPU before the call returns
//! (`text_poke_sync`), and unregistration unpublishes, synchronizes, and
//! only then frees the site (for another address) and its slot, and
//! returns so the caller may reuse its probe (see `quiesce`).
use super::blacklist;
use super::control;
use super::error::KprobeError;
use super::probe::{Kprobe, KprobeFlags, Location, ProbeKind};
use super::quiesce::{self, Quiesced, quiesce};
use crate::arch::imp::slot::PrepareError;
use crate::arch::imp::{self as arch, ArchSite, optprobe};
use crate::optimize::{self, Detour};
use core::cell::UnsafeCell;
use core::ops::Range;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU16, AtomicUsize, Ordering};
use probe_engine_core::decode::{Insn, InstructionStarts, Refusal};
use probe_engine_core::index::SiteIndex;
use probe_engine_core::optimize::{Displaced, Facts, OptimizeRefusal};

/// Number of distinct probed addresses at once.
pub const MAX_SITES: usize = 16_384;
const INDEX_SIZE: usize = 32_768;
const _: () = assert!(INDEX_SIZE.is_power_of_two() && INDEX_SIZE >= 2 * MAX_SITES);
const _: () = assert!(MAX_SITES.is_power_of_two());
const _: () = assert!(MAX_SITES <= crate::slots::SLOT_COUNT);

/// Compiler builtins the engine's own copies call (outside `.kprobes.text`
/// in every Rust kernel); the host names its own such code in
/// `Host::never_probe`.
const BUILTINS: &[&str] = &["memcpy", "memmove", "memset", "memcmp", "bcmp"];

/// All probes at one address.
pub(crate) struct Site {
    address: AtomicUsize,
    arch: UnsafeCell<Option<ArchSite>>,
    head: AtomicPtr<Kprobe>,
    armed: AtomicBool,
    boosted: AtomicBool,
    /// The slot of the site's detour while it is jump-optimized, else 0:
    /// what the trap path reads (see `optimize`).
    detour_slot: AtomicUsize,
    /// What the jump displaced, while `detour_slot` is set.
    displaced: UnsafeCell<Option<Displaced>>,
    /// The function the address lies in (set with the address), for the
    /// optimizer: it must not look symbols up while a probe may be armed on
    /// the lookup itself.
    function: [AtomicUsize; 2],
    /// The site's one enabled probe (of any kind, with any handlers), else
    /// null (none, or several): a hit then runs its handlers without a
    /// walk of the list. Derived by [`replan`] from the list and the flags.
    lone: AtomicPtr<Kprobe>,
    /// Where a fresh hit resumes without a second trap: the detour's copy
    /// while jump-optimized (or being changed), else the boosted copy when
    /// boosted, else 0 (single-step). Derived by [`replan`].
    resume: AtomicUsize,
    /// The site's lone probe when a hit is nothing but a call of its
    /// entry handler and a resume without a second trap (a plain probe
    /// with a pre-handler or a kretprobe's entry, and `resume` set), else
    /// null: what the assembly fast
    /// lane (`arch::imp::fastpath`) reads. Derived by [`replan`], after
    /// `resume` (a lane that sees it set sees a copy that outlives its hit).
    fast: AtomicPtr<Kprobe>,
    /// The site's `ArchSite` when a hit single-steps for a lone plain probe
    /// with a simple repair (`StepPlan::is_simple`), else null: the
    /// assembly single-step lanes (`arch::imp::fastpath`) take such hits,
    /// both halves. Derived by [`replan`].
    step_lane: AtomicPtr<ArchSite>,
}

/// Where the assembly fast lane finds a site's fields (`arch::imp::fastpath`).
pub(crate) mod layout {
    use super::{INDEX_SIZE, Site, SiteIndex};
    use core::mem::{offset_of, size_of};
    /// Bytes per site in `SITES`.
    pub const SITE_SIZE: usize = size_of::<Site>();
    /// `Site::address`.
    pub const ADDRESS: usize = offset_of!(Site, address);
    /// `Site::resume`.
    pub const RESUME: usize = offset_of!(Site, resume);
    /// `Site::fast`.
    pub const FAST: usize = offset_of!(Site, fast);
    /// `Site::lone`.
    pub const LONE: usize = offset_of!(Site, lone);
    /// `Site::step_lane`.
    pub const STEP_LANE: usize = offset_of!(Site, step_lane);
    // Site `n` is at `(n + 1) * SITE_SIZE` in `SITE_TABLE`: index entries
    // are numbers + 1, so entry `e` is the site at `e * SITE_SIZE`, and the
    // empty entry 0 is the sentinel.
    const _: () =
        assert!(offset_of!(super::SiteTable, sentinel) == 0 && offset_of!(super::SiteTable, sites) == SITE_SIZE);
    /// The sentinel's address: the address an `int3` at the last byte of
    /// the address space would report, where no kernel has text.
    pub const SENTINEL_ADDRESS: usize = usize::MAX;
    /// The index's hashing and bucket layout.
    pub const HASH_MULTIPLIER: u32 = SiteIndex::<INDEX_SIZE>::HASH_MULTIPLIER;
    /// See [`HASH_MULTIPLIER`].
    pub const HASH_SHIFT: u32 = SiteIndex::<INDEX_SIZE>::HASH_SHIFT;
    /// See [`HASH_MULTIPLIER`].
    pub const BUCKETS_OFFSET: usize = SiteIndex::<INDEX_SIZE>::BUCKETS_OFFSET;
}

// SAFETY: `arch` is written only by registration (under REGISTRY, while the
// site is not indexed) and read by the trap path only once indexed;
// `displaced` is written only under REGISTRY while `detour_slot` is 0 and
// every CPU has been synced since it became 0; it is read under REGISTRY,
// or by a trap that saw `detour_slot` set (no sync can complete while that
// trap runs, so no write can begin before it ends).
unsafe impl Sync for Site {}

impl Site {
    const fn empty() -> Self {
        Site {
            address: AtomicUsize::new(0),
            arch: UnsafeCell::new(None),
            head: AtomicPtr::new(ptr::null_mut()),
            armed: AtomicBool::new(false),
            boosted: AtomicBool::new(false),
            detour_slot: AtomicUsize::new(0),
            displaced: UnsafeCell::new(None),
            function: [const { AtomicUsize::new(0) }; 2],
            lone: AtomicPtr::new(ptr::null_mut()),
            resume: AtomicUsize::new(0),
            fast: AtomicPtr::new(ptr::null_mut()),
            step_lane: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// The sentinel of the site table, whose address is `address`.
    const fn at(self, address: usize) -> Self {
        Site { address: AtomicUsize::new(address), ..self }
    }

    /// The site's only enabled probe, if it has just one (see the field):
    /// one load instead of a walk of the list.
    #[unsafe(link_section = ".kprobes.text")]
    #[inline(always)]
    pub fn lone(&self) -> Option<&'static Kprobe> {
        // SAFETY: set by `replan` to null or a linked `&'static Kprobe`.
        unsafe { self.lone.load(Ordering::Acquire).as_ref() }
    }

    /// Where a fresh hit resumes without a second trap, if it can (see the
    /// field): one load instead of three tests.
    #[unsafe(link_section = ".kprobes.text")]
    #[inline(always)]
    pub fn resume(&self) -> Option<usize> {
        match self.resume.load(Ordering::Acquire) {
            0 => None,
            address => Some(address),
        }
    }

    /// The function the probed address lies in.
    pub fn function(&self) -> Range<usize> {
        self.function[0].load(Ordering::Acquire)..self.function[1].load(Ordering::Acquire)
    }

    /// Whether the breakpoint is armed (or, optimized, the jump in place).
    pub fn is_armed(&self) -> bool {
        self.armed.load(Ordering::Acquire)
    }

    /// Where the detour's copy of the displaced instructions starts, while
    /// the site is jump-optimized (or being optimized or unoptimized): the
    /// trap path resumes there instead of the one-instruction slot.
    #[unsafe(link_section = ".kprobes.text")]
    #[inline(always)]
    pub fn detour_copy_entry(&self) -> Option<usize> {
        match self.detour_slot.load(Ordering::Acquire) {
            0 => None,
            slot => Some(crate::optimize::copy_entry(slot)),
        }
    }

    /// Whether `slot` is the site's published detour (an optimized hit's
    /// check that its detour is still the site's).
    #[unsafe(link_section = ".kprobes.text")]
    #[inline(always)]
    pub fn has_detour(&self, slot: usize) -> bool {
        self.detour_slot.load(Ordering::Acquire) == slot
    }

    /// The detour, while the site is jump-optimized. Registration side
    /// (the registration lock held).
    pub(crate) fn detour(&self) -> Option<Detour> {
        let slot = self.detour_slot.load(Ordering::Acquire);
        if slot == 0 {
            return None;
        }
        // SAFETY: read under REGISTRY (see `Sync` above).
        let displaced = unsafe { *self.displaced.get() };
        Some(Detour { slot, displaced: displaced.expect("detour without its instructions") })
    }

    /// The probed address.
    pub fn address(&self) -> usize {
        self.address.load(Ordering::Acquire)
    }

    /// The decoded instruction and its slot.
    #[unsafe(link_section = ".kprobes.text")]
    pub fn arch(&self) -> &ArchSite {
        // SAFETY: only called on indexed sites, whose `arch` is set and not
        // written again until the site is unindexed (see `Sync` above).
        unsafe { (*self.arch.get()).as_ref().expect("probe site without instruction") }
    }

    /// Whether hits run the boosted copy (no post handlers, boostable insn).
    #[unsafe(link_section = ".kprobes.text")]
    pub fn boosted(&self) -> bool {
        self.boosted.load(Ordering::Acquire)
    }

    /// The probes here, in the order their handlers run.
    #[unsafe(link_section = ".kprobes.text")]
    pub fn probes(&self) -> Probes {
        Probes { next: self.head.load(Ordering::Acquire) }
    }

    /// Counts a missed hit on every probe here.
    #[unsafe(link_section = ".kprobes.text")]
    pub fn count_miss(&self) {
        for probe in self.probes() {
            probe.missed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Iterator over the probes of a site.
pub(crate) struct Probes {
    next: *mut Kprobe,
}

impl Iterator for Probes {
    type Item = &'static Kprobe;
    #[unsafe(link_section = ".kprobes.text")]
    fn next(&mut self) -> Option<&'static Kprobe> {
        // SAFETY: list nodes are `&'static Kprobe`s linked by registration.
        let probe = unsafe { self.next.as_ref()? };
        self.next = probe.next.load(Ordering::Acquire);
        Some(probe)
    }
}

/// Every site, by number, behind a sentinel (named by the assembly lanes).
#[repr(C)]
pub(crate) struct SiteTable {
    /// Never a site: the `#BP` lane reads an empty bucket (entry 0) as
    /// this, whose address no `int3` has, instead of testing for 0.
    sentinel: Site,
    sites: [Site; MAX_SITES],
}
pub(crate) static SITE_TABLE: SiteTable =
    SiteTable { sentinel: Site::empty().at(layout::SENTINEL_ADDRESS), sites: [const { Site::empty() }; MAX_SITES] };
/// Every site, by number.
pub(crate) static SITES: &[Site; MAX_SITES] = &SITE_TABLE.sites;
/// Address → site number (read by the assembly fast lane too).
pub(crate) static INDEX: SiteIndex<INDEX_SIZE> = SiteIndex::new();
static REGISTRY: spin::Mutex<()> = spin::Mutex::new(());

/// Free site numbers, a stack (the lowest number on top at first), so a
/// new site is found in O(1) however many are in use. Changed only under
/// the registration lock; its own lock is never taken on a trap path.
struct FreeSites {
    numbers: [u16; MAX_SITES],
    len: usize,
}
static FREE_SITES: spin::Mutex<FreeSites> = spin::Mutex::new(FreeSites::new());
const _: () = assert!(MAX_SITES <= u16::MAX as usize);

impl FreeSites {
    const fn new() -> Self {
        let mut numbers = [0u16; MAX_SITES];
        let mut i = 0;
        while i < MAX_SITES {
            numbers[i] = (MAX_SITES - 1 - i) as u16;
            i += 1;
        }
        FreeSites { numbers, len: MAX_SITES }
    }
}

fn take_site_number() -> Option<usize> {
    let mut free = FREE_SITES.lock();
    free.len = free.len.checked_sub(1)?;
    Some(free.numbers[free.len] as usize)
}

fn give_back_site_number(number: usize) {
    let mut free = FREE_SITES.lock();
    let top = free.len;
    free.numbers[top] = number as u16;
    free.len += 1;
}

/// Site number + 1 of the site whose instruction slot each slot is, 0 for
/// none: the fault path finds a boosted copy's site in O(1).
static SLOT_SITE: [AtomicU16; crate::slots::SLOT_COUNT] = [const { AtomicU16::new(0) }; crate::slots::SLOT_COUNT];

/// The number of `site` in the table.
#[unsafe(link_section = ".kprobes.text")]
pub(crate) fn site_number(site: &Site) -> usize {
    (site as *const Site as usize - SITES.as_ptr() as usize) / core::mem::size_of::<Site>()
}

/// The address of site `number` (for the index).
#[unsafe(link_section = ".kprobes.text")]
#[inline(always)]
fn site_address(number: usize) -> usize {
    site_by_number(number).address()
}

/// The site at `address`, if one is registered. Trap path: O(1), no lock
/// (see `probe_engine_core::index`: no tombstones, so the cost depends
/// only on how full the index is now).
#[unsafe(link_section = ".kprobes.text")]
pub(crate) fn lookup(address: usize) -> Option<&'static Site> {
    INDEX.lookup(address, site_address).map(|number| &SITES[number])
}

/// [`lookup`] for the trap path: a miss carries the index's generation it
/// was true of, for [`index_changed_since`].
#[unsafe(link_section = ".kprobes.text")]
#[inline(always)]
pub(crate) fn find(address: usize) -> Result<&'static Site, u32> {
    INDEX.find(address, site_address).map(site_by_number)
}

/// Whether a site was indexed or unindexed since a miss of [`find`].
#[unsafe(link_section = ".kprobes.text")]
pub(crate) fn index_changed_since(generation: u32) -> bool {
    INDEX.changed_since(generation)
}

/// The site whose boosted copy starts at `eip`, if any (the fault path
/// only: O(1), no lock).
#[unsafe(link_section = ".kprobes.text")]
pub(crate) fn site_of_boost_entry(ip: usize) -> Option<&'static Site> {
    if !crate::slots::region().contains(&ip) {
        return None; // most faults are nowhere near a slot
    }
    let number = SLOT_SITE.get(crate::slots::slot_index(ip))?.load(Ordering::Acquire).checked_sub(1)?;
    let site = &SITES[number as usize];
    (site.address() != 0 && site.arch().boost_entry() == ip).then_some(site)
}

/// The site whose detour's copy of displaced instructions `ip` lies in,
/// and the original instruction that the copy's byte at `ip` belongs to
/// (the fault path only: O(1), no lock).
#[unsafe(link_section = ".kprobes.text")]
pub(crate) fn site_of_detour_copy(ip: usize) -> Option<(&'static Site, usize)> {
    if !crate::slots::detour_region().contains(&ip) {
        return None;
    }
    let slot = crate::slots::slot_address(crate::slots::slot_index(ip));
    let site = detour_site(slot)?;
    if site.detour_slot.load(Ordering::Acquire) != slot {
        return None;
    }
    let offset = ip.checked_sub(optimize::copy_entry(slot))?;
    // SAFETY: `detour_slot` was seen set from a trap (see `Sync`).
    let displaced = unsafe { (*site.displaced.get()).as_ref()? };
    Some((site, displaced.original_of(offset)))
}

/// Indexes site `site_number` under `address`.
#[unsafe(link_section = ".kprobes.text")]
fn index_insert(site_number: usize, address: usize) {
    INDEX.insert(site_number, address);
}

/// Unindexes site `site_number` (its address still set).
#[unsafe(link_section = ".kprobes.text")]
fn index_remove(site_number: usize) {
    INDEX.remove(site_number, site_address);
}

/// Proof that the caller holds the registration lock: every change to
/// sites, probe lists, kretprobe pools and flags happens under it.
pub(crate) struct Guard {
    _lock: spin::MutexGuard<'static, ()>,
}

/// Takes the registration lock, yielding (not spinning) while another task
/// holds it. Refused from probe handlers and wherever interrupts are off
/// (interrupt context, or code that disabled them): there the interrupted
/// code may hold this lock or the heap's, and waiting would never end.
pub(crate) fn lock() -> Result<Guard, KprobeError> {
    if control::in_probe_context() {
        return Err(KprobeError::InProbeHandler);
    }
    if !crate::arch::imp::cpu::interrupts_enabled() {
        return Err(KprobeError::InterruptsDisabled);
    }
    loop {
        if let Some(lock) = REGISTRY.try_lock() {
            LOCK_HOLDS.fetch_add(1, Ordering::Relaxed); // (wraps: only equality is asked)
            return Ok(Guard { _lock: lock });
        }
        crate::host::yield_now();
    }
}

/// The byte at `address` as the original code has it (an armed breakpoint
/// or an optimized probe's jump undone).
pub(crate) fn original_byte(address: usize) -> u8 {
    if let Some((_, detour)) = optimize::jump_covering(address) {
        return detour.displaced.original_byte(address).expect("a jump covers only bytes it displaced");
    }
    // SAFETY: callers pass addresses inside kernel text, which is mapped.
    let byte = unsafe { core::ptr::read_volatile(address as *const u8) };
    // Only a breakpoint hides an original byte here: any other byte is one
    // (most bytes registration reads, so most need no lookup).
    if byte != arch::BREAKPOINT_INSTRUCTION {
        return byte;
    }
    match lookup(address) {
        Some(site) if site.armed.load(Ordering::Acquire) => site.arch().original_first_byte(),
        _ => byte,
    }
}

/// Whether any task, the caller included, may resume inside `range`.
pub(crate) fn slot_in_use(range: Range<usize>) -> bool {
    crate::host::task_may_resume_in(range)
}

/// Where `probe` goes, checked against the symbol table and the blacklist.
/// Returns the address and the function containing it.
pub(crate) fn resolve(probe: &Kprobe) -> Result<(usize, Range<usize>), KprobeError> {
    let address = match probe.location() {
        Location::Unset => return Err(KprobeError::NoLocation),
        Location::Both => return Err(KprobeError::AddressAndSymbol),
        Location::Address(address) => address as usize,
        Location::Symbol(name, offset) => {
            let symbol = crate::host::symbol_by_name(name).ok_or(KprobeError::UnknownSymbol)?;
            if offset >= symbol.size {
                return Err(KprobeError::OffsetPastFunction { size: symbol.size });
            }
            symbol.address + offset
        }
    };
    if !crate::host::kernel_text().contains(&address) {
        return Err(KprobeError::OutsideKernelText);
    }
    if crate::host::engine_text().contains(&address) {
        return Err(KprobeError::Blacklisted);
    }
    let function = crate::host::symbol_at(address).ok_or(KprobeError::NotInFunction)?;
    if BUILTINS.contains(&function.name)
        || crate::host::never_probe(function.name)
        || blacklist::contains(function.address)
    {
        return Err(KprobeError::Blacklisted);
    }
    if matches!(probe.kind, ProbeKind::Jprobe | ProbeKind::Kretprobe) && function.offset != 0 {
        return Err(KprobeError::NotFunctionEntry);
    }
    Ok((address, function.address..function.address + function.size))
}

/// Instruction starts of the last few functions registration looked into,
/// so each is walked once however many probes go into it and however deep
/// (`InstructionStarts`). Kernel text keeps its instruction boundaries
/// (probes change bytes, `text_poke_bp` swaps an instruction for one of the
/// same length, and both are undone by `original_byte`), so an entry never
/// goes stale. Static (4 × 8 KiB of bitmap, functions up to 64 KiB; a
/// longer one is decoded from its start each time), so the cache holds no
/// heap memory. Registration time only: its lock is never taken on a trap
/// path.
struct StartsCache {
    entries: [InstructionStarts<STARTS_WORDS>; STARTS_CACHED],
    /// The registration-lock hold ([`LOCK_HOLDS`]) in which each entry was
    /// last found to match its function's bytes (see [`analyze`]).
    confirmed: [Option<usize>; STARTS_CACHED],
    /// The entry to replace next (round robin).
    next: usize,
}
const STARTS_CACHED: usize = 4;
const STARTS_WORDS: usize = 2048;
static STARTS_CACHE: spin::Mutex<StartsCache> = spin::Mutex::new(StartsCache {
    entries: [const { InstructionStarts::empty() }; STARTS_CACHED],
    confirmed: [None; STARTS_CACHED],
    next: 0,
});

/// Counts the times the registration lock was taken: a number for each
/// hold, so that what was checked of the text during one need not be
/// checked again in it.
static LOCK_HOLDS: AtomicUsize = AtomicUsize::new(0);

/// Instructions registration decoded lately, by address, each with the
/// function it was decoded in: a probe registered at an address again (or
/// a second probe there) skips iced-x86, whose decoder costs about 1,300
/// guest instructions to set up and run, most of a registration's cost
/// once symbols are hashed. Direct-mapped, static (no heap), registration
/// time only: its lock is never taken on a trap path.
struct DecodedCache {
    entries: [Option<Decoded>; DECODED_CACHED],
}
#[derive(Clone, Copy)]
struct Decoded {
    address: usize,
    function: (usize, usize),
    insn: Insn,
}
const DECODED_CACHED: usize = 64;
static DECODED_CACHE: spin::Mutex<DecodedCache> = spin::Mutex::new(DecodedCache { entries: [None; DECODED_CACHED] });

/// Forgets what registration learned from the text (decoded instructions,
/// function walks with their branch targets): after `text_poke_bp`
/// replaced an instruction, whose successor may decode differently (a
/// `mov` becoming a `jmp` adds a branch target).
pub(crate) fn forget_decoded_text() {
    DECODED_CACHE.lock().entries = [None; DECODED_CACHED];
    let mut starts = STARTS_CACHE.lock();
    starts.entries = [const { InstructionStarts::empty() }; STARTS_CACHED];
    starts.confirmed = [None; STARTS_CACHED];
}

/// The instruction at `address` in `function`, from its original bytes.
fn decode(address: usize, function: Range<usize>) -> Result<Insn, Refusal> {
    let bucket = (address ^ (address >> 6)) % DECODED_CACHED;
    let key = (function.start, function.end);
    // A hit counts only if the bytes are still those decoded: a host may
    // rewrite its own text (a module loaded where another was).
    if let Some(known) = DECODED_CACHE.lock().entries[bucket]
        && known.address == address
        && known.function == key
        && (0..known.insn.length).all(|i| original_byte(address + i) == known.insn.bytes[i])
    {
        return Ok(known.insn);
    }
    let insn = decode_uncached(address, function)?;
    DECODED_CACHE.lock().entries[bucket] = Some(Decoded { address, function: key, insn });
    Ok(insn)
}

/// [`decode`] without its cache of instructions (with the walks' cache).
fn decode_uncached(address: usize, function: Range<usize>) -> Result<Insn, Refusal> {
    let mut cache = STARTS_CACHE.lock();
    let cache = &mut *cache;
    let known = cache.entries.iter().position(|entry| entry.function() == function && !function.is_empty());
    let index = match known {
        Some(index) => index,
        None => {
            let victim = cache.next;
            cache.confirmed[victim] = None;
            if !cache.entries[victim].walk(function.clone(), original_byte) {
                return probe_engine_core::decode::decode_in_function(address, function, original_byte);
            }
            cache.next = (victim + 1) % STARTS_CACHED;
            victim
        }
    };
    cache.entries[index].decode(address, original_byte)
}

/// The optimizer's verdict on the code at `address` in `function`, over
/// its original bytes, with the instruction starts of the cache. With the
/// registration lock held (`registry`), a walk found to match the bytes is
/// not checked again during the same hold.
pub(crate) fn analyze(
    address: usize,
    function: Range<usize>,
    registry: Option<&Guard>,
) -> Result<Displaced, OptimizeRefusal> {
    decode(address, function.clone()).map_err(|_| OptimizeRefusal::Undecodable { at: address })?;
    let mut cache = STARTS_CACHE.lock();
    let cache = &mut *cache;
    // The walk's facts (branch targets, indirect jumps) hold only for the
    // bytes it walked: a host may have rewritten the function since (only
    // `text_poke_bp`'s changes empty the cache). A jump placed on stale
    // facts could be a crash, so they are checked here, at the cost of
    // reading the function's bytes once per hold of the registration lock:
    // within one, nothing but the engine changes kernel text (and what it
    // changes, `original_byte` undoes), so one check serves every probe a
    // batch puts in the function, where a check per probe made optimizing
    // n probes of one function cost n times its length.
    let hold = registry.map(|_| LOCK_HOLDS.load(Ordering::Relaxed));
    let walk = cache.entries.iter().zip(cache.confirmed.iter_mut()).find_map(|(entry, confirmed)| {
        if entry.function() != function {
            return None;
        }
        if hold.is_some() && *confirmed == hold {
            return Some(entry);
        }
        let matches = entry.checksum() == Some(function_checksum(&function));
        *confirmed = if matches { hold } else { None };
        matches.then_some(entry)
    });
    probe_engine_core::optimize::analyze(address, function, walk.map(Facts), original_byte)
}

/// The checksum [`InstructionStarts`] keeps of the bytes it walked, of
/// `function`'s original bytes now.
fn function_checksum(function: &Range<usize>) -> u32 {
    probe_engine_core::decode::checksum(function.clone().map(original_byte))
}

/// Site number `number`.
#[unsafe(link_section = ".kprobes.text")]
#[inline(always)]
pub(crate) fn site_by_number(number: usize) -> &'static Site {
    // The number comes from the index or a detour the engine wrote, so it
    // is in range; the modulo (a mask: MAX_SITES is a power of two) lets
    // the compiler drop the bounds check without an unchecked access.
    &SITES[number % MAX_SITES]
}

/// Calls `f` on every site in use. Registration lock held.
pub(crate) fn each_site(mut f: impl FnMut(&'static Site)) {
    for site in SITES.iter() {
        if site.address() != 0 && lookup(site.address()).is_some_and(|found| ptr::eq(found, site)) {
            f(site);
        }
    }
}

/// What the engine keeps for each detour slot (`slots::Kind::Detour`).
struct DetourRecord {
    /// What its detour reads on every hit: the site's fast probe while the
    /// detour is its site's and the site has one (see [`replan`]), else
    /// `optprobe::GONE`, which sends the hit to the generic dispatcher.
    /// Never null once a detour was made.
    probe: AtomicPtr<Kprobe>,
    /// The site the detour was made for. It stays after the site drops the
    /// detour, for a CPU that resumes in it (`optimize::optimized_dispatch`)
    /// and for the fault path, until the slot is reused.
    site: AtomicPtr<Site>,
    /// Whether it is a lean kretprobe detour
    /// (`optprobe::DetourKind::LeanKretprobe`): `probe` may then name only a
    /// kretprobe with no entry handler.
    lean: AtomicBool,
}

static DETOUR_RECORDS: [DetourRecord; crate::slots::DETOUR_COUNT] = [const {
    DetourRecord {
        probe: AtomicPtr::new(ptr::null_mut()),
        site: AtomicPtr::new(ptr::null_mut()),
        lean: AtomicBool::new(false),
    }
}; crate::slots::DETOUR_COUNT];

/// The record of the detour at `slot`.
#[unsafe(link_section = ".kprobes.text")]
#[inline(always)]
fn detour_record_of(slot: usize) -> &'static DetourRecord {
    &DETOUR_RECORDS[crate::slots::detour_index(slot)]
}

/// Whether a lean kretprobe detour can run `probe`'s entry: a kretprobe's
/// entry probe whose entry routine is the assembly one (no entry handler).
pub(crate) fn lean_eligible(probe: &Kprobe) -> bool {
    probe.kind == ProbeKind::Kretprobe
        && core::ptr::fn_addr_eq(probe.entry, arch::trampoline::kretprobe_entry as crate::probe::EntryLane)
}

/// The address of the word the detour at `slot` reads its probe from (see
/// [`DetourRecord::probe`]), to be written into the detour.
pub(crate) fn detour_record(slot: usize) -> usize {
    &detour_record_of(slot).probe as *const AtomicPtr<Kprobe> as usize
}

/// The site the detour at `slot` was made for, if it was ever published
/// (trap path: O(1), no lock).
#[unsafe(link_section = ".kprobes.text")]
pub(crate) fn detour_site(slot: usize) -> Option<&'static Site> {
    // SAFETY: null, or set to a `SITES` entry before the detour's site
    // could jump to it (`publish_detour`), and only ever replaced by another.
    unsafe { detour_record_of(slot).site.load(Ordering::Acquire).as_ref() }
}

/// Sets the probe of the detour at `slot` (see [`DetourRecord::probe`]).
fn set_detour_probe(slot: usize, probe: *const Kprobe) {
    detour_record_of(slot).probe.store(probe.cast_mut(), Ordering::Release);
}

/// Publishes (or with `None`, unpublishes) `site`'s detour. Unpublishing
/// leaves the displaced instructions readable for traps still on their
/// way; the caller syncs every CPU before the slot is reused or a new
/// detour published.
pub(crate) fn publish_detour(_registry: &Guard, site: &Site, detour: Option<(Detour, optprobe::DetourKind)>) {
    match detour {
        Some((detour, kind)) => {
            // SAFETY: `detour_slot` is 0 and every CPU was synced since it
            // became 0 (see `Sync`): no one reads `displaced`.
            unsafe { *site.displaced.get() = Some(detour.displaced) };
            let record = detour_record_of(detour.slot);
            record.site.store(ptr::from_ref(site).cast_mut(), Ordering::Release);
            record.lean.store(kind == optprobe::DetourKind::LeanKretprobe, Ordering::Release);
            set_detour_probe(detour.slot, &optprobe::GONE); // until `replan` below
            if site.detour_slot.swap(detour.slot, Ordering::AcqRel) == 0 {
                DETOURS.fetch_add(1, Ordering::Relaxed);
            }
        }
        None => {
            if let Some(old) = site.detour() {
                set_detour_probe(old.slot, &optprobe::GONE);
                DETOURS.fetch_sub(1, Ordering::Relaxed);
            }
            site.detour_slot.store(0, Ordering::Release);
        }
    }
    replan(site);
}

/// Derives what the trap path reads in place of the list, the flags and
/// the detour (`lone` and `resume`), after any of them changed. Called
/// under the registration lock by every writer of those (`refresh`,
/// `publish_detour`). A hit on another CPU reads each field once, so it
/// sees the old plan or the new, as it saw the old or the new flag before.
#[unsafe(link_section = ".kprobes.text")]
fn replan(site: &Site) {
    let detour = site.detour_slot.load(Ordering::Acquire);
    let resume = match detour {
        0 if site.boosted() => site.arch().boost_entry(),
        0 => 0,
        slot => optimize::copy_entry(slot),
    };
    site.resume.store(resume, Ordering::Release);
    let mut enabled = site.probes().filter(|probe| probe.is_enabled());
    let lone = match (enabled.next(), enabled.next()) {
        (Some(probe), None) => probe as *const Kprobe as *mut Kprobe,
        _ => ptr::null_mut(),
    };
    site.lone.store(lone, Ordering::Release);
    // SAFETY: `lone` is null or a linked `&'static Kprobe` (above).
    let lone_probe = unsafe { lone.as_ref() };
    let fast = match lone_probe {
        Some(probe)
            if resume != 0
                && probe.post_handler.is_none()
                && (probe.kind == ProbeKind::Kretprobe
                    || probe.kind == ProbeKind::Plain && probe.pre_handler.is_some()) =>
        {
            lone
        }
        _ => ptr::null_mut(),
    };
    site.fast.store(fast, Ordering::Release);
    if detour != 0 {
        // SAFETY: `fast` is null or a linked `&'static Kprobe` (above).
        let runnable = match unsafe { fast.as_ref() } {
            Some(probe) => !detour_record_of(detour).lean.load(Ordering::Acquire) || lean_eligible(probe),
            None => false,
        };
        set_detour_probe(detour, if runnable { fast } else { &optprobe::GONE });
    }
    let step_lane = match lone_probe {
        Some(probe) if resume == 0 && probe.kind == ProbeKind::Plain && site.arch().step.is_simple() => {
            site.arch() as *const ArchSite as *mut ArchSite
        }
        _ => ptr::null_mut(),
    };
    site.step_lane.store(step_lane, Ordering::Release);
}

/// Whether any site is jump-optimized (or being changed).
pub(crate) fn any_detours() -> bool {
    DETOURS.load(Ordering::Relaxed) != 0
}

/// Sites with a detour published (changed under the registration lock):
/// while there are none, no jump hides original bytes.
static DETOURS: AtomicUsize = AtomicUsize::new(0);

/// A detour slot, if one is free.
pub(crate) fn allocate_detour_slot() -> Option<usize> {
    crate::slots::allocate(crate::slots::Kind::Detour, slot_in_use)
}

fn prepare_error(error: PrepareError) -> KprobeError {
    match error {
        PrepareError::NoSlot => KprobeError::TableFull("instruction slots"),
        PrepareError::Refused(Refusal::Invalid) => KprobeError::InvalidInstruction,
        PrepareError::Refused(Refusal::NotBoundary) => KprobeError::NotInstructionBoundary,
        PrepareError::Refused(Refusal::Unsupported(why)) => KprobeError::UnsupportedInstruction(why),
    }
}

/// Re-decides arming and boosting of `site` after its probe set changed.
/// Returns whether it changed text (armed or disarmed the breakpoint): the
/// caller then syncs every CPU before returning (interrupts are off here).
#[unsafe(link_section = ".kprobes.text")]
#[must_use]
fn refresh(site: &Site) -> bool {
    let mut any_enabled = false;
    let mut post_handlers = false;
    for probe in site.probes() {
        if probe.is_enabled() {
            any_enabled = true;
            post_handlers |= probe.post_handler.is_some();
        }
    }
    let boost = any_enabled && !post_handlers && site.arch().boostable();
    site.boosted.store(boost, Ordering::Release);
    for probe in site.probes() {
        probe.set_flag(KprobeFlags::BOOSTED, boost);
    }
    replan(site);
    let armed = site.armed.load(Ordering::Acquire);
    let any_enabled = any_enabled && !ALL_DISARMED.load(Ordering::Acquire);
    if any_enabled && !armed {
        arch::arm(site.arch()).expect("probe address left kernel text");
        site.armed.store(true, Ordering::Release);
        true
    } else if !any_enabled && armed {
        arch::disarm(site.arch()).expect("probe address left kernel text");
        site.armed.store(false, Ordering::Release);
        true
    } else {
        false
    }
}

/// Links `probe` into `site`'s list: at the end, but before a jprobe.
#[unsafe(link_section = ".kprobes.text")]
fn link(site: &Site, probe: &'static Kprobe) {
    let node = probe as *const Kprobe as *mut Kprobe;
    let mut link = &site.head;
    loop {
        let next = link.load(Ordering::Acquire);
        // SAFETY: list nodes are `&'static Kprobe`s.
        let stop = next.is_null() || unsafe { (*next).kind == ProbeKind::Jprobe };
        if stop {
            probe.next.store(next, Ordering::Release);
            link.store(node, Ordering::Release);
            return;
        }
        // SAFETY: as above.
        link = unsafe { &(*next).next };
    }
}

/// Unlinks `probe` from `site`'s list.
#[unsafe(link_section = ".kprobes.text")]
fn unlink(site: &Site, probe: &Kprobe) {
    let mut link = &site.head;
    loop {
        let next = link.load(Ordering::Acquire);
        if next.is_null() {
            return;
        }
        if ptr::eq(next, probe) {
            link.store(probe.next.load(Ordering::Acquire), Ordering::Release);
            return;
        }
        // SAFETY: list nodes are `&'static Kprobe`s.
        link = unsafe { &(*next).next };
    }
}

/// Registers one probe of any kind; every CPU sees its breakpoint before
/// this returns.
pub(crate) fn register_locked(registry: &Guard, probe: &'static Kprobe) -> Result<(), KprobeError> {
    if register_unsynced(registry, probe)? {
        quiesce::text_poke_sync();
    }
    optimize_at(registry, probe.address.load(Ordering::Acquire));
    Ok(())
}

/// Jump-optimizes the site at `address` if it is eligible (after a change
/// that every CPU has seen).
fn optimize_at(registry: &Guard, address: usize) {
    if !optimize::optimization_enabled() {
        return;
    }
    if let Some(site) = lookup(address) {
        optimize::reconsider(registry, site);
    }
}

/// Registers one probe of any kind without the sync after arming: returns
/// whether text changed, so a batch can sync every CPU once at its end.
fn register_unsynced(registry: &Guard, probe: &'static Kprobe) -> Result<bool, KprobeError> {
    if !probe.flags().contains(KprobeFlags::GONE) {
        return Err(KprobeError::AlreadyRegistered);
    }
    let (address, function) = resolve(probe)?;
    if probe.kind == ProbeKind::Jprobe
        && lookup(address).is_some_and(|site| site.probes().any(|p| p.kind == ProbeKind::Jprobe))
    {
        return Err(KprobeError::JprobeExists);
    }
    // A jump over this address goes first (its bytes are not the code's),
    // unless it is this site's own and the new probe keeps it eligible.
    optimize::before_adding(registry, address, probe);
    add(probe, address, function).inspect_err(|_| {
        // Refused: the jumps taken out for it come back.
        optimize_at(registry, address);
        optimize::reconsider_around(registry, address);
    })
}

/// [`register_unsynced`] once the address is checked: the site, the probe
/// linked, the breakpoint armed.
fn add(probe: &'static Kprobe, address: usize, function: Range<usize>) -> Result<bool, KprobeError> {
    let site = match lookup(address) {
        Some(site) => site,
        None => {
            let number = take_site_number().ok_or(KprobeError::TableFull("probe sites"))?;
            let arch_site = match arch::prepare(address, decode(address, function.clone()), slot_in_use) {
                Ok(arch_site) => arch_site,
                Err(error) => {
                    give_back_site_number(number);
                    return Err(prepare_error(error));
                }
            };
            let slot = crate::slots::slot_index(arch_site.slot);
            let site = &SITES[number];
            // SAFETY: the site is free and not indexed: nobody reads `arch`.
            unsafe { *site.arch.get() = Some(arch_site) };
            SLOT_SITE[slot].store(number as u16 + 1, Ordering::Release);
            SITE_COUNT.fetch_add(1, Ordering::Relaxed);
            site.head.store(ptr::null_mut(), Ordering::Release);
            site.armed.store(false, Ordering::Release);
            site.function[0].store(function.start, Ordering::Release);
            site.function[1].store(function.end, Ordering::Release);
            site.address.store(address, Ordering::Release);
            index_insert(number, address);
            site
        }
    };
    let text_changed = crate::arch::imp::cpu::without_interrupts(|| {
        probe.missed.store(0, Ordering::Relaxed);
        probe.address.store(address, Ordering::Release);
        probe.set_flag(KprobeFlags::DISABLED, false);
        probe.set_flag(KprobeFlags::GONE, false);
        link(site, probe);
        refresh(site)
    });
    Ok(text_changed)
}

/// A probe unlinked from its site (and the site, if that emptied it,
/// disarmed and unindexed), that a trap on another CPU may still be using:
/// [`finish`](Detached::finish) it once [`quiesce`]d.
pub(crate) struct Detached {
    /// The site, if the probe was its last: freed by `finish`.
    emptied: Option<&'static Site>,
    /// The probed address.
    address: usize,
    /// The slot of the site's detour, if it was jump-optimized: freed by `finish`.
    detour_slot: Option<usize>,
}

/// Unregistration's first half: unpublishes `probe` (step 1 of the
/// `quiesce` protocol). Nothing is freed yet.
pub(crate) fn detach_locked(_registry: &Guard, probe: &'static Kprobe) -> Result<Detached, KprobeError> {
    if probe.flags().contains(KprobeFlags::GONE) {
        return Err(KprobeError::NotRegistered);
    }
    let site = lookup(probe.address.load(Ordering::Acquire)).ok_or(KprobeError::NotRegistered)?;
    // If the breakpoint goes, the jump goes first (`finish` frees the
    // detour after the quiesce). Otherwise the jump stays: removing a probe
    // never makes a site less eligible, and the dispatcher walks the probe
    // list as a breakpoint hit does.
    let detour_slot = if others_enabled(site, probe) { None } else { optimize::unoptimize_unsynced(_registry, site) };
    let address = site.address();
    let emptied = crate::arch::imp::cpu::without_interrupts(|| {
        probe.set_flag(KprobeFlags::GONE, true);
        probe.set_flag(KprobeFlags::BOOSTED, false);
        probe.set_flag(KprobeFlags::OPTIMIZED, false);
        unlink(site, probe);
        let _text_changed = refresh(site); // the sync before `finish` covers it
        let emptied = site.head.load(Ordering::Acquire).is_null();
        if emptied {
            let number = site_number(site);
            // Unindexed, but its address and instruction stay as they are:
            // a trap on another CPU may still be reading them.
            index_remove(number);
        }
        probe.address.store(0, Ordering::Release);
        emptied
    });
    Ok(Detached { emptied: emptied.then_some(site), address, detour_slot })
}

impl Detached {
    /// Unregistration's second half, after every CPU was synchronized: no
    /// trap can still be using the site, so its slot goes back (as garbage
    /// if a task or CPU may resume inside it) and the site is free for
    /// another address.
    pub(crate) fn finish(registry: &Guard, detached: Quiesced<Detached>) {
        let Detached { emptied, address, detour_slot } = detached.into_inner();
        if let Some(slot) = detour_slot {
            crate::slots::free(slot, slot_in_use);
        }
        Self::free(emptied);
        // What is left at the address, and sites whose jump this probe
        // kept out of their range, may be optimized now.
        optimize_at(registry, address);
        optimize::reconsider_around(registry, address);
    }

    fn free(emptied: Option<&'static Site>) {
        let Some(site) = emptied else { return };
        // SAFETY: unindexed and quiesced: no trap is reading `arch`, and
        // none can find the site again; registration (which would fill it)
        // is excluded by the lock our caller holds.
        let arch_site = unsafe { (*site.arch.get()).take() }.expect("site without instruction");
        site.address.store(0, Ordering::Release);
        SLOT_SITE[crate::slots::slot_index(arch_site.slot)].store(0, Ordering::Release);
        arch::release(&arch_site, slot_in_use);
        give_back_site_number(site_number(site));
        SITE_COUNT.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Unregisters one probe of any kind: unpublish, sync every CPU, free.
pub(crate) fn unregister_locked(registry: &Guard, probe: &'static Kprobe) -> Result<(), KprobeError> {
    let detached = detach_locked(registry, probe)?;
    Detached::finish(registry, quiesce(detached));
    Ok(())
}

/// Refuses the entry probe of a kretprobe or jprobe: it must go through
/// its owner's functions, which set up the pool or handler it relies on.
fn plain(probe: &'static Kprobe) -> Result<&'static Kprobe, KprobeError> {
    match probe.kind {
        ProbeKind::Plain => Ok(probe),
        ProbeKind::Jprobe | ProbeKind::Kretprobe => Err(KprobeError::NotAPlainKprobe),
    }
}

/// Registers a probe: checks the address, decodes the instruction, arms
/// the breakpoint. On error nothing changed.
pub fn register_kprobe(probe: &'static Kprobe) -> Result<(), KprobeError> {
    let registry = lock()?;
    register_locked(&registry, plain(probe)?)
}

/// Unregisters a probe; the original instruction is restored once no probe
/// remains at its address.
pub fn unregister_kprobe(probe: &'static Kprobe) -> Result<(), KprobeError> {
    let registry = lock()?;
    unregister_locked(&registry, plain(probe)?)
}

/// Registers each of `items` with `register`, or none: on the first failure
/// the ones already registered are undone with `unregister`, and that error
/// is returned. The batch forms of every probe kind share this.
pub(crate) fn register_all<T>(
    items: &[T],
    register: impl Fn(&T) -> Result<(), KprobeError>,
    unregister: impl Fn(&T),
) -> Result<(), KprobeError> {
    for (done, item) in items.iter().enumerate() {
        if let Err(error) = register(item) {
            items[..done].iter().for_each(&unregister);
            return Err(error);
        }
    }
    Ok(())
}

/// Registers every probe or none: on the first failure the ones already
/// registered are unregistered again, and that error is returned. The
/// breakpoints are armed one by one and every CPU is synchronized once for
/// the whole batch, before this returns (Linux syncs per probe).
pub fn register_kprobes(probes: &[&'static Kprobe]) -> Result<(), KprobeError> {
    let registry = lock()?;
    let text_changed = core::cell::Cell::new(false);
    register_all(
        probes,
        |probe| {
            text_changed.set(register_unsynced(&registry, plain(probe)?)? | text_changed.get());
            Ok(())
        },
        |probe| {
            let _ = unregister_locked(&registry, probe);
        },
    )?;
    if text_changed.get() {
        quiesce::text_poke_sync();
    }
    for probe in probes {
        optimize_at(&registry, probe.address.load(Ordering::Acquire));
    }
    Ok(())
}

/// Unregisters every probe in `probes` that is registered, with one sync
/// of every CPU for the whole batch (as Linux's `unregister_kprobes`).
pub fn unregister_kprobes(probes: &[&'static Kprobe]) {
    let Ok(registry) = lock() else { return };
    let detached: alloc::vec::Vec<Detached> =
        probes.iter().filter_map(|probe| detach_locked(&registry, plain(probe).ok()?).ok()).collect();
    quiesce(detached).each().for_each(|detached| Detached::finish(&registry, detached));
}

fn set_enabled(probe: &'static Kprobe, enabled: bool) -> Result<(), KprobeError> {
    let registry = lock()?;
    if probe.flags().contains(KprobeFlags::GONE) {
        return Err(KprobeError::NotRegistered);
    }
    let site = lookup(probe.address.load(Ordering::Acquire)).ok_or(KprobeError::NotRegistered)?;
    // Disabling the last enabled probe disarms: the jump goes first (its
    // detour is freed after the sync below).
    let detour_slot =
        if enabled || others_enabled(site, probe) { None } else { optimize::unoptimize_unsynced(&registry, site) };
    let text_changed = crate::arch::imp::cpu::without_interrupts(|| {
        probe.set_flag(KprobeFlags::DISABLED, !enabled);
        refresh(site)
    });
    if text_changed || detour_slot.is_some() {
        quiesce::text_poke_sync();
    }
    if let Some(slot) = detour_slot {
        crate::slots::free(slot, slot_in_use);
    }
    optimize::reconsider(&registry, site);
    Ok(())
}

/// Whether a probe other than `probe` is enabled at `site`.
fn others_enabled(site: &Site, probe: &Kprobe) -> bool {
    site.probes().any(|other| other.is_enabled() && !ptr::eq(other, probe))
}

/// Set while every probe is disarmed at once ([`set_kprobes_armed`]);
/// changed only under the registration lock.
static ALL_DISARMED: AtomicBool = AtomicBool::new(false);

/// Whether registered probes are armed (the default), or all disarmed by
/// [`set_kprobes_armed`]: Linux's `/sys/kernel/debug/kprobes/enabled`.
pub fn kprobes_armed() -> bool {
    !ALL_DISARMED.load(Ordering::Acquire)
}

/// Arms (`true`) or disarms (`false`) every registered probe at once,
/// keeping each probe's own enabled state, as Linux's `arm_all_kprobes`
/// and `disarm_all_kprobes` (written through
/// `/sys/kernel/debug/kprobes/enabled`). While disarmed, no breakpoint or
/// jump is in text, probes registered meanwhile are not armed either, and
/// arming puts back exactly the probes that are enabled, optimized again
/// where they were eligible. Text changes take one cross-CPU sync for all
/// sites (and one per optimized site, to take its jump out first).
pub fn set_kprobes_armed(armed: bool) -> Result<(), KprobeError> {
    let registry = lock()?;
    if kprobes_armed() == armed {
        return Ok(());
    }
    ALL_DISARMED.store(!armed, Ordering::Release);
    let mut text_changed = false;
    each_site(|site| {
        if !armed {
            optimize::unoptimize(&registry, site);
        }
        text_changed |= crate::arch::imp::cpu::without_interrupts(|| refresh(site));
    });
    if text_changed {
        quiesce::text_poke_sync();
    }
    if armed {
        each_site(|site| optimize::reconsider(&registry, site));
    }
    Ok(())
}

/// Re-enables a disabled probe.
pub fn enable_kprobe(probe: &'static Kprobe) -> Result<(), KprobeError> {
    set_enabled(probe, true)
}

/// Disables a probe without unregistering it: its handlers stop running;
/// the breakpoint goes away once every probe at the address is disabled.
pub fn disable_kprobe(probe: &'static Kprobe) -> Result<(), KprobeError> {
    set_enabled(probe, false)
}

/// What registering a plain probe at `address` would say, without
/// registering anything: the address checks and the instruction decode
/// (no slot is taken). `Ok` carries the instruction's fix-up class.
pub fn can_probe(address: *const ()) -> Result<probe_engine_core::decode::Fixup, KprobeError> {
    let probe = Kprobe::new().address(address);
    let (address, function) = resolve(&probe)?;
    decode(address, function).map(|insn| insn.fixup).map_err(|refusal| prepare_error(PrepareError::Refused(refusal)))
}

/// What kind of probe a registered [`Kprobe`] is (the letter Linux's
/// `/sys/kernel/debug/kprobes/list` shows).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeType {
    /// A plain kprobe (`k`).
    Kprobe,
    /// A kretprobe's entry probe (`r`).
    Kretprobe,
    /// A jprobe's entry probe (`j`).
    Jprobe,
}

impl ProbeType {
    /// Linux's letter for the kind: `k`, `r` or `j`.
    pub fn letter(self) -> char {
        match self {
            ProbeType::Kprobe => 'k',
            ProbeType::Kretprobe => 'r',
            ProbeType::Jprobe => 'j',
        }
    }
}

/// Calls `f` with every registered probe (of every kind, whoever registered
/// it), by site and in each site's handler order, with the address it is
/// on and its kind: what `/sys/kernel/debug/kprobes/list` shows. Holds the
/// registration lock meanwhile, so `f` must not register or unregister
/// (collect first, act after); refused where registration is (interrupts
/// off, probe handlers).
pub fn for_each_probe(mut f: impl FnMut(&'static Kprobe, usize, ProbeType)) -> Result<(), KprobeError> {
    let _registry = lock()?;
    each_site(|site| {
        for probe in site.probes() {
            let kind = match probe.kind {
                ProbeKind::Plain => ProbeType::Kprobe,
                ProbeKind::Kretprobe => ProbeType::Kretprobe,
                ProbeKind::Jprobe => ProbeType::Jprobe,
            };
            f(probe, site.address(), kind);
        }
    });
    Ok(())
}

/// Buckets of the site index in use (for tests and the bench: after any
/// history it equals [`site_count`], since deletion leaves no tombstones).
pub fn site_index_occupancy() -> usize {
    INDEX.occupancy()
}

/// Number of probed addresses (sites) in use.
pub fn site_count() -> usize {
    SITE_COUNT.load(Ordering::Relaxed)
}

static SITE_COUNT: AtomicUsize = AtomicUsize::new(0);

/// Bytes of static memory the engine keeps for its probe sites, all
/// `MAX_SITES` of them: the site table, its index, the free-site stack,
/// the slot-to-site map, the detours' records, and the instruction and
/// detour slots with their pools (the slot memory the host provides
/// included). The probes themselves (each `Kprobe`) are the caller's.
pub fn static_memory_bytes() -> usize {
    core::mem::size_of_val(&SITE_TABLE)
        + core::mem::size_of_val(&INDEX)
        + core::mem::size_of::<FreeSites>()
        + core::mem::size_of_val(&SLOT_SITE)
        + core::mem::size_of_val(&DETOUR_RECORDS)
        + crate::slots::static_memory_bytes()
}

/// The bytes currently at `address` with any armed breakpoint undone.
pub fn original_bytes(address: usize, out: &mut [u8]) {
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = original_byte(address + i);
    }
}
