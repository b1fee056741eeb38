//! The parameter table round trip: what the writer is given, the reader gives back, exactly; any changed byte is refused.
//!
//! The kernel fetches a probe argument from where this table says a
//! parameter is, so a wrong location is a wrong value in the trace. On the
//! host, over random function lists: the table validates and answers every
//! function's parameters (name, type, size, location, class) as given, and
//! nothing at other addresses; a table that did not fit says how much it
//! needed; every changed byte fails validation; lookups on damaged,
//! unvalidated tables never panic.
use ksyms_table::params::{
    Class, FunctionInput, HEADER_SIZE, Location, PARAMS_EMPTY, ParamInput, ParamTable, ParamsBuildError, ParamsInvalid,
    Reg, Unavailable, build_params, header, too_small_marker,
};
use proptest::prelude::*;

fn param(name: &str, type_name: &str, size: u32, location: Location, class: Class) -> ParamInput {
    ParamInput { name: name.into(), type_name: type_name.into(), size, location, class }
}

fn needed(functions: &[FunctionInput]) -> usize {
    match build_params(functions, 0) {
        Err(ParamsBuildError::TooSmall { needed }) => needed,
        other => panic!("a zero capacity should be too small, got {other:?}"),
    }
}

/// What the reader gives for `address`, as inputs (to compare with what was written).
fn read_back(table: &ParamTable, address: u32) -> Option<Vec<ParamInput>> {
    let params = table.params_of(address as usize)?;
    assert_eq!(params.len(), params.iter().count());
    Some(
        params
            .iter()
            .map(|p| ParamInput {
                name: p.name.into(),
                type_name: p.type_name.into(),
                size: p.size,
                location: p.location,
                class: p.class,
            })
            .collect(),
    )
}

#[test]
fn a_known_table_reads_back_exactly() {
    let functions = vec![
        FunctionInput {
            address: 0x10_2000,
            params: vec![
                param("data", "*const u8", 4, Location::Stack(4), Class::CharPointer),
                param("len", "usize", 4, Location::Stack(8), Class::Unsigned),
                param("seed", "u64", 8, Location::Stack(12), Class::Unsigned),
            ],
        },
        FunctionInput {
            address: 0x10_1000,
            params: vec![
                param("self", "&probe_kernel::Thing", 4, Location::Register(Reg::Ecx), Class::Pointer),
                param("", "i32", 4, Location::Unavailable(Unavailable::OptimizedOut), Class::Signed),
                param("pair", "(u32, u32)", 8, Location::Unavailable(Unavailable::Split), Class::Other),
            ],
        },
        FunctionInput { address: 0x10_3000, params: vec![] },
    ];
    let size = needed(&functions);
    let bytes = build_params(&functions, size + 100).unwrap();
    assert_eq!(bytes.len(), size + 100);
    let table = ParamTable::open(&bytes).unwrap();
    assert_eq!(table.count(), 3);
    for function in &functions {
        assert_eq!(read_back(&table, function.address).as_ref(), Some(&function.params));
    }
    // Functions in address order; strings shared ("u32" once even if used twice).
    let addresses: Vec<usize> = table.iter().map(|(address, _)| address).collect();
    assert_eq!(addresses, [0x10_1000, 0x10_2000, 0x10_3000]);
    assert!(table.params_of(0x10_1001).is_none());
    assert!(table.params_of(0).is_none());
    let first = table.params_of(0x10_2000).unwrap();
    assert_eq!(first.get(1).unwrap().name, "len");
    assert_eq!(first.get(1).unwrap().location, Location::Stack(8));
    assert!(first.get(3).is_none());
    assert!(table.params_of(0x10_3000).unwrap().is_empty());
}

