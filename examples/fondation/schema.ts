// convex/schema.ts for Fondation (seed 003): users from GitHub OAuth, their
// cached repositories, documentation jobs, and the planned job messages and
// generated documents tables; `settings` (not in the seed) holds the
// operator's app-wide settings.
import { defineSchema, defineTable } from "convex/server";
import { v } from "convex/values";

export default defineSchema({
  users: defineTable({
    githubId: v.string(),      // GitHub user ID (unique identifier)
    username: v.string(),       // GitHub username
    email: v.optional(v.string()),     // User email (optional)
    avatarUrl: v.optional(v.string()), // GitHub avatar URL (optional)
    createdAt: v.number(),      // Unix timestamp of creation
  }).index("by_github_id", ["githubId"]),

  repositories: defineTable({
    userId: v.id("users"),      // Reference to users table
    githubRepoId: v.string(),   // GitHub repository ID
    name: v.string(),            // Repository name
    fullName: v.string(),        // Full name (owner/repo)
    description: v.optional(v.string()), // Repository description
    defaultBranch: v.string(),   // Default branch (usually "main" or "master")
  }).index("by_user", ["userId"]),

  jobs: defineTable({
    userId: v.id("users"),           // Reference to users table
    repositoryId: v.id("repositories"), // Reference to repositories table
    status: v.union(                 // Job status enumeration
      v.literal("pending"),
      v.literal("running"),
      v.literal("completed"),
      v.literal("failed")
    ),
    prompt: v.string(),               // Generation prompt/instructions
    callbackToken: v.string(),        // Secure token for status updates
    createdAt: v.number(),            // Unix timestamp of creation
  }).index("by_user", ["userId"]),

  /* v0.2: real-time job execution logs */
  messages: defineTable({
    jobId: v.id("jobs"),
    content: v.string(),
    type: v.union(
      v.literal("log"),
      v.literal("tool"),
      v.literal("error")
    ),
    timestamp: v.number(),
  }).index("by_job", ["jobId"]),

  /* v0.3: generated documentation */
  documents: defineTable({
    jobId: v.id("jobs"),
    repositoryId: v.id("repositories"),
    content: v.string(),
    format: v.union(
      v.literal("markdown"),
      v.literal("html"),
      v.literal("pdf")
    ),
    metadata: v.optional(v.any()),
    createdAt: v.number(),
  }).index("by_repository", ["repositoryId"]),

  /* Not in the seed: app-wide settings the operator sets with the admin
     key (settings:set), one row per key; `githubApiUrl` is the GitHub API
     that repositories:sync reads. */
  settings: defineTable({
    key: v.string(),
    value: v.string(),
    updatedAt: v.number(),
  }).index("by_key", ["key"]),
});
