import { defineSchema, defineTable } from "convex/server";
import { v } from "convex/values";

// In your Convex schema definition
export default defineSchema({
  videos: defineTable({
    // Existing fields...
    twitchId: v.string(),
    title: v.string(),
    status: v.string(),
    transcriptUrl: v.optional(v.string()),
    chatUrl: v.optional(v.string()),
    audiowaveUrl: v.optional(v.string()),
    transcriptAnalysisUrl: v.optional(v.string()),
    transcriptWordUrl: v.optional(v.string()),
    
    // NEW FIELDS for async processing
    jobId: v.optional(v.string()),                    // Unique job identifier
    progressPercentage: v.optional(v.number()),       // Progress 0-100
    currentStage: v.optional(v.string()),             // Current processing stage
    estimatedCompletionSeconds: v.optional(v.number()), // ETA in seconds
    
    // Error handling
    errorType: v.optional(v.string()),                // Type of error if failed
    errorMessage: v.optional(v.string()),             // Human-readable error message
    errorDetails: v.optional(v.string()),             // Detailed error information
    isRetryable: v.optional(v.boolean()),             // Whether operation can be retried
    retryCount: v.optional(v.number()),               // Number of retry attempts
    
    // Timestamps
    createdAt: v.optional(v.number()),                // Job creation timestamp
    updatedAt: v.optional(v.number()),                // Last update timestamp
    processingStartedAt: v.optional(v.number()),      // When processing began
    processingCompletedAt: v.optional(v.number()),    // When processing finished
    
    // Additional metadata
    callbackUrl: v.optional(v.string()),              // Webhook callback URL
    stageProgress: v.optional(v.object({})),          // Progress for each stage
  })
    .index("by_twitch_id", ["twitchId"])
    .index("by_job_id", ["jobId"])
    .index("by_status", ["status"])
    .index("by_created_at", ["createdAt"])
});
