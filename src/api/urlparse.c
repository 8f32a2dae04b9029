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

/* urlparse.parse(s) -> { scheme, userinfo, host, port, path, query, fragment, has_query }
 * | nil, reason */
static int urlparse_parse(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);

  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c <= 0x20 || c == 0x7f) return fail(L, "contains spaces or control characters");
  }

  /* scheme "://" */
  size_t i = 0;
  if (n == 0 || !is_alpha((unsigned char)s[0]))
    return fail(L, "not an absolute URL (scheme://host/...)");
  while (i < n && (is_alnum((unsigned char)s[i]) || s[i] == '+' || s[i] == '.' || s[i] == '-')) i++;
  if (n - i < 3 || memcmp(s + i, "://", 3) != 0)
    return fail(L, "not an absolute URL (scheme://host/...)");
  size_t scheme_len = i;
  lua_Integer default_port;
  if (scheme_len == 4 && strncasecmp(s, "http", 4) == 0) default_port = 80;
  else if (scheme_len == 5 && strncasecmp(s, "https", 5) == 0) default_port = 443;
  else return fail(L, "scheme must be http or https");

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
    if (k == hp + 1 || k >= auth_end || s[k] != ']') return fail(L, "malformed IPv6 host");
    host_end = port_at = k + 1;
  } else {
    host_end = port_at = span_to(s, hp, auth_end, ":");
  }

  lua_Integer port = default_port;
  if (port_at < auth_end) {
    size_t k = port_at;
    if (s[k] != ':' || k + 1 >= auth_end) return fail(L, "malformed port");
    lua_Integer v = 0;
    for (k++; k < auth_end; k++) {
      if (!is_digit((unsigned char)s[k])) return fail(L, "malformed port");
      if (v <= 65535) v = v * 10 + (s[k] - '0'); /* past 65535 it is refused anyway */
    }
    if (v < 1 || v > 65535) return fail(L, "malformed port");
    port = v;
  }

  const char *host = s + hp;
  size_t host_len = host_end - hp;
  if (host_len == 0) return fail(L, "no host");
  if (host[0] != '[')
    for (size_t k = 0; k < host_len; k++)
      if (!is_alnum((unsigned char)host[k]) && host[k] != '.' && host[k] != '-')
        return fail(L, "host has characters a host name cannot have");
  if (host[0] == '.' || host[0] == '-') return fail(L, "malformed host");
  for (size_t k = 0; k + 1 < host_len; k++)
    if (host[k] == '.' && host[k + 1] == '.') return fail(L, "malformed host");

  /* path ["?" query] ["#" fragment]; has_query: a "?" anywhere after the authority */
  size_t path_end = span_to(s, auth_end, n, "?#");
  size_t q = path_end, q_end = path_end, f = n;
  if (path_end < n && s[path_end] == '?') {
    q = path_end + 1;
    q_end = span_to(s, q, n, "#");
  }
  if (q_end < n) f = q_end + 1; /* s[q_end] is "#" */
  int has_query = memchr(s + auth_end, '?', n - auth_end) != NULL;

  lua_createtable(L, 0, 8);
  push_lower(L, s, scheme_len);
  lua_setfield(L, -2, "scheme");
  if (has_userinfo) {
    lua_pushlstring(L, s + auth, hp - 1 - auth);
    lua_setfield(L, -2, "userinfo");
  }
  push_lower(L, host, host_len);
  lua_setfield(L, -2, "host");
  lua_pushinteger(L, port);
  lua_setfield(L, -2, "port");
  if (path_end > auth_end) lua_pushlstring(L, s + auth_end, path_end - auth_end);
  else lua_pushliteral(L, "/");
  lua_setfield(L, -2, "path");
  lua_pushlstring(L, s + q, q_end - q);
  lua_setfield(L, -2, "query");
  lua_pushlstring(L, s + f, f <= n ? n - f : 0);
  lua_setfield(L, -2, "fragment");
  lua_pushboolean(L, has_query);
  lua_setfield(L, -2, "has_query");
  return 1;
}

static const luaL_Reg urlparse_funcs[] = {
  { "parse", urlparse_parse },
  { NULL, NULL }
};

int luaopen_connrt_urlparse(lua_State *L) {
  luaL_newlib(L, urlparse_funcs);
  return 1;
}
