/*
 * listener_evhttp.c - the redirect listener (the `connrt.listener` module of
 * src/api/listener.c, same Lua API) rebuilt on libevent's evhttp, as issue 17 asked to
 * try. It is not part of connrt: bench/listener-evhttp.sh builds a connrt binary and a
 * module with it instead of src/api/listener.c and runs the listener's specs and a few
 * measurements against both, to show which of the listener's guarantees libevent 2.1
 * (Debian 12's) can keep. The answer (bench/listener-evhttp.md) is why
 * src/api/listener.c stays hand-written.
 *
 * What it does, as far as evhttp 2.1 lets it: one event base per listener; l:accept
 * runs the loop until evhttp hands a complete request to the general callback (or the
 * time is up); req:respond queues the answer with evhttp_send_reply, which the loop
 * writes (l:accept's next call while the listener waits, respond itself once it is
 * closed). The limits are evhttp's: evhttp_set_max_headers_size(16384) and
 * evhttp_set_timeout(5). What evhttp does not check (the target visible ASCII, header
 * names tokens, values free of control characters) the general callback checks, and
 * answers 400 with the listener's own text. A connection evhttp closes after an answer
 * is dup()ed in its close callback and drained here, as listener.c lingers, so a client
 * that left data unread still gets the whole answer.
 *
 * What it cannot do on evhttp 2.1 (no evhttp_set_errorcb or evhttp_set_max_connections
 * before 2.2): choose the answer to what evhttp refuses itself (an oversized head gets
 * evhttp's "400 Bad Request" HTML page, not 431), answer a connection that timed out
 * (evhttp closes it without a word, not 408), put a deadline on the whole head (its
 * timeout is per read, so a client sending a byte every few seconds keeps its
 * connection), refuse obsolete line folding (evhttp joins the lines), or cap the
 * connections it reads at once (out of descriptors, its listener spins on EMFILE).
 * Measured in bench/listener-evhttp.md.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "api.h"

#define LISTENER_MT "connrt.listener"
#define REQUEST_MT "connrt.listener.request"

#define BACKLOG 16
#define HEAD_MAX 16384
#define READ_SECONDS 5
#define WRITE_SECONDS 5.0
#define LINGER_SECONDS 1.0
#define LINGER_BYTES (1 << 20)
#define QUEUE_MAX 64
#define ADDR_MAX (INET6_ADDRSTRLEN + 8)

typedef struct Server Server;

/* a descriptor dup()ed from a connection evhttp closed, drained until its client closes */
typedef struct Linger {
  Server *s;
  int fd;
  size_t dropped;
  struct event *ev;
  LIST_ENTRY(Linger) next;
} Linger;

/* the event base and evhttp, shared by the listener and the requests it handed out: it
 * is freed when the listener is closed and no request holds it */
struct Server {
  struct event_base *base;
  struct evhttp *http;
  struct evhttp_bound_socket *bound;
  int closed;             /* the listener was closed: accepts no more */
  int holders;            /* requests handed out and not yet answered or dropped */
  int writing;            /* answered connections evhttp has not closed yet */
  struct evhttp_request *queue[QUEUE_MAX];
  int queued;
  LIST_HEAD(, Linger) lingering;
};

typedef struct {
  Server *s;
  char where[ADDR_MAX];
} Listener;

typedef struct {
  Server *s;
  struct evhttp_request *req; /* NULL once answered or dropped (evhttp keeps it while
                                 it waits for an answer: reading is off meanwhile) */
  int answered;
  char peer[ADDR_MAX];
} Request;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct timeval tv_of(double s) {
  if (s < 0) s = 0;
  struct timeval tv = { (time_t)s, (suseconds_t)((s - (double)(time_t)s) * 1e6) };
  return tv;
}

static void server_free(Server *s) {
  Linger *g;
  while ((g = LIST_FIRST(&s->lingering)) != NULL) {
    LIST_REMOVE(g, next);
    event_free(g->ev);
    close(g->fd);
    free(g);
  }
  if (s->http) evhttp_free(s->http);
  if (s->base) event_base_free(s->base);
  free(s);
}

static void server_release(Server *s) {
  if (s->closed && s->holders <= 0) server_free(s);
}

/* ---- lingering ---- */

