-- A module returning a function definition itself instead of a table of them: nothing registers.
return herald.query{handler = function() return "never registered" end}
