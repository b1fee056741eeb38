//! One CPU's ring: the writer's reserve/commit, the readers' validated
//! copies, clearing, memory replacement and statistics.
//!
//! The protocol and its memory-ordering argument are in the crate's
//! documentation; the comments here point at the step of it each line
//! implements.
use core::marker::PhantomData;
use core::ptr::NonNull;
use core::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, fence};

use crate::record::{self, Event, HEADER_WORDS, Header, Lost, MAX_PAYLOAD, MAX_RECORD_WORDS};

// The caller's `&mut [u32]` is used as `[AtomicU32]`: same size, same
// alignment, and every bit pattern valid for both.
const _: () = assert!(size_of::<u32>() == size_of::<AtomicU32>() && align_of::<u32>() == align_of::<AtomicU32>());

/// Why a record was not written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dropped {
    /// Recording is off ([`TraceBuffer::set_recording`](crate::TraceBuffer::set_recording)):
    /// the record is discarded and not counted, as Linux's `tracing_on`.
    TracingOff,
    /// Stop-when-full mode and no room: the record is counted in
    /// [`CpuStats::dropped`].
    Full,
    /// The record can never fit: its payload is over [`MAX_PAYLOAD`], or it
    /// is larger than this CPU's whole buffer (a CPU with no memory has room
    /// for nothing). Not counted.
    TooLarge,
}

/// A field put into a [`Reservation`] past the payload length it was made with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfBounds;

/// The switches shared by every CPU's writer.
pub(crate) struct Control {
    pub(crate) recording: AtomicBool,
    pub(crate) overwrite: AtomicBool,
    /// Words an overwriting writer frees beyond what its record needs,
    /// once it has to claim at all (`TraceBuffer::set_overwrite_batch`).
    pub(crate) batch: AtomicUsize,
}

/// The memory's role in a buffer: it is taken in and given back, so the
/// buffer is invariant in its lifetime (and still `Send` and `Sync`).
type TakesAndGivesBack<'m> = fn(&'m mut [u32]) -> &'m mut [u32];

/// One CPU's ring and counters.
///
/// Positions (`head`, `start`, and a record's position) count words
/// written since the buffer was made; they only grow (nothing ever moves
/// one back, clearing and memory replacement included), so a position
/// names one record for the life of the buffer and a 64-bit comparison of
/// positions can never be fooled by wrap-around (2^64 words is beyond
/// reach). A position's word is at index `position % capacity` in memory.
pub(crate) struct CpuBuffer<'m> {
    /// The memory: (`mem`, `cap` words) as last installed; `(dangling, 0)`
    /// until then.
    mem: AtomicPtr<AtomicU32>,
    cap: AtomicUsize,
    /// Where the next record goes: the end of the newest committed record.
    /// Only the writer advances it (published with Release at commit), and
    /// it reads it back as its own.
    head: Position,
    /// The oldest record still present. Advanced by compare-and-swap, one
    /// record at a time, by the writer (claiming it to overwrite it) and by
    /// consuming readers (taking it); clearing moves it to `head`.
    start: AtomicU64,
    /// `head % cap`, kept by the writer so that its path divides nothing.
    head_phys: AtomicUsize,
    /// Words this CPU's writer may still write past `head` without looking
    /// at `start`: what was free when it last saw or moved `start` (which
    /// only grows), less what it has claimed since. Writer-private; zero
    /// (look again) after a resync or a memory replacement.
    room: AtomicUsize,
    /// Records committed, overwritten (by the writer's claims) and dropped
    /// (stop-when-full): each counted by the writer alone.
    written: AtomicUsize,
    overrun: AtomicUsize,
    dropped: AtomicUsize,
    /// Records taken by consuming readers.
    read: AtomicUsize,
    /// The `overrun` count that consuming readers have reported as lost.
    reported_overrun: AtomicUsize,
    /// Set by clearing, and by a reader that finds what cannot be a record
    /// (only after a broken writer contract): the writer's next reserve
    /// empties the ring and realigns `head_phys` with `head`, so that a
    /// ring garbled by two writers at once works again.
    repair: AtomicBool,
    /// The buffer holds the caller's `&'m mut [u32]` (as a raw pointer).
    /// Invariant in `'m`: a shared reference must not be able to shorten
    /// it and then install memory that dies before the buffer.
    _memory: PhantomData<TakesAndGivesBack<'m>>,
}

/// A single writer's increment: a load and a store, no locked instruction
/// (only this CPU's writer changes the counter, apart from clearing).
#[inline(always)]
fn bump(counter: &AtomicUsize) {
    counter.store(counter.load(Relaxed).wrapping_add(1), Relaxed);
}

/// `index + by` within a ring of `cap` words, for `index < cap`, `by <= cap`.
///
/// The arithmetic here and on the writer's path is written wrapping where
/// bounds prove it cannot overflow: the kernel's debug builds check
/// overflow, and a check that cannot fire is still a panic branch on the
/// trap path.
#[inline(always)]
fn forward(index: usize, by: usize, cap: usize) -> usize {
    // No overflow: both are at most `cap`, and a slice of u32 has fewer
    // than usize::MAX / 4 elements.
    let sum = index.wrapping_add(by);
    if sum >= cap { sum.wrapping_sub(cap) } else { sum }
}

