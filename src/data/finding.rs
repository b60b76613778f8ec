//! What validation reports: one [`Finding`] per problem, with where it is.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// The kinds of problem validation knows. Their snake_case names are part of
/// the `--json` output that scripts rely on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    InvalidJson,
    InvalidUtf8,
    ByteOrderMark,
    ControlCharacter,
    UnknownShape,
    MixedFormat,
    MissingField,
    EmptyField,
    WrongType,
    NoAssistantReply,
    EmptyReply,
    RoleOrder,
    ShortOutput,
    Duplicate,
    PreferenceRecord,
    EmptyFiles,
    UnsafePath,
    DuplicatePath,
    SyntaxError,
    TooLong,
    ExecutableTestConfig,
    DuplicateKey,
    /// The model's chat template leaves part of the sample out (tool calls,
    /// tool schemas).
    DroppedByTemplate,
}

impl FindingKind {
    pub fn name(self) -> &'static str {
        match self {
            FindingKind::InvalidJson => "invalid_json",
            FindingKind::InvalidUtf8 => "invalid_utf8",
            FindingKind::ByteOrderMark => "byte_order_mark",
            FindingKind::ControlCharacter => "control_character",
            FindingKind::UnknownShape => "unknown_shape",
            FindingKind::MixedFormat => "mixed_format",
            FindingKind::MissingField => "missing_field",
            FindingKind::EmptyField => "empty_field",
            FindingKind::WrongType => "wrong_type",
            FindingKind::NoAssistantReply => "no_assistant_reply",
            FindingKind::EmptyReply => "empty_reply",
            FindingKind::RoleOrder => "role_order",
            FindingKind::ShortOutput => "short_output",
            FindingKind::Duplicate => "duplicate",
            FindingKind::PreferenceRecord => "preference_record",
            FindingKind::EmptyFiles => "empty_files",
            FindingKind::UnsafePath => "unsafe_path",
            FindingKind::DuplicatePath => "duplicate_path",
            FindingKind::SyntaxError => "syntax_error",
            FindingKind::TooLong => "too_long",
            FindingKind::ExecutableTestConfig => "executable_test_config",
            FindingKind::DuplicateKey => "duplicate_key",
            FindingKind::DroppedByTemplate => "dropped_by_template",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// 1-based line of the file where the record starts.
    pub line: usize,
    /// 1-based column, where the problem has a precise position on the line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    /// JSON path of the field inside the record (empty for the whole record).
    pub field: String,
    pub kind: FindingKind,
    pub severity: Severity,
    pub message: String,
}

/// A problem found inside one record, before it is tied to a file line.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub field: String,
    pub kind: FindingKind,
    pub severity: Severity,
    pub message: String,
}

impl Problem {
    pub fn error(kind: FindingKind, field: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            field: field.into(),
            kind,
            severity: Severity::Error,
            message: message.into(),
        }
    }

    pub fn warning(
        kind: FindingKind,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Problem {
            severity: Severity::Warning,
            ..Problem::error(kind, field, message)
        }
    }

    pub fn at_line(self, line: usize) -> Finding {
        Finding {
            line,
            column: None,
            field: self.field,
            kind: self.kind,
            severity: self.severity,
            message: self.message,
        }
    }
}
