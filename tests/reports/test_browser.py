"""The report pages in a real browser (headless Chromium over the DevTools protocol).

The page must load with no console errors and no network requests, every image must decode with
a non-zero size, and a screenshot must come out. Chromium is Debian's ``chromium`` package; CI
installs it (``.ci/run``) and sets RIVERBED_REQUIRE_CHROMIUM=1 so a missing browser fails there
instead of skipping.
"""

import os

import pytest

from riverbed.reports import build_compare, build_report

from .chromium import check_pages, find_chromium
from .helpers import wsds_run

PNG = b"\x89PNG\r\n\x1a\n"


def _need_chromium() -> None:
    if find_chromium() is None:
        if os.environ.get("RIVERBED_REQUIRE_CHROMIUM") == "1":
            pytest.fail("RIVERBED_REQUIRE_CHROMIUM=1 but no chromium on PATH (apt-get install chromium)")
        pytest.skip("no chromium on PATH: install Debian's `chromium` package (apt-get install chromium) to run this test")


@pytest.fixture(scope="module")
def tiny_real_run(tmp_path_factory):
    """A real tiny run: 40 main steps (evaluations every 10) and two decay branches."""
    from runs.conftest import tiny_config
    from riverbed.runs import Run
    from riverbed.orchestration.drive import train_main
    from riverbed.runs.fork import plan_requests
    from riverbed.orchestration.fork import run_requests

    cfg = tiny_config(eval_batches=1)  # the run tree tests' tiny config (tests/runs/conftest.py)
    run = Run.create(tmp_path_factory.mktemp("real") / "run", cfg)
    train_main(cfg, run.path, run, until_step=40, progress=False)
    run_requests(run, plan_requests(run, [20, 30], "1-sqrt", 10), progress=False, eval_every=0)
    return Run.open(run.path)


def test_report_pages_load_cleanly_in_chromium(tmp_path, tiny_real_run):
    _need_chromium()
    report = build_report(tiny_real_run.path, tmp_path / "report.html")
    cmp = build_compare([tiny_real_run.path, wsds_run(tmp_path / "wsds").path], tmp_path / "cmp.html")
    results = check_pages([report.html, cmp.html])
    for res, n_images in zip(results, (2, 3)):
        assert res.console_errors == [], res.url
        assert res.requests == [], res.url
        assert len(res.images) == n_images, res.url
        for img in res.images:
            assert img["ok"] and img["complete"] and img["naturalWidth"] > 0 and img["naturalHeight"] > 0, img
        assert res.screenshot[:8] == PNG and len(res.screenshot) > 10_000
        (tmp_path / (res.url.rsplit("/", 1)[1] + ".png")).write_bytes(res.screenshot)


def test_checker_sees_console_errors_and_requests(tmp_path):
    """The checks above can fail: a page with a broken image, a fetch and a console error."""
    _need_chromium()
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><body><img src="data:image/png;base64,AAAA">'
                   '<img src="http://127.0.0.1:9/x.png"><script>console.error("boom")</script></body></html>')
    (res,) = check_pages([bad], full_page=False)
    assert any("boom" in e for e in res.console_errors)
    assert "http://127.0.0.1:9/x.png" in res.requests
    assert [img["naturalWidth"] for img in res.images] == [0, 0]
