//! Parsing JSON into a [`Value`] while noting keys that appear twice in one
//! object. serde_json silently keeps the last value of such a key; building
//! the value here costs the same as serde_json's own, and the duplicate shows
//! up for free where the map insert replaces an entry. The path to each value
//! is a chain of stack frames, turned into text only for a duplicate.

use super::read::{join_index, join_key};
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::map::Entry;
use serde_json::{Map, Number, Value};
use std::fmt;

/// A key given more than once in one object.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DuplicateKey {
    /// JSON path of the object (empty for the record itself).
    pub object: String,
    pub key: String,
}

/// Parses `text` as one JSON value; the second item lists every key that
/// appeared more than once in the same object, once per extra occurrence.
pub fn from_str(text: &str) -> Result<(Value, Vec<DuplicateKey>), serde_json::Error> {
    let mut duplicates = Vec::new();
    let mut de = serde_json::Deserializer::from_str(text);
    let value = ValueSeed {
        duplicates: &mut duplicates,
        at: None,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok((value, duplicates))
}

/// One step of the path to the value being read, linked to its parent.
struct Segment<'p> {
    step: Step<'p>,
    parent: Option<&'p Segment<'p>>,
}

enum Step<'k> {
    Key(&'k str),
    Index(usize),
}

/// `messages[2].content`, as the rest of validation writes paths.
fn path_of(at: Option<&Segment>) -> String {
    let mut steps = Vec::new();
    let mut next = at;
    while let Some(segment) = next {
        steps.push(&segment.step);
        next = segment.parent;
    }
    steps
        .iter()
        .rev()
        .fold(String::new(), |path, step| match step {
            Step::Key(key) => join_key(&path, key),
            Step::Index(i) => join_index(&path, *i),
        })
}

struct ValueSeed<'d, 'p> {
    duplicates: &'d mut Vec<DuplicateKey>,
    /// Where the value being read sits; `None` at the top.
    at: Option<&'p Segment<'p>>,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_, '_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Value, D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_, '_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, de: D) -> Result<Value, D::Error> {
        self.deserialize(de)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        loop {
            let here = Segment {
                step: Step::Index(items.len()),
                parent: self.at,
            };
            let seed = ValueSeed {
                duplicates: &mut *self.duplicates,
                at: Some(&here),
            };
            match seq.next_element_seed(seed)? {
                Some(item) => items.push(item),
                None => break,
            }
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let here = Segment {
                step: Step::Key(&key),
                parent: self.at,
            };
            let value = map.next_value_seed(ValueSeed {
                duplicates: &mut *self.duplicates,
                at: Some(&here),
            })?;
            // The replaced entry keeps its place, as in serde_json's maps.
            match object.entry(key) {
                Entry::Vacant(entry) => {
                    entry.insert(value);
                }
                Entry::Occupied(mut entry) => {
                    entry.insert(value);
                    self.duplicates.push(DuplicateKey {
                        object: path_of(self.at),
                        key: entry.key().clone(),
                    });
                }
            }
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::from_str;

    #[test]
    fn same_value_as_serde_json_and_the_duplicates() {
        let text = r#"{"role": "user", "n": [1, -2, 3.5, null, true, {"x": 1, "x": 2}], "role": "assistant"}"#;
        let (value, duplicates) = from_str(text).unwrap();
        let expected: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(value, expected);
        assert_eq!(
            serde_json::to_string(&value).unwrap(),
            serde_json::to_string(&expected).unwrap(),
            "key order kept"
        );
        let found: Vec<(&str, &str)> = duplicates
            .iter()
            .map(|d| (d.object.as_str(), d.key.as_str()))
            .collect();
        assert_eq!(found, [("n[5]", "x"), ("", "role")]);
        let (_, deep) = from_str(r#"{"output": {"files": {"a b.py": {"k": 1, "k": 2}}}}"#).unwrap();
        assert_eq!(deep[0].object, r#"output.files["a b.py"]"#);
        assert!(from_str(r#"{"a": 1}"#).unwrap().1.is_empty());
    }

    #[test]
    fn errors_are_serde_json_errors() {
        let e = from_str("{\"a\": 1,\n \"b\" 2}").unwrap_err();
        let expected =
            serde_json::from_str::<serde_json::Value>("{\"a\": 1,\n \"b\" 2}").unwrap_err();
        assert_eq!(e.to_string(), expected.to_string());
        assert!(from_str("{} x").is_err(), "trailing text");
    }
}
