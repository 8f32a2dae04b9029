/*
 * httpd.c - the HTTP server under `connrt proxy`, on libevent's evhttp (Debian's
 * libevent-dev): listening sockets, one server loop per worker process, and a shared
 * memory block the workers publish their metrics in.
 *
 * evhttp parses requests (keep-alive, chunked bodies, limits on header and body sizes:
 * an oversized body gets 413 from evhttp itself, before our handler sees anything, and
 * on_output sees that answer go, so Lua logs and counts it) and writes responses;
 * everything a request means is decided in Lua (lua/connrt/proxy.lua).
 *
 * Many requests are in flight in one worker, on one thread: each request's Lua handler
 * runs in a coroutine of its own (a task), and the upstream requests it makes run on
 * libcurl's multi interface driven by this loop (curl_multi_socket_action with an event
 * per socket and a timer: libcurl's hiperfifo example). src/api/http.c, called from a
 * task, hands its transfer to the loop (the connrt_loop of api.h, in the registry) and
 * yields; the loop resumes the task when the transfer ends. Tasks are only ever resumed
 * from the loop's top level (an event of their own), never from inside a libcurl or
 * evhttp callback, so Lua may start or drop transfers whenever it runs. Lua code never
 * runs concurrently: a worker's Lua state, store handle and connector hooks need no locks.
 * (Elsewhere, the CLI included, http.c blocks on curl's easy interface as before.)
 *
 * Streaming: when the first bytes of a final answer arrive (http.c decides which answers
 * the Lua layer may still act on and keeps those whole), the transfer pauses and the task
 * gets the headers; the handler returns them with the transfer, and the loop sends the
 * status and headers (evhttp_send_reply_start) and then the body as it comes, a chunk per
 * piece. Flow control: while the client has STREAM_HIGH bytes not yet taken, the transfer
 * is paused, and unpaused when evhttp has written them. An answer cut short (over its
 * limit, an upstream failure, a timeout) closes the client's connection, so it is never
 * taken for a whole one; a client that leaves stops its transfer.
 *
 * SIGTERM (or SIGINT) stops a worker from accepting; it leaves once the responses it
 * owes, streamed ones included, are written (at most 30 s later). SIGHUP calls the Lua function given for it.
 *
 * Opens the `connrt.httpd` module. Loaded only by `connrt proxy` (a lazily loaded
 * shared object of the binary, like connrt.http), so no other command loads libevent.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "api.h"

#define SHM_MT "connrt.httpd.shm"
#define STOP_GRACE_S 30

/* --- listening sockets ------------------------------------------------------------- */

/* httpd.listen_unix(path) -> fd | nil, message. A stream socket at path, mode 0600 from
 * the start (created under umask 0177, so no moment exists where others may connect). A
 * stale socket file (nothing accepts on it) is replaced; a live one is an error. */
static int httpd_listen_unix(lua_State *L) {
  size_t len;
  const char *path = luaL_checklstring(L, 1, &len);
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  if (len >= sizeof sa.sun_path) {
    lua_pushnil(L);
    lua_pushfstring(L, "socket path %s is too long (at most %d bytes)", path, (int)sizeof sa.sun_path - 1);
    return 2;
  }
  memcpy(sa.sun_path, path, len + 1);
  struct stat st;
  if (lstat(path, &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      lua_pushnil(L);
      lua_pushfstring(L, "%s exists and is not a socket", path);
      return 2;
    }
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0) {
      close(probe);
      lua_pushnil(L);
      lua_pushfstring(L, "%s: another proxy is listening there", path);
      return 2;
    }
    if (probe >= 0) close(probe);
    unlink(path);
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) goto fail;
  mode_t old = umask(0177);
  int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
  umask(old);
  if (rc == -1 || chmod(path, 0600) == -1 || listen(fd, 1024) == -1) {
    int e = errno;
    close(fd);
    errno = e;
    goto fail;
  }
  lua_pushinteger(L, fd);
  return 1;
fail:
  lua_pushnil(L);
  lua_pushfstring(L, "cannot listen on %s: %s", path, strerror(errno));
  return 2;
}

/* httpd.listen_tcp(host, port) -> fd, port | nil, message, "usage" when host is not an
 * address (the caller's mistake, not the system's). host: an IPv4 or IPv6 address
 * literal; port 0 picks a free one. */
static int httpd_listen_tcp(lua_State *L) {
  const char *host = luaL_checkstring(L, 1);
  lua_Integer port = luaL_checkinteger(L, 2);
  luaL_argcheck(L, port >= 0 && port <= 65535, 2, "port out of range");
  struct sockaddr_storage ss;
  socklen_t sl;
  memset(&ss, 0, sizeof ss);
  struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
  if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)port);
    sl = sizeof *s4;
  } else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons((uint16_t)port);
    sl = sizeof *s6;
  } else {
    lua_pushnil(L);
    lua_pushfstring(L, "%s is not an IP address", host);
    lua_pushliteral(L, "usage");
    return 3;
  }
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  int one = 1;
  if (fd < 0) goto fail;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  /* An answer goes out as several writes (the head, each chunk of a streamed body, the
   * last chunk): with Nagle's algorithm on, the second waits for the client to ACK the
   * first, which a client delays up to 40 ms. Set on the listening socket, every
   * accepted one inherits it (Linux). */
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (bind(fd, (struct sockaddr *)&ss, sl) == -1 || listen(fd, 1024) == -1) {
    int e = errno;
    close(fd);
    errno = e;
    goto fail;
  }
  getsockname(fd, (struct sockaddr *)&ss, &sl);
  lua_pushinteger(L, fd);
  lua_pushinteger(L, ntohs(ss.ss_family == AF_INET ? s4->sin_port : s6->sin6_port));
  return 2;
fail:
  lua_pushnil(L);
  lua_pushfstring(L, "cannot listen on %s:%d: %s", host, (int)port, strerror(errno));
  return 2;
}

/* --- accepting when out of descriptors --------------------------------------------- */

/* A worker out of file descriptors (clients holding connections open up to its limit)
 * cannot accept: the listening socket stays readable, and libevent 2.1 would call
 * accept() again at once, forever, printing a warning each time (millions a minute, at
 * full CPU). Instead accepting pauses for ACCEPT_PAUSE_MS and resumes; the connections
 * that are open are served meanwhile. One server per worker process: the listener's
 * callbacks carry evhttp's context, so the paused listener is kept here. */
#define ACCEPT_PAUSE_MS 100
static struct evconnlistener *paused_listener;
static struct event *accept_resume_ev;

static void on_accept_resume(evutil_socket_t fd, short what, void *arg) {
  (void)fd, (void)what, (void)arg;
  if (paused_listener) evconnlistener_enable(paused_listener);
}

static void on_accept_error(struct evconnlistener *lev, void *ctx) {
  (void)ctx;
  int err = EVUTIL_SOCKET_ERROR();
  if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM) return;
  evconnlistener_disable(lev);
  paused_listener = lev;
  struct timeval tv = { 0, ACCEPT_PAUSE_MS * 1000 };
  if (accept_resume_ev) event_add(accept_resume_ev, &tv);
}

/* As many descriptors as the hard limit allows (the soft limit is often 1024). */
static void raise_fd_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

/* --- the server loop --------------------------------------------------------------- */

#define TOO_BIG "the answer is larger than the limit (--max-response)"
#define UPSTREAM_IDLE_MAX 256 /* idle upstream connections a worker keeps (libcurl's cache) */
#define STREAM_HIGH (256 * 1024) /* a client's unsent bytes above which its upstream pauses */

#define REFUSED_CODES 400 /* statuses 200..599 of answers evhttp writes itself */

typedef struct task task_t;
typedef struct conn conn_t;

