/*
 * http.c - the HTTP client of the runtime, on libcurl's easy interface.
 *
 * A client holds one configured easy handle (`base`) that never carries a transfer: each
 * request runs on a fresh copy of it (curl_easy_duphandle: the options, no state), and
 * what must outlive a request lives in a share: on the blocking path the connection
 * cache (connections are kept alive and reused), TLS sessions, DNS and, when asked for,
 * curl's in-memory cookie engine. No handle carries two transfers because libcurl before
 * 8.1.0 (Debian 12 has 7.88.1) keeps, in a handle used again, a pointer to a header of
 * its previous transfer that it has freed (headers.c's prevhead), and appends a response's
 * folded first header line (one that begins with a space or a tab) to it: a use after
 * free that the server chooses, which corrupted a proxy worker's heap. Every per-request
 * option (method, URL, headers, body, timeout) is set on each request's copy.
 *
 * Security rules held here, not left to callers: redirects are never followed (the Lua
 * layer follows them itself after checking each hop), only http and https are spoken,
 * TLS peer and host verification are always on, and response bodies are capped.
 *
 * Transport failures are answers, not errors: request() returns nil, message, code with
 * code one of "connect", "timeout", "tls", "resolve", "protocol", "too_big" (the answer
 * was larger than max_body), "refused" (the URL is under none of req.allowed; nothing was
 * sent), "client_left" (connrt proxy's loop stopped it: its client had gone), "other"
 * (request.lua turns each into a reason of lua/connrt/errors.lua). Wrong
 * arguments are programmer errors and raise.
 *
 * On a server's loop (`connrt proxy`, src/api/httpd.c): a request made from one of the
 * loop's coroutines gets an easy handle of its own (a duplicate of the client's, sharing
 * its TLS sessions and DNS cache through a CURLSH; connections are the loop's multi
 * handle's), is handed to the loop and yields; the loop resumes it with the result. With
 * req.stream, the first bytes of the final answer pause the transfer and the request
 * returns at once with the headers and `stream` (the transfer, which the server then
 * streams to its client); statuses in req.hold, and a redirect the caller follows
 * (req.hold_redirects), are kept whole, and so is an answer whose length the server gave
 * and that is small (STREAM_WHOLE at most, not content-encoded: what comes is what the
 * length says): it comes whole in a moment, and one reply costs the server far less than
 * a stream. Everywhere else requests block, as they always did.
 *
 * Opens the `connrt.http` module.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "api.h"

#define CLIENT_MT        "connrt.http.client"
#define DEFAULT_TIMEOUT  30.0
#define DEFAULT_CONNECT  10.0
#define DEFAULT_UA       "connrt/" CONNRT_VERSION
#define DEFAULT_MAX_BODY ((lua_Integer)64 * 1024 * 1024)
#define MAX_SECONDS      (7.0 * 24 * 3600) /* longer is surely a mistake */
#define MAX_ALLOWED      256
#define STREAM_WHOLE     (64 * 1024) /* a sized final answer up to this is kept whole, not streamed */

/* A growable byte buffer filled from curl's callbacks (which must not raise). */
typedef struct {
  char *p;
  size_t len, cap;
} buf_t;

/* One response header: name and value stored back to back in client.hdata. */
typedef struct {
  size_t off, nlen, vlen;
} hdr_t;

typedef struct {
  CURL *base;        /* a client's configured handle, copied for each request; never performs */
  CURL *h;           /* the handle of the request in flight (or of the last one, until the next) */
  CURLSH *keep;      /* a client's blocking requests': connections, cookies, TLS sessions, DNS */
  curl_off_t max_body;
  curl_off_t limit;  /* this request's max_body (the client's unless the request says) */
  long timeout_ms;
  char errbuf[CURL_ERROR_SIZE];
  /* per-request state: kept here, not on the C stack, so that an error raised while the
   * response is turned into Lua values cannot leak it (the next request or __gc frees) */
  struct curl_slist *req_headers;
  buf_t body;
  buf_t hdata;
  hdr_t *hdrs;
  size_t nhdrs, caphdrs;
  int in_headers;    /* inside the header block of the latest response */
  int too_big;       /* the body went over the limit */
  int oom;           /* a callback could not allocate */
  /* a transfer on a server's loop (NULL: the blocking path) and how its answer is streamed */
  connrt_xfer *x;
  CURLSH *share;     /* a client's loop transfers': TLS sessions and DNS (connections are the loop's) */
  int cookies;       /* the client keeps cookies: its requests block (one cookie engine) */
  int stream;        /* stream the final answer when it comes */
  int decided;       /* the answer was looked at: streamed or kept */
  int hold_redirects;
  size_t nhold;
  long hold[32];     /* statuses kept whole (the caller may retry after them) */
  curl_off_t stream_limit, streamed;
} client_t;

/* A request's transfer on a server's loop: the state a client keeps for its blocking
 * requests, one per transfer (many are in flight at once), in a userdata that lives on
 * the waiting coroutine's stack and, once streamed, in the server's hands. */
