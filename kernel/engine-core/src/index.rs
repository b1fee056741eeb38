//! The probe-site index: address → site number in O(1), lock-free for readers.
//!
//! An open-addressing table with linear probing, read by the trap path with
//! atomic loads and no lock, written by registration (one writer at a time,
//! which the caller guarantees). Deletion shifts later entries of the same
//! probe run back into the hole (Knuth's Algorithm R) instead of leaving a
//! tombstone, so a lookup's cost depends only on how full the index is now,
//! never on how many sites came and went before.
//!
//! Entries are site numbers; the caller keeps each site's address, and
//! passes `address_of` to the operations that must compare or rehash.
//!
//! Readers on other CPUs run truly concurrently with the writer, and a
//! backward shift can carry an entry past a reader: the reader reads bucket
//! `i` before the entry moves into it, then its old bucket after it was
//! emptied, and misses a site that was indexed all along. So writers bump a
//! generation count (odd while they change buckets, a sequence count as in
//! Linux's seqlocks), and a lookup that misses trusts the miss only if the
//! count was even and unchanged across it; otherwise it looks again. A hit
//! is always trusted (the site's own address matched). Lookups stay
//! lock-free and take no lock the writer holds; a miss can wait only for
//! the bounded duration of one insert or remove on another CPU.
use core::sync::atomic::{AtomicU16, AtomicU32, Ordering, fence};

const EMPTY: u16 = 0;

/// An index of up to `BUCKETS - 1` sites (`BUCKETS` a power of two; keep it
/// at least twice the number of sites so probe runs stay short).
pub struct SiteIndex<const BUCKETS: usize> {
    /// Site number + 1 per bucket, or `EMPTY`.
    buckets: [AtomicU16; BUCKETS],
    /// Odd while the writer changes buckets; bumped twice per change.
    generation: AtomicU32,
}

impl<const BUCKETS: usize> SiteIndex<BUCKETS> {
    const VALID: () = assert!(BUCKETS.is_power_of_two() && BUCKETS < u16::MAX as usize);

    /// An empty index.
    pub const fn new() -> Self {
        let () = Self::VALID;
        SiteIndex { buckets: [const { AtomicU16::new(EMPTY) }; BUCKETS], generation: AtomicU32::new(0) }
    }

    /// The multiplier of [`bucket`](Self::bucket)'s Fibonacci hashing
    /// (2³² divided by the golden ratio).
    pub const HASH_MULTIPLIER: u32 = 0x9e37_79b9;
    /// The right shift of [`bucket`](Self::bucket): the product's top
    /// `log2(BUCKETS)` bits are the bucket.
    pub const HASH_SHIFT: u32 = 32 - BUCKETS.trailing_zeros();
    /// Where the buckets (one `u16` each: site number + 1, or 0 if empty)
    /// start inside the index, for a lookup written in assembly: the home
    /// bucket of `address` is the `u16` at this offset plus twice
    /// [`bucket`](Self::bucket)`(address)`.
    pub const BUCKETS_OFFSET: usize = core::mem::offset_of!(Self, buckets);

    /// The home bucket of `address`: Fibonacci hashing, the top bits of
    /// the product (they mix every bit of the address).
    #[inline(always)]
    pub fn bucket(address: usize) -> usize {
        ((address as u32).wrapping_mul(Self::HASH_MULTIPLIER) >> Self::HASH_SHIFT) as usize
    }

    /// The site at `address`: walks the probe run from its home bucket to
    /// the first empty one, comparing `address_of(site)`. Lock-free; safe
    /// to run on any CPU while a writer inserts or removes: a miss is
    /// retried if a change of the buckets overlapped it (see the module docs).
    #[inline(always)]
    pub fn lookup(&self, address: usize, address_of: impl Fn(usize) -> usize) -> Option<usize> {
        self.find(address, address_of).ok()
    }

    /// Like [`lookup`](Self::lookup), but a miss says which state of the
    /// buckets it was true of: the generation count then, for
    /// [`changed_since`](Self::changed_since).
    #[inline(always)]
    pub fn find(&self, address: usize, address_of: impl Fn(usize) -> usize) -> Result<usize, u32> {
        loop {
            let before = self.generation.load(Ordering::Acquire);
            if let Some(site) = self.walk(address, &address_of) {
                return Ok(site);
            }
            // The bucket loads above happen before the second read of the
            // count (a seqlock reader's acquire fence).
            fence(Ordering::Acquire);
            if before % 2 == 0 && self.generation.load(Ordering::Relaxed) == before {
                return Err(before);
            }
            core::hint::spin_loop();
        }
    }

