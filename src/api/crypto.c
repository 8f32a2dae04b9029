/*
 * crypto.c - the cryptography the runtime needs, on OpenSSL 3's EVP interfaces: random
 * bytes (state, nonces, PKCE verifiers, keys), SHA-256 and HMAC-SHA-256, hex (base64 and
 * base64url come from base64.c, which connector sandboxes use without OpenSSL), constant-time comparison, and AES-256-GCM sealing of the
 * secrets kept in the store.
 *
 * A sealed blob is: version byte 0x01 || nonce (12 bytes) || ciphertext || tag (16 bytes).
 *
 * AES-256-GCM runs on libsodium where the CPU has AES-NI and PCLMUL (libsodium then uses
 * them, in constant time), else on OpenSSL's EVP: the same algorithm and the same bytes,
 * so a store sealed by one opens with the other (spec/crypto_spec.lua checks it both
 * ways). The reason is start-up: OpenSSL 3's first cipher fetch builds its table of every
 * cipher, about 8 million instructions, more than half of `connrt token` and a third of
 * `connrt request` (bench/RESULTS.md); libsodium's start is a CPU feature check.
 * open() never raises for bad data (it answers nil, message); only a key of the wrong
 * length is a programmer error and raises.
 *
 * Buffers this file allocates for key material or plaintext are wiped (OPENSSL_cleanse)
 * once their content has been handed to Lua.
 *
 * Opens the `connrt.crypto` module.
 */
#include <limits.h>
#include <pthread.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sodium.h>

#include "api.h"

#define SEAL_VERSION   0x01
#define SEAL_KEY_LEN   32
#define SEAL_NONCE_LEN 12
#define SEAL_TAG_LEN   16
#define SEAL_OVERHEAD  (1 + SEAL_NONCE_LEN + SEAL_TAG_LEN)
#define RANDOM_MAX     65536

static const char OPEN_FAILED[] = "cannot decrypt: wrong key or damaged data";

/* AES-256-GCM, fetched from the default provider once per process. Passing
 * EVP_aes_256_gcm() instead would look up engines and fetch again on every call; the
 * first fetch builds OpenSSL's table of every cipher and is most of what unsealing a
 * token costs (bench/RESULTS.md), so it is done once. OpenSSL's exit-time cleanup is
 * skipped (the process is ending; the memory goes with it). NULL if the fetch failed. */
static EVP_CIPHER *aes_gcm;
static pthread_once_t aes_gcm_once = PTHREAD_ONCE_INIT;

static void fetch_aes_gcm(void) {
  OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, NULL);
  aes_gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
}

static const EVP_CIPHER *gcm(void) {
  pthread_once(&aes_gcm_once, fetch_aes_gcm);
  return aes_gcm;
}

/* Whether libsodium initialized, and whether its AES-256-GCM can run here (the CPU has
 * AES-NI). */
static int sodium_ok, sodium_gcm;
static pthread_once_t sodium_once = PTHREAD_ONCE_INIT;

static void init_sodium(void) {
  sodium_ok = sodium_init() >= 0;
  sodium_gcm = sodium_ok && crypto_aead_aes256gcm_is_available();
}

static int have_sodium_gcm(void) {
  pthread_once(&sodium_once, init_sodium);
  return sodium_gcm;
}

static int have_sodium(void) {
  pthread_once(&sodium_once, init_sodium);
  return sodium_ok;
}

enum { BACKEND_AUTO, BACKEND_OPENSSL, BACKEND_SODIUM };

/* The optional backend argument of seal and open ("openssl" or "libsodium"), for the
 * specs that check the two agree; without it, libsodium where it can run. */
static int check_backend(lua_State *L, int arg) {
  static const char *const names[] = { "auto", "openssl", "libsodium", NULL };
  int b = luaL_checkoption(L, arg, "auto", names);
  if (b == BACKEND_SODIUM && !have_sodium_gcm())
    luaL_error(L, "libsodium's AES-256-GCM cannot run on this CPU (no AES-NI)");
  if (b == BACKEND_AUTO) b = have_sodium_gcm() ? BACKEND_SODIUM : BACKEND_OPENSSL;
  return b;
}

