/*
 * sandbox.c - connector code in a Lua state of its own, under a time and memory bound.
 *
 * A connector may come from a stranger. Run in the runtime's own Lua state, its code
 * shared the runtime's string metatable (and so could replace string.match for the whole
 * process), an instruction hook it could outrun with pcall, finalizers and metamethods
 * that ran outside any budget, and no memory limit at all. So each loaded connector gets
 * a *box*: a separate lua_State, created with an allocator that refuses to grow past the
 * box's memory limit, whose code runs only on a coroutine with a count hook. Nothing of
 * the runtime is reachable from inside: values cross between the two states only as
 * copies (serialized to a flat buffer on one side, rebuilt on the other), and functions
 * cross as proxies: a connector's hook becomes a runtime closure that runs it in the box,
 * a runtime function handed to a hook (hooks.lookup's api.get) becomes a box closure that
 * calls back into the runtime. Whatever a connector does to its own state (its string
 * metatable, its helpers) stays there, and whatever it returns is data to be validated.
 *
 * Time: every call into the box starts a budget of instructions, of CPU seconds (the
 * thread's CPU clock) and of wall seconds (for the requests a hook makes through connrt;
 * each call into the runtime also costs a million instructions). The hook charges it; once
 * it is spent the box is *stopped*: the hook yields the coroutine, which no pcall inside
 * the connector can catch, and where a yield is impossible (inside a C function such as
 * table.sort's comparator) it raises on every instruction and call until the code unwinds
 * to a point that can. A stopped box refuses every later call.
 *
 * A count hook alone sees only Lua instructions, and a C function of the standard library
 * can loop without running one: table.concat or table.unpack over a range a metamethod
 * makes endless, whose __index is itself a C function (string.sub on the string
 * metatable, rawlen, table.concat). So the hook also fires on every call, Lua or C, and
 * each call is charged like an instruction: no C loop that calls anything, metamethods
 * included, runs past the budget. And one instruction or call may be slow (comparing two
 * 20 MiB strings, a plain find in 40 MiB), so that the hook's checks, every HOOK_COUNT
 * instructions or calls, could be seconds apart: while connector code runs, a ticker (a
 * POSIX timer on the thread's CPU clock, every TICK_US, whose SIGPROF goes to that thread
 * only) sets the running box's hook to fire at the very next instruction or call
 * (lua_sethook is async-signal-safe: Lua's own lua.c stops a script on SIGINT that way),
 * where the clocks are read. The ticker exists only while connector code runs, so no system
 * call of the runtime (libcurl, LMDB) nor of another thread is interrupted by it, and each
 * call has its own, so boxes on several threads do not meet.
 * What calls nothing and runs no instruction is left: table.sort's comparisons of its own,
 * which is therefore Lua inside boxes (sandbox_env.lua), and loops whose length the box's
 * memory bounds (table.concat over raw values, string.rep: linear in what they build).
 * The one C function of the standard library whose time is not linear in its input,
 * pattern matching, is replaced inside boxes by the matcher below, which charges the same
 * budget per step; plain finds use memmem (linear). Finalizers (__gc) never run under a
 * hook, so a box refuses to set them; errors are reported without calling an error
 * object's __tostring. (The collector's own work runs inside allocations, outside any
 * hook; the memory limit bounds what it traverses.)
 *
 * Memory: the allocator counts the box's bytes and refuses an allocation past the limit;
 * Lua turns that into a memory error, and a box that met its limit is stopped.
 *
 * The pattern matcher implements Lua 5.4's patterns (reference manual 6.4.1) with the same
 * results and errors (spec/sandbox_spec.lua compares the two on generated patterns); the
 * runtime also uses it, through sandbox.find, for patterns a connector supplies (a field's
 * `pattern`), with a fixed step limit.
 *
 * Opens the `connrt.sandbox` module.
 */
#include <ctype.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lualib.h>

#include "api.h"
#include "error.h"

#define BOX_MT          "connrt.sandbox.box"
#define HOOK_COUNT      1000          /* instructions (or calls) between two checks of the budget */
#define HOOK_MASK       (LUA_MASKCOUNT | LUA_MASKCALL)
#define TICK_US         10000         /* CPU microseconds between two forced checks */
#define PAT_CHECK       4096          /* matcher steps between two checks */
#define PAT_MAXCAPTURES 32
#define PAT_MAXDEPTH    200           /* nested matcher calls: "pattern too complex" */
#define RUNTIME_STEPS   10000000LL    /* steps of one sandbox.find in the runtime */
#define COPY_MAXDEPTH   100           /* nesting of a copied value */
#define MSG_MAX         16384         /* an error message's bytes (the runtime cuts it to show: log.clip) */
#define MAX_STRING      ((lua_Unsigned)1 << 40) /* far above any box's memory */

#define DEFAULT_MEMORY       ((size_t)64 * 1024 * 1024)
#define DEFAULT_INSTRUCTIONS 50000000LL
#define DEFAULT_CPU          5.0
#define DEFAULT_WALL         60.0
#define CALLBACK_COST        1000000LL /* instructions a call into the runtime costs */

enum { STOP_NONE, STOP_INSTRUCTIONS, STOP_CPU, STOP_MEMORY };
static const char *const STOP_REASON[] = { "", "time", "time", "memory" };

typedef struct {
  char *p;
  size_t len, cap;
} buf_t;

typedef struct box {
  lua_State *S;             /* the connector's state; NULL once closed */
  lua_State *L;             /* the runtime thread of the call in progress */
  int box_idx;              /* where the box userdata sits on L's stack during it */
  size_t mem_used, mem_limit;
  int mem_exceeded;
  long long instr, instr_limit;
  long long calls;          /* calls not charged yet */
  lua_State *volatile tick_co; /* the coroutine the ticker interrupts; NULL: no ticker */
  volatile sig_atomic_t ticked;
  timer_t timer;
  double cpu_limit, cpu_start, wall_limit, wall_start;
  int stopped;              /* STOP_* */
  char stop_msg[MSG_MAX];
  int busy;
  int runtime_error;        /* a runtime callback raised during this call */
  int env_ref, fns_ref, fnids_ref; /* in S's registry */
  const char *lua_path, *lua_cpath; /* during sandbox.new only */
  buf_t buf, cbuf;          /* a call's values; a callback's values */
  char err[MSG_MAX];        /* why a copy failed */
} box_t;

/* --- clocks and budget --------------------------------------------------------------- */

static double wall_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_now(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) return 0;
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static box_t *box_of(lua_State *L) {
  void *ud = NULL;
  lua_getallocf(L, &ud);
  return ud;
}

/* Stops the box: `what` says why, prefixed with where the connector was (ar: a hook's
 * record; NULL: the Lua function that called the running C function). */
static void box_stop(box_t *b, lua_State *L, lua_Debug *ar, int why, const char *what) {
  lua_Debug here;
  char where[300] = "";
  if (!ar && lua_getstack(L, 1, &here)) ar = &here;
  if (ar && lua_getinfo(L, "Sl", ar) && ar->currentline > 0)
    snprintf(where, sizeof where, "%s:%d: ", ar->short_src, ar->currentline);
  b->stopped = why;
  snprintf(b->stop_msg, sizeof b->stop_msg, "%s%s", where, what);
}

/* Charges n instructions to the call in progress; stops the box when the budget is gone.
 * Returns whether the box is stopped. */
static int box_charge(box_t *b, lua_State *L, lua_Debug *ar, long long n) {
  if (b->stopped) return 1;
  b->instr += n;
  if (b->instr > b->instr_limit) {
    box_stop(b, L, ar, STOP_INSTRUCTIONS, "instruction budget exceeded (a loop that never ends?)");
  } else if (cpu_now() - b->cpu_start > b->cpu_limit) {
    char what[100];
    snprintf(what, sizeof what, "CPU time limit of %g s exceeded", b->cpu_limit);
    box_stop(b, L, ar, STOP_CPU, what);
  } else if (wall_now() - b->wall_start > b->wall_limit) {
    char what[100];
    snprintf(what, sizeof what, "time limit of %g s exceeded (requests made through connrt count)", b->wall_limit);
    box_stop(b, L, ar, STOP_CPU, what);
  }
  return b->stopped != STOP_NONE;
}

static void count_hook(lua_State *L, lua_Debug *ar);

/* The ticker: while connector code runs, a timer on the thread's CPU clock sends that
 * thread SIGPROF every TICK_US, with the box; the handler makes the box's running
 * coroutine fire its hook at the next instruction or call. */
