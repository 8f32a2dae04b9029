/*
 * lib.c - libconnrt: the C API of include/connrt.h on top of the runtime's Lua layer.
 *
 * A handle owns one Lua state with the C core preloaded and the pipeline API
 * (lua/connrt/api.lua) loaded, like the `connrt` binary; each call runs the matching Lua
 * function under lua_pcall and turns an error object's kind into a connrt_code (the kind's
 * exit code in lua/connrt/errors.lua, which defines both) and keeps its reason. Open
 * connections are cached in the state, so a program that makes many requests loads and
 * unseals each connection once.
 */
#include <stdlib.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "api/api.h"
#include "api/error.h"
#include "connrt.h"

struct connrt {
  lua_State *L;
  int api;            /* registry ref of the connrt.api table */
  int conns;          /* registry ref of a table id -> connection */
  char *msg;          /* last failure's message */
  char *reason;       /* last failure's reason (lua/connrt/errors.lua) */
};

const char *connrt_strerror(connrt_code code) {
  switch (code) {
    case CONNRT_OK: return "success";
    case CONNRT_EFAILED: return "failed";
    case CONNRT_EUSAGE: return "wrong argument";
    case CONNRT_ECONNECTOR: return "invalid connector";
    case CONNRT_ECONNECT: return "connect flow failed";
    case CONNRT_EPROVIDER: return "the provider answered with an error";
    case CONNRT_ENETWORK: return "no answer from the server";
    case CONNRT_EREFUSED: return "URL refused: outside the allowed URLs";
    case CONNRT_ESTORE: return "store error";
    case CONNRT_ENOTFOUND: return "no such connection";
    case CONNRT_EINTERNAL: return "internal error";
    case CONNRT_ENOMEM: return "out of memory";
  }
  return "unknown error";
}

static void set_msg(connrt *rt, const char *msg) {
  free(rt->msg);
  rt->msg = strdup(msg ? msg : "");
}

static void set_reason(connrt *rt, const char *reason) {
  free(rt->reason);
  rt->reason = strdup(reason ? reason : "");
}

/* A failure of libconnrt itself, before or outside Lua: a message and its reason. */
static connrt_code fail_here(connrt *rt, connrt_code code, const char *reason, const char *msg) {
  set_msg(rt, msg);
  set_reason(rt, reason);
  return code;
}

/* [-0, +0] the exit code errors.lua gives `kind`, or CONNRT_EINTERNAL */
static connrt_code code_of(lua_State *L, const char *kind) {
  connrt_code code = CONNRT_EINTERNAL;
  lua_getglobal(L, "require");
  lua_pushliteral(L, "connrt.errors");
  if (lua_pcall(L, 1, 1, 0) == LUA_OK && lua_istable(L, -1)) {
    lua_getfield(L, -1, "exit_codes");
    if (lua_istable(L, -1) && lua_getfield(L, -1, kind) == LUA_TNUMBER) code = (connrt_code)lua_tointeger(L, -1);
    lua_pop(L, 1);
  }
  lua_pop(L, 2);
  return code;
}

/* Turns the error object on top of the stack into a code and a message; pops it. */
static connrt_code fail_from_stack(connrt *rt, int status) {
  lua_State *L = rt->L;
  int err = lua_gettop(L);
  connrt_code code = status == LUA_ERRMEM ? CONNRT_ENOMEM : CONNRT_EINTERNAL;
  set_reason(rt, status == LUA_ERRMEM ? "out_of_memory" : "internal");
  if (status != LUA_ERRMEM && lua_istable(L, -1) && lua_getfield(L, -1, "kind") == LUA_TSTRING &&
      lua_getfield(L, -2, "reason") == LUA_TSTRING) {
    code = code_of(L, lua_tostring(L, -2));
    if (code != CONNRT_EINTERNAL) set_reason(rt, lua_tostring(L, -1));
    lua_pop(L, 2);
    lua_getfield(L, -1, "message");
    set_msg(rt, lua_tostring(L, -1));
    lua_pop(L, 1);
  } else {
    lua_settop(L, err);
    const char *m = lua_tostring(L, -1);
    set_msg(rt, m ? m : "error object is not a string");
  }
  lua_pop(L, 1);
  /* the message went through no redactor yet: pass it through log.redact */
  lua_getglobal(L, "require");
  lua_pushliteral(L, "connrt.log");
  if (lua_pcall(L, 1, 1, 0) == LUA_OK) {
    lua_getfield(L, -1, "redact");
    lua_pushstring(L, rt->msg);
    if (lua_pcall(L, 1, 1, 0) == LUA_OK) set_msg(rt, lua_tostring(L, -1));
  }
  lua_settop(L, 0);
  return code;
}

