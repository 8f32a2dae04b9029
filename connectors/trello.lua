-- Trello: an API key and a user token in the query. https://developer.atlassian.com/cloud/trello/guides/rest-api/api-introduction/
-- No OAuth: both go with every request as key= and token=.
return {
  id = "trello",
  title = "Trello",
  auth = "fields",
  fields = {
    { key = "key", label = "API key", required = true, pattern = "%x+", secret = true },
    { key = "token", label = "Token", required = true, secret = true },
  },
  test = "/members/me",
  name = "{{fullName}} (@{{username}})",
  unique_id = "{{id}}",
  allowed_urls = { "https://api.trello.com/1" },
  request = { query = { key = "{{key}}", token = "{{token}}" } },
}