static void on_tick(int sig, siginfo_t *si, void *uc) {
  (void)sig;
  (void)uc;
  if (si->si_code != SI_TIMER) return;
  box_t *b = si->si_value.sival_ptr;
  lua_State *co = b ? b->tick_co : NULL;
  if (!co) return;
  b->ticked = 1;
  lua_sethook(co, count_hook, HOOK_MASK, 1);
}

/* Starts b's ticker for co, or (co NULL) stops it. Without a timer (none could be made)
 * the hook still checks the clocks every HOOK_COUNT instructions or calls. */
static void set_ticking(box_t *b, lua_State *co) {
  static volatile sig_atomic_t installed;
  if (!installed) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_tick;
    sa.sa_flags = SA_RESTART | SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    installed = sigaction(SIGPROF, &sa, NULL) == 0;
  }
  if ((b->tick_co != NULL) == (co != NULL)) return;
  if (!co) {
    b->tick_co = NULL; /* first: a last tick finds nothing to do */
    timer_delete(b->timer);
    return;
  }
  struct sigevent sev;
  memset(&sev, 0, sizeof sev);
  sev.sigev_notify = SIGEV_THREAD_ID;
  sev.sigev_signo = SIGPROF;
  sev.sigev_value.sival_ptr = b;
  sev._sigev_un._tid = gettid();
  if (!installed || timer_create(CLOCK_THREAD_CPUTIME_ID, &sev, &b->timer) != 0) return;
  b->tick_co = co;
  struct itimerspec its = { { 0, TICK_US * 1000L }, { 0, TICK_US * 1000L } };
  if (timer_settime(b->timer, 0, &its, NULL) != 0) {
    b->tick_co = NULL;
    timer_delete(b->timer);
  }
}

/* Stops the code of a thread that cannot yield now (inside a C function such as
 * table.sort, or a message handler). Not with lua_error: that would call the message
 * handler of an xpcall in progress, from inside the hook, where hooks are off, so a
 * handler that loops would never be stopped. A stopped box's allocator refuses to grow,
 * so an allocation throws a memory error, which no message handler sees; the hook then
 * fires on every instruction and call, so no code makes progress until a yield is possible. */
static int raise_stop(box_t *b, lua_State *L) {
  lua_sethook(L, count_hook, HOOK_MASK, 1);
  lua_newuserdatauv(L, 64, 0);
  return luaL_error(L, "%s", b->stop_msg); /* not reached: the allocation failed */
}

/* The box's hook: on a count event HOOK_COUNT instructions ran (one, after a tick); on a
 * call event one more call, charged HOOK_COUNT at a time. A tick forces the check now. */
static void count_hook(lua_State *L, lua_Debug *ar) {
  box_t *b = box_of(L);
  int call = ar->event == LUA_HOOKCALL || ar->event == LUA_HOOKTAILCALL;
  long long n;
  if (b->ticked) {
    b->ticked = 0;
    lua_sethook(L, count_hook, HOOK_MASK, HOOK_COUNT);
    n = b->calls + 1;
    b->calls = 0;
  } else if (call) {
    if (++b->calls < HOOK_COUNT && !b->stopped) return;
    n = b->calls;
    b->calls = 0;
  } else {
    n = HOOK_COUNT;
  }
  if (!box_charge(b, L, ar, n)) return;
  if (!call && lua_isyieldable(L)) {
    lua_yield(L, 0); /* a hook's yield ends the coroutine's run: no pcall catches it */
    return;
  }
  raise_stop(b, L); /* a call hook cannot yield: it raises, the next instruction yields */
}

/* The allocator of a box: refuses to grow past the limit (Lua raises a memory error). */
static void *box_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  box_t *b = ud;
  size_t old = ptr ? osize : 0;
  if (nsize == 0) {
    free(ptr);
    b->mem_used -= old;
    return NULL;
  }
  if (nsize > old && b->stopped) return NULL; /* a stopped box only unwinds */
  if (nsize > old && nsize - old > b->mem_limit - b->mem_used) {
    b->mem_exceeded = 1;
    return NULL;
  }
  void *p = realloc(ptr, nsize);
  if (!p) return NULL;
  b->mem_used = b->mem_used - old + nsize;
  return p;
}

/* --- the pattern matcher ------------------------------------------------------------- */

#define CAP_UNFINISHED (-1)
#define CAP_POSITION   (-2)
#define SPECIALS       "^$*+?.([%-"

typedef struct {
  const char *src_init, *src_end, *p_end;
  lua_State *L;
  box_t *b;         /* whose budget pays; NULL in the runtime (sandbox.find) */
  long long left;   /* steps until the next check (box), or in all (runtime) */
  int depth, level;
  struct {
    const char *init;
    ptrdiff_t len;
  } cap[PAT_MAXCAPTURES];
} mstate;

/* Charges n steps of work. A step is a character compared or a match() call; scanning a
 * character set counts one step per 32 bytes of it, so a huge set cannot make each step
 * cost its whole length. */
static void pat_charge(mstate *ms, long long n) {
  ms->left -= n;
  if (ms->left > 0) return;
  if (!ms->b)
    luaL_error(ms->L, "pattern too complex for this text (more than %d steps)", (int)RUNTIME_STEPS);
  long long spent = PAT_CHECK - ms->left;
  ms->left = PAT_CHECK;
  if (box_charge(ms->b, ms->L, NULL, spent)) raise_stop(ms->b, ms->L);
}

static void pat_step(mstate *ms) { pat_charge(ms, 1); }

static int uc(char c) { return (unsigned char)c; }

static const char *match(mstate *ms, const char *s, const char *p);

/* Where the single-character class starting at p ends. */
static const char *class_end(mstate *ms, const char *p) {
  char c = *p++;
  if (c == '%') {
    if (p == ms->p_end) luaL_error(ms->L, "malformed pattern (ends with '%%')");
    return p + 1;
  }
  if (c == '[') {
    if (*p == '^') p++;
    const char *start = p;
    do { /* the first character of a set is taken as it is, even ']' */
      if (p == ms->p_end) luaL_error(ms->L, "malformed pattern (missing ']')");
      c = *p++;
      if (c == '%' && p < ms->p_end) p++;
    } while (*p != ']');
    pat_charge(ms, (p - start) >> 5);
    return p + 1;
  }
  return p;
}

/* Whether character c is in class %cl (a letter; upper case for the complement). */
static int in_class(int c, int cl) {
  int r;
  switch (tolower(cl)) {
  case 'a': r = isalpha(c); break;
  case 'c': r = iscntrl(c); break;
  case 'd': r = isdigit(c); break;
  case 'g': r = isgraph(c); break;
  case 'l': r = islower(c); break;
  case 'p': r = ispunct(c); break;
  case 's': r = isspace(c); break;
  case 'u': r = isupper(c); break;
  case 'w': r = isalnum(c); break;
  case 'x': r = isxdigit(c); break;
  case 'z': r = c == 0; break; /* deprecated in 5.4, still understood */
  default: return cl == c; /* an escaped character stands for itself */
  }
  if (isupper(cl)) r = !r;
  return r != 0;
}

/* Whether c is in the set [...] that starts at p and whose ']' is at ec. */
static int in_set(int c, const char *p, const char *ec) {
  int yes = 1;
  if (*(p + 1) == '^') {
    yes = 0;
    p++;
  }
  while (++p < ec) {
    if (*p == '%') {
      p++;
      if (in_class(c, uc(*p))) return yes;
    } else if (*(p + 1) == '-' && p + 2 < ec) {
      if (uc(*p) <= c && c <= uc(*(p + 2))) return yes;
      p += 2;
    } else if (uc(*p) == c) {
      return yes;
    }
  }
  return !yes;
}

/* Whether the character at s matches the class [p, ep). */
static int single(mstate *ms, const char *s, const char *p, const char *ep) {
  if (s >= ms->src_end) return 0;
  int c = uc(*s);
  switch (*p) {
  case '.': return 1;
  case '%': return in_class(c, uc(*(p + 1)));
  case '[':
    pat_charge(ms, (ep - p) >> 5);
    return in_set(c, p, ep - 1);
  default: return uc(*p) == c;
  }
}

static const char *max_expand(mstate *ms, const char *s, const char *p, const char *ep) {
  ptrdiff_t i = 0;
  while (single(ms, s + i, p, ep)) {
    pat_step(ms);
    i++;
  }
  for (; i >= 0; i--) { /* the longest run first, then shorter ones */
    const char *r = match(ms, s + i, ep + 1);
    if (r) return r;
  }
  return NULL;
}

