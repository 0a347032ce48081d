"""Writes the Grafana dashboards in this folder (overview, providers, batch, broker).

The JSON files are what Grafana imports and what scripts/observability.sh checks against a
live Prometheus; this script is their source, so panels share one layout and one datasource
variable. Edit here, run `python3 dashboards/generate.py`, commit both.
"""

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCHEMA_VERSION = 39
DS = {"type": "prometheus", "uid": "${datasource}"}
# Every worker-side query is narrowed by these two; the gateway and broker have their own jobs.
W = 'job=~"$job", instance=~"$instance"'
RATE = "[$__rate_interval]"


def datasource_var():
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "hide": 0,
        "refresh": 1,
    }


def query_var(name, label, query, default_all=True):
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "query": {"query": query, "refId": f"{name}-var"},
        "definition": query,
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]} if default_all else {},
        "sort": 1,
        "hide": 0,
    }


def job_vars(default_job):
    """`job` and `instance` variables; `default_job` is the role the dashboard is about."""
    job = query_var("job", "Job", 'label_values(up{job=~"llm-router.*"}, job)')
    job["current"] = {"selected": True, "text": [default_job], "value": [default_job]}
    job["allValue"] = "llm-router.*"
    instance = query_var("instance", "Instance", 'label_values(up{job=~"$job"}, instance)')
    return [job, instance]


class Layout:
    """Places panels left to right, 24 columns wide, and numbers them."""

    def __init__(self):
        self.x, self.y, self.row_h, self.next_id = 0, 0, 0, 1
        self.panels = []

    def add(self, panel, w, h):
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        panel["id"] = self.next_id
        panel["gridPos"] = {"x": self.x, "y": self.y, "w": w, "h": h}
        self.next_id += 1
        self.x += w
        self.row_h = max(self.row_h, h)
        self.panels.append(panel)

    def row(self, title):
        self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        self.add({"type": "row", "title": title, "collapsed": False, "panels": []}, 24, 1)
        self.x, self.y, self.row_h = 0, self.y + 1, 0


def targets(queries):
    out = []
    for i, (expr, legend) in enumerate(queries):
        out.append({
            "datasource": DS,
            "expr": expr,
            "legendFormat": legend,
            "refId": chr(ord("A") + i),
            "range": True,
        })
    return out


def timeseries(title, description, queries, unit="short", stack=False, mappings=None):
    panel = {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": targets(queries),
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "custom": {
                    "drawStyle": "line",
                    "lineWidth": 1,
                    "fillOpacity": 10,
                    "showPoints": "never",
                    "stacking": {"mode": "normal" if stack else "none", "group": "A"},
                },
            },
            "overrides": [],
        },
        "options": {
            "legend": {"displayMode": "table", "placement": "bottom", "calcs": ["mean", "max", "lastNotNull"]},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }
    if mappings:
        panel["fieldConfig"]["defaults"]["mappings"] = mappings
    return panel


def stat(title, description, queries, unit="short", mappings=None, thresholds=None):
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": targets(queries),
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "mappings": mappings or [],
                "thresholds": thresholds or {"mode": "absolute", "steps": [{"color": "green", "value": None}]},
            },
            "overrides": [],
        },
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "background",
            "graphMode": "none",
            "textMode": "value_and_name",
        },
    }


def bargauge(title, description, queries, unit="percentunit", maximum=1):
    return {
        "type": "bargauge",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": targets(queries),
        "fieldConfig": {"defaults": {"unit": unit, "min": 0, "max": maximum}, "overrides": []},
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "orientation": "horizontal",
            "displayMode": "gradient",
        },
    }


def quantiles(metric, by, selector, legend):
    return [
        (f"histogram_quantile({q}, sum by (le, {by}) (rate({metric}_bucket{{{selector}}}{RATE})))",
         f"p{int(q * 100)} {legend}")
        for q in (0.5, 0.95, 0.99)
    ]


def ratio_or_zero(metric, bad, by, selector):
    """Share of `bad` among all, 0 (not empty) when nothing was bad in the window."""
    total = f"sum by ({by}) (rate({metric}{{{selector}}}{RATE}))"
    failed = f"sum by ({by}) (rate({metric}{{{selector}, {bad}}}{RATE}))"
    return f"({failed} or {total} * 0) / {total}"


def dashboard(uid, title, description, variables, layout, tags):
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["llm-router"] + tags,
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "templating": {"list": [datasource_var()] + variables},
        "annotations": {"list": []},
        "links": [{"type": "dashboards", "tags": ["llm-router"], "asDropdown": True, "title": "llm-router"}],
        "panels": layout.panels,
    }


