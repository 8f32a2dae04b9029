/*
 * pg.c - PostgreSQL connections on libpq, and nothing else: the store's PostgreSQL
 * backend (issue 16) builds its records, fencing and single flight in Lua on this small
 * interface, as lua/connrt/store.lua does on connrt.lmdb.
 *
 * pg.connect(conninfo) -> conn | nil, message, reason, sqlstate. conninfo is anything
 * libpq takes: a postgres:// or postgresql:// URI, a key=value string, a bare database
 * name or "" (then the PG* environment variables, ~/.pgpass, sslmode, sslrootcert ...
 * work as libpq reads them). Defaults go in before the string, so the string and the
 * environment override them: connect_timeout 10 s, fallback_application_name connrt,
 * client_encoding UTF8, TCP keepalives after 30 s and a 60 s TCP user timeout (a server
 * that vanished without a reset is noticed instead of waited on for hours).
 *
 * conn:exec(sql, ...) runs one statement with parameters $1..$n: strings (sent as
 * unknown, the server infers their type), integers (int8), floats (float8), booleans,
 * nil (NULL) and pg.bytea(s) (bytes, sent in binary). It returns, for a statement with
 * a result (SELECT, ... RETURNING), an array of rows, each a table keyed by column name
 * with int2/int4/int8/oid as integers, float4/float8 as numbers, bool as booleans, bytea
 * as raw bytes, every other type as its text and NULL as an absent key; for any other
 * statement, the number of rows it affected (0 where it has none). Failures return nil,
 * message, reason, sqlstate; wrong arguments, a closed connection and a result with two
 * columns of one name (give them names with AS) are programmer errors and raise.
 *
 * conn:fetch(sql, ...) is conn:exec with the rows sent in binary: bytea comes as it is
 * (in text it comes in hex, twice its size, to be decoded), for columns of bool, bytea,
 * int2/int4/int8/oid, float4/float8 and the text types; any other type raises.
 *
 * Round trips: conn:defer(sql) keeps a statement (no parameters) to send just before
 * the next exec or fetch, in the same round trip (libpq's pipeline mode, a Sync after
 * each statement so each runs as if sent alone); the first failure among them is that
 * exec's failure. conn:undefer(sql) takes the last deferred statement back if it is sql
 * and unsent. conn:send(sql) sends one now without waiting for its answer (the next
 * exec reads it). The store defers BEGIN and sends a read-only transaction's COMMIT, so
 * a lookup costs one round trip, not three; connect defers its settings (below). A
 * pipeline that ends without all its answers (the connection broke) leaves the
 * connection unusable: every later exec fails as unreachable.
 *
 * Reasons a program can test: "unreachable" (cannot connect, connection lost, server
 * shutting down or starting), "auth", "locked" (lock timeout, deadlock, serialization
 * failure: try again), "schema" (missing table or column, bad SQL), "damaged" (data
 * corruption), "tls", "other". They come from the SQLSTATE and the connection status,
 * never from message text, which the server translates into its own language; see
 * connect_reason for the one place libpq gives no SQLSTATE.
 *
 * A statement never waits forever: on connect, lock_timeout (10 s: the store holds no
 * lock across network I/O, so a longer wait means a stuck client), statement_timeout
 * (30 s: its statements take milliseconds; this only catches a hang) and
 * idle_in_transaction_session_timeout (60 s: a client stopped inside a transaction
 * gives its locks back) are set where the server would otherwise wait without end (the
 * setting is 0), so a role's or database's own setting, PGOPTIONS or options= win; the
 * statement that sets them is deferred to the first exec.
 *
 * The password never appears in a message: libpq quotes connection strings, or parts of
 * them, in some of its messages, so every message this module returns has each spelling
 * of the password (as written in the string, decoded, percent-encoded, quoted; 4 bytes
 * or longer, as lua/connrt/log.lua hides secrets) replaced,
 * the password from PGPASSWORD and ~/.pgpass too; and when the string cannot be parsed,
 * every quoted part of the message that comes from the string is hidden as well.
 *
 * Lifetimes: libpq's results, parsed options and messages live in boxes whose __gc
 * frees them, so a Lua error (out of memory) in the middle of reading one leaks nothing.
 *
 * Opens the `connrt.pg` module.
 */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "api.h"

#define CONN_MT  "connrt.pg.conn"
#define BOX_MT   "connrt.pg.box"
#define BYTEA_MT "connrt.pg.bytea"

#define DEFAULT_CONNECT_TIMEOUT "10"
#define MAX_PARAMS 65535 /* the protocol's limit */
#define REDACTED "[redacted]"

/* uservalues of a connection */
#define CONN_SECRETS 1 /* set: every spelling of the password -> true */
#define CONN_DESC 2    /* "host:port/dbname as user" */
#define CONN_QUEUE 3   /* array: statements deferred to the next exec (conn:defer) */
#define MAX_DEFERRED 8

typedef struct {
  PGconn *pg;  /* NULL once closed */
  int unread;  /* statements sent (conn:send) whose answers are still to be read */
  int lost;    /* a pipeline ended before all its answers came: unusable */
} Conn;

/* Something libpq allocated, freed by __gc unless taken back first */
typedef struct {
  void *p;
  void (*free)(void *);
} Box;

static void free_result(void *p) { PQclear(p); }
static void free_options(void *p) { PQconninfoFree(p); }
static void free_mem(void *p) { PQfreemem(p); }

static Box *new_box(lua_State *L, void (*free)(void *)) {
  Box *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->p = NULL;
  b->free = free;
  luaL_setmetatable(L, BOX_MT);
  return b;
}

static int box_gc(lua_State *L) {
  Box *b = luaL_checkudata(L, 1, BOX_MT);
  if (b->p) b->free(b->p);
  b->p = NULL;
  return 0;
}

/* ---- the password, in every spelling ---- */

static int unreserved(unsigned char ch) {
  return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
         ch == '-' || ch == '.' || ch == '_' || ch == '~';
}

static void set_add(lua_State *L, int set, const char *s, size_t n) {
  if (n == 0) return;
  lua_pushlstring(L, s, n);
  lua_pushboolean(L, 1);
  lua_rawset(L, set);
}

