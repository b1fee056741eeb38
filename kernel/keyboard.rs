//! PC keyboard scancodes to the bytes a terminal would send for the same
//! keys, so one line editor serves the serial console and the keyboard.
//!
//! The PS/2 controller delivers scancode set 1 (it translates the
//! keyboard's set 2, as every PC BIOS leaves it); the `pc-keyboard` crate
//! decodes it, with the US layout and its modifier state (shift, caps
//! lock, ctrl). What a decoded key becomes:
//!
//! | key | bytes |
//! | --- | --- |
//! | printable character | itself |
//! | Enter | `\r` |
//! | Backspace | `0x7f` (DEL, what terminals send) |
//! | Tab | `\t` |
//! | Ctrl+C | `0x03` |
//! | arrows | `ESC [ A`/`B`/`C`/`D` (up, down, right, left) |
//! | Home, End | `ESC [ H`, `ESC [ F` |
//! | Insert, Delete, Page Up, Page Down | `ESC [ 2 ~`, `3 ~`, `5 ~`, `6 ~` |
//!
//! Every other key (Escape, function keys, other Ctrl combinations,
//! modifiers on their own) gives nothing: no key may spoil a line the
//! editor reads (Escape alone would swallow the next key as Alt+key).
//!
//! Pure: `arch::x86::ps2` reads the controller and feeds the bytes here.
use pc_keyboard::layouts::Us104Key;
use pc_keyboard::{DecodedKey, HandleControl, KeyCode, PS2Keyboard, ScancodeSet1};

/// The bytes one key press gives (at most four).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KeySequence {
    bytes: [u8; 4],
    len: u8,
}

impl KeySequence {
    /// No bytes: the key means nothing to the console.
    pub const NONE: KeySequence = KeySequence { bytes: [0; 4], len: 0 };

    const fn of(text: &[u8]) -> KeySequence {
        let mut bytes = [0; 4];
        let mut index = 0;
        while index < text.len() {
            bytes[index] = text[index];
            index += 1;
        }
        KeySequence { bytes, len: text.len() as u8 }
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl core::fmt::Debug for KeySequence {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        write!(f, "{:?}", self.as_bytes())
    }
}

/// What a decoded key sends (see the module's table).
pub fn sequence_for(key: DecodedKey) -> KeySequence {
    match key {
        // The layout gives Backspace as BS, Delete (and the keypad's, with
        // Num Lock off) as DEL, Enter as LF: terminals send DEL, ESC [ 3 ~, CR.
        DecodedKey::Unicode('\u{8}') => KeySequence::of(b"\x7f"),
        DecodedKey::Unicode('\u{7f}') => KeySequence::of(b"\x1b[3~"),
        DecodedKey::Unicode('\n') => KeySequence::of(b"\r"),
        DecodedKey::Unicode('\t') => KeySequence::of(b"\t"),
        DecodedKey::Unicode('\u{3}') => KeySequence::of(b"\x03"),
        DecodedKey::Unicode(c @ ' '..='~') => KeySequence::of(&[c as u8]),
        DecodedKey::Unicode(_) => KeySequence::NONE,
        DecodedKey::RawKey(code) => match code {
            KeyCode::ArrowUp => KeySequence::of(b"\x1b[A"),
            KeyCode::ArrowDown => KeySequence::of(b"\x1b[B"),
            KeyCode::ArrowRight => KeySequence::of(b"\x1b[C"),
            KeyCode::ArrowLeft => KeySequence::of(b"\x1b[D"),
            KeyCode::Home => KeySequence::of(b"\x1b[H"),
            KeyCode::End => KeySequence::of(b"\x1b[F"),
            KeyCode::Insert => KeySequence::of(b"\x1b[2~"),
            KeyCode::Delete => KeySequence::of(b"\x1b[3~"),
            KeyCode::PageUp => KeySequence::of(b"\x1b[5~"),
            KeyCode::PageDown => KeySequence::of(b"\x1b[6~"),
            _ => KeySequence::NONE,
        },
    }
}

/// Scancode set 1 bytes in, key sequences out; keeps the modifier state.
pub struct KeyDecoder {
    keyboard: PS2Keyboard<Us104Key, ScancodeSet1>,
}

impl Default for KeyDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl KeyDecoder {
    /// No key down, Num Lock on (the keypad types digits).
    pub const fn new() -> Self {
        KeyDecoder { keyboard: PS2Keyboard::new(ScancodeSet1::new(), Us104Key, HandleControl::MapLettersToUnicode) }
    }

