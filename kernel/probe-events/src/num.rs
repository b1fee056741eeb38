//! Number parsing with the Linux kernel's rules (`kstrto*`, `simple_strtoul`).
//!
//! Which strings a probe definition accepts as a number decides which
//! commands succeed and where an error's caret lands, so these follow the
//! kernel's conversions exactly, for a 32-bit `long`:
//!
//! - Base 0 picks the radix from the prefix: `0x`/`0X` followed by a hex
//!   digit is hexadecimal, any other leading `0` octal, else decimal. With
//!   base 16 a `0x` prefix is skipped even when no digit follows it.
//! - The strict forms (`kstrto*`) want at least one digit, allow one
//!   trailing newline and nothing else, and refuse values that overflow.
//!   The unsigned forms take a leading `+`; the signed ones a `+` or `-`.
//! - `simple_strtoul` stops at the first character that is not a digit,
//!   reports where it stopped, ignores overflow and truncates to 32 bits.

/// Why a strict conversion failed (the kernel's `-EINVAL` / `-ERANGE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NumError {
    /// No digits, or characters after them.
    Invalid,
    /// The value does not fit the destination type.
    Range,
}

/// Resolves base 0 from the prefix and skips a `0x` prefix for base 16.
/// Returns the radix and the index of the first digit.
fn fixup_radix(s: &[u8], base: u32) -> (u32, usize) {
    let at = |i: usize| s.get(i).copied().unwrap_or(0);
    let mut base = base;
    if base == 0 {
        base = if at(0) == b'0' {
            if at(1).eq_ignore_ascii_case(&b'x') && at(2).is_ascii_hexdigit() { 16 } else { 8 }
        } else {
            10
        };
    }
    if base == 16 && at(0) == b'0' && at(1).eq_ignore_ascii_case(&b'x') { (base, 2) } else { (base, 0) }
}

/// Parses digits of `base` from the start of `s`: the value (wrapped),
/// the number of digits, and whether the value overflowed 64 bits.
fn parse_digits(s: &[u8], base: u32) -> (u64, usize, bool) {
    let mut value: u64 = 0;
    let mut overflow = false;
    let mut count = 0;
    for &c in s {
        let digit = match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            b'a'..=b'f' => u32::from(c - b'a') + 10,
            b'A'..=b'F' => u32::from(c - b'A') + 10,
            _ => break,
        };
        if digit >= base {
            break;
        }
        match value.checked_mul(u64::from(base)).and_then(|v| v.checked_add(u64::from(digit))) {
            Some(v) => value = v,
            None => {
                overflow = true;
                value = value.wrapping_mul(u64::from(base)).wrapping_add(u64::from(digit));
            }
        }
        count += 1;
    }
    (value, count, overflow)
}

/// The kernel's `_kstrtoull`: digits only (after the radix prefix), one
/// optional trailing newline.
fn strict_u64(s: &[u8], base: u32) -> Result<u64, NumError> {
    let (base, start) = fixup_radix(s, base);
    let rest = &s[start.min(s.len())..];
    let (value, count, overflow) = parse_digits(rest, base);
    if overflow {
        return Err(NumError::Range);
    }
    if count == 0 {
        return Err(NumError::Invalid);
    }
    match &rest[count..] {
        [] | [b'\n'] => Ok(value),
        _ => Err(NumError::Invalid),
    }
}

/// `kstrtoull`: like [`strict_u64`] with an optional leading `+`.
pub(crate) fn kstrtoull(s: &[u8], base: u32) -> Result<u64, NumError> {
    match s {
        [b'+', rest @ ..] => strict_u64(rest, base),
        _ => strict_u64(s, base),
    }
}

/// `kstrtoll`: a leading `-` negates; the result must fit an `i64`.
pub(crate) fn kstrtoll(s: &[u8], base: u32) -> Result<i64, NumError> {
    match s {
        [b'-', rest @ ..] => {
            let magnitude = strict_u64(rest, base)?;
            let value = (magnitude as i64).wrapping_neg();
            if value > 0 { Err(NumError::Range) } else { Ok(value) }
        }
        _ => {
            let value = kstrtoull(s, base)?;
            i64::try_from(value).map_err(|_| NumError::Range)
        }
    }
}

