//! Property tests: tables built from random symbol lists answer like a simple model, and no corruption slips through.
//!
//! The kernel trusts these answers to the byte (a probe at `symbol + offset`
//! decodes from the function's start), and a table is bytes in a file that
//! anything may have touched. So on the host, over random inputs: the writer
//! builds tables that validate; every lookup by name and by address (starts,
//! insides, one past the end, gaps, nested labels) gives what a linear-scan
//! model of the documented semantics gives (by name through the hash index,
//! also with many duplicate and colliding names); any changed byte is refused
//! by validation, and so is a hash index that is wrong even with a matching
//! checksum; lookups on an unvalidated table never panic.
use ksyms_table::layout::{
    BUCKET_SIZE, HEADER_SIZE, MAGIC_EMPTY, MAGIC_FILLED, bucket_count, header, home_bucket, name_hash,
};
use ksyms_table::{BuildError, Flags, Input, Invalid, Symbol, Table, adler32, build, preference_order};
use proptest::prelude::*;

/// `symbols` built with `slack` spare bytes after the used part.
fn build_with_slack(symbols: &[Input], slack: usize) -> Vec<u8> {
    let needed = match build(symbols, 0) {
        Err(BuildError::TooSmall { needed, count }) => {
            assert_eq!(count, symbols.len());
            needed
        }
        other => panic!("a zero capacity should be too small, got {other:?}"),
    };
    let table = build(symbols, needed + slack).expect("fits by construction");
    assert_eq!(table.len(), needed + slack);
    assert_eq!(u32::from_le_bytes(table[header::USED..header::USED + 4].try_into().unwrap()) as usize, needed);
    table
}

// --------------------------------------------------------------------------
// The reference model: linear scans over the entries in preference order.
// --------------------------------------------------------------------------

/// The entries in table order (a stable sort, as the writer's).
fn model_order(symbols: &[Input]) -> Vec<Input> {
    let mut sorted = symbols.to_vec();
    sorted.sort_by(preference_order);
    sorted
}

fn as_symbol(entry: &Input, offset: usize) -> Symbol<'_> {
    Symbol { name: &entry.name, address: entry.address as usize, size: entry.size as usize, offset }
}

/// By name: of the entries with that name, the first in table order (the
/// lowest address, then the most preferred).
fn model_name<'a>(sorted: &'a [Input], name: &str) -> Option<Symbol<'a>> {
    sorted.iter().find(|e| e.name == name).map(|e| as_symbol(e, 0))
}

/// By address: nested labels never answer; of the other entries starting at
/// or below `address`, only those at the highest start are candidates, and
/// the first of them (in table order) that contains `address` answers.
fn model_address(sorted: &[Input], address: usize) -> Option<Symbol<'_>> {
    let candidates = || sorted.iter().filter(|e| !e.flags.contains(Flags::NESTED) && e.address as usize <= address);
    let start = candidates().map(|e| e.address).max()?;
    candidates()
        .filter(|e| e.address == start)
        .find(|e| address - (e.address as usize) < e.size as usize)
        .map(|e| as_symbol(e, address - e.address as usize))
}

/// Addresses worth asking about: every start, inside, last byte, one past
/// the end and one before, and the extremes.
fn probe_addresses(symbols: &[Input]) -> Vec<usize> {
    let mut addresses = vec![0, 1, u32::MAX as usize, usize::MAX, u32::MAX as usize + 1];
    for s in symbols {
        let (start, end) = (s.address as usize, s.address as usize + s.size as usize);
        addresses.extend([start, start.wrapping_sub(1), start + s.size as usize / 2, end - 1, end, end + 1]);
    }
    addresses
}

// --------------------------------------------------------------------------
// Generators
// --------------------------------------------------------------------------

/// Names from a small pool, so that duplicates are common; some not ASCII.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec!["a", "b", "ab", "a::b", "_start", "é", "核心::函数", "<T as U>::f", "z"])
            .prop_map(String::from),
        "[a-z:_]{1,12}",
        "\\PC{1,6}",
    ]
}

/// Any symbols at all: overlapping, aliased, nested or not, in any order.
fn arbitrary_symbols() -> impl Strategy<Value = Vec<Input>> {
    let symbol = (0u32..600, 1u32..80, name(), 0u16..8).prop_map(|(address, size, name, flags)| Input {
        address,
        size,
        name,
        flags: Flags(flags),
    });
    prop::collection::vec(symbol, 0..60)
}

