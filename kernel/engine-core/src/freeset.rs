//! A fixed-capacity, lock-free set of free indices, as a bitmap: take and
//! give back in a few instructions, from any CPU and from interrupts
//! nested on one CPU.
//!
//! Kretprobe instances come from a pool sized by `maxactive` at
//! registration; the trap path takes one at a function's entry and gives it
//! back at its return. On SMP several CPUs do that at once, and on one CPU
//! a take can be interrupted by code that takes or gives back too, so the
//! set cannot rely on "interrupts off on the only CPU", and it must not
//! take a lock (the trap path never waits).
//!
//! Each index is one bit of an `AtomicU32` word, set while the index is
//! free: index `i` is bit `i % 32` of word `i / 32`, a little-endian bit
//! string (what x86's `bts`/`btr` with a register bit offset address, so
//! assembly can give an index back with one `lock bts`). A take finds a set bit in a word it read and clears it with one
//! atomic `fetch_and` (`lock btr` on x86); the bit it cleared was set in
//! the value the `fetch_and` returns, or another CPU had taken it first and
//! the take looks again. A give back sets the bit (`fetch_or`, `lock bts`).
//! Every change is a single read-modify-write of the word that holds the
//! index, so there is no window in which a stale read can be installed:
//! the ABA problem of a list head (which a Treiber stack needs a tag
//! against, and a 64-bit compare-and-swap for) does not arise.
//!
//! A take costs one word for up to 32 instances (Linux's default
//! `maxactive` is `max(10, 2 × CPUs)`), and scans `capacity / 32` words at
//! most: bounded, never waiting on another CPU. Linux moved its kretprobe
//! instances to a per-CPU object pool (`lib/objpool.c`, since 6.7), whose
//! point is the same: bounded, lock-free, safe in any context including
//! NMIs.
use core::sync::atomic::{AtomicU32, Ordering};

const BITS: usize = u32::BITS as usize;

/// The set's size: how many indices it holds in all. Every operation takes
/// `&self` and the words: it is shared by every CPU that may take or give
/// back, and the words live wherever the caller keeps them (next to the
/// things the indices name).
#[derive(Debug)]
pub struct FreeSet {
    capacity: usize,
    words: usize,
}

impl FreeSet {
    /// How many words a set of `capacity` indices needs.
    pub const fn words_for(capacity: usize) -> usize {
        capacity.div_ceil(BITS)
    }

    /// A set of `capacity` indices over `words` ([`words_for`](Self::words_for)
    /// of them), every index free; takes hand out the lowest free index.
    pub fn new(words: &[AtomicU32], capacity: usize) -> FreeSet {
        assert_eq!(words.len(), Self::words_for(capacity), "the words of a free set of {capacity}");
        for (n, word) in words.iter().enumerate() {
            let in_word = (capacity - n * BITS).min(BITS);
            word.store(if in_word == BITS { u32::MAX } else { (1 << in_word) - 1 }, Ordering::Relaxed);
        }
        FreeSet { capacity, words: words.len() }
    }

    /// Takes the lowest free index, or `None` if all are out. Lock-free: a
    /// look again happens only when another take cleared the bit first, so
    /// some CPU always makes progress.
    #[inline(always)]
    pub fn take(&self, words: &[AtomicU32]) -> Option<usize> {
        self.take_interleaved(words, || {})
    }

    /// [`take`](Self::take), running `between` once after the first read
    /// of a word with a free index and before the `fetch_and` that would
    /// take it: where another CPU's operations can interleave. For tests of
    /// the interleavings; `take` passes nothing.
    #[doc(hidden)]
    #[inline(always)]
    pub fn take_interleaved(&self, words: &[AtomicU32], mut between: impl FnMut()) -> Option<usize> {
        let mut first = true;
        for (n, word) in words.iter().enumerate() {
            let mut free = word.load(Ordering::Relaxed);
            while free != 0 {
                let bit = 1 << free.trailing_zeros();
                if core::mem::take(&mut first) {
                    between();
                }
                // Acquire: whatever the giver wrote into the thing the index
                // names was written before its release. Only the bit's old
                // value is used, so this is one `lock btr`.
                if word.fetch_and(!bit, Ordering::Acquire) & bit != 0 {
                    return Some(n * BITS + bit.trailing_zeros() as usize);
                }
                // Taken by someone else in between: what is free now.
                free = word.load(Ordering::Relaxed);
            }
        }
        None
    }

    /// Gives back `index`, which [`take`](Self::take) handed out and nobody
    /// gave back since. One atomic `fetch_or`, with release ordering, which
    /// is also the last access to the words: once [`out`](Self::out) reads 0
    /// (with acquire ordering), every give back has finished touching the
    /// set, so its memory may be reused.
    #[inline(always)]
    pub fn give_back(&self, words: &[AtomicU32], index: usize) {
        debug_assert!(index < self.capacity, "index {index} given back but never handed out");
        let bit = 1 << (index % BITS);
        let before = words[index / BITS].fetch_or(bit, Ordering::Release);
        debug_assert!(before & bit == 0, "index {index} given back but not out");
    }

    /// How many indices are out: exact once no take or give back is in
    /// progress (acquire ordering, see [`give_back`](Self::give_back)).
    pub fn out(&self, words: &[AtomicU32]) -> usize {
        let free: u32 = words.iter().map(|word| word.load(Ordering::Acquire).count_ones()).sum();
        self.capacity - free as usize
    }

    /// How many indices the set holds in all.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many words it is kept in ([`words_for`](Self::words_for) its
    /// capacity, computed once).
    pub fn words(&self) -> usize {
        self.words
    }
}
