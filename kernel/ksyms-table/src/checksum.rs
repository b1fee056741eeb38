//! Adler-32, the checksum over a table's body.
//!
//! Cheap enough to verify at every boot, and any single changed byte changes
//! it (a byte adds at most 255 to a sum kept modulo 65521), which is the
//! corruption a table in a file or in memory is likely to suffer.

/// Adler-32 of `data`, as zlib (and Python's `zlib.adler32`) computes it.
pub fn adler32(data: &[u8]) -> u32 {
    const MOD: u32 = 65521;
    let (mut a, mut b) = (1u32, 0u32);
    // 5552 bytes is the most that cannot overflow `b` before reducing.
    for chunk in data.chunks(5552) {
        for &byte in chunk {
            a += u32::from(byte);
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

#[cfg(test)]
mod tests {
    use super::adler32;

    #[test]
    fn known_values() {
        assert_eq!(adler32(b""), 1);
        assert_eq!(adler32(b"Wikipedia"), 0x11e6_0398);
        // Long enough to need the reductions.
        let ones = [0xffu8; 20_000];
        assert_eq!(adler32(&ones), adler32_slow(&ones));
    }

    fn adler32_slow(data: &[u8]) -> u32 {
        let (mut a, mut b) = (1u64, 0u64);
        for &byte in data {
            a = (a + u64::from(byte)) % 65521;
            b = (b + a) % 65521;
        }
        ((b << 16) | a) as u32
    }

    #[test]
    fn matches_the_definition() {
        let data: [u8; 12_000] = core::array::from_fn(|i| (i * 7 + i / 300) as u8);
        assert_eq!(adler32(&data), adler32_slow(&data));
    }
}
