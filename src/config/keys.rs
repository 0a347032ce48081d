//! Keys decide per endpoint: an endpoint whose key is set calls its real provider, a route
//! skips its targets whose key is missing (failing over to the others), and only a route
//! left with no target is answered by the simulated provider. One real key then gives real
//! answers on every route it can serve, instead of fake ones everywhere.

use super::{EndpointConfig, MissingKey, RouterConfig};
use crate::provider::ProviderKind;

/// How one route's targets fare with the keys at hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteKeys {
    pub route: String,
    /// Targets left out for want of a key, in config order.
    pub skipped: Vec<MissingKey>,
    /// No target has its key: the simulated provider answers the route.
    pub sim: bool,
}

impl RouterConfig {
    /// Every route's fate with the keys at hand, in route order.
    pub fn route_keys(&self) -> Vec<RouteKeys> {
        self.routes
            .iter()
            .map(|r| {
                let mut skipped: Vec<MissingKey> = Vec::new();
                for t in &r.targets {
                    let missing = self.endpoint(&t.endpoint).and_then(missing_key);
                    if let Some(m) = missing.filter(|m| !skipped.contains(m)) {
                        skipped.push(m);
                    }
                }
                let sim = r.targets.iter().all(|t| {
                    let endpoint = self.endpoint(&t.endpoint);
                    endpoint.and_then(missing_key).is_some()
                });
                RouteKeys {
                    route: r.name.clone(),
                    skipped,
                    sim,
                }
            })
            .collect()
    }

    /// Applies `plan` (from [`Self::route_keys`]): routes drop their targets without a
    /// key, and the endpoints of routes left with none point at the simulated provider at
    /// `sim_url` (no route with a usable target still uses them after the drop).
    pub fn with_keys(mut self, plan: &[RouteKeys], sim_url: &str) -> Self {
        let mut to_sim: Vec<String> = Vec::new();
        for route in &mut self.routes {
            let Some(keys) = plan.iter().find(|k| k.route == route.name) else {
                continue;
            };
            let keyless = |endpoint: &str| keys.skipped.iter().any(|m| m.endpoint == endpoint);
            if keys.sim {
                to_sim.extend(route.targets.iter().map(|t| t.endpoint.clone()));
            } else {
                route.targets.retain(|t| !keyless(&t.endpoint));
            }
        }
        for endpoint in &mut self.endpoints {
            if to_sim.contains(&endpoint.name) {
                endpoint.kind = ProviderKind::Sim;
                endpoint.base_url = sim_url.to_owned();
                endpoint.api_key = None;
            }
        }
        self
    }
}

/// The key `endpoint` lacks, if it needs one.
fn missing_key(endpoint: &EndpointConfig) -> Option<MissingKey> {
    if endpoint.kind == ProviderKind::Sim || endpoint.api_key.is_some() {
        return None;
    }
    Some(MissingKey {
        endpoint: endpoint.name.clone(),
        variable: endpoint.api_key_env.clone()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn with_env(pairs: &[(&str, &str)]) -> RouterConfig {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        super::super::load_with_env(None, &env).unwrap_or_else(|e| unreachable!("{e}"))
    }

    fn keys_of<'a>(plan: &'a [RouteKeys], route: &str) -> &'a RouteKeys {
        let found = plan.iter().find(|k| k.route == route);
        found.unwrap_or_else(|| unreachable!("no route {route}"))
    }

    #[test]
    fn one_key_serves_its_routes_for_real_and_the_rest_from_the_sim() {
        let config = with_env(&[("OPENAI_API_KEY", "sk-test")]);
        let plan = config.route_keys();
        assert!(!keys_of(&plan, "openai").sim);
        assert!(keys_of(&plan, "openai").skipped.is_empty());
        let claude = keys_of(&plan, "claude");
        assert!(claude.sim);
        assert_eq!(claude.skipped[0].variable, "ANTHROPIC_API_KEY");

        let applied = config.with_keys(&plan, "http://127.0.0.1:1");
        let openai = applied
            .endpoint("openai")
            .map(|e| (e.kind, e.api_key.is_some()));
        assert_eq!(openai, Some((ProviderKind::Openai, true)));
        let anthropic = applied
            .endpoint("anthropic")
            .map(|e| (e.kind, e.base_url.as_str()));
        assert_eq!(anthropic, Some((ProviderKind::Sim, "http://127.0.0.1:1")));
    }

    #[test]
    fn a_route_skips_a_keyless_target_and_keeps_the_others() {
        let config = with_env(&[
            ("ANTHROPIC_API_KEY", "sk-ant"),
            (
                "LLM_ROUTER__ROUTES__OPENAI__TARGETS__1__ENDPOINT",
                "anthropic",
            ),
            (
                "LLM_ROUTER__ROUTES__OPENAI__TARGETS__1__MODEL",
                "claude-3-5-haiku-latest",
            ),
        ]);
        let plan = config.route_keys();
        let openai = keys_of(&plan, "openai");
        assert!(!openai.sim);
        assert_eq!(openai.skipped.len(), 1, "{openai:?}");
        assert_eq!(openai.skipped[0].endpoint, "openai");
        assert!(keys_of(&plan, "sentiment").sim);

        let applied = config.with_keys(&plan, "http://127.0.0.1:1");
        let route = applied.routes.iter().find(|r| r.name == "openai");
        let targets: Vec<&str> = route
            .map(|r| r.targets.iter().map(|t| t.endpoint.as_str()).collect())
            .unwrap_or_default();
        assert_eq!(targets, ["anthropic"], "failover to the target with a key");
        let anthropic = applied.endpoint("anthropic").map(|e| e.kind);
        assert_eq!(
            anthropic,
            Some(ProviderKind::Anthropic),
            "claude stays real"
        );
        let openai = applied.endpoint("openai").map(|e| e.kind);
        assert_eq!(openai, Some(ProviderKind::Sim), "sentiment has only openai");
    }

    #[test]
    fn every_key_set_changes_nothing() {
        let config = with_env(&[("OPENAI_API_KEY", "a"), ("ANTHROPIC_API_KEY", "b")]);
        let plan = config.route_keys();
        assert!(plan.iter().all(|k| !k.sim && k.skipped.is_empty()));
    }
}
