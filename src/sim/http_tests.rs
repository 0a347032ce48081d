//! The sim's whole chat API over real loopback HTTP: tool calls (whole and streamed, the
//! deltas reassembling to the whole answer), tool results, structured outputs, `n`,
//! logprobs, the 400s, embeddings, Anthropic tool use and the last-request hook.

use super::{start, RunningSim, SimConfig};
use base64::Engine;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;

async fn sim(config: SimConfig) -> RunningSim {
    let listen = SocketAddr::from(([127, 0, 0, 1], 0));
    start(SimConfig { listen, ..config }).await.unwrap()
}

async fn post(s: &RunningSim, path: &str, body: &Value) -> (u16, String) {
    let r = reqwest::Client::new()
        .post(format!("{}{path}", s.base_url()))
        .json(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn post_json(s: &RunningSim, path: &str, body: &Value) -> (u16, Value) {
    let (status, text) = post(s, path, body).await;
    (status, serde_json::from_str(&text).unwrap())
}

/// `(event name, data)` of every SSE frame.
fn events(text: &str) -> Vec<(String, String)> {
    let frames = text.split("\n\n").filter(|f| !f.trim().is_empty());
    frames
        .map(|f| {
            let field = |name: &str| {
                f.lines()
                    .find_map(|l| l.strip_prefix(name))
                    .unwrap_or_default()
                    .to_owned()
            };
            (field("event: "), field("data: "))
        })
        .collect()
}

fn chunks(text: &str) -> Vec<Value> {
    let data = events(text).into_iter().map(|(_, d)| d);
    data.filter(|d| d != "[DONE]")
        .map(|d| serde_json::from_str(&d).unwrap())
        .collect()
}

fn weather_tools() -> Value {
    json!([
        {"type": "function", "function": {"name": "get_weather", "parameters": {
            "type": "object", "required": ["location", "unit"], "properties": {
                "location": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 5}}}}},
        {"type": "function", "function": {"name": "get_time", "parameters": {
            "type": "object", "properties": {"zone": {"type": "string"}}}}}
    ])
}

fn tool_request(choice: Value) -> Value {
    json!({"model": "gpt-sim", "tools": weather_tools(), "tool_choice": choice,
        "messages": [{"role": "user", "content": "Weather in Paris?"}]})
}

/// `(id, name, arguments)` of a whole answer's first choice.
fn calls_of(v: &Value) -> Vec<(String, String, String)> {
    let calls = v["choices"][0]["message"]["tool_calls"].as_array().unwrap();
    calls
        .iter()
        .map(|c| {
            let text = |p: &str| c.pointer(p).unwrap().as_str().unwrap().to_owned();
            (
                text("/id"),
                text("/function/name"),
                text("/function/arguments"),
            )
        })
        .collect()
}

#[tokio::test]
async fn openai_tool_calls_follow_the_rule_and_are_schema_valid() {
    let s = sim(SimConfig::default()).await;
    let (status, v) = post_json(&s, "/v1/chat/completions", &tool_request(json!("required"))).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    assert!(v["choices"][0]["message"]["content"].is_null());
    let calls = calls_of(&v);
    let names: Vec<&str> = calls.iter().map(|c| c.1.as_str()).collect();
    assert_eq!(names, ["get_weather", "get_time"]);
    assert!(calls.iter().all(|c| c.0.starts_with("call_")));
    let args: Value = serde_json::from_str(&calls[0].2).unwrap();
    assert_eq!(args["unit"], "celsius");
    assert_eq!(args["location"], "Weather in Paris?");
    assert!(args["days"].as_i64().is_some_and(|d| (1..=5).contains(&d)));
    let (_, again) = post_json(&s, "/v1/chat/completions", &tool_request(json!("required"))).await;
    assert_eq!(calls_of(&again), calls, "deterministic");
    let named = json!({"type": "function", "function": {"name": "get_time"}});
    let (_, v) = post_json(&s, "/v1/chat/completions", &tool_request(named)).await;
    assert_eq!(calls_of(&v)[0].1, "get_time");
    let (_, v) = post_json(&s, "/v1/chat/completions", &tool_request(json!("auto"))).await;
    assert_eq!(calls_of(&v).len(), 1);
    let mut serial = tool_request(json!("required"));
    serial["parallel_tool_calls"] = json!(false);
    let (_, v) = post_json(&s, "/v1/chat/completions", &serial).await;
    assert_eq!(calls_of(&v).len(), 1);
    let (_, v) = post_json(&s, "/v1/chat/completions", &tool_request(json!("none"))).await;
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "sim: Weather in Paris?"
    );
}