    /// Whether the buckets changed (an insert or a removal began) since a
    /// miss reported `generation`.
    #[inline(always)]
    pub fn changed_since(&self, generation: u32) -> bool {
        self.generation.load(Ordering::Acquire) != generation
    }

    /// One walk of the probe run of `address`.
    #[inline(always)]
    fn walk(&self, address: usize, address_of: &impl Fn(usize) -> usize) -> Option<usize> {
        let mut index = Self::bucket(address);
        for _ in 0..BUCKETS {
            match self.buckets[index].load(Ordering::Acquire) {
                EMPTY => return None,
                entry => {
                    let site = entry as usize - 1;
                    if address_of(site) == address {
                        return Some(site);
                    }
                }
            }
            index = (index + 1) & (BUCKETS - 1);
        }
        None
    }

    /// Marks the start of a change of the buckets (the count becomes odd).
    fn begin_change(&self) {
        self.generation.fetch_add(1, Ordering::Relaxed);
        // The odd count is visible before any bucket changes.
        fence(Ordering::Release);
    }

    /// Marks the end of a change (the count becomes even again).
    fn end_change(&self) {
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Indexes `site` under `address`. The caller is the only writer, has
    /// not indexed this address already, and keeps at least one bucket free.
    pub fn insert(&self, site: usize, address: usize) {
        let mut index = Self::bucket(address);
        while self.buckets[index].load(Ordering::Acquire) != EMPTY {
            index = (index + 1) & (BUCKETS - 1);
        }
        self.begin_change();
        self.buckets[index].store(site as u16 + 1, Ordering::Release);
        self.end_change();
    }

    /// Unindexes `site`, shifting later entries of its run back. The caller
    /// is the only writer; `address_of` must still give every indexed
    /// site's address (the removed one's included).
    ///
    /// Every intermediate state keeps every other site findable by a
    /// lookup that reads the buckets as they are at one moment (a trap
    /// nested on the writer's CPU cannot see any other): an entry is copied
    /// into the hole before its old bucket is reused, and a bucket becomes
    /// empty only once nothing behind it needs to pass through it. A lookup
    /// on another CPU that spans the change can still miss, and retries
    /// (the generation count).
    pub fn remove(&self, site: usize, address_of: impl Fn(usize) -> usize) {
        let entry = site as u16 + 1;
        // The site sits on its own address's probe run: walk that, not the
        // whole table (removal stays O(run length) however large it is).
        let mut hole = Self::bucket(address_of(site));
        loop {
            match self.buckets[hole].load(Ordering::Acquire) {
                EMPTY => return, // not indexed
                found if found == entry => break,
                _ => hole = (hole + 1) & (BUCKETS - 1),
            }
        }
        self.begin_change();
        let mut next = hole;
        loop {
            next = (next + 1) & (BUCKETS - 1);
            let moving = self.buckets[next].load(Ordering::Acquire);
            if moving == EMPTY {
                break;
            }
            let home = Self::bucket(address_of(moving as usize - 1));
            // May `moving` (home `home`, now at `next`) move back to `hole`?
            // Only if `hole` lies on its probe path: cyclically in [home, next).
            let distance_to_next = next.wrapping_sub(home) & (BUCKETS - 1);
            let distance_to_hole = hole.wrapping_sub(home) & (BUCKETS - 1);
            if distance_to_hole < distance_to_next {
                self.buckets[hole].store(moving, Ordering::Release);
                hole = next;
            }
        }
        self.buckets[hole].store(EMPTY, Ordering::Release);
        self.end_change();
    }

    /// Buckets in use: after any history, the number of indexed sites.
    pub fn occupancy(&self) -> usize {
        self.buckets.iter().filter(|entry| entry.load(Ordering::Acquire) != EMPTY).count()
    }
}

impl<const BUCKETS: usize> Default for SiteIndex<BUCKETS> {
    fn default() -> Self {
        Self::new()
    }
}
