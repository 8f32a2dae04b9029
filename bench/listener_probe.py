#!/usr/bin/python3
"""Hostile clients against a redirect listener (connrt.listener from the build directory
given, via LUA_CPATH): what each gets and when, and whether the real callback still gets
through. Used by bench/listener-evhttp.sh to compare the hand-written listener with the
evhttp one; prints one line per case. Usage: listener_probe.py BUILD_DIR"""
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time

SERVER = r"""
local listener = require("connrt.listener")
local sys = require("connrt.sys")
local l = assert(listener.open("127.0.0.1", 0))
io.stdout:write(l:port(), "\n"); io.stdout:flush()
local t0 = sys.monotime()
while true do
  local req = l:accept(60)
  if not req then break end
  if req.path == "/real" then
    l:close()
    req:respond(200, { ["Content-Type"] = "text/plain" }, "signed in")
    io.stdout:write(("%.3f\n"):format(sys.monotime() - t0)); io.stdout:flush()
    break
  end
  req:respond(400, { ["Content-Type"] = "text/plain" }, "wrong state")
end
"""


def start(nofile=None):
    def limit():
        if nofile:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    # standard error to a file: a pipe nobody reads would stop a listener that writes much
    err = tempfile.TemporaryFile()
    p = subprocess.Popen(["lua5.4", "-e", SERVER], stdout=subprocess.PIPE, stderr=err, text=True,
                         preexec_fn=limit)
    p.stderr_file = err
    return p, int(p.stdout.readline())


def connect(port):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    return s


def answer(s, timeout=20.0):
    """(status line or 'closed'/'reset'/'hung', seconds until the server closed)"""
    t0 = time.monotime() if hasattr(time, "monotime") else time.monotonic()
    s.settimeout(timeout)
    got = b""
    try:
        while True:
            c = s.recv(65536)
            if not c:
                break
            got += c
    except socket.timeout:
        return "hung", timeout
    except ConnectionResetError:
        return ("reset after " + got.split(b"\r\n")[0].decode("latin1")) if got else "reset", time.monotonic() - t0
    line = got.split(b"\r\n")[0].decode("latin1") if got else "closed without an answer"
    return line, time.monotonic() - t0


def real(port):
    """the real callback: (status line, seconds from connecting to the answer's end)"""
    t0 = time.monotonic()
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"GET /real HTTP/1.1\r\nHost: x\r\n\r\n")
    except OSError as e:
        return f"not connected: {e}", time.monotonic() - t0
    line, _ = answer(s, 30)
    return line, time.monotonic() - t0


def case(name, fn):
    p, port = start()
    try:
        print(f"{name}: {fn(port)}", flush=True)
    finally:
        p.kill()
        p.wait()


def one(data):
    def run(port):
        s = connect(port)
        s.sendall(data)
        s.settimeout(20)
        t0 = time.monotonic()
        got = b""
        try:
            while True:
                c = s.recv(65536)
                if not c:
                    break
                got += c
        except OSError as e:
            got += f"[{e}]".encode()
        return f"{got.decode('latin1')!r} after {time.monotonic() - t0:.1f} s" if got else \
            f"closed without an answer after {time.monotonic() - t0:.1f} s"
    return run


def slow_drip(port):
    # a head that never ends, one byte every 2 s: how long is the connection kept?
    s = connect(port)
    s.settimeout(0.1)
    t0 = time.monotonic()
    s.sendall(b"GET /x HTTP/1.1\r\n")
    while time.monotonic() - t0 < 30:
        try:
            c = s.recv(4096)
            head = c.split(b"\r\n")[0]
            return f"answered {head!r} after {time.monotonic() - t0:.1f} s" if c else \
                f"closed without an answer after {time.monotonic() - t0:.1f} s"
        except socket.timeout:
            pass
        except ConnectionResetError:
            return f"reset after {time.monotonic() - t0:.1f} s"
        try:
            s.send(b"a")
        except OSError as e:
            return f"{e} after {time.monotonic() - t0:.1f} s"
        time.sleep(2)
    return "still open after 30 s (and counting)"


def flood_under_fd_limit(total, nofile):
    """`total` clients connect and stay silent; then, a second later, the real callback"""
    p, port = start(nofile)
    t0 = time.monotonic()
    try:
        silent, refused = [], 0
        for _ in range(total):
            try:
                silent.append(socket.create_connection(("127.0.0.1", port), timeout=2))
            except OSError:
                refused += 1
        time.sleep(1)
        line, t = real(port)
        cpu, wall = cpu_of(p.pid), time.monotonic() - t0
        for s in silent:
            s.close()
        p.kill()
        p.wait()
        err = stderr_of(p)
        return (f"{len(silent)} connected, {refused} failed; the listener used {cpu:.2f} s of CPU in {wall:.1f} s "
                f"and wrote {err.count(chr(10))} lines to stderr; real callback: {line!r} after {t:.2f} s")
    finally:
        p.kill()
        p.wait()


def stderr_of(p):
    f = p.stderr_file
    f.seek(0)
    return f.read().decode("latin1")


def cpu_of(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def forged_flood(port):
    # 50 forged callbacks, each with 64 KB more than its head, left unread; then the real one
    pad = b"a" * 65536
    forged = []
    for i in range(50):
        s = connect(port)
        s.sendall(b"GET /callback?code=c&state=forged HTTP/1.1\r\nHost: x\r\n\r\n" + pad)
        forged.append(s)
    line, t = real(port)
    whole = 0
    for s in forged:
        got, _ = answer(s, 5)
        whole += got.startswith("HTTP/1.1 400")
    return f"real callback {line!r} after {t:.2f} s; {whole} of 50 forged got their whole 400"


if __name__ == "__main__":
    print(f"-- {sys.argv[1]}")
    case("20000-byte header", one(b"GET /x HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n"))
    case("20000-byte request line", one(b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n"))
    case("folded header", one(b"GET /x HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n"))
    case("silent client", one(b""))
    case("half a head", one(b"GET /slow HTTP/1.1\r\nHost: x\r\n"))
    case("slow drip (a byte every 2 s)", slow_drip)
    case("forged flood", forged_flood)
    print(f"400 silent clients, RLIMIT_NOFILE 64: {flood_under_fd_limit(400, 64)}", flush=True)
