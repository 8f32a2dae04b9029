/*
 * sys.c - the few operating-system services the Lua layer needs and Lua lacks:
 * sub-second clocks and sleep, terminal checks, echo-free reads, the process id and its
 * PID namespace, directories with a mode, a file's real path, starting a detached
 * helper (the browser) without a shell, and without the variables that hold connrt's
 * secrets, the CPUs it may use, and running a caller's program with tokens in its
 * environment (connrt exec: replacing connrt, or as a child whose output connrt reads
 * and whose signals it passes on).
 *
 * Opens the `connrt.sys` module.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "api.h"

extern char **environ;

/* sys.time() -> seconds since the epoch, with sub-second precision */
static int sys_time(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
  return 1;
}

/* sys.monotime() -> seconds on a clock that never jumps, for timeouts */
static int sys_monotime(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
  return 1;
}

/* sys.sleep(seconds) */
static int sys_sleep(lua_State *L) {
  lua_Number s = luaL_checknumber(L, 1);
  if (s <= 0) return 0;
  struct timespec ts = { (time_t)s, (long)((s - (lua_Number)(time_t)s) * 1e9) };
  while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {}
  return 0;
}

/* sys.isatty(fd) -> boolean; fd 0, 1 or 2 */
static int sys_isatty(lua_State *L) {
  lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
  return 1;
}

/* sys.readable(fd, seconds) -> boolean: whether fd has input (or end of file) within
 * the time given, so a read of a pasted line can time out. */
static int sys_readable(lua_State *L) {
  int fd = (int)luaL_checkinteger(L, 1);
  lua_Number s = luaL_checknumber(L, 2);
  struct pollfd p = { fd, POLLIN, 0 };
  int ms = s <= 0 ? 0 : (s > 2e9 / 1000 ? 2000000000 : (int)(s * 1000));
  int rc;
  do rc = poll(&p, 1, ms); while (rc == -1 && errno == EINTR);
  lua_pushboolean(L, rc > 0);
  return 1;
}

/* sys.getpid() -> integer */
static int sys_getpid(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)getpid());
  return 1;
}

/* sys.cpus() -> integer: the CPUs this process may run on (its affinity mask, so
 * taskset and a container's cpuset count), else the online ones; at least 1. */
static int sys_cpus(lua_State *L) {
  cpu_set_t set;
  long n = 0;
  if (sched_getaffinity(0, sizeof set, &set) == 0) n = CPU_COUNT(&set);
  if (n <= 0) n = sysconf(_SC_NPROCESSORS_ONLN);
  lua_pushinteger(L, n > 0 ? (lua_Integer)n : 1);
  return 1;
}

/* sys.pidns() -> string | nil: this process's PID namespace ("pid:[4026531836]"), so a
 * process id recorded by another process is only read as a process of ours when both
 * share the namespace; nil where /proc does not say. */
static int sys_pidns(lua_State *L) {
  char buf[64];
  ssize_t n = readlink("/proc/self/ns/pid", buf, sizeof buf);
  if (n <= 0 || n >= (ssize_t)sizeof buf) {
    lua_pushnil(L);
    return 1;
  }
  lua_pushlstring(L, buf, (size_t)n);
  return 1;
}

/* sys.out_of_descriptors([n]) -> true when this process cannot open n more descriptors
 * (default 8; EMFILE: its open file limit, ENFILE: the system's). Asked after a failure,
 * it tells a resource limit from a bug without reading any message; the margin because
 * the failed operation may have released what it had opened (Lua's loader, a libcurl
 * socket). Eventfds, which need no file system, are made and closed again. */
#define DESCRIPTOR_PROBE_MAX 64
static int sys_out_of_descriptors(lua_State *L) {
  lua_Integer n = luaL_optinteger(L, 1, 8);
  luaL_argcheck(L, n >= 1 && n <= DESCRIPTOR_PROBE_MAX, 1, "between 1 and 64");
  int fds[DESCRIPTOR_PROBE_MAX], got = 0, out = 0;
  while (got < n) {
    int fd = eventfd(0, EFD_CLOEXEC);
    if (fd < 0) {
      out = errno == EMFILE || errno == ENFILE;
      break;
    }
    fds[got++] = fd;
  }
  while (got > 0) close(fds[--got]);
  lua_pushboolean(L, out);
  return 1;
}

/* sys.mkdir(path, mode) -> true | nil, message. Creates missing parents too (with the
 * same mode); an existing directory is not an error and keeps its mode. */
