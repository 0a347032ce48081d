//! The generator against schemas of the kinds tools and structured outputs use, each
//! result checked by a small validator written here (types, required, enum, const,
//! bounds, lengths, items, anyOf, `$ref`).

use super::instance;
use serde_json::{json, Value};

/// Why `v` is not valid for `schema` (resolving `$ref`s in `root`), if it is not.
fn check(root: &Value, schema: &Value, v: &Value) -> Result<(), String> {
    let Some(s) = schema.as_object() else {
        return Ok(());
    };
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let target = root.pointer(&r[1..]).ok_or(format!("bad ref {r}"))?;
        return check(root, target, v);
    }
    if let Some(c) = s.get("const") {
        return if c == v {
            Ok(())
        } else {
            Err(format!("{v} is not const {c}"))
        };
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array) {
        return if e.contains(v) {
            Ok(())
        } else {
            Err(format!("{v} not in enum"))
        };
    }
    if let Some(branches) = s.get("anyOf").and_then(Value::as_array) {
        return match branches.iter().any(|b| check(root, b, v).is_ok()) {
            true => Ok(()),
            false => Err(format!("{v} matches no anyOf branch")),
        };
    }
    check_type(s.get("type"), v)?;
    check_bounds(s, v)?;
    if let Value::Object(m) = v {
        for name in s
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = name.as_str().unwrap_or_default();
            m.get(name).ok_or(format!("missing required {name}"))?;
        }
        for (name, sub) in s
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            if let Some(child) = m.get(name) {
                check(root, sub, child).map_err(|e| format!("{name}: {e}"))?;
            }
        }
    }
    if let (Value::Array(items), Some(sub)) = (v, s.get("items")) {
        items.iter().try_for_each(|i| check(root, sub, i))?;
    }
    Ok(())
}

fn check_type(t: Option<&Value>, v: &Value) -> Result<(), String> {
    let names: Vec<&str> = match t {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => return Ok(()),
    };
    let fits = |t: &str| match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        _ => false,
    };
    match names.into_iter().any(fits) {
        true => Ok(()),
        false => Err(format!("{v} has the wrong type for {t:?}")),
    }
}

fn check_bounds(s: &serde_json::Map<String, Value>, v: &Value) -> Result<(), String> {
    let num = |k: &str| s.get(k).and_then(Value::as_f64);
    if let Some(x) = v.as_f64() {
        let ok = num("minimum").map_or(true, |m| x >= m)
            && num("maximum").map_or(true, |m| x <= m)
            && num("exclusiveMinimum").map_or(true, |m| x > m)
            && num("exclusiveMaximum").map_or(true, |m| x < m);
        if !ok {
            return Err(format!("{x} out of bounds"));
        }
    }
    if let Some(text) = v.as_str() {
        let n = text.chars().count() as f64;
        if num("minLength").is_some_and(|m| n < m) || num("maxLength").is_some_and(|m| n > m) {
            return Err(format!("{text:?} has the wrong length"));
        }
    }
    if let Some(items) = v.as_array() {
        let n = items.len() as f64;
        if num("minItems").is_some_and(|m| n < m) || num("maxItems").is_some_and(|m| n > m) {
            return Err(format!("{n} items"));
        }
    }
    Ok(())
}

fn valid(schema: &Value) -> Value {
    let v = instance(schema, "weather in Paris");
    if let Err(e) = check(schema, schema, &v) {
        unreachable!("{v} is not valid for {schema}: {e}");
    }
    assert_eq!(v, instance(schema, "weather in Paris"), "deterministic");
    v
}

#[test]
fn a_weather_tool_gets_every_property() {
    let v = valid(&json!({"type": "object", "properties": {
        "location": {"type": "string", "description": "City"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
        "verbose": {"type": "boolean"}
    }, "required": ["location"], "additionalProperties": false}));
    assert_eq!(v["location"], "weather in Paris");
    assert_eq!(v["unit"], "celsius");
    assert!(v["verbose"].is_boolean());
}

#[test]
fn bounds_lengths_and_formats_hold() {
    let v = valid(
        &json!({"type": "object", "required": ["a", "b", "c", "d", "e", "f"],
            "properties": {
            "a": {"type": "integer", "minimum": 500},
            "b": {"type": "integer", "exclusiveMaximum": -3},
            "c": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 0.5},
            "d": {"type": "string", "maxLength": 3},
            "e": {"type": "string", "minLength": 40},
            "f": {"type": "string", "format": "date"},
            "g": {"type": "integer", "minimum": 7, "multipleOf": 5}
        }}),
    );
    assert_eq!(v["a"], 500);
    assert_eq!(v["f"], "2024-01-01");
    assert_eq!(v["g"].as_i64().map(|g| g % 5), Some(0));
}

#[test]
fn nested_arrays_unions_consts_and_refs() {
    let v = valid(&json!({
    "$defs": {"item": {"type": "object", "required": ["sku", "qty"], "properties": {
        "sku": {"const": "A-1"}, "qty": {"type": "integer", "minimum": 1, "maximum": 3}}}},
    "type": "object", "required": ["items", "note", "tags", "meta"],
    "properties": {
        "items": {"type": "array", "items": {"$ref": "#/$defs/item"}, "minItems": 2},
        "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "tags": {"type": ["array", "null"], "items": {"type": "string"}},
        "meta": {"type": "object", "properties": {"deep": {"type": "object",
            "properties": {"x": {"type": "number", "maximum": -10}}, "required": ["x"]}}}
    }}));
    assert_eq!(v["items"].as_array().map(Vec::len), Some(2));
    assert_eq!(v["items"][1]["sku"], "A-1");
    assert!(v["meta"]["deep"]["x"].as_f64().is_some_and(|x| x <= -10.0));
}

#[test]
fn the_validator_catches_wrong_values() {
    let s = json!({"type": "object", "required": ["n"],
        "properties": {"n": {"type": "integer", "maximum": 2}}});
    assert!(check(&s, &s, &json!({})).is_err());
    assert!(check(&s, &s, &json!({"n": 3})).is_err());
    assert!(check(&s, &s, &json!({"n": "1"})).is_err());
    assert!(check(&s, &s, &json!({"n": 2})).is_ok());
}

#[test]
fn recursive_refs_end() {
    let s = json!({"type": "object", "required": ["next"],
        "properties": {"next": {"$ref": "#"}}});
    let v = instance(&s, "x");
    assert!(v.is_object());
}
