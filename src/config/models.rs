//! What a request's `model` names: a route, a `route/model` pin, or a provider model that
//! some route's targets serve. One reading for the gateway, the Batch API, CLI batch files
//! and JSON-mode queries, so a name works on every path or fails on every path with the
//! same message.

use super::RouterConfig;

/// The routes and the models their targets serve, in config order (routes by name,
/// models as their targets list them, without repeats).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelNames {
    routes: Vec<RouteModels>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct RouteModels {
    name: String,
    models: Vec<String>,
}

/// Where a `model` goes: a route, and the one target model to ask there, if it named one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRoute {
    pub route: String,
    /// Only the route's targets with this model may answer.
    pub pin: Option<String>,
}

/// A `model` no route answers to; the text lists what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error("unknown model '{model}': name a route ({routes}), route/model, or a model one of them serves ({models})")]
    Unknown {
        model: String,
        routes: String,
        models: String,
    },
    #[error("route '{route}' has no target model '{model}'; its models: {models}")]
    NotOnRoute {
        route: String,
        model: String,
        models: String,
    },
}

impl ModelNames {
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
                RouteModels {
                    name: r.name.clone(),
                    models,
                }
            })
            .collect();
        Self { routes }
    }

    /// Reads `model`, first match wins:
    /// 1. a route's name: that route, any of its targets;
    /// 2. `route/model` (the model may hold slashes, as in `vllm/meta-llama/Llama-3-8B`):
    ///    that route pinned to that model, which must be one of its targets';
    /// 3. a model some route's targets serve: `context` (the route the request already
    ///    has, such as a batch job's `--route` or a query's channel) if it serves it, else
    ///    the first route in config order that does, pinned to that model.
    pub fn resolve(&self, model: &str, context: Option<&str>) -> Result<ModelRoute, ModelError> {
        if let Some(route) = self.route(model) {
            return Ok(ModelRoute {
                route: route.name.clone(),
                pin: None,
            });
        }
        if let Some((route, pin)) = model.split_once('/') {
            if let Some(route) = self.route(route) {
                return route.pinned(pin);
            }
        }
        let in_context = context
            .and_then(|c| self.route(c))
            .filter(|r| r.serves(model));
        match in_context.or_else(|| self.routes.iter().find(|r| r.serves(model))) {
            Some(route) => route.pinned(model),
            None => Err(ModelError::Unknown {
                model: model.to_owned(),
                routes: self.route_names(),
                models: self.model_names().join(", "),
            }),
        }
    }

    /// The route names, comma-separated, for error texts.
    pub fn route_names(&self) -> String {
        let names: Vec<&str> = self.routes.iter().map(|r| r.name.as_str()).collect();
        names.join(", ")
    }

    /// Every target model of every route, once each, in config order.
    pub fn model_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for model in self.routes.iter().flat_map(|r| &r.models) {
            if !names.contains(&model.as_str()) {
                names.push(model);
            }
        }
        names
    }

    /// The target models of `route`, in config order.
    pub fn models_of(&self, route: &str) -> &[String] {
        self.route(route).map_or(&[], |r| &r.models)
    }

    fn route(&self, name: &str) -> Option<&RouteModels> {
        self.routes.iter().find(|r| r.name == name)
    }
}

impl RouteModels {
    fn serves(&self, model: &str) -> bool {
        self.models.iter().any(|m| m == model)
    }

    fn pinned(&self, model: &str) -> Result<ModelRoute, ModelError> {
        if !self.serves(model) {
            return Err(ModelError::NotOnRoute {
                route: self.name.clone(),
                model: model.to_owned(),
                models: self.models.join(", "),
            });
        }
        Ok(ModelRoute {
            route: self.name.clone(),
            pin: Some(model.to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn names() -> ModelNames {
        let config = crate::config::load_with_env(None, &HashMap::new());
        ModelNames::new(&config.unwrap_or_else(|e| unreachable!("default config: {e}")))
    }

    fn to(route: &str, pin: Option<&str>) -> Result<ModelRoute, ModelError> {
        Ok(ModelRoute {
            route: route.to_owned(),
            pin: pin.map(str::to_owned),
        })
    }

    #[test]
    fn a_route_name_is_that_route_unpinned() {
        assert_eq!(names().resolve("claude", None), to("claude", None));
        assert_eq!(
            names().resolve("openai", Some("claude")),
            to("openai", None)
        );
    }

    #[test]
    fn route_slash_model_pins_one_of_its_models() {
        let n = names();
        let pinned = n.resolve("openai/gpt-4.1-mini", None);
        assert_eq!(pinned, to("openai", Some("gpt-4.1-mini")));
        let e = n.resolve("openai/gpt-9", None).err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some(
                "route 'openai' has no target model 'gpt-9'; its models: gpt-4o-mini, gpt-4.1-mini"
            )
        );
    }

    #[test]
    fn a_provider_model_goes_to_the_first_route_serving_it_pinned() {
        let n = names();
        // openai and sentiment both serve gpt-4o-mini; openai comes first by name.
        assert_eq!(
            n.resolve("gpt-4o-mini", None),
            to("openai", Some("gpt-4o-mini"))
        );
        assert_eq!(
            n.resolve("claude-3-5-sonnet-latest", None),
            to("summarize", Some("claude-3-5-sonnet-latest"))
        );
    }

    #[test]
    fn the_context_route_wins_when_it_serves_the_model() {
        let n = names();
        assert_eq!(
            n.resolve("gpt-4o-mini", Some("sentiment")),
            to("sentiment", Some("gpt-4o-mini"))
        );
        assert_eq!(
            n.resolve("gpt-4.1-mini", Some("sentiment")),
            to("openai", Some("gpt-4.1-mini")),
            "a model the context does not serve goes where it is served"
        );
    }

    #[test]
    fn a_slash_that_names_no_route_is_part_of_a_model_name() {
        let mut config = crate::config::load_with_env(None, &HashMap::new())
            .unwrap_or_else(|e| unreachable!("{e}"));
        config.routes[0].targets[0].model = "meta-llama/Llama-3-8B".to_owned();
        let route = config.routes[0].name.clone();
        let n = ModelNames::new(&config);
        assert_eq!(
            n.resolve("meta-llama/Llama-3-8B", None),
            to(&route, Some("meta-llama/Llama-3-8B"))
        );
        assert_eq!(
            n.resolve(&format!("{route}/meta-llama/Llama-3-8B"), None),
            to(&route, Some("meta-llama/Llama-3-8B"))
        );
    }

    #[test]
    fn unknown_names_list_routes_and_models() {
        let text = names()
            .resolve("gpt-4o", Some("openai"))
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            text.as_deref(),
            Some(
                "unknown model 'gpt-4o': name a route (claude, openai, sentiment, summarize), \
                 route/model, or a model one of them serves (claude-3-5-haiku-latest, \
                 gpt-4o-mini, gpt-4.1-mini, claude-3-5-sonnet-latest)"
            )
        );
    }
}