#[tokio::test]
async fn tool_results_are_answered_in_text() {
    let s = sim(SimConfig::default()).await;
    let mut body = tool_request(json!("auto"));
    body["messages"] = json!([
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_a", "type": "function",
            "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_a", "content": "18C and sunny"}]);
    let (status, v) = post_json(&s, "/v1/chat/completions", &body).await;
    assert_eq!(status, 200, "{v}");
    let message = &v["choices"][0]["message"];
    assert_eq!(message["content"], "Based on get_weather: 18C and sunny");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    body["messages"][3]["tool_call_id"] = json!("call_b");
    let (status, v) = post_json(&s, "/v1/chat/completions", &body).await;
    assert_eq!(status, 400);
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert_eq!(v["error"]["param"], "messages.[3].tool_call_id");
    assert!(v["error"].as_object().unwrap().contains_key("code"));
}

/// Per choice index: `(id, name, arguments)` of each call, joined from the deltas, and
/// how many argument pieces each call came in.
fn reassemble(chunks: &[Value]) -> BTreeMap<u64, Vec<(String, String, String, usize)>> {
    let mut out: BTreeMap<u64, Vec<(String, String, String, usize)>> = BTreeMap::new();
    for c in chunks {
        for choice in c["choices"].as_array().unwrap() {
            let calls = out.entry(choice["index"].as_u64().unwrap()).or_default();
            for d in choice["delta"]["tool_calls"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let k = usize::try_from(d["index"].as_u64().unwrap()).unwrap();
                if let Some(id) = d["id"].as_str() {
                    assert_eq!(d["function"]["arguments"], "", "the first delta of a call");
                    assert_eq!(d["type"], "function");
                    let name = d["function"]["name"].as_str().unwrap();
                    calls.push((id.into(), name.into(), String::new(), 0));
                } else {
                    assert!(d.get("id").is_none() && d["function"].get("name").is_none());
                    let args = d["function"]["arguments"].as_str().unwrap();
                    calls[k].2.push_str(args);
                    calls[k].3 += 1;
                }
            }
        }
    }
    out
}