static const char *min_expand(mstate *ms, const char *s, const char *p, const char *ep) {
  for (;;) {
    const char *r = match(ms, s, ep + 1);
    if (r) return r;
    if (!single(ms, s, p, ep)) return NULL;
    s++;
  }
}

static const char *start_capture(mstate *ms, const char *s, const char *p, ptrdiff_t what) {
  if (ms->level >= PAT_MAXCAPTURES) luaL_error(ms->L, "too many captures");
  ms->cap[ms->level].init = s;
  ms->cap[ms->level].len = what;
  ms->level++;
  const char *r = match(ms, s, p);
  if (!r) ms->level--;
  return r;
}

static const char *end_capture(mstate *ms, const char *s, const char *p) {
  int l = ms->level - 1;
  while (l >= 0 && ms->cap[l].len != CAP_UNFINISHED) l--;
  if (l < 0) luaL_error(ms->L, "invalid pattern capture");
  ms->cap[l].len = s - ms->cap[l].init;
  const char *r = match(ms, s, p);
  if (!r) ms->cap[l].len = CAP_UNFINISHED;
  return r;
}

static const char *balance(mstate *ms, const char *s, const char *p) {
  if (p >= ms->p_end - 1) luaL_error(ms->L, "malformed pattern (missing arguments to '%%b')");
  if (s >= ms->src_end || *s != *p) return NULL;
  char open = *p, close = *(p + 1);
  int depth = 1;
  while (++s < ms->src_end) {
    pat_step(ms);
    if (*s == close) {
      if (--depth == 0) return s + 1;
    } else if (*s == open) {
      depth++;
    }
  }
  return NULL;
}

static const char *back_reference(mstate *ms, const char *s, int digit) {
  int l = digit - '1';
  if (l < 0 || l >= ms->level || ms->cap[l].len == CAP_UNFINISHED)
    luaL_error(ms->L, "invalid capture index %%%d", l + 1);
  ptrdiff_t len = ms->cap[l].len;
  if (len < 0) return NULL; /* a position capture matches no text */
  if (ms->src_end - s >= len && memcmp(ms->cap[l].init, s, (size_t)len) == 0) return s + len;
  return NULL;
}

static const char *match(mstate *ms, const char *s, const char *p) {
  if (ms->depth-- == 0) luaL_error(ms->L, "pattern too complex");
  pat_step(ms);
  for (;;) {
    if (p == ms->p_end) break;
    if (*p == '(') {
      s = *(p + 1) == ')' ? start_capture(ms, s, p + 2, CAP_POSITION)
                          : start_capture(ms, s, p + 1, CAP_UNFINISHED);
      break;
    }
    if (*p == ')') {
      s = end_capture(ms, s, p + 1);
      break;
    }
    if (*p == '$' && p + 1 == ms->p_end) {
      if (s != ms->src_end) s = NULL;
      break;
    }
    if (*p == '%' && *(p + 1) == 'b') {
      s = balance(ms, s, p + 2);
      if (!s) break;
      p += 4;
      continue;
    }
    if (*p == '%' && *(p + 1) == 'f') {
      p += 2;
      if (*p != '[') luaL_error(ms->L, "missing '[' after '%%f' in pattern");
      const char *ep = class_end(ms, p);
      int prev = s == ms->src_init ? 0 : uc(*(s - 1));
      pat_charge(ms, (ep - p) >> 4);
      if (!in_set(prev, p, ep - 1) && in_set(uc(*s), p, ep - 1)) {
        p = ep;
        continue;
      }
      s = NULL;
      break;
    }
    if (*p == '%' && isdigit(uc(*(p + 1)))) {
      s = back_reference(ms, s, uc(*(p + 1)));
      if (!s) break;
      p += 2;
      continue;
    }
    /* a single-character class, maybe with a repetition */
    const char *ep = class_end(ms, p);
    if (!single(ms, s, p, ep)) {
      if (*ep == '*' || *ep == '?' || *ep == '-') { /* may match nothing */
        p = ep + 1;
        continue;
      }
      s = NULL;
      break;
    }
    if (*ep == '?') {
      const char *r = match(ms, s + 1, ep + 1);
      if (r) {
        s = r;
        break;
      }
      p = ep + 1;
      continue;
    }
    if (*ep == '+') {
      s = max_expand(ms, s + 1, p, ep);
      break;
    }
    if (*ep == '*') {
      s = max_expand(ms, s, p, ep);
      break;
    }
    if (*ep == '-') {
      s = min_expand(ms, s, p, ep);
      break;
    }
    s++;
    p = ep;
  }
  ms->depth++;
  return s;
}

/* Pushes capture i (the whole match s..e when the pattern has none). */
static void push_capture(mstate *ms, int i, const char *s, const char *e) {
  if (i >= ms->level) {
    if (i != 0) luaL_error(ms->L, "invalid capture index %%%d", i + 1);
    lua_pushlstring(ms->L, s, (size_t)(e - s));
    return;
  }
  ptrdiff_t len = ms->cap[i].len;
  if (len == CAP_UNFINISHED) luaL_error(ms->L, "unfinished capture");
  if (len == CAP_POSITION)
    lua_pushinteger(ms->L, (ms->cap[i].init - ms->src_init) + 1);
  else
    lua_pushlstring(ms->L, ms->cap[i].init, (size_t)len);
}

/* Pushes every capture (or the whole match, when s is given and there is none). */
static int push_captures(mstate *ms, const char *s, const char *e) {
  int n = (ms->level == 0 && s) ? 1 : ms->level;
  luaL_checkstack(ms->L, n, "too many captures");
  for (int i = 0; i < n; i++) push_capture(ms, i, s, e);
  return n;
}

static void pat_init(mstate *ms, lua_State *L, const char *s, size_t ls, const char *p, size_t lp) {
  ms->L = L;
  ms->src_init = s;
  ms->src_end = s + ls;
  ms->p_end = p + lp;
  ms->b = NULL;
  ms->left = RUNTIME_STEPS;
  lua_Alloc f = lua_getallocf(L, NULL);
  if (f == box_alloc) {
    ms->b = box_of(L);
    ms->left = PAT_CHECK;
  }
}

static void pat_reset(mstate *ms) {
  ms->level = 0;
  ms->depth = PAT_MAXDEPTH;
}

/* A string.find or string.match position: negative counts from the end. */
static size_t start_at(lua_Integer pos, size_t len) {
  if (pos > 0) return (size_t)pos;
  if (pos == 0) return 1;
  if (pos < -(lua_Integer)len) return 1;
  return len + (size_t)pos + 1;
}

static int no_specials(const char *p, size_t lp) {
  size_t upto = 0;
  do {
    if (strpbrk(p + upto, SPECIALS)) return 0;
    upto += strlen(p + upto) + 1; /* a pattern may hold zeros */
  } while (upto <= lp);
  return 1;
}

static int find_or_match(lua_State *L, int find) {
  size_t ls, lp;
  const char *s = luaL_checklstring(L, 1, &ls);
  const char *p = luaL_checklstring(L, 2, &lp);
  size_t init = start_at(luaL_optinteger(L, 3, 1), ls) - 1;
  if (init > ls) {
    lua_pushnil(L);
    return 1;
  }
  if (find && (lua_toboolean(L, 4) || no_specials(p, lp))) {
    /* glibc's memmem is linear (two-way), where a naive search is not */
    const char *hit = lp == 0 ? s + init : memmem(s + init, ls - init, p, lp);
    if (hit) {
      lua_pushinteger(L, (hit - s) + 1);
      lua_pushinteger(L, (lua_Integer)((hit - s) + lp));
      return 2;
    }
  } else {
    mstate ms;
    const char *s1 = s + init;
    int anchor = *p == '^';
    if (anchor) {
      p++;
      lp--;
    }
    pat_init(&ms, L, s, ls, p, lp);
    do {
      pat_reset(&ms);
      const char *e = match(&ms, s1, p);
      if (e) {
        if (find) {
          lua_pushinteger(L, (s1 - s) + 1);
          lua_pushinteger(L, e - s);
          return push_captures(&ms, NULL, NULL) + 2;
        }
        return push_captures(&ms, s1, e);
      }
    } while (s1++ < ms.src_end && !anchor);
  }
  lua_pushnil(L);
  return 1;
}

static int str_find(lua_State *L) { return find_or_match(L, 1); }
static int str_match(lua_State *L) { return find_or_match(L, 0); }

typedef struct {
  const char *src, *p, *lastmatch;
  mstate ms;
} gmatch_t;

