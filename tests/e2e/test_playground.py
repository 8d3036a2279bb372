"""The playground page (/playground) of `pyexec serve`, in headless Chromium.

A program typed into the page's editor runs and its output appears as the
run streams it; a failing test case shows its verdict and the difference; a
plot of the science policy shows as an image; the page's
Content-Security-Policy stops inline scripts. Without a browser: the page's
headers, PLAYGROUND=false, and off by default on a non-loopback address.

The browser tests need Debian's chromium, chromium-driver and
python3-selenium (scripts/deps.sh test). Without them they are skipped,
saying so, except under CI (CI set), where they fail. A screenshot of the
page after a run is saved as PYEXEC_ARTIFACTS/playground.png (by default
build/test-artifacts/playground.png), and one with a plot as playground-plot.png;
where that directory is not writable, in the test's tmp_path.
"""
import json
import os
import pathlib
import shutil
import time

import pytest

from conftest import ROOT
from test_serve import HOST, serving, start_server

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
ARTIFACTS = pathlib.Path(os.environ.get("PYEXEC_ARTIFACTS") or ROOT / "build" / "test-artifacts")
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
SCIENCE = {"POLICIES": "education,permissive,science", "MEMORY_LIMIT": 512}


def _selenium():
    try:
        from selenium import webdriver  # noqa: F401
        return True
    except ImportError:
        return False


@pytest.fixture
def serve(tmp_path):
    yield from serving(tmp_path, start_server)


@pytest.fixture(scope="module")
def browser():
    missing = [what for what, ok in (("chromium", CHROMIUM), ("chromium-driver", CHROMEDRIVER),
                                      ("python3-selenium", _selenium())) if not ok]
    if missing:
        why = f"{', '.join(missing)} not installed (scripts/deps.sh test)"
        if os.environ.get("CI"):
            pytest.fail(f"the playground's browser tests must run under CI: {why}")
        pytest.skip(why)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    # --no-sandbox: Chromium's own sandbox cannot start as root.
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000",
              "--disable-gpu", "--no-first-run"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def wait(driver, pred, what, timeout=60):
    from selenium.webdriver.support.ui import WebDriverWait
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: pred(d))
    except Exception as e:
        raise AssertionError(f"{what}: not seen within {timeout} s; page: "
                             f"{driver.find_element('tag name', 'body').text!r}") from e


def open_page(driver, srv):
    driver.get(f"http://{HOST}:{srv.port}/playground")
    wait(driver, lambda d: d.execute_script("return document.body.dataset.ready") == "true", "the page loaded")


def screenshot(driver, name, tmp_path):
    """Save the page as ARTIFACTS/name; where that cannot be written (the
    unprivileged suite's copy of the tests), in the test's tmp_path."""
    try:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / name
        path.touch()
    except PermissionError:
        path = tmp_path / name
    assert driver.save_screenshot(str(path)), f"could not save {path}"
    print(f"screenshot: {path}")


def set_code(driver, code):
    driver.execute_script(
        "const v = window.pyexecEditor;"
        "v.dispatch({changes: {from: 0, to: v.state.doc.length, insert: arguments[0]}});", code)


def editor_text(driver):
    return driver.execute_script("return window.pyexecEditor.state.doc.toString()")


def run_and_wait(driver):
    runs = int(driver.execute_script("return document.body.dataset.runs || '0'"))
    driver.find_element("id", "run").click()
    wait(driver, lambda d: int(d.execute_script("return document.body.dataset.runs || '0'")) > runs, "the run ended")


def text(driver, id_):
    return driver.find_element("id", id_).text


def select_policy(driver, name):
    from selenium.webdriver.support.ui import Select
    Select(driver.find_element("id", "policy")).select_by_value(name)


# ---------------------------------------------------------------------------
# In the browser
# ---------------------------------------------------------------------------


def test_playground_typed_program_streams_its_output(serve, browser, tmp_path):
    """Typed into the editor, run: the first line shows while the program
    still runs (streamed), then the verdict, time and memory."""
    srv = serve()
    open_page(browser, srv)
    set_code(browser, "")
    content = browser.find_element("id", "editor").shadow_root.find_element("css selector", ".cm-content")
    content.click()
    typed = "import time\nprint('first', input(), flush=True)\ntime.sleep(4)\nprint('second', 6 * 7)\n"
    content.send_keys(typed)
    assert editor_text(browser) == typed
    browser.find_element("id", "stdin").send_keys("from-stdin")
    browser.find_element("id", "run").click()
    # Live: the first line is on the page while the run goes on (the Run
    # button is disabled until the result event).
    wait(browser, lambda d: "first from-stdin" in text(d, "output"), "the first line of output")
    assert browser.find_element("id", "run").get_attribute("disabled") is not None, \
        "the first line appeared only after the run ended: the output is not streamed"
    assert "second" not in text(browser, "output")
    wait(browser, lambda d: d.find_element("id", "run").get_attribute("disabled") is None, "the run ended")
    assert text(browser, "output") == "first from-stdin\nsecond 42"
    assert text(browser, "verdict") == "ok"
    assert text(browser, "time").startswith("time ") and " ms" in text(browser, "time")
    assert text(browser, "memory").startswith("memory ") and "MiB" in text(browser, "memory")
    screenshot(browser, "playground.png", tmp_path)
    log = srv.logs()
    assert any(e.get("path") == "/api/execute" and e.get("stream") for e in log if e.get("message") == "request"), \
        "the run was not a streamed request"


