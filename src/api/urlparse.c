/*
 * urlparse.c - splitting an absolute http(s) URL into its parts, for lua/connrt/url.lua.
 *
 * Every request parses its URL at least once (the allowed-URL check, then redirects),
 * and in Lua's patterns that was the largest part of a request's own work: about 31,000
 * instructions for a 33-byte URL, because an unanchored pattern class is tried at every
 * position. Here it is one pass. The rules are url.lua's, unchanged, and are documented
 * there (M.parse); this file only applies them:
 *
 *   no space or control byte (C locale iscntrl: 0x00-0x1f, 0x7f) anywhere;
 *   scheme = ALPHA *(alnum / "+" / "." / "-") followed by "://", http or https;
 *   authority = up to the first "/", "?" or "#"; userinfo = up to its last "@";
 *   host = "[" 1*(hex / ":" / ".") "]" or up to the first ":"; port = ":" 1*DIGIT
 *   in 1..65535, else the scheme's default; a host name of alnum, "." and "-" that
 *   starts with neither "." nor "-" and has no ".."; path up to the first "?" or "#"
 *   ("/" when empty), query up to the next "#", fragment after it.
 *
 * Only ASCII letters count as letters (Lua's patterns in the C locale do the same).
 * parse(s) returns the table url.lua returns, or nil and the reason without the URL
 * (url.lua quotes the URL into the message, as %q).
 *
 * Opens the `connrt.urlparse` module.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api.h"

static int is_alpha(unsigned char c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }
static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static int is_alnum(unsigned char c) { return is_alpha(c) || is_digit(c); }
static int is_hex(unsigned char c) { return is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f'); }
static unsigned char lower(unsigned char c) { return (c >= 'A' && c <= 'Z') ? (unsigned char)(c | 0x20) : c; }

/* Pushes s[0..n) lowercased. */
static void push_lower(lua_State *L, const char *s, size_t n) {
  luaL_Buffer b;
  char *p = luaL_buffinitsize(L, &b, n);
  for (size_t i = 0; i < n; i++) p[i] = (char)lower((unsigned char)s[i]);
  luaL_pushresultsize(&b, n);
}

static int fail(lua_State *L, const char *why) {
  lua_pushnil(L);
  lua_pushstring(L, why);
  return 2;
}

/* The first byte of s[from..n) that is in `set`, or n. */
static size_t span_to(const char *s, size_t from, size_t n, const char *set) {
  for (size_t i = from; i < n; i++)
    if (strchr(set, s[i]) && s[i] != '\0') return i;
  return n;
}

/* Splits s[0..n) by the rules above into *u. Returns NULL, or why it is not a URL. */
const char *connrt_url_split(const char *s, size_t n, connrt_url *u) {
  memset(u, 0, sizeof *u);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c <= 0x20 || c == 0x7f) return "contains spaces or control characters";
  }

  /* scheme "://" */
  size_t i = 0;
  if (n == 0 || !is_alpha((unsigned char)s[0])) return "not an absolute URL (scheme://host/...)";
  while (i < n && (is_alnum((unsigned char)s[i]) || s[i] == '+' || s[i] == '.' || s[i] == '-')) i++;
  if (n - i < 3 || memcmp(s + i, "://", 3) != 0) return "not an absolute URL (scheme://host/...)";
  size_t scheme_len = i;
  long default_port;
  if (scheme_len == 4 && strncasecmp(s, "http", 4) == 0) default_port = 80;
  else if (scheme_len == 5 && strncasecmp(s, "https", 5) == 0) default_port = 443;
  else return "scheme must be http or https";

  /* authority: [userinfo "@"] host [":" port] */
  size_t auth = scheme_len + 3;
  size_t auth_end = span_to(s, auth, n, "/?#");
  size_t hp = auth; /* start of host:port */
  int has_userinfo = 0;
  for (size_t k = auth_end; k > auth; k--)
    if (s[k - 1] == '@') { hp = k; has_userinfo = 1; break; }

  size_t host_end, port_at;
  if (hp < auth_end && s[hp] == '[') {
    size_t k = hp + 1;
    while (k < auth_end && (is_hex((unsigned char)s[k]) || s[k] == ':' || s[k] == '.')) k++;
    if (k == hp + 1 || k >= auth_end || s[k] != ']') return "malformed IPv6 host";
    host_end = port_at = k + 1;
  } else {
    host_end = port_at = span_to(s, hp, auth_end, ":");
  }

  long port = default_port;
  if (port_at < auth_end) {
    size_t k = port_at;
    if (s[k] != ':' || k + 1 >= auth_end) return "malformed port";
    long v = 0;
    for (k++; k < auth_end; k++) {
      if (!is_digit((unsigned char)s[k])) return "malformed port";
      if (v <= 65535) v = v * 10 + (s[k] - '0'); /* past 65535 it is refused anyway */
    }
    if (v < 1 || v > 65535) return "malformed port";
    port = v;
  }

  const char *host = s + hp;
  size_t host_len = host_end - hp;
  if (host_len == 0) return "no host";
  if (host[0] != '[')
    for (size_t k = 0; k < host_len; k++)
      if (!is_alnum((unsigned char)host[k]) && host[k] != '.' && host[k] != '-')
        return "host has characters a host name cannot have";
  if (host[0] == '.' || host[0] == '-') return "malformed host";
  for (size_t k = 0; k + 1 < host_len; k++)
    if (host[k] == '.' && host[k + 1] == '.') return "malformed host";

  /* path ["?" query] ["#" fragment]; has_query: a "?" anywhere after the authority */
  size_t path_end = span_to(s, auth_end, n, "?#");
  size_t q = path_end, q_end = path_end, f = n;
  if (path_end < n && s[path_end] == '?') {
    q = path_end + 1;
    q_end = span_to(s, q, n, "#");
  }
  if (q_end < n) f = q_end + 1; /* s[q_end] is "#" */

  u->scheme = s;
  u->scheme_len = scheme_len;
  u->has_userinfo = has_userinfo;
  u->userinfo = s + auth;
  u->userinfo_len = has_userinfo ? hp - 1 - auth : 0;
  u->host = host;
  u->host_len = host_len;
  u->port = port;
  u->path = s + auth_end;
  u->path_len = path_end - auth_end; /* 0: the path is "/" */
  u->query = s + q;
  u->query_len = q_end - q;
  u->fragment = s + f;
  u->fragment_len = f <= n ? n - f : 0;
  u->has_query = memchr(s + auth_end, '?', n - auth_end) != NULL;
  return NULL;
}

