"""Load test of the team deployment: concurrent annotators in headless Chromium and a reviewer.

Each annotator logs in with their own account, claims their own case, then brushes and saves in a loop until
the time is up and submits; the reviewer accepts every submitted case. Afterwards the database is checked:
every save the page confirmed is a revision, the current revision opens (checksum verified) and holds voxels.

    .venv/bin/python Testing/Python/team_load.py --users 3 --seconds 60 --json load.json
"""
import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "WebAnnotator"))

import team_deployment as team  # noqa: E402
from MVAWebLib.gateway import LAUNCH_TIMEOUT_S  # noqa: E402
from web_harness import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

# a login ends in the queue, the gateway's error page or the session page's "not connected" message once the
# gateway has heard from the launcher (LAUNCH_TIMEOUT_S at most); a page that shows none of them after that is stuck
START_TIMEOUT_MS = (LAUNCH_TIMEOUT_S + 60) * 1000
ACTION_TIMEOUT_MS = 120000
LOGIN_ATTEMPTS = 3  # a person given "Try again in a minute" tries again; the retries are in the report

LOGIN_OUTCOME = """([username]) => {
  const state = window.trame && window.trame.state;
  const user = state && state.get('wf_user');
  if (user && user.name === username) return 'queue';
  const refused = document.querySelector('#mva-login-error');
  if (refused) return 'error: ' + refused.textContent.trim();
  if (document.querySelector('#mva-back-to-login')) return 'not connected: ' + document.body.innerText.trim();
  return false;
}"""


class LoginFailed(AssertionError):
    """A login that reached neither the queue nor a retryable error (the page's text and the logs say why)."""


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


async def wait_state(page, expression, timeout=ACTION_TIMEOUT_MS):
    await page.wait_for_function(f"() => window.trame && window.trame.state && ({expression})", timeout=timeout)


async def timed(timings, action, coroutine):
    started = time.perf_counter()
    await coroutine
    timings.setdefault(action, []).append(time.perf_counter() - started)


async def log_in(page, url, username, retries):
    """Log in and wait for the queue; "Try again" from the gateway is retried (and recorded in `retries`), any
    other end raises LoginFailed at once with what the page shows."""
    await page.goto(url)
    for attempt in range(1, LOGIN_ATTEMPTS + 1):  # a "try again" page holds the login form: no reload (with the
        # cookie a reload of the gateway would itself wait for a whole launch)
        await page.fill("#mva-login-user", username)
        await page.fill("#mva-login-password", team.PASSWORD)
        await page.click("#mva-login", no_wait_after=True)
        started = time.perf_counter()
        try:
            handle = await page.wait_for_function(LOGIN_OUTCOME, arg=[username], timeout=START_TIMEOUT_MS,
                                                  polling=500)
            outcome = await handle.json_value()
        except Exception as error:  # noqa: BLE001  (a timeout, or the page navigated while polled: look at it)
            outcome = f"stuck ({type(error).__name__}) at {page.url}: {await page_text(page)}"
        if outcome == "queue":
            return
        if "Try again" in outcome and attempt < LOGIN_ATTEMPTS:
            retries.append({"user": username, "attempt": attempt,
                            "after_s": round(time.perf_counter() - started, 1), "page": outcome[:300]})
            continue
        raise LoginFailed(f"{username}'s login, attempt {attempt}: {outcome[:2000]}")


async def page_text(page):
    try:
        return (await page.evaluate("() => document.body ? document.body.innerText : ''")).strip()[:2000]
    except Exception as error:  # noqa: BLE001  (a page that is navigating or closed)
        return f"(page unreadable: {error})"


