//! What a record is: its header fields, its layout in the ring, and the
//! [`Event`] a reader copies it into.
//!
//! # Layout
//!
//! A record is a whole number of 32-bit words, at least the four words of
//! the header and at most [`MAX_RECORD_WORDS`]:
//!
//! | word | bits   | field                                                  |
//! | ---- | ------ | ------------------------------------------------------ |
//! | 0    | 0..8   | the record's length in words, header included (4..=255) |
//! | 0    | 8..16  | [`Header::flags`]                                      |
//! | 0    | 16..32 | [`Header::type_id`]                                    |
//! | 1    | 0..32  | [`Header::pid`]                                        |
//! | 2    | 0..32  | [`Header::ts`], low half                               |
//! | 3    | 0..32  | [`Header::ts`], high half                              |
//! | 4..  |        | the payload, in native byte order, zero-padded to a word |
//!
//! The CPU is not stored: it is the buffer the record is in. The length is
//! kept in words, not bytes, as Linux's ring buffer does: a payload comes
//! back rounded up to a multiple of four bytes, and an event format that
//! has a variable-length part (a string) says its length inside the
//! payload. Sixteen bytes hold a full 64-bit timestamp, a 32-bit pid, a
//! 16-bit type and the flags byte, which leaves eight bits for the length;
//! hence [`MAX_PAYLOAD`] is 1004 bytes.

/// The header's size in 32-bit words.
pub const HEADER_WORDS: usize = 4;

/// The header's size in bytes.
pub const HEADER_BYTES: usize = HEADER_WORDS * 4;

/// The largest record, header included, in words (the length field is a byte).
pub const MAX_RECORD_WORDS: usize = 255;

/// The largest payload, in bytes: what a record has beyond its header.
pub const MAX_PAYLOAD: usize = (MAX_RECORD_WORDS - HEADER_WORDS) * 4;

/// The fields of a record other than its payload and CPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// When the event happened, in the caller's clock (monotonic on each
    /// CPU); readers merge the CPUs' records by it.
    pub ts: u64,
    /// The event's type: which format decodes the payload.
    pub type_id: u16,
    /// The context the event happened in, opaque here (the tracer prints
    /// Linux's irqs-off, need-resched, hardirq/softirq letters from it).
    pub flags: u8,
    /// The task the event happened in.
    pub pid: u32,
}

/// Word 0 of a record: length, flags and type.
#[inline(always)]
pub(crate) const fn word0(len_words: usize, header: &Header) -> u32 {
    (len_words as u32 & 0xff) | (header.flags as u32) << 8 | (header.type_id as u32) << 16
}

/// The length in words that word 0 of a record gives.
#[inline(always)]
pub(crate) const fn len_of(word0: u32) -> usize {
    (word0 & 0xff) as usize
}

/// The four header words of a record of `len_words` words with `header`.
#[inline(always)]
pub(crate) const fn encode(len_words: usize, header: &Header) -> [u32; HEADER_WORDS] {
    [word0(len_words, header), header.pid, header.ts as u32, (header.ts >> 32) as u32]
}

/// The header that a record's four header words hold.
#[inline(always)]
pub(crate) const fn decode(words: [u32; HEADER_WORDS]) -> Header {
    let [w0, pid, ts_lo, ts_hi] = words;
    Header { ts: (ts_hi as u64) << 32 | ts_lo as u64, type_id: (w0 >> 16) as u16, flags: (w0 >> 8) as u8, pid }
}

/// The words of a record of `payload_len` bytes, header included.
#[inline(always)]
pub(crate) const fn record_words(payload_len: usize) -> usize {
    HEADER_WORDS + payload_len.div_ceil(4)
}

/// A record copied out of a buffer by a reader: its CPU, header, payload,
/// and what was lost on its CPU before it.
///
/// It holds the largest payload inline (about 1 KiB) so that reading needs
/// no allocation: make one and have every read fill it again.
#[derive(Clone)]
pub struct Event {
    pub(crate) cpu: usize,
    pub(crate) header: Header,
    pub(crate) lost: Lost,
    /// Payload bytes in use: a multiple of four, at most [`MAX_PAYLOAD`].
    pub(crate) len: usize,
    pub(crate) payload: [u8; MAX_PAYLOAD],
}

impl Event {
    /// An empty event, for readers to fill.
    pub const fn new() -> Event {
        Event {
            cpu: 0,
            header: Header { ts: 0, type_id: 0, flags: 0, pid: 0 },
            lost: Lost::None,
            len: 0,
            payload: [0; MAX_PAYLOAD],
        }
    }

    /// The CPU whose buffer the record came from.
    pub fn cpu(&self) -> usize {
        self.cpu
    }

    /// The record's header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The record's timestamp ([`Header::ts`]).
    pub fn ts(&self) -> u64 {
        self.header.ts
    }

    /// The payload, rounded up to whole words (the bytes past what the
    /// writer gave are zero when it used `write`; see
    /// [`Reservation`](crate::Reservation) for in-place filling).
    pub fn payload(&self) -> &[u8] {
        self.payload.get(..self.len).unwrap_or(&[])
    }

    /// Records of this CPU that the reader will never see and that were
    /// there before this one (overwritten by the writer, or consumed by
    /// another reader while an iteration ran).
    pub fn lost_before(&self) -> Lost {
        self.lost
    }
}

/// What a reader knows of the records of a CPU that it will never see,
/// reported with the next record it returns from that CPU (as Linux's
/// `[LOST N EVENTS]` lines).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Lost {
    /// None: this record follows the previous one read from its CPU.
    #[default]
    None,
    /// A consuming read: this many records were overwritten on this CPU
    /// since the previous consuming read from it.
    Exactly(usize),
    /// An iteration: records between the previous one it returned from this
    /// CPU and this one were overwritten (or consumed) while it ran; how
    /// many is not known.
    Unknown,
}

impl Default for Event {
    fn default() -> Self {
        Event::new()
    }
}

impl core::fmt::Debug for Event {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Event")
            .field("cpu", &self.cpu)
            .field("header", &self.header)
            .field("lost", &self.lost)
            .field("payload", &self.payload())
            .finish()
    }
}
