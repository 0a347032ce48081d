"""The status page in headless Chromium (Debian's chromium + chromium-driver via Selenium).

Env: GATEWAY_URL (the gateway of a running `llm-router up --sim`), JOB_ID and JOB_LINES (a
batch job submitted and still running), SCREENSHOT (where to save the page, PNG),
CHROMIUM / CHROMEDRIVER (binaries; default /usr/bin/chromium, /usr/bin/chromedriver).

Prints one PASS/FAIL line per check; exits non-zero if any failed.
"""

import os
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

GATEWAY = os.environ["GATEWAY_URL"]
JOB = os.environ["JOB_ID"]
LINES = int(os.environ["JOB_LINES"])
SCREENSHOT = os.environ["SCREENSHOT"]
failed = 0


def check(name, ok, detail=""):
    global failed
    if ok:
        print(f"PASS {name}")
    else:
        failed += 1
        print(f"FAIL {name}: {detail}")


def until(what, probe, limit=15.0):
    """Polls `probe` until it returns something truthy; returns it, or None after `limit` s."""
    deadline = time.monotonic() + limit
    while True:
        try:
            found = probe()
        except Exception:  # the table is being redrawn under us; look again
            found = None
        if found:
            return found
        if time.monotonic() > deadline:
            print(f"    gave up waiting for {what}", file=sys.stderr)
            return None
        time.sleep(0.2)


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1000", "--hide-scrollbars"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    return webdriver.Chrome(service=service, options=options)


def cells(driver, table):
    return [[td.text for td in tr.find_elements(By.TAG_NAME, "td")]
            for tr in driver.find_elements(By.CSS_SELECTOR, f"#{table} tbody tr")]


def job_bar(driver):
    for tr in driver.find_elements(By.CSS_SELECTOR, "#jobs tbody tr"):
        if JOB in tr.text:
            bars = tr.find_elements(By.CSS_SELECTOR, "[role=progressbar]")
            return (tr.text, int(bars[0].get_attribute("aria-valuenow"))) if bars else None
    return None


def main():
    driver = browser()
    try:
        driver.get(f"{GATEWAY}/status")
        check("page.title", driver.title == "llm-router status", driver.title)

        routes = until("routes", lambda: [r[0] for r in cells(driver, "routes") if len(r) == 3])
        check("page.routes_shown", routes and {"openai", "claude"} <= set(routes), routes)

        workers = until("a live worker", lambda: [r for r in cells(driver, "workers") if "live" in r])
        check("page.workers_shown", bool(workers), cells(driver, "workers"))

        endpoints = until("endpoint health", lambda: [r for r in cells(driver, "endpoints")
                                                      if len(r) == 8 and r[2] == "healthy"])
        check("page.endpoints_shown", bool(endpoints), cells(driver, "endpoints"))

        first = until("the job's progress bar", lambda: (lambda b: b if b and b[1] > 0 else None)(job_bar(driver)))
        check("page.job_progress_bar", first is not None and "in progress" in first[0] and first[1] < LINES,
              first)

        # Live: the bar moves without reloading the page.
        later = until("the bar moving", lambda: (lambda b: b if b and first and b[1] > first[1] else None)(job_bar(driver)))
        check("page.refreshes_live", later is not None, (first, job_bar(driver)))

        # A bar that shows some progress makes a better picture; not a check.
        until("a tenth of the job", lambda: (lambda b: b and b[1] * 10 >= LINES)(job_bar(driver)), 30)
        driver.save_screenshot(SCREENSHOT)
        check("page.screenshot", os.path.getsize(SCREENSHOT) > 10_000, SCREENSHOT)

        errors = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
        check("page.no_console_errors", not errors, errors)
    finally:
        driver.quit()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