/* Percent-encoded: all bytes or only reserved ones, upper or lower hex, space as + or %20 */
static void add_encoded(lua_State *L, int set, const char *s, size_t n, int all, int lower, int plus) {
  const char *hex = lower ? "0123456789abcdef" : "0123456789ABCDEF";
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (plus && ch == ' ') {
      luaL_addchar(&b, '+');
    } else if (!all && unreserved(ch)) {
      luaL_addchar(&b, (char)ch);
    } else {
      luaL_addchar(&b, '%');
      luaL_addchar(&b, hex[ch >> 4]);
      luaL_addchar(&b, hex[ch & 15]);
    }
  }
  luaL_pushresult(&b);
  lua_pushboolean(L, 1);
  lua_rawset(L, set);
}

/* s quoted: each of ' and \ preceded by `esc` (a key=value string, an E'' literal) or,
 * when esc is '\'', ' doubled (an SQL literal, which the server quotes back in errors) */
static void add_quoted(lua_State *L, int set, const char *s, size_t n, char esc) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '\'' || (s[i] == '\\' && esc == '\\')) luaL_addchar(&b, esc);
    luaL_addchar(&b, s[i]);
  }
  luaL_pushresult(&b);
  lua_pushboolean(L, 1);
  lua_rawset(L, set);
}

/* Registers a password: as it is, percent-encoded every way, and quoted for a key=value
 * string or SQL. Not below 4 bytes, the rule of log.secret (lua/connrt/log.lua): shorter
 * ones are too common to hide, and would cut words of every message to pieces. */
#define MIN_SECRET 4

static void add_secret(lua_State *L, int set, const char *s, size_t n) {
  if (n < MIN_SECRET) return;
  set_add(L, set, s, n);
  for (int all = 0; all <= 1; all++)
    for (int lower = 0; lower <= 1; lower++) add_encoded(L, set, s, n, all, lower, 0);
  add_encoded(L, set, s, n, 0, 0, 1);
  add_quoted(L, set, s, n, '\\');
  add_quoted(L, set, s, n, '\'');
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Registers a password component of a URI as written and, when it decodes, decoded. */
static void add_uri_secret(lua_State *L, int set, const char *s, size_t n) {
  add_secret(L, set, s, n);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (size_t i = 0; i < n; i++) {
    if (s[i] != '%') {
      luaL_addchar(&b, s[i]);
    } else if (i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
      luaL_addchar(&b, (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2])));
      i += 2;
    } else {
      luaL_pushresult(&b); /* does not decode: the as-written spelling is registered */
      lua_pop(L, 1);
      return;
    }
  }
  luaL_pushresult(&b);
  size_t dn;
  const char *d = lua_tolstring(L, -1, &dn);
  add_secret(L, set, d, dn);
  lua_pop(L, 1);
}

/* Whether [s, s+n) percent-decodes to `word` */
static int uri_word_is(const char *s, size_t n, const char *word) {
  size_t w = 0, wn = strlen(word);
  for (size_t i = 0; i < n; i++, w++) {
    char ch = s[i];
    if (ch == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
      ch = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
      i += 2;
    }
    if (w >= wn || ch != word[w]) return 0;
  }
  return w == wn;
}

static int is_secret_keyword(const char *k, size_t n, int uri) {
  if (uri) return uri_word_is(k, n, "password") || uri_word_is(k, n, "sslpassword");
  return (n == 8 && memcmp(k, "password", 8) == 0) || (n == 11 && memcmp(k, "sslpassword", 11) == 0);
}

static int is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static size_t uri_prefix(const char *s) {
  if (strncmp(s, "postgresql://", 13) == 0) return 13;
  if (strncmp(s, "postgres://", 11) == 0) return 11;
  return 0;
}

/* Finds the passwords in a connection string by libpq's own rules, without needing it
 * to parse (a string libpq rejects is exactly one whose parts it may quote): in a URI
 * the userinfo after the first ':' up to the '@' met before any '/', and password= or
 * sslpassword= in its query; in a key=value string the values of those keywords, quoted
 * or not. Each as written and decoded. A URI whose password was pasted in without
 * percent-encoding its '@' or '/' is split elsewhere than its writer meant, and libpq
 * then quotes pieces of the password as a host or a port: so everything from the first
 * ':' to the last '@' counts as a password too, and when that differs from libpq's
 * reading the URI is ambiguous: returns 1 then (every quoted part of a message about it
 * is hidden), else 0. *has_password is set when the string holds a password, however
 * short (then a message about a string libpq rejects hides its quoted parts too). */
static int scan_conninfo(lua_State *L, int set, const char *ci, size_t n, int *has_password) {
  size_t pre = uri_prefix(ci);
  if (pre) {
    const char *start = ci + pre, *end = ci + n, *p = start, *last_at = NULL;
    for (const char *a = start; (a = memchr(a, '@', (size_t)(end - a))); a++) last_at = a;
    while (p < end && *p != '@' && *p != '/') p++;
    const char *rest = start;
    if (p < end && *p == '@') {
      const char *colon = memchr(start, ':', (size_t)(p - start));
      if (colon && p > colon + 1) {
        add_uri_secret(L, set, colon + 1, (size_t)(p - colon - 1));
        *has_password = 1;
      }
      rest = p + 1;
    }
    int ambiguous = 0;
    if (last_at && last_at != p) {
      const char *colon = memchr(start, ':', (size_t)(last_at - start));
      if (colon) add_secret(L, set, colon + 1, (size_t)(last_at - colon - 1));
      ambiguous = 1;
    }
    const char *q = memchr(rest, '?', (size_t)(end - rest));
    while (q && q < end) {
      const char *k = q + 1, *amp = memchr(k, '&', (size_t)(end - k));
      const char *pend = amp ? amp : end, *eq = memchr(k, '=', (size_t)(pend - k));
      if (eq && pend > eq + 1 && is_secret_keyword(k, (size_t)(eq - k), 1)) {
        add_uri_secret(L, set, eq + 1, (size_t)(pend - eq - 1));
        *has_password = 1;
      }
      q = amp;
    }
    return ambiguous;
  }
  const char *p = ci, *end = ci + n;
  while (p < end) {
    while (p < end && is_space(*p)) p++;
    const char *k = p;
    while (p < end && *p != '=' && !is_space(*p)) p++;
    size_t kn = (size_t)(p - k);
    while (p < end && is_space(*p)) p++;
    if (p >= end || *p != '=') {
      if (kn == 0) return 0;
      continue; /* libpq rejects this; go on looking for passwords after it */
    }
    p++;
    while (p < end && is_space(*p)) p++;
    int quoted = p < end && *p == '\'';
    if (quoted) p++;
    const char *v = p;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    while (p < end) {
      if (quoted ? *p == '\'' : is_space(*p)) break;
      if (*p == '\\' && p + 1 < end) p++;
      luaL_addchar(&b, *p);
      p++;
    }
    luaL_pushresult(&b);
    if (is_secret_keyword(k, kn, 0)) {
      size_t un;
      const char *u = lua_tolstring(L, -1, &un);
      add_secret(L, set, v, (size_t)(p - v));
      add_secret(L, set, u, un);
      if (p > v) *has_password = 1;
    }
    lua_pop(L, 1);
    if (quoted && p < end) p++;
  }
  return 0;
}