/// `index - by` within a ring of `cap` words, for `index < cap`, `by <= cap`.
#[inline(always)]
fn back(index: usize, by: usize, cap: usize) -> usize {
    // `index < by <= cap` in the second branch: `cap - by` and the sum stay
    // within `0..cap`.
    if index >= by { index.wrapping_sub(by) } else { index.wrapping_add(cap.wrapping_sub(by)) }
}

/// Where a position's word is in a ring of `cap > 0` words (reader side:
/// a 64-bit division, which the writer's path avoids).
#[inline(always)]
fn phys(position: u64, cap: usize) -> usize {
    (position % cap as u64) as usize
}

/// Consecutive words of a ring, from an index, wrapping at its end.
struct Words<'a> {
    mem: &'a [AtomicU32],
    index: usize,
}

impl Words<'_> {
    #[inline(always)]
    fn advance(&mut self) {
        // No overflow: `index < mem.len()` whenever this runs.
        self.index = self.index.wrapping_add(1);
        if self.index >= self.mem.len() {
            self.index = 0;
        }
    }

    #[inline(always)]
    fn put(&mut self, word: u32) {
        if let Some(slot) = self.mem.get(self.index) {
            slot.store(word, Relaxed);
        }
        self.advance();
    }

    #[inline(always)]
    fn take(&mut self) -> u32 {
        let word = self.mem.get(self.index).map_or(0, |slot| slot.load(Relaxed));
        self.advance();
        word
    }
}

