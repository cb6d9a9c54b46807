"""The dashboard: a real TensorBoard on loopback, seen in a real headless Chromium, and the ngrok
tunnel's error paths with real pyngrok on this machine without internet. Secrets are sentinels
that must never show up."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from segkit.dashboard import (
    AUTH_ENV,
    TOKEN_ENV,
    DashboardError,
    Tunnel,
    launch,
    open_tunnel,
    scrub,
    server,
    tunnel,
)

REPO = Path(__file__).resolve().parent.parent
TOKEN = "SENTINEL-ngrok-token-3f9c2a71"
PASSWORD = "SENTINEL-pass-81d0e4"
SECRETS = (TOKEN, PASSWORD)
# A stand-in ngrok agent that fails the way the real one does with a bad token: ERR_NGROK_105
# echoes the token. pyngrok reads this line from the agent's stdout.
FAKE_AGENT = """#!/bin/sh
token=""
while [ $# -gt 0 ]; do [ "$1" = "--authtoken" ] && token="$2"; shift; done
echo "t=2025-01-01T00:00:00+0000 lvl=eror msg=\\"failed to start\\" err=\\"authentication failed: The authtoken \
you specified does not look like a proper ngrok authtoken. Your authtoken: $token ERR_NGROK_105\\""
exit 1
"""


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """pyngrok's agent and config paths in tmp; no token or credentials unless a test sets them."""
    from pyngrok import conf

    for name in (TOKEN_ENV, AUTH_ENV, "NGROK_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PYNGROK_NGROK_PATH", str(tmp_path / "agent" / "ngrok"))
    monkeypatch.setattr(conf, "DEFAULT_NGROK_CONFIG_PATH", str(tmp_path / "ngrok-config" / "ngrok.yml"))
    return tmp_path


def fake_agent(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(FAKE_AGENT)
    path.chmod(0o755)
    return path


def assert_no_secret(*texts: str, under: Path | None = None) -> None:
    for text in texts:
        assert not [s for s in SECRETS if s in text], text
    for path in under.rglob("*") if under else []:
        if path.is_file():
            assert not [s for s in SECRETS if s.encode() in path.read_bytes()], path


# --- the tunnel's error paths (real pyngrok, no TensorBoard needed) -------------------------


def test_no_token_says_how_to_get_and_set_one(sandbox: Path) -> None:
    with pytest.raises(DashboardError) as err:
        open_tunnel(6006)
    message = str(err.value)
    assert "dashboard.ngrok.com" in message and "export NGROK_AUTHTOKEN" in message and "Secrets" in message


def test_agent_that_cannot_be_downloaded(sandbox: Path, monkeypatch, caplog, capsys) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    monkeypatch.setenv(AUTH_ENV, f"tester:{PASSWORD}")
    with pytest.raises(DashboardError, match="ngrok agent") as err:
        open_tunnel(6006)
    if "could not download" in str(err.value):  # this machine has no internet
        assert "PYNGROK_NGROK_PATH" in str(err.value) and "internet" in str(err.value)
    out, errs = capsys.readouterr()
    assert_no_secret(str(err.value), caplog.text, out, errs, under=sandbox)


def test_agent_echoing_the_token_is_scrubbed(sandbox: Path, monkeypatch, caplog, capsys) -> None:
    caplog.set_level(logging.DEBUG)
    fake_agent(sandbox / "agent" / "ngrok")
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    monkeypatch.setenv(AUTH_ENV, f"tester:{PASSWORD}")
    with pytest.raises(DashboardError) as err:
        open_tunnel(6006)
    message = str(err.value)
    assert "ERR_NGROK_105" in message and "[redacted]" in message and "Check the token" in message
    assert "ERR_NGROK_105" in caplog.text  # ngrok's own log line went through, redacted
    out, errs = capsys.readouterr()
    assert_no_secret(message, caplog.text, out, errs, under=sandbox)
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_pyngrok_debug_lines_with_credentials_are_redacted(sandbox: Path, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    tunnel._guard_pyngrok_logs([TOKEN, PASSWORD, f"tester:{PASSWORD}"])
    options = tunnel._auth_options(type("Cfg", (), {"config_version": "3"})(), tunnel._Credentials("tester", PASSWORD))
    logging.getLogger("pyngrok.ngrok").debug("Creating tunnel with options: %s", options)
    logging.getLogger("pyngrok.process.ngrok").error("Your authtoken: %s", TOKEN)
    assert caplog.text.count("[redacted]") == 2
    assert_no_secret(caplog.text)


@pytest.mark.parametrize(
    "value, found",
    [
        ("nopassword", "no ':'"),
        ("tester:short", "a password of 5 characters"),
        (":longenoughpassword", "an empty user"),
    ],
)
def test_bad_credentials_are_refused_without_echoing_them(sandbox: Path, monkeypatch, value: str, found: str) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    monkeypatch.setenv(AUTH_ENV, value)
    with pytest.raises(DashboardError, match="user:password") as err:
        open_tunnel(6006)
    assert found in str(err.value) and value not in str(err.value)


def test_headless_run_gets_no_generated_password(sandbox: Path, monkeypatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    monkeypatch.setenv("CI", "1")  # nobody watching: a generated password could not be shown
    with pytest.raises(DashboardError, match="headless") as err:
        open_tunnel(6006)
    assert AUTH_ENV in str(err.value) and "--no-auth" in str(err.value)


def test_basic_auth_options_for_both_ngrok_config_versions() -> None:
    creds = tunnel._Credentials("tester", "a-long-password")
    v3 = tunnel._auth_options(type("Cfg", (), {"config_version": "3"})(), creds)
    (rule,) = v3["traffic_policy"]["on_http_request"]
    assert rule["actions"] == [{"type": "basic-auth", "config": {"credentials": ["tester:a-long-password"]}}]
    assert tunnel._auth_options(type("Cfg", (), {"config_version": "2"})(), creds) == {"auth": "tester:a-long-password"}
    assert tunnel._auth_options(object(), None) == {}
    assert "a-long-password" not in repr(creds)


def test_link_that_does_not_ask_for_the_password_is_closed(sandbox: Path, monkeypatch) -> None:
    import http.server
    import threading

    from pyngrok import ngrok

    # Stands in for a tunnel whose agent ignored the basic-auth policy: it answers 200 to anyone.
    public = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=public.serve_forever, daemon=True).start()
    url, closed = f"http://127.0.0.1:{public.server_port}", []
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    monkeypatch.setenv(AUTH_ENV, f"tester:{PASSWORD}")
    monkeypatch.setattr(
        ngrok, "connect", lambda addr, proto, pyngrok_config, **options: type("T", (), {"public_url": url})
    )
    monkeypatch.setattr(Tunnel, "close", lambda self: closed.append(self.public_url))
    try:
        with pytest.raises(DashboardError, match="did not ask for a password .HTTP 200"):
            open_tunnel(6006)
    finally:
        public.shutdown()
        public.server_close()
    assert closed == [url]


def test_launch_keeps_the_tunnel_it_gets_and_stop_closes_it_once(tmp_path: Path, monkeypatch) -> None:
    closed, opened = [], []
    # A real TensorBoard; only the ngrok side (no internet here) is stood in for.
    monkeypatch.setattr(Tunnel, "close", lambda self: closed.append(self.public_url))

    def fake_open(port: int, auth: bool = True) -> Tunnel:
        opened.append((port, auth))
        return Tunnel("https://x.ngrok-free.app", "tester", None)

    monkeypatch.setattr(server, "open_tunnel", fake_open)
    dash = launch(tmp_path, port=0, public=True)
    assert (
        dash.process is not None
        and opened == [(dash.port, True)]
        and (dash.public_url, dash.auth_user, dash.error) == ("https://x.ngrok-free.app", "tester", None)
    )
    dash.stop()
    dash.stop()
    assert closed == ["https://x.ngrok-free.app"] and dash.public_url == "https://x.ngrok-free.app"


def test_scrub() -> None:
    assert scrub("token abcd1234 and user:abcd1234", ["abcd1234", "user:abcd1234"]) == "token [redacted] and [redacted]"
    assert scrub("nothing here", ["", "abc"]) == "nothing here"  # too short to redact safely


# --- a real TensorBoard ---------------------------------------------------------------------


def write_events(run: Path) -> Path:
    """What segkit's trainer writes: train/loss per step, val/miou per epoch."""
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(run / "tb"))
    for step in range(3):
        writer.add_scalar("train/loss", 1.0 / (step + 1), step)
        writer.add_scalar("val/miou", 0.1 * step, step)
    writer.close()
    return run / "tb"


def get_json(url: str) -> dict:
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url, timeout=5) as response:
        return json.loads(response.read().decode())


def scalar_tags(url: str, timeout: float = 30, wanted: tuple[str, ...] = ("train/loss", "val/miou")) -> set[str]:
    """Poll until TensorBoard has loaded the event files (it reloads in the background)."""
    deadline, tags = time.monotonic() + timeout, set()
    while time.monotonic() < deadline and not set(wanted) <= tags:
        tags = {tag for run in get_json(url + "data/plugin/scalars/tags").values() for tag in run}
        time.sleep(0.5)
    return tags


def listening_addresses(port: int) -> list[str]:
    """Hex local addresses of LISTEN sockets on `port` (0100007F = 127.0.0.1)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.rsplit(":", 1)
            if int(port_hex, 16) == port and state == "0A":
                found.append(address)
    return found


def group_alive(pgid: int) -> bool:
    """Any non-zombie process left in the process group (TensorBoard and its data server)?"""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


@pytest.mark.slow
def test_tensorboard_on_loopback_serves_scalars_reuses_and_stops_cleanly(tmp_path: Path) -> None:
    logdir = write_events(tmp_path / "run")
    dash = launch(logdir, port=0)
    try:
        assert dash.url == f"http://127.0.0.1:{dash.port}/" and dash.public_url is None
        assert scalar_tags(dash.url) >= {"train/loss", "val/miou"}
        assert listening_addresses(dash.port) == ["0100007F"]  # 127.0.0.1 only, no 0.0.0.0 / [::]
        flags = get_json(dash.url + "data/environment")["debug"]["flags"]
        assert flags["host"] == "127.0.0.1" and flags["bind_all"] is False
        info = json.loads((tmp_path / "run" / "dashboard.json").read_text())
        assert info["url"] == dash.url and info["public_url"] is None

        same = launch(logdir, port=dash.port)  # busy port, same logdir: reused
        assert same.reused and same.port == dash.port and same.url == dash.url
        other_logdir = write_events(tmp_path / "other")
        other = launch(other_logdir, port=dash.port)  # busy port, another logdir: next free port
        try:
            assert other.port != dash.port and not other.reused
            assert get_json(other.url + "data/environment")["data_location"] == str(other_logdir)
        finally:
            other.stop()
    finally:
        dash.stop()
    assert dash.process.poll() is not None and not group_alive(dash.process.pid)
    assert server._port_free(dash.port) and server._port_free(other.port)
    assert not (tmp_path / "run" / "dashboard.json").exists()
    same.stop()  # a reused server is not ours: nothing happens


@pytest.mark.slow
def test_cli_public_failure_keeps_serving_locally_and_never_leaks_the_token(tmp_path: Path) -> None:
    logdir = write_events(tmp_path / "run")
    agent = fake_agent(tmp_path / "agent" / "ngrok")
    env = {
        **os.environ,
        TOKEN_ENV: TOKEN,
        AUTH_ENV: f"tester:{PASSWORD}",
        "PYNGROK_NGROK_PATH": str(agent),
        "HOME": str(tmp_path / "home"),
        "PYTHONPATH": str(REPO),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "segkit", "dashboard", "--logdir", str(logdir), "--port", "0", "--public"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        info_file, deadline = tmp_path / "run" / "dashboard.json", time.monotonic() + 90
        while not info_file.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        info = json.loads(info_file.read_text())
        assert "ERR_NGROK_105" in info["public_error"] and info["public_url"] is None
        assert scalar_tags(info["url"]) >= {"train/loss"}  # the local dashboard still serves
        out, err = interrupt(proc)
    finally:
        kill_if_alive(proc)
    assert proc.returncode == 1
    assert info["url"] in out and "no public link: the ngrok agent failed" in err and "[redacted]" in err
    assert "error: no public link" in err
    assert_no_secret(out, err, under=tmp_path)
    port = int(info["url"].rsplit(":", 1)[1].strip("/"))
    assert server._port_free(port) and not info_file.exists()


def interrupt(proc: subprocess.Popen) -> tuple[str, str]:
    """Ctrl-C the dashboard as a user would; its (stdout, stderr)."""
    proc.send_signal(signal.SIGINT)
    return proc.communicate(timeout=30)


def kill_if_alive(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


def wait_for_info(info_file: Path, proc: subprocess.Popen, timeout: float = 90) -> dict:
    """dashboard.json, written once `segkit dashboard` serves (the URLs; never a secret)."""
    deadline = time.monotonic() + timeout
    while not info_file.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert info_file.exists(), f"segkit dashboard did not start (exit code {proc.poll()})"
    return json.loads(info_file.read_text())


def test_cli_refuses_a_missing_logdir(tmp_path: Path, capsys) -> None:
    from segkit.cli import main

    assert main(["dashboard", "--logdir", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


# --- the dashboard in a real browser --------------------------------------------------------

NO_BROWSER_ENV = "SEGKIT_NO_BROWSER"  # =1: skip the browser test knowingly (README, Makefile)
CHART_TAGS = ("train/loss", "train/epoch_loss", "val/val_loss", "val/miou")  # the run's losses and mIoU
# Titles of the scalar cards whose chart has drawn a line through two points or more. With WebGL off,
# TensorBoard draws its charts as SVG paths; with WebGL they go to an offscreen canvas in a worker,
# where no test can see whether anything was drawn.
DRAWN_CHARTS_JS = """
return Array.from(document.querySelectorAll('scalar-card'))
  .filter(card => Array.from(card.querySelectorAll('line-chart svg path[style*="stroke"]'))
                       .some(path => (path.getAttribute('d') || '').includes('L')))
  .map(card => card.querySelector('.tag').getAttribute('title'));
"""


def executable(env: str, *names: str) -> str | None:
    """$env if set, else the first of `names` on PATH; None unless it is an executable file."""
    found = os.environ.get(env) or next(filter(None, map(shutil.which, names)), None)
    return found if found and os.path.isfile(found) and os.access(found, os.X_OK) else None


@pytest.fixture(scope="session")
def browser_paths() -> tuple[str, str]:
    """Chromium and its chromedriver: $SEGKIT_CHROMIUM / $SEGKIT_CHROMEDRIVER, else on PATH."""
    if os.environ.get(NO_BROWSER_ENV):
        pytest.skip(f"{NO_BROWSER_ENV} is set: the dashboard is not checked in a browser")
    chromium = executable("SEGKIT_CHROMIUM", "chromium", "chromium-browser", "google-chrome")
    driver = executable("SEGKIT_CHROMEDRIVER", "chromedriver")
    if not (chromium and driver):
        pytest.fail(
            f"the dashboard's browser test needs Chromium and chromedriver (found: chromium {chromium}, "
            f"chromedriver {driver}). `make browser` installs them (`make test` runs it), or set "
            f"SEGKIT_CHROMIUM / SEGKIT_CHROMEDRIVER; or set {NO_BROWSER_ENV}=1 to skip this test knowingly"
        )
    return chromium, driver


@pytest.fixture
def browser(browser_paths: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A headless Chromium driven by selenium; its console log is kept (goog:loggingPrefs)."""
    chromium, driver_path = browser_paths
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("selenium is missing: pip install -e '.[dev]' (make setup)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-webgl",
        "--no-proxy-server",
        "--window-size=1400,1200",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")  # selenium -> chromedriver on loopback, never a proxy
    driver = webdriver.Chrome(
        service=Service(driver_path, log_output=str(tmp_path / "chromedriver.log")), options=options
    )
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def show_charts(driver, url: str, tags: tuple[str, ...], timeout: float = 60) -> None:
    """Open TensorBoard's Time Series page, filter it to `tags` and wait until each chart is drawn."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url + "#timeseries")
    wait = WebDriverWait(driver, timeout)
    tag_filter = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "input[placeholder^='Filter tags']")))
    tag_filter.send_keys("^(" + "|".join(tags) + ")$", Keys.ESCAPE)  # Escape: close the tag suggestions
    wait.until(ec.invisibility_of_element_located((By.CSS_SELECTOR, ".mat-mdc-autocomplete-panel")))
    settings = (By.CSS_SELECTOR, "button[aria-label='Toggle settings side pane']")
    if driver.find_element(*settings).get_attribute("aria-pressed") == "true":  # it would hide half the charts
        driver.find_element(*settings).click()
        wait.until(lambda d: d.find_element(*settings).get_attribute("aria-pressed") == "false")
    try:
        wait.until(lambda d: set(tags) <= set(d.execute_script(DRAWN_CHARTS_JS)))
    except Exception:  # noqa: BLE001 -- re-raised with what the page did show
        pytest.fail(f"charts drawn after {timeout} s: {driver.execute_script(DRAWN_CHARTS_JS)}; wanted {tags}")


@pytest.mark.slow
def test_dashboard_in_a_real_browser_draws_the_runs_curves_and_shows_no_secret(
    browser_paths, tiny_run: Path, tmp_path: Path, browser
) -> None:
    """`segkit dashboard` on a real training run, as a person sees it. The local dashboard has no
    login (127.0.0.1 only; the password guards the public ngrok link, which needs internet): the
    check is that the secrets in its environment reach neither the page, nor the browser's console,
    nor the command's output."""
    logdir = tmp_path / "runs"
    shutil.copytree(tiny_run, logdir / "tiny")
    env = {**os.environ, TOKEN_ENV: TOKEN, AUTH_ENV: f"tester:{PASSWORD}", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "segkit", "dashboard", "--logdir", str(logdir), "--port", "0"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        info = wait_for_info(logdir / "dashboard.json", proc)
        # TensorBoard reads the event files in the background: once it has, the page's first load shows them.
        assert scalar_tags(info["url"], wanted=CHART_TAGS) >= set(CHART_TAGS)
        show_charts(browser, info["url"], CHART_TAGS)
        screenshot = tmp_path / "dashboard.png"
        assert browser.save_screenshot(str(screenshot)) and screenshot.stat().st_size > 20_000
        page, text = browser.page_source, browser.execute_script("return document.body.innerText")
        console = browser.get_log("browser")
        out, err = interrupt(proc)
    finally:
        kill_if_alive(proc)
    assert proc.returncode == 0, err
    assert "tiny/tb" in text and "HPARAMS" in text.upper()  # the run, and its HParams tab beside the scalars
    assert [e for e in console if e["level"] == "SEVERE"] == [], console
    assert_no_secret(page, text, json.dumps(console), out, err, under=tmp_path)