CIRCUIT_MAPPINGS = [{
    "type": "value",
    "options": {
        "0": {"text": "closed", "color": "green"},
        "1": {"text": "half-open", "color": "orange"},
        "2": {"text": "open", "color": "red"},
    },
}]
CIRCUIT_THRESHOLDS = {"mode": "absolute", "steps": [
    {"color": "green", "value": None}, {"color": "orange", "value": 1}, {"color": "red", "value": 2}]}


def overview():
    sel = f'{W}, route=~"$route"'
    lay = Layout()
    lay.row("Traffic")
    lay.add(stat("Replicas up", "Scrape targets answering, by role.",
                 [('count by (job) (up{job=~"llm-router.*"} == 1)', "{{job}}")]), 8, 5)
    lay.add(stat("Router processes sharing limits", "llm_router_replicas: live router processes seen through membership; each takes 1/N of every endpoint limit.",
                 [(f"max(llm_router_replicas{{{W}}})", "members")]), 4, 5)
    lay.add(stat("Requests/s", "Requests answered by workers, all routes.",
                 [(f"sum(rate(llm_router_requests_total{{{sel}}}{RATE}))", "req/s")], unit="reqps"), 4, 5)
    lay.add(stat("Error ratio", "Share of requests not answered with outcome ok.",
                 [(ratio_or_zero("llm_router_requests_total", 'outcome!="ok"', "job", sel), "errors")],
                 unit="percentunit",
                 thresholds={"mode": "absolute", "steps": [{"color": "green", "value": None}, {"color": "orange", "value": 0.01}, {"color": "red", "value": 0.05}]}), 4, 5)
    lay.add(stat("In flight", "Requests being handled by workers now.",
                 [(f"sum(llm_router_in_flight_requests{{{sel}}})", "in flight")]), 4, 5)
    lay.add(timeseries("Requests/s by route and outcome", "Worker answers per second; outcome is ok or the failure code (bad_request, unknown_route, rate_limited, upstream_timeout, upstream_failed).",
                       [(f"sum by (route, outcome) (rate(llm_router_requests_total{{{sel}}}{RATE}))", "{{route}} {{outcome}}")],
                       unit="reqps", stack=True), 12, 8)
    lay.add(timeseries("Error ratio by route", "Share of each route's requests not answered ok.",
                       [(ratio_or_zero("llm_router_requests_total", 'outcome!="ok"', "route", sel), "{{route}}")],
                       unit="percentunit"), 12, 8)
    lay.row("Latency")
    lay.add(timeseries("End-to-end latency p50/p95/p99", "Worker time from receiving a request to sending its reply (retries, failover and limit waits included), by route.",
                       quantiles("llm_router_request_duration_seconds", "route", sel, "{{route}}"), unit="s"), 12, 8)
    lay.add(timeseries("Router overhead p50/p95/p99", "End-to-end minus the time spent in the router (provider calls, retries, limit waits): what the broker hop and the worker add.",
                       quantiles("llm_router_overhead_seconds", "route", sel, "{{route}}"), unit="s"), 12, 8)
    lay.add(timeseries("Gateway latency p50/p95/p99", "OpenAI-compatible gateway: time from receiving an HTTP request to its response, by route.",
                       quantiles("llm_router_gateway_request_duration_seconds", "route", 'job=~"llm-router.*"', "{{route}}"), unit="s"), 12, 8)
    lay.add(timeseries("Gateway responses/s by status", "HTTP responses of the gateway by route and status code.",
                       [('sum by (route, status) (rate(llm_router_gateway_requests_total{job=~"llm-router.*"}' + RATE + "))", "{{route}} {{status}}")],
                       unit="reqps", stack=True), 12, 8)
    lay.add(timeseries("Streaming: worker time to first chunk", "Streamed requests: time from the worker receiving the request to publishing its first chunk, by route.",
                       quantiles("llm_router_stream_first_chunk_seconds", "route", sel, "{{route}}"), unit="s"), 12, 8)
    lay.add(timeseries("Streaming: gateway time to first chunk", "Streamed requests: time from the gateway receiving the request to relaying its first chunk to the client, by route.",
                       quantiles("llm_router_gateway_stream_first_chunk_seconds", "route", 'job=~"llm-router.*"', "{{route}}"), unit="s"), 12, 8)
    lay.row("Tokens")
    lay.add(timeseries("Tokens/s by route and kind", "Prompt and completion tokens of answered requests.",
                       [(f"sum by (route, kind) (rate(llm_router_route_tokens_total{{{sel}}}{RATE}))", "{{route}} {{kind}}")],
                       stack=True), 8, 8)
    lay.add(timeseries("In-flight requests by route", "Requests being handled by workers now.",
                       [(f"sum by (route) (llm_router_in_flight_requests{{{sel}}})", "{{route}}")]), 8, 8)
    lay.add(timeseries("Replies not delivered/s", "Replies the broker refused or could not take: the caller times out although the worker answered (0 when none).",
                       [(f"sum by (instance) (rate(llm_router_reply_errors_total{{{W}}}{RATE})) or vector(0)", "{{instance}}")],
                       unit="ops"), 8, 8)
    route = query_var("route", "Route", "label_values(llm_router_requests_total, route)")
    return dashboard("llm-router-overview", "llm-router / Overview",
                     "Is the router serving: traffic by route and outcome, latency, overhead, errors, tokens, replicas.",
                     job_vars("llm-router-worker") + [route], lay, ["overview"])


