/*
 * api.c - one table of the C core's Lua modules, registered in package.preload, and the
 * entry point of `require "connrt"` for plain lua5.4 programs.
 *
 * Compiled twice. As is, for connrt.so and libconnrt, every module is linked in and
 * preloaded. With CONNRT_LAZY_MODULES, for the connrt binary, only the modules that need
 * no library beyond libc are: connrt.http (libcurl), connrt.crypto (OpenSSL),
 * connrt.lmdb and connrt.pg (libpq) are shared objects under CONNRT_MOD_DIR, loaded by
 * load_module the first time a command requires one. Loading libcurl and the 36 shared
 * objects it brings was most of every command's start-up (bench/RESULTS.md); `connrt
 * --version`, `help` and `list` now load none of them, and `token` only OpenSSL and
 * LMDB; libpq loads only where a program asks for connrt.pg. A command that knows
 * it will send has them loaded on a second thread ahead of need (connrt.modules.prefetch).
 */
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
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

/* connrt.build: connrt's version (the Makefile's VERSION, its one definition) and the
 * versions of the libraries connrt was built with (headers only, so `connrt --version`
 * says them without loading the libraries). */
int luaopen_connrt_build(lua_State *L) {
  lua_createtable(L, 0, 4);
  lua_pushliteral(L, CONNRT_VERSION);
  lua_setfield(L, -2, "version");
  lua_pushliteral(L, LIBCURL_VERSION);
  lua_setfield(L, -2, "libcurl");
  lua_pushliteral(L, OPENSSL_VERSION_STR);
  lua_setfield(L, -2, "openssl");
  lua_pushfstring(L, "%d.%d.%d", MDB_VERSION_MAJOR, MDB_VERSION_MINOR, MDB_VERSION_PATCH);
  lua_setfield(L, -2, "lmdb");
  return 1;
}

#ifdef CONNRT_LAZY_MODULES
/* The file of module connrt.NAME and the name of one of its functions ("luaopen_connrt_%s",
 * "connrt_%s_warm"). Returns 0 when a name does not fit. */
static int module_file(const char *name, const char *fn_fmt, char *path, size_t plen,
                       char *sym, size_t slen) {
  const char *base = strrchr(name, '.') ? strrchr(name, '.') + 1 : name;
  const char *dir = getenv("CONNRT_MOD_DIR");
  if (!dir || !*dir) dir = CONNRT_MOD_DIR;
  int p = snprintf(path, plen, "%s/connrt/%s.so", dir, base);
  int s = snprintf(sym, slen, fn_fmt, base);
  return p > 0 && (size_t)p < plen && s > 0 && (size_t)s < slen;
}

/* Prefetching. Loading libcurl's 37 shared objects and initialising libcurl and OpenSSL
 * is most of `connrt request` (bench/RESULTS.md), and the dynamic linker does it on one
 * core while the other idles. A command that will send names the modules it needs, in
 * the order it needs them (modules.prefetch); a thread then opens each one, looks up its
 * luaopen function and runs its connrt_NAME_warm if it has one (http: curl_global_init),
 * while the command goes on in Lua: opening the store, unsealing, loading the connector.
 * load_module takes a prefetched module's luaopen function from the thread as soon as
 * that module is done, without calling the dynamic linker itself: dlopen and dlsym hold
 * one loader lock, and would wait for the whole of libcurl. A module the thread could not
 * load is loaded again by load_module, which reports the error. */
#define MAX_PREFETCH 4

typedef struct {
  char name[32], path[PATH_MAX], open_sym[64], warm_sym[64];
  lua_CFunction open; /* set by the thread; NULL when it could not load the module */
  int done;
} fetch_t;

static struct {
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  fetch_t mods[MAX_PREFETCH];
  int n, running;
} prefetch = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

static void *prefetch_main(void *arg) {
  (void)arg;
  for (int i = 0; i < prefetch.n; i++) {
    fetch_t *m = &prefetch.mods[i];
    lua_CFunction open = NULL;
    void *lib = dlopen(m->path, RTLD_LAZY | RTLD_LOCAL); /* stays loaded, as it would anyway */
    if (lib) {
      void (*warm)(void);
      *(void **)&open = dlsym(lib, m->open_sym); /* POSIX: how a function comes out of dlsym */
      *(void **)&warm = dlsym(lib, m->warm_sym);
      if (warm) warm();
    }
    pthread_mutex_lock(&prefetch.mu);
    m->open = open;
    m->done = 1;
    pthread_cond_broadcast(&prefetch.cv);
    pthread_mutex_unlock(&prefetch.mu);
  }
  return NULL;
}

void connrt_prefetch_wait(void) {
  if (prefetch.running) {
    pthread_join(prefetch.thread, NULL);
    prefetch.running = 0;
  }
}

/* The prefetched luaopen function of `name`, once the thread has loaded it; NULL when
 * the module is not being prefetched or could not be loaded. */
static lua_CFunction prefetched(const char *name) {
  if (!prefetch.running) return NULL;
  for (int i = 0; i < prefetch.n; i++) {
    fetch_t *m = &prefetch.mods[i];
    if (strcmp(m->name, name) != 0) continue;
    pthread_mutex_lock(&prefetch.mu);
    while (!m->done) pthread_cond_wait(&prefetch.cv, &prefetch.mu);
    lua_CFunction open = m->open;
    pthread_mutex_unlock(&prefetch.mu);
    return open;
  }
  return NULL;
}

/* modules.prefetch(name, ...) -> true when a thread started loading them. Once per
 * process: a second call (or one while modules are loaded) does nothing. */
