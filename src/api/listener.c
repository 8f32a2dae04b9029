/*
 * listener.c - the loopback HTTP listener that catches the OAuth redirect.
 *
 * The flow (lua/connrt/flow/browser.lua) opens a listener on the redirect URL's address before it
 * shows the authorization URL, then calls l:accept(timeout) until the browser brings the
 * callback, answers each request with req:respond(...) and closes the listener. Only the
 * request head is read (the callback is a GET); each response closes its connection.
 *
 * No threads: one accept call polls the listening socket and up to MAX_CONNS connections
 * whose heads are still arriving, each with its own read deadline, so a browser's idle
 * speculative connection or a stray, slow or hostile client cannot hold up the real
 * callback or end the wait (when more come at once, the oldest gives way to the newest,
 * see pick_slot). A connection that is malformed (400), too big (431) or silent
 * past its deadline (408) is answered with a short text and closed. A request the flow
 * answers while the listener still waits (a wrong path, method or state) is handed back
 * to the listener: its response is written and its unread input drained within accept's
 * loop, never in req:respond, so a thousand rejected clients that leave data unread
 * cost the real callback nothing (they once cost it a second each). Head buffers live in
 * the listener userdata (Lua memory); every descriptor is owned by a userdata whose __gc
 * closes it, so a Lua error on any path leaks nothing.
 *
 * Hand-written rather than on the proxy's evhttp (src/api/httpd.c): libevent 2.1 cannot
 * answer 408 or 431 with these texts, has no deadline on a whole head and no cap on the
 * connections it reads; measured in bench/listener-evhttp.md.
 *
 * Opens the `connrt.listener` module.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api.h"

#define LISTENER_MT "connrt.listener"
#define REQUEST_MT "connrt.listener.request"

#define BACKLOG 16
#define MAX_CONNS 8            /* connections whose heads are being read at once */
#define HEAD_MAX 16384         /* request line and headers, blank line included */
#define READ_SECONDS 5.0       /* per-connection deadline for the whole head */
#define GRACE_SECONDS 0.5      /* how long a connection may read before a newer one may take its slot */
#define WRITE_SECONDS 5.0      /* deadline for writing a response */
#define LINGER_SECONDS 1.0     /* reading and dropping input after an answer, see below */
#define LINGER_BYTES (1 << 20)
#define ADDR_MAX (INET6_ADDRSTRLEN + 8) /* "[addr]:port" */

/* A slot's states, in the order a newcomer may take a slot over (see pick_slot) */
enum { FREE, DRAINING, WRITING, READING };

typedef struct {
  int fd;            /* -1 when the slot is free */
  int state;
  double deadline;   /* READING: end of the head; WRITING: end of the response; DRAINING:
                        end of lingering */
  double since;      /* READING: when it was accepted */
  size_t len;        /* READING: bytes in buf; WRITING: bytes of out sent; DRAINING:
                        bytes dropped */
  const char *out;   /* WRITING: the response, a string the listener's uservalue keeps */
  size_t out_len;
  char peer[ADDR_MAX];
  char buf[HEAD_MAX];
} Conn;

typedef struct {
  int fd;            /* the listening socket, -1 once closed */
  char where[ADDR_MAX];
  Conn conns[MAX_CONNS];
} Listener;

/* The listener's uservalue: a table slot index -> the response a WRITING slot sends. A
 * request's second uservalue is its listener, so req:respond can hand it back. */

typedef struct {
  int fd;            /* the connection, -1 once answered or closed */
  int answered;
  char peer[ADDR_MAX];
} Request;

/* ---- time and descriptors ---- */

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Milliseconds for poll() to wait `left` seconds, rounded up so a wait never ends early. */
static int poll_ms(double left) {
  if (left <= 0) return 0;
  if (left > 1e6) return 1000000000;
  return (int)(left * 1000.0) + 1;
}

/* Waits until fd is ready for `events` or the deadline passes: 1 ready, 0 deadline,
 * -1 error (errno set). Polls at least once, and again after EINTR. */
static int wait_fd(int fd, short events, double deadline) {
  for (;;) {
    double left = deadline - now();
    struct pollfd p = { fd, events, 0 };
    int n = poll(&p, 1, poll_ms(left));
    if (n > 0) return 1;
    if (n < 0 && errno != EINTR) return -1;
    if (n == 0 && left <= 0) return 0;
  }
}