typedef struct {
  connrt_loop loop; /* first: the registry's light userdata points here */
  lua_State *L;
  struct event_base *base;
  struct evhttp *http;
  struct evhttp_bound_socket *bound;
  struct event *term_ev, *int_ev, *hup_ev, *tick_ev, *timer_ev, *accept_ev;
  CURLM *multi;
  int fd, is_unix, stopping, closed, can_watch;
  long inflight;
  int handler_ref, tick_ref, hup_ref, refused_ref, tasks_ref;
  int sending;                  /* >0 while this file hands evhttp an answer (see on_output) */
  struct event *refused_ev;     /* reports what evhttp refused, from the loop's top level */
  unsigned refused[REFUSED_CODES]; /* evhttp's own answers not yet reported, by status - 200 */
  task_t *tasks, *tick_task;
  conn_t *conns;                /* every client connection (see "requests that take too long") */
  struct event *sweep_ev;
  struct event *finish_ev;      /* stops the loop once nothing is in flight (see maybe_finish) */
  double idle;
} server_t;

enum { WAKE_NONE, WAKE_RESUME, WAKE_VALUE, WAKE_STREAM_END };
enum { WATCH_NONE, WATCH_TIMER, WATCH_FD };

/* One run of a Lua function in a coroutine of its own: a request's handler, or the
 * background tick (req NULL). */
struct task {
  server_t *s;
  struct evhttp_request *req; /* NULL once answered, or when evhttp freed it */
  lua_State *co;
  int co_ref, done_ref;
  connrt_xfer *x;             /* the transfer it waits for, or streams */
  struct event *wake;         /* resumes it (or ends its stream) from the loop's top level */
  int wake_what;
  lua_Integer wake_value;
  int streaming, paused;
  struct event *watch;        /* its client, while it waits on an abortable transfer */
  int watching;               /* WATCH_* */
  const char *cut;            /* why its stream was cut */
  struct evbuffer *chunk;
  task_t *next, *prev;
};

static const char *method_name(enum evhttp_cmd_type t) {
  switch (t) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_HEAD: return "HEAD";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_DELETE: return "DELETE";
    case EVHTTP_REQ_OPTIONS: return "OPTIONS";
    case EVHTTP_REQ_PATCH: return "PATCH";
    default: return NULL;
  }
}

static const char *reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Content Too Large";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Status";
  }
}

/* Once stopping and nothing is in flight, the loop stops FINISH_MS later, not at once: a
 * request a client pipelined behind the last answer is read by evhttp only after that
 * answer is done (a deferred callback), and is then served, its answer saying Connection:
 * close, rather than dropped unanswered. */
#define FINISH_MS 50

static void on_finish(evutil_socket_t fd, short what, void *ud) {
  (void)fd;
  (void)what;
  server_t *s = ud;
  if (s->stopping && s->inflight <= 0) event_base_loopbreak(s->base);
}

static void maybe_finish(server_t *s) {
  if (!s->stopping || s->inflight > 0) return;
  struct timeval later = { 0, FINISH_MS * 1000 };
  if (s->finish_ev) event_add(s->finish_ev, &later);
  else event_base_loopbreak(s->base);
}

/* What a client sends while its request is answered (its next request, pipelined, or
 * anything at all) is read up to HELD_INPUT_MAX bytes and then left in the socket until
 * the answer has gone: evhttp reads a connection whose request it answers only to notice
 * a close, and would otherwise take in whatever the client sends meanwhile, without
 * bound. Bounded from the handler's start (on_request) to the answer's end (each
 * completion callback, which evhttp calls before it reads the next request). */
#define HELD_INPUT_MAX (64 * 1024)

static void conn_busy(server_t *s, struct bufferevent *bev, int busy);

static void bound_input(server_t *s, struct evhttp_request *req, int on) {
  struct evhttp_connection *evcon = req ? evhttp_request_get_connection(req) : NULL;
  struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
  if (bev) {
    bufferevent_setwatermark(bev, EV_READ, 0, on ? HELD_INPUT_MAX : 0);
    conn_busy(s, bev, on);
  }
}

static void on_complete(struct evhttp_request *req, void *ud) {
  server_t *s = ud;
  bound_input(s, req, 0);
  s->inflight--;
  maybe_finish(s);
}

/* The last part of an answer is handed to evhttp: it counts as in flight until evhttp has
 * written it (its completion callback) or its connection is gone. evhttp frees a request
 * whose reply was started together with its connection when that connection fails (the
 * client left before or while the reply was written: evhttp noticed only then, since it
 * does not read a connection whose request is being answered) without calling its
 * completion callback; the connection's close callback is called then, so each of the
 * two ends the count, whichever comes, and only once. */
typedef struct {
  server_t *s;
  int done_ref; /* the handler's done(why), or LUA_NOREF */
  int gone;     /* the client had left before the answer was handed over */
} owed_t;

#define CLIENT_LEFT "the client went away"

/* What poll() says now of the client's socket, asked for POLLRDHUP (0: nothing, or no
 * socket): client_gone and client_closed read what they count as gone from it. */
static short client_hangup(struct evhttp_connection *evcon) {
  struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
  evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
  if (fd < 0) return 0;
  struct pollfd p = { .fd = fd, .events = POLLRDHUP };
  return poll(&p, 1, 0) == 1 ? p.revents : 0;
}

/* True when the client has closed its side of the connection, or reset it, while its
 * request was handled: evhttp does not read a connection whose request is being
 * answered, and on TCP the kernel takes an answer to a client that has left without an
 * error, so without this it would count as sent. poll() with POLLRDHUP says so whether
 * or not unread bytes (a pipelined request) are ahead of the close, where a peek would
 * read those bytes; it takes nothing. As with nginx, a client that shut down only its
 * sending side counts as gone. */
static int client_gone(struct evhttp_connection *evcon) {
  return (client_hangup(evcon) & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}
/* True when the client has closed its connection whole or reset it (POLLHUP, POLLERR),
 * not only shut down its sending side. */
static int client_closed(struct evhttp_connection *evcon) {
  return (client_hangup(evcon) & (POLLHUP | POLLERR)) != 0;
}

/* Calls a handler's done(why) (registry reference ref, which it drops): why is nil when
 * the whole answer went, else why it did not. Only from the loop's callbacks, never while
 * Lua runs; done only counts and logs. */
static void call_done_ref(server_t *s, int ref, const char *why) {
  if (ref == LUA_NOREF || s->closed) return;
  lua_State *L = s->L;
  int top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
  luaL_unref(L, LUA_REGISTRYINDEX, ref);
  if (why) lua_pushstring(L, why);
  else lua_pushnil(L);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK)
    fprintf(stderr, "connrt proxy: internal error after an answer: %s\n", lua_tostring(L, -1));
  lua_settop(L, top);
}

static void owed_done(owed_t *o, const char *why) {
  server_t *s = o->s;
  int ref = o->done_ref;
  free(o);
  s->inflight--;
  call_done_ref(s, ref, why);
  maybe_finish(s);
}

static void on_owed_complete(struct evhttp_request *req, void *ud) {
  owed_t *o = ud;
  bound_input(o->s, req, 0);
  struct evhttp_connection *evcon = evhttp_request_get_connection(req);
  if (evcon) evhttp_connection_set_closecb(evcon, NULL, NULL);
  owed_done(o, o->gone ? CLIENT_LEFT : NULL);
}

static void on_owed_close(struct evhttp_connection *evcon, void *ud) {
  (void)evcon;
  owed_done(ud, CLIENT_LEFT);
}

/* Arranges for the count of `req` to end when its reply has gone or its connection has
 * (see above), and then done_ref's function to be called with why it did not go (nil
 * when it did); a request already off its connection (the client left while it was
 * being handled: evhttp frees it when the reply is sent, without callbacks) ends it now. */
static void owe_reply(server_t *s, struct evhttp_request *req, int done_ref) {
  struct evhttp_connection *evcon = evhttp_request_get_connection(req);
  owed_t *o = evcon ? malloc(sizeof *o) : NULL;
  if (!o) {
    evhttp_request_set_on_complete_cb(req, NULL, NULL);
    s->inflight--;
    call_done_ref(s, done_ref, evcon ? NULL : CLIENT_LEFT);
    return;
  }
  o->s = s;
  o->done_ref = done_ref;
  o->gone = done_ref != LUA_NOREF && client_gone(evcon);
  evhttp_request_set_on_complete_cb(req, on_owed_complete, o);
  evhttp_connection_set_closecb(evcon, on_owed_close, o);
}

