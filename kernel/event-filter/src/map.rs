//! The histogram table: Linux's `tracing_map`, preallocated and lock-free.
//!
//! # Layout
//!
//! A table holds up to `2^bits` entries (`size=`, 128 to 131072), all
//! allocated when the trigger is created: each entry has a key (a fixed
//! number of 64-bit words), its sums (hitcount and up to two values) and,
//! for `.execname`, the task name saved when the entry was made. Entries
//! are found through an index of `2^(bits + 1)` slots, twice the entries
//! so probing stays short. A slot is one 64-bit word: the key's 32-bit
//! hash (never 0) and the number of the entry it leads to, or 0 if free.
//!
//! # Inserting (any context, any number of CPUs at once)
//!
//! The probe handler hashes the key and probes from the slot the hash's
//! top bits name:
//!
//! - a slot with the same hash whose entry's key matches: the entry is
//!   found; its sums are added to with `fetch_add`;
//! - any other used slot: try the next one;
//! - a free slot: take a free entry (an atomic increment bounded by the
//!   capacity; if none is left, count a drop), write the key into it,
//!   then claim the slot with one compare-and-swap of 0 to hash-and-entry
//!   (Release, so whoever sees the slot sees the key). One CPU wins; a
//!   loser looks at the slot again: if the winner's key is its key it adds
//!   to the winner's entry and puts its own entry back in a small pool of
//!   spares (which the next new key takes first), else it goes on probing
//!   with the entry it holds.
//!
//! Used slots never become free (until [`Table::clear`]), so the walk
//! ends within one pass over the index, and every key has one entry: two
//! CPUs inserting the same new key start at the same slot and meet at the
//! first free one. Every step is an atomic on preallocated memory: no
//! allocation, no lock, no panic, and no CPU ever waits for another.
//!
//! Linux claims the slot with the hash first and publishes the entry
//! afterwards; a CPU that finds a slot claimed but not yet published spins
//! for it, up to a bound, then counts a drop. Publishing both in one
//! 64-bit compare-and-swap (`cmpxchg8b` on i386) removes that window, so a
//! slow or interrupted claimer (or one re-entered on its own CPU) costs no
//! other CPU a hit.
//!
//! # Reading and clearing (task context)
//!
//! Readers take the claimed slots (Acquire, so the key written before the
//! claim is seen) and their entries' sums, while writers go on: a read is
//! a snapshot of each entry, not of the table, as in Linux.
//! [`Table::clear`] first closes the table to writers (an event that
//! arrives meanwhile is not counted), waits for those inside to leave,
//! then zeroes everything.
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use crate::error::Errno;

/// Smallest table: `size=128` (Linux's `TRACING_MAP_BITS_MIN`).
pub const BITS_MIN: u32 = 7;
/// Largest table: `size=131072` (Linux's `TRACING_MAP_BITS_MAX`).
pub const BITS_MAX: u32 = 17;
/// The default table: `size=2048`.
pub const BITS_DEFAULT: u32 = 11;
/// Words of a saved task name (16 bytes).
const COMM_WORDS: usize = 2;
/// Entries a CPU that lost a race can give back for reuse (more than the
/// CPUs that can lose at once; an entry that finds no room is lost until
/// the next clear, which costs capacity, never correctness).
const SPARES: usize = 32;

/// One entry as a reader sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The key's words.
    pub key: Vec<u64>,
    /// The sums: hitcount first, then the values in order.
    pub sums: Vec<u64>,
    /// The task name saved when the entry was made (zeros if none).
    pub comm: [u8; 16],
}

/// A preallocated histogram table (see the module documentation).
#[derive(Debug)]
pub struct Table {
    bits: u32,
    max_elts: usize,
    key_words: usize,
    n_sums: usize,
    has_comm: bool,
    slots: Box<[AtomicU64]>,
    spares: [AtomicU32; SPARES],
    keys: Box<[AtomicU64]>,
    sums: Box<[AtomicU64]>,
    comms: Box<[AtomicU64]>,
    next_elt: AtomicU32,
    hits: AtomicU64,
    drops: AtomicU64,
    writers: AtomicU32,
    closed: AtomicBool,
}

/// `n` zeroed atomics, or `ENOMEM`.
fn zeroed<T>(n: usize, zero: impl Fn() -> T) -> Result<Box<[T]>, Errno> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| Errno::NoMem)?;
    v.extend((0..n).map(|_| zero()));
    Ok(v.into_boxed_slice())
}

/// The key's hash: never 0 (0 marks a free slot), well mixed in its top
/// bits (which choose the first slot).
fn hash_key(key: &[u64]) -> u32 {
    let mut h: u32 = 0x9747_b28c ^ (key.len() as u32);
    for &word in key {
        for half in [word as u32, (word >> 32) as u32] {
            let k = half.wrapping_mul(0xcc9e_2d51).rotate_left(15).wrapping_mul(0x1b87_3593);
            h ^= k;
            h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
        }
    }
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    if h == 0 { 1 } else { h }
}