impl<'m> CpuBuffer<'m> {
    pub(crate) const fn new() -> CpuBuffer<'m> {
        CpuBuffer {
            mem: AtomicPtr::new(NonNull::dangling().as_ptr()),
            cap: AtomicUsize::new(0),
            head: Position::new(),
            start: AtomicU64::new(0),
            head_phys: AtomicUsize::new(0),
            room: AtomicUsize::new(0),
            written: AtomicUsize::new(0),
            overrun: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
            read: AtomicUsize::new(0),
            reported_overrun: AtomicUsize::new(0),
            repair: AtomicBool::new(false),
            _memory: PhantomData,
        }
    }

    /// The installed memory.
    #[inline(always)]
    fn memory(&self) -> &[AtomicU32] {
        let mem = self.mem.load(Relaxed);
        let cap = self.cap.load(Relaxed);
        // SAFETY: (`mem`, `cap`) is either the initial (dangling, 0), a
        // valid empty slice, or the pointer and length of a `&'m mut [u32]`
        // that `install` took and keeps until it gives it back. Both words
        // change only in `install`, which runs with no other access to this
        // buffer (`&mut self`, or `replace_memory`'s contract), so the pair
        // read here was installed together and stays installed while the
        // returned borrow of `self` lives. The memory is used only through
        // atomics while installed, and `[AtomicU32]` has the layout of
        // `[u32]` (the assertion at the top of this file).
        // (`&*slice_from_raw_parts` rather than `from_raw_parts`: the same
        // slice without the debug build's precondition check, whose abort
        // branch would sit on the trap path.)
        unsafe { &*core::ptr::slice_from_raw_parts(mem, cap) }
    }

    /// Capacity in bytes.
    pub(crate) fn capacity_bytes(&self) -> usize {
        self.cap.load(Relaxed).saturating_mul(4)
    }

    // ---- The writer --------------------------------------------------

    /// Claims room for one record of `payload_len` bytes: W1 and the W2
    /// fence. Returns the memory, the record's position and index, and its
    /// length in words; nothing is written yet.
    ///
    /// Bounded: the claim loop ends once `start` has passed `target`,
    /// which is at most one record length (255 words) plus the batch beyond
    /// where `start` was; each round moves `start` at least one header (4
    /// words), by this writer's claim or a reader's take, and walks at most
    /// the records between `start` and `target`; the rest is
    /// straight-line.
    #[inline(always)]
    fn claim(&self, control: &Control, payload_len: usize) -> Result<Claim<'_>, Dropped> {
        if !control.recording.load(Relaxed) {
            return Err(Dropped::TracingOff);
        }
        let mem = self.memory();
        let cap = mem.len();
        if payload_len > MAX_PAYLOAD {
            return Err(Dropped::TooLarge);
        }
        let words = record::record_words(payload_len);
        if words > cap {
            return Err(Dropped::TooLarge);
        }
        // Only this writer moves `head`: this is its own last value.
        let mut head = self.head.own();
        let mut head_phys = self.head_phys.load(Relaxed);
        if head_phys >= cap || self.repair.load(Relaxed) {
            // After a clear, or if two writers ran on this CPU at once (a
            // broken contract): start over from an empty, consistent ring.
            (head, head_phys) = self.resync(head, cap);
        }
        // W1 from what this writer already knows: `room` words past `head`
        // were free when it last saw `start`, which only grows. That
        // observation or claim was followed by the W2 fence, which thus
        // precedes this record's stores too.
        let room = self.room.load(Relaxed);
        if words <= room {
            self.room.store(room.wrapping_sub(words), Relaxed);
            return Ok(Claim { mem, head, head_phys, words });
        }
        // Every record that starts before `head + words - cap` shares memory
        // with the new one (it lies within `cap` words behind the new
        // record's end); `start + cap >= end` says none is left. Positions
        // stay far below 2^63: no sum here overflows.
        let end = head.wrapping_add(words as u64);
        let overwrite = control.overwrite.load(Relaxed);
        // Acquire: if a reader took records up to here, its copies are done
        // before the memory is written again (protocol, step W1).
        let mut start = self.start.load(Acquire);
        // An overwriting writer that must claim frees `batch` words more
        // than this record needs (at most what leaves the ring empty), so
        // that the next writes find room without claiming: Linux frees a
        // page at a time.
        let mut target = end;
        if overwrite && start.wrapping_add(cap as u64) < end {
            // `words <= cap` (checked above): no underflow.
            let batch = control.batch.load(Relaxed).min(cap.wrapping_sub(words));
            target = end.wrapping_add(batch as u64);
        }
        // The claims stop by `start == head` at the latest, since
        // `head + cap >= end + batch`; before that `start < head`, as
        // `records_in_the_way` requires.
        while start.wrapping_add(cap as u64) < target {
            if !overwrite {
                bump(&self.dropped);
                return Err(Dropped::Full);
            }
            // start < target - cap <= head: the oldest records, written by
            // this writer (so their length words are its own stores), are in
            // the way. Find where the last one in the way ends...
            let Some((past, count)) = records_in_the_way(mem, head, head_phys, start, target) else {
                // `start < head` here, so `resync` keeps `head` (it moves it
                // only up to `start`) and the record's place stands.
                (_, head_phys) = self.resync(head, cap);
                start = self.start.load(Acquire);
                continue;
            };
            // ...and claim them all at once (W1): after this no reader's
            // copy of any of them validates.
            match self.start.compare_exchange(start, past, Acquire, Acquire) {
                // `start` is exactly `past` now (readers only move it on):
                // no need to load it again.
                Ok(_) => {
                    self.overrun.store(self.overrun.load(Relaxed).wrapping_add(count), Relaxed);
                    start = past;
                }
                // A reader took the oldest first: look again from where
                // `start` is now.
                Err(now) => start = now,
            }
        }
        // W2: the claims and the observations of `start` above come before
        // any store into the memory they freed (pairs with the readers'
        // Acquire fence before their check, R3), this record's and those of
        // the writes that find room from `room` alone.
        fence(Release);
        // `start + cap >= end` (the loop's exit) and `start <= head < end`:
        // what is left is below `cap` (`min` keeps it so even if two writers
        // broke the contract).
        self.room.store((start.wrapping_add(cap as u64).wrapping_sub(end) as usize).min(cap), Relaxed);
        Ok(Claim { mem, head, head_phys, words })
    }

    /// Reserves room for one record and writes its header; the record is
    /// invisible to readers until [`Reservation::commit`].
    #[inline]
    pub(crate) fn reserve<'a>(
        &'a self,
        control: &Control,
        header: &Header,
        payload_len: usize,
    ) -> Result<Reservation<'a>, Dropped> {
        Ok(self.begin(self.claim(control, payload_len)?, header, payload_len))
    }

    /// Writes the header of a record into the room claimed for it, word by
    /// word round the ring's end, and makes the reservation that fills and
    /// commits it.
    #[inline(always)]
    fn begin<'a>(&'a self, claim: Claim<'a>, header: &Header, payload_len: usize) -> Reservation<'a> {
        let Claim { mem, head, head_phys, words } = claim;
        let cap = mem.len();
        let mut ring = Words { mem, index: head_phys };
        record::encode(words, header).into_iter().for_each(|word| ring.put(word));
        let payload_phys = ring.index;
        if payload_len % 4 != 0 {
            // The padding of the last word reads back as zeros.
            if let Some(last) = mem.get(forward(payload_phys, payload_len / 4, cap)) {
                last.store(0, Relaxed);
            }
        }
        Reservation {
            publisher: self.publisher(),
            mem,
            payload_phys,
            payload_len,
            // Positions stay far below 2^64 (2^56 records of 255 words).
            end: head.wrapping_add(words as u64),
            end_phys: forward(head_phys, words, cap),
        }
    }

    /// Drops every record and realigns `head_phys` with `head`: the repair
    /// after a broken writer contract left the ring inconsistent (a record
    /// length that cannot be), also run once after each clear (where it
    /// finds nothing to drop and nothing to realign when the contract
    /// holds). Returns the writer's head and its index. Cold.
    ///
    /// Two writers at once can leave `head` behind `start` (one published
    /// a head that readers took records up to, the other a lower one after
    /// it): the writer then goes on from `start`, as positions never move
    /// back.
    #[cold]
    #[inline(never)]
    fn resync(&self, head: u64, cap: usize) -> (u64, usize) {
        self.repair.store(false, Relaxed);
        self.room.store(0, Relaxed);
        let head = head.max(self.start.load(Acquire));
        self.discard_to(head);
        self.head.publish(head);
        let head_phys = if cap == 0 { 0 } else { phys(head, cap) };
        self.head_phys.store(head_phys, Relaxed);
        (head, head_phys)
    }

    /// Moves `start` up to `to` (never back), past whatever is before it.
    fn discard_to(&self, to: u64) {
        let mut start = self.start.load(Acquire);
        while start < to {
            match self.start.compare_exchange(start, to, AcqRel, Acquire) {
                Ok(_) => break,
                Err(now) => start = now,
            }
        }
    }

    /// Writes a whole record: the claim, the header and the payload, the
    /// commit. A record that does not wrap round the ring's end (nearly
    /// all) is stored as one run of words; one that does goes word by word
    /// through a reservation.
    #[inline]
    pub(crate) fn write(&self, control: &Control, header: &Header, payload: &[u8]) -> Result<(), Dropped> {
        let Claim { mem, head, head_phys, words } = self.claim(control, payload.len())?;
        let end_phys = head_phys.wrapping_add(words);
        let Some(run) = mem.get(head_phys..end_phys) else {
            // By value: the header's address does not escape the common path,
            // which then keeps its fields in registers.
            self.write_wrapping(Claim { mem, head, head_phys, words }, *header, payload);
            return Ok(());
        };
        let (header_slots, payload_slots) = run.split_at(HEADER_WORDS);
        for (slot, word) in header_slots.iter().zip(record::encode(words, header)) {
            slot.store(word, Relaxed);
        }
        // Straight loops over the slices (an iterator chained over both
        // parts compiled to over a hundred instructions more per record).
        let (whole, rest) = payload.as_chunks::<4>();
        for (slot, word) in payload_slots.iter().zip(whole) {
            slot.store(u32::from_ne_bytes(*word), Relaxed);
        }
        if let (Some(last), Some(slot)) = (padded_last_word(rest), payload_slots.get(whole.len())) {
            slot.store(last, Relaxed);
        }
        self.publisher().commit(head.wrapping_add(words as u64), forward(head_phys, words, mem.len()));
        Ok(())
    }

    /// [`write`](Self::write) for a record that wraps round the ring's end.
    #[cold]
    fn write_wrapping(&self, claim: Claim<'_>, header: Header, payload: &[u8]) {
        let reservation = self.begin(claim, &header, payload.len());
        let mut ring = Words { mem: reservation.mem, index: reservation.payload_phys };
        let (whole, rest) = payload.as_chunks::<4>();
        whole.iter().for_each(|word| ring.put(u32::from_ne_bytes(*word)));
        padded_last_word(rest).into_iter().for_each(|word| ring.put(word));
        reservation.commit();
    }

    /// What a commit changes.
    #[inline(always)]
    fn publisher(&self) -> Publisher<'_> {
        Publisher { head: &self.head, head_phys: &self.head_phys, written: &self.written }
    }

    // ---- Readers -----------------------------------------------------

    /// R3: whether a record at `position` that was just read was not
    /// overwritten, or taken, while it was read.
    ///
    /// The Acquire fence pairs with the writer's Release fence (W2): if any
    /// word read came from a store the writer made after claiming the
    /// record, the claim happened before this load, which then sees
    /// `start` past `position`.
    #[inline(always)]
    fn still_there(&self, position: u64) -> bool {
        fence(Acquire);
        self.start.load(Relaxed) <= position
    }

    /// The header and length of the record at `position`, if its length is
    /// one a record can have and it ends by `limit`. Unvalidated: the
    /// caller checks [`still_there`](Self::still_there) afterwards.
    fn read_header(mem: &[AtomicU32], position: u64, limit: u64) -> Option<(Header, usize)> {
        let cap = mem.len();
        if cap == 0 {
            return None;
        }
        let mut ring = Words { mem, index: phys(position, cap) };
        let words = [ring.take(), ring.take(), ring.take(), ring.take()];
        let [w0, ..] = words;
        let len = record::len_of(w0);
        let fits = len >= HEADER_WORDS && len <= cap && position.saturating_add(len as u64) <= limit;
        fits.then(|| (record::decode(words), len))
    }

    /// Copies the `len` words of the record at `position` into `out`
    /// (unvalidated, as [`read_header`](Self::read_header)).
    fn copy_out(mem: &[AtomicU32], position: u64, len: usize, out: &mut Event) {
        let cap = mem.len();
        if cap == 0 {
            return;
        }
        let mut ring = Words { mem, index: phys(position, cap) };
        out.header = record::decode([ring.take(), ring.take(), ring.take(), ring.take()]);
        let payload_words = len.saturating_sub(HEADER_WORDS).min(MAX_RECORD_WORDS - HEADER_WORDS);
        out.len = payload_words * 4;
        for chunk in out.payload.as_chunks_mut::<4>().0.iter_mut().take(payload_words) {
            *chunk = ring.take().to_ne_bytes();
        }
    }

    /// The oldest record present, validated: its position, header and
    /// length; `None` when the buffer is empty.
    ///
    /// Retries while the writer overwrites the record being looked at
    /// (lock-free: each retry means the writer moved on).
    pub(crate) fn peek_oldest(&self) -> Option<(u64, Header, usize)> {
        loop {
            let start = self.start.load(Acquire);
            // R1: Acquire pairs with the commit's Release: every record
            // before `head` is wholly written, as far as this reader sees.
            let head = self.head.load();
            if start >= head {
                return None;
            }
            let read = Self::read_header(self.memory(), start, head);
            let intact = self.still_there(start);
            match read {
                Some((header, len)) if intact => return Some((start, header, len)),
                // Intact yet no valid record: only a broken writer contract
                // does that. Drop what is there rather than loop on it.
                None if intact => {
                    self.discard_to(head);
                    self.repair.store(true, Relaxed);
                }
                _ => {}
            }
        }
    }

    /// Takes the record at `position` (as [`peek_oldest`](Self::peek_oldest)
    /// found it, `len` words) into `out`, if it is still the oldest; `false`
    /// if it was overwritten or taken by another reader meanwhile.
    pub(crate) fn consume_at(&self, position: u64, len: usize, out: &mut Event) -> bool {
        Self::copy_out(self.memory(), position, len, out);
        // R3 for a consuming read: the compare-and-swap is the check. After
        // the Acquire fence it fails if any word copied came from a store
        // after a claim (as `still_there`); when it succeeds, no claim of
        // this record can follow, so the copy is the record. Release: a
        // writer that sees `start` past the record (W1) sees these copies
        // done before it reuses the memory.
        fence(Acquire);
        if self.start.compare_exchange(position, position + len as u64, AcqRel, Relaxed).is_err() {
            return false;
        }
        self.read.fetch_add(1, Relaxed);
        let overrun = self.overrun.load(Relaxed);
        let lost = overrun.wrapping_sub(self.reported_overrun.swap(overrun, Relaxed));
        out.lost = if lost == 0 { Lost::None } else { Lost::Exactly(lost) };
        true
    }

    /// For an iteration at `*cursor` (a record position) that stops at
    /// `end`: the header and length of the record there, validated. Moves
    /// the cursor up to `start` (and sets `*missed`) when records under it
    /// are gone; `None` at the end.
    pub(crate) fn peek_at(&self, cursor: &mut u64, end: u64, missed: &mut bool) -> Option<(Header, usize)> {
        loop {
            if *cursor >= end {
                return None;
            }
            let start = self.start.load(Acquire);
            if *cursor < start {
                *cursor = start;
                *missed = true;
                continue;
            }
            let read = Self::read_header(self.memory(), *cursor, end);
            let intact = self.still_there(*cursor);
            match read {
                Some((header, len)) if intact => return Some((header, len)),
                None if intact => {
                    // A broken writer contract (see `peek_oldest`): give up
                    // on this CPU for this iteration.
                    *cursor = end;
                    self.repair.store(true, Relaxed);
                    return None;
                }
                // Overwritten while read: the next round moves the cursor.
                _ => {}
            }
        }
    }

    /// Copies the record at `position` (`len` words) into `out` without
    /// taking it; `false` if it was overwritten or taken meanwhile.
    pub(crate) fn copy_at(&self, position: u64, len: usize, out: &mut Event) -> bool {
        Self::copy_out(self.memory(), position, len, out);
        self.still_there(position)
    }

    /// Where an iteration starts and stops: (`start`, `head`) now.
    pub(crate) fn span(&self) -> (u64, u64) {
        let start = self.start.load(Acquire);
        (start, self.head.load())
    }

    // ---- Control -----------------------------------------------------

    /// Drops every record, zeroes the counters and has the writer check its
    /// ring's alignment at its next write. See
    /// [`TraceBuffer::clear`](crate::TraceBuffer::clear) for what the caller
    /// guarantees.
    pub(crate) fn clear(&self) {
        self.discard_to(self.head.load());
        self.repair.store(true, Relaxed);
        for counter in [&self.written, &self.overrun, &self.dropped, &self.read, &self.reported_overrun] {
            counter.store(0, Relaxed);
        }
    }

    /// Installs `new` as this buffer's memory, keeps the newest records that
    /// fit (the older ones count as overrun, as records a writer
    /// overwrote), and gives back the memory it replaces.
    ///
    /// # Safety
    ///
    /// Nothing else accesses this buffer while this runs: no write or
    /// reservation in progress, no read call in progress.
    unsafe fn install(&self, new: &'m mut [u32]) -> &'m mut [u32] {
        let head = self.head.load();
        let mut start = self.start.load(Relaxed);
        let ncap = new.len();
        let mut gone = 0usize;
        {
            let old = self.memory();
            while head.saturating_sub(start) > ncap as u64 {
                match Self::read_header(old, start, head) {
                    Some((_, len)) => {
                        start += len as u64;
                        gone += 1;
                    }
                    None => start = head,
                }
            }
            // Words to move imply `ncap > 0` (`head - start <= ncap`) and
            // a non-empty `old` (it held them); the test says so to the
            // compiler, which then leaves out the division-by-zero panic.
            if start < head && ncap > 0 && !old.is_empty() {
                let mut from = Words { mem: old, index: phys(start, old.len()) };
                let mut to = phys(start, ncap);
                for _ in start..head {
                    if let Some(slot) = new.get_mut(to) {
                        *slot = from.take();
                    }
                    to = forward(to, 1, ncap);
                }
            }
        }
        self.start.store(start, Relaxed);
        // The writer's room was counted in the old capacity.
        self.room.store(0, Relaxed);
        self.head_phys.store(if ncap == 0 { 0 } else { phys(head, ncap) }, Relaxed);
        self.overrun.store(self.overrun.load(Relaxed).wrapping_add(gone), Relaxed);
        let old_cap = self.cap.swap(ncap, Relaxed);
        let old_mem = self.mem.swap(new.as_mut_ptr().cast::<AtomicU32>(), Relaxed);
        // SAFETY: (`old_mem`, `old_cap`) is the initial dangling empty slice
        // or the `&'m mut [u32]` installed before, which this buffer held
        // exclusively since; nothing uses it any more (the view above is
        // gone, and the caller guarantees no other access), so it can be
        // handed back as the unique borrow it was.
        unsafe { core::slice::from_raw_parts_mut(old_mem.cast::<u32>(), old_cap) }
    }

    /// Safe memory installation: `&mut self` excludes every other access.
    pub(crate) fn set_memory(&mut self, new: &'m mut [u32]) -> &'m mut [u32] {
        // SAFETY: `&mut self`: no write, reservation or read holds a borrow
        // of this buffer.
        unsafe { self.install(new) }
    }

    /// [`set_memory`](Self::set_memory) through a shared reference.
    ///
    /// # Safety
    ///
    /// As [`install`](Self::install).
    pub(crate) unsafe fn replace_memory(&self, new: &'m mut [u32]) -> &'m mut [u32] {
        // SAFETY: the caller's guarantee is `install`'s.
        unsafe { self.install(new) }
    }

    /// The counters as Linux's `per_cpu/cpuN/stats` has them.
    pub(crate) fn stats(&self, now: u64) -> CpuStats {
        // Loaded in the order that keeps `entries` from going below zero
        // while a writer and readers run: the subtrahends first.
        let read = self.read.load(Relaxed);
        let overrun = self.overrun.load(Relaxed);
        let written = self.written.load(Relaxed);
        let dropped = self.dropped.load(Relaxed);
        let entries = written.wrapping_sub(overrun).wrapping_sub(read);
        let (start, head) = self.span();
        let words = head.saturating_sub(start).min(self.cap.load(Relaxed) as u64) as usize;
        CpuStats {
            entries: if entries > isize::MAX as usize { 0 } else { entries },
            overrun,
            commit_overrun: 0,
            bytes: words.saturating_mul(4),
            oldest_ts: self.peek_oldest().map(|(_, header, _)| header.ts),
            now_ts: now,
            dropped,
            read,
            written,
        }
    }
}

/// The last word of a payload whose length is not a multiple of four: its
/// `rest` bytes, padded with zeros (none when `rest` is empty).
#[inline(always)]
fn padded_last_word(rest: &[u8]) -> Option<u32> {
    (!rest.is_empty()).then(|| {
        let mut bytes = [0u8; 4];
        bytes.iter_mut().zip(rest).for_each(|(to, from)| *to = *from);
        u32::from_ne_bytes(bytes)
    })
}

/// Room the writer claimed for a record (see `CpuBuffer::claim`).
struct Claim<'a> {
    mem: &'a [AtomicU32],
    /// The record's position and its word's index in `mem`.
    head: u64,
    head_phys: usize,
    /// Its length in words, header included.
    words: usize,
}

/// The records from `start` on that lie in the way of a record ending at
/// `target - cap`, as the writer finds them (`head - start` words behind
/// `head_phys`): where the last of them ends, and how many they are.
/// `None` if what is there cannot be a record (a broken contract). For
/// `start + cap < target <= head + cap`.
#[inline(always)]
fn records_in_the_way(mem: &[AtomicU32], head: u64, head_phys: usize, start: u64, target: u64) -> Option<(u64, usize)> {
    let cap = mem.len();
    let mut behind = head.checked_sub(start).filter(|&behind| behind <= cap as u64)? as usize;
    // Words to free: `start + cap < target <= head + cap`, so fewer than
    // `behind` (the walk stops before `head`), in word arithmetic.
    let need = target.wrapping_sub(start).wrapping_sub(cap as u64) as usize;
    let mut index = back(head_phys, behind, cap);
    let (mut freed, mut count) = (0usize, 0usize);
    while freed < need {
        let len = record::len_of(mem.get(index)?.load(Relaxed));
        if len < HEADER_WORDS || len > behind {
            return None;
        }
        // No overflow: `freed + len <= head - start <= cap`, and fewer
        // records than words fit in the ring.
        freed = freed.wrapping_add(len);
        behind = behind.wrapping_sub(len);
        count = count.wrapping_add(1);
        index = forward(index, len, cap);
    }
    Some((start.wrapping_add(freed as u64), count))
}

/// A record being written in place: room for its payload, reserved and
/// claimed from older records, with the header already written.
///
/// Readers see nothing of it until [`commit`](Self::commit); dropping it
/// without committing discards it (the room it claimed stays free). Fill it
/// with the `put_*` methods, which take byte offsets into the payload; the
/// payload bytes that are never put hold whatever the memory held (the
/// padding after a payload length that is not a multiple of four reads
/// back as zeros).
///
/// It borrows the CPU's buffer: the writer contract (one writer per CPU,
/// no re-entry) covers everything from the reservation to its commit.
#[must_use = "a reservation that is not committed is discarded"]
pub struct Reservation<'a> {
    publisher: Publisher<'a>,
    mem: &'a [AtomicU32],
    payload_phys: usize,
    payload_len: usize,
    end: u64,
    end_phys: usize,
}

