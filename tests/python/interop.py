"""Tiny check runner shared by the interop scripts: one PASS/FAIL line per check.

scripts/python-interop.sh counts those lines; a script exits non-zero when any of its
checks failed, so a crash before the first check is also seen as a failure.
"""

import os
import sys
import time
import traceback

CHECKS = []


def embedded_only(fn):
    """Checks of embedded-broker extensions (REST BodyString, channel management), which
    the real KubeMQ v2.4.0 lacks: left out when LLM_ROUTER_TEST_BROKER=kubemq."""
    import os
    if os.environ.get("LLM_ROUTER_TEST_BROKER") == "kubemq":
        return None
    return check(fn)


def check(fn):
    """Registers `fn` as a check, run in definition order."""
    CHECKS.append(fn)
    return fn


def expect(condition, message):
    """Raises when `condition` is false (plain asserts vanish under -O)."""
    if not condition:
        raise AssertionError(message)


def address():
    """host:port of the broker's gRPC listener."""
    return os.environ["KUBEMQ_ADDRESS"]


def wait_until(predicate, timeout, interval=0.1):
    """Polls `predicate` until it returns a truthy value or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def run(prefix):
    """Runs every registered check and exits 1 if any failed."""
    failed = 0
    for fn in CHECKS:
        name = f"{prefix}.{fn.__name__}"
        started = time.monotonic()
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - every failure is reported the same way
            failed += 1
            traceback.print_exc(file=sys.stderr)
            print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)
        else:
            print(f"PASS {name} ({time.monotonic() - started:.2f}s)", flush=True)
    sys.stdout.flush()
    sys.stderr.flush()
    # SDK clients keep gRPC threads alive; leave without waiting for them.
    os._exit(1 if failed else 0)
