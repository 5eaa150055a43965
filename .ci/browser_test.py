#!/usr/bin/env python3
"""The dashboard in a real browser: Debian's chromium and chromium-driver, driven by selenium,
against the gatehouse binary on 127.0.0.1.

Flagger's calls are replayed from ../shared/fixtures/flagger-sequences.json; where a sequence
says "someone opens the rollout gate" (and the like), a person does it in the browser, and
Flagger's next call must get the answer the fixture records. Screenshots of the overview and
of a canary page are written to docs/screenshots/ (or $SCREENSHOTS).

    python3 .ci/browser_test.py path/to/gatehouse
"""
import json
import os
import pathlib
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from axe_selenium_python import Axe
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT.parent / "shared" / "fixtures" / "flagger-sequences.json"
SCREENSHOTS = pathlib.Path(os.environ.get("SCREENSHOTS", ROOT / "docs" / "screenshots"))
OPS, READER = "browser-ops-token", "browser-reader-token"
WAIT = 20  # seconds any one expected change may take

failures = []
counts = {"calls": 0}


def check(condition, what):
    print(("ok   " if condition else "FAIL ") + what, flush=True)
    if not condition:
        failures.append(what)


def sha256(text):
    import hashlib
    return hashlib.sha256(text.encode()).hexdigest()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service_:
    """The gatehouse binary with an access file, on a free port."""

    def __init__(self, binary, work):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        access = work / "access.yaml"
        access.write_text(f"""tokens:
  - name: ops
    sha256: {sha256(OPS)}
    namespaces: ["*"]
    actions: [read, open, close, rollback, freeze]
  - name: reader
    sha256: {sha256(READER)}
    namespaces: [test]
    actions: [read]
""")
        self.log = open(work / "gatehouse.log", "w")
        self.process = subprocess.Popen(
            [binary, "serve", "--host", "127.0.0.1", "--port", str(self.port),
             "--database", str(work / "gatehouse.sqlite"), "--access-file", str(access),
             "--log-format", "json"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if self.call("GET", "/readyz")[0] == 200:
                    return
            except OSError:
                pass
            if self.process.poll() is not None:
                raise SystemExit("gatehouse exited at start; see its log")
            time.sleep(0.1)
        raise SystemExit("gatehouse did not become ready within 60s")

    def call(self, method, path, body=None, token=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()


def flagger(service, call, rename=None):
    """One call of a fixture sequence; the answer must be the one the fixture records."""
    body = dict(call["body"])
    if rename:
        body["name"] = rename
    path = "/v1/flagger/events" if call["hook"] == "event" else f"/v1/flagger/{call['hook']}"
    status, text = service.call("POST", path, body)
    counts["calls"] += 1
    expected = {"pass": 200, "refuse": 403}.get(call.get("answer"), 202 if call["hook"] in ("event", "post-rollout") else None)
    if expected is not None and status != expected:
        check(False, f"{call['hook']} ({body['phase']}, {body['checksum']}) answered {status}, the fixture says {call.get('answer')}: {text.strip()[:200]}")
    return status


def browser(javascript=True, width=1280, height=900):
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     f"--window-size={width},{height}", "--lang=en-US"):
        options.add_argument(argument)
    if not javascript:
        options.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(WAIT)
    return driver


def wait_for(driver, condition, what):
    try:
        return WebDriverWait(driver, WAIT, poll_frequency=0.1).until(condition)
    except TimeoutException:
        check(False, f"{what} (not seen within {WAIT}s)")
        return None


def accessible(driver, service, paths, width_name):
    """axe-core on each page: no serious or critical violation (WCAG 2 A/AA rules and best practices)."""
    for path in paths:
        driver.get(service.base + path)
        axe = Axe(driver)
        axe.inject()
        results = axe.run()
        check(len(results["passes"]) >= 10, f"axe ran its rules on {path} ({len(results['passes'])} passed)")
        bad = [v for v in results["violations"] if v.get("impact") in ("serious", "critical")]
        minor = sorted({f"{v['id']} ({v['impact']})" for v in results["violations"]} - {f"{v['id']} ({v['impact']})" for v in bad})
        if minor:
            print(f"axe, {path} at {width_name} width, lesser findings: {', '.join(minor)}")
        details = "; ".join(
            f"{v['id']} ({v['impact']}): {v['help']} at {', '.join(n['target'][0] for n in v['nodes'][:3])}" for v in bad)
        check(not bad, f"axe finds no serious or critical violation on {path} at {width_name} width{': ' + details if details else ''}")


def sign_in(driver, service, token):
    driver.get(service.base + "/")
    wait_for(driver, EC.url_contains("/sign-in"), "an anonymous visit goes to the sign-in page")
    field = driver.find_element(By.NAME, "token")
    field.send_keys(token)
    field.send_keys(Keys.ENTER)
    wait_for(driver, EC.presence_of_element_located((By.CSS_SELECTOR, "h1")), "the page after sign-in")


def form_for(driver, action_suffix, gate=None):
    for form in driver.find_elements(By.CSS_SELECTOR, "form[method=post]"):
        if not form.get_attribute("action").split("?")[0].endswith(action_suffix):
            continue
        if gate is None or form.find_element(By.NAME, "gate").get_attribute("value") == gate:
            return form
    return None


def approve(driver, service, canary, gate, reason, steps=None):
    """A person approves `gate` on the canary page, as the fixture's note says."""
    driver.get(f"{service.base}/canaries/{canary}")
    form = form_for(driver, "/open", gate)
    check(form is not None, f"the {gate} approval form is on the page of {canary}")
    if form is None:
        return
    form.find_element(By.NAME, "reason").send_keys(reason)
    if steps is not None:
        field = form.find_element(By.NAME, "steps")
        field.clear()
        field.send_keys(str(steps))
        form.find_element(By.CSS_SELECTOR, "button[value=steps]").click()
    else:
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    notice = wait_for(driver, EC.presence_of_element_located((By.CSS_SELECTOR, ".banner.notice")),
                      f"the page says what the {gate} approval did")
    if notice is not None:
        check(notice.text.startswith("Done:"), f"{gate} approved from the browser: {notice.text[:90]}")


def request_rollback(driver, service, canary, reason):
    driver.get(f"{service.base}/canaries/{canary}")
    driver.find_element(By.LINK_TEXT, "Request a rollback…").click()
    consequence = wait_for(driver, EC.presence_of_element_located((By.CSS_SELECTOR, ".consequence")),
                           "the rollback confirmation page")
    if consequence is None:
        return
    check("routes all traffic back to the primary" in consequence.text and "Failed" in consequence.text,
          "the confirmation says what Flagger will do")
    driver.find_element(By.NAME, "reason").send_keys(reason)
    driver.find_element(By.CSS_SELECTOR, "button.danger").click()
    wait_for(driver, EC.presence_of_element_located((By.CSS_SELECTOR, ".banner.notice")),
             "the page says the rollback was requested")


def screenshot_page(driver, service, canary, file):
    """The whole canary page, as it is while it waits for its promotion."""
    driver.get(f"{service.base}/canaries/{canary}")
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(height + 120, 2400))
    driver.save_screenshot(str(SCREENSHOTS / file))
    driver.set_window_size(1280, 900)


def replay(driver, service, sequence, actions, rename=None):
    """Replays a fixture sequence; a note naming a person's action is done in the browser."""
    for call in sequence:
        if "note" in call:
            action = actions.get(call["note"])
            if action:
                action()
            continue
        flagger(service, call, rename)


def main():
    binary = sys.argv[1]
    sequences = json.loads(FIXTURES.read_text())["sequences"]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as directory:
        service = Service_(binary, pathlib.Path(directory))
        drivers = []
        try:
            driver = browser()
            drivers.append(driver)

            # Sign in, then watch the waiting canary appear when Flagger's call arrives.
            sign_in(driver, service, OPS)
            check("signed in with the shared access token ops" in driver.page_source, "signed in as ops")
            cookie = driver.get_cookie("gatehouse_session") or {}
            check(cookie.get("httpOnly") is True and cookie.get("sameSite") == "Lax",
                  "the session cookie is HttpOnly and SameSite=Lax")
            driver.get(service.base + "/")
            check(driver.find_elements(By.CSS_SELECTOR, "tr[data-canary]") == [], "no canary yet")
            flow = sequences["promoted-with-manual-gates"]
            first = next(index for index, call in enumerate(flow) if call.get("hook") == "confirm-rollout")
            replay(driver, service, flow[:first + 2], {})
            row = wait_for(driver, EC.presence_of_element_located((By.CSS_SELECTOR, 'tr[data-canary="test/podinfo"]')),
                           "the waiting canary appears on the open overview without a reload")
            if row is not None:
                check("rollout gate" in row.text, f"the overview says what it waits on: {row.text[:100]}")
            # More canaries, so that the overview's picture shows each state.
            def canary_call(hook, namespace, name, phase, checksum):
                service.call("POST", f"/v1/flagger/{hook}", {"name": name, "namespace": namespace, "phase": phase, "checksum": checksum})
            canary_call("confirm-promotion", "test", "checkout", "Progressing", "c-7")
            canary_call("confirm-rollout", "payments", "payments-api", "Succeeded", "p-3")
            service.call("POST", "/v1/canaries/payments/ledger/gates/traffic/open", {"sticky": True, "reason": "trusted"}, OPS)
            canary_call("confirm-traffic-increase", "payments", "ledger", "Progressing", "l-2")
            canary_call("post-rollout", "test", "frontend", "Succeeded", "f-9")
            driver.get(service.base + "/")
            driver.save_screenshot(str(SCREENSHOTS / "overview.png"))

            # The rest of the sequence: each person's step in the browser, each Flagger call answered as recorded.
            canary = "test/podinfo"
            replay(driver, service, flow[first + 2:], {
                "someone opens the rollout gate": lambda: approve(driver, service, canary, "rollout", "release 1.2 approved"),
                "someone approves 3 traffic steps": lambda: approve(driver, service, canary, "traffic", "first three steps", steps=3),
                "someone approves 1 more traffic step (the extra check at max weight)":
                    lambda: approve(driver, service, canary, "traffic", "max weight looks fine", steps=1),
                "someone opens the promotion gate": lambda: (screenshot_page(driver, service, canary, "canary.png"),
                                                             approve(driver, service, canary, "promotion", "ship it")),
            })
            driver.get(f"{service.base}/canaries/{canary}")
            timeline = driver.find_element(By.CSS_SELECTOR, ".timeline").text
            check("Promotion completed!" in driver.page_source and "ship it" in timeline,
                  "the timeline holds Flagger's events and the approvals together")
            # Times read "4 min ago"; on hover, the exact moment in the viewer's own zone (the script's).
            stamp = driver.find_element(By.CSS_SELECTOR, ".timeline time[datetime]")
            check(re.match(r"^(just now|\d+ (s|min|h|d)\b.* ago)$", stamp.text) is not None,
                  f"a time reads as how long ago: {stamp.text!r}")
            check(stamp.get_attribute("title") not in ("", stamp.get_attribute("datetime")),
                  f"its title is the moment in the viewer's zone: {stamp.get_attribute('title')!r}")

            # A rollback requested in the browser, with its confirmation; Flagger's next rollback check passes.
            rollback = sequences["manual-rollback"]
            service.call("POST", "/v1/canaries/test/orders/gates/rollout/open", {"reason": "setup"}, OPS)
            service.call("POST", "/v1/canaries/test/orders/gates/traffic/open", {"sticky": True, "reason": "setup"}, OPS)
            replay(driver, service, rollback, {
                "someone requests a rollback": lambda: request_rollback(driver, service, "test/orders", "error rate up"),
            }, rename="orders")
            status, text = service.call("GET", "/v1/canaries/test/orders", token=OPS)
            check(status == 200 and json.loads(text)["phase"] == "Failed", "the rolled-back canary is Failed")

            # Freezes: set one, Flagger is held, lift it.
            driver.get(service.base + "/freezes")
            form = form_for(driver, "/freezes")
            form.find_element(By.NAME, "namespace").send_keys("test")
            form.find_element(By.NAME, "reason").send_keys("release train")
            form.find_element(By.NAME, "for").send_keys("2h")
            form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
            wait_for(driver, EC.presence_of_element_located((By.CSS_SELECTOR, "li.freeze")), "the freeze is listed")
            status, _ = service.call("POST", "/v1/flagger/confirm-promotion",
                                     {"name": "checkout", "namespace": "test", "phase": "Progressing", "checksum": "c-7"})
            service.call("POST", "/v1/canaries/test/checkout/gates/promotion/open", {"reason": "would pass"}, OPS)
            status, text = service.call("POST", "/v1/flagger/confirm-promotion",
                                        {"name": "checkout", "namespace": "test", "phase": "Progressing", "checksum": "c-7"})
            check(status == 403 and "release train" in text, "a freeze set in the browser holds Flagger")
            driver.find_element(By.CSS_SELECTOR, "li.freeze button").click()
            wait_for(driver, EC.text_to_be_present_in_element((By.CSS_SELECTOR, "main"), "Nothing is frozen."),
                     "the freeze is lifted")
            status, _ = service.call("POST", "/v1/flagger/confirm-promotion",
                                     {"name": "checkout", "namespace": "test", "phase": "Progressing", "checksum": "c-7"})
            check(status == 200, "after the lift Flagger's check passes")

            # Markup in Flagger's messages and in reasons is shown as text.
            attack = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
            service.call("POST", "/v1/flagger/events", {"name": "podinfo", "namespace": "test", "phase": "Succeeded",
                                                         "checksum": "rev1", "metadata": {"eventMessage": attack, "eventType": "Warning", "timestamp": "1"}})
            service.call("POST", "/v1/canaries/test/podinfo/gates/rollout/open", {"reason": attack}, OPS)
            for path in ("/", "/canaries/test/podinfo", "/audit"):
                driver.get(service.base + path)
                time.sleep(0)  # the page is loaded when get returns
                injected = driver.execute_script("return window.__xss === undefined ? null : window.__xss")
                check(injected is None, f"no script from a message or reason runs on {path}")
            check(attack in driver.find_element(By.CSS_SELECTOR, "main").text, "the markup is shown as text in the audit trail")

            # Keyboard: the first Tab reaches the skip link; every action is a real button in a form.
            driver.get(f"{service.base}/canaries/test/checkout")
            driver.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
            check(driver.switch_to.active_element.text == "Skip to content", "the first Tab reaches 'Skip to content'")

            # A read-only viewer: no forms, and a forged POST (with their own valid CSRF token) is refused.
            reader = browser()
            drivers.append(reader)
            sign_in(reader, service, READER)
            reader.get(f"{service.base}/canaries/test/checkout")
            check(form_for(reader, "/open") is None and form_for(reader, "/close") is None
                  and not reader.find_elements(By.LINK_TEXT, "Request a rollback…"),
                  "a read-only viewer sees no action")
            forged = reader.execute_script("""
                const csrf = document.querySelector('form[action="/sign-out"] input[name=csrf]').value;
                const body = new URLSearchParams({csrf, gate: 'traffic', scope: 'rest'});
                return fetch('/canaries/test/checkout/open', {method: 'POST', body}).then(r => r.status);""")
            check(forged == 403, f"a forged approval by a read-only viewer is refused ({forged})")
            _, text = service.call("GET", "/v1/canaries/test/checkout", token=OPS)
            check(json.loads(text)["gates"]["traffic"]["state"] == "closed", "and changed nothing")
            no_token = driver.execute_script("""
                const body = new URLSearchParams({gate: 'traffic', scope: 'rest'});
                return fetch('/canaries/test/checkout/open', {method: 'POST', body}).then(r => r.status);""")
            check(no_token == 403, f"a form without its CSRF token is refused ({no_token})")

            # Without JavaScript every action still works: sign in and approve with plain forms.
            plain = browser(javascript=False)
            drivers.append(plain)
            sign_in(plain, service, OPS)
            check(plain.execute_script is not None and "signed in with the shared access token ops" in plain.page_source,
                  "signing in works without JavaScript")
            approve(plain, service, "test/checkout", "traffic", "no script needed", steps=2)

            # Accessibility: axe-core on every page, signed in and not, at a desktop's and a phone's width.
            pages = ["/", f"/canaries/{canary}", "/canaries/test/orders", "/canaries/test/checkout/rollback", "/freezes",
                     "/audit", "/audit?actor=token:ops"]
            accessible(driver, service, pages, "desktop")
            anonymous = browser()
            drivers.append(anonymous)
            accessible(anonymous, service, ["/sign-in"], "desktop")

            # On a phone: nothing wider than the screen.
            phone = browser(width=390, height=844)
            drivers.append(phone)
            sign_in(phone, service, OPS)
            for path in ("/", f"/canaries/{canary}", "/freezes"):
                phone.get(service.base + path)
                overflow = phone.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
                check(overflow <= 0, f"{path} fits a phone's width (overflow {overflow}px)")
            accessible(phone, service, ["/", f"/canaries/{canary}", "/freezes", "/audit"], "phone")
            # Signing out ends the session.
            driver.get(service.base + "/")
            driver.find_element(By.CSS_SELECTOR, 'form[action="/sign-out"] button').click()
            wait_for(driver, EC.url_contains("/sign-in"), "sign-out returns to the sign-in page")
            driver.get(service.base + "/audit")
            check("/sign-in" in driver.current_url, "after signing out the pages ask to sign in again")
        finally:
            for each in drivers:
                each.quit()
            service.stop()
            if failures:
                print((pathlib.Path(directory) / "gatehouse.log").read_text()[-4000:])
    print(f"\n{counts['calls']} Flagger calls from the fixture sequences, each answered as recorded unless listed above")
    print(f"screenshots: {SCREENSHOTS}/overview.png, {SCREENSHOTS}/canary.png")
    if failures:
        print(f"{len(failures)} browser check(s) failed")
        sys.exit(1)
    print("all browser checks passed")


if __name__ == "__main__":
    main()
