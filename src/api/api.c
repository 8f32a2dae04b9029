/*
 * api.c - one table of the C core's Lua modules, registered in package.preload.
 */
#include "api.h"

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