/* Once stopping (SIGTERM), every answer says Connection: close: evhttp closes the
 * connection after it, and a client that pipelined another request behind it learns that
 * this one will not be answered (RFC 9112 9.6), rather than seeing the connection drop. */
static void say_closing(server_t *s, struct evhttp_request *req) {
  if (!s->stopping) return;
  struct evkeyvalq *out = evhttp_request_get_output_headers(req);
  while (evhttp_find_header(out, "Connection")) evhttp_remove_header(out, "Connection");
  evhttp_add_header(out, "Connection", "close");
}

/* Answers a request whole; done_ref: as owe_reply. */
static void send_whole(server_t *s, struct evhttp_request *req, int status, struct evbuffer *b, int done_ref) {
  say_closing(s, req);
  owe_reply(s, req, done_ref);
  s->sending++;
  evhttp_send_reply(req, status, reason(status), b);
  s->sending--;
  maybe_finish(s);
}

/* Sends a plain JSON error of `kind` without asking Lua (the handler failed, or never
 * ran), with the Connrt-Error header of the proxy's own errors (proxy.lua json_error). */
static void send_plain(server_t *s, struct evhttp_request *req, int status, const char *kind, const char *json) {
  struct evbuffer *b = evbuffer_new();
  evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
  evhttp_add_header(evhttp_request_get_output_headers(req), "Connrt-Error", kind);
  if (b) evbuffer_add(b, json, strlen(json));
  send_whole(s, req, status, b, LUA_NOREF);
  if (b) evbuffer_free(b);
}

/* --- tasks ---------------------------------------------------------------------------- */

static task_t *task_of(server_t *s, lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->tasks_ref);
  lua_pushvalue(L, idx);
  lua_rawget(L, -2);
  task_t *t = lua_touserdata(L, -1);
  lua_pop(L, 2);
  return t;
}

static void on_wake(evutil_socket_t fd, short what, void *ud);

/* A new task with fn (at the top of s->L's stack, popped) ready to run in its coroutine. */
static task_t *task_new(server_t *s, struct evhttp_request *req) {
  lua_State *L = s->L;
  task_t *t = calloc(1, sizeof *t);
  if (!t) luaL_error(L, "out of memory");
  t->s = s;
  t->req = req;
  t->done_ref = LUA_NOREF;
  t->co = lua_newthread(L);
  lua_pushvalue(L, -2);
  lua_xmove(L, t->co, 1); /* the function */
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->tasks_ref);
  lua_pushvalue(L, -2);
  lua_pushlightuserdata(L, t);
  lua_rawset(L, -3);
  lua_pop(L, 1);
  t->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pop(L, 1);
  t->wake = event_new(s->base, -1, 0, on_wake, t);
  t->next = s->tasks;
  if (s->tasks) s->tasks->prev = t;
  s->tasks = t;
  return t;
}

static void schedule(task_t *t, int what, lua_Integer value) {
  t->wake_what = what;
  t->wake_value = value;
  event_active(t->wake, EV_TIMEOUT, 1);
}

/* Takes a transfer off the loop (it is left to its userdata's __gc). */
static void xfer_stop(server_t *s, connrt_xfer *x, int result) {
  if (x->state != CONNRT_XFER_DONE && x->easy) curl_multi_remove_handle(s->multi, x->easy);
  if (x->state != CONNRT_XFER_DONE) x->result = result;
  x->state = CONNRT_XFER_DONE;
}

/* --- a client that leaves while its request waits ------------------------------------- */

/* A request that has waited WATCH_AFTER_MS on an abortable upstream transfer (the proxied
 * request, never a refresh: a token answer that was asked for must be read and kept) has
 * its client's socket watched for a close (EV_CLOSED: epoll's EPOLLRDHUP). A client that
 * has gone (client_gone) stops the transfer, as nginx does, so an upstream that is slow to
 * answer does not keep a connection and a worker's memory for nobody; the task goes on
 * with the transfer's failure, and its answer is logged as cut. Not at once: a request
 * answered within the delay costs no system call for it. The watch ends whenever the task
 * runs again, and before evhttp closes the client's socket (its close callback), so it
 * never watches a descriptor number that a new connection may get. */
#define WATCH_AFTER_MS 500

static void watch_stop(task_t *t) {
  if (t->watching == WATCH_NONE) return;
  event_del(t->watch);
  if (t->watching == WATCH_FD && t->req) {
    struct evhttp_connection *evcon = evhttp_request_get_connection(t->req);
    if (evcon) evhttp_connection_set_closecb(evcon, NULL, NULL);
  }
  t->watching = WATCH_NONE;
}

static void client_left(task_t *t) {
  watch_stop(t);
  connrt_xfer *x = t->x;
  if (x && x->state == CONNRT_XFER_RUNNING && x->abortable) {
    xfer_stop(t->s, x, CURLE_ABORTED_BY_CALLBACK);
    schedule(t, WAKE_VALUE, CURLE_ABORTED_BY_CALLBACK);
  }
}

/* evhttp closes the client's connection (it failed, or the client went) */
static void on_watch_close(struct evhttp_connection *evcon, void *ud) {
  (void)evcon;
  client_left(ud);
}

static void on_watch(evutil_socket_t fd, short what, void *ud) {
  (void)fd;
  task_t *t = ud;
  int was = t->watching;
  t->watching = WATCH_NONE; /* neither event persists */
  struct evhttp_connection *evcon = t->req ? evhttp_request_get_connection(t->req) : NULL;
  if (evcon && was == WATCH_FD) evhttp_connection_set_closecb(evcon, NULL, NULL); /* the watch is over */
  if (!evcon || !t->x || t->x->state != CONNRT_XFER_RUNNING) return;
  if (client_gone(evcon)) {
    client_left(t);
    return;
  }
  if (was == WATCH_FD || !(what & EV_TIMEOUT)) return; /* closed, yet not gone: nothing to stop */
  evutil_socket_t cfd = bufferevent_getfd(evhttp_connection_get_bufferevent(evcon));
  if (cfd < 0 || event_assign(t->watch, t->s->base, cfd, EV_CLOSED, on_watch, t) != 0) return;
  if (event_add(t->watch, NULL) == 0) {
    t->watching = WATCH_FD;
    evhttp_connection_set_closecb(evcon, on_watch_close, t);
  }
}

/* Starts the delay before t's client is watched (t waits on an abortable transfer). */
static void watch_start(task_t *t) {
  server_t *s = t->s;
  watch_stop(t);
  if (!s->can_watch || !t->req || !evhttp_request_get_connection(t->req)) return;
  if (!t->watch) t->watch = event_new(s->base, -1, 0, on_watch, t);
  else event_assign(t->watch, s->base, -1, 0, on_watch, t);
  struct timeval tv = { 0, WATCH_AFTER_MS * 1000 };
  if (t->watch && event_add(t->watch, &tv) == 0) t->watching = WATCH_TIMER;
}

static void task_end(task_t *t) {
  server_t *s = t->s;
  lua_State *L = s->L;
  watch_stop(t);
  if (t->watch) event_free(t->watch);
  if (t->x) {
    xfer_stop(s, t->x, CURLE_ABORTED_BY_CALLBACK);
    t->x->task = NULL;
  }
  if (t->next) t->next->prev = t->prev;
  if (t->prev) t->prev->next = t->next;
  else s->tasks = t->next;
  if (s->tick_task == t) s->tick_task = NULL;
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->tasks_ref);
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->co_ref);
  lua_pushnil(L);
  lua_rawset(L, -3);
  lua_pop(L, 1);
  luaL_unref(L, LUA_REGISTRYINDEX, t->co_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, t->done_ref);
  if (t->wake) event_free(t->wake);
  if (t->chunk) evbuffer_free(t->chunk);
  free(t);
  maybe_finish(s);
}

/* Calls the task's done(why) now, if it still has it (see on_request). */
static void call_done(task_t *t, const char *why) {
  int ref = t->done_ref;
  t->done_ref = LUA_NOREF;
  call_done_ref(t->s, ref, why);
}

/* --- streaming an answer ---------------------------------------------------------------- */

/* Lets a paused streamed transfer go on. libcurl hands over the piece it held at once,
 * and one the sink refused (over --max-response, or the client gone) fails the unpause:
 * then the transfer is over and the stream ends, cut. */
