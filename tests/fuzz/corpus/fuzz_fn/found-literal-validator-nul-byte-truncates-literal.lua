-- v.literal("a\0b") goes Lua -> herald_value -> JSON -> cJSON on its way into a validator
-- (fn.c load_validator), and cJSON's strings end at the NUL: the literal becomes "a".
-- m:exact returning the literal itself fails validation; m:truncated returning "a" passes.
local M = {}
M.exact = herald.query{returns = v.literal("a\0b"), handler = function() return "a\0b" end}
M.truncated = herald.query{returns = v.literal("a\0b"), handler = function() return "a" end}
return M
