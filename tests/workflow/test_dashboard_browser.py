"""The dashboard in a real browser: headless Chromium driven by Playwright against a real
uvicorn server over a seeded SQLite knowledge base.

Debian's chromium is used (Playwright never downloads a browser). Without it these tests
skip, except under CI (``CI`` set), where they fail: CI must not pass without running them.
Each view's screenshot lands in ``test-artifacts/screenshots/``. ``TASKLOOM_TEST_CHROMIUM``
names another Chromium binary.

The tests share one server (module scope); none depends on another having run first.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, Field

from agents.testing import AsyncFakeAgent, FakeAgent
from knowledge import (
    Database,
    SqlRunStore,
    feedback_for,
    finish_job,
    serving_version,
    start_job,
    update_job,
)
from workflow import CompiledWorkflow, Engine, ServiceConfig, Workflow, create_app, state

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # a dev dependency: the browser fixture skips (fails under CI) without it
    expect = sync_playwright = None

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("TASKLOOM_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
TIMEOUT_MS = 15_000
SLOW_STEP_S = 3.0  # long enough for the page to open the run before it ends
LABELS = ["refund", "card_lost", "transfer", "balance", "exchange_rate", "top_up"]
# Texts and probability vectors (aligned with LABELS) of the review queue's predictions;
# least-confidence order is the order below (top probabilities .30 < .34 < .38 < .42 < .46).
PREDICTIONS = [
    ("I was charged twice for one coffee", [0.30, 0.25, 0.20, 0.10, 0.10, 0.05]),
    ("my card is gone, what now", [0.20, 0.34, 0.16, 0.10, 0.10, 0.10]),
    ("send 50 euros to my sister", [0.10, 0.12, 0.38, 0.20, 0.10, 0.10]),
    ("how much money do I have", [0.10, 0.08, 0.15, 0.42, 0.15, 0.10]),
    ("what do I get for 100 dollars", [0.04, 0.05, 0.10, 0.15, 0.46, 0.20]),
]


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in {"", "0", "false", "no"}


def _unavailable(reason: str) -> None:
    if _in_ci():
        pytest.fail(f"Browser tests cannot run in CI: {reason}", pytrace=False)
    pytest.skip(reason)


class Task(BaseModel):
    """One field of each kind the New run form builds: text, number, checkbox, JSON."""

    text: str = Field(description="The customer's message.")
    priority: int = Field(default=2, ge=1, le=5)
    urgent: bool = False
    tags: list[str] = []


@dataclass
class Dashboard:
    """The seeded knowledge base and the live server over it (``base`` is its URL)."""

    database: Database
    workflow: CompiledWorkflow
    keys: dict[str, str]  # role -> token; each key is named after its role's person
    names: dict[str, str]  # role -> key name
    refund_run: str
    prediction_ids: list[int]
    base: str = ""
    jobs_dir: Path = Path()  # where the server's fine-tuning rounds write their logs


NAMES = {"viewer": "vera", "labeler": "lena", "operator": "otto", "admin": "ada"}


def triage_workflow() -> CompiledWorkflow:
    """classify -> refund or think (rules) or reply (the default); think -> reply.

    refund fails once and is retried (the timeline shows attempts); think is slow, so a
    run of the task "slow" is still running when the page opens it.
    """
    wf = Workflow("triage", task=Task)
    wf.step("classify", FakeAgent(echo=True))
    wf.step("refund", FakeAgent(label="refunded", fail_times=1), retry=2)
    # Async: a sync agent that is not `blocking` runs on the server's event loop.
    wf.step("think", AsyncFakeAgent(label="thought", delay_s=SLOW_STEP_S))
    wf.step("reply", FakeAgent(label="answered", delay_s=0.02))
    wf.route("classify", "refund", when=state("classify").label == "refund")
    wf.route("classify", "think", when=state("classify").label == "slow")
    wf.route("classify", "reply")
    wf.route("think", "reply")
    return wf.compile()


def seed(database: Database, workflow: CompiledWorkflow, kb_seed: Any) -> Dashboard:
    engine = Engine(SqlRunStore(database))
    refund = engine.run_sync(workflow, {"text": "refund"})
    engine.run_sync(workflow, {"text": "where is my parcel"})
    ids = kb_seed.predictions(database, PREDICTIONS, labels=LABELS, run_id=refund.run_id)
    kb_seed.model_versions(
        database,
        [
            ("v1", {"accuracy": 0.71, "macro_f1": 0.64, "loss": 0.5}),
            ("v2", {"accuracy": 0.83, "macro_f1": 0.79, "loss": 0.5}),
        ],
    )
    with database.transaction() as session:
        done = start_job(session, "intent", trigger="labels", out_dir="/runs/1", config={})
        update_job(session, done.id, candidate_version="v2")
        finish_job(session, done.id, "succeeded")
        failed = start_job(session, "intent", trigger="manual", out_dir="/runs/2", config={})
        finish_job(session, failed.id, "failed", error="RuntimeError: out of memory")
    keys = kb_seed.keys(database, NAMES)
    return Dashboard(database, workflow, keys, dict(NAMES), refund.run_id, ids)


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory, kb_seed: Any) -> Iterator[Dashboard]:
    """A live server (uvicorn in a thread, a free loopback port) over a seeded SQLite file."""
    import uvicorn  # noqa: PLC0415 - only the browser tests need the server

    database = Database(f"sqlite:///{tmp_path_factory.mktemp('dashboard') / 'kb.db'}")
    # Playwright's sync API keeps an event loop running in this thread once it has started;
    # the engine's asyncio.run needs a thread without one.
    with ThreadPoolExecutor(1) as pool:
        data = pool.submit(seed, database, triage_workflow(), kb_seed).result()
    data.jobs_dir = tmp_path_factory.mktemp("jobs")
    # A round that starts and ends at once: the test server must never train a model.
    config = ServiceConfig(
        finetune_command=(sys.executable, "-c", "pass"), jobs_dir=str(data.jobs_dir)
    )
    app = create_app([data.workflow], database=database, config=config)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("The test server did not start; its log is above.", pytrace=False)
        time.sleep(0.05)
    data.base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    yield data
    server.should_exit = True
    thread.join(10)
    sock.close()
    database.engine.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian chromium; skips (fails under CI) when it is missing."""
    if not Path(CHROMIUM).exists() and shutil.which(CHROMIUM) is None:
        _unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    if sync_playwright is None:
        _unavailable("playwright is not installed; pip install -e '.[dev]'")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, dashboard: Dashboard) -> Iterator[Any]:
    """A fresh tab (own sessionStorage); uncaught script errors fail the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    context.close()
    assert errors == [], f"the dashboard raised script errors: {errors}"


def api(dashboard: Dashboard, role: str, path: str) -> Any:
    response = httpx.get(
        dashboard.base + path, headers={"Authorization": f"Bearer {dashboard.keys[role]}"}
    )
    response.raise_for_status()
    return response.json()


def sign_in(page: Any, dashboard: Dashboard, role: str) -> None:
    page.goto(f"{dashboard.base}/ui/#/login")
    page.get_by_label("API key").fill(dashboard.keys[role])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("banner")).to_contain_text(f"{dashboard.names[role]} · {role}")
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


def shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def selected_prediction(page: Any) -> int:
    panel = page.get_by_role("region", name="Selected item")
    return int(panel.get_by_role("heading").inner_text().removeprefix("Prediction #"))


def queue_texts(page: Any, count: int) -> list[str]:
    """The review list's texts once it holds ``count`` items (labelled items leave at once)."""
    options = page.get_by_role("listbox", name="Review items").get_by_role("option")
    expect(options).to_have_count(count)
    return [text.split("\n")[0] for text in options.all_inner_texts()]