/* urlparse.parse(s) -> { scheme, userinfo, host, port, path, query, fragment, has_query }
 * | nil, reason */
static int urlparse_parse(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  connrt_url u;
  const char *why = connrt_url_split(s, n, &u);
  if (why) return fail(L, why);
  lua_createtable(L, 0, 8);
  push_lower(L, u.scheme, u.scheme_len);
  lua_setfield(L, -2, "scheme");
  if (u.has_userinfo) {
    lua_pushlstring(L, u.userinfo, u.userinfo_len);
    lua_setfield(L, -2, "userinfo");
  }
  push_lower(L, u.host, u.host_len);
  lua_setfield(L, -2, "host");
  lua_pushinteger(L, u.port);
  lua_setfield(L, -2, "port");
  if (u.path_len > 0) lua_pushlstring(L, u.path, u.path_len);
  else lua_pushliteral(L, "/");
  lua_setfield(L, -2, "path");
  lua_pushlstring(L, u.query, u.query_len);
  lua_setfield(L, -2, "query");
  lua_pushlstring(L, u.fragment, u.fragment_len);
  lua_setfield(L, -2, "fragment");
  lua_pushboolean(L, u.has_query);
  lua_setfield(L, -2, "has_query");
  return 1;
}

/* --- the allowed-URL rule ------------------------------------------------------------ */

/* Resolves "." and ".." segments of an absolute path (RFC 3986 section 5.2.4) into out
 * (room for n + 1 bytes); returns the length. A last "." or ".." leaves a trailing "/". */
static size_t remove_dot_segments(const char *p, size_t n, char *out) {
  size_t len = 0;
  size_t i = 0;
  int last_dot = 0;
  while (i <= n) { /* segments between slashes; the first, before the leading "/", is empty */
    size_t j = i;
    while (j < n && p[j] != '/') j++;
    size_t sl = j - i;
    int dot = sl == 1 && p[i] == '.', dotdot = sl == 2 && p[i] == '.' && p[i + 1] == '.';
    if (i == 0) {
      /* the empty segment before the leading "/" */
    } else if (dotdot) {
      while (len > 0 && out[len - 1] != '/') len--; /* drop the last segment */
      if (len > 0) len--;                             /* and its "/" */
    } else if (!dot) {
      out[len++] = '/';
      memcpy(out + len, p + i, sl);
      len += sl;
    }
    last_dot = dot || dotdot;
    i = j + 1;
  }
  if (last_dot || len == 0) out[len++] = '/';
  return len;
}

static int equal_nocase(const char *a, size_t an, const char *b, size_t bn) {
  return an == bn && strncasecmp(a, b, an) == 0;
}

/* An encoded '/', '\' or '.' in a path could mean one thing to us and another to a
 * server; a '\' too. NULL when there is none, else what there is. */