static void unpause(task_t *t, connrt_xfer *x) {
  CURLcode rc = curl_easy_pause(x->easy, CURLPAUSE_CONT);
  if (rc != CURLE_OK && x->state != CONNRT_XFER_DONE) {
    if (!t->cut) t->cut = x->too_big ? TOO_BIG : curl_easy_strerror(rc);
    xfer_stop(t->s, x, (int)rc);
    schedule(t, WAKE_STREAM_END, 0);
  }
}

static void on_drained(struct evhttp_connection *evcon, void *ud) {
  (void)evcon;
  task_t *t = ud;
  if (t->paused && t->x && t->x->state == CONNRT_XFER_STREAMING) {
    t->paused = 0;
    unpause(t, t->x);
  }
}

/* Each piece of a streamed body (called by http.c's write callback): to the client, or
 * not now when the client has not taken what it was given (flow control). */
static int sink(void *ud, const char *data, size_t n) {
  task_t *t = ud;
  struct evhttp_connection *evcon = t->req ? evhttp_request_get_connection(t->req) : NULL;
  if (!evcon) {
    if (!t->cut) t->cut = CLIENT_LEFT;
    return -1;
  }
  struct evbuffer *out = bufferevent_get_output(evhttp_connection_get_bufferevent(evcon));
  if (evbuffer_get_length(out) >= STREAM_HIGH) {
    t->paused = 1;
    return 1;
  }
  if (evbuffer_add(t->chunk, data, n) != 0) {
    t->cut = "out of memory";
    return -1;
  }
  t->s->sending++;
  evhttp_send_reply_chunk_with_cb(t->req, t->chunk, on_drained, t);
  t->s->sending--;
  return 0;
}

/* evhttp is done with a streamed request before we are (an error on its connection). */
static void on_stream_complete(struct evhttp_request *req, void *ud) {
  task_t *t = ud;
  bound_input(t->s, req, 0);
  t->req = NULL;
  t->s->inflight--;
  if (!t->cut) t->cut = "the client connection failed";
  if (t->x) xfer_stop(t->s, t->x, CURLE_WRITE_ERROR);
  schedule(t, WAKE_STREAM_END, 0);
}

/* The client's connection closes under a streamed answer. A request still on it goes
 * with it; one evhttp took off it (the client left) is ours to free. */
static void on_client_close(struct evhttp_connection *evcon, void *ud) {
  task_t *t = ud;
  if (t->req && evhttp_request_get_connection(t->req) == evcon) {
    t->req = NULL;
    t->s->inflight--;
  }
  if (!t->cut) t->cut = CLIENT_LEFT;
  if (t->x) xfer_stop(t->s, t->x, CURLE_WRITE_ERROR);
  schedule(t, WAKE_STREAM_END, 0);
}

/* The end of a streamed answer: the last chunk when all of it went; else the client's
 * connection is cut, so that it cannot take a truncated body for a whole one. */
static void stream_end(task_t *t) {
  server_t *s = t->s;
  connrt_xfer *x = t->x;
  const char *why = t->cut;
  /* over the limit whatever the transfer's result says: a piece refused while libcurl
   * delivered what it had held during a pause ends the transfer as if it were done */
  if (!why && x && x->too_big) why = TOO_BIG;
  if (!why && x && x->state == CONNRT_XFER_DONE && x->result != CURLE_OK)
    why = curl_easy_strerror((CURLcode)x->result);
  if (!why && (!x || x->state != CONNRT_XFER_DONE)) why = "the transfer was stopped";
  if (x) xfer_stop(s, x, CURLE_ABORTED_BY_CALLBACK);
  struct evhttp_request *req = t->req;
  t->req = NULL;
  if (req) {
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    if (evcon) evhttp_connection_set_closecb(evcon, NULL, NULL);
    if (!evcon || !why) { /* the last chunk (a detached request is freed now: owe_reply) */
      int done = LUA_NOREF; /* all came: done once it has all gone (or the client has) */
      if (!why) done = t->done_ref, t->done_ref = LUA_NOREF;
      owe_reply(s, req, done);
      s->sending++;
      evhttp_send_reply_end(req);
      s->sending--;
      maybe_finish(s);
    } else {
      evhttp_request_set_on_complete_cb(req, NULL, NULL);
      s->inflight--;
      evhttp_connection_free(evcon); /* frees req too */
    }
  }
  call_done(t, why);
  task_end(t);
}

static void stream_start(task_t *t, connrt_xfer *x, int status) {
  server_t *s = t->s;
  struct evhttp_request *req = t->req;
  struct evhttp_connection *evcon = evhttp_request_get_connection(req);
  t->x = x;
  int gone = !evcon || client_gone(evcon);
  if (gone || x->state != CONNRT_XFER_HEADERS || !(t->chunk = evbuffer_new())) {
    const char *why = gone ? CLIENT_LEFT : "the upstream transfer ended before its body was read";
    t->req = NULL;
    send_plain(s, req, 502, "network", "{\"error\":\"network\",\"message\":\"the upstream transfer ended early\"}");
    call_done(t, why);
    task_end(t);
    return;
  }
  t->streaming = 1;
  evhttp_request_set_on_complete_cb(req, on_stream_complete, t);
  evhttp_connection_set_closecb(evcon, on_client_close, t);
  say_closing(s, req);
  s->sending++;
  evhttp_send_reply_start(req, status, reason(status));
  s->sending--;
  x->sink = sink;
  x->state = CONNRT_XFER_STREAMING;
  unpause(t, x);
}

/* The handler returned status, headers (an array of {name, value}), body, for a
 * streamed answer the transfer, and done(why): sends them. */
static void reply(task_t *t, int base) {
  lua_State *co = t->co;
  struct evhttp_request *req = t->req;
  int isint = 0;
  int status = (int)lua_tointegerx(co, base, &isint);
  if (!isint || status < 100 || status > 999) status = 500;
  struct evkeyvalq *out = evhttp_request_get_output_headers(req);
  if (lua_istable(co, base + 1)) {
    lua_Integer n = (lua_Integer)lua_rawlen(co, base + 1);
    for (lua_Integer k = 1; k <= n; k++) {
      lua_rawgeti(co, base + 1, k);
      if (lua_istable(co, -1)) {
        lua_rawgeti(co, -1, 1);
        lua_rawgeti(co, -2, 2);
        const char *name = lua_type(co, -2) == LUA_TSTRING ? lua_tostring(co, -2) : NULL;
        const char *value = lua_type(co, -1) == LUA_TSTRING ? lua_tostring(co, -1) : NULL;
        /* evhttp refuses a value with CR or LF; nothing else is needed here */
        if (name && value) evhttp_add_header(out, name, value);
        lua_pop(co, 2);
      }
      lua_pop(co, 1);
    }
  }
  if (lua_isfunction(co, base + 4)) {
    lua_pushvalue(co, base + 4);
    t->done_ref = luaL_ref(co, LUA_REGISTRYINDEX);
  }
  connrt_xfer *x = luaL_testudata(co, base + 3, CONNRT_XFER_MT);
  if (x && x->task == t) {
    stream_start(t, x, status);
    return;
  }
  struct evbuffer *b = evbuffer_new();
  size_t rlen = 0;
  const char *rbody = lua_type(co, base + 2) == LUA_TSTRING ? lua_tolstring(co, base + 2, &rlen) : NULL;
  if (b && rbody && rlen) evbuffer_add(b, rbody, rlen);
  t->req = NULL;
  int done = t->done_ref;
  t->done_ref = LUA_NOREF;
  send_whole(t->s, req, status, b, done);
  if (b) evbuffer_free(b);
  task_end(t);
}

/* Runs a task's coroutine until it yields (for a transfer, or a wait of the Lua layer's)
 * or ends (its answer is sent). */
