//! Readable names for the table: Rust paths without hashes, other names as they are.
//!
//! The kernel looks functions up by paths such as `probe_kernel::demo::checksum`
//! (probes by symbol, the console's `kprobe NAME`), so names are demangled
//! the way rustc-demangle's alternate form prints them: no crate
//! disambiguators and no hashes, for v0 (`_R…`) and legacy (`_ZN…E`) symbols.
//! LLVM's `.llvm.NNN` renaming (ThinLTO) is dropped first, for every name;
//! other vendor suffixes such as `.cold` stay visible.

/// `name` as the table stores it.
pub fn demangle(name: &str) -> String {
    let plain = strip_llvm_suffixes(name);
    // Only the two prefixes rustc emits on ELF; rustc-demangle also accepts
    // `R…`, `ZN…` and `__R…`, which here are C names that happen to match.
    let rust_like = plain.strip_prefix("_R").is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_uppercase()))
        || plain.starts_with("_ZN");
    if !rust_like {
        return plain;
    }
    match rustc_demangle::try_demangle(&plain) {
        Ok(demangled) => format!("{demangled:#}"),
        Err(_) => plain,
    }
}

/// `name` without any `.llvm.` followed by letters and digits up to the end
/// or an `@` (symbol versions stay).
fn strip_llvm_suffixes(name: &str) -> String {
    const MARK: &str = ".llvm.";
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find(MARK) {
        let after = &rest[at + MARK.len()..];
        let run = after.find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(after.len());
        let ends = run > 0 && (run == after.len() || after[run..].starts_with('@'));
        if ends {
            out.push_str(&rest[..at]);
            rest = &after[run..];
        } else {
            out.push_str(&rest[..at + MARK.len()]);
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::demangle;

    #[test]
    fn legacy_paths_lose_their_hash() {
        assert_eq!(demangle("_ZN12probe_kernel4demo8checksum17h0123456789abcdefE"), "probe_kernel::demo::checksum");
        assert_eq!(demangle("_ZN4core3ptr13drop_in_place17h0123456789abcdefE.llvm.12345"), "core::ptr::drop_in_place");
        assert_eq!(
            demangle("_ZN59_$LT$core..fmt..Arguments$u20$as$u20$core..fmt..Display$GT$3fmt17h0123456789abcdefE"),
            "<core::fmt::Arguments as core::fmt::Display>::fmt"
        );
    }

    #[test]
    fn v0_paths_lose_disambiguators() {
        assert_eq!(demangle("_RNvNtCs1234_12probe_kernel4demo8checksum"), "probe_kernel::demo::checksum");
        assert_eq!(demangle("_RNvNtCs1234_12probe_kernel4demo8checksum.llvm.9A3F"), "probe_kernel::demo::checksum");
        assert_eq!(demangle("_RNCNvCs1234_7example4main0B3_"), "example::main::{closure#0}");
    }

    #[test]
    fn vendor_suffixes_stay() {
        assert_eq!(demangle("_RNvCs1234_7example3foo.cold"), "example::foo.cold");
    }

    #[test]
    fn other_names_are_kept() {
        assert_eq!(demangle("_start"), "_start");
        assert_eq!(demangle("trap_common_return_site"), "trap_common_return_site");
        assert_eq!(demangle("memcpy.llvm.42"), "memcpy");
        assert_eq!(demangle("_ZN3fooE_not_a_suffix"), "_ZN3fooE_not_a_suffix");
        assert_eq!(demangle("_R0garbage"), "_R0garbage");
    }
}