#[tokio::test]
async fn streamed_tool_calls_reassemble_to_the_whole_answer() {
    let s = sim(SimConfig::default()).await;
    let whole = tool_request(json!("required"));
    let (_, v) = post_json(&s, "/v1/chat/completions", &whole).await;
    let mut streamed = whole.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let (status, text) = post(&s, "/v1/chat/completions", &streamed).await;
    assert_eq!(status, 200);
    let chunks = chunks(&text);
    let joined = reassemble(&chunks);
    let calls: Vec<(String, String, String)> = joined[&0]
        .iter()
        .map(|(i, n, a, _)| (i.clone(), n.clone(), a.clone()))
        .collect();
    assert_eq!(calls, calls_of(&v));
    assert!(
        joined[&0].iter().all(|c| c.3 >= 2),
        "arguments in 2+ pieces"
    );
    let finish = chunks
        .iter()
        .find_map(|c| c["choices"][0]["finish_reason"].as_str());
    assert_eq!(finish, Some("tool_calls"));
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(
        last["usage"]["completion_tokens"],
        v["usage"]["completion_tokens"]
    );
    assert!(text.ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn n_choices_stream_interleaved_and_match_the_whole_answer() {
    let s = sim(SimConfig::default()).await;
    let body = json!({"model": "m", "n": 3, "messages": [{"role": "user", "content": "a b c"}]});
    let (_, v) = post_json(&s, "/v1/chat/completions", &body).await;
    let whole: Vec<&str> = (0..3)
        .map(|i| v["choices"][i]["message"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(whole, ["sim: a b c", "sim: a b c (2)", "sim: a b c (3)"]);
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let (_, text) = post(&s, "/v1/chat/completions", &streamed).await;
    let chunks = chunks(&text);
    let order: Vec<u64> = chunks[..6]
        .iter()
        .map(|c| c["choices"][0]["index"].as_u64().unwrap())
        .collect();
    assert_eq!(order, [0, 1, 2, 0, 1, 2]);
    let mut texts = vec![String::new(); 3];
    for c in &chunks {
        let choice = &c["choices"][0];
        let i = usize::try_from(choice["index"].as_u64().unwrap()).unwrap();
        texts[i].push_str(choice["delta"]["content"].as_str().unwrap_or_default());
    }
    assert_eq!(texts, whole);
    let n_finishes = chunks
        .iter()
        .filter(|c| c["choices"][0]["finish_reason"] == "stop")
        .count();
    assert_eq!(n_finishes, 3);
}

#[tokio::test]
async fn logprobs_structured_outputs_and_the_other_400s() {
    let s = sim(SimConfig::default()).await;
    let body = json!({"model": "m", "logprobs": true, "top_logprobs": 2, "seed": 1,
        "user": "u", "messages": [{"role": "user", "content": "one two"}]});
    let (_, v) = post_json(&s, "/v1/chat/completions", &body).await;
    let content = v["choices"][0]["logprobs"]["content"].as_array().unwrap();
    let tokens: String = content
        .iter()
        .map(|t| t["token"].as_str().unwrap())
        .collect();
    assert_eq!(tokens, "sim: one two");
    assert!(content
        .iter()
        .all(|t| t["top_logprobs"].as_array().unwrap().len() == 2));
    assert!(content
        .iter()
        .all(|t| t["bytes"].is_array() && t["logprob"].as_f64() <= Some(0.0)));
    let schema = json!({"type": "object", "required": ["city", "temp"], "additionalProperties": false,
        "properties": {"city": {"type": "string"}, "temp": {"type": "number", "minimum": -50, "maximum": 60}}});
    let structured = json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": schema, "strict": true}}});
    let (_, v) = post_json(&s, "/v1/chat/completions", &structured).await;
    let doc: Value =
        serde_json::from_str(v["choices"][0]["message"]["content"].as_str().unwrap()).unwrap();
    assert!(doc["city"].is_string());
    assert!(
        doc["temp"]
            .as_f64()
            .is_some_and(|t| (-50.0..=60.0).contains(&t)),
        "{doc}"
    );
    let object = json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
        "response_format": {"type": "json_object"}});
    let (_, v) = post_json(&s, "/v1/chat/completions", &object).await;
    let doc: Value =
        serde_json::from_str(v["choices"][0]["message"]["content"].as_str().unwrap()).unwrap();
    assert!(doc.is_object());
    let bad = [
        (json!({"n": 9}), "n"),
        (json!({"n": 0}), "n"),
        (
            json!({"tools": weather_tools(), "tool_choice": {"type": "function", "function": {"name": "x"}}}),
            "tool_choice",
        ),
        (
            json!({"response_format": {"type": "json_schema", "json_schema": {"name": "w"}}}),
            "response_format.json_schema.schema",
        ),
    ];
    for (extra, param) in bad {
        let mut body = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let (status, v) = post_json(&s, "/v1/chat/completions", &body).await;
        assert_eq!(
            (status, v["error"]["param"].as_str()),
            (400, Some(param)),
            "{v}"
        );
        assert_eq!(v["error"]["type"], "invalid_request_error");
    }
    let orphan =
        json!({"model": "m", "messages": [{"role": "tool", "tool_call_id": "c", "content": "x"}]});
    let (status, v) = post_json(&s, "/v1/chat/completions", &orphan).await;
    assert_eq!(
        (status, v["error"]["param"].as_str()),
        (400, Some("messages.[0].role"))
    );
}

fn floats(v: &Value) -> Vec<f32> {
    let numbers = v.as_array().unwrap().iter();
    numbers.map(|x| x.as_f64().unwrap() as f32).collect()
}

#[tokio::test]
async fn embeddings_in_both_encodings() {
    let s = sim(SimConfig::default()).await;
    let body =
        json!({"model": "text-embedding-sim", "input": ["hello world", "other", "hello world"]});
    let (status, v) = post_json(&s, "/v1/embeddings", &body).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (v["object"].as_str(), v["model"].as_str()),
        (Some("list"), Some("text-embedding-sim"))
    );
    assert_eq!(v["usage"], json!({"prompt_tokens": 5, "total_tokens": 5}));
    let data = v["data"].as_array().unwrap();
    assert_eq!(data[1]["index"], 1);
    assert_eq!(data[1]["object"], "embedding");
    let vectors: Vec<Vec<f32>> = data.iter().map(|d| floats(&d["embedding"])).collect();
    assert_eq!(vectors[0].len(), 256);
    let norm: f32 = vectors[1].iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "{norm}");
    assert_eq!(vectors[0], vectors[2]);
    assert_ne!(vectors[0], vectors[1]);
    let b64 = json!({"model": "m", "input": "hello world", "encoding_format": "base64", "dimensions": 3072});
    let (_, v) = post_json(&s, "/v1/embeddings", &b64).await;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let decoded: Vec<f32> = bytes
        .chunks(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(decoded.len(), 3072);
    let floats3072 = json!({"model": "m", "input": "hello world", "dimensions": 3072});
    let (_, v) = post_json(&s, "/v1/embeddings", &floats3072).await;
    assert_eq!(floats(&v["data"][0]["embedding"]), decoded);
    let tokens = json!({"model": "m", "input": [[1, 2, 3], [4]], "dimensions": 8});
    let (_, v) = post_json(&s, "/v1/embeddings", &tokens).await;
    assert_eq!(floats(&v["data"][1]["embedding"]).len(), 8);
    assert_eq!(v["usage"]["prompt_tokens"], 4);
    for bad in [
        json!({"input": ""}),
        json!({"input": "x", "dimensions": 0}),
        json!({"input": "x", "dimensions": 3073}),
        json!({"input": "x", "encoding_format": "f16"}),
    ] {
        let (status, v) = post_json(&s, "/v1/embeddings", &bad).await;
        assert_eq!(
            (status, v["error"]["type"].as_str()),
            (400, Some("invalid_request_error"))
        );
    }
}

#[tokio::test]
async fn embeddings_meet_keys_and_faults_like_chat() {
    let s = sim(SimConfig {
        error_rates: vec![(503, 1.0)],
        api_key: Some("k".into()),
        ..SimConfig::default()
    })
    .await;
    let body = json!({"model": "m", "input": "x"});
    let (status, v) = post_json(&s, "/v1/embeddings", &body).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (401, Some("invalid_api_key"))
    );
    let r = reqwest::Client::new()
        .post(format!("{}/v1/embeddings", s.base_url()))
        .bearer_auth("k")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!((s.stats().requests, s.stats().errors), (2, 1));
}

