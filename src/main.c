/*
 * main.c - the connrt binary.
 *
 * A Lua 5.4 interpreter with the C core preloaded (see api/api.c). All command handling
 * lives in lua/connrt/cli.lua; this file only sets up the state, points package.path at
 * the runtime's Lua directory and hands over the command line.
 *
 * The Lua directory is CONNRT_LUA_DIR (baked in at build time: the source tree for an
 * in-tree build, $(PREFIX)/share/connrt/lua when installed), overridable at run time by
 * the environment variable of the same name (see connrt_set_lua_path in api/api.c).
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "api/api.h"

/* Keeps the traceback for errors that are bugs; cli.lua reports expected failures itself. */
static int traceback(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  luaL_traceback(L, L, msg ? msg : "(error object is not a string)", 1);
  return 1;
}

/* Where the arguments of the program `connrt exec` runs begin (argc when the command is
 * not exec), found as cli.lua finds them: M.main skips the leading --verbose, -v, --json
 * and --store (with its value) or --store=...; the next argument is the command; exec's
 * program is what follows the first "--" after it. Those are the program's own and stay
 * as they are. */
static int exec_program(int argc, char **argv) {
  int i = 1;
  while (i < argc) {
    const char *a = argv[i];
    if (strcmp(a, "--store") == 0) i += 2;
    else if (strcmp(a, "--verbose") == 0 || strcmp(a, "-v") == 0 || strcmp(a, "--json") == 0
             || strncmp(a, "--store=", 8) == 0) i++;
    else break;
  }
  if (i >= argc || strcmp(argv[i], "exec") != 0) return argc;
  for (int j = i + 1; j < argc; j++)
    if (strcmp(argv[j], "--") == 0) return j + 1;
  return argc;
}

static int run_cli(lua_State *L) {
  int argc = (int)lua_tointeger(L, 1);
  char **argv = (char **)lua_touserdata(L, 2);
  luaL_openlibs(L);
  connrt_preload(L);
  connrt_set_lua_path(L, 1);

  lua_createtable(L, argc, 1); /* global arg, as lua.c sets it */
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i);
  }
  lua_setglobal(L, "arg");

  lua_getglobal(L, "require");
  lua_pushliteral(L, "connrt.cli");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "main");
  lua_createtable(L, argc, 0);
  for (int i = 1; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i);
  }
  /* The Lua copies are made: the password of every postgres:// URL (--store, --to, --from,
   * or one an option took "--" before it as its value) now leaves /proc/PID/cmdline, where
   * every local user can read it. Not in the program `connrt exec` runs (exec_program). */
  int hidden = 0, program = exec_program(argc, argv);
  for (int i = 1; i < program; i++) hidden += connrt_hide_pg_password(argv[i]);
  if (hidden)
    fputs("connrt: warning: a password on the command line is visible to other local users for a moment; "
          "give it in CONNRT_STORE, PGPASSWORD or ~/.pgpass instead\n", stderr);
  lua_call(L, 1, 1);
  return 1;
}

/* Standard input, output and error that connrt was started without (`>&-`) are opened
 * on /dev/null for reading before anything else is opened: otherwise the first file
 * opened (the store's lock.mdb) would take descriptor 1, and what connrt prints (a token
 * asked for) would be written into it. Opened read-only, a closed standard output stays
 * one that cannot be written: printing fails as it would have (EBADF), and so does the
 * command; a closed standard input reads as empty. */
static void open_missing_std_fds(void) {
  for (int fd = 0; fd <= 2; fd++) {
    if (fcntl(fd, F_GETFD) != -1) continue;
    int got = open("/dev/null", O_RDONLY);
    if (got == -1) _exit(70);
    if (got != fd) { /* an earlier one was missing too and took a lower number */
      dup2(got, fd);
      close(got);
    }
  }
}

int main(int argc, char **argv) {
  open_missing_std_fds();
  /* before any secret is read: no core dump, no same-user debugger (api.h) */
  connrt_protect_process();
  lua_State *L = luaL_newstate();
  if (!L) {
    fputs("connrt: cannot create the Lua state: out of memory\n", stderr);
    return 70;
  }
  lua_pushcfunction(L, traceback);
  lua_pushcfunction(L, run_cli);
  lua_pushinteger(L, argc);
  lua_pushlightuserdata(L, argv);
  int status = 1;
  if (lua_pcall(L, 2, 1, 1) != LUA_OK) {
    fprintf(stderr, "connrt: internal error: %s\n", lua_tostring(L, -1));
    status = 70;
  } else {
    status = (int)luaL_optinteger(L, -1, 0);
  }
  fflush(stdout);
  connrt_prefetch_wait(); /* a command that failed early may not have waited for it */
  lua_close(L);
  return status;
}