static int sys_mkdir(lua_State *L) {
  size_t len;
  const char *path = luaL_checklstring(L, 1, &len);
  mode_t mode = (mode_t)luaL_optinteger(L, 2, 0700);
  luaL_Buffer b;
  char *buf = luaL_buffinitsize(L, &b, len + 1);
  memcpy(buf, path, len + 1);
  for (char *p = buf + 1; ; p++) {
    if (*p == '/' || *p == '\0') {
      char saved = *p;
      *p = '\0';
      if (mkdir(buf, mode) == -1 && errno != EEXIST) {
        lua_pushnil(L);
        lua_pushfstring(L, "cannot create directory %s: %s", buf, strerror(errno));
        return 2;
      }
      *p = saved;
      if (saved == '\0') break;
    }
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* sys.chmod(path, mode) -> true | nil, message */
static int sys_chmod(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  if (chmod(path, (mode_t)luaL_checkinteger(L, 2)) == -1) {
    lua_pushnil(L);
    lua_pushfstring(L, "cannot chmod %s: %s", path, strerror(errno));
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* Writes all of data to fd and syncs it; 0 or an errno value. */
static int write_all(int fd, const char *data, size_t len) {
  size_t off = 0;
  while (off < len) {
    ssize_t n = write(fd, data + off, len - off);
    if (n == -1 && errno == EINTR) continue;
    if (n <= 0) return n == 0 ? EIO : errno;
    off += (size_t)n;
  }
  return fsync(fd) == -1 ? errno : 0;
}

/* sys.write_private(path, data) -> true | nil, message. Creates the file 0600 with all
 * of data or not at all: the data is written and synced in an unnamed (O_TMPFILE) or
 * temporary file beside it, which is then linked to path. link() fails when path exists,
 * so an existing file is never overwritten (keys are written once), and a process
 * killed half way leaves no empty or partial key behind to lock the store. */
static int sys_write_private(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  const char *slash = strrchr(path, '/');
  const char *dir = slash ? (slash == path ? "/" : lua_pushlstring(L, path, (size_t)(slash - path))) : ".";
  const char *tmp = lua_pushfstring(L, "%s.%d.tmp", path, (int)getpid());
  char proc[64];
  int err = 0, fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
  if (fd >= 0) {
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    if (!(err = write_all(fd, data, len)) && linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW) == -1) err = errno;
    close(fd);
  } else {
    /* no O_TMPFILE here: a named temporary file (one a killed process left is replaced) */
    unlink(tmp);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd == -1) {
      err = errno;
    } else {
      if (!(err = write_all(fd, data, len)) && link(tmp, path) == -1) err = errno;
      close(fd);
      unlink(tmp);
    }
  }
  if (err) {
    lua_pushnil(L);
    lua_pushfstring(L, "cannot %s %s: %s", err == EEXIST ? "create" : "write", path, strerror(err));
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* sys.mode(path) -> permission bits | nil, message */
static int sys_mode(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct stat st;
  if (stat(path, &st) == -1) {
    lua_pushnil(L);
    lua_pushfstring(L, "cannot stat %s: %s", path, strerror(errno));
    return 2;
  }
  lua_pushinteger(L, st.st_mode & 07777);
  return 1;
}

/* sys.file_id(path) -> "DEV:INO" of the file path names now | nil, err: the same text
 * as an LMDB environment's env:file_id() for the file it holds open. */
static int sys_file_id(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct stat st;
  if (stat(path, &st) == -1) {
    lua_pushnil(L);
    lua_pushfstring(L, "cannot stat %s: %s", path, strerror(errno));
    return 2;
  }
  lua_pushfstring(L, "%I:%I", (lua_Integer)st.st_dev, (lua_Integer)st.st_ino);
  return 1;
}

/* sys.environ_with(prefix) -> array of "NAME=value": the environment's entries whose
 * name starts with prefix, in the order of the environment (Lua has no way to list it). */
static int sys_environ_with(lua_State *L) {
  size_t plen;
  const char *prefix = luaL_checklstring(L, 1, &plen);
  lua_newtable(L);
  lua_Integer n = 0;
  for (char **e = environ; e && *e; e++) {
    if (strncmp(*e, prefix, plen) == 0 && strchr(*e, '=')) {
      lua_pushstring(L, *e);
      lua_rawseti(L, -2, ++n);
    }
  }
  return 1;
}

/* sys.realpath(path) -> absolute path with no symbolic link, "." or ".." | nil, err:
 * what a connection remembers as its connector's file, so that a later `connrt update`
 * does not depend on the directory it runs in. */
static int sys_realpath(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  char *real = realpath(path, NULL);
  if (real == NULL) {
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", path, strerror(errno));
    return 2;
  }
  lua_pushstring(L, real);
  free(real);
  return 1;
}

/* sys.readline_noecho(prompt) -> line | nil: reads a line from the terminal on standard
 * input with echo off, for secrets. */
static int sys_readline_noecho(lua_State *L) {
  const char *prompt = luaL_optstring(L, 1, "");
  struct termios old, quiet;
  int tty = tcgetattr(STDIN_FILENO, &old) == 0;
  if (tty) {
    quiet = old;
    quiet.c_lflag &= ~(tcflag_t)ECHO;
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
  }
  fputs(prompt, stderr);
  fflush(stderr);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  int c, got = 0;
  while ((c = getchar()) != EOF && c != '\n') {
    luaL_addchar(&b, (char)c);
    got = 1;
  }
  if (tty) {
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
    fputc('\n', stderr);
  }
  if (!got && c == EOF) {
    lua_pushnil(L);
    return 1;
  }
  luaL_pushresult(&b);
  return 1;
}

/* The environment variables connrt reads secrets from, the one list of them (the README
 * points here): no program connrt starts inherits one. A name ending in '_' is a
 * prefix. CONNRT_KEY_FILE and CONNRT_CLIENT_ID name no secret and are passed on. */
static const char *const SECRET_ENV[] = {
  "CONNRT_KEY",            /* the store's sealing key */
  "CONNRT_NEW_KEY",        /* the key connrt rekey seals under */
  "CONNRT_CLIENT_SECRET",  /* the app's client secret */
  "CONNRT_FIELD_",         /* field values: API keys, passwords, tokens */
  /* libpq's one secret variable (a PostgreSQL store's password): of the connection
   * options PQconndefaults() shows as secret ("*"), password is read from PGPASSWORD and
   * sslpassword from no variable. PGPASSFILE and PGSERVICEFILE name files and are passed
   * on, so a nested connrt still reaches the store through ~/.pgpass. */
  "PGPASSWORD",
  NULL
};

static int is_secret_env(const char *entry) {
  for (int i = 0; SECRET_ENV[i]; i++) {
    size_t n = strlen(SECRET_ENV[i]);
    if (strncmp(entry, SECRET_ENV[i], n) == 0 && (SECRET_ENV[i][n - 1] == '_' || entry[n] == '='))
      return 1;
  }
  return 0;
}

/* The secrets of a postgres:// or postgresql:// URL, by connrt's one rule (shared by argv
 * hiding, the children's CONNRT_STORE and store_pg.lua's names and redaction, through
 * sys.pg_url_secrets / sys.pg_url_where). A URL is read only when it is plain (pg_plain):
 *   scheme://[user[:password]@]hosts[/database][?name=value[&name=value]...]
 * with no '#' anywhere (libpq has no fragment: it is part of whatever it stands in),
 * where the user, password, hosts and database hold no raw '@', '/' or '?', every host's
 * port is a number, every parameter has a name without '@' and an '=', at most
 * PG_SECRET_PARAMS of them secret, and no '@' comes before the first '/' but the user part's
 * (libpq's own parser ends a user part there). Such a URL has one reading, libpq's among them: the password is
 * all of the user part after its first ':', and the secret parameters are those whose
 * name (percent-decoded) is one of the options PQconndefaults() shows as secret, password
 * and sslpassword. Any other URL may be read several ways (libpq ends the user part at
 * the first '@' or '/', a person who wrote a raw '?' or '/' into a password meant another
 * '@'), and every way hides a password somewhere else: all of it after "://" is taken for
 * secret, and the store refuses it (sys.pg_url_where's misread) before libpq reads it.
 * Calls fn for each: `from`..`to` is what to remove (the ':' and password; the whole
 * parameter with its '&'; all after "://"), `value`..`end` the value. Returns 0 when s is
 * not such a URL. */
typedef void (*pg_secret_fn)(void *ud, size_t from, size_t to, size_t value, size_t end);

static int hexval(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = (unsigned char)(c | 0x20);
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int pg_param_is_secret(const char *k, size_t n) {
  char name[32];
  size_t m = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)k[i];
    if (c == '%' && i + 2 < n && hexval((unsigned char)k[i + 1]) >= 0
        && hexval((unsigned char)k[i + 2]) >= 0) {
      c = (unsigned char)(hexval((unsigned char)k[i + 1]) * 16 + hexval((unsigned char)k[i + 2]));
      i += 2;
    }
    if (m == sizeof name - 1) return 0;
    name[m++] = (char)c;
  }
  name[m] = 0;
  /* (libpq 18's oauth_client_secret too, where a newer libpq is built against) */
  /* (in any case: libpq refuses "PASSWORD", but what it holds is a password still) */
  return strcasecmp(name, "password") == 0 || strcasecmp(name, "sslpassword") == 0
         || strcasecmp(name, "oauth_client_secret") == 0;
}

/* Where the scheme's "://" ends (0: not a postgres URL). */
static size_t pg_scheme_end(const char *s) {
  if (strncmp(s, "postgresql://", 13) == 0) return 13;
  if (strncmp(s, "postgres://", 11) == 0) return 11;
  return 0;
}

/* True when the host part s[0..n) is one libpq can read: comma-separated hosts, each
 * host[:port] or [v6 address][:port], every port all digits. */
static int pg_hosts_ok(const char *s, size_t n) {
  for (size_t i = 0; i <= n;) {
    size_t len = 0, k = 0;
    while (i + len < n && s[i + len] != ',') len++;
    const char *h = s + i;
    if (len && h[0] == '[') {
      while (k < len && h[k] != ']') k++;
      if (k == len) return 0;
      k++;
    } else {
      while (k < len && h[k] != ':') k++;
    }
    if (k < len) {
      if (h[k] != ':') return 0;
      for (size_t j = k + 1; j < len; j++)
        if (h[j] < '0' || h[j] > '9') return 0;
    }
    i += len + 1;
  }
  return 1;
}

/* The secret parameters a plain URL may have at most (more: not plain). */
#define PG_SECRET_PARAMS 8

/* True when s (whose "://" ends at start) is plain, by the grammar above; then *at is the
 * '@' that ends its user part (0: none) and *hosts, *hn its host part. */
static int pg_plain(const char *s, size_t start, size_t *at, size_t *hosts, size_t *hn) {
  /* libpq has no fragment: a '#' is part of whatever it stands in */
  if (strchr(s + start, '#')) return 0;
  size_t i = start + strcspn(s + start, "@/?");
  *at = 0;
  if (s[i] == '@') {
    *at = i;
    i++;
  } else {
    /* libpq ends a user part at the first '@' before any '/', a '?' or '#' before it
     * included: without one of ours, there must be none of libpq's */
    i = start;
    if (s[start + strcspn(s + start, "@/")] == '@') return 0;
  }
  *hosts = i;
  *hn = strcspn(s + i, "@/?");
  i += *hn;
  if (s[i] == '@' || !pg_hosts_ok(s + *hosts, *hn)) return 0;
  if (s[i] == '/') {
    i++;
    i += strcspn(s + i, "@/?");
    if (s[i] == '@' || s[i] == '/') return 0;
  }
  if (s[i] == '?') {
    int secret = 0;
    i++;
    while (s[i]) {
      size_t len = strcspn(s + i, "&");
      const char *eq = memchr(s + i, '=', len);
      if (len) {
        if (!eq || memchr(s + i, '@', (size_t)(eq - (s + i)))) return 0;
        if (pg_param_is_secret(s + i, (size_t)(eq - (s + i))) && ++secret > PG_SECRET_PARAMS) return 0;
      }
      i += len + (s[i + len] == '&');
    }
  }
  return 1;
}

static int pg_url_secrets(const char *s, pg_secret_fn fn, void *ud) {
  size_t start = pg_scheme_end(s);
  if (!start) return 0;
  size_t at, hosts, hn, end = strlen(s);
  if (!pg_plain(s, start, &at, &hosts, &hn)) {
    if (end > start) fn(ud, start, end, start, end);
    return 1;
  }
  if (at) {
    const char *colon = memchr(s + start, ':', at - start);
    if (colon) fn(ud, (size_t)(colon - s), at, (size_t)(colon - s) + 1, at);
  }
  /* the same '?' and pairs pg_plain counted, so no more than PG_SPANS spans */
  const char *q = memchr(s + hosts, '?', end - hosts);
  if (!q) return 1;
  size_t i = (size_t)(q - s) + 1;
  while (s[i]) {
    size_t len = strcspn(s + i, "&");
    size_t next = i + len + (s[i + len] == '&');
    const char *eq = memchr(s + i, '=', len);
    if (eq && pg_param_is_secret(s + i, (size_t)(eq - (s + i))))
      fn(ud, i, next, (size_t)(eq - s) + 1, i + len);
    i = next;
  }
  return 1;
}

/* The spans pg_url_secrets found, in order: a plain URL's password and secret parameters,
 * or all of another URL after "://". */
#define PG_SPANS (1 + PG_SECRET_PARAMS)
typedef struct { size_t n, from[PG_SPANS], to[PG_SPANS], value[PG_SPANS], end[PG_SPANS]; } pg_spans;

static void pg_span_add(void *ud, size_t from, size_t to, size_t value, size_t end) {
  pg_spans *sp = ud;
  if (sp->n == PG_SPANS) return;
  sp->from[sp->n] = from; sp->to[sp->n] = to; sp->value[sp->n] = value; sp->end[sp->n] = end;
  sp->n++;
}

/* Overwrites, in place, the secrets of every postgres URL in s (one may follow '=', as in
 * --store=URL) with '*'; returns how many were not empty. For main.c: argv as
 * /proc/PID/cmdline shows it. */
int connrt_hide_pg_password(char *s) {
  int count = 0;
  for (char *u = s; (u = strstr(u, "postgres")) != NULL; u++) {
    pg_spans sp = { 0 };
    if (!pg_url_secrets(u, pg_span_add, &sp)) continue;
    for (size_t i = 0; i < sp.n; i++) {
      if (sp.end[i] == sp.value[i]) continue;
      memset(u + sp.value[i], '*', sp.end[i] - sp.value[i]);
      count++;
    }
  }
  return count;
}

/* [-0, +1] `url` without its secrets (pg_url_secrets): pushes it. */
static void push_pg_url_without_secrets(lua_State *L, const char *url) {
  pg_spans sp = { 0 };
  pg_url_secrets(url, pg_span_add, &sp);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  size_t at = 0;
  for (size_t i = 0; i < sp.n; i++) {
    luaL_addlstring(&b, url + at, sp.from[i] - at);
    at = sp.to[i];
  }
  luaL_addstring(&b, url + at);
  luaL_pushresult(&b);
  /* a removed last parameter leaves the '&' or '?' in front of it (only that one: a '&'
   * or '?' that ends a database name or a value is the URL's own) */
  size_t n, last = sp.n ? sp.n - 1 : 0;
  const char *r = lua_tolstring(L, -1, &n);
  if (sp.n && sp.to[last] == strlen(url) && sp.from[last] > 0
      && (url[sp.from[last] - 1] == '&' || url[sp.from[last] - 1] == '?') && n
      && r[n - 1] == url[sp.from[last] - 1]) {
    lua_pushlstring(L, r, n - 1);
    lua_remove(L, -2);
  }
}

/* sys.pg_url_secrets(url) -> url without its secrets, {secret, ...}: a postgres:// URL's
 * password and password or sslpassword parameters as written (percent-encoded), by the
 * rules of pg_url_secrets; the URL itself and {} for anything else. */
static int sys_pg_url_secrets(lua_State *L) {
  const char *url = luaL_checkstring(L, 1);
  pg_spans sp = { 0 };
  pg_url_secrets(url, pg_span_add, &sp);
  push_pg_url_without_secrets(L, url);
  lua_createtable(L, (int)sp.n, 0);
  for (size_t i = 0; i < sp.n; i++) {
    lua_pushlstring(L, url + sp.value[i], sp.end[i] - sp.value[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 2;
}

/* sys.pg_url_where(url) -> scheme, host, database, misread: what a message may name of a
 * postgres:// URL, by the rule of pg_url_secrets: of a plain URL, the host part (host,
 * port, several comma-separated, "" when left out) and the database (percent-encoded as
 * written, "" when left out), misread false; of any other, "" and "", misread true (it
 * may be read several ways, and its host part may hold a password's pieces: the store
 * refuses it, and a message names neither). nil for anything else. Never any of the user
 * part, password or parameters. */
static int sys_pg_url_where(lua_State *L) {
  const char *url = luaL_checkstring(L, 1);
  size_t start = pg_scheme_end(url);
  if (!start) {
    lua_pushnil(L);
    return 1;
  }
  size_t at, h, hn;
  int plain = pg_plain(url, start, &at, &h, &hn);
  lua_pushlstring(L, url, start - 3);
  if (!plain) {
    lua_pushliteral(L, "");
    lua_pushliteral(L, "");
    lua_pushboolean(L, 1);
    return 4;
  }
  lua_pushlstring(L, url + h, hn);
  size_t d = h + hn;
  if (url[d] == '/') {
    d++;
    lua_pushlstring(L, url + d, strcspn(url + d, "?#"));
  } else {
    lua_pushliteral(L, "");
  }
  lua_pushboolean(L, 0);
  return 4;
}

/* The environment entry as a child gets it: a postgres CONNRT_STORE without its password
 * (the rest of the URL stays, so a nested connrt reaches the store through ~/.pgpass or
 * PGPASSFILE), pushed onto the table at `anchor` that keeps it; else the entry itself. */
static char *child_entry(lua_State *L, char *entry, int anchor) {
  static const char name[] = "CONNRT_STORE=";
  if (strncmp(entry, name, sizeof name - 1) != 0) return entry;
  /* the URL wherever it starts in the value (the store refuses one after other text, but
   * a child's copy must not show its password either) */
  const char *v = entry + sizeof name - 1, *u = v;
  while ((u = strstr(u, "postgres")) != NULL && !pg_scheme_end(u)) u++;
  if (!u) u = v;
  lua_pushstring(L, name);
  lua_pushlstring(L, v, (size_t)(u - v));
  push_pg_url_without_secrets(L, u);
  lua_concat(L, 3);
  char *r = (char *)lua_tostring(L, -1);
  lua_rawseti(L, anchor, (lua_Integer)lua_rawlen(L, anchor) + 1);
  return r;
}

/* [-0, +1] The environment without SECRET_ENV (and a postgres CONNRT_STORE without its
 * password: child_entry), as a NULL-terminated array in a userdata (pushed): built
 * before fork, so the child allocates nothing. Its strings are environ's own, or
 * anchored in the userdata's user value. */
static char **push_child_env(lua_State *L) {
  size_t n = 0;
  for (char **e = environ; *e; e++) n++;
  char **env = lua_newuserdatauv(L, sizeof(char *) * (n + 1), 1);
  lua_newtable(L);
  int anchor = lua_gettop(L);
  size_t k = 0;
  for (char **e = environ; *e; e++)
    if (!is_secret_env(*e)) env[k++] = child_entry(L, *e, anchor);
  env[k] = NULL;
  lua_setiuservalue(L, -2, 1);
  return env;
}

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* The descriptors from 3 up that connrt was started with (the caller's: a make jobserver,
 * a `3<file` redirection), noted before main: a program connrt runs for its caller (connrt
 * exec) gets them as any program would; the descriptors connrt opens itself it does not. */
#define INHERITED_MAX 1024
static unsigned char inherited[INHERITED_MAX / 8];

__attribute__((constructor)) static void note_inherited(void) {
  struct rlimit rl;
  int max = INHERITED_MAX;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)max) max = (int)rl.rlim_cur;
  for (int fd = 3; fd < max; fd++)
    if (fcntl(fd, F_GETFD) != -1) inherited[fd / 8] |= (unsigned char)(1u << (fd % 8));
}

static int was_inherited(unsigned fd) {
  return fd < INHERITED_MAX && (inherited[fd / 8] >> (fd % 8)) & 1;
}

/* Closes (close_now) or marks close-on-exec the descriptors first..last. close_range(2)
 * (Linux 5.9; CLOSE_RANGE_CLOEXEC 5.11), else one at a time up to RLIMIT_NOFILE.
 * Allocates nothing: safe after fork. */
static void fds_range(unsigned first, unsigned last, int close_now) {
  if (first > last) return;
#ifdef SYS_close_range
  if (syscall(SYS_close_range, first, last, close_now ? 0U : CLOSE_RANGE_CLOEXEC) == 0) return;
#endif
  struct rlimit rl;
  unsigned max = 65536;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)max)
    max = (unsigned)rl.rlim_cur;
  for (unsigned fd = first; fd <= last && fd < max; fd++) {
    if (close_now) {
      close((int)fd);
    } else {
      int flags = fcntl((int)fd, F_GETFD);
      if (flags >= 0 && !(flags & FD_CLOEXEC)) fcntl((int)fd, F_SETFD, flags | FD_CLOEXEC);
    }
  }
}

/* The descriptors from 3 up are closed (close_now) or marked close-on-exec, so a program
 * connrt starts does not get data.mdb (read-write), libcurl's sockets or any other of
 * connrt's own; with keep_inherited, those connrt was started with stay as they are. */
static void fds_from_3(int close_now, int keep_inherited) {
  unsigned first = 3;
  if (keep_inherited) {
    for (unsigned fd = 3; fd < INHERITED_MAX; fd++) {
      if (!was_inherited(fd)) continue;
      if (fd > first) fds_range(first, fd - 1, close_now);
      first = fd + 1;
    }
  }
  fds_range(first, ~0U, close_now);
}

/* sys.spawn_detached(argv) -> pid | nil, message. Starts argv[1] with arguments argv[2..]
 * searched on PATH, no shell involved, standard input and output on /dev/null, and does
 * not wait for it (its exit is reaped by a double fork). Its environment is connrt's
 * without the variables of SECRET_ENV; it gets no descriptor but 0, 1 and 2. */
static int sys_spawn_detached(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  int n = (int)luaL_len(L, 1);
  luaL_argcheck(L, n >= 1, 1, "empty argv");
  char **env = push_child_env(L);
  const char **argv = lua_newuserdatauv(L, sizeof(char *) * (size_t)(n + 1), 0);
  /* Each entry stays on the stack until we return: a number is converted to a string
   * in its stack slot only (the table keeps the number), so popping it would leave
   * argv pointing at a string the collector may free. */
  luaL_checkstack(L, n, "argv too long");
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, i);
    argv[i - 1] = luaL_checkstring(L, -1);
  }
  argv[n] = NULL;
  pid_t child = fork();
  if (child == -1) {
    lua_pushnil(L);
    lua_pushfstring(L, "cannot start %s: %s", argv[0], strerror(errno));
    return 2;
  }
  if (child == 0) {
    setsid();
    int fd = open("/dev/null", O_RDWR);
    if (fd >= 0) { dup2(fd, 0); dup2(fd, 1); }
    fds_from_3(1, 0); /* the browser is connrt's: nothing but 0, 1, 2 (/dev/null's own too) */
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], NULL, NULL, (char *const *)argv, env);
    _exit(rc == 0 ? 0 : 127);
  }
  int status = 0;
  while (waitpid(child, &status, 0) == -1 && errno == EINTR) {}
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "cannot start %s", argv[0]);
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* [-0, +2] The environment of a program connrt runs *for* its caller (connrt exec):
 * connrt's without SECRET_ENV, with each NAME = value of the table at `idx` (absolute
 * index; nil for none) set, replacing a variable of the same name. Pushes the
 * NULL-terminated array (a userdata) and a table anchoring the added "NAME=value"
 * strings, built before any fork, so a child allocates nothing. */
