-- luacheck: std +busted
-- A proxy worker's lookup of the name in a request path (lua/connrt/proxy.lua,
-- Worker:connection), in this process on a real LMDB store, with a write of another
-- process made to fall at a chosen moment: between the name's lookup and the opening of
-- what it found. (The proxy's behaviour over HTTP is spec/proxy_spec.lua's.)
local crypto = require("connrt.crypto")
local h = require("support.helpers")
local proxy = require("connrt.proxy")
local store = require("connrt.store")
local sys = require("connrt.sys")

local function record(connector, unique_id)
  return { connector = connector, unique_id = unique_id, name = unique_id, fields = {},
    allowed_urls = { "https://api.example.com/" } }
end

describe("a proxy worker's lookup of a name", function()
  local dir, st, b, z

  before_each(function()
    dir = h.tmpdir()
    assert(sys.write_private(dir .. "/key", crypto.hex(crypto.random(32)) .. "\n"))
    st = store.open(dir, { key_file = dir .. "/key" })
    -- B, a connection of connector "keys"; Z, the one connection of a connector whose id
    -- is B's id (connector ids and connection ids share a spelling): once B is gone, the
    -- name B is Z's, as for the CLI
    b = st:save(record("keys", "bob"), { access_token = "token-of-b" }, "return {}")
    z = st:save(record(b, "zed"), { access_token = "token-of-z" }, "return {}")
  end)

  after_each(function()
    st:close()
    h.rmdir(dir)
  end)

  -- A worker on `st` whose store deletes `victim` right after the first lookup of a name
  -- (what a `connrt delete` of another process does when it falls there).
  local function worker_with_delete_after_find(served, victim)
    local w = proxy.new_worker(1, { served = served }, nil)
    w.st = setmetatable({ find = function(self, ref)
      local rec = st.find(self, ref)
      if victim then
        st:delete(victim)
        victim = nil
      end
      return rec
    end }, { __index = st })
    return w
  end

  it("opens the record it found, never what the name names after a write in between", function()
    local w = worker_with_delete_after_find(nil, b)
    local conn = w:connection(b)
    assert.equal(b, conn:id())
    assert.equal("token-of-b", conn.secrets.access_token)
    -- the next request finds B gone, and the name now Z's, as a new lookup says
    conn = w:connection(b)
    assert.equal(z, conn:id())
  end)

  it("with --connection, never opens a connection it does not serve, whatever falls in between", function()
    local w = worker_with_delete_after_find({ [b] = true }, b)
    assert.equal(b, w:connection(b):id())
    local ok, err = pcall(w.connection, w, b)
    assert.is_false(ok)
    assert.equal("notfound", err.kind)
    assert.matches("not served by this proxy", err.message, 1, true)
  end)
end)

describe("a proxy's default workers under a cgroup's CPU quota", function()
  local root
  before_each(function() root = h.tmpdir() end)
  after_each(function() h.rmdir(root) end)

  -- writes the files of a fixture standing for / (path -> text)
  local function tree(files)
    for path, text in pairs(files) do
      os.execute("mkdir -p " .. h.shell_quote(root .. path:match("^(.*)/[^/]*$")))
      h.write(root .. path, text)
    end
  end

  it("reads cgroup v2's cpu.max, the smallest of the cgroup and its parents, rounded up", function()
    tree({ ["/proc/self/cgroup"] = "0::/box/job\n",
      ["/sys/fs/cgroup/box/job/cpu.max"] = "max 100000\n",
      ["/sys/fs/cgroup/box/cpu.max"] = "250000 100000\n",
      ["/sys/fs/cgroup/cpu.max"] = "max 100000\n" })
    assert.equal(3, proxy.cgroup_cpus(root))
    tree({ ["/sys/fs/cgroup/box/job/cpu.max"] = "100000 100000\n" })
    assert.equal(1, proxy.cgroup_cpus(root))
  end)

  it("reads cgroup v1's cpu.cfs_quota_us over cpu.cfs_period_us (-1: none)", function()
    tree({ ["/proc/self/cgroup"] = "4:memory:/x\n2:cpu,cpuacct:/x\n0::/\n",
      ["/sys/fs/cgroup/cpu/x/cpu.cfs_quota_us"] = "-1\n", ["/sys/fs/cgroup/cpu/x/cpu.cfs_period_us"] = "100000\n" })
    assert.is_nil(proxy.cgroup_cpus(root))
    tree({ ["/sys/fs/cgroup/cpu/x/cpu.cfs_quota_us"] = "150000\n" })
    assert.equal(2, proxy.cgroup_cpus(root))
  end)

  it("finds no quota where there is none, or no cgroup file at all", function()
    tree({ ["/proc/self/cgroup"] = "0::/\n", ["/sys/fs/cgroup/cpu.max"] = "max 100000\n" })
    assert.is_nil(proxy.cgroup_cpus(root))
    assert.is_nil(proxy.cgroup_cpus(root .. "/nothing-here"))
  end)
end)