fn anthropic_tools(choice: Value) -> Value {
    json!({"model": "claude-sim", "max_tokens": 100, "tool_choice": choice,
        "tools": [{"name": "get_weather", "input_schema": {"type": "object", "required": ["city"],
            "properties": {"city": {"type": "string"}, "days": {"type": "integer", "maximum": 3}}}},
            {"name": "get_time", "input_schema": {"type": "object", "properties": {}}}],
        "messages": [{"role": "user", "content": "Weather in Rome?"}]})
}

#[tokio::test]
async fn anthropic_tool_use_whole_and_streamed() {
    let s = sim(SimConfig::default()).await;
    let (status, v) = post_json(&s, "/v1/messages", &anthropic_tools(json!({"type": "any"}))).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["stop_reason"], "tool_use");
    let blocks = v["content"].as_array().unwrap();
    assert_eq!(blocks.len(), 2);
    assert!(blocks[0]["id"].as_str().unwrap().starts_with("toolu_"));
    assert_eq!(blocks[0]["input"]["city"], "Weather in Rome?");
    assert!(blocks[0]["input"]["days"].as_i64() <= Some(3));
    assert_eq!(v["usage"]["cache_read_input_tokens"], 0);
    let single = json!({"type": "any", "disable_parallel_tool_use": true});
    let (_, v1) = post_json(&s, "/v1/messages", &anthropic_tools(single)).await;
    assert_eq!(v1["content"].as_array().unwrap().len(), 1);
    let mut streamed = anthropic_tools(json!({"type": "any"}));
    streamed["stream"] = json!(true);
    let (_, text) = post(&s, "/v1/messages", &streamed).await;
    let events = events(&text);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    let mut expected = vec!["message_start", "content_block_start", "ping"];
    let partials = |index: usize| {
        events
            .iter()
            .filter(|(n, d)| {
                n == "content_block_delta"
                    && serde_json::from_str::<Value>(d).unwrap()["index"] == index
            })
            .count()
    };
    for index in 0..2 {
        if index == 1 {
            expected.push("content_block_start");
        }
        expected.extend(std::iter::repeat("content_block_delta").take(partials(index)));
        expected.push("content_block_stop");
    }
    expected.extend(["message_delta", "message_stop"]);
    assert_eq!(names, expected);
    assert!(partials(0) >= 2 && partials(1) >= 2);
    let mut inputs = vec![String::new(); 2];
    for (_, d) in events.iter().filter(|(n, _)| n == "content_block_delta") {
        let d: Value = serde_json::from_str(d).unwrap();
        assert_eq!(d["delta"]["type"], "input_json_delta");
        let i = usize::try_from(d["index"].as_u64().unwrap()).unwrap();
        inputs[i].push_str(d["delta"]["partial_json"].as_str().unwrap());
    }
    for (i, joined) in inputs.iter().enumerate() {
        assert_eq!(
            serde_json::from_str::<Value>(joined).unwrap(),
            blocks[i]["input"]
        );
    }
    let start: Value = serde_json::from_str(&events[1].1).unwrap();
    assert_eq!(start["content_block"]["id"], blocks[0]["id"]);
    let delta: Value = serde_json::from_str(&events[events.len() - 2].1).unwrap();
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    assert!(delta["usage"]["output_tokens"].as_u64() > Some(0));
}

