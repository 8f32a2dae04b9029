/*
 * sys.c - the few operating-system services the Lua layer needs and Lua lacks:
 * sub-second clocks and sleep, terminal checks, echo-free reads, the process id and its
 * PID namespace, directories with a mode, a file's real path, and starting a detached
 * helper (the browser) without a shell, and without the variables that hold connrt's secrets.
 *
 * Opens the `connrt.sys` module.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
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

/* [-0, +1] The environment without SECRET_ENV, as a NULL-terminated array in a userdata
 * (pushed): built before fork, so the child allocates nothing. Its strings are
 * environ's own. */
static char **push_child_env(lua_State *L) {
  size_t n = 0;
  for (char **e = environ; *e; e++) n++;
  char **env = lua_newuserdatauv(L, sizeof(char *) * (n + 1), 0);
  size_t k = 0;
  for (char **e = environ; *e; e++)
    if (!is_secret_env(*e)) env[k++] = *e;
  env[k] = NULL;
  return env;
}

/* sys.spawn_detached(argv) -> pid | nil, message. Starts argv[1] with arguments argv[2..]
 * searched on PATH, no shell involved, standard input and output on /dev/null, and does
 * not wait for it (its exit is reaped by a double fork). Its environment is connrt's
 * without the variables of SECRET_ENV. */
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
  { "readable", sys_readable },
  { "mkdir", sys_mkdir },
  { "chmod", sys_chmod },
  { "mode", sys_mode },
  { "realpath", sys_realpath },
  { "write_private", sys_write_private },
  { "readline_noecho", sys_readline_noecho },
  { "spawn_detached", sys_spawn_detached },
  { NULL, NULL }
};

int luaopen_connrt_sys(lua_State *L) {
  luaL_newlib(L, sys_funcs);
  return 1;
}