static int longest_first(const void *a, const void *b) {
  size_t x = ((const size_t *)a)[1], y = ((const size_t *)b)[1];
  return x < y ? 1 : x > y ? -1 : 0;
}

/* Pushes msg with every registered spelling replaced, longest first (so a spelling that
 * contains another is hidden whole), trailing newlines and spaces trimmed. With
 * hide_quoted (a string libpq could not parse, holding a password), every "quoted" part
 * of the message is hidden too: libpq quotes pieces of a string it rejects, and a piece
 * of a password (cut at a space, say) is no spelling of it. */
static void push_redacted(lua_State *L, int set, const char *msg, size_t n, int hide_quoted) {
  set = lua_absindex(L, set);
  while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' ')) n--;
  lua_pushlstring(L, msg, n);
  int cur = lua_gettop(L);
  size_t count = 0;
  lua_pushnil(L);
  while (lua_next(L, set)) {
    count++;
    lua_pop(L, 1);
  }
  if (count > 0) {
    /* pairs of (pointer, length); the strings stay alive as the set's keys */
    size_t *list = lua_newuserdatauv(L, sizeof(size_t) * 2 * count, 0);
    size_t i = 0;
    lua_pushnil(L);
    while (lua_next(L, set)) {
      size_t len;
      const char *s = lua_tolstring(L, -2, &len);
      list[2 * i] = (size_t)(uintptr_t)s;
      list[2 * i + 1] = len;
      i++;
      lua_pop(L, 1);
    }
    qsort(list, count, sizeof(size_t) * 2, longest_first);
    for (i = 0; i < count; i++) {
      const char *s = (const char *)(uintptr_t)list[2 * i];
      size_t sn = list[2 * i + 1], len;
      const char *text = lua_tolstring(L, cur, &len), *p = text, *end = text + len, *hit;
      if (!memmem(text, len, s, sn)) continue;
      luaL_Buffer b;
      luaL_buffinit(L, &b);
      while ((hit = memmem(p, (size_t)(end - p), s, sn))) {
        luaL_addlstring(&b, p, (size_t)(hit - p));
        luaL_addstring(&b, REDACTED);
        p = hit + sn;
      }
      luaL_addlstring(&b, p, (size_t)(end - p));
      luaL_pushresult(&b);
      lua_replace(L, cur);
    }
    lua_pop(L, 1); /* the list */
  }
  if (hide_quoted) {
    size_t len;
    const char *text = lua_tolstring(L, cur, &len), *p = text, *end = text + len;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    while (p < end) {
      const char *open = memchr(p, '"', (size_t)(end - p));
      const char *close = open ? memchr(open + 1, '"', (size_t)(end - open - 1)) : NULL;
      if (!close) break;
      luaL_addlstring(&b, p, (size_t)(open - p + 1));
      if (close > open + 1) luaL_addstring(&b, REDACTED);
      luaL_addchar(&b, '"');
      p = close + 1;
    }
    luaL_addlstring(&b, p, (size_t)(end - p));
    luaL_pushresult(&b);
    lua_replace(L, cur);
  }
}

/* ---- reasons ---- */

/* The reason for a SQLSTATE (class: its first two characters) */
static const char *sqlstate_reason(const char *st) {
  if (!st || strlen(st) != 5) return "other";
  if (strncmp(st, "08", 2) == 0) return "unreachable"; /* connection exception */
  if (strcmp(st, "57P01") == 0 || strcmp(st, "57P02") == 0 || strcmp(st, "57P03") == 0)
    return "unreachable"; /* admin shutdown, crash shutdown, cannot connect now */
  if (strncmp(st, "28", 2) == 0) return "auth"; /* invalid authorization specification */
  if (strcmp(st, "42501") == 0) return "auth";   /* insufficient privilege */
  if (strcmp(st, "55P03") == 0 || strcmp(st, "40P01") == 0 || strcmp(st, "40001") == 0)
    return "locked"; /* lock not available, deadlock, serialization failure */
  if (strncmp(st, "42", 2) == 0 || strcmp(st, "3F000") == 0)
    return "schema"; /* undefined table or column, syntax error ..., no such schema */
  if (strcmp(st, "XX001") == 0 || strcmp(st, "XX002") == 0) return "damaged"; /* data or index corrupted */
  return "other";
}

/* The last SQLSTATE in a connection failure's message. libpq gives a failed connection
 * attempt no result to ask PQresultErrorField, so connect asks for verbose messages,
 * where libpq writes each server error as "SEVERITY:  SQLSTATE: text": the code is
 * found by that shape (two spaces, five digits or capitals, a colon), not by words,
 * which the server writes in its own language. Copies it into st[6]; 0 when none. */
