//! Linux's `glob_match()` (lib/glob.c): `*`, `?`, `[...]` classes with
//! ranges and `!` inversion, and `\` escapes.

/// Whether `string` matches `pattern`, as Linux's `glob_match(pattern,
/// string)`. Both end at their first NUL or at the slice's end.
///
/// `*` matches any run (including `/`); `?` any one character; `[abc]`,
/// `[a-z]` one character of a class, `[!...]` one not in it (a `]` first
/// in the class is a member); `\c` the character `c`. A class without its
/// closing `]` is the literal `[`. Backtracking is to the last `*` only,
/// so the work is linear in the product of the lengths at worst and no
/// recursion is involved.
pub fn glob_match(pattern: &[u8], string: &[u8]) -> bool {
    let pat = |i: usize| pattern.get(i).copied().unwrap_or(0);
    let chr = |i: usize| string.get(i).copied().unwrap_or(0);
    // The pattern position after the last `*` and the string position
    // it was last tried at.
    let mut back: Option<(usize, usize)> = None;
    let (mut p, mut s) = (0usize, 0usize);
    loop {
        let c = chr(s);
        s += 1;
        let mut d = pat(p);
        p += 1;
        let matched = match d {
            b'?' if c == 0 => return false,
            b'?' => true,
            b'*' => {
                if pat(p) == 0 {
                    return true;
                }
                s -= 1;
                back = Some((p, s));
                true
            }
            b'[' => match class(pattern, p, c) {
                Some((true, end)) => {
                    p = end;
                    true
                }
                Some((false, _)) => false,
                // Malformed: the `[` is a literal.
                None => c == d,
            },
            b'\\' => {
                d = pat(p);
                p += 1;
                c == d
            }
            _ => c == d,
        };
        if matched {
            if c == 0 && d == 0 {
                // Both at their end (only a literal step gets here).
                return true;
            }
            continue;
        }
        // Backtrack: retry from the last `*`, one character later.
        match back {
            Some((back_p, back_s)) if c != 0 => {
                p = back_p;
                s = back_s + 1;
                back = Some((back_p, back_s + 1));
            }
            _ => return false,
        }
    }
}

/// The class starting at `pattern[start]` (after its `[`): whether `c` is
/// a member (taking `!` into account) and where the pattern goes on after
/// the closing `]`, or `None` if the class is malformed.
fn class(pattern: &[u8], start: usize, c: u8) -> Option<(bool, usize)> {
    let pat = |i: usize| pattern.get(i).copied().unwrap_or(0);
    let inverted = pat(start) == b'!';
    let mut i = start + usize::from(inverted);
    let mut a = pat(i);
    i += 1;
    let mut member = false;
    loop {
        if a == 0 {
            return None;
        }
        let mut b = a;
        if pat(i) == b'-' && pat(i + 1) != b']' {
            b = pat(i + 1);
            if b == 0 {
                return None;
            }
            i += 2;
        }
        member |= a <= c && c <= b;
        a = pat(i);
        i += 1;
        if a == b']' {
            break;
        }
    }
    Some((member != inverted, i))
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn as_linux_glob_match() {
        let cases: &[(&str, &str, bool)] = &[
            ("a", "a", true),
            ("a", "b", false),
            ("a", "aa", false),
            ("", "", true),
            ("", "a", false),
            ("*", "", true),
            ("*", "anything", true),
            ("a*", "abc", true),
            ("*c", "abc", true),
            ("*b*", "abc", true),
            ("a*c", "abbbc", true),
            ("a*c", "abbbd", false),
            ("a*b*c", "axbxbxc", true),
            ("?", "", false),
            ("??", "ab", true),
            ("a?c", "abc", true),
            ("[abc]", "b", true),
            ("[abc]", "d", false),
            ("[a-c]x", "bx", true),
            ("[!a-c]x", "bx", false),
            ("[!a-c]x", "dx", true),
            ("[]]", "]", true),
            ("[a-]", "-", true),
            ("[", "[", true),
            ("[a", "[a", true),
            ("\\*", "*", true),
            ("\\*", "a", false),
            ("ba*sh", "bash", true),
            ("ba*sh", "basket.sh", true),
        ];
        for &(pattern, string, expected) in cases {
            assert_eq!(glob_match(pattern.as_bytes(), string.as_bytes()), expected, "{pattern:?} ~ {string:?}");
        }
    }
}