impl Reservation<'_> {
    /// The payload length the reservation was made with, in bytes.
    pub fn payload_len(&self) -> usize {
        self.payload_len
    }

    /// Puts `bytes` at byte `offset` of the payload.
    #[inline]
    pub fn put_bytes(&mut self, offset: usize, bytes: &[u8]) -> Result<(), OutOfBounds> {
        let end = offset.checked_add(bytes.len()).ok_or(OutOfBounds)?;
        if end > self.payload_len {
            return Err(OutOfBounds);
        }
        let cap = self.mem.len();
        let mut at = offset;
        let mut rest = bytes;
        while !rest.is_empty() {
            let within = at % 4;
            let take = (4 - within).min(rest.len());
            let (Some(now), Some(later)) = (rest.get(..take), rest.get(take..)) else {
                return Err(OutOfBounds);
            };
            // `at / 4` is below the payload's word count, itself below `cap`.
            let slot = self.mem.get(forward(self.payload_phys, at / 4, cap)).ok_or(OutOfBounds)?;
            let mut word = if take == 4 { [0; 4] } else { slot.load(Relaxed).to_ne_bytes() };
            word.iter_mut().skip(within).zip(now).for_each(|(to, from)| *to = *from);
            slot.store(u32::from_ne_bytes(word), Relaxed);
            // `at + take <= end`, checked above: no overflow.
            at = at.wrapping_add(take);
            rest = later;
        }
        Ok(())
    }

    /// Puts a byte at byte `offset` of the payload.
    #[inline]
    pub fn put_u8(&mut self, offset: usize, value: u8) -> Result<(), OutOfBounds> {
        self.put_bytes(offset, &[value])
    }

    /// Puts a `u16` (native byte order) at byte `offset` of the payload.
    #[inline]
    pub fn put_u16(&mut self, offset: usize, value: u16) -> Result<(), OutOfBounds> {
        self.put_bytes(offset, &value.to_ne_bytes())
    }

    /// Puts a `u32` (native byte order) at byte `offset` of the payload; one
    /// store when `offset` is a multiple of four.
    #[inline]
    pub fn put_u32(&mut self, offset: usize, value: u32) -> Result<(), OutOfBounds> {
        if offset % 4 == 0 && offset < self.payload_len && self.payload_len - offset >= 4 {
            // The word `offset / 4` of the payload: fewer words than the
            // ring has, so `forward` applies.
            let index = forward(self.payload_phys, offset / 4, self.mem.len());
            if let Some(slot) = self.mem.get(index) {
                slot.store(value, Relaxed);
                return Ok(());
            }
        }
        self.put_bytes(offset, &value.to_ne_bytes())
    }

    /// Puts a `u64` (native byte order) at byte `offset` of the payload.
    #[inline]
    pub fn put_u64(&mut self, offset: usize, value: u64) -> Result<(), OutOfBounds> {
        self.put_bytes(offset, &value.to_ne_bytes())
    }

    /// Publishes the record: readers see it from now on.
    #[inline]
    pub fn commit(self) {
        self.publisher.commit(self.end, self.end_phys);
    }
}

