"""An umbrella body imports a spreadsheet on a phone, and at 200% zoom, in Chromium with JavaScript off.

The import page, a report full of problems (long values, an unknown column) and the page
of allowed values it links to must reflow without sideways scrolling (WCAG 1.4.10) and
pass axe-core.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import expect

from publisher.importer import COLUMNS, TEMPLATE_ROWS
from schema.openactive import from_openactive
from schema.price import pay_what_you_can
from tests.conftest import (
    ARTIFACTS,
    PHONE,
    assert_accessible_without_script,
    assert_no_sideways_scroll,
    open_tab,
)
from tests.publisher.conftest import log_in

pytestmark = pytest.mark.browser

# A 1280-pixel-wide window at 200% zoom lays pages out in 640 CSS pixels.
ZOOMED = {"width": 640, "height": 422}
LONG_WORD = "Gardeningandnatureandwalkingandeverythingelsethatwehappentodoonatuesday"


def _sheet_with_problems() -> bytes:
    """Two rows of the template, with a problem in most columns that take values from a list."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=[*COLUMNS, "Notes for the committee about this row"])
    writer.writeheader()
    writer.writerow(
        TEMPLATE_ROWS[0] | {"Categories": LONG_WORD, "Who it is for": "Oldr people", "Cost": "a fiver"}
    )
    writer.writerow(
        TEMPLATE_ROWS[1]
        | {"Booking": "whenever", "Postcode": "CR4 2L", "Booking link": "www.eventbrite.co.uk/e/" + "x" * 80}
    )
    return out.getvalue().encode()


@pytest.fixture(params=[PHONE, ZOOMED], ids=["phone", "zoomed"])
def screen(request, chromium) -> Iterator:
    """A page of the given size with JavaScript off."""
    with open_tab(chromium, request.param, script=False) as tab:
        yield tab


def test_the_import_page_and_its_report_reflow_and_pass_axe(site, chromium, screen):
    page = screen

    log_in(page, site.url)
    page.get_by_role("link", name="Import a spreadsheet").click()
    expect(page).to_have_url(re.compile(r"/admin/import$"))  # a click returns before the page is there
    assert_no_sideways_scroll(page)
    assert_accessible_without_script(chromium, page)

    page.get_by_label("CSV file").set_input_files(
        {"name": "activities.csv", "mimeType": "text/csv", "buffer": _sheet_with_problems()}
    )
    page.get_by_role("button", name="Check the file").click()
    problems = page.locator("#import-problems tbody tr")
    assert problems.count() == 6
    assert "did you mean 'Older people'?" in page.locator("#import-problems").inner_text()
    assert_no_sideways_scroll(page)
    assert_accessible_without_script(chromium, page)
    if page.viewport_size == PHONE:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=ARTIFACTS / "import-report-phone.png", full_page=True)

    page.get_by_role("link", name="See the list for Who it is for").click()
    expect(page).to_have_url(re.compile(r"/admin/import/values#who-it-is-for$"))
    assert page.locator("#who-it-is-for ~ dl dt", has_text="Older people").count() == 1
    assert_no_sideways_scroll(page)
    assert_accessible_without_script(chromium, page)


def test_a_donation_priced_sheet_imports_on_a_phone(site, phone):
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerow(TEMPLATE_ROWS[0] | {"Cost": "Pay what you can (suggested £3)"})
    page = phone

    log_in(page, site.url)
    page.get_by_role("link", name="Import a spreadsheet").click()
    page.get_by_label("CSV file").set_input_files(
        {"name": "activities.csv", "mimeType": "text/csv", "buffer": out.getvalue().encode()}
    )
    page.get_by_role("button", name="Check the file").click()
    page.get_by_role("button", name="Import 1 activity").click()
    assert "Imported 1 activity: 1 new." in page.locator("main").inner_text()
    assert_no_sideways_scroll(page)

    items = httpx.get(f"{site.url}/feeds/activities", timeout=10).json()["items"]
    (activity,) = (from_openactive(item["data"]) for item in items if item["state"] == "updated")
    assert activity["price"] == pay_what_you_can(3)
