//! Values valid for a JSON schema: tool call arguments and structured outputs. The sim
//! has no model, so it builds the simplest instance the schema accepts, deterministically:
//! `const`, then the first `enum` value, the first `anyOf`/`oneOf` branch, the merge of
//! `allOf` objects; objects carry every listed and every `required` property, arrays
//! `max(1, minItems)` items, numbers stay within `minimum`/`maximum` (exclusive or not),
//! strings honour `format`, `minLength` and `maxLength` and otherwise quote the prompt.
//! Local `$ref`s (`#/$defs/…`) are followed. Not honoured: `pattern`, `multipleOf` on
//! non-integers, `not`, `if`/`then`, `dependentRequired`.

use super::digest;
use serde_json::{json, Map, Value};

/// Nesting followed before giving up with `null`, so recursive `$ref`s end.
const MAX_DEPTH: usize = 16;

/// An instance of `schema`; strings are derived from `text`.
pub(super) fn instance(schema: &Value, text: &str) -> Value {
    let text = if text.trim().is_empty() {
        "sim"
    } else {
        text.trim()
    };
    Generator { root: schema, text }.value(schema, &Spot::default())
}

struct Generator<'a> {
    /// The whole schema, which `$ref`s point into.
    root: &'a Value,
    text: &'a str,
}

/// Where in the instance a value goes: varies numbers and strings between properties
/// and between the items of an array.
#[derive(Default, Clone)]
struct Spot {
    depth: usize,
    /// Hash of the property path.
    salt: u64,
    /// Index of the array item (0 outside arrays).
    nth: usize,
}

impl Spot {
    fn property(&self, name: &str) -> Self {
        let salt = digest::of_parts([&self.salt.to_le_bytes()[..], name.as_bytes()]);
        Self {
            depth: self.depth + 1,
            salt,
            nth: self.nth,
        }
    }

    fn item(&self, nth: usize) -> Self {
        Self {
            depth: self.depth + 1,
            nth: self.nth + nth,
            ..self.clone()
        }
    }

    fn deeper(&self) -> Self {
        Self {
            depth: self.depth + 1,
            ..self.clone()
        }
    }
}

impl Generator<'_> {
    fn value(&self, schema: &Value, at: &Spot) -> Value {
        let Some(s) = schema.as_object() else {
            return json!(self.text); // `true` or `{}`-like: anything goes
        };
        if at.depth > MAX_DEPTH {
            return Value::Null;
        }
        if let Some(r) = s.get("$ref").and_then(Value::as_str) {
            return self.reference(r, at);
        }
        if let Some(c) = s.get("const") {
            return c.clone();
        }
        if let Some(first) = first_of(s, "enum") {
            return first.clone();
        }
        if let Some(first) = first_of(s, "anyOf").or_else(|| first_of(s, "oneOf")) {
            return self.value(first, &at.deeper());
        }
        if let Some(all) = s.get("allOf").and_then(Value::as_array) {
            return self.all_of(all, at);
        }
        self.typed(s, at)
    }

    fn typed(&self, s: &Map<String, Value>, at: &Spot) -> Value {
        match kind(s) {
            "object" => self.object(s, at),
            "array" => self.array(s, at),
            "integer" => integer(s, at),
            "number" => number(s, at),
            "boolean" => Value::Bool(true),
            "null" => Value::Null,
            _ => json!(self.string(s, at)),
        }
    }

    fn reference(&self, r: &str, at: &Spot) -> Value {
        let target = match r {
            "#" => Some(self.root),
            _ => r.strip_prefix('#').and_then(|p| self.root.pointer(p)),
        };
        target.map_or(Value::Null, |t| self.value(t, &at.deeper()))
    }

    /// The branches' objects merged, or the first branch's value when they are not all
    /// objects.
    fn all_of(&self, branches: &[Value], at: &Spot) -> Value {
        let values: Vec<Value> = branches
            .iter()
            .map(|b| self.value(b, &at.deeper()))
            .collect();
        if !values.iter().all(Value::is_object) {
            return values.into_iter().next().unwrap_or(Value::Null);
        }
        let merged = values
            .into_iter()
            .filter_map(|v| match v {
                Value::Object(m) => Some(m),
                _ => None,
            })
            .flatten()
            .collect();
        Value::Object(merged)
    }

    fn object(&self, s: &Map<String, Value>, at: &Spot) -> Value {
        let mut out = Map::new();
        if let Some(props) = s.get("properties").and_then(Value::as_object) {
            for (name, sub) in props {
                out.insert(name.clone(), self.value(sub, &at.property(name)));
            }
        }
        let required = s.get("required").and_then(Value::as_array);
        for name in required.into_iter().flatten().filter_map(Value::as_str) {
            if !out.contains_key(name) {
                let extra = s.get("additionalProperties").unwrap_or(&Value::Bool(true));
                out.insert(name.to_owned(), self.value(extra, &at.property(name)));
            }
        }
        Value::Object(out)
    }

    fn array(&self, s: &Map<String, Value>, at: &Spot) -> Value {
        let min = s
            .get("minItems")
            .and_then(Value::as_u64)
            .unwrap_or(0)
            .max(1);
        let max = s
            .get("maxItems")
            .and_then(Value::as_u64)
            .unwrap_or(u64::MAX);
        let count = usize::try_from(min.min(max)).unwrap_or(1);
        let prefix = s.get("prefixItems").and_then(Value::as_array);
        let rest = s.get("items").unwrap_or(&Value::Bool(true));
        let items = (0..count).map(|i| {
            let schema = prefix.and_then(|p| p.get(i)).unwrap_or(rest);
            self.value(schema, &at.item(i))
        });
        Value::Array(items.collect())
    }

    fn string(&self, s: &Map<String, Value>, at: &Spot) -> String {
        let formatted = s.get("format").and_then(Value::as_str).and_then(formatted);
        let text = match (formatted, at.nth) {
            (Some(f), _) => f.to_owned(),
            (None, 0) => self.text.to_owned(),
            (None, n) => format!("{} {}", self.text, n + 1),
        };
        let len = |key| {
            s.get(key)
                .and_then(Value::as_u64)
                .and_then(|n| usize::try_from(n).ok())
        };
        let mut text: String = text
            .chars()
            .take(len("maxLength").unwrap_or(usize::MAX))
            .collect();
        let short = len("minLength")
            .unwrap_or(0)
            .saturating_sub(text.chars().count());
        text.extend(std::iter::repeat('x').take(short));
        text
    }
}