/// One function of a realistic layout: a gap before it, a size, aliases at
/// its start and labels nested inside it.
#[derive(Clone, Debug)]
struct Function {
    gap: u32,
    size: u32,
    aliases: Vec<Flags>,
    labels: Vec<u32>,
}

fn function() -> impl Strategy<Value = Function> {
    (0u32..3, 1u32..48, prop::collection::vec(0u16..4, 1..4), prop::collection::vec(1u32..48, 0..3)).prop_map(
        |(gap, size, aliases, labels)| Function {
            gap: [0, 0, 16][gap as usize],
            size,
            aliases: aliases.into_iter().map(Flags).collect(),
            labels: labels.into_iter().filter(|&at| at < size).collect(),
        },
    )
}

/// What a laid-out function should answer.
struct Placed {
    start: u32,
    size: u32,
    /// The alias address lookups report.
    primary: String,
    aliases: Vec<String>,
    /// (address, name) of its nested labels.
    labels: Vec<(u32, String)>,
}

/// Lays `functions` out one after another from 0x1000, with unique names.
fn lay_out(functions: &[Function]) -> (Vec<Input>, Vec<Placed>) {
    let (mut symbols, mut placed) = (Vec::new(), Vec::new());
    let mut at = 0x1000u32;
    for (f, function) in functions.iter().enumerate() {
        at += function.gap;
        let mut aliases: Vec<Input> = (function.aliases.iter().enumerate())
            .map(|(k, &flags)| Input { address: at, size: function.size, name: format!("f{f}::alias{k}"), flags })
            .collect();
        let labels: Vec<Input> = (function.labels.iter().enumerate())
            .map(|(k, &offset)| Input {
                address: at + offset,
                size: function.size - offset,
                name: format!("f{f}_label{k}"),
                flags: Flags::NESTED,
            })
            .collect();
        aliases.sort_by(preference_order);
        placed.push(Placed {
            start: at,
            size: function.size,
            primary: aliases[0].name.clone(),
            aliases: aliases.iter().map(|a| a.name.clone()).collect(),
            labels: labels.iter().map(|l| (l.address, l.name.clone())).collect(),
        });
        symbols.extend(aliases);
        symbols.extend(labels);
        at += function.size;
    }
    (symbols, placed)
}

