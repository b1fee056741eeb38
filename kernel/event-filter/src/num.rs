//! Linux's `ctype` tests (ASCII) and `kstrtoull`/`kstrtoll` with base 0.

/// Linux's `isspace` on ASCII: space, `\t`, `\n`, `\v`, `\f`, `\r`.
pub(crate) fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Linux's `isalnum` on ASCII.
pub(crate) fn is_alnum(c: u8) -> bool {
    c.is_ascii_alphanumeric()
}

/// Linux's `isdigit`.
pub(crate) fn is_digit(c: u8) -> bool {
    c.is_ascii_digit()
}

/// `s` without leading and trailing ASCII whitespace (Linux's `strstrip`).
pub(crate) fn strip(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_ascii() && is_space(c as u8))
}

/// `s` without trailing ASCII whitespace.
pub(crate) fn strip_end(s: &str) -> &str {
    s.trim_end_matches(|c: char| c.is_ascii() && is_space(c as u8))
}

/// `s` without leading ASCII whitespace (Linux's `skip_spaces`).
pub(crate) fn skip_spaces(s: &str) -> &str {
    s.trim_start_matches(|c: char| c.is_ascii() && is_space(c as u8))
}

/// `s` up to its first NUL: what a C string of the same bytes holds.
pub(crate) fn c_str(s: &str) -> &str {
    match s.find('\0') {
        Some(end) => &s[..end],
        None => s,
    }
}

/// Why a number did not parse: Linux's `-EINVAL` or `-ERANGE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NumError {
    /// No digits, or something after them.
    Inval,
    /// Too big.
    Range,
}

/// `_kstrtoull(s, 0)`: `0x` (followed by a hex digit) selects hex, another
/// leading `0` octal, anything else decimal; digits stop at the first
/// character that is not one in the base; one trailing newline is allowed.
fn parse_unsigned(s: &[u8]) -> Result<u64, NumError> {
    let (base, digits): (u64, &[u8]) = if s.first() == Some(&b'0') {
        let hex = s.get(1).map(u8::to_ascii_lowercase) == Some(b'x') && s.get(2).is_some_and(u8::is_ascii_hexdigit);
        if hex { (16, &s[2..]) } else { (8, s) }
    } else {
        (10, s)
    };
    let mut value: u64 = 0;
    let mut overflow = false;
    let mut count = 0;
    for &c in digits {
        let digit = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => break,
        } as u64;
        if digit >= base {
            break;
        }
        match value.checked_mul(base).and_then(|v| v.checked_add(digit)) {
            Some(v) => value = v,
            None => overflow = true,
        }
        count += 1;
    }
    if overflow {
        return Err(NumError::Range);
    }
    if count == 0 {
        return Err(NumError::Inval);
    }
    let rest = &digits[count..];
    let rest = rest.strip_prefix(b"\n").unwrap_or(rest);
    if rest.is_empty() { Ok(value) } else { Err(NumError::Inval) }
}

/// Linux's `kstrtoull(s, 0, ..)`: an optional `+`, then a number as
/// [`parse_unsigned`] reads it.
pub(crate) fn kstrtoull(s: &[u8]) -> Result<u64, NumError> {
    parse_unsigned(s.strip_prefix(b"+").unwrap_or(s))
}

/// Linux's `kstrtoll(s, 0, ..)`: an optional `-` (or `+`), then a number
/// that fits an `s64`.
pub(crate) fn kstrtoll(s: &[u8]) -> Result<i64, NumError> {
    if let Some(rest) = s.strip_prefix(b"-") {
        let magnitude = parse_unsigned(rest)?;
        let value = magnitude.wrapping_neg() as i64;
        if value > 0 { Err(NumError::Range) } else { Ok(value) }
    } else {
        let value = kstrtoull(s)?;
        if (value as i64) < 0 { Err(NumError::Range) } else { Ok(value as i64) }
    }
}

/// `ilog2(roundup_pow_of_two(v))`: the smallest `k` with `v <= 2^k`, 0
/// for 0 and 1 (Linux leaves 0 undefined; x86 gives 0).
pub(crate) fn ceil_log2(v: u64) -> u64 {
    if v <= 1 { 0 } else { 64 - u64::from((v - 1).leading_zeros()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bases_as_kstrtoull() {
        assert_eq!(kstrtoull(b"0"), Ok(0));
        assert_eq!(kstrtoull(b"42"), Ok(42));
        assert_eq!(kstrtoull(b"+42"), Ok(42));
        assert_eq!(kstrtoull(b"0x1F"), Ok(31));
        assert_eq!(kstrtoull(b"0X1f"), Ok(31));
        assert_eq!(kstrtoull(b"017"), Ok(15));
        assert_eq!(kstrtoull(b"42\n"), Ok(42));
        assert_eq!(kstrtoull(b"08"), Err(NumError::Inval));
        assert_eq!(kstrtoull(b"0x"), Err(NumError::Inval));
        assert_eq!(kstrtoull(b"0xg"), Err(NumError::Inval));
        assert_eq!(kstrtoull(b""), Err(NumError::Inval));
        assert_eq!(kstrtoull(b"-1"), Err(NumError::Inval));
        assert_eq!(kstrtoull(b"12a"), Err(NumError::Inval));
        assert_eq!(kstrtoull(b"18446744073709551615"), Ok(u64::MAX));
        assert_eq!(kstrtoull(b"18446744073709551616"), Err(NumError::Range));
    }

    #[test]
    fn signed_as_kstrtoll() {
        assert_eq!(kstrtoll(b"-1"), Ok(-1));
        assert_eq!(kstrtoll(b"-0x10"), Ok(-16));
        assert_eq!(kstrtoll(b"-0"), Ok(0));
        assert_eq!(kstrtoll(b"-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(kstrtoll(b"-9223372036854775809"), Err(NumError::Range));
        assert_eq!(kstrtoll(b"9223372036854775808"), Err(NumError::Range));
        assert_eq!(kstrtoll(b"--1"), Err(NumError::Inval));
    }

    #[test]
    fn log2_rounds_up() {
        let cases = [(0, 0), (1, 0), (2, 1), (3, 2), (4, 2), (5, 3), (64, 6), (65, 7), (128, 7), (u64::MAX, 64)];
        for (v, k) in cases {
            assert_eq!(ceil_log2(v), k, "ceil_log2({v})");
        }
    }
}