/* Sends all of p (partial writes, EINTR, a full socket buffer) by the deadline, without
 * SIGPIPE. Returns 0 or an errno value (ETIMEDOUT at the deadline). */
static int send_all(int fd, const char *p, size_t n, double deadline) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w > 0) {
      p += w;
      n -= (size_t)w;
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      int r = wait_fd(fd, POLLOUT, deadline);
      if (r == 0) return ETIMEDOUT;
      if (r < 0) return errno;
      continue;
    }
    return w < 0 ? errno : EIO;
  }
  return 0;
}

/* Closes a connection whose response is sent. If the client sent bytes that were never
 * read, close() would reset the connection, and a reset can destroy the response before
 * the client reads it; so then stop sending, and read and drop input until the client
 * closes, LINGER_BYTES have come or the deadline passes. */
static void close_lingering(int fd, double deadline) {
  char sink[4096];
  size_t total = 0;
  int lingering = 0;
  while (total < LINGER_BYTES) {
    ssize_t n = recv(fd, sink, sizeof sink, MSG_DONTWAIT);
    if (n > 0) {
      total += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && total > 0) {
      if (!lingering) {
        shutdown(fd, SHUT_WR);
        lingering = 1;
      }
      if (wait_fd(fd, POLLIN, deadline) == 1) continue;
    }
    break; /* end of input, an error, nothing was waiting, or the deadline */
  }
  close(fd);
}

/* "127.0.0.1:8400" or "[::1]:8400" */
static void format_addr(const struct sockaddr_storage *ss, char *out, size_t cap) {
  char ip[INET6_ADDRSTRLEN] = "?";
  unsigned port = 0;
  if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
    inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
    port = ntohs(a->sin6_port);
    snprintf(out, cap, "[%s]:%u", ip, port);
  } else {
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
    port = ntohs(a->sin_port);
    snprintf(out, cap, "%s:%u", ip, port);
  }
}

/* ---- status lines ---- */

static const char *reason(lua_Integer status) {
  switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return ""; /* the reason phrase may be empty (RFC 9112 section 4) */
  }
}

/* ---- parsing the request head ---- */

