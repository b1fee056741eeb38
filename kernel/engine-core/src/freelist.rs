//! A fixed-capacity, lock-free free list of indices: O(1) take and give
//! back, from any CPU and from interrupts nested on one CPU.
//!
//! Kretprobe instances come from a pool sized by `maxactive` at
//! registration; the trap path takes one at a function's entry and gives it
//! back at its return. On SMP several CPUs do that at once, and on one CPU
//! a take can be interrupted by code that takes or gives back too, so the
//! list cannot rely on "interrupts off on the only CPU", and it must not
//! take a lock (the trap path never waits).
//!
//! It is a Treiber stack over indices: the head is one `AtomicU64` holding
//! `(tag << 32) | index`, changed only by compare-and-swap (`cmpxchg8b` on
//! i686), and each index has one link (kept by the caller, next to the
//! things the indices name, as an `AtomicU32`). Every successful change of
//! the head increments the tag, which makes it ABA-safe: a taker that read
//! head `A` and its link `B`, was delayed while others took `A`, took `B`
//! and gave `A` back, finds a different tag and retries instead of
//! installing the stale `B`. (The tag would have to wrap through all 2^32
//! values while one CPU is delayed between two instructions for that to
//! fail.) How many indices are out is an atomic count beside the head.
//!
//! Linux moved its kretprobe instances to a per-CPU object pool
//! (`lib/objpool.c`, since 6.7), whose point is the same three properties:
//! O(1), lock-free, and safe in any context including NMIs. A tagged
//! Treiber stack has all three with one shared head instead of one ring per
//! CPU: simpler, at the price of one contended cache line per pool, which
//! matters little for the handful of CPUs this engine supports.
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// No index: the end of the list.
const END: u32 = u32::MAX;

/// The head word: a change count in the high half, an index in the low.
#[inline(always)]
const fn pack(tag: u32, index: u32) -> u64 {
    ((tag as u64) << 32) | index as u64
}

#[inline(always)]
const fn index_of(head: u64) -> u32 {
    head as u32
}

#[inline(always)]
const fn tag_of(head: u64) -> u32 {
    (head >> 32) as u32
}

/// The head of a free list over `links` (one entry per index), and how many
/// indices are out. Every operation takes `&self`: it is shared by every
/// CPU that may take or give back.
#[derive(Debug)]
pub struct FreeList {
    head: AtomicU64,
    out: AtomicU32,
    capacity: u32,
}

impl FreeList {
    /// A list over `links.len()` indices, every one free; takes hand them
    /// out in index order until the first give back.
    pub fn new(links: &[AtomicU32]) -> FreeList {
        assert!(links.len() < END as usize, "too many indices for a free list");
        let count = links.len();
        for (index, link) in links.iter().enumerate() {
            link.store(if index + 1 < count { index as u32 + 1 } else { END }, Ordering::Relaxed);
        }
        let first = if links.is_empty() { END } else { 0 };
        FreeList { head: AtomicU64::new(pack(0, first)), out: AtomicU32::new(0), capacity: count as u32 }
    }

    /// Takes a free index, or `None` if all are out. O(1) and lock-free:
    /// it retries only when another take or give back changed the head in
    /// between, so some CPU always makes progress.
    #[inline(always)]
    pub fn take(&self, links: &[AtomicU32]) -> Option<usize> {
        self.take_interleaved(links, || {})
    }

    /// [`take`](Self::take), running `between` once after the first read
    /// of the head and its link and before the exchange that would install
    /// the link: where another CPU's operations can interleave. For tests
    /// of the interleavings (the ABA case); `take` passes nothing.
    #[doc(hidden)]
    #[inline(always)]
    pub fn take_interleaved(&self, links: &[AtomicU32], mut between: impl FnMut()) -> Option<usize> {
        // Acquire: the link of the head, and whatever the giver wrote into
        // the thing the index names, were written before its release.
        let mut head = self.head.load(Ordering::Acquire);
        let mut first = true;
        loop {
            let index = index_of(head);
            if index == END {
                return None;
            }
            // Possibly stale (another CPU may have taken `index` since):
            // then the head's tag has changed and the exchange fails.
            let next = links[index as usize].load(Ordering::Relaxed);
            if core::mem::take(&mut first) {
                between();
            }
            let new = pack(tag_of(head).wrapping_add(1), next);
            match self.head.compare_exchange(head, new, Ordering::Acquire, Ordering::Acquire) {
                Ok(_) => {
                    self.out.fetch_add(1, Ordering::Relaxed);
                    return Some(index as usize);
                }
                Err(current) => head = current,
            }
        }
    }

    /// Gives back `index`, which [`take`](Self::take) handed out and nobody
    /// gave back since. O(1) and lock-free. The count of indices out drops
    /// last, with release ordering: once [`out`](Self::out) reads 0 (with
    /// acquire ordering), every give back has finished touching the list
    /// and its links, so their memory may be reused.
    #[inline(always)]
    pub fn give_back(&self, links: &[AtomicU32], index: usize) {
        debug_assert!(index < self.capacity as usize, "index {index} given back but never handed out");
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            links[index].store(index_of(head), Ordering::Relaxed);
            let new = pack(tag_of(head).wrapping_add(1), index as u32);
            // Release: the link above (and the caller's writes to what the
            // index names) are visible to the next taker of `index`.
            match self.head.compare_exchange_weak(head, new, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => break,
                Err(current) => head = current,
            }
        }
        let before = self.out.fetch_sub(1, Ordering::Release);
        debug_assert!(before > 0, "index {index} given back but not out");
    }

    /// How many indices are out: exact once no take or give back is in
    /// progress (acquire ordering, see [`give_back`](Self::give_back)).
    pub fn out(&self) -> usize {
        self.out.load(Ordering::Acquire) as usize
    }

    /// How many indices the list holds in all.
    pub fn capacity(&self) -> usize {
        self.capacity as usize
    }
}