/* AES-256-GCM with a 12-byte nonce and a 16-byte tag; returns 1 on success. */
static int gcm_encrypt(int backend, const unsigned char *key, const unsigned char *nonce,
                       const unsigned char *pt, size_t len, const unsigned char *aad,
                       size_t aadlen, unsigned char *ct, unsigned char *tag) {
  if (backend == BACKEND_SODIUM)
    return crypto_aead_aes256gcm_encrypt_detached(ct, tag, NULL, pt, len, aad, aadlen, NULL, nonce, key) == 0;
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  int ok = ctx != NULL, outl = 0, finl = 0;
  ok = ok && gcm() && EVP_EncryptInit_ex(ctx, gcm(), NULL, NULL, NULL) == 1;
  ok = ok && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN, SEAL_NONCE_LEN, NULL) == 1;
  ok = ok && EVP_EncryptInit_ex(ctx, NULL, NULL, key, nonce) == 1;
  ok = ok && (aadlen == 0 || EVP_EncryptUpdate(ctx, NULL, &outl, aad, (int)aadlen) == 1);
  ok = ok && EVP_EncryptUpdate(ctx, ct, &outl, pt, (int)len) == 1;
  ok = ok && EVP_EncryptFinal_ex(ctx, ct + outl, &finl) == 1;
  ok = ok && (size_t)outl + (size_t)finl == len;
  ok = ok && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, SEAL_TAG_LEN, tag) == 1;
  EVP_CIPHER_CTX_free(ctx); /* wipes the expanded key */
  return ok;
}

/* The inverse; returns 1 only when the tag checks. */
static int gcm_decrypt(int backend, const unsigned char *key, const unsigned char *nonce,
                       const unsigned char *ct, size_t len, const unsigned char *tag,
                       const unsigned char *aad, size_t aadlen, unsigned char *pt) {
  if (backend == BACKEND_SODIUM)
    return crypto_aead_aes256gcm_decrypt_detached(pt, NULL, ct, len, tag, aad, aadlen, nonce, key) == 0;
  unsigned char t[SEAL_TAG_LEN];
  memcpy(t, tag, SEAL_TAG_LEN); /* the ctrl takes a non-const pointer */
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  int ok = ctx != NULL, outl = 0, finl = 0;
  ok = ok && gcm() && EVP_DecryptInit_ex(ctx, gcm(), NULL, NULL, NULL) == 1;
  ok = ok && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN, SEAL_NONCE_LEN, NULL) == 1;
  ok = ok && EVP_DecryptInit_ex(ctx, NULL, NULL, key, nonce) == 1;
  ok = ok && (aadlen == 0 || EVP_DecryptUpdate(ctx, NULL, &outl, aad, (int)aadlen) == 1);
  ok = ok && EVP_DecryptUpdate(ctx, pt, &outl, ct, (int)len) == 1;
  ok = ok && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, SEAL_TAG_LEN, t) == 1;
  ok = ok && EVP_DecryptFinal_ex(ctx, pt + outl, &finl) == 1; /* checks the tag */
  ok = ok && (size_t)outl + (size_t)finl == len;
  EVP_CIPHER_CTX_free(ctx);
  return ok;
}

/* A scratch buffer owned by Lua (a userdata on the stack), so an error raised while it is
 * in use cannot leak it. */
static unsigned char *scratch(lua_State *L, size_t n) {
  return lua_newuserdatauv(L, n ? n : 1, 0);
}

/* Pushes buf[0..n) as a string, wipes buf and drops the scratch userdata below it. */
static void push_wiped(lua_State *L, unsigned char *buf, size_t n) {
  lua_pushlstring(L, (const char *)buf, n);
  OPENSSL_cleanse(buf, n);
  lua_remove(L, -2);
}