def providers():
    sel = f'{W}, endpoint=~"$endpoint"'
    lay = Layout()
    lay.row("Health")
    lay.add(stat("Circuit state", "Circuit breaker per endpoint (worst replica): closed, half-open (probing) or open (skipped for the cool-down).",
                 [(f"max by (endpoint) (llm_router_circuit_state{{{sel}}})", "{{endpoint}}")],
                 mappings=CIRCUIT_MAPPINGS, thresholds=CIRCUIT_THRESHOLDS), 12, 5)
    lay.add(stat("Calls/s", "Provider calls (attempts) per second, by endpoint.",
                 [(f"sum by (endpoint) (rate(llm_router_upstream_latency_seconds_count{{{sel}}}{RATE}))", "{{endpoint}}")],
                 unit="reqps"), 12, 5)
    lay.add(timeseries("Circuit state over time", "0 closed, 1 half-open, 2 open; one line per endpoint and replica.",
                       [(f"llm_router_circuit_state{{{sel}}}", "{{endpoint}} {{instance}}")],
                       mappings=CIRCUIT_MAPPINGS), 12, 8)
    lay.add(timeseries("Upstream latency p50/p95/p99", "Duration of each provider call (one attempt), by endpoint.",
                       quantiles("llm_router_upstream_latency_seconds", "endpoint", sel, "{{endpoint}}"), unit="s"), 12, 8)
    lay.row("Failures and status codes")
    lay.add(timeseries("Retries/s by endpoint", "Attempts after the first at an endpoint: retryable failures (connect, timeout, 408, 429, 5xx).",
                       [(f"sum by (endpoint) (rate(llm_router_retries_total{{{sel}}}{RATE}))", "{{endpoint}}")], unit="reqps"), 8, 8)
    lay.add(timeseries("Failovers/s by route", "Requests moved from a failed or skipped target to the next one.",
                       [(f"sum by (route) (rate(llm_router_failovers_total{{{W}}}{RATE}))", "{{route}}")], unit="reqps"), 8, 8)
    lay.add(timeseries("Outcomes/s by route", "What callers got: ok or the failure code (the providers' own answers are under Status codes by endpoint).",
                       [(f"sum by (route, outcome) (rate(llm_router_requests_total{{{W}}}{RATE}))", "{{route}} {{outcome}}")],
                       unit="reqps", stack=True), 8, 8)
    lay.add(timeseries("Status codes by endpoint", "Provider calls per second by how they ended: the HTTP status, or timeout, connect (no response), reset (a stream broke off) or decode (unreadable answer).",
                       [(f"sum by (endpoint, status) (rate(llm_router_upstream_responses_total{{{sel}}}{RATE}))", "{{endpoint}} {{status}}")],
                       unit="reqps", stack=True), 12, 8)
    lay.add(timeseries("Gateway status codes/s", "HTTP status codes the gateway returned, by route.",
                       [('sum by (status) (rate(llm_router_gateway_requests_total{job=~"llm-router.*"}' + RATE + "))", "{{status}}")],
                       unit="reqps", stack=True), 12, 8)
    lay.row("Limits and load")
    lay.add(timeseries("Rate-limit waits/s", "Requests that waited for an endpoint's rate or concurrency budget.",
                       [(f"sum by (endpoint) (rate(llm_router_rate_limit_waits_total{{{sel}}}{RATE}))", "{{endpoint}}")], unit="reqps"), 8, 8)
    lay.add(timeseries("Rate-limit wait p50/p95/p99", "How long those requests waited: headroom is gone when this grows.",
                       quantiles("llm_router_rate_limit_wait_seconds", "endpoint", sel, "{{endpoint}}"), unit="s"), 8, 8)
    lay.add(timeseries("In flight by endpoint", "Requests assigned to an endpoint and not finished (waiting for budget, backing off or on the wire).",
                       [(f"sum by (endpoint) (llm_router_in_flight{{{sel}}})", "{{endpoint}}")]), 8, 8)
    lay.add(timeseries("Tokens/s by endpoint", "Tokens the providers reported, by endpoint and kind.",
                       [(f"sum by (endpoint, kind) (rate(llm_router_tokens_total{{{sel}}}{RATE}))", "{{endpoint}} {{kind}}")],
                       stack=True), 24, 8)
    endpoint = query_var("endpoint", "Endpoint", "label_values(llm_router_circuit_state, endpoint)")
    return dashboard("llm-router-providers", "llm-router / Providers",
                     "Which provider endpoint is slow, failing, rate-limited or skipped by its circuit breaker.",
                     job_vars("llm-router-worker") + [endpoint], lay, ["providers"])