/// A position one writer advances and readers load: `head`.
///
/// Kept as two 32-bit halves so that the writer publishes a new position
/// with one 32-bit Release store of the low half (a `u64` atomic is a
/// `lock cmpxchg8b` loop on i686). The high half is stored doubled, and odd
/// while the writer carries into it (once every 2^32 words): a reader that
/// loads the high half twice, equal and even around its load of the low
/// half, has a value the writer published; otherwise it loads again. Only
/// a reader that meets the writer inside a carry, three stores long,
/// retries. Positions stay below 2^63, so the doubled half never overflows.
struct Position {
    low: AtomicU32,
    high: AtomicU32,
}

impl Position {
    const fn new() -> Position {
        Position { low: AtomicU32::new(0), high: AtomicU32::new(0) }
    }

    /// The position, for its writer (which alone stores it): its own last
    /// value, no ordering needed.
    #[inline(always)]
    fn own(&self) -> u64 {
        u64::from(self.high.load(Relaxed) / 2) << 32 | u64::from(self.low.load(Relaxed))
    }

    /// Publishes `value` with Release (the writer only).
    #[inline(always)]
    fn publish(&self, value: u64) {
        let high = ((value >> 32) as u32).wrapping_mul(2);
        if self.high.load(Relaxed) == high {
            self.low.store(value as u32, Release);
        } else {
            self.carry(high, value as u32);
        }
    }

