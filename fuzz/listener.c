/*
 * listener.c - libFuzzer harness for the redirect listener's request head parser.
 *
 * Includes src/api/listener.c to reach its static functions. Input: one byte that sets
 * how the client's bytes arrive (in chunks of 1 to 128 bytes, or all at once), then the
 * bytes a client sends. They go through the listener's own read path, as l:accept takes
 * them: a socketpair stands in for the accepted connection, conn_read gathers the head
 * and push_request parses it into a request. Checks:
 *   - a request comes exactly when the bytes up to the first blank line (within
 *     HEAD_MAX) parse with parse_head on their own, with the same fields; otherwise the
 *     client is answered 400 (malformed, or closed early), 431 (no blank line within
 *     HEAD_MAX bytes) or, having sent nothing, not at all;
 *   - the fields are well formed: the method a token, the target visible ASCII and
 *     path "?" query, header names lowercase tokens, values without control characters
 *     or surrounding blanks;
 *   - the connection's descriptor is closed at the end (nothing leaks).
 * Memory errors are AddressSanitizer's and UndefinedBehaviorSanitizer's to find.
 */
#include "../src/api/listener.c"

#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>

#include <lualib.h>

static lua_State *L;

static void check(int cond, const char *what) {
  if (!cond) {
    fprintf(stderr, "fuzz listener: %s\n", what);
    abort();
  }
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  L = luaL_newstate();
  check(L != NULL, "cannot create a Lua state");
  luaL_openlibs(L);
  luaL_requiref(L, "connrt.listener", luaopen_connrt_listener, 0); /* the metatables */
  lua_pop(L, 1);
  return 0;
}

/* The end of the head (just past the first blank line) within buf[0..n), else 0: a
 * plain scan, to compare conn_read's incremental search with. */
static size_t ref_head_end(const uint8_t *buf, size_t n) {
  for (size_t i = 0; i + 1 < n; i++) {
    if (buf[i] != '\n') continue;
    if (buf[i + 1] == '\n') return i + 2;
    if (i + 2 < n && buf[i + 1] == '\r' && buf[i + 2] == '\n') return i + 3;
  }
  return 0;
}

static int is_lower_token(const char *s, size_t n) {
  if (n == 0) return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (!is_tchar(c) || (c >= 'A' && c <= 'Z')) return 0;
  }
  return 1;
}

static const char *field(lua_State *l, int t, const char *k, size_t *len) {
  lua_getfield(l, t, k);
  check(lua_type(l, -1) == LUA_TSTRING, "a request field is not a string");
  const char *s = lua_tolstring(l, -1, len);
  lua_pop(l, 1); /* still referenced by the table */
  return s;
}

/* The fields table at index t is well formed. */
static void check_fields(lua_State *l, int t) {
  size_t ml, tl, pl, ql, rl;
  const char *m = field(l, t, "method", &ml);
  const char *target = field(l, t, "target", &tl);
  const char *path = field(l, t, "path", &pl);
  const char *query = field(l, t, "query", &ql);
  field(l, t, "peer", &rl);
  check(ml > 0, "an empty method");
  for (size_t i = 0; i < ml; i++) check(is_tchar((unsigned char)m[i]), "a method that is not a token");
  check(tl > 0, "an empty target");
  for (size_t i = 0; i < tl; i++) {
    unsigned char c = (unsigned char)target[i];
    check(c > 0x20 && c < 0x7f, "a target with a blank, control or non-ASCII byte");
  }
  check(memchr(path, '?', pl) == NULL, "a path with '?'");
  check(pl + (pl < tl ? 1 + ql : 0) == tl && memcmp(target, path, pl) == 0 &&
        (pl == tl || (target[pl] == '?' && memcmp(target + pl + 1, query, ql) == 0)),
        "target is not path ? query");
  lua_getfield(l, t, "headers");
  check(lua_type(l, -1) == LUA_TTABLE, "headers is not a table");
  lua_pushnil(l);
  while (lua_next(l, -2)) {
    size_t nl, vl;
    check(lua_type(l, -2) == LUA_TSTRING && lua_type(l, -1) == LUA_TSTRING, "a header that is not a string");
    const char *name = lua_tolstring(l, -2, &nl);
    const char *value = lua_tolstring(l, -1, &vl);
    check(is_lower_token(name, nl), "a header name that is not a lowercase token");
    for (size_t i = 0; i < vl; i++) {
      unsigned char c = (unsigned char)value[i];
      check(!((c < 0x20 && c != '\t') || c == 0x7f), "a header value with a control character");
    }
    check(vl == 0 || (value[0] != ' ' && value[0] != '\t' && value[vl - 1] != ' ' && value[vl - 1] != '\t'),
          "a header value with surrounding blanks");
    lua_pop(l, 1);
  }
  lua_pop(l, 1);
}