static void linger_end(Linger *g) {
  LIST_REMOVE(g, next);
  event_free(g->ev);
  close(g->fd);
  free(g);
}

static void on_linger(evutil_socket_t fd, short what, void *arg) {
  Linger *g = arg;
  if (what & EV_TIMEOUT) {
    linger_end(g);
    return;
  }
  char sink[4096];
  for (;;) {
    ssize_t n = recv(fd, sink, sizeof sink, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0) break;
    g->dropped += (size_t)n;
    if (g->dropped >= LINGER_BYTES) break;
  }
  linger_end(g);
}

/* evhttp is about to close a connection: keep a duplicate of its descriptor and drain
 * it, so the close does not reset a connection with unread input (and lose the answer) */
static void on_conn_close(struct evhttp_connection *evcon, void *arg) {
  Server *s = arg;
  if (s->writing > 0) s->writing--;
  struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
  int fd = bev ? bufferevent_getfd(bev) : -1;
  if (fd < 0) return;
  /* what is still in the output buffer is lost anyway: evhttp frees it */
  int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (d < 0) return;
  shutdown(d, SHUT_WR);
  Linger *g = calloc(1, sizeof *g);
  if (!g) {
    close(d);
    return;
  }
  g->s = s;
  g->fd = d;
  g->ev = event_new(s->base, d, EV_READ | EV_PERSIST, on_linger, g);
  if (!g->ev) {
    close(d);
    free(g);
    return;
  }
  struct timeval tv = tv_of(LINGER_SECONDS);
  event_add(g->ev, &tv);
  LIST_INSERT_HEAD(&s->lingering, g, next);
}

/* ---- requests from evhttp ---- */

static int is_tchar(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* what evhttp 2.1 lets through and listener.c refuses */
static int well_formed(struct evhttp_request *req) {
  for (const unsigned char *p = (const unsigned char *)evhttp_request_get_uri(req); *p; p++) {
    if (*p <= 0x20 || *p >= 0x7f) return 0;
  }
  struct evkeyvalq *h = evhttp_request_get_input_headers(req);
  for (struct evkeyval *kv = h->tqh_first; kv; kv = kv->next.tqe_next) {
    if (!*kv->key) return 0;
    for (const unsigned char *p = (const unsigned char *)kv->key; *p; p++) {
      if (!is_tchar(*p)) return 0;
    }
    for (const unsigned char *p = (const unsigned char *)kv->value; *p; p++) {
      if ((*p < 0x20 && *p != '\t') || *p == 0x7f) return 0;
    }
  }
  return 1;
}

static void reply_text(Server *s, struct evhttp_request *req, int status, const char *reason, const char *text) {
  struct evkeyvalq *out = evhttp_request_get_output_headers(req);
  evhttp_add_header(out, "Content-Type", "text/plain; charset=utf-8");
  evhttp_add_header(out, "Connection", "close");
  struct evbuffer *b = evbuffer_new();
  if (b) evbuffer_add(b, text, strlen(text));
  s->writing++;
  evhttp_send_reply(req, status, reason, b);
  if (b) evbuffer_free(b);
}

static void on_request(struct evhttp_request *req, void *arg) {
  Server *s = arg;
  evhttp_connection_set_closecb(evhttp_request_get_connection(req), on_conn_close, s);
  if (!well_formed(req)) {
    reply_text(s, req, 400, "Bad Request", "Malformed request.\n");
    return;
  }
  if (s->queued == QUEUE_MAX) {
    reply_text(s, req, 503, "Service Unavailable", "Too many requests at once.\n");
    return;
  }
  s->queue[s->queued++] = req;
  event_base_loopbreak(s->base);
}

/* ---- the listener ---- */

static void format_addr(const struct sockaddr_storage *ss, char *out, size_t cap) {
  char ip[INET6_ADDRSTRLEN] = "?";
  if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
    inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
    snprintf(out, cap, "[%s]:%u", ip, (unsigned)ntohs(a->sin6_port));
  } else {
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
    snprintf(out, cap, "%s:%u", ip, (unsigned)ntohs(a->sin_port));
  }
}

static Listener *check_listener(lua_State *L) {
  Listener *l = luaL_checkudata(L, 1, LISTENER_MT);
  if (!l->s || l->s->closed) luaL_error(L, "listener: closed");
  return l;
}