static void task_resume(task_t *t, int nargs) {
  server_t *s = t->s;
  int nres = 0;
  watch_stop(t);
  int st = lua_resume(t->co, s->L, nargs, &nres);
  if (st == LUA_YIELD) {
    lua_pop(t->co, nres);
    return;
  }
  if (st != LUA_OK) {
    const char *msg = lua_tostring(t->co, -1);
    fprintf(stderr, "connrt proxy: internal error: %s\n", msg ? msg : "(not a string)");
    if (t->req) {
      struct evhttp_request *req = t->req;
      t->req = NULL;
      send_plain(s, req, 500, "internal", "{\"error\":\"internal\",\"message\":\"internal error in the proxy\"}");
    }
    task_end(t);
    return;
  }
  if (!t->req) {
    task_end(t);
    return;
  }
  reply(t, lua_gettop(t->co) - nres + 1);
}

static void on_wake(evutil_socket_t fd, short what, void *ud) {
  (void)fd;
  (void)what;
  task_t *t = ud;
  int w = t->wake_what;
  t->wake_what = WAKE_NONE;
  if (w == WAKE_VALUE) {
    lua_pushinteger(t->co, t->wake_value);
    task_resume(t, 1);
  } else if (w == WAKE_RESUME) {
    task_resume(t, 0);
  } else if (w == WAKE_STREAM_END) {
    stream_end(t);
  }
}

/* --- libcurl's multi interface on the loop (libcurl's hiperfifo example) --------------- */

static void check_done(server_t *s) {
  CURLMsg *msg;
  int left;
  while ((msg = curl_multi_info_read(s->multi, &left))) {
    if (msg->msg != CURLMSG_DONE) continue;
    CURL *e = msg->easy_handle;
    CURLcode rc = msg->data.result;
    connrt_xfer *x = NULL;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&x);
    curl_multi_remove_handle(s->multi, e);
    if (!x) continue;
    int was = x->state;
    x->state = CONNRT_XFER_DONE;
    x->result = (int)rc;
    task_t *t = x->task;
    if (!t || t->x != x) continue;
    /* never resumed from here: Lua may start or drop transfers, which must not happen
     * while this loop reads libcurl's messages */
    if (was == CONNRT_XFER_RUNNING) schedule(t, WAKE_VALUE, (lua_Integer)rc);
    else if (was == CONNRT_XFER_STREAMING) schedule(t, WAKE_STREAM_END, 0);
    /* CONNRT_XFER_HEADERS: the task has the headers, and meets DONE when it streams */
  }
}

static void on_socket(evutil_socket_t fd, short what, void *ud) {
  server_t *s = ud;
  int action = ((what & EV_READ) ? CURL_CSELECT_IN : 0) | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
  int running;
  curl_multi_socket_action(s->multi, fd, action, &running);
  check_done(s);
}

static void on_timer(evutil_socket_t fd, short what, void *ud) {
  (void)fd;
  (void)what;
  server_t *s = ud;
  int running;
  curl_multi_socket_action(s->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  check_done(s);
}

static int socket_cb(CURL *e, curl_socket_t fd, int what, void *ud, void *sockp) {
  (void)e;
  server_t *s = ud;
  struct event *ev = sockp;
  if (what == CURL_POLL_REMOVE) {
    if (ev) event_free(ev);
    curl_multi_assign(s->multi, fd, NULL);
    return 0;
  }
  short kind = (short)(((what & CURL_POLL_IN) ? EV_READ : 0) | ((what & CURL_POLL_OUT) ? EV_WRITE : 0) | EV_PERSIST);
  if (ev) {
    event_del(ev);
    event_assign(ev, s->base, fd, kind, on_socket, s);
  } else {
    ev = event_new(s->base, fd, kind, on_socket, s);
    if (!ev) return -1;
    curl_multi_assign(s->multi, fd, ev);
  }
  event_add(ev, NULL);
  return 0;
}

static int timer_cb(CURLM *m, long ms, void *ud) {
  (void)m;
  server_t *s = ud;
  if (ms < 0) {
    evtimer_del(s->timer_ev);
  } else {
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    evtimer_add(s->timer_ev, &tv);
  }
  return 0;
}

/* The connrt_loop http.c calls. */
static int loop_owns(connrt_loop *l, lua_State *L) {
  server_t *s = (server_t *)l;
  if (s->closed) return 0;
  lua_pushthread(L);
  task_t *t = task_of(s, L, -1);
  lua_pop(L, 1);
  return t != NULL && t->co == L;
}

static int loop_start(connrt_loop *l, lua_State *L, connrt_xfer *x) {
  server_t *s = (server_t *)l;
  lua_pushthread(L);
  task_t *t = task_of(s, L, -1);
  lua_pop(L, 1);
  x->loop = l;
  x->task = t;
  x->state = CONNRT_XFER_RUNNING;
  /* a task waits for one transfer at a time: only t->x points back at t (task_end clears
   * it), so no transfer collected later meets a task that is gone */
  if (t->x && t->x != x) t->x->task = NULL;
  t->x = x;
  if (x->abortable) {
    /* a client that closed its connection before its request goes out (a command that
     * gave up while this worker was stopped or busy, its request still in the socket's
     * buffer) has nothing sent for it: the transfer fails at once, as one stopped by the
     * watch does. Only a whole close (POLLHUP: a unix socket's peer gone) or a reset: a
     * client that shut down only its sending side may be reading yet, and is served as
     * before (its answer is logged as cut, as README says) */
    struct evhttp_connection *evcon = t && t->req ? evhttp_request_get_connection(t->req) : NULL;
    if (evcon && client_closed(evcon)) {
      xfer_stop(s, x, CURLE_ABORTED_BY_CALLBACK);
      schedule(t, WAKE_VALUE, CURLE_ABORTED_BY_CALLBACK);
      return 0;
    }
    watch_start(t);
  }
  return (int)curl_multi_add_handle(s->multi, x->easy);
}

static void loop_headers(connrt_loop *l, connrt_xfer *x) {
  (void)l;
  task_t *t = x->task;
  if (t && t->x == x) schedule(t, WAKE_VALUE, CONNRT_XFER_HEADERS_READY);
}

static void loop_drop(connrt_loop *l, connrt_xfer *x) {
  server_t *s = (server_t *)l;
  if (s->closed) return;
  xfer_stop(s, x, CURLE_ABORTED_BY_CALLBACK);
  task_t *t = x->task;
  if (t && t->x == x) t->x = NULL;
  x->task = NULL;
}

/* Every request: the Lua handler gets { method, target, headers = { {name, value}... },
 * body, unix } in a coroutine of its own and returns status, headers (an array of
 * {name, value}), body, for a streamed answer the transfer (the response's `stream`),
 * and optionally a function done(why), called once the answer has been written to the
 * client's connection (why nil) or could not be (why: the reason, as it was cut or the
 * client went away). */
static void on_request(struct evhttp_request *req, void *ud) {
  server_t *s = ud;
  s->inflight++;
  evhttp_request_set_on_complete_cb(req, on_complete, s);
  bound_input(s, req, 1);
  const char *m = method_name(evhttp_request_get_command(req));
  if (!m) {
    send_plain(s, req, 405, "usage", "{\"error\":\"usage\",\"message\":\"method not allowed\"}");
    return;
  }
  lua_State *L = s->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->handler_ref);
  task_t *t = task_new(s, req);
  lua_State *co = t->co;
  lua_createtable(co, 0, 5);
  lua_pushstring(co, m);
  lua_setfield(co, -2, "method");
  lua_pushstring(co, evhttp_request_get_uri(req));
  lua_setfield(co, -2, "target");
  lua_newtable(co);
  struct evkeyvalq *in = evhttp_request_get_input_headers(req);
  int i = 0;
  for (struct evkeyval *kv = in->tqh_first; kv; kv = kv->next.tqe_next) {
    lua_createtable(co, 2, 0);
    lua_pushstring(co, kv->key);
    lua_rawseti(co, -2, 1);
    lua_pushstring(co, kv->value);
    lua_rawseti(co, -2, 2);
    lua_rawseti(co, -2, ++i);
  }
  lua_setfield(co, -2, "headers");
  struct evbuffer *body = evhttp_request_get_input_buffer(req);
  size_t blen = evbuffer_get_length(body);
  if (blen > 0) {
    lua_pushlstring(co, (const char *)evbuffer_pullup(body, -1), blen);
    lua_setfield(co, -2, "body");
  }
  lua_pushboolean(co, s->is_unix);
  lua_setfield(co, -2, "unix");
  task_resume(t, 1);
}