static char **push_exec_env(lua_State *L, int idx) {
  size_t n = 0, extra = 0;
  for (char **e = environ; *e; e++) n++;
  if (!lua_isnoneornil(L, idx)) {
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, idx)) { extra++; lua_pop(L, 1); }
  }
  char **env = lua_newuserdatauv(L, sizeof(char *) * (n + extra + 1), 0);
  lua_createtable(L, (int)extra, 0);
  int strings = lua_gettop(L);
  size_t k = 0;
  if (extra) {
    lua_pushnil(L);
    while (lua_next(L, idx)) {
      const char *name = luaL_checkstring(L, -2), *value = luaL_checkstring(L, -1);
      luaL_argcheck(L, *name && !strchr(name, '='), idx, "bad variable name");
      lua_pushfstring(L, "%s=%s", name, value);
      env[k++] = (char *)lua_tostring(L, -1);
      lua_rawseti(L, strings, (lua_Integer)k);
      lua_pop(L, 1);
    }
  }
  size_t added = k;
  for (char **e = environ; *e; e++) {
    if (is_secret_env(*e)) continue;
    const char *eq = strchr(*e, '=');
    size_t len = eq ? (size_t)(eq - *e) : strlen(*e);
    int replaced = 0;
    for (size_t i = 0; i < added && !replaced; i++)
      replaced = strncmp(env[i], *e, len) == 0 && env[i][len] == '=';
    if (!replaced) env[k++] = child_entry(L, *e, strings);
  }
  env[k] = NULL;
  return env;
}

