#!/usr/bin/env python3
"""Embed a kernel image's function symbols into its own `.ksyms` table, in place.

Why this exists: backtraces and symbol-based probes need name -> address and
address -> name+offset/size at run time, under every boot path (GRUB's
Multiboot2 ISO and QEMU's `-kernel`), and no loader hands the kernel its ELF
symbols. So after linking, this tool reads the image's own .symtab, demangles
the Rust names, and writes a sorted table into the bytes of the
`probe_kernel_ksyms` static (kernel/symbols.rs), whose size is fixed at link
time. Nothing moves, so the patched file is the very image that was linked.

    tools/ksyms.py [--dump] KERNEL.elf

boot/run.sh runs it on every kernel image before booting. It is idempotent
(the table depends only on .symtab, which it never changes) and leaves the
file untouched when the table is already current. `--dump` prints the table
it would write (address, size, name) instead of writing it.

Table format (little-endian; offsets are from the table's first byte; must
match kernel/symbols.rs):

    header, 48 bytes:
      0  magic[8]       b"KSYMNONE" as compiled (empty), b"KSYMTAB1" when filled
      8  capacity u32   total table bytes (set by the compiler)
     12  count u32      number of symbols
     16  entries u32    offset of `count` entries, sorted by address
     20  by_name u32    offset of `count` u32 entry indices, sorted by name
     24  strings u32    offset of the name bytes
     28  strings_len u32
     32  used u32       bytes in use (header included)
     36  adler32 u32    Adler-32 of bytes [48, used)
     40  reserved[8]    zero
    entry, 16 bytes:
      0  address u32    first byte of the function
      4  size u32       bytes (never 0)
      8  name u32       offset of the name within the strings
     12  name_len u16   bytes (UTF-8, no terminator needed)
     14  flags u16      bit 0: global; bit 1: typed STT_FUNC (else an asm label);
                        bit 2: nested (a label inside another symbol's range;
                        lookups by address prefer the enclosing function)
    names are stored each followed by a NUL (for debuggers; not counted).

Entries with the same address are ordered most-preferred first (functions
before labels, global before local, then by name); `by_name` is ordered by
(name bytes, address).
"""
import bisect
import re
import struct
import sys
import zlib

MAGIC_EMPTY = b"KSYMNONE"
MAGIC_FILLED = b"KSYMTAB1"
TABLE_SYMBOL = "probe_kernel_ksyms"
HEADER = struct.Struct("<8s8I8x")
HEADER_SIZE = HEADER.size  # 48
ENTRY = struct.Struct("<IIIHH")
FLAG_GLOBAL, FLAG_FUNC, FLAG_NESTED = 1, 2, 4

SHT_SYMTAB, SHT_NOBITS = 2, 8
SHF_EXECINSTR = 0x4
STT_NOTYPE, STT_FUNC = 0, 2
STB_LOCAL, STB_GLOBAL, STB_WEAK = 0, 1, 2
SHN_LORESERVE = 0xFF00

# Linker-script markers such as __text_start / __kprobes_text_end: addresses,
# not code. They would otherwise pass for asm labels.
MARKER = re.compile(r"^__\w*_(start|end)$")


class KsymsError(Exception):
    pass


# --------------------------------------------------------------------------
# Rust demangling (v0 `_R...` and legacy `_ZN...E`), printed like
# rustc-demangle's alternate form: no crate disambiguators, no hashes, and
# (our simplification) no lifetimes.
# --------------------------------------------------------------------------

BASIC_TYPES = {
    "a": "i8", "b": "bool", "c": "char", "d": "f64", "e": "str", "f": "f32",
    "h": "u8", "i": "isize", "j": "usize", "l": "i32", "m": "u32", "n": "i128",
    "o": "u128", "s": "i16", "t": "u16", "u": "()", "v": "...", "x": "i64",
    "y": "u64", "z": "!", "p": "_",
}
MAX_DEPTH = 300


class Invalid(Exception):
    pass