@pytest.mark.parametrize("mode", ["warm", "cold"])
def test_playground_stderr_and_error_status(serve, browser, mode):
    """stderr is shown apart, output is text (never HTML), and a runtime
    error is the verdict with its message; on the warm and the cold path."""
    srv = serve(env={"EXECUTION_MODE": mode})
    open_page(browser, srv)
    set_code(browser, "import sys\nprint('<b id=\"injected\">to stdout</b>')\n"
                      "print('to stderr', file=sys.stderr)\nraise SystemExit(3)\n")
    run_and_wait(browser)
    out = browser.find_element("id", "output")
    assert out.find_element("css selector", ".stderr").text.strip() == "to stderr"
    assert out.find_element("css selector", ".stdout").text.strip() == '<b id="injected">to stdout</b>'
    assert not browser.find_elements("id", "injected"), "the program's output was inserted as HTML"
    assert text(browser, "verdict") == "runtime_error"
    assert "exited with code 3" in text(browser, "message")


def test_playground_asks_for_the_api_key(serve, browser):
    """With API keys, the page shows its key field and sends the key."""
    key = "playground-key-0123456789abcdef"
    srv = serve(env={"API_KEYS": key})
    open_page(browser, srv)
    assert browser.find_element("id", "apikey").is_displayed()
    set_code(browser, "print('with a key')\n")
    run_and_wait(browser)
    assert text(browser, "verdict") == "error"
    assert "401 unauthorized" in text(browser, "message")
    browser.find_element("id", "apikey").send_keys(key)
    run_and_wait(browser)
    assert text(browser, "verdict") == "ok"
    assert text(browser, "output") == "with a key"


def test_playground_failing_case_shows_verdict_and_difference(serve, browser):
    srv = serve()
    open_page(browser, srv)
    set_code(browser, "n = int(input())\nprint(n * n)\n")
    browser.find_element("css selector", "#testing summary").click()
    for stdin, expected in (("2", "4"), ("3", "10")):
        browser.find_element("id", "addcase").click()
        row = browser.find_elements("css selector", "#cases tbody tr")[-1]
        row.find_element("css selector", ".case-stdin").send_keys(stdin)
        row.find_element("css selector", ".case-expected").send_keys(expected)
    run_and_wait(browser)
    assert text(browser, "verdict") == "wrong_answer"
    rows = browser.find_elements("css selector", "#test-results tr.case-result")
    cells = [[c.text for c in r.find_elements("css selector", "td")] for r in rows]
    assert [c[:2] for c in cells] == [["test 1", "passed"], ["test 2", "failed"]], cells
    diff = rows[1].find_elements("css selector", "td")[3]
    assert diff.find_element("css selector", "ins").text == '"10"'
    assert diff.find_element("css selector", "del").text == '"9"'
    assert "line 1" in diff.text
    assert "1/2 cases passed" in text(browser, "summary")


def test_playground_run_tests_program(serve, browser):
    """runTests: the test program imports the editor's program as starter;
    a failing assert is wrong_answer."""
    srv = serve()
    open_page(browser, srv)
    set_code(browser, "def add(a, b):\n    return a - b\n")
    browser.find_element("css selector", "#testing summary").click()
    browser.find_element("id", "runtests").click()
    browser.find_element("id", "testcode").send_keys("from starter import add\nassert add(2, 3) == 5, 'add(2, 3)'\n")
    run_and_wait(browser)
    assert text(browser, "verdict") == "wrong_answer"
    assert "AssertionError: add(2, 3)" in text(browser, "message")


