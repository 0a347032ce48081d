//! What the gateway knows of the routes: the channel and timeout behind an OpenAI `model`
//! (read by [`ModelNames`]: a route, `route/model`, or a model a route serves).

use super::error::ApiError;
use crate::config::models::ModelNames;
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
    /// The one target model asked for, by `route/model` or by a model name.
    pub pinned: Option<String>,
}

/// The routes, in config order (sorted by name).
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Vec<GatewayRoute>,
    names: ModelNames,
}

impl RouteTable {
    pub fn new(config: &RouterConfig) -> Self {
        let names = ModelNames::new(config);
        let routes = config
            .routes
            .iter()
            .map(|r| GatewayRoute {
                name: r.name.clone(),
                channel: r.channel.clone(),
                timeout: r.timeout,
                models: names.models_of(&r.name).to_vec(),
            })
            .collect();
        Self { routes, names }
    }

    pub fn routes(&self) -> &[GatewayRoute] {
        &self.routes
    }

    /// How `model` is read, shared with the workers and batch files.
    pub fn model_names(&self) -> &ModelNames {
        &self.names
    }

    /// The route `model` goes to, and the model it pins.
    pub fn resolve(&self, model: &str) -> Result<Resolved<'_>, ApiError> {
        let to = self.names.resolve(model, None)?;
        let route = self
            .routes
            .iter()
            .find(|r| r.name == to.route)
            .ok_or(ApiError::NotFound)?;
        Ok(Resolved {
            route,
            pinned: to.pin,
        })
    }

    /// The route names, comma-separated, for error texts.
    pub fn names(&self) -> String {
        self.names.route_names()
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
        assert_eq!(r.ok(), Some(Some("gpt-4.1-mini".to_owned())));
        let r = t
            .resolve("gpt-4o-mini")
            .map(|r| (r.route.name.clone(), r.pinned));
        let pinned = ("openai".to_owned(), Some("gpt-4o-mini".to_owned()));
        assert_eq!(r.ok(), Some(pinned), "a served model is its route, pinned");
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
