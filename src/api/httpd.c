/*
 * httpd.c - the HTTP server under `connrt proxy`, on libevent's evhttp (Debian's
 * libevent-dev): listening sockets, one server loop per worker process, and a shared
 * memory block the workers publish their metrics in.
 *
 * evhttp parses requests (keep-alive, chunked bodies, limits on header and body sizes:
 * an oversized body gets 413 from evhttp itself, before our handler sees anything) and
 * writes responses; everything a request means is decided in Lua (lua/connrt/proxy.lua),
 * called synchronously for each complete request. A worker handles one request at a
 * time, which is what lets its Lua state, its store handle and the connector hooks run
 * without locks; concurrency comes from several worker processes sharing one listening
 * socket: a worker busy with a slow upstream is not waiting to accept, so new clients go
 * to idle ones. (Connections a worker accepted in the same burst as a slow request wait
 * for it: libevent 2.1 accepts every pending connection at once.)
 *
 * SIGTERM (or SIGINT) stops a worker from accepting; it leaves once the responses it
 * owes are written (at most 30 s later). SIGHUP calls the Lua function given for it.
 *
 * Opens the `connrt.httpd` module. Loaded only by `connrt proxy` (a lazily loaded
 * shared object of the binary, like connrt.http), so no other command loads libevent.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

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

/* httpd.listen_tcp(host, port) -> fd, port | nil, message. host: an IPv4 or IPv6
 * address literal; port 0 picks a free one. */
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
    return 2;
  }
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  int one = 1;
  if (fd < 0) goto fail;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
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

/* --- the server loop --------------------------------------------------------------- */

typedef struct {
  lua_State *L;
  struct event_base *base;
  struct evhttp *http;
  struct evhttp_bound_socket *bound;
  struct event *term_ev, *int_ev, *hup_ev, *tick_ev;
  int fd, is_unix, stopping;
  long inflight;
  int handler_ref, tick_ref, hup_ref;
} server_t;

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

static void maybe_finish(server_t *s) {
  if (s->stopping && s->inflight <= 0) event_base_loopbreak(s->base);
}

static void on_complete(struct evhttp_request *req, void *ud) {
  (void)req;
  server_t *s = ud;
  s->inflight--;
  maybe_finish(s);
}

/* Sends a plain JSON error without asking Lua (the handler failed). */
static void send_plain(struct evhttp_request *req, int status, const char *json) {
  struct evbuffer *b = evbuffer_new();
  evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
  if (b) evbuffer_add(b, json, strlen(json));
  evhttp_send_reply(req, status, reason(status), b);
  if (b) evbuffer_free(b);
}

/* Every request: the Lua handler gets { method, target, headers = { {name, value}... },
 * body, peer } and returns status, headers (an array of {name, value}), body. */
static void on_request(struct evhttp_request *req, void *ud) {
  server_t *s = ud;
  lua_State *L = s->L;
  s->inflight++;
  evhttp_request_set_on_complete_cb(req, on_complete, s);
  const char *m = method_name(evhttp_request_get_command(req));
  if (!m) {
    send_plain(req, 405, "{\"error\":\"method\",\"message\":\"method not allowed\"}");
    return;
  }
  int top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->handler_ref);
  lua_createtable(L, 0, 5);
  lua_pushstring(L, m);
  lua_setfield(L, -2, "method");
  lua_pushstring(L, evhttp_request_get_uri(req));
  lua_setfield(L, -2, "target");
  lua_newtable(L);
  struct evkeyvalq *in = evhttp_request_get_input_headers(req);
  int i = 0;
  for (struct evkeyval *kv = in->tqh_first; kv; kv = kv->next.tqe_next) {
    lua_createtable(L, 2, 0);
    lua_pushstring(L, kv->key);
    lua_rawseti(L, -2, 1);
    lua_pushstring(L, kv->value);
    lua_rawseti(L, -2, 2);
    lua_rawseti(L, -2, ++i);
  }
  lua_setfield(L, -2, "headers");
  struct evbuffer *body = evhttp_request_get_input_buffer(req);
  size_t blen = evbuffer_get_length(body);
  if (blen > 0) {
    lua_pushlstring(L, (const char *)evbuffer_pullup(body, -1), blen);
    lua_setfield(L, -2, "body");
  }
  lua_pushboolean(L, s->is_unix);
  lua_setfield(L, -2, "unix");
  if (lua_pcall(L, 1, 3, 0) != LUA_OK) {
    fprintf(stderr, "connrt proxy: internal error: %s\n", lua_tostring(L, -1));
    lua_settop(L, top);
    send_plain(req, 500, "{\"error\":\"internal\",\"message\":\"internal error in the proxy\"}");
    return;
  }
  int status = (int)luaL_optinteger(L, top + 1, 500);
  struct evkeyvalq *out = evhttp_request_get_output_headers(req);
  if (lua_istable(L, top + 2)) {
    lua_Integer n = luaL_len(L, top + 2);
    for (lua_Integer k = 1; k <= n; k++) {
      lua_rawgeti(L, top + 2, k);
      lua_rawgeti(L, -1, 1);
      lua_rawgeti(L, -2, 2);
      const char *name = lua_tostring(L, -2), *value = lua_tostring(L, -1);
      /* evhttp refuses a value with CR or LF; nothing else is needed here */
      if (name && value) evhttp_add_header(out, name, value);
      lua_pop(L, 3);
    }
  }
  struct evbuffer *b = evbuffer_new();
  size_t rlen = 0;
  const char *rbody = lua_tolstring(L, top + 3, &rlen);
  if (b && rbody && rlen) evbuffer_add(b, rbody, rlen);
  evhttp_send_reply(req, status, reason(status), b);
  if (b) evbuffer_free(b);
  lua_settop(L, top);
}