impl Table {
    /// A table of `2^bits` entries (`bits` from [`BITS_MIN`] to
    /// [`BITS_MAX`]) with keys of `key_words` words, `n_sums` sums (at
    /// least the hitcount) and, if `has_comm`, a saved task name. All the
    /// memory is allocated here; `ENOMEM` if it cannot be, `EINVAL` for
    /// sizes out of range.
    pub fn new(bits: u32, key_words: usize, n_sums: usize, has_comm: bool) -> Result<Table, Errno> {
        if !(BITS_MIN..=BITS_MAX).contains(&bits) || key_words == 0 || n_sums == 0 {
            return Err(Errno::Inval);
        }
        let max_elts = 1usize << bits;
        let map_size = max_elts * 2;
        Ok(Table {
            bits,
            max_elts,
            key_words,
            n_sums,
            has_comm,
            slots: zeroed(map_size, || AtomicU64::new(0))?,
            spares: core::array::from_fn(|_| AtomicU32::new(0)),
            keys: zeroed(max_elts * key_words, || AtomicU64::new(0))?,
            sums: zeroed(max_elts * n_sums, || AtomicU64::new(0))?,
            comms: zeroed(if has_comm { max_elts * COMM_WORDS } else { 0 }, || AtomicU64::new(0))?,
            next_elt: AtomicU32::new(0),
            hits: AtomicU64::new(0),
            drops: AtomicU64::new(0),
            writers: AtomicU32::new(0),
            closed: AtomicBool::new(false),
        })
    }

    /// Entries the table holds at most (`size=`).
    pub fn capacity(&self) -> usize {
        self.max_elts
    }

    /// Words of a key.
    pub fn key_words(&self) -> usize {
        self.key_words
    }

    /// Sums per entry (hitcount included).
    pub fn sums_per_entry(&self) -> usize {
        self.n_sums
    }

