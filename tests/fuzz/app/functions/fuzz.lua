-- What the server fuzz targets (tests/fuzz/fuzz_proto.c, fuzz_http.c)
-- reach beyond the demo app's own functions: internal functions, which
-- only the admin key may call or subscribe to, and a structured error
-- whose data travels in the error frame.
local M = {}

-- How many videos there are in each status (admin key only).
M.countByStatus = herald.internalQuery{
  args = {},
  handler = function(ctx)
    local counts = {}
    for _, video in ipairs(ctx.db:query("videos"):collect()) do
      counts[video.status] = (counts[video.status] or 0) + 1
    end
    return counts
  end,
}

-- Sets a video's status (admin key only); returns the video's id.
M.setStatus = herald.internalMutation{
  args = {twitchId = v.string(), status = v.string()},
  handler = function(ctx, args)
    local video = ctx.db:query("videos")
      :withIndex("by_twitch_id", function(q) return q:eq("twitchId", args.twitchId) end)
      :unique()
    if not video then herald.error{code = "NOT_FOUND", message = "no such video"} end
    ctx.db:patch(video._id, {status = args.status})
    return video._id
  end,
}

-- Always fails, with `data` for the error frame: {code, detail}.
M.fail = herald.query{
  args = {code = v.optional(v.string()), detail = v.optional(v.any())},
  handler = function(ctx, args)
    herald.error{code = args.code or "FUZZ", message = "failed on purpose", detail = args.detail}
  end,
}

return M