#[tokio::test]
async fn anthropic_tool_results_and_their_400s() {
    let s = sim(SimConfig::default()).await;
    let mut body = anthropic_tools(json!({"type": "auto"}));
    body["system"] = json!([{"type": "text", "text": "be brief"}]);
    body["messages"] = json!([
        {"role": "user", "content": [{"type": "text", "text": "Weather in Rome?"},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/r.png"}}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_x", "name": "get_weather", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_x", "content": "22C"}]}]);
    let (status, v) = post_json(&s, "/v1/messages", &body).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["content"],
        json!([{"type": "text", "text": "Based on get_weather: 22C"}])
    );
    assert_eq!(v["stop_reason"], "end_turn");
    body["messages"][2]["content"][0]["tool_use_id"] = json!("toolu_y");
    let (status, v) = post_json(&s, "/v1/messages", &body).await;
    assert_eq!(status, 400);
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    let (_, v) = post_json(
        &s,
        "/v1/messages",
        &anthropic_tools(json!({"type": "none"})),
    )
    .await;
    assert_eq!(v["content"][0]["text"], "sim: Weather in Rome?");
}

#[tokio::test]
async fn the_last_request_hook_shows_the_exact_body() {
    let s = sim(SimConfig::default()).await;
    let hook = format!("{}/sim/last-request", s.base_url());
    let r = reqwest::get(&hook).await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"path": null, "body": null})
    );
    let raw =
        r#"{"model":"m","zeta":[1,{"b":2,"a":1}],"messages":[{"role":"user","content":"x"}]}"#;
    let sent = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", s.base_url()))
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 200);
    let got = reqwest::get(&hook).await.unwrap().text().await.unwrap();
    assert_eq!(
        got,
        format!(r#"{{"path":"/v1/chat/completions","body":{raw}}}"#)
    );
    post(&s, "/v1/embeddings", &json!({"input": ""})).await;
    let v: Value = reqwest::get(&hook).await.unwrap().json().await.unwrap();
    assert_eq!(v, json!({"path": "/v1/embeddings", "body": {"input": ""}}));
}
