/*
 * base64.c - strict base64 (RFC 4648 section 4, padded) and base64url (section 5, padding
 * optional) for Lua.
 *
 * Its own file, apart from crypto.c, because connector sandboxes (sandbox.c) offer
 * connrt.base64 to connectors and must not pull in OpenSSL to do it: these functions need
 * only Lua. crypto.c registers the same functions in connrt.crypto, where the runtime's
 * Lua layer has always found them.
 *
 * Decoding is strict: characters outside the alphabet (whitespace included), misplaced
 * '=' and non-zero unused bits are errors, answered as nil and a message.
 */
#include <string.h>

#include "api.h"

static const char B64_STD[] =
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char B64_URL[] =
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Encodes s with alphabet abc, with or without '=' padding. */
static void b64_encode(lua_State *L, const unsigned char *s, size_t len,
                       const char *abc, int pad) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  size_t i = 0;
  for (; i + 3 <= len; i += 3) {
    unsigned long v = ((unsigned long)s[i] << 16) | ((unsigned long)s[i + 1] << 8) | s[i + 2];
    char out[4] = { abc[(v >> 18) & 63], abc[(v >> 12) & 63], abc[(v >> 6) & 63], abc[v & 63] };
    luaL_addlstring(&b, out, 4);
  }
  if (len - i == 1) {
    unsigned long v = (unsigned long)s[i] << 16;
    char out[4] = { abc[(v >> 18) & 63], abc[(v >> 12) & 63], '=', '=' };
    luaL_addlstring(&b, out, pad ? 4 : 2);
  } else if (len - i == 2) {
    unsigned long v = ((unsigned long)s[i] << 16) | ((unsigned long)s[i + 1] << 8);
    char out[4] = { abc[(v >> 18) & 63], abc[(v >> 12) & 63], abc[(v >> 6) & 63], '=' };
    luaL_addlstring(&b, out, pad ? 4 : 3);
  }
  luaL_pushresult(&b);
}

/* Value of c in alphabet abc, or -1. */
static int b64_value(const char *abc, unsigned char c) {
  const char *p = c ? strchr(abc, c) : NULL;
  return p ? (int)(p - abc) : -1;
}

/* Strictly decodes s with alphabet abc. need_pad: the input must be padded to a multiple
 * of 4; otherwise padding is optional but, when present, must be exact. Characters outside
 * the alphabet (whitespace included), misplaced '=' and non-zero unused bits are errors.
 * Pushes the bytes and returns 1, or returns 0 with nothing pushed. */
static int b64_decode(lua_State *L, const char *s, size_t len, const char *abc, int need_pad) {
  size_t pads = 0;
  while (pads < len && pads < 2 && s[len - 1 - pads] == '=') pads++;
  if (pads > 0 || need_pad) {
    if (len % 4 != 0) return 0;
  }
  size_t n = len - pads;         /* significant characters */
  if (n % 4 == 1) return 0;      /* 6 bits cannot make a byte */
  if (pads > 0 && (n % 4) + pads != 4) return 0;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  unsigned long acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; i++) {
    int v = b64_value(abc, (unsigned char)s[i]);
    if (v < 0) { luaL_pushresult(&b); lua_pop(L, 1); return 0; }
    acc = (acc << 6) | (unsigned long)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      luaL_addchar(&b, (char)((acc >> bits) & 0xff));
      acc &= (1UL << bits) - 1;
    }
  }
  if (acc != 0) { luaL_pushresult(&b); lua_pop(L, 1); return 0; } /* non-canonical */
  luaL_pushresult(&b);
  return 1;
}

/* b64encode(s) -> standard base64 with padding */
int connrt_b64encode(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  b64_encode(L, (const unsigned char *)s, len, B64_STD, 1);
  return 1;
}

/* b64decode(s) -> bytes | nil, "invalid base64" */
int connrt_b64decode(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  if (b64_decode(L, s, len, B64_STD, 1)) return 1;
  lua_pushnil(L);
  lua_pushliteral(L, "invalid base64");
  return 2;
}

/* b64url_encode(s) -> base64url without padding (RFC 4648 section 5) */
int connrt_b64url_encode(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  b64_encode(L, (const unsigned char *)s, len, B64_URL, 0);
  return 1;
}

/* b64url_decode(s) -> bytes | nil, "invalid base64url"; padding optional */
int connrt_b64url_decode(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  if (b64_decode(L, s, len, B64_URL, 0)) return 1;
  lua_pushnil(L);
  lua_pushliteral(L, "invalid base64url");
  return 2;
}


static const luaL_Reg base64_funcs[] = {
  { "encode", connrt_b64encode },
  { "decode", connrt_b64decode },
  { "url_encode", connrt_b64url_encode },
  { "url_decode", connrt_b64url_decode },
  { NULL, NULL }
};

int luaopen_connrt_base64(lua_State *L) {
  luaL_newlib(L, base64_funcs);
  return 1;
}
