//! A fixed-capacity free list of indices: O(1) take and give back.
//!
//! Kretprobe instances come from a pool sized by `maxactive` at
//! registration; the trap path takes one at a function's entry and gives it
//! back at its return. The list itself is just a head and one link per
//! index (kept by the caller, next to the things the indices name), so
//! both operations are a couple of loads and stores with no allocation,
//! and the bookkeeping — never handing out an index twice, counting what
//! is out — is checked here on the host.

/// No index: the end of the list.
const END: u32 = u32::MAX;

/// The head of a free list over `links` (one entry per index), and how many
/// indices are out.
#[derive(Debug, PartialEq, Eq)]
pub struct FreeList {
    head: u32,
    out: u32,
    capacity: u32,
}

impl FreeList {
    /// A list over `links.len()` indices, every one free (in index order).
    pub fn new(links: &mut [u32]) -> FreeList {
        assert!(links.len() < END as usize, "too many indices for a free list");
        let count = links.len();
        for (index, link) in links.iter_mut().enumerate() {
            *link = if index + 1 < count { index as u32 + 1 } else { END };
        }
        FreeList { head: if links.is_empty() { END } else { 0 }, out: 0, capacity: links.len() as u32 }
    }

    /// Takes a free index, or `None` if all are out. O(1).
    #[inline(always)]
    pub fn take(&mut self, links: &[u32]) -> Option<usize> {
        if self.head == END {
            return None;
        }
        let index = self.head;
        self.head = links[index as usize];
        self.out += 1;
        Some(index as usize)
    }

    /// Gives back `index`, which [`take`](Self::take) handed out and nobody
    /// gave back since. O(1).
    #[inline(always)]
    pub fn give_back(&mut self, links: &mut [u32], index: usize) {
        debug_assert!(self.out > 0 && index < self.capacity as usize, "index {index} given back but not out");
        links[index] = self.head;
        self.head = index as u32;
        self.out -= 1;
    }

    /// How many indices are out.
    pub fn out(&self) -> usize {
        self.out as usize
    }

    /// How many indices the list holds in all.
    pub fn capacity(&self) -> usize {
        self.capacity as usize
    }
}