/* crypto.random(n) -> n random bytes, 1 <= n <= 65536 */
static int crypto_random(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  luaL_argcheck(L, n >= 1 && n <= RANDOM_MAX, 1, "byte count must be 1..65536");
  unsigned char *buf = scratch(L, (size_t)n);
  if (RAND_bytes(buf, (int)n) != 1)
    return luaL_error(L, "random: the system random generator failed");
  push_wiped(L, buf, (size_t)n);
  return 1;
}

/* crypto.sha256(s) -> 32-byte digest. libsodium's where it initialized: every opened
 * connection hashes its record and connector source (store.lua), and OpenSSL 3's first
 * digest fetch costs about as much as the rest of `connrt token`. */
static int crypto_sha256(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  if (have_sodium()) {
    crypto_hash_sha256(md, (const unsigned char *)s, (unsigned long long)len);
    mdlen = crypto_hash_sha256_BYTES;
  } else if (EVP_Digest(s, len, md, &mdlen, EVP_sha256(), NULL) != 1)
    return luaL_error(L, "sha256: digest failed");
  lua_pushlstring(L, (const char *)md, mdlen);
  return 1;
}

/* crypto.hmac_sha256(key, s) -> 32-byte MAC */
static int crypto_hmac_sha256(lua_State *L) {
  size_t klen, len;
  const char *key = luaL_checklstring(L, 1, &klen);
  const char *s = luaL_checklstring(L, 2, &len);
  unsigned char mac[EVP_MAX_MD_SIZE];
  size_t maclen = 0;
  if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, klen,
                 (const unsigned char *)s, len, mac, sizeof mac, &maclen))
    return luaL_error(L, "hmac_sha256: MAC computation failed");
  lua_pushlstring(L, (const char *)mac, maclen);
  OPENSSL_cleanse(mac, sizeof mac);
  return 1;
}

/* crypto.hex(s) -> lowercase hex */
static int crypto_hex(lua_State *L) {
  static const char digits[] = "0123456789abcdef";
  size_t len;
  const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &len);
  luaL_Buffer b;
  char *out = luaL_buffinitsize(L, &b, len * 2);
  for (size_t i = 0; i < len; i++) {
    out[2 * i] = digits[s[i] >> 4];
    out[2 * i + 1] = digits[s[i] & 15];
  }
  luaL_pushresultsize(&b, len * 2);
  return 1;
}

static int hex_value(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* crypto.unhex(s) -> bytes | nil, "invalid hex"; either case accepted */
static int crypto_unhex(lua_State *L) {
  size_t len;
  const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &len);
  if (len % 2 != 0) goto invalid;
  luaL_Buffer b;
  char *out = luaL_buffinitsize(L, &b, len / 2);
  for (size_t i = 0; i < len; i += 2) {
    int hi = hex_value(s[i]), lo = hex_value(s[i + 1]);
    if (hi < 0 || lo < 0) { lua_pop(L, 1); goto invalid; } /* drop the buffer box */
    out[i / 2] = (char)(hi << 4 | lo);
  }
  luaL_pushresultsize(&b, len / 2);
  return 1;
invalid:
  lua_pushnil(L);
  lua_pushliteral(L, "invalid hex");
  return 2;
}

/* The 32-byte key argument of seal/open; a wrong length is a programmer error. */
static const unsigned char *check_key(lua_State *L, int arg, const char *fname) {
  size_t len;
  const char *key = luaL_checklstring(L, arg, &len);
  if (len != SEAL_KEY_LEN)
    luaL_error(L, "%s: key must be %d bytes, got %d", fname, SEAL_KEY_LEN, (int)len);
  return (const unsigned char *)key;
}