static int l_open(lua_State *L) {
  const char *host = luaL_checkstring(L, 1);
  lua_Integer port = luaL_checkinteger(L, 2);
  luaL_argcheck(L, port >= 0 && port <= 65535, 2, "port out of range");
  Listener *l = lua_newuserdatauv(L, sizeof *l, 0);
  l->s = NULL;
  luaL_setmetatable(L, LISTENER_MT);

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
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
      (ss.ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0) ||
      bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, BACKLOG) < 0) {
    int e = errno;
    if (fd >= 0) close(fd);
    lua_pushnil(L);
    lua_pushfstring(L, "cannot listen on %s: %s", l->where, strerror(e));
    lua_pushstring(L, e == EADDRINUSE ? "in_use" : "not_completed");
    return 3;
  }
  sl = sizeof ss;
  if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) format_addr(&ss, l->where, sizeof l->where);

  Server *s = calloc(1, sizeof *s);
  if (!s) {
    close(fd);
    return luaL_error(L, "listener: out of memory");
  }
  LIST_INIT(&s->lingering);
  s->base = event_base_new();
  s->http = s->base ? evhttp_new(s->base) : NULL;
  if (!s->http) {
    close(fd);
    server_free(s);
    return luaL_error(L, "listener: cannot start libevent");
  }
  evhttp_set_max_headers_size(s->http, HEAD_MAX);
  evhttp_set_max_body_size(s->http, 0);
  evhttp_set_timeout(s->http, READ_SECONDS);
  evhttp_set_default_content_type(s->http, NULL);
  evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
                                          EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
                                          EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
  evhttp_set_gencb(s->http, on_request, s);
  s->bound = evhttp_accept_socket_with_handle(s->http, fd);
  if (!s->bound) {
    close(fd);
    server_free(s);
    return luaL_error(L, "listener: cannot accept on %s", l->where);
  }
  l->s = s;
  return 1;
}

static int l_port(lua_State *L) {
  Listener *l = check_listener(L);
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (getsockname(evhttp_bound_socket_get_fd(l->s->bound), (struct sockaddr *)&ss, &sl) < 0) {
    return luaL_error(L, "listener: cannot get the port of %s: %s", l->where, strerror(errno));
  }
  unsigned port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                           : ntohs(((struct sockaddr_in *)&ss)->sin_port);
  lua_pushinteger(L, (lua_Integer)port);
  return 1;
}

static const char *method_name(enum evhttp_cmd_type t) {
  switch (t) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_HEAD: return "HEAD";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_DELETE: return "DELETE";
    case EVHTTP_REQ_OPTIONS: return "OPTIONS";
    case EVHTTP_REQ_TRACE: return "TRACE";
    case EVHTTP_REQ_CONNECT: return "CONNECT";
    case EVHTTP_REQ_PATCH: return "PATCH";
  }
  return "?";
}

/* pushes a request userdata for the queued evhttp request, its fields in its uservalue */
static int push_request(lua_State *L, Server *s, struct evhttp_request *req) {
  Request *rq = lua_newuserdatauv(L, sizeof *rq, 2);
  memset(rq, 0, sizeof *rq);
  luaL_setmetatable(L, REQUEST_MT);
  rq->s = s;
  rq->req = req;
  s->holders++;
  char *addr = NULL;
  ev_uint16_t port = 0;
  evhttp_connection_get_peer(evhttp_request_get_connection(req), &addr, &port);
  if (addr && strchr(addr, ':')) snprintf(rq->peer, sizeof rq->peer, "[%s]:%u", addr, (unsigned)port);
  else snprintf(rq->peer, sizeof rq->peer, "%s:%u", addr ? addr : "?", (unsigned)port);

  lua_createtable(L, 0, 6);
  const char *target = evhttp_request_get_uri(req);
  const char *q = strchr(target, '?');
  lua_pushstring(L, method_name(evhttp_request_get_command(req)));
  lua_setfield(L, -2, "method");
  lua_pushstring(L, target);
  lua_setfield(L, -2, "target");
  lua_pushlstring(L, target, q ? (size_t)(q - target) : strlen(target));
  lua_setfield(L, -2, "path");
  lua_pushstring(L, q ? q + 1 : "");
  lua_setfield(L, -2, "query");
  lua_newtable(L);
  struct evkeyvalq *h = evhttp_request_get_input_headers(req);
  for (struct evkeyval *kv = h->tqh_first; kv; kv = kv->next.tqe_next) {
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (const char *p = kv->key; *p; p++) luaL_addchar(&b, (*p >= 'A' && *p <= 'Z') ? (char)(*p - 'A' + 'a') : *p);
    luaL_pushresult(&b);
    lua_pushvalue(L, -1);
    const char *v = kv->value;
    size_t vlen = strlen(v);
    while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t')) vlen--;
    int had = lua_rawget(L, -3) == LUA_TSTRING && lua_rawlen(L, -1) > 0;
    if (had && vlen) {
      lua_pushliteral(L, ", ");
      lua_pushlstring(L, v, vlen);
      lua_concat(L, 3);
    } else if (!had) {
      lua_pop(L, 1);
      lua_pushlstring(L, v, vlen);
    }
    lua_rawset(L, -3);
  }
  lua_setfield(L, -2, "headers");
  lua_pushstring(L, rq->peer);
  lua_setfield(L, -2, "peer");
  lua_setiuservalue(L, -2, 1);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 2);
  return 1;
}