def test_labeler_labels_from_the_keyboard_and_items_leave_the_queue(
    page: Any, dashboard: Dashboard
) -> None:
    ids, texts = dashboard.prediction_ids, [text for text, _ in PREDICTIONS]
    sign_in(page, dashboard, "labeler")
    page.get_by_role("link", name="Review").click()
    assert queue_texts(page, 5) == texts  # most uncertain first
    expect(page.get_by_label("Agent")).to_contain_text("intent (5 open)")
    assert page.get_by_role("complementary", name="Keyboard shortcuts").is_visible()
    guesses = page.get_by_role("group", name="Top guesses").get_by_role("button")
    assert guesses.all_inner_texts() == ["1\nrefund\n30%", "2\ncard_lost\n25%", "3\ntransfer\n20%"]
    shot(page, "review")

    assert selected_prediction(page) == ids[0]
    page.keyboard.press("1")  # accept its top guess
    assert queue_texts(page, 4) == texts[1:]
    page.keyboard.press("j")  # move down one
    assert selected_prediction(page) == ids[2]
    page.keyboard.press("2")  # accept its second guess
    assert queue_texts(page, 3) == [texts[1], texts[3], texts[4]]
    assert selected_prediction(page) == ids[3]
    page.keyboard.press("/")  # search the whole label set: top_up is not a guess here
    page.keyboard.type("top_up")
    page.keyboard.press("Enter")
    assert queue_texts(page, 2) == [texts[1], texts[4]]
    page.keyboard.press("s")  # skip texts[4]
    assert queue_texts(page, 1) == [texts[1]]
    expect(page.get_by_label("Agent")).to_contain_text("intent (1 open)")
    shot(page, "review-after")

    expected = {ids[0]: "refund", ids[2]: "balance", ids[3]: "top_up"}
    for prediction_id, label in expected.items():
        served = api(dashboard, "viewer", f"/api/predictions/{prediction_id}/feedback")
        assert [(f["label"], f["author"]) for f in served["feedback"]] == [(label, "lena")]
    with dashboard.database.session() as session:
        assert [f.source for f in feedback_for(session, ids[3])] == ["human"]
        assert feedback_for(session, ids[4]) == []  # skipped, not labelled
    left = api(dashboard, "viewer", "/api/review/intent")["items"]
    assert [item["prediction_id"] for item in left] == [ids[1]]