static int message_sqlstate(const char *msg, char st[6]) {
  int found = 0;
  for (const char *p = strstr(msg, ":  "); p; p = strstr(p + 1, ":  ")) {
    const char *c = p + 3;
    int i = 0;
    while (i < 5 && ((c[i] >= '0' && c[i] <= '9') || (c[i] >= 'A' && c[i] <= 'Z'))) i++; /* stops at the NUL */
    if (i == 5 && c[5] == ':' && c[6] == ' ') {
      memcpy(st, c, 5);
      st[5] = '\0';
      found = 1;
    }
  }
  return found;
}

/* Why a connection attempt failed. The server's SQLSTATE when it sent one (refused
 * password 28P01, no pg_hba.conf entry 28000, starting up or shutting down 57P03 ...).
 * Else what libpq knows without one, by state, not by message: a password the server
 * asked for and nobody supplied (PQconnectionNeedsPassword) is auth; failing while the
 * TCP connection was being made (refused, no route, timed out) is unreachable; failing while TLS (or GSSAPI encryption) was being negotiated
 * (certificate not trusted, host name mismatch, CA file missing, server without TLS
 * under sslmode=require) is tls; anything later (the server hung up during
 * authentication, or is not PostgreSQL) is other. `stage` is the last state the attempt
 * was seen in before it failed. */
static const char *connect_reason(PGconn *pg, const char *sqlstate, ConnStatusType stage, const char *msg) {
  if (sqlstate) return sqlstate_reason(sqlstate);
  if (PQconnectionNeedsPassword(pg)) return "auth";
  switch (stage) {
  case CONNECTION_BAD:
    /* Failed inside PQconnectStartParams, before anything went on the wire, where
     * libpq keeps no state to tell why: a host name that does not resolve, a unix
     * socket that is not there (unreachable), or a value it cannot use, such as
     * port=notaport or sslmode=bogus (other). Only here are libpq's words matched: its
     * own English ones (libpq translates its messages only where the program has set
     * LC_MESSAGES, which connrt does not; translated, they fall to "other"). "connection
     * to server" opens every message about an address it tried. */
    if (strstr(msg, "could not translate host name") || strncmp(msg, "connection to server ", 21) == 0)
      return "unreachable";
    return "other";
  case CONNECTION_NEEDED:
  case CONNECTION_STARTED:
  case CONNECTION_MADE:
    return "unreachable";
  case CONNECTION_SSL_STARTUP:
  case CONNECTION_GSS_STARTUP:
    return "tls";
  default:
    return "other";
  }
}

/* ---- connections ---- */

