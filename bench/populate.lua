-- Fills the store (CONNRT_HOME) with N connections of the benchmark connector, in
-- batches of one write transaction each, and prints the id of the middle one.
-- usage: connrt script bench/populate.lua N SERVER API
local store = require("connrt.store")
local crypto = require("connrt.crypto")
local n, server, api = tonumber(arg[1]), arg[2], arg[3]
local f = assert(io.open("bench/connector.lua", "rb"))
local src = f:read("a")
f:close()
local st = store.open()
local batch, middle = {}, nil
for i = 1, n do
  batch[#batch + 1] = {
    { v = 1, connector = "bench", title = "Benchmark", connector_path = "bench/connector.lua",
      auth = "authorization_code", name = ("User %d's Account"):format(i), unique_id = ("user%d@example.com"):format(i),
      fields = { server = server, api = api }, values = {}, client_id = "connrt-basic", client_auth = "basic",
      urls = { token_url = server .. "/token", issuer = server }, allowed_urls = { server .. "/", api .. "/" },
      token_type = "Bearer", has_refresh_token = false },
    { access_token = crypto.b64url_encode(crypto.random(32)), client_secret = "basic-secret" },
    src,
  }
  if #batch == 5000 or i == n then
    local ids = st:save_all(batch)
    for j, id in ipairs(ids) do
      if i - #batch + j == (n + 1) // 2 then middle = id end
    end
    batch = {}
  end
end
st:close()
print(middle)
return 0
