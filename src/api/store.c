/*
 * store.c - LMDB environments and transactions, and nothing else: lua/connrt/store.lua
 * builds connection records on top of this small general interface.
 *
 * store.open(path, dbnames, opts) opens (creating if needed, 0700 directory, 0600 files)
 * an environment and all its named databases at once, in one write transaction, so their
 * handles stay valid for the life of the environment. env:begin(write) starts a
 * transaction; txn:get/put/del/list work on a database by name and copy every value out
 * into Lua strings; txn:commit() or txn:abort() ends it. A transaction that is neither
 * committed nor aborted is aborted by __close or __gc, so an error inside
 * `local txn <close> = env:begin(true)` leaves nothing behind.
 *
 * Lifetimes: each transaction holds its environment userdata as a uservalue, so the
 * environment is never collected (and never closed by __gc) under an open transaction;
 * env:close() with transactions open raises instead. The cursor of txn:list is owned by
 * its transaction, so a Lua error in the middle of a listing cannot leak it.
 *
 * Opens the `connrt.lmdb` module.
 */
#include <errno.h>
#include <lmdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "error.h"

/* The store's file is memory-mapped: a damaged or truncated data.mdb can send LMDB to
 * read past the end of the file, which the kernel answers with SIGBUS. Unless the
 * program has a SIGBUS handler of its own, say what is wrong and exit with the store
 * exit code (8) instead of dying of a bus error; nothing is half-written, as LMDB
 * commits whole or not at all. When the command line runs with --json (it sets
 * "connrt.json_errors" in the registry), the last line is its error line too,
 * {"error": {"kind": "store", "reason": "damaged", "message": ...}}: both lines are
 * made when the store opens, as a signal handler can only write them. */
#define BUS_DAMAGED "/data.mdb is damaged: reading it went past its end (truncated or corrupted); " \
                    "restore it from a backup"
static char bus_line[1400];  /* the human line */
static char bus_json[8600];  /* the --json line, or "": room for every byte of the message escaped in six */

static void on_sigbus(int sig) {
  (void)sig;
  ssize_t n = write(2, bus_line, strlen(bus_line));
  n = write(2, bus_json, strlen(bus_json));
  (void)n;
  _exit(8);
}

/* Appends s to out (of size cap, at *len) as the inside of a JSON string. */
static void json_append(char *out, size_t cap, size_t *len, const char *s) {
  for (; *s && *len + 7 < cap; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') { out[(*len)++] = '\\'; out[(*len)++] = (char)c; }
    else if (c < 0x20) *len += (size_t)snprintf(out + *len, cap - *len, "\\u%04x", c);
    else out[(*len)++] = (char)c;
  }
  out[*len] = '\0';
}

static void guard_sigbus(lua_State *L, const char *path) {
  snprintf(bus_line, sizeof bus_line, "connrt: %.1024s" BUS_DAMAGED "\n", path);
  bus_json[0] = '\0';
  lua_getfield(L, LUA_REGISTRYINDEX, "connrt.json_errors");
  if (lua_toboolean(L, -1)) {
    size_t len = (size_t)snprintf(bus_json, sizeof bus_json,
                                  "{\"error\":{\"kind\":\"store\",\"reason\":\"damaged\",\"message\":\"");
    char msg[1400];
    snprintf(msg, sizeof msg, "%.1024s" BUS_DAMAGED, path);
    json_append(bus_json, sizeof bus_json, &len, msg);
    snprintf(bus_json + len, sizeof bus_json - len, "\"}}\n");
  }
  lua_pop(L, 1);
  struct sigaction old;
  if (sigaction(SIGBUS, NULL, &old) == 0 && old.sa_handler == SIG_DFL && !(old.sa_flags & SA_SIGINFO)) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigbus;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, NULL);
  }
}

#define ENV_MT "connrt.lmdb.env"
#define TXN_MT "connrt.lmdb.txn"

#define DEFAULT_MAP_SIZE ((lua_Integer)1 << 30)
#define MAX_DBS 4096