/* crypto.seal(key, plaintext[, aad[, backend]]) -> blob (AES-256-GCM, fresh random nonce) */
static int crypto_seal(lua_State *L) {
  const unsigned char *key = check_key(L, 1, "seal");
  size_t len, aadlen;
  const unsigned char *pt = (const unsigned char *)luaL_checklstring(L, 2, &len);
  const unsigned char *aad = (const unsigned char *)luaL_optlstring(L, 3, "", &aadlen);
  int backend = check_backend(L, 4);
  if (len > (size_t)INT_MAX - SEAL_OVERHEAD || aadlen > (size_t)INT_MAX)
    return luaL_error(L, "seal: input too large");
  size_t total = SEAL_OVERHEAD + len;
  unsigned char *blob = scratch(L, total);
  unsigned char *nonce = blob + 1, *ct = blob + 1 + SEAL_NONCE_LEN, *tag = ct + len;
  blob[0] = SEAL_VERSION;
  /* both are the system's CSPRNG behind a DRBG; libsodium's needs no OpenSSL start-up */
  if (backend == BACKEND_SODIUM) randombytes_buf(nonce, SEAL_NONCE_LEN);
  else if (RAND_bytes(nonce, SEAL_NONCE_LEN) != 1)
    return luaL_error(L, "seal: the system random generator failed");
  if (!gcm_encrypt(backend, key, nonce, pt, len, aad, aadlen, ct, tag))
    return luaL_error(L, "seal: encryption failed");
  lua_pushlstring(L, (const char *)blob, total);
  return 1;
}

/* crypto.open(key, blob[, aad[, backend]]) -> plaintext | nil, message. Bad data never raises. */
static int crypto_open(lua_State *L) {
  const unsigned char *key = check_key(L, 1, "open");
  size_t len, aadlen;
  const unsigned char *blob = (const unsigned char *)luaL_checklstring(L, 2, &len);
  const unsigned char *aad = (const unsigned char *)luaL_optlstring(L, 3, "", &aadlen);
  int backend = check_backend(L, 4);
  if (len < SEAL_OVERHEAD || blob[0] != SEAL_VERSION ||
      len > (size_t)INT_MAX || aadlen > (size_t)INT_MAX)
    goto fail;

  const unsigned char *nonce = blob + 1, *ct = blob + 1 + SEAL_NONCE_LEN;
  size_t ctlen = len - SEAL_OVERHEAD;
  unsigned char *pt = scratch(L, ctlen);
  if (!gcm_decrypt(backend, key, nonce, ct, ctlen, ct + ctlen, aad, aadlen, pt)) {
    OPENSSL_cleanse(pt, ctlen); /* unauthenticated plaintext must not linger */
    lua_pop(L, 1);
    goto fail;
  }
  push_wiped(L, pt, ctlen);
  return 1;
fail:
  lua_pushnil(L);
  lua_pushstring(L, OPEN_FAILED);
  return 2;
}

/* crypto.aead_backend() -> "libsodium" | "openssl": which one seal and open use here */
static int crypto_aead_backend(lua_State *L) {
  lua_pushstring(L, have_sodium_gcm() ? "libsodium" : "openssl");
  return 1;
}

/* crypto.equal(a, b) -> boolean, in time independent of the content (not of the length) */
static int crypto_equal(lua_State *L) {
  size_t alen, blen;
  const char *a = luaL_checklstring(L, 1, &alen);
  const char *b = luaL_checklstring(L, 2, &blen);
  lua_pushboolean(L, alen == blen && CRYPTO_memcmp(a, b, alen) == 0);
  return 1;
}

static const luaL_Reg crypto_funcs[] = {
  { "random", crypto_random },
  { "sha256", crypto_sha256 },
  { "hmac_sha256", crypto_hmac_sha256 },
  { "b64encode", connrt_b64encode },
  { "b64decode", connrt_b64decode },
  { "b64url_encode", connrt_b64url_encode },
  { "b64url_decode", connrt_b64url_decode },
  { "hex", crypto_hex },
  { "unhex", crypto_unhex },
  { "seal", crypto_seal },
  { "open", crypto_open },
  { "aead_backend", crypto_aead_backend },
  { "equal", crypto_equal },
  { NULL, NULL }
};

int luaopen_connrt_crypto(lua_State *L) {
  luaL_newlib(L, crypto_funcs);
  return 1;
}
