//! What reading `kprobe_events` and an event's `format` file shows: the
//! examples of Linux's kprobe tracing documentation (with this kernel's
//! function names), and round trips of every kind of definition.
mod common;

use common::KERNEL;
use probe_events::{Command, Interface, ProbeDefinition, parse_command};

fn parse(command: &str) -> ProbeDefinition {
    match parse_command(command, Interface::DynamicEvents, &KERNEL) {
        Ok(Command::Create(def)) => def,
        other => panic!("{command:?}: {other:?}"),
    }
}

#[test]
fn documentation_examples() {
    let def = parse("p:myprobe checksum dfd=%ax filename=%dx flags=%cx mode=+4($stack)");
    assert_eq!(def.to_string(), "p:kprobes/myprobe checksum dfd=%ax filename=%dx flags=%cx mode=+4($stack)");
    // Without BTF a return value is named like any unnamed argument.
    let def = parse("r:myretprobe checksum $retval");
    assert_eq!(def.to_string(), "r:kprobes/myretprobe checksum arg1=$retval");
    let def = parse("p:myprobe checksum len=%ax");
    assert_eq!(def.to_string(), "p:kprobes/myprobe checksum len=%ax");
}

#[test]
fn how_each_form_prints() {
    let cases = [
        ("p vfs_read", "p:kprobes/p_vfs_read_0 vfs_read"),
        ("p vfs_read+0x10 %ax", "p:kprobes/p_vfs_read_16 vfs_read+16 arg1=%ax"),
        ("p vfs_read+0", "p:kprobes/p_vfs_read_0 vfs_read"),
        ("r vfs_read", "r:kprobes/r_vfs_read_0 vfs_read"),
        ("r16:myret vfs_read", "r16:kprobes/myret vfs_read"),
        ("p:x vfs_read%return", "r:kprobes/x vfs_read"),
        ("p:g/e 0xc0100000", "p:g/e 0xc0100000"),
        ("p 4096", "p:kprobes/p_0x00001000 0x00001000"),
        ("p:a.b mymod:func x=@jiffies+4:u8", "p:a/b mymod:func x=@jiffies+4:u8"),
        ("f vfs_read", "f:fprobes/vfs_read__entry vfs_read"),
        ("f vfs_read%return", "f:fprobes/vfs_read__exit vfs_read%return"),
        ("f:ev vfs_read $retval", "f:fprobes/ev vfs_read%return arg1=$retval"),
        ("p  vfs_read \t s=+0(%ax):string[2]  ", "p:kprobes/p_vfs_read_0 vfs_read s=+0(%ax):string[2]"),
        ("p vfs_read $comm n=\\\"hi\" %eax", "p:kprobes/p_vfs_read_0 vfs_read arg1=$comm n=\\\"hi\" arg3=%eax"),
    ];
    for (command, shown) in cases {
        let def = parse(command);
        assert_eq!(def.to_string(), shown, "{command:?}");
        // What is shown parses back to the same definition.
        let again = parse(shown);
        assert_eq!(again.to_string(), shown);
        assert_eq!((again.kind(), again.args()), (def.kind(), def.args()), "{command:?}");
    }
}

#[test]
fn format_file() {
    let def = parse("p:myprobe checksum dfd=%ax filename=+0(%dx):string flags=%cx:u16 mode=+4($stack):s8");
    let expected = "name: myprobe\n\
ID: 780\n\
format:\n\
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\
\n\
\tfield:unsigned long __probe_ip;\toffset:8;\tsize:4;\tsigned:0;\n\
\tfield:u32 dfd;\toffset:12;\tsize:4;\tsigned:0;\n\
\tfield:__data_loc char[] filename;\toffset:16;\tsize:4;\tsigned:1;\n\
\tfield:u16 flags;\toffset:20;\tsize:2;\tsigned:0;\n\
\tfield:s8 mode;\toffset:22;\tsize:1;\tsigned:1;\n\
\n\
print fmt: \"(%lx) dfd=0x%x filename=\\\"%s\\\" flags=%u mode=%d\", REC->__probe_ip, REC->dfd, \
__get_str(filename), REC->flags, REC->mode\n";
    assert_eq!(def.format_file(780), expected);
    assert_eq!(def.fixed_size(), 23);
}

#[test]
fn return_probe_format() {
    let def = parse("r:myretprobe checksum $retval t=$duration");
    let format = def.format_file(781);
    assert!(format.contains("\tfield:unsigned long __probe_func;\toffset:8;\tsize:4;\tsigned:0;\n"));
    assert!(format.contains("\tfield:unsigned long __probe_ret_ip;\toffset:12;\tsize:4;\tsigned:0;\n"));
    assert!(format.contains("\tfield:u32 arg1;\toffset:16;\tsize:4;\tsigned:0;\n"));
    assert!(format.contains("\tfield:u64 t;\toffset:20;\tsize:8;\tsigned:0;\n"));
    assert_eq!(
        def.print_fmt(),
        "\"(%lx <- %lx) arg1=0x%x t=%Lu\", REC->__probe_func, REC->__probe_ret_ip, REC->arg1, REC->t"
    );
    assert_eq!(def.header_size(), 16);
}

#[test]
fn print_formats_of_every_type() {
    let def = parse(
        "p vfs_read a=%ax:u8 b=%ax:u64 c=%ax:s16 d=%ax:s64 e=%ax:x8 f=%ax:x64 g=%ax:char \
         h=%ax:symbol i=%ax:symstr j=+0(%ax):ustring",
    );
    assert_eq!(
        def.print_fmt(),
        "\"(%lx) a=%u b=%Lu c=%d d=%Ld e=0x%x f=0x%Lx g='%c' h=%pS i=\\\"%s\\\" j=\\\"%s\\\"\", REC->__probe_ip, \
         REC->a, REC->b, REC->c, REC->d, REC->e, REC->f, REC->g, REC->h, __get_str(i), __get_str(j)"
    );
    let fields = def.fields();
    let types: Vec<_> = fields.iter().map(|f| f.c_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "unsigned long",
            "u8",
            "u64",
            "s16",
            "s64",
            "u8",
            "u64",
            "u8",
            "u32",
            "__data_loc char[]",
            "__data_loc char[]"
        ]
    );
}

#[test]
fn arrays_in_the_format() {
    let def = parse("p vfs_read buf=+0(%ax):x8[3] names=+0(%dx):string[2]");
    assert_eq!(
        def.print_fmt(),
        "\"(%lx) buf={0x%x,0x%x,0x%x} names={\\\"%s\\\",\\\"%s\\\"}\", REC->__probe_ip, REC->buf[0], \
         REC->buf[1], REC->buf[2], __get_str(names[0]), __get_str(names[1])"
    );
    let fields = def.fields();
    // Linux's format file leaves a probe array's length out.
    assert_eq!(fields[1].format_line(), "\tfield:u8 buf[];\toffset:12;\tsize:3;\tsigned:0;");
    assert_eq!(fields[2].format_line(), "\tfield:__data_loc char[][2] names;\toffset:15;\tsize:8;\tsigned:1;");
}
