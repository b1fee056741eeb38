//! The fields an expression may name: the event's own (from its `format`
//! file), the common header's, and Linux's generic `cpu` and `comm`.
//!
//! The event's fields come as probe-events' [`Field`]s: that is the record
//! layout the kernel already builds for each event (and shows in its
//! `format` file), so this crate takes it as is rather than asking the
//! kernel for a second description. Only the name, C type, offset, size
//! and sign matter here.
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use probe_events::ProbeDefinition;
use probe_events::show::Field;

/// How an expression reads a field (Linux's `filter_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldKind {
    /// A number of 1, 2, 4 or 8 bytes in the record (other sizes, such
    /// as `u8[4]` arrays, compare as nothing, as in Linux).
    Number,
    /// A `__data_loc char[]`: a `u32` whose low 16 bits are the string's
    /// offset in the record and high 16 bits its length, NUL included.
    DynString,
    /// A `char[N]` inside the record.
    StaticString,
    /// The generic `comm`/`COMM`/`common_comm`: the current task's name,
    /// not part of the record.
    Comm,
    /// The generic `cpu`/`CPU`/`common_cpu`: the CPU the event fires on,
    /// not part of the record.
    Cpu,
}

/// One field an expression may name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EventField {
    name: String,
    c_type: String,
    offset: usize,
    size: usize,
    signed: bool,
    kind: FieldKind,
}

impl EventField {
    /// A record field with its `format`-file description; the kind follows
    /// from the C type as Linux's `filter_assign_type()` decides it.
    pub fn new(c_type: &str, name: &str, offset: usize, size: usize, signed: bool) -> Self {
        let kind = if c_type.contains("__data_loc") && c_type.contains("char") {
            FieldKind::DynString
        } else if c_type.contains('[') && c_type.contains("char") {
            FieldKind::StaticString
        } else {
            FieldKind::Number
        };
        EventField { name: name.to_string(), c_type: c_type.to_string(), offset, size, signed, kind }
    }

    /// A probe-events record field.
    pub fn from_field(field: &Field) -> Self {
        Self::new(&field.c_type, &field.name, field.offset, field.size, field.signed)
    }

    fn generic(c_type: &str, name: &str, signed: bool, kind: FieldKind) -> Self {
        EventField { name: name.to_string(), c_type: c_type.to_string(), offset: 0, size: 0, signed, kind }
    }

    /// The field's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The field's C type, as the `format` file shows it.
    pub fn c_type(&self) -> &str {
        &self.c_type
    }

    /// Byte offset in the record (0 for the generic fields).
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Size in bytes (0 for the generic fields).
    pub fn size(&self) -> usize {
        self.size
    }

    /// Whether the field is signed: numbers compare signed, and filter
    /// values parse as `kstrtoll`.
    pub fn is_signed(&self) -> bool {
        self.signed
    }

    /// How expressions read the field.
    pub fn kind(&self) -> FieldKind {
        self.kind
    }

    /// Whether the field is a string (Linux's `is_string_field()`).
    pub fn is_string(&self) -> bool {
        matches!(self.kind, FieldKind::DynString | FieldKind::StaticString | FieldKind::Comm)
    }
}

/// An event as filters and triggers see it: its group and name (hist
/// errors are logged as `hist:GROUP:EVENT`) and its fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventFields {
    system: String,
    event: String,
    fields: Vec<EventField>,
    generic: Vec<EventField>,
    common: Vec<EventField>,
}

impl EventFields {
    /// The event `system`/`event` whose fields after the common header
    /// are `fields` (as [`ProbeDefinition::fields`] gives them).
    pub fn new(system: &str, event: &str, fields: &[Field]) -> Self {
        Self::from_event_fields(system, event, fields.iter().map(EventField::from_field).collect())
    }

    /// The event `system`/`event` with `fields` after the common header.
    pub fn from_event_fields(system: &str, event: &str, fields: Vec<EventField>) -> Self {
        let generic = alloc::vec![
            EventField::generic("int", "CPU", true, FieldKind::Cpu),
            EventField::generic("int", "cpu", true, FieldKind::Cpu),
            EventField::generic("int", "common_cpu", true, FieldKind::Cpu),
            EventField::generic("char *", "COMM", true, FieldKind::Comm),
            EventField::generic("char *", "comm", true, FieldKind::Comm),
            EventField::generic("char *", "common_comm", true, FieldKind::Comm),
        ];
        let common = alloc::vec![
            EventField::new("unsigned short", "common_type", 0, 2, false),
            EventField::new("unsigned char", "common_flags", 2, 1, false),
            EventField::new("unsigned char", "common_preempt_count", 3, 1, false),
            EventField::new("int", "common_pid", 4, 4, true),
        ];
        EventFields { system: system.to_string(), event: event.to_string(), fields, generic, common }
    }

    /// A probe event's fields, named by its group and event.
    pub fn from_definition(definition: &ProbeDefinition) -> Self {
        Self::new(definition.group(), definition.event(), &definition.fields())
    }

    /// The event's group (Linux's subsystem).
    pub fn system(&self) -> &str {
        &self.system
    }

    /// The event's name.
    pub fn event(&self) -> &str {
        &self.event
    }

    /// The event's own fields, after the common header.
    pub fn fields(&self) -> &[EventField] {
        &self.fields
    }

    /// The field called `name`, looked up as Linux's
    /// `trace_find_event_field()`: the event's own fields first, then the
    /// generic `cpu`/`comm` ones, then the common header's.
    pub fn find(&self, name: &str) -> Option<&EventField> {
        self.fields.iter().chain(&self.generic).chain(&self.common).find(|f| f.name == name)
    }
}