/* uservalues of an environment */
#define ENV_DBS 1  /* table: database name -> handle */
#define ENV_PATH 2 /* the directory */

typedef struct {
  MDB_env *env;      /* NULL once closed */
  int txns;          /* transactions begun and not yet ended */
  int writer;        /* one of them is a write transaction */
  int close_pending; /* __close or __gc came while transactions were open */
} Env;

typedef struct {
  MDB_txn *txn;       /* NULL once committed or aborted */
  MDB_cursor *cursor; /* txn:list's, while it runs (or if a Lua error cut it short) */
  Env *env;           /* kept alive by the uservalue */
  int write;
} Txn;

/* ---- environments ---- */

/* Creates path and its missing parents with mode 0700; an existing directory keeps its
 * mode. Returns 0 or an errno value. */
static int make_dirs(lua_State *L, const char *path, size_t len) {
  char *buf = lua_newuserdatauv(L, len + 1, 0);
  memcpy(buf, path, len + 1);
  int err = 0;
  for (char *p = buf + 1; ; p++) {
    if (*p == '/' || *p == '\0') {
      char saved = *p;
      *p = '\0';
      if (mkdir(buf, 0700) == -1 && errno != EEXIST) {
        err = errno;
        break;
      }
      *p = saved;
      if (saved == '\0') break;
    }
  }
  lua_pop(L, 1);
  return err;
}

static void env_shutdown(Env *e) {
  if (e->env && e->txns == 0) {
    mdb_env_close(e->env);
    e->env = NULL;
  }
}

static const char *env_path(lua_State *L, int idx) {
  lua_getiuservalue(L, idx, ENV_PATH);
  return lua_tostring(L, -1);
}

static Env *check_env(lua_State *L) {
  Env *e = luaL_checkudata(L, 1, ENV_MT);
  if (!e->env) luaL_error(L, "store: %s is closed", env_path(L, 1));
  return e;
}

/* The reason (lua/connrt/errors.lua) of an LMDB failure: damaged data, or trouble with
 * the files themselves. */
static const char *reason_of(int rc) {
  switch (rc) {
  case MDB_CORRUPTED:
  case MDB_PAGE_NOTFOUND:
  case MDB_INVALID:
  case MDB_VERSION_MISMATCH:
  case MDB_BAD_TXN:
    return "damaged";
  case MDB_MAP_FULL:
    return "full";
  default:
    return "io";
  }
}

/* The failure message of store.open; closes what was opened. */
static int open_failed(lua_State *L, Env *e, const char *path, const char *what, int rc) {
  if (e->env) mdb_env_close(e->env);
  e->env = NULL;
  lua_pushnil(L);
  lua_pushfstring(L, "cannot open store %s: %s%s", path, what, mdb_strerror(rc));
  lua_pushstring(L, reason_of(rc));
  return 3;
}

