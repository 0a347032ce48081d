//! `GET /v1/models`: OpenAI's model list, one entry per route and one per `route/model`.

use super::app::AppState;
use super::routes::RouteTable;
use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};
use std::sync::Arc;

/// Who the models belong to, in every entry.
pub const OWNED_BY: &str = "llm-router";

pub async fn list(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(model_list(&state.table, state.started_unix))
}

/// The list body; `created` is when the gateway started (routes have no other date).
pub fn model_list(table: &RouteTable, created: i64) -> Value {
    let entry = |id: String| json!({ "id": id, "object": "model", "created": created, "owned_by": OWNED_BY });
    let mut data = Vec::new();
    for route in table.routes() {
        data.push(entry(route.name.clone()));
        for model in &route.models {
            data.push(entry(format!("{}/{model}", route.name)));
        }
    }
    json!({ "object": "list", "data": data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_then_their_models() {
        let config = crate::config::load_with_env(None, &std::collections::HashMap::new());
        let table = RouteTable::new(&config.unwrap_or_else(|e| unreachable!("{e}")));
        let list = model_list(&table, 7);
        let ids: Vec<&str> = list["data"]
            .as_array()
            .map(|d| d.iter().filter_map(|m| m["id"].as_str()).collect())
            .unwrap_or_default();
        assert!(ids.contains(&"openai"), "{ids:?}");
        assert!(ids.contains(&"openai/gpt-4.1-mini"), "{ids:?}");
        assert!(ids.contains(&"claude/claude-3-5-haiku-latest"), "{ids:?}");
        assert_eq!(list["data"][0]["owned_by"], OWNED_BY);
        assert_eq!(list["object"], "list");
    }
}