class V0:
    """A recursive-descent printer for one v0 symbol (the text after `_R`)."""

    def __init__(self, sym):
        self.s = sym
        self.i = 0
        self.depth = 0

    def peek(self):
        return self.s[self.i] if self.i < len(self.s) else ""

    def eat(self, c):
        if self.i < len(self.s) and self.s[self.i] == c:
            self.i += 1
            return True
        return False

    def next(self):
        if self.i >= len(self.s):
            raise Invalid
        c = self.s[self.i]
        self.i += 1
        return c

    def push(self):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise Invalid

    def pop(self):
        self.depth -= 1

    def integer_62(self):
        if self.eat("_"):
            return 0
        x = 0
        while not self.eat("_"):
            c = self.next()
            if "0" <= c <= "9":
                d = ord(c) - 48
            elif "a" <= c <= "z":
                d = ord(c) - 97 + 10
            elif "A" <= c <= "Z":
                d = ord(c) - 65 + 36
            else:
                raise Invalid
            x = x * 62 + d
        return x + 1

    def opt_integer_62(self, tag):
        return self.integer_62() + 1 if self.eat(tag) else 0

    def disambiguator(self):
        return self.opt_integer_62("s")

    def ident(self):
        puny = self.eat("u")
        start = self.i
        while self.peek().isdigit():
            self.i += 1
        if start == self.i:
            raise Invalid
        digits = self.s[start:self.i]
        if len(digits) > 1 and digits[0] == "0":
            raise Invalid
        n = int(digits)
        self.eat("_")
        if self.i + n > len(self.s):
            raise Invalid
        text = self.s[self.i:self.i + n]
        self.i += n
        if puny:
            ascii_part, _, code = text.rpartition("_")
            try:
                text = (ascii_part + "-" + code).encode("ascii").decode("punycode")
            except Exception:
                raise Invalid from None
        return text

    def hex_nibbles(self):
        start = self.i
        while True:
            c = self.next()
            if c == "_":
                return self.s[start:self.i - 1]
            if c not in "0123456789abcdef":
                raise Invalid

    def backref(self, method, *args):
        here = self.i - 1  # the 'B'
        target = self.integer_62()
        if target >= here:
            raise Invalid
        saved = self.i
        self.i = target
        self.push()
        try:
            return method(*args)
        finally:
            self.pop()
            self.i = saved

    def sep_list(self, item, sep):
        parts = []
        while not self.eat("E"):
            if self.i >= len(self.s):
                raise Invalid
            part = item()
            if part is not None:
                parts.append(part)
        return sep.join(parts), len(parts)

    def path(self, in_value):
        self.push()
        tag = self.next()
        if tag == "C":
            self.disambiguator()
            out = self.ident()
        elif tag == "N":
            ns = self.next()
            if not ns.isalpha():
                raise Invalid
            prefix = self.path(in_value)
            dis = self.disambiguator()
            name = self.ident()
            if ns.isupper():
                label = {"C": "closure", "S": "shim"}.get(ns, ns)
                if name:
                    label += ":" + name
                out = "%s::{%s#%d}" % (prefix, label, dis)
            else:
                out = prefix + "::" + name if name else prefix
        elif tag in "MXY":
            if tag != "Y":
                self.disambiguator()
                self.path(False)  # the impl's own path: not printed
            ty = self.type()
            if tag == "M":
                out = "<%s>" % ty
            else:
                out = "<%s as %s>" % (ty, self.path(False))
        elif tag == "I":
            base = self.path(in_value)
            args, n = self.sep_list(self.generic_arg, ", ")
            out = "%s%s<%s>" % (base, "::" if in_value else "", args) if n else base
        elif tag == "B":
            out = self.backref(self.path, in_value)
        else:
            raise Invalid
        self.pop()
        return out

    def generic_arg(self):
        if self.eat("L"):
            self.integer_62()
            return None  # lifetimes are erased in code; leave them out
        if self.eat("K"):
            return self.const(False)
        return self.type()

    def binder(self):
        self.opt_integer_62("G")

    def type(self):
        self.eat("w")
        tag = self.next()
        if tag in BASIC_TYPES:
            return BASIC_TYPES[tag]
        self.push()
        if tag in "RQ":
            if self.eat("L"):
                self.integer_62()
            out = ("&" if tag == "R" else "&mut ") + self.type()
        elif tag in "PO":
            out = ("*const " if tag == "P" else "*mut ") + self.type()
        elif tag == "A":
            ty = self.type()
            out = "[%s; %s]" % (ty, self.const(True))
        elif tag == "S":
            out = "[%s]" % self.type()
        elif tag == "T":
            items, n = self.sep_list(self.type, ", ")
            out = "(%s,)" % items if n == 1 else "(%s)" % items
        elif tag == "F":
            self.binder()
            unsafe = self.eat("U")
            abi = None
            if self.eat("K"):
                abi = "C" if self.eat("C") else self.ident().replace("_", "-")
            args, _ = self.sep_list(self.type, ", ")
            out = ("unsafe " if unsafe else "") + ('extern "%s" ' % abi if abi else "") + "fn(%s)" % args
            if not self.eat("u"):
                out += " -> " + self.type()
        elif tag == "D":
            self.binder()
            traits, _ = self.sep_list(self.dyn_trait, " + ")
            if not self.eat("L"):
                raise Invalid
            self.integer_62()
            out = "dyn " + traits
        elif tag == "B":
            out = self.backref(self.type)
        elif tag == "W":
            out = "%s is %s" % (self.type(), self.pattern())
        else:
            self.i -= 1
            out = self.path(False)
        self.pop()
        return out

    def dyn_trait(self):
        # Keep an `I` path's `<...>` open for associated-type bindings.
        text, open_ = self.dyn_trait_path()
        while self.eat("p"):
            text += ", " if open_ else "<"
            open_ = True
            name = self.ident()
            value = self.const(False) if self.eat("K") else self.type()
            text += "%s = %s" % (name, value)
        return text + (">" if open_ else "")

    def dyn_trait_path(self):
        if self.eat("B"):
            return self.backref(self.dyn_trait_path)
        if self.eat("I"):
            base = self.path(False)
            args, n = self.sep_list(self.generic_arg, ", ")
            return (base + "<" + args, True) if n else (base, False)
        return self.path(False), False

    def pattern(self):
        tag = self.next()
        if tag == "R":
            return self.const(False) + "..=" + self.const(False)
        if tag == "O":
            pats = [self.pattern()]
            while not self.eat("E"):
                if self.i >= len(self.s):
                    raise Invalid
                pats.append(self.pattern())
            return " | ".join(pats)
        if tag == "N":
            return "!null"
        raise Invalid

    def const(self, in_value):
        tag = self.next()
        self.push()
        braces = False
        if tag == "p":
            out = "_"
        elif tag in "htmyoj":
            out = self.const_uint()
        elif tag in "aslxni":
            neg = self.eat("n")
            out = ("-" if neg else "") + self.const_uint()
        elif tag == "b":
            v = self.hex_nibbles()
            out = {"0": "false", "1": "true"}.get(v.lstrip("0") or "0")
            if out is None:
                raise Invalid
        elif tag == "c":
            out = repr(chr(int(self.hex_nibbles() or "0", 16)))
        elif tag == "e":
            braces = not in_value
            out = "*" + self.const_str()
        elif tag in "RQ":
            if tag == "R" and self.eat("e"):
                out = self.const_str()
            else:
                braces = not in_value
                out = ("&" if tag == "R" else "&mut ") + self.const(True)
        elif tag == "A":
            braces = not in_value
            out = "[%s]" % self.sep_list(lambda: self.const(True), ", ")[0]
        elif tag == "T":
            braces = not in_value
            items, n = self.sep_list(lambda: self.const(True), ", ")
            out = "(%s,)" % items if n == 1 else "(%s)" % items
        elif tag == "V":
            braces = not in_value
            out = self.path(True)
            kind = self.next()
            if kind == "T":
                out += "(%s)" % self.sep_list(lambda: self.const(True), ", ")[0]
            elif kind == "S":
                def field():
                    self.disambiguator()
                    return "%s: %s" % (self.ident(), self.const(True))
                out += " { %s }" % self.sep_list(field, ", ")[0]
            elif kind != "U":
                raise Invalid
        elif tag == "B":
            out = self.backref(self.const, in_value)
        else:
            raise Invalid
        self.pop()
        return "{%s}" % out if braces else out

    def const_uint(self):
        hexits = self.hex_nibbles()
        if len(hexits) <= 16:
            return str(int(hexits or "0", 16))
        return "0x" + hexits

    def const_str(self):
        hexits = self.hex_nibbles()
        if len(hexits) % 2:
            raise Invalid
        try:
            return '"%s"' % bytes.fromhex(hexits).decode("utf-8").encode("unicode_escape").decode("ascii")
        except ValueError:
            raise Invalid from None