/// `kstrtoul` for a 32-bit `unsigned long`.
pub(crate) fn kstrtoul(s: &[u8], base: u32) -> Result<u32, NumError> {
    u32::try_from(kstrtoull(s, base)?).map_err(|_| NumError::Range)
}

/// `kstrtouint`.
pub(crate) fn kstrtouint(s: &[u8], base: u32) -> Result<u32, NumError> {
    kstrtoul(s, base)
}

/// `kstrtol` for a 32-bit `long`.
pub(crate) fn kstrtol(s: &[u8], base: u32) -> Result<i32, NumError> {
    i32::try_from(kstrtoll(s, base)?).map_err(|_| NumError::Range)
}

/// `simple_strtoul` for a 32-bit `unsigned long`: the (truncated) value and
/// the index where parsing stopped. With no digit the index is that of the
/// first character after any radix prefix.
pub(crate) fn simple_strtoul(s: &[u8], base: u32) -> (u32, usize) {
    let (base, start) = fixup_radix(s, base);
    let start = start.min(s.len());
    let (value, count, _) = parse_digits(&s[start..], base);
    (value as u32, start + count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn radix_prefixes() {
        assert_eq!(kstrtoul(b"0x10", 0), Ok(16));
        assert_eq!(kstrtoul(b"0X1f", 0), Ok(31));
        assert_eq!(kstrtoul(b"010", 0), Ok(8));
        assert_eq!(kstrtoul(b"0", 0), Ok(0));
        assert_eq!(kstrtoul(b"10", 0), Ok(10));
        // "0x" without a hex digit is octal 0 followed by junk.
        assert_eq!(kstrtoul(b"0x", 0), Err(NumError::Invalid));
        assert_eq!(kstrtoul(b"08", 0), Err(NumError::Invalid));
        // Base 10 does not take a prefix.
        assert_eq!(kstrtoul(b"0x10", 10), Err(NumError::Invalid));
        // Base 16 skips the prefix even with nothing after it.
        assert_eq!(kstrtoul(b"0x", 16), Err(NumError::Invalid));
        assert_eq!(kstrtoul(b"ff", 16), Ok(255));
    }

    #[test]
    fn strictness() {
        assert_eq!(kstrtoul(b"", 0), Err(NumError::Invalid));
        assert_eq!(kstrtoul(b"12\n", 0), Ok(12));
        assert_eq!(kstrtoul(b"12\n\n", 0), Err(NumError::Invalid));
        assert_eq!(kstrtoul(b"12a", 10), Err(NumError::Invalid));
        assert_eq!(kstrtoul(b"+12", 10), Ok(12));
        assert_eq!(kstrtoul(b"-12", 10), Err(NumError::Invalid));
        assert_eq!(kstrtoul(b"4294967295", 0), Ok(u32::MAX));
        assert_eq!(kstrtoul(b"4294967296", 0), Err(NumError::Range));
        assert_eq!(kstrtoull(b"18446744073709551616", 0), Err(NumError::Range));
    }

    #[test]
    fn signed() {
        assert_eq!(kstrtol(b"-10", 0), Ok(-10));
        assert_eq!(kstrtol(b"+10", 0), Ok(10));
        assert_eq!(kstrtol(b"-0x10", 0), Ok(-16));
        assert_eq!(kstrtol(b"-2147483648", 0), Ok(i32::MIN));
        assert_eq!(kstrtol(b"2147483648", 0), Err(NumError::Range));
        assert_eq!(kstrtol(b"-+1", 0), Err(NumError::Invalid));
        assert_eq!(kstrtol(b"+1000-1000", 0), Err(NumError::Invalid));
        assert_eq!(kstrtoll(b"-9223372036854775808", 0), Ok(i64::MIN));
        assert_eq!(kstrtoll(b"-9223372036854775809", 0), Err(NumError::Range));
    }

    #[test]
    fn simple() {
        assert_eq!(simple_strtoul(b"10@a/16", 0), (10, 2));
        assert_eq!(simple_strtoul(b"a/16", 0), (0, 0));
        assert_eq!(simple_strtoul(b"0x8/32", 0), (8, 3));
        assert_eq!(simple_strtoul(b"", 0), (0, 0));
        assert_eq!(simple_strtoul(b"0x/", 0), (0, 1));
        assert_eq!(simple_strtoul(b"4294967297@", 0), (1, 10));
    }
}
