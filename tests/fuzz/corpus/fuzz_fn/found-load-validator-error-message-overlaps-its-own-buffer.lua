-- A validator that cannot be converted (a function as a literal): the load error message is
-- written over the buffer it is formatted from (fn.c load_validator).
return {f = herald.query{args = {x = v.literal(print)}, handler = function() end}}
