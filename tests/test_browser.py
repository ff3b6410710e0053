"""JupyterLab in headless Chromium, as a user works: the tutorial and the explorer run cell by
cell, the explorer's widgets render as widgets, each control redraws the panel, and what
JupyterLab saves is the committed notebook.

JupyterLab runs as `make lab` runs it (tools/jupyter_lab_config.py), on loopback, serving a
copy of notebooks/ (the committed files stay untouched), with the session's `ci` profile and
folders (conftest.py); Playwright drives Debian's Chromium (/usr/bin/chromium: test tools'
own browser downloads cannot run here); the server is stopped by its PID. A changed panel
is measured as a pixel difference of its screenshot. Set AGIT_BROWSER_SHOTS=<folder> to
keep the screenshots.
"""

import importlib.util
import io
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from agit import reproduce

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
REQUIRED = bool(os.environ.get("AGIT_BROWSER_REQUIRED"))  # .ci/run: a missing browser fails, not skips
NOTEBOOKS = ("00_tutorial", "06_explore")

if not REQUIRED and not (Path(CHROMIUM).is_file() and importlib.util.find_spec("playwright")):
    pytest.skip(f"needs {CHROMIUM} (apt-get install chromium; .ci/run does) and playwright",
                allow_module_level=True)
from playwright.sync_api import TimeoutError as PlaywrightTimeout  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    def __init__(self, root: Path, port: int, token: str, proc: subprocess.Popen):
        self.root, self.url, self.token, self.proc = root, f"http://127.0.0.1:{port}", token, proc

    def api(self, path: str, method: str = "GET"):
        request = urllib.request.Request(f"{self.url}/api/{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def kernel_state(self, name: str) -> str | None:
        for session in self.api("sessions"):
            if session["path"].endswith(f"{name}.ipynb") and session.get("kernel"):
                return session["kernel"]["execution_state"]
        return None


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on 127.0.0.1 serving a copy of notebooks/, in its own settings folders; stopped by its PID."""
    base = tmp_path_factory.mktemp("lab")
    shutil.copytree(ROOT / "notebooks", base / "notebooks")
    settings = base / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)  # no news or update toasts over the outputs
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False, "doNotDisturbMode": True}))
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(base / "config"), "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
           "JUPYTERLAB_SETTINGS_DIR": str(base / "settings"), "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces")}
    # the explorer's run menu needs a second run: a τ fork of `ours` (reused if the session has it)
    threads = torch.get_num_threads()
    reproduce.context("ci", os.environ["AGIT_RESULTS"], os.environ["AGIT_DATA"]).ensure_runs(["ours", "tau_0.5"])
    torch.set_num_threads(threads)
    port, token = free_port(), secrets.token_hex(16)
    log = open(base / "lab.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", f"--config={ROOT / 'tools' / 'jupyter_lab_config.py'}", "--no-browser",
         "--allow-root", "--ip=127.0.0.1", f"--port={port}", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={base / 'notebooks'}"],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    server = Lab(base, port, token, proc)
    deadline = time.time() + 90
    while True:
        try:
            server.api("status")
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                pytest.fail(f"JupyterLab did not start:\n{(base / 'lab.log').read_text()[-3000:]}")
            time.sleep(0.5)
    yield server
    for kernel in server.api("kernels"):
        server.api(f"kernels/{kernel['id']}", method="DELETE")
    proc.terminate()  # SIGTERM to the server's PID
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def shots() -> Path | None:
    folder = os.environ.get("AGIT_BROWSER_SHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        return Path(folder)
    return None


def run_all(page, lab: Lab, name: str, timeout: float = 420):
    """Open the notebook, Run > Run All Cells, wait until its kernel stays idle, check every code
    cell ran without an error, and save it (File > Save Notebook)."""
    page.goto(f"{lab.url}/lab/workspaces/{name}/tree/{name}.ipynb?token={lab.token}")  # one notebook open
    page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=60_000)
    deadline = time.time() + 60
    while lab.kernel_state(name) != "idle":  # the kernel has started
        assert time.time() < deadline, f"{name}: no idle kernel after 60 s"
        time.sleep(0.5)
    page.locator(".lm-MenuBar-item", has_text="Run").first.click()
    page.get_by_text("Run All Cells", exact=True).click()
    start, idle_since = time.time(), None
    while True:  # Run All queues every cell at once: the kernel is idle only when all are done
        time.sleep(1)
        busy = lab.kernel_state(name) != "idle" or page.locator(".jp-InputPrompt", has_text="[*]").count() > 0
        idle_since = None if busy else (idle_since or time.time())
        if idle_since and time.time() - idle_since > 3 and time.time() - start > 5:
            break
        assert time.time() - start < timeout, f"{name}: still running after {timeout:.0f} s"
    prompts = page.locator(".jp-CodeCell .jp-InputPrompt").all_text_contents()  # off-screen too
    outputs = " ".join(page.locator(".jp-OutputArea-output").all_text_contents())
    assert "Traceback (most recent call last)" not in outputs, f"{name}: a cell failed:\n{outputs[-3000:]}"
    assert prompts and all(p.strip()[1:-2].isdigit() for p in prompts), f"{name}: cells left unexecuted: {prompts}"
    saved = lab.root / "notebooks" / f"{name}.ipynb"
    before = saved.stat().st_mtime
    page.locator(".lm-MenuBar-item", has_text="File").first.click()
    page.get_by_text("Save Notebook", exact=True).click()
    deadline = time.time() + 30
    while saved.stat().st_mtime == before:
        assert time.time() < deadline, f"{name}: JupyterLab did not save it"
        time.sleep(0.3)
    if shots():
        page.screenshot(path=str(shots() / f"{name}_page.png"), full_page=False)


def image_of(locator) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(locator.screenshot())).convert("RGB")).astype(np.int16)


def changed_share(a: np.ndarray, b: np.ndarray) -> float:
    """Share of pixels that differ (by more than a rounding step) between two screenshots."""
    if a.shape != b.shape:
        return 1.0
    return float((np.abs(a - b).max(axis=2) > 8).mean())


def settle(lab: Lab, name: str = "06_explore", quiet: float = 1.5, timeout: float = 60):
    """Wait until the kernel has handled every widget event: idle for `quiet` seconds."""
    time.sleep(0.5)  # the browser's message reaches the kernel
    deadline, idle_since = time.time() + timeout, None
    while time.time() < deadline:
        idle_since = (idle_since or time.time()) if lab.kernel_state(name) == "idle" else None
        if idle_since and time.time() - idle_since >= quiet:
            return
        time.sleep(0.2)
    pytest.fail(f"{name}: the kernel stayed busy for {timeout:.0f} s")


def redraws(lab: Lab, panel, before: np.ndarray, what: str, timeout: float = 10) -> np.ndarray:
    """After a control moved: once the kernel is done, the panel must differ from `before`."""
    settle(lab)
    deadline = time.time() + timeout
    while True:  # the browser shows the last redraw
        now = image_of(panel)
        share = changed_share(before, now)
        if share > 0.002 or time.time() > deadline:
            break
        time.sleep(0.5)
    assert share > 0.002, f"the panel did not change after {what} ({share:.2%} of its pixels differ)"
    time.sleep(0.5)
    now = image_of(panel)  # the state the next control starts from
    if shots():
        Image.fromarray(now.astype(np.uint8)).save(shots() / f"panel_after_{what.replace(' ', '_')}.png")
    return now


def drag(page, slider, fraction: float):
    """Drag a slider's handle to `fraction` of its track, as a mouse would."""
    track = slider.locator(".noUi-target").bounding_box()
    handle = slider.locator(".noUi-handle").bounding_box()
    page.mouse.move(handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2)
    page.mouse.down()
    page.mouse.move(track["x"] + fraction * track["width"], handle["y"] + handle["height"] / 2, steps=4)
    page.mouse.up()


@pytest.fixture(scope="module")
def page(browser):
    context = browser.new_context(viewport={"width": 1440, "height": 900})  # a laptop screen
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture(scope="module")
def executed(lab, page) -> dict:
    """Both notebooks run in JupyterLab and saved, the explorer left open: per notebook, when it
    started, its seconds, and the images its outputs show."""
    out = {}
    for name in NOTEBOOKS:
        start = time.time()
        run_all(page, lab, name)
        out[name] = {"start": start, "seconds": time.time() - start,
                     "images": page.locator(".jp-OutputArea-output img").count()}
        print(f"{name}: every cell in {out[name]['seconds']:.0f} s in JupyterLab (ci profile)")
    return out


def test_tutorial_runs_top_to_bottom_in_jupyterlab(executed):
    record = Path(os.environ["AGIT_RESULTS"]) / "notebooks" / "00_tutorial.json"
    assert record.stat().st_mtime >= executed["00_tutorial"]["start"]  # its last cell ran, in this session
    assert executed["00_tutorial"]["images"] >= 8  # its eight figures, the live training plot included


def test_explorer_widgets_render_and_every_control_redraws_the_panel(executed, lab, page):
    cell = page.locator(".jp-CodeCell").filter(has_text="explorer.show()").first
    for selector in (".widget-dropdown select", ".widget-toggle-buttons", ".widget-hslider", ".widget-html"):
        try:
            cell.locator(selector).first.wait_for(timeout=30_000)
        except PlaywrightTimeout:
            pytest.fail(f"the explorer's widgets did not render ({selector} missing); its output reads: "
                        f"{cell.locator('.jp-OutputArea').inner_text()[:400]!r}")
    text = cell.inner_text()
    assert "Error displaying widget" not in text and "VBox(" not in text and "Loading widget" not in text
    run_menu, direction = cell.locator(".widget-dropdown select"), cell.locator(".widget-toggle-buttons")
    tau, image = (cell.locator(".widget-hslider").filter(has_text=label) for label in ("τ", "image"))
    buttons = direction.locator("button").all()
    assert len(buttons) == 2 and len({round(b.bounding_box()["y"]) for b in buttons}) == 1  # on one line
    assert direction.bounding_box()["height"] < 1.5 * buttons[0].bounding_box()["height"]  # nothing wraps
    panel = cell.locator(".jp-OutputArea-output img").last
    assert panel.bounding_box()["width"] >= 900  # five tiles of ~180 px or more on a laptop screen
    readout = lambda slider: slider.locator(".widget-readout").inner_text()  # noqa: E731
    labels = run_menu.locator("option").all_inner_texts()
    choose = lambda key: run_menu.select_option(label=next(t for t in labels if f"({key})" in t))  # noqa: E731
    assert "Same attention as Ours" in cell.inner_text() and "τ = 0.5" in cell.inner_text()
    if shots():
        cell.screenshot(path=str(shots() / "explorer_before.png"))
    settle(lab)
    shown = image_of(panel)

    choose("ci/tau_0.5")  # τ not moved yet: it follows the run's own
    shown = redraws(lab, panel, shown, "choosing the run tau 0.5")
    assert readout(tau) == "0.50"
    choose("ci/ours")
    shown = redraws(lab, panel, shown, "choosing the run ours")
    assert readout(tau) == "0.10"
    drag(page, tau, 0.6)
    shown = redraws(lab, panel, shown, "moving tau")
    assert readout(tau) != "0.10"
    moved = readout(tau)
    drag(page, image, 0.7)
    shown = redraws(lab, panel, shown, "moving the image slider")
    direction.locator("button", has_text="t2s").click()
    shown = redraws(lab, panel, shown, "switching direction")
    choose("ci/tau_0.5")  # τ moved by hand: it stays
    redraws(lab, panel, shown, "choosing the run tau 0.5 again")
    assert readout(tau) == moved
    if shots():
        cell.screenshot(path=str(shots() / "explorer_after.png"))


def test_saving_in_jupyterlab_writes_the_committed_notebook(executed, lab):
    """What JupyterLab saved after running them (tools/jupyter_lab_config.py strips the outputs and
    its metadata) is byte for byte the committed notebook: `git status` stays clean."""
    for name in NOTEBOOKS:
        saved = (lab.root / "notebooks" / f"{name}.ipynb").read_bytes()
        assert saved == (ROOT / "notebooks" / f"{name}.ipynb").read_bytes(), name