/* store.open(path, dbnames, opts) -> env | nil, message. opts.map_size: bytes (1 GiB). */
static int store_open(lua_State *L) {
  size_t plen;
  const char *path = luaL_checklstring(L, 1, &plen);
  luaL_argcheck(L, plen > 0 && strlen(path) == plen, 1, "not a directory path");
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_Integer ndbs = luaL_len(L, 2);
  luaL_argcheck(L, ndbs >= 0 && ndbs <= MAX_DBS, 2, "too many databases");
  for (lua_Integer i = 1; i <= ndbs; i++) {
    if (lua_rawgeti(L, 2, i) != LUA_TSTRING) luaL_argerror(L, 2, "database names must be strings");
    lua_pop(L, 1);
  }
  lua_Integer map_size = DEFAULT_MAP_SIZE;
  if (!lua_isnoneornil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    if (lua_getfield(L, 3, "map_size") != LUA_TNIL) {
      int ok;
      map_size = lua_tointegerx(L, -1, &ok);
      luaL_argcheck(L, ok && map_size > 0, 3, "map_size must be a positive integer");
    }
    lua_pop(L, 1);
  }
  lua_settop(L, 2);

  /* Lua memory for everything first; then no Lua call can fail while LMDB holds state
   * that only the code below would release */
  MDB_dbi *dbis = lua_newuserdatauv(L, sizeof(MDB_dbi) * (size_t)(ndbs > 0 ? ndbs : 1), 0); /* 3 */
  Env *e = lua_newuserdatauv(L, sizeof *e, 2);                                           /* 4 */
  memset(e, 0, sizeof *e);
  luaL_setmetatable(L, ENV_MT);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, 4, ENV_PATH);

  int err = make_dirs(L, path, plen);
  if (err) return open_failed(L, e, path, "", err);
  int rc = mdb_env_create(&e->env);
  if (rc) {
    e->env = NULL;
    return open_failed(L, e, path, "", rc);
  }
  if ((rc = mdb_env_set_mapsize(e->env, (size_t)map_size)) ||
      (rc = mdb_env_set_maxdbs(e->env, (MDB_dbi)ndbs)) ||
      (rc = mdb_env_open(e->env, path, MDB_NOTLS, 0600))) {
    return open_failed(L, e, path, "", rc);
  }
  /* Frees the reader slots of processes that died inside a read transaction (SIGKILL,
   * a crash). LMDB clears its reader table only when a process opens the store while
   * no other has it open; while one does (a pipeline, a `connrt run` waiting for the
   * sign-in), each dead reader would keep its slot, pinning an old snapshot so that the
   * file only grows, and after 126 of them every transaction fails with
   * MDB_READERS_FULL. */
  int dead = 0;
  if ((rc = mdb_reader_check(e->env, &dead))) return open_failed(L, e, path, "", rc);
  guard_sigbus(L, path);
  /* The databases are opened in a read transaction when they all exist, so that opening
   * the store never waits for another process's write transaction (a reader need not);
   * only a store that lacks one takes the write lock to create it. */
  MDB_txn *txn;
  for (int create = 0; create <= 1; create++) {
    if ((rc = mdb_txn_begin(e->env, NULL, create ? 0 : MDB_RDONLY, &txn))) return open_failed(L, e, path, "", rc);
    for (lua_Integer i = 1; i <= ndbs; i++) {
      lua_rawgeti(L, 2, i); /* no allocation: the string is in the table */
      const char *name = lua_tostring(L, -1);
      rc = mdb_dbi_open(txn, name, create ? MDB_CREATE : 0, &dbis[i - 1]);
      if (rc == MDB_NOTFOUND && !create) {
        lua_pop(L, 1);
        break;
      }
      if (rc) {
        mdb_txn_abort(txn);
        lua_pushfstring(L, "database %s: ", name);
        return open_failed(L, e, path, lua_tostring(L, -1), rc);
      }
      lua_pop(L, 1);
    }
    if (rc == MDB_NOTFOUND) {
      mdb_txn_abort(txn);
      continue;
    }
    if ((rc = mdb_txn_commit(txn))) return open_failed(L, e, path, "", rc);
    break;
  }

  lua_createtable(L, 0, (int)ndbs);
  for (lua_Integer i = 1; i <= ndbs; i++) {
    lua_rawgeti(L, 2, i);
    lua_pushinteger(L, (lua_Integer)dbis[i - 1]);
    lua_rawset(L, -3);
  }
  lua_setiuservalue(L, 4, ENV_DBS);
  return 1;
}

/* Writers take an flock on data.mdb before LMDB's writer lock: LMDB's own lock has no
 * timeout, so a write behind another process's stuck (or stopped) write would wait
 * forever. Waits up to CONNRT_LOCK_TIMEOUT seconds (default 30). Returns 0 when locked
 * (or where flock is not supported: then LMDB's lock alone), else the seconds waited. */
static int lock_writer(MDB_env *env) {
  int fd;
  if (mdb_env_get_fd(env, &fd) != 0) return 0;
  const char *s = getenv("CONNRT_LOCK_TIMEOUT");
  double limit = s && *s ? strtod(s, NULL) : 30.0;
  if (!(limit >= 0 && limit < 1e6)) limit = 30.0;
  struct timespec t0, now, nap = { 0, 10 * 1000 * 1000 };
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (;;) {
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) return 0;
    if (errno == EINTR) continue;
    if (errno != EWOULDBLOCK) return 0;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double waited = (double)(now.tv_sec - t0.tv_sec) + (double)(now.tv_nsec - t0.tv_nsec) / 1e9;
    if (waited >= limit) return waited < 1 ? 1 : (int)waited;
    nanosleep(&nap, NULL);
  }
}