static int open_state(lua_State *L) {
  const char *home = lua_touserdata(L, 1);
  luaL_openlibs(L);
  connrt_preload(L);
  connrt_set_lua_path(L, 1);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "connrt.api");
  lua_call(L, 1, 1);
  /* open the store now, so a wrong key or a bad home fails here */
  lua_getfield(L, -1, "list");
  lua_createtable(L, 0, 1);
  if (home) { lua_pushstring(L, home); lua_setfield(L, -2, "home"); }
  lua_call(L, 1, 0);
  return 1;
}

connrt_code connrt_open(connrt **out, const char *home) {
  connrt_protect_process(); /* documented in connrt.h: it changes the process */
  connrt *rt = calloc(1, sizeof *rt);
  *out = rt;
  if (!rt) return CONNRT_ENOMEM;
  rt->L = luaL_newstate();
  if (!rt->L) return fail_here(rt, CONNRT_ENOMEM, "out_of_memory", "out of memory");
  lua_pushcfunction(rt->L, open_state);
  lua_pushlightuserdata(rt->L, (void *)home);
  int st = lua_pcall(rt->L, 1, 1, 0);
  if (st != LUA_OK) return fail_from_stack(rt, st);
  if (home) {
    lua_pushstring(rt->L, home);
    lua_setfield(rt->L, -2, "default_home");
  }
  rt->api = luaL_ref(rt->L, LUA_REGISTRYINDEX);
  lua_newtable(rt->L);
  rt->conns = luaL_ref(rt->L, LUA_REGISTRYINDEX);
  return fail_here(rt, CONNRT_OK, "", "");
}

/* [-0, +1] pushes the cached connection `id`, opening it on first use (may raise, so
 * only from inside a protected call). Called directly rather than through lua_call: a
 * closure per call was a measurable part of connrt_request (bench/RESULTS.md). */
static void push_connection(lua_State *L, connrt *rt, const char *id) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->conns);
  if (lua_getfield(L, -1, id) != LUA_TNIL) {
    lua_remove(L, -2);
    return;
  }
  lua_pop(L, 1);
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->api);
  lua_getfield(L, -1, "connection");
  lua_pushstring(L, id);
  lua_createtable(L, 0, 1);
  lua_getfield(L, -4, "default_home");
  lua_setfield(L, -2, "home");
  lua_call(L, 2, 1);      /* conns api conn */
  lua_pushvalue(L, -1);
  lua_setfield(L, -4, id);
  lua_replace(L, -3);     /* conn api */
  lua_pop(L, 1);
}

static int do_token(lua_State *L) {
  connrt *rt = lua_touserdata(L, lua_upvalueindex(1));
  push_connection(L, rt, luaL_checkstring(L, 1));
  lua_getfield(L, -1, "token");
  lua_insert(L, -2);
  lua_call(L, 1, 1);
  return 1;
}

connrt_code connrt_token(connrt *rt, const char *id, char **token) {
  if (!rt || !rt->L) return CONNRT_EUSAGE;
  *token = NULL;
  if (!id) return fail_here(rt, CONNRT_EUSAGE, "bad_argument", "connrt_token: id is NULL");
  lua_State *L = rt->L;
  lua_pushlightuserdata(L, rt);
  lua_pushcclosure(L, do_token, 1);
  lua_pushstring(L, id);
  int st = lua_pcall(L, 1, 1, 0);
  if (st != LUA_OK) return fail_from_stack(rt, st);
  const char *t = lua_tostring(L, -1);
  if (!t) {
    lua_settop(L, 0);
    return fail_here(rt, CONNRT_EFAILED, "other", "connrt_token: the token is not a string");
  }
  *token = strdup(t);
  lua_settop(L, 0);
  if (!*token) return fail_here(rt, CONNRT_ENOMEM, "out_of_memory", "out of memory");
  fail_here(rt, CONNRT_OK, "", "");
  return CONNRT_OK;
}

typedef struct {
  connrt *rt;
  const char *id, *method, *url, *body;
  const char *const *headers;
  size_t body_len;
} request_args;

/* Raises a usage error object (what errors.raise makes) with a formatted message: a
 * caller's wrong argument, not a bug of connrt. */
static int usage_error(lua_State *L, const char *fmt, const char *arg) {
  return connrt_raise(L, "usage", "bad_argument", fmt, arg);
}