typedef struct {
  connrt_xfer pub;  /* first: the loop gets it back from CURLINFO_PRIVATE */
  client_t c;
  client_t *parent; /* the client it was made by (its user value keeps it alive) */
} xfer_t;

static int curl_ready = 0;

/* --- buffers ------------------------------------------------------------------------- */

static int buf_reserve(buf_t *b, size_t extra) {
  if (b->cap - b->len >= extra) return 1;
  size_t cap = b->cap ? b->cap : 1024;
  while (cap - b->len < extra) {
    if (cap > ((size_t)-1) / 2) return 0;
    cap *= 2;
  }
  char *p = realloc(b->p, cap);
  if (!p) return 0;
  b->p = p;
  b->cap = cap;
  return 1;
}

static int buf_add(buf_t *b, const char *s, size_t n) {
  if (!buf_reserve(b, n)) return 0;
  memcpy(b->p + b->len, s, n);
  b->len += n;
  return 1;
}

static void buf_free(buf_t *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

/* Frees everything a request left behind. */
static void client_clear(client_t *c) {
  c->decided = 0;
  c->streamed = 0;
  curl_slist_free_all(c->req_headers);
  c->req_headers = NULL;
  buf_free(&c->body);
  buf_free(&c->hdata);
  free(c->hdrs);
  c->hdrs = NULL;
  c->nhdrs = c->caphdrs = 0;
  c->in_headers = c->too_big = c->oom = 0;
}

/* --- curl callbacks ------------------------------------------------------------------ */

static int has_header(client_t *c, const char *name) {
  size_t n = strlen(name);
  for (size_t i = 0; i < c->nhdrs; i++)
    if (c->hdrs[i].nlen == n && strncasecmp(c->hdata.p + c->hdrs[i].off, name, n) == 0) return 1;
  return 0;
}

/* A final answer that comes whole in a moment: its length given, small, and the body
 * libcurl hands over that long (no content encoding to undo). */
static int small_and_sized(client_t *c) {
  curl_off_t len = -1;
  if (curl_easy_getinfo(c->h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &len) != CURLE_OK) return 0;
  return len >= 0 && len <= STREAM_WHOLE && len <= c->stream_limit && !has_header(c, "content-encoding");
}

static int held(client_t *c) {
  long status = 0;
  curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &status);
  for (size_t i = 0; i < c->nhold; i++)
    if (c->hold[i] == status) return 1;
  return c->hold_redirects && status >= 300 && status < 400 && has_header(c, "location");
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud) {
  client_t *c = ud;
  size_t n = size * nmemb;
  connrt_xfer *x = c->x;
  if (x && x->state == CONNRT_XFER_STREAMING) {
    if (c->streamed + (curl_off_t)n > c->stream_limit) {
      c->too_big = x->too_big = 1;
      return 0;
    }
    int r = x->sink(x->task, data, n);
    if (r > 0) return CURL_WRITEFUNC_PAUSE;
    if (r < 0) return 0;
    c->streamed += (curl_off_t)n;
    return n;
  }
  if (x && x->state == CONNRT_XFER_HEADERS) return CURL_WRITEFUNC_PAUSE;
  if (x && c->stream && !c->decided) {
    /* the first bytes of the final answer: streamed unless the caller may act on it */
    c->decided = 1;
    if (!held(c) && x->loop && !small_and_sized(c)) {
      x->state = CONNRT_XFER_HEADERS;
      x->loop->headers(x->loop, x);
      return CURL_WRITEFUNC_PAUSE;
    }
  }
  if ((curl_off_t)(c->body.len + n) > c->limit) {
    c->too_big = 1;
    return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
  }
  if (!buf_add(&c->body, data, n)) {
    c->oom = 1;
    return 0;
  }
  return n;
}

static int is_space(char ch) {
  return ch == ' ' || ch == '\t';
}

/* Called once per header line, status lines and the blank line included. Keeps only the
 * headers of the latest response (a 100 Continue or a proxy's answer comes first). */
static size_t on_header(char *data, size_t size, size_t nmemb, void *ud) {
  client_t *c = ud;
  size_t n = size * nmemb, len = n;
  while (len > 0 && (data[len - 1] == '\r' || data[len - 1] == '\n')) len--;

  if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) { /* a status line: a new response */
    c->hdata.len = 0;
    c->nhdrs = 0;
    c->in_headers = 1;
    return n;
  }
  if (len == 0) { /* end of the header block */
    c->in_headers = 0;
    return n;
  }
  if (!c->in_headers) return n; /* trailers: not kept */

  if (is_space(data[0])) { /* obsolete line folding: continues the previous value */
    if (c->nhdrs == 0) return n;
    size_t i = 0;
    while (i < len && is_space(data[i])) i++;
    if (!buf_add(&c->hdata, " ", 1) || !buf_add(&c->hdata, data + i, len - i)) goto oom;
    c->hdrs[c->nhdrs - 1].vlen += 1 + (len - i);
    return n;
  }

  const char *colon = memchr(data, ':', len);
  if (!colon) return n; /* not a header line */
  size_t nlen = (size_t)(colon - data);
  size_t v = nlen + 1;
  while (v < len && is_space(data[v])) v++;
  size_t vend = len;
  while (vend > v && is_space(data[vend - 1])) vend--;

  if (c->nhdrs == c->caphdrs) {
    size_t cap = c->caphdrs ? c->caphdrs * 2 : 16;
    hdr_t *h = realloc(c->hdrs, cap * sizeof *h);
    if (!h) goto oom;
    c->hdrs = h;
    c->caphdrs = cap;
  }
  hdr_t *h = &c->hdrs[c->nhdrs];
  h->off = c->hdata.len;
  h->nlen = nlen;
  h->vlen = vend - v;
  if (!buf_add(&c->hdata, data, nlen) || !buf_add(&c->hdata, data + v, vend - v)) goto oom;
  c->nhdrs++;
  return n;