    /// [`publish`](Self::publish) of a value whose high half differs.
    #[cold]
    #[inline(never)]
    fn carry(&self, high: u32, low: u32) {
        // Odd first: a reader that loads the new low half then finds the
        // high half changed (the Release store of `low` orders this one
        // before it), and retries.
        self.high.store(high | 1, Relaxed);
        self.low.store(low, Release);
        // Release: a reader that loads this even half loads the new low.
        self.high.store(high, Release);
    }

    /// The position as last published, with Acquire: what the writer wrote
    /// before publishing it is visible.
    #[inline]
    fn load(&self) -> u64 {
        loop {
            let high = self.high.load(Acquire);
            // Acquire: pairs with the writer's Release store of the low
            // half, and keeps the second load of the high half after it.
            let low = self.low.load(Acquire);
            if high % 2 == 0 && self.high.load(Relaxed) == high {
                return u64::from(high / 2) << 32 | u64::from(low);
            }
            core::hint::spin_loop();
        }
    }
}

/// The writer's counters and positions a commit changes.
struct Publisher<'a> {
    head: &'a Position,
    head_phys: &'a AtomicUsize,
    written: &'a AtomicUsize,
}

impl Publisher<'_> {
    /// W3 (see `CpuBuffer::commit`).
    #[inline(always)]
    fn commit(&self, end: u64, end_phys: usize) {
        bump(self.written);
        self.head_phys.store(end_phys, Relaxed);
        // Release publishes the record's words (and the claims before them)
        // to readers that load `head` with Acquire (R1).
        self.head.publish(end);
    }
}