static int gmatch_next(lua_State *L) {
  gmatch_t *g = lua_touserdata(L, lua_upvalueindex(3));
  g->ms.L = L; /* the iterator may run on another coroutine than the one that made it */
  for (const char *src = g->src; src <= g->ms.src_end; src++) {
    pat_reset(&g->ms);
    const char *e = match(&g->ms, src, g->p);
    if (e && e != g->lastmatch) { /* never the same empty match twice */
      g->src = g->lastmatch = e;
      return push_captures(&g->ms, src, e);
    }
  }
  return 0;
}

static int str_gmatch(lua_State *L) {
  size_t ls, lp;
  const char *s = luaL_checklstring(L, 1, &ls);
  const char *p = luaL_checklstring(L, 2, &lp);
  size_t init = start_at(luaL_optinteger(L, 3, 1), ls) - 1;
  lua_settop(L, 2);
  gmatch_t *g = lua_newuserdatauv(L, sizeof *g, 0);
  if (init > ls) init = ls + 1;
  pat_init(&g->ms, L, s, ls, p, lp);
  g->src = s + init;
  g->p = p;
  g->lastmatch = NULL;
  lua_pushcclosure(L, gmatch_next, 3); /* the strings stay alive with the iterator */
  return 1;
}

/* Adds a replacement string with %0-%9 and %% to the buffer. */
static void add_replacement(mstate *ms, luaL_Buffer *b, const char *s, const char *e) {
  size_t l;
  lua_State *L = ms->L;
  const char *news = lua_tolstring(L, 3, &l);
  const char *end = news + l;
  const char *p;
  while ((p = memchr(news, '%', (size_t)(end - news))) != NULL) {
    luaL_addlstring(b, news, (size_t)(p - news));
    p++;
    if (*p == '%') {
      luaL_addchar(b, '%');
    } else if (*p == '0') {
      luaL_addlstring(b, s, (size_t)(e - s));
    } else if (isdigit(uc(*p))) {
      push_capture(ms, *p - '1', s, e);
      luaL_tolstring(L, -1, NULL); /* a position capture is a number */
      lua_remove(L, -2);
      luaL_addvalue(b);
    } else {
      luaL_error(L, "invalid use of '%c' in replacement string", '%');
    }
    news = p + 1;
  }
  luaL_addlstring(b, news, (size_t)(end - news));
}

/* Adds the replacement of match s..e; returns whether anything was replaced. */
static int add_value(mstate *ms, luaL_Buffer *b, const char *s, const char *e, int tr) {
  lua_State *L = ms->L;
  if (tr == LUA_TFUNCTION) {
    lua_pushvalue(L, 3);
    int n = push_captures(ms, s, e);
    lua_call(L, n, 1);
  } else if (tr == LUA_TTABLE) {
    push_capture(ms, 0, s, e);
    lua_gettable(L, 3);
  } else {
    add_replacement(ms, b, s, e);
    return 1;
  }
  if (!lua_toboolean(L, -1)) { /* nil or false: keep the original text */
    lua_pop(L, 1);
    luaL_addlstring(b, s, (size_t)(e - s));
    return 0;
  }
  if (!lua_isstring(L, -1))
    return luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
  luaL_addvalue(b);
  return 1;
}

static int str_gsub(lua_State *L) {
  size_t srcl, lp;
  const char *src = luaL_checklstring(L, 1, &srcl);
  const char *p = luaL_checklstring(L, 2, &lp);
  const char *lastmatch = NULL;
  int tr = lua_type(L, 3);
  lua_Integer max_n = luaL_optinteger(L, 4, (lua_Integer)srcl + 1);
  int anchor = *p == '^';
  lua_Integer n = 0;
  int changed = 0;
  mstate ms;
  luaL_Buffer b;
  luaL_argexpected(L, tr == LUA_TNUMBER || tr == LUA_TSTRING || tr == LUA_TFUNCTION || tr == LUA_TTABLE,
                   3, "string/function/table");
  luaL_buffinit(L, &b);
  if (anchor) {
    p++;
    lp--;
  }
  pat_init(&ms, L, src, srcl, p, lp);
  while (n < max_n) {
    pat_reset(&ms);
    const char *e = match(&ms, src, p);
    if (e && e != lastmatch) {
      n++;
      changed = add_value(&ms, &b, src, e, tr) | changed;
      src = lastmatch = e;
    } else if (src < ms.src_end) {
      luaL_addchar(&b, *src++);
    } else {
      break;
    }
    if (anchor) break;
  }
  if (!changed) {
    lua_pushvalue(L, 1);
  } else {
    luaL_addlstring(&b, src, (size_t)(ms.src_end - src));
    luaL_pushresult(&b);
  }
  lua_pushinteger(L, n);
  return 2;
}

/* string.rep inside a box: the standard one loops n times even when every piece is empty
 * (("").rep("", math.maxinteger) runs for ever without allocating); otherwise the result's
 * size, which the allocator bounds, bounds its time. */
static int str_rep(lua_State *L) {
  size_t l, lsep;
  const char *s = luaL_checklstring(L, 1, &l);
  lua_Integer n = luaL_checkinteger(L, 2);
  const char *sep = luaL_optlstring(L, 3, "", &lsep);
  if (n <= 0 || (l == 0 && (lsep == 0 || n == 1))) {
    lua_pushliteral(L, "");
    return 1;
  }
  if (l + lsep < l || (lua_Unsigned)(l + lsep) > (lua_Unsigned)(MAX_STRING / (lua_Unsigned)n))
    return luaL_error(L, "resulting string too large");
  size_t total = (size_t)n * l + (size_t)(n - 1) * lsep;
  luaL_Buffer b;
  char *p = luaL_buffinitsize(L, &b, total);
  while (n-- > 1) {
    memcpy(p, s, l);
    p += l;
    if (lsep > 0) {
      memcpy(p, sep, lsep);
      p += lsep;
    }
  }
  memcpy(p, s, l);
  luaL_pushresultsize(&b, total);
  return 1;
}

/* --- copies between the states ------------------------------------------------------- */

/* A value crosses as bytes: a tag, then its payload. Tables are their pairs between
 * '{' and '}'; a function is an id in the sending side's table of functions. */
enum { T_NIL = 'n', T_FALSE = 'f', T_TRUE = 't', T_INT = 'i', T_FLT = 'd', T_STR = 's',
       T_OPEN = '{', T_CLOSE = '}', T_FN = 'F', T_NULL = 'u', T_REF = 'r' };
enum { SIDE_RUNTIME, SIDE_BOX };

static int buf_add(box_t *b, buf_t *o, const void *s, size_t n) {
  if (n > b->mem_limit - o->len) {
    snprintf(b->err, sizeof b->err, "a value larger than the sandbox's %zu MiB", b->mem_limit >> 20);
    return 0;
  }
  if (o->cap - o->len < n) {
    size_t cap = o->cap ? o->cap : 256;
    while (cap - o->len < n) cap *= 2;
    char *p = realloc(o->p, cap);
    if (!p) {
      snprintf(b->err, sizeof b->err, "out of memory while copying a value");
      return 0;
    }
    o->p = p;
    o->cap = cap;
  }
  memcpy(o->p + o->len, s, n);
  o->len += n;
  return 1;
}

static int buf_tag(box_t *b, buf_t *o, char tag) { return buf_add(b, o, &tag, 1); }

/* The id of the function at idx in side's table of functions, registered when new. On
 * the box side this allocates in the box (its caller is in a protected box context). */
static uint32_t register_fn(box_t *b, lua_State *L, int idx, int side) {
  idx = lua_absindex(L, idx);
  if (side == SIDE_RUNTIME) {
    lua_getiuservalue(L, b->box_idx, 2);
    lua_getiuservalue(L, b->box_idx, 1);
  } else {
    lua_rawgeti(L, LUA_REGISTRYINDEX, b->fnids_ref);
    lua_rawgeti(L, LUA_REGISTRYINDEX, b->fns_ref);
  }
  lua_pushvalue(L, idx);
  uint32_t id;
  if (lua_rawget(L, -3) == LUA_TNUMBER) {
    id = (uint32_t)lua_tointeger(L, -1);
    lua_pop(L, 1);
  } else {
    lua_pop(L, 1);
    id = (uint32_t)lua_rawlen(L, -1) + 1;
    lua_pushvalue(L, idx);
    lua_rawseti(L, -2, id);
    lua_pushvalue(L, idx);
    lua_pushinteger(L, id);
    lua_rawset(L, -4);
  }
  lua_pop(L, 2);
  return id;
}