def batch():
    sel = f'{W}, route=~"$route"'
    broker_sel = 'job=~"llm-router.*", channel=~"llm-router\\\\.batch\\\\..*"'
    lay = Layout()
    lay.row("Jobs")
    # The job id is the `batch_job` label (`job` is Prometheus's scrape job).
    lay.add(bargauge("Job progress", "Lines finished (ok, failed, dead-lettered or cancelled) over the job's lines, per batch job.",
                     [("sum by (batch_job) (llm_router_batch_job_done_total{" + W + "}) / on (batch_job) max by (batch_job) (llm_router_batch_job_lines{" + W + "})",
                       "{{batch_job}}")]), 12, 8)
    lay.add(stat("Lines per job", "Lines in each batch job.",
                 [(f"max by (batch_job) (llm_router_batch_job_lines{{{W}}})", "{{batch_job}}")]), 12, 8)
    lay.row("Lines")
    lay.add(timeseries("Lines/s by outcome", "Batch line deliveries per second: ok, failed, retried, dead_lettered, cancelled, requeued.",
                       [(f"sum by (route, outcome) (rate(llm_router_batch_items_total{{{sel}}}{RATE}))", "{{route}} {{outcome}}")],
                       unit="ops", stack=True), 12, 8)
    lay.add(stat("Lines done and failed", "Line deliveries by outcome since the workers started.",
                 [(f"sum by (outcome) (llm_router_batch_items_total{{{sel}}})", "{{outcome}}")]), 12, 8)
    lay.add(timeseries("Lines in flight", "Batch lines workers are working on now.",
                       [(f"sum by (route) (llm_router_batch_in_flight{{{sel}}})", "{{route}}")]), 8, 8)
    lay.add(timeseries("Redeliveries/s", "Lines delivered again after an earlier delivery (retry or a worker that died).",
                       [(f"sum by (route) (rate(llm_router_batch_redeliveries_total{{{sel}}}{RATE}))", "{{route}}")], unit="ops"), 8, 8)
    lay.add(timeseries("Dead-lettered lines", "Lines moved to their job's dead-letter queue after their last attempt, in the window.",
                       [(f"sum by (route) (increase(llm_router_batch_dead_lettered_total{{{sel}}}{RATE}))", "{{route}}")]), 8, 8)
    lay.row("Queues")
    lay.add(timeseries("Queue depth by route", "Lines waiting in each route's batch queue (every worker reports the same value: max).",
                       [(f"max by (route) (llm_router_batch_queue_depth{{{sel}}})", "{{route}}")]), 8, 8)
    lay.add(timeseries("Oldest waiting line age", "Age of the oldest line waiting in each route's queue: growing means workers are not keeping up.",
                       [(f"max by (route) (llm_router_batch_oldest_age_seconds{{{sel}}})", "{{route}}")], unit="s"), 8, 8)
    lay.add(timeseries("Broker: batch queues", "The embedded broker's view of the batch, results and dead-letter queues: waiting, in flight, delayed (a real KubeMQ has its own metrics).",
                       [(f"sum by (channel) (llm_router_broker_queue_depth{{{broker_sel}}})", "waiting {{channel}}"),
                        (f"sum by (channel) (llm_router_broker_queue_in_flight{{{broker_sel}}})", "in flight {{channel}}"),
                        (f"sum by (channel) (llm_router_broker_queue_delayed{{{broker_sel}}})", "delayed {{channel}}")]), 8, 8)
    route = query_var("route", "Route", "label_values(llm_router_batch_queue_depth, route)")
    return dashboard("llm-router-batch", "llm-router / Batch",
                     "Are batch jobs moving: progress per job, lines by outcome, queue depth and age, redeliveries, dead letters.",
                     job_vars("llm-router-worker") + [route], lay, ["batch"])