static void quiet_notices(void *arg, const char *message) {
  (void)arg;
  (void)message; /* notices ("table exists, skipping") are not ours to print */
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Drops the "LOCATION:  function, file.c:line" lines of a verbose message (they name
 * the server's source code, no help to a reader); the message is at the stack top. */
static void drop_location_lines(lua_State *L) {
  size_t n;
  const char *s = lua_tolstring(L, -1, &n), *p = s, *end = s + n;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *next = nl ? nl + 1 : end;
    if ((size_t)(end - p) < 11 || memcmp(p, "LOCATION:  ", 11) != 0) luaL_addlstring(&b, p, (size_t)(next - p));
    p = next;
  }
  luaL_pushresult(&b);
  lua_remove(L, -2);
}

static int parse_timeout(const char *s) {
  if (!s || !*s) return -1;
  char *end;
  long v = strtol(s, &end, 10);
  if (*end != '\0') return -1;
  if (v <= 0) return 0; /* libpq: wait without end */
  if (v < 2) return 2;  /* libpq: at least 2 s */
  return v > 86400 ? 86400 : (int)v;
}

static void push_describe(lua_State *L, PGconn *pg) {
  const char *host = PQhost(pg), *port = PQport(pg), *db = PQdb(pg), *user = PQuser(pg);
  lua_pushfstring(L, "%s:%s/%s as %s", host ? host : "", port ? port : "", db ? db : "", user ? user : "");
}

/* pg.connect failed: returns nil, message, reason, sqlstate (nil when there is none).
 * msg: libpq's message, redacted here. */
static int connect_failed(lua_State *L, int set, const char *msg, int hide_quoted, const char *reason,
                          const char *sqlstate) {
  lua_pushnil(L);
  push_redacted(L, set, msg, strlen(msg), hide_quoted);
  lua_pushstring(L, reason);
  if (sqlstate) lua_pushstring(L, sqlstate);
  else lua_pushnil(L);
  return 4;
}

static int exec_failed(lua_State *L, Conn *c, int conn_idx, PGresult *res);

#define SETUP_SQL "SELECT set_config(name, setting, false) FROM (VALUES " \
                  "('lock_timeout', '10s'), ('statement_timeout', '30s'), " \
                  "('idle_in_transaction_session_timeout', '60s')) AS d(name, setting) " \
                  "WHERE current_setting(name) = '0'"

/* pg.connect(conninfo) -> conn | nil, message, reason, sqlstate */
static int pg_connect(lua_State *L) {
  size_t cilen;
  const char *ci = luaL_checklstring(L, 1, &cilen);
  luaL_argcheck(L, strlen(ci) == cilen, 1, "a connection string cannot hold a zero byte");
  lua_settop(L, 1);
  lua_newtable(L);                                /* 2: the password's spellings */
  Conn *c = lua_newuserdatauv(L, sizeof *c, 3);   /* 3 */
  c->pg = NULL;
  c->unread = 0;
  c->lost = 0;
  luaL_setmetatable(L, CONN_MT);
  Box *opts = new_box(L, free_options);           /* 4 */
  Box *perr = new_box(L, free_mem);               /* 5 */

  int has_password = 0, ambiguous = scan_conninfo(L, 2, ci, cilen, &has_password);
  const char *env_pw = getenv("PGPASSWORD");
  if (env_pw) add_secret(L, 2, env_pw, strlen(env_pw));

  /* libpq expands the string when it is a URI or holds '=': else it is a database name */
  const char *timeout_s = getenv("PGCONNECT_TIMEOUT");
  if (uri_prefix(ci) || strchr(ci, '=')) {
    char *err = NULL;
    opts->p = PQconninfoParse(ci, &err);
    perr->p = err;
    if (!opts->p) {
      if (!err) return luaL_error(L, "pg: out of memory");
      lua_pushfstring(L, "invalid PostgreSQL connection string: %s", err);
      return connect_failed(L, 2, lua_tostring(L, -1), has_password || ambiguous, "other", NULL);
    }
    for (PQconninfoOption *o = opts->p; o->keyword; o++) {
      if (!o->val) continue;
      if (strcmp(o->keyword, "password") == 0 || strcmp(o->keyword, "sslpassword") == 0)
        add_secret(L, 2, o->val, strlen(o->val));
      if (strcmp(o->keyword, "connect_timeout") == 0) timeout_s = o->val;
    }
  }
  int timeout = parse_timeout(timeout_s);
  if (timeout < 0) timeout = atoi(DEFAULT_CONNECT_TIMEOUT);

  const char *kw[10], *val[10];
  int k = 0;
  if (!getenv("PGCONNECT_TIMEOUT")) kw[k] = "connect_timeout", val[k++] = DEFAULT_CONNECT_TIMEOUT;
  if (!getenv("PGCLIENTENCODING")) kw[k] = "client_encoding", val[k++] = "UTF8";
  kw[k] = "fallback_application_name", val[k++] = "connrt";
  kw[k] = "keepalives_idle", val[k++] = "30";
  kw[k] = "keepalives_interval", val[k++] = "10";
  kw[k] = "keepalives_count", val[k++] = "3";
  kw[k] = "tcp_user_timeout", val[k++] = "60000";
  kw[k] = "dbname", val[k++] = ci; /* last: what the string says wins */
  kw[k] = NULL, val[k] = NULL;

  /* Asynchronously, to ask for verbose messages before the server says anything (see
   * message_sqlstate) and to see how far an attempt got (see connect_reason). libpq
   * leaves connect_timeout to the caller here; as libpq does, it is counted afresh for
   * each host of a multi-host string. Unlike libpq, a host that does not answer in time
   * ends the attempt instead of passing on to the next host. */
  PGconn *pg = PQconnectStartParams(kw, val, 1);
  if (!pg) return luaL_error(L, "pg: out of memory");
  c->pg = pg;
  PQsetErrorVerbosity(pg, PQERRORS_VERBOSE);
  PQsetNoticeProcessor(pg, quiet_notices, NULL);
  ConnStatusType stage = PQstatus(pg);
  PostgresPollingStatusType ps = stage == CONNECTION_BAD ? PGRES_POLLING_FAILED : PGRES_POLLING_WRITING;
  const char *host = PQhost(pg), *port = PQport(pg);
  double deadline = now_s() + timeout;
  int timed_out = 0;
  while (ps != PGRES_POLLING_OK && ps != PGRES_POLLING_FAILED) {
    struct pollfd pfd = { PQsocket(pg), ps == PGRES_POLLING_READING ? POLLIN : POLLOUT, 0 };
    if (pfd.fd < 0) break;
    int wait_ms = -1;
    if (timeout > 0) {
      double left = deadline - now_s();
      if (left <= 0) {
        timed_out = 1;
        break;
      }
      wait_ms = (int)(left * 1000) + 1;
    }
    int r = poll(&pfd, 1, wait_ms);
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) continue; /* the deadline is checked above */
    ps = PQconnectPoll(pg);
    if (PQstatus(pg) != CONNECTION_BAD) stage = PQstatus(pg);
    if (PQhost(pg) != host || PQport(pg) != port) { /* on to the next host */
      host = PQhost(pg), port = PQport(pg);
      deadline = now_s() + timeout;
    }
  }
  const char *pw = PQpass(pg);
  if (pw) add_secret(L, 2, pw, strlen(pw));

  if (ps != PGRES_POLLING_OK) {
    char st[6];
    if (timed_out) {
      lua_pushfstring(L, "connection to server at \"%s\", port %s failed: timeout expired (connect_timeout %d s)",
                      host ? host : "", port ? port : "", timeout);
    } else {
      lua_pushstring(L, PQerrorMessage(pg));
      drop_location_lines(L);
    }
    const char *msg = lua_tostring(L, -1);
    int has_state = !timed_out && message_sqlstate(msg, st);
    const char *reason = timed_out ? "unreachable" : connect_reason(pg, has_state ? st : NULL, stage, msg);
    PQfinish(pg);
    c->pg = NULL;
    return connect_failed(L, 2, msg, ambiguous, reason, has_state ? st : NULL);
  }

  PQsetErrorVerbosity(pg, PQERRORS_DEFAULT);
  lua_pushvalue(L, 2);
  lua_setiuservalue(L, 3, CONN_SECRETS);
  push_describe(L, pg);
  lua_setiuservalue(L, 3, CONN_DESC);

  /* the timeouts (see the top comment): only where the server would wait without end;
   * deferred, so they travel with the first statement (one round trip less) */
  lua_createtable(L, MAX_DEFERRED, 0);
  lua_pushliteral(L, SETUP_SQL);
  lua_rawseti(L, -2, 1);
  lua_setiuservalue(L, 3, CONN_QUEUE);
  lua_pushvalue(L, 3);
  return 1;
}

static Conn *check_conn(lua_State *L) {
  Conn *c = luaL_checkudata(L, 1, CONN_MT);
  if (!c->pg) {
    lua_getiuservalue(L, 1, CONN_DESC);
    luaL_error(L, "pg: the connection to %s is closed", lua_tostring(L, -1));
  }
  return c;
}

/* exec failed: returns nil, message, reason, sqlstate. res may be NULL (then the
 * connection's own message). */
static int exec_failed(lua_State *L, Conn *c, int conn_idx, PGresult *res) {
  const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
  const char *msg = res ? PQresultErrorMessage(res) : "";
  if (!*msg) msg = PQerrorMessage(c->pg);
  if (!*msg) msg = "unknown error";
  const char *reason = sqlstate_reason(st);
  /* a connection that broke (no SQLSTATE: libpq lost the server) is unreachable */
  if (strcmp(reason, "other") == 0 && (PQstatus(c->pg) == CONNECTION_BAD || c->lost)) reason = "unreachable";
  lua_getiuservalue(L, conn_idx, CONN_SECRETS);
  int set = lua_gettop(L);
  lua_pushnil(L);
  push_redacted(L, set, msg, strlen(msg), 0);
  lua_pushstring(L, reason);
  if (st) lua_pushstring(L, st);
  else lua_pushnil(L);
  return 4;
}

