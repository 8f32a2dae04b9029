/*
 * api.c - one table of the C core's Lua modules, registered in package.preload, and the
 * entry point of `require "connrt"` for plain lua5.4 programs.
 *
 * Compiled twice. As is, for connrt.so and libconnrt, every module is linked in and
 * preloaded. With CONNRT_LAZY_MODULES, for the connrt binary, only the modules that need
 * no library beyond libc are: connrt.http (libcurl), connrt.crypto (OpenSSL) and
 * connrt.lmdb are shared objects under CONNRT_MOD_DIR, loaded by load_module the first
 * time a command requires one. Loading libcurl and the 36 shared objects it brings was
 * most of every command's start-up (bench/RESULTS.md); `connrt --version`, `help` and
 * `list` now load none of them, and `token` only OpenSSL and LMDB.
 */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curlver.h>
#include <lmdb.h>
#include <openssl/opensslv.h>

#include "api.h"

#ifndef CONNRT_LUA_DIR
#define CONNRT_LUA_DIR "/usr/local/share/connrt/lua"
#endif
#ifndef CONNRT_MOD_DIR
#define CONNRT_MOD_DIR "/usr/local/lib/connrt"
#endif

/* connrt.build: the versions of the libraries connrt was built with (headers only, so
 * `connrt --version` says them without loading the libraries). */
static int luaopen_connrt_build(lua_State *L) {
  lua_createtable(L, 0, 3);
  lua_pushliteral(L, LIBCURL_VERSION);
  lua_setfield(L, -2, "libcurl");
  lua_pushliteral(L, OPENSSL_VERSION_STR);
  lua_setfield(L, -2, "openssl");
  lua_pushfstring(L, "%d.%d.%d", MDB_VERSION_MAJOR, MDB_VERSION_MINOR, MDB_VERSION_PATCH);
  lua_setfield(L, -2, "lmdb");
  return 1;
}

#ifdef CONNRT_LAZY_MODULES
/* The preload function of connrt.NAME: opens CONNRT_MOD_DIR/connrt/NAME.so and runs its
 * luaopen_connrt_NAME. Not through package.cpath: Lua's loader asks the dynamic linker
 * for RTLD_NOW, which binds every function of libcurl and its 36 libraries up front (a
 * third more instructions for `connrt request` than linking them at start); RTLD_LAZY
 * binds only those called. The library stays loaded for the life of the process. */
static int load_module(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  const char *base = strrchr(name, '.') ? strrchr(name, '.') + 1 : name;
  const char *dir = getenv("CONNRT_MOD_DIR");
  if (!dir || !*dir) dir = CONNRT_MOD_DIR;
  char path[PATH_MAX], sym[64];
  if (snprintf(path, sizeof path, "%s/connrt/%s.so", dir, base) >= (int)sizeof path ||
      snprintf(sym, sizeof sym, "luaopen_connrt_%s", base) >= (int)sizeof sym)
    return luaL_error(L, "module %s: name too long", name);
  void *lib = dlopen(path, RTLD_LAZY | RTLD_LOCAL);
  if (!lib) return luaL_error(L, "module %s: cannot load %s: %s", name, path, dlerror());
  lua_CFunction open;
  *(void **)&open = dlsym(lib, sym); /* POSIX: how a function pointer comes out of dlsym */
  if (!open) return luaL_error(L, "module %s: %s has no %s", name, path, sym);
  return open(L);
}
#endif

static const luaL_Reg modules[] = {
#ifdef CONNRT_LAZY_MODULES
  { "connrt.http",     load_module },
  { "connrt.crypto",   load_module },
  { "connrt.lmdb",     load_module },
#else
  { "connrt.http",     luaopen_connrt_http },
  { "connrt.crypto",   luaopen_connrt_crypto },
  { "connrt.lmdb",     luaopen_connrt_lmdb },
#endif
  { "connrt.listener", luaopen_connrt_listener },
  { "connrt.sys",      luaopen_connrt_sys },
  { "connrt.urlparse", luaopen_connrt_urlparse },
  { "connrt.build",    luaopen_connrt_build },
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