async def brush(page, offset):
    await page.wait_for_function("document.querySelector('img.image-display-area') && "
                                 "document.querySelector('img.image-display-area').naturalWidth > 0")
    box = await page.locator("img.image-display-area").first.bounding_box()
    x = box["x"] + box["width"] * (0.38 + 0.01 * (offset % 8))
    y = box["y"] + box["height"] * 0.45
    jobs = await page.evaluate("() => window.trame.state.get('jobs_done') || 0")
    if await page.evaluate("() => window.trame.state.get('smart_tool')") != "SmartBrushEffect":
        await page.click("#mva-tool-0")
    await page.mouse.move(x, y)
    await page.mouse.down()
    await page.mouse.move(x + 10, y, steps=3)
    await page.mouse.up()
    # this stroke's job, not an earlier one's status: a save while the brush still runs is refused (rightly)
    await wait_state(page, f"(window.trame.state.get('jobs_done') || 0) > {jobs} && "
                           "(window.trame.state.get('tool_status') || '').startsWith('Smart Brush:') && "
                           "!window.trame.state.get('job_busy')")
    return jobs


async def annotator(browser, url, username, case, seconds, timings, saves, retries, delay_s=0.0):
    await asyncio.sleep(delay_s)  # staggered logins: a team does not all log in within the same second
    context = await browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(ACTION_TIMEOUT_MS)  # a loaded host: opening a case can take tens of seconds
    page = await context.new_page()
    await timed(timings, "login to queue", log_in(page, url, username, retries))
    await timed(timings, "claim and open", claim(page, case))
    deadline = time.time() + seconds
    step = 0
    while time.time() < deadline:
        await timed(timings, "brush stroke", brush(page, step))
        await timed(timings, "save", save(page, saves, username))
        step += 1
    await page.get_by_label("good").check()
    await timed(timings, "submit", submit(page))
    await context.close()


async def claim(page, case):
    await page.click(f"#mva-claim-{case}")
    await wait_state(page, f"(window.trame.state.get('wf_case') || {{}}).name === '{case}'")
    await page.wait_for_selector("#mva-wf-save")


async def save(page, saves, username):
    """Save and record the revision the page confirmed (read from its message), or the error it showed."""
    before = await page.evaluate("() => window.trame.state.get('wf_info') || ''")
    await page.click("#mva-wf-save")
    await page.wait_for_function("([before]) => { const s = window.trame.state; const info = s.get('wf_info') || '';"
                                 " return (info.startsWith('Saved revision ') && info !== before) || "
                                 "(s.get('wf_error') || '') !== ''; }", arg=[before], timeout=ACTION_TIMEOUT_MS)
    error = await page.evaluate("() => window.trame.state.get('wf_error')")
    if error:
        saves.setdefault(username, []).append(f"error: {error}")
        await page.click("#mva-snackbar-close")  # the next save must not read this error again
        await wait_state(page, "!window.trame.state.get('wf_error')")
        return
    info = await page.evaluate("() => window.trame.state.get('wf_info')")
    saves.setdefault(username, []).append(int(info.rsplit(" ", 1)[1]))


async def submit(page):
    await page.click("#mva-wf-submit")
    await wait_state(page, "(window.trame.state.get('wf_info') || '').startsWith('Submitted')")


async def reviewer(browser, url, username, cases, timings, stop_after, accepted, retries, delay_s=0.0):
    await asyncio.sleep(delay_s)
    context = await browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(ACTION_TIMEOUT_MS)  # a loaded host: opening a case can take tens of seconds
    page = await context.new_page()
    await timed(timings, "login to queue", log_in(page, url, username, retries))
    deadline = time.time() + stop_after
    while len(accepted) < len(cases) and time.time() < deadline:
        await page.click("#mva-queue-refresh")
        await asyncio.sleep(1)
        queue = await page.evaluate("() => window.trame.state.get('wf_queue')")
        waiting = [row["name"] for row in queue["to_review"] if row["name"] not in accepted]
        if not waiting:
            await asyncio.sleep(3)
            continue
        await timed(timings, "review open", open_review(page, waiting[0]))
        await timed(timings, "accept", accept(page))
        accepted.append(waiting[0])
    await context.close()


async def open_review(page, case):
    await page.click(f"#mva-review-{case}")
    await page.wait_for_selector("#mva-accept")


async def accept(page):
    await page.click("#mva-accept")
    await wait_state(page, "(window.trame.state.get('wf_info') || '').includes('accepted')")