def broker():
    sel = 'job=~"$job", instance=~"$instance"'
    lay = Layout()
    lay.row("Messages")
    lay.add(stat("Broker up", "Embedded broker scrape targets answering.",
                 [(f"sum(up{{{sel}}})", "up")],
                 thresholds={"mode": "absolute", "steps": [{"color": "red", "value": None}, {"color": "green", "value": 1}]}), 6, 5)
    lay.add(stat("Subscriptions", "Active subscriptions by pattern (queries: workers' route subscriptions).",
                 [(f"sum by (pattern) (llm_router_broker_subscribers{{{sel}}})", "{{pattern}}")]), 18, 5)
    lay.add(timeseries("Messages in/s by pattern", "Messages accepted by the broker.",
                       [(f"sum by (pattern) (rate(llm_router_broker_messages_in_total{{{sel}}}{RATE}))", "{{pattern}}")],
                       unit="ops", stack=True), 12, 8)
    lay.add(timeseries("Messages out/s by pattern", "Messages delivered to subscribers or consumers.",
                       [(f"sum by (pattern) (rate(llm_router_broker_messages_out_total{{{sel}}}{RATE}))", "{{pattern}}")],
                       unit="ops", stack=True), 12, 8)
    lay.add(timeseries("Busiest channels in/s", "Top 10 channels by messages accepted.",
                       [(f"topk(10, sum by (channel) (rate(llm_router_broker_messages_in_total{{{sel}}}{RATE})))", "{{channel}}")],
                       unit="ops"), 12, 8)
    lay.add(timeseries("Dropped messages/s", "Messages not delivered because a subscriber's buffer stayed full (0 when none were dropped).",
                       [(f"sum by (pattern) (rate(llm_router_broker_messages_dropped_total{{{sel}}}{RATE})) or vector(0)", "{{pattern}}")],
                       unit="ops"), 12, 8)
    lay.row("Queues")
    lay.add(timeseries("Queue depth", "Messages waiting (ready, not in flight, not delayed), by channel.",
                       [(f"sum by (channel) (llm_router_broker_queue_depth{{{sel}}})", "{{channel}}")]), 8, 8)
    lay.add(timeseries("Queue in flight", "Messages delivered and not yet settled, by channel.",
                       [(f"sum by (channel) (llm_router_broker_queue_in_flight{{{sel}}})", "{{channel}}")]), 8, 8)
    lay.add(timeseries("Queue delayed", "Messages waiting for their delay (retries after a 429 or 5xx), by channel.",
                       [(f"sum by (channel) (llm_router_broker_queue_delayed{{{sel}}})", "{{channel}}")]), 8, 8)
    lay.add(timeseries("Redeliveries/s", "Queue messages put back after a failed or abandoned delivery.",
                       [(f"sum by (channel) (rate(llm_router_broker_queue_redeliveries_total{{{sel}}}{RATE}))", "{{channel}}")], unit="ops"), 8, 8)
    lay.add(timeseries("Dead-lettered/s", "Queue messages moved to a dead-letter queue after MaxReceiveCount.",
                       [(f"sum by (channel) (rate(llm_router_broker_queue_dead_lettered_total{{{sel}}}{RATE}))", "{{channel}}")], unit="ops"), 8, 8)
    lay.add(timeseries("Expired/s", "Queue messages dropped because they expired.",
                       [(f"sum by (channel) (rate(llm_router_broker_queue_expired_total{{{sel}}}{RATE}))", "{{channel}}")], unit="ops"), 8, 8)
    return dashboard("llm-router-broker", "llm-router / Broker",
                     "The embedded KubeMQ-compatible broker: message flow by pattern and channel, queues, subscriptions.",
                     job_vars("llm-router-broker"), lay, ["broker"])


def render():
    """Each dashboard's file name and JSON text."""
    boards = (("overview", overview()), ("providers", providers()),
              ("batch", batch()), ("broker", broker()))
    return {f"{name}.json": json.dumps(board, indent=2) + "\n" for name, board in boards}


def main():
    for name, text in render().items():
        (HERE / name).write_text(text)


if __name__ == "__main__":
    main()