static int is_tchar(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* The end of the request head (just past its blank line) if buf[0..len) holds it, else 0.
 * Only bytes from `from` on are new, so the search starts just before them. */
static size_t head_end(const char *buf, size_t from, size_t len) {
  for (size_t i = from; i < len; i++) {
    if (buf[i] != '\n') continue;
    if (i + 1 < len && buf[i + 1] == '\n') return i + 2;
    if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n') return i + 3;
  }
  return 0;
}

/* The line at *pos (which ends in LF within the head), without its CR LF or LF. */
static char *next_line(char *buf, size_t n, size_t *pos, size_t *len) {
  char *s = buf + *pos;
  char *nl = memchr(s, '\n', n - *pos);
  size_t l = (size_t)(nl - s);
  if (l > 0 && s[l - 1] == '\r') l--;
  *pos = (size_t)(nl + 1 - buf);
  *len = l;
  return s;
}

/* "METHOD SP request-target SP HTTP/1.x": sets method, target, path and query in the
 * table on top of the stack. Returns 0 if the line is malformed. */
static int parse_request_line(lua_State *L, const char *s, size_t n) {
  size_t i = 0;
  while (i < n && is_tchar((unsigned char)s[i])) i++;
  if (i == 0 || i >= n || s[i] != ' ') return 0;
  size_t mlen = i++, t0 = i;
  while (i < n && (unsigned char)s[i] > 0x20 && (unsigned char)s[i] < 0x7f) i++;
  if (i == t0 || i >= n || s[i] != ' ') return 0;
  size_t tlen = i - t0;
  i++;
  if (n - i != 8 || memcmp(s + i, "HTTP/1.", 7) != 0 || s[i + 7] < '0' || s[i + 7] > '9') return 0;
  const char *target = s + t0;
  const char *q = memchr(target, '?', tlen);
  size_t plen = q ? (size_t)(q - target) : tlen;
  lua_pushlstring(L, s, mlen);
  lua_setfield(L, -2, "method");
  lua_pushlstring(L, target, tlen);
  lua_setfield(L, -2, "target");
  lua_pushlstring(L, target, plen);
  lua_setfield(L, -2, "path");
  if (q) lua_pushlstring(L, q + 1, tlen - plen - 1);
  else lua_pushliteral(L, "");
  lua_setfield(L, -2, "query");
  return 1;
}

/* "name: value" into the headers table on top of the stack: the name lowercased (in
 * place), the value without surrounding blanks, a repeated name's values joined with
 * ", " (empty ones left out, as a list's empty elements are, RFC 9110 section 5.6.1, so
 * no value ends in a blank). Returns 0 if the line is malformed (including obsolete line
 * folding). */
static int parse_header(lua_State *L, char *s, size_t n) {
  size_t i = 0;
  for (; i < n && is_tchar((unsigned char)s[i]); i++) {
    if (s[i] >= 'A' && s[i] <= 'Z') s[i] = (char)(s[i] - 'A' + 'a');
  }
  if (i == 0 || i >= n || s[i] != ':') return 0;
  size_t nlen = i++;
  while (i < n && (s[i] == ' ' || s[i] == '\t')) i++;
  size_t e = n;
  while (e > i && (s[e - 1] == ' ' || s[e - 1] == '\t')) e--;
  for (size_t j = i; j < e; j++) {
    unsigned char c = (unsigned char)s[j];
    if ((c < 0x20 && c != '\t') || c == 0x7f) return 0;
  }
  lua_pushlstring(L, s, nlen);
  lua_pushvalue(L, -1);
  int had = lua_rawget(L, -3) == LUA_TSTRING && lua_rawlen(L, -1) > 0;
  if (had && e > i) {
    lua_pushliteral(L, ", ");
    lua_pushlstring(L, s + i, e - i);
    lua_concat(L, 3);
  } else if (!had) {
    lua_pop(L, 1);
    lua_pushlstring(L, s + i, e - i);
  } /* else an empty value after others: they stay as they are */
  lua_rawset(L, -3);
  return 1;
}

/* Pushes the fields of the request whose head is buf[0..n) (n just past the blank line):
 * method, target, path, query, headers, peer. Returns 0, pushing nothing, if it is
 * malformed. */
static int parse_head(lua_State *L, char *buf, size_t n, const char *peer) {
  int top = lua_gettop(L);
  size_t pos = 0, len;
  char *line = next_line(buf, n, &pos, &len);
  lua_createtable(L, 0, 6);
  if (!parse_request_line(L, line, len)) goto bad;
  lua_newtable(L);
  for (;;) {
    line = next_line(buf, n, &pos, &len);
    if (len == 0) break;
    if (!parse_header(L, line, len)) goto bad;
  }
  lua_setfield(L, -2, "headers");
  lua_pushstring(L, peer);
  lua_setfield(L, -2, "peer");
  return 1;
bad:
  lua_settop(L, top);
  return 0;
}

/* ---- connections whose heads are being read ---- */

static void conn_close(Conn *c) {
  if (c->fd >= 0) close(c->fd);
  c->fd = -1;
  c->state = FREE;
  c->len = 0;
  c->out = NULL;
}

/* Reads and drops what a rejected client still sends; closes at its end or LINGER_BYTES. */
static void conn_drain(Conn *c);

/* Sends what a WRITING slot has left without waiting; once all is sent, stops sending
 * and drains (see close_lingering), a write error closes. */
static void conn_write(Conn *c) {
  while (c->len < c->out_len) {
    ssize_t w = send(c->fd, c->out + c->len, c->out_len - c->len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) {
      c->len += (size_t)w;
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return; /* poll for POLLOUT */
    conn_close(c);
    return;
  }
  shutdown(c->fd, SHUT_WR);
  c->state = DRAINING;
  c->out = NULL;
  c->len = 0;
  c->deadline = now() + LINGER_SECONDS;
  conn_drain(c);
}

static void conn_drain(Conn *c) {
  char sink[4096];
  for (;;) {
    ssize_t n = recv(c->fd, sink, sizeof sink, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0) break;
    c->len += (size_t)n;
    if (c->len >= LINGER_BYTES) break;
  }
  conn_close(c);
}

/* Answers a connection that brought no usable request with a short text, then lingers
 * (see close_lingering) without blocking: the slot drains until the client closes. */
static void conn_reject(Conn *c, int status) {
  const char *body = status == 431 ? "Request header fields too large.\n"
                   : status == 408 ? "No request came in time.\n"
                   : "Malformed request.\n";
  char msg[256];
  int n = snprintf(msg, sizeof msg,
                   "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                   "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                   status, reason(status), strlen(body), body);
  /* small enough for an empty socket buffer: never waits */
  send_all(c->fd, msg, (size_t)n, 0);
  shutdown(c->fd, SHUT_WR);
  c->state = DRAINING;
  c->len = 0;
  c->deadline = now() + LINGER_SECONDS;
  conn_drain(c);
}

/* Reads what a READING connection has sent. Returns the head's length once it is
 * complete, else 0 (the connection may have been rejected or closed meanwhile). */
static size_t conn_read(Conn *c) {
  for (;;) {
    if (c->len == HEAD_MAX) {
      conn_reject(c, 431);
      return 0;
    }
    ssize_t n = recv(c->fd, c->buf + c->len, HEAD_MAX - c->len, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
    if (n < 0) {
      conn_close(c);
      return 0;
    }
    if (n == 0) { /* closed early: answer if it sent anything, else just close */
      if (c->len > 0) conn_reject(c, 400);
      else conn_close(c);
      return 0;
    }
    size_t from = c->len >= 2 ? c->len - 2 : 0;
    c->len += (size_t)n;
    size_t end = head_end(c->buf, from, c->len);
    if (end) return end;
  }
}

/* Turns a connection whose head is complete into a request userdata on the stack, moving
 * its descriptor there. Returns 0, pushing nothing, if the head is malformed. */
static int push_request(lua_State *L, Conn *c, size_t end) {
  if (!parse_head(L, c->buf, end, c->peer)) {
    conn_reject(c, 400);
    return 0;
  }
  Request *rq = lua_newuserdatauv(L, sizeof *rq, 2);
  rq->fd = -1;
  rq->answered = 0;
  memcpy(rq->peer, c->peer, sizeof rq->peer);
  luaL_setmetatable(L, REQUEST_MT);
  rq->fd = c->fd;
  c->fd = -1;
  conn_close(c);
  lua_insert(L, -2);
  lua_setiuservalue(L, -2, 1);
  return 1;
}

/* The slot for the next connection at time t: a free one, else the oldest that may be
 * given up (a draining one first, then one writing a rejection, else the one that has
 * read longest, if that is more than GRACE_SECONDS), else NULL. A browser sends its
 * request as soon as it connects, so a flood of clients that connect and send nothing
 * cannot keep the real callback waiting in the backlog, while a burst of real requests
 * still gets each its turn. With `reading_too` 0, a reading slot is never chosen (a
 * rejected request handed back must not push out one that may be the callback). */
static Conn *pick_slot_of(Listener *l, double t, int reading_too) {
  Conn *oldest = NULL;
  for (int i = 0; i < MAX_CONNS; i++) {
    Conn *c = &l->conns[i];
    if (c->state == FREE) return c;
    if (c->state == READING && (!reading_too || c->since + GRACE_SECONDS > t)) continue;
    if (!oldest || c->state < oldest->state || (c->state == oldest->state && c->deadline < oldest->deadline))
      oldest = c;
  }
  return oldest;
}

static Conn *pick_slot(Listener *l, double t) {
  return pick_slot_of(l, t, 1);
}

/* Accepts one waiting connection into a slot (see free_slot) and reads what it has
 * already sent. Returns 1 with a request pushed, 0 if there may be more to accept, -1 if
 * nothing is waiting. */
static int accept_one(lua_State *L, Listener *l) {
  Conn *c = pick_slot(l, now());
  if (!c) return -1;
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    if (e == EAGAIN || e == EWOULDBLOCK) return -1;
    /* the connection failed before we took it, or a signal came: take the next */
    if (e == EINTR || e == ECONNABORTED || e == EPROTO || e == ENETDOWN || e == ENOPROTOOPT ||
        e == EHOSTDOWN || e == ENONET || e == EHOSTUNREACH || e == ENETUNREACH || e == EPERM)
      return 0;
    return luaL_error(L, "listener: cannot accept on %s: %s", l->where, strerror(e));
  }
  if (c->state != FREE) conn_close(c); /* the oldest gives way to the newcomer */
  c->fd = fd;
  c->state = READING;
  c->len = 0;
  c->since = now();
  c->deadline = c->since + READ_SECONDS;
  format_addr(&ss, c->peer, sizeof c->peer);
  size_t end = conn_read(c);
  return end ? push_request(L, c, end) : 0;
}

/* ---- the listener ---- */

static Listener *check_listener(lua_State *L) {
  Listener *l = luaL_checkudata(L, 1, LISTENER_MT);
  if (l->fd < 0) luaL_error(L, "listener: closed");
  return l;
}

/* listener.open(host, port) -> listener | nil, message */
static int l_open(lua_State *L) {
  const char *host = luaL_checkstring(L, 1);
  lua_Integer port = luaL_checkinteger(L, 2);
  luaL_argcheck(L, port >= 0 && port <= 65535, 2, "port out of range");
  Listener *l = lua_newuserdatauv(L, sizeof *l, 1);
  l->fd = -1;
  for (int i = 0; i < MAX_CONNS; i++) {
    l->conns[i].fd = -1;
    l->conns[i].state = FREE;
    l->conns[i].len = 0;
    l->conns[i].out = NULL;
  }
  luaL_setmetatable(L, LISTENER_MT);
  lua_createtable(L, MAX_CONNS, 0); /* the responses of WRITING slots */
  lua_setiuservalue(L, -2, 1);

  struct sockaddr_storage ss;
  socklen_t sl;
  memset(&ss, 0, sizeof ss);
  struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
  if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    sl = sizeof *a4;
  } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)port);
    sl = sizeof *a6;
  } else {
    lua_pushnil(L);
    lua_pushfstring(L, "cannot listen on %s:%d: not an IP address", host, (int)port);
    return 2;
  }
  format_addr(&ss, l->where, sizeof l->where);

  int one = 1;
  l->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (l->fd < 0 ||
      setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
      (ss.ss_family == AF_INET6 &&
       setsockopt(l->fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0) ||
      bind(l->fd, (struct sockaddr *)&ss, sl) < 0 ||
      listen(l->fd, BACKLOG) < 0) {
    int e = errno;
    if (l->fd >= 0) close(l->fd);
    l->fd = -1;
    lua_pushnil(L);
    lua_pushfstring(L, "cannot listen on %s: %s", l->where, strerror(e));
    /* the reason (lua/connrt/errors.lua) when it is one a program may act on */
    lua_pushstring(L, e == EADDRINUSE ? "in_use" : "not_completed");
    return 3;
  }
  sl = sizeof ss;
  if (getsockname(l->fd, (struct sockaddr *)&ss, &sl) == 0) {
    format_addr(&ss, l->where, sizeof l->where); /* the real port, when 0 was asked */
  }
  return 1;
}