def demangle_v0(inner):
    if not inner or not ("A" <= inner[0] <= "Z"):
        raise Invalid
    p = V0(inner)
    text = p.path(True)
    # The instantiating crate (another path) may follow; it is not printed.
    if "A" <= p.peek() <= "Z":
        p.path(False)
    return text, inner[p.i:]


LEGACY_ESCAPES = {
    "SP": "@", "BP": "*", "RF": "&", "LT": "<", "GT": ">", "LP": "(", "RP": ")", "C": ",",
}


def demangle_legacy(inner):
    """`inner` is what follows `_ZN`; returns (text, rest after the `E`)."""
    parts = []
    i = 0
    while True:
        if i >= len(inner):
            raise Invalid
        if inner[i] == "E":
            i += 1
            break
        j = i
        while j < len(inner) and inner[j].isdigit():
            j += 1
        if j == i:
            raise Invalid
        n = int(inner[i:j])
        part = inner[j:j + n]
        if len(part) != n:
            raise Invalid
        parts.append(part)
        i = j + n
    if parts and re.fullmatch(r"h[0-9a-f]{16}", parts[-1]):
        parts.pop()
    out = []
    for part in parts:
        if part.startswith("_$"):
            part = part[1:]
        text = []
        k = 0
        while k < len(part):
            if part.startswith("..", k):
                text.append("::")
                k += 2
            elif part[k] == ".":
                text.append(".")
                k += 1
            elif part[k] == "$":
                end = part.find("$", k + 1)
                if end < 0:
                    raise Invalid
                code = part[k + 1:end]
                if code in LEGACY_ESCAPES:
                    text.append(LEGACY_ESCAPES[code])
                elif code.startswith("u") and re.fullmatch(r"u[0-9a-f]+", code):
                    text.append(chr(int(code[1:], 16)))
                else:
                    raise Invalid
                k = end + 1
            else:
                text.append(part[k])
                k += 1
        out.append("".join(text))
    return "::".join(out), inner[i:]


