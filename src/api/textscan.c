/*
 * textscan.c - the one pass over text that Lua's patterns make slow: whether a string is
 * plain printable ASCII (every byte 0x20-0x7E), so nothing in it can move a terminal's
 * cursor or hide text. lua/connrt/text.lua's escape_controls asks this first and returns
 * such text as it is: `connrt list --json` passes every record through it, and at
 * 100,000 records a character class matched byte by byte in Lua was most of the command.
 *
 * textscan.printable(s) -> true | false
 *
 * And the search under lua/connrt/log.lua's redactor, which looks for every spelling of
 * every registered secret in each line connrt prints (a proxy prints one per request):
 * a loop of string.find calls in Lua was most of a short line's cost.
 *
 * textscan.find_all(s, needles) -> { a1, b1, a2, b2, ... }: where each of the strings in
 * the array `needles` occurs in s (1-based, inclusive; after a hit, that needle's search
 * goes on past it), needle by needle. memmem (glibc's two-way search) is linear in
 * #s + #needle for each needle, whatever s holds.
 *
 * textscan.find(s, needle, init) -> the 1-based position of needle's first occurrence in
 * s at or after init, or nil: string.find's plain search compares byte by byte from each
 * position (O(#s * #needle) at worst), memmem does not.
 *
 * Opens the `connrt.textscan` module.
 */
#include <string.h>

#include "api.h"

static int textscan_printable(lua_State *L) {
  size_t n;
  const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
  unsigned char bad = 0;
  /* no early exit: a branch-free loop the compiler vectorizes */
  for (size_t i = 0; i < n; i++) bad |= (unsigned char)((s[i] < 0x20) | (s[i] > 0x7E));
  lua_pushboolean(L, !bad);
  return 1;
}

static int textscan_find(lua_State *L) {
  size_t n, m;
  const char *s = luaL_checklstring(L, 1, &n);
  const char *needle = luaL_checklstring(L, 2, &m);
  lua_Integer init = luaL_optinteger(L, 3, 1);
  if (init < 1) init = 1;
  if ((size_t)init - 1 > n) return 0;
  size_t from = (size_t)init - 1;
  const char *hit = m == 0 ? s + from : memmem(s + from, n - from, needle, m);
  if (!hit) return 0;
  lua_pushinteger(L, (lua_Integer)(hit - s) + 1);
  return 1;
}

static int textscan_find_all(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_Integer count = luaL_len(L, 2);
  lua_newtable(L);
  lua_Integer out = 0;
  for (lua_Integer k = 1; k <= count; k++) {
    if (lua_rawgeti(L, 2, k) != LUA_TSTRING) return luaL_error(L, "textscan.find_all: needles[%I] is not a string", k);
    size_t m;
    const char *needle = lua_tolstring(L, -1, &m);
    if (m > 0) {
      size_t from = 0;
      const char *hit;
      while (from + m <= n && (hit = memmem(s + from, n - from, needle, m)) != NULL) {
        size_t a = (size_t)(hit - s);
        lua_pushinteger(L, (lua_Integer)a + 1);
        lua_rawseti(L, -3, ++out);
        lua_pushinteger(L, (lua_Integer)(a + m));
        lua_rawseti(L, -3, ++out);
        from = a + m;
      }
    }
    lua_pop(L, 1);
  }
  return 1;
}

static const luaL_Reg textscan_funcs[] = {
  { "printable", textscan_printable },
  { "find_all", textscan_find_all },
  { "find", textscan_find },
  { NULL, NULL }
};

int luaopen_connrt_textscan(lua_State *L) {
  luaL_newlib(L, textscan_funcs);
  return 1;
}