/* l:port() -> the bound port */
static int l_port(lua_State *L) {
  Listener *l = check_listener(L);
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (getsockname(l->fd, (struct sockaddr *)&ss, &sl) < 0) {
    return luaL_error(L, "listener: cannot get the port of %s: %s", l->where, strerror(errno));
  }
  unsigned port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                           : ntohs(((struct sockaddr_in *)&ss)->sin_port);
  lua_pushinteger(L, (lua_Integer)port);
  return 1;
}

/* [-0, +0] Makes the request on top of the stack remember its listener (argument 1 of
 * l:accept), so req:respond can hand it back. Returns 1: the request. */
static int with_listener(lua_State *L) {
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 2);
  return 1;
}

/* l:accept(timeout) -> request | nil, "timeout". Connections whose heads are still
 * arriving when the time is up stay (with their own deadlines) for the next call. */
static int l_accept(lua_State *L) {
  Listener *l = check_listener(L);
  lua_Number t = luaL_checknumber(L, 2);
  if (!(t > 0)) t = 0; /* also NaN */
  if (t > 1e8) t = 1e8;
  double deadline = now() + t;
  for (;;) {
    struct pollfd p[MAX_CONNS + 1];
    int slot[MAX_CONNS + 1], np = 0;
    double t0 = now(), wake = deadline;
    for (int i = 0; i < MAX_CONNS; i++) {
      Conn *c = &l->conns[i];
      if (c->state != FREE && c->deadline <= t0) {
        if (c->state == READING) conn_reject(c, 408);
        else conn_close(c);
      }
      if (c->state == FREE) continue;
      p[np] = (struct pollfd){ c->fd, c->state == WRITING ? POLLOUT : POLLIN, 0 };
      slot[np++] = i;
      if (c->deadline < wake) wake = c->deadline;
      /* wake when it may give way, to take what waits in the backlog */
      if (c->state == READING && c->since + GRACE_SECONDS > t0 && c->since + GRACE_SECONDS < wake)
        wake = c->since + GRACE_SECONDS;
    }
    if (pick_slot(l, t0)) {
      p[np] = (struct pollfd){ l->fd, POLLIN, 0 };
      slot[np++] = -1;
    }
    int n = poll(p, (nfds_t)np, poll_ms(wake - t0));
    if (n < 0 && errno != EINTR) {
      return luaL_error(L, "listener: cannot wait on %s: %s", l->where, strerror(errno));
    }
    for (int k = 0; n > 0 && k < np; k++) {
      if (!p[k].revents) continue;
      if (slot[k] < 0) {
        int r;
        while ((r = accept_one(L, l)) == 0) {}
        if (r == 1) return with_listener(L);
        continue;
      }
      Conn *c = &l->conns[slot[k]];
      if (c->state == WRITING) {
        conn_write(c);
        continue;
      }
      if (c->state == DRAINING) {
        conn_drain(c);
        continue;
      }
      size_t end = conn_read(c);
      if (end && push_request(L, c, end)) return with_listener(L);
    }
    if (now() >= deadline) {
      lua_pushnil(L);
      lua_pushliteral(L, "timeout");
      return 2;
    }
  }
}