proptest! {
    #[test]
    fn any_symbols_build_a_table_that_answers_like_the_model(
        symbols in arbitrary_symbols(),
        slack in 0usize..40,
    ) {
        let bytes = build_with_slack(&symbols, slack);
        let opened = Table::open(&bytes).expect("a freshly built table validates");
        // Opened, names are slices of the validated strings; parsed only,
        // each is checked as UTF-8: the same answers either way.
        let parsed = Table::parse(&bytes).unwrap();
        let sorted = model_order(&symbols);
        for table in [opened, parsed] {
        prop_assert_eq!(table.count(), symbols.len());
        let listed: Vec<Symbol> = table.iter().collect();
        let expected: Vec<Symbol> = sorted.iter().map(|e| as_symbol(e, 0)).collect();
        prop_assert_eq!(listed, expected);
        for wanted in symbols.iter().map(|s| s.name.as_str()).chain(["", "absent", "a:", "\u{10ffff}"]) {
            prop_assert_eq!(table.lookup_name(wanted), model_name(&sorted, wanted), "name {:?}", wanted);
        }
        for address in probe_addresses(&symbols).into_iter().chain((0..700).step_by(7)) {
            let expected = model_address(&sorted, address);
            prop_assert_eq!(table.lookup_address(address), expected, "address {:#x}", address);
            let returned = (address.checked_sub(1).and_then(|a| model_address(&sorted, a)))
                .map(|s| Symbol { offset: s.offset + 1, ..s });
            prop_assert_eq!(table.lookup_return_address(address), returned, "return address {:#x}", address);
        }
        }
    }

    #[test]
    fn laid_out_functions_answer_by_start_inside_end_gap_and_label(
        functions in prop::collection::vec(function(), 1..24),
    ) {
        let (symbols, placed) = lay_out(&functions);
        let bytes = build_with_slack(&symbols, 0);
        let table = Table::open(&bytes).expect("validates");
        let at = |address: u32| table.lookup_address(address as usize).map(|s| (s.name.to_string(), s.offset));
        for (k, f) in placed.iter().enumerate() {
            let end = f.start + f.size;
            prop_assert_eq!(at(f.start), Some((f.primary.clone(), 0)));
            prop_assert_eq!(at(f.start + f.size / 2), Some((f.primary.clone(), (f.size / 2) as usize)));
            prop_assert_eq!(at(end - 1), Some((f.primary.clone(), (f.size - 1) as usize)));
            // One past the end: the next function if it follows at once, else a gap.
            let next = placed.get(k + 1).filter(|n| n.start == end).map(|n| (n.primary.clone(), 0));
            prop_assert_eq!(at(end), next);
            if placed.get(k + 1).is_some_and(|n| n.start > end) {
                prop_assert_eq!(at(end + 1), None);
            }
            let caller = table.lookup_return_address(end as usize).map(|s| (s.name.to_string(), s.offset));
            prop_assert_eq!(caller, Some((f.primary.clone(), f.size as usize)));
            for alias in &f.aliases {
                let found = table.lookup_name(alias).expect("every alias by name");
                prop_assert_eq!((found.address, found.size), (f.start as usize, f.size as usize));
            }
            for (address, label) in &f.labels {
                // By name the label itself; by address the function around it.
                let found = table.lookup_name(label).expect("every label by name");
                prop_assert_eq!(found.address, *address as usize);
                prop_assert_eq!(at(*address), Some((f.primary.clone(), (address - f.start) as usize)));
            }
        }
        prop_assert_eq!(at(0x1000 - 1), None);
        let last = placed.last().unwrap();
        prop_assert_eq!(at(last.start + last.size), None);
    }

    #[test]
    fn input_order_does_not_matter(mut symbols in arbitrary_symbols(), seed in any::<u64>()) {
        // Ties in preference order keep input order; without ties the bytes
        // are a function of the set.
        symbols.sort_by(preference_order);
        symbols.dedup_by(|a, b| preference_order(a, b).is_eq());
        let original = build_with_slack(&symbols, 8);
        let mut shuffled = symbols.clone();
        let len = shuffled.len().max(1);
        for i in 0..shuffled.len() {
            shuffled.swap(i, (seed as usize).wrapping_mul(i + 7) % len);
        }
        prop_assert_eq!(build_with_slack(&shuffled, 8), original);
    }

    #[test]
    fn any_changed_byte_is_refused(
        symbols in arbitrary_symbols(),
        slack in 0usize..40,
        at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let mut bytes = build_with_slack(&symbols, slack);
        let position = at.index(bytes.len());
        bytes[position] ^= flip;
        prop_assert!(Table::open(&bytes).is_err(), "byte {} ^ {:#x} was accepted", position, flip);
        // Lookups without validation give some answer, never a panic.
        if let Ok(table) = Table::parse(&bytes) {
            exercise(&table, &symbols);
        }
    }

    #[test]
    fn random_bytes_never_panic(
        mut bytes in prop::collection::vec(any::<u8>(), HEADER_SIZE..600),
        count in 0u32..40,
        names in prop::collection::vec(name(), 0..8),
    ) {
        // Mostly garbage, but with a header plausible enough to get past
        // the first checks, so the body's checks and the lookups run too.
        let len = bytes.len() as u32;
        let entries = HEADER_SIZE as u32;
        let buckets = entries + count * 16;
        let slots = bucket_count(count as usize).unwrap() as u32;
        let strings = buckets + slots * 4;
        let used = len.min(strings.max(entries) + len / 3);
        let fields = [
            (header::CAPACITY, len), (header::COUNT, count), (header::ENTRIES, entries), (header::BUCKETS, buckets),
            (header::BUCKET_COUNT, slots),
            (header::STRINGS, strings), (header::STRINGS_LEN, used.saturating_sub(strings)), (header::USED, used),
        ];
        bytes[..8].copy_from_slice(&MAGIC_FILLED);
        for (offset, value) in fields {
            bytes[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
        }
        let _ = Table::open(&bytes);
        if let Ok(table) = Table::parse(&bytes) {
            let symbols: Vec<Input> =
                names.into_iter().map(|name| Input { address: 0, size: 1, name, flags: Flags::empty() }).collect();
            exercise(&table, &symbols);
        }
    }
}

/// Many symbols with few names: long runs of duplicates and, with names
/// from a pool larger than some tables' bucket counts, shared probe sequences.
fn crowded_symbols() -> impl Strategy<Value = Vec<Input>> {
    let symbol = (0u32..64, 1u32..8, 0u32..24, 0u16..8).prop_map(|(address, size, name, flags)| Input {
        address,
        size,
        name: format!("n{name}"),
        flags: Flags(flags),
    });
    prop::collection::vec(symbol, 0..200)
}

/// The little-endian u32 at `offset` of `bytes`.
fn read(bytes: &[u8], offset: usize) -> u32 {
    u32::from_le_bytes(bytes[offset..offset + 4].try_into().unwrap())
}

fn write(bytes: &mut [u8], offset: usize, value: u32) {
    bytes[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
}

/// The byte offsets of every bucket of a table `build` made.
fn bucket_offsets(bytes: &[u8]) -> Vec<usize> {
    let (start, slots) = (read(bytes, header::BUCKETS) as usize, read(bytes, header::BUCKET_COUNT) as usize);
    (0..slots).map(|slot| start + slot * BUCKET_SIZE).collect()
}

/// Recomputes the checksum after an edit, so only the structural checks
/// stand between the edit and acceptance.
fn reseal(bytes: &mut [u8]) {
    let used = read(bytes, header::USED) as usize;
    let checksum = adler32(&bytes[HEADER_SIZE..used]);
    write(bytes, header::CHECKSUM, checksum);
}

/// The names of every symbol, a few absent ones, and every name as stored.
fn names_to_ask(symbols: &[Input]) -> Vec<String> {
    let mut names: Vec<String> = symbols.iter().map(|s| s.name.clone()).collect();
    names.extend(["", "absent", "n", "n99", "a:"].map(String::from));
    names
}

proptest! {
    #[test]
    fn hash_lookups_agree_with_a_linear_scan_among_duplicates(symbols in crowded_symbols(), slack in 0usize..8) {
        let bytes = build_with_slack(&symbols, slack);
        let table = Table::open(&bytes).expect("validates");
        let parsed = Table::parse(&bytes).unwrap();
        let sorted = model_order(&symbols);
        for wanted in names_to_ask(&symbols) {
            prop_assert_eq!(table.lookup_name(&wanted), model_name(&sorted, &wanted), "name {:?}", wanted);
            prop_assert_eq!(parsed.lookup_name(&wanted), model_name(&sorted, &wanted), "name {:?}", wanted);
        }
        // One filled bucket per distinct name, and at least half are empty.
        let buckets = bucket_offsets(&bytes);
        let filled = buckets.iter().filter(|&&at| read(&bytes, at) != 0).count();
        let distinct: std::collections::HashSet<&str> = symbols.iter().map(|s| s.name.as_str()).collect();
        prop_assert_eq!(filled, distinct.len());
        prop_assert!(buckets.len().is_power_of_two() && buckets.len() >= 2 * symbols.len());
    }

    #[test]
    fn a_wrong_hash_index_is_refused_despite_its_checksum(
        symbols in crowded_symbols(),
        bucket in any::<prop::sample::Index>(),
        entry in any::<prop::sample::Index>(),
        edit in 0u8..4,
    ) {
        let mut bytes = build_with_slack(&symbols, 0);
        let buckets = bucket_offsets(&bytes);
        let at = buckets[bucket.index(buckets.len())];
        let original = read(&bytes, at);
        let count = symbols.len() as u32;
        let value = match edit {
            // Past the last entry.
            0 => count + 1 + entry.index(4) as u32,
            // Emptied (if it was filled).
            1 => 0,
            // Any entry, filled or not: moved, duplicated, a later duplicate.
            _ if count > 0 => entry.index(count as usize) as u32 + 1,
            _ => count + 1,
        };
        write(&mut bytes, at, value);
        reseal(&mut bytes);
        let verdict = Table::open(&bytes);
        if value == original {
            prop_assert!(verdict.is_ok());
        } else if value > count {
            prop_assert_eq!(verdict.err(), Some(Invalid::BucketOutOfRange));
        } else if original != 0 && value == 0 {
            // A name lost its bucket.
            prop_assert_eq!(verdict.err(), Some(Invalid::HashIndexMismatch));
        } else if original == 0 {
            // A stray bucket: one filled bucket too many.
            prop_assert_eq!(verdict.err(), Some(Invalid::HashIndexMismatch));
        } else {
            // Another entry in a filled bucket: refused unless it still answers
            // every name as the model does (an entry of the same name at the
            // same position is not a different answer).
            let sorted = model_order(&symbols);
            match verdict {
                Ok(table) => {
                    for wanted in names_to_ask(&symbols) {
                        prop_assert_eq!(table.lookup_name(&wanted), model_name(&sorted, &wanted));
                    }
                }
                Err(reason) => prop_assert_eq!(reason, Invalid::HashIndexMismatch),
            }
        }
    }
}

#[test]
fn a_later_duplicate_in_the_bucket_is_refused() {
    let symbols: Vec<Input> =
        (0..3).map(|k| Input { address: 0x1000 + 16 * k, size: 16, name: "dup".into(), flags: Flags::FUNC }).collect();
    let mut bytes = build(&symbols, 4096).unwrap();
    let at = *bucket_offsets(&bytes).iter().find(|&&at| read(&bytes, at) != 0).unwrap();
    assert_eq!(read(&bytes, at), 1, "the first entry of the name");
    assert_eq!(Table::open(&bytes).unwrap().lookup_name("dup").unwrap().address, 0x1000);
    write(&mut bytes, at, 2);
    reseal(&mut bytes);
    assert_eq!(Table::open(&bytes).err(), Some(Invalid::HashIndexMismatch));
    // Unvalidated, it still answers (the wrong duplicate), without panicking.
    assert_eq!(Table::parse(&bytes).unwrap().lookup_name("dup").unwrap().address, 0x1010);
}

#[test]
fn a_name_after_an_empty_bucket_of_its_sequence_is_refused() {
    // Two names with the same home bucket: the second sits one further on.
    // Moving it two further leaves an empty bucket between, so a lookup stops
    // before it: refused, although every bucket holds a valid entry index.
    let slots = bucket_count(2).unwrap();
    let home = |name: &str| home_bucket(name_hash(name.as_bytes()), slots);
    let first = "n0".to_string();
    let second = (1..).map(|k| format!("n{k}")).find(|n| home(n) == home(&first)).unwrap();
    let symbols = [first, second]
        .into_iter()
        .enumerate()
        .map(|(k, name)| Input { address: 0x1000 + 16 * k as u32, size: 16, name, flags: Flags::FUNC })
        .collect::<Vec<_>>();
    let mut bytes = build(&symbols, 4096).unwrap();
    let buckets = bucket_offsets(&bytes);
    let h = home(&symbols[0].name);
    let (at, next, after) = (buckets[(h + 1) % slots], buckets[(h + 2) % slots], buckets[(h + 3) % slots]);
    assert_eq!((read(&bytes, buckets[h]), read(&bytes, at), read(&bytes, next)), (1, 2, 0));
    assert_eq!(read(&bytes, after), 0);
    write(&mut bytes, at, 0);
    write(&mut bytes, next, 2);
    reseal(&mut bytes);
    assert_eq!(Table::open(&bytes).err(), Some(Invalid::HashIndexMismatch));
}

/// The hash as `layout` defines it, a byte at a time.
fn model_hash(name: &[u8]) -> u32 {
    const K: u32 = 0x9e37_79b9;
    let mut hash = (name.len() as u32).wrapping_mul(K);
    let mut padded = name.to_vec();
    padded.resize(name.len().div_ceil(4) * 4, 0);
    for word in padded.chunks(4) {
        let word = u32::from(word[0]) | u32::from(word[1]) << 8 | u32::from(word[2]) << 16 | u32::from(word[3]) << 24;
        hash = (hash.rotate_left(5) ^ word).wrapping_mul(K);
    }
    hash
}

proptest! {
    #[test]
    fn name_hash_is_as_documented(name in prop::collection::vec(any::<u8>(), 0..40)) {
        prop_assert_eq!(name_hash(&name), model_hash(&name));
    }
}

#[test]
fn home_buckets_take_the_top_bits() {
    assert_eq!(name_hash(b""), 0);
    assert_eq!(home_bucket(u32::MAX, 1), 0);
    assert_eq!(home_bucket(u32::MAX, 1024), 1023);
    assert_eq!(home_bucket(0x8000_0000, 2), 1);
    assert_eq!(home_bucket(0x7fff_ffff, 2), 0);
}

#[test]
fn kernel_like_names_have_short_probe_sequences() {
    // Names like the kernel's, sharing long prefixes and differing in a few
    // bytes; the mean and longest probe sequences of a lookup that finds its
    // name must stay short (linear probing at a load of at most 1/2 averages
    // 1.5 buckets with a uniform hash).
    let mut names = Vec::new();
    for module in ["arch::x86::trap", "kprobes", "engine::registry", "symbols", "task", "shell"] {
        for k in 0..200 {
            names.push(format!("probe_kernel::{module}::function_{k}"));
            names.push(format!("<probe_kernel::{module}::Type{k} as core::fmt::Debug>::fmt"));
        }
    }
    names.extend((0..400).map(|k| format!("label_{k:x}")));
    let slots = bucket_count(names.len()).unwrap();
    let mut taken = vec![false; slots];
    let (mut total, mut longest) = (0, 0);
    for name in &names {
        let mut slot = home_bucket(name_hash(name.as_bytes()), slots);
        let mut length = 1;
        while taken[slot] {
            slot = (slot + 1) % slots;
            length += 1;
        }
        taken[slot] = true;
        total += length;
        longest = longest.max(length);
    }
    let mean = total as f64 / names.len() as f64;
    assert!(mean < 2.0, "mean probe sequence {mean}");
    assert!(longest < 24, "longest probe sequence {longest}");
}

/// Every lookup, on a table that may be garbage.
fn exercise(table: &Table, symbols: &[Input]) {
    let _ = table.iter().count();
    for s in symbols {
        let _ = table.lookup_name(&s.name);
    }
    for address in probe_addresses(symbols).into_iter().chain((0..64).map(|k| k * 97)) {
        let _ = table.lookup_address(address);
        let _ = table.lookup_return_address(address);
    }
    for index in 0..table.count() + 2 {
        let _ = table.symbol(index, 0);
    }
}

#[test]
fn the_compiled_image_is_empty_not_broken() {
    let mut bytes = vec![0u8; 4096];
    bytes[..8].copy_from_slice(&MAGIC_EMPTY);
    bytes[8..12].copy_from_slice(&4096u32.to_le_bytes());
    assert_eq!(Table::parse(&bytes).err(), Some(Invalid::Empty));
    assert_eq!(Table::parse(&[]).err(), Some(Invalid::BadMagic));
    assert_eq!(Table::parse(&MAGIC_FILLED).err(), Some(Invalid::BadMagic));
}

#[test]
fn no_symbols_make_a_valid_empty_table() {
    // The header and one (empty) bucket.
    let size = HEADER_SIZE + BUCKET_SIZE;
    let bytes = build(&[], size).unwrap();
    let table = Table::open(&bytes).unwrap();
    assert_eq!(table.count(), 0);
    assert_eq!(table.lookup_name("a"), None);
    assert_eq!(table.lookup_address(0), None);
    assert_eq!(build(&[], size - 1), Err(BuildError::TooSmall { needed: size, count: 0 }));
}

#[test]
fn capacity_must_be_the_table_size() {
    let symbol = Input { address: 0x1000, size: 4, name: "f".into(), flags: Flags::FUNC };
    let bytes = build(&[symbol], 256).unwrap();
    assert!(Table::open(&bytes).is_ok());
    assert_eq!(Table::parse(&bytes[..255]).err(), Some(Invalid::CapacityMismatch));
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(Table::parse(&longer).err(), Some(Invalid::CapacityMismatch));
}

#[test]
fn bad_symbols_are_refused_by_the_writer() {
    let good = Input { address: 0x1000, size: 4, name: "f".into(), flags: Flags::FUNC };
    let zero = Input { size: 0, ..good.clone() };
    let wraps = Input { address: u32::MAX - 1, size: 4, ..good.clone() };
    let nameless = Input { name: String::new(), ..good.clone() };
    for (bad, what) in [(zero, "size 0"), (wraps, "end past 4 GiB"), (nameless, "no name")] {
        assert_eq!(build(&[good.clone(), bad], 4096), Err(BuildError::BadSymbol(1)), "{what}");
    }
}

#[test]
fn long_names_are_cut_on_a_character_boundary() {
    let name = "é".repeat(40_000); // 80,000 bytes
    let symbol = Input { address: 0x1000, size: 4, name, flags: Flags::FUNC };
    let bytes = build(&[symbol], 100_000).unwrap();
    let table = Table::open(&bytes).unwrap();
    let stored = table.symbol(0, 0).unwrap().name;
    assert_eq!(stored.len(), 65_534);
    assert!(stored.chars().all(|c| c == 'é'));
}