/* Pushes a bytea value given in text: hex ("\x0aff") or, where bytea_output was set to
 * escape, the escape format (\\ and \ooo). */
static void push_bytea(lua_State *L, const char *s, size_t n) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  if (n >= 2 && s[0] == '\\' && s[1] == 'x') {
    for (size_t i = 2; i + 1 < n; i += 2) luaL_addchar(&b, (char)(hexval(s[i]) * 16 + hexval(s[i + 1])));
  } else {
    for (size_t i = 0; i < n; i++) {
      if (s[i] == '\\' && i + 1 < n && s[i + 1] == '\\') {
        luaL_addchar(&b, '\\');
        i++;
      } else if (s[i] == '\\' && i + 3 < n) {
        luaL_addchar(&b, (char)(((s[i + 1] - '0') << 6) | ((s[i + 2] - '0') << 3) | (s[i + 3] - '0')));
        i += 3;
      } else {
        luaL_addchar(&b, s[i]);
      }
    }
  }
  luaL_pushresult(&b);
}

static void push_value(lua_State *L, Oid type, const char *s, size_t n) {
  switch (type) {
  case 16: /* bool */
    lua_pushboolean(L, s[0] == 't');
    break;
  case 17: /* bytea */
    push_bytea(L, s, n);
    break;
  case 20: /* int8 */
  case 21: /* int2 */
  case 23: /* int4 */
  case 26: /* oid */
    lua_pushinteger(L, (lua_Integer)strtoll(s, NULL, 10));
    break;
  case 700: /* float4 */
  case 701: /* float8: strtod reads NaN and Infinity too */
    lua_pushnumber(L, (lua_Number)strtod(s, NULL));
    break;
  default:
    lua_pushlstring(L, s, n);
  }
}

static uint64_t be(const char *s, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) v = (v << 8) | (unsigned char)s[i];
  return v;
}

/* A value in binary format (conn:fetch): the types the store reads, nothing else */
static void push_binary(lua_State *L, Oid type, const char *s, size_t n) {
  switch (type) {
  case 16: /* bool */
    if (n != 1) break;
    lua_pushboolean(L, s[0] != 0);
    return;
  case 17:   /* bytea */
  case 18:   /* char */
  case 19:   /* name */
  case 25:   /* text */
  case 114:  /* json */
  case 705:  /* unknown */
  case 1042: /* bpchar */
  case 1043: /* varchar */
    lua_pushlstring(L, s, n);
    return;
  case 20: /* int8 */
    if (n != 8) break;
    lua_pushinteger(L, (lua_Integer)(int64_t)be(s, 8));
    return;
  case 21: /* int2 */
    if (n != 2) break;
    lua_pushinteger(L, (lua_Integer)(int16_t)be(s, 2));
    return;
  case 23: /* int4 */
    if (n != 4) break;
    lua_pushinteger(L, (lua_Integer)(int32_t)be(s, 4));
    return;
  case 26: /* oid */
    if (n != 4) break;
    lua_pushinteger(L, (lua_Integer)(uint32_t)be(s, 4));
    return;
  case 700: { /* float4 */
    if (n != 4) break;
    uint32_t u = (uint32_t)be(s, 4);
    float f;
    memcpy(&f, &u, sizeof f);
    lua_pushnumber(L, (lua_Number)f);
    return;
  }
  case 701: { /* float8 */
    if (n != 8) break;
    uint64_t u = be(s, 8);
    double d;
    memcpy(&d, &u, sizeof d);
    lua_pushnumber(L, (lua_Number)d);
    return;
  }
  default:
    luaL_error(L, "pg: conn:fetch reads bool, bytea, integer, float and text columns, not type %d: use conn:exec",
               (int)type);
    return;
  }
  luaL_error(L, "pg: a binary value of type %d with %d bytes", (int)type, (int)n);
}

/* The rows of a result: an array of tables keyed by column name */
static void push_rows(lua_State *L, PGresult *res, int binary) {
  int nrows = PQntuples(res), ncols = PQnfields(res);
  lua_createtable(L, ncols, 0); /* the column names, checked for twins */
  int names = lua_gettop(L);
  lua_createtable(L, 0, ncols);
  for (int j = 0; j < ncols; j++) {
    const char *name = PQfname(res, j);
    if (lua_getfield(L, -1, name) != LUA_TNIL) {
      luaL_error(L, "pg: the result has two columns named %s: give them names of their own with AS", name);
    }
    lua_pop(L, 1);
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, name);
    lua_pushstring(L, name);
    lua_rawseti(L, names, j + 1);
  }
  lua_pop(L, 1);
  lua_createtable(L, nrows, 0);
  for (int i = 0; i < nrows; i++) {
    lua_createtable(L, 0, ncols);
    for (int j = 0; j < ncols; j++) {
      if (PQgetisnull(res, i, j)) continue;
      lua_rawgeti(L, names, j + 1);
      if (binary) push_binary(L, PQftype(res, j), PQgetvalue(res, i, j), (size_t)PQgetlength(res, i, j));
      else push_value(L, PQftype(res, j), PQgetvalue(res, i, j), (size_t)PQgetlength(res, i, j));
      lua_rawset(L, -3);
    }
    lua_rawseti(L, -2, i + 1);
  }
  lua_remove(L, names);
}

/* Gives back a connection a COPY statement left in copy mode */
static void end_copy(PGconn *pg, ExecStatusType st) {
  if (st == PGRES_COPY_IN || st == PGRES_COPY_BOTH) PQputCopyEnd(pg, "conn:exec does not do COPY");
  if (st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
    char *buf;
    while (PQgetCopyData(pg, &buf, 0) > 0) PQfreemem(buf);
  }
  PGresult *r;
  while ((r = PQgetResult(pg))) PQclear(r);
}