/* The tables already copied, by address: a table reached twice is copied once and
 * referred to after, so a copy is never larger than what it copies (a value that shares
 * one table at every level would otherwise double at each). Open addressing. */
typedef struct {
  const void **keys;
  uint32_t *ids;
  size_t cap, n;
} seen_t;

static int seen_find(seen_t *h, const void *p, uint32_t *id) {
  if (!h->cap) return 0;
  for (size_t i = ((uintptr_t)p >> 4) & (h->cap - 1);; i = (i + 1) & (h->cap - 1)) {
    if (!h->keys[i]) return 0;
    if (h->keys[i] == p) {
      *id = h->ids[i];
      return 1;
    }
  }
}

static int seen_add(seen_t *h, const void *p, uint32_t id) {
  if ((h->n + 1) * 2 > h->cap) {
    size_t cap = h->cap ? h->cap * 2 : 64;
    const void **keys = calloc(cap, sizeof *keys);
    uint32_t *ids = calloc(cap, sizeof *ids);
    if (!keys || !ids) {
      free(keys);
      free(ids);
      return 0;
    }
    for (size_t i = 0; i < h->cap; i++) {
      if (!h->keys[i]) continue;
      size_t j = ((uintptr_t)h->keys[i] >> 4) & (cap - 1);
      while (keys[j]) j = (j + 1) & (cap - 1);
      keys[j] = h->keys[i];
      ids[j] = h->ids[i];
    }
    free(h->keys);
    free(h->ids);
    h->keys = keys;
    h->ids = ids;
    h->cap = cap;
  }
  size_t i = ((uintptr_t)p >> 4) & (h->cap - 1);
  while (h->keys[i]) i = (i + 1) & (h->cap - 1);
  h->keys[i] = p;
  h->ids[i] = id;
  h->n++;
  return 1;
}

typedef struct {
  box_t *b;
  buf_t *out;
  int side;
  int depth;
  const void *path[COPY_MAXDEPTH];
  seen_t seen;
  uint32_t tables;
} ser_t;

static int ser(ser_t *z, lua_State *L, int idx);

static int ser_table(ser_t *z, lua_State *L, int idx) {
  const void *self = lua_topointer(L, idx);
  for (int i = 0; i < z->depth; i++)
    if (z->path[i] == self) {
      snprintf(z->b->err, sizeof z->b->err, "a table that contains itself");
      return 0;
    }
  if (z->depth >= COPY_MAXDEPTH) {
    snprintf(z->b->err, sizeof z->b->err, "tables nested more than %d deep", COPY_MAXDEPTH);
    return 0;
  }
  if (!lua_checkstack(L, 4)) {
    snprintf(z->b->err, sizeof z->b->err, "out of stack space while copying a table");
    return 0;
  }
  uint32_t id;
  if (seen_find(&z->seen, self, &id))
    return buf_tag(z->b, z->out, T_REF) && buf_add(z->b, z->out, &id, sizeof id);
  if (!seen_add(&z->seen, self, ++z->tables)) {
    snprintf(z->b->err, sizeof z->b->err, "out of memory while copying a value");
    return 0;
  }
  z->path[z->depth++] = self;
  if (!buf_tag(z->b, z->out, T_OPEN)) return 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) { /* raw: no metamethod runs while copying */
    int kt = lua_type(L, -2);
    if (kt != LUA_TSTRING && kt != LUA_TNUMBER && kt != LUA_TBOOLEAN) {
      snprintf(z->b->err, sizeof z->b->err, "a table with a key of type %s", lua_typename(L, kt));
      lua_pop(L, 2);
      return 0;
    }
    if (!ser(z, L, lua_gettop(L) - 1) || !ser(z, L, lua_gettop(L))) {
      lua_pop(L, 2);
      return 0;
    }
    lua_pop(L, 1);
  }
  z->depth--;
  return buf_tag(z->b, z->out, T_CLOSE);
}

static int ser(ser_t *z, lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  box_t *b = z->b;
  switch (lua_type(L, idx)) {
  case LUA_TNIL: return buf_tag(b, z->out, T_NIL);
  case LUA_TBOOLEAN: return buf_tag(b, z->out, lua_toboolean(L, idx) ? T_TRUE : T_FALSE);
  case LUA_TNUMBER:
    if (lua_isinteger(L, idx)) {
      lua_Integer v = lua_tointeger(L, idx);
      return buf_tag(b, z->out, T_INT) && buf_add(b, z->out, &v, sizeof v);
    } else {
      lua_Number v = lua_tonumber(L, idx);
      return buf_tag(b, z->out, T_FLT) && buf_add(b, z->out, &v, sizeof v);
    }
  case LUA_TSTRING: {
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    return buf_tag(b, z->out, T_STR) && buf_add(b, z->out, &n, sizeof n) && buf_add(b, z->out, s, n);
  }
  case LUA_TTABLE: return ser_table(z, L, idx);
  case LUA_TFUNCTION: {
    uint32_t id = register_fn(b, L, idx, z->side);
    return buf_tag(b, z->out, T_FN) && buf_add(b, z->out, &id, sizeof id);
  }
  case LUA_TLIGHTUSERDATA:
    if (lua_touserdata(L, idx) == NULL) return buf_tag(b, z->out, T_NULL); /* json null */
    /* fall through */
  default:
    snprintf(b->err, sizeof b->err, "a value of type %s", luaL_typename(L, idx));
    return 0;
  }
}

/* Serializes n values from `first` on L (of `side`) into out; 0 with b->err on failure. */
static int ser_values(box_t *b, buf_t *out, lua_State *L, int first, int n, int side) {
  ser_t z = { .b = b, .out = out, .side = side, .depth = 0 };
  out->len = 0;
  int32_t count = n;
  int ok = buf_add(b, out, &count, sizeof count);
  for (int i = 0; ok && i < n; i++) ok = ser(&z, L, first + i);
  free(z.seen.keys);
  free(z.seen.ids);
  return ok;
}

static int box_fn(lua_State *L);
static int box_cb(lua_State *L);

/* Rebuilds one value from *pp on L, the receiving `side`; refs: the index of the table of
 * the tables rebuilt so far. May raise (memory). */
static void des(box_t *b, lua_State *L, const char **pp, int side, int refs) {
  const char *p = *pp;
  luaL_checkstack(L, 4, "copying a value");
  char tag = *p++;
  switch (tag) {
  case T_NIL: lua_pushnil(L); break;
  case T_FALSE: lua_pushboolean(L, 0); break;
  case T_TRUE: lua_pushboolean(L, 1); break;
  case T_NULL: lua_pushlightuserdata(L, NULL); break;
  case T_INT: {
    lua_Integer v;
    memcpy(&v, p, sizeof v);
    p += sizeof v;
    lua_pushinteger(L, v);
    break;
  }
  case T_FLT: {
    lua_Number v;
    memcpy(&v, p, sizeof v);
    p += sizeof v;
    lua_pushnumber(L, v);
    break;
  }
  case T_STR: {
    size_t n;
    memcpy(&n, p, sizeof n);
    p += sizeof n;
    lua_pushlstring(L, p, n);
    p += n;
    break;
  }
  case T_OPEN:
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawseti(L, refs, (lua_Integer)lua_rawlen(L, refs) + 1);
    while (*p != T_CLOSE) {
      des(b, L, &p, side, refs);
      des(b, L, &p, side, refs);
      lua_rawset(L, -3);
    }
    p++;
    break;
  case T_REF: {
    uint32_t id;
    memcpy(&id, p, sizeof id);
    p += sizeof id;
    lua_rawgeti(L, refs, (lua_Integer)id);
    break;
  }
  case T_FN: {
    uint32_t id;
    memcpy(&id, p, sizeof id);
    p += sizeof id;
    if (side == SIDE_RUNTIME) { /* a box function, seen from the runtime */
      lua_pushvalue(L, b->box_idx);
      lua_pushinteger(L, id);
      lua_pushcclosure(L, box_fn, 2);
    } else { /* a runtime function, seen from the box */
      lua_pushinteger(L, id);
      lua_pushcclosure(L, box_cb, 1);
    }
    break;
  }
  default:
    luaL_error(L, "sandbox: damaged copy");
  }
  *pp = p;
}

