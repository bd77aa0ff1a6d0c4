-- ctx:runQuery from a mutation runs the query with the mutation's write rights (call_state's
-- `writable` is the top-level kind): m:writingQuery is refused as a query of its own, but its
-- insert succeeds when m:outer calls it. docs/functions.md says writes fail in a query.
local M = {}
M.writingQuery = herald.query{handler = function(ctx) return ctx.db:insert("events", {kind = "click", x = 1}) end}
M.outer = herald.mutation{handler = function(ctx) return ctx:runQuery("m:writingQuery", {}) end}
return M