fn first_of<'a>(s: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    s.get(key).and_then(Value::as_array).and_then(|a| a.first())
}

/// The schema's type: the first non-null one of a list, or guessed from its keywords.
fn kind(s: &Map<String, Value>) -> &str {
    match s.get("type") {
        Some(Value::String(t)) => t,
        Some(Value::Array(ts)) => {
            let names: Vec<&str> = ts.iter().filter_map(Value::as_str).collect();
            let named = names.iter().find(|t| **t != "null").or(names.first());
            named.copied().unwrap_or("null")
        }
        _ if s.contains_key("properties") || s.contains_key("required") => "object",
        _ if s.contains_key("items") || s.contains_key("prefixItems") => "array",
        _ if s.contains_key("minimum") || s.contains_key("maximum") => "number",
        _ => "string",
    }
}

/// A fixed valid example of the common string formats.
fn formatted(format: &str) -> Option<&'static str> {
    Some(match format {
        "date-time" => "2024-01-01T00:00:00Z",
        "date" => "2024-01-01",
        "time" => "00:00:00Z",
        "email" => "sim@example.com",
        "uri" | "url" | "iri" => "https://example.com/sim",
        "hostname" => "example.com",
        "uuid" => "00000000-0000-4000-8000-000000000000",
        "ipv4" => "127.0.0.1",
        "ipv6" => "::1",
        "duration" => "PT1S",
        _ => return None,
    })
}

/// A bound and whether it is exclusive: draft 6+ `exclusiveMinimum: 3`, or draft 4
/// `minimum: 3, exclusiveMinimum: true`.
fn bound(s: &Map<String, Value>, inclusive: &str, exclusive: &str) -> Option<(f64, bool)> {
    match (s.get(inclusive).and_then(Value::as_f64), s.get(exclusive)) {
        (_, Some(Value::Number(n))) => n.as_f64().map(|x| (x, true)),
        (Some(x), Some(Value::Bool(excl))) => Some((x, *excl)),
        (Some(x), _) => Some((x, false)),
        (None, _) => None,
    }
}

/// A small integer (1..=100, by position) moved into the bounds and onto `multipleOf`.
fn integer(s: &Map<String, Value>, at: &Spot) -> Value {
    let base = 1 + i64::try_from(at.salt % 100).unwrap_or(0) + i64::try_from(at.nth).unwrap_or(0);
    let lo = bound(s, "minimum", "exclusiveMinimum").map(|(x, excl)| {
        if excl {
            (x.floor() as i64).saturating_add(1)
        } else {
            x.ceil() as i64
        }
    });
    let hi = bound(s, "maximum", "exclusiveMaximum").map(|(x, excl)| {
        if excl {
            (x.ceil() as i64).saturating_sub(1)
        } else {
            x.floor() as i64
        }
    });
    let mut v = base.max(lo.unwrap_or(i64::MIN)).min(hi.unwrap_or(i64::MAX));
    if let Some(m) = s
        .get("multipleOf")
        .and_then(Value::as_i64)
        .filter(|m| *m > 0)
    {
        v -= v.rem_euclid(m);
        if lo.is_some_and(|lo| v < lo) {
            v = v.saturating_add(m);
        }
    }
    json!(v)
}

/// A number (1.5..=100.5, by position) kept as is when inside the bounds, otherwise
/// the middle of both bounds or one step inside the only one.
fn number(s: &Map<String, Value>, at: &Spot) -> Value {
    let base = 1.5 + (at.salt % 100) as f64 + at.nth as f64;
    let lo = bound(s, "minimum", "exclusiveMinimum");
    let hi = bound(s, "maximum", "exclusiveMaximum");
    let above = |(x, excl): (f64, bool)| if excl { base > x } else { base >= x };
    let below = |(x, excl): (f64, bool)| if excl { base < x } else { base <= x };
    let v = match (lo, hi) {
        _ if lo.map_or(true, above) && hi.map_or(true, below) => base,
        (Some((l, _)), Some((h, _))) => (l + h) / 2.0,
        (Some((l, _)), None) => l + 1.0,
        (None, Some((h, _))) => h - 1.0,
        (None, None) => base,
    };
    json!(v)
}

#[cfg(test)]
#[path = "schema_tests.rs"]
mod tests;
