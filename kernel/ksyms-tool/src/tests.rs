//! The tool on real compiler output: a small i386 program (`test_target.c`)
//! built with the host's GCC in 32-bit mode, whose functions take their
//! arguments by every i386 convention GCC knows (cdecl on the stack,
//! `regparm(3)` and `fastcall` in registers), a value split across two
//! registers, a structure by value and an unused argument.
//!
//! The tool runs on the linked image as boot/run.sh runs it (in place);
//! the parameter table is then read back with the kernel's own reader and
//! must say exactly where the ABI puts each argument at the entry. The
//! same program at `-O0` (arguments copied into the frame after the
//! entry), with DWARF 5 (`.debug_loclists`) and DWARF 4 (`.debug_loc`).
use crate::{Mode, elf, run};
use ksyms_table::params::{self, Class, Location, PARAMS_TOO_SMALL, ParamTable, Reg};
use std::path::PathBuf;
use std::process::Command;

const SOURCE: &str = include_str!("test_target.c");

/// Builds `SOURCE` (with `extra` appended) with `flags` into a fresh
/// directory; returns the linked image's path.
fn build(name: &str, flags: &[&str], extra: &str, params_static: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ksyms-tool-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let source = SOURCE.replace(
        "const unsigned char probe_kernel_params[65536] = {'K','P','A','R','N','O','N','E', 0x00, 0x00, 0x01, 0x00};",
        params_static,
    );
    std::fs::write(dir.join("t.c"), format!("{source}{extra}")).unwrap();
    let compiled = Command::new("gcc")
        .args(["-m32", "-g", "-fno-pic", "-fno-pie", "-ffreestanding", "-fno-asynchronous-unwind-tables"])
        .args(["-fcf-protection=none", "-c", "t.c", "-o", "t.o"])
        .args(flags)
        .current_dir(&dir)
        .output()
        .expect("gcc runs (the host's C compiler, which cargo needs anyway)");
    assert!(compiled.status.success(), "gcc -m32: {}", String::from_utf8_lossy(&compiled.stderr));
    let linked = Command::new("ld")
        .args(["-m", "elf_i386", "-e", "_start", "t.o", "-o", "t.elf"])
        .current_dir(&dir)
        .output()
        .expect("ld runs");
    assert!(linked.status.success(), "ld -m elf_i386: {}", String::from_utf8_lossy(&linked.stderr));
    dir.join("t.elf")
}

const PARAMS_STATIC: &str =
    "const unsigned char probe_kernel_params[65536] = {'K','P','A','R','N','O','N','E', 0x00, 0x00, 0x01, 0x00};";

/// Each function's parameters as the table written into `path` says:
/// (function, [(name, type, size, location, class)]), by address.
type Described = Vec<(String, Vec<(String, String, u32, Location, Class)>)>;

fn written_params(path: &PathBuf) -> Described {
    run(path.to_str().unwrap(), Mode::Write).expect("the tool fills the image");
    let data = std::fs::read(path).unwrap();
    let image = elf::parse(&data).unwrap();
    let (offset, size) = image.params.expect("the image has probe_kernel_params");
    let table = ParamTable::open(&data[offset..offset + size]).expect("a valid parameter table");
    let name_of = |address: usize| {
        image
            .symbols
            .iter()
            .find(|s| s.value == address as u64 && s.kind == 2)
            .map_or_else(|| format!("{address:#x}"), |s| s.name.clone())
    };
    table
        .iter()
        .map(|(address, params)| {
            let params = params
                .iter()
                .map(|p| (p.name.to_string(), p.type_name.to_string(), p.size, p.location, p.class))
                .collect();
            (name_of(address), params)
        })
        .collect()
}

fn param(
    name: &str,
    type_name: &str,
    size: u32,
    location: Location,
    class: Class,
) -> (String, String, u32, Location, Class) {
    (name.into(), type_name.into(), size, location, class)
}