    /// Hits counted into an entry (Linux's `Hits`).
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Hits that found no room (Linux's `Dropped`).
    pub fn drops(&self) -> u64 {
        self.drops.load(Ordering::Relaxed)
    }

    /// Adds `sums` (hitcount first; missing ones add 0, extra ones are
    /// ignored) to the entry for `key` (exactly [`Table::key_words`]
    /// words), making the entry if it is new with `comm` as its saved task
    /// name. Returns whether the hit was counted (false: dropped, or the
    /// table is being cleared). Lock-free, allocation-free, panic-free.
    pub fn update(&self, key: &[u64], sums: &[u64], comm: &[u8]) -> bool {
        self.writers.fetch_add(1, Ordering::SeqCst);
        let counted = !self.closed.load(Ordering::SeqCst) && self.insert(key, sums, comm);
        self.writers.fetch_sub(1, Ordering::Release);
        counted
    }

    fn insert(&self, key: &[u64], sums: &[u64], comm: &[u8]) -> bool {
        if key.len() != self.key_words {
            return false;
        }
        let hash = hash_key(key);
        let mask = self.slots.len() - 1;
        let mut idx = (hash >> (32 - (self.bits + 1))) as usize;
        // An entry holding our key, taken but not yet published.
        let mut mine: Option<usize> = None;
        // Each slot is looked at at most twice (once more after a lost
        // claim); the bound only guards against a broken invariant.
        let mut steps = 0usize;
        let found = loop {
            steps += 1;
            if steps > 2 * self.slots.len() {
                break None;
            }
            idx &= mask;
            let slot = self.slots[idx].load(Ordering::Acquire);
            if slot != 0 {
                let elt = (slot as u32).wrapping_sub(1) as usize;
                if (slot >> 32) as u32 == hash && elt < self.max_elts && self.key_matches(elt, key) {
                    break Some(elt);
                }
                idx += 1;
                continue;
            }
            let elt = match mine {
                Some(elt) => elt,
                None => {
                    let Some(elt) = self.alloc_elt() else {
                        break None;
                    };
                    self.write_entry(elt, key, comm);
                    mine = Some(elt);
                    elt
                }
            };
            let claim = (u64::from(hash) << 32) | (elt as u64 + 1);
            if self.slots[idx].compare_exchange(0, claim, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                mine = None;
                break Some(elt);
            }
            // Lost the slot: look at what was put there.
        };
        if let Some(elt) = mine {
            self.give_back(elt);
        }
        let Some(elt) = found else {
            self.drops.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        self.hits.fetch_add(1, Ordering::Relaxed);
        self.add_sums(elt, sums);
        true
    }

    /// Writes a new entry's key and saved task name (before it is
    /// published).
    fn write_entry(&self, elt: usize, key: &[u64], comm: &[u8]) {
        for (word, &value) in self.keys[elt * self.key_words..][..self.key_words].iter().zip(key) {
            word.store(value, Ordering::Relaxed);
        }
        if self.has_comm {
            let mut bytes = [0u8; 16];
            let n = comm.iter().take(15).position(|&b| b == 0).unwrap_or(comm.len().min(15));
            bytes[..n].copy_from_slice(&comm[..n]);
            for (i, word) in self.comms[elt * COMM_WORDS..][..COMM_WORDS].iter().enumerate() {
                let mut half = [0u8; 8];
                half.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
                word.store(u64::from_le_bytes(half), Ordering::Relaxed);
            }
        }
    }

    /// Puts back an entry that was taken but not published.
    fn give_back(&self, elt: usize) {
        for spare in &self.spares {
            if spare.compare_exchange(0, elt as u32 + 1, Ordering::Release, Ordering::Relaxed).is_ok() {
                return;
            }
        }
    }

    /// A free entry, if any: a spare first, else the next never used one
    /// (Linux's `atomic_fetch_add_unless`).
    fn alloc_elt(&self) -> Option<usize> {
        for spare in &self.spares {
            if spare.load(Ordering::Relaxed) != 0 {
                let taken = spare.swap(0, Ordering::Acquire);
                if taken != 0 {
                    return Some(taken as usize - 1);
                }
            }
        }
        let max = self.max_elts as u32;
        self.next_elt
            .try_update(Ordering::Relaxed, Ordering::Relaxed, |n| (n < max).then_some(n + 1))
            .ok()
            .map(|n| n as usize)
    }

    fn key_matches(&self, elt: usize, key: &[u64]) -> bool {
        let stored = &self.keys[elt * self.key_words..][..self.key_words];
        stored.iter().zip(key).all(|(word, &value)| word.load(Ordering::Relaxed) == value)
    }

    fn add_sums(&self, elt: usize, sums: &[u64]) {
        for (sum, &value) in self.sums[elt * self.n_sums..][..self.n_sums].iter().zip(sums) {
            sum.fetch_add(value, Ordering::Relaxed);
        }
    }

    /// The published entries, in index order.
    pub fn snapshot(&self) -> Vec<Snapshot> {
        let mut out = Vec::new();
        for slot in self.slots.iter() {
            let slot = slot.load(Ordering::Acquire);
            if slot == 0 {
                continue;
            }
            let elt = (slot as u32).wrapping_sub(1) as usize;
            if elt >= self.max_elts {
                continue;
            }
            let key = self.keys[elt * self.key_words..][..self.key_words].iter().map(|w| w.load(Ordering::Relaxed));
            let sums = self.sums[elt * self.n_sums..][..self.n_sums].iter().map(|w| w.load(Ordering::Relaxed));
            let mut comm = [0u8; 16];
            if self.has_comm {
                for (i, word) in self.comms[elt * COMM_WORDS..][..COMM_WORDS].iter().enumerate() {
                    comm[i * 8..i * 8 + 8].copy_from_slice(&word.load(Ordering::Relaxed).to_le_bytes());
                }
            }
            out.push(Snapshot { key: key.collect(), sums: sums.collect(), comm });
        }
        out
    }

    /// Empties the table and zeroes its counts (Linux's
    /// `tracing_map_clear()`). Writers arriving meanwhile are turned away
    /// (their hits are not counted); those inside are waited for, which
    /// takes a bounded time since an insertion never waits on a reader.
    /// Call from task context only; concurrent clears take turns.
    pub fn clear(&self) {
        while self.closed.compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst).is_err() {
            core::hint::spin_loop();
        }
        while self.writers.load(Ordering::SeqCst) != 0 {
            core::hint::spin_loop();
        }
        for spare in &self.spares {
            spare.store(0, Ordering::Relaxed);
        }
        for word in self.slots.iter().chain(self.keys.iter()).chain(self.sums.iter()).chain(self.comms.iter()) {
            word.store(0, Ordering::Relaxed);
        }
        self.next_elt.store(0, Ordering::Relaxed);
        self.hits.store(0, Ordering::Relaxed);
        self.drops.store(0, Ordering::Relaxed);
        self.closed.store(false, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_keys_and_drops_when_full() {
        let table = Table::new(BITS_MIN, 1, 2, false).unwrap();
        for k in 0..200u64 {
            assert_eq!(table.update(&[k], &[1, k], &[]), k < 128, "key {k}");
        }
        assert!(table.update(&[5], &[1, 10], &[]));
        assert_eq!(table.hits(), 129);
        assert_eq!(table.drops(), 72);
        let snapshot = table.snapshot();
        assert_eq!(snapshot.len(), 128);
        let five = snapshot.iter().find(|e| e.key == [5]).unwrap();
        assert_eq!(five.sums, [2, 15]);
        table.clear();
        assert_eq!((table.hits(), table.drops(), table.snapshot().len()), (0, 0, 0));
        assert!(table.update(&[199], &[1, 1], &[]));
        assert_eq!(table.snapshot()[0].key, [199]);
    }

    #[test]
    fn wrong_key_length_is_not_counted() {
        let table = Table::new(BITS_MIN, 2, 1, false).unwrap();
        assert!(!table.update(&[1], &[1], &[]));
        assert_eq!(table.snapshot().len(), 0);
    }

    #[test]
    fn sizes_out_of_range_are_refused() {
        assert_eq!(Table::new(6, 1, 1, false).unwrap_err(), Errno::Inval);
        assert_eq!(Table::new(18, 1, 1, false).unwrap_err(), Errno::Inval);
    }
}