/* Pushes the values serialized in `in`; returns how many. */
static int des_values(box_t *b, const buf_t *in, lua_State *L, int side) {
  const char *p = in->p;
  int32_t n;
  memcpy(&n, p, sizeof n);
  p += sizeof n;
  luaL_checkstack(L, n + 8, "copying values");
  lua_newtable(L);
  int refs = lua_gettop(L);
  for (int i = 0; i < n; i++) des(b, L, &p, side, refs);
  lua_remove(L, refs);
  return n;
}

/* The message of an error value, without running any of its metamethods. */
static void error_text(lua_State *L, int idx, char *out, size_t size) {
  idx = lua_absindex(L, idx);
  switch (lua_type(L, idx)) {
  case LUA_TSTRING:
    snprintf(out, size, "%s", lua_tostring(L, idx));
    return;
  case LUA_TNUMBER:
    snprintf(out, size, LUA_NUMBER_FMT, (LUAI_UACNUMBER)lua_tonumber(L, idx));
    return;
  case LUA_TTABLE:
    lua_pushliteral(L, "message");
    if (lua_rawget(L, idx) == LUA_TSTRING) {
      snprintf(out, size, "%s", lua_tostring(L, -1));
      lua_pop(L, 1);
      return;
    }
    lua_pop(L, 1);
    /* fall through */
  default:
    snprintf(out, size, "(an error object: a %s)", luaL_typename(L, idx));
  }
}

/* --- calls --------------------------------------------------------------------------- */

enum { OP_RUN, OP_CALL };
enum { ST_OK, ST_SYNTAX, ST_ERROR, ST_STOPPED, ST_LIMIT };

typedef struct {
  box_t *b;
  int op;
  uint32_t fn;
  const char *src, *chunkname;
  size_t srclen;
  int status, nres;
  char msg[MSG_MAX];
} call_t;

/* Runs in the box's main thread, protected: rebuilds the arguments, runs the function
 * on a fresh coroutine under the hook, and serializes what it returned. */
static int call_in_box(lua_State *S) {
  call_t *c = lua_touserdata(S, 1);
  box_t *b = c->b;
  lua_settop(S, 0);
  if (c->op == OP_RUN) {
    if (luaL_loadbufferx(S, c->src, c->srclen, c->chunkname, "t") != LUA_OK) {
      error_text(S, -1, c->msg, sizeof c->msg);
      c->status = ST_SYNTAX;
      return 0;
    }
    lua_rawgeti(S, LUA_REGISTRYINDEX, b->env_ref);
    lua_setupvalue(S, -2, 1); /* _ENV: the sandbox's globals */
  } else {
    lua_rawgeti(S, LUA_REGISTRYINDEX, b->fns_ref);
    lua_rawgeti(S, -1, (lua_Integer)c->fn);
    lua_remove(S, -2);
  }
  int nargs = des_values(b, &b->buf, S, SIDE_BOX);
  lua_State *co = lua_newthread(S);
  lua_insert(S, 1);
  lua_xmove(S, co, nargs + 1);
  lua_sethook(co, count_hook, HOOK_MASK, HOOK_COUNT);
  b->instr = 0;
  b->calls = 0;
  b->cpu_start = cpu_now();
  b->wall_start = wall_now();
  int nres = 0;
  b->ticked = 0;
  set_ticking(b, co);
  int st = lua_resume(co, S, nargs, &nres);
  set_ticking(b, NULL);
  lua_sethook(co, NULL, 0, 0);
  if (b->stopped) {
    c->status = ST_STOPPED;
    return 0;
  }
  if (st != LUA_OK) { /* LUA_YIELD only comes from a stop: connectors have no coroutines */
    error_text(co, -1, c->msg, sizeof c->msg);
    c->status = ST_ERROR;
    return 0;
  }
  lua_settop(S, 1); /* co stays anchored at 1 while its results are copied */
  luaL_checkstack(S, nres + 8, "results");
  lua_xmove(co, S, nres);
  if (!ser_values(b, &b->buf, S, 2, nres, SIDE_BOX)) {
    c->status = ST_LIMIT;
    snprintf(c->msg, sizeof c->msg, "it returned %.900s", b->err);
    return 0;
  }
  c->nres = nres;
  c->status = ST_OK;
  return 0;
}

static int push_failure(lua_State *L, const char *msg, const char *reason) {
  lua_pushboolean(L, 0);
  lua_pushstring(L, msg);
  lua_pushstring(L, reason);
  return 3;
}

static void stop_for_memory(box_t *b) {
  if (b->stopped) return;
  b->stopped = STOP_MEMORY;
  snprintf(b->stop_msg, sizeof b->stop_msg, "memory limit of %zu MiB exceeded", b->mem_limit >> 20);
}

/* One call into the box: arguments from L (first..first+nargs-1), the box userdata at
 * box_idx. Pushes true and the results, or false, message, reason (and, for "runtime",
 * the error a runtime callback raised). */
static int box_invoke(lua_State *L, box_t *b, int box_idx, call_t *c, int first, int nargs) {
  if (!b->S) return luaL_error(L, "sandbox: the box is closed");
  if (b->stopped) return push_failure(L, b->stop_msg, STOP_REASON[b->stopped]);
  if (b->busy) return push_failure(L, "a connector function was called while another one runs", "error");
  int top = lua_gettop(L);
  b->box_idx = box_idx;
  if (!ser_values(b, &b->buf, L, first, nargs, SIDE_RUNTIME)) {
    char msg[MSG_MAX + 40];
    snprintf(msg, sizeof msg, "cannot pass %.900s to the sandbox", b->err);
    return push_failure(L, msg, "limit");
  }
  lua_getiuservalue(L, box_idx, 3); /* forget a runtime error of an earlier call */
  lua_pushnil(L);
  lua_rawseti(L, -2, 1);
  lua_settop(L, top);
  c->b = b;
  b->busy = 1;
  b->L = L;
  b->runtime_error = 0;
  lua_pushcfunction(b->S, call_in_box);
  lua_pushlightuserdata(b->S, c);
  int st = lua_pcall(b->S, 1, 0, 0);
  b->busy = 0;
  lua_settop(L, top); /* anything a failed callback left */
  if (st != LUA_OK) {
    error_text(b->S, -1, c->msg, sizeof c->msg);
    c->status = ST_ERROR;
  }
  lua_settop(b->S, 0);
  if (b->mem_exceeded) stop_for_memory(b);
  if (b->stopped) return push_failure(L, b->stop_msg, STOP_REASON[b->stopped]);
  switch (c->status) {
  case ST_OK:
    lua_pushboolean(L, 1);
    return des_values(b, &b->buf, L, SIDE_RUNTIME) + 1;
  case ST_SYNTAX: return push_failure(L, c->msg, "syntax");
  case ST_LIMIT: return push_failure(L, c->msg, "limit");
  default:
    if (b->runtime_error) {
      push_failure(L, c->msg, "runtime");
      lua_getiuservalue(L, box_idx, 3);
      lua_rawgeti(L, -1, 1);
      lua_remove(L, -2);
      return 4;
    }
    return push_failure(L, c->msg, "error");
  }
}

/* A box function, called from the runtime: fn(...) -> true, results... | false, why,
 * reason[, runtime error]. */
static int box_fn(lua_State *L) {
  int n = lua_gettop(L);
  luaL_checkstack(L, 8, "sandbox call");
  lua_pushvalue(L, lua_upvalueindex(1));
  box_t *b = luaL_checkudata(L, n + 1, BOX_MT);
  call_t c = { .op = OP_CALL, .fn = (uint32_t)lua_tointeger(L, lua_upvalueindex(2)) };
  return box_invoke(L, b, n + 1, &c, 1, n);
}

typedef struct {
  box_t *b;
  uint32_t id;
} callback_t;

/* Runs in the runtime, protected: the callback with its arguments rebuilt, its results
 * serialized back into b->cbuf. */
static int callback_in_runtime(lua_State *L) {
  callback_t *cb = lua_touserdata(L, 1);
  box_t *b = cb->b;
  lua_settop(L, 2);
  b->box_idx = 2; /* the box userdata, in this function's own stack frame */
  lua_getiuservalue(L, b->box_idx, 1);
  lua_rawgeti(L, -1, (lua_Integer)cb->id);
  lua_remove(L, -2);
  int nargs = des_values(b, &b->cbuf, L, SIDE_RUNTIME);
  lua_call(L, nargs, LUA_MULTRET);
  if (!ser_values(b, &b->cbuf, L, 3, lua_gettop(L) - 2, SIDE_RUNTIME))
    /* what the runtime hands back is the provider's answer (hooks.lookup's api.get): too
     * deep or too big a copy is a failure of the hook, not a bug */
    return connrt_raise(L, "connector", "hook_failed", "cannot pass the result back to the connector: %s", b->err);
  return 0;
}

