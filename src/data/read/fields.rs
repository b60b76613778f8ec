//! Typed access to a record's fields that reports what is missing or wrong.

use crate::data::finding::{FindingKind, Problem};
use serde_json::{Map, Value};

pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// JSON path of `key` inside `parent` (`messages[2].content`, `files["a.py"]`).
pub fn join_key(parent: &str, key: &str) -> String {
    let plain = key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !key.is_empty();
    match (parent.is_empty(), plain) {
        (true, true) => key.to_string(),
        (false, true) => format!("{parent}.{key}"),
        (_, false) => format!("{parent}[{}]", Value::String(key.to_string())),
    }
}

pub fn join_index(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

/// A JSON object being read, with the path it sits at and where problems go.
pub struct Fields<'a, 'p> {
    pub obj: &'a Map<String, Value>,
    pub path: String,
    pub problems: &'p mut Vec<Problem>,
}

impl<'a, 'p> Fields<'a, 'p> {
    pub fn new(obj: &'a Map<String, Value>, problems: &'p mut Vec<Problem>) -> Self {
        Fields {
            obj,
            path: String::new(),
            problems,
        }
    }

    pub fn at(&self, key: &str) -> String {
        join_key(&self.path, key)
    }

    pub fn push(&mut self, problem: Problem) {
        self.problems.push(problem);
    }

    /// A required value of any type.
    pub fn required(&mut self, key: &str) -> Option<&'a Value> {
        match self.obj.get(key) {
            Some(Value::Null) | None => {
                let path = self.at(key);
                self.push(Problem::error(
                    FindingKind::MissingField,
                    path,
                    format!("required field `{key}` is missing"),
                ));
                None
            }
            Some(value) => Some(value),
        }
    }

    /// A required string (empty is allowed here; callers that need text check).
    pub fn string(&mut self, key: &str) -> Option<&'a str> {
        let value = self.required(key)?;
        self.expect_str(value, &self.at(key))
    }

    /// An optional string: absent and null are `None`, other types are reported.
    pub fn optional_string(&mut self, key: &str) -> Option<&'a str> {
        match self.obj.get(key) {
            None | Some(Value::Null) => None,
            Some(value) => self.expect_str(value, &self.at(key)),
        }
    }

    pub fn expect_str(&mut self, value: &'a Value, path: &str) -> Option<&'a str> {
        match value {
            Value::String(s) => Some(s),
            other => {
                self.push(wrong_type(path, "a string", other));
                None
            }
        }
    }

    pub fn array(&mut self, key: &str) -> Option<&'a Vec<Value>> {
        match self.required(key)? {
            Value::Array(items) => Some(items),
            other => {
                let problem = wrong_type(&self.at(key), "an array", other);
                self.push(problem);
                None
            }
        }
    }

    pub fn element<'b>(&'b mut self, path: String, obj: &'a Map<String, Value>) -> Fields<'a, 'b> {
        Fields {
            obj,
            path,
            problems: self.problems,
        }
    }
}

pub fn wrong_type(path: &str, expected: &str, found: &Value) -> Problem {
    Problem::error(
        FindingKind::WrongType,
        path,
        format!("expected {expected}, found {}", type_name(found)),
    )
}