oom:
  c->oom = 1;
  return 0;
}

/* --- errors -------------------------------------------------------------------------- */

/* The short code a Lua caller can branch on. */
static const char *error_code(CURLcode rc) {
  switch (rc) {
  case CURLE_COULDNT_CONNECT:
    return "connect";
  case CURLE_ABORTED_BY_CALLBACK: /* only connrt proxy's loop stops a transfer so */
    return "client_left";
  case CURLE_OPERATION_TIMEDOUT:
    return "timeout";
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_RESOLVE_PROXY:
    return "resolve";
  case CURLE_UNSUPPORTED_PROTOCOL:
    return "protocol";
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_ENGINE_NOTFOUND:
  case CURLE_SSL_ENGINE_SETFAILED:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CIPHER:
  case CURLE_SSL_ENGINE_INITFAILED:
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_SHUTDOWN_FAILED:
  case CURLE_SSL_CRL_BADFILE:
  case CURLE_SSL_ISSUER_ERROR:
  case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
  case CURLE_SSL_INVALIDCERTSTATUS:
  case CURLE_SSL_CLIENTCERT:
  case CURLE_USE_SSL_FAILED:
    return "tls";
  default:
    return "other";
  }
}

/* Pushes "METHOD URL: " with the URL cut before its query string or fragment, which may
 * carry codes or tokens that have no business in logs. The caller adds the rest. */
static void push_context(lua_State *L, luaL_Buffer *b, const char *method, const char *url) {
  luaL_buffinit(L, b);
  luaL_addstring(b, method);
  luaL_addchar(b, ' ');
  luaL_addlstring(b, url, strcspn(url, "?#"));
  luaL_addstring(b, ": ");
}

/* Returns nil, "METHOD URL: what happened", code. */
static int transport_error(lua_State *L, client_t *c, CURLcode rc,
                           const char *method, const char *url) {
  lua_pushnil(L);
  luaL_Buffer b;
  push_context(L, &b, method, url);
  const char *code = "other";
  if (c->too_big) {
    lua_pushfstring(L, "response body larger than %I bytes", (lua_Integer)c->limit);
    luaL_addvalue(&b);
    code = "too_big";
  } else if (c->oom) {
    luaL_addstring(&b, "out of memory while receiving the response");
  } else {
    luaL_addstring(&b, curl_easy_strerror(rc));
    size_t elen = strlen(c->errbuf);
    while (elen > 0 && (c->errbuf[elen - 1] == '\n' || c->errbuf[elen - 1] == '\r')) elen--;
    if (elen > 0) {
      luaL_addstring(&b, " (");
      luaL_addlstring(&b, c->errbuf, elen);
      luaL_addchar(&b, ')');
    }
    code = error_code(rc);
  }
  luaL_pushresult(&b);
  lua_pushstring(L, code);
  return 3;
}

/* --- options ------------------------------------------------------------------------- */

/* Raises if a curl option cannot be set: this libcurl lacks something we rely on. */
static void must(lua_State *L, CURLcode rc, const char *what) {
  if (rc != CURLE_OK)
    luaL_error(L, "http: cannot set %s: %s", what, curl_easy_strerror(rc));
}

#define SETOPT(L, h, opt, val) must((L), curl_easy_setopt((h), (opt), (val)), #opt)

/* Reads opts[field] as a number of seconds into milliseconds; dflt when absent. */
static long opt_ms(lua_State *L, int idx, const char *where, const char *field, double dflt) {
  double s = dflt;
  int t = lua_getfield(L, idx, field);
  if (t != LUA_TNIL) {
    if (t != LUA_TNUMBER)
      luaL_error(L, "%s: %s must be a number of seconds, got %s", where, field,
                 luaL_typename(L, -1));
    s = (double)lua_tonumber(L, -1);
    if (!(s > 0 && s <= MAX_SECONDS))
      luaL_error(L, "%s: %s must be more than 0 and at most %d seconds, got %f", where,
                 field, (int)MAX_SECONDS, (lua_Number)s);
  }
  lua_pop(L, 1);
  long ms = (long)(s * 1000.0);
  return ms > 0 ? ms : 1;
}