static void unlock_writer(MDB_env *env) {
  int fd;
  if (mdb_env_get_fd(env, &fd) == 0) flock(fd, LOCK_UN);
}

/* env:begin(write) -> txn; a read-only transaction unless write is true */
static int env_begin(lua_State *L) {
  Env *e = check_env(L);
  int write = lua_toboolean(L, 2);
  if (write && e->writer) {
    return luaL_error(L, "store: %s: a write transaction is already open (one at a time)", env_path(L, 1));
  }
  Txn *t = lua_newuserdatauv(L, sizeof *t, 1);
  memset(t, 0, sizeof *t);
  luaL_setmetatable(L, TXN_MT);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  int waited = write ? lock_writer(e->env) : 0;
  if (waited) {
    t->txn = NULL;
    return connrt_raise(L, "store", "locked", "%s is locked: another process has held its write lock for %d s (a stuck connrt? "
                      "CONNRT_LOCK_TIMEOUT sets how long to wait)", env_path(L, 1), waited);
  }
  int rc = mdb_txn_begin(e->env, NULL, write ? 0 : MDB_RDONLY, &t->txn);
  if (rc) {
    t->txn = NULL;
    if (write) unlock_writer(e->env);
    return connrt_raise(L, "store", reason_of(rc), "cannot begin a %s transaction in %s: %s",
                        write ? "write" : "read", env_path(L, 1), mdb_strerror(rc));
  }
  t->env = e;
  t->write = write;
  e->txns++;
  if (write) e->writer = 1;
  return 1;
}

/* env:close(); raises while transactions are open. Closing twice is harmless. */
static int env_close(lua_State *L) {
  Env *e = luaL_checkudata(L, 1, ENV_MT);
  if (e->env && e->txns > 0) {
    return luaL_error(L, "store: cannot close %s: %d transaction(s) still open", env_path(L, 1), e->txns);
  }
  env_shutdown(e);
  return 0;
}

/* __gc and __close: close now, or when the last open transaction ends. (__gc cannot
 * come under an open transaction, which references the environment; __close can.) */
static int env_gc(lua_State *L) {
  Env *e = luaL_checkudata(L, 1, ENV_MT);
  e->close_pending = 1;
  env_shutdown(e);
  return 0;
}

/* env:path() -> the directory */
/* env:file_id() -> "DEV:INO" of the data file this environment holds open (fstat of
 * its descriptor) | nil: compared with sys.file_id of the path, it says whether the path
 * still names the file that was opened (a store directory replaced under a running
 * `connrt proxy` does not). */
static int env_file_id(lua_State *L) {
  Env *e = check_env(L);
  int fd;
  struct stat st;
  if (mdb_env_get_fd(e->env, &fd) != 0 || fstat(fd, &st) == -1) {
    lua_pushnil(L);
    return 1;
  }
  lua_pushfstring(L, "%I:%I", (lua_Integer)st.st_dev, (lua_Integer)st.st_ino);
  return 1;
}

static int env_path_m(lua_State *L) {
  luaL_checkudata(L, 1, ENV_MT);
  env_path(L, 1);
  return 1;
}

/* ---- transactions ---- */

/* Ends the transaction (its cursor first): commits or aborts. Returns LMDB's code. */
static int txn_end(Txn *t, int commit) {
  if (t->cursor) mdb_cursor_close(t->cursor);
  t->cursor = NULL;
  int rc = 0;
  if (commit) rc = mdb_txn_commit(t->txn); /* frees the transaction even when it fails */
  else mdb_txn_abort(t->txn);
  t->txn = NULL;
  Env *e = t->env;
  e->txns--;
  if (t->write) {
    e->writer = 0;
    unlock_writer(e->env);
  }
  if (e->close_pending) env_shutdown(e);
  return rc;
}