/* [-0, +2] argv (the table at `idx`) as a NULL-terminated array: pushes the array and a
 * table anchoring its strings (a number is converted to a new string there). */
static char **push_argv(lua_State *L, int idx) {
  luaL_checktype(L, idx, LUA_TTABLE);
  int n = (int)luaL_len(L, idx);
  luaL_argcheck(L, n >= 1, idx, "empty argv");
  char **argv = lua_newuserdatauv(L, sizeof(char *) * (size_t)(n + 1), 0);
  lua_createtable(L, n, 0);
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, idx, i);
    lua_pushstring(L, luaL_checkstring(L, -1));
    argv[i - 1] = (char *)lua_tostring(L, -1);
    lua_rawseti(L, -3, i);
    lua_pop(L, 1);
  }
  argv[n] = NULL;
  return argv;
}

/* sys.exec(argv, env) -> on failure only: nil, message, errno. Replaces connrt with
 * argv[1] (searched on PATH, no shell), in push_exec_env's environment: connrt exec,
 * whose tokens are that environment. The program gets the descriptors connrt was
 * started with, none connrt opened (fds_from_3). The caller flushes its output first. */
static int sys_exec(lua_State *L) {
  lua_settop(L, 2); /* an environment left out is nil at 2, not what push_argv pushes */
  char **argv = push_argv(L, 1);
  char **env = push_exec_env(L, 2);
  fds_from_3(0, 1); /* close-on-exec: still open if the exec fails */
  execvpe(argv[0], argv, env);
  int err = errno;
  lua_pushnil(L);
  lua_pushfstring(L, "cannot run %s: %s", argv[0], strerror(err));
  lua_pushinteger(L, err);
  return 3;
}