    /// Feeds one byte from the controller; a key press that completes
    /// gives its sequence (releases, prefixes and unknown codes give none).
    pub fn feed(&mut self, scancode: u8) -> KeySequence {
        let Ok(Some(event)) = self.keyboard.add_byte(scancode) else { return KeySequence::NONE };
        self.keyboard.process_keyevent(event).map_or(KeySequence::NONE, sequence_for)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every sequence `scancodes` give, concatenated.
    fn typed(scancodes: &[u8]) -> alloc::vec::Vec<u8> {
        let mut decoder = KeyDecoder::new();
        scancodes.iter().flat_map(|&code| decoder.feed(code).as_bytes().to_vec()).collect()
    }

    #[test_case]
    fn letters_digits_shift_and_caps_lock() {
        // a, release, B with left shift, 1, ! (shift+1), space.
        assert_eq!(typed(&[0x1e, 0x9e, 0x2a, 0x30, 0xb0, 0xaa, 0x02, 0x82, 0x36, 0x02, 0xb6, 0x39]), b"aB1! ");
        // Caps lock on: q types Q; off again: q.
        assert_eq!(typed(&[0x3a, 0xba, 0x10, 0x90, 0x3a, 0xba, 0x10]), b"Qq");
        // Punctuation the console uses: ' / > : + $ _ - .
        assert_eq!(typed(&[0x28, 0x35, 0x2a, 0x34, 0x27, 0x0d, 0x05, 0x0c, 0xaa, 0x0c, 0x34]), b"'/>:+$_-.");
    }

    #[test_case]
    fn editing_keys_become_terminal_sequences() {
        assert_eq!(typed(&[0x1c]), b"\r"); // Enter
        assert_eq!(typed(&[0x0e]), b"\x7f"); // Backspace
        assert_eq!(typed(&[0x0f]), b"\t"); // Tab
        assert_eq!(typed(&[0xe0, 0x48, 0xe0, 0xc8]), b"\x1b[A"); // up, released
        assert_eq!(typed(&[0xe0, 0x50]), b"\x1b[B"); // down
        assert_eq!(typed(&[0xe0, 0x4d]), b"\x1b[C"); // right
        assert_eq!(typed(&[0xe0, 0x4b]), b"\x1b[D"); // left
        assert_eq!(typed(&[0xe0, 0x47, 0xe0, 0x4f]), b"\x1b[H\x1b[F"); // home, end
        assert_eq!(typed(&[0xe0, 0x53]), b"\x1b[3~"); // delete
        assert_eq!(typed(&[0xe0, 0x49, 0xe0, 0x51, 0xe0, 0x52]), b"\x1b[5~\x1b[6~\x1b[2~");
        // Ctrl+C (left ctrl down, c, ctrl up), then c alone.
        assert_eq!(typed(&[0x1d, 0x2e, 0xae, 0x9d, 0x2e]), b"\x03c");
        // The keypad types digits (Num Lock is on), Enter on it is Enter.
        assert_eq!(typed(&[0x48, 0x4b, 0xe0, 0x1c]), b"84\r");
    }

    #[test_case]
    fn keys_without_meaning_here_give_nothing() {
        // Escape, F1, Ctrl+A, shift alone, Alt alone, an unknown code.
        assert_eq!(typed(&[0x01, 0x3b, 0x1d, 0x1e, 0x9d, 0x2a, 0xaa, 0x38, 0xb8, 0x7f]), b"");
        // An unknown code leaves the decoder working.
        assert_eq!(typed(&[0x7f, 0x1e]), b"a");
        assert_eq!(sequence_for(DecodedKey::Unicode('é')), KeySequence::NONE);
    }
}
