//! The input formats tunebench reads, and how a record's format is recognised.

use serde_json::Value;
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// `{"text"}`: raw text for continued pre-training.
    Text,
    /// `{"prompt", "completion"}`.
    Completion,
    /// OpenAI chat: `{"messages": [{"role", "content"}]}`.
    Chat,
    /// `{"instruction", "input"?, "output", "system"?, "history"?}`.
    Alpaca,
    /// `{"conversations": [{"from", "value"}], "system"?, "tools"?}`.
    #[serde(rename = "sharegpt")]
    ShareGpt,
    /// `{"prompt", "context"?, "output": {"files": {path: content}}}`.
    #[serde(rename = "multifile")]
    MultiFile,
    /// `{"chosen", "rejected", ...}`: preference data, not SFT data.
    Preference,
}

impl Format {
    pub const ALL: [Format; 7] = [
        Format::Text,
        Format::Completion,
        Format::Chat,
        Format::Alpaca,
        Format::ShareGpt,
        Format::MultiFile,
        Format::Preference,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Completion => "completion",
            Format::Chat => "chat",
            Format::Alpaca => "alpaca",
            Format::ShareGpt => "sharegpt",
            Format::MultiFile => "multifile",
            Format::Preference => "preference",
        }
    }

    /// A human label for reports.
    pub fn label(self) -> &'static str {
        match self {
            Format::Text => "raw text",
            Format::Completion => "prompt/completion",
            Format::Chat => "OpenAI chat",
            Format::Alpaca => "Alpaca",
            Format::ShareGpt => "ShareGPT",
            Format::MultiFile => "multi-file code",
            Format::Preference => "preference (chosen/rejected)",
        }
    }

    /// Recognises a record's format from its keys; `None` for an unknown shape.
    pub fn detect(record: &Value) -> Option<Format> {
        let obj = record.as_object()?;
        let has = |key: &str| obj.contains_key(key);
        if has("chosen") && has("rejected") {
            return Some(Format::Preference);
        }
        if has("messages") {
            return Some(Format::Chat);
        }
        if has("conversations") {
            return Some(Format::ShareGpt);
        }
        if has("instruction") {
            return Some(Format::Alpaca);
        }
        if has("prompt") && obj.get("output").is_some_and(|o| o.get("files").is_some()) {
            return Some(Format::MultiFile);
        }
        if has("prompt") && has("completion") {
            return Some(Format::Completion);
        }
        if has("text") {
            return Some(Format::Text);
        }
        None
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.to_ascii_lowercase().replace(['-', '_'], "");
        let alias = match wanted.as_str() {
            "openai" | "messages" => "chat",
            "raw" => "text",
            "code" | "files" => "multifile",
            "dpo" => "preference",
            other => other,
        };
        Format::ALL
            .into_iter()
            .find(|f| f.name() == alias)
            .ok_or_else(|| {
                let names: Vec<_> = Format::ALL.iter().map(|f| f.name()).collect();
                format!("unknown format `{s}`; expected one of {}", names.join(", "))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::Format;

    #[test]
    fn json_names_are_the_cli_names() {
        for format in Format::ALL {
            assert_eq!(serde_json::to_value(format).unwrap(), format.name());
            assert_eq!(format.name().parse::<Format>().unwrap(), format);
        }
    }
}