def test_playground_science_plot_is_an_image(serve, browser, tmp_path):
    """A matplotlib figure shown under the science policy comes back in the
    result's images and is on the page as a PNG <img>."""
    srv = serve(env=SCIENCE)
    open_page(browser, srv)
    policies = [o.get_attribute("value") for o in browser.find_elements("css selector", "#policy option")]
    assert policies == ["education", "permissive", "science"]
    select_policy(browser, "science")
    set_code(browser, "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [1, 4, 9])\nplt.show()\nprint('shown')\n")
    run_and_wait(browser)
    assert text(browser, "verdict") == "ok", text(browser, "message")
    assert "shown" in text(browser, "output")
    imgs = browser.find_elements("css selector", "#images img")
    assert len(imgs) == 1, "no image on the page: the result carries no images"
    assert imgs[0].get_attribute("src").startswith("data:image/png;base64,iVBORw0KGgo")
    assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", imgs[0]) > 0
    screenshot(browser, "playground-plot.png", tmp_path)


def test_playground_csp_blocks_inline_script(serve, browser):
    """An inline script or event handler put into the page does not run:
    what a program's output could smuggle in is inert even if it ever got
    into the page as HTML."""
    srv = serve()
    open_page(browser, srv)
    browser.execute_script("""
        window.violations = [];
        document.addEventListener('securitypolicyviolation', e => window.violations.push(e.violatedDirective));
        const s = document.createElement('script');
        s.textContent = 'window.inlineRan = true';
        document.body.append(s);
        const d = document.createElement('div');
        d.innerHTML = '<img src="data:," onerror="window.handlerRan = true">';
        document.body.append(d);
    """)
    wait(browser, lambda d: len(d.execute_script("return window.violations")) >= 2, "the CSP's violation reports", 10)
    assert browser.execute_script("return window.inlineRan === undefined && window.handlerRan === undefined"), \
        "an inline script ran in the playground page"
    assert all(v.startswith("script-src") for v in browser.execute_script("return window.violations"))


# ---------------------------------------------------------------------------
# Over HTTP
# ---------------------------------------------------------------------------


def test_playground_files_and_headers(serve):
    srv = serve()
    for path, ctype in (("/playground", "text/html; charset=utf-8"), ("/playground/", "text/html; charset=utf-8"),
                        ("/playground/playground.js", "text/javascript; charset=utf-8"),
                        ("/playground/playground.css", "text/css; charset=utf-8")):
        r = srv.get(path)
        assert r.status == 200, (path, r)
        assert r.headers["Content-Type"] == ctype
        assert r.headers["Content-Security-Policy"] == CSP
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["X-Frame-Options"] == "DENY"
        h = srv.request("HEAD", path)
        assert h.status == 200 and h.body == b"" and h.headers["Content-Length"] == str(len(r.body))
    assert b"<script src=\"/playground/playground.js\"" in srv.get("/playground").body
    assert json.loads(srv.get("/playground/config.json").body) == {
        "policies": ["education", "permissive"], "defaultPolicy": "permissive", "apiKeyRequired": False}
    r = srv.post("/playground", {})
    assert r.status == 405 and r.headers["Allow"] == "GET, HEAD, OPTIONS"
    r = srv.get("/playground/index.html")
    assert r.status == 404 and r.json()["error"]["message"] == "no such file of the playground: /playground/index.html"
    assert srv.get("/playgroundx").status == 404


def test_playground_page_needs_no_key_but_runs_do(serve):
    key = "playground-key-0123456789abcdef"
    srv = serve(env={"API_KEYS": key})
    assert srv.get("/playground").status == 200
    assert json.loads(srv.get("/playground/config.json").body)["apiKeyRequired"] is True
    assert srv.execute({"code": "print(1)"}).status == 401
    assert srv.execute({"code": "print(1)"}, headers={"Authorization": f"Bearer {key}"}).status == 200


def test_playground_off_when_asked(serve):
    srv = serve(env={"PLAYGROUND": "false"})
    for path in ("/playground", "/playground/playground.js", "/playground/config.json"):
        r = srv.get(path)
        assert r.status == 404, (path, r)
        assert r.json()["error"] == {"code": "not_found", "message": "the playground is off (PLAYGROUND=false)"}
    assert "playground served" not in srv.log_text()


def test_playground_off_by_default_on_a_public_address(serve):
    srv = serve(env={"BIND": "0.0.0.0"})
    r = srv.get("/playground")
    assert r.status == 404
    assert r.json()["error"]["message"] == ("the playground is off because the service listens on 0.0.0.0, not a "
                                            "loopback address; set PLAYGROUND=true to serve it")
    srv2 = serve(env={"BIND": "0.0.0.0", "PLAYGROUND": "true"})
    assert srv2.get("/playground").status == 200


def test_playground_setting_is_checked():
    from conftest import pyexec
    r = pyexec("serve", "--print-config", env={"PATH": "/usr/bin:/bin", "PLAYGROUND": "sometimes"})
    assert r.returncode != 0
    assert b"PLAYGROUND (environment variable PLAYGROUND) must be auto, true or false, got 'sometimes'" in r.stderr, r.stderr