static void on_deadline(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  event_base_loopbreak(arg);
}

static int l_accept(lua_State *L) {
  Listener *l = check_listener(L);
  Server *s = l->s;
  lua_Number t = luaL_checknumber(L, 2);
  if (!(t > 0)) t = 0;
  if (t > 1e8) t = 1e8;
  double deadline = now() + t;
  struct event *timer = evtimer_new(s->base, on_deadline, s->base);
  if (!timer) return luaL_error(L, "listener: out of memory");
  while (s->queued == 0) {
    double left = deadline - now();
    if (left <= 0) {
      /* poll once, as listener.c does with a zero timeout */
      event_base_loop(s->base, EVLOOP_NONBLOCK);
      break;
    }
    struct timeval tv = tv_of(left);
    evtimer_add(timer, &tv);
    if (event_base_loop(s->base, EVLOOP_ONCE) < 0) {
      event_free(timer);
      return luaL_error(L, "listener: cannot wait on %s", l->where);
    }
    evtimer_del(timer);
  }
  event_free(timer);
  if (s->queued == 0) {
    lua_pushnil(L);
    lua_pushliteral(L, "timeout");
    return 2;
  }
  struct evhttp_request *req = s->queue[0];
  memmove(s->queue, s->queue + 1, (size_t)(--s->queued) * sizeof s->queue[0]);
  return push_request(L, s, req);
}

static int l_close(lua_State *L) {
  Listener *l = luaL_checkudata(L, 1, LISTENER_MT);
  Server *s = l->s;
  if (!s || s->closed) return 0;
  s->closed = 1;
  if (s->bound) evhttp_del_accept_socket(s->http, s->bound);
  s->bound = NULL;
  /* requests taken but not handed out: drop their connections */
  for (int i = 0; i < s->queued; i++) {
    struct evhttp_connection *c = evhttp_request_get_connection(s->queue[i]);
    evhttp_connection_set_closecb(c, NULL, NULL);
    evhttp_connection_free(c);
  }
  s->queued = 0;
  server_release(s);
  l->s = NULL;
  return 0;
}

/* ---- requests ---- */

static const char *reason(lua_Integer status) {
  switch (status) {
    case 200: return "OK";
    case 302: return "Found";
    case 303: return "See Other";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 500: return "Internal Server Error";
    default: return "";
  }
}

/* runs the loop until the answered connections are written and drained, or the time is up */
static void flush(Server *s, double deadline) {
  struct event *timer = evtimer_new(s->base, on_deadline, s->base);
  while (timer && now() < deadline &&
         (s->writing > 0 || !LIST_EMPTY(&s->lingering))) {
    struct timeval tv = tv_of(deadline - now());
    evtimer_add(timer, &tv);
    event_base_loop(s->base, EVLOOP_ONCE);
    evtimer_del(timer);
  }
  if (timer) event_free(timer);
}

