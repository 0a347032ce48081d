//! The sim's OpenAI `/v1/embeddings`: `input` as a string, strings, a token array or
//! token arrays (1..=2048 inputs, none empty); `dimensions` 1..=3072, default
//! [`DEFAULT_DIMENSIONS`]; `encoding_format` `float` (default) or `base64`. Tokens are
//! counted as whitespace-separated words for strings and one per id for token arrays.

use super::digest;
use super::echo::{count_tokens, DEFAULT_MODEL};
use super::prompt::Rejection;
use super::vector;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

/// The sim's vector size when the request names none: small, since nobody reads them.
pub(super) const DEFAULT_DIMENSIONS: usize = 256;
/// The most dimensions accepted (OpenAI's largest model has 3072).
const MAX_DIMENSIONS: i64 = 3072;
/// The most inputs in one request, as OpenAI allows.
const MAX_INPUTS: usize = 2048;

#[derive(Deserialize)]
struct Wire {
    input: Input,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    dimensions: Option<i64>,
    #[serde(default)]
    encoding_format: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Input {
    One(String),
    Many(Vec<String>),
    Tokens(Vec<i64>),
    TokenLists(Vec<Vec<i64>>),
}

/// One input to embed.
#[derive(Debug, Clone, PartialEq)]
enum Item {
    Text(String),
    Tokens(Vec<i64>),
}

impl Item {
    /// Seeds the vector; the kind is hashed too, so `"1"` and `[1]` differ.
    fn seed(&self) -> u64 {
        match self {
            Item::Text(t) => digest::of_parts([&b"text"[..], t.as_bytes()]),
            Item::Tokens(ids) => {
                let bytes: Vec<u8> = ids.iter().flat_map(|i| i.to_le_bytes()).collect();
                digest::of_parts([&b"tokens"[..], &bytes])
            }
        }
    }

    fn tokens(&self) -> u32 {
        match self {
            Item::Text(t) => count_tokens(t).max(1),
            Item::Tokens(ids) => u32::try_from(ids.len()).unwrap_or(u32::MAX),
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Item::Text(t) => t.is_empty(),
            Item::Tokens(ids) => ids.is_empty(),
        }
    }
}

/// A validated embeddings request.
#[derive(Debug)]
pub(super) struct Request {
    model: String,
    items: Vec<Item>,
    dimensions: usize,
    base64: bool,
}

pub(super) fn parse(body: &[u8]) -> Result<Request, Rejection> {
    let wire: Wire = serde_json::from_slice(body)?;
    let items: Vec<Item> = match wire.input {
        Input::One(t) => vec![Item::Text(t)],
        Input::Many(ts) => ts.into_iter().map(Item::Text).collect(),
        Input::Tokens(ids) => vec![Item::Tokens(ids)],
        Input::TokenLists(lists) => lists.into_iter().map(Item::Tokens).collect(),
    };
    let invalid = |m: &str| Rejection::new(m).param("input").code("invalid_value");
    if items.is_empty() || items.len() > MAX_INPUTS {
        return Err(invalid("'$.input' must hold between 1 and 2048 inputs."));
    }
    if items.iter().any(Item::is_empty) {
        return Err(invalid("'$.input' is invalid: an input cannot be empty."));
    }
    Ok(Request {
        model: wire.model.unwrap_or_else(|| DEFAULT_MODEL.into()),
        items,
        dimensions: dimensions(wire.dimensions)?,
        base64: base64(wire.encoding_format.as_deref())?,
    })
}

fn dimensions(asked: Option<i64>) -> Result<usize, Rejection> {
    match asked {
        None => Ok(DEFAULT_DIMENSIONS),
        Some(d @ 1..=MAX_DIMENSIONS) => Ok(usize::try_from(d).unwrap_or(DEFAULT_DIMENSIONS)),
        Some(d) => Err(Rejection::new(format!(
            "Invalid 'dimensions': expected a value between 1 and {MAX_DIMENSIONS}, but got {d} instead."
        ))
        .param("dimensions")
        .code("invalid_value")),
    }
}

fn base64(format: Option<&str>) -> Result<bool, Rejection> {
    match format {
        None | Some("float") => Ok(false),
        Some("base64") => Ok(true),
        Some(other) => Err(Rejection::new(format!(
            "Invalid value: '{other}'. Supported values are: 'float' and 'base64'."
        ))
        .param("encoding_format")
        .code("invalid_value")),
    }
}

pub(super) fn answer(req: &Request) -> Response {
    let data: Vec<Value> = req
        .items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let v = vector::embed(item.seed(), req.dimensions);
            let embedding = if req.base64 {
                json!(vector::to_base64(&v))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    let tokens: u32 = req
        .items
        .iter()
        .map(Item::tokens)
        .fold(0, u32::saturating_add);
    Json(json!({"object": "list", "data": data, "model": req.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(body: Value) -> Result<Request, Rejection> {
        parse(body.to_string().as_bytes())
    }

    #[test]
    fn input_shapes() {
        let one = read(json!({"input": "a b"}))
            .map(|r| r.items)
            .unwrap_or_default();
        assert_eq!(one, [Item::Text("a b".into())]);
        let lists = read(json!({"input": [[1, 2], [3]]}))
            .map(|r| r.items)
            .unwrap_or_default();
        assert_eq!(lists, [Item::Tokens(vec![1, 2]), Item::Tokens(vec![3])]);
        let tokens = read(json!({"input": [5, 6]}))
            .map(|r| r.items)
            .unwrap_or_default();
        assert_eq!(tokens, [Item::Tokens(vec![5, 6])]);
        assert_ne!(Item::Text("1".into()).seed(), Item::Tokens(vec![1]).seed());
    }

    #[test]
    fn the_400s_name_their_parameter() {
        let param = |body| read(body).err().and_then(|r| r.param);
        assert_eq!(param(json!({"input": ""})).as_deref(), Some("input"));
        assert_eq!(param(json!({"input": []})).as_deref(), Some("input"));
        assert_eq!(
            param(json!({"input": vec!["x"; 2049]})).as_deref(),
            Some("input")
        );
        assert_eq!(
            param(json!({"input": "x", "dimensions": 0})).as_deref(),
            Some("dimensions")
        );
        assert_eq!(
            param(json!({"input": "x", "dimensions": 3073})).as_deref(),
            Some("dimensions")
        );
        assert_eq!(
            param(json!({"input": "x", "encoding_format": "int8"})).as_deref(),
            Some("encoding_format")
        );
        assert!(read(json!({"input": vec!["x"; 2048], "dimensions": 3072})).is_ok());
    }
}