/* l:close(); also __gc and __close. Closing twice is harmless. */
static int l_close(lua_State *L) {
  Listener *l = luaL_checkudata(L, 1, LISTENER_MT);
  for (int i = 0; i < MAX_CONNS; i++) conn_close(&l->conns[i]);
  if (l->fd >= 0) close(l->fd);
  l->fd = -1;
  return 0;
}

/* ---- requests ---- */

/* Appends "Name: value\r\n" for each entry of the headers table at index 3 to the
 * strings on the stack, checking names and values (no header injection). */
static int push_headers(lua_State *L) {
  int count = 0;
  if (lua_isnoneornil(L, 3)) return 0;
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_pushnil(L);
  while (lua_next(L, 3)) {
    if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "listener: respond: header names must be strings");
    size_t nlen, vlen;
    const char *name = lua_tolstring(L, -2, &nlen);
    int vt = lua_type(L, -1);
    if (vt != LUA_TSTRING && vt != LUA_TNUMBER) {
      luaL_error(L, "listener: respond: header %s: value must be a string, not %s", name, lua_typename(L, vt));
    }
    const char *value = lua_tolstring(L, -1, &vlen); /* the value, not the key: safe for lua_next */
    if (nlen == 0) luaL_error(L, "listener: respond: empty header name");
    for (size_t i = 0; i < nlen; i++) {
      if (!is_tchar((unsigned char)name[i])) luaL_error(L, "listener: respond: bad header name %s", name);
    }
    if (strcasecmp(name, "content-length") == 0 || strcasecmp(name, "connection") == 0 ||
        strcasecmp(name, "transfer-encoding") == 0) {
      luaL_error(L, "listener: respond: header %s is set by the listener", name);
    }
    for (size_t i = 0; i < vlen; i++) {
      unsigned char c = (unsigned char)value[i];
      if ((c < 0x20 && c != '\t') || c == 0x7f) {
        luaL_error(L, "listener: respond: header %s: control character in value", name);
      }
    }
    luaL_checkstack(L, 4, "too many headers");
    lua_pushvalue(L, -2);
    lua_pushliteral(L, ": ");
    lua_pushvalue(L, -3);
    lua_pushliteral(L, "\r\n");
    lua_concat(L, 4);
    lua_insert(L, -3); /* the line below the key and value */
    lua_pop(L, 1);     /* the value; the key stays for lua_next */
    count++;
  }
  return count;
}