/* A runtime function, called from inside the box. */
static int box_cb(lua_State *co) {
  box_t *b = box_of(co);
  lua_State *L = b->L;
  callback_t cb = { b, (uint32_t)lua_tointeger(co, lua_upvalueindex(1)) };
  if (!L || !b->busy) return luaL_error(co, "a runtime function is called outside of its hook");
  if (!ser_values(b, &b->cbuf, co, 1, lua_gettop(co), SIDE_BOX))
    return luaL_error(co, "cannot pass %s to connrt", b->err);
  int top = lua_gettop(L);
  if (!lua_checkstack(L, 8)) return luaL_error(co, "connrt: out of stack space");
  /* the runtime's work is the connector's too: each call costs a share of the budget,
   * and its time counts, so a hook cannot make connrt send requests without end */
  if (box_charge(b, co, NULL, CALLBACK_COST)) raise_stop(b, co);
  int box_idx = b->box_idx;
  lua_pushcfunction(L, callback_in_runtime);
  lua_pushlightuserdata(L, &cb);
  lua_pushvalue(L, box_idx);
  set_ticking(b, NULL); /* the runtime's own work (requests) runs without the ticker */
  int st = lua_pcall(L, 2, 0, 0);
  set_ticking(b, co);
  b->box_idx = box_idx;
  if (st != LUA_OK) {
    char msg[MSG_MAX];
    error_text(L, -1, msg, sizeof msg);
    lua_getiuservalue(L, b->box_idx, 3); /* kept, so the runtime error keeps its kind */
    lua_pushvalue(L, -2);
    lua_rawseti(L, -2, 1);
    lua_settop(L, top);
    b->runtime_error = 1;
    return luaL_error(co, "%s", msg);
  }
  lua_settop(L, top);
  return des_values(b, &b->cbuf, co, SIDE_BOX);
}

/* --- creating a box ------------------------------------------------------------------ */

/* setmetatable inside a box: as the standard one, but a metatable with __gc is refused
 * (finalizers run with hooks off: outside every budget). */
static int box_setmetatable(lua_State *L) {
  int t = lua_type(L, 2);
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
  if (t == LUA_TTABLE) {
    lua_pushliteral(L, "__gc");
    if (lua_rawget(L, 2) != LUA_TNIL)
      return luaL_error(L, "connectors cannot set __gc (finalizers would run outside the sandbox's limits)");
    lua_pop(L, 1);
  }
  if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
    return luaL_error(L, "cannot change a protected metatable");
  lua_settop(L, 2);
  lua_setmetatable(L, 1);
  return 1;
}

/* connrt.sandbox.inner, inside a box only: what sandbox_env.lua needs from C. */
static int luaopen_inner(lua_State *L) {
  lua_newtable(L);
  lua_pushcfunction(L, box_setmetatable);
  lua_setfield(L, -2, "setmetatable");
  lua_pushlightuserdata(L, NULL);
  lua_setfield(L, -2, "null");
  lua_pushliteral(L, CONNRT_VERSION);
  lua_setfield(L, -2, "version");
  return 1;
}

/* The runtime's Lua modules a box loads (sandbox_env.lua and what it requires), read once
 * per process and kept: each box does not read the same files again, every box of a
 * process runs the same code even if the files change under it, and a box made at the
 * open file limit (a proxy worker with clients holding connections) fails cleanly where
 * the module search opens a file: Lua's own loader leaks a FILE there (its freopen of a
 * bytecode file fails after the first open succeeded). A handful of entries, never freed;
 * the lock for libconnrt users that make boxes on several threads. */
#define SOURCE_MAX (4 * 1024 * 1024)
typedef struct source {
  struct source *next;
  char *path, *text;
  size_t len;
} source_t;
static source_t *sources;
static pthread_mutex_t sources_lock = PTHREAD_MUTEX_INITIALIZER;

static source_t *read_source(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NULL;
  struct stat st;
  source_t *src = NULL;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size <= SOURCE_MAX) {
    src = calloc(1, sizeof *src);
    char *text = malloc((size_t)st.st_size + 1), *copy = strdup(path);
    size_t len = 0;
    ssize_t n = 1;
    while (text && len < (size_t)st.st_size && (n = read(fd, text + len, (size_t)st.st_size - len)) > 0) len += (size_t)n;
    if (src && text && copy && n >= 0 && len == (size_t)st.st_size) {
      src->path = copy;
      src->text = text;
      src->len = len;
    } else {
      free(src);
      free(text);
      free(copy);
      src = NULL;
    }
  }
  close(fd);
  return src;
}

/* The text of the module file at `path`, from the cache or read now; NULL if it cannot be
 * read (then the box's require says "no file", as Lua's searcher would). */
static const source_t *source_of(const char *path) {
  pthread_mutex_lock(&sources_lock);
  source_t *s = sources;
  while (s && strcmp(s->path, path) != 0) s = s->next;
  if (!s && (s = read_source(path)) != NULL) {
    s->next = sources;
    sources = s;
  }
  pthread_mutex_unlock(&sources_lock);
  return s;
}

/* A box's searcher for Lua modules, in place of Lua's file searcher: the module's file in
 * the one directory of the box's package.path (registry: connrt.sandbox.path), from the
 * source cache. Only during setup_box: require is gone once the environment is made. */
static int box_searcher(lua_State *S) {
  const char *name = luaL_checkstring(S, 1);
  lua_getfield(S, LUA_REGISTRYINDEX, "connrt.sandbox.path");
  const char *tmpl = luaL_checkstring(S, -1);
  const char *file = luaL_gsub(S, name, ".", LUA_DIRSEP);
  const char *path = luaL_gsub(S, tmpl, LUA_PATH_MARK, file);
  const source_t *src = source_of(path);
  if (!src) {
    lua_pushfstring(S, "no file '%s'", path);
    return 1;
  }
  const char *chunkname = lua_pushfstring(S, "@%s", path);
  if (luaL_loadbufferx(S, src->text, src->len, chunkname, NULL) != LUA_OK)
    return luaL_error(S, "error loading module '%s' from file '%s':\n\t%s", name, path, lua_tostring(S, -1));
  lua_pushstring(S, path);
  return 2;
}

/* Runs in the new box, protected: the libraries, the bounded string functions, the
 * modules its environment needs, and the environment itself (lua/connrt/sandbox_env.lua). */
static int setup_box(lua_State *S) {
  box_t *b = lua_touserdata(S, 1);
  static const luaL_Reg libs[] = {
    { LUA_GNAME, luaopen_base }, { LUA_LOADLIBNAME, luaopen_package },
    { LUA_STRLIBNAME, luaopen_string }, { LUA_TABLIBNAME, luaopen_table },
    { LUA_MATHLIBNAME, luaopen_math }, { LUA_UTF8LIBNAME, luaopen_utf8 },
    { LUA_OSLIBNAME, luaopen_os }, { NULL, NULL }
  };
  for (const luaL_Reg *l = libs; l->name; l++) {
    luaL_requiref(S, l->name, l->func, 1);
    lua_pop(S, 1);
  }
  static const luaL_Reg strfuncs[] = {
    { "find", str_find }, { "match", str_match }, { "gmatch", str_gmatch }, { "gsub", str_gsub },
    { "rep", str_rep }, { NULL, NULL }
  };
  lua_getglobal(S, "string"); /* also the string metatable's __index */
  luaL_setfuncs(S, strfuncs, 0);
  lua_pushnil(S);
  lua_setfield(S, -2, "dump");
  lua_pop(S, 1);

  lua_getglobal(S, "package");
  lua_pushstring(S, b->lua_path);
  lua_setfield(S, -2, "path");
  lua_pushstring(S, b->lua_path);
  lua_setfield(S, LUA_REGISTRYINDEX, "connrt.sandbox.path");
  lua_getfield(S, -1, "searchers");
  lua_pushcfunction(S, box_searcher);
  lua_rawseti(S, -2, 2); /* Lua's file searcher: [1] preload, [3] and [4] C libraries */
  lua_pop(S, 1);
  lua_pushstring(S, b->lua_cpath);
  lua_setfield(S, -2, "cpath");
  lua_getfield(S, -1, "preload");
  lua_pushcfunction(S, luaopen_connrt_urlparse);
  lua_setfield(S, -2, "connrt.urlparse");
  lua_pushcfunction(S, luaopen_connrt_base64);
  lua_setfield(S, -2, "connrt.base64");
  lua_pushcfunction(S, luaopen_connrt_textscan);
  lua_setfield(S, -2, "connrt.textscan");
  lua_pushcfunction(S, luaopen_inner);
  lua_setfield(S, -2, "connrt.sandbox.inner");
  lua_pop(S, 2);

  lua_getglobal(S, "require");
  lua_pushliteral(S, "connrt.sandbox_env");
  lua_call(S, 1, 1);
  if (!lua_istable(S, -1)) return luaL_error(S, "connrt.sandbox_env did not return a table");
  b->env_ref = luaL_ref(S, LUA_REGISTRYINDEX);
  lua_newtable(S);
  b->fns_ref = luaL_ref(S, LUA_REGISTRYINDEX);
  lua_newtable(S);
  b->fnids_ref = luaL_ref(S, LUA_REGISTRYINDEX);
  return 0;
}

