// The web demo's app (web-demo/, docs/web-demo.md): two example apps side
// by side in one schema, unchanged. `videos` is the jobs table of
// examples/twitch-jobs/schema.ts (seed 002), which the jobs dashboard
// watches; `users`, `feeds` and `reels` are the tables of
// examples/reels/schema.ts (seed 000), which the reels feed reads. Keep
// them in step with those two files: the functions in functions/ are links
// to the two apps' own.
import { defineSchema, defineTable } from "convex/server";
import { v } from "convex/values";

// --- examples/twitch-jobs: the video-processing jobs ---
const videos = defineTable({
  twitchId: v.string(),
  title: v.string(),
  status: v.string(),
  transcriptUrl: v.optional(v.string()),
  chatUrl: v.optional(v.string()),
  audiowaveUrl: v.optional(v.string()),
  transcriptAnalysisUrl: v.optional(v.string()),
  transcriptWordUrl: v.optional(v.string()),

  jobId: v.optional(v.string()),
  progressPercentage: v.optional(v.number()),
  currentStage: v.optional(v.string()),
  estimatedCompletionSeconds: v.optional(v.number()),

  errorType: v.optional(v.string()),
  errorMessage: v.optional(v.string()),
  errorDetails: v.optional(v.string()),
  isRetryable: v.optional(v.boolean()),
  retryCount: v.optional(v.number()),

  createdAt: v.optional(v.number()),
  updatedAt: v.optional(v.number()),
  processingStartedAt: v.optional(v.number()),
  processingCompletedAt: v.optional(v.number()),

  callbackUrl: v.optional(v.string()),
  stageProgress: v.optional(v.object({})),
})
  .index("by_twitch_id", ["twitchId"])
  .index("by_job_id", ["jobId"])
  .index("by_status", ["status"])
  .index("by_created_at", ["createdAt"]);

// --- examples/reels: users, their prompt feeds, the feeds' reels ---
const feedStatus = v.union(
  v.literal("pending"),
  v.literal("curating"),
  v.literal("ready"),
  v.literal("archived"),
);

const reelStatus = v.union(
  v.literal("pending"),
  v.literal("processing"),
  v.literal("ready"),
  v.literal("failed"),
);

const users = defineTable({
  auth0Id: v.string(), // the JWT subject; in the demo "demo|alice"
  email: v.optional(v.string()),
  name: v.optional(v.string()),
  avatarUrl: v.optional(v.string()),
  createdAt: v.number(),
  lastLoginAt: v.number(),
}).index("by_auth0_id", ["auth0Id"]);

const feeds = defineTable({
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
  .index("by_status", ["status"]);

const reels = defineTable({
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
  .index("by_feed_status", ["feedId", "status"]);

export default defineSchema({ videos, users, feeds, reels });
