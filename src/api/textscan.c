/*
 * textscan.c - the one pass over text that Lua's patterns make slow: whether a string is
 * plain printable ASCII (every byte 0x20-0x7E), so nothing in it can move a terminal's
 * cursor or hide text. lua/connrt/text.lua's escape_controls asks this first and returns
 * such text as it is: `connrt list --json` passes every record through it, and at
 * 100,000 records a character class matched byte by byte in Lua was most of the command.
 *
 * textscan.printable(s) -> true | false
 *
 * Opens the `connrt.textscan` module.
 */
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

static const luaL_Reg textscan_funcs[] = {
  { "printable", textscan_printable },
  { NULL, NULL }
};

int luaopen_connrt_textscan(lua_State *L) {
  luaL_newlib(L, textscan_funcs);
  return 1;
}
