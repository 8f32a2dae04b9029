---@meta
-- LuaCATS annotations for connrt connectors, as the Lua language server reads them.
-- Add this directory to the server's `workspace.library` and start a connector with
--
--     ---@type ConnectorSpec
--     return { ... }
--
-- so that its keys are completed and checked. docs/connectors.md explains each key;
-- lua/connrt/schema.lua is what the runtime checks.

---A `{{path}}` template: names joined by dots, numeric segments index arrays from 0.
---A path may start with a namespace that names one layer: `{{token.scope}}`,
---`{{fields.region}}`, `{{values.team_id}}`, `{{test.id}}` (name and unique_id only);
---`{{client_id}}` is the app's client id.
---@alias ConnectorTemplate string

---@alias ConnectorAuth
---| "authorization_code" # a browser sign-in (default): needs authorize_url and token_url
---| "client_credentials" # machine to machine: needs token_url
---| "device_code"        # RFC 8628: needs device_url and token_url
---| "fields"             # no OAuth: API keys, tokens, passwords as fields

---@class ConnectorField
---@field key string Name of letters, digits and '_': `{{key}}` in templates, `--field key=VALUE`.
---@field label? string Shown when prompting.
---@field description? string
---@field required? boolean Prompted for on a terminal when missing.
---@field default? string
---@field choices? string[] The only values allowed.
---@field pattern? string A Lua pattern the whole value must match (give one to fields inside host names).
---@field secret? boolean Sealed in the store, prompted without echo, never in names.