/* Sends the deferred statements, each then a Sync (so each runs as if sent alone), and
 * empties the queue; false when libpq could not send. */
static int send_deferred(lua_State *L, Conn *c, int queue, int nq) {
  int sent = 1;
  for (int i = 1; sent && i <= nq; i++) {
    lua_rawgeti(L, queue, i);
    sent = PQsendQueryParams(c->pg, lua_tostring(L, -1), 0, NULL, NULL, NULL, NULL, 0) && PQpipelineSync(c->pg);
    lua_pop(L, 1);
    if (sent) c->unread++;
  }
  for (int i = nq; i >= 1; i--) { /* what was sent is not sent again */
    lua_pushnil(L);
    lua_rawseti(L, queue, i);
  }
  return sent;
}

/* Pipeline mode on (it stays on while answers are unread), and the deferred statements
 * sent; false when libpq could not. */
static int pipeline_start(lua_State *L, Conn *c, int queue, int nq) {
  int ok = PQpipelineStatus(c->pg) != PQ_PIPELINE_OFF || PQenterPipelineMode(c->pg);
  return ok && send_deferred(L, c, queue, nq);
}

/* Runs sql after the statements deferred or sent before it, in one round trip (libpq's
 * pipeline mode): reads the answers of those first, then that of sql. Returns the
 * result of sql, or the first failed result among the earlier ones (boxed at the top of
 * the stack); NULL when the connection broke. */
static PGresult *run_pipelined(lua_State *L, Conn *c, int queue, int nq, const char *sql, int n, const Oid *types,
                               const char *const *values, const int *lengths, const int *formats, int binary) {
  PGconn *pg = c->pg;
  Box *failed = new_box(L, free_result), *main = new_box(L, free_result);
  int sent = pipeline_start(L, c, queue, nq);
  sent = sent && PQsendQueryParams(pg, sql, n, types, values, lengths, formats, binary) && PQpipelineSync(pg);
  int earlier = c->unread, segment = 0, nulls = 0;
  c->unread = 0;
  while (segment < earlier + sent) {
    PGresult *r = PQgetResult(pg);
    if (!r) {
      if (++nulls >= 2 || PQstatus(pg) == CONNECTION_BAD) break;
      continue;
    }
    nulls = 0;
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_PIPELINE_SYNC) {
      segment++;
      PQclear(r);
    } else if (segment == earlier && !main->p) {
      main->p = r;
    } else if (segment < earlier && !failed->p && (st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE)) {
      failed->p = r;
    } else {
      PQclear(r);
    }
  }
  /* answers missing: the connection broke (libpq may not have noticed yet, when it was a
   * write that failed), and what the server did is unknown; it is not used again */
  if (segment < earlier + sent || !sent) {
    PQconsumeInput(pg);
    c->lost = 1;
  }
  PQexitPipelineMode(pg);
  if (failed->p) {
    lua_pop(L, 1); /* main: freed by __gc */
    return failed->p;
  }
  lua_remove(L, -2);
  return main->p;
}

static int exec_impl(lua_State *L, int binary) {
  Conn *c = check_conn(L);
  if (c->lost) {
    lua_pushnil(L);
    lua_pushliteral(L, "the connection to the server was lost");
    lua_pushliteral(L, "unreachable");
    lua_pushnil(L);
    return 4;
  }
  size_t sqllen;
  const char *sql = luaL_checklstring(L, 2, &sqllen);
  luaL_argcheck(L, strlen(sql) == sqllen, 2, "SQL cannot hold a zero byte");
  int n = lua_gettop(L) - 2;
  if (n > MAX_PARAMS) return luaL_error(L, "pg: at most %d parameters, got %d", MAX_PARAMS, n);
  int first = 3;
  size_t cells = n > 0 ? (size_t)n : 1;
  const char **values = lua_newuserdatauv(L, cells * sizeof *values, 0);
  int *lengths = lua_newuserdatauv(L, cells * sizeof *lengths, 0);
  int *formats = lua_newuserdatauv(L, cells * sizeof *formats, 0);
  Oid *types = lua_newuserdatauv(L, cells * sizeof *types, 0);
  /* each value converted to a string stays on the stack until the call returns */
  luaL_checkstack(L, n + 8, "pg: too many parameters");
  for (int i = 0; i < n; i++) {
    int arg = first + i;
    lengths[i] = 0;
    formats[i] = 0;
    types[i] = 0;
    values[i] = NULL;
    switch (lua_type(L, arg)) {
    case LUA_TNIL:
      break;
    case LUA_TBOOLEAN:
      values[i] = lua_toboolean(L, arg) ? "t" : "f";
      types[i] = 16;
      break;
    case LUA_TNUMBER:
      if (lua_isinteger(L, arg)) {
        values[i] = lua_pushfstring(L, "%I", (lua_Integer)lua_tointeger(L, arg));
        types[i] = 20;
      } else {
        lua_Number v = lua_tonumber(L, arg);
        char buf[64];
        if (isnan(v)) snprintf(buf, sizeof buf, "NaN");
        else if (isinf(v)) snprintf(buf, sizeof buf, v > 0 ? "Infinity" : "-Infinity");
        else snprintf(buf, sizeof buf, "%.17g", (double)v);
        values[i] = lua_pushstring(L, buf);
        types[i] = 701;
      }
      break;
    case LUA_TSTRING: {
      size_t len;
      values[i] = lua_tolstring(L, arg, &len);
      if (strlen(values[i]) != len) {
        return luaL_error(L, "pg: parameter $%d holds a zero byte, which text cannot: send bytes as pg.bytea(s)", i + 1);
      }
      break;
    }
    default:
      if (luaL_testudata(L, arg, BYTEA_MT)) {
        size_t len;
        lua_getiuservalue(L, arg, 1);
        values[i] = lua_tolstring(L, -1, &len);
        if (len > 0x7fffffff) return luaL_error(L, "pg: parameter $%d is too large", i + 1);
        lengths[i] = (int)len;
        formats[i] = 1;
        types[i] = 17;
        break;
      }
      return luaL_error(L, "pg: parameter $%d: cannot send a %s (strings, numbers, booleans, nil, pg.bytea)", i + 1,
                        luaL_typename(L, arg));
    }
  }
  PGresult *res;
  lua_getiuservalue(L, 1, CONN_QUEUE);
  int queue = lua_gettop(L), nq = (int)luaL_len(L, queue);
  if (nq > 0 || c->unread > 0) {
    res = run_pipelined(L, c, queue, nq, sql, n, n > 0 ? types : NULL, n > 0 ? values : NULL,
                        n > 0 ? lengths : NULL, n > 0 ? formats : NULL, binary);
  } else {
    Box *box = new_box(L, free_result);
    box->p = PQexecParams(c->pg, sql, n, n > 0 ? types : NULL, n > 0 ? values : NULL, n > 0 ? lengths : NULL,
                          n > 0 ? formats : NULL, binary);
    res = box->p;
  }
  ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
  switch (st) {
  case PGRES_TUPLES_OK:
    push_rows(L, res, binary);
    return 1;
  case PGRES_COMMAND_OK:
  case PGRES_EMPTY_QUERY:
    lua_pushinteger(L, (lua_Integer)strtoll(PQcmdTuples(res), NULL, 10));
    return 1;
  case PGRES_COPY_IN:
  case PGRES_COPY_OUT:
  case PGRES_COPY_BOTH:
    end_copy(c->pg, st);
    lua_pushnil(L);
    lua_pushliteral(L, "conn:exec does not do COPY");
    lua_pushliteral(L, "other");
    lua_pushnil(L);
    return 4;
  default:
    return exec_failed(L, c, 1, res);
  }
}

