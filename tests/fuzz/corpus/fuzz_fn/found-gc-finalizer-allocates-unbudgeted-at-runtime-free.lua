-- A __gc finalizer run by lua_close in hd__fnrt_free, when no memory limit applies: it
-- allocates gigabytes (4 GiB peak RSS in a plain build; a timeout under ASan).
keep = setmetatable({}, {__gc = function() local s = string.rep("x", 1 << 30) local t = s .. s .. s end})
return {}