/* --- answers evhttp writes itself ------------------------------------------------------ */

/* evhttp answers some requests without calling on_request: 413 for a body over
 * --max-body or a head over its limit, 400 for a malformed request, 501 for a method
 * not served. libevent 2.1 has no callback for them, so each client connection's
 * bufferevent is made here (evhttp_set_bevcb, the one evhttp would make) with a watch on
 * what is added to its output: an addition made while this file is not handing evhttp
 * an answer (s->sending) that begins with a status line is one of evhttp's own. The
 * status is noted and reported to Lua (on_refused) from the loop's top level, so that
 * each is logged and counted like every other answer. */
static void on_output(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *ud) {
  server_t *s = ud;
  if (s->sending || info->n_added < 13) return;
  /* the added bytes' beginning: peeked, since evbuffer_copyout_from refuses a buffer whose
   * start is frozen, as a socket bufferevent's output is between its writes */
  char line[32];
  size_t want = info->n_added < sizeof line ? info->n_added : sizeof line, got = 0;
  struct evbuffer_ptr at;
  struct evbuffer_iovec v[4];
  if (evbuffer_ptr_set(buf, &at, info->orig_size, EVBUFFER_PTR_SET) != 0) return;
  int k = evbuffer_peek(buf, (ev_ssize_t)want, &at, v, 4);
  for (int i = 0; i < k && i < 4 && got < want; i++) {
    size_t c = v[i].iov_len < want - got ? v[i].iov_len : want - got;
    memcpy(line + got, v[i].iov_base, c);
    got += c;
  }
  /* "HTTP/<version> NNN ": evhttp_make_header adds the status line on its own, with the
   * version as the client wrote it (any digits, a sign: "HTTP/1.10", "HTTP/1.-1") */
  if (got < 13 || memcmp(line, "HTTP/", 5) != 0) return;
  size_t sp = 5;
  while (sp < got && line[sp] != ' ') sp++;
  if (sp + 5 > got || line[sp + 4] != ' ') return;
  int status = 0;
  for (size_t i = sp + 1; i < sp + 4; i++) {
    if (line[i] < '0' || line[i] > '9') return;
    status = status * 10 + (line[i] - '0');
  }
  if (status < 200 || status >= 200 + REFUSED_CODES) return; /* 100 Continue is not an answer */
  s->refused[status - 200]++;
  if (s->refused_ev) event_active(s->refused_ev, 0, 0);
}

/* --- requests that take too long to arrive ----------------------------------------- */

/* evhttp's timeout (--idle) starts again at every read, so a client that sends its
 * request a byte at a time, each within it, would hold its connection (and a descriptor)
 * for ever: one local user could take every descriptor a worker has, and on TCP without
 * the key. So a request must arrive whole within --idle seconds of its first byte (one
 * that comes while no request of the connection is handled or answered); else the
 * connection is closed as evhttp closes an idle one (its timeout event) and reported as
 * refused with 408 (nothing is answered). A connection that sends nothing is evhttp's
 * idle timeout's, as before. Each client connection is kept in a list that
 * holds a reference to its bufferevent: evhttp's free only drops evhttp's reference and
 * clears the callbacks (the event callback, which evhttp never clears on a connection it
 * keeps: the read callback it does, while it writes), which the sweep (every SWEEP_MS)
 * sees; it then takes its input watch off and drops this reference, which closes the
 * socket. No entry ever points at freed memory, nor a watch at a freed entry. */
#define SWEEP_MS 100

struct conn {
  server_t *s;
  struct bufferevent *bev;
  struct evbuffer_cb_entry *watch; /* on_input, on its input */
  double since; /* when the first byte of its next request came */
  int busy;     /* a request of it is handled or answered */
  int partial;  /* bytes of a next request have come */
  conn_t *next;
};

static double mono_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void conn_busy(server_t *s, struct bufferevent *bev, int busy) {
  for (conn_t *c = s->conns; c; c = c->next) {
    if (c->bev != bev) continue;
    c->busy = busy;
    c->partial = 0;
    return;
  }
}

/* Drops the connections evhttp has freed; closes those that were given --idle seconds
 * for a whole request and did not send one. `all`: drops every one (the server ends). */
static void sweep(server_t *s, int all) {
  double now = mono_now();
  for (conn_t **at = &s->conns; *at;) {
    conn_t *c = *at;
    bufferevent_event_cb eventcb = NULL;
    bufferevent_getcb(c->bev, NULL, NULL, &eventcb, NULL);
    if (all || !eventcb) {
      *at = c->next;
      if (c->watch) evbuffer_remove_cb_entry(bufferevent_get_input(c->bev), c->watch);
      bufferevent_decref(c->bev);
      free(c);
      continue;
    }
    if (c->partial && !c->busy && !s->stopping && now - c->since > s->idle) {
      c->partial = 0;
      s->refused[408 - 200]++;
      if (s->refused_ev) event_active(s->refused_ev, 0, 0);
      bufferevent_trigger_event(c->bev, BEV_EVENT_READING | BEV_EVENT_TIMEOUT, 0);
    }
    at = &c->next;
  }
}

static void on_sweep(evutil_socket_t fd, short what, void *ud) {
  (void)fd;
  (void)what;
  sweep(ud, 0);
}

/* Bytes came from a client: the first of a request not yet handled starts its clock. */
static void on_input(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *ud) {
  conn_t *c = ud;
  if (info->n_added == 0) return;
  bufferevent_event_cb eventcb = NULL;
  bufferevent_getcb(c->bev, NULL, NULL, &eventcb, NULL);
  if (!eventcb) {
    /* evhttp has freed it, and a freed bufferevent still reads: not one more byte is kept
     * (a client sending without end after a 413 grew a worker by megabytes), and the
     * sweep drops it at once */
    bufferevent_disable(c->bev, EV_READ);
    evbuffer_drain(buf, evbuffer_get_length(buf));
    if (c->s->sweep_ev) event_active(c->s->sweep_ev, EV_TIMEOUT, 0);
    return;
  }
  if (c->busy || c->partial) return;
  c->partial = 1;
  c->since = mono_now();
}

static struct bufferevent *make_bev(struct event_base *base, void *ud) {
  server_t *s = ud;
  struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
  if (!bev) return NULL;
  evbuffer_add_cb(bufferevent_get_output(bev), on_output, ud);
  conn_t *c = calloc(1, sizeof *c);
  if (c) { /* untracked (out of memory): evhttp's own timeout only */
    bufferevent_incref(bev);
    c->s = s;
    c->bev = bev;
    c->next = s->conns;
    s->conns = c;
    c->watch = evbuffer_add_cb(bufferevent_get_input(bev), on_input, c);
  }
  return bev;
}

static void on_refused(evutil_socket_t fd, short what, void *ud) {
  (void)fd;
  (void)what;
  server_t *s = ud;
  lua_State *L = s->L;
  for (int i = 0; i < REFUSED_CODES; i++) {
    unsigned n = s->refused[i];
    s->refused[i] = 0;
    if (n == 0 || s->refused_ref == LUA_NOREF) continue;
    int top = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->refused_ref);
    lua_pushinteger(L, 200 + i);
    lua_pushinteger(L, (lua_Integer)n);
    if (lua_pcall(L, 2, 0, 0) != LUA_OK)
      fprintf(stderr, "connrt proxy: internal error after a refused request: %s\n", lua_tostring(L, -1));
    lua_settop(L, top);
  }
}

static void on_term(evutil_socket_t sig, short what, void *ud) {
  (void)sig;
  (void)what;
  server_t *s = ud;
  if (s->stopping) return;
  s->stopping = 1;
  if (s->bound) evhttp_del_accept_socket(s->http, s->bound);
  s->bound = NULL;
  paused_listener = NULL; /* freed with the socket: never enabled again */
  if (s->accept_ev) event_del(s->accept_ev);
  if (s->tick_ev) event_del(s->tick_ev);
  struct timeval grace = { STOP_GRACE_S, 0 };
  event_base_loopexit(s->base, &grace);
  maybe_finish(s);
}

