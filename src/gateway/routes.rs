//! What the gateway knows of the routes: the channel and timeout behind an OpenAI `model`
//! (a route name, or `route/model` to pin one of the route's target models).

use super::error::ApiError;
use crate::config::RouterConfig;
use std::time::Duration;

/// One route as the gateway sends to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayRoute {
    pub name: String,
    /// The KubeMQ query channel the workers answer on.
    pub channel: String,
    /// The route's whole-request timeout from config: the query's timeout.
    pub timeout: Duration,
    /// The target models, in config order, without repeats.
    pub models: Vec<String>,
}

/// Where one chat request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved<'a> {
    pub route: &'a GatewayRoute,
    /// The model asked for with `route/model`.
    pub pinned: Option<&'a str>,
}

/// The routes, in config order (sorted by name).
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Vec<GatewayRoute>,
}

impl RouteTable {
    pub fn new(config: &RouterConfig) -> Self {
        let routes = config
            .routes
            .iter()
            .map(|r| {
                let mut models: Vec<String> = Vec::new();
                for t in &r.targets {
                    if !models.contains(&t.model) {
                        models.push(t.model.clone());
                    }
                }
                GatewayRoute {
                    name: r.name.clone(),
                    channel: r.channel.clone(),
                    timeout: r.timeout,
                    models,
                }
            })
            .collect();
        Self { routes }
    }

    pub fn routes(&self) -> &[GatewayRoute] {
        &self.routes
    }

    /// The route named by `model`: `route` or `route/model` (the model may itself hold
    /// slashes, as in `vllm/meta-llama/Llama-3-8B`).
    pub fn resolve<'a>(&'a self, model: &'a str) -> Result<Resolved<'a>, ApiError> {
        let (name, pinned) = match model.split_once('/') {
            Some((name, pinned)) => (name, Some(pinned)),
            None => (model, None),
        };
        let route =
            self.routes
                .iter()
                .find(|r| r.name == name)
                .ok_or_else(|| ApiError::UnknownRoute {
                    model: model.to_owned(),
                    routes: self.names(),
                })?;
        if let Some(pinned) = pinned {
            if !route.models.iter().any(|m| m == pinned) {
                return Err(ApiError::UnknownModel {
                    route: route.name.clone(),
                    model: pinned.to_owned(),
                    models: route.models.join(", "),
                });
            }
        }
        Ok(Resolved { route, pinned })
    }

    /// The route names, comma-separated, for error texts.
    pub fn names(&self) -> String {
        let names: Vec<&str> = self.routes.iter().map(|r| r.name.as_str()).collect();
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RouteTable {
        let config = crate::config::load_with_env(None, &std::collections::HashMap::new());
        RouteTable::new(&config.unwrap_or_else(|e| unreachable!("default config: {e}")))
    }

    #[test]
    fn route_name_or_route_slash_model() {
        let t = table();
        let r = t
            .resolve("openai")
            .map(|r| (r.route.channel.clone(), r.pinned));
        assert_eq!(r.ok(), Some(("openai_requests".to_owned(), None)));
        let r = t.resolve("openai/gpt-4.1-mini").map(|r| r.pinned);
        assert_eq!(r.ok(), Some(Some("gpt-4.1-mini")));
    }

    #[test]
    fn unknown_names_list_what_exists() {
        let t = table();
        let e = t.resolve("gpt-4o").err().map(|e| e.to_string());
        assert!(
            e.as_deref().is_some_and(|e| e.contains("claude, openai")),
            "{e:?}"
        );
        let e = t.resolve("openai/nope").err().map(|e| e.to_string());
        assert!(
            e.as_deref()
                .is_some_and(|e| e.contains("gpt-4o-mini, gpt-4.1-mini")),
            "{e:?}"
        );
    }
}
