#!/usr/bin/env python3
"""The staff console in a real browser (Debian's Chromium, driven by Playwright).

Run by crates/cli/tests/console_browser.rs against `bibgate serve --console` on a data
directory it prepared: sign in, find the failed exports, follow their guidance (release a
lock; set Leader/17 in the editor), retry each and see it merge; upload a file and read its
report; saves screenshots of the main pages into --screenshots.

Exits 0 when every step passed; non-zero, saying which step failed, otherwise (also when
Playwright or Chromium is missing: the test fails, it never skips).
"""

import argparse
import json
import os
import sys
import time

CHROMIUM = "/usr/bin/chromium"


def fail(step, detail=""):
    print(f"console_browser: {step} failed{': ' + detail if detail else ''}", file=sys.stderr)
    sys.exit(1)


def check(condition, step, detail=""):
    if not condition:
        fail(step, detail)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--locked-export", required=True)
    parser.add_argument("--locked-mms", required=True)
    parser.add_argument("--brief-export", required=True)
    parser.add_argument("--upload", required=True)
    parser.add_argument("--screenshots", required=True)
    args = parser.parse_args()

    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        fail("importing playwright", f"{error} (pip install 'playwright==1.*')")
    if not os.access(CHROMIUM, os.X_OK):
        fail("finding chromium", f"{CHROMIUM} is missing (apt-get install chromium)")
    os.makedirs(args.screenshots, exist_ok=True)

    def shot(page, name):
        page.screenshot(path=os.path.join(args.screenshots, name), full_page=True)

    base = args.url.rstrip("/")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(60_000)

        # Sign in.
        page.goto(f"{base}/imports")
        check(page.url.endswith("/signin"), "being sent to the sign-in page", page.url)
        page.get_by_label("User name").fill(args.user)
        page.get_by_label("Password").fill(args.password)
        shot(page, "signin.png")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/imports")
        check("Imports of" in page.content(), "signing in")

        # Find the failed exports.
        page.get_by_label("Outcome").select_option("failed")
        page.get_by_role("button", name="Show").click()
        page.wait_for_url("**/imports?*")
        content = page.content()
        check(args.locked_export in content, "listing the locked export", args.locked_export)
        check(args.brief_export in content, "listing the brief export", args.brief_export)
        shot(page, "imports.png")

        # NOT_ADDED_LOCKED: its guidance names the locks; release, retry.
        page.get_by_role("link", name=args.locked_export).click()
        page.wait_for_url("**/result?*")
        content = page.content()
        check("NOT_ADDED_LOCKED" in content, "showing the locked export's reason")
        check("What to do next" in content and "editor list" in content,
              "showing the locked export's guidance")
        shot(page, "result.png")
        locked_result = page.url
        page.get_by_role("link", name="Locks").click()
        page.wait_for_url("**/locks")
        check(args.locked_mms in page.content(), "listing the lock", args.locked_mms)
        shot(page, "locks.png")
        page.get_by_role("button", name=f"Release {args.locked_mms}").click()
        page.wait_for_url("**/locks")
        check("released" in page.locator(".flash").inner_text(), "releasing the lock",
              page.locator(".flash").inner_text())
        page.goto(locked_result)
        page.get_by_role("button", name="Retry").click()
        page.wait_for_url("**/result?*")
        flash = page.locator(".flash").inner_text()
        check("merged" in flash, "retrying the locked export", flash)
        check("Retry of" in page.content(), "showing what the retry retried")

        # NOT_ADDED_BRIEF: set the matched record's Leader/17 like the incoming one's.
        page.get_by_role("link", name="Imports").click()
        page.wait_for_url("**/imports")
        page.get_by_label("Export id").fill(args.brief_export)
        page.get_by_role("button", name="Find").click()
        page.wait_for_url("**/result?*")
        content = page.content()
        check("NOT_ADDED_BRIEF" in content, "finding the brief export by its id")
        check("Leader/17" in content, "showing the brief export's guidance")
        brief_result = page.url
        page.get_by_role("link", name="records with this number").click()
        page.wait_for_url("**/record?*")
        page.get_by_role("button", name="Edit (take the lock)").click()
        page.wait_for_url("**/record?*")
        editor = page.get_by_label("The record in MarcEdit mnemonic form", exact=False)
        text = editor.input_value()
        lines = text.split("\n")
        check(lines[0].startswith("=LDR  "), "reading the record's leader", lines[0])
        leader = lines[0][6:]
        lines[0] = "=LDR  " + leader[:17] + "3" + leader[18:]
        editor.fill("\n".join(lines))
        page.get_by_role("button", name="Save a new revision").click()
        page.wait_for_url("**/record?*")
        flash = page.locator(".flash").inner_text()
        check("saved as revision 2" in flash, "saving the edit", flash)
        page.get_by_role("button", name="Release the lock").click()
        page.wait_for_url("**/record?*")
        page.get_by_role("link", name="changes in 2").click()
        page.wait_for_url("**/record?*")
        check("Revision 1 → revision 2" in page.content(), "showing the revision's changes")
        shot(page, "record.png")
        page.goto(brief_result)
        page.get_by_role("button", name="Retry").click()
        page.wait_for_url("**/result?*")
        flash = page.locator(".flash").inner_text()
        check("merged" in flash, "retrying the brief export", flash)

        # Upload a file and read its report.
        page.get_by_role("link", name="Upload").click()
        page.wait_for_url("**/upload")
        page.get_by_label("File").set_input_files(args.upload)
        shot(page, "upload.png")
        page.get_by_role("button", name="Upload").click()
        page.wait_for_url("**/upload/report?*")
        deadline = time.time() + 90
        while "Being imported" in page.content():
            check(time.time() < deadline, "waiting for the upload's report")
            time.sleep(0.5)
            page.reload()
        added = page.locator("#n-added").inner_text()
        failed = page.locator("#n-failed").inner_text()
        check((added, failed) == ("2", "1"), "reading the upload's counts", f"added {added}, failed {failed}")
        check("MARCXML_CONVERSION_FAILED" in page.content(), "listing the failed record's reason")
        shot(page, "report.png")
        with page.expect_download() as download:
            page.get_by_role("link", name="Download the report (JSON Lines)").click()
        with open(download.value.path(), encoding="utf-8") as report:
            outcomes = [json.loads(line)["outcome"] for line in report if line.strip()]
        check(sorted(outcomes) == ["added", "added", "failed"], "downloading the report", str(outcomes))

        browser.close()
    print("console_browser: every step passed")


if __name__ == "__main__":
    main()