static void call_ref(server_t *s, int ref, const char *what) {
  if (ref == LUA_NOREF) return;
  lua_State *L = s->L;
  int top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
  if (lua_pcall(L, 0, 0, 0) != LUA_OK)
    fprintf(stderr, "connrt proxy: internal error in %s: %s\n", what, lua_tostring(L, -1));
  lua_settop(L, top);
}

static void on_hup(evutil_socket_t sig, short what, void *ud) {
  (void)sig;
  (void)what;
  server_t *s = ud;
  call_ref(s, s->hup_ref, "SIGHUP");
}

static void on_tick(evutil_socket_t fd, short what, void *ud) {
  (void)fd;
  (void)what;
  server_t *s = ud;
  if (s->tick_task || s->tick_ref == LUA_NOREF) return; /* the last one still runs */
  lua_rawgeti(s->L, LUA_REGISTRYINDEX, s->tick_ref);
  task_t *t = task_new(s, NULL);
  s->tick_task = t;
  task_resume(t, 0);
}

static server_t *running_server(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, CONNRT_LOOP_KEY);
  server_t *s = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return s && !s->closed ? s : NULL;
}

/* httpd.in_task() -> true when the running coroutine is one of the server's tasks (it
 * may wait with coroutine.yield() for an httpd.wake). */
static int httpd_in_task(lua_State *L) {
  server_t *s = running_server(L);
  lua_pushboolean(L, s && lua_isyieldable(L) && loop_owns(&s->loop, L));
  return 1;
}

/* httpd.wake(co): resumes the task co (waiting in coroutine.yield()) from the loop, once
 * the running Lua code is done. */
static int httpd_wake(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTHREAD);
  server_t *s = running_server(L);
  task_t *t = s ? task_of(s, L, 1) : NULL;
  if (t) schedule(t, WAKE_RESUME, 0);
  lua_pushboolean(L, t != NULL);
  return 1;
}

static int opt_number(lua_State *L, int idx, const char *field, lua_Number dflt, lua_Number *out) {
  int t = lua_getfield(L, idx, field);
  *out = t == LUA_TNIL ? dflt : lua_tonumber(L, -1);
  lua_pop(L, 1);
  return t;
}

static int opt_ref(lua_State *L, int idx, const char *field) {
  if (lua_getfield(L, idx, field) == LUA_TFUNCTION) return luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pop(L, 1);
  return LUA_NOREF;
}

/* httpd.serve(fd, handler, opts): serves the listening socket fd in this process until
 * SIGTERM or SIGINT, calling handler(req) for each request (see on_request). opts:
 * unix (boolean: fd is a unix socket), max_body (bytes; more gets 413), max_headers
 * (bytes), idle (seconds a client may stay silent), tick (seconds) and on_tick
 * (function), on_hup (function), on_refused (function(status, n): n requests evhttp
 * answered itself with status, see on_output). Returns true when it stopped as asked. */