static const char *bad_separator(const char *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (p[i] == '\\') return "the path has a backslash";
    if (p[i] == '%' && i + 2 < n) {
      char a = p[i + 1], b = (char)(p[i + 2] | 0x20);
      if (a == '2' && b == 'f') return "the path has an encoded '/' (%2F)";
      if (a == '5' && b == 'c') return "the path has an encoded '\\' (%5C)";
      if (a == '2' && b == 'e') return "the path has an encoded '.' (%2E)";
    }
  }
  return NULL;
}

static int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = (char)(c | 0x20);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

/* True when the '%' at d[i] (a text decoded once) starts an encoded '/', '\' or '.',
 * itself encoded any number of times over (%2E, %252E, %25252E). Each '%' reads only
 * the run of "25" after it, which holds no '%', so a scan over d stays linear. */
static int encoded_separator(const unsigned char *d, size_t m, size_t i) {
  size_t j = i + 1;
  while (j + 1 < m && d[j] == '2' && d[j + 1] == '5') j += 2;
  if (j + 1 >= m) return 0;
  unsigned char a = d[j], b = (unsigned char)(d[j + 1] | 0x20);
  return (a == '2' && (b == 'e' || b == 'f')) || (a == '5' && b == 'c');
}

/* Characters a server that normalizes text (Unicode NFKC) reads as '.', "..", '/', '' or
 * '%' (ONE DOT LEADER, FULLWIDTH FULL STOP, FULLWIDTH SOLIDUS, ...), in UTF-8: such a
 * server may see a dot segment or a separator where we see a name. */
static const unsigned char LOOKALIKES[][3] = {
  { 0xe2, 0x80, 0xa4 }, { 0xe2, 0x80, 0xa5 }, { 0xe2, 0x80, 0xa6 }, { 0xe2, 0x84, 0x80 }, { 0xe2, 0x84, 0x81 },
  { 0xe2, 0x84, 0x85 }, { 0xe2, 0x84, 0x86 }, { 0xef, 0xb8, 0x99 }, { 0xef, 0xb8, 0xb0 }, { 0xef, 0xb9, 0x92 },
  { 0xef, 0xb9, 0xa8 }, { 0xef, 0xb9, 0xaa }, { 0xef, 0xbc, 0x85 }, { 0xef, 0xbc, 0x8e }, { 0xef, 0xbc, 0x8f },
  { 0xef, 0xbc, 0xbc },
};

/* What a server that decodes the path once more than it should, or normalizes what it
 * decoded, could read as a separator or a dot segment where we read a name (the class of
 * bad_separator, one decoding further): a '%' that starts no %XX (IIS's %u002e), a
 * double-encoded '/', '\' or '.' (%252E), an encoded control character (..%00 cut at the
 * NUL, ..%09 trimmed), an overlong UTF-8 form (%C0%AE) and the characters of LOOKALIKES,
 * raw or encoded. NULL when there is none. Linear: one pass to decode, one to look. */
static const char *decodes_to_separator(const char *p, size_t n) {
  unsigned char *d = malloc(n + 1);
  if (!d) return "out of memory";
  size_t m = 0;
  const char *why = NULL;
  for (size_t i = 0; i < n && !why; i++) {
    if (p[i] != '%') {
      d[m++] = (unsigned char)p[i];
    } else if (i + 2 < n && hex_value(p[i + 1]) >= 0 && hex_value(p[i + 2]) >= 0) {
      d[m++] = (unsigned char)(hex_value(p[i + 1]) * 16 + hex_value(p[i + 2]));
      i += 2;
    } else {
      why = "the path has a '%' that starts no percent-encoding (%XX)";
    }
  }
  for (size_t i = 0; i < m && !why; i++) {
    unsigned char c = d[i], c1 = i + 1 < m ? d[i + 1] : 0;
    if (c < 0x20 || c == 0x7f) why = "the path has a control character (encoded)";
    else if (c == '%' && encoded_separator(d, m, i))
      why = "the path has a double-encoded '/', '\\' or '.' (%252F, %255C, %252E)";
    else if (c == 0xc0 || c == 0xc1 || (c == 0xe0 && c1 >= 0x80 && c1 <= 0x9f) || (c == 0xf0 && c1 >= 0x80 && c1 <= 0x8f))
      why = "the path has an overlong UTF-8 form (such as %C0%AE for '.')";
    else if (c == 0xe2 || c == 0xef) {
      for (size_t k = 0; k < sizeof LOOKALIKES / sizeof LOOKALIKES[0] && i + 2 < m; k++) {
        if (memcmp(d + i, LOOKALIKES[k], 3) == 0) {
          why = "the path has a character a server may read as '.', '/', '\\' or '%' (such as a fullwidth full stop)";
          break;
        }
      }
    }
  }
  free(d);
  return why;
}

/* A segment that is "." or ".." once its ";params" are cut ("..;", "..;x=1", "..%3B"):
 * Tomcat, Jetty and Spring strip path parameters before resolving dot segments, so such
 * a segment climbs there while it is a name to us. NULL when there is none. (An encoded
 * '.' is refused by bad_separator.) */