/* Reads opts[field] as an optional string (NULL when absent). The string stays valid as
 * long as the opts table holds it. */
static const char *opt_string(lua_State *L, int idx, const char *where, const char *field) {
  int t = lua_getfield(L, idx, field);
  const char *s = NULL;
  if (t != LUA_TNIL) {
    if (t != LUA_TSTRING)
      luaL_error(L, "%s: %s must be a string, got %s", where, field, luaL_typename(L, -1));
    s = lua_tostring(L, -1);
  }
  lua_pop(L, 1);
  return s;
}

static client_t *check_client(lua_State *L) {
  client_t *c = luaL_checkudata(L, 1, CLIENT_MT);
  if (!c->base) luaL_error(L, "http: the client is closed");
  return c;
}

/* --- client -------------------------------------------------------------------------- */

/* http.client([opts]) -> client. opts: cookies, timeout, connect_timeout, ca_bundle,
 * user_agent, max_body (see the file header of the module's documentation). */
static int http_client(lua_State *L) {
  static const char where[] = "http.client";
  if (lua_isnoneornil(L, 1)) {
    lua_settop(L, 0);
    lua_newtable(L);
  }
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);

  client_t *c = lua_newuserdatauv(L, sizeof *c, 0);
  memset(c, 0, sizeof *c);
  luaL_setmetatable(L, CLIENT_MT); /* from here on, __gc cleans up whatever is set */

  int t = lua_getfield(L, 1, "cookies");
  if (t != LUA_TNIL && t != LUA_TBOOLEAN)
    luaL_error(L, "%s: cookies must be a boolean, got %s", where, luaL_typename(L, -1));
  int cookies = lua_toboolean(L, -1);
  lua_pop(L, 1);

  c->timeout_ms = opt_ms(L, 1, where, "timeout", DEFAULT_TIMEOUT);
  long connect_ms = opt_ms(L, 1, where, "connect_timeout", DEFAULT_CONNECT);
  const char *ca = opt_string(L, 1, where, "ca_bundle");
  const char *ua = opt_string(L, 1, where, "user_agent");

  c->max_body = (curl_off_t)DEFAULT_MAX_BODY;
  t = lua_getfield(L, 1, "max_body");
  if (t != LUA_TNIL) {
    int isint = 0;
    lua_Integer mb = lua_tointegerx(L, -1, &isint);
    if (!isint || mb < 0)
      luaL_error(L, "%s: max_body must be a byte count (an integer >= 0)", where);
    c->max_body = (curl_off_t)mb;
  }
  lua_pop(L, 1);

  c->base = curl_easy_init();
  if (!c->base) return luaL_error(L, "%s: cannot create a curl handle", where);
  CURL *h = c->base;
  SETOPT(L, h, CURLOPT_NOSIGNAL, 1L);
  SETOPT(L, h, CURLOPT_ERRORBUFFER, c->errbuf);
  SETOPT(L, h, CURLOPT_FOLLOWLOCATION, 0L);
  SETOPT(L, h, CURLOPT_PROTOCOLS_STR, "http,https");
  SETOPT(L, h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  SETOPT(L, h, CURLOPT_SSL_VERIFYPEER, 1L);
  SETOPT(L, h, CURLOPT_SSL_VERIFYHOST, 2L);
  SETOPT(L, h, CURLOPT_ACCEPT_ENCODING, "");
  SETOPT(L, h, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
  SETOPT(L, h, CURLOPT_USERAGENT, ua ? ua : DEFAULT_UA);
  if (ca) SETOPT(L, h, CURLOPT_CAINFO, ca);
  if (cookies) SETOPT(L, h, CURLOPT_COOKIEFILE, "");
  c->cookies = cookies;
  SETOPT(L, h, CURLOPT_WRITEFUNCTION, on_body);
  SETOPT(L, h, CURLOPT_WRITEDATA, c);
  SETOPT(L, h, CURLOPT_HEADERFUNCTION, on_header);
  SETOPT(L, h, CURLOPT_HEADERDATA, c);
  return 1;
}

/* A method must be an HTTP token, so it cannot smuggle anything into the request line. */
static int valid_method(const char *m) {
  if (!*m) return 0;
  for (; *m; m++)
    if (!strchr("!#$%&'*+-.^_`|~", *m) &&
        !(*m >= '0' && *m <= '9') && !(*m >= 'A' && *m <= 'Z') && !(*m >= 'a' && *m <= 'z'))
      return 0;
  return 1;
}

/* Headers that decide where a request goes (Host: the virtual host behind an allowed
 * address) or how it is framed; libcurl sets them. The name of the first such header in
 * req.headers (at idx), or NULL. */
static const char *routing_header(lua_State *L, int idx) {
  static const char *const names[] = { "host", "content-length", "transfer-encoding", "connection",
    "upgrade", "te", "trailer", "keep-alive", "proxy-connection", "proxy-authorization", NULL };
  static const char *const shown[] = { "Host", "Content-Length", "Transfer-Encoding", "Connection",
    "Upgrade", "TE", "Trailer", "Keep-Alive", "Proxy-Connection", "Proxy-Authorization", NULL };
  const char *found = NULL;
  if (lua_getfield(L, idx, "headers") == LUA_TTABLE) {
    lua_Integer n = luaL_len(L, -1);
    for (lua_Integer i = 1; i <= n && !found; i++) {
      if (lua_rawgeti(L, -1, i) == LUA_TSTRING) {
        const char *line = lua_tostring(L, -1);
        size_t nl = strcspn(line, ":");
        while (nl > 0 && is_space(line[nl - 1])) nl--;
        for (int k = 0; names[k]; k++)
          if (strlen(names[k]) == nl && strncasecmp(line, names[k], nl) == 0) found = shown[k];
      }
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  return found;
}

/* Builds the request header list from req.headers (at stack index idx) into c. */
static void set_headers(lua_State *L, client_t *c, int idx) {
  int t = lua_getfield(L, idx, "headers");
  if (t != LUA_TNIL) {
    if (t != LUA_TTABLE)
      luaL_error(L, "http request: headers must be an array of \"Name: value\" strings, got %s",
                 luaL_typename(L, -1));
    lua_Integer n = luaL_len(L, -1);
    for (lua_Integer i = 1; i <= n; i++) {
      if (lua_rawgeti(L, -1, i) != LUA_TSTRING)
        luaL_error(L, "http request: headers[%I] must be a string, got %s", i,
                   luaL_typename(L, -1));
      size_t len;
      const char *line = lua_tolstring(L, -1, &len);
      if (len != strlen(line) || strpbrk(line, "\r\n") || !strchr(line, ':'))
        luaL_error(L, "http request: headers[%I] is not a single \"Name: value\" line", i);
      struct curl_slist *l = curl_slist_append(c->req_headers, line);
      if (!l) luaL_error(L, "http request: out of memory");
      c->req_headers = l;
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  /* never ask for 100-continue: it costs a round trip and some servers mishandle it */
  struct curl_slist *l = curl_slist_append(c->req_headers, "Expect:");
  if (!l) luaL_error(L, "http request: out of memory");
  c->req_headers = l;
}

/* Pushes the headers as a map: names lowercased (RFC 9110: they are case-insensitive),
 * a repeated name's values joined with ", " in arrival order. Built here rather than in
 * Lua because every response needs it and it is a third of a small request's Lua work. */
static void push_header_map(lua_State *L, client_t *c) {
  lua_createtable(L, 0, (int)c->nhdrs);
  for (size_t i = 0; i < c->nhdrs; i++) {
    const hdr_t *h = &c->hdrs[i];
    const char *src = c->hdata.p + h->off;
    luaL_Buffer b;
    char *name = luaL_buffinitsize(L, &b, h->nlen);
    for (size_t k = 0; k < h->nlen; k++) {
      char ch = src[k];
      name[k] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + ('a' - 'A')) : ch;
    }
    luaL_pushresultsize(&b, h->nlen);
    lua_pushvalue(L, -1);
    if (lua_rawget(L, -3) == LUA_TSTRING) { /* repeated: "earlier, this" */
      lua_pushliteral(L, ", ");
      lua_pushlstring(L, src + h->nlen, h->vlen);
      lua_concat(L, 3);
    } else {
      lua_pop(L, 1);
      lua_pushlstring(L, src + h->nlen, h->vlen);
    }
    lua_rawset(L, -3);
  }
}

/* Pushes the response table { status, headers (list), header (map), body, url }. */
static int push_response(lua_State *L, client_t *c) {
  long status = 0;
  char *eff = NULL;
  curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_getinfo(c->h, CURLINFO_EFFECTIVE_URL, &eff);
  lua_createtable(L, 0, 5);
  lua_pushinteger(L, status);
  lua_setfield(L, -2, "status");
  lua_createtable(L, (int)c->nhdrs, 0);
  for (size_t i = 0; i < c->nhdrs; i++) {
    const hdr_t *h = &c->hdrs[i];
    lua_createtable(L, 0, 2);
    lua_pushlstring(L, c->hdata.p + h->off, h->nlen);
    lua_setfield(L, -2, "name");
    lua_pushlstring(L, c->hdata.p + h->off + h->nlen, h->vlen);
    lua_setfield(L, -2, "value");
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_setfield(L, -2, "headers");
  push_header_map(L, c);
  lua_setfield(L, -2, "header");
  lua_pushlstring(L, c->body.p ? c->body.p : "", c->body.len);
  lua_setfield(L, -2, "body");
  lua_pushstring(L, eff ? eff : "");
  lua_setfield(L, -2, "url");
  return 1;
}

/* Sets a request's options on c->h (the headers are in c->req_headers already). With
 * copy, the body is copied (a loop transfer may outlive the Lua string). */
static void prepare(lua_State *L, client_t *c, const char *url, const char *method, const char *body, size_t blen,
                    long timeout_ms, int copy) {
  CURL *h = c->h;
  int is_get = strcmp(method, "GET") == 0, is_head = strcmp(method, "HEAD") == 0;
  SETOPT(L, h, CURLOPT_URL, url);
  SETOPT(L, h, CURLOPT_HTTPHEADER, c->req_headers);
  SETOPT(L, h, CURLOPT_TIMEOUT_MS, timeout_ms);
  /* Every request starts from a plain GET with no body: setting POSTFIELDS (even to NULL)
   * turns the handle into POST, so it comes first and HTTPGET after it. */
  SETOPT(L, h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)-1);
  SETOPT(L, h, CURLOPT_POSTFIELDS, (char *)NULL);
  SETOPT(L, h, CURLOPT_CUSTOMREQUEST, (char *)NULL);
  SETOPT(L, h, CURLOPT_NOBODY, 0L);
  SETOPT(L, h, CURLOPT_HTTPGET, 1L);
  if (is_head) {
    SETOPT(L, h, CURLOPT_NOBODY, 1L);
  } else if (!is_get) {
    if (body || strcmp(method, "POST") == 0) {
      SETOPT(L, h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
      if (copy) /* the size first: COPYPOSTFIELDS copies that many bytes */
        SETOPT(L, h, CURLOPT_COPYPOSTFIELDS, body ? body : "");
      else /* the body string stays on the Lua stack for the whole transfer */
        SETOPT(L, h, CURLOPT_POSTFIELDS, body ? body : "");
    }
    if (strcmp(method, "POST") != 0) SETOPT(L, h, CURLOPT_CUSTOMREQUEST, method);
  }
}

/* A loop transfer is over (or dropped): its easy handle is cleaned up, never used for
 * another transfer (see the top of this file). */
static void xfer_release(xfer_t *u) {
  CURL *h = u->c.h;
  if (!h) return;
  u->c.h = NULL;
  u->pub.easy = NULL;
  curl_easy_cleanup(h);
}

/* The rest of client:request() once a loop transfer resumes this coroutine (the
 * transfer's userdata at stack index ctx, the resume value on top). */
static int finish_on_loop(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  int idx = (int)ctx;
  xfer_t *u = luaL_checkudata(L, idx, CONNRT_XFER_MT);
  client_t *c = &u->c;
  lua_Integer v = lua_tointeger(L, -1);
  lua_pop(L, 1);
  if (v == CONNRT_XFER_HEADERS_READY) {
    /* the final answer, whose body the caller streams: the transfer waits, paused */
    push_response(L, c);
    lua_pushvalue(L, idx);
    lua_setfield(L, -2, "stream");
    return 1;
  }
  lua_getfield(L, 2, "method");
  const char *method = lua_isstring(L, -1) ? lua_tostring(L, -1) : "GET";
  int n = v == CURLE_OK ? push_response(L, c) : transport_error(L, c, (CURLcode)v, method, lua_tostring(L, 3));
  /* done: the easy handle's connection is back in the loop's cache already */
  client_clear(c);
  xfer_release(u);
  return n;
}

static const char *xfer_easy_error = "http request: cannot create a curl handle for the server's loop";

static int start_on_loop(lua_State *L, client_t *parent, connrt_loop *loop, curl_off_t limit, long timeout_ms) {
  const char *url = lua_tostring(L, 3);
  const char *method = opt_string(L, 2, "http request", "method");
  if (!method) method = "GET";
  size_t blen = 0;
  const char *body = lua_isstring(L, 4) ? lua_tolstring(L, 4, &blen) : NULL;
  if (!parent->share) {
    parent->share = curl_share_init();
    if (parent->share) {
      curl_share_setopt(parent->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
      curl_share_setopt(parent->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    }
  }
  xfer_t *u = lua_newuserdatauv(L, sizeof *u, 1);
  memset(u, 0, sizeof *u);
  luaL_setmetatable(L, CONNRT_XFER_MT);
  lua_pushvalue(L, 1); /* the client: kept alive while its transfer is */
  lua_setiuservalue(L, -2, 1);
  u->parent = parent;
  int idx = lua_gettop(L);
  client_t *c = &u->c;
  c->h = curl_easy_duphandle(parent->base);
  if (!c->h) return luaL_error(L, "%s", xfer_easy_error);
  c->x = &u->pub;
  u->pub.easy = c->h;
  c->limit = limit;
  CURL *h = c->h;
  SETOPT(L, h, CURLOPT_ERRORBUFFER, c->errbuf);
  SETOPT(L, h, CURLOPT_WRITEDATA, c);
  SETOPT(L, h, CURLOPT_HEADERDATA, c);
  SETOPT(L, h, CURLOPT_PRIVATE, &u->pub);
  if (parent->share) SETOPT(L, h, CURLOPT_SHARE, parent->share);
  set_headers(L, c, 2);
  prepare(L, c, url, method, body, blen, timeout_ms, 1);
  /* streaming: stream (boolean), hold (statuses kept whole), hold_redirects (a 3xx with
   * a Location is kept: the caller follows it), stream_max (bytes a streamed body may have) */
  lua_getfield(L, 2, "stream");
  c->stream = lua_toboolean(L, -1);
  lua_pop(L, 1);
  lua_getfield(L, 2, "hold_redirects");
  c->hold_redirects = lua_toboolean(L, -1);
  lua_pop(L, 1);
  /* abortable: the loop may stop this transfer when the client whose request it serves
   * has gone (a proxied request; never a token request, whose answer must be kept) */
  lua_getfield(L, 2, "abortable");
  u->pub.abortable = lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (lua_getfield(L, 2, "hold") == LUA_TTABLE) {
    lua_Integer n = luaL_len(L, -1);
    for (lua_Integer i = 1; i <= n && c->nhold < sizeof c->hold / sizeof c->hold[0]; i++) {
      lua_rawgeti(L, -1, i);
      if (lua_isinteger(L, -1)) c->hold[c->nhold++] = (long)lua_tointeger(L, -1);
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  c->stream_limit = limit;
  if (lua_getfield(L, 2, "stream_max") != LUA_TNIL) {
    int isint = 0;
    lua_Integer mb = lua_tointegerx(L, -1, &isint);
    if (!isint || mb < 0) return luaL_error(L, "http request: stream_max must be a byte count (an integer >= 0)");
    c->stream_limit = (curl_off_t)mb;
  }
  lua_pop(L, 1);
  c->errbuf[0] = '\0';
  int rc = loop->start(loop, L, &u->pub);
  if (rc != 0) return luaL_error(L, "http request: cannot start a transfer on the server's loop: %s",
                                 curl_multi_strerror((CURLMcode)rc));
  return lua_yieldk(L, 0, (lua_KContext)idx, finish_on_loop);
}

/* A loop transfer's userdata is collected: off the loop if still on it, then freed. */
static int xfer_gc(lua_State *L) {
  xfer_t *u = luaL_checkudata(L, 1, CONNRT_XFER_MT);
  if (u->pub.loop) u->pub.loop->drop(u->pub.loop, &u->pub);
  u->pub.loop = NULL;
  xfer_release(u);
  client_clear(&u->c);
  return 0;
}

static const luaL_Reg xfer_meta[] = {
  { "__gc", xfer_gc },
  { NULL, NULL }
};

/* client:request(req) -> response | nil, message, code.
 * req: method (default "GET"), url, headers (array of "Name: value"), body, timeout,
 * max_body (bytes this response may have; default the client's max_body), allowed (the
 * URLs it may go to: a URL under none of them is answered nil, message, "refused"). */
static int client_request(lua_State *L) {
  client_t *c = check_client(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);

  if (lua_getfield(L, 2, "url") != LUA_TSTRING)
    return luaL_error(L, "http request: url is required (a string), got %s",
                      luaL_typename(L, -1));
  const char *url = lua_tostring(L, -1); /* index 3, kept on the stack */
  const char *method = opt_string(L, 2, "http request", "method");
  if (!method) method = "GET";
  if (!valid_method(method))
    return luaL_error(L, "http request: invalid method \"%s\"", method);
  size_t blen = 0;
  const char *body = NULL;
  int t = lua_getfield(L, 2, "body"); /* index 4, kept on the stack during the transfer */
  if (t != LUA_TNIL) {
    if (t != LUA_TSTRING)
      return luaL_error(L, "http request: body must be a string, got %s", luaL_typename(L, -1));
    body = lua_tolstring(L, -1, &blen);
  }
  int is_get = strcmp(method, "GET") == 0, is_head = strcmp(method, "HEAD") == 0;
  if (body && (is_get || is_head))
    return luaL_error(L, "http request: a %s request cannot have a body", method);
  long timeout_ms = opt_ms(L, 2, "http request", "timeout", (double)c->timeout_ms / 1000.0);
  curl_off_t limit = c->max_body;
  if (lua_getfield(L, 2, "max_body") != LUA_TNIL) {
    int isint = 0;
    lua_Integer mb = lua_tointegerx(L, -1, &isint);
    if (!isint || mb < 0)
      return luaL_error(L, "http request: max_body must be a byte count (an integer >= 0)");
    limit = (curl_off_t)mb;
  }
  lua_pop(L, 1);
  /* The URLs it may go to, when the caller says (every request that carries a
   * connection's credentials does): checked here, on the URL libcurl will be given, so
   * nothing the Lua layer did before (query parameters, templates, redirects) can move it
   * elsewhere. One rule for both: src/api/urlparse.c. */
  t = lua_getfield(L, 2, "allowed");
  if (t != LUA_TNIL) {
    const char *hname = routing_header(L, 2);
    if (hname) {
      lua_pushnil(L);
      luaL_Buffer b;
      push_context(L, &b, method, url);
      luaL_addstring(&b, "refused before sending: a request that carries credentials cannot set the ");
      luaL_addstring(&b, hname);
      luaL_addstring(&b, " header (it decides where the request goes or how it is framed)");
      luaL_pushresult(&b);
      lua_pushliteral(L, "refused");
      return 3;
    }
    if (t != LUA_TTABLE) return luaL_error(L, "http request: allowed must be an array of URLs");
    const char *list[MAX_ALLOWED];
    size_t lens[MAX_ALLOWED], n = 0;
    lua_Integer count = luaL_len(L, -1);
    if (count > MAX_ALLOWED) return luaL_error(L, "http request: more than %d allowed URLs", MAX_ALLOWED);
    for (lua_Integer i = 1; i <= count; i++) {
      if (lua_rawgeti(L, -1, i) != LUA_TSTRING)
        return luaL_error(L, "http request: allowed[%I] must be a string", i);
      list[n] = lua_tolstring(L, -1, &lens[n]);
      n++;
      lua_pop(L, 1); /* the table keeps the string alive */
    }
    size_t ulen = lua_rawlen(L, 3);
    const char *why = connrt_url_allowed(url, ulen, list, lens, n);
    if (why) {
      lua_pushnil(L);
      luaL_Buffer b;
      push_context(L, &b, method, url);
      luaL_addstring(&b, "refused before sending: ");
      luaL_addstring(&b, why);
      luaL_pushresult(&b);
      lua_pushliteral(L, "refused");
      return 3;
    }
  }
  lua_pop(L, 1);

  /* On a server's loop (connrt proxy), from one of its coroutines: a transfer of its own
   * on the loop, and this coroutine waits for it without holding up the others. */
  lua_getfield(L, LUA_REGISTRYINDEX, CONNRT_LOOP_KEY);
  connrt_loop *loop = lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (loop && !c->cookies && lua_isyieldable(L) && loop->owns(loop, L))
    return start_on_loop(L, c, loop, limit, timeout_ms);

  client_clear(c);
  if (c->h) curl_easy_cleanup(c->h); /* the last request's */
  c->h = NULL;
  if (!c->keep) {
    c->keep = curl_share_init();
    if (!c->keep) return luaL_error(L, "http request: out of memory");
    curl_share_setopt(c->keep, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
    curl_share_setopt(c->keep, CURLSHOPT_SHARE, CURL_LOCK_DATA_COOKIE);
    curl_share_setopt(c->keep, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    curl_share_setopt(c->keep, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
  }
  c->h = curl_easy_duphandle(c->base);
  if (!c->h) return luaL_error(L, "http request: cannot create a curl handle");
  CURL *h = c->h;
  SETOPT(L, h, CURLOPT_SHARE, c->keep);
  c->limit = limit;
  set_headers(L, c, 2);
  prepare(L, c, url, method, body, blen, timeout_ms, 0);
  c->errbuf[0] = '\0';
  CURLcode rc = curl_easy_perform(h);
  /* drop the pointer to the body string, which Lua may collect after we return */
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, (char *)NULL);

  int n = rc == CURLE_OK ? push_response(L, c) : transport_error(L, c, rc, method, url);
  client_clear(c);
  return n;
}

/* client:close(); also __gc and __close. Closing twice is harmless. */
static int client_close(lua_State *L) {
  client_t *c = luaL_checkudata(L, 1, CLIENT_MT);
  /* the handles before the shares they use */
  if (c->h) curl_easy_cleanup(c->h);
  c->h = NULL;
  if (c->base) curl_easy_cleanup(c->base);
  c->base = NULL;
  if (c->keep && curl_share_cleanup(c->keep) == CURLSHE_OK) c->keep = NULL;
  if (c->share && curl_share_cleanup(c->share) == CURLSHE_OK) c->share = NULL;
  client_clear(c);
  return 0;
}

/* http.version() -> libcurl's version string */
static int http_version(lua_State *L) {
  lua_pushstring(L, curl_version());
  return 1;
}

static const luaL_Reg client_methods[] = {
  { "request", client_request },
  { "close", client_close },
  { NULL, NULL }
};

static const luaL_Reg client_meta[] = {
  { "__gc", client_close },
  { "__close", client_close },
  { NULL, NULL }
};

static const luaL_Reg http_funcs[] = {
  { "client", http_client },
  { "version", http_version },
  { NULL, NULL }
};

/* Initialises libcurl (and through it OpenSSL) ahead of luaopen_connrt_http, on the
 * binary's prefetch thread (src/api/api.c), which the main thread joins before it opens
 * the module. A failure is left for luaopen_connrt_http to meet and report. */
void connrt_http_warm(void) {
  if (!curl_ready && curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK) curl_ready = 1;
}

int luaopen_connrt_http(lua_State *L) {
  if (!curl_ready) {
    CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (rc != CURLE_OK)
      return luaL_error(L, "http: cannot initialise libcurl: %s", curl_easy_strerror(rc));
    curl_ready = 1;
  }
  connrt_class(L, CLIENT_MT, client_meta, client_methods);
  connrt_class(L, CONNRT_XFER_MT, xfer_meta, NULL);
  luaL_newlib(L, http_funcs);
  return 1;
}
