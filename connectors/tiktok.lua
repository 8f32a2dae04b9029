-- TikTok (Login Kit for Desktop, Display API). https://developers.tiktok.com/doc/login-kit-desktop
-- https://developers.tiktok.com/doc/oauth-user-access-token-management
-- https://developers.tiktok.com/docs/en/oauth-refresh-a-user-access-token
-- https://developers.tiktok.com/doc/tiktok-api-v2-get-user-info
-- https://developers.tiktok.com/doc/tiktok-api-v2-video-list
-- Quirks: the client id is called `client_key`, in the authorize request and in every
-- token request's body (client_id_param). TikTok requires PKCE for desktop apps (whose
-- redirect URIs may only be localhost or 127.0.0.1 with a port, as connrt's is) and
-- takes the S256 challenge hex-encoded, not base64url (pkce_encoding = "hex"). Scopes are
-- comma-separated and the user may grant a subset (`scope` in the token response says
-- which). Each refresh returns a new refresh token and the old one stops working (the
-- newest is kept). API answers carry {"error": {"code": "ok"}} on success, checked by
-- test.ok. Revocation is RFC 7009 style (client_key, client_secret, token).
-- Unconfirmed: the lifetimes: the older page gives access 24 h and refresh 365 days, the
-- refresh page access 2 h and refresh 180 days (expires_in is read either way).
return {
  id = "tiktok",
  title = "TikTok",
  authorize_url = "https://www.tiktok.com/v2/auth/authorize/",
  client_id_param = "client_key",
  scopes = { "user.info.basic", "video.list" },
  scope_separator = ",",
  pkce = true,
  pkce_encoding = "hex",
  token_url = "https://open.tiktokapis.com/v2/oauth/token/",
  client_auth = "body",
  revoke_url = "https://open.tiktokapis.com/v2/oauth/revoke/",
  test = {
    url = "/user/info/",
    query = { fields = "open_id,union_id,avatar_url,display_name" },
    ok = { ["error.code"] = "ok" },
  },
  name = "{{data.user.display_name}}",
  unique_id = "{{data.user.open_id}}",
  allowed_urls = { "https://open.tiktokapis.com/v2" },
  request = { headers = { Authorization = "Bearer {{access_token}}" } },
}