static int httpd_serve(lua_State *L) {
  int fd = (int)luaL_checkinteger(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_getfield(L, LUA_REGISTRYINDEX, CONNRT_LOOP_KEY);
  if (!lua_isnil(L, -1)) return luaL_error(L, "httpd.serve: this Lua state already serves");
  lua_pop(L, 1);
  /* static: a transfer's userdata collected after serve returns still asks it (closed) */
  static server_t server;
  server_t *s = &server;
  if (s->L && !s->closed) return luaL_error(L, "httpd.serve: this process already serves");
  memset(s, 0, sizeof *s);
  s->L = L;
  s->loop.owns = loop_owns;
  s->loop.start = loop_start;
  s->loop.headers = loop_headers;
  s->loop.drop = loop_drop;
  s->fd = fd;
  lua_getfield(L, 3, "unix");
  s->is_unix = lua_toboolean(L, -1);
  lua_pop(L, 1);
  lua_Number max_body, max_headers, idle, tick;
  opt_number(L, 3, "max_body", 10 * 1024 * 1024, &max_body);
  opt_number(L, 3, "max_headers", 64 * 1024, &max_headers);
  opt_number(L, 3, "idle", 60, &idle);
  s->idle = idle < 1 ? 1 : idle;
  opt_number(L, 3, "tick", 0, &tick);
  lua_pushvalue(L, 2);
  s->handler_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  s->tick_ref = opt_ref(L, 3, "on_tick");
  s->hup_ref = opt_ref(L, 3, "on_hup");
  s->refused_ref = opt_ref(L, 3, "on_refused");
  lua_newtable(L); /* tasks: coroutine -> its task */
  s->tasks_ref = luaL_ref(L, LUA_REGISTRYINDEX);

  /* epoll changes made while callbacks run are sent once, at the next wait: a request's
   * client socket and upstream socket change what they wait for several times in a row
   * (evhttp, libcurl), and each change was an epoll_ctl. (libevent's caveat for this flag,
   * descriptors cloned by dup(), does not apply: no watched descriptor is dup'ed.) */
  struct event_config *cfg = event_config_new();
  if (cfg) {
    event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    s->base = event_base_new_with_config(cfg);
    event_config_free(cfg);
  }
  if (!s->base) s->base = event_base_new();
  s->can_watch = s->base && (event_base_get_features(s->base) & EV_FEATURE_EARLY_CLOSE);
  s->http = s->base ? evhttp_new(s->base) : NULL;
  s->multi = s->http ? curl_multi_init() : NULL;
  s->timer_ev = s->multi ? evtimer_new(s->base, on_timer, s) : NULL;
  if (!s->timer_ev) {
    if (s->multi) curl_multi_cleanup(s->multi);
    if (s->http) evhttp_free(s->http);
    if (s->base) event_base_free(s->base);
    s->closed = 1;
    return luaL_error(L, "cannot start the HTTP server (libevent, libcurl)");
  }
  curl_multi_setopt(s->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
  curl_multi_setopt(s->multi, CURLMOPT_SOCKETDATA, s);
  curl_multi_setopt(s->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
  curl_multi_setopt(s->multi, CURLMOPT_TIMERDATA, s);
  /* idle upstream connections kept: libcurl's default is four per transfer on the loop at
   * the moment one ends, so after a burst most kept connections were closed as the last
   * answers came, and the next burst paid a TLS handshake for each */
  curl_multi_setopt(s->multi, CURLMOPT_MAXCONNECTS, (long)UPSTREAM_IDLE_MAX);
  evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
                                          EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
  evhttp_set_max_body_size(s->http, (ev_ssize_t)max_body);
  evhttp_set_max_headers_size(s->http, (ev_ssize_t)max_headers);
  evhttp_set_timeout(s->http, idle < 1 ? 1 : (int)idle);
  evhttp_set_gencb(s->http, on_request, s);
  /* an upstream answer without a Content-Type goes out without one (evhttp would add
   * "text/html; charset=ISO-8859-1") */
  evhttp_set_default_content_type(s->http, NULL);
  evhttp_set_bevcb(s->http, make_bev, s);
  s->bound = evhttp_accept_socket_with_handle(s->http, fd);
  if (!s->bound) {
    evtimer_del(s->timer_ev);
    event_free(s->timer_ev);
    curl_multi_cleanup(s->multi);
    evhttp_free(s->http);
    event_base_free(s->base);
    s->closed = 1;
    return luaL_error(L, "cannot serve the listening socket (libevent)");
  }
  raise_fd_limit();
  accept_resume_ev = evtimer_new(s->base, on_accept_resume, NULL);
  s->accept_ev = accept_resume_ev;
  evconnlistener_set_error_cb(evhttp_bound_socket_get_listener(s->bound), on_accept_error);
  lua_pushlightuserdata(L, &s->loop);
  lua_setfield(L, LUA_REGISTRYINDEX, CONNRT_LOOP_KEY);
  /* a client that leaves while its answer is written is an error on its connection, not
   * a signal that ends the worker with every other request in flight */
  signal(SIGPIPE, SIG_IGN);
  s->term_ev = evsignal_new(s->base, SIGTERM, on_term, s);
  s->int_ev = evsignal_new(s->base, SIGINT, on_term, s);
  s->hup_ev = evsignal_new(s->base, SIGHUP, on_hup, s);
  event_add(s->term_ev, NULL);
  event_add(s->int_ev, NULL);
  event_add(s->hup_ev, NULL);
  s->refused_ev = event_new(s->base, -1, 0, on_refused, s);
  s->sweep_ev = event_new(s->base, -1, EV_PERSIST, on_sweep, s);
  s->finish_ev = evtimer_new(s->base, on_finish, s);
  if (s->sweep_ev) {
    struct timeval every = { 0, SWEEP_MS * 1000 };
    event_add(s->sweep_ev, &every);
  }
  if (tick > 0 && s->tick_ref != LUA_NOREF) {
    s->tick_ev = event_new(s->base, -1, EV_PERSIST, on_tick, s);
    struct timeval tv = { (time_t)tick, (suseconds_t)((tick - (lua_Number)(time_t)tick) * 1e6) };
    event_add(s->tick_ev, &tv);
  }
  event_base_dispatch(s->base);
  on_refused(-1, 0, s); /* refusals noted since the last report, before the loop stopped */

  /* what is still in flight after the grace period is dropped: off the loop first, so
   * that nothing calls back into a task while evhttp and libcurl close */
  for (task_t *t = s->tasks; t; t = t->next) {
    watch_stop(t);
    if (t->x) xfer_stop(s, t->x, CURLE_ABORTED_BY_CALLBACK);
    if (t->req) {
      struct evhttp_connection *evcon = evhttp_request_get_connection(t->req);
      evhttp_request_set_on_complete_cb(t->req, NULL, NULL);
      if (evcon && t->streaming) evhttp_connection_set_closecb(evcon, NULL, NULL);
    }
  }
  s->closed = 1;
  lua_pushnil(L);
  lua_setfield(L, LUA_REGISTRYINDEX, CONNRT_LOOP_KEY);
  while (s->tasks) {
    task_t *t = s->tasks;
    s->tasks = t->next;
    if (t->x) t->x->task = NULL;
    luaL_unref(L, LUA_REGISTRYINDEX, t->co_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, t->done_ref);
    if (t->wake) event_free(t->wake);
    if (t->watch) event_free(t->watch);
    if (t->chunk) evbuffer_free(t->chunk);
    free(t);
  }
  paused_listener = NULL;
  evhttp_free(s->http);
  sweep(s, 1); /* the connections evhttp has just freed, and closed */
  if (s->sweep_ev) event_free(s->sweep_ev);
  if (s->finish_ev) event_free(s->finish_ev);
  curl_multi_cleanup(s->multi);
  event_free(s->timer_ev);
  if (s->accept_ev) event_free(s->accept_ev);
  accept_resume_ev = NULL;
  event_free(s->term_ev);
  event_free(s->int_ev);
  event_free(s->hup_ev);
  if (s->refused_ev) event_free(s->refused_ev);
  if (s->tick_ev) event_free(s->tick_ev);
  event_base_free(s->base);
  luaL_unref(L, LUA_REGISTRYINDEX, s->handler_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, s->tick_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, s->hup_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, s->refused_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, s->tasks_ref);
  lua_pushboolean(L, s->stopping);
  return 1;
}

/* --- shared memory for the workers' metrics ---------------------------------------- */

/* Slots written by one process each and read by any: a sequence number (odd while a
 * write is under way) before each slot's length and bytes, so a reader never takes a
 * torn slot. */
typedef struct {
  char *mem;
  size_t slots, size;
} shm_t;

typedef struct {
  uint64_t seq;
  uint32_t len;
} slot_head_t;

/* httpd.shm(slots, bytes) -> block. Made before the workers are forked: they share it. */
static int httpd_shm(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1), size = luaL_checkinteger(L, 2);
  luaL_argcheck(L, n >= 1 && n <= 1024, 1, "1 to 1024 slots");
  luaL_argcheck(L, size >= 64 && size <= (1 << 20), 2, "64 bytes to 1 MiB a slot");
  shm_t *s = lua_newuserdatauv(L, sizeof *s, 0);
  s->slots = (size_t)n;
  s->size = (size_t)size + sizeof(slot_head_t);
  s->mem = mmap(NULL, s->slots * s->size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (s->mem == MAP_FAILED) {
    s->mem = NULL;
    return luaL_error(L, "cannot map shared memory: %s", strerror(errno));
  }
  luaL_setmetatable(L, SHM_MT);
  return 1;
}

static slot_head_t *slot_at(lua_State *L, shm_t **out) {
  shm_t *s = luaL_checkudata(L, 1, SHM_MT);
  lua_Integer i = luaL_checkinteger(L, 2);
  luaL_argcheck(L, s->mem && i >= 1 && (size_t)i <= s->slots, 2, "no such slot");
  *out = s;
  return (slot_head_t *)(s->mem + (size_t)(i - 1) * s->size);
}

/* block:put(i, bytes): false when bytes do not fit */
static int shm_put(lua_State *L) {
  shm_t *s;
  slot_head_t *h = slot_at(L, &s);
  size_t len;
  const char *data = luaL_checklstring(L, 3, &len);
  if (len > s->size - sizeof *h) {
    lua_pushboolean(L, 0);
    return 1;
  }
  uint64_t seq = __atomic_load_n(&h->seq, __ATOMIC_RELAXED);
  seq += seq & 1; /* odd: its last writer died mid-write (this one took its place) */
  __atomic_store_n(&h->seq, seq + 1, __ATOMIC_RELEASE);
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  memcpy((char *)(h + 1), data, len);
  h->len = (uint32_t)len;
  __atomic_store_n(&h->seq, seq + 2, __ATOMIC_RELEASE);
  lua_pushboolean(L, 1);
  return 1;
}

/* block:get(i) -> bytes | nil (never written, or busy) */
static int shm_get(lua_State *L) {
  shm_t *s;
  slot_head_t *h = slot_at(L, &s);
  char *copy = malloc(s->size);
  if (!copy) return luaL_error(L, "out of memory");
  for (int tries = 0; tries < 1000; tries++) {
    uint64_t a = __atomic_load_n(&h->seq, __ATOMIC_ACQUIRE);
    if (a == 0) break;
    if (a & 1) continue;
    uint32_t len = h->len;
    if (len > s->size - sizeof *h) continue;
    memcpy(copy, (char *)(h + 1), len);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (__atomic_load_n(&h->seq, __ATOMIC_ACQUIRE) == a) {
      lua_pushlstring(L, copy, len);
      free(copy);
      return 1;
    }
  }
  free(copy);
  lua_pushnil(L);
  return 1;
}

static const luaL_Reg shm_methods[] = {
  { "put", shm_put },
  { "get", shm_get },
  { NULL, NULL }
};

/* httpd.sleep(seconds): the running task waits that long, in coroutine.yield(), while
 * the loop serves the others; only from a task (httpd.in_task()). */
static int httpd_sleep(lua_State *L) {
  lua_Number secs = luaL_checknumber(L, 1);
  server_t *s = running_server(L);
  lua_pushthread(L);
  task_t *t = s && lua_isyieldable(L) ? task_of(s, L, -1) : NULL;
  lua_pop(L, 1);
  if (!t || t->co != L) return luaL_error(L, "httpd.sleep: not in one of the server's tasks");
  if (secs < 0) secs = 0;
  struct timeval tv = { (time_t)secs, (suseconds_t)((secs - (lua_Number)(time_t)secs) * 1e6) };
  t->wake_what = WAKE_RESUME;
  event_add(t->wake, &tv);
  return lua_yield(L, 0);
}

static const luaL_Reg httpd_funcs[] = {
  { "listen_unix", httpd_listen_unix },
  { "listen_tcp", httpd_listen_tcp },
  { "serve", httpd_serve },
  { "in_task", httpd_in_task },
  { "wake", httpd_wake },
  { "sleep", httpd_sleep },
  { "shm", httpd_shm },
  { NULL, NULL }
};

int luaopen_connrt_httpd(lua_State *L) {
  if (luaL_newmetatable(L, SHM_MT)) {
    luaL_newlib(L, shm_methods);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  luaL_newlib(L, httpd_funcs);
  return 1;
}
