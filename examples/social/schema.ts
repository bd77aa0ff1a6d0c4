import { defineSchema, defineTable } from "convex/server";
import { v } from "convex/values";

export default defineSchema({
    // Better Auth will create internal tables automatically
    // We only define app-specific tables here

    profiles: defineTable({
        userId: v.string(), // References Better Auth user ID
        displayName: v.string(),
        avatarId: v.optional(v.id("_storage")), // Reference to Convex file storage
        bio: v.optional(v.string()),
        createdAt: v.number(),
        updatedAt: v.number(),
    })
        .index("by_userId", ["userId"])
        .index("by_displayName", ["displayName"]),

    posts: defineTable({
        authorId: v.string(), // References Better Auth user ID
        text: v.string(),
        mediaIds: v.optional(v.array(v.id("_storage"))), // Array of file storage IDs
        createdAt: v.number(),
        updatedAt: v.number(),
    })
        .index("by_authorId", ["authorId"])
        .index("by_createdAt", ["createdAt"]),

    conversations: defineTable({
        memberIds: v.array(v.string()), // Array of Better Auth user IDs
        lastMessageAt: v.optional(v.number()),
        createdAt: v.number(),
    })
        .index("by_memberIds", ["memberIds"])
        .index("by_lastMessageAt", ["lastMessageAt"]),

    messages: defineTable({
        conversationId: v.id("conversations"),
        senderId: v.string(), // References Better Auth user ID
        text: v.string(),
        mediaId: v.optional(v.id("_storage")),
        createdAt: v.number(),
    })
        .index("by_conversationId", ["conversationId"])
        .index("by_conversationId_createdAt", ["conversationId", "createdAt"]),

    // Optional: If you have a product feature
    products: defineTable({
        name: v.string(),
        description: v.optional(v.string()),
        price: v.optional(v.number()),
        imageId: v.optional(v.id("_storage")),
        createdAt: v.number(),
    })
        .index("by_createdAt", ["createdAt"]),

    // Not in the seed: the file each document holds, so that a file is
    // attached to one document only, by the user who uploaded it, and its
    // bytes go when that document lets it go (functions/files.lua).
    uploads: defineTable({
        storageId: v.id("_storage"),
        ownerId: v.optional(v.string()), // Better Auth user ID; absent for the admin key
        createdAt: v.number(),
    })
        .index("by_storageId", ["storageId"]),
});
