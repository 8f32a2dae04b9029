/*
 * lua_driver.c - the libFuzzer driver of the harnesses for the Lua parsers.
 *
 * Built once per harness with -DFUZZ_TARGET='"NAME"' (see the Makefile's fuzz rules): one
 * Lua 5.4 state with the C core preloaded (src/api/api.c) and package.path on the source
 * tree's lua/ and fuzz/; fuzz/NAME.lua returns a function that takes one input. An input
 * passes when that function returns, or raises one of connrt's own error objects
 * (errors.raise in lua/connrt/errors.lua) whose message is a string that shows no Lua
 * value's address ("table: 0x..."); any other error (a bug such as indexing nil, or a
 * failed check of the harness) aborts, so libFuzzer keeps the input as a crash. The
 * harnesses also get the globals FUZZ_ROOT (the source tree) and curl_url (how libcurl
 * reads a URL, for fuzz/url.lua).
 *
 * Coverage: liblua5.4 is not instrumented, so a line hook feeds libFuzzer an extra
 * counter per (chunk, previous line, line) edge of the Lua code that runs. Hooks that
 * connrt sets itself (the connector sandbox's instruction budget) replace it while they
 * run; the driver sets it again before every input.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "api/api.h"

#ifndef FUZZ_TARGET
#error "build with -DFUZZ_TARGET='\"name\"'"
#endif
#ifndef FUZZ_ROOT
#error "build with -DFUZZ_ROOT='\"/path/to/connrt\"'"
#endif

#define COUNTERS (1 << 16)

/* libFuzzer reads this section as extra coverage counters (cleared before each input). */
__attribute__((section("__libfuzzer_extra_counters"), used))
static uint8_t lua_edges[COUNTERS];

static lua_State *L;
static uintptr_t prev_edge;

static void line_hook(lua_State *l, lua_Debug *ar) {
  if (!lua_getinfo(l, "S", ar)) return;
  uintptr_t here = ((uintptr_t)ar->source * 31u) ^ ((uintptr_t)ar->currentline * 2654435761u);
  lua_edges[(here ^ (prev_edge >> 1)) % COUNTERS]++;
  prev_edge = here;
}

/* Message handler: connrt's error objects pass unchanged; anything else becomes a
 * string with a traceback. */
static int on_error(lua_State *l) {
  lua_getfield(l, LUA_REGISTRYINDEX, "fuzz.errors_is");
  lua_pushvalue(l, 1);
  lua_call(l, 1, 1);
  if (lua_toboolean(l, -1)) {
    lua_pop(l, 1);
    return 1;
  }
  const char *msg = luaL_tolstring(l, 1, NULL);
  luaL_traceback(l, l, msg, 1);
  return 1;
}

/* curl_url(s) -> scheme, host, port, path | nil, code: how libcurl (which sends
 * connrt's requests) reads a URL, with the flags of a transfer (CURLOPT_URL), for the
 * harnesses that compare connrt's URL parser with it. */
static int curl_url_parts(lua_State *l) {
  const char *s = luaL_checkstring(l, 1);
  CURLU *u = curl_url();
  if (!u) return luaL_error(l, "curl_url: out of memory");
  CURLUcode rc = curl_url_set(u, CURLUPART_URL, s, CURLU_GUESS_SCHEME | CURLU_NON_SUPPORT_SCHEME);
  if (rc != CURLUE_OK) {
    curl_url_cleanup(u);
    lua_pushnil(l);
    lua_pushinteger(l, (lua_Integer)rc);
    return 2;
  }
  static const CURLUPart parts[] = { CURLUPART_SCHEME, CURLUPART_HOST, CURLUPART_PORT, CURLUPART_PATH };
  for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
    char *v = NULL;
    if (curl_url_get(u, parts[i], &v, CURLU_DEFAULT_PORT) == CURLUE_OK && v) lua_pushstring(l, v);
    else lua_pushnil(l);
    curl_free(v);
  }
  curl_url_cleanup(u);
  return 4;
}

static void die(const char *what) {
  fprintf(stderr, "fuzz %s: %s\n", FUZZ_TARGET, what);
  abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  L = luaL_newstate();
  if (!L) die("cannot create a Lua state");
  luaL_openlibs(L);
  connrt_preload(L);
  lua_register(L, "curl_url", curl_url_parts);
  lua_pushliteral(L, FUZZ_ROOT);
  lua_setglobal(L, "FUZZ_ROOT");
  lua_getglobal(L, "package");
  lua_pushstring(L, FUZZ_ROOT "/lua/?.lua;" FUZZ_ROOT "/fuzz/?.lua");
  lua_setfield(L, -2, "path");
  lua_pop(L, 1);
  const char *setup =
    "local errors = require('connrt.errors')\n"
    "local fn = dofile(" "'" FUZZ_ROOT "/fuzz/" FUZZ_TARGET ".lua')\n"
    "return errors.is, fn";
  if (luaL_dostring(L, setup) != LUA_OK) die(lua_tostring(L, -1));
  if (!lua_isfunction(L, -1)) die("fuzz/" FUZZ_TARGET ".lua must return a function");
  lua_setfield(L, LUA_REGISTRYINDEX, "fuzz.target");
  lua_setfield(L, LUA_REGISTRYINDEX, "fuzz.errors_is");
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lua_settop(L, 0);
  prev_edge = 0;
  lua_sethook(L, line_hook, LUA_MASKLINE, 0);
  lua_pushcfunction(L, on_error);
  lua_getfield(L, LUA_REGISTRYINDEX, "fuzz.target");
  lua_pushlstring(L, (const char *)data, size);
  int rc = lua_pcall(L, 1, 0, 1);
  lua_sethook(L, NULL, 0, 0);
  if (rc != LUA_OK) {
    if (lua_type(L, -1) != LUA_TTABLE) die(lua_tostring(L, -1) ? lua_tostring(L, -1) : "a non-string error");
    /* one of connrt's errors: its message must be a string that shows no Lua value's
     * address (unless the input itself held that text) */
    lua_getfield(L, -1, "message");
    const char *msg = lua_tostring(L, -1);
    if (lua_type(L, -1) != LUA_TSTRING) die("an error object without a string message");
    static const char *const addr[] = { "table: 0x", "userdata: ", "function: ", "thread: 0x" };
    for (size_t i = 0; i < sizeof addr / sizeof addr[0]; i++) {
      if (strstr(msg, addr[i]) && !memmem(data, size, addr[i], strlen(addr[i]))) {
        fprintf(stderr, "message: %s\n", msg);
        die("an error message shows a Lua value's address");
      }
    }
  }
  lua_settop(L, 0);
  return 0;
}