/* The child of sys.spawn_piped that signals sent to connrt are passed on to. */
static volatile pid_t forward_to = 0;

static void note_signal(int sig);

/* Passes on a signal another process sent (kill(1), a supervisor's SIGTERM). One the
 * kernel raised for a terminal (Ctrl-C: si_code SI_KERNEL) already reached the child,
 * which is in connrt's foreground process group: sending it again would deliver it
 * twice. Either way sys.caught() tells of it: once the child has ended (a program it
 * left in the background still holding the pipes), the signal is connrt's to act on. */
static void forward_signal(int sig, siginfo_t *info, void *ctx) {
  (void)ctx;
  int saved = errno;
  if (forward_to > 0 && (!info || info->si_code <= 0)) kill(forward_to, sig);
  note_signal(sig);
  errno = saved;
}

/* SIGPIPE while connrt passes the child's output on: the write fails with EPIPE instead,
 * and connrt closes that pipe, so the child gets its SIGPIPE as it would writing there
 * itself (a handler, unlike SIG_IGN, is not inherited through exec) */
static void no_action(int sig) { (void)sig; }

/* SIGALRM too: it ends a process that does not catch it, connrt as well as the child */
static const int FORWARDED[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, 0 };

/* sys.spawn_piped(argv, env) -> pid, out_fd, err_fd | nil, message, errno. Starts argv
 * like sys.exec does, but as a child whose standard output and error are pipes to us
 * (read with sys.read), standard input shared. From now on the signals of FORWARDED
 * that other processes send connrt (and that it was not started ignoring) are passed on
 * to the child instead of acting on connrt: the child decides, and its exit tells
 * connrt's (sys.wait). One sent with kill to connrt's whole process group reaches the
 * child twice: directly, and passed on (only a terminal's is told apart, above). */
