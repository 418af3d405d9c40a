"""The consoles as people use them, on real backends: `onebox console SERVER` attaching a
terminal (a pty here) to a container's serial console; the serial console's page
(`/console/serial/xterm.html`, xterm.js) and noVNC's page (`openstack console url show
--novnc`) opened in headless Chromium driven by selenium, the VM's screen saved as
target/artifacts/novnc-<server>.png. What a member cannot do with them.

Needs root, libvirtd (scripts/libvirtd.sh start), chromium and chromium-driver
(scripts/setup.sh --with-tests); skipped otherwise, unless ONEBOX_REQUIRE_BACKENDS is set."""

import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import termios
import time

import pytest

from test_vm import FW, REPO, console_until, vmbox  # noqa: F401 - the fixture is used by name

ARTIFACTS = os.path.join(REPO, "target", "artifacts")
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SHELL = "#!/bin/sh\n(setsid /bin/sh -i </dev/ttyS0 >/dev/ttyS0 2>&1 &)\n"


def console_url(box, kind, server, cloud="onebox-admin"):
    p = box.osc("console", "url", "show", kind, server, "-f", "json", cloud=cloud)
    return json.loads(p.stdout)["url"]


@pytest.fixture(scope="module")
def container(vmbox):  # noqa: F811
    box = vmbox
    box.osc("image", "create", "--disk-format", "raw", "--container-format", "bare",
            "--property", "hypervisor_type=lxc", "--file",
            os.path.join(FW, "onebox-rootfs.tar"), "ctr-web")
    srv = box.osc_json("server", "create", "--image", "ctr-web", "--flavor", "m1.tiny",
                       "--nic", "none", "--wait", "ctr-web")
    try:
        assert srv["status"] == "ACTIVE"
        console_until(box, srv["id"], "onebox-rootfs: ready", timeout=120)
        yield srv
    finally:
        box.osc("server", "delete", "--wait", srv["id"], check=False)


# --- onebox console ----------------------------------------------------------------------

class Attached:
    """`onebox console` on a pty of its own; `out` gathers what it wrote."""

    def __init__(self, box, server, *extra):
        self.master, self.slave = os.openpty()
        self.before = termios.tcgetattr(self.slave)
        self.proc = subprocess.Popen(
            [box.binary, "console", "--data-dir", box.data_dir, server, *extra],
            stdin=self.slave, stdout=self.slave, stderr=self.slave,
            env={**os.environ, **box.env}, start_new_session=True)
        self.out = b""

    def read_until(self, needle, timeout=60):
        deadline = time.time() + timeout
        while needle.encode() not in self.out:
            assert time.time() < deadline, f"{needle!r} not read; got {self.out!r}"
            r, _, _ = select.select([self.master], [], [], 0.5)
            if r:
                try:
                    self.out += os.read(self.master, 65536)
                except OSError:
                    break
        return self.out.decode(errors="replace")

    def wait(self, timeout=30):
        deadline = time.time() + timeout
        while self.proc.poll() is None and time.time() < deadline:
            r, _, _ = select.select([self.master], [], [], 0.2)
            if r:
                try:
                    self.out += os.read(self.master, 65536)
                except OSError:
                    pass
        return self.proc.poll()

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)
        os.close(self.slave)


def test_onebox_console_attaches_the_terminal_to_a_containers_shell(vmbox, container):  # noqa: F811
    box = vmbox
    a = Attached(box, "ctr-web")
    try:
        a.read_until("Ctrl-] leaves")
        # The terminal is raw while attached: keys go to the server as they are typed.
        assert not termios.tcgetattr(a.slave)[3] & termios.ICANON
        os.write(a.master, b"echo onebox-cli-$((6*7)) in $(hostname)\r")
        a.read_until("onebox-cli-42 in ctr-web")
        # Ctrl-C goes to the server's shell (which shows it), not to onebox console.
        seen = len(a.out)
        os.write(a.master, b"\x03")
        deadline = time.time() + 30
        while b"^C" not in a.out[seen:]:
            assert time.time() < deadline, a.out
            a.read_until("^C", timeout=30)
        assert a.proc.poll() is None
        os.write(a.master, b"echo after-$((1+1))\r")
        a.read_until("after-2")
        # Ctrl-] leaves, and the terminal is as it was.
        os.write(a.master, b"\x1d")
        assert a.wait() == 0, a.out
        assert termios.tcgetattr(a.slave) == a.before
        assert b"Left the serial console" in a.out
    finally:
        a.close()
    console_until(box, container["id"], "onebox-cli-42 in ctr-web", timeout=10)

    # The session ended with the command: the console can be had again at once.
    again = Attached(box, container["id"])
    try:
        again.read_until("Ctrl-] leaves")
        os.write(again.master, b"\x1d")
        assert again.wait() == 0
    finally:
        again.close()


def test_attack_onebox_console_gives_no_more_than_the_credentials_it_signs_in_with(
        vmbox, container):  # noqa: F811
    box = vmbox
    # The admin's credentials are the owner's alone: reading them is being the operator.
    creds = os.path.join(box.data_dir, "admin-openrc")
    assert os.stat(creds).st_mode & 0o077 == 0
    # A member's credentials reach no server of another project, by id or by name.
    demo = os.path.join(box.data_dir, "demo-openrc")
    for name in (container["id"], "ctr-web"):
        a = Attached(box, name, "--credentials", demo)
        try:
            code = a.wait()
            assert code not in (None, 0), a.out
            assert b"Connected" not in a.out
        finally:
            a.close()
    # Without credentials there is nothing to sign in with.
    a = Attached(box, "ctr-web", "--credentials", os.path.join(box.data_dir, "nothing"))
    try:
        assert a.wait() not in (None, 0)
        assert b"reading" in a.out
    finally:
        a.close()


