"""Evaluates every panel query of every Grafana dashboard and every alert expression
through a live Prometheus's HTTP API (standard library only).

A panel passes when each of its queries parses and returns a series with a real (not NaN)
value somewhere between --since and now, the way Grafana draws a time range. An alert expression passes when it parses (an alert that does not fire returns
nothing, which is what a healthy system should give). Template variables are replaced by
their "All" value, Grafana's interval variables by fixed windows that suit a 1 s scrape.

Prints every empty or broken panel by dashboard and title, then one summary line:
`observability: N panels with data, M empty, K alert rules ok`; exits 1 on any problem.
"""

import argparse
import json
import math
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

# Grafana's built-in interval variables, with windows wide enough for a 1 s scrape and a
# run of a minute or two.
BUILTINS = {
    "__rate_interval": "15s",
    "__interval": "5s",
    "__range": "5m",
    "__range_s": "300",
}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prometheus", required=True, help="base URL, e.g. http://127.0.0.1:9090")
    parser.add_argument("--since", type=float, required=True, help="Unix time the run started")
    parser.add_argument("--dashboards", default="dashboards", help="folder of dashboard JSON files")
    parser.add_argument("--rules", default="deploy/prometheus/alerts.yml", help="alert rules file")
    return parser.parse_args()


def api(base, path, params):
    """GETs a Prometheus API path; returns (data, error text)."""
    url = f"{base}{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            body = json.load(response)
    except urllib.error.HTTPError as e:
        body = json.load(e)
    except (urllib.error.URLError, OSError) as e:
        return None, f"cannot reach Prometheus at {base}: {e}"
    if body.get("status") != "success":
        return None, f"{body.get('errorType')}: {body.get('error')}"
    return body["data"], None


def substitute(expr, variables):
    """Replaces $name, ${name}, ${name:fmt} and [[name]] the way Grafana would for 'All'."""

    def value(name):
        return variables.get(name, BUILTINS.get(name))

    def replace(match):
        name = match.group("a") or match.group("b") or match.group("c")
        found = value(name)
        return match.group(0) if found is None else found

    pattern = r"\$\{(?P<a>\w+)(?::\w+)?\}|\[\[(?P<b>\w+)\]\]|\$(?P<c>\w+)"
    return re.sub(pattern, replace, expr)


def dashboard_variables(dashboard):
    """The value each template variable takes when 'All' is picked."""
    variables = {}
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") in ("query", "custom", "interval", "textbox", "constant"):
            variables[var["name"]] = var.get("allValue") or ".*"
    return variables


def panels(dashboard):
    """Every panel with queries, rows' nested panels included."""
    for panel in dashboard.get("panels", []):
        yield from panel.get("panels", [])
        if panel.get("targets"):
            yield panel


def has_values(data):
    for series in data.get("result", []):
        points = series.get("values") or [series.get("value")]
        for point in points:
            if point and not math.isnan(float(point[1])):
                return True
    return False


def check_panel(base, since, variables, panel):
    """Returns None when the panel has data, else why not."""
    now = time.time()
    step = max(1, int((now - since) / 200))
    problems = []
    for target in panel["targets"]:
        expr = substitute(target.get("expr", ""), variables)
        if "$" in expr or "[[" in expr:
            problems.append(f"unknown variable left in {expr!r}")
            continue
        data, error = api(base, "/api/v1/query_range",
                          {"query": expr, "start": since, "end": now, "step": step})
        if error:
            problems.append(f"{error} in {expr!r}")
        elif not has_values(data):
            problems.append(f"no data for {expr!r}")
    return "; ".join(problems) or None


def check_dashboards(base, since, folder):
    ok, empty = 0, []
    files = sorted(Path(folder).glob("*.json"))
    if not files:
        empty.append((folder, "-", "no dashboard JSON files"))
    for path in files:
        dashboard = json.loads(path.read_text())
        variables = dashboard_variables(dashboard)
        for panel in panels(dashboard):
            why = check_panel(base, since, variables, panel)
            if why is None:
                ok += 1
            else:
                empty.append((dashboard.get("title", path.name), panel.get("title"), why))
    return ok, empty


def check_rules(base, rules_file):
    """Every rule Prometheus loaded from `rules_file`, evaluated once."""
    data, error = api(base, "/api/v1/rules", {})
    if error:
        return 0, [error]
    wanted = Path(rules_file).resolve()
    rules = [rule for group in data["groups"] if Path(group["file"]).resolve() == wanted
             for rule in group["rules"]]
    if not rules:
        return 0, [f"Prometheus loaded no rules from {rules_file}"]
    ok, broken = 0, []
    for rule in rules:
        _, error = api(base, "/api/v1/query", {"query": rule["query"]})
        if error:
            broken.append(f"{rule['name']}: {error}")
        elif rule.get("health") == "err":
            broken.append(f"{rule['name']}: {rule.get('lastError')}")
        else:
            ok += 1
    return ok, broken


def main():
    args = parse_args()
    base = args.prometheus.rstrip("/")
    with_data, empty = check_dashboards(base, args.since, args.dashboards)
    rules_ok, broken = check_rules(base, args.rules)
    for dashboard, title, why in empty:
        print(f"EMPTY {dashboard} / {title}: {why}")
    for why in broken:
        print(f"BROKEN alert {why}")
    print(f"observability: {with_data} panels with data, {len(empty)} empty, "
          f"{rules_ok} alert rules ok" + (f", {len(broken)} broken" if broken else ""))
    return 0 if not empty and not broken and with_data else 1


if __name__ == "__main__":
    sys.exit(main())