static int sys_spawn_piped(lua_State *L) {
  char **argv = push_argv(L, 1);
  char **env = push_exec_env(L, 2);
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) == -1) goto fail;
  if (pipe2(err, O_CLOEXEC) == -1) { int e = errno; close(out[0]); close(out[1]); errno = e; goto fail; }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = forward_signal;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  /* the handlers are in place before the child exists: no signal meant for it is lost;
   * until forward_to is set they do nothing (the child resets them at exec). A signal
   * connrt was started with ignored (nohup's SIGHUP, a background job's SIGINT, a
   * shell's `trap '' PIPE`) stays ignored, for connrt and for the child, which inherits
   * the ignoring through exec as it would without connrt */
  struct sigaction before[sizeof FORWARDED / sizeof FORWARDED[0]], pipe_before;
  for (int i = 0; FORWARDED[i]; i++) {
    sigaction(FORWARDED[i], NULL, &before[i]);
    if (before[i].sa_handler != SIG_IGN) sigaction(FORWARDED[i], &sa, NULL);
  }
  sigaction(SIGPIPE, NULL, &pipe_before);
  if (pipe_before.sa_handler != SIG_IGN) signal(SIGPIPE, no_action);
  /* the child gets 0, 1, 2 and what connrt was started with: connrt's own descriptors
   * (data.mdb, libcurl's sockets) are close-on-exec from here on; connrt never means to
   * hand one to a program */
  fds_from_3(0, 1);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  pid_t pid;
  int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, env);
  posix_spawn_file_actions_destroy(&fa);
  close(out[1]);
  close(err[1]);
  if (rc != 0) {
    close(out[0]);
    close(err[0]);
    for (int i = 0; FORWARDED[i]; i++) sigaction(FORWARDED[i], &before[i], NULL);
    sigaction(SIGPIPE, &pipe_before, NULL);
    errno = rc;
    goto fail;
  }
  forward_to = pid;
  lua_pushinteger(L, pid);
  lua_pushinteger(L, out[0]);
  lua_pushinteger(L, err[0]);
  return 3;
fail:
  {
    int e = errno;
    lua_pushnil(L);
    lua_pushfstring(L, "cannot run %s: %s", argv[0], strerror(e));
    lua_pushinteger(L, e);
    return 3;
  }
}

/* sys.poll_read(fds, seconds) -> array of the fds (of the array fds) that can be read
 * (data, end of file or an error), empty after `seconds` (negative: wait forever). A
 * signal handled meanwhile (one passed on to a child) is not an error: it returns what
 * is ready, maybe nothing. */
static int sys_poll_read(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_Number s = luaL_optnumber(L, 2, -1);
  int n = (int)luaL_len(L, 1);
  luaL_argcheck(L, n >= 0 && n <= 64, 1, "1 to 64 descriptors");
  struct pollfd p[64];
  for (int i = 0; i < n; i++) {
    lua_rawgeti(L, 1, i + 1);
    p[i].fd = (int)luaL_checkinteger(L, -1);
    p[i].events = POLLIN;
    p[i].revents = 0;
    lua_pop(L, 1);
  }
  int ms = s < 0 ? -1 : (s > 2e6 ? 2000000000 : (int)(s * 1000));
  int rc = poll(p, (nfds_t)n, ms);
  lua_newtable(L);
  if (rc <= 0) return 1;
  int k = 0;
  for (int i = 0; i < n; i++) {
    if (p[i].revents) {
      lua_pushinteger(L, p[i].fd);
      lua_rawseti(L, -2, ++k);
    }
  }
  return 1;
}