static Txn *check_txn(lua_State *L) {
  Txn *t = luaL_checkudata(L, 1, TXN_MT);
  if (!t->txn) luaL_error(L, "store: transaction already ended");
  return t;
}

static void check_write(lua_State *L, Txn *t, const char *what) {
  if (!t->write) luaL_error(L, "store: %s in a read-only transaction", what);
}

/* The handle of the database named by argument 2 */
static MDB_dbi check_db(lua_State *L) {
  luaL_checkstring(L, 2);
  lua_getiuservalue(L, 1, 1);       /* the env */
  lua_getiuservalue(L, -1, ENV_DBS);
  lua_pushvalue(L, 2);
  if (lua_rawget(L, -2) != LUA_TNUMBER) luaL_error(L, "store: unknown database %s", lua_tostring(L, 2));
  MDB_dbi dbi = (MDB_dbi)lua_tointeger(L, -1);
  lua_pop(L, 3);
  return dbi;
}

static MDB_val check_val(lua_State *L, int arg) {
  MDB_val v;
  v.mv_data = (void *)luaL_checklstring(L, arg, &v.mv_size);
  return v;
}

/* txn:id() -> integer: for a read transaction, the id of the last write transaction it
 * sees (its snapshot); compared with env:last_txnid() later, equal means nothing was
 * committed since this snapshot */
static int txn_id(lua_State *L) {
  Txn *t = check_txn(L);
  lua_pushinteger(L, (lua_Integer)mdb_txn_id(t->txn));
  return 1;
}

/* txn:get(db, key) -> value | nil */
static int txn_get(lua_State *L) {
  Txn *t = check_txn(L);
  MDB_dbi dbi = check_db(L);
  MDB_val k = check_val(L, 3), v;
  int rc = mdb_get(t->txn, dbi, &k, &v);
  if (rc == MDB_NOTFOUND) {
    lua_pushnil(L);
    return 1;
  }
  if (rc) return connrt_raise(L, "store", reason_of(rc), "cannot read from %s: %s", lua_tostring(L, 2), mdb_strerror(rc));
  lua_pushlstring(L, v.mv_data, v.mv_size);
  return 1;
}

/* txn:put(db, key, value) */
static int txn_put(lua_State *L) {
  Txn *t = check_txn(L);
  check_write(L, t, "put");
  MDB_dbi dbi = check_db(L);
  MDB_val k = check_val(L, 3), v = check_val(L, 4);
  int rc = mdb_put(t->txn, dbi, &k, &v, 0);
  if (rc) return connrt_raise(L, "store", reason_of(rc), "cannot write to %s: %s", lua_tostring(L, 2), mdb_strerror(rc));
  return 0;
}

/* txn:del(db, key) -> true if the key existed, false if not */
static int txn_del(lua_State *L) {
  Txn *t = check_txn(L);
  check_write(L, t, "del");
  MDB_dbi dbi = check_db(L);
  MDB_val k = check_val(L, 3);
  int rc = mdb_del(t->txn, dbi, &k, NULL);
  if (rc && rc != MDB_NOTFOUND) {
    return connrt_raise(L, "store", reason_of(rc), "cannot delete from %s: %s", lua_tostring(L, 2), mdb_strerror(rc));
  }
  lua_pushboolean(L, rc == 0);
  return 1;
}

/* txn:list(db, prefix) -> { {key, value}, ... } for the keys starting with prefix (all
 * when it is absent or empty), in key order. */
