/*
 * api.h - the C core's Lua modules.
 *
 * Each C file under src/api opens one Lua module; connrt_preload() registers them all in
 * package.preload so the runtime's Lua layer (in lua/connrt) can `require` them (the
 * binary preloads only those that need no other library; see api.c). The same
 * objects are also linked into build/connrt.so, where Lua's all-in-one loader finds
 * luaopen_connrt_<name> for `require "connrt.<name>"` from a plain lua5.4.
 */
#ifndef CONNRT_API_H
#define CONNRT_API_H

#include <lua.h>
#include <lauxlib.h>

/* connrt's version: the Makefile's VERSION, its one definition, passed as -DCONNRT_VERSION */
#ifndef CONNRT_VERSION
#error "CONNRT_VERSION is not defined: build with make (the Makefile's VERSION)"
#endif

/* Registers the metatable `name` of a userdata class, once per Lua state: its metamethods
 * `meta` (__gc, __close, ...; NULL for none) and, unless NULL, `methods` as its __index
 * table. Leaves the stack as it was. Every C module registers its classes this one way
 * (inline: the lazily loaded modules are shared objects of their own). */
static inline void connrt_class(lua_State *L, const char *name, const luaL_Reg *meta, const luaL_Reg *methods) {
  if (luaL_newmetatable(L, name)) {
    if (meta) luaL_setfuncs(L, meta, 0);
    if (methods) {
      lua_newtable(L);
      luaL_setfuncs(L, methods, 0);
      lua_setfield(L, -2, "__index");
    }
  }
  lua_pop(L, 1);
}

int luaopen_connrt_build(lua_State *L);    /* connrt's version and its libraries' (api.c) */
int luaopen_connrt_http(lua_State *L);     /* HTTP client (libcurl) */
int luaopen_connrt_crypto(lua_State *L);   /* random, hashes, base64, AES-256-GCM (OpenSSL) */
int luaopen_connrt_listener(lua_State *L); /* loopback redirect listener */
int luaopen_connrt_lmdb(lua_State *L);     /* LMDB environments and transactions */
int luaopen_connrt_pg(lua_State *L);       /* PostgreSQL connections (libpq) */
int luaopen_connrt_httpd(lua_State *L);    /* the proxy's HTTP server (libevent); binary only */
int luaopen_connrt_sys(lua_State *L);      /* clocks, sleep, terminals, processes */
int luaopen_connrt_urlparse(lua_State *L); /* splitting http(s) URLs (for url.lua) */
int luaopen_connrt_base64(lua_State *L);   /* base64 and base64url (no OpenSSL) */
int luaopen_connrt_textscan(lua_State *L); /* printable ASCII, in one pass (for text.lua) */
int luaopen_connrt_sandbox(lua_State *L);  /* connector sandboxes: a Lua state each */

/* An absolute http(s) URL split by urlparse.c's rules (documented in lua/connrt/url.lua):
 * pointers into the string, not copies; scheme and host as written (compare them without
 * case); path_len 0 means "/". */
typedef struct {
  const char *scheme, *userinfo, *host, *path, *query, *fragment;
  size_t scheme_len, userinfo_len, host_len, path_len, query_len, fragment_len;
  long port;
  int has_userinfo, has_query;
} connrt_url;

/* Splits s[0..n); NULL, or why it is not such a URL. */
const char *connrt_url_split(const char *s, size_t n, connrt_url *u);

/* The allowed-URL rule (one implementation, used by url.lua and by the HTTP client right
 * before a request is handed to libcurl): NULL when url is under one of list[0..count),
 * else why not. */
const char *connrt_url_allowed(const char *url, size_t n, const char *const *list, const size_t *lens,
                               size_t count);

/* The base64 functions of connrt.base64, also registered in connrt.crypto. */
int connrt_b64encode(lua_State *L);
int connrt_b64decode(lua_State *L);
int connrt_b64url_encode(lua_State *L);
int connrt_b64url_decode(lua_State *L);