/* [-0, +1] conn:request{...}: the response table */
static int do_request(lua_State *L) {
  request_args *a = lua_touserdata(L, 1);
  push_connection(L, a->rt, a->id);
  lua_getfield(L, -1, "request");
  lua_insert(L, -2);
  lua_createtable(L, 0, 4);
  lua_pushstring(L, a->method ? a->method : "GET");
  lua_setfield(L, -2, "method");
  lua_pushstring(L, a->url);
  lua_setfield(L, -2, "url");
  if (a->body) {
    lua_pushlstring(L, a->body, a->body_len);
    lua_setfield(L, -2, "body");
  }
  lua_newtable(L);
  for (int i = 0; a->headers && a->headers[i]; i++) {
    const char *h = a->headers[i], *colon = strchr(h, ':');
    if (!colon) usage_error(L, "connrt_request: header \"%s\": expected \"Name: value\"", h);
    const char *v = colon + 1;
    while (*v == ' ' || *v == '\t') v++;
    lua_createtable(L, 2, 0);
    lua_pushlstring(L, h, (size_t)(colon - h));
    lua_rawseti(L, -2, 1);
    lua_pushstring(L, v);
    lua_rawseti(L, -2, 2);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "headers");
  lua_call(L, 2, 1);
  /* the headers as "name: value\n" lines, names lowercased. A buffer may use stack
   * slots of its own, so the list is read at an absolute index and each entry's strings
   * (kept alive by the list) are popped before the buffer is touched. */
  luaL_Buffer b;
  lua_getfield(L, -1, "header_list");
  int list = lua_gettop(L);
  int n = (int)luaL_len(L, list);
  luaL_buffinit(L, &b);
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, list, i);
    lua_getfield(L, -1, "name");
    lua_getfield(L, -2, "value");
    /* only strings: a number would be converted in its stack slot, which is popped */
    const char *name = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
    const char *value = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    lua_pop(L, 3);
    for (const char *p = name ? name : ""; *p; p++)
      luaL_addchar(&b, (*p >= 'A' && *p <= 'Z') ? (char)(*p + ('a' - 'A')) : *p);
    luaL_addstring(&b, ": ");
    luaL_addstring(&b, value ? value : "");
    luaL_addchar(&b, '\n');
  }
  luaL_pushresult(&b);
  lua_remove(L, list);
  return 2;
}

connrt_code connrt_request(connrt *rt, const char *id, const char *method, const char *url,
                           const char *const *headers, const char *body, size_t body_len,
                           connrt_response *res) {
  if (!rt || !rt->L) return CONNRT_EUSAGE;
  memset(res, 0, sizeof *res);
  if (!id || !url) return fail_here(rt, CONNRT_EUSAGE, "bad_argument", "connrt_request: id and url must not be NULL");
  lua_State *L = rt->L;
  request_args a = { rt, id, method, url, body, headers, body_len };
  lua_pushcfunction(L, do_request);
  lua_pushlightuserdata(L, &a);
  int st = lua_pcall(L, 1, 2, 0);
  if (st != LUA_OK) return fail_from_stack(rt, st);
  /* stack: response, headers string */
  size_t len, hlen;
  const char *h = lua_tolstring(L, -1, &hlen);
  lua_getfield(L, -2, "status");
  res->status = (int)lua_tointeger(L, -1);
  lua_getfield(L, -3, "body");
  const char *b = lua_tolstring(L, -1, &len);
  res->body = malloc(len + 1);
  res->headers = malloc(hlen + 1);
  if (res->body && res->headers) {
    memcpy(res->body, b ? b : "", len);
    res->body[len] = '\0';
    res->body_len = len;
    memcpy(res->headers, h ? h : "", hlen);
    res->headers[hlen] = '\0';
  }
  lua_settop(L, 0);
  if (!res->body || !res->headers) {
    connrt_response_free(res);
    return fail_here(rt, CONNRT_ENOMEM, "out_of_memory", "out of memory");
  }
  return fail_here(rt, CONNRT_OK, "", "");
}

const char *connrt_errmsg(const connrt *rt) {
  if (!rt) return "out of memory";
  return rt->msg ? rt->msg : "";
}

const char *connrt_errreason(const connrt *rt) {
  if (!rt) return "out_of_memory";
  return rt->reason ? rt->reason : "";
}

void connrt_response_free(connrt_response *res) {
  if (!res) return;
  free(res->body);
  free(res->headers);
  memset(res, 0, sizeof *res);
}

void connrt_free(void *p) { free(p); }

void connrt_close(connrt *rt) {
  if (!rt) return;
  if (rt->L) {
    lua_rawgeti(rt->L, LUA_REGISTRYINDEX, rt->api);
    if (lua_istable(rt->L, -1)) {
      lua_getfield(rt->L, -1, "close");
      if (lua_isfunction(rt->L, -1)) lua_pcall(rt->L, 0, 0, 0);
    }
    lua_close(rt->L);
  }
  free(rt->msg);
  free(rt->reason);
  free(rt);
}