def test_runs_list_and_run_detail_show_steps_and_the_fired_rule(
    page: Any, dashboard: Dashboard
) -> None:
    sign_in(page, dashboard, "viewer")
    runs = page.get_by_role("table", name="Runs").locator("tbody tr")
    expect(runs).to_have_count(len(api(dashboard, "viewer", "/api/runs")["runs"]))
    expect(page.get_by_role("checkbox", name="Auto-refresh")).to_be_checked()
    shot(page, "runs")
    page.get_by_label("Status").select_option("failed")
    expect(page.get_by_text("No runs match these filters.")).to_be_visible()
    page.get_by_label("Status").select_option("")

    page.goto(f"{dashboard.base}/ui/#/runs?limit=1")  # one run a page: the pager must work
    newest = runs.first.get_by_role("link").inner_text()
    page.get_by_role("link", name="Older →").click()
    expect(runs.first.get_by_role("link")).not_to_have_text(newest)
    expect(page.get_by_role("link", name="← Newest")).to_be_visible()
    page.get_by_role("link", name="Runs", exact=True).click()
    page.get_by_role("link", name=dashboard.refund_run).click()
    steps = page.get_by_role("list", name="Steps").get_by_role("listitem")
    expect(steps).to_have_count(2)
    classify, refund = page.get_by_label("Step classify"), page.get_by_label("Step refund")
    expect(classify).to_contain_text("Fired rule:")
    expect(classify).to_contain_text("refund")  # the rule and its target
    expect(refund).to_contain_text("attempts 2")  # failed once, retried
    expect(refund).to_contain_text("end of run")
    classify.get_by_text("Input and output").click()
    expect(classify.locator("pre").first).to_contain_text('"text": "refund"')
    widths = [bar.evaluate("e => e.style.width") for bar in page.locator(".bar").all()]
    assert len(widths) == 2
    assert "100%" in widths  # the longest step fills its track
    shot(page, "run-detail")