LLVM_SUFFIX = re.compile(r"\.llvm\.[0-9A-Za-z]+(?=$|@)")


def demangle(name):
    """A readable name for `name`; non-Rust names come back as they are."""
    plain = LLVM_SUFFIX.sub("", name)
    try:
        if plain.startswith("_R"):
            inner = plain[2:]
            if inner[:1].isdigit():  # encoding version: only 0 (v0) exists
                raise Invalid
            text, rest = demangle_v0(inner)
        elif plain.startswith("_ZN"):
            text, rest = demangle_legacy(plain[3:])
        else:
            return plain
    except (Invalid, RecursionError, IndexError, ValueError):
        return plain
    # A vendor suffix such as `.cold` or `.1` stays visible.
    return text + rest if rest[:1] in (".", "$", "") else plain


# --------------------------------------------------------------------------
# ELF32 little-endian
# --------------------------------------------------------------------------

class Section:
    def __init__(self, raw):
        (self.name_off, self.type, self.flags, self.addr, self.offset,
         self.size, self.link, self.info, self.align, self.entsize) = raw
        self.name = ""


def read_elf(f, path):
    ident = f.read(52)
    if len(ident) < 52 or ident[:4] != b"\x7fELF":
        raise KsymsError("%s: not an ELF file" % path)
    if ident[4] != 1 or ident[5] != 1:
        raise KsymsError("%s: not ELF32 little-endian (class %d, data %d)" % (path, ident[4], ident[5]))
    e_shoff, = struct.unpack_from("<I", ident, 0x20)
    e_shentsize, e_shnum, e_shstrndx = struct.unpack_from("<HHH", ident, 0x2E)
    if e_shoff == 0 or e_shnum == 0 or e_shentsize < 40:
        raise KsymsError("%s: no section headers" % path)
    f.seek(e_shoff)
    raw = f.read(e_shentsize * e_shnum)
    sections = [Section(struct.unpack_from("<10I", raw, k * e_shentsize)) for k in range(e_shnum)]
    if e_shstrndx < e_shnum:
        names = read_at(f, sections[e_shstrndx].offset, sections[e_shstrndx].size)
        for s in sections:
            s.name = cstr(names, s.name_off)
    return sections