async def drive(url, users, seconds, stagger_s=0.0):
    from playwright.async_api import async_playwright
    timings, saves, accepted, retries = {}, {}, [], []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        cases = [f"case_{index + 1:02d}" for index in range(users)]
        jobs = [annotator(browser, url, f"user{index + 1}", cases[index], seconds, timings, saves, retries,
                          index * stagger_s) for index in range(users)]
        jobs.append(reviewer(browser, url, "rita", cases, timings, seconds + 900 + users * stagger_s, accepted,
                             retries, users * stagger_s))
        await asyncio.gather(*jobs)
        await browser.close()
    return timings, saves, accepted, retries


def check_saves(service, admin, users, saves):
    """Confirmed saves vs the database: lost (confirmed but missing) and corrupt (unreadable / empty) ones."""
    lost, corrupt = 0, 0
    for index in range(users):
        username, case_name = f"user{index + 1}", f"case_{index + 1:02d}"
        confirmed = [r for r in saves.get(username, []) if isinstance(r, int)]
        case = service.case_by_name(admin, team.PROJECT, case_name)
        assignment = next(a for a in case.assignments if a.annotator == username)
        final = int(assignment.revision or 0)
        lost += sum(1 for r in confirmed if r > final) + (len(confirmed) - len(set(confirmed)))
        try:
            labelmap = service.load_annotation(admin, case.id, annotator=username)
            corrupt += int((labelmap.array_kji > 0).sum() == 0)
        except ValueError:
            corrupt += 1
    return lost, corrupt


def run_load(users=3, seconds=60, folder=None, stagger_s=0.0):
    """Start the deployment, drive it, check it; returns the report (a dict)."""
    from MVAWorkflowLib import security
    security.configure_hasher(time_cost=1, memory_cost_kib=1024)
    folder = folder or tempfile.mkdtemp(prefix="mva-load-")
    annotators = tuple(f"user{index + 1}" for index in range(users))
    service, admin, url = team.create_project(folder, annotators=annotators, reviewers=("rita",), cases=users)
    deployed = team.TeamDeployment(folder, url, grace_s=120, sessions=users + 3).start_gateway()
    memory = {}
    try:
        started = time.perf_counter()
        try:
            timings, saves, accepted, retries = asyncio.run(drive(deployed.url, users, seconds, stagger_s))
        except Exception as error:  # a stuck login or action: say what the page showed and what the server logged
            kind = LoginFailed if isinstance(error, LoginFailed) else AssertionError
            raise kind(f"{type(error).__name__}: {error}\n\nlogs of the deployment ({deployed.logs}, "
                       f"{os.path.join(deployed.runtime, 'logs')}):\n{deployed.log_text()}") from error
        wall_s = time.perf_counter() - started
        memory = {str(uid): round(team.process_memory_mb(r["pid"])) for uid, r in deployed.sessions().items()
                  if team.pid_alive(r["pid"])}
    finally:
        deployed.stop()
    lost, corrupt = check_saves(service, admin, users, saves)
    statuses = [service.case_by_name(admin, team.PROJECT, f"case_{i + 1:02d}").status for i in range(users)]
    service.database.dispose()
    team.drop_database(url)
    actions = {action: {"n": len(values), "p50_s": round(statistics.median(values), 3),
                        "p95_s": round(percentile(values, 0.95), 3)} for action, values in timings.items()}
    return {"users": users, "seconds": seconds, "stagger_s": stagger_s, "wall_s": round(wall_s, 1), "database": url.split(":")[0],
            "actions": actions, "login_retries": retries, "saves_confirmed": sum(isinstance(r, int) for v in saves.values() for r in v),
            "save_errors": [r for v in saves.values() for r in v if not isinstance(r, int)],
            "lost_saves": lost, "corrupt_saves": corrupt, "accepted": accepted, "statuses": statuses,
            "session_memory_mb": memory}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--stagger", type=float, default=0.0,
                        help="seconds between two users' logins (many session processes starting at once on a "
                             "small host each take minutes)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    report = run_load(args.users, args.seconds, stagger_s=args.stagger)
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as stream:
            stream.write(text + "\n")
    return 0 if report["lost_saves"] == 0 and report["corrupt_saves"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