/* sys.read(fd, max) -> bytes ("" at end of file) | nil, message */
static int sys_read(lua_State *L) {
  int fd = (int)luaL_checkinteger(L, 1);
  lua_Integer max = luaL_optinteger(L, 2, 65536);
  luaL_argcheck(L, max > 0 && max <= (1 << 24), 2, "1 byte to 16 MiB");
  luaL_Buffer b;
  char *buf = luaL_buffinitsize(L, &b, (size_t)max);
  ssize_t n;
  do n = read(fd, buf, (size_t)max); while (n == -1 && errno == EINTR);
  if (n < 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "read: %s", strerror(errno));
    return 2;
  }
  luaL_pushresultsize(&b, (size_t)n);
  return 1;
}

/* sys.close(fd) */
static int sys_close(lua_State *L) {
  close((int)luaL_checkinteger(L, 1));
  return 0;
}

/* sys.wait(pid [, nohang]) -> "exit", status | "signal", number: waits for a child to
 * end; with nohang, returns nothing at once when it has not ended yet */
static int sys_wait(lua_State *L) {
  pid_t pid = (pid_t)luaL_checkinteger(L, 1);
  int nohang = lua_toboolean(L, 2);
  int status = 0;
  pid_t r;
  do r = waitpid(pid, &status, nohang ? WNOHANG : 0); while (r == -1 && errno == EINTR);
  if (r == -1) return luaL_error(L, "waitpid: %s", strerror(errno));
  if (r == 0) return 0;
  if (pid == forward_to) forward_to = 0;
  if (WIFSIGNALED(status)) {
    lua_pushliteral(L, "signal");
    lua_pushinteger(L, WTERMSIG(status));
  } else {
    lua_pushliteral(L, "exit");
    lua_pushinteger(L, WEXITSTATUS(status));
  }
  return 2;
}

/* sys.die_by(signal): ends connrt by that signal, as the child of connrt exec --mask
 * ended, so connrt's own caller sees what it would have seen without connrt. Its
 * handler is reset first; no core is written (the core limit is 0). Returns only when
 * the signal does not end a process (then the caller exits 128 + signal). */
static int sys_die_by(lua_State *L) {
  int sig = (int)luaL_checkinteger(L, 1);
  fflush(NULL);
  signal(sig, SIG_DFL);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, sig);
  sigprocmask(SIG_UNBLOCK, &set, NULL);
  raise(sig);
  return 0;
}

/* --- worker processes (connrt proxy's master) -------------------------------------- */

static const struct { const char *name; int sig; } SIGNALS[] = {
  { "TERM", SIGTERM }, { "INT", SIGINT }, { "HUP", SIGHUP }, { "QUIT", SIGQUIT }, { "KILL", SIGKILL },
  { "USR1", SIGUSR1 }, { "USR2", SIGUSR2 }, { "CHLD", SIGCHLD }, { "ALRM", SIGALRM }, { NULL, 0 }
};

static int signal_number(lua_State *L, int idx) {
  if (lua_type(L, idx) == LUA_TNUMBER) return (int)lua_tointeger(L, idx);
  const char *name = luaL_checkstring(L, idx);
  for (int i = 0; SIGNALS[i].name; i++)
    if (strcmp(SIGNALS[i].name, name) == 0) return SIGNALS[i].sig;
  return luaL_argerror(L, idx, "unknown signal name");
}

/* sys.fork() -> pid (0 in the child) | nil, message */
static int sys_fork(lua_State *L) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid == -1) {
    lua_pushnil(L);
    lua_pushfstring(L, "cannot fork: %s", strerror(errno));
    return 2;
  }
  lua_pushinteger(L, pid);
  return 1;
}

/* sys.kill(pid, signal) -> true | nil, message; signal: a number or "TERM", "HUP", ... */
static int sys_kill(lua_State *L) {
  pid_t pid = (pid_t)luaL_checkinteger(L, 1);
  int sig = signal_number(L, 2);
  if (kill(pid, sig) == -1) {
    lua_pushnil(L);
    lua_pushfstring(L, "kill %d: %s", (int)pid, strerror(errno));
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* sys.reap() -> pid, "exit"|"signal", number | nil: one child that has ended, if any,
 * without waiting */
static int sys_reap(lua_State *L) {
  int status = 0;
  pid_t pid = waitpid(-1, &status, WNOHANG);
  if (pid <= 0) return 0;
  lua_pushinteger(L, pid);
  if (WIFSIGNALED(status)) {
    lua_pushliteral(L, "signal");
    lua_pushinteger(L, WTERMSIG(status));
  } else {
    lua_pushliteral(L, "exit");
    lua_pushinteger(L, WEXITSTATUS(status));
  }
  return 3;
}

static volatile sig_atomic_t caught_mask = 0;

static void note_signal(int sig) {
  for (int i = 0; SIGNALS[i].name; i++)
    if (SIGNALS[i].sig == sig) caught_mask |= 1 << i;
}

/* sys.catch_signals(names): from now on those signals only set a flag sys.caught()
 * returns (the proxy's master, which relays them to its workers) */
static int sys_catch_signals(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = note_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  lua_Integer n = luaL_len(L, 1);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, i);
    sigaction(signal_number(L, -1), &sa, NULL);
    lua_pop(L, 1);
  }
  return 0;
}

/* sys.default_signals(names): back to the default action (in a forked worker) */
static int sys_default_signals(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_Integer n = luaL_len(L, 1);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, i);
    signal(signal_number(L, -1), SIG_DFL);
    lua_pop(L, 1);
  }
  return 0;
}

/* sys.caught() -> array of the names of the signals caught since the last call */
static int sys_caught(lua_State *L) {
  sigset_t all, old;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, &old);
  int mask = caught_mask;
  caught_mask = 0;
  sigprocmask(SIG_SETMASK, &old, NULL);
  lua_newtable(L);
  int k = 0;
  for (int i = 0; SIGNALS[i].name; i++) {
    if (mask & (1 << i)) {
      lua_pushstring(L, SIGNALS[i].name);
      lua_rawseti(L, -2, ++k);
    }
  }
  return 1;
}

/* Pushes fd once its peer is known to run as this process's user or as root (SO_PEERCRED,
 * the peer's credentials when it listened); else closes it and pushes nil, a message and
 * EPERM. A socket path in a shared directory may be served by another user's process:
 * it would be sent the caller's headers and body, and be taken at its word. */
