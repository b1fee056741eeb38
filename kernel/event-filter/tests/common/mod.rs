//! Shared by the tests: events made from real probe definitions, records
//! in their layout, a symbol table.
#![allow(dead_code)]

use event_filter::{Context, EventField, EventFields, SymbolInfo, Symbolizer};
use probe_events::{Command, Interface, SymbolResolver, parse_command};

/// A small kernel symbol table: (name, address, size).
pub const SYMBOLS: &[(&str, u32, u32)] = &[
    ("vfs_read", 0xc010_0000, 0x100),
    ("kernel_clone", 0xc010_0100, 0x80),
    ("checksum", 0xc10f_4d20, 0x40),
    ("kmalloc_caller", 0xc010_0300, 0x30),
];

pub struct Kernel;

impl SymbolResolver for Kernel {
    fn address_of(&self, name: &str) -> Option<usize> {
        SYMBOLS.iter().find(|s| s.0 == name).map(|s| s.1 as usize)
    }
}

impl Symbolizer for Kernel {
    fn symbolize(&self, addr: u32) -> Option<SymbolInfo<'_>> {
        SYMBOLS.iter().find(|s| addr >= s.1 && addr - s.1 < s.2).map(|s| SymbolInfo {
            name: s.0,
            offset: addr - s.1,
            size: s.2,
        })
    }
}

/// The fields of the event a probe-events command defines.
fn event(command: &str) -> EventFields {
    match parse_command(command, Interface::KprobeEvents, &Kernel) {
        Ok(Command::Create(definition)) => EventFields::from_definition(&definition),
        other => panic!("{command}: {other:?}"),
    }
}

/// `sched/fork`, laid out like Linux's sched_process_fork after the probe
/// ip: `__probe_ip` u32 at 8, `parent_comm` string at 12, `parent_pid` s32
/// at 16, `child_comm` string at 20, `child_pid` s32 at 24.
pub fn fork_event() -> EventFields {
    event(
        "p:sched/fork kernel_clone parent_comm=+0(%ax):string parent_pid=%bx:s32 child_comm=+0(%cx):string child_pid=%dx:s32",
    )
}

/// `sched/exit`, with the fork event's first fields: `__probe_ip` at 8,
/// `comm` string at 12, `pid` s32 at 16.
pub fn exit_event() -> EventFields {
    event("p:sched/exit kernel_clone comm=+0(%ax):string pid=%bx:s32")
}

/// `kmem/kmalloc`: `__probe_ip` at 8, `call_site` u32 at 12, `bytes_req`
/// u32 at 16, `bytes_alloc` u32 at 20, `gfp_flags` u32 at 24, `delta` s32
/// at 28, `big` u64 at 32.
pub fn kmalloc_event() -> EventFields {
    event(
        "p:kmem/kmalloc vfs_read call_site=%ax:x32 bytes_req=%bx:u32 bytes_alloc=%cx:u32 gfp_flags=%dx:x32 \
         delta=%si:s32 big=%di:u64",
    )
}

/// Linux's filter self-test event (`ftrace_test_filter`): ints `a`..`h`
/// at 8, 12, ..., 36.
pub fn test_event() -> EventFields {
    let fields =
        "abcdefgh".chars().enumerate().map(|(i, name)| EventField::new("int", &name.to_string(), 8 + 4 * i, 4, true));
    EventFields::from_event_fields("test", "ftrace_test_filter", fields.collect())
}

/// A value in a record.
#[derive(Clone, Copy, Debug)]
pub enum V<'a> {
    U8(u8),
    U16(u16),
    U32(u32),
    I32(i32),
    U64(u64),
    /// A `__data_loc char[]`: the string goes after the fixed part.
    Str(&'a str),
}

/// A record: the common header (type 1, flags 0, preempt count 0, `pid`),
/// then `values` in order, strings in the dynamic area after them.
pub fn record(pid: i32, values: &[V]) -> Vec<u8> {
    let mut fixed = Vec::new();
    fixed.extend(1u16.to_le_bytes());
    fixed.push(0);
    fixed.push(0);
    fixed.extend(pid.to_le_bytes());
    let fixed_len = 8 + values
        .iter()
        .map(|v| match v {
            V::U8(_) => 1,
            V::U16(_) => 2,
            V::U32(_) | V::I32(_) | V::Str(_) => 4,
            V::U64(_) => 8,
        })
        .sum::<usize>();
    let mut dynamic = Vec::new();
    for value in values {
        match *value {
            V::U8(v) => fixed.push(v),
            V::U16(v) => fixed.extend(v.to_le_bytes()),
            V::U32(v) => fixed.extend(v.to_le_bytes()),
            V::I32(v) => fixed.extend(v.to_le_bytes()),
            V::U64(v) => fixed.extend(v.to_le_bytes()),
            V::Str(s) => {
                let offset = fixed_len + dynamic.len();
                let len = s.len() + 1;
                fixed.extend(((len << 16) as u32 | offset as u32).to_le_bytes());
                dynamic.extend(s.as_bytes());
                dynamic.push(0);
            }
        }
    }
    fixed.extend(dynamic);
    fixed
}

/// A fork record: probe ip, parent comm and pid, child comm and pid.
pub fn fork(parent_comm: &str, parent_pid: i32, child_comm: &str, child_pid: i32) -> Vec<u8> {
    record(
        parent_pid,
        &[V::U32(0xc010_0100), V::Str(parent_comm), V::I32(parent_pid), V::Str(child_comm), V::I32(child_pid)],
    )
}

/// A kmalloc record from task `pid`.
pub fn kmalloc(pid: i32, call_site: u32, bytes_req: u32, bytes_alloc: u32) -> Vec<u8> {
    record(
        pid,
        &[
            V::U32(0xc010_0000),
            V::U32(call_site),
            V::U32(bytes_req),
            V::U32(bytes_alloc),
            V::U32(0xd0),
            V::I32(0),
            V::U64(0),
        ],
    )
}

/// A context: task `comm` on `cpu`, tracing on.
pub fn ctx(comm: &str) -> Context<'_> {
    Context { comm: comm.as_bytes(), cpu: 0, timestamp_ns: 0, tracing_on: true }
}