#[test]
fn empty_and_too_small_tables_say_so() {
    let mut compiled = vec![0u8; 4096];
    compiled[..8].copy_from_slice(&PARAMS_EMPTY);
    assert_eq!(ParamTable::parse(&compiled).err(), Some(ParamsInvalid::Empty));
    let marker = too_small_marker(4096, 123_456);
    assert_eq!(marker.len(), 4096);
    assert_eq!(ParamTable::parse(&marker).err(), Some(ParamsInvalid::TooSmall(123_456)));
    assert_eq!(ParamsInvalid::TooSmall(123_456).to_string(), "did not fit its static (it needs 123456 bytes)");
    let functions =
        vec![FunctionInput { address: 1, params: vec![param("x", "u32", 4, Location::Stack(4), Class::Unsigned)] }];
    let size = needed(&functions);
    assert_eq!(size, HEADER_SIZE + 12 + 24 + "xu32".len());
    assert_eq!(build_params(&functions, size - 1), Err(ParamsBuildError::TooSmall { needed: size }));
    assert!(build_params(&functions, size).is_ok());
    let twice = vec![functions[0].clone(), functions[0].clone()];
    assert_eq!(build_params(&twice, 4096), Err(ParamsBuildError::BadFunction(1)));
}

fn arb_location() -> impl Strategy<Value = Location> {
    prop_oneof![
        (0usize..8).prop_map(|r| Location::Register(Reg::ALL[r])),
        any::<i32>().prop_map(Location::Stack),
        (0usize..Unavailable::ALL.len()).prop_map(|u| Location::Unavailable(Unavailable::ALL[u])),
    ]
}

fn arb_param() -> impl Strategy<Value = ParamInput> {
    ("[a-z_]{0,6}", "[a-z0-9&*<>: ]{1,12}", any::<u32>(), arb_location(), 0usize..Class::ALL.len()).prop_map(
        |(name, type_name, size, location, class)| ParamInput {
            name,
            type_name,
            size,
            location,
            class: Class::ALL[class],
        },
    )
}

fn arb_functions() -> impl Strategy<Value = Vec<FunctionInput>> {
    prop::collection::btree_map(any::<u32>(), prop::collection::vec(arb_param(), 0..5), 0..12)
        .prop_map(|map| map.into_iter().rev().map(|(address, params)| FunctionInput { address, params }).collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn random_tables_read_back_exactly(functions in arb_functions(), slack in 0usize..64) {
        let size = needed(&functions);
        let bytes = build_params(&functions, size + slack).unwrap();
        let table = ParamTable::open(&bytes).unwrap();
        prop_assert_eq!(table.count(), functions.len());
        for function in &functions {
            prop_assert_eq!(read_back(&table, function.address), Some(function.params.clone()));
            if !functions.iter().any(|f| f.address == function.address.wrapping_add(1)) {
                prop_assert!(table.params_of(function.address.wrapping_add(1) as usize).is_none());
            }
        }
    }

    #[test]
    fn any_changed_byte_is_refused(functions in arb_functions(), slack in 0usize..16, at in any::<prop::sample::Index>(), xor in 1u8..) {
        let size = needed(&functions);
        let mut bytes = build_params(&functions, size + slack).unwrap();
        let at = at.index(bytes.len());
        bytes[at] ^= xor;
        prop_assert!(ParamTable::open(&bytes).is_err(), "byte {} changed by {:#x} went unnoticed", at, xor);
    }

    #[test]
    fn lookups_on_damaged_tables_never_panic(functions in arb_functions(), damage in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let size = needed(&functions);
        let mut bytes = build_params(&functions, size).unwrap();
        for (at, value) in damage {
            let at = at.index(bytes.len());
            // The header's layout fields are checked in constant time; damage
            // the body, where only `validate` looks.
            if (header::COUNT..HEADER_SIZE).contains(&at) { continue; }
            bytes[at] = value;
        }
        if let Ok(table) = ParamTable::parse(&bytes) {
            for function in &functions {
                if let Some(params) = table.params_of(function.address as usize) {
                    for index in 0..=params.len() {
                        let _ = params.get(index);
                    }
                    let _ = params.iter().count();
                }
            }
            let _ = table.iter().map(|(_, p)| p.iter().count()).sum::<usize>();
        }
    }
}