def read_at(f, offset, size):
    f.seek(offset)
    data = f.read(size)
    if len(data) != size:
        raise KsymsError("truncated ELF file (wanted %d bytes at %#x)" % (size, offset))
    return data


def cstr(blob, offset):
    end = blob.find(b"\0", offset)
    return blob[offset:end if end >= 0 else len(blob)].decode("utf-8", "replace")


def read_symbols(f, sections, path):
    symtabs = [s for s in sections if s.type == SHT_SYMTAB]
    if not symtabs:
        raise KsymsError("%s: no .symtab (was the image stripped?)" % path)
    symtab = symtabs[0]
    if symtab.link >= len(sections):
        raise KsymsError("%s: .symtab links to a missing string table" % path)
    strtab = read_at(f, sections[symtab.link].offset, sections[symtab.link].size)
    data = read_at(f, symtab.offset, symtab.size)
    size = symtab.entsize or 16
    return strtab, [(cstr(strtab, n), v, sz, info, shndx)
                    for n, v, sz, info, _other, shndx in struct.iter_unpack("<IIIBBH", data[:len(data) // size * size])]


# --------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------

def collect(sections, symbols):
    """[(address, size, name, flags)] for every function, sorted and deduplicated."""
    candidates = []  # (address, raw size, name, flags, shndx)
    for name, value, size, info, shndx in symbols:
        kind, bind = info & 0xF, info >> 4
        if kind not in (STT_FUNC, STT_NOTYPE) or not name or shndx == 0 or shndx >= SHN_LORESERVE:
            continue
        if shndx >= len(sections) or not sections[shndx].flags & SHF_EXECINSTR:
            continue
        if sections[shndx].type == SHT_NOBITS or name.startswith(".L") or name.startswith("$"):
            continue
        if kind == STT_NOTYPE and MARKER.match(name):
            continue
        flags = (FLAG_FUNC if kind == STT_FUNC else 0) | (FLAG_GLOBAL if bind in (STB_GLOBAL, STB_WEAK) else 0)
        candidates.append((value, size, name, flags, shndx))

    # Per section: starts (for sizing labels) and sized ranges (for nesting).
    by_section = {}
    for c in candidates:
        by_section.setdefault(c[4], []).append(c)
    out = {}
    for shndx, items in by_section.items():
        sec = sections[shndx]
        section_end = sec.addr + sec.size
        starts = sorted({c[0] for c in items})
        sized = sorted((c[0], c[0] + c[1]) for c in items if c[1] > 0)
        # Running maximum of sized ends, to find an enclosing range quickly.
        max_end, best = [], 0
        for start, end in sized:
            best = max(best, end)
            max_end.append(best)
        sized_starts = [s for s, _ in sized]
        for address, size, name, flags, _ in items:
            # The furthest-reaching sized symbol that starts strictly before us.
            k = bisect.bisect_left(sized_starts, address) - 1
            enclosing_end = max_end[k] if k >= 0 else 0
            nested = enclosing_end > address
            if size == 0:
                j = bisect.bisect_right(starts, address)
                end = starts[j] if j < len(starts) else section_end
                if nested:
                    end = min(end, enclosing_end)
                size = end - address
            if size <= 0:
                continue
            if nested:
                flags |= FLAG_NESTED
            text = demangle(name)
            key = (address, text)
            old = out.get(key)
            # Duplicates (same address and name): keep the most telling one.
            if old is None or (flags & ~FLAG_NESTED, size) > (old[3] & ~FLAG_NESTED, old[1]):
                out[key] = (address, size, text, flags)
    # Same address: not nested first, functions before labels, globals first, then name.
    return sorted(out.values(), key=lambda e: (e[0], bool(e[3] & FLAG_NESTED), not e[3] & FLAG_FUNC,
                                                not e[3] & FLAG_GLOBAL, e[2]))


def build_table(entries, capacity):
    # name_len is a u16: cut (on a character boundary) what cannot fit.
    encoded = [e[2].encode("utf-8")[:0xFFFF].decode("utf-8", "ignore").encode("utf-8") for e in entries]
    count = len(entries)
    entries_off = HEADER_SIZE
    by_name_off = entries_off + count * ENTRY.size
    strings_off = by_name_off + count * 4
    strings = bytearray()
    body = bytearray()
    for (address, size, _name, flags), name in zip(entries, encoded):
        body += ENTRY.pack(address, size, len(strings), len(name), flags)
        strings += name + b"\0"
    order = sorted(range(count), key=lambda k: (encoded[k], entries[k][0], k))
    body += struct.pack("<%dI" % count, *order)
    body += strings
    used = HEADER_SIZE + len(body)
    header = HEADER.pack(MAGIC_FILLED, capacity, count, entries_off, by_name_off, strings_off,
                         len(strings), used, zlib.adler32(body) & 0xFFFFFFFF)
    return header + body, used


def find_table(f, sections, symbols, path):
    """(file offset, size) of the table: a `.ksyms` section, else the static's symbol."""
    for s in sections:
        if s.name == ".ksyms":
            if s.type == SHT_NOBITS:
                raise KsymsError("%s: .ksyms is NOBITS; its static must not be all zeros" % path)
            return s.offset, s.size
    for name, value, size, info, shndx in symbols:
        if name == TABLE_SYMBOL and 0 < shndx < len(sections):
            sec = sections[shndx]
            if sec.type == SHT_NOBITS:
                raise KsymsError("%s: %s lies in NOBITS section %s" % (path, TABLE_SYMBOL, sec.name))
            if not sec.addr <= value <= value + size <= sec.addr + sec.size:
                raise KsymsError("%s: %s lies outside its section %s" % (path, TABLE_SYMBOL, sec.name))
            return sec.offset + value - sec.addr, size
    raise KsymsError("%s: no .ksyms section and no %s symbol: is kernel/symbols.rs linked in?"
                     % (path, TABLE_SYMBOL))


def main(argv):
    args = argv[1:]
    dump = "--dump" in args
    args = [a for a in args if a != "--dump"]
    if len(args) != 1:
        print("usage: ksyms.py [--dump] KERNEL.elf", file=sys.stderr)
        return 2
    path = args[0]
    try:
        with open(path, "rb" if dump else "r+b") as f:
            sections = read_elf(f, path)
            _strtab, symbols = read_symbols(f, sections, path)
            offset, size = find_table(f, sections, symbols, path)
            current = read_at(f, offset, size)
            if current[:8] not in (MAGIC_EMPTY, MAGIC_FILLED):
                raise KsymsError("%s: the table at file offset %#x has magic %r, not %r or %r"
                                 % (path, offset, current[:8], MAGIC_EMPTY, MAGIC_FILLED))
            capacity, = struct.unpack_from("<I", current, 8)
            if capacity != size:
                raise KsymsError("%s: the table's capacity field says %d bytes but its symbol/section "
                                 "is %d bytes" % (path, capacity, size))
            entries = collect(sections, symbols)
            if dump:
                for address, sz, name, flags in entries:
                    print("%08x %6x %s%s" % (address, sz, "*" if flags & FLAG_NESTED else " ", name))
                return 0
            table, used = build_table(entries, size)
            if used > size:
                raise KsymsError(
                    "%s: the symbol table needs %d bytes (%d symbols) but .ksyms holds only %d; "
                    "raise CAPACITY in kernel/symbols.rs to at least %d (%d KiB)"
                    % (path, used, len(entries), size, used, (used + 1023) // 1024))
            image = table + bytes(size - used)
            if image != current:
                f.seek(offset)
                f.write(image)
    except (OSError, KsymsError) as e:
        print("ksyms.py: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