static int txn_list(lua_State *L) {
  Txn *t = check_txn(L);
  MDB_dbi dbi = check_db(L);
  size_t plen;
  const char *prefix = luaL_optlstring(L, 3, "", &plen);
  lua_newtable(L);
  if (t->cursor) mdb_cursor_close(t->cursor);
  t->cursor = NULL;
  int rc = mdb_cursor_open(t->txn, dbi, &t->cursor);
  if (rc) {
    t->cursor = NULL;
    return connrt_raise(L, "store", reason_of(rc), "cannot list %s: %s", lua_tostring(L, 2), mdb_strerror(rc));
  }
  MDB_val k = { plen, (void *)prefix }, v;
  rc = mdb_cursor_get(t->cursor, &k, &v, plen > 0 ? MDB_SET_RANGE : MDB_FIRST);
  lua_Integer n = 0;
  while (rc == 0 && k.mv_size >= plen && memcmp(k.mv_data, prefix, plen) == 0) {
    lua_createtable(L, 2, 0);
    lua_pushlstring(L, k.mv_data, k.mv_size);
    lua_rawseti(L, -2, 1);
    lua_pushlstring(L, v.mv_data, v.mv_size);
    lua_rawseti(L, -2, 2);
    lua_rawseti(L, -2, ++n);
    rc = mdb_cursor_get(t->cursor, &k, &v, MDB_NEXT);
  }
  mdb_cursor_close(t->cursor);
  t->cursor = NULL;
  if (rc && rc != MDB_NOTFOUND) {
    return connrt_raise(L, "store", reason_of(rc), "cannot list %s: %s", lua_tostring(L, 2), mdb_strerror(rc));
  }
  return 1;
}

/* txn:commit() */
static int txn_commit(lua_State *L) {
  Txn *t = check_txn(L);
  int rc = txn_end(t, 1);
  if (rc) {
    lua_getiuservalue(L, 1, 1);
    return connrt_raise(L, "store", reason_of(rc), "cannot commit to %s: %s", env_path(L, -1),
                        mdb_strerror(rc));
  }
  return 0;
}

/* txn:abort() */
static int txn_abort(lua_State *L) {
  txn_end(check_txn(L), 0);
  return 0;
}

/* __close and __gc: abort a transaction still open; nothing once it has ended */
static int txn_gc(lua_State *L) {
  Txn *t = luaL_checkudata(L, 1, TXN_MT);
  if (t->txn) txn_end(t, 0);
  return 0;
}

/* env:last_txnid() -> integer: the id of the last committed write transaction (any
 * process's), from the data file's meta pages, no transaction begun. LMDB writes the meta
 * page before it lets new read transactions see the commit, so this may be ahead of what
 * a read transaction begun now sees: compare it with the txn:id() of the read that
 * produced what you hold, never with an earlier last_txnid() (a long-lived reader,
 * connrt proxy, asks it before reading a record again). */
static int env_last_txnid(lua_State *L) {
  Env *e = check_env(L);
  MDB_envinfo info;
  int rc = mdb_env_info(e->env, &info);
  if (rc) return connrt_raise(L, "store", reason_of(rc), "cannot read the state of %s: %s", env_path(L, 1), mdb_strerror(rc));
  lua_pushinteger(L, (lua_Integer)info.me_last_txnid);
  return 1;
}

static const luaL_Reg env_methods[] = {
  { "begin", env_begin },
  { "last_txnid", env_last_txnid },
  { "close", env_close },
  { "path", env_path_m },
  { "file_id", env_file_id },
  { NULL, NULL }
};

static const luaL_Reg txn_methods[] = {
  { "get", txn_get },
  { "id", txn_id },
  { "put", txn_put },
  { "del", txn_del },
  { "list", txn_list },
  { "commit", txn_commit },
  { "abort", txn_abort },
  { NULL, NULL }
};

static const luaL_Reg store_funcs[] = {
  { "open", store_open },
  { NULL, NULL }
};

static const luaL_Reg env_meta[] = {
  { "__gc", env_gc },
  { "__close", env_gc },
  { NULL, NULL }
};

static const luaL_Reg txn_meta[] = {
  { "__gc", txn_gc },
  { "__close", txn_gc },
  { NULL, NULL }
};

int luaopen_connrt_lmdb(lua_State *L) {
  connrt_class(L, ENV_MT, env_meta, env_methods);
  connrt_class(L, TXN_MT, txn_meta, txn_methods);
  luaL_newlib(L, store_funcs);
  return 1;
}