/// One CPU's statistics, the fields of Linux's `per_cpu/cpuN/stats`.
///
/// Each counter is exact when no writer or reader runs; while they run,
/// the fields are read one after another and may disagree by the records
/// written or read meanwhile.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuStats {
    /// Records in the buffer now (not overwritten, not consumed).
    pub entries: usize,
    /// Records overwritten before being read (overwrite mode), and records
    /// a shrinking memory replacement did not keep.
    pub overrun: usize,
    /// Always 0. Linux counts records lost when writers nested on one CPU
    /// (an interrupt tracing inside a trace write) wrap the buffer onto a
    /// record still being committed; here writers never nest on a CPU (the
    /// writer contract) and a reservation claims its room before it is
    /// filled, so no write can run into an uncommitted record.
    pub commit_overrun: usize,
    /// Bytes of the records in the buffer now, headers included.
    pub bytes: usize,
    /// The timestamp of the oldest record in the buffer, if any.
    pub oldest_ts: Option<u64>,
    /// The caller's clock when the statistics were taken (passed in: the
    /// buffer has no clock of its own).
    pub now_ts: u64,
    /// Records refused because the buffer was full in stop-when-full mode.
    pub dropped: usize,
    /// Records taken out by consuming reads.
    pub read: usize,
    /// Records committed (since the last clear).
    pub written: usize,
}