static double opt_number(lua_State *L, const char *field, double dflt, double max) {
  double v = dflt;
  int t = lua_getfield(L, 1, field);
  if (t != LUA_TNIL) {
    if (t != LUA_TNUMBER) luaL_error(L, "sandbox.new: %s must be a number", field);
    v = lua_tonumber(L, -1);
    /* the limits come from the environment (CONNRT_CONNECTOR_MEMORY, _CPU): a user's value */
    if (!(v > 0 && v <= max))
      connrt_raise(L, "usage", "bad_limit", "the connector sandbox's %s limit %f is out of range (at most %f)", field,
                   (lua_Number)v, (lua_Number)max);
  }
  lua_pop(L, 1);
  return v;
}

/* Pushes the search path a box loads `module` with: the one directory the runtime itself
 * finds it in (package.searchpath over package[field]), made absolute, then `tmpl` ("?.lua").
 * Nothing else: no "./?.lua", so no file of the current directory runs as a module. */
static void push_module_dir(lua_State *L, const char *field, const char *module, const char *file,
                            const char *tmpl) {
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "searchpath");
  lua_pushstring(L, module);
  lua_getfield(L, -3, field);
  lua_call(L, 2, 2);
  const char *found = lua_tostring(L, -2);
  if (!found) luaL_error(L, "sandbox: cannot find %s: %s", module, luaL_optstring(L, -1, "?"));
  size_t n = strlen(found), fl = strlen(file);
  if (n < fl || strcmp(found + n - fl, file) != 0) luaL_error(L, "sandbox: %s is not where expected", found);
  char dir[PATH_MAX], abs[PATH_MAX];
  snprintf(dir, sizeof dir, "%.*s", (int)(n - fl), found);
  if (!realpath(dir[0] ? dir : ".", abs)) luaL_error(L, "sandbox: cannot resolve %s", dir[0] ? dir : ".");
  lua_pop(L, 3);
  lua_pushfstring(L, "%s/%s", abs, tmpl);
}

/* sandbox.new{ memory = bytes, instructions = n, cpu = seconds, wall = seconds } -> box */
static int sandbox_new(lua_State *L) {
  if (lua_isnoneornil(L, 1)) {
    lua_settop(L, 0);
    lua_newtable(L);
  }
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  size_t mem = (size_t)opt_number(L, "memory", (double)DEFAULT_MEMORY, 1e12);
  long long instr = (long long)opt_number(L, "instructions", (double)DEFAULT_INSTRUCTIONS, 1e15);
  double cpu = opt_number(L, "cpu", DEFAULT_CPU, 86400);
  double wall = opt_number(L, "wall", DEFAULT_WALL, 86400);

  push_module_dir(L, "path", "connrt.sandbox_env", "connrt/sandbox_env.lua", "?.lua");
  push_module_dir(L, "cpath", "cjson", "cjson.so", "?.so");
  const char *path = lua_tostring(L, -2), *cpath = lua_tostring(L, -1); /* kept on the stack */

  box_t *b = lua_newuserdatauv(L, sizeof *b, 3);
  memset(b, 0, sizeof *b);
  lua_newtable(L); /* runtime functions handed to the box, by id */
  lua_setiuservalue(L, -2, 1);
  lua_newtable(L); /* their ids */
  lua_setiuservalue(L, -2, 2);
  lua_createtable(L, 1, 0); /* [1]: the error a runtime callback raised */
  lua_setiuservalue(L, -2, 3);
  luaL_setmetatable(L, BOX_MT);
  b->mem_limit = mem;
  b->instr_limit = instr;
  b->cpu_limit = cpu;
  b->wall_limit = wall;
  b->S = lua_newstate(box_alloc, b);
  if (!b->S)
    return connrt_raise(L, "usage", "bad_limit", "the connector sandbox's memory limit of %d bytes is too small for a Lua "
                        "state", (int)(mem > INT_MAX ? INT_MAX : mem));
  b->lua_path = path;
  b->lua_cpath = cpath;
  b->cpu_start = cpu_now();
  b->wall_start = wall_now();
  lua_pushcfunction(b->S, setup_box);
  lua_pushlightuserdata(b->S, b);
  int st = lua_pcall(b->S, 1, 0, 0);
  b->lua_path = b->lua_cpath = NULL;
  if (st != LUA_OK) {
    char msg[MSG_MAX];
    error_text(b->S, -1, msg, sizeof msg);
    lua_close(b->S);
    b->S = NULL;
    if (b->mem_exceeded) /* the limit (a user's CONNRT_CONNECTOR_MEMORY) is below what a connector needs to start */
      return connrt_raise(L, "usage", "bad_limit", "the connector sandbox's memory limit of %d bytes is too small to "
                          "start a connector: %s", (int)(mem > INT_MAX ? INT_MAX : mem), msg);
    return luaL_error(L, "sandbox: cannot set up a connector's Lua state: %s", msg);
  }
  b->mem_exceeded = 0;
  return 1;
}

static box_t *check_box(lua_State *L) {
  box_t *b = luaL_checkudata(L, 1, BOX_MT);
  if (!b->S) luaL_error(L, "sandbox: the box is closed");
  return b;
}

/* box:run(source, chunkname) -> true, results... | false, message, reason: compiles the
 * text (never bytecode) as a chunk of the sandbox's environment and runs it. */
static int box_run(lua_State *L) {
  box_t *b = check_box(L);
  call_t c = { .op = OP_RUN };
  c.src = luaL_checklstring(L, 2, &c.srclen);
  c.chunkname = luaL_checkstring(L, 3);
  return box_invoke(L, b, 1, &c, 4, 0);
}

/* box:memory() -> bytes the box holds now, its limit */
static int box_memory(lua_State *L) {
  box_t *b = check_box(L);
  lua_pushinteger(L, (lua_Integer)b->mem_used);
  lua_pushinteger(L, (lua_Integer)b->mem_limit);
  return 2;
}

/* box:stopped() -> nil | message, reason */
static int box_stopped(lua_State *L) {
  box_t *b = luaL_checkudata(L, 1, BOX_MT);
  if (!b->stopped) return 0;
  lua_pushstring(L, b->stop_msg);
  lua_pushstring(L, STOP_REASON[b->stopped]);
  return 2;
}

/* box:close(); also __gc and __close. No Lua finalizer can run: __gc is refused. */
static int box_close(lua_State *L) {
  box_t *b = luaL_checkudata(L, 1, BOX_MT);
  if (b->busy) return luaL_error(L, "sandbox: cannot close a box while it runs");
  if (b->S) {
    lua_close(b->S);
    b->S = NULL;
  }
  free(b->buf.p);
  free(b->cbuf.p);
  b->buf = b->cbuf = (buf_t){ 0 };
  return 0;
}

/* sandbox.find(s, pattern [, init [, plain]]) in the runtime, for patterns a connector
 * supplies: string.find's results, with a step limit instead of unbounded time. */
static int sandbox_find(lua_State *L) { return find_or_match(L, 1); }

static const luaL_Reg box_methods[] = {
  { "run", box_run },
  { "memory", box_memory },
  { "stopped", box_stopped },
  { "close", box_close },
  { NULL, NULL }
};

static const luaL_Reg box_meta[] = {
  { "__gc", box_close },
  { "__close", box_close },
  { NULL, NULL }
};

static const luaL_Reg sandbox_funcs[] = {
  { "new", sandbox_new },
  { "find", sandbox_find },
  { NULL, NULL }
};

int luaopen_connrt_sandbox(lua_State *L) {
  connrt_class(L, BOX_MT, box_meta, box_methods);
  luaL_newlib(L, sandbox_funcs);
  return 1;
}