static int modules_prefetch(lua_State *L) {
  int n = lua_gettop(L);
  if (n < 1 || n > MAX_PREFETCH) return luaL_error(L, "modules.prefetch: 1 to %d module names", MAX_PREFETCH);
  if (prefetch.running || prefetch.n > 0) {
    lua_pushboolean(L, 0);
    return 1;
  }
  for (int i = 0; i < n; i++) {
    fetch_t *m = &prefetch.mods[i];
    const char *name = luaL_checkstring(L, i + 1);
    if (strlen(name) >= sizeof m->name ||
        !module_file(name, "luaopen_connrt_%s", m->path, sizeof m->path, m->open_sym, sizeof m->open_sym) ||
        !module_file(name, "connrt_%s_warm", m->path, sizeof m->path, m->warm_sym, sizeof m->warm_sym))
      return luaL_error(L, "modules.prefetch: module %s: name too long", name);
    strcpy(m->name, name);
  }
  prefetch.n = n;
  prefetch.running = pthread_create(&prefetch.thread, NULL, prefetch_main, NULL) == 0;
  lua_pushboolean(L, prefetch.running);
  return 1;
}

/* The preload function of connrt.NAME: opens CONNRT_MOD_DIR/connrt/NAME.so and runs its
 * luaopen_connrt_NAME. Not through package.cpath: Lua's loader asks the dynamic linker
 * for RTLD_NOW, which binds every function of libcurl and its 36 libraries up front (a
 * third more instructions for `connrt request` than linking them at start); RTLD_LAZY
 * binds only those called. The library stays loaded for the life of the process. */
static int load_module(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  lua_CFunction open = prefetched(name);
  if (open) return open(L);
  char path[PATH_MAX], sym[64];
  if (!module_file(name, "luaopen_connrt_%s", path, sizeof path, sym, sizeof sym))
    return luaL_error(L, "module %s: name too long", name);
  void *lib = dlopen(path, RTLD_LAZY | RTLD_LOCAL);
  if (!lib) return luaL_error(L, "module %s: cannot load %s: %s", name, path, dlerror());
  *(void **)&open = dlsym(lib, sym);
  if (!open) return luaL_error(L, "module %s: %s has no %s", name, path, sym);
  return open(L);
}

#else
void connrt_prefetch_wait(void) {}

/* everything is linked in: nothing to fetch */
static int modules_prefetch(lua_State *L) {
  for (int i = 1; i <= lua_gettop(L); i++) luaL_checkstring(L, i);
  lua_pushboolean(L, 0);
  return 1;
}
#endif

/* connrt.modules: prefetch(name, ...), see above */
static int luaopen_connrt_modules(lua_State *L) {
  static const luaL_Reg funcs[] = { { "prefetch", modules_prefetch }, { NULL, NULL } };
  luaL_newlib(L, funcs);
  return 1;
}

static const luaL_Reg modules[] = {
#ifdef CONNRT_LAZY_MODULES
  { "connrt.http",     load_module },
  { "connrt.crypto",   load_module },
  { "connrt.lmdb",     load_module },
  { "connrt.pg",       load_module },
  /* only the binary has it: `connrt proxy` is a command, not part of the library */
  { "connrt.httpd",    load_module },
#else
  { "connrt.http",     luaopen_connrt_http },
  { "connrt.crypto",   luaopen_connrt_crypto },
  { "connrt.lmdb",     luaopen_connrt_lmdb },
  { "connrt.pg",       luaopen_connrt_pg },
#endif
  { "connrt.listener", luaopen_connrt_listener },
  { "connrt.sys",      luaopen_connrt_sys },
  { "connrt.urlparse", luaopen_connrt_urlparse },
  { "connrt.base64",   luaopen_connrt_base64 },
  { "connrt.textscan", luaopen_connrt_textscan },
  { "connrt.sandbox",  luaopen_connrt_sandbox },
  { "connrt.build",    luaopen_connrt_build },
  { "connrt.modules",  luaopen_connrt_modules },
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

/* Pushes `list` (a package.path or cpath) with only its absolute templates: Lua's
 * defaults end in "./?.lua" and "./?.so", which would let a file in the current directory
 * (./cjson.lua) run as a module inside connrt. */
void connrt_push_absolute_path(lua_State *L, const char *list) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  int first = 1;
  while (*list) {
    size_t n = strcspn(list, ";");
    if (n > 0 && list[0] == '/') {
      if (!first) luaL_addchar(&b, ';');
      luaL_addlstring(&b, list, n);
      first = 0;
    }
    list += n;
    if (*list == ';') list++;
  }
  luaL_pushresult(&b);
}

static void keep_absolute(lua_State *L, const char *field) {
  lua_getfield(L, -1, field);
  connrt_push_absolute_path(L, luaL_optstring(L, -1, ""));
  lua_setfield(L, -3, field);
  lua_pop(L, 1);
}

void connrt_set_lua_path(lua_State *L, int own_process) {
  const char *dir = getenv("CONNRT_LUA_DIR");
  if (!dir || !*dir) dir = CONNRT_LUA_DIR;
  lua_getglobal(L, "package");
  if (own_process) {
    keep_absolute(L, "path");
    keep_absolute(L, "cpath");
  }
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
  connrt_protect_process();
  connrt_preload(L);
  connrt_set_lua_path(L, 0); /* the program's own search path is its business */
  lua_getglobal(L, "require");
  lua_pushliteral(L, "connrt.api");
  lua_call(L, 1, 1);
  return 1;
}