def test_run_detail_follows_a_running_run_live(page: Any, dashboard: Dashboard) -> None:
    sign_in(page, dashboard, "viewer")
    started = httpx.post(
        f"{dashboard.base}/api/workflows/triage/runs?wait=false",
        json={"text": "slow"},
        headers={"Authorization": f"Bearer {dashboard.keys['admin']}"},
    )
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]
    page.evaluate("id => { location.hash = `#/runs/${id}`; }", run_id)  # no reload: quick
    expect(page.get_by_text("Live: following this run")).to_be_visible()
    expect(page.get_by_label("Step classify")).to_be_visible()  # pushed before think ends
    shot(page, "run-live")
    steps = page.get_by_role("list", name="Steps").get_by_role("listitem")
    expect(steps).to_have_count(3)  # classify, think (slow), reply: pushed as they finish
    expect(page.locator(".facts")).to_contain_text("succeeded")
    expect(page.get_by_text("Live: following this run")).to_be_hidden()
    expect(page.get_by_label("Step think")).to_contain_text("default route → reply")
    shot(page, "run-live-finished")


def open_new_run(page: Any, dashboard: Dashboard, role: str) -> Any:
    """Signs in as ``role``, opens the New run form from the Runs view; returns the form."""
    sign_in(page, dashboard, role)
    page.get_by_role("link", name="New run").click()
    form = page.get_by_role("form", name="Task for triage")
    expect(form).to_be_visible()
    return form


def test_operator_submits_a_task_through_the_form_and_follows_its_run(
    page: Any, dashboard: Dashboard
) -> None:
    form = open_new_run(page, dashboard, "operator")
    expect(form.get_by_label("Priority")).to_have_value("2")  # the schema's defaults
    expect(form.get_by_label("Urgent")).not_to_be_checked()
    expect(form.get_by_label("Tags")).to_have_value("[]")
    expect(form.locator("label[for=task-text]")).to_contain_text("*")  # required
    expect(form.get_by_label("Text")).to_have_attribute("aria-required", "true")
    form.get_by_label("Text").fill("where is my parcel")
    form.get_by_label("Priority").fill("4")
    form.get_by_label("Urgent").check()
    form.get_by_label("Tags").fill('["parcel", "late"]')
    shot(page, "new-run")

    form.get_by_role("button", name="Start run").click()
    expect(page).to_have_url(re.compile(r"#/runs/[0-9a-f]+$"))
    run_id = page.url.rsplit("/", 1)[1]
    expect(page.get_by_role("heading", name=f"Run {run_id}")).to_be_visible()
    expect(page.locator(".facts")).to_contain_text("succeeded")
    steps = page.get_by_role("list", name="Steps").get_by_role("listitem")
    expect(steps).to_have_count(2)  # classify, then the default route to reply
    expect(page.get_by_label("Step reply")).to_contain_text("end of run")
    task = {"text": "where is my parcel", "priority": 4, "urgent": True, "tags": ["parcel", "late"]}
    assert api(dashboard, "viewer", f"/api/runs/{run_id}")["task"] == task


def test_a_bad_task_shows_each_problem_next_to_its_field(page: Any, dashboard: Dashboard) -> None:
    runs_before = len(api(dashboard, "viewer", "/api/runs?limit=200")["runs"])
    form = open_new_run(page, dashboard, "operator")
    tags, priority = form.get_by_label("Tags"), form.get_by_label("Priority")
    tags.fill("[parcel")  # not JSON: caught before anything is sent
    form.get_by_role("button", name="Start run").click()
    expect(form.locator("#task-tags-problem")).to_contain_text("not valid JSON")
    expect(tags).to_have_attribute("aria-invalid", "true")

    tags.fill('["parcel"]')
    priority.fill("9")  # and Text left empty: the server refuses both, field by field
    form.get_by_role("button", name="Start run").click()
    expect(form.get_by_role("alert")).to_contain_text("The service did not accept this task.")
    expect(form.locator("#task-priority-problem")).to_have_text(
        "Input should be less than or equal to 5"
    )
    expect(form.locator("#task-text-problem")).to_have_text("Field required")
    expect(form.locator("#task-tags-problem")).to_be_hidden()
    expect(priority).to_have_attribute("aria-invalid", "true")
    shot(page, "new-run-errors")

    form.get_by_label("Raw JSON").check()  # the whole task as JSON, from the fields
    raw = form.get_by_label("Task as JSON")
    assert json.loads(raw.input_value()) == {"priority": 9, "urgent": False, "tags": ["parcel"]}
    raw.fill('{"text": 5}')
    form.get_by_role("button", name="Start run").click()
    expect(form.get_by_role("alert")).to_contain_text("text: Input should be a valid string")
    assert "#/runs/new" in page.url
    assert len(api(dashboard, "viewer", "/api/runs?limit=200")["runs"]) == runs_before