/* The tables at a and b hold the same fields and headers. */
static void check_same(lua_State *l, int a, int b) {
  static const char *const keys[] = { "method", "target", "path", "query", "peer" };
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
    lua_getfield(l, a, keys[i]);
    lua_getfield(l, b, keys[i]);
    check(lua_rawequal(l, -1, -2), "the request differs from the head parsed at once");
    lua_pop(l, 2);
  }
  lua_getfield(l, a, "headers");
  lua_getfield(l, b, "headers");
  int ha = lua_gettop(l) - 1, hb = ha + 1;
  check(lua_rawlen(l, ha) == 0 && lua_rawlen(l, hb) == 0, "headers with array entries");
  for (int pass = 0; pass < 2; pass++) {
    int from = pass ? hb : ha, to = pass ? ha : hb;
    lua_pushnil(l);
    while (lua_next(l, from)) {
      lua_pushvalue(l, -2);
      lua_rawget(l, to);
      check(lua_rawequal(l, -1, -2), "the request's headers differ from the head parsed at once");
      lua_pop(l, 2);
    }
  }
  lua_pop(l, 2);
}

/* The status of the answer the client got (0: none), from its end of the socketpair. */
static int answer_status(int fd) {
  char buf[64];
  ssize_t n = recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT);
  if (n <= 0) return 0;
  buf[n] = '\0';
  int status = 0;
  check(sscanf(buf, "HTTP/1.1 %d ", &status) == 1, "an answer without a status line");
  return status;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  size_t chunk = data[0] < 128 ? (size_t)data[0] + 1 : (size_t)-1;
  data++;
  size--;
  if (size > 4 * HEAD_MAX) return 0; /* more than the listener ever reads */

  /* what should happen, from the bytes as a whole */
  size_t limit = size < HEAD_MAX ? size : HEAD_MAX;
  size_t end = ref_head_end(data, limit);
  lua_settop(L, 0);
  int want_request = 0;
  if (end) {
    char *copy = malloc(end);
    check(copy != NULL, "out of memory");
    memcpy(copy, data, end);
    want_request = parse_head(L, copy, end, "fuzz");
    free(copy);
    if (want_request) check_fields(L, 1);
  }
  int want_status = want_request ? 0 : end ? 400 : size >= HEAD_MAX ? 431 : size > 0 ? 400 : 0;

  /* what does happen, through the listener's read path */
  int sv[2];
  check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
  Conn *c = calloc(1, sizeof *c); /* on the heap, so a read past buf is caught */
  check(c != NULL, "out of memory");
  c->fd = sv[0];
  c->state = READING;
  c->deadline = now() + READ_SECONDS;
  snprintf(c->peer, sizeof c->peer, "fuzz");
  size_t off = 0, got_end = 0;
  int got_request = 0, closed = 0;
  while (c->state == READING) {
    if (off < size) {
      size_t n = size - off < chunk ? size - off : chunk;
      ssize_t w = send(sv[1], data + off, n, MSG_NOSIGNAL);
      check(w > 0, "cannot write to the socketpair");
      off += (size_t)w;
    } else if (!closed) {
      shutdown(sv[1], SHUT_WR);
      closed = 1;
    } else {
      check(0, "the connection is still reading after the client closed");
    }
    got_end = conn_read(c);
    if (got_end) {
      check(got_end == end, "conn_read found another end of the head");
      got_request = push_request(L, c, got_end);
      break;
    }
  }
  check(got_request == want_request, want_request ? "no request from a well-formed head"
                                                   : "a request from a malformed head");
  if (got_request) {
    int rq = lua_gettop(L);
    check(c->state == FREE && c->fd < 0, "the connection kept its descriptor");
    lua_getiuservalue(L, rq, 1);
    check_fields(L, rq + 1);
    check_same(L, 1, rq + 1);
    lua_pop(L, 1);
    lua_pushcfunction(L, req_close);
    lua_pushvalue(L, rq);
    lua_call(L, 1, 0);
  }
  check(answer_status(sv[1]) == want_status, "the client got another answer than expected");
  conn_close(c);
  check(fcntl(sv[0], F_GETFD) == -1, "the connection's descriptor is still open");
  close(sv[1]);
  free(c);
  lua_settop(L, 0);
  return 0;
}
