"""The admin pages in a real headless Chromium (Debian's ``chromium``, driven by Playwright):
sign in, filter the events, open one whose flow name is a script, replay a real dead letter;
then every page at a desktop's width and a phone's (390 px), none of which may overflow
sideways or be an error page.

The dead letter is the real thing: a worker process delivered to a stand-in that answered 400.
Screenshots go to ``test-artifacts/ui/``. Without ``/usr/bin/chromium`` the test fails: ``make
test`` installs it.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Dialog, Page, expect, sync_playwright
from redis import Redis

from tests.receiver.admin.support import TOKEN, Pipeline, pipeline
from tests.workers.sinks.standins import Reply

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"
SCRIPT = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield launched
        launched.close()


@pytest.fixture
def system(redis: Redis, redis_url: str, tmp_path: Path) -> Iterator[Pipeline]:
    """The far side refuses the first delivery (400: a dead letter), then takes the rest."""
    with pipeline(redis, redis_url, tmp_path, Reply(400, b"bad request")) as running:
        running.post("br-dead")
        running.post("br-ok", event="FLOW_SUCCESS")
        running.post("br-xss", flow_name=SCRIPT)
        running.work()
        yield running


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    yield opened
    context.close()


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_sign_in_filter_open_an_event_and_replay_a_dead_letter(
    system: Pipeline, page: Page
) -> None:
    dialogs: list[str] = []

    def refuse(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", refuse)
    base = system.receiver.url

    page.goto(f"{base}/ui/events")
    expect(page).to_have_url(f"{base}/ui/login")
    page.get_by_label("Admin token").fill(TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{base}/ui/")
    expect(page.locator("svg.chart")).to_have_count(3)
    shot(page, "0-overview")
    page.get_by_role("link", name="Events", exact=True).click()
    # the Secure cookie was kept over plain HTTP on loopback, a secure context for Chromium
    [cookie] = [c for c in page.context.cookies() if c["name"] == "flowhooks_session"]
    assert (cookie["name"], cookie["secure"], cookie["httpOnly"]) == (
        "flowhooks_session",
        True,
        True,
    )
    assert cookie["sameSite"] == "Strict"
    assert TOKEN not in cookie["value"]
    rows = page.locator("table.events tbody tr")
    expect(rows).to_have_count(3)
    shot(page, "1-events")

    page.get_by_label("Kind").select_option("flow.succeeded")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(
        f"{base}/ui/events?q=&source=&kind=flow.succeeded&flow_id=&status=&since=&until="
    )
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("br-ok")
    expect(rows.first.locator(".badge")).to_have_css("background-color", "rgb(26, 127, 55)")
    shot(page, "2-filtered")

    page.get_by_role("link", name="Clear").click()
    page.get_by_role("link", name="br-xss").click()
    expect(page.locator("h1")).to_contain_text(SCRIPT)  # shown as text, never run
    expect(page.locator("table.deliveries")).to_contain_text("delivered")
    shot(page, "3-event")

    page.get_by_role("link", name="Dead letters").click()
    dead = page.locator("table.dlq tbody tr")
    expect(dead).to_have_count(1)
    expect(dead.first).to_contain_text("etl:br-dead")
    expect(dead.first).to_contain_text("permanent failure")
    shot(page, "4-dead-letters")
    dead.first.get_by_role("button", name="Replay").click()
    expect(page.get_by_role("status")).to_have_text("The dead job is queued again.")
    expect(dead.first).to_contain_text("No dead letters.")

    system.work()
    page.goto(f"{base}/ui/events/etl/br-dead")
    outcomes = page.locator("table.deliveries tbody tr .badge")
    expect(outcomes).to_have_text(["delivered"])
    shot(page, "5-replayed")
    assert len(system.hook.requests) == 4  # three events, and the replay of the refused one
    assert dialogs == []


PAGES = [
    ("overview", "/ui/"),
    ("incidents", "/ui/incidents"),
    ("deliveries", "/ui/deliveries"),
    ("deliveries-failed", "/ui/deliveries/hook?outcome=failed"),
    ("events", "/ui/events"),
    ("events-search", "/ui/events?q=br"),
    ("event", "/ui/events/etl/br-xss"),
    ("event-dead", "/ui/events/etl/br-dead"),
    ("dead-letters", "/ui/dlq"),
    ("dead-letters-filtered", "/ui/dlq?reason=permanent"),
    ("silences", "/ui/silences"),
    ("silence-this-flow", "/ui/silences?matchers=flow_id%3D%2212345%22"),
    ("login", "/ui/login"),
]
WIDTHS = {"desktop": (1280, 900), "phone": (390, 844)}


@pytest.mark.parametrize("width", list(WIDTHS))
def test_every_page_fits_and_is_no_error(system: Pipeline, browser: Browser, width: str) -> None:
    w, h = WIDTHS[width]
    context = browser.new_context(viewport={"width": w, "height": h})
    page = context.new_page()
    base = system.receiver.url
    page.goto(f"{base}/ui/login")
    page.get_by_label("Admin token").fill(TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{base}/ui/")
    overflowing = {}
    for name, path in PAGES:
        response = page.goto(f"{base}{path}")
        assert response is not None and response.status == 200, (name, response)
        expect(page.locator("h1")).not_to_have_text("Sorry")
        wide = page.evaluate("document.documentElement.scrollWidth")
        if wide > w:
            overflowing[name] = wide
        shot(page, f"{width}-{name}")
    context.close()
    assert overflowing == {}, f"wider than {w} px: {overflowing}"