def test_labeler_gets_no_new_run_control(page: Any, dashboard: Dashboard) -> None:
    sign_in(page, dashboard, "labeler")
    expect(page.get_by_role("table", name="Runs")).to_be_visible()
    expect(page.get_by_text("New run")).to_have_count(0)
    page.get_by_role("link", name="Graphs").click()
    expect(page.get_by_text("entry classify")).to_be_visible()
    expect(page.get_by_text("New run")).to_have_count(0)
    page.evaluate("() => { location.hash = '#/runs/new'; }")  # typed by hand: told, no form
    expect(page.get_by_text("Your key's role (labeler) cannot submit runs")).to_be_visible()
    expect(page.get_by_role("form")).to_have_count(0)


def test_graph_view_draws_the_workflow_with_mermaid(page: Any, dashboard: Dashboard) -> None:
    sign_in(page, dashboard, "viewer")
    page.get_by_role("link", name="Graphs").click()
    figure = page.get_by_role("figure", name="Graph of triage")
    svg = figure.locator("svg")
    expect(svg).to_be_visible()
    for step in ("classify", "refund", "reply"):
        expect(svg).to_contain_text(step)
    source = api(dashboard, "viewer", "/api/workflows/triage/graph")["mermaid"]
    assert page.locator("pre.mermaid-source").inner_text() == source
    shot(page, "graph")


def test_admin_sees_the_metric_chart_and_promotes_with_a_confirm_step(
    page: Any, dashboard: Dashboard
) -> None:
    sign_in(page, dashboard, "admin")
    page.get_by_role("link", name="Models").click()
    canvas = page.get_by_role("img", name="Accuracy and macro F1 of intent's versions over time")
    expect(canvas).to_be_visible()
    page.wait_for_function("() => Boolean(window.Chart?.getChart('metric-chart'))")
    series = canvas.evaluate("c => Chart.getChart(c).data.datasets.map(d => [d.label, d.data])")
    assert series == [["Accuracy", [0.71, 0.83]], ["Macro F1", [0.64, 0.79]]]
    versions = page.get_by_role("table", name="Versions")
    expect(versions.get_by_role("button", name="Promote v1")).to_be_visible()
    expect(versions.get_by_role("button", name="Promote v2")).to_have_count(0)  # serving
    shot(page, "models-admin")

    versions.get_by_role("button", name="Promote v1").click()
    dialog = page.get_by_role("dialog", name="Promote v1?")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_have_count(0)
    with dashboard.database.session() as session:
        assert serving_version(session, "intent").version == "v2"  # cancelled: nothing moved
    versions.get_by_role("button", name="Promote v1").click()
    dialog.get_by_label("Reason (optional)").fill("v2 regressed on refunds")
    shot(page, "models-confirm")
    dialog.get_by_role("button", name="Promote").click()
    history = page.get_by_role("table", name="Alias history")
    expect(history).to_contain_text("v2 regressed on refunds")
    with dashboard.database.session() as session:
        assert serving_version(session, "intent").version == "v1"
    move = api(dashboard, "viewer", "/api/models/intent")["history"][0]  # newest first
    assert (move["version"], move["previous_version"], move["actor"]) == ("v1", "v2", "ada")

    page.get_by_role("button", name="Roll back").click()
    page.get_by_role("dialog", name="Roll back?").get_by_role("button", name="Roll back").click()
    expect(page.get_by_text("Serving: v2")).to_be_visible()
    with dashboard.database.session() as session:
        assert serving_version(session, "intent").version == "v2"
    promoted = api(dashboard, "viewer", "/api/models/intent")["history"][0]
    assert (promoted["version"], promoted["actor"]) == ("v2", "ada")


