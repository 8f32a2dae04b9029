-- Makes connection ID's token due for a refresh (it expires in 5 s and was issued an hour
-- ago) through the store (CONNRT_STORE, CONNRT_KEY), as the specs do: a storm on it then
-- refreshes once, with no wait for a short-lived token to expire (whose successor would
-- be due again before the storm ends). usage: connrt script bench/due.lua ID
local st = require("connrt.store").open()
local id = arg[1]
local rec = st:get(id)
local now = os.time()
st:save_tokens(id, { access_token = st:secrets(rec).access_token, expires_at = now + 5, issued_at = now - 3600 })
st:close()
return 0
