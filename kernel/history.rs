//! The console's line history: the last [`HISTORY_LINES`] lines entered,
//! recalled with the up and down keys as bash recalls them.
//!
//! A fixed ring of fixed-size lines (no allocation: the line editor that
//! browses it runs with a shell's stack and nothing else). Up shows the
//! previous line, down the next; the first up keeps the line being typed
//! (the draft), and down past the newest line gives it back. A recalled
//! line is edited like any other and, once entered, becomes the newest
//! line; the line it was recalled from stays as it was. An empty line, or
//! one equal to the newest, is not added (bash with `ignoredups`).
use crate::console::LINE_MAX;

/// Lines the history keeps; older ones are forgotten.
pub const HISTORY_LINES: usize = 32;

/// The history ring and where browsing is in it.
pub struct History {
    lines: [[u8; LINE_MAX]; HISTORY_LINES],
    lengths: [u8; HISTORY_LINES],
    /// The slot the next line goes into.
    next: usize,
    /// Lines held (at most `HISTORY_LINES`).
    count: usize,
    /// 0: showing the draft; `n`: showing the `n`-th newest line.
    browsing: usize,
    draft: [u8; LINE_MAX],
    draft_length: usize,
}

const _: () = assert!(LINE_MAX <= u8::MAX as usize, "line lengths are kept in a byte");

impl Default for History {
    fn default() -> Self {
        Self::new()
    }
}

impl History {
    /// An empty history.
    pub const fn new() -> Self {
        History {
            lines: [[0; LINE_MAX]; HISTORY_LINES],
            lengths: [0; HISTORY_LINES],
            next: 0,
            count: 0,
            browsing: 0,
            draft: [0; LINE_MAX],
            draft_length: 0,
        }
    }

    /// Lines held.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether no line has been added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The `back`-th newest line (0: the newest), if held.
    pub fn get(&self, back: usize) -> Option<&[u8]> {
        if back >= self.count {
            return None;
        }
        let slot = (self.next + HISTORY_LINES - 1 - back) % HISTORY_LINES;
        Some(&self.lines[slot][..usize::from(self.lengths[slot])])
    }

    /// Adds an entered line (cut to [`LINE_MAX`] bytes) as the newest,
    /// unless it is empty or equal to the newest; browsing starts over.
    pub fn push(&mut self, line: &[u8]) {
        self.browsing = 0;
        let line = &line[..line.len().min(LINE_MAX)];
        if line.is_empty() || self.get(0) == Some(line) {
            return;
        }
        self.lines[self.next][..line.len()].copy_from_slice(line);
        self.lengths[self.next] = line.len() as u8;
        self.next = (self.next + 1) % HISTORY_LINES;
        self.count = (self.count + 1).min(HISTORY_LINES);
    }

    /// Up: the line before the one shown, or `None` at the oldest. The
    /// first step back keeps `current` (the line being typed) as the draft.
    pub fn older(&mut self, current: &[u8]) -> Option<&[u8]> {
        if self.browsing == self.count {
            return None;
        }
        if self.browsing == 0 {
            let current = &current[..current.len().min(LINE_MAX)];
            self.draft[..current.len()].copy_from_slice(current);
            self.draft_length = current.len();
        }
        self.browsing += 1;
        self.get(self.browsing - 1)
    }

    /// Down: the line after the one shown, the draft after the newest, or
    /// `None` when the draft is shown already.
    pub fn newer(&mut self) -> Option<&[u8]> {
        match self.browsing {
            0 => None,
            1 => {
                self.browsing = 0;
                Some(&self.draft[..self.draft_length])
            }
            _ => {
                self.browsing -= 1;
                self.get(self.browsing - 1)
            }
        }
    }

    /// Stops browsing: the next up starts from the newest line again.
    pub fn restart(&mut self) {
        self.browsing = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test_case]
    fn up_and_down_walk_the_lines_and_give_back_the_draft() {
        let mut history = History::new();
        assert_eq!(history.older(b"typed"), None);
        assert_eq!(history.newer(), None);
        history.push(b"one");
        history.push(b"two");
        history.push(b"");
        history.push(b"two");
        assert_eq!(history.len(), 2);
        assert_eq!(history.older(b"dra"), Some(&b"two"[..]));
        assert_eq!(history.older(b"ignored"), Some(&b"one"[..]));
        assert_eq!(history.older(b"ignored"), None);
        assert_eq!(history.newer(), Some(&b"two"[..]));
        assert_eq!(history.newer(), Some(&b"dra"[..]));
        assert_eq!(history.newer(), None);
        // Entering a line starts browsing over, from the newest.
        history.older(b"");
        history.push(b"three");
        assert_eq!(history.older(b""), Some(&b"three"[..]));
        history.restart();
        assert_eq!(history.older(b"x"), Some(&b"three"[..]));
    }

    #[test_case]
    fn the_ring_keeps_the_newest_lines() {
        let mut history = History::new();
        for number in 0..HISTORY_LINES + 5 {
            history.push(alloc::format!("line {number}").as_bytes());
        }
        assert_eq!(history.len(), HISTORY_LINES);
        assert_eq!(history.get(0), Some(&b"line 36"[..]));
        assert_eq!(history.get(HISTORY_LINES - 1), Some(&b"line 5"[..]));
        assert_eq!(history.get(HISTORY_LINES), None);
        let mut oldest = None;
        while let Some(line) = history.older(b"") {
            oldest = Some(alloc::vec::Vec::from(line));
        }
        assert_eq!(oldest.as_deref(), Some(&b"line 5"[..]));
        // A line longer than LINE_MAX is kept cut.
        history.push(&[b'x'; LINE_MAX + 10]);
        assert_eq!(history.get(0).map(<[u8]>::len), Some(LINE_MAX));
    }
}