static int req_respond(lua_State *L) {
  Request *rq = luaL_checkudata(L, 1, REQUEST_MT);
  lua_Integer status = luaL_checkinteger(L, 2);
  luaL_argcheck(L, status >= 100 && status <= 999, 2, "status must be 100..999");
  size_t blen;
  const char *body = luaL_optlstring(L, 4, "", &blen);
  if (rq->answered) return luaL_error(L, "listener: the request from %s was already answered", rq->peer);
  if (!rq->req) return luaL_error(L, "listener: the request from %s is closed", rq->peer);
  if (!lua_isnoneornil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, 3)) {
      if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "listener: respond: header names must be strings");
      const char *name = lua_tostring(L, -2);
      int vt = lua_type(L, -1);
      if (vt != LUA_TSTRING && vt != LUA_TNUMBER)
        luaL_error(L, "listener: respond: header %s: value must be a string, not %s", name, lua_typename(L, vt));
      size_t nlen = strlen(name), vlen;
      const char *value = lua_tolstring(L, -1, &vlen);
      if (nlen == 0) luaL_error(L, "listener: respond: empty header name");
      for (size_t i = 0; i < nlen; i++)
        if (!is_tchar((unsigned char)name[i])) luaL_error(L, "listener: respond: bad header name %s", name);
      if (strcasecmp(name, "content-length") == 0 || strcasecmp(name, "connection") == 0 ||
          strcasecmp(name, "transfer-encoding") == 0)
        luaL_error(L, "listener: respond: header %s is set by the listener", name);
      for (size_t i = 0; i < vlen; i++) {
        unsigned char c = (unsigned char)value[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
          luaL_error(L, "listener: respond: header %s: control character in value", name);
      }
      lua_pop(L, 1);
    }
  }
  Server *s = rq->s;
  rq->answered = 1;
  struct evhttp_request *req = rq->req;
  rq->req = NULL;
  struct evkeyvalq *out = evhttp_request_get_output_headers(req);
  if (!lua_isnoneornil(L, 3)) {
    lua_pushnil(L);
    while (lua_next(L, 3)) {
      evhttp_add_header(out, lua_tostring(L, -2), lua_tostring(L, -1));
      lua_pop(L, 1);
    }
  }
  evhttp_add_header(out, "Connection", "close");
  struct evbuffer *b = evbuffer_new();
  if (b) evbuffer_add(b, body, blen);
  s->writing++;
  evhttp_send_reply(req, (int)status, reason(status), b);
  if (b) evbuffer_free(b);
  s->holders--;
  if (!s->closed) {
    /* write what the socket takes now; l:accept's loop writes the rest */
    for (int i = 0; i < 4 && s->writing > 0; i++) event_base_loop(s->base, EVLOOP_NONBLOCK);
  } else {
    /* nobody runs the loop any more: write and drain here */
    flush(s, now() + WRITE_SECONDS + LINGER_SECONDS);
    server_release(s);
  }
  lua_pushboolean(L, 1);
  return 1;
}

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

static int req_close(lua_State *L) {
  Request *rq = luaL_checkudata(L, 1, REQUEST_MT);
  if (rq->answered) return 0;
  rq->answered = 1;
  if (rq->req) {
    struct evhttp_connection *c = evhttp_request_get_connection(rq->req);
    evhttp_connection_set_closecb(c, NULL, NULL);
    evhttp_connection_free(c);
  }
  rq->req = NULL;
  rq->s->holders--;
  server_release(rq->s);
  return 0;
}

static const luaL_Reg listener_methods[] = {
  { "port", l_port }, { "accept", l_accept }, { "close", l_close }, { NULL, NULL }
};
static const luaL_Reg request_methods[] = { { "respond", req_respond }, { NULL, NULL } };
static const luaL_Reg listener_meta[] = { { "__gc", l_close }, { "__close", l_close }, { NULL, NULL } };
static const luaL_Reg request_meta[] = { { "__gc", req_close }, { "__close", req_close }, { NULL, NULL } };
static const luaL_Reg listener_funcs[] = { { "open", l_open }, { NULL, NULL } };

int luaopen_connrt_listener(lua_State *L) {
  connrt_class(L, LISTENER_MT, listener_meta, listener_methods);
  connrt_class(L, REQUEST_MT, request_meta, NULL);
  luaL_getmetatable(L, REQUEST_MT);
  luaL_newlib(L, request_methods);
  lua_pushcclosure(L, req_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_newlib(L, listener_funcs);
  return 1;
}
