/*
 * error.h - raising the runtime's error object from C.
 *
 * connrt_raise makes the object errors.lua makes, { kind, reason, message } with the
 * metatable registered as "connrt.error" (whichever of errors.lua and this function comes
 * first creates it), so a C module's expected failure (a locked store, a listener's
 * address in use) reaches Lua, the command line and libconnrt with its kind and reason
 * set where it arose. `kind` and `reason` must be names from lua/connrt/errors.lua (the
 * one list of them; spec/errors_spec.lua checks every connrt_raise in src/ against it).
 * Wrong arguments of a C function are a caller's bug and still raise with luaL_error.
 */
#ifndef CONNRT_ERROR_H
#define CONNRT_ERROR_H

#include <stdarg.h>

#include <lua.h>
#include <lauxlib.h>

static inline int connrt_error_tostring(lua_State *L) {
  lua_getfield(L, 1, "message");
  return 1;
}

/* [-0, +0, v] raises { kind, reason, message = fmt formatted as lua_pushfstring does }. */
static inline int connrt_raise(lua_State *L, const char *kind, const char *reason, const char *fmt, ...) {
  va_list ap;
  lua_createtable(L, 0, 3);
  lua_pushstring(L, kind);
  lua_setfield(L, -2, "kind");
  lua_pushstring(L, reason);
  lua_setfield(L, -2, "reason");
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  lua_setfield(L, -2, "message");
  if (luaL_newmetatable(L, "connrt.error")) {
    lua_pushcfunction(L, connrt_error_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_setmetatable(L, -2);
  return lua_error(L);
}

#endif