def test_labeler_sees_models_without_promote_or_rollback(page: Any, dashboard: Dashboard) -> None:
    sign_in(page, dashboard, "labeler")
    page.get_by_role("link", name="Models").click()
    expect(page.get_by_role("table", name="Versions")).to_contain_text("v2")
    expect(page.locator("canvas#metric-chart")).to_be_visible()
    expect(page.get_by_role("button", name="Promote")).to_have_count(0)
    expect(page.get_by_role("button", name="Roll back")).to_have_count(0)
    expect(page.get_by_role("table", name="Fine-tuning jobs")).to_contain_text("succeeded")
    expect(page.get_by_role("button", name="Start fine-tuning")).to_have_count(0)
    shot(page, "models-labeler")


def test_operator_starts_fine_tuning_and_sees_the_process(page: Any, dashboard: Dashboard) -> None:
    sign_in(page, dashboard, "operator")
    page.get_by_role("link", name="Models").click()
    jobs = page.get_by_role("table", name="Fine-tuning jobs").locator("tbody tr")
    expect(jobs).to_have_count(2)
    expect(jobs.first).to_contain_text("failed")  # newest first
    expect(jobs.first).to_contain_text("RuntimeError: out of memory")
    expect(jobs.nth(1)).to_contain_text("succeeded")
    expect(jobs.nth(1)).to_contain_text("v2")  # the candidate it registered
    expect(page.get_by_role("button", name="Promote")).to_have_count(0)  # admin only

    page.get_by_label("Epochs").fill("2")
    page.get_by_label("Tier").select_option("lora")
    page.get_by_role("button", name="Start fine-tuning").click()
    started = page.get_by_text("Started a fine-tuning round: pid")
    expect(started).to_be_visible()
    match = re.search(r"pid (\d+), log (.+)$", started.inner_text())
    assert match, started.inner_text()
    log = Path(match[2])
    assert log.parent == dashboard.jobs_dir / "logs"
    assert log.exists()  # the stand-in command ran: no model was trained
    shot(page, "models-jobs")

    # A round still running answers 409; this one ended at once, so the answer is staged.
    message = "A fine-tuning round for 'intent' is still running (pid 1); wait for it."
    page.route(
        "**/api/models/intent/jobs",
        lambda route: (
            route.fulfill(status=409, json={"error": "conflict", "message": message})
            if route.request.method == "POST"
            else route.continue_()
        ),
    )
    page.get_by_role("button", name="Start fine-tuning").click()
    expect(page.get_by_text(message)).to_be_visible()


def test_bad_or_revoked_keys_send_you_to_the_login_view(page: Any, dashboard: Dashboard) -> None:
    page.goto(f"{dashboard.base}/ui/#/runs")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()  # no key yet
    page.get_by_label("API key").fill("tlk_nothing_here")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("That key was not accepted")
    shot(page, "login-error")

    admin = {"Authorization": f"Bearer {dashboard.keys['admin']}"}
    created = httpx.post(
        f"{dashboard.base}/api/keys", json={"name": "tmp", "role": "viewer"}, headers=admin
    )
    assert created.status_code == 201, created.text
    page.get_by_label("API key").fill(created.json()["secret"])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("table", name="Runs")).to_be_visible()
    revoked = httpx.delete(
        f"{dashboard.base}/api/keys/{created.json()['key']['id']}", headers=admin
    )
    assert revoked.status_code == 200, revoked.text
    page.get_by_role("link", name="Graphs").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("Signed out")
    assert page.evaluate("() => sessionStorage.getItem('taskloom.key')") is None
