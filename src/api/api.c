/*
 * api.c - one table of the C core's Lua modules, registered in package.preload, and the
 * entry point of `require "connrt"` for plain lua5.4 programs.
 */
#include <stdlib.h>

#include "api.h"

#ifndef CONNRT_LUA_DIR
#define CONNRT_LUA_DIR "/usr/local/share/connrt/lua"
#endif

static const luaL_Reg modules[] = {
  { "connrt.http",     luaopen_connrt_http },
  { "connrt.crypto",   luaopen_connrt_crypto },
  { "connrt.listener", luaopen_connrt_listener },
  { "connrt.lmdb",     luaopen_connrt_lmdb },
  { "connrt.sys",      luaopen_connrt_sys },
  { NULL, NULL }
};

void connrt_preload(lua_State *L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  for (const luaL_Reg *m = modules; m->name; m++) {
    lua_pushcfunction(L, m->func);
    lua_setfield(L, -2, m->name);
  }
  lua_pop(L, 1);
}

void connrt_set_lua_path(lua_State *L) {
  const char *dir = getenv("CONNRT_LUA_DIR");
  if (!dir || !*dir) dir = CONNRT_LUA_DIR;
  lua_getglobal(L, "package");
  lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;", dir, dir);
  lua_getfield(L, -2, "path");
  lua_concat(L, 2);
  lua_setfield(L, -2, "path");
  lua_pop(L, 1);
}

/* `require "connrt"` in a plain lua5.4 finds build/connrt.so (or the installed copy) and
 * calls this: the core modules are preloaded, the runtime's Lua directory joins
 * package.path, and the pipeline API (lua/connrt/api.lua) is the module's value. */
int luaopen_connrt(lua_State *L) {
  connrt_preload(L);
  connrt_set_lua_path(L);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "connrt.api");
  lua_call(L, 1, 1);
  return 1;
}
