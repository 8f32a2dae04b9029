std = "lua54"
max_line_length = 150
files["spec"] = { std = "+busted" }
files["connectors"] = { globals = { "connrt" } }
files["examples"] = { globals = { "connrt" } }
files["bench"] = { globals = { "connrt" } }
