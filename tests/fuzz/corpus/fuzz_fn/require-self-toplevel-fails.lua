-- An uncaught require cycle at the top level: the module does not load.
local me = require("m")
return {f = herald.query{handler = function() return 1 end}}