/* Hands an answered request's connection back to its listener, which is still waiting
 * (the request at index 1, its response the string at index `msg`): a free slot, or one
 * that is draining or writing another rejection, writes the response and drains the
 * client within l:accept's loop. Returns 0 when the listener is closed or has no such
 * slot (every one reads a head that may be the callback): the caller answers itself. */
static int hand_back(lua_State *L, Request *rq, int msg) {
  lua_getiuservalue(L, 1, 2);
  Listener *l = luaL_testudata(L, -1, LISTENER_MT);
  if (!l || l->fd < 0) {
    lua_pop(L, 1);
    return 0;
  }
  Conn *c = pick_slot_of(l, now(), 0);
  if (!c) {
    lua_pop(L, 1);
    return 0;
  }
  if (c->state != FREE) conn_close(c); /* an older rejection gives way */
  lua_getiuservalue(L, -1, 1);        /* keep the response while it is sent */
  lua_pushvalue(L, msg);
  lua_rawseti(L, -2, (lua_Integer)(c - l->conns) + 1);
  lua_pop(L, 2);
  c->fd = rq->fd;
  c->state = WRITING;
  c->out = lua_tolstring(L, msg, &c->out_len);
  c->len = 0;
  c->deadline = now() + WRITE_SECONDS;
  memcpy(c->peer, rq->peer, sizeof c->peer);
  rq->answered = 1;
  rq->fd = -1;
  conn_write(c);
  return 1;
}