/* Transfers on a server's event loop. Under `connrt proxy`, src/api/httpd.c runs the HTTP
 * client's transfers (src/api/http.c) on libcurl's multi interface inside its libevent
 * loop: it puts a connrt_loop (a light userdata) in the registry under CONNRT_LOOP_KEY,
 * and a client:request() made from a coroutine the loop owns hands the loop a
 * connrt_xfer and yields instead of blocking. Resumed with one integer: a CURLcode when
 * the transfer ended, or CONNRT_XFER_HEADERS_READY when the final answer's headers are in
 * and its body is to be streamed (the transfer waits, paused, for a sink). */
#define CONNRT_LOOP_KEY "connrt.loop"
#define CONNRT_XFER_MT "connrt.http.xfer"
#define CONNRT_XFER_HEADERS_READY (-1)

enum { CONNRT_XFER_RUNNING, CONNRT_XFER_HEADERS, CONNRT_XFER_STREAMING, CONNRT_XFER_DONE };

struct connrt_loop;
typedef struct connrt_xfer {
  void *easy;                /* CURL *; its CURLOPT_PRIVATE points back here */
  struct connrt_loop *loop;  /* NULL once the loop is gone */
  void *task;                /* the loop's: who waits for it, or streams it */
  int state;                 /* CONNRT_XFER_* */
  int result;                /* the CURLcode, once DONE */
  int too_big;               /* a streamed body went over its limit */
  int abortable;             /* the loop may stop it if the client it answers goes away */
  /* set by the loop before it unpauses a streamed answer: each piece of the body;
   * returns 0 taken, 1 not taken now (the transfer pauses), -1 abort */
  int (*sink)(void *task, const char *data, size_t n);
} connrt_xfer;

typedef struct connrt_loop {
  int (*owns)(struct connrt_loop *loop, lua_State *L);      /* L is one of its coroutines */
  int (*start)(struct connrt_loop *loop, lua_State *L, connrt_xfer *x); /* 0 ok, else a CURLMcode */
  void (*headers)(struct connrt_loop *loop, connrt_xfer *x); /* the final headers are in: paused */
  void (*drop)(struct connrt_loop *loop, connrt_xfer *x);    /* its userdata is being collected */
} connrt_loop;

/* Overwrites with '*', in place, the password and password or sslpassword parameters of
 * each postgres:// URL in s (sys.c, by libpq's rules); returns how many. For argv. */
int connrt_hide_pg_password(char *s);

/* Registers every module above in package.preload. */
void connrt_preload(lua_State *L);

/* Puts the runtime's Lua directory first on package.path: $CONNRT_LUA_DIR, else the one
 * baked in at build time (the source tree's lua/, or $(PREFIX)/share/connrt/lua). With
 * own_process (the binary, libconnrt), relative entries such as Lua's default "./?.lua"
 * are removed from package.path and package.cpath first, so no file in the current
 * directory is ever loaded as a module. The binary's lazily loaded modules are looked for
 * in $CONNRT_MOD_DIR/connrt, else in the directory baked in (see api.c). */
void connrt_set_lua_path(lua_State *L, int own_process);

/* Pushes a package.path or cpath with its relative entries removed. */
void connrt_push_absolute_path(lua_State *L, const char *list);

/* Waits for a module prefetch (connrt.modules.prefetch, see api.c) to finish; the
 * binary calls it before it exits. A no-op where nothing is loaded lazily. */
void connrt_prefetch_wait(void);

/* `require "connrt"`: the pipeline API, for plain lua5.4 programs. Protects the process
 * first (connrt_protect_process). */
int luaopen_connrt(lua_State *L);

/* Keeps the secrets a process holds (tokens, the sealing key) out of core dumps and
 * away from the user's other processes: RLIMIT_CORE 0, soft and hard, and
 * PR_SET_DUMPABLE 0 (no core even through a core_pattern pipe, no ptrace attach and no
 * /proc/PID/mem, environ or fd for processes without CAP_SYS_PTRACE). Called first by
 * the binary, connrt_open and `require "connrt"`; lasts for the process (see sys.c). */
void connrt_protect_process(void);

#endif
