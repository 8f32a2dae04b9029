-- luacheck: std +busted
-- connrt.crypto: published test vectors, strict codecs, and AES-256-GCM sealing.
local crypto = require "connrt.crypto"

-- An independent hex encoder (string.format), to check crypto.hex against.
local function tohex(s)
  return (s:gsub(".", function(ch) return string.format("%02x", ch:byte()) end))
end

local function all_bytes()
  local t = {}
  for i = 0, 255 do t[#t + 1] = string.char(i) end
  return table.concat(t)
end

-- Flips the lowest bit of the byte at position i (1-based).
local function flip(s, i)
  return s:sub(1, i - 1) .. string.char(s:byte(i) ~ 1) .. s:sub(i + 1)
end

local OPEN_FAILED = "cannot decrypt: wrong key or damaged data"

describe("connrt.crypto", function()
  describe("sha256", function()
    it("matches the FIPS 180-2 vectors", function()
      assert.equal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        crypto.hex(crypto.sha256("")))
      assert.equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        crypto.hex(crypto.sha256("abc")))
    end)

    it("returns 32 raw bytes and hashes NUL bytes", function()
      local d = crypto.sha256("a\0b")
      assert.equal(32, #d)
      assert.not_equal(d, crypto.sha256("a"))
    end)
  end)

  describe("hmac_sha256", function()
    it("matches RFC 4231 test case 2", function()
      assert.equal("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        crypto.hex(crypto.hmac_sha256("Jefe", "what do ya want for nothing?")))
    end)

    it("accepts an empty key and message", function()
      assert.equal("b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad",
        crypto.hex(crypto.hmac_sha256("", "")))
    end)
  end)

  describe("base64", function()
    local vectors = { -- RFC 4648 section 10
      { "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
      { "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
    }

    it("encodes and decodes the RFC 4648 vectors", function()
      for _, v in ipairs(vectors) do
        assert.equal(v[2], crypto.b64encode(v[1]))
        assert.equal(v[1], crypto.b64decode(v[2]))
      end
    end)

    it("round-trips every byte value", function()
      local s = all_bytes()
      assert.equal(s, crypto.b64decode(crypto.b64encode(s)))
      assert.equal(s, crypto.b64url_decode(crypto.b64url_encode(s)))
    end)

    it("rejects what is not strict base64", function()
      for _, bad in ipairs { "Zg", "Zg=", "Zm9v\n", " Zm9v", "Zm 9v", "Zm=v", "====", "Z===",
                             "Zh==", "-_8=", "Zm9v!A==" } do
        local v, err = crypto.b64decode(bad)
        assert.is_nil(v, bad)
        assert.equal("invalid base64", err)
      end
    end)

    it("base64url uses - and _ and no padding", function()
      local bytes = "\xfb\xff\xbf"
      assert.equal("+/+/", crypto.b64encode(bytes))
      assert.equal("-_-_", crypto.b64url_encode(bytes))
      assert.equal("-_8", crypto.b64url_encode("\xfb\xff"))
      assert.equal("Zg", crypto.b64url_encode("f"))
    end)

    it("base64url decodes with or without padding", function()
      assert.equal("\xfb\xff", crypto.b64url_decode("-_8"))
      assert.equal("\xfb\xff", crypto.b64url_decode("-_8="))
      assert.equal("f", crypto.b64url_decode("Zg"))
      assert.equal("f", crypto.b64url_decode("Zg=="))
      assert.equal("", crypto.b64url_decode(""))
    end)

    it("base64url rejects the standard alphabet and bad padding", function()
      for _, bad in ipairs { "+/8", "Zg=", "Z", "Zm9vY", "Zg===", "Zm 8" } do
        local v, err = crypto.b64url_decode(bad)
        assert.is_nil(v, bad)
        assert.is_string(err)
      end
    end)

    it("makes the PKCE S256 challenge of RFC 7636 appendix B", function()
      local verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
      assert.equal("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        crypto.b64url_encode(crypto.sha256(verifier)))
    end)
  end)

  describe("hex", function()
    it("encodes lowercase and decodes either case", function()
      local s = all_bytes()
      assert.equal(tohex(s), crypto.hex(s))
      assert.equal(s, crypto.unhex(crypto.hex(s)))
      assert.equal(s, crypto.unhex(crypto.hex(s):upper()))
      assert.equal("", crypto.hex(""))
      assert.equal("", crypto.unhex(""))
    end)

    it("rejects odd lengths and non-hex characters", function()
      for _, bad in ipairs { "abc", "zz", "0x00", "0 ", "a\0" } do
        local v, err = crypto.unhex(bad)
        assert.is_nil(v, bad)
        assert.equal("invalid hex", err)
      end
    end)
  end)

  describe("seal and open", function()
    local key
    before_each(function() key = crypto.random(32) end)

    it("round-trips empty, binary and large plaintexts", function()
      local big = crypto.random(65536) .. crypto.random(65536):sub(1, 100 * 1024 - 65536)
      assert.equal(100 * 1024, #big)
      for _, pt in ipairs { "", "a\0b\0\0c\255", all_bytes(), big } do
        local blob = crypto.seal(key, pt, "aad")
        assert.equal(1 + 12 + #pt + 16, #blob)
        assert.equal(1, blob:byte(1))
        assert.equal(pt, crypto.open(key, blob, "aad"))
      end
    end)

    it("treats a missing aad as empty", function()
      local blob = crypto.seal(key, "secret")
      assert.equal("secret", crypto.open(key, blob))
      assert.equal("secret", crypto.open(key, blob, ""))
      assert.equal("secret", crypto.open(key, crypto.seal(key, "secret", nil), nil))
    end)

    it("uses a fresh nonce for every seal", function()
      local a, b = crypto.seal(key, "same"), crypto.seal(key, "same")
      assert.not_equal(a, b)
      assert.not_equal(a:sub(2, 13), b:sub(2, 13))
    end)

    it("does not leak the plaintext into the blob", function()
      local pt = ("secret"):rep(10)
      assert.is_nil(crypto.seal(key, pt):find("secret", 1, true))
    end)

    it("answers nil and a message for a wrong key or aad", function()
      local blob = crypto.seal(key, "secret", "conn:a")
      local v, err = crypto.open(crypto.random(32), blob, "conn:a")
      assert.is_nil(v)
      assert.equal(OPEN_FAILED, err)
      v, err = crypto.open(key, blob, "conn:b")
      assert.is_nil(v)
      assert.equal(OPEN_FAILED, err)
      v, err = crypto.open(key, blob)
      assert.is_nil(v)
      assert.equal(OPEN_FAILED, err)
    end)

    it("answers nil and a message for damaged blobs", function()
      local blob = crypto.seal(key, "some secret value", "x")
      local damaged = {
        version = flip(blob, 1),
        nonce = flip(blob, 2),
        ciphertext = flip(blob, 14),
        tag = flip(blob, #blob),
        truncated = blob:sub(1, -2),
        header_only = blob:sub(1, 28),
        empty = "",
        extended = blob .. "\0",
      }
      for what, bad in pairs(damaged) do
        local v, err = crypto.open(key, bad, "x")
        assert.is_nil(v, what)
        assert.equal(OPEN_FAILED, err, what)
      end
    end)

    -- AES-256-GCM runs on libsodium where the CPU allows, else on OpenSSL: the two must
    -- be the same algorithm byte for byte, so either opens what the other sealed
    local backends = { "openssl" }
    if crypto.aead_backend() == "libsodium" then backends[2] = "libsodium" end

    it("matches the GCM specification's test case 16 (AES-256, with AAD) on every backend", function()
      local k = crypto.unhex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308")
      local p = crypto.unhex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
        .. "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39")
      local a = crypto.unhex("feedfacedeadbeeffeedfacedeadbeefabaddad2")
      local blob = "\1" .. crypto.unhex("cafebabefacedbaddecaf888")
        .. crypto.unhex("522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
          .. "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662")
        .. crypto.unhex("76fc6ece0f4e1768cddf8853bb2d551b")
      for _, b in ipairs(backends) do
        assert.equal(p, crypto.open(k, blob, a, b), b)
        assert.is_nil(crypto.open(k, flip(blob, #blob), a, b), b)
      end
    end)

    it("opens with either backend what the other sealed", function()
      for _, size in ipairs({ 0, 1, 15, 16, 17, 1000, 65536 }) do
        local pt = crypto.random(math.max(size, 1)):sub(1, size)
        for _, from in ipairs(backends) do
          local blob = crypto.seal(key, pt, "conn/x", from)
          for _, to in ipairs(backends) do
            assert.equal(pt, crypto.open(key, blob, "conn/x", to), from .. " -> " .. to .. " at " .. size)
            assert.is_nil(crypto.open(key, blob, "conn/y", to))
          end
        end
      end
      assert.has_error(function() crypto.seal(key, "x", "", "rot13") end)
    end)

    it("raises for a key that is not 32 bytes", function()
      assert.has_error(function() crypto.seal(("k"):rep(31), "x") end,
        "seal: key must be 32 bytes, got 31")
      assert.has_error(function() crypto.seal("", "x") end, "seal: key must be 32 bytes, got 0")
      assert.has_error(function() crypto.open(("k"):rep(33), crypto.seal(key, "x")) end,
        "open: key must be 32 bytes, got 33")
    end)
  end)

  describe("random", function()
    it("returns the number of bytes asked for", function()
      for _, n in ipairs { 1, 16, 32, 65536 } do
        assert.equal(n, #crypto.random(n))
      end
    end)

    it("never returns the same 32 bytes twice", function()
      local seen = {}
      for _ = 1, 100 do
        local r = crypto.random(32)
        assert.is_nil(seen[r])
        seen[r] = true
      end
    end)

    it("uses every byte value over a large sample", function()
      local counts = {}
      for b in crypto.random(65536):gmatch(".") do counts[b] = true end
      local n = 0
      for _ in pairs(counts) do n = n + 1 end
      assert.equal(256, n)
    end)

    it("raises for counts outside 1..65536", function()
      assert.has_error(function() crypto.random(0) end)
      assert.has_error(function() crypto.random(65537) end)
      assert.has_error(function() crypto.random("many") end)
    end)
  end)

  describe("equal", function()
    it("compares contents and lengths", function()
      assert.is_true(crypto.equal("", ""))
      assert.is_true(crypto.equal("abc", "abc"))
      assert.is_true(crypto.equal("a\0b", "a\0b"))
      assert.is_false(crypto.equal("abc", "abd"))
      assert.is_false(crypto.equal("a\0b", "a\0c"))
      assert.is_false(crypto.equal("abc", "abcd"))
      assert.is_false(crypto.equal("", "a"))
      local mac = crypto.hmac_sha256("k", "m")
      assert.is_true(crypto.equal(mac, crypto.hmac_sha256("k", "m")))
      assert.is_false(crypto.equal(mac, crypto.hmac_sha256("k", "n")))
    end)
  end)
end)
