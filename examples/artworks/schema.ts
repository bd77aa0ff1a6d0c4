// The generative artworks app (seed 001): AI-generated animated artworks,
// their embeddings, collections, share links, settings, the generation log
// and uploaded files, and where the model providers are. Users sign in with
// Clerk (auth.config.json); an artwork's userId is the Clerk subject, as the
// seed's code writes it.
import { defineSchema, defineTable } from "convex/server";
import { v } from "convex/values";

// Reused validators, declared once the way the app's code does.
const visibility = v.union(v.literal("public"), v.literal("private"), v.literal("unlisted"));

const artworkMetadata = v.object({
  width: v.number(),
  height: v.number(),
  fps: v.number(),
  generator: v.string(),
  model: v.string(),
  style: v.optional(v.string()),
  createdAt: v.string(),
});

const apiKey = v.object({
  name: v.string(),
  key: v.string(),
  provider: v.string(),
  createdAt: v.string(),
});

export default defineSchema({
  users: defineTable({
    clerkId: v.string(),
    email: v.string(),
    name: v.optional(v.string()),
    imageUrl: v.optional(v.string()),
    createdAt: v.string(),
    updatedAt: v.string(),
  })
    .index("by_clerk_id", ["clerkId"])
    .index("by_email", ["email"]),

  artworks: defineTable({
    userId: v.string(), // Clerk user id, not a foreign key to users
    prompt: v.string(),
    frames: v.array(v.string()), // JSON array of frames
    metadata: artworkMetadata,
    visibility,
    featured: v.optional(v.boolean()),
    likes: v.optional(v.number()),
    views: v.optional(v.number()),
    createdAt: v.string(),
    updatedAt: v.string(),
  })
    .index("by_user", ["userId"])
    .index("by_visibility", ["visibility"])
    .index("by_created", ["createdAt"])
    .index("by_featured", ["featured"])
    .searchIndex("search_prompt", {
      searchField: "prompt",
      filterFields: ["userId", "visibility"],
    }),

  artworkEmbeddings: defineTable({
    artworkId: v.id("artworks"),
    embedding: v.array(v.float64()),
    model: v.string(),
    createdAt: v.string(),
  })
    .index("by_artwork", ["artworkId"])
    .vectorIndex("by_embedding", {
      vectorField: "embedding",
      dimensions: 1536,
      filterFields: ["model"],
    }),

  collections: defineTable({
    userId: v.id("users"),
    name: v.string(),
    description: v.optional(v.string()),
    artworkIds: v.array(v.id("artworks")),
    visibility: v.union(v.literal("public"), v.literal("private")),
    createdAt: v.string(),
    updatedAt: v.string(),
  })
    .index("by_user", ["userId"])
    .index("by_visibility", ["visibility"]),

  shares: defineTable({
    artworkId: v.id("artworks"),
    shareCode: v.string(),
    expiresAt: v.optional(v.string()),
    maxViews: v.optional(v.number()),
    viewCount: v.number(),
    createdAt: v.string(),
  })
    .index("by_share_code", ["shareCode"])
    .index("by_artwork", ["artworkId"]),

  userSettings: defineTable({
    userId: v.id("users"),
    theme: v.union(v.literal("light"), v.literal("dark"), v.literal("system")),
    defaultVisibility: v.union(v.literal("public"), v.literal("private")),
    emailNotifications: v.boolean(),
    preferredModel: v.optional(v.string()),
    preferredProvider: v.optional(v.string()),
    apiKeys: v.optional(v.array(apiKey)),
    updatedAt: v.string(),
  }).index("by_user", ["userId"]),

  generations: defineTable({
    userId: v.optional(v.id("users")),
    prompt: v.string(),
    success: v.boolean(),
    error: v.optional(v.string()),
    duration: v.number(),
    model: v.string(),
    cost: v.optional(v.number()),
    createdAt: v.string(),
  })
    .index("by_user", ["userId"])
    .index("by_created", ["createdAt"]),

  files: defineTable({
    storageId: v.id("_storage"),
    userId: v.id("users"),
    artworkId: v.optional(v.id("artworks")),
    filename: v.string(),
    mimeType: v.string(),
    size: v.number(),
    createdAt: v.string(),
  })
    .index("by_user", ["userId"])
    .index("by_artwork", ["artworkId"])
    .index("by_storage", ["storageId"]), // not in the seed: one files row per stored file

  // Not in the seed: where each model provider's API is, set by the
  // operator (generations:setProvider). A provider without a row is at its
  // public address (generations.lua).
  providers: defineTable({
    name: v.string(),
    baseUrl: v.string(),
    updatedAt: v.string(),
  }).index("by_name", ["name"]),
});