static int push_trusted_peer(lua_State *L, int fd, const char *path) {
  struct ucred cred;
  socklen_t cl = sizeof cred;
  int known = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0;
  if (known && (cred.uid == geteuid() || cred.uid == 0)) {
    lua_pushinteger(L, fd);
    return 1;
  }
  close(fd);
  lua_pushnil(L);
  if (known)
    lua_pushfstring(L, "%s is served by another user (uid %d), not taken", path, (int)cred.uid);
  else
    lua_pushfstring(L, "%s: its server's user is unknown, not taken", path);
  lua_pushinteger(L, EPERM);
  return 3;
}

/* sys.unix_connect(path [, seconds]) -> fd | nil, message, errno: a connected unix stream socket
 * whose server runs as this user or as root (connrt request through CONNRT_PROXY; closed
 * with sys.close) */
static int sys_unix_connect(lua_State *L) {
  size_t len;
  const char *path = luaL_checklstring(L, 1, &len);
  /* with `seconds`, the connect waits at most that long and the socket stays
   * non-blocking (for sys.write's deadline and sys.poll_read): a listener whose backlog
   * is full (a stuck server) would otherwise hold a blocking connect forever */
  lua_Number s = luaL_optnumber(L, 2, -1);
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  int fd = -1, err = ENAMETOOLONG;
  if (len < sizeof sa.sun_path) {
    memcpy(sa.sun_path, path, len + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (s >= 0 ? SOCK_NONBLOCK : 0), 0);
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    while (fd >= 0) {
      if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) return push_trusted_peer(L, fd, path);
      err = errno;
      if (err == EINTR) continue;
      if (s < 0 || (err != EAGAIN && err != EINPROGRESS)) break;
      struct timespec now;
      clock_gettime(CLOCK_MONOTONIC, &now);
      double left = s - ((double)(now.tv_sec - start.tv_sec) + (double)(now.tv_nsec - start.tv_nsec) / 1e9);
      if (left <= 0) {
        err = ETIMEDOUT;
        break;
      }
      if (err == EINPROGRESS) {
        struct pollfd p = { .fd = fd, .events = POLLOUT, .revents = 0 };
        int rc = poll(&p, 1, (int)(left * 1000) + 1);
        if (rc == 0) {
          err = ETIMEDOUT;
          break;
        }
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        if (rc > 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0)
          return push_trusted_peer(L, fd, path);
        if (rc > 0 && soerr) {
          err = soerr;
          break;
        }
        continue;
      }
      /* EAGAIN: a unix listener's backlog is full; a live server empties it soon */
      struct timespec pause = { 0, 10 * 1000 * 1000 };
      nanosleep(&pause, NULL);
    }
    if (fd >= 0) close(fd);
  }
  lua_pushnil(L);
  lua_pushfstring(L, "cannot connect to %s: %s", path, strerror(err));
  lua_pushinteger(L, err);
  return 3;
}

/* sys.write(fd, bytes [, seconds]) -> true | nil, message: all of bytes, however many
 * writes it takes; with `seconds` (a non-blocking fd), within that time in all */
static int sys_write(lua_State *L) {
  int fd = (int)luaL_checkinteger(L, 1);
  size_t len, off = 0;
  const char *data = luaL_checklstring(L, 2, &len);
  lua_Number s = luaL_optnumber(L, 3, -1);
  struct timespec start;
  clock_gettime(CLOCK_MONOTONIC, &start);
  while (off < len) {
    ssize_t n = send(fd, data + off, len - off, MSG_NOSIGNAL);
    if (n == -1 && errno == ENOTSOCK) n = write(fd, data + off, len - off);
    if (n == -1 && errno == EINTR) continue;
    if (n == -1 && s >= 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      struct timespec now;
      clock_gettime(CLOCK_MONOTONIC, &now);
      double left = s - ((double)(now.tv_sec - start.tv_sec) + (double)(now.tv_nsec - start.tv_nsec) / 1e9);
      struct pollfd p = { .fd = fd, .events = POLLOUT, .revents = 0 };
      if (left > 0 && poll(&p, 1, (int)(left * 1000) + 1) != 0) continue;
      lua_pushnil(L);
      lua_pushfstring(L, "write: no progress in %d s", (int)s);
      return 2;
    }
    if (n <= 0) {
      lua_pushnil(L);
      lua_pushfstring(L, "write: %s", n == 0 ? "nothing written" : strerror(errno));
      return 2;
    }
    off += (size_t)n;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* See api.h. Both are best effort: a failure leaves the process as it was, and connrt
 * goes on. execve resets the dumpable flag, so a program connrt starts (the browser) is
 * dumpable as usual, but it inherits the core limit of 0; a hard limit, once lowered,
 * cannot be raised again without privilege. */
void connrt_protect_process(void) {
  struct rlimit none = { 0, 0 };
  (void)setrlimit(RLIMIT_CORE, &none);
  (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

static const luaL_Reg sys_funcs[] = {
  { "time", sys_time },
  { "monotime", sys_monotime },
  { "sleep", sys_sleep },
  { "isatty", sys_isatty },
  { "getpid", sys_getpid },
  { "pidns", sys_pidns },
  { "out_of_descriptors", sys_out_of_descriptors },
  { "cpus", sys_cpus },
  { "readable", sys_readable },
  { "mkdir", sys_mkdir },
  { "chmod", sys_chmod },
  { "mode", sys_mode },
  { "realpath", sys_realpath },
  { "file_id", sys_file_id },
  { "environ_with", sys_environ_with },
  { "write_private", sys_write_private },
  { "readline_noecho", sys_readline_noecho },
  { "spawn_detached", sys_spawn_detached },
  { "exec", sys_exec },
  { "pg_url_secrets", sys_pg_url_secrets },
  { "pg_url_where", sys_pg_url_where },
  { "spawn_piped", sys_spawn_piped },
  { "poll_read", sys_poll_read },
  { "read", sys_read },
  { "close", sys_close },
  { "wait", sys_wait },
  { "die_by", sys_die_by },
  { "fork", sys_fork },
  { "kill", sys_kill },
  { "reap", sys_reap },
  { "catch_signals", sys_catch_signals },
  { "default_signals", sys_default_signals },
  { "caught", sys_caught },
  { "unix_connect", sys_unix_connect },
  { "write", sys_write },
  { NULL, NULL }
};

int luaopen_connrt_sys(lua_State *L) {
  luaL_newlib(L, sys_funcs);
  return 1;
}
