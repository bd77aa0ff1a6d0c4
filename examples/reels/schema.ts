// convex/schema.ts of the reels app (seed 000): Auth0 users, their prompt
// feeds, and the reels that populate each feed. Videos themselves live
// behind the FastAPI service; only their URLs and metadata are stored here.
import { defineSchema, defineTable } from "convex/server";
import { v } from "convex/values";

export const feedStatus = v.union(
  v.literal("pending"),
  v.literal("curating"),
  v.literal("ready"),
  v.literal("archived"),
);

export const reelStatus = v.union(
  v.literal("pending"),
  v.literal("processing"),
  v.literal("ready"),
  v.literal("failed"),
);

const users = defineTable({
  auth0Id: v.string(), // the Auth0 subject, e.g. "auth0|65f0..."
  email: v.optional(v.string()),
  name: v.optional(v.string()),
  avatarUrl: v.optional(v.string()),
  createdAt: v.number(),
  lastLoginAt: v.number(),
}).index("by_auth0_id", ["auth0Id"]);

export default defineSchema({
  users,
  feeds: defineTable({
    userId: v.id("users"),
    prompt: v.string(),
    topic: v.optional(v.string()),
    description: v.optional(v.string()),
    tags: v.array(v.string()),
    status: feedStatus,
    lastSeenReelId: v.optional(v.id("reels")),
    lastSeenIndex: v.optional(v.number()),
    createdAt: v.number(),
    updatedAt: v.number(),
  })
    .index("by_user", ["userId"])
    .index("by_user_status", ["userId", "status"])
    .index("by_status", ["status"]),
  reels: defineTable({
    feedId: v.id("feeds"),
    position: v.number(),
    sourceType: v.union(v.literal("generated"), v.literal("scraped")),
    status: reelStatus,
    videoUrl: v.optional(v.string()),
    thumbnailUrl: v.optional(v.string()),
    sourceReference: v.optional(v.string()),
    metadata: v.optional(v.record(v.string(), v.any())),
    createdAt: v.number(),
    updatedAt: v.number(),
  })
    .index("by_feed_position", ["feedId", "position"])
    .index("by_feed_status", ["feedId", "status"]),
});