#[cfg(test)]
mod tests {
    use super::Position;
    use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::thread;

    /// The `n`th value the writer publishes in
    /// `position_loads_only_published_values`: growing with `n`, a carry
    /// into the high half every fourth value.
    fn published(n: u64) -> u64 {
        (n / 4) << 32 | ((n % 4) * 0x4000_0000 + n % 7)
    }

    #[test]
    fn position_round_trips_across_carries() {
        let position = Position::new();
        for value in [0, 1, u32::MAX as u64, 1 << 32, (1 << 32) + 5, 0x7fff_ffff_ffff_fff0] {
            position.publish(value);
            assert_eq!((position.own(), position.load()), (value, value));
        }
    }

    /// A reader racing the writer through carries only ever loads a value
    /// the writer published, and never one older than it loaded before.
    /// The writer goes on until it has published `VALUES` and the readers
    /// have loaded `LOADS` times meanwhile (on a busy machine a reader may
    /// start only after a fixed number of values was all published).
    #[test]
    fn position_loads_only_published_values() {
        const VALUES: u64 = 2_000_000;
        const LOADS: u64 = 200_000;
        let position = Position::new();
        let done = AtomicBool::new(false);
        let loads = AtomicU64::new(0);
        let mut last = 0;
        thread::scope(|scope| {
            let (position, done, loads) = (&position, &done, &loads);
            let readers: std::vec::Vec<_> = (0..2)
                .map(|_| {
                    scope.spawn(move || {
                        let mut last = 0;
                        while !done.load(Ordering::Acquire) {
                            let value = position.load();
                            let n = (value >> 32) * 4 + (value as u32 / 0x4000_0000) as u64;
                            assert_eq!(value, published(n), "a value never published: {value:#x}");
                            assert!(value >= last, "moved back: {last:#x} then {value:#x}");
                            last = value;
                            loads.fetch_add(1, Ordering::Relaxed);
                        }
                    })
                })
                .collect();
            let mut n = 0;
            // (A reader that stopped early failed: the scope reports it.)
            while (n < VALUES || loads.load(Ordering::Relaxed) < LOADS) && !readers.iter().any(|r| r.is_finished()) {
                n += 1;
                position.publish(published(n));
            }
            last = n;
            done.store(true, Ordering::Release);
        });
        assert_eq!(position.load(), published(last));
    }
}
