/*
 * connrt.h - the C API of connrt: use stored connections from C programs.
 *
 * Connections are made with `connrt run CONNECTOR.lua`; this library uses them: it looks
 * a connection up, makes requests through it (with the connector's request parameters,
 * only to its allowed URLs, refreshing its token when needed, single-flight with every
 * other process) and hands out fresh access tokens.
 *
 *     connrt *rt;
 *     if (connrt_open(&rt, NULL) != CONNRT_OK) { ...connrt_errmsg(rt)...; connrt_close(rt); }
 *     connrt_response res;
 *     if (connrt_request(rt, "github", "GET", "/user", NULL, NULL, 0, &res) == CONNRT_OK) {
 *         printf("%d %.*s\n", res.status, (int)res.body_len, res.body);
 *         connrt_response_free(&res);
 *     }
 *     connrt_close(rt);
 *
 * Link with `pkg-config --cflags --libs connrt` (installed by `make install`). Every
 * function returns a connrt_code; on failure connrt_errmsg() says what went wrong and
 * where, never with a secret in it, and connrt_errreason() why, as a word a program can
 * test. A handle is not thread-safe: use one per thread.
 *
 * connrt_open changes the calling process, for good: it sets the core file size limit
 * (RLIMIT_CORE) to 0, soft and hard, and makes the process not dumpable
 * (prctl(PR_SET_DUMPABLE, 0)), because the process now holds access tokens and the
 * store's key. The process then writes no core dump, and the user's other processes can
 * no longer ptrace it or read its /proc/PID/mem, environ or fd (root still can). Neither
 * is undone by connrt_close; a program that needs a core dump to debug must set them
 * back itself (the hard limit only with CAP_SYS_RESOURCE). AddressSanitizer's leak check
 * still works: it makes the process dumpable while it looks.
 *
 * While connector code runs (a connector's hooks, during a request), the calling thread
 * gets SIGPROF from a timer on its CPU clock: connrt installs its own SIGPROF handler
 * (SA_RESTART) the first time, so the program must not use SIGPROF or block it in that
 * thread (the sandbox's time bound is then coarser, not gone).
 */
#ifndef CONNRT_H
#define CONNRT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One code per kind of failure; the same numbers are the `connrt` command's exit codes
 * (both defined in lua/connrt/errors.lua; spec/errors_spec.lua checks this list). */
typedef enum {
  CONNRT_OK        = 0,
  CONNRT_EFAILED   = 1,   /* any other failure */
  CONNRT_EUSAGE    = 2,   /* a wrong argument (NULL id, bad method, ...) */
  CONNRT_ECONNECTOR = 3,  /* the connection's connector is invalid */
  CONNRT_ECONNECT  = 4,   /* a connect flow did not complete */
  CONNRT_EPROVIDER = 5,   /* the provider answered with an error (e.g. a refused refresh) */
  CONNRT_ENETWORK  = 6,   /* no answer from the server */
  CONNRT_EREFUSED  = 7,   /* the URL is outside the connection's allowed URLs: nothing sent */
  CONNRT_ESTORE    = 8,   /* the store cannot be read or written (wrong key, damage) */
  CONNRT_ENOTFOUND = 9,   /* no such connection */
  CONNRT_EINTERNAL = 70,  /* a bug in connrt */
  CONNRT_ENOMEM    = 71   /* out of memory */
} connrt_code;

typedef struct connrt connrt;

typedef struct {
  int status;          /* the HTTP status */
  char *body;          /* the response body, NUL-terminated (body_len excludes the NUL) */
  size_t body_len;
  char *headers;       /* response headers as "name: value\n" lines, names lowercased */
} connrt_response;

/* Opens the store in `home` (NULL: CONNRT_HOME, else the XDG data directory). Always sets
 * *rt (NULL only when out of memory), so a failure's message can be read with
 * connrt_errmsg(*rt); connrt_close() it either way. First makes the process write no
 * core dump and not dumpable (see the top of this file), whatever happens next. */
connrt_code connrt_open(connrt **rt, const char *home);

/* A valid access token for connection `id` (an id, or a connector id with exactly one
 * connection), refreshed first when it is about to expire. Free *token with connrt_free. */
connrt_code connrt_token(connrt *rt, const char *id, char **token);

/* Sends a request through connection `id`. `url` is absolute or relative to the
 * connection's first allowed URL; `headers` is NULL or a NULL-terminated array of
 * "Name: value" strings; `body` may be NULL. A response with any status is CONNRT_OK:
 * check res->status. Free the response with connrt_response_free. */
connrt_code connrt_request(connrt *rt, const char *id, const char *method, const char *url,
                           const char *const *headers, const char *body, size_t body_len,
                           connrt_response *res);

/* The message of the last failure on this handle ("" after a success). */
const char *connrt_errmsg(const connrt *rt);

/* The reason of the last failure on this handle ("" after a success): a word that says
 * what went wrong more closely than the code, for a program to test, e.g.
 *
 *     CONNRT_ESTORE:    "locked" (another process holds the store's write lock), "wrong_key",
 *                       "damaged", "unsafe_mode", "io", ...
 *     CONNRT_EPROVIDER: "needs_reconnect" (connect again: a refresh was refused),
 *                       "invalid_grant", "rejected", "bad_answer", "too_big"
 *     CONNRT_ENETWORK:  "unreachable", "timeout", "tls", "protocol", "transport"
 *     CONNRT_EREFUSED:  "refused_url"
 *     CONNRT_EINTERNAL: "internal"
 *     CONNRT_ENOMEM:    "out_of_memory"
 *
 * Each reason belongs to one code. docs/errors.md lists them all, with their meaning
 * (generated from lua/connrt/errors.lua, their one definition); new reasons may be added
 * in later versions, so treat an unknown one as its code says. The string is owned by
 * the handle and valid until its next call. */
const char *connrt_errreason(const connrt *rt);

/* A fixed description of a code. */
const char *connrt_strerror(connrt_code code);

void connrt_response_free(connrt_response *res);
void connrt_free(void *p);
void connrt_close(connrt *rt);

#ifdef __cplusplus
}
#endif

#endif