static void on_term(evutil_socket_t sig, short what, void *ud) {
  (void)sig;
  (void)what;
  server_t *s = ud;
  if (s->stopping) return;
  s->stopping = 1;
  if (s->bound) evhttp_del_accept_socket(s->http, s->bound);
  s->bound = NULL;
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
  call_ref(s, s->tick_ref, "the background tick");
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
 * (function), on_hup (function). Returns true when it stopped as asked. */
static int httpd_serve(lua_State *L) {
  int fd = (int)luaL_checkinteger(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  luaL_checktype(L, 3, LUA_TTABLE);
  server_t s;
  memset(&s, 0, sizeof s);
  s.L = L;
  s.fd = fd;
  lua_getfield(L, 3, "unix");
  s.is_unix = lua_toboolean(L, -1);
  lua_pop(L, 1);
  lua_Number max_body, max_headers, idle, tick;
  opt_number(L, 3, "max_body", 10 * 1024 * 1024, &max_body);
  opt_number(L, 3, "max_headers", 64 * 1024, &max_headers);
  opt_number(L, 3, "idle", 60, &idle);
  opt_number(L, 3, "tick", 0, &tick);
  lua_pushvalue(L, 2);
  s.handler_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  s.tick_ref = opt_ref(L, 3, "on_tick");
  s.hup_ref = opt_ref(L, 3, "on_hup");

  s.base = event_base_new();
  s.http = s.base ? evhttp_new(s.base) : NULL;
  if (!s.http) {
    if (s.base) event_base_free(s.base);
    return luaL_error(L, "cannot start the HTTP server (libevent)");
  }
  evhttp_set_allowed_methods(s.http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
                                         EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
  evhttp_set_max_body_size(s.http, (ev_ssize_t)max_body);
  evhttp_set_max_headers_size(s.http, (ev_ssize_t)max_headers);
  evhttp_set_timeout(s.http, idle < 1 ? 1 : (int)idle);
  evhttp_set_gencb(s.http, on_request, &s);
  s.bound = evhttp_accept_socket_with_handle(s.http, fd);
  if (!s.bound) {
    evhttp_free(s.http);
    event_base_free(s.base);
    return luaL_error(L, "cannot serve the listening socket (libevent)");
  }
  s.term_ev = evsignal_new(s.base, SIGTERM, on_term, &s);
  s.int_ev = evsignal_new(s.base, SIGINT, on_term, &s);
  s.hup_ev = evsignal_new(s.base, SIGHUP, on_hup, &s);
  event_add(s.term_ev, NULL);
  event_add(s.int_ev, NULL);
  event_add(s.hup_ev, NULL);
  if (tick > 0 && s.tick_ref != LUA_NOREF) {
    s.tick_ev = event_new(s.base, -1, EV_PERSIST, on_tick, &s);
    struct timeval tv = { (time_t)tick, (suseconds_t)((tick - (lua_Number)(time_t)tick) * 1e6) };
    event_add(s.tick_ev, &tv);
  }
  event_base_dispatch(s.base);

  evhttp_free(s.http);
  event_free(s.term_ev);
  event_free(s.int_ev);
  event_free(s.hup_ev);
  if (s.tick_ev) event_free(s.tick_ev);
  event_base_free(s.base);
  luaL_unref(L, LUA_REGISTRYINDEX, s.handler_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, s.tick_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, s.hup_ref);
  lua_pushboolean(L, s.stopping);
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

static const luaL_Reg httpd_funcs[] = {
  { "listen_unix", httpd_listen_unix },
  { "listen_tcp", httpd_listen_tcp },
  { "serve", httpd_serve },
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