/* conn:exec(sql, ...) -> rows | count | nil, message, reason, sqlstate */
static int conn_exec(lua_State *L) { return exec_impl(L, 0); }

/* conn:fetch(sql, ...): conn:exec with the rows in binary (no text to decode) */
static int conn_fetch(lua_State *L) { return exec_impl(L, 1); }

/* conn:defer(sql): sql (no parameters) runs just before the next exec or fetch, in the
 * same round trip */
static int conn_defer(lua_State *L) {
  check_conn(L);
  luaL_checkstring(L, 2);
  lua_getiuservalue(L, 1, CONN_QUEUE);
  lua_Integer nq = luaL_len(L, -1);
  if (nq >= MAX_DEFERRED) return luaL_error(L, "pg: at most %d deferred statements", MAX_DEFERRED);
  lua_pushvalue(L, 2);
  lua_rawseti(L, -2, nq + 1);
  return 0;
}

/* conn:send(sql): sends sql (no parameters; after any deferred ones) now, without
 * waiting for its answer: the server runs it at once (a read-only transaction's COMMIT
 * ends it now, holding nothing), and its answer is read by the next exec or fetch,
 * which fails with it if it failed. Returns false when libpq could not send. */
static int conn_send(lua_State *L) {
  Conn *c = check_conn(L);
  const char *sql = luaL_checkstring(L, 2);
  lua_getiuservalue(L, 1, CONN_QUEUE);
  int queue = lua_gettop(L), nq = (int)luaL_len(L, queue);
  int sent = pipeline_start(L, c, queue, nq);
  sent = sent && PQsendQueryParams(c->pg, sql, 0, NULL, NULL, NULL, NULL, 0) && PQpipelineSync(c->pg);
  if (sent) c->unread++;
  lua_pushboolean(L, sent);
  return 1;
}

/* conn:undefer(sql) -> true when sql was the last deferred statement, now taken back
 * unsent; false when it was sent already (or never deferred) */
static int conn_undefer(lua_State *L) {
  luaL_checkudata(L, 1, CONN_MT);
  luaL_checkstring(L, 2);
  lua_getiuservalue(L, 1, CONN_QUEUE);
  lua_Integer nq = lua_istable(L, -1) ? luaL_len(L, -1) : 0;
  if (nq > 0) {
    lua_rawgeti(L, -1, nq);
    if (lua_rawequal(L, -1, 2)) {
      lua_pushnil(L);
      lua_rawseti(L, -3, nq);
      lua_pushboolean(L, 1);
      return 1;
    }
  }
  lua_pushboolean(L, 0);
  return 1;
}

/* conn:close(); closing twice is harmless */
static int conn_close(lua_State *L) {
  Conn *c = luaL_checkudata(L, 1, CONN_MT);
  if (c->pg) PQfinish(c->pg);
  c->pg = NULL;
  return 0;
}

/* conn:describe() -> "host:port/dbname as user" (never the password) */
static int conn_describe(lua_State *L) {
  luaL_checkudata(L, 1, CONN_MT);
  lua_getiuservalue(L, 1, CONN_DESC);
  return 1;
}

/* pg.bytea(s) -> a parameter that conn:exec sends as bytea, in binary */
static int pg_bytea(lua_State *L) {
  luaL_checktype(L, 1, LUA_TSTRING);
  lua_newuserdatauv(L, 0, 1);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  luaL_setmetatable(L, BYTEA_MT);
  return 1;
}

static const luaL_Reg conn_methods[] = {
  { "exec", conn_exec },
  { "fetch", conn_fetch },
  { "defer", conn_defer },
  { "undefer", conn_undefer },
  { "send", conn_send },
  { "close", conn_close },
  { "describe", conn_describe },
  { NULL, NULL }
};

static const luaL_Reg conn_meta[] = {
  { "__gc", conn_close },
  { "__close", conn_close },
  { NULL, NULL }
};

static const luaL_Reg box_meta[] = {
  { "__gc", box_gc },
  { NULL, NULL }
};

static const luaL_Reg pg_funcs[] = {
  { "connect", pg_connect },
  { "bytea", pg_bytea },
  { NULL, NULL }
};

int luaopen_connrt_pg(lua_State *L) {
  connrt_class(L, CONN_MT, conn_meta, conn_methods);
  connrt_class(L, BOX_MT, box_meta, NULL);
  connrt_class(L, BYTEA_MT, NULL, NULL);
  luaL_newlib(L, pg_funcs);
  return 1;
}