# --- the pages in Chromium ---------------------------------------------------------------

def chromium_missing():
    for exe in (CHROMIUM, CHROMEDRIVER):
        if not os.access(exe, os.X_OK):
            return f"{exe} is missing (scripts/setup.sh --with-tests)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is missing (tests/clients/requirements.txt)"
    return None


def ours(profile):
    """PIDs of the processes started with this run's browser profile."""
    pids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if profile.encode() in f.read():
                    pids.append(int(pid))
        except OSError:
            continue
    return pids


@pytest.fixture
def browser():
    why = chromium_missing()
    if why:
        if os.environ.get("ONEBOX_REQUIRE_BACKENDS"):
            pytest.fail(why)
        pytest.skip(why)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="onebox-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1100,900", f"--user-data-dir={profile}", "--no-first-run"):
        opts.add_argument(a)
    service = Service(executable_path=CHROMEDRIVER, popen_kw={"start_new_session": True})
    driver = None
    try:
        driver = webdriver.Chrome(service=service, options=opts)
        driver.set_page_load_timeout(120)
        driver.set_script_timeout(60)
        yield driver
    finally:
        if driver is not None:
            try:
                driver.quit()
            except Exception:  # noqa: BLE001 - the processes are ended below in any case
                pass
        proc = getattr(service, "process", None)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        deadline = time.time() + 10
        while ours(profile) and time.time() < deadline:
            time.sleep(0.2)
        for pid in ours(profile):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(driver, script, timeout, what):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = driver.execute_script(script)
        if last:
            return last
        time.sleep(1)
    raise AssertionError(f"{what} not seen in {timeout}s (last: {last!r})")


def test_the_serial_console_page_types_into_a_container(vmbox, container, browser):  # noqa: F811
    box = vmbox
    ws = console_url(box, "--serial", container["id"], cloud="onebox-admin")
    token = ws.split("token=", 1)[1]
    browser.get(f"{box.base}/console/serial/xterm.html?token={token}")
    wait_for(browser, "return document.body.getAttribute('data-state') === 'connected';",
             60, "the console's connection")
    # The token left the address bar once read.
    assert "token" not in browser.current_url
    area = browser.find_element("css selector", ".xterm-helper-textarea")
    area.send_keys("echo onebox-web-$((6*7))\n")
    console_until(box, container["id"], "onebox-web-42", timeout=60)
    # Without a token the page is not served.
    browser.get(f"{box.base}/console/serial/xterm.html")
    assert "xterm" not in browser.page_source.lower()


def canvas_spread(driver):
    """Distinct colours and the luminance variance of noVNC's canvas."""
    return driver.execute_script("""
        const c = document.querySelector('#screen canvas') || document.querySelector('canvas');
        if (!c || !c.width || !c.height) { return null; }
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0, sum = 0, sq = 0; const colours = new Set();
        for (let i = 0; i < d.length; i += 16) {
            const y = 0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2];
            n++; sum += y; sq += y * y;
            if (colours.size < 64) { colours.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]); }
        }
        const mean = sum / n;
        return {w: c.width, h: c.height, colours: colours.size, variance: sq / n - mean * mean};
    """)


def test_the_novnc_page_shows_a_vms_screen_in_chromium(vmbox, browser):  # noqa: F811
    box = vmbox
    ud = os.path.join(box.data_dir, "web-shell.sh")
    with open(ud, "w") as f:
        f.write(SHELL)
    srv = box.osc_json("server", "create", "--image", "vm-tiny", "--flavor", "vm.tiny",
                       "--user-data", ud, "--config-drive", "True", "--wait", "vm-web")
    try:
        console_until(box, srv["id"], "user-data-exit=0", timeout=300)
        page = console_url(box, "--novnc", srv["id"])
        assert page.startswith(f"{box.base}/console/vnc/vnc_lite.html?path="), page
        browser.get(page)
        wait_for(browser,
                 "const s = document.getElementById('status');"
                 "return s && /connected/i.test(s.textContent) && !/dis/i.test(s.textContent)"
                 " ? s.textContent : null;", 120, "noVNC's connection")
        deadline = time.time() + 120
        while True:
            spread = canvas_spread(browser)
            if spread and spread["colours"] > 1 and spread["variance"] > 1.0:
                break
            assert time.time() < deadline, f"noVNC's canvas stayed blank: {spread}"
            time.sleep(2)
        os.makedirs(ARTIFACTS, exist_ok=True)
        shot = os.path.join(ARTIFACTS, f"novnc-{srv['id']}.png")
        png = browser.get_screenshot_as_png()
        with open(shot, "wb") as f:
            f.write(png)
        assert png.startswith(b"\x89PNG") and len(png) > 1000
        print(f"noVNC screenshot: {shot} ({spread})")
    finally:
        box.osc("server", "delete", "--wait", srv["id"], check=False)