/* req:respond(status, headers, body) -> true | nil, message (when the client is gone).
 * Sends the status line, Content-Length, Connection: close, the headers and the body,
 * then closes the connection. Responding twice raises. While the listener still waits
 * (the answer is a rejection: the callback's own answer comes after l:close), the
 * listener sends it and lingers (hand_back), so respond never waits on the client;
 * otherwise it sends and lingers here, up to WRITE_SECONDS and LINGER_SECONDS. */
static int req_respond(lua_State *L) {
  Request *rq = luaL_checkudata(L, 1, REQUEST_MT);
  lua_Integer status = luaL_checkinteger(L, 2);
  luaL_argcheck(L, status >= 100 && status <= 999, 2, "status must be 100..999");
  size_t blen;
  luaL_optlstring(L, 4, "", &blen);
  if (rq->answered) return luaL_error(L, "listener: the request from %s was already answered", rq->peer);
  if (rq->fd < 0) return luaL_error(L, "listener: the request from %s is closed", rq->peer);
  lua_settop(L, 4);
  if (lua_isnil(L, 4)) {
    lua_pushliteral(L, "");
    lua_replace(L, 4);
  }
  int base = lua_gettop(L);
  lua_pushfstring(L, "HTTP/1.1 %d %s\r\nContent-Length: %I\r\nConnection: close\r\n",
                  (int)status, reason(status), (lua_Integer)blen);
  push_headers(L);
  lua_pushliteral(L, "\r\n");
  lua_pushvalue(L, 4);
  lua_concat(L, lua_gettop(L) - base);
  size_t len;
  const char *msg = lua_tolstring(L, -1, &len);
  if (hand_back(L, rq, lua_gettop(L))) {
    lua_pushboolean(L, 1);
    return 1;
  }

  int fd = rq->fd;
  rq->answered = 1;
  rq->fd = -1;
  int err = send_all(fd, msg, len, now() + WRITE_SECONDS);
  close_lingering(fd, now() + LINGER_SECONDS);
  if (err) {
    lua_pushnil(L);
    lua_pushfstring(L, "cannot send the response to %s: %s", rq->peer, strerror(err));
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* __index: methods first, then the fields parsed from the head (the uservalue) */
static int req_index(lua_State *L) {
  luaL_checkudata(L, 1, REQUEST_MT);
  lua_settop(L, 2);
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;
  lua_getiuservalue(L, 1, 1);
  lua_pushvalue(L, 2);
  lua_rawget(L, -2);
  return 1;
}

/* __gc and __close: a request never answered just has its connection closed */
static int req_close(lua_State *L) {
  Request *rq = luaL_checkudata(L, 1, REQUEST_MT);
  if (rq->fd >= 0) close(rq->fd);
  rq->fd = -1;
  return 0;
}

static const luaL_Reg listener_methods[] = {
  { "port", l_port },
  { "accept", l_accept },
  { "close", l_close },
  { NULL, NULL }
};

static const luaL_Reg request_methods[] = {
  { "respond", req_respond },
  { NULL, NULL }
};

static const luaL_Reg listener_meta[] = {
  { "__gc", l_close },
  { "__close", l_close },
  { NULL, NULL }
};

static const luaL_Reg request_meta[] = {
  { "__gc", req_close },
  { "__close", req_close },
  { NULL, NULL }
};

static const luaL_Reg listener_funcs[] = {
  { "open", l_open },
  { NULL, NULL }
};

int luaopen_connrt_listener(lua_State *L) {
  connrt_class(L, LISTENER_MT, listener_meta, listener_methods);
  connrt_class(L, REQUEST_MT, request_meta, NULL);
  /* a request's __index also answers its fields (method, path, ...): req_index */
  luaL_getmetatable(L, REQUEST_MT);
  luaL_newlib(L, request_methods);
  lua_pushcclosure(L, req_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);

  luaL_newlib(L, listener_funcs);
  return 1;
}