---@class ConnectorRequestSpec
---@field method? string An HTTP method in capitals (default GET).
---@field url ConnectorTemplate Relative (appended to the first allowed URL's path), or absolute under an allowed URL.
---@field headers? table<string, ConnectorTemplate>
---@field query? table<string, ConnectorTemplate>
---@field body? string A raw body.
---@field json? table A body sent as JSON.
---@field form? table<string, ConnectorTemplate> A form body; may also use {{client_id}} and {{client_secret}}.
---@field ok? table<string, string|number|boolean> JSON paths the answer must hold these values at (Slack: `{ ok = true }`).

---@class ConnectorBasic
---@field username ConnectorTemplate
---@field password? ConnectorTemplate

---@class ConnectorRequestParams
---@field headers? table<string, ConnectorTemplate> e.g. `Authorization = "Bearer {{access_token}}"`.
---@field query? table<string, ConnectorTemplate>
---@field body? table<string, ConnectorTemplate> Form values (or JSON members) added to bodies.
---@field basic? ConnectorBasic HTTP Basic from fields.

---@class ConnectorRawResponse
---@field status integer
---@field headers table<string, string> Lowercased names.
---@field body string
---@field truncated? boolean The body was cut to 1 MiB.

---@alias ConnectorGrant
---| "authorization_code"
---| "refresh_token"
---| "client_credentials"
---| "urn:ietf:params:oauth:grant-type:device_code"

---@class ConnectorTokenResponse: ConnectorRawResponse
---@field grant ConnectorGrant The grant this token endpoint answer is for.

---@class ConnectorToken
---@field access_token string
---@field refresh_token? string
---@field token_type? string
---@field expires_in? integer|string Seconds; absent means no known expiry.
---@field scope? string
---@field id_token? string
---@field values? table<string, string|number|boolean> Kept with the connection (declared names only; other keys of this table are dropped).

---@class ConnectorLookupResponse
---@field status integer
---@field headers table<string, string>
---@field body string
---@field truncated? boolean True when body is only its first 1 MiB.
---@field json? any The decoded body when it is JSON.

---@class ConnectorLookupRequest
---@field method? string
---@field url string
---@field headers? table<string, string>
---@field query? table<string, string>
---@field body? string
---@field json? any

---@class ConnectorLookupApi
---@field get fun(url: string, opts?: { headers?: table<string, string>, query?: table<string, string> }): ConnectorLookupResponse
---@field request fun(req: ConnectorLookupRequest): ConnectorLookupResponse
---@field values table<string, string|number|boolean> Values known so far (never tokens).

---Every hook that returns values may return `nil, "message"` instead: callback fails the
---connect (exit 4) before the code is exchanged, token_response and lookup with the
---provider's error (exit 5). A hook that raises is an invalid connector (exit 3).
---@class ConnectorHooks
---@field token_response? fun(raw: ConnectorTokenResponse): ConnectorToken|nil, string?, string? Parse the token endpoint's answer; on an error, nil, the message and the error in RFC 6749's words ("invalid_grant": the code or refresh token is dead).
---@field callback? fun(query: table<string, string>): table<string, string|number|boolean>|nil, string? Values only the callback carries.
---@field lookup? fun(api: ConnectorLookupApi): table<string, string|number|boolean>|nil, string? Post-connect lookups.
---@field expired? fun(response: ConnectorRawResponse): boolean Does this API answer (the test API's too) mean "token expired"?

---@class ConnectorSpec
---@field id string Lowercase letters, digits, '-' and '_'.
---@field title? string
---@field auth? ConnectorAuth
---@field fields? ConnectorField[]
---@field issuer? ConnectorTemplate RFC 9207: a callback whose `iss` differs is rejected.
---@field discovery? ConnectorTemplate The authorization server's issuer URL: its metadata (RFC 8414, OpenID Connect) fills authorize_url, token_url, revoke_url, device_url, issuer and, without `test`, the test API (userinfo); keys set here win. Its endpoints must be on the issuer's origin.
---@field registration? "dynamic" Register a client at the server (RFC 7591) on the first connect and reuse it (needs `discovery`); --client-id wins.
---@field resource? ConnectorTemplate RFC 8707 resource indicator, sent on the authorization request and every token request.
---@field authorize_url? ConnectorTemplate
---@field device_url? ConnectorTemplate
---@field scopes? string[]
---@field scope_separator? string Default " ".
---@field authorize_params? table<string, ConnectorTemplate>
---@field client_id_param? string The client id's parameter name in the authorize request and a token request's body (TikTok's "client_key"). Default "client_id".
---@field redirect_uri? ConnectorTemplate Sent as redirect_uri in the authorize and code exchange requests instead of the redirect URL (eBay's RuName); fields only.
---@field pkce? boolean Default true (S256).
---@field pkce_encoding? "base64url"|"hex" How the S256 challenge is encoded. Default "base64url" (RFC 7636); "hex" for TikTok's desktop apps.
---@field app_registration? { url: ConnectorTemplate, form?: table<string, ConnectorTemplate> } A client registered on each server at the first connect through the provider's own app API (Mastodon's POST /api/v1/apps); the form sees fields, {{redirect_uri}} and {{scope}}; kept sealed per server and reused.
---@field callback_fields? table<string, string> Fields the callback sets, by field key to callback parameter (Zoho's accounts_server = "accounts-server"); each field needs `choices`, and the callback's value must be one of them.
---@field token_url? ConnectorTemplate
---@field client_auth? "basic"|"body" Default "basic".
---@field token_params? table<string, ConnectorTemplate> Fields and {{client_id}}.
---@field token_headers? table<string, ConnectorTemplate> Headers of every token, refresh, device and revoke request (fields and {{client_id}}; not Authorization or Content-Type).
---@field token_request_format? "form"|"json" Default "form".
---@field refresh_url? ConnectorTemplate Default token_url.
---@field revoke_url? ConnectorTemplate RFC 7009.
---@field revoke_request? ConnectorRevokeRequest For revocations that are not RFC 7009 (GitHub, Dropbox, Stripe).
---@field exchange_request? ConnectorRevokeRequest Sent right after the code exchange; its token answer is kept (Facebook's long-lived token).
---@field test? string|ConnectorRequestSpec Required unless `discovery` gives the userinfo endpoint. Must answer 2xx (and hold `ok`, and not be what hooks.expired calls expired) for the connection to be saved.
---@field name ConnectorTemplate The connection's name (no secrets).
---@field unique_id ConnectorTemplate The account's id (no secrets).
---@field values? string[] Values from the token response or hooks that the connection keeps (only these).
---@field allowed_urls ConnectorTemplate[] Where credentials may go; the first is the base of relative URLs.
---@field git_username? ConnectorTemplate The username git presents the token with (`connrt git-credential`): GitHub "x-access-token", GitLab "oauth2", Bitbucket "x-token-auth"; fields and kept values only, never a secret. The git host must be under `allowed_urls`.
---@field request? ConnectorRequestParams What every request carries.
---@field refresh_on? integer[] Statuses that mean "token expired" (default { 401 }).
---@field hooks? ConnectorHooks

---The request `connrt revoke` sends for providers whose revocation is not RFC 7009.
---Templates see access_token, refresh_token, client_id, client_secret, fields and kept
---values; tokens and secrets may not appear in `url` or `query`.
---@class ConnectorRevokeRequest
---@field method? string HTTP method in capitals (default "POST").
---@field url ConnectorTemplate
---@field headers? table<string, ConnectorTemplate>
---@field query? table<string, ConnectorTemplate>
---@field form? table<string, ConnectorTemplate> A form body.
---@field json? table A JSON body whose strings are templates.
---@field basic? { username: ConnectorTemplate, password?: ConnectorTemplate } HTTP Basic.
