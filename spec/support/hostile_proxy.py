# A unix-socket peer that stands where `connrt proxy` should, for spec/via_proxy_spec.lua:
# it answers whatever the spec wants, or nothing. Python's standard library only.
#
# usage: python3 spec/support/hostile_proxy.py SOCKET MODE [ARG]
#   answer FILE  reads each request's head and answers with FILE's bytes, then closes
#   big N        answers 200 with a body of N bytes (Content-Length N), in chunks
#   bigshown N   the same, marked as an upstream's answer rendered for `connrt request`
#   record FILE  appends what it is sent to FILE, and answers as a proxy would
#   trickle      answers one byte of a status line every 0.2 s, forever
#   close        reads the request and closes without a word
#   stuck        listens with a full backlog and never accepts
# Prints "ready" once it listens; the spec stops it with kill.
import os
import socket
import sys
import time

path, mode = sys.argv[1], sys.argv[2]
arg = sys.argv[3] if len(sys.argv) > 3 else ""
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(path)

if mode == "stuck":
    # backlog 0, filled by connections of our own: a client's connect() finds it full
    srv.listen(0)
    held = []
    for _ in range(64):
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.setblocking(False)
        try:
            c.connect(path)
        except (BlockingIOError, InterruptedError):
            break
        held.append(c)
    print("ready", flush=True)
    while True:
        time.sleep(60)

srv.listen(16)
print("ready", flush=True)
while True:
    conn, _ = srv.accept()
    conn.settimeout(30)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            got = conn.recv(65536)
            if not got:
                break
            data += got
        if mode == "answer":
            with open(arg, "rb") as f:
                conn.sendall(f.read())
        elif mode in ("big", "bigshown"):
            n = int(arg)
            shown = b"Connrt-Shown: body\r\n" if mode == "bigshown" else b""
            conn.sendall(b"HTTP/1.1 200 OK\r\n%sContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % (shown, n))
            chunk = b"a" * 65536
            while n > 0:
                conn.sendall(chunk[:n])
                n -= len(chunk)
        elif mode == "record":
            with open(arg, "ab") as f:
                f.write(data)
            if data:
                conn.sendall(b"HTTP/1.1 200 OK\r\nConnrt-Shown: body\r\nContent-Length: 2\r\n\r\nok")
        elif mode == "trickle":
            for b in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 100000:
                conn.sendall(bytes([b]))
                time.sleep(0.2)
    except OSError:
        pass
    conn.close()
    if os.environ.get("HOSTILE_ONCE"):
        break