/// What the ABI says, and what optimized GCC output describes.
fn optimized_expectation() -> Described {
    use Class::*;
    use Location::*;
    vec![
        (
            "cdecl_args".into(),
            vec![
                param("name", "const char *", 4, Stack(4), CharPointer),
                param("len", "size_t", 4, Stack(8), Unsigned),
                param("wide", "long long int", 8, Stack(12), Signed),
                param("flag", "_Bool", 1, Stack(20), Unsigned),
                param("delta", "short int", 2, Stack(24), Signed),
            ],
        ),
        (
            "regparm_args".into(),
            vec![
                param("a", "int", 4, Register(Reg::Eax), Signed),
                param("b", "int", 4, Register(Reg::Edx), Signed),
                param("c", "int", 4, Register(Reg::Ecx), Signed),
                param("d", "int", 4, Stack(4), Signed),
            ],
        ),
        (
            "fastcall_args".into(),
            vec![
                param("a", "int", 4, Register(Reg::Ecx), Signed),
                param("b", "int", 4, Register(Reg::Edx), Signed),
                param("c", "int", 4, Stack(4), Signed),
            ],
        ),
        ("split_arg".into(), vec![param("v", "long long int", 8, Unavailable(params::Unavailable::Split), Signed)]),
        (
            "by_value".into(),
            vec![
                param("b", "big", 12, Unavailable(params::Unavailable::TooLarge), Other),
                param("after", "int", 4, Stack(16), Signed),
            ],
        ),
        (
            "unused_arg".into(),
            vec![param("used", "int", 4, Stack(4), Signed), param("unused", "int", 4, Stack(8), Signed)],
        ),
        ("_start".into(), vec![]),
    ]
}

#[test]
fn optimized_code_puts_every_argument_where_its_abi_does() {
    let path = build("o2", &["-O2"], "", PARAMS_STATIC);
    assert_eq!(written_params(&path), optimized_expectation());
    // Run again: nothing to change, the same table.
    let before = std::fs::read(&path).unwrap();
    run(path.to_str().unwrap(), Mode::Write).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn dwarf4_location_lists_read_the_same() {
    let path = build("dwarf4", &["-O2", "-gdwarf-4"], "", PARAMS_STATIC);
    assert_eq!(written_params(&path), optimized_expectation());
}

#[test]
fn unoptimized_code_copies_some_arguments_into_its_frame() {
    use Class::*;
    use Location::*;
    let path = build("o0", &["-O0"], "", PARAMS_STATIC);
    let described = written_params(&path);
    // GCC at -O0 describes register arguments (and some narrow or wide
    // stack ones) by the frame slots it copies them into after the entry.
    let frame = Unavailable(params::Unavailable::InFrame);
    assert_eq!(
        described[..3],
        [
            (
                "cdecl_args".into(),
                vec![
                    param("name", "const char *", 4, Stack(4), CharPointer),
                    param("len", "size_t", 4, Stack(8), Unsigned),
                    param("wide", "long long int", 8, frame, Signed),
                    param("flag", "_Bool", 1, frame, Unsigned),
                    param("delta", "short int", 2, frame, Signed),
                ],
            ),
            (
                "regparm_args".into(),
                vec![
                    param("a", "int", 4, frame, Signed),
                    param("b", "int", 4, frame, Signed),
                    param("c", "int", 4, frame, Signed),
                    param("d", "int", 4, Stack(4), Signed),
                ],
            ),
            (
                "fastcall_args".into(),
                vec![
                    param("a", "int", 4, frame, Signed),
                    param("b", "int", 4, frame, Signed),
                    param("c", "int", 4, Stack(4), Signed)
                ],
            ),
        ]
    );
}

#[test]
fn a_table_that_does_not_fit_is_marked_with_the_size_it_needs() {
    let tiny = "const unsigned char probe_kernel_params[64] = {'K','P','A','R','N','O','N','E', 64, 0, 0, 0};";
    let path = build("tiny", &["-O2"], "", tiny);
    run(path.to_str().unwrap(), Mode::Write).expect("a table too large is no error");
    let data = std::fs::read(&path).unwrap();
    let image = elf::parse(&data).unwrap();
    let (offset, size) = image.params.unwrap();
    assert_eq!(size, 64);
    assert_eq!(data[offset..offset + 8], PARAMS_TOO_SMALL);
    let needed = u32::from_le_bytes(data[offset + 44..offset + 48].try_into().unwrap());
    // Seven functions, fifteen parameters and their strings.
    assert!(needed as usize > 48 + 7 * 12 + 15 * 24, "{needed}");
    assert_eq!(
        ParamTable::parse(&data[offset..offset + size]).err(),
        Some(ksyms_table::params::ParamsInvalid::TooSmall(needed))
    );
    // The symbol table is written all the same.
    let (table, table_size) = image.table;
    assert!(ksyms_table::Table::open(&data[table..table + table_size]).is_ok());
}

#[test]
fn an_image_without_a_parameter_static_keeps_working() {
    let path = build("none", &["-O2"], "", "");
    run(path.to_str().unwrap(), Mode::Write).expect("no parameter static: only the symbol table");
    let data = std::fs::read(&path).unwrap();
    assert!(elf::parse(&data).unwrap().params.is_none());
}