static const char *dot_with_params(const char *p, size_t n) {
  size_t i = 0;
  while (i < n) {
    size_t j = i;
    while (j < n && p[j] != '/') j++;
    size_t k = i; /* the segment's name ends at its first ';' or "%3B" */
    while (k < j && p[k] != ';' && !(p[k] == '%' && k + 2 < j && p[k + 1] == '3' && (p[k + 2] | 0x20) == 'b')) k++;
    if (k < j && k > i && k - i <= 2 && p[i] == '.' && p[k - 1] == '.')
      return "the path has a dot segment with parameters (\"..;\"), which some servers resolve";
    i = j + 1;
  }
  return NULL;
}

/* The allowed-URL rule: url falls under one of list[0..count) when scheme, host and port
 * are the same and its path, dot segments resolved, is the allowed path or below it at a
 * segment boundary. A URL with userinfo, an encoded separator or a dot segment with
 * ";params" in its path falls under none; an allowed URL with userinfo allows nothing
 * (libcurl would read "https://a@b@host/" as another host than we do). Returns NULL when allowed, else why not. */
const char *connrt_url_allowed(const char *url, size_t n, const char *const *list, const size_t *lens,
                               size_t count) {
  connrt_url u;
  const char *why = connrt_url_split(url, n, &u);
  if (why) return why;
  if (u.has_userinfo) return "the URL carries userinfo";
  why = bad_separator(u.path, u.path_len);
  if (!why) why = dot_with_params(u.path, u.path_len);
  if (!why) why = decodes_to_separator(u.path, u.path_len);
  if (why) return why;
  char *buf = malloc(u.path_len + 2);
  if (!buf) return "out of memory";
  size_t plen = u.path_len ? remove_dot_segments(u.path, u.path_len, buf) : (buf[0] = '/', 1);
  const char *verdict = "it matches none of the allowed URLs";
  for (size_t k = 0; k < count && verdict; k++) {
    connrt_url a;
    if (connrt_url_split(list[k], lens[k], &a) || a.has_userinfo) continue;
    if (!equal_nocase(a.scheme, a.scheme_len, u.scheme, u.scheme_len) ||
        !equal_nocase(a.host, a.host_len, u.host, u.host_len) || a.port != u.port)
      continue;
    char *under = malloc(a.path_len + 3);
    if (!under) break;
    size_t ul = a.path_len ? remove_dot_segments(a.path, a.path_len, under) : (under[0] = '/', 1);
    if (under[ul - 1] != '/') under[ul++] = '/'; /* the allowed path as a whole segment */
    if (ul == 1 ||                                                   /* "/": everything */
        (plen == ul - 1 && memcmp(buf, under, plen) == 0) ||        /* the path itself */
        (plen >= ul && memcmp(buf, under, ul) == 0))                 /* below it */
      verdict = NULL;
    free(under);
  }
  free(buf);
  return verdict;
}

/* urlparse.remove_dot_segments(path) -> path, for an absolute path ("/...") */
static int urlparse_remove_dot_segments(lua_State *L) {
  size_t n;
  const char *p = luaL_checklstring(L, 1, &n);
  if (n == 0 || p[0] != '/') return luaL_argerror(L, 1, "an absolute path");
  luaL_Buffer b;
  char *out = luaL_buffinitsize(L, &b, n + 1);
  luaL_pushresultsize(&b, remove_dot_segments(p, n, out));
  return 1;
}

/* urlparse.allowed(url, list) -> true | false, why */
static int urlparse_allowed(lua_State *L) {
  size_t n;
  const char *url = luaL_checklstring(L, 1, &n);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_Integer count = luaL_len(L, 2);
  if (count < 0 || count > 1000) return luaL_error(L, "urlparse.allowed: too many allowed URLs");
  const char *list[1000];
  size_t lens[1000];
  size_t k = 0;
  for (lua_Integer i = 1; i <= count; i++) {
    if (lua_rawgeti(L, 2, i) == LUA_TSTRING) {
      list[k] = lua_tolstring(L, -1, &lens[k]);
      k++;
    }
    lua_pop(L, 1); /* the table keeps the string alive while it is used */
  }
  const char *why = connrt_url_allowed(url, n, list, lens, k);
  if (!why) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushboolean(L, 0);
  lua_pushstring(L, why);
  return 2;
}

static const luaL_Reg urlparse_funcs[] = {
  { "parse", urlparse_parse },
  { "allowed", urlparse_allowed },
  { "remove_dot_segments", urlparse_remove_dot_segments },
  { NULL, NULL }
};

int luaopen_connrt_urlparse(lua_State *L) {
  luaL_newlib(L, urlparse_funcs);
  return 1;
}
